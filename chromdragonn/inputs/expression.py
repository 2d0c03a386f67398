"""TF expression: read and check tables, RPKM -> TPM, arcsinh, match to the weights' gene panel.

The model's expression input is arcsinh(TPM) of the gene panel's TFs, in panel
order (``weights/gene_panel.tsv``), as in the paper (which used arcsinh of
quantified RNA-seq).  A panel gene missing from a user's table is filled with
the panel's ``fill_arcsinh_tpm`` (the median arcsinh(TPM) of that gene over the
56 shipped Roadmap epigenomes), and the number filled is said in one warning.
"""
from __future__ import annotations

import csv
import logging
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from chromdragonn import paths
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.files import open_text
from chromdragonn.inputs.tables import read_tsv
from chromdragonn.outputs.tables import write_tsv

logger = logging.getLogger(__name__)

# Header names accepted for an optional second gene-ID column (the first column is always an ID).
ID_COLUMNS = ("gene_symbol", "ensembl_id", "gene_id", "gene_name", "symbol")
UNITS = ("tpm", "rpkm")
ROADMAP_REFERENCE = "E000"
GENE_PANEL_COLUMNS = ["gene_symbol", "ensembl_id", "fill_arcsinh_tpm"]
# An RPKM table is converted to TPM over its own genes (per-context sums), which is only right when it
# holds the whole transcriptome; fewer rows than this are warned about.
MIN_GENES_FOR_RPKM = 10_000  # Roadmap's universal reference RNA, not an epigenome: left out
_ENSEMBL = re.compile(r"^(ENS[A-Z]*G\d+)(\.\d+)?$")


def normalize_gene_id(gene: str) -> str:
    """Ensembl IDs lose their version suffix (ENSG00000137203.10 -> ENSG00000137203);
    symbols are compared in upper case."""
    gene = str(gene).strip()
    m = _ENSEMBL.match(gene.upper())
    return m.group(1) if m else gene.upper()


