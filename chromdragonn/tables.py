"""Writing tables without ever leaving a half-written file."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


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
