"""Genome-side inputs: BED intervals, FASTA windows, one-hot DNA, the mean-accessibility bigWig.

Conventions (docs/DESIGN.md):
- chromosome names ``chr22`` / ``22`` and ``chrM`` / ``MT`` are the same chromosome;
  each reader maps a user's name to the one its own file uses (:func:`match_chrom`);
- the model window is 1,000 bp around an interval's centre, with kipoiseq
  ``Interval.resize`` semantics; bases past a chromosome end are N;
- one-hot is float32 (L, 4) in A, C, G, T order; N (or anything else) is all zeros.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Collection, Iterable

import numpy as np
import pandas as pd
from kipoiseq import Interval
from kipoiseq.transforms.functional import one_hot_dna

from chromdragonn.errors import ChromDragoNNError

WINDOW = 1000
MEAN_BIN = 200  # the central bin whose mean accessibility is the model's extra input
BED_COLUMNS = ["chrom", "start", "end", "name"]

# Mitochondrial spellings that are the same chromosome across UCSC / Ensembl / GENCODE.
_MITO = ("chrM", "MT", "M", "chrMT")


def match_chrom(name: str, available: Collection[str]) -> str | None:
    """The spelling of chromosome ``name`` used in ``available``, or None.

    Exact names win; otherwise a ``chr`` prefix is added or removed, and the
    mitochondrion is matched across its spellings (chrM, MT, M, chrMT).
    """
    if name in available:
        return name
    candidates = [name[3:]] if name.startswith("chr") else ["chr" + name]
    if name in _MITO:
        candidates += [m for m in _MITO if m != name]
    for cand in candidates:
        if cand in available:
            return cand
    return None


def _check_readable(path: Path, what: str) -> None:
    if not path.exists():
        raise ChromDragoNNError(f"{what} not found: {path}")
    if not path.is_file():
        raise ChromDragoNNError(f"{what} is not a file: {path}")
    if not os.access(path, os.R_OK):
        raise ChromDragoNNError(f"{what} is not readable: {path}")


def _gzip_kind(path: Path) -> str:
    """'plain', 'bgzf' (block gzip, random access) or 'gzip' (plain gzip, no random access)."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] != b"\x1f\x8b":
        return "plain"
    # BGZF: gzip with FEXTRA set and a 'BC' extra subfield (SAM/BAM spec, section 4.1).
    if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC":
        return "bgzf"
    return "gzip"


class Genome:
    """A FASTA file read through pyfaidx: plain or bgzipped (plain gzip is refused).

    The ``.fai`` (and ``.gzi`` for bgzip) index is built beside the file when missing.
    """

    def __init__(self, fasta_path: str | os.PathLike):
        from pyfaidx import Fasta

        self.path = Path(fasta_path)
        _check_readable(self.path, "FASTA file")
        kind = _gzip_kind(self.path)
        if kind == "gzip":
            raise ChromDragoNNError(
                f"FASTA file {self.path} is gzip-compressed but not bgzipped, so it cannot be read at "
                f"random positions; recompress it with `zcat {self.path.name} | bgzip > "
                f"{self.path.name.removesuffix('.gz')}.gz` or unzip it")
        fai = Path(str(self.path) + ".fai")
        if not fai.exists() and not os.access(self.path.parent, os.W_OK):
            raise ChromDragoNNError(
                f"FASTA file {self.path} has no index ({fai.name}) and its folder is not writable; "
                f"run `samtools faidx {self.path}` where you can, or copy the FASTA to a writable folder")
        try:
            self._fasta = Fasta(str(self.path), sequence_always_upper=True, rebuild=False,
                                build_index=True)
        except ChromDragoNNError:
            raise
        except Exception as exc:  # pyfaidx raises several types for unreadable/unindexable files
            raise ChromDragoNNError(
                f"cannot read or index FASTA file {self.path}: {type(exc).__name__}: {exc}") from None
        self.chromosomes: list[str] = list(self._fasta.keys())
        self.lengths: dict[str, int] = {k: len(self._fasta[k]) for k in self.chromosomes}

    def resolve(self, chrom: str) -> str:
        """The FASTA's name for ``chrom`` (chr22 <-> 22 reconciled) or a one-line error."""
        name = match_chrom(chrom, self.lengths)
        if name is None:
            shown = ", ".join(self.chromosomes[:10]) + (" ..." if len(self.chromosomes) > 10 else "")
            raise ChromDragoNNError(
                f"chromosome {chrom!r} is not in FASTA file {self.path} (also tried with and without "
                f"the 'chr' prefix); it has: {shown}")
        return name

    def fetch(self, chrom: str, start: int, end: int) -> str:
        """Upper-case sequence of [start, end) (0-based), N where it runs past either chromosome end."""
        name = self.resolve(chrom)
        length = self.lengths[name]
        lo, hi = max(start, 0), min(end, length)
        seq = self._read(name, lo, hi) if hi > lo else ""
        left = min(max(-start, 0), end - start)
        right = end - start - left - len(seq)
        return "N" * left + seq + "N" * right

    def _read(self, name: str, lo: int, hi: int) -> str:
        try:
            return str(self._fasta[name][lo:hi])
        except ValueError as exc:
            # pyfaidx 0.9.2.2 on bgzipped FASTA: a read starting exactly at a BGZF block
            # boundary raises "Require 0 <= within_block_offset < 2**16, got 65536"
            # (about 1 start in 64k); reading from one base earlier and dropping it works.
            if "within_block_offset" not in str(exc) or lo == 0:
                raise
            return str(self._fasta[name][lo - 1:hi])[1:]

    def close(self) -> None:
        self._fasta.close()

    def __repr__(self) -> str:
        return f"Genome({str(self.path)!r})"


