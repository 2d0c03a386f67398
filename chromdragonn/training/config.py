"""The training configuration: a typed tree of dataclasses read from YAML (``training/configs/*.yaml``).

Every key has one place, one type and one default here; an unknown key, a missing required key
or a value of the wrong type is a one-line error naming the file and the key.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from chromdragonn.errors import ChromDragoNNError


@dataclass
class Loci:
    """Regions (CHROM:START-END, 1-based inclusive) of validation and held-out loci."""
    valid: list[str] = field(default_factory=list)    # checkpoint selection
    heldout: list[str] = field(default_factory=list)  # never trained on, never used for selection


@dataclass
class Stage1:
    """Multi-task sequence-only ResNet (paper: Adam lr 2e-3, batch 256, BCE with logits)."""
    steps: int = 0                     # must be >= 1 to train stage 1
    batch_size: int = 256
    lr: float = 2e-3
    eval_every: int = 50
    eval_bins: int | None = None
    train_bins: int | None = None      # positives-enriched subsample of the training loci
    positive_share: float = 0.5
    checkpoint_every: int = 10
    select: str = "best"               # the trunk handed to stage 2: "best" (paper: best validation AUPRC) or
                                       # "last" (the final step's; on benchmark v2 the pooled stage-1 AUPRC peaks
                                       # on composition while motifs are still being learnt, REPORT.md)


@dataclass
class HeadWarmup:
    """The stage-2 head trained alone on cached features of the frozen stage-1 trunk."""
    steps: int = 0
    intervals: int = 128
    contexts_per_interval: int = 4
    lr: float = 1e-3
    weight_decay: float = 0.0
    train_bins: int | None = None
    positive_share: float = 0.5
    select_every: int = 0                     # > 0: every N steps score the head on stage 2's validation bins x
                                              # validation contexts and keep the best state (0: the last state)


@dataclass
class Stage2:
    """The multi-modal model (paper: Adam lr 1e-4, 512 pairs per batch, NLL, 1 positive : 3 negatives)."""
    steps: int = 0                            # 0: the warmed-up head only
    intervals: int = 16
    contexts_per_interval: int = 32
    lr: float = 1e-4
    tune_trunk: bool = True
    upsample_positives: bool = True
    eval_every: int = 50
    eval_bins: int | None = None
    train_bins: int | None = None
    positive_share: float = 0.5
    checkpoint_every: int = 10
    mean_init_scale: float | None = None      # fc1's mean column ~ U(-S, S) (train.init_mean_column)
    init_head_from_stage1: bool = False
    standardise_expression: bool = False      # train fc1 on expression z-scored over the training contexts, folded
                                              # back into raw-expression weights at the end (training/standardise.py)
    head_warmup: HeadWarmup = field(default_factory=HeadWarmup)


@dataclass
class Evaluate:
    bins_training_loci: int | None = None  # seeded uniform sample, the same bins in every fold
    bins_heldout_loci: int | None = None


@dataclass
class TrainingConfig:
    store: str
    folds_file: str
    run_dir: str
    stage1: Stage1 = field(default_factory=Stage1)
    stage2: Stage2 = field(default_factory=Stage2)
    seed: int = 0
    n_folds: int = 5
    loci: Loci = field(default_factory=Loci)
    trunk: str = "resnet"
    device: str = "cpu"
    amp: bool = True        # bfloat16 autocast on GPU
    amp_cpu: bool = False   # bfloat16 autocast on CPU
    compile: bool = False   # torch.compile the training step's forward (stage 1, stage 2); evaluation stays eager
    threads: int | None = None
    dropout: float = 0.3
    eval_batch_size: int = 64
    evaluate: Evaluate = field(default_factory=Evaluate)
    report_commands: list[str] = field(default_factory=list)
    model_description: str = ""

    def replace(self, **changes) -> "TrainingConfig":
        """A copy with top-level fields changed (None values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _convert(cls, value, where: str, source: str):
    """``value`` (from YAML) as an instance of type ``cls``, checked."""
    origin = typing.get_origin(cls)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(cls)
        if value is None and type(None) in options:
            return None
        inner = [o for o in options if o is not type(None)]
        return _convert(inner[0], value, where, source)
    if dataclasses.is_dataclass(cls):
        if not isinstance(value, dict):
            raise ChromDragoNNError(f"{source}: {where} must be a mapping, got {value!r}")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ChromDragoNNError(f"{source}: unknown key {where + '.' if where else ''}{unknown[0]} "
                                    f"(known: {', '.join(sorted(names))})")
        kwargs = {}
        for f in dataclasses.fields(cls):
            key = f"{where}.{f.name}" if where else f.name
            if f.name in value:
                kwargs[f.name] = _convert(hints[f.name], value[f.name], key, source)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ChromDragoNNError(f"{source}: missing key {key!r}")
        return cls(**kwargs)
    if origin is list:
        if not isinstance(value, list):
            raise ChromDragoNNError(f"{source}: {where} must be a list, got {value!r}")
        (item,) = typing.get_args(cls)
        return [_convert(item, v, f"{where}[{i}]", source) for i, v in enumerate(value)]
    if cls is bool:
        if not isinstance(value, bool):
            raise ChromDragoNNError(f"{source}: {where} must be true or false, got {value!r}")
        return value
    if cls is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ChromDragoNNError(f"{source}: {where} must be a whole number, got {value!r}")
        return int(value)
    if cls is float:
        try:
            return float(value)  # YAML reads 2.0e-3 as a float but 2e-3 as a string
        except (TypeError, ValueError):
            raise ChromDragoNNError(f"{source}: {where} must be a number, got {value!r}") from None
    if cls is str:
        if not isinstance(value, str):
            raise ChromDragoNNError(f"{source}: {where} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {cls!r}")  # a bug in this module, not bad input


STAGE1_SELECT = ("best", "last")


def config_from_dict(data: dict, source: str = "config") -> TrainingConfig:
    cfg = _convert(TrainingConfig, data, "", source)
    if cfg.stage1.select not in STAGE1_SELECT:
        raise ChromDragoNNError(f"{source}: stage1.select must be one of {', '.join(STAGE1_SELECT)}, "
                                f"got {cfg.stage1.select!r}")
    return cfg


def apply_settings(data: dict, settings: Sequence[str], source: str) -> dict:
    """``KEY=VALUE`` settings (``stage1.steps=2000``, ``threads=2``) on a config mapping: dotted keys
    reach nested sections, values are read as YAML; the typed config then checks them as it checks
    the file's own."""
    data = copy.deepcopy(data)
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ChromDragoNNError(f"--set {item!r}: expected KEY=VALUE, e.g. stage1.steps=2000")
        *parents, leaf = key.split(".")
        node = data
        for i, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ChromDragoNNError(f"--set {item!r}: {'.'.join(parents[:i + 1])} in {source} is not a section")
        try:
            node[leaf] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ChromDragoNNError(f"--set {item!r}: the value is not valid YAML") from None
    return data


def load_config(path: str | os.PathLike, settings: Sequence[str] = (), **overrides) -> TrainingConfig:
    """Read and check a training config; ``settings`` are ``KEY=VALUE`` changes (apply_settings),
    ``overrides`` replace top-level keys (None: keep)."""
    path = Path(path)
    if not path.is_file():
        raise ChromDragoNNError(f"config file not found: {path}")
    with open(path) as fh:
        try:
            data = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise ChromDragoNNError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ChromDragoNNError(f"{path}: not a YAML mapping")
    source = str(path) + (f" with --set {' '.join(settings)}" if settings else "")
    return config_from_dict(apply_settings(data, settings, str(path)), source).replace(**overrides)
