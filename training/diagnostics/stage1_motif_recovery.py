"""Diagnostic (issue 10 section 2): which of the simulated rule's sequence terms has a stage-1 trunk learnt?

    python training/diagnostics/stage1_motif_recovery.py SNAPSHOT [SNAPSHOT ...] [--config C] [--fold F] [--bins N] [--store S]

On N validation-loci bins (stage 1's validation sample, seeded) x the fold's training contexts, the
stage-1 model's logit is regressed (least squares, with an intercept) on the rule's own terms: GC and CpG
(standardised as in the rule), the constitutive motif's weighted occupancy (CTCF), and for each context
motif its centred occupancy times the context's gate. The table gives each coefficient divided by the
rule's own ("model / rule"). A trunk that had learnt the rule exactly would give every term the same
quotient: a common factor below 1, because stage 1 never sees the locus field and its best logit is a
shrunk version of the rule's. So the last column divides by the GC quotient: about 1 for a term the trunk
weighs as the rule does, about 0 for a term it ignores. Also printed: the AUPRC of the model and of the
rule's parts on the same bins (GC + CpG alone; + CTCF; + context motifs = the rule's sequence part).

A snapshot is a stage-1 state: `learning_curve.py`'s snapshots/stepN.pt or a run's stage1/stage1.pt.
THREADS (default 1) torch threads.
"""
import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from chromdragonn.nn.model import SequenceModel  # noqa: E402
from chromdragonn.training.evaluate import auprc  # noqa: E402
from chromdragonn.training.train import load_checkpoint  # noqa: E402
from rule_fold import rule_fold  # noqa: E402  (this folder is on sys.path when a script here runs)

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("snapshots", nargs="+")
ap.add_argument("--config", default="training/configs/benchmark_v2.yaml")
ap.add_argument("--fold", type=int, default=0)
ap.add_argument("--bins", type=int, default=2048)
ap.add_argument("--store", default=None, help="store instead of the config's (e.g. a rule variant's)")
a = ap.parse_args()
torch.set_num_threads(int(os.environ.get("THREADS", "1")))

f = rule_fold(REPO, a.config, a.store, a.fold, a.bins)
rule, onehot, y, const, occ, gates = f.rule, f.onehot, f.labels, f.const, f.occ, f.gates
p = rule.params
gc_z, cpg_z = rule.composition_terms(onehot)
gc_part = p["a_gc"] * gc_z + p["a_cpg"] * cpg_z
ctcf_part = const - gc_part  # the constitutive motif's weighted occupancy
occ_c = occ - np.asarray([t["occ_mean"] for t in p["context_motifs"]])
n, c = y.shape
names = ["GC", "CpG"] + [t["tf"] for t in p["constitutive_motifs"]] + [t["tf"] for t in p["context_motifs"]]
# Design over (bin, context) pairs: the rule's logit is
#   b0 + a_gc gc_z + a_cpg cpg_z + ctcf_part + sum_k w_k occ_c[k] gate[c, k].
design = np.concatenate([np.repeat(gc_z[:, None], c, 1)[..., None],
                         np.repeat(cpg_z[:, None], c, 1)[..., None],
                         np.repeat(ctcf_part[:, None], c, 1)[..., None],
                         occ_c[:, None, :] * gates[None, :, :]], axis=2).reshape(n * c, -1)
x = np.concatenate([design, np.ones((n * c, 1))], axis=1)
rule_coef = np.array([p["a_gc"], p["a_cpg"], 1.0] + [t["weight"] for t in p["context_motifs"]])
if len(p["constitutive_motifs"]) != 1:
    raise SystemExit("this diagnostic expects one constitutive motif (the rule's CTCF)")
print(f"{n} validation bins x {c} training contexts, positives {y.mean():.3f}")
print(f"rule AUPRC: GC + CpG {auprc(y, np.repeat(gc_part[:, None], c, 1)):.3f}; + CTCF "
      f"{auprc(y, np.repeat(const[:, None], c, 1)):.3f}; + context motifs (sequence part) "
      f"{auprc(y, rule.logit_from_terms(const, occ, gates)):.3f}")
rows = []
for snap in a.snapshots:
    ck = load_checkpoint(Path(snap))
    sd = ck["state_dict"]
    model = SequenceModel(sd["head.fc3.weight"].shape[0])
    model.load_state_dict(sd)
    model.eval()
    with torch.no_grad():
        logit = torch.cat([model(torch.from_numpy(onehot[i:i + 128])) for i in range(0, n, 128)]).numpy()
    if logit.shape[1] != c:
        raise SystemExit(f"{snap}: {logit.shape[1]} tasks, fold {a.fold} has {c} training contexts")
    coef, *_ = np.linalg.lstsq(x, logit.reshape(-1).astype(np.float64), rcond=None)
    fit = x @ coef
    r2 = 1 - ((logit.reshape(-1) - fit) ** 2).sum() / ((logit.reshape(-1) - logit.mean()) ** 2).sum()
    rows.append((snap, auprc(y, logit), r2, coef[:-1] / rule_coef))
for snap, ap_, r2, rec in rows:
    print(f"\n{snap}: model AUPRC {ap_:.3f}; R^2 of the logit on the rule's terms {r2:.2f}")
    print("term\trule coefficient\tmodel / rule\trelative to GC")
    for name, rc, r in zip(names, rule_coef, rec):
        print(f"{name}\t{rc:.2f}\t{r:.3f}\t{r / rec[0]:.2f}")
