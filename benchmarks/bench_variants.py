"""Variant-effect scoring and saturation mutagenesis: speed, memory, and the truth check.

    python benchmarks/bench_variants.py speed   # writes the "speed" section of benchmarks/RESULTS_variants.md
    python benchmarks/bench_variants.py truth   # needs trained weights; writes the "truth" section

speed, side by side in one run on the same model and the same real SNVs (1000 Genomes, chr22):
  (a) ours: chromdragonn.variants (trunk once per window, the 56 contexts through the split head);
  (b) legacy kipoi_veff.score_variants (0.3.1, with chromdragonn.kipoi.veff) on the Kipoi model
      folder of the same weights, all 56 contexts in one call (this model's multi-context dataloader);
  (c) legacy kipoi_veff.score_variants with one context per call (a model with one output per context);
  floor: two trunk passes per variant and nothing else;
  memory: peak RSS of the streaming reader + window building + writer path on generated VCFs of
      10,000 and 100,000 real-looking SNVs (random positions of the slice's real sequence, REF from
      the FASTA), each in a fresh process, with a stand-in model that returns constants (the
      network's own memory does not grow with the VCF and its time would be hours);
  ISM: saturation mutagenesis of a real region, fast (partial recompute) vs naive (whole trunk).
Weights: weights/fold0.with_mean.pt when it exists, else random-init (seeded) with batch-norm
statistics from real windows (speed does not depend on the values).

truth: on the training benchmark (simulated labels), per fold: that fold's model and its held-out
(test) contexts from weights/folds.tsv; the real SNVs of the 1000 Genomes and ClinVar VCFs inside
the slice; Spearman between our diff and the generative rule's true P(alt) - P(ref), per context,
for all SNVs and for the SNVs whose true |effect| >= 0.01.
"""
from __future__ import annotations

import argparse
import gzip
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chromdragonn import paths  # noqa: E402
from chromdragonn.training.simulate import SHIPPED_RULE_VERSION  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS_variants.md"
FASTA = paths.EXAMPLE_DIR / "hg19_chr22_1-22000000.fa.gz"
MEAN_BW = paths.MEAN_BIGWIG
SHARED = paths.SHARED_DATA
KG_VCF = SHARED / "variants" / "1kg_phase3_chr22_ADA2_GAB4.sites.vcf.gz"
CLINVAR_VCF = SHARED / "variants" / "clinvar_20180429_pathogenic_hg19_chr22.vcf.gz"
SLICE_START, SLICE_END = 16_050_000, 22_000_000  # real bases of the FASTA slice (0-based)


# ---------------------------------------------------------------- shared helpers


def write_section(key: str, title: str, command: str, body: str) -> None:
    from benchmarks.results import write_section as _write

    header = ("# Variant effects and saturation mutagenesis: benchmark results\n\nEach section is written by "
              "`benchmarks/bench_variants.py`; rerun its command to reproduce.\n")
    _write(key, title, command, body, results=RESULTS, header=header)


def calibrated_random_model(genes, seed: int = 0):
    """Random-init weights whose batch-norm statistics come from real windows (as tests/conftest.py)."""
    from chromdragonn.inputs.expression import ExpressionSource
    from chromdragonn.inputs.genome import Genome, one_hot_batch
    from chromdragonn.nn.model import ChromDragoNN, ModelConfig

    torch.manual_seed(seed)
    model = ChromDragoNN(ModelConfig(n_genes=len(genes), with_mean=True))
    genome = Genome(FASTA)
    seq = torch.from_numpy(one_hot_batch([genome.fetch("22", s, s + 1000)
                                          for s in range(17_000_000, 17_000_000 + 24 * 20_000, 20_000)]))
    expr = torch.from_numpy(ExpressionSource().matrix(["E003", "E116", "E123", "E071"]))
    n, c = len(seq), len(expr)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(seq.repeat_interleave(c, 0), expr.repeat(n, 1), torch.rand(n * c))
    return model.eval()


