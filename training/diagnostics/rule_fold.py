"""Shared by the stage-1 diagnostics: one fold's validation sample of a simulated-labels store, with its rule."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chromdragonn.training.config import load_config
from chromdragonn.training.data import FoldData
from chromdragonn.training.simulate import SimulatedAccessibility


@dataclass
class RuleFold:
    data: FoldData
    rule: SimulatedAccessibility
    bins: np.ndarray     # validation-loci bins (stage 1's seeded sample)
    onehot: np.ndarray   # (N, 1000, 4)
    labels: np.ndarray   # (N, training contexts)
    const: np.ndarray    # the rule's context-independent part (N,)
    occ: np.ndarray      # context-motif occupancies (N, M)
    gates: np.ndarray    # (training contexts, M)


def rule_fold(repo: Path, config: str, store: str | None, fold: int, n_bins: int) -> RuleFold:
    cfg = load_config(repo / config)
    cfg = cfg.replace(store=str(repo / (store or cfg.store)), folds_file=str(repo / cfg.folds_file))
    data = FoldData(cfg, fold)
    s = data.store
    rule = SimulatedAccessibility.load(s.directory / "rule.json", genes=s.genes)
    bins = data.sample(data.valid_bins, n_bins, tag=1)
    onehot = s.onehot(bins)
    const, occ = rule.sequence_terms(onehot)
    return RuleFold(data, rule, bins, onehot, np.asarray(s.labels[bins][:, data.train_ctx]), const, occ,
                    rule.gates(s.expression[data.train_ctx]))
