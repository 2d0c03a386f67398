"""Diagnostic (not part of the pipeline): how much of the simulated rule has a stage-1 trunk learnt?

    python training/diagnostics/stage1_vs_rule.py [STAGE1_STATE] [FOLD]

On 600 training-loci bins (the evaluation's sample) x the fold's held-out contexts: the AUPRC of the
stage-1 model's mean prediction over its training contexts, of the mean feature, and the Pearson
correlation of each with the rule's mean P(accessible) over the training contexts (probability.npy
of the simulated store).
"""
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from chromdragonn.nn.model import SequenceModel  # noqa: E402
from chromdragonn.training.config import load_config  # noqa: E402
from chromdragonn.training.data import FoldData
from chromdragonn.training.evaluate import auprc  # noqa: E402
from chromdragonn.training.train import load_checkpoint  # noqa: E402

state = sys.argv[1] if len(sys.argv) > 1 else str(REPO / "tmp/benchmark/run_v2/fold0/stage1/stage1.pt")
fold = int(sys.argv[2]) if len(sys.argv) > 2 else 0
torch.set_num_threads(1)
cfg = load_config(REPO / "training/configs/benchmark.yaml")
cfg = cfg.replace(store=str(REPO / cfg.store), folds_file=str(REPO / cfg.folds_file))
data = FoldData(cfg, fold)
store = data.store
ck = load_checkpoint(Path(state))
model = SequenceModel(ck["n_tasks"])
model.load_state_dict(ck["state_dict"])
model.eval()
idx = data.sample(data.train_bins, 600, 3)
y = np.asarray(store.labels[idx][:, data.test_ctx])
with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
    p = torch.cat([torch.sigmoid(model(torch.from_numpy(store.onehot(idx[i:i + 128]))).float())
                   for i in range(0, len(idx), 128)]).numpy().mean(axis=1)
truth = np.asarray(np.load(Path(cfg.store) / "probability.npy", mmap_mode="r")[idx][:, data.train_ctx],
                   np.float64).mean(axis=1)
n = len(data.test_ctx)
print(f"stage-1 mean prediction: AUPRC {auprc(y, np.repeat(p[:, None], n, 1)):.3f}, "
      f"r with the rule {np.corrcoef(p, truth)[0, 1]:.2f}")
print(f"mean feature:            AUPRC {auprc(y, np.repeat(data.mean[idx][:, None], n, 1)):.3f}, "
      f"r with the rule {np.corrcoef(data.mean[idx], truth)[0, 1]:.2f}")