def bench_weights(tmp: Path) -> tuple[Path, str]:
    trained = paths.WEIGHTS_DIR / "fold0.with_mean.pt"
    if trained.is_file():
        return trained, "trained fold 0 (weights/fold0.with_mean.pt)"
    from chromdragonn.inputs.expression import read_gene_panel
    from chromdragonn.nn.weights import save_weights

    genes = read_gene_panel(paths.GENE_PANEL)["gene_symbol"].tolist()
    path = tmp / "random.with_mean.pt"
    save_weights(calibrated_random_model(genes), path, genes)
    return path, "random-init (seeded), batch-norm statistics from real windows"


def subset_vcf(src: Path, dest: Path, n: int, snv_only: bool = True) -> Path:
    with gzip.open(src, "rt") as fh:
        lines = fh.read().splitlines()
    header = [ln for ln in lines if ln.startswith("#")]
    recs = []
    for ln in lines:
        if ln.startswith("#"):
            continue
        f = ln.split("\t")
        if snv_only and (len(f[3]) != 1 or len(f[4]) != 1):
            continue
        recs.append(ln)
        if len(recs) == n:
            break
    dest.write_text("\n".join(header + recs) + "\n")
    return dest


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


# ---------------------------------------------------------------- memory (child process)


class ConstantModel(torch.nn.Module):
    """Stands in for the network in the memory runs: same interface, constant output."""

    def __init__(self, n_genes: int):
        super().__init__()
        self.n_genes, self.with_mean = n_genes, False

    def predict_grid(self, seq, expression, mean_acc=None):
        return torch.full((seq.shape[0], expression.shape[0]), 0.5)


def generate_snv_vcf(path: Path, n: int, seed: int = 0) -> None:
    """n SNVs at random positions of the slice's real sequence, REF from the FASTA, sorted."""
    from chromdragonn.inputs.genome import Genome

    genome = Genome(FASTA)
    # Fetched in 1 Mb pieces: pyfaidx cannot read one multi-megabase span of a bgzipped FASTA.
    seq = "".join(genome.fetch("22", s, min(s + 1_000_000, SLICE_END)) for s in range(SLICE_START, SLICE_END, 1_000_000))
    rng = np.random.default_rng(seed)
    chosen: set[int] = set()
    while len(chosen) < n:  # positions whose base is A, C, G or T (not an N inside the slice)
        for p in rng.integers(0, len(seq), size=n):
            if len(chosen) < n and seq[p] in "ACGT":
                chosen.add(int(p))
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=22,length=22000000>",
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    alt_of = {b: [a for a in "ACGT" if a != b] for b in "ACGT"}
    for i, p in enumerate(sorted(chosen)):
        ref = seq[p]
        lines.append(f"22\t{SLICE_START + p + 1}\tsim{i}\t{ref}\t{alt_of[ref][rng.integers(3)]}\t.\tPASS\t.")
    path.write_text("\n".join(lines) + "\n")


