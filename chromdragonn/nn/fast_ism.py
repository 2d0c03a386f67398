"""The fast-ISM engine: trunk activations of single-base mutants by partial recompute.

A substitution can only change the trunk activations inside its receptive field, so the
reference activations of every layer are computed once and each mutant recomputes, layer by
layer, only the slice that depends on the changed base (the fastISM idea, Nair et al. 2022).
The slice is tracked through every convolution (it grows by k - 1), every max-pool (it shrinks
by the pool size), the k1-pad-3 ``c2to3`` and k7-pad-4 ``conv3`` layers (which shift
coordinates) and the residual additions; outside it, the reference activation is used.
Batch-norm in eval mode is a per-channel affine map, so many mutants run as one batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.genome import WINDOW
from chromdragonn.nn.trunks import ResNetTrunk

# ---------------------------------------------------------------------------
# The trunk as a list of steps over named tensors
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Conv:
    src: int
    dst: int
    conv: nn.Conv1d
    bn: nn.BatchNorm1d
    relu: bool


@dataclass(frozen=True)
class _Pool:
    src: int
    dst: int
    k: int


@dataclass(frozen=True)
class _AddRelu:
    """dst = relu(src + skip): the end of a post-activation residual block."""
    src: int
    skip: int
    dst: int


def _trunk_steps(trunk: ResNetTrunk) -> list:
    """ResNetTrunk.forward written out as steps; tensor 0 is the (N, 4, 1000) input."""
    steps: list = []
    last = 0

    def conv(c, bn, relu=True):
        nonlocal last
        if c.stride != (1,) or c.dilation != (1,) or c.groups != 1:
            raise ChromDragoNNError("fast saturation mutagenesis expects stride-1, undilated convolutions")
        steps.append(_Conv(last, last + 1, c, bn, relu))
        last += 1

    def pool(p):
        nonlocal last
        k = p.kernel_size if isinstance(p.kernel_size, int) else p.kernel_size[0]
        stride = p.stride if isinstance(p.stride, int) else p.stride[0]
        pad = p.padding if isinstance(p.padding, int) else p.padding[0]
        if stride != k or pad != 0 or p.ceil_mode:
            raise ChromDragoNNError("fast saturation mutagenesis expects non-overlapping, unpadded max-pools")
        steps.append(_Pool(last, last + 1, k))
        last += 1

    def block(b):
        nonlocal last
        skip = last
        for i in range(1, b.n_convs + 1):
            conv(getattr(b, f"conv{i}"), getattr(b, f"bn{i}"), relu=i < b.n_convs)
        steps.append(_AddRelu(last, skip, last + 1))
        last += 1

    conv(trunk.conv1, trunk.bn1)
    conv(trunk.conv2, trunk.bn2)
    for b in trunk.layer1:
        block(b)
    conv(trunk.c1to2, trunk.b1to2)
    for b in trunk.layer2:
        block(b)
    pool(trunk.maxpool1)
    conv(trunk.c2to3, trunk.b2to3)
    for b in trunk.layer3:
        block(b)
    pool(trunk.maxpool2)
    for b in trunk.layer4:
        block(b)
    conv(trunk.conv3, trunk.bn3)
    pool(trunk.maxpool3)
    return steps


def _full_step(step, tensors: dict) -> torch.Tensor:
    """One step on whole tensors (the reference pass)."""
    if isinstance(step, _Conv):
        y = step.bn(step.conv(tensors[step.src]))
        return F.relu(y) if step.relu else y
    if isinstance(step, _Pool):
        return F.max_pool1d(tensors[step.src], step.k)
    return F.relu(tensors[step.src] + tensors[step.skip])


@dataclass
class _Window:
    """Per-mutant values of one tensor on positions [start, start + width); the
    reference holds everywhere else.  start: (B,) long; data: (B, C, width).

    Windows are not clipped to the tensor: positions outside [0, L) hold 0 (which
    is what a convolution's zero padding reads), so every mutant of a batch has
    the same width and the same offsets between windows, whatever its position.
    """
    start: torch.Tensor
    width: int
    data: torch.Tensor


def _gather_ref(ref: torch.Tensor, start: torch.Tensor, width: int) -> torch.Tensor:
    """Reference values of positions [start, start + width) per mutant, (B, C, width); 0 outside [0, L)."""
    c, length = ref.shape
    pos = start[:, None] + torch.arange(width, device=ref.device)[None, :]
    out = ref[:, pos.clamp(0, length - 1)].permute(1, 0, 2)
    inside = ((pos >= 0) & (pos < length)).to(out.dtype)
    return out * inside[:, None, :]


def _splice(ref: torch.Tensor, start: torch.Tensor, width: int, win: _Window) -> torch.Tensor:
    """Mutant values of positions [start, start + width), (B, C, width), for any window offsets."""
    c = ref.shape[0]
    out = _gather_ref(ref, start, width)
    rel = start[:, None] + torch.arange(width, device=ref.device)[None, :] - win.start[:, None]
    in_win = (rel >= 0) & (rel < win.width)
    vals = win.data.gather(2, rel.clamp(0, win.width - 1)[:, None, :].expand(-1, c, -1))
    return torch.where(in_win[:, None, :], vals, out)


def _widen(ref: torch.Tensor, win: _Window, left: int, right: int) -> torch.Tensor:
    """The window's values with ``left`` / ``right`` reference positions added on each side."""
    parts = [win.data]
    if left:
        parts.insert(0, _gather_ref(ref, win.start - left, left))
    if right:
        parts.append(_gather_ref(ref, win.start + win.width, right))
    return torch.cat(parts, dim=2) if len(parts) > 1 else win.data


def _zero_outside(win: _Window, length: int) -> _Window:
    pos = win.start[:, None] + torch.arange(win.width, device=win.data.device)[None, :]
    inside = ((pos >= 0) & (pos < length)).to(win.data.dtype)
    return _Window(win.start, win.width, win.data * inside[:, None, :])


def _partial_step(step, windows: dict, ref: dict) -> _Window:
    """One step on the changed slices only."""
    length = ref[step.dst].shape[-1]
    if isinstance(step, _Conv):
        win = windows[step.src]
        k, pad = step.conv.kernel_size[0], step.conv.padding[0]
        # Output j reads inputs j - pad .. j - pad + k - 1, so the changed outputs are
        # [start + pad - (k - 1), start + width - 1 + pad], computed from the window
        # widened by k - 1 reference positions on each side.
        x = _widen(ref[step.src], win, k - 1, k - 1)
        y = step.bn(F.conv1d(x, step.conv.weight, step.conv.bias))
        y = F.relu(y) if step.relu else y
        return _zero_outside(_Window(win.start + pad - (k - 1), win.width + k - 1, y), length)
    if isinstance(step, _Pool):
        win = windows[step.src]
        k = step.k
        # Changed outputs: start // k .. (start + width - 1) // k, at most (width - 1) // k + 2 of them;
        # the window's offset inside the pooled input varies with start % k, hence the general splice.
        start = torch.div(win.start, k, rounding_mode="floor")
        width = (win.width - 1) // k + 2
        x = _splice(ref[step.src], start * k, width * k, win)
        return _zero_outside(_Window(start, width, F.max_pool1d(x, k)), length)
    # Residual: the block's last conv window contains the block input's window at a fixed offset.
    main, skip = windows[step.src], windows[step.skip]
    left = int(skip.start[0] - main.start[0])
    right = main.width - skip.width - left
    return _Window(main.start, main.width, F.relu(main.data + _widen(ref[step.skip], skip, left, right)))


class FastISM:
    """Reference trunk activations of one window, and partial recompute for single-base mutants."""

    def __init__(self, trunk: ResNetTrunk, ref_onehot: torch.Tensor):
        if not isinstance(trunk, ResNetTrunk):
            raise ChromDragoNNError("fast saturation mutagenesis needs the ResNet trunk; use method='naive'")
        if trunk.training:
            raise ChromDragoNNError("fast saturation mutagenesis needs an eval-mode model (batch-norm as affine)")
        self.steps = _trunk_steps(trunk)
        x = ref_onehot.reshape(1, WINDOW, 4).transpose(1, 2)
        tensors = {0: x}
        for step in self.steps:
            tensors[step.dst] = _full_step(step, tensors)
        self.ref = {k: v[0] for k, v in tensors.items()}  # (C, L) each
        self.last = self.steps[-1].dst
        self.ref_features = tensors[self.last].flatten(1)  # (1, 4200)

    def features(self, positions: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
        """Trunk features (B, 4200) of the mutants 'base ``bases[i]`` at window index ``positions[i]``'."""
        b = positions.shape[0]
        onehot = torch.zeros(b, 4, 1, dtype=self.ref[0].dtype, device=self.ref[0].device)
        onehot[torch.arange(b), bases, 0] = 1.0
        windows = {0: _Window(positions, 1, onehot)}
        for step in self.steps:
            windows[step.dst] = _partial_step(step, windows, self.ref)
        last = self.ref[self.last]
        full = _splice(last, torch.zeros_like(positions), last.shape[-1], windows[self.last])
        return full.flatten(1)

    def touched_fraction(self) -> float:
        """Share of the trunk's convolution multiply-adds that one mutant recomputes."""
        full = part = 0
        windows = {0: (WINDOW // 2, 1)}
        for step in self.steps:
            if isinstance(step, _Conv):
                s, w = windows[step.src]
                k, pad = step.conv.kernel_size[0], step.conv.padding[0]
                length = self.ref[step.dst].shape[-1]
                w2 = w + k - 1
                macs = step.conv.in_channels * step.conv.out_channels * k
                full += macs * length
                part += macs * w2
                windows[step.dst] = (s + pad - (k - 1), w2)
            elif isinstance(step, _Pool):
                s, w = windows[step.src]
                windows[step.dst] = (s // step.k, (w - 1) // step.k + 2)
            else:
                windows[step.dst] = windows[step.src]
        return part / full
