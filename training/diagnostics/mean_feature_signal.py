"""Diagnostic (not part of the pipeline): is the mean feature informative in the stage-2 training pairs?

    python training/diagnostics/mean_feature_signal.py

Prints, for fold 0 of the benchmark run, the AUPRC of the mean feature alone on 50 batches of the paper's
balanced B x K pairs, and on 600 training-loci bins x the held-out contexts.
"""
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from chromdragonn.training.config import load_config
from chromdragonn.training.data import FoldData, PairSampler, positive_enriched_subset
from chromdragonn.training.evaluate import auprc

cfg = load_config(REPO / 'training/configs/benchmark.yaml')
cfg = cfg.replace(store=str(REPO / cfg.store), folds_file=str(REPO / cfg.folds_file))
data = FoldData(cfg, 0); store = data.store
train_bins = positive_enriched_subset(store, data.train_bins, data.train_ctx, 3000, 0.5, 1)
s = PairSampler(store, train_bins, data.train_ctx, data.mean, 16, 32, 1)
ms, ls = [], []
for _ in range(50):
    b = s.next()
    ms.append(np.repeat(b.mean, b.contexts.shape[1])); ls.append(b.labels.reshape(-1))
m = np.concatenate(ms); l = np.concatenate(ls)
print('train pairs: pos rate', l.mean(), 'auprc(mean)', auprc(l, m), 'mean of m | pos', m[l==1].mean(), '| neg', m[l==0].mean())
test_bins = data.sample(data.train_bins, 600, tag=3)
y = np.asarray(store.labels[test_bins][:, data.test_ctx])
print('test: auprc(mean)', auprc(y, np.repeat(data.mean[test_bins][:, None], y.shape[1], 1)), 'mean range', data.mean.min(), data.mean.max(), data.mean.mean())
