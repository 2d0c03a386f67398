"""From the files users have to the training store.

- genome -> 200 bp bins every 50 bp, each with the 1 kb window centred on it; bins
  with an N inside the bin, or touching a blacklist region, are dropped and counted;
- peaks (narrowPeak / BED, one file per context) -> binary labels: a bin is positive
  when more than half of it (> 100 bp) is covered by that context's (merged) peaks;
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


def read_regions(path: str | os.PathLike, chrom_names: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A BED / narrowPeak file -> {store chromosome: merged (starts, ends)}; other chromosomes ignored."""
    from chromdragonn.inputs.genome import match_chrom, read_bed

    df = read_bed(path)
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
                           regions: Sequence[str] | None = None, blacklist=None) -> Store:
    """Peaks per context + RNA-seq -> a training store (label_kind "peaks")."""
    contexts = list(peaks)
    ctx_names, expression = tf_expression_matrix(expression_table, expression_units, gene_panel, contexts)
    chroms, codes, bins = build_bins(fasta, chromosomes, regions, blacklist)
    names = [c for c, _ in chroms]
    labels = np.zeros((len(bins), len(contexts)), np.uint8)
    for j, ctx in enumerate(contexts):
        merged = read_regions(peaks[ctx], names)
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
                               "regions": list(regions or []), "blacklist": str(blacklist) if blacklist else None})


def read_peaks_manifest(path: str | os.PathLike) -> dict[str, Path]:
    """A two-column TSV ``context<TAB>peak file`` (relative paths from the manifest's folder)."""
    path = Path(path)
    if not path.is_file():
        raise ChromDragoNNError(f"peaks manifest not found: {path}")
    out: dict[str, Path] = {}
    with open(path) as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2:
                raise ChromDragoNNError(f"{path}:{n}: expected 'context<TAB>peak file'")
            ctx, f = fields[0].strip(), Path(fields[1].strip())
            if ctx in out:
                raise ChromDragoNNError(f"{path}:{n}: context {ctx} listed twice")
            out[ctx] = f if f.is_absolute() else path.parent / f
    if not out:
        raise ChromDragoNNError(f"{path}: no contexts listed")
    return out
