"""Diagnostic (issue 10 section 1, step a): are the held-out contexts of each fold outside the training
contexts' range, for the rule's 10 gating TFs (raw expression and gates) and for the positive rate?

    python training/diagnostics/gate_range_check.py
"""
import numpy as np, sys
sys.path.insert(0,'.')
from chromdragonn.training.config import load_config
from chromdragonn.training.data import FoldData
from chromdragonn.training.simulate import SimulatedAccessibility
cfg = load_config('training/configs/benchmark_v2.yaml')
for f in range(5):
    d = FoldData(cfg, f); s = d.store
    rule = SimulatedAccessibility.load(s.directory/'rule.json', genes=s.genes)
    gi = [t.gene_index for t in rule.context_terms]
    E = s.expression[:, gi]
    g = rule.gates(s.expression)
    lab = np.asarray(s.labels[d.train_bins][:, :])
    rate = lab.mean(0)
    tr = d.train_ctx
    lo, hi = E[tr].min(0), E[tr].max(0)
    glo, ghi = g[tr].min(0), g[tr].max(0)
    print(f"fold {f}: train rate {rate[tr].min():.3f}-{rate[tr].max():.3f}")
    for c in d.test_ctx:
        out = ((E[c] < lo) | (E[c] > hi)).sum()
        gout = ((g[c] < glo-1e-9) | (g[c] > ghi+1e-9)).sum()
        print(f"  {s.contexts[c]} rate {rate[c]:.3f} genes-out {out} gates-out {gout} gates {np.round(g[c],1)}")
