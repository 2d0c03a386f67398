"""encode_dnase_chr22: per-context AUPRC / AUROC on the held-out loci, with baselines and leave-one-context-out.

    python training/diagnostics/encode_dnase_eval.py --config training/configs/encode_dnase_chr22.yaml

Held-out loci: the config's ``loci.heldout`` (chr22:21,000,001-22,000,000, 1-based inclusive): every bin
whose whole 1 kb window lies inside (10,968 bins); never trained on, never used for selection. Per
context (E116 GM12878, E117 HeLa-S3, E123 K562, E003 H1) the rows are:

- ``model + mean (4-context track)``: fold 0's with-mean model (the shipped ``encode_dnase_chr22``) with
  the mean track it ships (mean over all four training contexts, so it includes the scored context's own
  label at the bin: the setting of a user predicting in a training context, and an optimistic one);
- ``model + mean of the other 3``: the same model fed the mean over the three OTHER contexts (same 50 bp
  smoothing), which holds no label of the scored context;
- ``model, no mean``: fold 0's model without the mean input (trained, reported, not shipped);
- ``mean of the other 3 contexts``: the baseline, each bin's own mean label over the other three contexts;
- ``k-mer logistic regression``: per context, scikit-learn L2 logistic regression on log(1 + count) of
  canonical k-mers (default k = 6: 2,080 features) of the 1 kb window, fitted on training loci (every bin
  open in >= 1 context + as many closed ones drawn at random, seeded), C (1e-5 to 1e-2) chosen on the validation loci;
- ``LOCO + mean`` / ``LOCO, no mean``: leave-one-context-out. For each context t, a new stage-2 head
  (expression [+ mean over the three others]) is trained on the three other contexts only (folds 1-4 of
  the folds file) and predicts t's held-out loci from t's RNA-seq. The heads sit on the trunk of the
  with-mean model (features cached once, the head warm-up of chromdragonn/training/train.py), and that
  trunk was trained on all four contexts' labels at training loci: the sequence part has seen t.

Outputs (``--out``, default ``<run_dir>/eval``): ``metrics.json`` and ``table.md``, written atomically; the
predictions and features of each part are cached there (``*.npy``) so a rerun skips finished parts.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from chromdragonn.training.config import HeadWarmup, load_config  # noqa: E402
from chromdragonn.training.data import FoldData, mean_feature  # noqa: E402
from chromdragonn.training.evaluate import auprc, auroc  # noqa: E402

log = logging.getLogger("encode_dnase_eval")
NAMES = {"E116": "GM12878", "E117": "HeLa-S3", "E123": "K562", "E003": "H1"}
ROWS = [("model_mean4", "model + mean (4-context track, incl. own label)"),
        ("model_mean_others", "model + mean of the other 3 (track)"),
        ("model_no_mean", "model, no mean"),
        ("loco_mean", "LOCO head + mean of the other 3"),
        ("loco_no_mean", "LOCO head, no mean"),
        ("mean_others", "baseline: mean of the other 3 contexts' labels"),
        ("kmer_lr", "baseline: k-mer logistic regression")]


# ---- k-mer baseline ------------------------------------------------------------------------------

def canonical_index(k: int) -> tuple[np.ndarray, int]:
    """k-mer code (base 4, A=0 C=1 G=2 T=3) -> index of its canonical (min with reverse complement) class."""
    codes = np.arange(4 ** k)
    digits = (codes[:, None] // 4 ** np.arange(k - 1, -1, -1)) % 4
    rc = ((3 - digits[:, ::-1]) * 4 ** np.arange(k - 1, -1, -1)).sum(axis=1)
    canon = np.minimum(codes, rc)
    uniq, idx = np.unique(canon, return_inverse=True)
    return idx, len(uniq)


def kmer_features(store, bins: np.ndarray, k: int, batch: int = 2048) -> np.ndarray:
    """log(1 + canonical k-mer counts) of each bin's 1 kb window; k-mers with an N are skipped."""
    cls, n_cls = canonical_index(k)
    out = np.zeros((len(bins), n_cls), np.float32)
    for lo in range(0, len(bins), batch):
        codes = np.asarray(store.window_codes(bins[lo:lo + batch])).astype(np.int64)  # (B, 1000), 4 = N
        b, length = codes.shape
        n = length - k + 1
        val = np.zeros((b, n), np.int64)
        bad = np.zeros((b, n), bool)
        for j in range(k):
            c = codes[:, j:j + n]
            val = val * 4 + np.minimum(c, 3)
            bad |= c > 3
        flat = cls[val] + n_cls * np.arange(b)[:, None]
        counts = np.bincount(flat[~bad], minlength=b * n_cls).reshape(b, n_cls)
        out[lo:lo + b] = np.log1p(counts)
    return out


