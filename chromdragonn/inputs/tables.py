"""TSV tables read with their required columns checked."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from chromdragonn.errors import ChromDragoNNError


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
