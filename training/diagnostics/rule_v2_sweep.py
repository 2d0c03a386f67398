"""Diagnostic (not part of the pipeline): benchmark v2's oracle acceptance for one variant of rule v2.

Builds the store of a rule-v2 variant with the pipeline's own `build_simulated_store` (what
`python -m chromdragonn.training simulate --rule-version 2` runs, here with the variant's settings),
then runs `head_warmup.py --features oracle` in each fold with and without the mean feature, and
prints the pooled AUPRC table on held-out contexts at training loci and the acceptance check:

    mean baseline < weighted-mean baseline < oracle head, no mean < oracle head, with mean,
    each step >= 0.01, in every fold.

    python training/diagnostics/rule_v2_sweep.py --name a1_l10k --amplitude 1.0 --length 10000
    python training/diagnostics/rule_v2_sweep.py --name final --store tmp/benchmark_v2/store --no-build

Settings not given keep rule v1's (build_rule's defaults). Results go to tmp/v2sweep/NAME/
(store, logs, result.json). One thread per process (THREADS), one head at a time.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--name", required=True)
ap.add_argument("--store", default=None, help="default tmp/v2sweep/NAME/store")
ap.add_argument("--no-build", action="store_true", help="use an existing store")
ap.add_argument("--build-only", action="store_true", help="build the store, run no heads")
ap.add_argument("--amplitude", type=float, default=None, help="locus field SD, logit units")
ap.add_argument("--length", type=float, default=None, help="locus field correlation length, bp")
ap.add_argument("--weight-range", default=None, help="context-motif weights, LO,HI (v1: 2.5,4)")
ap.add_argument("--a-gc", type=float, default=None)
ap.add_argument("--a-cpg", type=float, default=None)
ap.add_argument("--constitutive-weight", type=float, default=None)
ap.add_argument("--site-rate", type=float, default=None, help="motif hits per position and strand (v1, v2: 1/4000)")
ap.add_argument("--motif-core", type=int, default=None, help="cut each context motif to its K most informative positions")
ap.add_argument("--folds", default="0,1,2,3,4")
ap.add_argument("--steps", type=int, default=800)
ap.add_argument("--seeds", default="0", help="head seeds (head_warmup.py --seed); acceptance is judged on each "
                                              "fold's mean over seeds")
ap.add_argument("--full-head", action="store_true", help="head_warmup without --compact-oracle-head")
ap.add_argument("--extra", default="", help="more head_warmup.py arguments, e.g. '--mean-init-scale 3'")
a = ap.parse_args()

out = REPO / "tmp/v2sweep" / a.name
out.mkdir(parents=True, exist_ok=True)
store = Path(a.store) if a.store else out / "store"
if not a.no_build:
    import torch

    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    from chromdragonn.paths import GENE_PANEL
    from chromdragonn.paths import SHARED_DATA as SHARED
    from chromdragonn.training.simulate import build_simulated_store

    kw = {}
    if a.amplitude is not None:
        kw["field_amplitude"] = a.amplitude
    if a.length is not None:
        kw["field_length"] = a.length
    if a.weight_range:
        kw["weight_range"] = tuple(float(x) for x in a.weight_range.split(","))
    for k in ("a_gc", "a_cpg", "constitutive_weight", "site_rate", "motif_core"):
        if getattr(a, k) is not None:
            kw[k] = getattr(a, k)
    t0 = time.time()
    st, rule = build_simulated_store(
        store, REPO / "example/hg19_chr22_1-22000000.fa.gz", SHARED / "expression/57epigenomes.RPKM.pc.gz", "rpkm",
        GENE_PANEL, SHARED / "tf_lists/Lambert2018_DatabaseExtract_v_1.01.csv",
        SHARED / "motifs/JASPAR2024_CORE_vertebrates_latest.meme", ["22"], ["22:16050001-22000000"],
        SHARED / "genome/hg19-blacklist.v2.bed", seed=0, rule_version=2, **kw)
    rates = st.labels[:].mean(axis=0)
    print(f"store {store}: {time.time() - t0:.0f} s, positives per context {rates.min():.3f}-{rates.max():.3f}, "
          f"field {rule.field.amplitude} x {rule.field.length:.0f} bp, b0 {rule.params['b0']:.3f}", flush=True)

if a.build_only:
    sys.exit(0)
PAT = re.compile(r"^training loci \(AUPRC pooled / per context\): (.*)$", re.M)


def run(fold, no_mean, seed):
    tag = f"fold{fold}_{'nomean' if no_mean else 'mean'}" + (f"_seed{seed}" if seed else "")
    cmd = [sys.executable, str(REPO / "training/diagnostics/head_warmup.py"), "--config",
           "training/configs/benchmark_v2.yaml", "--store", str(store), "--fold", str(fold), "--features", "oracle",
           "--steps", str(a.steps), "--seed", str(seed)] + ([] if a.full_head else ["--compact-oracle-head"]) + \
        (["--no-mean"] if no_mean else []) + a.extra.split()
    t0 = time.time()
    text = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout
    (out / f"{tag}.log").write_text(" ".join(cmd) + "\n" + text)
    scores = {k.strip(): float(v) for k, v, _ in
              re.findall(r"([A-Za-z ]+?) ([-0-9.na]+) / ([-0-9.na]+)", PAT.search(text).group(1))}
    print(f"  {tag}: {scores} ({time.time() - t0:.0f} s)", flush=True)
    return scores


rows = {}
seeds = [int(x) for x in a.seeds.split(",")]
for f in [int(x) for x in a.folds.split(",")]:
    per_seed = []
    for seed in seeds:
        with_mean, no_mean = run(f, False, seed), run(f, True, seed)
        per_seed.append({"mean": with_mean["mean"], "weighted mean": with_mean["weighted mean"],
                         "oracle no mean": no_mean["model"], "oracle with mean": with_mean["model"],
                         "rule P": with_mean.get("rule P", float("nan"))})
    # the baselines do not depend on the seed; the oracle rows are averaged over seeds
    r = {k: round(float(np.mean([p[k] for p in per_seed])), 4) for k in per_seed[0]}
    r["seeds"] = {s: {k: p[k] for k in ("oracle no mean", "oracle with mean")} for s, p in zip(seeds, per_seed)}
    order = [r["mean"], r["weighted mean"], r["oracle no mean"], r["oracle with mean"]]
    r["steps"] = [round(y - x, 3) for x, y in zip(order, order[1:])]
    r["pass"] = all(d >= 0.01 for d in r["steps"])
    rows[f] = r
    print(f"fold {f}: " + ", ".join(f"{k} {v}" for k, v in r.items()), flush=True)
    json.dump({"args": vars(a), "folds": rows}, open(out / "result.json", "w"), indent=1)
print(f"{a.name}: acceptance in {sum(r['pass'] for r in rows.values())} of {len(rows)} folds "
      f"(oracle rows: mean of {len(seeds)} seed(s))")
