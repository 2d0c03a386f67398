"""Stage-2 training step: B intervals x K contexts with one trunk pass per interval,
against one trunk pass per (interval, context) pair, side by side in one run.

    python benchmarks/bench_training.py [--intervals 4] [--contexts 16] [--steps 3] [--out benchmarks/RESULTS_training.md]

Both variants train the same ChromDragoNN (ResNet trunk tuned, with mean) with Adam on
the same batches of real chr22 windows (example FASTA) and real Roadmap expression;
only where the trunk runs differs.  The forward results of the two are checked equal
(same BN statistics: the naive variant sees each window K times, which leaves batch
mean and variance unchanged).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from chromdragonn import paths
from chromdragonn.expression import ExpressionSource
from chromdragonn.genome import Genome, one_hot
from chromdragonn.model import ChromDragoNN, ModelConfig
from chromdragonn.training.train import PairModel


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--intervals", type=int, default=4)
    ap.add_argument("--contexts", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(paths.REPO_ROOT / "benchmarks" / "RESULTS_training.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    B, K = args.intervals, args.contexts
    genome = Genome(paths.EXAMPLE_DIR / "hg19_chr22_1-22000000.fa.gz")
    src = ExpressionSource()
    expr_all = torch.from_numpy(src.matrix(src.contexts))
    rng = np.random.default_rng(0)
    starts = rng.integers(17_000_000, 21_000_000, size=B * (args.steps + 1)) // 50 * 50
    seqs = torch.from_numpy(np.stack([one_hot(genome.fetch("22", s - 400, s + 600)) for s in starts]))
    ctx = torch.from_numpy(rng.integers(0, len(src.contexts), size=(args.steps + 1, B * K)))
    labels = torch.from_numpy(rng.integers(0, 2, size=(args.steps + 1, B * K)))
    mean = torch.rand(B * (args.steps + 1))

    # forward equality of the two paths (train mode, fixed dropout seed)
    torch.manual_seed(0)
    base = ChromDragoNN(ModelConfig(expr_all.shape[1], True))
    results = {}
    outs = {}
    for naive in (False, True):
        torch.manual_seed(1)
        model = ChromDragoNN(ModelConfig(expr_all.shape[1], True))
        model.load_state_dict(base.state_dict())
        pm = PairModel(model, one_trunk_pass_per_pair=naive)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        times = []
        for step in range(args.steps + 1):
            sl = slice(step * B, (step + 1) * B)
            torch.manual_seed(100 + step)
            t0 = time.perf_counter()
            logp = pm(seqs[sl], expr_all[ctx[step]], mean[sl], K)
            loss = F.nll_loss(logp, labels[step])
            opt.zero_grad()
            loss.backward()
            opt.step()
            dt = time.perf_counter() - t0
            if step == 0:
                outs[naive] = logp.detach()
            else:
                times.append(dt)  # step 0 is warm-up
        results[naive] = float(np.median(times))
    same = torch.allclose(outs[False], outs[True], atol=1e-4)
    speedup = results[True] / results[False]
    pairs = B * K
    text = (f"# Stage-2 training step: trunk once per interval vs once per (interval, context) pair\n\n"
            f"Command: `python benchmarks/bench_training.py --intervals {B} --contexts {K} --steps {args.steps} "
            f"--threads {args.threads}`\n\n"
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores visible, "
            f"torch {torch.__version__}, {args.threads} threads, CPU (shared with other jobs while measured).\n\n"
            f"Batch: {B} intervals x {K} contexts = {pairs} pairs; ResNet trunk tuned, with mean; Adam step "
            f"included; median of {args.steps} steps after one warm-up.\n\n"
            "| variant | trunk passes per step | seconds per step | pairs per second |\n|---|---|---|---|\n"
            f"| B x K (trunk once per interval) | {B} | {results[False]:.2f} | {pairs / results[False]:.1f} |\n"
            f"| one trunk pass per pair | {pairs} | {results[True]:.2f} | {pairs / results[True]:.1f} |\n\n"
            f"Speed-up: **{speedup:.1f}x**. First-step log-probabilities of the two variants equal within 1e-4: "
            f"{'yes' if same else 'NO'}.\n")
    out = Path(args.out)
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, out)
    print(text)


if __name__ == "__main__":
    main()
