"""`chromdragonn track` speed, measured side by side in one run (issue 11).

On the real-sequence part of the chr22 slice (16,050,001-22,000,000: 118,997 bins at step 50), with
the default model (the 5-fold ensemble of model.yaml):
  uncached  the whole track path without a cache (trunk of 5 folds + head) on --bins bins: s per bin
  fill      the cache fill (folded trunk of 5 folds + fc1's per-bin part) on the same bins: s per bin
  cached    one new context from a warm cache over ALL 118,997 bins (the cache files are full size;
            bins beyond the --bins measured ones repeat their values, which changes no arithmetic)
  floor     the fc2 matmul alone over all bins, 5 folds, in the same blocks: what `cached` cannot beat
and the trunk paths on one chunk of real windows: eager (the model as trained) against the inference
trunk (batch norm folded; optionally torch.compile), with the largest P difference after the head.
Anonymous memory (RssAnon) peaks of the cached path over --bins bins and over all bins show that
memory is flat in region length (the cache and the results are memory-mapped files).

    python benchmarks/bench_track.py [--bins 512] [--threads 2] [--compile]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import write_section  # noqa: E402
from chromdragonn import paths  # noqa: E402
from chromdragonn.inputs.genome import Genome  # noqa: E402
from chromdragonn.inputs.session import Session  # noqa: E402
from chromdragonn.nn.fast_trunk import inference_trunk  # noqa: E402
from chromdragonn.track import (  # noqa: E402
    CHUNK,
    FEATURES,
    HEAD_ROWS,
    CacheKey,
    FeatureCache,
    Ranks,
    TrackRun,
    _chunk_inputs,
    build_cache,
    compute_tracks,
    fold_parts,
    make_tiling,
)

SLICE = "22:16050001-22000000"


def rss_anon_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


class PeakAnon:
    """Peak anonymous memory of this process while the block runs (sampled every 10 ms)."""

    def __enter__(self):
        self.peak, self._stop = rss_anon_kb(), threading.Event()

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, rss_anon_kb())
                time.sleep(0.01)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_anon_kb())


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# UCSC hg19.chrom.sizes, chr1-22, X, Y and M (3,095,693,983 bp; gaps included, as the tiling covers them).
HG19_BP = 3_095_693_983
TRUNK_GMAC = 1.0217    # multiply-adds of the ResNet trunk per 1 kb window (its convolutions), per fold
GPU_TFLOPS = 100.0     # assumed achieved on one recent data-centre GPU with bf16 autocast: an assumption


def scale_on_paper(fill_s_per_bin: float, cached_s_per_bin: float, folds: int) -> str:
    """Whole-genome figures from the measured per-bin costs (CPU) and an assumed GPU throughput."""
    gpu_fill = folds * 2 * TRUNK_GMAC * 1e9 / (GPU_TFLOPS * 1e12)  # s per bin, trunks only
    rows = ["Scale on paper (whole hg19, the default 5-fold ensemble): CPU figures are the per-bin costs measured "
            "above times the number of bins; GPU figures are an ESTIMATE from the trunk's "
            f"{TRUNK_GMAC:.2f} GMAC per window and fold at an assumed {GPU_TFLOPS:.0f} TFLOP/s achieved, not a "
            "measurement.", "",
            "| step | bins | cache on disk (float16) | cache fill, this CPU | cache fill, one GPU (estimate) | "
            "one new context from the cache, this CPU |",
            "|---:|---:|---:|---:|---:|---:|"]
    for step in (50, 200):
        bins = HG19_BP // step
        size_gb = bins * 1000 * 2 * folds / 1e9
        rows.append(f"| {step} | {bins / 1e6:,.1f} M | {size_gb:,.0f} GB | {bins * fill_s_per_bin / 86400:,.1f} days | "
                    f"{bins * gpu_fill / 3600:,.1f} h | {bins * cached_s_per_bin / 3600:,.1f} h |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bins", type=int, default=512, help="bins for the uncached and fill rows (multiple of 256)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--floor-bins", type=int, default=8192, help="bins of the interleaved cached-vs-floor rows")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the inference trunk")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]

    genome = Genome(paths.EXAMPLE_DIR / "hg19_chr22_1-22000000.fa.gz")
    full = make_tiling(genome, 50, region=SLICE)
    sub = make_tiling(genome, 50, region=f"22:17000001-{17_000_000 + (args.bins - 1) * 50 + 200}")
    assert sub.n_bins == args.bins
    session = Session.open(["E116"], None)  # the default 5-fold ensemble, one Roadmap context
    parts = fold_parts(session.model)
    ranks = Ranks(session.device)

    # -- trunk paths on one chunk of real windows, one fold
    x, mean, _ = _chunk_inputs(TrackRun(session, genome, sub, parts, ranks), *sub.bin_coordinates(0, CHUNK))
    member = session.model.members[0]
    eager, folded = member.trunk.eval(), inference_trunk(member.trunk)
    head = parts[0].head
    ctx = head.per_context(session.expression_tensor())
    trunks = [("eager (as trained)", eager), ("batch norm folded", folded)]
    if args.compile:
        compiled = torch.compile(folded)
        t_compile = timed(lambda: compiled(x))  # the first call compiles
        trunks.append((f"folded + torch.compile (compile {t_compile:.0f} s, once)", compiled))
    trunk_rows = []
    with torch.no_grad():
        p_eager = head.probability(head.per_bin(eager(x), mean), ctx)
        for _ in range(2):  # interleaved, best of 2
            for i, (name, fn) in enumerate(trunks):
                t = timed(lambda: fn(x))
                if len(trunk_rows) <= i:
                    p = head.probability(head.per_bin(fn(x), mean), ctx)
                    trunk_rows.append([name, t, float((p - p_eager).abs().max())])
                trunk_rows[i][1] = min(trunk_rows[i][1], t)

    with tempfile.TemporaryDirectory(dir=REPO / "tmp" if (REPO / "tmp").is_dir() else None) as tmp:
        tmp = Path(tmp)
        # -- uncached: the whole track path on the sub-region, 5 folds
        run_u = TrackRun(session, genome, sub, parts, ranks)
        t_uncached = timed(lambda: compute_tracks(run_u, tmp / "u_results.npy", None, progress=False))
        # -- fill: the cache of the sub-region
        key = CacheKey("bench", [], 50, [p.checksum for p in parts], None)
        cache_sub = FeatureCache(tmp / "cache_sub", key, sub.n_bins)
        run_f = TrackRun(session, genome, sub, parts, ranks)
        t_fill = timed(lambda: build_cache(run_f, cache_sub, progress=False))
        # -- a full-size cache: the measured bins' values repeated over all bins of the slice
        cache_full = FeatureCache(tmp / "cache_full", key, full.n_bins)
        cache_full.path.mkdir()
        for i in range(len(parts)):
            src = cache_sub.open_fold(i)
            out = np.memmap(cache_full.fold_file(i), dtype=np.float16, mode="w+", shape=(full.n_bins, FEATURES))
            for lo in range(0, full.n_bins, sub.n_bins):
                hi = min(lo + sub.n_bins, full.n_bins)
                out[lo:hi] = src[: hi - lo]
            out.flush()
            del out
        np.save(cache_full.path / "valid.npy", np.ones(full.n_bins, dtype=bool))
        # -- cached new context, sub-region and all bins, with anonymous-memory peaks
        run_cs = TrackRun(session, genome, sub, parts, ranks)
        with PeakAnon() as mem_sub:
            t_cached_sub = timed(lambda: compute_tracks(run_cs, tmp / "cs_results.npy", cache_sub, progress=False))
        run_c = TrackRun(session, genome, full, parts, ranks)
        with PeakAnon() as mem_full:
            t_cached = timed(lambda: compute_tracks(run_c, tmp / "c_results.npy", cache_full, progress=False))
        assert run_c.trunk_passes == 0 and run_cs.trunk_passes == 0
        # -- the floor: the fc2 matmul alone, 5 folds, same blocks; timed interleaved with the cached
        # path on a block of --floor-bins bins (best of 3 each: the ratio of two measurements made in
        # the same moments of a shared machine), and once over all bins
        h1 = torch.relu(torch.randn(HEAD_ROWS, FEATURES))

        def floor(n_bins):  # one context: blocks of HEAD_ROWS bins, as the cached path runs them
            for part in parts:
                for lo in range(0, n_bins, HEAD_ROWS):
                    n = min(HEAD_ROWS, n_bins - lo)
                    torch.addmm(part.head.b2, h1[:n], part.head.w2.T)

        t_floor = timed(lambda: floor(full.n_bins))
        block = make_tiling(genome, 50, region=f"22:17000001-{17_000_000 + (args.floor_bins - 1) * 50 + 200}")
        cache_block = FeatureCache(cache_full.path, key, full.n_bins)
        best_cached, best_floor = float("inf"), float("inf")
        for _ in range(3):
            run_b = TrackRun(session, genome, block, parts, ranks)
            best_cached = min(best_cached, timed(lambda: compute_tracks(run_b, tmp / "b_results.npy", cache_block,
                                                                        progress=False)))
            best_floor = min(best_floor, timed(lambda: floor(block.n_bins)))
    load_after = os.getloadavg()[0]

    per_bin_uncached = t_uncached / sub.n_bins
    per_bin_fill = t_fill / sub.n_bins
    est_uncached_full = per_bin_uncached * full.n_bins
    lines = [
        f"Machine: {platform.machine()}, torch {torch.__version__}, {args.threads} threads, CPU; the shipped 5-fold "
        f"ensemble; 1-min load average {load_before:.1f} at the start, {load_after:.1f} at the end "
        f"({os.cpu_count()} CPUs, shared). Chunks of {CHUNK} bins for the trunk, blocks of {HEAD_ROWS} "
        "(bin, context) rows for the head from the cache.",
        "",
        "| path | bins | seconds | ms per bin | bins per second |",
        "|---|---:|---:|---:|---:|",
        f"| uncached track, 1 context (trunk x 5 + head) | {sub.n_bins:,} | {t_uncached:.1f} | "
        f"{1000 * per_bin_uncached:.1f} | {1 / per_bin_uncached:,.1f} |",
        f"| cache fill (folded trunk x 5 + fc1 part) | {sub.n_bins:,} | {t_fill:.1f} | {1000 * per_bin_fill:.1f} | "
        f"{1 / per_bin_fill:,.1f} |",
        f"| new context from the warm cache | {sub.n_bins:,} | {t_cached_sub:.2f} | "
        f"{1000 * t_cached_sub / sub.n_bins:.3f} | {sub.n_bins / t_cached_sub:,.0f} |",
        f"| new context from the warm cache | {full.n_bins:,} | {t_cached:.1f} | {1000 * t_cached / full.n_bins:.3f} | "
        f"{full.n_bins / t_cached:,.0f} |",
        f"| floor: fc2 matmul alone x 5 folds | {full.n_bins:,} | {t_floor:.1f} | {1000 * t_floor / full.n_bins:.3f} | "
        f"{full.n_bins / t_floor:,.0f} |",
        f"| new context from the warm cache, best of 3 | {block.n_bins:,} | {best_cached:.2f} | "
        f"{1000 * best_cached / block.n_bins:.3f} | {block.n_bins / best_cached:,.0f} |",
        f"| floor, best of 3, interleaved with the row above | {block.n_bins:,} | {best_floor:.2f} | "
        f"{1000 * best_floor / block.n_bins:.3f} | {block.n_bins / best_floor:,.0f} |",
        "",
        f"- New context with a warm cache against the uncached track, over the whole slice: "
        f"**{est_uncached_full / t_cached:,.0f}x** (the uncached time of all {full.n_bins:,} bins is the "
        f"measured {1000 * per_bin_uncached:.1f} ms per bin x {full.n_bins:,} = {est_uncached_full / 60:.0f} min, "
        f"an extrapolation; side by side on the same {sub.n_bins:,} bins: "
        f"{t_uncached / t_cached_sub:,.0f}x). Target >= 100x.",
        f"- Cached path against the floor of its own arithmetic: {best_floor / best_cached:.0%} on "
        f"{block.n_bins:,} bins, best of 3 interleaved ({t_floor / t_cached:.0%} from the single passes over all "
        f"bins, which met different moments of the shared machine). Target >= 80%.",
        f"- Anonymous memory peak of the cached path: {mem_sub.peak / 1024:,.0f} MB over {sub.n_bins:,} bins, "
        f"{mem_full.peak / 1024:,.0f} MB over {full.n_bins:,} bins (flat: the cache and the results are "
        "memory-mapped; the page cache holding them is the kernel's, reclaimable).",
        "",
        "Trunk paths, one fold, one chunk of real windows (largest |P difference| after the head, against eager):",
        "",
        "| trunk | s per chunk | windows/s | speed-up | max abs P difference |",
        "|---|---:|---:|---:|---:|",
    ]
    base = trunk_rows[0][1]
    for name, t, dp in trunk_rows:
        lines.append(f"| {name} | {t:.2f} | {CHUNK / t:,.1f} | {base / t:.2f}x | {dp:.1e} |")
    lines += ["", scale_on_paper(per_bin_fill, best_cached / block.n_bins, len(parts))]
    text = "\n".join(lines)
    print(text)
    command = "python benchmarks/bench_track.py " + " ".join(sys.argv[1:])
    write_section("track", "Accessibility tracks and the sequence-feature cache (issue 11)", command.strip(), text)


if __name__ == "__main__":
    main()
