"""Genome-side inputs: BED intervals, FASTA windows, one-hot DNA, the mean-accessibility bigWig.

Conventions (docs/DESIGN.md):
- chromosome names ``chr22`` / ``22`` and ``chrM`` / ``MT`` are the same chromosome;
  each reader maps a user's name to the one its own file uses (:func:`match_chrom`);
- the model window is 1,000 bp around an interval's centre, with kipoiseq
  ``Interval.resize`` semantics; bases past a chromosome end are N;
- one-hot is float32 (L, 4) in A, C, G, T order; N (or anything else) is all zeros.
"""
from __future__ import annotations

import os
import re
import struct
import warnings
from pathlib import Path
from typing import Collection, Iterable

import numpy as np
import pandas as pd
from kipoiseq import Interval
from kipoiseq.transforms.functional import one_hot_dna

from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.files import check_readable, gzip_kind, open_text

WINDOW = 1000  # bp of sequence the model reads: the one definition every module uses
MEAN_BIN = 200  # the central bin whose mean accessibility is the model's extra input
BED_COLUMNS = ["chrom", "start", "end", "name"]
BIGWIG_MAGIC = (0x888FFC26).to_bytes(4, "little")

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


class Genome:
    """A FASTA file read through pyfaidx: plain or bgzipped (plain gzip is refused).

    The ``.fai`` (and ``.gzi`` for bgzip) index is built beside the file when missing.
    """

    def __init__(self, fasta_path: str | os.PathLike):
        from pyfaidx import Fasta

        self.path = Path(fasta_path)
        check_readable(self.path, "FASTA file")
        kind = gzip_kind(self.path)
        if kind == "gzip":
            # The suggested output gets a new name: `zcat X.fa.gz | bgzip > X.fa.gz` would truncate
            # the input to 0 bytes before zcat reads it (the shell opens the output first).
            stem = self.path.name.removesuffix(".gz").removesuffix(".fa").removesuffix(".fasta")
            raise ChromDragoNNError(
                f"FASTA file {self.path} is gzip-compressed but not bgzipped, so it cannot be read at "
                f"random positions; recompress it to a new file with `zcat {self.path.name} | bgzip > "
                f"{stem}.bgz.fa.gz` or unzip it")
        fai = Path(str(self.path) + ".fai")
        if not fai.exists() and not os.access(self.path.parent, os.W_OK):
            raise ChromDragoNNError(
                f"FASTA file {self.path} has no index ({fai.name}) and its folder is not writable; "
                f"run `samtools faidx {self.path}` where you can, or copy the FASTA to a writable folder")
        if fai.exists():
            check_fasta_index(self.path, fai, bgzf=kind == "bgzf")
        try:
            with warnings.catch_warnings():
                # pyfaidx warns when an index is older than its FASTA; check_fasta_index has already
                # refused an index that does not fit the file, and a merely older one is still right.
                warnings.simplefilter("ignore", RuntimeWarning)
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

    def check_interval(self, chrom: str, start: int, end: int, where: str) -> None:
        """One-line error when an interval starts past the end of its chromosome (a wrong assembly,
        or a sliced or truncated FASTA): its window would be all N. ``where`` names the record."""
        try:
            name = self.resolve(chrom)
        except ChromDragoNNError as exc:
            raise ChromDragoNNError(f"{where}: {exc}") from None
        length = self.lengths[name]
        if start >= length:
            raise ChromDragoNNError(
                f"{where} ({chrom}:{start}-{end}) starts past the end of {chrom} ({length:,} bp) in {self.path}; "
                "is the FASTA the right assembly?")

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