def rss_kb() -> int:
    """Current resident set size of this process (Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def memory_child(vcf: str, out: str, n_contexts: int) -> None:
    import threading

    from chromdragonn.inputs.expression import ExpressionSource
    from chromdragonn.variants import write_variant_scores

    source = ExpressionSource()
    model = ConstantModel(len(source.genes))
    contexts = source.contexts[:n_contexts]
    before = rss_kb()
    peak = [before]
    done = threading.Event()

    def sample():  # the streaming path's own peak, sampled every 10 ms
        while not done.is_set():
            peak[0] = max(peak[0], rss_kb())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    _, counts = write_variant_scores(vcf, FASTA, contexts, out, model=(model, source.genes), batch_size=32,
                                     progress=False)
    elapsed = time.perf_counter() - t0
    done.set()
    sampler.join()
    peak[0] = max(peak[0], rss_kb())
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"RESULT {counts.alleles_scored} {before} {peak[0]} {elapsed:.2f} {os.path.getsize(out)} {maxrss}")


def run_memory(tmp: Path, n: int, n_contexts: int, out_suffix: str) -> dict:
    vcf = tmp / f"sim_{n}.vcf"
    if not vcf.exists():
        generate_snv_vcf(vcf, n)
    out = tmp / f"sim_{n}{out_suffix}"
    res = subprocess.run([sys.executable, __file__, "_memory", str(vcf), str(out), str(n_contexts)],
                         capture_output=True, text=True, check=True)
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")][-1].split()
    return {"n": int(line[1]), "before_mb": int(line[2]) / 1024, "peak_mb": int(line[3]) / 1024,
            "seconds": float(line[4]), "out_mb": int(line[5]) / 1e6, "maxrss_mb": int(line[6]) / 1024}


# ---------------------------------------------------------------- speed


def run_speed(args) -> None:
    import logging

    import kipoi
    import kipoi_veff

    from chromdragonn.inputs.expression import ExpressionSource
    from chromdragonn.inputs.genome import Genome, MeanAccessibility, centered_window, one_hot
    from chromdragonn.ism import saturation_mutagenesis
    from chromdragonn.kipoi import veff as veff_compat
    from chromdragonn.kipoi.render import write_model_dir
    from chromdragonn.nn.weights import load_model
    from chromdragonn.variants import score_variants

    logging.getLogger("kipoi_veff").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench_variants_"))
    weights, weights_note = bench_weights(tmp)
    model, genes = load_model(weights)
    source = ExpressionSource()
    contexts = source.contexts
    assert len(contexts) == 56
    genome = Genome(FASTA)
    lines = []

    # -- (a) ours, floor, (b) legacy all contexts, (c) legacy one context per call
    vcf = subset_vcf(KG_VCF, tmp / "snvs.vcf", args.variants)
    n = args.variants

    def ours():
        return score_variants(vcf, FASTA, contexts, model=(model, genes), mean_bigwig=MEAN_BW,
                              batch_size=args.batch_size)

    ref_df = ours()
    windows = []
    for pos, ref, alt in zip(ref_df["POS"], ref_df["REF"], ref_df["ALT"]):
        w = genome.fetch("22", pos - 500, pos + 500)
        windows += [w, w[:499] + alt + w[500:]]
    seqs = torch.from_numpy(np.stack([one_hot(w) for w in windows]))

    def floor():
        with torch.no_grad():
            for lo in range(0, len(seqs), args.batch_size):
                model.trunk(seqs[lo: lo + args.batch_size])

    model_dir = write_model_dir(tmp / "kipoi_model", [weights], "benchmark model",
                                extra_files=[paths.SHIPPED_EXPRESSION], copy_example=False)
    veff_compat.install()
    kmodel = kipoi.get_model(str(model_dir), source="dir")

    def legacy(cell_types, vcf_path, out_name):
        return kipoi_veff.score_variants(
            kmodel, dl_args={"fasta_file": str(FASTA), "cell_types": cell_types, "mean_bigwig": str(MEAN_BW)},
            input_vcf=str(vcf_path), output_vcf=str(tmp / out_name), scores=["diff"], return_predictions=True,
            batch_size=args.batch_size)

    t_ours, t_floor, t_legacy = [], [], []
    legacy_df = None
    for _ in range(args.repeats):  # interleaved, so all three see the same load
        t_floor.append(best_of(floor, 1))
        t_ours.append(best_of(ours, 1))
        t0 = time.perf_counter()
        legacy_df = legacy(",".join(contexts), vcf, "legacy_all.vcf")["diff"]
        t_legacy.append(time.perf_counter() - t0)
    max_dev = float(np.abs(legacy_df[contexts].to_numpy() - ref_df[[f"{c}/diff" for c in contexts]].to_numpy()).max())
    vcf_small = subset_vcf(KG_VCF, tmp / "snvs_small.vcf", args.per_context_variants)
    per_ctx = contexts[: args.per_context_contexts]
    t0 = time.perf_counter()
    for c in per_ctx:
        legacy(c, vcf_small, "legacy_one.vcf")
    t_one = time.perf_counter() - t0
    rate_ours = n * 56 / min(t_ours)
    rate_floor = n * 56 / min(t_floor)
    rate_legacy = n * 56 / min(t_legacy)
    rate_one = args.per_context_variants * len(per_ctx) / t_one
    lines += [
        f"Weights: {weights_note}. Machine: {platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
        f"CPU only; {os.cpu_count()} CPUs shared with other jobs (1-min load average {load_before:.1f} at the start). "
        "All timings are wall-clock, best of interleaved runs.",
        "",
        f"### Variants x contexts per second, 56 contexts ({n} real 1000 Genomes SNVs, batch {args.batch_size}, "
        f"best of {args.repeats} interleaved runs)",
        "",
        "| path | variants x contexts / s | vs (a) |",
        "|---|---:|---:|",
        f"| (a) ours: `score_variants`, trunk once per window, split head | {rate_ours:,.0f} | 1 |",
        f"| floor: two trunk passes per variant, nothing else | {rate_floor:,.0f} | (a) is {rate_ours / rate_floor:.0%} of it |",
        f"| (b) legacy `kipoi_veff.score_variants`, 56 contexts in one call | {rate_legacy:,.0f} | (a) is {rate_ours / rate_legacy:.1f}x |",
        f"| (c) legacy, one context per call ({args.per_context_variants} SNVs x {len(per_ctx)} contexts, "
        f"{len(per_ctx)} calls) | {rate_one:,.1f} | (a) is {rate_ours / rate_one:.0f}x |",
        "",
        f"(b) and (a) give the same diff: largest |difference| over {n} SNVs x 56 contexts = {max_dev:.1e}.",
        f"Per run: (a) {min(t_ours):.1f} s, floor {min(t_floor):.1f} s, (b) {min(t_legacy):.1f} s; "
        f"(c) {t_one:.1f} s for its {len(per_ctx)} calls.",
        "",
    ]
    print("\n".join(lines))

    # -- memory
    mem = [run_memory(tmp, k, 56, ".tsv") for k in (10_000, 100_000)]
    mem_vcf = run_memory(tmp, 100_000, 56, ".vcf.gz")
    lines += [
        "### Memory of the streaming path (reader + windows + writer), 56 contexts, batch 32",
        "",
        "| VCF | output | alleles scored | RSS before streaming | peak RSS while streaming | growth | "
        "process high-water mark | output size | time |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m, kind in ((mem[0], "TSV"), (mem[1], "TSV"), (mem_vcf, "VCF.gz")):
        lines.append(f"| {m['n']:,} SNVs | {kind} | {m['n']:,} | {m['before_mb']:,.0f} MB | {m['peak_mb']:,.0f} MB | "
                     f"{m['peak_mb'] - m['before_mb']:+,.0f} MB | {m['maxrss_mb']:,.0f} MB | {m['out_mb']:,.1f} MB | "
                     f"{m['seconds']:.0f} s |")
    lines += ["", "Each row is a fresh process; RSS sampled every 10 ms (/proc/self/status). The stand-in model "
                  "returns constants, so the table measures the VCF-length-dependent part; the network adds a fixed "
                  "amount that does not grow with the VCF.", ""]
    print("\n".join(lines[-9:]))

    # -- saturation mutagenesis
    start = 17_500_100
    w = centered_window("22", start, start + args.ism_bp)
    onehot = one_hot(genome.fetch("22", w.start, w.end))
    mean = MeanAccessibility(MEAN_BW).value("22", w.start, w.end)
    expr = source.matrix(["E003", "E116"])
    offsets = list(range(start - w.start, start + args.ism_bp - w.start))
    from chromdragonn.ism import FastISM

    frac = FastISM(model.trunk, torch.from_numpy(onehot)).touched_fraction()
    t_fast, t_naive = [], []
    res = {}
    for _ in range(args.repeats):
        for method, store, batch in (("fast", t_fast, args.ism_batch), ("naive", t_naive, args.batch_size)):
            t0 = time.perf_counter()
            res[method] = saturation_mutagenesis(model, onehot, offsets, expr, mean, method=method,
                                                 batch_size=batch)
            store.append(time.perf_counter() - t0)
    n_mut = 3 * args.ism_bp
    dev = float(np.abs(res["fast"].mut_prob - res["naive"].mut_prob).max())
    lines += [
        f"### Saturation mutagenesis, chr22:{start + 1:,}-{start + args.ism_bp:,} ({args.ism_bp} bp, {n_mut:,} "
        f"substitutions, 2 contexts, best of {args.repeats} interleaved runs)",
        "",
        "| method | batch | time | substitutions / s |",
        "|---|---:|---:|---:|",
        f"| naive: whole trunk per substitution | {args.batch_size} | {min(t_naive):.1f} s | {n_mut / min(t_naive):,.0f} |",
        f"| fast: receptive field only, layer by layer | {args.ism_batch} | {min(t_fast):.1f} s | "
        f"{n_mut / min(t_fast):,.0f} |",
        "",
        f"Speed-up {min(t_naive) / min(t_fast):.1f}x; largest |P(fast) - P(naive)| = {dev:.1e}; one substitution "
        f"recomputes {frac:.1%} of the trunk's convolution multiply-adds (ceiling about {1 / frac:.0f}x).",
        "",
        f"1-min load average at the end: {os.getloadavg()[0]:.1f}.",
        "",
        "Targets (issue 4): (a) >= 20x the legacy path; (a) within 70% of the floor; memory flat in VCF length; "
        "saturation mutagenesis >= 5x naive on CPU.",
    ]
    text = "\n".join(lines)
    print(text)
    write_section("speed", "Variant scoring, memory and saturation mutagenesis (issue 4)",
                  "python benchmarks/bench_variants.py speed", text)


# ---------------------------------------------------------------- truth check


def snv_records(vcfs, genome) -> list[tuple[str, int, str, str]]:
    """Biallelic-per-ALT SNVs inside the FASTA's real sequence, REF matching, deduplicated."""
    import cyvcf2

    seen, out = set(), []
    for path in vcfs:
        for v in cyvcf2.VCF(str(path)):
            name = "22" if v.CHROM in ("22", "chr22") else None
            if name is None or not (SLICE_START < v.POS <= SLICE_END) or len(v.REF) != 1:
                continue
            if genome.fetch(name, v.POS - 1, v.POS) != v.REF.upper():
                continue
            for alt in v.ALT:
                key = (v.POS, v.REF.upper(), alt.upper())
                if len(alt) == 1 and alt.upper() in "ACGT" and key not in seen:
                    seen.add(key)
                    out.append(("22", v.POS, v.REF.upper(), alt.upper()))
    return out


