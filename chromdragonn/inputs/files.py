"""Opening the user's input files: readable-or-one-line-error, and one gzip sniffer."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

from chromdragonn.errors import ChromDragoNNError

GZIP_MAGIC = b"\x1f\x8b"


def check_readable(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path, or a one-line error saying it is missing, not a file or not readable."""
    path = Path(path)
    if not path.exists():
        raise ChromDragoNNError(f"{what} not found: {path}")
    if not path.is_file():
        raise ChromDragoNNError(f"{what} is not a file: {path}")
    if not os.access(path, os.R_OK):
        raise ChromDragoNNError(f"{what} is not readable: {path}")
    return path


def gzip_kind(path: str | os.PathLike) -> str:
    """'plain', 'bgzf' (block gzip, random access) or 'gzip' (plain gzip, no random access)."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] != GZIP_MAGIC:
        return "plain"
    # BGZF: gzip with FEXTRA set and a 'BC' extra subfield (SAM/BAM spec, section 4.1).
    if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC":
        return "bgzf"
    return "gzip"


def open_text(path: str | os.PathLike, newline: str | None = None):
    """A text handle on a plain or gzip/bgzip-compressed file (told apart by its first bytes)."""
    if gzip_kind(path) != "plain":
        return gzip.open(path, "rt", newline=newline)
    return open(path, "rt", newline=newline)