def check_fasta_index(fasta: Path, fai: Path, bgzf: bool) -> None:
    """Refuse a .fai (or .gzi) index that points past the end of its FASTA: a truncated FASTA or a
    stale index, which pyfaidx would use with only a warning and then read short or wrong sequence."""
    size = fasta.stat().st_size
    last_end = 0
    try:
        with open(fai) as fh:
            for line in fh:
                fields = line.split("\t")
                if len(fields) < 5:
                    continue
                length, offset, line_bases, line_width = (int(x) for x in fields[1:5])
                full, rest = divmod(length, line_bases) if line_bases else (0, length)
                last_end = max(last_end, offset + full * line_width + rest)
    except (OSError, ValueError):
        raise ChromDragoNNError(f"FASTA index {fai} is not a readable .fai file; delete it to rebuild it") from None
    hint = f"delete {fai.name}{' and ' + fasta.name + '.gzi' if bgzf else ''} to rebuild the index"
    if not bgzf:
        if last_end > size:
            raise ChromDragoNNError(
                f"FASTA index {fai} describes {last_end:,} bytes but {fasta} has {size:,}: the FASTA is "
                f"truncated or the index is stale; {hint}")
        return
    gzi = Path(str(fasta) + ".gzi")
    if not gzi.exists():
        return
    with open(gzi, "rb") as fh:
        raw = fh.read()
    n = struct.unpack_from("<Q", raw)[0] if len(raw) >= 8 else 0
    if len(raw) != 8 + 16 * n:
        raise ChromDragoNNError(f"BGZF index {gzi} is damaged; {hint}")
    if n:
        compressed, uncompressed = struct.unpack_from("<QQ", raw, 8 + 16 * (n - 1))
        if compressed >= size or uncompressed > last_end + 2:  # + the final newline(s)
            raise ChromDragoNNError(
                f"BGZF index {gzi} points past the end of {fasta} ({size:,} bytes): the FASTA is truncated "
                f"or the index is stale; {hint}")


_REGION = re.compile(r"^\s*([^:\s]+):([\d,]+)-([\d,]+)\s*$")


def parse_region(region: str) -> tuple[str, int, int]:
    """``chr22:17,000,001-17,000,100`` (1-based, inclusive: samtools, IGV and UCSC style) ->
    ``('chr22', 17000000, 17000100)``, 0-based half-open. The one region syntax of the package:
    command-line options and training configs alike."""
    m = _REGION.match(str(region))
    if not m:
        raise ChromDragoNNError(
            f"region {region!r} is not CHROM:START-END (1-based, inclusive), e.g. chr22:17000001-17000200")
    chrom, start, end = m.group(1), int(m.group(2).replace(",", "")), int(m.group(3).replace(",", ""))
    if start < 1 or end < start:
        raise ChromDragoNNError(f"region {region!r}: need 1 <= START <= END")
    return chrom, start - 1, end


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


def bed_lines(path: str | os.PathLike, what: str = "BED file"):
    """The data lines of a BED-like text file (plain or gzipped) with their 1-based numbers.

    ``track``/``browser``/``#`` lines and blank lines are skipped; a file that cannot be read
    or is not text is a one-line error naming it as ``what``."""
    path = Path(path)
    check_readable(path, what)
    try:
        with open_text(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                line = line.rstrip("\r\n")
                if line.strip() and not line.startswith(("#", "track", "browser")):
                    yield lineno, line
    except UnicodeDecodeError as exc:
        raise ChromDragoNNError(f"{path} is not a text {what} ({exc.reason})") from None
    except (OSError, EOFError) as exc:
        raise ChromDragoNNError(f"cannot read {what} {path}: {exc}") from None


def read_bed(path: str | os.PathLike) -> pd.DataFrame:
    """BED (optionally gzipped) -> DataFrame chrom, start, end, name.

    ``name`` is the 4th column, or ``chrom:start-end`` when there is none.
    ``track``/``browser``/``#`` lines and blank lines are skipped; a bad record is
    a one-line error naming file:line.
    """
    path = Path(path)
    rows = []
    for lineno, line in bed_lines(path, "BED file"):
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
    df = pd.DataFrame(rows, columns=BED_COLUMNS)
    return df.astype({"chrom": str, "start": np.int64, "end": np.int64, "name": str})


class MeanAccessibility:
    """The mean-accessibility bigWig: one float per window, the mean of its central 200 bp.

    Bases without data count as 0, so the value is never NaN.
    """

    def __init__(self, bigwig_path: str | os.PathLike):
        import pyBigWig

        self.path = Path(bigwig_path)
        check_readable(self.path, "bigWig file")
        # libBigWig prints its own lines to stderr for a file it cannot open; check the magic number
        # first, so the user sees only our one line.
        with open(self.path, "rb") as fh:
            magic = fh.read(4)
        if magic not in (BIGWIG_MAGIC, BIGWIG_MAGIC[::-1]):
            raise ChromDragoNNError(f"{self.path} is not a bigWig file (it does not start with the bigWig magic number)")
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