def snv_windows(snvs, genome) -> tuple[list[str], list[str]]:
    """The 1 kb REF and ALT windows of the truth check, the SNV at index 499 (the scorer's convention)."""
    refs = [genome.fetch("22", p - 500, p + 500) for _, p, _, _ in snvs]
    return refs, [w[:499] + a + w[500:] for w, (_, _, _, a) in zip(refs, snvs)]


def model_diff(model_file, mean_bigwig, contexts, expr, genome, snvs, refs, alts, device: str = "cpu",
               batch_size: int = 64) -> np.ndarray:
    """(SNVs, contexts) diff of one weights file, scored as ``chromdragonn score-variants`` scores it."""
    from chromdragonn.inputs.genome import MeanAccessibility
    from chromdragonn.inputs.session import Session
    from chromdragonn.nn.weights import load_model
    from chromdragonn.scores import compute_scores
    from chromdragonn.variants import VariantScorer

    model, genes = load_model(model_file)
    session = Session(model.to(device), genes, contexts, expr, MeanAccessibility(mean_bigwig), torch.device(device))
    scorer = VariantScorer(session, genome, ["diff"], batch_size=batch_size)
    means = np.array([scorer.mean_track.value("22", p - 500, p + 500) for _, p, _, _ in snvs], dtype=np.float32)
    return compute_scores(scorer._probs(refs, means), scorer._probs(alts, means), ["diff"])["diff"]


