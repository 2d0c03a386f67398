"""The ChromDragoNN networks (Nair et al., Bioinformatics 2019), layer for layer.

The sequence trunk mirrors ``model_zoo/stage1/resnet.py`` of the original
implementation and the stage-2 head mirrors ``model_zoo/stage2/simple.py``.
Attribute names (``conv1``, ``bn1``, ``layer1`` ... ``c2to3``, ``conv3``) are the
original ones on purpose: an original checkpoint then maps onto this module by
dropping the duplicate registrations and squeezing the (k, 1) Conv2d kernels
into Conv1d kernels (see :mod:`chromdragonn.original`).  Conv1d is used instead
of the original's Conv2d over an (N, 4, 1000, 1) tensor: the arithmetic is the
same, and Conv1d is the faster kernel.

Shapes along the trunk (length, channels):
    (1000, 4) -> stem (1000, 64) -> layer1 (1000, 64) -> c1to2 (1000, 128)
    -> layer2 (1000, 128) -> maxpool 3 (333, 128) -> c2to3 k1 pad 3 (339, 200)
    -> layer3 (339, 200) -> maxpool 4 (84, 200) -> layer4 (84, 200)
    -> conv3 k7 pad 4 (86, 200) -> maxpool 4 (21, 200) -> flatten 4200
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 1000
ALPHABET = "ACGT"
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


class MultiTaskHead(nn.Module):
    """Stage-1 head: 4200 -> 1000 -> 1000 -> one logit per training context.

    Names follow the original stage-1 Net (fc1, bn4, fc2, bn5, fc3)."""

    def __init__(self, n_tasks: int, dropout: float = 0.3, in_dim: int = TRUNK_DIM):
        super().__init__()
        self.dropout = dropout
        self.fc1 = nn.Linear(in_dim, 1000)
        self.bn4 = nn.BatchNorm1d(1000)
        self.fc2 = nn.Linear(1000, 1000)
        self.bn5 = nn.BatchNorm1d(1000)
        self.fc3 = nn.Linear(1000, n_tasks)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = F.dropout(F.relu(self.bn4(self.fc1(features))), self.dropout, self.training)
        x = F.dropout(F.relu(self.bn5(self.fc2(x))), self.dropout, self.training)
        return self.fc3(x)


class SequenceModel(nn.Module):
    """Stage 1: multi-task sequence-only model (trunk + multi-task head) -> logits."""

    def __init__(self, n_tasks: int, dropout: float = 0.3, trunk: nn.Module | None = None):
        super().__init__()
        self.trunk = trunk if trunk is not None else ResNetTrunk()
        self.head = MultiTaskHead(n_tasks, dropout, in_dim=self.trunk.out_dim)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(seq))


class ExpressionHead(nn.Module):
    """Stage-2 head on [trunk features | TF expression | mean accessibility].

    fc1 -> BN -> ReLU -> dropout -> fc2 -> BN -> ReLU -> dropout -> fc3 (2 classes);
    names follow the original stage-2 Net (fc1, bn1, fc2, bn2, fc3).
    """

    def __init__(self, n_genes: int, with_mean: bool, dropout: float = 0.3,
                 trunk_dim: int = TRUNK_DIM):
        super().__init__()
        self.n_genes = n_genes
        self.with_mean = with_mean
        self.trunk_dim = trunk_dim
        self.dropout = dropout
        self.fc1 = nn.Linear(trunk_dim + n_genes + int(with_mean), 1000)
        self.bn1 = nn.BatchNorm1d(1000)
        self.fc2 = nn.Linear(1000, 1000)
        self.bn2 = nn.BatchNorm1d(1000)
        self.fc3 = nn.Linear(1000, 2)

    def forward(self, features, expression, mean_acc=None) -> torch.Tensor:
        """Row-paired input (one context per row) -> (N, 2) log-probabilities."""
        parts = [features, expression]
        if self.with_mean:
            if mean_acc is None:
                raise ValueError("this model was trained with the mean-accessibility feature; pass mean_acc")
            parts.append(mean_acc.reshape(-1, 1).to(features.dtype))
        x = torch.cat(parts, dim=1)
        x = F.dropout(F.relu(self.bn1(self.fc1(x))), self.dropout, self.training)
        x = F.dropout(F.relu(self.bn2(self.fc2(x))), self.dropout, self.training)
        return F.log_softmax(self.fc3(x), dim=1)

    def fc1_parts(self):
        """Split fc1's weight into its trunk, expression and mean columns."""
        w = self.fc1.weight
        w_trunk = w[:, : self.trunk_dim]
        w_expr = w[:, self.trunk_dim: self.trunk_dim + self.n_genes]
        w_mean = w[:, self.trunk_dim + self.n_genes:] if self.with_mean else None
        return w_trunk, w_expr, w_mean

    def forward_grid(self, features, expression, mean_acc=None) -> torch.Tensor:
        """Every interval against every context -> (N, C) log P(accessible).

        features (N, 4200); expression (C, G) shared by all intervals, or (N, C, G);
        mean_acc (N,) or None.  fc1 is linear, so it splits into a trunk part
        computed once per interval and an expression part computed once per
        context; only BN, ReLU, fc2 and fc3 (about 1 MMAC) run per pair.
        Eval mode only: dropout is off and BN uses its running statistics.
        """
        if self.training:
            raise RuntimeError("forward_grid is an inference path; call .eval() first")
        w_trunk, w_expr, w_mean = self.fc1_parts()
        per_interval = features @ w_trunk.T + self.fc1.bias  # (N, 1000)
        if self.with_mean:
            if mean_acc is None:
                raise ValueError("this model was trained with the mean-accessibility feature; pass mean_acc")
            per_interval = per_interval + mean_acc.reshape(-1, 1).to(features.dtype) * w_mean.T
        if expression.dim() == 2:
            per_context = expression @ w_expr.T  # (C, 1000)
            pre = per_interval[:, None, :] + per_context[None, :, :]
        else:
            pre = per_interval[:, None, :] + expression @ w_expr.T  # (N, C, 1000)
        n, c, h = pre.shape
        x = F.relu(self.bn1(pre.reshape(n * c, h)))
        x = F.relu(self.bn2(self.fc2(x)))
        return F.log_softmax(self.fc3(x), dim=1)[:, 1].reshape(n, c)


