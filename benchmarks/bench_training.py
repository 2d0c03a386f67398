"""Training-step benchmarks, side by side in one run; each mode rewrites its own section of
benchmarks/RESULTS_training.md and keeps the other.

Mode ``bxk`` (default): stage-2 training step, B intervals x K contexts with one trunk pass per
interval, against one trunk pass per (interval, context) pair.

    python benchmarks/bench_training.py [--shapes 4x16,16x32] [--steps 3] [--out benchmarks/RESULTS_training.md]

Mode ``throughput``: stage-1 and stage-2 training-step throughput (intervals/s) of the pipeline's
own steps (train.py: SequenceModel + BCE for stage 1, PairModel B x K + NLL for stage 2, Adam)
for every combination of threads per process, bfloat16 autocast on CPU (``amp_cpu``) and
torch.compile, at several batch shapes.

    python benchmarks/bench_training.py --mode throughput [--threads-list 1,2] [--stage1-shapes 64,128]
        [--stage2-shapes 16x32,32x16] [--steps 4]

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


THROUGHPUT_MARK = "## Training-step throughput on CPU"


def write_section(out: Path, text: str, own_throughput: bool) -> None:
    """RESULTS_training.md = the B x K section, then the throughput section; rewrite one, keep the other."""
    old = out.read_text() if out.is_file() else ""
    bxk, _, thr = old.partition(THROUGHPUT_MARK)
    thr = THROUGHPUT_MARK + thr if thr else ""
    new = (bxk.rstrip() + "\n\n" + text) if own_throughput else (text.rstrip() + "\n\n" + thr if thr else text)
    with atomic_output(out) as tmp:
        tmp.write_text(new.lstrip())


def _timed_steps(step, steps: int) -> tuple[float, float]:
    """(seconds of the first call (warm-up, compilation), median seconds of the next ``steps``)."""
    t0 = time.perf_counter()
    step(0)
    first = time.perf_counter() - t0
    times = []
    for i in range(1, steps + 1):
        t0 = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - t0)
    return first, float(np.median(times))


def throughput(args, genome, expr_all) -> str:
    """Stage-1 and stage-2 step throughput for threads x bf16 autocast x torch.compile x shapes."""
    import contextlib
    import subprocess

    from chromdragonn.nn.model import SequenceModel

    from chromdragonn.training.train import pair_step  # noqa: F401  (the pipeline's stage-2 loss)

    rng = np.random.default_rng(0)
    n_win = max([int(b) for b in args.stage1_shapes.split(",")] +
                [int(s.split("x")[0]) for s in args.stage2_shapes.split(",")]) * (args.steps + 1)
    starts = rng.integers(17_000_000, 21_000_000, size=n_win) // 50 * 50
    windows = torch.from_numpy(np.stack([one_hot(genome.fetch("22", s - 400, s + 600)) for s in starts]))
    n_ctx = expr_all.shape[0]
    flags = subprocess.run(["grep", "-o", "-m1", "-w", "-e", "avx512_bf16", "-e", "amx_bf16", "/proc/cpuinfo"],
                           capture_output=True, text=True).stdout.split()
    rows = []
    compile_threads = [int(t) for t in args.compile_threads.split(",")]
    amp_threads = [int(t) for t in args.amp_threads.split(",") if t]
    from types import SimpleNamespace

    from chromdragonn.training.train import compiled as pipeline_compiled  # the pipeline's torch.compile

    for compiled in (False, True):
        for amp in (False, True):
            for threads in [int(t) for t in args.threads_list.split(",")]:
                if (compiled and threads not in compile_threads) or (amp and threads not in amp_threads) \
                        or (compiled and amp and not args.compile_amp):
                    continue
                torch.set_num_threads(threads)
                cast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if amp else contextlib.nullcontext
                for stage, shapes in (("stage 1", args.stage1_shapes), ("stage 2", args.stage2_shapes)):
                    for shape in shapes.split(","):
                        torch.manual_seed(0)
                        if stage == "stage 1":
                            B, K = int(shape), 1
                            model = SequenceModel(n_ctx - 16)
                            fwd_model = pipeline_compiled(model, SimpleNamespace(compile=compiled))
                            labels = torch.from_numpy(rng.integers(0, 2, (B, n_ctx - 16)).astype(np.float32))

                            def run(seq, i, model=fwd_model, labels=labels):
                                with cast():
                                    logits = model(seq)
                                return F.binary_cross_entropy_with_logits(logits.float(), labels)
                        else:
                            B, K = (int(x) for x in shape.split("x"))
                            model = PairModel(ChromDragoNN(ModelConfig(expr_all.shape[1], True)))
                            fwd_model = pipeline_compiled(model, SimpleNamespace(compile=compiled))
                            ctx = torch.from_numpy(rng.integers(0, n_ctx, size=(B * K,)))
                            labels = torch.from_numpy(rng.integers(0, 2, size=(B * K,)))
                            mean = torch.rand(B)

                            def run(seq, i, model=fwd_model, ctx=ctx, labels=labels, mean=mean, K=K):
                                with cast():
                                    logp = model(seq, expr_all[ctx], mean, K)
                                return F.nll_loss(logp.float(), labels)
                        model.train()
                        fwd = run  # compiled or not: the module, as train.compiled does in the pipeline
                        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

                        def step(i, fwd=fwd, opt=opt, B=B):
                            loss = fwd(windows[i * B:(i + 1) * B], i)
                            opt.zero_grad()
                            loss.backward()
                            opt.step()

                        first, sec = _timed_steps(step, args.steps)
                        rows.append((stage, shape if stage == "stage 1" else f"{B} x {K}", threads,
                                     "on" if amp else "off", "on" if compiled else "off", sec, B / sec, first))
                        print(rows[-1], flush=True)
                        torch._dynamo.reset() if compiled else None
    load = os.getloadavg()
    text = (f"{THROUGHPUT_MARK}\n\n"
            f"Command: `python benchmarks/bench_training.py --mode throughput --threads-list {args.threads_list} "
            f"--compile-threads {args.compile_threads} --amp-threads {args.amp_threads}"
            f"{' --compile-amp' if args.compile_amp else ''} "
            f"--stage1-shapes {args.stage1_shapes} --stage2-shapes {args.stage2_shapes} --steps {args.steps}`\n\n"
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores visible, "
            f"torch {torch.__version__}; native bf16 instructions (avx512_bf16 / amx_bf16 in /proc/cpuinfo): "
            f"{', '.join(sorted(set(flags))) or 'none'}. Load average when it finished: "
            f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min; the machine is shared, so "
            "the figures are only comparable within this table).\n\n"
            "The pipeline's steps (forward, loss, backward, Adam) on real chr22 windows and Roadmap expression: "
            "stage 1 = ResNet trunk + multi-task head over 40 contexts, BCE with logits, batch B windows; "
            "stage 2 = ResNet trunk (tuned) + expression + mean head, B intervals x K contexts, trunk once per "
            f"interval, NLL. Median of {args.steps} steps after a first step (the first step's seconds, which include "
            "torch.compile's compilation, are in the last column). Throughput = intervals (windows through the "
            "trunk) per second.\n\n"
            "| stage | batch | threads | bf16 autocast | torch.compile | seconds per step | intervals/s | first step, s |\n"
            "|---|---|---|---|---|---|---|---|\n")
    for stage, shape, threads, amp, comp, sec, ips, first in rows:
        text += f"| {stage} | {shape} | {threads} | {amp} | {comp} | {sec:.3f} | {ips:.1f} | {first:.1f} |\n"
    best = {}
    for r in rows:
        key = (r[0], r[1])
        if key not in best or r[6] > best[key][6]:
            best[key] = r
    text += "\nFastest configuration per stage and batch (intervals/s):\n\n"
    for (stage, shape), r in best.items():
        base = next(x for x in rows if x[:5] == (stage, shape, 1, "off", "off"))
        text += (f"- {stage}, {shape}: {r[2]} thread(s), bf16 {r[3]}, compile {r[4]}: {r[6]:.1f} "
                 f"({r[6] / base[6]:.2f}x 1 thread, fp32, eager)\n")
    return text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["bxk", "throughput"], default="bxk")
    ap.add_argument("--shapes", default="4x16,16x32", help="bxk: comma-separated BxK batch shapes")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="bxk: threads")
    ap.add_argument("--threads-list", default="1,2", help="throughput: threads per process to compare")
    ap.add_argument("--compile-threads", default="2", help="throughput: thread counts also measured with torch.compile")
    ap.add_argument("--compile-amp", action="store_true", help="throughput: also torch.compile with bf16 autocast")
    ap.add_argument("--amp-threads", default="1,2", help="throughput: thread counts also measured with bf16 autocast")
    ap.add_argument("--stage1-shapes", default="64,128", help="throughput: stage-1 batch sizes")
    ap.add_argument("--stage2-shapes", default="16x32,32x16", help="throughput: stage-2 B x K shapes")
    ap.add_argument("--out", default=str(paths.REPO_ROOT / "benchmarks" / "RESULTS_training.md"))
    args = ap.parse_args()
    if args.mode == "throughput":
        genome = Genome(paths.EXAMPLE_DIR / "hg19_chr22_1-22000000.fa.gz")
        src = ExpressionSource()
        text = throughput(args, genome, torch.from_numpy(src.matrix(src.contexts)))
        write_section(Path(args.out), text, own_throughput=True)
        print(text)
        return
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
    write_section(Path(args.out), text, own_throughput=False)
    print(text)


if __name__ == "__main__":
    main()
