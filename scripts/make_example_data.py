"""Rebuild example/ and the two shipped expression tables of weights/ from ../shared/data.

    python scripts/make_example_data.py [--data ../shared/data]

Deterministic: the same inputs give byte-identical outputs (gzip and BGZF
headers carry no timestamp; selections are by position, not at random).
Provenance of every input is in example/README.md and weights/README.md.

Writes
  weights/gene_panel.tsv                 Lambert 2018 TFs found in the Roadmap matrix, fill values
  weights/roadmap_expression_tpm.tsv.gz  TPM of the panel TFs in the 56 Roadmap epigenomes (no E000)
  weights/roadmap_context_groups.tsv     group, colour and name of those 56 epigenomes (Roadmap's table)
  example/hg19_chr22_1-22000000.fa.gz    the hg19 chr22 slice, bgzipped (header `22`, coordinates kept)
  example/intervals.bed                  20 intervals named in `chr22` style
  example/user_rnaseq_tpm.tsv            E003 (H1) TPM by gene symbol, as a user context `my_H1_sample`
"""
from __future__ import annotations

import argparse
import gzip
import io
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from chromdragonn import paths
from chromdragonn.inputs.expression import (
    ROADMAP_REFERENCE,
    build_gene_panel,
    normalize_gene_id,
    read_expression_table,
    rpkm_to_tpm,
    write_gene_panel,
)
from chromdragonn.inputs.genome import read_bed
from chromdragonn.outputs.atomic import atomic_output

logger = logging.getLogger("make_example_data")

DEFAULT_DATA = paths.SHARED_DATA
SLICE_START = 16_050_000  # 0-based: real bases of the slice start at 16,050,001 (1-based)
SLICE_END = 22_000_000
BIGWIG_STEP = 50
USER_CONTEXT = "my_H1_sample"
USER_SOURCE_CONTEXT = "E003"