def truth_check(folds=(0, 1, 2, 3, 4), max_variants: int | None = None, device: str = "cpu",
                matter: float = 0.01, batch_size: int = 64, weights_dir: Path = paths.WEIGHTS_DIR,
                variant: str = "with_mean", rule_version: int | None = None) -> tuple[list[dict], int]:
    """Spearman(ours diff, true diff) per fold and held-out context. Returns (rows, n_snvs).

    ``weights_dir`` holds fold{f}.{variant}.pt, folds.tsv and the mean-accessibility bigWig (what
    ``python -m chromdragonn.training export --weights-dir D`` writes); ``rule_version`` 2 adds the
    locus field at each SNV to both alleles' logits (it does not depend on the allele, but sets where
    on the logistic curve the SNV acts); None: the shipped weights' rule."""
    from scipy.stats import spearmanr

    from chromdragonn.inputs.expression import ExpressionSource
    from chromdragonn.inputs.genome import Genome, one_hot_batch
    from chromdragonn.training.folds import read_folds
    from chromdragonn.training.simulate import SimulatedAccessibility

    genome = Genome(FASTA)
    snvs = snv_records([KG_VCF, CLINVAR_VCF], genome)
    if max_variants:
        snvs = [snvs[i] for i in np.random.default_rng(0).permutation(len(snvs))[:max_variants]]
    rule = SimulatedAccessibility.default(rule_version)
    weights_dir = Path(weights_dir)
    folds_df = read_folds(weights_dir / paths.FOLDS_FILE.name)
    source = ExpressionSource()
    mean_bw = weights_dir / paths.MEAN_BIGWIG.name
    loci = ("22", np.array([p for _, p, _, _ in snvs]))  # window centres (0-based), for the locus field
    refs, alts = snv_windows(snvs, genome)
    rows = []
    for fold in folds:
        test = folds_df[(folds_df.fold == fold) & (folds_df.role == "test")]["context"].tolist()
        expr = source.matrix(test)
        ours = model_diff(weights_dir / f"fold{fold}.{variant}.pt", mean_bw, test, expr, genome, snvs, refs, alts,
                          device, batch_size)
        true = np.zeros_like(ours)
        for lo in range(0, len(refs), 512):
            r = torch.from_numpy(one_hot_batch(refs[lo: lo + 512]))
            a = torch.from_numpy(one_hot_batch(alts[lo: lo + 512]))
            at = (loci[0], loci[1][lo: lo + 512])
            true[lo: lo + 512] = rule.probability(a, expr, at) - rule.probability(r, expr, at)
        for j, ctx in enumerate(test):
            big = np.abs(true[:, j]) >= matter
            rho_all = spearmanr(ours[:, j], true[:, j]).statistic
            rho_big = spearmanr(ours[big, j], true[big, j]).statistic if big.sum() >= 3 else float("nan")
            rows.append({"fold": fold, "context": ctx, "rho_all": float(rho_all), "n_matter": int(big.sum()),
                         "rho_matter": float(rho_big)})
    return rows, len(snvs)


