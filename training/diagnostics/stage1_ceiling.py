"""Diagnostic (issue 10 section 2): the stage-1 ceiling on a benchmark-v2 store, one fold: AUPRC of the rule's
own P on stage 1's validation bins x the fold's training contexts, in parts.

    python training/diagnostics/stage1_ceiling.py [--store S] [--fold F] [--bins N]

Prints the AUPRC of the rule's logit built from: GC + CpG alone; + the constitutive motif (CTCF); + the
context motifs with every context's gates replaced by their mean over contexts (sequence, no context
specificity); the full sequence part (field 0: what the 1 kb window alone gives, i.e. a perfect trunk); and
the rule with its locus field. Default: benchmark_v2.yaml's store, fold 0, stage 1's 256 validation bins.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from chromdragonn.training.evaluate import auprc  # noqa: E402
from chromdragonn.training.simulate import store_loci  # noqa: E402
from rule_fold import rule_fold  # noqa: E402  (this folder is on sys.path when a script here runs)

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--config", default="training/configs/benchmark_v2.yaml")
ap.add_argument("--store", default=None, help="store instead of the config's (e.g. a rule variant's)")
ap.add_argument("--fold", type=int, default=0)
ap.add_argument("--bins", type=int, default=256, help="validation bins (stage 1's own sample is the first 256)")
a = ap.parse_args()

f = rule_fold(REPO, a.config, a.store, a.fold, a.bins)
d, s, rule, vb, oh, y = f.data, f.data.store, f.rule, f.bins, f.onehot, f.labels
const, occ, gates = f.const, f.occ, f.gates
p = rule.params
gc_z, cpg_z = rule.composition_terms(oh)
gc_part = p["a_gc"] * gc_z + p["a_cpg"] * cpg_z
no_motifs = np.tile(np.asarray([t["occ_mean"] for t in p["context_motifs"]]), (len(vb), 1))  # centred to 0
mean_gates = np.tile(gates.mean(axis=0), (len(gates), 1))
parts = {
    "GC + CpG": rule.logit_from_terms(gc_part, no_motifs, gates),
    "+ CTCF": rule.logit_from_terms(const, no_motifs, gates),
    "+ context motifs, mean gates": rule.logit_from_terms(const, occ, mean_gates),
    "sequence part (field 0)": rule.logit_from_terms(const, occ, gates),
    "with the locus field": rule.logit_from_terms(const, occ, gates, rule.locus_terms(store_loci(s, vb), len(vb))),
}
print(f"{s.directory}, fold {a.fold}: {len(vb)} validation bins x {len(d.train_ctx)} training contexts, "
      f"positives {y.mean():.3f}")
for name, logit in parts.items():
    print(f"  rule AUPRC, {name}: {auprc(y, logit):.3f}")
