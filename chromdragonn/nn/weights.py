"""Saving and loading stage-2 weights, and fold ensembles.

A weights file is a plain ``torch.save`` of a dict holding only tensors, strings,
numbers and lists, so it loads with ``torch.load(..., weights_only=True)``::

    {"format": "chromdragonn-weights/2",
     "config": {"n_genes": G, "with_mean": bool, "dropout": 0.3, "trunk": "resnet"},
     "genes": [G gene symbols, in input order],
     "expression_transform": "arcsinh_tpm",
     "tensor_sha256": "<hex>",
     "state_dict": {...}}

``tensor_sha256`` is a checksum of the state dict's own tensors (names, dtypes, shapes and bytes,
as stored), checked on every load, whatever route loads the file (a path, model.yaml, Kipoi), so a
damaged file is refused rather than silently giving other predictions.  Files of format 1 (no
checksum) still load, with a warning.

Tensors may be stored as float16 (half the size); they are cast back to float32
on load.  The ordered gene panel is also shipped beside the weights as a TSV
(``gene_panel.tsv``, :func:`chromdragonn.inputs.expression.read_gene_panel`).
"""
from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
from pathlib import Path
from typing import Iterable, Sequence

import torch

from chromdragonn.errors import ChromDragoNNError
from chromdragonn.nn.model import ChromDragoNN, ConfigInputs, ModelConfig
from chromdragonn.outputs.atomic import atomic_output

log = logging.getLogger(__name__)

WEIGHTS_FORMAT = "chromdragonn-weights/2"
LEGACY_FORMATS = ("chromdragonn-weights/1",)  # no tensor checksum
EXPRESSION_TRANSFORM = "arcsinh_tpm"


def md5sum(path: str | os.PathLike) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tensor_checksum(state: dict) -> str:
    """sha256 over the state dict's tensors as stored: name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


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
        "tensor_sha256": tensor_checksum(state),
        "state_dict": state,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
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
    except pickle.UnpicklingError as exc:
        # torch's message goes on to advise turning weights_only off, which would run code from the
        # file; ours names what was refused, or says the file is not readable, and stops there.
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found:
            raise ChromDragoNNError(
                f"refused to read weights file {path}: it holds Python objects other than tensors and plain "
                f"values ({found.group(1)}); only ChromDragoNN weights files are read") from None
        raise ChromDragoNNError(f"cannot read weights file {path}: not a weights file (damaged, or another format)") from None
    except Exception as exc:  # corrupt, truncated, or not a torch file at all
        first = " ".join(str(exc).split("\n")[0].split()).split(". ")[0][:160]
        raise ChromDragoNNError(f"cannot read weights file {path}: {type(exc).__name__}: {first}") from None
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt not in (WEIGHTS_FORMAT, *LEGACY_FORMATS):
        raise ChromDragoNNError(
            f"{path} is not a ChromDragoNN weights file (format {WEIGHTS_FORMAT}); "
            "original checkpoints are converted with `python -m chromdragonn.convert`")
    if fmt == WEIGHTS_FORMAT:
        state = payload.get("state_dict")
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ChromDragoNNError(f"weights file {path} has no state dict of tensors")
        if "tensor_sha256" not in payload:
            raise ChromDragoNNError(f"weights file {path} (format {fmt}) lacks the checksum of its tensors "
                                    "(tensor_sha256); re-save it with chromdragonn.save_weights")
        if tensor_checksum(state) != payload["tensor_sha256"]:
            raise ChromDragoNNError(
                f"weights file {path} is damaged: its tensors do not match the checksum stored with them")
    else:
        log.warning("weights file %s (format %s) carries no tensor checksum, so damage cannot be detected; "
                    "re-save it with chromdragonn.save_weights", path, fmt)
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