TRUTH_ROW_COLUMNS = ["fold", "context", "rho_all", "n_matter", "rho_matter", "model", "rule_version", "n_snvs"]


def read_truth_rows(files: list[str]) -> tuple[list[dict], int, str, int]:
    """Rows kept by ``truth --rows-out`` (one file per fold, say): (rows, n_snvs, model, rule_version).
    One model, one rule and one SNV set across the files, or a one-line error naming the file."""
    import pandas as pd

    from chromdragonn.errors import ChromDragoNNError

    frames = []
    for f in files:
        if not Path(f).is_file():
            raise ChromDragoNNError(f"{f}: no such truth-rows file")
        df = pd.read_csv(f, sep="\t")
        missing = [c for c in TRUTH_ROW_COLUMNS if c not in df.columns]
        if missing:
            raise ChromDragoNNError(f"{f}: not a truth-rows file (no column {missing[0]}); write one with truth --rows-out")
        if frames and any(df[k].nunique() != 1 or df[k].iloc[0] != frames[0][k].iloc[0]
                          for k in ("model", "rule_version", "n_snvs")):
            raise ChromDragoNNError(f"{f}: model, rule version or SNV count differs from {files[0]}'s")
        frames.append(df)
    if not frames:
        raise ChromDragoNNError("--from-rows: no files")
    df = pd.concat(frames, ignore_index=True)
    if df.duplicated(["fold", "context"]).any():
        fold, ctx = df[df.duplicated(["fold", "context"])].iloc[0][["fold", "context"]]
        raise ChromDragoNNError(f"--from-rows: fold {fold}, context {ctx} appears twice")
    return df.to_dict("records"), int(df["n_snvs"].iloc[0]), str(df["model"].iloc[0]), int(df["rule_version"].iloc[0])


