"""The training store: a directory of memory-mappable arrays that training streams from.

Layout (every array is a plain ``.npy``, opened with ``mmap_mode="r"``)::

    meta.json        format, label_kind ("simulated labels" or "peaks" or "original release"),
                     bin_size, step, window, chromosomes (name, offset, length), contexts, genes, source
    sequence.npy     uint8 base codes of the chosen chromosomes, concatenated (A0 C1 G2 T3, N4)
                     -- genome mode: each bin's 1 kb window is a slice of it
    windows.npy      uint8 (n_bins, 1000) base codes -- window mode (the original release,
                     which stores each window's sequence rather than a genome)
    bins.npy         int64 (n_bins, 2): chromosome index, 0-based bin start (sorted)
    labels.npy       uint8 (n_bins, n_contexts): 1 accessible, 0 not
    expression.npy   float32 (n_contexts, n_genes): arcsinh(TPM) over the ordered gene panel

A 200 bp bin starting at ``b`` is scored on the 1,000 bp window ``[b - 400, b + 600)``
(kipoiseq ``Interval(chrom, b, b + 200).resize(1000)``); bases past a chromosome
end are N.  The whole store is 1 byte per base plus 1 byte per (bin, context).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.genome import WINDOW

STORE_FORMAT = "chromdragonn-store/1"
BIN_SIZE = 200
STEP = 50
BASE_CODES = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate("ACGT"):
    BASE_CODES[ord(_b)] = _i
    BASE_CODES[ord(_b.lower())] = _i
# code -> one-hot row; code 4 (N or anything else) is all zeros
CODE_TO_ONEHOT = np.vstack([np.eye(4, dtype=np.float32), np.zeros((1, 4), dtype=np.float32)])


def encode(seq: str) -> np.ndarray:
    """DNA string -> uint8 codes (A0 C1 G2 T3, anything else 4)."""
    return BASE_CODES[np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)]


def onehot_from_codes(codes: np.ndarray) -> np.ndarray:
    """(..., L) uint8 codes -> (..., L, 4) float32 one-hot (A, C, G, T; N all zeros)."""
    return CODE_TO_ONEHOT[codes]


def write_store(out_dir: str | os.PathLike, *, bins: np.ndarray, labels: np.ndarray, expression: np.ndarray,
                contexts: Sequence[str], genes: Sequence[str], chromosomes: Sequence[tuple[str, int]],
                label_kind: str, source: dict, sequence: np.ndarray | None = None,
                windows: np.ndarray | None = None) -> "Store":
    """Write a store atomically (``<out>.partial`` then rename) and open it."""
    out_dir = Path(out_dir)
    bins = np.asarray(bins, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.uint8)
    expression = np.asarray(expression, dtype=np.float32)
    if (sequence is None) == (windows is None):
        raise ValueError("give exactly one of sequence (genome mode) or windows (window mode)")
    if labels.shape != (len(bins), len(contexts)):
        raise ChromDragoNNError(f"labels are {labels.shape}, expected ({len(bins)}, {len(contexts)})")
    if expression.shape != (len(contexts), len(genes)):
        raise ChromDragoNNError(f"expression is {expression.shape}, expected ({len(contexts)}, {len(genes)})")
    if not np.isfinite(expression).all():
        raise ChromDragoNNError("expression matrix has NaN or infinite values")
    if len(set(contexts)) != len(contexts):
        raise ChromDragoNNError("context names are not unique")
    order = np.lexsort((bins[:, 1], bins[:, 0]))
    if not np.array_equal(order, np.arange(len(bins))):
        bins, labels = bins[order], labels[order]
        if windows is not None:
            windows = windows[order]
    offsets, off = [], 0
    for name, length in chromosomes:
        offsets.append({"name": name, "offset": off, "length": int(length)})
        off += int(length)
    meta = {"format": STORE_FORMAT, "label_kind": label_kind, "bin_size": BIN_SIZE, "step": STEP,
            "window": WINDOW, "mode": "genome" if sequence is not None else "windows",
            "chromosomes": offsets, "contexts": list(contexts), "genes": list(genes),
            "n_bins": int(len(bins)), "source": source}
    tmp = out_dir.with_name(out_dir.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    np.save(tmp / "bins.npy", bins)
    np.save(tmp / "labels.npy", labels)
    np.save(tmp / "expression.npy", expression)
    if sequence is not None:
        np.save(tmp / "sequence.npy", np.asarray(sequence, dtype=np.uint8))
    else:
        np.save(tmp / "windows.npy", np.asarray(windows, dtype=np.uint8))
    with open(tmp / "meta.json", "w") as fh:
        json.dump(meta, fh, indent=1)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return Store(out_dir)


class Store:
    """Read side of the store; arrays are memory-mapped, nothing is loaded whole."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        meta_path = self.directory / "meta.json"
        if not meta_path.is_file():
            raise ChromDragoNNError(f"{self.directory} is not a training store (no meta.json)")
        with open(meta_path) as fh:
            self.meta = json.load(fh)
        if self.meta.get("format") != STORE_FORMAT:
            raise ChromDragoNNError(f"{meta_path}: format is {self.meta.get('format')!r}, expected {STORE_FORMAT}")
        self.bins = np.load(self.directory / "bins.npy", mmap_mode="r")
        self.labels = np.load(self.directory / "labels.npy", mmap_mode="r")
        self.expression = np.load(self.directory / "expression.npy")
        self.contexts: list[str] = list(self.meta["contexts"])
        self.genes: list[str] = list(self.meta["genes"])
        self.chromosomes = self.meta["chromosomes"]
        self.chrom_names = [c["name"] for c in self.chromosomes]
        if self.meta["mode"] == "genome":
            self.sequence = np.load(self.directory / "sequence.npy", mmap_mode="r")
            self.windows = None
        else:
            self.sequence = None
            self.windows = np.load(self.directory / "windows.npy", mmap_mode="r")
        if self.labels.shape != (len(self.bins), len(self.contexts)):
            raise ChromDragoNNError(f"{self.directory}: labels.npy does not match bins.npy and the contexts")

    def __len__(self) -> int:
        return len(self.bins)

    @property
    def label_kind(self) -> str:
        return self.meta["label_kind"]

    def context_index(self, names: Sequence[str]) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.contexts)}
        missing = [c for c in names if c not in index]
        if missing:
            raise ChromDragoNNError(f"context(s) {', '.join(missing)} are not in the store {self.directory}; "
                                    f"it has {', '.join(self.contexts)}")
        return np.array([index[c] for c in names], dtype=np.int64)

    def window_codes(self, idx: np.ndarray) -> np.ndarray:
        """(n,) bin indices -> (n, 1000) uint8 base codes of their windows."""
        idx = np.asarray(idx, dtype=np.int64)
        if self.windows is not None:
            return np.asarray(self.windows[idx])
        chrom = self.bins[idx, 0]
        start = self.bins[idx, 1] - (WINDOW - BIN_SIZE) // 2
        offsets = np.array([c["offset"] for c in self.chromosomes], dtype=np.int64)[chrom]
        lengths = np.array([c["length"] for c in self.chromosomes], dtype=np.int64)[chrom]
        pos = start[:, None] + np.arange(WINDOW)[None, :]
        inside = (pos >= 0) & (pos < lengths[:, None])
        codes = np.asarray(self.sequence[offsets[:, None] + np.clip(pos, 0, lengths[:, None] - 1)])
        codes[~inside] = 4
        return codes

    def onehot(self, idx: np.ndarray) -> np.ndarray:
        """(n,) bin indices -> (n, 1000, 4) float32 one-hot windows."""
        return onehot_from_codes(self.window_codes(idx))

