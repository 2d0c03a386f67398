"""Multi-context prediction speed, measured side by side in one run.

(a) this package: trunk once per interval, split head per (interval, context);
(b) the naive way: one full forward per (interval, context) pair;
floor: the trunk alone (intervals/s), times C, is the best (a) can do;
dataloader: the Kipoi dataloader alone (intervals/s), which must outrun the model.

Weights are random (speed does not depend on their values); inputs are real:
example/ intervals on the hg19 chr22 slice and the shipped Roadmap expression.

    python benchmarks/bench_predict.py            # writes benchmarks/RESULTS.md (section "predict")
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import write_section  # noqa: E402
from chromdragonn import paths  # noqa: E402
from chromdragonn.inputs.expression import ExpressionSource  # noqa: E402
from chromdragonn.inputs.genome import Genome, centered_window, one_hot_batch, read_bed  # noqa: E402
from chromdragonn.nn.model import ChromDragoNN, ModelConfig  # noqa: E402


def timed_together(fns, repeats: int, clock=time.perf_counter) -> list[float]:
    """Best time of each function on `clock`, their runs interleaved (one warm-up each).

    On a shared machine the load changes from second to second; interleaving lets
    every function meet the same quiet moments, so their ratios are fair.
    """
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = clock()
            fn()
            best[i] = min(best[i], clock() - t0)
    return best


def real_windows(n: int) -> torch.Tensor:
    """n real 1 kb windows: the example intervals, then steps along the slice."""
    genome = Genome(paths.EXAMPLE_DIR / "hg19_chr22_1-22000000.fa.gz")
    bed = read_bed(paths.EXAMPLE_DIR / "intervals.bed")
    wins = [centered_window(r.chrom, r.start, r.end) for r in bed.itertuples()]
    pos = 17_000_000
    while len(wins) < n:
        wins.append(centered_window("22", pos, pos + 200))
        pos += 10_000
    return torch.from_numpy(one_hot_batch([genome.fetch(w.chrom, w.start, w.end) for w in wins[:n]]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--intervals", type=int, default=64, help="intervals per timed batch for (a) and the floor")
    ap.add_argument("--naive-intervals", type=int, default=2, help="intervals for the naive path (it is slow)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall time, or this process's CPU time (steadier on a machine shared with other "
                         "jobs; use with --threads 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.manual_seed(0)

    source = ExpressionSource()
    contexts_all = source.contexts
    model = ChromDragoNN(ModelConfig(n_genes=len(source.genes), with_mean=True)).eval()
    seq = real_windows(args.intervals)
    mean = torch.rand(args.intervals)

    load_before = os.getloadavg()[0]
    rows = []
    floors = []
    for c in (1, 8, 56):
        expr = torch.from_numpy(source.matrix(contexts_all[:c]))
        n = args.naive_intervals
        # Naive: every (interval, context) pair is a full forward (trunk included).
        naive_seq = seq[:n].repeat_interleave(c, 0)
        naive_expr = expr.repeat(n, 1)
        naive_mean = mean[:n].repeat_interleave(c, 0)
        # The floor, (a) and (b) of a row are timed interleaved, so all three see the same load.
        with torch.no_grad():
            floor_s, fast_s, naive_s = timed_together(
                [lambda: model.trunk(seq), lambda: model.predict_grid(seq, expr, mean),
                 lambda: model.predict_proba(naive_seq, naive_expr, naive_mean)], args.repeats, clock)
        floor_ips = args.intervals / floor_s
        floors.append(floor_ips)
        fast_pps = args.intervals * c / fast_s
        naive_pps = n * c / naive_s
        rows.append((c, fast_pps, naive_pps, fast_pps / naive_pps, floor_ips * c,
                     fast_pps / (floor_ips * c)))

    # The dataloader alone, through the Kipoi dataloader class users get.
    from dataloader import ChromDragoNNDataset  # root dataloader.py

    ds = ChromDragoNNDataset(intervals_file=str(paths.EXAMPLE_DIR / "intervals.bed"),
                             fasta_file=str(paths.EXAMPLE_DIR / "hg19_chr22_1-22000000.fa.gz"),
                             cell_types=",".join(contexts_all))
    n_dl = 0
    t0 = clock()
    for _ in range(20):
        for batch in ds.batch_iter(batch_size=32):
            n_dl += len(batch["inputs"]["seq"])
    dl_ips = n_dl / (clock() - t0)
    model_ips = rows[-1][1] / 56  # (a) at C = 56, in intervals/s
    load_after = os.getloadavg()[0]

    lines = [
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} threads, CPU, {args.clock} clock; random-init weights (speed only), real chr22 windows, "
        f"{args.intervals} intervals per batch, best of {args.repeats}; "
        f"1-min load average {load_before:.1f} at the start, {load_after:.1f} at the end "
        f"({os.cpu_count()} CPUs; the floor of each row is timed next to (a) and (b) of that row, interleaved).",
        "",
        "| contexts C | (a) package pairs/s | (b) naive pairs/s | (a)/(b) | floor x C pairs/s | (a)/(floor x C) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for c, f, nv, ratio, fl, eff in rows:
        lines.append(f"| {c} | {f:,.0f} | {nv:,.1f} | {ratio:.1f}x | {fl:,.0f} | {eff:.0%} |")
    lines += [
        "",
        f"Trunk-only floor (best row): {max(floors):,.1f} intervals/s.",
        f"Dataloader alone (56 contexts, batches of 32): {dl_ips:,.0f} intervals/s; "
        f"model at 56 contexts: {model_ips:,.1f} intervals/s; dataloader/model = {dl_ips / model_ips:,.0f}x.",
        "",
        "Targets: at C = 56, (a)/(b) >= 40x and (a)/(floor x C) >= 80%; dataloader/model >= 10x.",
    ]
    text = "\n".join(lines)
    print(text)
    command = "python benchmarks/bench_predict.py " + " ".join(sys.argv[1:])
    write_section("predict", "Multi-context prediction (issue: Kipoi package)", command.strip(), text)


if __name__ == "__main__":
    main()