def kmer_lr(store, d0, k: int, seed: int) -> np.ndarray:
    """(n_heldout, C) P(open) of the per-context k-mer logistic regressions."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    lab = np.asarray(store.labels)
    open_any = lab[d0.train_bins].any(axis=1)
    rng = np.random.default_rng([seed, 77])
    pos = d0.train_bins[open_any]
    neg = rng.choice(d0.train_bins[~open_any], min(len(pos), int((~open_any).sum())), replace=False)
    train = np.sort(np.concatenate([pos, neg]))
    t0 = time.time()
    x_tr, x_va, x_ho = (kmer_features(store, b, k) for b in (train, d0.valid_bins, d0.heldout_bins))
    scaler = StandardScaler().fit(x_tr)
    x_tr, x_va, x_ho = scaler.transform(x_tr), scaler.transform(x_va), scaler.transform(x_ho)
    log.info("k-mer features (k=%d, %d columns) of %d / %d / %d bins: %.0f s", k, x_tr.shape[1], len(train),
             len(d0.valid_bins), len(d0.heldout_bins), time.time() - t0)
    out = np.zeros((len(d0.heldout_bins), len(store.contexts)), np.float32)
    chosen = {}
    for j, ctx in enumerate(store.contexts):
        y_tr, y_va = lab[train, j], lab[d0.valid_bins, j]
        best = None
        for c in (1e-5, 1e-4, 1e-3, 1e-2):
            m = LogisticRegression(C=c, max_iter=300).fit(x_tr, y_tr)
            score = auprc(y_va, m.predict_proba(x_va)[:, 1])
            if best is None or score > best[0]:
                best = (score, c, m)
        chosen[ctx] = {"C": best[1], "valid_auprc": best[0]}
        out[:, j] = best[2].predict_proba(x_ho)[:, 1]
        log.info("k-mer LR %s: C %g, validation AUPRC %.3f", ctx, best[1], best[0])
    kmer_lr.chosen = chosen
    return out


# ---- the networks ----------------------------------------------------------------------------------

@torch.no_grad()
def trunk_features(model, store, bins: np.ndarray, batch: int = 128) -> torch.Tensor:
    """fp32 trunk features (n, 4200) in eval mode."""
    model.eval()
    out = torch.empty(len(bins), model.head.trunk_dim)
    for lo in range(0, len(bins), batch):
        out[lo:lo + batch] = model.trunk(torch.from_numpy(store.onehot(bins[lo:lo + batch])))
        if lo // batch % 20 == 0:
            log.info("trunk features: %d / %d", lo, len(bins))
    return out


@torch.no_grad()
def head_probs(model, feats: torch.Tensor, expression: np.ndarray, mean: np.ndarray | None) -> np.ndarray:
    """(n, C) P(open) from cached features; ``mean`` (n,) or (n, C) (one mean input per context)."""
    model.eval()
    expr = torch.from_numpy(np.asarray(expression, np.float32))
    out = np.zeros((len(feats), len(expr)), np.float32)
    for j in range(len(expr)):
        m = None
        if model.with_mean:
            col = mean if mean.ndim == 1 else mean[:, j]
            m = torch.from_numpy(np.asarray(col, np.float32))
        out[:, j] = model.head.forward_grid(feats, expr[j:j + 1], m)[:, 0].exp().numpy()
    return out


def loco_bins(store, train_bins: np.ndarray, ctx: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A LOCO head's training bins, chosen with its own contexts' labels only: n/2 bins open in >= 1 of
    ``ctx`` and n/2 closed in all of them, each the bins of lowest rank under one seeded random order of
    the training loci (the same order for every fold, so the folds' sets overlap and the trunk features of
    their union are computed once)."""
    rank = np.random.default_rng([seed, 55]).permutation(len(train_bins))
    open_any = np.asarray(store.labels[train_bins][:, ctx]).any(axis=1)
    order = np.argsort(rank)
    pos = [i for i in order if open_any[i]][: n // 2]
    neg = [i for i in order if not open_any[i]][: n - len(pos)]
    return np.sort(train_bins[np.array(pos + neg)])


def cached(path: Path, make):
    if path.is_file():
        log.info("reusing %s", path)
        return np.load(path)
    value = make()
    value = value.numpy() if isinstance(value, torch.Tensor) else value
    tmp = path.with_suffix(".partial.npy")
    np.save(tmp, value)
    tmp.replace(path)
    return value


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", default=None, help="default: <run_dir>/eval")
    ap.add_argument("--kmer-k", type=int, default=6)
    ap.add_argument("--loco-steps", type=int, default=200, help="head steps per LOCO head")
    ap.add_argument("--loco-bins", type=int, default=3000, help="training-loci bins per LOCO head (half open)")
    ap.add_argument("--parts", default="baselines,model,loco")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--run-dir", default=None, help="override the config's run_dir")
    ap.add_argument("--smoke", type=int, default=None, help=argparse.SUPPRESS)  # N bins of each kind: checks the script
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, run_dir=args.run_dir)
    run = Path(cfg.run_dir)
    out = Path(args.out or run / "eval")
    out.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    d0 = FoldData(cfg, 0)
    store = d0.store
    if args.smoke:
        rng = np.random.default_rng(0)
        for name in ("train_bins", "valid_bins", "heldout_bins"):
            setattr(d0, name, np.sort(rng.choice(getattr(d0, name), args.smoke, replace=False)))
    ctxs = list(store.contexts)
    held = d0.heldout_bins
    y = np.asarray(store.labels[held]).astype(np.int64)
    C = len(ctxs)
    others = {j: np.array([i for i in range(C) if i != j]) for j in range(C)}
    preds: dict[str, np.ndarray] = {}
    timings = {}

    t = time.time()
    if "baselines" in parts:
        preds["mean_others"] = np.stack([y[:, others[j]].mean(axis=1) for j in range(C)], axis=1)
        preds["kmer_lr"] = cached(out / f"pred_kmer_lr_k{args.kmer_k}.npy", lambda: kmer_lr(store, d0, args.kmer_k, cfg.seed))
        timings["baselines_s"] = round(time.time() - t, 1)

    from chromdragonn.nn.weights import load_model
    from chromdragonn.training.train import init_mean_column, warm_up_head

    mean_others_track = np.stack([mean_feature(store, others[j])[held] for j in range(C)], axis=1)
    wm_path = run / "fold0" / "stage2_with_mean" / "weights.pt"
    nm_path = run / "fold0" / "stage2_no_mean" / "weights.pt"
    feats_wm = None
    if "model" in parts or "loco" in parts:
        t = time.time()
        wm, _ = load_model(wm_path)
        feats_wm = torch.from_numpy(cached(out / "feats_with_mean_heldout.npy", lambda: trunk_features(wm, store, held)))
        preds["model_mean4"] = head_probs(wm, feats_wm, store.expression, d0.mean[held])
        preds["model_mean_others"] = head_probs(wm, feats_wm, store.expression, mean_others_track)
        timings["with_mean_model_s"] = round(time.time() - t, 1)
    if "model" in parts and nm_path.is_file():
        t = time.time()

        def no_mean():
            nm, _ = load_model(nm_path)
            same = feats_wm is not None and all(
                torch.equal(a, b) for a, b in zip(nm.trunk.state_dict().values(), wm.trunk.state_dict().values()))
            if same:  # frozen-trunk stage 2: both models carry the stage-1 trunk
                log.info("the no-mean model's trunk is the with-mean model's: reusing its features")
            return head_probs(nm, feats_wm if same else trunk_features(nm, store, held), store.expression, None)

        preds["model_no_mean"] = cached(out / "pred_model_no_mean.npy", no_mean)
        timings["no_mean_model_s"] = round(time.time() - t, 1)
    loco_info = {}
    if "loco" in parts:
        t = time.time()
        fold_bins = {fold: loco_bins(store, d0.train_bins, FoldData(cfg, fold, store).train_ctx, args.loco_bins,
                                     cfg.seed) for fold in range(1, C + 1)}
        union = np.unique(np.concatenate(list(fold_bins.values())))
        feats_union = torch.from_numpy(cached(out / f"feats_with_mean_train{args.loco_bins}.npy",
                                              lambda: trunk_features(wm, store, union))).to(torch.bfloat16)
        for with_mean in (True, False):
            key = "loco_mean" if with_mean else "loco_no_mean"
            p = np.full((len(held), C), np.nan, np.float32)
            for fold in range(1, C + 1):
                dk = FoldData(cfg, fold, store)
                (tj,) = dk.test_ctx
                path = out / f"pred_{key}_{ctxs[tj]}_s{args.loco_steps}.npy"

                def train_head():
                    from chromdragonn.nn.model import ChromDragoNN, ModelConfig

                    torch.manual_seed(cfg.seed + fold)
                    m = ChromDragoNN(ModelConfig(len(store.genes), with_mean, cfg.dropout, cfg.trunk))
                    m.trunk.load_state_dict(wm.trunk.state_dict())
                    init_mean_column(m, cfg.stage2.mean_init_scale)
                    warm = HeadWarmup(steps=args.loco_steps, intervals=128, contexts_per_interval=len(dk.train_ctx),
                                      lr=cfg.stage2.head_warmup.lr)
                    info = warm_up_head(m, dk, warm, cfg, cfg.seed + 1000 * fold, torch.device("cpu"),
                                        progress=False,
                                        features=(fold_bins[fold], feats_union[np.searchsorted(union, fold_bins[fold])]))
                    log.info("LOCO %s %s: head %d steps, final loss %.4f, %.0f s", key, ctxs[tj], info["steps"],
                             info["final_loss"], info["seconds"])
                    return head_probs(m, feats_wm, store.expression[[tj]], dk.mean[held] if with_mean else None)[:, 0]

                p[:, tj] = cached(path, train_head)
                loco_info[f"{key}/{ctxs[tj]}"] = {"train_contexts": [ctxs[i] for i in dk.train_ctx]}
            preds[key] = p
        timings["loco_s"] = round(time.time() - t, 1)

    metrics = {"heldout": cfg.loci.heldout, "n_bins": int(len(held)), "contexts": ctxs,
               "positives": {c: int(y[:, j].sum()) for j, c in enumerate(ctxs)},
               "methods": {}, "timings": timings, "kmer_lr": getattr(kmer_lr, "chosen", None),
               "loco": loco_info, "loco_steps": args.loco_steps, "loco_bins": args.loco_bins,
               "kmer_k": args.kmer_k}
    for key, _ in ROWS:
        if key not in preds:
            continue
        metrics["methods"][key] = {c: {"auprc": auprc(y[:, j], preds[key][:, j]),
                                       "auroc": auroc(y[:, j], preds[key][:, j])} for j, c in enumerate(ctxs)}
        for stat in ("auprc", "auroc"):
            metrics["methods"][key][f"mean_{stat}"] = float(np.mean([metrics["methods"][key][c][stat] for c in ctxs]))
    head = "| method | " + " | ".join(f"{c} {NAMES.get(c, '')} AUPRC / AUROC" for c in ctxs) + " | mean AUPRC / AUROC |"
    lines = [head, "|---" * (C + 2) + "|",
             "| positives / bins | " + " | ".join(f"{metrics['positives'][c]} / {len(held)} "
                                                  f"({100 * metrics['positives'][c] / len(held):.1f}%)" for c in ctxs) + " | |"]
    for key, label in ROWS:
        if key in metrics["methods"]:
            m = metrics["methods"][key]
            lines.append(f"| {label} | " + " | ".join(f"{m[c]['auprc']:.3f} / {m[c]['auroc']:.3f}" for c in ctxs)
                         + f" | {m['mean_auprc']:.3f} / {m['mean_auroc']:.3f} |")
    table = "\n".join(lines) + "\n"
    from chromdragonn.outputs.atomic import atomic_output

    with atomic_output(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=1))
    with atomic_output(out / "table.md") as tmp:
        tmp.write_text(table)
    print(table)
    print(f"wrote {out / 'metrics.json'} and {out / 'table.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
