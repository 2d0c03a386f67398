"""Held-out contexts (five folds) and held-out loci.

Contexts: shuffled with a seed and cut into ``n_folds`` test groups; each fold's
validation contexts are drawn (seeded) from the rest and the remaining contexts
are its training contexts.  A folds file may also list a context as both ``train`` and ``valid``
in one fold: with too few contexts to hold any out (training/configs/encode_dnase_chr22_folds.tsv,
four contexts), selection then uses the training contexts on the validation loci only.  Loci: bins whose whole 1 kb window lies inside the
validation or held-out region are validation / held-out loci; bins whose window
straddles a boundary are left out of everything ("gap"), so no training window
shares a base with a held-out one.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import pandas as pd

from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.genome import WINDOW, match_chrom, parse_region
from chromdragonn.inputs.tables import read_tsv
from chromdragonn.outputs.tables import write_tsv
from chromdragonn.training.store import BIN_SIZE, Store

ROLES = ("train", "valid", "test")


def make_folds(contexts: Sequence[str], n_folds: int = 5, n_valid: int = 4, seed: int = 0) -> pd.DataFrame:
    """DataFrame (fold, context, role), role in train / valid / test; every context is test once."""
    contexts = list(contexts)
    if isinstance(n_folds, bool) or int(n_folds) != n_folds or n_folds < 2:
        raise ChromDragoNNError(f"the number of folds must be a whole number >= 2, got {n_folds!r}")
    if isinstance(n_valid, bool) or int(n_valid) != n_valid or n_valid < 1:
        raise ChromDragoNNError(f"the number of validation contexts must be a whole number >= 1, got {n_valid!r}")
    if len(contexts) < n_folds + n_valid + 1:
        raise ChromDragoNNError(f"{len(contexts)} contexts are too few for {n_folds} folds with {n_valid} validation contexts")
    rng = np.random.default_rng(seed)
    order = [contexts[i] for i in rng.permutation(len(contexts))]
    groups = np.array_split(np.arange(len(order)), n_folds)
    rows = []
    for fold, g in enumerate(groups):
        test = {order[i] for i in g}
        rest = [c for c in order if c not in test]
        valid = {rest[i] for i in rng.choice(len(rest), n_valid, replace=False)}
        for c in contexts:  # keep the store's context order inside each fold
            role = "test" if c in test else "valid" if c in valid else "train"
            rows.append((fold, c, role))
    return pd.DataFrame(rows, columns=["fold", "context", "role"])


def write_folds(df: pd.DataFrame, path: str | os.PathLike) -> None:
    write_tsv(df, path)


def read_folds(path: str | os.PathLike) -> pd.DataFrame:
    df = read_tsv(path, "folds file", ["fold", "context", "role"], dtype={"context": str, "role": str})
    bad = sorted(set(df["role"]) - set(ROLES))
    if bad:
        raise ChromDragoNNError(f"{path}: unknown role(s) {', '.join(bad)}; expected train, valid, test")
    return df


def fold_contexts(df: pd.DataFrame, fold: int) -> dict[str, list[str]]:
    sub = df[df["fold"] == fold]
    if sub.empty:
        raise ChromDragoNNError(f"fold {fold} is not in the folds table (folds: {sorted(df['fold'].unique())})")
    return {role: sub.loc[sub["role"] == role, "context"].tolist() for role in ROLES}


def loci_roles(store: Store, valid_regions: Sequence[str] = (), heldout_regions: Sequence[str] = ()) -> np.ndarray:
    """Per bin: 'train', 'valid', 'heldout' or 'gap' (window straddles a region boundary)."""
    roles = np.full(len(store), "train", dtype=object)
    chrom = np.asarray(store.bins[:, 0])
    start = np.asarray(store.bins[:, 1])
    w_lo = start - (WINDOW - BIN_SIZE) // 2
    w_hi = w_lo + WINDOW
    for role, regions in (("valid", valid_regions), ("heldout", heldout_regions)):
        for text in regions:
            c, s, e = parse_region(text)
            name = match_chrom(c, store.chrom_names)
            if name is None:
                raise ChromDragoNNError(f"region {text}: chromosome {c} is not in the store ({', '.join(store.chrom_names)})")
            on = chrom == store.chrom_names.index(name)
            inside = on & (w_lo >= s) & (w_hi <= e)
            touches = on & (w_hi > s) & (w_lo < e)
            roles[touches & ~inside] = "gap"
            roles[inside] = role
    return roles
