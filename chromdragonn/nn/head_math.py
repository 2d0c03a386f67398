"""The stage-2 head split at fc1, with its batch norms folded, for many contexts over cached bins.

Everything before the expression enters is the same for every context: the trunk, and fc1's trunk
and mean columns.  ``SplitHead.per_bin`` computes that part (1,000 numbers per bin, what the track
cache stores); ``SplitHead.probability`` then runs only the per-context part, whose cost is the fc2
matmul (1 MMAC per bin and context).  In eval mode batch norm is a per-unit affine map, so:

    h1 = relu(a1 * per_bin + (a1 * expression @ W_expr.T + c1))   a1 = g1 / sqrt(v1 + eps), c1 = b1 - m1 * a1
    h2 = relu(h1 @ (a2 * W2).T + (a2 * (b2 - m2) + beta2))
    P  = sigmoid(h2 . (w3[1] - w3[0]) + (b3[1] - b3[0]))           (= softmax(fc3(h2))[1])

which is ``ExpressionHead.forward_grid`` rearranged (equal within float32 rounding, tested).
"""
from __future__ import annotations

import torch


def _bn_affine(bn: torch.nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class SplitHead:
    """One fold's stage-2 head as the two halves the track command needs (eval mode, no grad)."""

    @torch.no_grad()
    def __init__(self, model):
        head = model.head
        w_trunk, w_expr, w_mean = head.fc1_parts()
        self.with_mean = head.with_mean
        self.w_trunk = w_trunk.detach().clone()
        self.b1 = head.fc1.bias.detach().clone()
        self.w_mean = None if w_mean is None else w_mean.detach()[:, 0].clone()
        self.w_expr = w_expr.detach().clone()
        self.a1, self.c1 = _bn_affine(head.bn1)
        a2, c2 = _bn_affine(head.bn2)
        self.w2 = (head.fc2.weight * a2[:, None]).detach().clone()
        self.b2 = (head.fc2.bias * a2 + c2).detach().clone()
        self.w3 = (head.fc3.weight[1] - head.fc3.weight[0]).detach().clone()
        self.b3 = float(head.fc3.bias[1] - head.fc3.bias[0])

    @torch.no_grad()
    def per_bin(self, features: torch.Tensor, mean_acc: torch.Tensor | None) -> torch.Tensor:
        """(N, 1000): a1 * (fc1's trunk part + bias + mean part), the same for every context (what the
        track cache stores; bn1's scale applied here once per bin rather than once per context)."""
        out = torch.addmm(self.b1, features, self.w_trunk.T)
        if self.with_mean:
            out += mean_acc.reshape(-1, 1).to(out.dtype) * self.w_mean
        return out.mul_(self.a1)

    @torch.no_grad()
    def per_context(self, expression: torch.Tensor) -> torch.Tensor:
        """(C, 1000): each context's part of fc1 with bn1's shift, ready to add to a1 * per_bin."""
        return self.a1 * (expression @ self.w_expr.T) + self.c1

    @torch.no_grad()
    def probability(self, per_bin: torch.Tensor, per_context: torch.Tensor) -> torch.Tensor:
        """(N, C) P(accessible) from ``per_bin`` (N, 1000; float16 from the cache, or float32) and
        ``per_context`` (C, 1000).  Few, fused passes: the fc2 matmul is the cost (1 MMAC per pair);
        every other pass over the (N * C, 1000) activations is one more parallel region, which is
        what a shared CPU makes expensive."""
        n, c = per_bin.shape[0], per_context.shape[0]
        h1 = torch.add(per_context[None, :, :], per_bin[:, None, :]).relu_().reshape(n * c, -1)  # -> float32
        h2 = torch.addmm(self.b2, h1, self.w2.T).relu_()
        return torch.sigmoid(torch.mv(h2, self.w3).add_(self.b3)).reshape(n, c)
