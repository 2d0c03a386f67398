"""Train the stage-2 head on standardised expression, ship it on raw expression.

The model reads arcsinh(TPM) as it is (the paper's input, and what every shipped model and
the Kipoi dataloader feed).  For training only, fc1's expression columns can be
re-parametrised so that the optimiser sees each gene z-scored over the fold's training
contexts: fc1(x) = W_z [trunk | (e - mu) / sd | mean] + b_z.  That is an affine change of
variables, so it folds back into one plain ``nn.Linear`` on raw expression exactly
(:func:`fold_fc1`): the shipped architecture and weights format do not change.

Why: with raw expression (values 0-8, 1,575 genes, ~41 training contexts) the head's
level for a context it never saw moves a lot between seeds; z-scored, it moves less and the
no-mean head beats the weighted-mean baseline in every fold of benchmark v2
(training/REPORT.md, "Benchmark v2: standardised expression").

The fresh head's initial fc1 weights are read as z-space weights (as if the z-scores were
fed to an ordinary head).  Genes constant over the training contexts (sd = 0) get weight 0:
the training data cannot say anything about them.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..nn.model import ExpressionHead


class StandardisedFC1(nn.Module):
    """fc1 trained in z-space: ``weight`` and ``bias`` are the equivalent raw-expression ones.

    Everything that reads ``head.fc1.weight`` / ``.bias`` (forward, forward_grid, the
    attribution maths) sees the raw-space tensors, differentiable in the z-space parameters.
    """

    def __init__(self, linear: nn.Linear, first: int, mean: np.ndarray, sd: np.ndarray):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight_z = nn.Parameter(linear.weight.detach().clone())
        self.bias_z = nn.Parameter(linear.bias.detach().clone())
        n = len(mean)
        shift = torch.zeros(self.in_features, dtype=linear.weight.dtype)
        scale = torch.ones(self.in_features, dtype=linear.weight.dtype)
        sd = torch.as_tensor(np.asarray(sd, np.float64))
        shift[first:first + n] = torch.as_tensor(np.asarray(mean, np.float64)).to(shift.dtype)
        scale[first:first + n] = torch.where(sd > 0, 1.0 / sd.clamp_min(1e-12), torch.zeros_like(sd)).to(scale.dtype)
        self.register_buffer("shift", shift.to(linear.weight.device))
        self.register_buffer("scale", scale.to(linear.weight.device))

    @property
    def weight(self) -> torch.Tensor:
        return self.weight_z * self.scale

    @property
    def bias(self) -> torch.Tensor:
        return self._bias(self.weight)

    def _bias(self, weight: torch.Tensor) -> torch.Tensor:
        return self.bias_z - weight @ self.shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight  # once per step: the bias needs it too
        return F.linear(x, weight, self._bias(weight))


def standardise_fc1(head: ExpressionHead, training_expression: np.ndarray) -> None:
    """Re-parametrise ``head.fc1`` in place: expression z-scored over ``training_expression``
    (contexts x genes, the fold's training contexts; sd with ddof = 1)."""
    e = np.asarray(training_expression, np.float64)
    if e.ndim != 2 or e.shape[1] != head.n_genes or len(e) < 2:
        raise ValueError(f"standardise_fc1: need >= 2 training contexts x {head.n_genes} genes, got {e.shape}")
    head.fc1 = StandardisedFC1(head.fc1, head.trunk_dim, e.mean(0), e.std(0, ddof=1))


def fold_fc1(head: ExpressionHead) -> None:
    """Replace a :class:`StandardisedFC1` by the plain ``nn.Linear`` on raw expression it equals."""
    if not isinstance(head.fc1, StandardisedFC1):
        return
    z = head.fc1
    linear = nn.Linear(z.in_features, z.out_features).to(z.weight_z.device, z.weight_z.dtype)
    with torch.no_grad():
        linear.weight.copy_(z.weight)
        linear.bias.copy_(z.bias)
    head.fc1 = linear
