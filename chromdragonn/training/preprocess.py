"""From the files users have to the training store.

- genome -> 200 bp bins every 50 bp, each with the 1 kb window centred on it; bins
  with an N inside the bin, or touching a blacklist region, are dropped and counted;
- peaks (narrowPeak / BED, one file per context) -> binary labels: a bin is positive
  when more than half of it (> 100 bp) is covered by that context's (merged) peaks;
  peaks of another pipeline (e.g. wide IDR peaks) can be standardised to summit +- F bp
  first (the manifest's optional third column, ``summit_flank``; narrowPeak column 10);
- RNA-seq (genes x contexts, TPM or RPKM) -> arcsinh(TPM) over the ordered gene panel.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.genome import parse_region
from chromdragonn.training.store import BIN_SIZE, STEP, Store, encode, write_store

log = logging.getLogger(__name__)


def merge_intervals(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, non-overlapping union of [start, end) intervals."""
    if len(starts) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(starts, kind="mergesort")
    s, e = np.asarray(starts, np.int64)[order], np.asarray(ends, np.int64)[order]
    run_end = np.maximum.accumulate(e)
    new = np.ones(len(s), bool)
    new[1:] = s[1:] > run_end[:-1]
    idx = np.flatnonzero(new)
    return s[idx], np.maximum.reduceat(e, idx)


