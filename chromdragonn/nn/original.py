"""Import of the original authors' stage-2 checkpoints (``model_best.pth.tar``).

The original code (kundajelab/ChromDragoNN) saves, with ``torch.save``, a dict
holding ``state_dict``, ``args`` (a ``utils.data_utils.dotdict``, a dict
subclass), ``epoch``, ``acc`` (a numpy float64 from scikit-learn), ``optimizer``
and a few more plain values.  Reading such a file with plain ``pickle`` would
import and call whatever the file names, so it is read with torch's
weights-only unpickler plus a short allow-list (:data:`ALLOWED_GLOBALS`); any
other global in the file is refused before anything from it is called.

The original modules differ from ours in three ways, all undone by
:func:`convert_state_dict`:

- each conv/BN is registered twice (as an attribute and again inside an
  ``nn.Sequential``: ``prelayer``, ``layerN.M.layer``, ``l1tol2``, ``l2tol3``,
  ``flayer``); the second copies are the same tensors and are dropped;
- the stage-1 network sits under ``basset_model.`` and carries its multi-task
  head (``fc1, bn4, fc2, bn5, fc3``), which stage 2 never calls (it only uses
  the 4,200 trunk features); that head is dropped;
- convolutions are Conv2d with (k, 1) kernels; ours are Conv1d, so the
  trailing 1 is squeezed off.
"""
from __future__ import annotations

import argparse
import logging
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.genome import WINDOW
from chromdragonn.nn.model import TRUNK_DIM, ChromDragoNN, ConfigInputs, ModelConfig, ResNetTrunk

log = logging.getLogger(__name__)

# The gene panel of the original release; used to read an fc1 width when the
# checkpoint's args do not say how it splits into genes and the mean input.
ORIGINAL_N_GENES = 1630
ORIGINAL_DROPOUT = 0.3


class OriginalArgs(dict):
    """Stand-in for the original ``utils.data_utils.dotdict``: a dict whose keys read as attributes.

    torch's weights-only unpickler only fills exact ``dict`` objects, so the
    pickled dotdict is rebuilt as a plain dict and wrapped in this class after
    loading; the original class itself is never imported.
    """

    __slots__ = ()

    def __getattr__(self, item):
        try:
            return self[item]
        except KeyError:
            raise AttributeError(item) from None

    def __setattr__(self, key, value):
        self[key] = value


def _numpy_scalar_reconstructor():
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    return scalar


def _numeric_dtype_classes() -> list[type]:
    # A pickled numpy scalar carries its dtype; the unpickler rebuilds it and
    # then sets its state, which torch only allows on allow-listed types.
    # Numeric and bool dtypes only: no object dtype.
    dtypes = getattr(np, "dtypes", None)
    if dtypes is None:  # pragma: no cover - numpy < 1.25
        return []
    names = ["Float64DType", "Float32DType", "Float16DType", "Int64DType", "Int32DType",
             "Int16DType", "Int8DType", "UInt64DType", "UInt32DType", "UInt16DType",
             "UInt8DType", "BoolDType"]
    return [getattr(dtypes, n) for n in names if hasattr(dtypes, n)]


def allowed_globals() -> list:
    """What a checkpoint may name besides torch's own weights-only defaults.

    torch's defaults are tensors, storages, ``torch.Size``, ``torch.device``,
    ``collections.OrderedDict`` (a state_dict) and the tensor rebuild
    functions; they cover ``state_dict`` and ``optimizer``.  Added here:

    - ``utils.data_utils.dotdict`` (the original ``args``), rebuilt as a plain
      dict: no code of the original class is needed or run;
    - ``argparse.Namespace``, for checkpoints that stored args undigested
      (it only holds attributes);
    - numpy's scalar reconstructor (old and new module names), ``numpy.dtype``
      and the numeric dtype classes: ``acc``/``best_acc`` are numpy float64
      values from scikit-learn.  A scalar is rebuilt from a dtype and raw bytes.
    """
    scalar = _numpy_scalar_reconstructor()
    return [
        (dict, "utils.data_utils.dotdict"),
        argparse.Namespace,
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
        *_numeric_dtype_classes(),
    ]