@dataclass(frozen=True)
class ModelConfig:
    """What a set of stage-2 weights needs besides its tensors."""

    n_genes: int
    with_mean: bool
    dropout: float = 0.3
    trunk: str = "resnet"


class ConfigInputs:
    """``with_mean`` and ``n_genes`` read off ``self.config`` (a :class:`ModelConfig`): the inputs a
    stage-2 model, an ensemble of them, or an imported original model takes."""

    @property
    def with_mean(self) -> bool:
        return self.config.with_mean

    @property
    def n_genes(self) -> int:
        return self.config.n_genes


def build_trunk(name: str = "resnet") -> nn.Module:
    if name == "resnet":
        return ResNetTrunk()
    # The paper's baseline trunks live with the training code.
    from chromdragonn.baselines import build_baseline_trunk

    return build_baseline_trunk(name)


class ChromDragoNN(ConfigInputs, nn.Module):
    """Stage-2 multi-modal model: P(accessible | sequence, TF expression[, mean])."""

    def __init__(self, config: ModelConfig, trunk: nn.Module | None = None):
        super().__init__()
        self.config = config
        self.trunk = trunk if trunk is not None else build_trunk(config.trunk)
        self.head = ExpressionHead(config.n_genes, config.with_mean, config.dropout,
                                   trunk_dim=self.trunk.out_dim)

    def forward(self, seq, expression, mean_acc=None) -> torch.Tensor:
        """Row-paired input (N intervals, each with one context) -> (N, 2) log-softmax."""
        return self.head(self.trunk(seq), expression, mean_acc)

    @torch.no_grad()
    def predict_proba(self, seq, expression, mean_acc=None) -> torch.Tensor:
        """Row-paired P(accessible), shape (N,)."""
        return self.forward(seq, expression, mean_acc)[:, 1].exp()

    @torch.no_grad()
    def predict_grid(self, seq, expression, mean_acc=None) -> torch.Tensor:
        """P(accessible) of N intervals in C contexts, shape (N, C); trunk once per interval.

        expression: (C, G) for contexts shared by the batch, or (N, C, G).  A
        (N, C, G) tensor whose rows are all equal (the usual case from the
        dataloader) is reduced to (C, G) so the expression part runs once per context.
        """
        if expression.dim() == 3 and expression.shape[0] > 0 and bool((expression == expression[:1]).all()):
            expression = expression[0]
        return self.head.forward_grid(self.trunk(seq), expression, mean_acc).exp()
