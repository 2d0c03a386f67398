"""The one way this package writes a file: to ``<name>.partial`` beside it, renamed when complete.

Nothing is ever left half-written under a final name, and nothing is left behind at all when the
work fails, is interrupted (SIGINT, Ctrl-C) or is terminated (SIGTERM, what batch schedulers send):
SIGTERM is turned into an exception for the duration of the write, so the same clean-up runs.
Outputs that belong together (a table and its plot) are renamed together, only when all are complete.
The output locations are checked before any work starts (:func:`check_output_path`).
"""
from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from chromdragonn.errors import ChromDragoNNError

PARTIAL_SUFFIX = ".partial"


class Terminated(BaseException):
    """SIGTERM received; raised in the main thread so that ``finally`` blocks run."""


def partial_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While active, SIGTERM raises :class:`Terminated` (main thread, default handler only)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def check_output_path(path: str | os.PathLike, what: str = "output", suffixes: tuple[str, ...] | None = None,
                      inputs=(), check_folder: bool = True) -> Path:
    """A one-line error, before any work, if ``path`` cannot be written: its folder is missing or
    not writable, the path is a directory, its name does not end in one of ``suffixes`` (when given:
    the formats the command writes), or it is one of the command's ``inputs`` (which it would replace)."""
    path = Path(path)
    if path.is_dir():
        raise ChromDragoNNError(f"{what} {path} is a directory; give a file name")
    for item in inputs:
        if item is not None and Path(item).exists() and Path(item).resolve() == path.resolve():
            raise ChromDragoNNError(f"{what} {path} is also an input of this command; give another output name")
    if suffixes and not path.name.lower().endswith(suffixes):
        raise ChromDragoNNError(f"{what} {path}: give a file name ending in {' or '.join(suffixes)} (the format is "
                                "chosen by the suffix)")
    if check_folder:  # (False: the caller has checked the folder once for many files)
        folder, whose = path.parent, f" (for {what} {path})"
        _check_folder(folder, f"output folder does not exist: {folder}{whose}", f"{folder} is not a folder{whose}",
                      f"output folder is not writable: {folder}{whose}")
    return path


def check_output_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """A one-line error, before any work, if ``path`` is not an existing, writable folder."""
    path = Path(path)
    _check_folder(path, f"{what} does not exist: {path}", f"{what} {path} is not a folder",
                  f"{what} is not writable: {path}")
    return path


def _check_folder(folder: Path, missing: str, not_folder: str, not_writable: str) -> None:
    if not folder.exists():
        raise ChromDragoNNError(missing)
    if not folder.is_dir():
        raise ChromDragoNNError(not_folder)
    _probe_writable(folder, not_writable)


def _probe_writable(folder: Path, message: str) -> None:
    """Create and remove a file in ``folder``: the only test that also holds for root, read-only
    mounts and full disks (os.access says yes to root whatever the mode bits)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".chromdragonn-probe-"):
            pass
    except OSError as exc:
        raise ChromDragoNNError(f"{message} ({exc.strerror})") from None


@contextlib.contextmanager
def atomic_outputs(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Temporary paths for ``paths``; renamed onto them when the block completes, all removed on
    any failure, interrupt or termination::

        with atomic_outputs(tsv, png) as (tsv_tmp, png_tmp):
            write(tsv_tmp); plot(png_tmp)
    """
    finals = [Path(p) for p in paths]
    resolved = [p.resolve() for p in finals]
    if len(set(resolved)) < len(resolved):
        twice = next(p for p, r in zip(finals, resolved) if resolved.count(r) > 1)
        raise ChromDragoNNError(f"two outputs of this command are the same file: {twice}")
    for p in finals:  # checked before anything is written, so no rename can fail half-way on a folder
        if p.is_dir():
            raise ChromDragoNNError(f"output {p} is a directory; give a file name")
    temps = [partial_path(p) for p in finals]
    done = False
    try:
        with sigterm_raises():
            yield temps
            for tmp, final in zip(temps, finals):
                os.replace(tmp, final)
            done = True
    finally:
        if not done:
            for tmp in temps:
                with contextlib.suppress(OSError):
                    tmp.unlink()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """:func:`atomic_outputs` for one file."""
    with atomic_outputs(path) as (tmp,):
        yield tmp


def check_new_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """A one-line error, before any work, unless ``path`` can be made as a new folder: it must not
    exist yet (the command does not mix its files with older ones), and its parent must be a writable
    folder."""
    path = Path(path)
    if path.exists():
        raise ChromDragoNNError(f"{what} {path} already exists; give a new folder name (or remove it)")
    parent = path.parent
    _check_folder(parent, f"the parent folder of {what} {path} does not exist: {parent}",
                  f"{parent} is not a folder (for {what} {path})",
                  f"folder is not writable: {parent} (for {what} {path})")
    return path


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A folder written whole or not at all: the block fills ``<path>.partial``, which is renamed onto
    ``path`` when the block completes and removed on any failure, interrupt or termination::

        with atomic_folder(out_dir) as tmp:
            write(tmp / "report.md"); ...
    """
    import shutil

    final = check_new_folder(path)
    tmp = partial_path(final)
    if tmp.exists():  # left by a run killed with SIGKILL
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    done = False
    try:
        with sigterm_raises():
            tmp.mkdir()
            yield tmp
            os.rename(tmp, final)
            done = True
    finally:
        if not done:
            shutil.rmtree(tmp, ignore_errors=True)
