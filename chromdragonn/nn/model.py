"""The ChromDragoNN networks (Nair et al., Bioinformatics 2019), layer for layer.

The stage-1 head mirrors ``model_zoo/stage1/resnet.py``'s fully connected layers and the stage-2
head ``model_zoo/stage2/simple.py`` of the original implementation, with the original attribute
names; the sequence trunks are in :mod:`chromdragonn.nn.trunks`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from chromdragonn.nn.trunks import TRUNK_DIM, ResNetTrunk, build_trunk

ALPHABET = "ACGT"


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
        return F.log_softmax(self._grid_scores(features, expression, mean_acc), dim=1)[:, 1].reshape(
            features.shape[0], -1)

    def logit_grid(self, features, expression, mean_acc=None) -> torch.Tensor:
        """As :meth:`forward_grid`, but logit P(accessible) = class-1 minus class-0 score, (N, C).

        The quantity attributions differentiate (``chromdragonn attribute``, ``tf-drivers``): it does
        not saturate as log P does near P = 1."""
        s = self._grid_scores(features, expression, mean_acc)
        return (s[:, 1] - s[:, 0]).reshape(features.shape[0], -1)

    def _grid_scores(self, features, expression, mean_acc=None) -> torch.Tensor:
        """fc3's two class scores of every (interval, context) pair, (N * C, 2), interval-major."""
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
        return self.fc3(x)


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
