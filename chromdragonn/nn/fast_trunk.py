"""The inference trunk: the ResNet with every batch norm folded into the convolution before it.

In eval mode ``bn(conv(x)) = scale * (W * x + b - mean) + beta``, one convolution with weights
``scale * W`` and bias ``scale * (b - mean) + beta``; folding removes one pass over every
activation tensor.  The result equals the eager trunk within float32 rounding (tested at 1e-4 on
P; benchmarks/bench_track.py measures the speed).  Other trunks are returned unchanged.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from chromdragonn.nn.trunks import ResNetTrunk


@torch.no_grad()
def _fold(conv: nn.Conv1d, bn: nn.BatchNorm1d) -> None:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight.mul_(scale[:, None, None])
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)


def _pairs(trunk: ResNetTrunk):
    yield trunk, "conv1", "bn1"
    yield trunk, "conv2", "bn2"
    yield trunk, "c1to2", "b1to2"
    yield trunk, "c2to3", "b2to3"
    yield trunk, "conv3", "bn3"
    for layer in (trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4):
        for block in layer:
            for i in range(1, block.n_convs + 1):
                yield block, f"conv{i}", f"bn{i}"


def inference_trunk(trunk: nn.Module) -> nn.Module:
    """An eval-mode copy of ``trunk`` for inference: batch norms folded (ResNet), else unchanged."""
    trunk = copy.deepcopy(trunk).eval()
    if isinstance(trunk, ResNetTrunk):
        for owner, conv_name, bn_name in _pairs(trunk):
            _fold(getattr(owner, conv_name), getattr(owner, bn_name))
            setattr(owner, bn_name, nn.Identity())
    for p in trunk.parameters():
        p.requires_grad_(False)
    return trunk
