"""Stage 1 and stage 2 training, resumable, seeded, data-parallel through torchrun.

Stage 1 (paper): multi-task sequence-only model over the fold's training contexts;
Adam lr 2e-3, batch 256, BCE with logits.  Stage 2: ChromDragoNN initialised with
the stage-1 trunk, trunk tuned (or frozen, an option), with or without the mean
feature; Adam lr 1e-4, 512 (interval, context) pairs per step, NLL on the 2-class
log-softmax, 1 positive : 3 negatives by upsampling positives.  Both keep the
state with the best validation AUPRC (stage 1: or its final state, ``stage1.select: last``).

Reproducibility: the batch and the dropout masks of step ``s`` come from
generators seeded with (seed, rank, s), so a run resumed from its last checkpoint
continues exactly as if it had not stopped.  Multi-process: under ``torchrun``
(RANK / WORLD_SIZE set) the model is wrapped in DistributedDataParallel (gloo on
CPU, nccl on GPU), each rank draws 1/world of the batch, rank 0 evaluates and
writes.  Mixed precision (bfloat16 autocast) is used on GPU when ``amp`` is on.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from chromdragonn.errors import ChromDragoNNError
from chromdragonn.nn.model import ChromDragoNN, ModelConfig, SequenceModel, build_trunk
from chromdragonn.nn.weights import save_weights
from chromdragonn.outputs.atomic import atomic_output
from chromdragonn.training.config import HeadWarmup, TrainingConfig
from chromdragonn.training.data import FoldData, PairSampler, Stage1Sampler, positive_enriched_subset
from chromdragonn.training.evaluate import auprc, predict_bins
from chromdragonn.training.standardise import fold_fc1, standardise_fc1
from chromdragonn.training.store import Store

log = logging.getLogger(__name__)


# ---- process set-up -------------------------------------------------------------------

class Dist:
    """Rank / world / device of this process; torch.distributed set up when under torchrun."""

    def __init__(self, device: str = "cpu"):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise ChromDragoNNError(f"device {device!r} asked for, but torch sees no CUDA device")
            self.device = torch.device("cuda", self.local_rank if self.world > 1 else torch.device(device).index or 0)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def wrap(self, module: nn.Module) -> nn.Module:
        if self.world == 1:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def autocast(cfg: TrainingConfig, device: torch.device):
    """bfloat16 autocast: on GPU when ``amp`` (default on); on CPU only when ``amp_cpu`` is set
    (worth it on CPUs with native bf16 matrix units, e.g. AVX512-BF16 / AMX)."""
    if device.type == "cuda" and cfg.amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and cfg.amp_cpu:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compiled(module: nn.Module, cfg: TrainingConfig) -> nn.Module:
    """``torch.compile(module)`` when the config asks for it (``compile: true``), else ``module``.

    Only the training step's forward goes through it; state dicts, checkpoints and evaluation use
    the eager module, which shares its parameters.  On 2 AVX2 CPU cores it does not pay: measured
    side by side on an idle machine, stage 1 0.97x and stage 2 0.72x eager's steps per second, after
    ~26 s of compilation (benchmarks/RESULTS_training.md), so no config turns it on; it is there for
    accelerators and CPUs where it does."""
    if not cfg.compile:
        return module
    import torch._inductor.config as inductor_config

    # dropout masks from the eager generator seeded per step (step_seed), not inductor's own:
    # a compiled run then draws the eager run's masks, and resumes exactly as an eager one does
    inductor_config.fallback_random = True
    return torch.compile(module)


def step_seed(seed: int, rank: int, step: int) -> None:
    torch.manual_seed(int(np.random.default_rng([seed, rank, step]).integers(2**62)))


def _atomic_save(obj, path: Path) -> None:
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ChromDragoNNError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from None


def _cpu_state(module: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


# ---- shared fold set-up ---------------------------------------------------------------

# ---- the stage-2 batch model ------------------------------------------------------------

class PairModel(nn.Module):
    """B intervals x K contexts: trunk once per interval, head on the B*K rows.

    ``one_trunk_pass_per_pair=True`` is the naive way (trunk on every pair), kept
    for the speed comparison in benchmarks/bench_training.py.
    """

    def __init__(self, model: ChromDragoNN, one_trunk_pass_per_pair: bool = False):
        super().__init__()
        self.model = model
        self.naive = one_trunk_pass_per_pair

    def forward(self, seq, expression, mean, k: int):
        if self.naive:
            feats = self.model.trunk(seq.repeat_interleave(k, dim=0))
        else:
            feats = self.model.trunk(seq).repeat_interleave(k, dim=0)
        mean_rows = mean.repeat_interleave(k, dim=0) if self.model.with_mean else None
        return self.model.head(feats, expression, mean_rows)


def pair_step(pair_model: nn.Module, batch, expression: torch.Tensor, device) -> torch.Tensor:
    """NLL of one B x K batch."""
    seq = torch.from_numpy(batch.seq).to(device)
    expr = expression[torch.from_numpy(batch.contexts.reshape(-1)).to(device)]
    mean = torch.from_numpy(batch.mean).to(device)
    target = torch.from_numpy(batch.labels.reshape(-1)).to(device)
    logp = pair_model(seq, expr, mean, batch.contexts.shape[1])
    return F.nll_loss(logp.float(), target)


# ---- the loop ----------------------------------------------------------------------------

def _run_loop(*, name: str, out_dir: Path, model: nn.Module, trained: nn.Module, optimizer, steps: int,
              step_fn, eval_fn, eval_every: int, checkpoint_every: int, seed: int, d: Dist,
              progress: bool, eval_initial: bool = False, keep_last: bool = False) -> dict:
    """Shared training loop: resume, seeded steps, periodic validation, best-state keeping.

    ``eval_initial``: also validate the starting state (step 0), so that selection can keep
    it when further training does not help (stage 2 after a head warm-up).
    ``keep_last``: return the final state (and its validation score) instead of the best one.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    last = out_dir / "last.pt"
    start, best_score, best_step, best_state, history = 0, -1.0, -1, None, []
    if last.is_file():
        ck = load_checkpoint(last)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        start, best_score, best_step = int(ck["step"]), float(ck["best_score"]), int(ck["best_step"])
        best_state, history = ck["best_model"], [list(h) for h in ck["history"]]
        if d.main:
            log.info("%s: resumed from %s at step %d", name, last, start)
    if start == 0 and eval_initial and d.main:
        best_score, best_step, best_state = eval_fn(), 0, _cpu_state(model)
        history.append([0, float("nan"), best_score, 0.0])
        log.info("%s: validation AUPRC %.4f before the first step", name, best_score)
    bar = tqdm(range(start, steps), desc=name, unit="step", disable=not (progress and d.main),
               initial=start, total=steps)
    t0 = time.time() - (history[-1][3] if history else 0.0)  # seconds count on across resumes
    for step in bar:
        trained.train()
        step_seed(seed, d.rank, step)
        loss = step_fn(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done = step + 1
        val = float("nan")
        if done % eval_every == 0 or done == steps:
            d.barrier()
            if d.main:
                val = eval_fn()
                if val > best_score:
                    best_score, best_step, best_state = val, done, _cpu_state(model)
            d.barrier()
        history.append([done, float(loss.detach()), val, round(time.time() - t0, 2)])
        bar.set_postfix(loss=f"{history[-1][1]:.4f}", val_auprc=f"{best_score:.4f}")
        if d.main and (done % checkpoint_every == 0 or done == steps):
            _atomic_save({"step": done, "model": _cpu_state(model), "optimizer": optimizer.state_dict(),
                          "best_score": best_score, "best_step": best_step, "best_model": best_state,
                          "history": history}, last)
    if d.main:
        with open(out_dir / "history.tsv", "w") as fh:
            fh.write("step\tloss\tvalid_auprc\tseconds\n")
            for h in history:
                fh.write("\t".join(str(x) for x in h) + "\n")
    if keep_last and d.main:  # the final step is always validated
        best_score, best_step, best_state = float(history[-1][2]), int(history[-1][0]), _cpu_state(model)
    return {"best_score": best_score, "best_step": best_step, "best_state": best_state,
            "steps": steps, "seconds": round(time.time() - t0, 1)}


def train_stage1(cfg: TrainingConfig, fold: int, out_dir: str | os.PathLike, data: FoldData | None = None,
                 progress: bool = True) -> Path:
    """Stage 1 of one fold; returns the path of its best state (``stage1.pt``)."""
    s1 = cfg.stage1
    if s1.steps < 1:
        raise ChromDragoNNError(f"stage1.steps is {s1.steps} in the config; give the number of stage-1 steps (>= 1)")
    d = Dist(cfg.device)
    seed = cfg.seed + 101 * fold
    torch.manual_seed(seed)
    data = data or FoldData(cfg, fold)
    out_dir = Path(out_dir)
    model = SequenceModel(len(data.train_ctx), dropout=cfg.dropout,
                          trunk=build_trunk(cfg.trunk)).to(d.device)
    trained = compiled(d.wrap(model), cfg)
    opt = torch.optim.Adam(model.parameters(), lr=s1.lr)
    train_bins = positive_enriched_subset(data.store, data.train_bins, data.train_ctx, s1.train_bins,
                                          s1.positive_share, seed)
    val_bins = data.sample(data.valid_bins, s1.eval_bins, tag=1)
    sampler = Stage1Sampler(data.store, train_bins, data.train_ctx, s1.batch_size,
                            seed=seed, rank=d.rank, world=d.world)

    def step_fn(step):
        sampler.rng = np.random.default_rng([seed, d.rank, step])
        b = sampler.next()
        with autocast(cfg, d.device):
            logits = trained(torch.from_numpy(b.seq).to(d.device))
        return F.binary_cross_entropy_with_logits(logits.float(), torch.from_numpy(b.labels).to(d.device))

    def eval_fn():
        model.eval()
        with torch.no_grad():
            logits = []
            for lo in range(0, len(val_bins), 128):
                seq = torch.from_numpy(data.store.onehot(val_bins[lo:lo + 128])).to(d.device)
                logits.append(model(seq).float().cpu().numpy())
        y = np.asarray(data.store.labels[val_bins][:, data.train_ctx])
        return auprc(y, np.concatenate(logits))

    res = _run_loop(name=f"fold{fold} stage1", out_dir=out_dir, model=model, trained=trained, optimizer=opt,
                    steps=s1.steps, step_fn=step_fn, eval_fn=eval_fn, eval_every=s1.eval_every,
                    checkpoint_every=s1.checkpoint_every, seed=seed, d=d, progress=progress,
                    keep_last=s1.select == "last")
    best = out_dir / "stage1.pt"
    if d.main:
        _atomic_save({"trunk": cfg.trunk, "n_tasks": len(data.train_ctx),
                      "contexts": [data.store.contexts[i] for i in data.train_ctx],
                      "state_dict": res["best_state"], "valid_auprc": res["best_score"],
                      "best_step": res["best_step"], "seconds": res["seconds"]}, best)
        log.info("fold %d stage 1: %s validation AUPRC %.4f at step %d (%.0f s)", fold, s1.select, res["best_score"],
                 res["best_step"], res["seconds"])
    d.barrier()
    return best


def init_mean_column(model: ChromDragoNN, scale: float | None) -> None:
    """Initialise fc1's mean-accessibility column uniformly in [-scale, scale].

    PyTorch's default init draws every fc1 weight in +-1/sqrt(5,776) = +-0.013, so the
    single [0, 1] mean input starts about 100x weaker than the expression and trunk
    blocks, and Adam (which moves a weight by about lr per step) needs thousands of
    steps to grow it: training/diagnostics/README.md measures this.  A wider init of
    that one column lets the head use the paper's "surprisingly powerful" feature from
    the start.  Architecture and checkpoint format are unchanged.
    """
    if scale and model.with_mean:
        _, _, w_mean = model.head.fc1_parts()
        with torch.no_grad():
            w_mean.uniform_(-float(scale), float(scale))


def init_head_from_stage1(model: ChromDragoNN, stage1_state: dict) -> None:
    """Start the stage-2 head where the stage-1 head left off.

    Stage 1's fc1 (4200 -> 1000), bn4, fc2 and bn5 have the shapes of stage 2's fc1 trunk
    columns, bn1, fc2 and bn2, so they are copied; fc1's expression columns start at 0 (so
    the copied layer computes what it computed in stage 1), and fc3 starts as the average of
    stage 1's per-context output units (class 1) against 0 (class 0).  The stage-2 model
    thus starts as "accessibility averaged over the training contexts, from sequence" and
    learns the context-specific part from the expression.  Without this the head relearns
    the 4200 -> 1000 -> 1000 layers from scratch on far fewer (interval, context) pairs than
    stage 1 saw, which is what the shipped CPU run could not afford.
    """
    src = {k[len("head."):]: v for k, v in stage1_state.items() if k.startswith("head.")}
    head = model.head
    if "fc1.weight" not in src or src["fc1.weight"].shape[1] != head.trunk_dim:
        raise ChromDragoNNError("the stage-1 state has no head matching this trunk; cannot copy it")
    with torch.no_grad():
        w_trunk, w_expr, w_mean = head.fc1_parts()
        w_trunk.copy_(src["fc1.weight"])
        w_expr.zero_()
        if w_mean is not None:
            w_mean.zero_()
        head.fc1.bias.copy_(src["fc1.bias"])
        for dst, name in ((head.bn1, "bn4"), (head.bn2, "bn5")):
            dst.load_state_dict({k.split(".", 1)[1]: v for k, v in src.items() if k.startswith(name + ".")})
        head.fc2.load_state_dict({"weight": src["fc2.weight"], "bias": src["fc2.bias"]})
        head.fc3.weight.zero_()
        head.fc3.bias.zero_()
        head.fc3.weight[1] = src["fc3.weight"].mean(dim=0)
        head.fc3.bias[1] = src["fc3.bias"].mean()


def cache_trunk_features(model: ChromDragoNN, store: Store, bin_idx: np.ndarray, cfg: TrainingConfig, device,
                         batch_size: int = 128, progress: bool = True) -> torch.Tensor:
    """Trunk features (n, 4200) of ``bin_idx`` in eval mode, stored as bfloat16 to halve the memory."""
    model.trunk.eval()
    out = torch.empty(len(bin_idx), model.head.trunk_dim, dtype=torch.bfloat16)
    with torch.no_grad(), autocast(cfg, device):
        for lo in tqdm(range(0, len(bin_idx), batch_size), desc="trunk features", unit="batch",
                       disable=not progress):
            seq = torch.from_numpy(store.onehot(bin_idx[lo:lo + batch_size])).to(device)
            out[lo:lo + len(seq)] = model.trunk(seq).to(torch.bfloat16).cpu()
    return out


def warm_up_head(model: ChromDragoNN, data: FoldData, warm: HeadWarmup, cfg: TrainingConfig, seed: int, device,
                 progress: bool = True, features: tuple[np.ndarray, torch.Tensor] | None = None) -> dict:
    """Train the stage-2 head alone on cached features of the frozen stage-1 trunk.

    Stage 2 with a frozen trunk is one of the paper's settings; caching its features
    makes a head step cost no trunk pass at all, so many more distinct intervals fit
    in a batch (default 128 x 4 instead of 16 x 32) and many more steps fit in the
    budget.  The tuned stage 2 then starts from this head instead of a random one.
    Same pair distribution as stage 2 (1 positive : 3 negatives).  ``features``: (bins, their
    trunk features) computed already (several heads over one trunk share them; the bins must be
    training loci).
    """
    store = data.store
    t0 = time.time()
    if features is None:
        bins = positive_enriched_subset(store, data.train_bins, data.train_ctx, warm.train_bins,
                                        warm.positive_share, seed + 1)
        feats = cache_trunk_features(model, store, bins, cfg, device, progress=progress)
    else:
        bins, feats = np.asarray(features[0]), features[1]
        if len(bins) != len(feats) or not np.isin(bins, data.train_bins).all():
            raise ChromDragoNNError("warm_up_head: the given features must be one row per bin, of training loci")
    row_of = np.full(len(store), -1, np.int64)
    row_of[bins] = np.arange(len(bins))
    sampler = PairSampler(store, bins, data.train_ctx, data.mean, warm.intervals,
                          warm.contexts_per_interval, seed + 1, with_sequence=False)
    expression = torch.from_numpy(store.expression).to(device)
    head = model.head
    opt = torch.optim.Adam(head.parameters(), lr=warm.lr,
                           weight_decay=warm.weight_decay)
    head.train()
    steps = warm.steps
    losses = []
    select = _warmup_selector(model, data, cfg, device) if warm.select_every > 0 else None
    best, scores = (-np.inf, 0, None), []
    bar = tqdm(range(steps), desc="stage-2 head warm-up", unit="step", disable=not progress)
    for step in bar:
        sampler.rng = np.random.default_rng([seed, 1, step])
        step_seed(seed + 1, 0, step)
        b = sampler.next()
        k = b.contexts.shape[1]
        x = feats[torch.from_numpy(row_of[b.bins])].to(device).float().repeat_interleave(k, dim=0)
        expr = expression[torch.from_numpy(b.contexts.reshape(-1)).to(device)]
        mean = torch.from_numpy(b.mean).to(device).repeat_interleave(k, dim=0) if model.with_mean else None
        loss = F.nll_loss(head(x, expr, mean), torch.from_numpy(b.labels.reshape(-1)).to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if step % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        if select is not None and (step + 1) % warm.select_every == 0:
            score = select()
            scores.append(round(float(score), 4))
            if score > best[0]:
                best = (score, step + 1, {k: v.detach().clone() for k, v in head.state_dict().items()})
    info = {"steps": steps, "bins": len(bins), "seconds": round(time.time() - t0, 1),
            "final_loss": float(np.mean(losses[-50:])) if losses else float("nan")}
    if best[2] is not None:
        head.load_state_dict(best[2])
        info.update(selected_step=best[1], selected_valid_auprc=round(float(best[0]), 4),
                    selection_scores=",".join(map(str, scores)))
    return info


def _warmup_selector(model: ChromDragoNN, data: FoldData, cfg: TrainingConfig, device):
    """The warm-up's checkpoint score: pooled AUPRC of the head on cached trunk features of stage 2's
    validation bins x the validation contexts (the bins and contexts stage 2 selects on).

    Why: the head's ranking across contexts it never saw moves a lot from one Adam step to the
    next (benchmark v2's oracle head, fold 0: pooled AUPRC on held-out contexts 0.610 after 800
    steps, 0.694 for the state at step 700 that validation picks).  Off unless
    ``head_warmup.select_every`` is set: with only 4 validation contexts per fold it picked worse
    states in folds 3 and 4 of benchmark v2 (training/REPORT.md, "Benchmark v2: seeds")."""
    store = data.store
    val_bins = data.sample(data.valid_bins, cfg.stage2.eval_bins, tag=2)
    feats = cache_trunk_features(model, store, val_bins, cfg, device, progress=False).to(device).float()
    ctx = data.valid_ctx
    x = feats.repeat_interleave(len(ctx), dim=0)
    expr = torch.from_numpy(store.expression[np.tile(ctx, len(val_bins))]).to(device)
    mean = (torch.from_numpy(data.mean[val_bins]).to(device).repeat_interleave(len(ctx), dim=0)
            if model.with_mean else None)
    labels = np.asarray(store.labels[val_bins][:, ctx])

    def score() -> float:
        model.head.eval()
        with torch.no_grad():
            p = model.head(x, expr, mean)[:, 1].exp().reshape(len(val_bins), len(ctx)).cpu().numpy()
        model.head.train()
        return auprc(labels, p)

    return score


def train_stage2(cfg: TrainingConfig, fold: int, out_dir: str | os.PathLike, with_mean: bool, stage1_path=None,
                 data: FoldData | None = None, progress: bool = True) -> Path:
    """Stage 2 of one fold, with or without the mean feature; returns its weights file (fp32)."""
    s2 = cfg.stage2
    d = Dist(cfg.device)
    seed = cfg.seed + 101 * fold + (7 if with_mean else 13)
    torch.manual_seed(seed)
    data = data or FoldData(cfg, fold)
    out_dir = Path(out_dir)
    store = data.store
    model = ChromDragoNN(ModelConfig(len(store.genes), with_mean, cfg.dropout, cfg.trunk))
    if stage1_path is not None:
        ck = load_checkpoint(Path(stage1_path))
        if ck.get("trunk") != model.config.trunk:
            raise ChromDragoNNError(f"{stage1_path} holds a {ck.get('trunk')} trunk, this run uses {model.config.trunk}")
        trunk_state = {k[len("trunk."):]: v for k, v in ck["state_dict"].items() if k.startswith("trunk.")}
        model.trunk.load_state_dict(trunk_state)
        if s2.init_head_from_stage1:
            init_head_from_stage1(model, ck["state_dict"])
    init_mean_column(model, s2.mean_init_scale)
    if s2.standardise_expression:  # before resuming: last.pt holds the z-space parameters
        standardise_fc1(model.head, store.expression[data.train_ctx])
    model.to(d.device)
    warm = s2.head_warmup
    warm_info = None
    if warm.steps > 0 and not (out_dir / "last.pt").is_file():  # resuming: the warm head is in last.pt
        if d.main:
            warm_info = warm_up_head(model, data, warm, cfg, seed, d.device, progress=progress)
            log.info("fold %d stage 2 (%s mean): head warm-up %d steps on %d bins, %.0f s, final loss %.4f", fold,
                     "with" if with_mean else "no", warm_info["steps"], warm_info["bins"], warm_info["seconds"],
                     warm_info["final_loss"])
        if d.world > 1:  # every rank starts from rank 0's warmed-up head
            for t in model.head.state_dict().values():
                dist.broadcast(t, 0)
    tune = s2.tune_trunk
    for p in model.trunk.parameters():
        p.requires_grad_(tune)
    pair_model = PairModel(model)
    trained = compiled(d.wrap(pair_model), cfg)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=s2.lr)
    expression = torch.from_numpy(store.expression).to(d.device)
    train_bins = positive_enriched_subset(store, data.train_bins, data.train_ctx, s2.train_bins,
                                          s2.positive_share, seed)
    sampler = PairSampler(store, train_bins, data.train_ctx, data.mean, s2.intervals,
                          s2.contexts_per_interval, seed, d.rank, d.world,
                          upsample_positives=s2.upsample_positives)
    val_bins = data.sample(data.valid_bins, s2.eval_bins, tag=2)

    def step_fn(step):
        sampler.rng = np.random.default_rng([seed, d.rank, step])
        if not tune:
            model.trunk.eval()  # frozen trunk: BN keeps its stage-1 statistics
        with autocast(cfg, d.device):
            return pair_step(trained, sampler.next(), expression, d.device)

    def eval_fn():
        prob = predict_bins(model, store, val_bins, data.valid_ctx, data.mean if with_mean else None,
                            batch_size=cfg.eval_batch_size, device=d.device, progress=False)
        return auprc(np.asarray(store.labels[val_bins][:, data.valid_ctx]), prob)

    res = _run_loop(name=f"fold{fold} stage2 {'with' if with_mean else 'no'} mean", out_dir=out_dir,
                    model=model, trained=trained, optimizer=opt, steps=s2.steps, step_fn=step_fn,
                    eval_fn=eval_fn, eval_every=s2.eval_every,
                    checkpoint_every=s2.checkpoint_every, seed=seed, d=d, progress=progress,
                    eval_initial=warm_info is not None or warm.steps > 0)
    weights = out_dir / "weights.pt"
    if d.main:
        model.load_state_dict(res["best_state"])
        fold_fc1(model.head)  # raw-expression weights, the shipped format
        model.cpu().eval()
        save_weights(model, weights, store.genes, half=False)
        with open(out_dir / "summary.tsv", "w") as fh:
            fh.write(f"valid_auprc\t{res['best_score']}\nbest_step\t{res['best_step']}\nseconds\t{res['seconds']}\n")
            if warm_info is not None:
                for key, value in warm_info.items():
                    fh.write(f"warmup_{key}\t{value}\n")
        log.info("fold %d stage 2 (%s mean): best validation AUPRC %.4f at step %d (%.0f s)", fold,
                 "with" if with_mean else "no", res["best_score"], res["best_step"], res["seconds"])
    d.barrier()
    return weights
