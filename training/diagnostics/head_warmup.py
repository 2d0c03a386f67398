"""Diagnostic (not part of the pipeline): the stage-2 head trained alone on cached trunk features.

One fold of the benchmark (`--fold`, default 0): trunk from a stage-1 state (frozen; features of
the `--bins` training bins, a seeded subset of 20,000 positive-enriched ones, cached once with the
config's autocast setting, kept in tmp/diagnostics/), head
trained with Adam on the paper's balanced pairs in B x K batches, then scored beside the mean and
weighted-mean baselines on 600 validation-loci bins x the fold's validation contexts, and on 600 bins x
its held-out (test) contexts on training loci and on held-out loci. Each AUPRC is printed pooled /
averaged per context.

    python training/diagnostics/head_warmup.py --mean-init-scale 0      # PyTorch's default init
    python training/diagnostics/head_warmup.py --mean-init-scale 30     # the shipped recipe
    python training/diagnostics/head_warmup.py --trunk-columns 0        # mean + expression only
    python training/diagnostics/head_warmup.py --features oracle        # the rule's own sequence terms
                                                                        # in place of the trunk features

With `--features oracle` the 4,200 trunk columns hold the rule's sequence terms instead (column 0: its
context-independent part, columns 1-10: the occupancy of each context motif, each standardised; the rest
zero): the best features a trunk could learn, so the head alone is what is measured.

One thread unless THREADS is set (THREADS=2 python training/diagnostics/head_warmup.py ...).

Needs the store of `python -m chromdragonn.training simulate` and a stage-1 state (default: the
benchmark run's stage 1 of that fold).
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from chromdragonn.nn.model import ChromDragoNN, ModelConfig  # noqa: E402
from chromdragonn.training.config import load_config  # noqa: E402
from chromdragonn.training.data import (  # noqa: E402
    FoldData,  # noqa: E402
    PairSampler,
    positive_enriched_subset,
)
from chromdragonn.training.evaluate import auprc, weighted_mean_baseline  # noqa: E402
from chromdragonn.training.standardise import fold_fc1, standardise_fc1  # noqa: E402
from chromdragonn.training.train import (  # noqa: E402
    cache_trunk_features,
    init_head_from_stage1,
    init_mean_column,
    load_checkpoint,
)

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--config", default="training/configs/benchmark.yaml",
                help="benchmark config (store, folds file, loci); training/configs/benchmark_v2.yaml for benchmark v2")
ap.add_argument("--store", default=None, help="override the config's store (e.g. a rule variant's)")
ap.add_argument("--fold", type=int, default=0)
ap.add_argument("--stage1", default=None, help="stage-1 state (default: the benchmark run's, of --fold)")
ap.add_argument("--bins", type=int, default=8000, help="training bins (a seeded subset of the 20,000 cached)")
ap.add_argument("--intervals", type=int, default=128)
ap.add_argument("--contexts-per-interval", type=int, default=4)
ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--steps", type=int, default=600)
ap.add_argument("--mean-init-scale", type=float, default=None,
                help="fc1's mean column ~ U(-S, S); default: the config's stage2.mean_init_scale")
ap.add_argument("--no-mean", action="store_true")
ap.add_argument("--copy-stage1-head", action="store_true")
ap.add_argument("--l1-expression", type=float, default=0.0,
                help="L1 penalty on fc1's expression columns (sum of |w|, times this)")
ap.add_argument("--expression", choices=["real", "oracle-gates"], default="real",
                help="oracle-gates: every gene zeroed except the rule's 10 context TFs, which carry their gate")
ap.add_argument("--standardise-expression", action=argparse.BooleanOptionalAction, default=None,
                help="train fc1 on each gene z-scored over the training contexts, as the pipeline does "
                     "(chromdragonn/training/standardise.py); default: the config's stage2.standardise_expression")
ap.add_argument("--expression-pcs", type=int, default=0,
                help="K > 0: every context's expression replaced by its projection on the top K principal components "
                     "of the training contexts' expression (mean + P P^T (e - mean)), so the head can read only those "
                     "K directions; a linear map, so it folds into fc1's expression columns and bias exactly")
ap.add_argument("--features", choices=["trunk", "oracle"], default="trunk")
ap.add_argument("--compact-oracle-head", action="store_true",
                help="with --features oracle: drop fc1's 4,189 all-zero trunk columns: the same function and the same "
                     "init, ~2x faster, but float sums in another order, so training differs as much as between "
                     "reruns (v1 fold 0, training loci: 0.566 against 0.573 with the full head)")
ap.add_argument("--trunk-columns", type=float, default=1.0, help="0: trunk features zeroed (mean + expression only)")
ap.add_argument("--dump", default=None, help="write the held-out contexts' scores and labels at training loci (NPZ)")
ap.add_argument("--select-every", type=int, default=None,
                help="every N steps, score the head on the validation bins x validation contexts (pooled AUPRC) and "
                     "keep the best state, as the pipeline's warm-up does (default: the config's "
                     "stage2.head_warmup.select_every); 0: the last state")
ap.add_argument("--seed", type=int, default=0,
                help="seed of the head's init and of the pair sampler (0 reproduces the runs in REPORT.md); the "
                     "evaluation bins do not depend on it")
a = ap.parse_args()
a.stage1 = a.stage1 or str(REPO / f"tmp/benchmark/run_v2/fold{a.fold}/stage1/stage1.pt")

torch.set_num_threads(int(os.environ.get("THREADS", "1")))
cfg = load_config(REPO / a.config)
cfg = cfg.replace(store=str(REPO / (a.store or cfg.store)), folds_file=str(REPO / cfg.folds_file))
if a.select_every is None:
    a.select_every = cfg.stage2.head_warmup.select_every
if a.mean_init_scale is None:
    a.mean_init_scale = float(cfg.stage2.mean_init_scale or 0.0)
if a.standardise_expression is None:
    a.standardise_expression = cfg.stage2.standardise_expression
print(f"config {a.config}, store {cfg.store}, fold {a.fold}, seed {a.seed}, features {a.features}, "
      f"{'no mean' if a.no_mean else f'mean init scale {a.mean_init_scale}'}, steps {a.steps}, "
      f"expression {'standardised' if a.standardise_expression else 'raw'}", flush=True)
data = FoldData(cfg, a.fold)
store = data.store
torch.manual_seed(a.seed)
model = ChromDragoNN(ModelConfig(len(store.genes), not a.no_mean))
if a.features == "trunk":
    ck = load_checkpoint(Path(a.stage1))
    model.trunk.load_state_dict({k[6:]: v for k, v in ck["state_dict"].items() if k.startswith("trunk.")})
if a.copy_stage1_head:
    init_head_from_stage1(model, ck["state_dict"])
init_mean_column(model, a.mean_init_scale)
cached = positive_enriched_subset(store, data.train_bins, data.train_ctx, 20000, 0.5, 1)
rule = None
if a.features == "oracle" or a.expression == "oracle-gates":
    from chromdragonn.training.simulate import DEFAULT_RULE, SimulatedAccessibility
    # the store's own rule (v1 or v2); its sequence terms only: the locus field of rule v2 is not
    # something a trunk can see in the window, the mean feature is how the model sees it
    own = store.directory / "rule.json"
    rule = SimulatedAccessibility.load(own if own.is_file() else DEFAULT_RULE, genes=store.genes)


def rule_terms(idx):
    """The rule's context-independent part and context-motif occupancies, (n, 1 + 10)."""
    idx = np.asarray(idx)
    return np.vstack([np.column_stack(rule.sequence_terms(store.onehot(idx[i:i + 2000])))
                      for i in range(0, len(idx), 2000)])


