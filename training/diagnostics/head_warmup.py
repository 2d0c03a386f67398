"""Diagnostic (not part of the pipeline): the stage-2 head trained alone on cached trunk features.

Fold 0 of the benchmark: trunk from a stage-1 state (frozen; features of 20,000 positive-enriched
training bins cached once with bf16 autocast, kept in tmp/diagnostics/), head trained with Adam on
the paper's balanced pairs in B x K batches, then scored on 600 bins x fold 0's held-out contexts,
on training loci and on held-out loci, beside the mean and weighted-mean baselines. Each AUPRC is
printed pooled / averaged per context.

    python training/diagnostics/head_warmup.py --mean-init-scale 0      # PyTorch's default init
    python training/diagnostics/head_warmup.py --mean-init-scale 30     # the shipped recipe
    python training/diagnostics/head_warmup.py --trunk-columns 0        # mean + expression only

Needs the store of `python -m chromdragonn.training simulate` and a stage-1 state (default: the
benchmark run's fold 0).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from chromdragonn.model import ChromDragoNN, ModelConfig  # noqa: E402
from chromdragonn.training.data import PairSampler, positive_enriched_subset  # noqa: E402
from chromdragonn.training.evaluate import auprc, predict_bins, weighted_mean_baseline  # noqa: E402
from chromdragonn.training.train import (FoldData, cache_trunk_features, init_head_from_stage1,  # noqa: E402
                                         init_mean_column, load_checkpoint)

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--stage1", default=str(REPO / "tmp/benchmark/run_v2/fold0/stage1/stage1.pt"))
ap.add_argument("--bins", type=int, default=8000, help="training bins (a seeded subset of the 20,000 cached)")
ap.add_argument("--intervals", type=int, default=128)
ap.add_argument("--contexts-per-interval", type=int, default=4)
ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--steps", type=int, default=600)
ap.add_argument("--mean-init-scale", type=float, default=30.0)
ap.add_argument("--no-mean", action="store_true")
ap.add_argument("--copy-stage1-head", action="store_true")
ap.add_argument("--trunk-columns", type=float, default=1.0, help="0: trunk features zeroed (mean + expression only)")
a = ap.parse_args()

torch.set_num_threads(1)
cfg = yaml.safe_load(open(REPO / "training/configs/benchmark.yaml"))
cfg["store"] = str(REPO / cfg["store"])
cfg["folds_file"] = str(REPO / cfg["folds_file"])
data = FoldData(cfg, 0)
store = data.store
torch.manual_seed(0)
model = ChromDragoNN(ModelConfig(len(store.genes), not a.no_mean))
ck = load_checkpoint(Path(a.stage1))
model.trunk.load_state_dict({k[6:]: v for k, v in ck["state_dict"].items() if k.startswith("trunk.")})
if a.copy_stage1_head:
    init_head_from_stage1(model, ck["state_dict"])
init_mean_column(model, a.mean_init_scale)
cached = positive_enriched_subset(store, data.train_bins, data.train_ctx, 20000, 0.5, 1)
cache = REPO / "tmp/diagnostics" / f"features_fold0_{Path(a.stage1).stat().st_mtime_ns}.pt"
if cache.is_file():
    feats = torch.load(cache, weights_only=True)
else:
    feats = cache_trunk_features(model, store, cached, {"amp_cpu": True}, torch.device("cpu"))
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(feats, cache)
pick = np.sort(np.random.default_rng(5).choice(len(cached), min(a.bins, len(cached)), replace=False))
bins, feats = cached[pick], feats[torch.from_numpy(pick)]
row_of = np.full(len(store), -1)
row_of[bins] = np.arange(len(bins))
sampler = PairSampler(store, bins, data.train_ctx, data.mean, a.intervals, a.contexts_per_interval, 1,
                      with_sequence=False)
expression = torch.from_numpy(store.expression)
opt = torch.optim.Adam(model.head.parameters(), lr=a.lr)
model.head.train()
t0, losses = time.time(), []
for step in range(a.steps):
    b = sampler.next()
    k = b.contexts.shape[1]
    x = feats[torch.from_numpy(row_of[b.bins])].float().repeat_interleave(k, 0) * a.trunk_columns
    expr = expression[torch.from_numpy(b.contexts.reshape(-1))]
    mean = None if a.no_mean else torch.from_numpy(b.mean).repeat_interleave(k, 0)
    loss = F.nll_loss(model.head(x, expr, mean), torch.from_numpy(b.labels.reshape(-1)))
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(float(loss.detach()))
    if (step + 1) % 200 == 0:
        print(f"step {step + 1}: loss {np.mean(losses[-200:]):.4f} ({time.time() - t0:.0f} s)", flush=True)
if a.trunk_columns == 0:
    model.head.fc1.weight.data[:, :model.head.trunk_dim] = 0
model.eval()
tc = data.test_ctx
for name, tag, pool in (("training loci", 3, data.train_bins), ("held-out loci", 4, data.heldout_bins)):
    idx = data.sample(pool, 600, tag)
    y = np.asarray(store.labels[idx][:, tc])
    scores = {"model": predict_bins(model, store, idx, tc, None if a.no_mean else data.mean, progress=False),
              "mean": np.repeat(data.mean[idx][:, None], len(tc), 1),
              "weighted mean": weighted_mean_baseline(np.asarray(store.labels[idx][:, data.train_ctx]),
                                                      store.expression[data.train_ctx], store.expression[tc])}
    text = ", ".join(f"{k} {auprc(y, s):.3f} / {np.mean([auprc(y[:, j], s[:, j]) for j in range(len(tc)) if y[:, j].any()]):.3f}"
                     for k, s in scores.items())
    print(f"{name} (AUPRC pooled / per context): {text}")
