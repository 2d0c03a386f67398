"""Stage-2 training step: B intervals x K contexts with one trunk pass per interval,
against one trunk pass per (interval, context) pair, side by side in one run.

    python benchmarks/bench_training.py [--shapes 4x16,16x32] [--steps 3] [--out benchmarks/RESULTS_training.md]

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
from chromdragonn.inputs.expression import ExpressionSource
from chromdragonn.inputs.genome import Genome, one_hot
from chromdragonn.nn.model import ChromDragoNN, ModelConfig
from chromdragonn.outputs.atomic import atomic_output
from chromdragonn.training.train import PairModel


def measure(B: int, K: int, steps: int, genome, expr_all):
    """(B, K, seconds per step B x K, seconds per step naive, forward outputs equal)."""
    rng = np.random.default_rng(0)
    starts = rng.integers(17_000_000, 21_000_000, size=B * (steps + 1)) // 50 * 50
    seqs = torch.from_numpy(np.stack([one_hot(genome.fetch("22", s - 400, s + 600)) for s in starts]))
    ctx = torch.from_numpy(rng.integers(0, expr_all.shape[0], size=(steps + 1, B * K)))
    labels = torch.from_numpy(rng.integers(0, 2, size=(steps + 1, B * K)))
    mean = torch.rand(B * (steps + 1))
    torch.manual_seed(0)
    base = ChromDragoNN(ModelConfig(expr_all.shape[1], True))
    results, outs = {}, {}
    for naive in (False, True):
        model = ChromDragoNN(ModelConfig(expr_all.shape[1], True))
        model.load_state_dict(base.state_dict())
        pm = PairModel(model, one_trunk_pass_per_pair=naive)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        times = []
        for step in range(steps + 1):
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
    return B, K, results[False], results[True], torch.allclose(outs[False], outs[True], atol=1e-4)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="4x16,16x32", help="comma-separated BxK batch shapes")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(paths.REPO_ROOT / "benchmarks" / "RESULTS_training.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    genome = Genome(paths.EXAMPLE_DIR / "hg19_chr22_1-22000000.fa.gz")
    src = ExpressionSource()
    expr_all = torch.from_numpy(src.matrix(src.contexts))
    rows = []
    for shape in args.shapes.split(","):
        B, K = (int(x) for x in shape.lower().split("x"))
        rows.append(measure(B, K, args.steps, genome, expr_all))
    text = (f"# Stage-2 training step: trunk once per interval vs once per (interval, context) pair\n\n"
            f"Command: `python benchmarks/bench_training.py --shapes {args.shapes} --steps {args.steps} "
            f"--threads {args.threads}`\n\n"
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores visible, "
            f"torch {torch.__version__}, {args.threads} threads, CPU (shared with other jobs while measured).\n\n"
            f"ResNet trunk tuned, with mean; forward, backward and Adam step timed; median of {args.steps} "
            "steps after one warm-up; real chr22 windows and Roadmap expression.\n\n"
            "| batch (B intervals x K contexts) | variant | trunk passes per step | seconds per step | pairs per second | speed-up |\n"
            "|---|---|---|---|---|---|\n")
    for B, K, fast, slow, same in rows:
        text += (f"| {B} x {K} = {B * K} pairs | trunk once per interval | {B} | {fast:.2f} | {B * K / fast:.1f} | "
                 f"**{slow / fast:.1f}x** |\n"
                 f"| {B} x {K} = {B * K} pairs | trunk once per pair | {B * K} | {slow:.2f} | {B * K / slow:.1f} | 1 |\n")
    text += ("\nFirst-step log-probabilities of the two variants equal within 1e-4: "
             + ", ".join(f"{B}x{K} {'yes' if same else 'NO'}" for B, K, _, _, same in rows) + ".\n")
    out = Path(args.out)
    with atomic_output(out) as tmp:
        tmp.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