if a.features == "oracle":
    train_terms = rule_terms(cached)
    term_mean, term_sd = train_terms.mean(0), train_terms.std(0)  # standardise with the training bins
    if a.compact_oracle_head:
        # fc1 without its all-zero trunk columns: their weights get zero gradients and never move
        # (Adam's update of a zero gradient is 0) and add 0 to every output, so the head computes
        # the same function up to float rounding, ~3x faster (same init: fc1 is built full first)
        n_terms = train_terms.shape[1]
        w_trunk, _, _ = model.head.fc1_parts()
        old = model.head.fc1
        model.head.fc1 = torch.nn.Linear(old.in_features - model.head.trunk_dim + n_terms, old.out_features)
        with torch.no_grad():
            model.head.fc1.weight.copy_(torch.cat([old.weight[:, :n_terms], old.weight[:, model.head.trunk_dim:]], 1))
            model.head.fc1.bias.copy_(old.bias)
        model.head.trunk_dim = n_terms

    def oracle_features(idx, terms=None):
        terms = rule_terms(idx) if terms is None else terms
        out = np.zeros((len(terms), model.head.trunk_dim), np.float32)
        out[:, :terms.shape[1]] = (terms - term_mean) / term_sd
        return torch.from_numpy(out)

    feats = oracle_features(cached, train_terms)
