"""Diagnostic (issue 10 section 2): is a benchmark store's sequence part learnable at all in a few hundred
steps? A deliberately motif-friendly probe, not ChromDragoNN: one convolution of 128 filters of width 19
(Basset's first layer), ReLU, max-pooled over the central 300 bp, then a linear layer to one logit per
training context, trained exactly on stage 1's data (the config's positive-enriched training bins, batch 64,
Adam lr 1e-3, BCE) and validated as stage 1 is (AUPRC, validation bins x training contexts).

    python training/diagnostics/motif_cnn_probe.py [--store S] [--fold F] [--steps N] [--bins N]

If this probe learns the rule's motifs where the ResNet trunk does not, the rule is learnable from this
data and what is slow is the ResNet; if the probe does not either, the labels carry too little of the motifs.
THREADS (default 1) torch threads.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from chromdragonn.training.config import load_config  # noqa: E402
from chromdragonn.training.data import FoldData, Stage1Sampler, positive_enriched_subset  # noqa: E402
from chromdragonn.training.evaluate import auprc  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--config", default="training/configs/benchmark_v2.yaml")
ap.add_argument("--store", default=None)
ap.add_argument("--fold", type=int, default=0)
ap.add_argument("--steps", type=int, default=600)
ap.add_argument("--eval-every", type=int, default=100)
ap.add_argument("--bins", type=int, default=1024, help="validation bins")
a = ap.parse_args()
torch.set_num_threads(int(os.environ.get("THREADS", "1")))
torch.manual_seed(0)
cfg = load_config(REPO / a.config)
cfg = cfg.replace(store=str(REPO / (a.store or cfg.store)), folds_file=str(REPO / cfg.folds_file))
d = FoldData(cfg, a.fold)
s = d.store
train = positive_enriched_subset(s, d.train_bins, d.train_ctx, cfg.stage1.train_bins, cfg.stage1.positive_share,
                                 cfg.seed)
sampler = Stage1Sampler(s, train, d.train_ctx, cfg.stage1.batch_size, cfg.seed)
vb = d.sample(d.valid_bins, a.bins, tag=1)
xv = torch.from_numpy(s.onehot(vb)).transpose(1, 2).float()
yv = np.asarray(s.labels[vb][:, d.train_ctx])


class Probe(nn.Module):
    def __init__(self, n_tasks):
        super().__init__()
        self.conv = nn.Conv1d(4, 128, 19, padding=9)
        self.out = nn.Linear(128, n_tasks)

    def forward(self, x):  # (N, 4, 1000)
        h = F.relu(self.conv(x))[:, :, 350:650]
        return self.out(h.amax(dim=2))


model = Probe(len(d.train_ctx))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
t0 = time.time()
for step in range(1, a.steps + 1):
    b = sampler.next()
    x = torch.from_numpy(b.seq).transpose(1, 2).float()
    loss = F.binary_cross_entropy_with_logits(model(x), torch.from_numpy(b.labels))
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % a.eval_every == 0:
        with torch.no_grad():
            p = torch.cat([model(xv[i:i + 256]) for i in range(0, len(vb), 256)]).numpy()
        print(f"step {step}: loss {loss.item():.3f}, validation AUPRC {auprc(yv, p):.3f} ({time.time() - t0:.0f} s)",
              flush=True)
