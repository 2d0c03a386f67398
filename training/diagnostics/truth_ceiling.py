"""Diagnostic (issue 10 section 3): how high can the variant-effect truth check go for a model that sees only the
1 kb window? The check (`benchmarks/bench_variants.py truth`) ranks SNVs by a model's diff against the rule's
true P(alt) - P(ref). Under rule v2 the true effect also depends on the locus field at the SNV (it sets where
on the logistic curve the SNV acts), which no window determines, so even a perfect trunk cannot reach 1.

    python training/diagnostics/truth_ceiling.py [--rule-version 2] [--folds 0,1,2,3,4] [--max-variants N]
                                                 [--no-mean-rows training/runs/benchmark_v2/fold*/eval/truth_rule2_no_mean.tsv]

For the same SNVs, folds and held-out contexts as the truth check, prints the median Spearman against the
true effect of three predictors that know the rule's sequence part exactly but not the field:
  field 0:      P(alt) - P(ref) with the field at its mean (0);
  expected:     the mean of that effect over the field's distribution (normal, the rule's SD; 33-point
                Gauss-Hermite), the best a sequence-only predictor can do in squared error;
  logit:        the change in the rule's logit (the field cancels; no logistic curve at all);
With --no-mean-rows, the kept rows of a trained model are set beside the ceiling per (fold, context).

With --weights-dir D (fold{F}.{--model}.pt, as `truth --weights-dir`), that model's diff is computed as the
truth check computes it and ranked against the true effect split in two: its composition part (the change of
GC and CpG alone, the motif occupancies left at REF's) and its motif part (the rest), over all SNVs and over
the SNVs whose true |effect| >= 0.01 ("matter").

With --models FILE [FILE ...] (e.g. two folds' no-mean models), each model's diff and the average of their
diffs (an ensemble) are ranked against the true effect on the --folds test contexts. Pick contexts that are
training contexts of every model given (another fold's held-out contexts) so that no model is favoured.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_variants import CLINVAR_VCF, FASTA, KG_VCF, model_diff, read_truth_rows, snv_records, snv_windows  # noqa: E402
from chromdragonn import paths  # noqa: E402
from chromdragonn.inputs.expression import ExpressionSource  # noqa: E402
from chromdragonn.inputs.genome import Genome, one_hot_batch  # noqa: E402
from chromdragonn.training.folds import read_folds  # noqa: E402
from chromdragonn.training.simulate import SimulatedAccessibility  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--rule-version", type=int, default=2, choices=[1, 2], help="default 2: benchmark v2")
ap.add_argument("--folds", default="0,1,2,3,4")
ap.add_argument("--max-variants", type=int, default=None, help="a seeded subset, as the truth check's option")
ap.add_argument("--no-mean-rows", nargs="*", default=[], help="truth rows of a trained model (truth --rows-out)")
ap.add_argument("--weights-dir", default=None, help="score this folder's fold models too (fp32 no-mean models: tmp/)")
ap.add_argument("--model", default="no_mean", choices=["no_mean", "with_mean"])
ap.add_argument("--matter", type=float, default=0.01)
ap.add_argument("--models", nargs="*", default=[], help="weights files: each alone and their averaged diff")
a = ap.parse_args()
torch.set_num_threads(1)

genome = Genome(FASTA)
snvs = snv_records([KG_VCF, CLINVAR_VCF], genome)
if a.max_variants:
    snvs = [snvs[i] for i in np.random.default_rng(0).permutation(len(snvs))[: a.max_variants]]
rule = SimulatedAccessibility.default(a.rule_version)
# the folds of the models scored (as the truth check reads them), else the shipped ones
folds_df = read_folds(Path(a.weights_dir) / paths.FOLDS_FILE.name if a.weights_dir else paths.FOLDS_FILE)
refs, alts = snv_windows(snvs, genome)
centres = np.array([p for _, p, _, _ in snvs])

# sequence terms once for all SNVs (they do not depend on the context)
terms = {"ref": [], "alt": []}
for lo in range(0, len(refs), 512):
    for key, seqs in (("ref", refs), ("alt", alts)):
        terms[key].append(rule.sequence_terms(torch.from_numpy(one_hot_batch(seqs[lo: lo + 512]))))
const = {k: np.concatenate([t[0] for t in v]) for k, v in terms.items()}
occ = {k: np.concatenate([t[1] for t in v]) for k, v in terms.items()}
comp = {}
for key, seqs in (("ref", refs), ("alt", alts)):
    parts = [rule.composition_terms(torch.from_numpy(one_hot_batch(seqs[lo: lo + 512]))) for lo in range(0, len(seqs), 512)]
    gc_z, cpg_z = np.concatenate([q[0] for q in parts]), np.concatenate([q[1] for q in parts])
    comp[key] = rule.params["a_gc"] * gc_z + rule.params["a_cpg"] * cpg_z
dcomp = comp["alt"] - comp["ref"]  # the composition part of the logit change
field = rule.locus_terms(("22", centres), len(centres))
sd = float(rule.params["locus_field"]["amplitude"]) if rule.field is not None else 0.0
nodes, weights = np.polynomial.hermite_e.hermegauss(33)  # E over N(0, 1): sum(w * f(x)) / sqrt(2 pi)
weights = weights / weights.sum()


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def spearman(x, y):
    from scipy.stats import spearmanr
    return float(spearmanr(x, y).statistic)


kept = {}
if a.no_mean_rows:
    rows, n_kept, model, version = read_truth_rows(a.no_mean_rows)
    if n_kept != len(snvs) or version != a.rule_version:
        sys.exit(f"--no-mean-rows: {n_kept} SNVs, rule v{version}; this run: {len(snvs)} SNVs, rule v{a.rule_version}")
    kept = {(int(r["fold"]), r["context"]): float(r["rho_all"]) for r in rows}



def diff_of(test, expr, path):
    """The weights file's diff at each SNV in each context of ``test``, as the truth check computes it, with
    the mean track beside the file (else the shipped one, with a note)."""
    bigwig = Path(path).parent / paths.MEAN_BIGWIG.name
    if not bigwig.is_file():  # a no-mean model does not read it; a with-mean model scored on another track would
        print(f"note: no {bigwig.name} beside {path}; the shipped mean track is used", file=sys.stderr)
        bigwig = paths.MEAN_BIGWIG
    return model_diff(path, bigwig, test, expr, genome, snvs, refs, alts)


source = ExpressionSource()
results, parts, ensemble = [], [], []
for fold in [int(f) for f in a.folds.split(",")]:
    test = folds_df[(folds_df.fold == fold) & (folds_df.role == "test")]["context"].tolist()
    expr = source.matrix(test)
    gates = rule.gates(expr)
    lr = {k: rule.logit_from_terms(const[k], occ[k], gates) for k in ("ref", "alt")}  # field 0, (N, C)
    true = sigmoid(lr["alt"] + field[:, None]) - sigmoid(lr["ref"] + field[:, None])
    field0 = sigmoid(lr["alt"]) - sigmoid(lr["ref"])
    expected = sum(w * (sigmoid(lr["alt"] + sd * x) - sigmoid(lr["ref"] + sd * x)) for x, w in zip(nodes, weights))
    dlogit = lr["alt"] - lr["ref"]
    if a.models:
        diffs = [diff_of(test, expr, m) for m in a.models]
        for name, d in [*zip(a.models, diffs), ("average", np.mean(diffs, axis=0))]:
            for j, ctx in enumerate(test):
                big = np.abs(true[:, j]) >= a.matter
                ensemble.append({"model": name, "fold": fold, "context": ctx, "all": spearman(d[:, j], true[:, j]),
                                 "matter": spearman(d[big, j], true[big, j]) if big.sum() >= 3 else float("nan")})
    if a.weights_dir:
        ours = diff_of(test, expr, Path(a.weights_dir) / f"fold{fold}.{a.model}.pt")
        at = lr["ref"] + field[:, None]
        comp_part = sigmoid(at + dcomp[:, None]) - sigmoid(at)
        motif_part = true - comp_part
        for j, ctx in enumerate(test):
            big = np.abs(true[:, j]) >= a.matter
            parts.append({"fold": fold, "context": ctx, "n_matter": int(big.sum()),
                          "true": spearman(ours[:, j], true[:, j]),
                          "composition": spearman(ours[:, j], comp_part[:, j]),
                          "motifs": spearman(ours[:, j], motif_part[:, j]),
                          "true_matter": spearman(ours[big, j], true[big, j]) if big.sum() >= 3 else float("nan"),
                          "motifs_matter": spearman(ours[big, j], motif_part[big, j]) if big.sum() >= 3 else float("nan"),
                          "truth_comp": spearman(comp_part[:, j], true[:, j]),
                          "truth_motifs": spearman(motif_part[:, j], true[:, j])})
    for j, ctx in enumerate(test):
        results.append({"fold": fold, "context": ctx, "field0": spearman(field0[:, j], true[:, j]),
                        "expected": spearman(expected[:, j], true[:, j]), "logit": spearman(dlogit[:, j], true[:, j]),
                        "model": kept.get((fold, ctx), float("nan"))})

print(f"rule v{a.rule_version} (locus field SD {sd:g} logits), {len(snvs):,} SNVs, folds {a.folds}: "
      "Spearman against the true effect, per (fold, held-out context)\n")


def print_pairs(rows: list[dict], cols: list[str], lead: tuple[str, ...] = ("fold", "context")) -> None:
    """A markdown table of per-(fold, context) Spearman values, then their medians."""
    print("| " + " | ".join([*lead, *cols]) + " |")
    print("|---:|---|" + "---:|" * (len(lead) - 2 + len(cols)))
    for r in rows:
        print("| " + " | ".join([*(str(r[k]) for k in lead), *(f"{r[c]:.3f}" for c in cols)]) + " |")
    print(f"\nMedian over {len(rows)} pairs: " + ", ".join(f"{c} {np.nanmedian([r[c] for r in rows]):.3f}" for c in cols))


cols = ["field0", "expected", "logit"] + (["model"] if kept else [])
print_pairs(results, cols)
if kept:
    pairs = [r for r in results if not np.isnan(r["model"])]
    print(f"Pairs with a kept model row: {len(pairs)}; median of those: "
          + ", ".join(f"{c} {np.median([r[c] for r in pairs]):.3f}" for c in cols))
if parts:
    cols = ["true", "composition", "motifs", "true_matter", "motifs_matter", "truth_comp", "truth_motifs"]
    print(f"\n{a.weights_dir}/fold*.{a.model}.pt: Spearman of its diff against the true effect and its parts "
          f"(truth_comp / truth_motifs: each part against the whole true effect)\n")
    print_pairs(parts, cols, ("fold", "context", "n_matter"))
if ensemble:
    print(f"\nEach model's diff and their average against the true effect on the test contexts of folds {a.folds} "
          "(median over contexts):\n")
    print("| model | all SNVs | SNVs that matter |\n|---|---:|---:|")
    for name in [*a.models, "average"]:
        rows = [r for r in ensemble if r["model"] == name]
        print(f"| {name} | {np.nanmedian([r['all'] for r in rows]):.3f} | {np.nanmedian([r['matter'] for r in rows]):.3f} |")