pick = np.sort(np.random.default_rng(5).choice(len(cached), min(a.bins, len(cached)), replace=False))
if a.features == "oracle":
    feats = feats[torch.from_numpy(pick)]
elif (cache := REPO / "tmp/diagnostics" /
      f"features_fold{a.fold}_{Path(a.stage1).stat().st_mtime_ns}_{len(pick)}.pt").is_file():
    feats = torch.load(cache, weights_only=True)
else:  # only the bins the head trains on, with the config's autocast setting, as the pipeline's warm-up
    feats = cache_trunk_features(model, store, cached[pick], cfg, torch.device("cpu"))
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(feats, cache)
bins = cached[pick]
row_of = np.full(len(store), -1)
row_of[bins] = np.arange(len(bins))
sampler = PairSampler(store, bins, data.train_ctx, data.mean, a.intervals, a.contexts_per_interval, 1 + a.seed,
                      with_sequence=False)
expression = torch.from_numpy(store.expression)
if a.expression_pcs:
    train_e = expression[data.train_ctx].double()
    mu_e = train_e.mean(0)
    _, _, vt = torch.linalg.svd(train_e - mu_e, full_matrices=False)
    pcs = vt[:a.expression_pcs]  # (K, genes), from the training contexts only
    expression = (mu_e + ((expression.double() - mu_e) @ pcs.T) @ pcs).to(expression.dtype)
if a.expression == "oracle-gates":
    gate_expr = np.zeros_like(store.expression)
    gate_expr[:, [t.gene_index for t in rule.context_terms]] = rule.gates(store.expression)
    expression = torch.from_numpy(gate_expr.astype(store.expression.dtype))
if a.standardise_expression:  # the pipeline's re-parametrisation, after the compact head is built
    standardise_fc1(model.head, store.expression[data.train_ctx])
opt = torch.optim.Adam(model.head.parameters(), lr=a.lr)
if a.select_every:
    import copy

    sel_idx = data.sample(data.valid_bins, 600, 2)
    sel_y = np.asarray(store.labels[sel_idx][:, data.valid_ctx])
    sel_f = oracle_features(sel_idx) if a.features == "oracle" else None

    def validation_auprc():
        model.head.eval()
        with torch.no_grad():
            f = sel_f if sel_f is not None else torch.cat(
                [model.trunk(torch.from_numpy(store.onehot(sel_idx[i:i + 64]))) for i in range(0, len(sel_idx), 64)])
            x = f.repeat_interleave(len(data.valid_ctx), 0)
            expr = expression[torch.from_numpy(np.tile(data.valid_ctx, len(sel_idx)))]
            m = None if a.no_mean else torch.from_numpy(data.mean[sel_idx]).repeat_interleave(len(data.valid_ctx), 0)
            p = model.head(x, expr, m)[:, 1].exp().reshape(len(sel_idx), -1).numpy()
        model.head.train()
        return auprc(sel_y, p)

    best = (-1.0, 0, None)
