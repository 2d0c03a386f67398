"""Attributions (chromdragonn attribute): the batched path against the naive per-context loop.

    python benchmarks/bench_attributions.py speed      # writes the "attribute" section of benchmarks/RESULTS.md
    python benchmarks/bench_attributions.py tf-truth   # writes the "tf_drivers_truth" section (see below)
    python benchmarks/bench_attributions.py motifs     # writes the "motif_annotation" section

motifs: score-variants with and without --motifs jaspar on the same generated SNVs (random positions
of the real chr22 slice, REF from the FASTA; benchmarks/bench_variants.py's generator), one fold
(weights/fold0.with_mean.pt), 3 contexts, one thread, each run in this process one after the other;
the ratio of the two wall times. Both stream in chunks, so the per-variant cost does not depend on
the VCF's length; --variants sets how many are timed.

Side by side in one run, on the same model and the same real hg19 windows, for C = 1, 8 and 56
contexts (the shipped Roadmap contexts):
  (a) package: chromdragonn.attribute.window_gradients(..., "batched"): one trunk forward per batch
      of windows, the C backward passes as one batched vector-Jacobian product (is_grads_batched);
  (b) naive: one trunk forward and one backward per window per context ("loop");
  floor: one trunk forward plus C single backward passes, timed separately (what (a) would cost if
      batching the backward passes saved nothing and cost nothing).
Both give the same attributions: the largest |(a) - (b)| over every gradient entry is reported.
Timings are best of --repeats, (a) and (b) interleaved.
Weights: weights/fold0.with_mean.pt (speed does not depend on the values).

tf-truth: does ``tf-drivers`` find the TFs that the simulated-labels rule gates its motifs with? Per
fold (weights/folds.tsv) that fold's model, per held-out (test) context: a seeded sample of
--candidates 200 bp bins of the real chr22 slice (windows without N); the --bins bins most
specifically open in that context by the rule (largest rule P in the context minus its mean over the
56 contexts: the paper's "open in this context, not in most"); the panel TFs ranked by |score|
(integrated gradients and gradient x (expression - baseline), baseline the panel median, summed over
the bins); hits = true gating TFs (the rule's context TFs) among the top --top. Against: a seeded
random ranking, its expectation (top x 10 / 1575 = 0.063 for 10 gating TFs), and the rule's own
exact attribution (its gates' change from the baseline times the motif terms, summed over the same
bins): which gating TFs matter most there (>= 10% of the largest contribution). The rule and the
weights are options (--rule, --weights with {fold}), so a better-trained benchmark can be checked
the same way.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chromdragonn import paths  # noqa: E402

FASTA = paths.EXAMPLE_DIR / "hg19_chr22_1-22000000.fa.gz"


def run_speed(args) -> None:
    from benchmarks.results import write_section
    from chromdragonn.attribute import window_gradients
    from chromdragonn.inputs.expression import ExpressionSource
    from chromdragonn.inputs.genome import Genome, MeanAccessibility, one_hot_batch
    from chromdragonn.nn.weights import load_model

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    weights = paths.WEIGHTS_DIR / "fold0.with_mean.pt"
    model, _ = load_model(weights)
    for p in model.parameters():
        p.requires_grad_(False)
    source = ExpressionSource()
    contexts = source.contexts
    genome = Genome(FASTA)
    mean_track = MeanAccessibility(paths.MEAN_BIGWIG)
    starts = [args.start + i * 1000 for i in range(args.windows)]
    seq = torch.from_numpy(one_hot_batch([genome.fetch("22", s, s + 1000) for s in starts]))
    mean = torch.tensor([mean_track.value("chr22", s, s + 1000) for s in starts], dtype=torch.float32)

    def best_pair(fa, fb):
        ta = tb = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter(); fa(); ta = min(ta, time.perf_counter() - t0)
            t0 = time.perf_counter(); fb(); tb = min(tb, time.perf_counter() - t0)
        return ta, tb

    def batches(method, expr):
        out = []
        for lo in range(0, len(seq), args.batch_size):
            out.append(window_gradients(model, seq[lo: lo + args.batch_size], expr,
                                        mean[lo: lo + args.batch_size], method))
        return torch.cat(out)

    def floor_time(c):
        x = seq[:1].clone().requires_grad_(True)
        best_f = best_b = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            with torch.no_grad():
                model.trunk(seq[:1])
            best_f = min(best_f, time.perf_counter() - t0)
            y = model.head.logit_grid(model.trunk(x), torch.from_numpy(source.matrix(contexts[:1])), mean[:1])
            t0 = time.perf_counter()
            torch.autograd.grad(y.sum(), x)
            best_b = min(best_b, time.perf_counter() - t0)
        return best_f + c * best_b

    rows, worst = [], 0.0
    for c in args.contexts:
        expr = torch.from_numpy(source.matrix(contexts[:c]))
        ga, gb = batches("batched", expr), batches("loop", expr)
        diff = float((ga - gb).abs().max())
        attr_diff = float(((ga - gb) * seq[:, None]).sum(-1).abs().max())
        worst = max(worst, diff)
        ta, tb = best_pair(lambda: batches("batched", expr), lambda: batches("loop", expr))
        n = len(seq)
        tf = floor_time(c)
        rows.append(f"| {c} | {ta / n:.3f} | {tb / n:.3f} | {tb / ta:.2f}x | {tf:.3f} | {tf / (ta / n):.0%} "
                    f"| {diff:.1e} | {attr_diff:.1e} |")
        print(rows[-1], flush=True)
    load_after = os.getloadavg()[0]
    body = "\n".join([
        f"Machine: {platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), CPU, wall clock; "
        f"weights/fold0.with_mean.pt; {len(seq)} real chr22 windows from {args.start + 1:,} (1-based), "
        f"{args.batch_size} per pass; best of {args.repeats}, (a) and (b) interleaved; 1-min load average "
        f"{load_before:.1f} at the start, {load_after:.1f} at the end (2 CPUs shared with other jobs).",
        "",
        "| contexts C | (a) batched s/window | (b) per-context loop s/window | (b)/(a) | floor s/window | "
        "floor/(a) | max abs gradient diff (a)-(b) | max abs attribution diff |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "floor = one trunk forward + C single backward passes (timed apart). A backward pass costs about what "
        "a forward pass does, so no schedule of C separate backward passes can beat the loop by more than "
        "about 2x; the batched path's gain over that comes from running the C backward passes as one batch.",
        f"Same attributions: largest |(a) - (b)| over all gradient entries and C: {worst:.1e} (bound 1e-5).",
    ])
    write_section("attribute", "Attributions: batched backward passes vs the per-context loop (issue 12)",
                  "python benchmarks/bench_attributions.py speed", body)


def run_tf_truth(args) -> None:
    import pandas as pd

    from benchmarks.results import write_section
    from chromdragonn.inputs.expression import ExpressionSource, read_gene_panel
    from chromdragonn.inputs.genome import Genome, MeanAccessibility, one_hot_batch
    from chromdragonn.nn.weights import load_model
    from chromdragonn.tf_drivers import expression_attributions, trunk_features
    from chromdragonn.training.simulate import SimulatedAccessibility

    torch.set_num_threads(args.threads)
    panel = read_gene_panel(paths.GENE_PANEL)
    genes = panel["gene_symbol"].tolist()
    baseline = panel["fill_arcsinh_tpm"].to_numpy(np.float32)
    rule = SimulatedAccessibility.load(args.rule, genes)
    truth = set(rule.tfs)
    source = ExpressionSource()
    contexts = source.contexts
    expr = source.matrix(contexts)
    folds = pd.read_csv(args.folds_tsv, sep="\t")
    genome = Genome(FASTA)
    rng = np.random.default_rng(args.seed)
    starts, seqs = [], []
    while len(starts) < args.candidates:  # 200 bp bins of the slice, window without N
        b = int(rng.integers(16_050_000 // 200 + 3, 22_000_000 // 200 - 3)) * 200
        s = genome.fetch("22", b - 400, b + 600)
        if "N" in s or b in starts:
            continue
        starts.append(b)
        seqs.append(s)
    onehot = one_hot_batch(seqs)
    # the bins' centres place rule v2's locus field (rule v1 has none)
    prob = 1 / (1 + np.exp(-rule.logit(onehot, expr, ("22", np.array(starts) + 100))))  # (N, 56)
    const, occ = rule.sequence_terms(onehot)
    w = np.array([t.weight for t in rule.context_terms])
    occ_mean = np.array([t.occ_mean for t in rule.context_terms])
    gate_base = rule.gates(baseline[None].astype(np.float64))[0]
    track = MeanAccessibility(args.mean_bigwig)
    mean_all = torch.tensor([track.value("chr22", b - 400, b + 600) for b in starts], dtype=torch.float32)
    seq_t = torch.from_numpy(onehot)
    expected = args.top * len(truth) / len(genes)
    rows, summary = [], {"ig": [], "gradient": [], "random": [], "major": [], "major_ig": [],
                            "nonzero": []}
    fold_ids = [int(f) for f in args.folds.split(",")]
    for fold in fold_ids:
        weights = Path(args.weights.format(fold=fold))
        model, wgenes = load_model(weights)
        assert wgenes == genes, "weights and gene panel differ"
        t0 = time.perf_counter()
        feats = trunk_features(model, seq_t, 32)[0]
        mean = mean_all if model.with_mean else None
        test = folds[(folds["fold"] == fold) & (folds["role"] == "test")]["context"].tolist()
        for ctx in test:
            j = contexts.index(ctx)
            spec = prob[:, j] - prob.mean(axis=1)
            pick = np.argsort(-spec, kind="stable")[: args.bins]
            gate = rule.gates(expr[j: j + 1].astype(np.float64))[0]
            rule_score = (w * (occ[pick] - occ_mean)).sum(axis=0) * (gate - gate_base)  # exact, per rule TF
            # the gating TFs that matter for these bins: |exact rule contribution| >= 10% of the largest
            major = {t for t, v in zip(rule.tfs, rule_score) if abs(v) >= 0.1 * np.abs(rule_score).max()}
            found = {}
            for method in ("ig", "gradient"):
                sc = expression_attributions(model, [feats[pick]], expr[j], baseline,
                                             None if mean is None else mean[pick], method, args.steps)
                order = np.lexsort((np.arange(len(sc)), -np.abs(sc)))
                found[method] = [genes[g] for g in order[: args.top] if genes[g] in truth]
            rand = rng.permutation(len(genes))[: args.top]
            found["random"] = [genes[g] for g in rand if genes[g] in truth]
            for k in ("ig", "gradient", "random"):
                summary[k].append(len(found[k]))
            summary["major"].append(len(major))
            summary["nonzero"].append(int((np.abs(rule_score) > 1e-12).sum()))
            summary["major_ig"].append(len(major & set(found["ig"])))
            rows.append(f"| {fold} | {ctx} | {float(prob[pick, j].mean()):.3f} | {len(found['ig'])} "
                        f"({', '.join(found['ig']) or '-'}) | {len(found['gradient'])} | {len(found['random'])} | "
                        f"{', '.join(sorted(major))} | {len(major & set(found['ig']))} |")
            print(rows[-1], flush=True)
        print(f"fold {fold}: {time.perf_counter() - t0:.0f} s", flush=True)
    n = len(summary["ig"])
    mean_of = {k: float(np.mean(v)) for k, v in summary.items()}
    cmd = "python benchmarks/bench_attributions.py " + " ".join(sys.argv[1:])
    body = "\n".join([
        f"Rule: `{Path(args.rule).name}` (true gating TFs: {', '.join(rule.tfs)}). Weights: `{args.weights}`. "
        f"{args.candidates} seeded candidate bins (seed {args.seed}) of the chr22 slice; per held-out context the "
        f"{args.bins} bins most specifically open in it by the rule; baseline: the panel median "
        f"(`fill_arcsinh_tpm`); integrated gradients with {args.steps} points; TFs ranked by |score| among all "
        f"{len(genes):,} panel TFs.",
        "",
        f"**Mean over the {n} held-out contexts of true gating TFs in the top {args.top}:** integrated gradients "
        f"{mean_of['ig']:.2f}, gradient x (expression - baseline) {mean_of['gradient']:.2f}, a random ranking "
        f"{mean_of['random']:.2f} (expected {expected:.3f}). Of the {len(truth)} gating TFs, {mean_of['nonzero']:.2f} per context "
        f"contribute to the chosen bins by the rule's own exact attribution (its gates' change from the baseline times the motif terms); the "
        f"major ones (|contribution| >= 10% of the largest) number {mean_of['major']:.2f} per context, of which IG's "
        f"top {args.top} holds {mean_of['major_ig']:.2f}. Contexts with at least one "
        f"hit: IG {sum(v > 0 for v in summary['ig'])} of {n}, gradient {sum(v > 0 for v in summary['gradient'])} "
        f"of {n}, random {sum(v > 0 for v in summary['random'])} of {n}.",
        "",
        f"| fold | held-out context | rule P of the bins | IG: gating TFs in top {args.top} | gradient x delta | "
        f"random | major gating TFs of the bins (rule) | of them in IG's top {args.top} |",
        "|---:|---|---:|---|---:|---:|---|---:|",
        *rows,
    ])
    write_section(args.section, "TF drivers against the simulated rule's gating TFs (issue 12)", cmd, body)


DEFAULT_WEIGHTS = "weights/fold{fold}.with_mean.pt"


def run_motifs(args) -> None:
    import tempfile

    from benchmarks.bench_variants import generate_snv_vcf
    from benchmarks.results import write_section
    from chromdragonn.motifs import MotifAnnotator
    from chromdragonn.variants import score_variants

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench_motifs_"))
    vcf = tmp / "snvs.vcf"
    generate_snv_vcf(vcf, args.variants, seed=1)
    weights = str(paths.WEIGHTS_DIR / "fold0.with_mean.pt")
    t0 = time.perf_counter()
    annotator = MotifAnnotator.load("jaspar")
    t_load = time.perf_counter() - t0
    kw = dict(model=weights, batch_size=32)
    t0 = time.perf_counter()
    plain = score_variants(vcf, FASTA, "E003,E116,E123", **kw)
    t_plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    annotated = score_variants(vcf, FASTA, "E003,E116,E123", motifs=annotator, **kw)
    t_motifs = time.perf_counter() - t0
    same = bool(np.array_equal(plain["E003/diff"].to_numpy(), annotated["E003/diff"].to_numpy()))
    with_hits = int(annotated["motifs"].str.len().gt(0).sum())
    n = len(plain)
    load_after = os.getloadavg()[0]
    body = "\n".join([
        f"Machine: {platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), CPU, wall clock; "
        f"weights/fold0.with_mean.pt, contexts E003, E116, E123, batches of 32; {n:,} generated SNVs; JASPAR 2024 "
        f"CORE vertebrates ({len(annotator.ids)} motifs, both strands, p < 1e-4); 1-min load average "
        f"{load_before:.1f} at the start, {load_after:.1f} at the end (2 CPUs shared with other jobs).",
        "",
        "| run | wall s | variants/s | ms/variant |",
        "|---|---:|---:|---:|",
        f"| score-variants | {t_plain:.1f} | {n / t_plain:.1f} | {1000 * t_plain / n:.1f} |",
        f"| score-variants --motifs jaspar | {t_motifs:.1f} | {n / t_motifs:.1f} | {1000 * t_motifs / n:.1f} |",
        "",
        f"**With motif annotation / without: {t_motifs / t_plain:.2f}x** (target: within 2x). Loading the motif "
        f"file and its p-value tables, once per run: {t_load:.1f} s. {with_hits:,} of {n:,} SNVs touch at least "
        f"one match; the scores are the same with and without annotation: {same}.",
    ])
    if args.scale_variants:
        # At scale: the annotation alone (what --motifs adds; the same call score-variants makes, in
        # the same chunks of 32 alleles) over every SNV of a larger generated VCF.  Scoring itself
        # streams chunk by chunk at a fixed cost per variant (about 3 h for 100,000 SNVs on one thread
        # here), so the ratio at scale is (scoring + annotation) / scoring with the annotation
        # measured over all of them and the scoring per variant from the side-by-side run above.
        from chromdragonn.inputs.genome import Genome

        big = tmp / "snvs_scale.vcf"
        generate_snv_vcf(big, args.scale_variants, seed=2)
        alleles = [(f[0], int(f[1]), f[3], f[4]) for f in
                   (line.split("\t") for line in big.read_text().splitlines() if not line.startswith("#"))]
        genome = Genome(FASTA)
        t0 = time.perf_counter()
        hits = 0
        for i in range(0, len(alleles), 32):
            hits += sum(1 for x in annotator.annotate(genome, alleles[i:i + 32]) if x)
        t_scale = time.perf_counter() - t0
        m = len(alleles)
        per_plain = t_plain / n
        per_annot_small = (t_motifs - t_plain) / n
        ratio = (m * per_plain + t_scale) / (m * per_plain)
        body += "\n".join([
            "",
            "",
            f"**At {m:,} SNVs** (`--scale-variants {m}`; another generated VCF, seed 2): the motif annotation alone "
            f"(`MotifAnnotator.annotate`, chunks of 32 alleles, the call score-variants makes) took {t_scale:.1f} s, "
            f"{1000 * t_scale / m:.2f} ms per variant (the side-by-side run's difference, "
            f"{1000 * per_annot_small:+.2f} ms per variant, is within the scoring's run-to-run noise on this shared "
            f"machine); {hits:,} of {m:,} SNVs touch at least one match. Scoring the same {m:,} SNVs without annotation, at the {1000 * per_plain:.1f} ms per variant "
            f"measured above, would take {m * per_plain / 60:.0f} min (not run: it streams at a fixed cost per "
            f"variant). **Annotated / plain at {m:,} SNVs: {ratio:.2f}x** (target: within 2x), with one fold; the "
            "default five-fold ensemble scores 5 times slower, which divides the annotation's share by about 5.",
        ])
    else:
        body += "\n" + (f"Both paths stream in chunks of 32 alleles, so a 100,000-variant VCF costs 100,000 times the "
                        f"per-variant figures above (about {100_000 * t_plain / n / 60:.0f} minutes without annotation "
                        "on this machine).")
    write_section("motif_annotation", "Variant motif annotation: score-variants with and without --motifs (issue 12)",
                  "python benchmarks/bench_attributions.py " + " ".join(sys.argv[1:]), body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--windows", type=int, default=4)
    sp.add_argument("--start", type=int, default=17_500_000, help="0-based start of the first window")
    sp.add_argument("--batch-size", type=int, default=2, help="windows per pass (the command's default)")
    sp.add_argument("--contexts", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 56])
    sp.add_argument("--repeats", type=int, default=3)
    sp.add_argument("--threads", type=int, default=1)
    from chromdragonn.training.simulate import DEFAULT_RULES, SHIPPED_RULE_VERSION

    tp = sub.add_parser("tf-truth")
    tp.add_argument("--rule", default=str(DEFAULT_RULES[SHIPPED_RULE_VERSION]),
                    help="simulated-labels rule JSON the weights were trained on (default: the shipped weights', rule "
                         f"v{SHIPPED_RULE_VERSION}; benchmark v2: chromdragonn/training/simulated_rule_v2.json)")
    tp.add_argument("--weights", default=DEFAULT_WEIGHTS, help="weights file per fold, with {fold}")
    tp.add_argument("--folds-tsv", default=str(paths.FOLDS_FILE))
    tp.add_argument("--folds", default="0,1,2,3,4")
    tp.add_argument("--mean-bigwig", default=str(paths.MEAN_BIGWIG))
    tp.add_argument("--candidates", type=int, default=1000)
    tp.add_argument("--bins", type=int, default=100)
    tp.add_argument("--top", type=int, default=10)
    tp.add_argument("--steps", type=int, default=32)
    tp.add_argument("--seed", type=int, default=0)
    tp.add_argument("--threads", type=int, default=1)
    tp.add_argument("--section", default="tf_drivers_truth", help="section of benchmarks/RESULTS.md to write")
    mp = sub.add_parser("motifs")
    mp.add_argument("--variants", type=int, default=4000, help="SNVs scored side by side with and without --motifs")
    mp.add_argument("--scale-variants", type=int, default=100_000,
                    help="SNVs of a second VCF annotated alone, to measure the annotation at scale (0: skip)")
    mp.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if args.mode == "speed":
        run_speed(args)
    elif args.mode == "motifs":
        run_motifs(args)
    else:
        run_tf_truth(args)


if __name__ == "__main__":
    main()
