"""Diagnostic (issue 10 section 2): the stage-1 ceiling on benchmark v2, fold 0: AUPRC of the rule's own P
(with its locus field, and its sequence part alone) on stage 1's 256 validation bins x the training contexts.

    python training/diagnostics/stage1_ceiling.py
"""
import numpy as np, sys
sys.path.insert(0,'.')
from chromdragonn.training.config import load_config
from chromdragonn.training.data import FoldData
from chromdragonn.training.evaluate import auprc
from chromdragonn.training.simulate import SimulatedAccessibility, store_loci
cfg = load_config('training/configs/benchmark_v2.yaml')
d = FoldData(cfg, 0); s = d.store
rule = SimulatedAccessibility.load(s.directory/'rule.json', genes=s.genes)
vb = d.sample(d.valid_bins, 256, tag=1)
y = np.asarray(s.labels[vb][:, d.train_ctx])
oh = s.onehot(vb)
e = s.expression[d.train_ctx]
p_seq = rule.probability(oh, e)  # field = 0: what the window alone gives
p_full = rule.probability(oh, e, loci=store_loci(s, vb))
print(f"stage-1 validation bins x training contexts: rule P with field {auprc(y, p_full):.3f}, sequence part only (field 0) {auprc(y, p_seq):.3f}, positives {y.mean():.3f}")