model.head.train()
t0, losses = time.time(), []
for step in range(a.steps):
    b = sampler.next()
    k = b.contexts.shape[1]
    x = feats[torch.from_numpy(row_of[b.bins])].float().repeat_interleave(k, 0) * a.trunk_columns
    expr = expression[torch.from_numpy(b.contexts.reshape(-1))]
    mean = None if a.no_mean else torch.from_numpy(b.mean).repeat_interleave(k, 0)
    loss = F.nll_loss(model.head(x, expr, mean), torch.from_numpy(b.labels.reshape(-1)))
    if a.l1_expression:
        d = model.head.trunk_dim
        loss = loss + a.l1_expression * model.head.fc1.weight[:, d:d + expression.shape[1]].abs().sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(float(loss.detach()))
    if a.select_every and (step + 1) % a.select_every == 0:
        v = validation_auprc()
        if v > best[0]:
            best = (v, step + 1, copy.deepcopy(model.head.state_dict()))
    if (step + 1) % 200 == 0:
        print(f"step {step + 1}: loss {np.mean(losses[-200:]):.4f} ({time.time() - t0:.0f} s)", flush=True)
if a.select_every:
    model.head.load_state_dict(best[2])
    print(f"selected step {best[1]} (validation pooled AUPRC {best[0]:.3f})", flush=True)
fold_fc1(model.head)  # raw-expression weights, as the pipeline saves them
if a.trunk_columns == 0:
    model.head.fc1.weight.data[:, :model.head.trunk_dim] = 0
model.eval()
for name, tag, pool, tc in (("validation loci x validation contexts", 2, data.valid_bins, data.valid_ctx),
                            ("training loci", 3, data.train_bins, data.test_ctx),
                            ("held-out loci", 4, data.heldout_bins, data.test_ctx)):
    idx = data.sample(pool, 600, tag)
    y = np.asarray(store.labels[idx][:, tc])
    with torch.no_grad():
        if a.features == "oracle":
            f = oracle_features(idx)
        else:
            f = torch.cat([model.trunk(torch.from_numpy(store.onehot(idx[i:i + 64])))
                           for i in range(0, len(idx), 64)])
        x = f.repeat_interleave(len(tc), 0)
        expr = expression[torch.from_numpy(np.tile(tc, len(idx)))]
        m = None if a.no_mean else torch.from_numpy(data.mean[idx]).repeat_interleave(len(tc), 0)
        model_scores = model.head(x, expr, m)[:, 1].exp().reshape(len(idx), len(tc)).numpy()
    rule_p = store.directory / "probability.npy"  # the rule's own P(accessible), the ceiling
    scores = {"model": model_scores,
              "mean": np.repeat(data.mean[idx][:, None], len(tc), 1),
              "weighted mean": weighted_mean_baseline(np.asarray(store.labels[idx][:, data.train_ctx]),
                                                      store.expression[data.train_ctx], store.expression[tc])}
    if rule_p.is_file():
        scores["rule P"] = np.load(rule_p, mmap_mode="r")[idx][:, tc].astype(np.float64)
    text = ", ".join(f"{k} {auprc(y, s):.3f} / {np.mean([auprc(y[:, j], s[:, j]) for j in range(len(tc)) if y[:, j].any()]):.3f}"
                     for k, s in scores.items())
    print(f"{name} (AUPRC pooled / per context): {text}")
    if a.dump and tag == 3:
        np.savez(a.dump, labels=y, contexts=np.asarray(store.contexts)[tc], bins=idx,
                 **{k.replace(" ", "_"): v for k, v in scores.items()})