def one_hot(seq: str) -> np.ndarray:
    """float32 (L, 4) in A, C, G, T order; lower case is read as upper case, anything else is zeros."""
    return one_hot_dna(seq.upper(), neutral_value=0.0, dtype=np.float32)


def one_hot_batch(seqs: Iterable[str]) -> np.ndarray:
    """Stack equal-length sequences into float32 (N, L, 4)."""
    arrays = [one_hot(s) for s in seqs]
    if not arrays:
        return np.zeros((0, WINDOW, 4), dtype=np.float32)
    return np.stack(arrays)


def centered_window(chrom: str, start: int, end: int, width: int = WINDOW) -> Interval:
    """The ``width``-bp kipoiseq Interval around the centre of [start, end) (Interval.resize)."""
    return Interval(chrom, int(start), int(end)).resize(width)


def _open_text(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt")
    return open(path, "rt")


def read_bed(path: str | os.PathLike) -> pd.DataFrame:
    """BED (optionally gzipped) -> DataFrame chrom, start, end, name.

    ``name`` is the 4th column, or ``chrom:start-end`` when there is none.
    ``track``/``browser``/``#`` lines and blank lines are skipped; a bad record is
    a one-line error naming file:line.
    """
    path = Path(path)
    _check_readable(path, "BED file")
    rows = []
    try:
        with _open_text(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                line = line.rstrip("\r\n")
                if not line.strip() or line.startswith(("#", "track", "browser")):
                    continue
                fields = line.split("\t")
                if len(fields) < 3:
                    fields = line.split()
                if len(fields) < 3:
                    raise ChromDragoNNError(
                        f"{path}:{lineno}: a BED record needs at least 3 columns (chrom, start, end), "
                        f"got {len(fields)}: {line[:60]!r}")
                chrom = fields[0].strip()
                try:
                    start, end = int(fields[1]), int(fields[2])
                except ValueError:
                    raise ChromDragoNNError(
                        f"{path}:{lineno}: start and end must be integers, got {fields[1]!r} and "
                        f"{fields[2]!r}") from None
                if start < 0:
                    raise ChromDragoNNError(f"{path}:{lineno}: start {start} is negative")
                if start >= end:
                    raise ChromDragoNNError(
                        f"{path}:{lineno}: start {start} >= end {end} (BED is 0-based, half-open)")
                name = fields[3].strip() if len(fields) > 3 and fields[3].strip() else f"{chrom}:{start}-{end}"
                rows.append((chrom, start, end, name))
    except UnicodeDecodeError as exc:
        raise ChromDragoNNError(f"{path} is not a text BED file ({exc.reason})") from None
    except (OSError, EOFError) as exc:
        raise ChromDragoNNError(f"cannot read BED file {path}: {exc}") from None
    df = pd.DataFrame(rows, columns=BED_COLUMNS)
    return df.astype({"chrom": str, "start": np.int64, "end": np.int64, "name": str})


class MeanAccessibility:
    """The mean-accessibility bigWig: one float per window, the mean of its central 200 bp.

    Bases without data count as 0, so the value is never NaN.
    """

    def __init__(self, bigwig_path: str | os.PathLike):
        import pyBigWig

        self.path = Path(bigwig_path)
        _check_readable(self.path, "bigWig file")
        try:
            bw = pyBigWig.open(str(self.path))
        except Exception:
            bw = None
        if bw is None or not bw.isBigWig():
            raise ChromDragoNNError(f"{self.path} is not a readable bigWig file")
        self._bw = bw
        self.lengths: dict[str, int] = dict(bw.chroms())

    def resolve(self, chrom: str) -> str:
        name = match_chrom(chrom, self.lengths)
        if name is None:
            raise ChromDragoNNError(
                f"chromosome {chrom!r} is not in bigWig file {self.path} (also tried with and without the "
                f"'chr' prefix); it has: {', '.join(list(self.lengths)[:10])}")
        return name

    def value(self, chrom: str, window_start: int, window_end: int) -> float:
        name = self.resolve(chrom)
        center = (window_start + window_end) // 2
        lo, hi = center - MEAN_BIN // 2, center + MEAN_BIN // 2
        a, b = max(lo, 0), min(hi, self.lengths[name])
        if b <= a:
            return 0.0
        vals = np.asarray(self._bw.values(name, a, b, numpy=True), dtype=np.float64)
        return float(np.nan_to_num(vals, nan=0.0).sum() / MEAN_BIN)

    def close(self) -> None:
        self._bw.close()

    def __repr__(self) -> str:
        return f"MeanAccessibility({str(self.path)!r})"
