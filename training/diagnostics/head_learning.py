"""Diagnostic (not part of the pipeline): how fast does a stage-2 head learn from cached trunk features?

Fold 0 of the shipped benchmark run: trunk from tmp/benchmark/run/fold0/stage1/stage1.pt (frozen, features
cached once with bf16 autocast), head trained alone with Adam on the paper's balanced B x K pairs, then
scored on 600 training-loci bins x fold 0's held-out contexts against the mean baseline.

    python training/diagnostics/head_learning.py mean 1e-3 400 3000 0   # trunk features zeroed: mean + expression only
    python training/diagnostics/head_learning.py mean 1e-3 600 3000 1   # all inputs

Arguments: with_mean ('mean' or 'nomean'), learning rate, steps, training bins, feature multiplier (0 or 1).
Needs the store of `python -m chromdragonn.training simulate` and the stage-1 state of the benchmark run.
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from chromdragonn.training.train import FoldData, load_checkpoint
from chromdragonn.training.data import PairSampler, positive_enriched_subset
from chromdragonn.training.evaluate import predict_bins, auprc
from chromdragonn.model import ChromDragoNN, ModelConfig
torch.set_num_threads(2)
cfg = yaml.safe_load(open(REPO / 'training/configs/benchmark.yaml'))
cfg['store'] = str(REPO / cfg['store']); cfg['folds_file'] = str(REPO / cfg['folds_file'])
ZERO = float(sys.argv[5]); fold = 0; with_mean = sys.argv[1] == 'mean'; lr = float(sys.argv[2]); steps = int(sys.argv[3]); nbins = int(sys.argv[4])
data = FoldData(cfg, fold); store = data.store
torch.manual_seed(0)
model = ChromDragoNN(ModelConfig(len(store.genes), with_mean))
ck = load_checkpoint(REPO / 'tmp/benchmark/run/fold0/stage1/stage1.pt')
model.trunk.load_state_dict({k[6:]: v for k, v in ck['state_dict'].items() if k.startswith('trunk.')})
model.trunk.eval()
train_bins = positive_enriched_subset(store, data.train_bins, data.train_ctx, nbins, 0.5, 1)
t0 = time.time()
feats = {}
with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
    for lo in range(0, len(train_bins), 128):
        idx = train_bins[lo:lo+128]
        f = model.trunk(torch.from_numpy(store.onehot(idx))).float()
        for i, b in enumerate(idx): feats[int(b)] = f[i]
print('cache', len(train_bins), time.time() - t0, flush=True)
sampler = PairSampler(store, train_bins, data.train_ctx, data.mean, 16, 32, 1)
expression = torch.from_numpy(store.expression)
opt = torch.optim.Adam(model.head.parameters(), lr=lr)
model.head.train()
t0 = time.time()
for step in range(steps):
    b = sampler.next()
    x = torch.stack([feats[int(i)] for i in b.bins]).repeat_interleave(b.contexts.shape[1], 0) * ZERO
    # 16 intervals x 32 contexts -> resample more intervals per step: use 4 batches
    expr = expression[torch.from_numpy(b.contexts.reshape(-1))]
    mean = torch.from_numpy(b.mean).repeat_interleave(b.contexts.shape[1], 0)
    logp = model.head(x, expr, mean if with_mean else None)
    loss = F.nll_loss(logp, torch.from_numpy(b.labels.reshape(-1)))
    opt.zero_grad(); loss.backward(); opt.step()
    if (step + 1) % 100 == 0: print(step + 1, float(loss.detach()), round(time.time() - t0, 1), flush=True)
if ZERO == 0: model.head.fc1.weight.data[:, :4200] = 0
model.eval()
test_bins = data.sample(data.train_bins, 600, tag=3)
m = data.mean
p = predict_bins(model, store, test_bins, data.test_ctx, m if with_mean else None, progress=False)
y = np.asarray(store.labels[test_bins][:, data.test_ctx])
print('test auprc (training loci, test ctx)', auprc(y, p), 'mean baseline', auprc(y, np.repeat(m[test_bins][:, None], len(data.test_ctx), 1)))
