"""Sequence trunks: one-hot (N, 1000, 4) -> (N, 4200) features, selected by name (:data:`TRUNKS`).

``resnet`` is ChromDragoNN's trunk and mirrors ``model_zoo/stage1/resnet.py`` of the original
implementation layer for layer.  Attribute names (``conv1``, ``bn1``, ``layer1`` ... ``c2to3``,
``conv3``) are the original ones on purpose: an original checkpoint then maps onto this module by
dropping the duplicate registrations and squeezing the (k, 1) Conv2d kernels into Conv1d kernels
(see :mod:`chromdragonn.nn.original`).  Conv1d is used instead of the original's Conv2d over an
(N, 4, 1000, 1) tensor: the arithmetic is the same, and Conv1d is the faster kernel.

Shapes along the ResNet trunk (length, channels):
    (1000, 4) -> stem (1000, 64) -> layer1 (1000, 64) -> c1to2 (1000, 128)
    -> layer2 (1000, 128) -> maxpool 3 (333, 128) -> c2to3 k1 pad 3 (339, 200)
    -> layer3 (339, 200) -> maxpool 4 (84, 200) -> layer4 (84, 200)
    -> conv3 k7 pad 4 (86, 200) -> maxpool 4 (21, 200) -> flatten 4200

``basset`` and ``factorized`` are the paper's baseline trunks, with the same output size so the
same heads sit on top.  Layer sizes follow the original stage-1 models (model_zoo/stage1/
basset_vanilla.py and factorized.py); Conv1d replaces their (k, 1) Conv2d.

Basset:      conv k19 4->300, BN, ReLU, maxpool 3 (333); conv k11 300->200, BN, ReLU,
             maxpool 4 (83); conv k7 pad 4 200->200, BN, ReLU, maxpool 4 (21).
Factorized:  the first two Basset layers factorized into stacks of small kernels with
             the same reach: k3 4->48, k3 48->64, k3 64->100, k7 100->150, k7 150->300
             (each BN, ReLU), maxpool 3; k7 300->200, k3 200->200, k3 200->200 (BN, ReLU),
             maxpool 4; conv k7 pad 4 200->200, BN, ReLU, maxpool 4.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from chromdragonn.errors import ChromDragoNNError

TRUNK_DIM = 4200  # 200 channels x 21 positions, flattened channel-major


def _conv(c_in: int, c_out: int, k: int, padding: int | None = None) -> nn.Conv1d:
    return nn.Conv1d(c_in, c_out, k, padding=k // 2 if padding is None else padding)


class ResidualBlock(nn.Module):
    """Post-activation residual block: [conv-BN-ReLU]* conv-BN, + input, ReLU.

    ``kernels`` gives one kernel size per convolution; the original uses
    (3, 3) in layer1, (7, 7) in layer2 and layer4, and (7, 3, 3) in layer3.
    Convolutions and BNs are named conv1, bn1, conv2, bn2, ... as in the original.
    """

    def __init__(self, channels: int, kernels: tuple[int, ...]):
        super().__init__()
        self.n_convs = len(kernels)
        for i, k in enumerate(kernels, start=1):
            setattr(self, f"conv{i}", _conv(channels, channels, k))
            setattr(self, f"bn{i}", nn.BatchNorm1d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for i in range(1, self.n_convs + 1):
            out = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
            if i < self.n_convs:
                out = F.relu(out)
        return F.relu(out + x)


class ResNetTrunk(nn.Module):
    """Sequence-only feature extractor: one-hot (N, 1000, 4) -> (N, 4200)."""

    out_dim = TRUNK_DIM

    def __init__(self, blocks: tuple[int, int, int, int] = (2, 2, 2, 2)):
        super().__init__()
        self.conv1 = _conv(4, 48, 3)
        self.bn1 = nn.BatchNorm1d(48)
        self.conv2 = _conv(48, 64, 3)
        self.bn2 = nn.BatchNorm1d(64)
        self.layer1 = nn.Sequential(*[ResidualBlock(64, (3, 3)) for _ in range(blocks[0])])
        self.c1to2 = _conv(64, 128, 3)
        self.b1to2 = nn.BatchNorm1d(128)
        self.layer2 = nn.Sequential(*[ResidualBlock(128, (7, 7)) for _ in range(blocks[1])])
        self.maxpool1 = nn.MaxPool1d(3)
        # A 1x1 convolution with padding 3, as in the original: it widens 333 -> 339.
        self.c2to3 = _conv(128, 200, 1, padding=3)
        self.b2to3 = nn.BatchNorm1d(200)
        self.layer3 = nn.Sequential(*[ResidualBlock(200, (7, 3, 3)) for _ in range(blocks[2])])
        self.maxpool2 = nn.MaxPool1d(4)
        self.layer4 = nn.Sequential(*[ResidualBlock(200, (7, 7)) for _ in range(blocks[3])])
        # k7 with padding 4 widens 84 -> 86, so the last pool gives 21 positions.
        self.conv3 = _conv(200, 200, 7, padding=4)
        self.bn3 = nn.BatchNorm1d(200)
        self.maxpool3 = nn.MaxPool1d(4)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        x = seq.transpose(1, 2)  # (N, 1000, 4) -> (N, 4, 1000)
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        x = F.relu(self.b1to2(self.c1to2(x)))
        x = self.maxpool1(self.layer2(x))
        x = F.relu(self.b2to3(self.c2to3(x)))
        x = self.maxpool2(self.layer3(x))
        x = self.layer4(x)
        x = self.maxpool3(F.relu(self.bn3(self.conv3(x))))
        return x.flatten(1)  # channel-major, as the original's view(-1, 4200)


def _block(c_in: int, c_out: int, k: int, padding: int | None = None) -> list[nn.Module]:
    return [nn.Conv1d(c_in, c_out, k, padding=k // 2 if padding is None else padding),
            nn.BatchNorm1d(c_out), nn.ReLU(inplace=True)]


class _Trunk(nn.Module):
    out_dim = TRUNK_DIM

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


# name -> constructor; a new trunk is one entry here (and must give .out_dim features).
TRUNKS: dict[str, Callable[[], nn.Module]] = {
    "resnet": ResNetTrunk,
    "basset": basset_trunk,
    "factorized": factorized_trunk,
}


def build_trunk(name: str = "resnet") -> nn.Module:
    """A trunk by name (:data:`TRUNKS`)."""
    if name not in TRUNKS:
        raise ChromDragoNNError(f"unknown trunk {name!r}; choose {', '.join(TRUNKS)}")
    return TRUNKS[name]()