# Names, for the docs and error messages.
ALLOWED_GLOBALS = ("utils.data_utils.dotdict", "argparse.Namespace", "numpy.core.multiarray.scalar",
                   "numpy._core.multiarray.scalar", "numpy.dtype", "numpy.dtypes.<numeric>DType")

_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.<>]+)")


def _describe_unpickling_error(message: str) -> str:
    """The line of torch's multi-paragraph weights-only error that says what was refused."""
    for line in message.splitlines():
        line = line.strip()
        if line.startswith("WeightsUnpickler error:"):
            return line[len("WeightsUnpickler error:"):].strip()
    for line in message.splitlines():
        line = line.strip()
        if line and not line.startswith(("Weights only load failed", "Check the documentation", "(1)", "(2)")):
            return line
    return message.strip().splitlines()[0] if message.strip() else "unreadable pickle"


def read_original_checkpoint(path: str | os.PathLike) -> dict:
    """Read an original checkpoint through the allow-list; return its top-level dict.

    ``args`` (when present) comes back as :class:`OriginalArgs`.  A bare
    state_dict (a mapping of tensors) is returned as ``{"state_dict": it}``.
    """
    path = Path(path)
    if not path.is_file():
        raise ChromDragoNNError(f"original checkpoint not found: {path}")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    # torch >= 1.6 writes a zip archive; older torch a pickle stream (protocol 2).
    if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):
        raise ChromDragoNNError(
            f"{path}: not a torch checkpoint in zip or pickle format (it starts with {magic!r})")
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        message = str(exc)
        refused = _REFUSED_GLOBAL.search(message)
        if refused:
            raise ChromDragoNNError(
                f"{path}: refused to unpickle global {refused.group(1)}: it is not on the allow-list of "
                "chromdragonn.nn.original (loading it could run code from the file; see docs/original_checkpoints.md)"
            ) from None
        raise ChromDragoNNError(
            f"{path}: refused by the allow-list unpickler: {_describe_unpickling_error(message)}") from None
    except EOFError:
        raise ChromDragoNNError(f"{path}: the checkpoint ends early (truncated file?)") from None
    except (RuntimeError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ChromDragoNNError(
            f"{path}: cannot read as a torch checkpoint (truncated or corrupt?): {type(exc).__name__}: {first}"
        ) from None
    if isinstance(payload, Mapping) and "state_dict" in payload:
        payload = dict(payload)
    elif isinstance(payload, Mapping) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        payload = {"state_dict": payload}
    else:
        raise ChromDragoNNError(
            f"{path}: not an original ChromDragoNN checkpoint: expected a dict with a 'state_dict' entry, "
            f"got {_describe(payload)}")
    if not isinstance(payload["state_dict"], Mapping):
        raise ChromDragoNNError(f"{path}: 'state_dict' is a {type(payload['state_dict']).__name__}, not a mapping")
    args = payload.get("args")
    if isinstance(args, argparse.Namespace):
        payload["args"] = OriginalArgs(vars(args))
    elif isinstance(args, Mapping):
        payload["args"] = OriginalArgs(args)
    elif args is not None:
        raise ChromDragoNNError(f"{path}: 'args' is a {type(args).__name__}, expected the original dotdict")
    return payload


def _describe(obj) -> str:
    if isinstance(obj, Mapping):
        keys = [str(k) for k in list(obj)[:8]]
        return f"a dict with keys {', '.join(keys)}{', ...' if len(obj) > 8 else ''}" if keys else "an empty dict"
    return f"a {type(obj).__name__}"


# --- key mapping -----------------------------------------------------------

# Positions inside the original nn.Sequential copies -> the attribute they alias.
_PRELAYER = {0: "conv1", 1: "bn1", 3: "conv2", 4: "bn2"}
_PAIR_SEQUENTIALS = {"l1tol2": ("c1to2", "b1to2"), "l2tol3": ("c2to3", "b2to3"), "flayer": ("conv3", "bn3")}
_STAGE1_HEAD = ("fc1.", "bn4.", "fc2.", "bn5.", "fc3.")
_STAGE2_HEAD = ("fc1.", "bn1.", "fc2.", "bn2.", "fc3.")
_PREFIX = "basset_model."


def _alias_target(key: str) -> str | None:
    """The attribute key that an ``nn.Sequential`` copy aliases; None if ``key`` is no copy.

    ``key`` has the ``basset_model.`` prefix stripped.  Raises KeyError for a
    copy at a position that holds no parameters in the original (a ReLU).
    """
    m = re.fullmatch(r"prelayer\.(\d+)\.(.+)", key)
    if m:
        return f"{_PRELAYER[int(m.group(1))]}.{m.group(2)}"
    m = re.fullmatch(r"(layer[1-4]\.\d+)\.layer\.(\d+)\.(.+)", key)
    if m:
        # [conv, bn, relu] repeated: position i is conv (i//3 + 1) or its BN.
        i = int(m.group(2))
        kind = {0: "conv", 1: "bn"}[i % 3]
        return f"{m.group(1)}.{kind}{i // 3 + 1}.{m.group(3)}"
    m = re.fullmatch(r"(l1tol2|l2tol3|flayer)\.(\d+)\.(.+)", key)
    if m:
        return f"{_PAIR_SEQUENTIALS[m.group(1)][int(m.group(2))]}.{m.group(3)}"
    return None


def _strip_data_parallel(sd: Mapping) -> dict:
    # The original runner wraps the model in nn.DataParallel (sometimes twice)
    # before saving, which prefixes every key with "module.".
    sd = dict(sd)
    while sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _original_name(our_key: str) -> str:
    if our_key.startswith("trunk."):
        return _PREFIX + our_key[len("trunk."):]
    return our_key[len("head."):]


def _infer_config(width: int, with_mean, num_genes, dropout: float, source: str) -> ModelConfig:
    extra = width - TRUNK_DIM
    if extra < 1:
        raise ChromDragoNNError(f"{source}: fc1.weight takes {width} inputs, fewer than the {TRUNK_DIM} trunk features + genes")
    if with_mean is not None:
        wm = bool(int(with_mean))
        genes = extra - int(wm)
        if num_genes is not None and int(num_genes) != genes:
            raise ChromDragoNNError(
                f"{source}: args say with_mean={int(wm)} and num_genes={int(num_genes)} "
                f"(fc1 would take {TRUNK_DIM + int(num_genes) + int(wm)} inputs), but fc1.weight takes {width}")
    elif num_genes is not None:
        genes = int(num_genes)
        if extra - genes not in (0, 1):
            raise ChromDragoNNError(
                f"{source}: args say num_genes={genes}, but fc1.weight takes {width} inputs "
                f"(expected {TRUNK_DIM + genes} or {TRUNK_DIM + genes + 1})")
        wm = extra - genes == 1
    elif extra in (ORIGINAL_N_GENES, ORIGINAL_N_GENES + 1):
        wm, genes = extra == ORIGINAL_N_GENES + 1, ORIGINAL_N_GENES
        log.warning("%s: no with_mean/num_genes in args; read fc1's %d inputs as the original "
                    "%d-gene panel %s the mean input", source, width, ORIGINAL_N_GENES,
                    "plus" if wm else "without")
    else:
        raise ChromDragoNNError(
            f"{source}: fc1.weight takes {width} inputs and the checkpoint has no with_mean/num_genes "
            "to split them into genes and the mean input; pass with_mean=")
    if genes < 1:
        raise ChromDragoNNError(f"{source}: fc1.weight takes {width} inputs, which leaves no gene inputs")
    return ModelConfig(n_genes=genes, with_mean=wm, dropout=float(dropout))


_TRUNK_KEYS: frozenset[str] | None = None


def _trunk_keys() -> frozenset[str]:
    global _TRUNK_KEYS
    if _TRUNK_KEYS is None:
        _TRUNK_KEYS = frozenset(ResNetTrunk().state_dict())
    return _TRUNK_KEYS


def convert_state_dict(original_sd: Mapping, args: Mapping | None = None, *, with_mean: bool | None = None,
                       source: str = "state_dict") -> tuple[dict, ModelConfig]:
    """Map an original stage-2 state_dict onto :class:`ChromDragoNN`; return (state_dict, config).

    ``args``: the checkpoint's args (``with_mean``, ``num_genes``, ``dropout``
    are read when present and must agree with fc1's width).  ``with_mean``
    overrides args (for a bare state_dict).  ``source`` names the file in errors.
    Every unexpected, missing or misshapen key is a one-line
    :class:`ChromDragoNNError` naming it.
    """
    args = dict(args or {})
    sd = _strip_data_parallel(original_sd)
    trunk_keys = _trunk_keys()
    ours: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    dropped_stage1 = 0
    for key, value in sd.items():
        if not isinstance(value, torch.Tensor):
            raise ChromDragoNNError(f"{source}: state_dict entry {key} is a {type(value).__name__}, not a tensor")
        if key.startswith(_PREFIX):
            inner = key[len(_PREFIX):]
            if inner.startswith(_STAGE1_HEAD):
                dropped_stage1 += 1  # stage 2 only uses the trunk's conv features
                continue
            try:
                target = _alias_target(inner)
            except (KeyError, IndexError):
                raise ChromDragoNNError(f"{source}: unexpected key {key} (no such position in the original module)") from None
            if target is not None:
                aliases[key] = _PREFIX + target
                continue
            if inner not in trunk_keys:
                raise ChromDragoNNError(f"{source}: unexpected key {key} (not part of the original ResNet trunk)")
            ours["trunk." + inner] = value
        elif key.startswith(_STAGE2_HEAD):
            ours["head." + key] = value
        else:
            raise ChromDragoNNError(f"{source}: unexpected key {key} (not part of an original stage-2 ResNet model)")
    # The Sequential copies must be the very tensors of the attributes they alias.
    for alias, target in aliases.items():
        our_key = "trunk." + target[len(_PREFIX):]
        if target not in sd:
            if target[len(_PREFIX):] not in trunk_keys:
                raise ChromDragoNNError(f"{source}: unexpected key {alias} (aliases {target}, which the trunk lacks)")
            ours[our_key] = sd[alias]  # only the copy was saved: it carries the tensor
            continue
        a, t = sd[alias], sd[target]
        if a.shape != t.shape or not torch.equal(a, t):
            raise ChromDragoNNError(
                f"{source}: {alias} should be the same tensor as {target} (the original registers each layer "
                "twice) but differs from it")
    if "head.fc1.weight" not in ours:
        raise ChromDragoNNError(f"{source}: key fc1.weight is missing (not a stage-2 checkpoint?)")
    w = ours["head.fc1.weight"]
    if w.dim() != 2:
        raise ChromDragoNNError(f"{source}: fc1.weight has shape {tuple(w.shape)}, expected (1000, inputs)")
    dropout = args.get("dropout")
    config = _infer_config(w.shape[1], with_mean if with_mean is not None else args.get("with_mean"),
                           args.get("num_genes"), ORIGINAL_DROPOUT if dropout is None else dropout, source)

    expected = ChromDragoNN(config).state_dict()
    filled = 0
    for key, ref in expected.items():
        if key not in ours:
            if key.endswith("num_batches_tracked"):
                # torch < 0.4.1 did not save this counter; it only matters in training.
                ours[key] = torch.zeros((), dtype=torch.long)
                filled += 1
                continue
            raise ChromDragoNNError(f"{source}: key {_original_name(key)} is missing")
        value = ours[key]
        if value.dim() == 4 and ref.dim() == 3:
            if value.shape[-1] != 1:
                raise ChromDragoNNError(
                    f"{source}: {_original_name(key)} has shape {tuple(value.shape)}; expected a (k, 1) "
                    f"Conv2d kernel of shape {tuple(ref.shape) + (1,)}")
            value = value.squeeze(-1)
        if tuple(value.shape) != tuple(ref.shape):
            want = tuple(ref.shape) + ((1,) if ref.dim() == 3 else ())
            raise ChromDragoNNError(
                f"{source}: {_original_name(key)} has shape {tuple(ours[key].shape)}, expected {want}")
        ours[key] = value.to(ref.dtype).detach().clone().contiguous()
    extra = [k for k in ours if k not in expected]
    if extra:  # cannot happen after the routing above; kept as a guard
        raise ChromDragoNNError(f"{source}: unexpected key {_original_name(extra[0])}")
    if filled:
        log.info("%s: %d BatchNorm num_batches_tracked counters absent (saved by torch < 0.4.1); set to 0",
                 source, filled)
    log.info("%s: dropped %d duplicate registrations and %d tensors of the unused stage-1 head",
             source, len(aliases), dropped_stage1)
    return {k: ours[k] for k in expected}, config


# --- the loaded model ------------------------------------------------------

class OriginalModel(ConfigInputs, nn.Module):
    """An original checkpoint as a module: ``forward(seq, expression, mean_acc) -> P(accessible)``.

    seq: float32 (N, 1000, 4) one-hot, A, C, G, T; expression: (N, G) in the
    checkpoint's gene order and units (arcsinh TPM in the paper); mean_acc: (N,)
    for checkpoints trained with the mean-accessibility input, and ignored
    (may be None) for those trained without it.  Returns float32 (N,).
    """

    def __init__(self, model: ChromDragoNN, args: Mapping | None = None, info: Mapping | None = None):
        super().__init__()
        self.model = model
        self.config = model.config
        self.args = OriginalArgs(args or {})
        self.checkpoint_info = dict(info or {})

    def forward(self, seq, expression, mean_acc=None) -> torch.Tensor:
        seq = torch.as_tensor(seq, dtype=torch.float32)
        expression = torch.as_tensor(expression, dtype=torch.float32)
        if seq.dim() != 3 or seq.shape[1:] != (WINDOW, 4):
            raise ChromDragoNNError(f"seq has shape {tuple(seq.shape)}, expected (N, {WINDOW}, 4)")
        n = seq.shape[0]
        if expression.shape != (n, self.n_genes):
            raise ChromDragoNNError(
                f"expression has shape {tuple(expression.shape)}, expected ({n}, {self.n_genes})")
        if self.with_mean:
            if mean_acc is None:
                raise ChromDragoNNError("this checkpoint was trained with the mean-accessibility input; pass mean_acc (N,)")
            mean_acc = torch.as_tensor(mean_acc, dtype=torch.float32).reshape(-1)
            if mean_acc.shape != (n,):
                raise ChromDragoNNError(f"mean_acc has {mean_acc.numel()} values, expected {n}")
        else:
            mean_acc = None  # a no-mean checkpoint has no input for it
        return self.model(seq, expression, mean_acc)[:, 1].exp()


def load_original_model(path: str | os.PathLike, with_mean: bool | None = None
                        ) -> tuple[ChromDragoNN, OriginalArgs, dict]:
    """Read and convert a checkpoint; return (eval-mode ChromDragoNN, args, other top-level values)."""
    payload = read_original_checkpoint(path)
    args = payload.get("args") or OriginalArgs()
    state, config = convert_state_dict(payload["state_dict"], args, with_mean=with_mean, source=str(path))
    model = ChromDragoNN(config)
    model.load_state_dict(state)
    model.eval()
    info = {k: v for k, v in payload.items()
            if k in ("epoch", "acc", "best_acc", "best_loss", "hold_out", "validation_list", "test_list")}
    return model, args, info


def load_original(path: str | os.PathLike, with_mean: bool | None = None) -> OriginalModel:
    """Load an original stage-2 ``model_best.pth.tar`` as an eval-mode :class:`OriginalModel`.

    ``with_mean`` is only needed for a bare state_dict whose fc1 width cannot
    be split into genes and the mean input without the checkpoint's args.
    """
    model, args, info = load_original_model(path, with_mean=with_mean)
    return OriginalModel(model, args, info).eval()