def run_truth(args) -> None:
    t0 = time.perf_counter()
    weights_dir = Path(args.weights_dir)
    if args.from_rows:  # kept per-fold rows (models no longer at hand, e.g. the unshipped no-mean folds)
        rows, n, args.model, args.rule_version = read_truth_rows(args.from_rows)
        folds = sorted({int(r["fold"]) for r in rows})
        args.folds = ",".join(str(f) for f in folds)
        source = f"rows of {', '.join(args.from_rows)}"
        shipped = bool(args.section)
    else:
        folds = [int(f) for f in args.folds.split(",")]
        rows, n = truth_check(folds, args.max_variants, args.device, args.matter, weights_dir=weights_dir,
                              variant=args.model, rule_version=args.rule_version)
        shipped = weights_dir.resolve() == paths.WEIGHTS_DIR.resolve()
        source = f"{'weights' if shipped else weights_dir}/fold*.{args.model}.pt"
        shipped = shipped or bool(args.section)
    if args.rows_out:
        from chromdragonn.outputs.atomic import atomic_output

        with atomic_output(args.rows_out) as tmp, open(tmp, "w") as fh:
            fh.write("\t".join(TRUTH_ROW_COLUMNS) + "\n")
            for r in rows:
                r = {**r, "model": args.model, "rule_version": args.rule_version, "n_snvs": n}
                fh.write("\t".join(str(r[c]) for c in TRUTH_ROW_COLUMNS) + "\n")
    lines = [
        f"Models: {source}; rule v{args.rule_version}. "
        f"Simulated labels (training/REPORT.md): each fold's model scored on its own held-out (test) contexts; "
        f"{n:,} real SNVs (1000 Genomes + ClinVar, inside the chr22 slice); true effect = P_rule(alt) - P_rule(ref) "
        f"of the generative rule (chromdragonn.training.simulate); 'matter' = |true effect| >= {args.matter}."
        + ("" if args.from_rows else f" {time.perf_counter() - t0:.0f} s on {args.device}."),
        "",
        "| fold | context | Spearman, all SNVs | SNVs that matter | Spearman, those |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['fold']} | {r['context']} | {r['rho_all']:.3f} | {r['n_matter']} | {r['rho_matter']:.3f} |")
    all_r = np.array([r["rho_all"] for r in rows])
    big_r = np.array([r["rho_matter"] for r in rows])
    lines += ["", f"Median over {len(rows)} (fold, context) pairs: {np.nanmedian(all_r):.3f} (all SNVs), "
                  f"{np.nanmedian(big_r):.3f} (SNVs that matter)."]
    text = "\n".join(lines)
    print(text)
    if not shipped:  # RESULTS_variants.md describes the shipped weights only
        print(f"(not written to {RESULTS.name}: --weights-dir is not weights/; --section writes it anyway)")
        return
    default = args.model == "with_mean"  # the with-mean section keeps its original key, title and command
    key = args.section or ("truth" if default else f"truth_{args.model}")
    command = ("python benchmarks/bench_variants.py truth "
               + (f"--from-rows {' '.join(args.from_rows)}" if args.from_rows else f"--folds {args.folds}")
               + ("" if default or args.from_rows else f" --model {args.model}")
               + ("" if args.rule_version == SHIPPED_RULE_VERSION or args.from_rows else f" --rule-version {args.rule_version}")
               + ("" if weights_dir.resolve() == paths.WEIGHTS_DIR.resolve() or args.from_rows
                  else f" --weights-dir {args.weights_dir}")
               + (f" --max-variants {args.max_variants}" if args.max_variants and not args.from_rows else "")
               + (f" --section {args.section}" if args.section else ""))
    write_section(key, "Variant effects against the simulated truth (issue 4)" + ("" if default else f", {args.model} model"),
                  command, text)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_memory":
        memory_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--variants", type=int, default=48, help="SNVs for (a), (b) and the floor")
    sp.add_argument("--per-context-variants", type=int, default=16)
    sp.add_argument("--per-context-contexts", type=int, default=4, help="contexts (= calls) timed for (c)")
    sp.add_argument("--batch-size", type=int, default=32, help="windows per forward pass (also naive ISM)")
    sp.add_argument("--ism-bp", type=int, default=200)
    sp.add_argument("--ism-batch", type=int, default=256, help="substitutions per batch, fast ISM")
    sp.add_argument("--repeats", type=int, default=3)
    sp.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a shared, oversubscribed machine two threads spin-wait "
                         "and measure slower and noisier)")
    tp = sub.add_parser("truth")
    tp.add_argument("--folds", default="0,1,2,3,4")
    tp.add_argument("--max-variants", type=int, default=None)
    tp.add_argument("--device", default="cpu")
    tp.add_argument("--matter", type=float, default=0.01)
    tp.add_argument("--model", default="with_mean", choices=["with_mean", "no_mean"],
                    help="which shipped fold files to score (no_mean: only the folds shipped, e.g. --folds 0)")
    tp.add_argument("--weights-dir", default=str(paths.WEIGHTS_DIR),
                    help="fold files, folds.tsv and mean bigWig (default: the shipped weights/; any other folder, "
                         "e.g. one written by `python -m chromdragonn.training export --weights-dir D --no-yaml`, is "
                         "printed only)")
    tp.add_argument("--rule-version", type=int, default=SHIPPED_RULE_VERSION, choices=[1, 2],
                    help=f"the simulated-labels rule the models were trained on (default {SHIPPED_RULE_VERSION}: "
                         "the shipped weights')")
    tp.add_argument("--rows-out", default=None,
                    help="also write the (fold, context) rows as a TSV (keep one per fold: --from-rows reads them)")
    tp.add_argument("--from-rows", nargs="+", default=None,
                    help="TSVs of --rows-out: the table and medians from kept rows, no model scored")
    tp.add_argument("--section", default=None,
                    help="write the table to this section of RESULTS_variants.md even when the models are not "
                         "weights/ (say, kept rows of the folds the shipped weights were exported from)")
    args = ap.parse_args()
    if args.mode == "speed":
        run_speed(args)
        return
    from chromdragonn.errors import ChromDragoNNError

    try:
        run_truth(args)
    except ChromDragoNNError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