def _read_cells(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, rows of strings and their line numbers; tab- or comma-separated (from the header).

    Trailing empty fields (a trailing tab, as in the Roadmap RPKM matrix) are
    dropped; any other row whose length differs from the header's is an error.
    """
    with open_text(path, newline="") as fh:
        header_line = fh.readline()
        sep = "\t" if "\t" in header_line else ","
        header = next(csv.reader([header_line], delimiter=sep), [])
        rows, lines = [], []
        for lineno, fields in enumerate(csv.reader(fh, delimiter=sep), start=2):
            if not any(f.strip() for f in fields):
                continue
            while len(fields) > len(header) and not fields[-1].strip():
                fields.pop()
            if len(fields) != len(header):
                raise ChromDragoNNError(
                    f"{path}:{lineno}: {len(fields)} fields, but the header has {len(header)}")
            rows.append(fields)
            lines.append(lineno)
    while header and not header[-1].strip() and not any(r[len(header) - 1].strip() for r in rows):
        header.pop()
        rows = [r[: len(header)] for r in rows]
    return [h.strip() for h in header], rows, lines


def read_expression_table(path: str | os.PathLike) -> pd.DataFrame:
    """A genes x contexts table (TSV or CSV, optionally gzipped) -> float64 DataFrame.

    The first column holds gene IDs (symbols or Ensembl IDs, as given; they become
    the index); an optional second ID column named one of ``ID_COLUMNS`` is kept in
    ``df.attrs["alt_ids"]`` for matching; every other column is a context.  Empty,
    NaN, non-numeric, infinite or negative values and duplicate gene rows are
    one-line errors naming the file, line, gene and context.
    """
    path = Path(path)
    if not path.is_file():
        raise ChromDragoNNError(f"expression table not found: {path}")
    try:
        header, rows, lines = _read_cells(path)
    except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
        raise ChromDragoNNError(f"cannot read expression table {path}: {' '.join(str(exc).split())}") from None
    if not rows:
        raise ChromDragoNNError(f"expression table {path} has no gene rows")
    if len(header) < 2:
        raise ChromDragoNNError(
            f"expression table {path} needs a gene ID column and at least one context column "
            f"(separated by tabs or commas); header is {header}")
    cells = np.array(rows, dtype=object)
    id_col = header[0]
    alt_pos = 1 if len(header) > 2 and header[1].lower() in ID_COLUMNS else None
    ctx_pos = [j for j in range(1, len(header)) if j != alt_pos]
    contexts = [header[j] for j in ctx_pos]
    dup_ctx = sorted({c for c in contexts if contexts.count(c) > 1})
    if dup_ctx:
        raise ChromDragoNNError(f"expression table {path}: context column(s) repeated: {', '.join(dup_ctx)}")
    if any(not c for c in contexts):
        raise ChromDragoNNError(f"expression table {path}: a context column has an empty name")

    genes = pd.Series([str(g).strip() for g in cells[:, 0]])
    empty = np.flatnonzero(genes.eq("").to_numpy())
    if len(empty):
        raise ChromDragoNNError(f"{path}:{lines[empty[0]]}: empty gene ID")
    norm = genes.map(normalize_gene_id)
    dup = norm.duplicated(keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(norm.eq(norm.iloc[i]).to_numpy())[0])
        raise ChromDragoNNError(
            f"{path}:{lines[i]}: duplicate gene row {genes.iloc[i]!r} (same gene as line {lines[first]}); "
            "give each gene once")

    values = np.empty((len(rows), len(contexts)), dtype=np.float64)
    for j, (pos, ctx) in enumerate(zip(ctx_pos, contexts)):
        text = pd.Series([str(v).strip() for v in cells[:, pos]])
        num = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
        blank = text.isin(["", "NA", "NaN", "nan", "N/A", "null", "None"]).to_numpy()
        bad_text = np.isnan(num) & ~blank
        problems = [
            (blank, "is missing (NaN or empty); give 0 for an unexpressed gene"),
            (bad_text, "is not a number"),
            (np.isinf(num), "is infinite"),
            (num < 0, "is negative; expression must be TPM (or RPKM) >= 0"),
        ]
        for mask, what in problems:
            if mask.any():
                i = int(np.flatnonzero(mask)[0])
                raise ChromDragoNNError(
                    f"{path}:{lines[i]}: gene {genes.iloc[i]}, context {ctx}: value {cells[i, pos]!r} {what} "
                    f"({int(mask.sum())} such value(s) in this column)")
        values[:, j] = num
    df = pd.DataFrame(values, index=pd.Index(genes.to_numpy(), name=id_col), columns=contexts)
    if alt_pos is not None:
        df.attrs["alt_ids"] = [str(g).strip() for g in cells[:, alt_pos]]
        df.attrs["alt_id_column"] = header[alt_pos]
    df.attrs["path"] = str(path)
    return df


def rpkm_to_tpm(df: pd.DataFrame) -> pd.DataFrame:
    """TPM = RPKM / (sum of RPKM in that context) * 1e6, per context column.

    Use it on the whole table (all genes), before keeping only the panel, or the
    sums (and so the TPMs) change.
    """
    sums = df.sum(axis=0)
    zero = [c for c in df.columns if not sums[c] > 0]
    if zero:
        raise ChromDragoNNError(f"cannot convert RPKM to TPM: context(s) {', '.join(map(str, zero))} sum to 0")
    out = df / sums * 1e6
    out.attrs = dict(df.attrs)
    return out


def write_gene_panel(path: str | os.PathLike, symbols: Sequence[str], ensembl_ids: Sequence[str],
                     fill_values: Sequence[float]) -> None:
    """The ordered panel: model input i is row i; ``fill_arcsinh_tpm`` is used for missing genes."""
    df = pd.DataFrame({"gene_symbol": list(symbols), "ensembl_id": list(ensembl_ids),
                       "fill_arcsinh_tpm": np.round(np.asarray(fill_values, dtype=float), 6)})
    write_tsv(df, path)


def read_gene_panel(path: str | os.PathLike) -> pd.DataFrame:
    df = read_tsv(path, "gene panel file", GENE_PANEL_COLUMNS, dtype={"gene_symbol": str, "ensembl_id": str})
    return df[GENE_PANEL_COLUMNS]


def build_gene_panel(lambert_csv: str | os.PathLike, rpkm_table_path: str | os.PathLike) -> pd.DataFrame:
    """The ordered TF panel: Lambert 2018 TFs (``Is TF?`` == Yes) found in the Roadmap matrix.

    Kept in Lambert order when the TF's Ensembl ID is a row of the RPKM matrix;
    ``fill_arcsinh_tpm`` is the median over the 56 epigenomes (E000, the universal
    reference, left out) of arcsinh(TPM), TPM computed over all genes of the matrix.
    """
    lambert_csv = Path(lambert_csv)
    if not lambert_csv.is_file():
        raise ChromDragoNNError(f"Lambert TF table not found: {lambert_csv}")
    lam = pd.read_csv(lambert_csv, dtype=str, keep_default_na=False)
    for col in ("Ensembl ID", "HGNC symbol", "Is TF?"):
        if col not in lam.columns:
            raise ChromDragoNNError(f"{lambert_csv} lacks the column {col!r} of the Lambert 2018 database extract")
    tfs = lam[lam["Is TF?"].str.strip() == "Yes"]
    symbols = tfs["HGNC symbol"].str.strip().tolist()  # one entry has a trailing space ("PHF19 ")
    ensembl = [normalize_gene_id(e) for e in tfs["Ensembl ID"]]

    tpm = rpkm_to_tpm(read_expression_table(rpkm_table_path))
    epigenomes = [c for c in tpm.columns if c != ROADMAP_REFERENCE]
    arcsinh = np.arcsinh(tpm[epigenomes])
    arcsinh.index = [normalize_gene_id(g) for g in arcsinh.index]
    keep = [i for i, e in enumerate(ensembl) if e in arcsinh.index]
    dropped = len(ensembl) - len(keep)
    if dropped:
        logger.warning("%d of %d Lambert TFs are not rows of %s (not protein-coding in its annotation) "
                       "and are left out of the panel", dropped, len(ensembl), rpkm_table_path)
    kept_ids = [ensembl[i] for i in keep]
    fill = arcsinh.loc[kept_ids].median(axis=1).to_numpy()
    return pd.DataFrame({"gene_symbol": [symbols[i] for i in keep], "ensembl_id": kept_ids,
                         "fill_arcsinh_tpm": fill})


def parse_contexts(contexts: str | Sequence[str]) -> list[str]:
    """``"E003, E116"`` or ``["E003", "E116"]`` -> ``["E003", "E116"]``.

    A context named twice is an error on every route (command line, Python, Kipoi): one output
    column per requested context, and two columns of one name cannot be told apart."""
    if contexts is None:
        raise ChromDragoNNError("no cell contexts given")
    items = contexts.split(",") if isinstance(contexts, str) else [str(c) for c in contexts]
    names = [c.strip() for c in items if c.strip()]
    if not names:
        raise ChromDragoNNError(f"no cell contexts given (got {contexts!r})")
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise ChromDragoNNError(f"context(s) {', '.join(repeated)} given more than once; name each context once")
    return names


def _match_rows(table: pd.DataFrame, panel: pd.DataFrame) -> np.ndarray:
    """Row of ``table`` holding each panel gene, or -1: Ensembl ID first, then symbol.

    A panel gene found both by its Ensembl ID and by its symbol, on two rows with different
    values, takes the Ensembl row, and the genes concerned are named in one warning."""
    lookup: dict[str, int] = {}
    id_lists = [list(table.index)] + ([table.attrs["alt_ids"]] if "alt_ids" in table.attrs else [])
    for ids in id_lists:
        for row, gene in enumerate(ids):
            lookup.setdefault(normalize_gene_id(gene), row)
    values = table.to_numpy()
    rows = np.full(len(panel), -1, dtype=np.int64)
    conflicts = []
    for i, (sym, ens) in enumerate(zip(panel["gene_symbol"], panel["ensembl_id"])):
        by_id, by_symbol = lookup.get(normalize_gene_id(ens)), lookup.get(normalize_gene_id(sym))
        rows[i] = by_id if by_id is not None else (by_symbol if by_symbol is not None else -1)
        if by_id is not None and by_symbol is not None and by_id != by_symbol \
                and not np.array_equal(values[by_id], values[by_symbol]):
            conflicts.append(f"{sym} ({table.index[by_symbol]} vs {table.index[by_id]})")
    if conflicts:
        logger.warning("expression table %s gives %d gene-panel TF(s) twice, by symbol and by Ensembl ID, with "
                       "different values; the Ensembl ID rows are used: %s", table.attrs.get("path", ""),
                       len(conflicts), ", ".join(conflicts[:5]) + (" ..." if len(conflicts) > 5 else ""))
    return rows


class _Table:
    """One expression table matched to the panel: arcsinh(TPM) per context, fill where missing."""

    def __init__(self, df: pd.DataFrame, panel: pd.DataFrame, label: str):
        rows = _match_rows(df, panel)
        self.label = label
        self.n_missing = int((rows < 0).sum())
        if self.n_missing == len(panel):
            raise ChromDragoNNError(
                f"expression table {label} has none of the {len(panel)} gene-panel TFs (matched by Ensembl ID "
                f"or symbol, e.g. {panel['gene_symbol'].iloc[0]} / {panel['ensembl_id'].iloc[0]}); first gene "
                f"IDs in the table: {', '.join(map(str, df.index[:3]))}")
        fill = panel["fill_arcsinh_tpm"].to_numpy(dtype=np.float64)
        values = np.arcsinh(df.to_numpy(dtype=np.float64))
        found = rows >= 0
        self.matrix = np.repeat(fill[None, :], df.shape[1], axis=0)
        self.matrix[:, found] = values[rows[found]].T
        self.contexts = list(df.columns)
        self.index = {c: i for i, c in enumerate(self.contexts)}


class ExpressionSource:
    """Where each context's TF expression comes from: the shipped Roadmap table and/or a user table.

    ``.matrix(contexts)`` -> float32 (C, G) arcsinh(TPM) in gene-panel order.  A
    user context overrides a shipped one of the same name.
    """

    def __init__(self, gene_panel: str | os.PathLike = paths.GENE_PANEL,
                 shipped: str | os.PathLike | None = paths.SHIPPED_EXPRESSION,
                 user_table: str | os.PathLike | None = None, user_units: str = "tpm"):
        units = str(user_units).lower()
        if units not in UNITS:
            raise ChromDragoNNError(f"expression units must be one of {', '.join(UNITS)}, got {user_units!r}")
        self.panel = read_gene_panel(gene_panel)
        self.genes = self.panel["gene_symbol"].tolist()
        self._shipped = None
        self._user = None
        if shipped is not None:
            self._shipped = _Table(read_expression_table(shipped), self.panel, str(shipped))
        if user_table is not None:
            df = read_expression_table(user_table)
            if units == "rpkm":
                if len(df) < MIN_GENES_FOR_RPKM:
                    logger.warning(
                        "expression table %s has only %d genes: RPKM is converted to TPM over the genes of the "
                        "table, which is right only for a whole transcriptome (about 20,000 genes or more); "
                        "with a TF-only table the TPMs come out far too high. Give TPM computed over all genes, "
                        "or the whole RPKM table", user_table, len(df))
                df = rpkm_to_tpm(df)
            self._user = _Table(df, self.panel, str(user_table))
            if self._shipped is not None:
                overridden = [c for c in self._user.contexts if c in self._shipped.index]
                if overridden:
                    logger.info("context(s) %s from %s replace the shipped ones of the same name",
                                ", ".join(overridden), user_table)
        if self._shipped is None and self._user is None:
            raise ChromDragoNNError("no expression table: give an expression table (genes x contexts, TPM)")

    @property
    def contexts(self) -> list[str]:
        user = self._user.contexts if self._user else []
        shipped = [c for c in (self._shipped.contexts if self._shipped else []) if c not in user]
        return shipped + user

    def _source(self, context: str) -> _Table:
        if self._user is not None and context in self._user.index:
            return self._user
        if self._shipped is not None and context in self._shipped.index:
            return self._shipped
        raise ChromDragoNNError(
            f"unknown cell context {context!r}; known contexts: {', '.join(self.contexts)} "
            "(give your own RNA-seq table for others)")

    def matrix(self, contexts: str | Sequence[str]) -> np.ndarray:
        """(C, G) float32 arcsinh(TPM) of ``contexts``: a comma-separated string, or a list already
        parsed by :func:`parse_contexts` (as the session passes it)."""
        if isinstance(contexts, str):
            contexts = parse_contexts(contexts)
        sources = [self._source(c) for c in contexts]
        for table in {id(s): s for s in sources}.values():
            if table.n_missing:
                logger.warning("%d of %d gene-panel TFs are not in expression table %s; they are filled with "
                               "the panel's fill_arcsinh_tpm (median over the 56 Roadmap epigenomes)",
                               table.n_missing, len(self.panel), table.label)
        out = np.stack([src.matrix[src.index[c]] for src, c in zip(sources, contexts)])
        return out.astype(np.float32)
