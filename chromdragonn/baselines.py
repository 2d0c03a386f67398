"""The paper's baseline sequence trunks: Basset-style and factorized Basset.

Both map one-hot (N, 1000, 4) to (N, 4200) features (200 channels x 21 positions,
channel-major), like the ResNet trunk, so the same stage-1 and stage-2 heads sit
on top.  Layer sizes follow the original stage-1 models (model_zoo/stage1/
basset_vanilla.py and factorized.py); Conv1d replaces their (k, 1) Conv2d.

Basset:      conv k19 4->300, BN, ReLU, maxpool 3 (333); conv k11 300->200, BN, ReLU,
             maxpool 4 (83); conv k7 pad 4 200->200, BN, ReLU, maxpool 4 (21).
Factorized:  the first two Basset layers factorized into stacks of small kernels with
             the same reach: k3 4->48, k3 48->64, k3 64->100, k7 100->150, k7 150->300
             (each BN, ReLU), maxpool 3; k7 300->200, k3 200->200, k3 200->200 (BN, ReLU),
             maxpool 4; conv k7 pad 4 200->200, BN, ReLU, maxpool 4.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from chromdragonn.errors import ChromDragoNNError

BASELINE_TRUNKS = ("basset", "factorized")


def _block(c_in: int, c_out: int, k: int, padding: int | None = None) -> list[nn.Module]:
    return [nn.Conv1d(c_in, c_out, k, padding=k // 2 if padding is None else padding),
            nn.BatchNorm1d(c_out), nn.ReLU(inplace=True)]


class _Trunk(nn.Module):
    out_dim = 4200

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.layers(seq.transpose(1, 2)).flatten(1)


def basset_trunk() -> nn.Module:
    return _Trunk(_block(4, 300, 19) + [nn.MaxPool1d(3)]
                  + _block(300, 200, 11) + [nn.MaxPool1d(4)]
                  + _block(200, 200, 7, padding=4) + [nn.MaxPool1d(4)])


def factorized_trunk() -> nn.Module:
    return _Trunk(_block(4, 48, 3) + _block(48, 64, 3) + _block(64, 100, 3) + _block(100, 150, 7)
                  + _block(150, 300, 7) + [nn.MaxPool1d(3)]
                  + _block(300, 200, 7) + _block(200, 200, 3) + _block(200, 200, 3) + [nn.MaxPool1d(4)]
                  + _block(200, 200, 7, padding=4) + [nn.MaxPool1d(4)])


def build_baseline_trunk(name: str) -> nn.Module:
    """'basset' or 'factorized' -> a trunk module with ``.out_dim`` (4200)."""
    if name == "basset":
        return basset_trunk()
    if name == "factorized":
        return factorized_trunk()
    raise ChromDragoNNError(f"unknown trunk {name!r}; choose resnet, {', '.join(BASELINE_TRUNKS)}")
