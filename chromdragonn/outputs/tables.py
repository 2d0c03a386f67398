"""TSV tables, written through the atomic writer."""
from __future__ import annotations

import os

import pandas as pd

from chromdragonn.outputs.atomic import atomic_output

FLOAT_FORMAT = "%.6g"  # probabilities and scores: 6 significant digits


def write_tsv(df: pd.DataFrame, path: str | os.PathLike, **to_csv_kwargs) -> None:
    """TSV (no index), never half-written (:mod:`chromdragonn.outputs.atomic`)."""
    with atomic_output(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, **to_csv_kwargs)


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """A result table (probabilities, scores) as TSV with :data:`FLOAT_FORMAT`."""
    write_tsv(df, path, float_format=FLOAT_FORMAT)
