"""Truth check of ``chromdragonn learned-motifs`` on the simulated benchmark (issue 12).

    python benchmarks/bench_learned_motifs.py --fold 0 --contexts E007,E027 --max-bins 600

The simulated labels (chromdragonn/training/simulate.py; ``--rule-version 1`` = simulated_rule.json;
``2`` = simulated_rule_v2.json, benchmark v2; default: the shipped weights' rule, SHIPPED_RULE_VERSION; the same motifs
plus a locus field along the chromosome, applied at each bin's centre) open a bin when its central 200 bp hold matches of CTCF (in every
context) or of 10 JASPAR motifs gated by their TF's expression in the context. So in a held-out
context of a fold, the motifs that model learned for that context should include CTCF and the gated
motifs that are switched on there.

Per context (held-out contexts of ``--fold`` by default, weights/folds.tsv):

1. Bins, by the benchmark's truth (the labels' own P, the rule's P(accessible); the brief's "benchmark
   labels"): every 200 bp bin of the real chr22 slice whose 1 kb window has no N; kept when the rule's
   P >= 0.5 in the context and >= 0.5 in fewer than 30% of the 56 contexts (the paper's choice), at most
   ``--max-bins`` of largest rule P. Written as a BED.
2. The command itself, with that BED and ``--select all`` (and the fold's shipped weights):
   ``python -m chromdragonn learned-motifs --fasta F --bed BED --select all --contexts C --model W -o DIR``.
3. Truth table: for each motif of the rule, its gate in the context (0 = TF off, 1 = fully on), its
   mean occupancy in the chosen bins' central 200 bp against all bins (how present it is), the rule's
   logit contribution there (weight x gate x (occupancy - its mean), summed over the chosen bins), and
   whether Tomtom gave it (same JASPAR ID, or another JASPAR motif of the same TF) as a pattern's best
   match, or among a pattern's 10 best with q < 0.05.

Writes the ``learned_motifs_truth`` section of benchmarks/RESULTS.md; outputs under --work.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chromdragonn import paths  # noqa: E402
from chromdragonn.training.simulate import SHIPPED_RULE_VERSION  # noqa: E402

FASTA = paths.EXAMPLE_DIR / "hg19_chr22_1-22000000.fa.gz"
SLICE = ("22", 16_050_000, 22_000_000)  # real bases of the example FASTA (0-based)


def rule_probabilities(rule, genome, expr, chunk: int = 1000):
    from chromdragonn.inputs.genome import one_hot_batch

    chrom, lo, hi = SLICE
    starts, probs, occs = [], [], []
    seqs, cur = [], []
    for b in range(lo + 400, hi - 600, 200):
        s = genome.fetch(chrom, b - 400, b + 600)
        if "N" in s.upper():
            continue
        seqs.append(s)
        cur.append(b)
        if len(seqs) == chunk:
            x = one_hot_batch(seqs)
            probs.append(rule.probability(x, expr, (chrom, np.array(cur) + 100)))  # bin centres: rule v2's field
            occs.append(np.concatenate([_const_occ(rule, x), rule.sequence_terms(x)[1]], axis=1))
            starts += cur
            seqs, cur = [], []
    if seqs:
        x = one_hot_batch(seqs)
        probs.append(rule.probability(x, expr, (chrom, np.array(cur) + 100)))
        occs.append(np.concatenate([_const_occ(rule, x), rule.sequence_terms(x)[1]], axis=1))
        starts += cur
    return np.array(starts), np.concatenate(probs), np.concatenate(occs)


def _const_occ(rule, x) -> np.ndarray:
    """Occupancy of the constitutive motifs (CTCF): the context-independent term's motif part / weight."""
    import torch
    import torch.nn.functional as F

    from chromdragonn.training.simulate import BIN_END, BIN_START

    t = torch.from_numpy(x).double()
    crop = t[:, BIN_START - rule._pad: BIN_END + rule._pad, :].transpose(1, 2)
    n = rule._n_const
    llr = F.conv1d(crop, rule._filters[: 2 * n])
    occ = (torch.sigmoid(llr - rule._thresholds[:, : 2 * n]) * rule._mask[:, : 2 * n]).sum(dim=2)
    return (occ[:, 0::2] + occ[:, 1::2]).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--contexts", default=None, help="default: the fold's held-out (test) contexts")
    ap.add_argument("--weights", default="weights/fold{fold}.with_mean.pt")
    ap.add_argument("--max-bins", type=int, default=600)
    ap.add_argument("--leiden-runs", type=int, default=10)
    ap.add_argument("--work", default="tmp/learned_motifs_truth")
    ap.add_argument("--section", default="learned_motifs_truth")
    ap.add_argument("--rule-version", type=int, default=SHIPPED_RULE_VERSION, choices=[1, 2],
                    help=f"the simulated-labels rule the weights were trained on (default {SHIPPED_RULE_VERSION}: the "
                         "shipped weights'; rule v2's locus field is applied at each bin)")
    args = ap.parse_args()

    from benchmarks.results import write_section
    from chromdragonn.inputs.expression import ExpressionSource, read_gene_panel
    from chromdragonn.inputs.genome import Genome
    from chromdragonn.training.simulate import DEFAULT_RULES, SimulatedAccessibility

    genes = read_gene_panel(paths.GENE_PANEL)["gene_symbol"].tolist()
    rule = SimulatedAccessibility.load(DEFAULT_RULES[args.rule_version], genes)
    source = ExpressionSource()
    all_ctx = source.contexts
    expr = source.matrix(all_ctx)
    folds = pd.read_csv(paths.FOLDS_FILE, sep="\t")
    contexts = args.contexts.split(",") if args.contexts else \
        folds[(folds["fold"] == args.fold) & (folds["role"] == "test")]["context"].tolist()
    weights = args.weights.format(fold=args.fold)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    starts, prob, occ = rule_probabilities(rule, Genome(FASTA), expr)
    t_rule = time.perf_counter() - t0
    terms = rule.constitutive + rule.context_terms
    n_const = len(rule.constitutive)
    gates = rule.gates(expr.astype(np.float64))  # (56, M)
    open_all = prob >= 0.5
    frac = open_all.mean(axis=1)
    print(f"rule P of {len(starts):,} bins in {t_rule:.0f} s; open (P >= 0.5) in a context: "
          f"{open_all.mean():.3%}", flush=True)
    rows, per_ctx, totals = [], [], []
    for ctx in contexts:
        j = all_ctx.index(ctx)
        ok = np.flatnonzero(open_all[:, j] & (frac < 0.3))
        pick = ok[np.lexsort((ok, -prob[ok, j]))][: args.max_bins]
        bed = work / f"{ctx}.bins.bed"
        pd.DataFrame({"chrom": "chr22", "start": starts[pick], "end": starts[pick] + 200,
                      "name": [f"bin{k}" for k in range(len(pick))]}).to_csv(bed, sep="\t", header=False,
                                                                            index=False)
        out = work / f"{ctx}.fold{args.fold}"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        cmd = [sys.executable, "-m", "chromdragonn", "learned-motifs", "--fasta", str(FASTA), "--bed", str(bed),
               "--select", "all", "--contexts", ctx, "--model", weights, "--max-bins", str(args.max_bins),
               "--leiden-runs", str(args.leiden_runs), "-q", "-o", str(out)]
        print(" ".join(cmd), flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        secs = time.perf_counter() - t0
        matches = pd.read_csv(out / ctx / "matches.tsv", sep="\t")
        summary = pd.read_csv(out / "summary.tsv", sep="\t")
        n_pat = int((summary["pattern"].fillna("") != "").sum())
        found, contribs, in_opening = 0, [], []
        for m, t in enumerate(terms):
            gate = 1.0 if m < n_const else float(gates[j, m - n_const])
            mean_sel, mean_all = float(occ[pick, m].mean()), float(occ[:, m].mean())
            contrib = t.weight * gate * float((occ[pick, m] - (0.0 if m < n_const else t.occ_mean)).sum())
            same = (matches["match_id"] == t.motif_id) | (matches["match_name"].str.upper() == t.tf.upper())
            best = matches[same & (matches["rank"] == 1)]
            sig = matches[same & (matches["q"] < 0.05)]
            status = (f"best match of {', '.join(best['pattern'])} (q {best['q'].min():.2g})" if len(best) else
                      f"top 10 of {', '.join(sig['pattern'].unique())} (q {sig['q'].min():.2g})" if len(sig) else "no")
            found += status != "no"
            contribs.append(contrib)
            opening = same & matches["effect"].eq("opens") & ((matches["rank"] == 1) | (matches["q"] < 0.05))
            in_opening.append(bool(opening.any()))
            rows.append(f"| {ctx} | {t.tf} {t.motif_id} | {gate:.2f} | {mean_sel:.3f} / {mean_all:.3f} | "
                        f"{contrib:+.1f} | {status} |")
        best_names = "; ".join(f"{r.pattern} ({r.effect}, {r.n_seqlets}): {r.best_match_name} q {r.q:.2g}"
                               for r in summary.itertuples() if isinstance(r.pattern, str) and r.pattern)
        # the motifs that open these bins by the rule: contribution >= 10% of the largest
        driving = [k for k, c in enumerate(contribs) if c >= 0.1 * max(contribs)]
        hit = [terms[k].tf for k in driving if in_opening[k]]
        missed = [terms[k].tf for k in driving if not in_opening[k]]
        off = [t.tf for k, t in enumerate(terms) if k not in driving and in_opening[k]]
        totals.append((len(hit), len(driving), len(off)))
        per_ctx.append(f"| {ctx} | {len(pick)} | {float(prob[pick, j].mean()):.3f} | {n_pat} | {len(hit)} of "
                       f"{len(driving)}: found {', '.join(hit) or '-'}; missed {', '.join(missed) or '-'} | "
                       f"{', '.join(off) or '-'} | {found} of {len(terms)} | {best_names or '-'} | {secs:.0f} |")
        print(per_ctx[-1], flush=True)
    body = "\n".join([
        f"Weights `{weights}` (fold {args.fold}; contexts held out of its training). Bins by the benchmark's "
        f"truth (rule v{args.rule_version}): of {len(starts):,} N-free 200 bp bins of the chr22 slice, those with the rule's P >= 0.5 in the "
        "context and >= 0.5 in fewer than 30% of the 56 contexts, at most "
        f"{args.max_bins} of largest rule P; the command run on them with `--select all` (TF-MoDISco on the "
        f"central 400 bp, {args.leiden_runs} Leiden runs; Tomtom against JASPAR 2024 CORE vertebrates). One "
        "thread, 2 shared CPUs.",
        "",
        f"**Driving rule motifs found in an opening pattern: {sum(t[0] for t in totals)} of "
        f"{sum(t[1] for t in totals)}** over the {len(totals)} contexts (driving: the rule motifs whose "
        "contribution to the chosen bins is >= 10% of the largest; found: the motif's JASPAR ID or its TF's name "
        "is the best match of an opening (positive) pattern, or among its 10 best with q < 0.05); rule motifs "
        f"that do not drive the bins but were found in an opening pattern: {sum(t[2] for t in totals)}.",
        "",
        "| context | bins | rule P of the bins | patterns | driving rule motifs in an opening pattern | "
        "non-driving rule motifs in an opening pattern | rule motifs in any pattern | patterns (effect, seqlets): "
        "best match, q | s |",
        "|---|---:|---:|---:|---|---|---|---|---:|",
        *per_ctx,
        "",
        "Per rule motif (found: same JASPAR ID or the same TF's motif; mean occupancy: soft site count in "
        "the bins' central 200 bp, the chosen bins / all bins; contribution: weight x gate x (occupancy - "
        "its mean) summed over the chosen bins, the rule's own logit attribution):",
        "",
        "| context | rule motif | gate | mean occupancy (chosen / all) | rule contribution | found by Tomtom |",
        "|---|---|---:|---:|---:|---|",
        *rows,
    ])
    write_section(args.section, "Learned motifs against the simulated rule's motifs (issue 12)",
                  "python benchmarks/bench_learned_motifs.py " + " ".join(sys.argv[1:]), body)


if __name__ == "__main__":
    main()
