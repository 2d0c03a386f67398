"""Saving and loading stage-2 weights, their gene panel, and fold ensembles.

A weights file is a plain ``torch.save`` of a dict holding only tensors, strings,
numbers and lists, so it loads with ``torch.load(..., weights_only=True)``::

    {"format": "chromdragonn-weights/1",
     "config": {"n_genes": G, "with_mean": bool, "dropout": 0.3, "trunk": "resnet"},
     "genes": [G gene symbols, in input order],
     "expression_transform": "arcsinh_tpm",
     "state_dict": {...}}

Tensors may be stored as float16 (half the size); they are cast back to float32
on load.  The ordered gene panel is also shipped beside the weights as a TSV
(``gene_panel.tsv``) so people and other tools can read it.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from chromdragonn.errors import ChromDragoNNError
from chromdragonn.model import ChromDragoNN, ConfigInputs, ModelConfig
from chromdragonn.tables import read_tsv, write_tsv

WEIGHTS_FORMAT = "chromdragonn-weights/1"
EXPRESSION_TRANSFORM = "arcsinh_tpm"
GENE_PANEL_COLUMNS = ["gene_symbol", "ensembl_id", "fill_arcsinh_tpm"]


def md5sum(path: str | os.PathLike) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_weights(model: ChromDragoNN, path: str | os.PathLike, genes: Sequence[str],
                 half: bool = False) -> str:
    """Write a weights file (atomically) and return its md5."""
    path = Path(path)
    if len(genes) != model.n_genes:
        raise ChromDragoNNError(f"{len(genes)} genes given for a model with {model.n_genes} expression inputs")
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in model.state_dict().items()}
    cfg = model.config
    payload = {
        "format": WEIGHTS_FORMAT,
        "config": {"n_genes": cfg.n_genes, "with_mean": cfg.with_mean,
                   "dropout": cfg.dropout, "trunk": cfg.trunk},
        "genes": list(genes),
        "expression_transform": EXPRESSION_TRANSFORM,
        "state_dict": state,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_torch_save(payload, path)
    return md5sum(path)


def read_weights_file(path: str | os.PathLike, md5: str | None = None) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ChromDragoNNError(f"weights file not found: {path}")
    if md5 is not None:
        actual = md5sum(path)
        if actual != md5:
            raise ChromDragoNNError(f"weights file {path} has md5 {actual}, but model.yaml expects {md5}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or not a weights-only file
        raise ChromDragoNNError(f"cannot read weights file {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise ChromDragoNNError(
            f"{path} is not a ChromDragoNN weights file (format {WEIGHTS_FORMAT}); "
            "original checkpoints are converted with `python -m chromdragonn.convert`")
    return payload


def load_model(path: str | os.PathLike, md5: str | None = None, n_genes: int | None = None,
               with_mean: bool | None = None) -> tuple[ChromDragoNN, list[str]]:
    """Load a weights file into an eval-mode float32 model; return (model, genes).

    ``md5``, ``n_genes`` and ``with_mean`` are what model.yaml declares; a file
    that disagrees with them is refused with a one-line error.
    """
    payload = read_weights_file(path, md5)
    cfg = ModelConfig(**payload["config"])
    genes = list(payload["genes"])
    if n_genes is not None and cfg.n_genes != n_genes:
        raise ChromDragoNNError(f"weights file {path} takes {cfg.n_genes} genes, but model.yaml declares {n_genes}")
    if with_mean is not None and cfg.with_mean != bool(with_mean):
        raise ChromDragoNNError(
            f"weights file {path} has with_mean={cfg.with_mean}, but model.yaml declares with_mean={bool(with_mean)}")
    model = ChromDragoNN(cfg)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in payload["state_dict"].items()}
    expected = model.state_dict()
    bad = [k for k in expected if k not in state or tuple(state[k].shape) != tuple(expected[k].shape)]
    extra = [k for k in state if k not in expected]
    if bad or extra:
        k = (bad or extra)[0]
        got = tuple(state[k].shape) if k in state else "missing"
        want = tuple(expected[k].shape) if k in expected else "not in the model"
        raise ChromDragoNNError(f"weights file {path}: tensor {k} has shape {got}, expected {want}")
    model.load_state_dict(state)
    model.eval()
    return model, genes


class Ensemble(ConfigInputs, torch.nn.Module):
    """Mean of the fold models' probabilities; same gene panel and inputs for all."""

    def __init__(self, models: Iterable[ChromDragoNN]):
        super().__init__()
        self.members = torch.nn.ModuleList(models)
        first = self.members[0]
        for m in self.members[1:]:
            if m.n_genes != first.n_genes or m.with_mean != first.with_mean:
                raise ChromDragoNNError("ensemble members must share the gene panel and the mean input")
        self.config = first.config

    @torch.no_grad()
    def predict_grid(self, seq, expression, mean_acc=None) -> torch.Tensor:
        return torch.stack([m.predict_grid(seq, expression, mean_acc) for m in self.members]).mean(0)

    @torch.no_grad()
    def predict_proba(self, seq, expression, mean_acc=None) -> torch.Tensor:
        return torch.stack([m.predict_proba(seq, expression, mean_acc) for m in self.members]).mean(0)


def load_models(paths: Sequence[str | os.PathLike], md5s: Sequence[str | None] | None = None,
                n_genes: int | None = None, with_mean: bool | None = None):
    """One weights file -> that model; several -> their :class:`Ensemble`. Returns (model, genes)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    md5s = list(md5s) if md5s is not None else [None] * len(paths)
    loaded = [load_model(p, m, n_genes, with_mean) for p, m in zip(paths, md5s)]
    genes = loaded[0][1]
    for (_, g), p in zip(loaded[1:], paths[1:]):
        if g != genes:
            raise ChromDragoNNError(f"weights file {p} has a different gene panel from {paths[0]}")
    if len(loaded) == 1:
        return loaded[0]
    return Ensemble([m for m, _ in loaded]).eval(), genes


def write_gene_panel(path: str | os.PathLike, symbols: Sequence[str], ensembl_ids: Sequence[str],
                     fill_values: Sequence[float]) -> None:
    """The ordered panel: model input i is row i; ``fill_arcsinh_tpm`` is used for missing genes."""
    df = pd.DataFrame({"gene_symbol": list(symbols), "ensembl_id": list(ensembl_ids),
                       "fill_arcsinh_tpm": np.round(np.asarray(fill_values, dtype=float), 6)})
    write_tsv(df, path)


def read_gene_panel(path: str | os.PathLike) -> pd.DataFrame:
    df = read_tsv(path, "gene panel file", GENE_PANEL_COLUMNS, dtype={"gene_symbol": str, "ensembl_id": str})
    return df[GENE_PANEL_COLUMNS]
