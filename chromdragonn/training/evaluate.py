"""Evaluation on held-out contexts (and held-out loci): AUPRC / AUROC with scikit-learn.

Rows of the report, as in the paper (Table 1):
- mean baseline: the bin's mean accessibility over the fold's training contexts,
  the same feature the with-mean model receives (:func:`data.mean_feature`);
- weighted-mean baseline: the mean of the training contexts' labels of the bin,
  each context weighted by the Pearson correlation (clipped at 0) of its TF
  expression (arcsinh TPM over the gene panel) with the test context's;
- ResNet + expression; ResNet + expression + mean.
"Overall" pools every (bin, test context) pair; per-context values are also kept.
Fig. 1E: AUPRC of the pairs grouped by the fraction of training contexts in
which the bin is open.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from tqdm import tqdm

from chromdragonn.outputs.atomic import atomic_output
from chromdragonn.training.config import TrainingConfig

log = logging.getLogger(__name__)

# Fig. 1E: bins of "fraction of training contexts in which the locus is open"
OPEN_FRACTION_EDGES = (0.0, 1e-9, 0.1, 0.25, 0.5, 0.75, 1.0)
OPEN_FRACTION_LABELS = ("0", "(0, 0.1]", "(0.1, 0.25]", "(0.25, 0.5]", "(0.5, 0.75]", "(0.75, 1]")
PAPER_AUPRC = {"mean": 0.579, "weighted_mean": 0.587, "resnet_expr": 0.700, "resnet_expr_mean": 0.76}
METHOD_NAMES = {"mean": "mean baseline", "weighted_mean": "weighted-mean baseline",
                "resnet_expr": "ResNet + expression", "resnet_expr_mean": "ResNet + expression + mean"}


def auprc(y: np.ndarray, score: np.ndarray) -> float:
    """Pooled AUPRC over all entries (NaN when there is no positive)."""
    y, score = np.asarray(y).ravel(), np.asarray(score, dtype=np.float64).ravel()
    if y.sum() == 0:
        return float("nan")
    return float(average_precision_score(y, score))


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    y, score = np.asarray(y).ravel(), np.asarray(score, dtype=np.float64).ravel()
    if y.sum() == 0 or y.sum() == len(y):
        return float("nan")
    return float(roc_auc_score(y, score))


@torch.no_grad()
def predict_bins(model, store, bin_idx: np.ndarray, ctx_idx: np.ndarray, mean: np.ndarray | None,
                 batch_size: int = 64, device="cpu", progress: bool = True) -> np.ndarray:
    """P(accessible) of the store's bins in the store's contexts, (n, C); trunk once per bin."""
    model.eval()
    device = torch.device(device)
    expr = torch.from_numpy(store.expression[np.asarray(ctx_idx)]).to(device)
    out = np.zeros((len(bin_idx), len(ctx_idx)), np.float32)
    for lo in tqdm(range(0, len(bin_idx), batch_size), desc="predict", unit="batch", disable=not progress):
        idx = np.asarray(bin_idx[lo:lo + batch_size])
        seq = torch.from_numpy(store.onehot(idx)).to(device)
        m = torch.from_numpy(mean[idx]).to(device) if mean is not None and model.with_mean else None
        out[lo:lo + len(idx)] = model.predict_grid(seq, expr, m).float().cpu().numpy()
    return out


def weighted_mean_baseline(train_labels: np.ndarray, train_expr: np.ndarray, test_expr: np.ndarray) -> np.ndarray:
    """(n, T) labels, (T, G) and (C, G) expression -> (n, C) expression-similarity-weighted means."""
    r = np.corrcoef(np.vstack([test_expr, train_expr]))[: len(test_expr), len(test_expr):]
    w = np.clip(r, 0.0, None)
    w = w / w.sum(axis=1, keepdims=True)
    return np.asarray(train_labels, np.float64) @ w.T


def method_metrics(y: np.ndarray, score: np.ndarray, contexts: Sequence[str]) -> dict:
    per = {}
    for j, c in enumerate(contexts):
        per[c] = {"auprc": auprc(y[:, j], score[:, j]), "auroc": auroc(y[:, j], score[:, j]),
                  "positives": int(y[:, j].sum())}
    return {"auprc": auprc(y, score), "auroc": auroc(y, score),
            "mean_context_auprc": float(np.nanmean([v["auprc"] for v in per.values()])),
            "per_context": per}


def binned_auprc(y: np.ndarray, score: np.ndarray, open_fraction: np.ndarray) -> list[dict]:
    """Fig. 1E: AUPRC of the pairs whose bin is open in a given fraction of training contexts."""
    out = []
    for lo, hi, label in zip(OPEN_FRACTION_EDGES[:-1], OPEN_FRACTION_EDGES[1:], OPEN_FRACTION_LABELS):
        rows = (open_fraction == 0) if label == "0" else (open_fraction > lo) & (open_fraction <= hi)
        yy, ss = y[rows], score[rows]
        out.append({"bin": label, "pairs": int(yy.size), "positives": int(yy.sum()),
                    "auprc": auprc(yy, ss) if yy.size else float("nan")})
    return out


def evaluate_fold(cfg: TrainingConfig, fold: int, weights_with_mean: str | os.PathLike | None,
                  weights_no_mean: str | os.PathLike | None, out_dir: str | os.PathLike, data=None,
                  progress: bool = True) -> dict:
    """All four rows on the fold's test contexts, on training loci and on held-out loci."""
    from chromdragonn.nn.weights import load_model
    from chromdragonn.training.data import FoldData

    data = data or FoldData(cfg, fold)
    store = data.store
    ev = cfg.evaluate
    test_names = [store.contexts[i] for i in data.test_ctx]
    device = torch.device(cfg.device if torch.cuda.is_available() else "cpu")
    models = {}
    if weights_no_mean:
        models["resnet_expr"] = load_model(weights_no_mean)[0].to(device)
    if weights_with_mean:
        models["resnet_expr_mean"] = load_model(weights_with_mean)[0].to(device)
    results = {"fold": fold, "test_contexts": test_names,
               "train_contexts": [store.contexts[i] for i in data.train_ctx],
               "valid_contexts": [store.contexts[i] for i in data.valid_ctx], "settings": {}}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = {}
    for setting, bins, n, tag in (("training loci", data.train_bins, ev.bins_training_loci, 3),
                                  ("held-out loci", data.heldout_bins, ev.bins_heldout_loci, 4)):
        idx = data.sample(bins, n, tag)
        y = np.asarray(store.labels[idx][:, data.test_ctx])
        train_lab = np.asarray(store.labels[idx][:, data.train_ctx])
        scores = {"mean": np.repeat(data.mean[idx, None], len(data.test_ctx), axis=1),
                  "weighted_mean": weighted_mean_baseline(train_lab, store.expression[data.train_ctx],
                                                          store.expression[data.test_ctx])}
        for name, model in models.items():
            scores[name] = predict_bins(model, store, idx, data.test_ctx, data.mean, device=device,
                                        batch_size=cfg.eval_batch_size, progress=progress)
        open_fraction = np.repeat(train_lab.mean(axis=1)[:, None], len(data.test_ctx), axis=1)
        res = {"bins": int(len(idx)), "pairs": int(y.size), "positive_rate": float(y.mean()), "methods": {}}
        truth = store.directory / "probability.npy"  # simulated stores keep the rule's P(accessible)
        if truth.is_file():
            p_true = np.asarray(np.load(truth, mmap_mode="r")[idx][:, data.test_ctx], np.float64)
            # the ceiling: labels are Bernoulli draws from this probability
            res["rule_probability"] = {"auprc": auprc(y, p_true), "auroc": auroc(y, p_true)}
        for name, s in scores.items():
            m = method_metrics(y, s, test_names)
            m["fig1e"] = binned_auprc(y, s, open_fraction)
            res["methods"][name] = m
            p, r, _ = precision_recall_curve(y.ravel(), s.ravel())
            step = max(1, len(p) // 400)  # keep the curve small
            curves[f"{setting}/{name}"] = (r[::step].tolist(), p[::step].tolist())
        results["settings"][setting] = res
    with open(out_dir / "metrics.json", "w") as fh:
        json.dump(results, fh, indent=1)
    with open(out_dir / "pr_curves.json", "w") as fh:
        json.dump(curves, fh)
    return results


def plot_pr_curves(curves: dict, title: str, path: str | os.PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = sorted({k.split("/")[0] for k in curves}, reverse=True)
    fig, axes = plt.subplots(1, len(settings), figsize=(5.2 * len(settings), 4.4), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        for name in METHOD_NAMES:
            key = f"{setting}/{name}"
            if key in curves:
                r, p = curves[key]
                ax.plot(r, p, label=METHOD_NAMES[name], lw=1.4)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"held-out contexts, {setting}")
        ax.legend(fontsize=8, loc="upper right")
    fig.suptitle(title + " (simulated labels)" if "simulated" not in title else title, fontsize=10)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