def covered_bases(merged_starts: np.ndarray, merged_ends: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Bases of each query [lo, hi) covered by the merged intervals (vectorised)."""
    if len(merged_starts) == 0:
        return np.zeros(len(lo), np.int64)
    cum = np.concatenate([[0], np.cumsum(merged_ends - merged_starts)])

    def cover_before(x):  # covered bases in [0, x)
        k = np.searchsorted(merged_starts, x, side="right")  # intervals starting before x
        full = cum[np.maximum(k - 1, 0)]
        part = np.clip(x - merged_starts[np.maximum(k - 1, 0)], 0,
                       (merged_ends - merged_starts)[np.maximum(k - 1, 0)])
        return np.where(k > 0, full + part, 0)

    return cover_before(np.asarray(hi, np.int64)) - cover_before(np.asarray(lo, np.int64))


def read_summit_peaks(path: str | os.PathLike, flank: int):
    """A narrowPeak file -> DataFrame chrom, start, end of [summit - flank, summit + flank) per peak.

    The summit is narrowPeak column 10 (offset from the peak start); a record without one
    (fewer than 10 columns, or -1) or with a summit outside its peak is a one-line error
    naming file:line.  Starts below 0 are clipped to 0.
    """
    import pandas as pd

    from chromdragonn.inputs.genome import bed_lines

    path = Path(path)
    if isinstance(flank, bool) or not isinstance(flank, (int, np.integer)) or flank < 1:
        raise ChromDragoNNError(f"{path}: summit flank must be a whole number >= 1, got {flank!r}")
    rows = []
    for lineno, line in bed_lines(path, "narrowPeak file"):
        f = line.split("\t")
        if len(f) < 10:
            raise ChromDragoNNError(f"{path}:{lineno}: summit standardisation needs narrowPeak's 10 "
                                    f"columns (column 10: summit offset), got {len(f)}")
        try:
            start, end, summit = int(f[1]), int(f[2]), int(f[9])
        except ValueError:
            raise ChromDragoNNError(f"{path}:{lineno}: start, end and summit (columns 2, 3, 10) must be "
                                    f"integers, got {f[1]!r}, {f[2]!r}, {f[9]!r}") from None
        if summit < 0 or start + summit >= end or start < 0:
            raise ChromDragoNNError(f"{path}:{lineno}: no usable summit (column 10 is {summit} for a peak "
                                    f"{start}-{end}); summit standardisation needs one")
        centre = start + summit
        rows.append((f[0].strip(), max(0, centre - flank), centre + flank))
    return pd.DataFrame(rows, columns=["chrom", "start", "end"]).astype(
        {"chrom": str, "start": np.int64, "end": np.int64})


def read_regions(path: str | os.PathLike, chrom_names: Sequence[str],
                 summit_flank: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A BED / narrowPeak file -> {store chromosome: merged (starts, ends)}; other chromosomes ignored.

    ``summit_flank``: replace each peak by summit +- that many bp (narrowPeak column 10) first.
    """
    from chromdragonn.inputs.genome import match_chrom, read_bed

    df = read_bed(path) if summit_flank is None else read_summit_peaks(path, summit_flank)
    out = {}
    for chrom in chrom_names:
        names = [c for c in df["chrom"].unique() if match_chrom(c, [chrom]) == chrom]
        sub = df[df["chrom"].isin(names)]
        out[chrom] = merge_intervals(sub["start"].to_numpy(), sub["end"].to_numpy())
    return out


def tile_bins(codes: np.ndarray, region: tuple[int, int] | None = None,
              blacklist: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, dict]:
    """Bin starts (multiples of 50) of one chromosome whose bin has no N and no blacklist overlap.

    ``codes``: the chromosome's base codes; ``region``: (start, end) to restrict to
    (the whole 1 kb window must lie inside it).  Returns (starts, counts of what was dropped).
    """
    length = len(codes)
    lo, hi = region if region else (0, length)
    first = -(-max(lo + 400, 400) // STEP) * STEP
    last = min(hi, length) - 600  # window [b-400, b+600) inside
    starts = np.arange(first, last + 1, STEP, dtype=np.int64)
    counts = {"tiled": int(len(starts))}
    is_n = np.concatenate([[0], np.cumsum(codes == 4)])
    has_n = (is_n[starts + BIN_SIZE] - is_n[starts]) > 0
    counts["dropped_with_N"] = int(has_n.sum())
    keep = ~has_n
    if blacklist is not None:
        bl = covered_bases(*blacklist, starts, starts + BIN_SIZE) > 0
        counts["dropped_blacklist"] = int((bl & keep).sum())
        keep &= ~bl
    counts["kept"] = int(keep.sum())
    return starts[keep], counts


def label_bins(merged: tuple[np.ndarray, np.ndarray], starts: np.ndarray) -> np.ndarray:
    """1 where more than half of the 200 bp bin is covered by the context's merged peaks."""
    cov = covered_bases(*merged, starts, starts + BIN_SIZE)
    return (cov * 2 > BIN_SIZE).astype(np.uint8)


def tf_expression_matrix(table: str | os.PathLike, units: str, gene_panel: str | os.PathLike,
                         contexts: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """RNA-seq table -> (contexts, (C, G) float32 arcsinh(TPM) in gene-panel order).

    Uses :class:`chromdragonn.inputs.expression.ExpressionSource`, so panel genes missing
    from the table get the panel's fill value (counted in one warning).  Without
    ``contexts`` every column of the table is a context except Roadmap's E000.
    """
    from chromdragonn.inputs.expression import ExpressionSource, read_expression_table

    source = ExpressionSource(gene_panel=gene_panel, shipped=None, user_table=table, user_units=units)
    if contexts is None:
        contexts = [c for c in read_expression_table(table).columns if c != "E000"]
    return list(contexts), source.matrix(list(contexts))


def genome_codes(fasta: str | os.PathLike, chromosomes: Sequence[str]) -> tuple[list[tuple[str, int]], list[np.ndarray]]:
    """Base codes of each chosen chromosome (names as the FASTA spells them)."""
    from chromdragonn.inputs.genome import Genome

    genome = Genome(fasta)
    out, codes = [], []
    for chrom in chromosomes:
        name = genome.resolve(chrom)
        out.append((name, genome.lengths[name]))
        codes.append(encode(genome.fetch(name, 0, genome.lengths[name])))
    genome.close()
    return out, codes


def build_bins(fasta, chromosomes: Sequence[str], regions: Sequence[str] | None, blacklist) -> tuple:
    """Shared first step: chromosomes' codes and the kept bins (chrom index, start)."""
    chroms, codes = genome_codes(fasta, chromosomes)
    names = [c for c, _ in chroms]
    region_by_chrom: dict[str, tuple[int, int]] = {}
    for r in regions or []:
        chrom, s, e = parse_region(r)
        from chromdragonn.inputs.genome import match_chrom

        name = match_chrom(chrom, names)
        if name is None:
            raise ChromDragoNNError(f"region {r}: chromosome {chrom} is not among {', '.join(names)}")
        region_by_chrom[name] = (s, e)
    bl = read_regions(blacklist, names) if blacklist else {}
    all_bins = []
    for ci, (name, c) in enumerate(zip(names, codes)):
        starts, counts = tile_bins(c, region_by_chrom.get(name), bl.get(name))
        log.info("%s: %s", name, ", ".join(f"{k} {v}" for k, v in counts.items()))
        if counts.get("dropped_with_N") or counts.get("dropped_blacklist"):
            log.warning("%s: %d bins dropped for N in the bin, %d for blacklist overlap", name,
                        counts.get("dropped_with_N", 0), counts.get("dropped_blacklist", 0))
        all_bins.append(np.stack([np.full(len(starts), ci, np.int64), starts], axis=1))
    bins = np.concatenate(all_bins)
    if len(bins) == 0:
        raise ChromDragoNNError("no bins left after dropping N and blacklisted bins")
    return chroms, codes, bins


def build_store_from_peaks(out_dir, fasta, peaks: Mapping[str, str | os.PathLike], expression_table,
                           expression_units: str, gene_panel, chromosomes: Sequence[str],
                           regions: Sequence[str] | None = None, blacklist=None,
                           summit_flank: Mapping[str, int] | None = None) -> Store:
    """Peaks per context + RNA-seq -> a training store (label_kind "peaks").

    ``summit_flank``: {context: F} for the contexts whose peaks are replaced by summit +- F bp
    (narrowPeak column 10) before labelling; the others' peaks are used as they are.
    """
    summit_flank = dict(summit_flank or {})
    unknown = sorted(set(summit_flank) - set(peaks))
    if unknown:
        raise ChromDragoNNError(f"summit flank given for context {unknown[0]}, which has no peak file")
    contexts = list(peaks)
    ctx_names, expression = tf_expression_matrix(expression_table, expression_units, gene_panel, contexts)
    chroms, codes, bins = build_bins(fasta, chromosomes, regions, blacklist)
    names = [c for c, _ in chroms]
    labels = np.zeros((len(bins), len(contexts)), np.uint8)
    for j, ctx in enumerate(contexts):
        merged = read_regions(peaks[ctx], names, summit_flank.get(ctx))
        if ctx in summit_flank:
            log.info("%s: peaks standardised to summit +- %d bp (%s)", ctx, summit_flank[ctx], peaks[ctx])
        for ci, name in enumerate(names):
            rows = bins[:, 0] == ci
            labels[rows, j] = label_bins(merged[name], bins[rows, 1])
        log.info("%s: %.2f%% of bins positive", ctx, 100 * labels[:, j].mean())
    from chromdragonn.inputs.expression import read_gene_panel

    genes = list(read_gene_panel(gene_panel)["gene_symbol"])
    return write_store(out_dir, bins=bins, labels=labels, expression=expression, contexts=ctx_names,
                       genes=genes, chromosomes=chroms, label_kind="peaks", sequence=np.concatenate(codes),
                       source={"fasta": str(fasta), "peaks": {k: str(v) for k, v in peaks.items()},
                               "expression": str(expression_table), "expression_units": expression_units,
                               "regions": list(regions or []), "blacklist": str(blacklist) if blacklist else None,
                               "summit_flank": summit_flank})


def read_peaks_manifest(path: str | os.PathLike, with_flanks: bool = False):
    """A TSV ``context<TAB>peak file[<TAB>summit_flank]`` (relative paths from the manifest's folder;
    ``shared:SUBPATH`` is SUBPATH under the shared data folder, :data:`chromdragonn.paths.SHARED_DATA`,
    which ``CHROMDRAGONN_SHARED`` moves, so a manifest of the shared files works from any clone).

    The optional third column, a whole number F (or empty / ``-``), replaces that context's
    peaks by narrowPeak summit +- F bp before labelling (for peaks from another pipeline, e.g.
    wide IDR peaks beside fixed 150 bp ones: F = 75).  A first line starting with ``context``
    is a header.  Returns {context: path}, and with ``with_flanks`` also {context: F}.
    """
    path = Path(path)
    if not path.is_file():
        raise ChromDragoNNError(f"peaks manifest not found: {path}")
    out: dict[str, Path] = {}
    flanks: dict[str, int] = {}
    with open(path) as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) < 2 or len(fields) > 3:
                raise ChromDragoNNError(f"{path}:{n}: expected 'context<TAB>peak file[<TAB>summit_flank]'")
            if not out and not flanks and fields[0].strip().lower() == "context":
                continue  # header
            ctx, name = fields[0].strip(), fields[1].strip()
            if ctx in out:
                raise ChromDragoNNError(f"{path}:{n}: context {ctx} listed twice")
            if name.startswith("shared:"):
                from chromdragonn.paths import SHARED_DATA

                out[ctx] = SHARED_DATA / name[len("shared:"):]
            else:
                f = Path(name)
                out[ctx] = f if f.is_absolute() else path.parent / f
            flank = fields[2].strip() if len(fields) == 3 else ""
            if flank not in ("", "-"):
                if not flank.isdigit() or int(flank) < 1:
                    raise ChromDragoNNError(f"{path}:{n}: summit_flank must be a whole number >= 1 (bp each side "
                                            f"of the summit), got {flank!r}")
                flanks[ctx] = int(flank)
    if not out:
        raise ChromDragoNNError(f"{path}: no contexts listed")
    return (out, flanks) if with_flanks else out
