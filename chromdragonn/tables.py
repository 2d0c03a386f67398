"""TSV tables: written without ever leaving a half-written file, read with their required columns checked."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from chromdragonn.errors import ChromDragoNNError


def write_tsv(df: pd.DataFrame, path: str | os.PathLike, **to_csv_kwargs) -> None:
    """TSV (no index) written to ``<path>.partial`` and renamed; the partial file is removed on failure."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        df.to_csv(tmp, sep="\t", index=False, **to_csv_kwargs)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_tsv(path: str | os.PathLike, what: str, columns, dtype: dict | None = None) -> pd.DataFrame:
    """A TSV with the required ``columns`` (one-line errors name ``what`` and the file); returns all columns."""
    path = Path(path)
    if not path.is_file():
        raise ChromDragoNNError(f"{what} not found: {path}")
    df = pd.read_csv(path, sep="\t", dtype=dtype)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ChromDragoNNError(f"{what} {path} lacks column(s) {', '.join(missing)}")
    return df
