"""The set-up every command shares: which model, on which device, in which contexts, with which mean track.

Every entry point resolves its inputs here, and only here: the ``chromdragonn`` commands, their
Python functions, and the root Kipoi files (model.py, dataloader.py).

``model`` (the one option, ``--model`` on the command line) is one of:
- ``None`` or ``"ensemble"``: the default model that the root model.yaml declares (the five folds),
  checked against the md5s, gene count and mean input declared there;
- the name of a shipped model in ``NAMED_MODELS`` (e.g. ``"encode_dnase_chr22"``): the Kipoi model
  folder it names, with its own mean-accessibility track as the default ``mean_bigwig``;
- a fold number, ``3``, ``"3"`` or ``"fold3"``: that member of the default model;
- a Kipoi model folder (one holding model.yaml): the model it declares;
- a weights file path, or several (a list, or comma-separated): that model or their ensemble;
- an already loaded ``(model, genes)`` pair.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import yaml

from chromdragonn import paths
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.expression import ExpressionSource, parse_contexts, read_gene_panel
from chromdragonn.inputs.genome import MeanAccessibility

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAMES = ("", "ensemble", "default")


@dataclass(frozen=True)
class NamedModel:
    """A shipped model that ``--model NAME`` chooses: a Kipoi model folder and its default mean track."""

    name: str
    folder: Path | None       # holds model.yaml, model.py, dataloader.py, weights/; None: the repository
                              # root's model.yaml (paths.MODEL_YAML, looked up when used)
    mean_bigwig: Path | None  # the default mean-accessibility track of this model; None: paths.MEAN_BIGWIG
    summary: str

    @property
    def model_yaml(self) -> Path:
        return paths.MODEL_YAML if self.folder is None else self.folder / "model.yaml"

    @property
    def default_mean(self) -> Path:
        return paths.MEAN_BIGWIG if self.mean_bigwig is None else self.mean_bigwig


# The one registry of named models: every command (predict, score-variants, ism, track, attribute,
# tf-drivers, atlas), the Python API and the Kipoi folders resolve names here.
NAMED_MODELS: dict[str, NamedModel] = {m.name: m for m in (
    NamedModel("ensemble", None, None,
               "the default: 5-fold ensemble trained on simulated labels (root model.yaml)"),
    NamedModel("encode_dnase_chr22", paths.WEIGHTS_DIR / "encode_dnase_chr22",
               paths.WEIGHTS_DIR / "encode_dnase_chr22" / "weights" / "mean_accessibility_chr22.bw",
               "real ENCODE DNase-seq peaks of 4 contexts on 5.95 Mb of hg19 chr22 (weights/README.md)"),
)}


def named_model(model) -> NamedModel | None:
    """The registry entry ``model`` names (None, "", "default" and "ensemble" name the default), else None."""
    if model is None:
        return NAMED_MODELS["ensemble"]
    if isinstance(model, str):
        key = model.strip().lower()
        if key in DEFAULT_MODEL_NAMES:
            return NAMED_MODELS["ensemble"]
        if key in NAMED_MODELS and not Path(model).exists():
            return NAMED_MODELS[key]
    return None


def default_mean_bigwig(model) -> Path:
    """The mean track used when none is given: the named model's, a model folder's own
    (``weights/mean_accessibility_chr22.bw`` inside it, as its dataloader.py finds it), else the shipped one."""
    named = named_model(model)
    if named is not None:
        return named.default_mean
    if isinstance(model, (str, os.PathLike)) and Path(model).is_dir():
        own = Path(model) / "weights" / paths.MEAN_BIGWIG.name
        if own.is_file():
            return own
    return paths.MEAN_BIGWIG


@dataclass(frozen=True)
class DeclaredModel:
    """What a model.yaml declares: weights files (absolute), their md5s, gene count, mean input, gene panel."""

    files: list[Path]
    md5s: list[str | None]
    n_genes: int | None
    with_mean: bool | None
    gene_panel: Path | None

    @classmethod
    def read(cls, model_yaml: str | os.PathLike | None = None) -> "DeclaredModel":
        """The declaration of ``model_yaml`` (default: the repository's root model.yaml)."""
        model_yaml = Path(model_yaml if model_yaml is not None else paths.MODEL_YAML)
        try:
            with open(model_yaml) as fh:
                args = yaml.safe_load(fh)["args"]
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            raise ChromDragoNNError(f"cannot read the model declaration {model_yaml}: {exc}") from None
        return cls.from_args(model_yaml.parent, args["weights"], args.get("md5s"), args.get("n_genes"),
                             args.get("with_mean"), args.get("gene_panel"))

    @classmethod
    def from_args(cls, folder: str | os.PathLike, weights, md5s=None, n_genes=None, with_mean=None,
                  gene_panel=None) -> "DeclaredModel":
        """model.yaml's ``args`` (paths relative to the model folder ``folder``)."""
        folder = Path(folder)
        files = [weights] if isinstance(weights, (str, os.PathLike)) else list(weights)
        md5s = [md5s] if isinstance(md5s, str) else list(md5s or [None] * len(files))
        if len(md5s) != len(files):
            raise ChromDragoNNError(f"{len(files)} weights files but {len(md5s)} md5s declared in {folder}")
        return cls([folder / f for f in files], md5s, n_genes, with_mean,
                   folder / gene_panel if gene_panel else None)

    def load(self, members: Sequence[int] | None = None):
        """(model, genes): all files (an ensemble when several) or the ``members`` chosen by index."""
        from chromdragonn.nn.weights import load_models

        idx = list(range(len(self.files))) if members is None else list(members)
        missing = [str(self.files[i]) for i in idx if not self.files[i].is_file()]
        if missing:
            raise ChromDragoNNError(
                f"weights file not found: {', '.join(missing)} (declared in model.yaml); train them "
                "(training/README.md) or pass --model WEIGHTS.pt")
        model, genes = load_models([self.files[i] for i in idx], [self.md5s[i] for i in idx],
                                   n_genes=self.n_genes, with_mean=self.with_mean)
        if self.gene_panel is not None:
            panel = read_gene_panel(self.gene_panel)["gene_symbol"].tolist()
            if panel != list(genes):
                pos = next((i for i, (a, b) in enumerate(zip(panel, genes)) if a != b), min(len(panel), len(genes)))
                raise ChromDragoNNError(
                    f"gene panel {self.gene_panel} ({len(panel)} genes) differs from the weights' panel "
                    f"({len(genes)} genes) first at position {pos}")
        return model, genes


def resolve_model(model=None):
    """``model`` as described in this module's docstring -> (model in eval mode, genes)."""
    if isinstance(model, (tuple, list)) and len(model) == 2 and hasattr(model[0], "predict_grid"):
        net, genes = model
        return net.eval(), list(genes)
    if isinstance(model, bool):
        raise ChromDragoNNError(f"model {model!r}: give a fold number, 'ensemble' or a weights file")
    named = named_model(model)
    if named is not None:
        return DeclaredModel.read(named.model_yaml).load()
    if isinstance(model, (int, np.integer)):
        return _default_fold(int(model))
    if isinstance(model, str):
        m = re.fullmatch(r"(?:fold)?(\d+)", model.strip().lower())
        if m and not Path(model).exists():
            return _default_fold(int(m.group(1)))
        model = [p.strip() for p in re.split(r"[,\s]+", model) if p.strip()]
        folds = [p for p in model if re.fullmatch(r"(?:fold)?\d+", p.lower()) and not Path(p).exists()]
        if folds:
            raise ChromDragoNNError(
                f"--model {' '.join(model)}: a fold number ({folds[0]}) stands alone; to average several folds "
                "give their weights files (weights/foldN.with_mean.pt ...), or 'ensemble' for all of them")
        unknown = [p for p in model if not Path(p).exists() and not re.search(r"[/\\]|\.pt$", p)]
        if unknown:
            raise ChromDragoNNError(
                f"unknown model {unknown[0]!r}: give a model name ({', '.join(NAMED_MODELS)}), a fold number, "
                "a Kipoi model folder or a weights file")
    items = [model] if isinstance(model, os.PathLike) else list(model)
    if len(items) == 1 and Path(items[0]).is_dir():
        folder = Path(items[0])
        if not (folder / "model.yaml").is_file():
            raise ChromDragoNNError(f"model folder {folder} has no model.yaml")
        return DeclaredModel.read(folder / "model.yaml").load()
    from chromdragonn.nn.weights import load_models

    return load_models([Path(w) for w in items])


def _default_fold(i: int):
    declared = DeclaredModel.read()
    if not 0 <= i < len(declared.files):
        raise ChromDragoNNError(
            f"model fold {i}: model.yaml lists {len(declared.files)} folds (0-{len(declared.files) - 1})")
    return declared.load(members=[i])


def model_label(model) -> str:
    """How the model option is named in messages."""
    if model is None or (isinstance(model, str) and model.strip().lower() in DEFAULT_MODEL_NAMES):
        return "model.yaml's default model"
    named = named_model(model)
    if named is not None:
        return f"the model {named.name}"
    if isinstance(model, (tuple, list)) and len(model) == 2 and hasattr(model[0], "predict_grid"):
        return "the given model"
    if isinstance(model, (list, tuple)):
        return ", ".join(map(str, model))
    return str(model)


def resolve_device(name: str | torch.device = "cpu") -> torch.device:
    """cpu, cuda or cuda:N (the devices this package is tested on)."""
    name = str(name)
    if not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise ChromDragoNNError(f"unknown device {name!r}; use cpu, cuda or cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ChromDragoNNError(f"device {name!r} asked for, but torch sees no CUDA device")
    return torch.device(name)


def positive_int(value, name: str) -> int:
    """``value`` as an int >= 1, or a one-line error naming the option."""
    try:
        number = int(value)
        ok = not isinstance(value, bool) and number == float(value) and number >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ChromDragoNNError(f"{name} must be a whole number >= 1, got {value!r}")
    return number


def expression_source(expression=None, expression_units: str = "tpm", gene_panel=None, shipped=None
                      ) -> ExpressionSource:
    """The shipped Roadmap table, plus the user's RNA-seq table when given."""
    return ExpressionSource(gene_panel=gene_panel or paths.GENE_PANEL,
                            shipped=shipped if shipped is not None else paths.SHIPPED_EXPRESSION,
                            user_table=expression, user_units=expression_units)


def context_expression(contexts: Sequence[str], genes: Sequence[str], expression=None,
                       expression_units: str = "tpm", gene_panel=None, shipped=None,
                       label: str | None = None) -> np.ndarray:
    """(C, G) float32 arcsinh(TPM) of the contexts, in the weights' gene order.

    ``label`` names the weights in the error raised when their genes are not the panel's."""
    source = expression_source(expression, expression_units, gene_panel, shipped)
    if list(source.genes) != list(genes):
        named = f" ({label})" if label else ""
        raise ChromDragoNNError(
            f"the weights{named} take {len(genes)} genes, which are not the {len(source.genes)} of the gene "
            f"panel {gene_panel or paths.GENE_PANEL} the expression is matched to")
    return source.matrix(list(contexts))


def open_mean_track(model, mean_bigwig=None, default=None) -> MeanAccessibility | None:
    """The mean-accessibility track when the model takes it, else None.

    ``default``: the track used when ``mean_bigwig`` is None (:func:`default_mean_bigwig` of the chosen
    model; the shipped one when None)."""
    if not model.with_mean:
        if mean_bigwig is not None:
            log.info("this model takes no mean-accessibility input: --mean-bigwig %s is not used", mean_bigwig)
        return None
    bw = Path(mean_bigwig) if mean_bigwig is not None else Path(default or paths.MEAN_BIGWIG)
    if not bw.is_file():
        raise ChromDragoNNError(f"this model needs the mean-accessibility bigWig (--mean-bigwig); not found: {bw}")
    return MeanAccessibility(bw)


@dataclass
class Session:
    """A resolved model in chosen contexts: everything a command needs besides its own inputs."""

    model: torch.nn.Module
    genes: list[str]
    contexts: list[str]
    expression: np.ndarray  # (C, G) arcsinh(TPM), float32
    mean_track: MeanAccessibility | None
    device: torch.device

    @classmethod
    def open(cls, contexts, model=None, expression=None, expression_units: str = "tpm", mean_bigwig=None,
             device: str | torch.device = "cpu") -> "Session":
        names = parse_contexts(contexts)
        dev = resolve_device(device)
        net, genes = resolve_model(model)
        net.to(dev).eval()
        matrix = context_expression(names, genes, expression, expression_units, label=model_label(model))
        return cls(net, list(genes), names, matrix,
                   open_mean_track(net, mean_bigwig, default_mean_bigwig(model)), dev)

    def expression_tensor(self) -> torch.Tensor:
        return torch.from_numpy(self.expression).to(self.device)

    def check_chromosomes(self, chroms) -> None:
        """Fail before any work if the mean track lacks a chromosome."""
        if self.mean_track is not None:
            for chrom in chroms:
                self.mean_track.resolve(chrom)

    def mean_values(self, windows) -> torch.Tensor | None:
        """(N,) mean accessibility of kipoiseq windows (their central 200 bp), or None without the mean input."""
        if self.mean_track is None:
            return None
        return torch.tensor([self.mean_track.value(w.chrom, w.start, w.end) for w in windows],
                            dtype=torch.float32, device=self.device)