def write_gzip_text(path: Path, text: str) -> None:
    """gzip with mtime 0 and no file name in the header, so the bytes are reproducible."""
    with atomic_output(path) as tmp, open(tmp, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(text.encode())


def make_expression_tables(data: Path) -> pd.DataFrame:
    lambert = data / "tf_lists" / "Lambert2018_DatabaseExtract_v_1.01.csv"
    rpkm_path = data / "expression" / "57epigenomes.RPKM.pc.gz"
    panel = build_gene_panel(lambert, rpkm_path)
    write_gene_panel(paths.GENE_PANEL, panel["gene_symbol"], panel["ensembl_id"], panel["fill_arcsinh_tpm"])
    logger.info("wrote %s: %d TFs", paths.GENE_PANEL, len(panel))

    # TPM over all 19,795 genes (so each context sums to 1e6), then the panel rows only.
    tpm = rpkm_to_tpm(read_expression_table(rpkm_path))
    tpm.index = [normalize_gene_id(g) for g in tpm.index]
    epigenomes = [c for c in tpm.columns if c != ROADMAP_REFERENCE]
    shipped = tpm.loc[panel["ensembl_id"], epigenomes]
    shipped.insert(0, "ensembl_id", panel["ensembl_id"].to_numpy())
    shipped.insert(0, "gene_symbol", panel["gene_symbol"].to_numpy())
    buf = io.StringIO()
    shipped.to_csv(buf, sep="\t", index=False, float_format="%.4f", lineterminator="\n")
    write_gzip_text(paths.SHIPPED_EXPRESSION, buf.getvalue())
    logger.info("wrote %s: %d TFs x %d epigenomes (TPM)", paths.SHIPPED_EXPRESSION, len(shipped), len(epigenomes))
    return tpm


def make_user_table(data: Path, tpm: pd.DataFrame, out: Path) -> None:
    """A real Roadmap context written the way a user's own RNA-seq table often looks:
    gene symbols, TPM, a context name of their own."""
    gencode = pd.read_csv(data / "expression" / "gencode_v10_genes_simplified.tsv", sep="\t", header=None,
                          names=["chrom", "start", "end", "strand", "gene_id", "gene_name"], dtype=str)
    gencode["gene_id"] = gencode["gene_id"].map(normalize_gene_id)
    symbol = dict(zip(gencode["gene_id"], gencode["gene_name"]))
    col = tpm[USER_SOURCE_CONTEXT]
    table = pd.DataFrame({"gene_symbol": [symbol.get(g) for g in col.index], USER_CONTEXT: col.to_numpy()})
    no_symbol = table["gene_symbol"].isna()
    table = table[~no_symbol]
    # A symbol shared by several Ensembl genes cannot be a row key; such genes are left out (count logged).
    shared = table["gene_symbol"].duplicated(keep=False)
    table = table[~shared]
    logger.info("user table: %d genes kept; %d without a GENCODE v10 symbol and %d with a shared symbol left out",
                len(table), int(no_symbol.sum()), int(shared.sum()))
    with atomic_output(out) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.3f", lineterminator="\n")
    logger.info("wrote %s", out)


def make_fasta(data: Path, out: Path) -> None:
    from Bio import bgzf

    src = data / "genome" / "hg19_chr22_1-22000000.fa.gz"
    with atomic_output(out) as tmp, gzip.open(src, "rb") as fin, open(tmp, "wb") as raw:
        writer = bgzf.BgzfWriter(fileobj=raw, compresslevel=6)
        for chunk in iter(lambda: fin.read(1 << 20), b""):
            writer.write(chunk)
        writer.close()
    for index in (Path(str(out) + ".fai"), Path(str(out) + ".gzi")):
        index.unlink(missing_ok=True)  # stale indexes of an older file; pyfaidx rebuilds them
    logger.info("wrote %s (%.1f MB)", out, out.stat().st_size / 1e6)


def _evenly_spaced(df: pd.DataFrame, k: int) -> pd.DataFrame:
    idx = np.round(np.linspace(0, len(df) - 1, k)).astype(int)
    return df.iloc[np.unique(idx)]


def make_intervals(data: Path, out: Path) -> None:
    """12 E003 DNase enhancer regions and 7 Kipoi background regions inside the slice, evenly
    spaced along it, plus one interval whose window straddles the start of the slice's sequence."""
    acc = data / "accessibility"
    e003 = read_bed(acc / "roadmap_E003_H1_DNase_enhancer_regions_hg19_chr22.bed.gz")
    rand = read_bed(acc / "kipoi_random_regions_hg19_chr22.bed.gz")
    inside = lambda d: d[(d["start"] >= SLICE_START + 500) & (d["end"] <= SLICE_END - 500)].sort_values(
        ["start", "end"], kind="stable")
    e003 = _evenly_spaced(inside(e003), 12).assign(name=lambda d: [f"E003_DNase_{i + 1:02d}" for i in range(len(d))])
    rand = _evenly_spaced(inside(rand), 7).assign(name=lambda d: [f"kipoi_random_{i + 1:02d}" for i in range(len(d))])
    edge = pd.DataFrame([{"chrom": "chr22", "start": SLICE_START + 100, "end": SLICE_START + 300,
                          "name": "slice_sequence_start"}])
    bed = pd.concat([edge, e003, rand]).sort_values(["start", "end"], kind="stable")
    with atomic_output(out) as tmp:
        bed[["chrom", "start", "end", "name"]].to_csv(tmp, sep="\t", header=False, index=False, lineterminator="\n")
    logger.info("wrote %s: %d intervals, widths %d-%d bp", out, len(bed),
                int((bed.end - bed.start).min()), int((bed.end - bed.start).max()))


def make_context_groups(data: Path, out: Path) -> None:
    """Group, colour and name of the 56 shipped Roadmap epigenomes (the colours of the atlas plot)."""
    table = pd.read_csv(data / "expression" / "Roadmap_Consolidated_EpigenomeIDs_summary_Table.tsv", sep="\t",
                        skiprows=[1, 2], dtype=str)  # rows 2-3 are sub-headers and counts
    shipped = pd.read_csv(paths.SHIPPED_EXPRESSION, sep="\t", nrows=1)
    eids = [c for c in shipped.columns if c not in ("gene_symbol", "ensembl_id")]
    groups = table.set_index("Epigenome ID (EID)").loc[eids, ["GROUP", "COLOR", "Standardized Epigenome name"]]
    groups = groups.reset_index().set_axis(["context", "group", "color", "name"], axis=1)
    with atomic_output(out) as tmp:
        groups.to_csv(tmp, sep="\t", index=False, lineterminator="\n")
    logger.info("wrote %s: %d contexts in %d groups", out, len(groups), groups["group"].nunique())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    data = args.data
    if not (data / "README.md").is_file():
        print(f"error: {data} does not look like the shared data folder (no README.md)", file=sys.stderr)
        return 2
    ex = paths.EXAMPLE_DIR
    tpm = make_expression_tables(data)
    make_user_table(data, tpm, ex / "user_rnaseq_tpm.tsv")
    make_fasta(data, ex / "hg19_chr22_1-22000000.fa.gz")
    make_intervals(data, ex / "intervals.bed")
    make_context_groups(data, paths.CONTEXT_GROUPS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
