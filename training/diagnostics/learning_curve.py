"""Diagnostic (issue 10 section 2): stage-1 learning curve of one fold, against the oracle head.

Runs the pipeline's stage 1 (`train_stage1`, the config's recipe) in segments up to each of
`--steps` (a resumed run is the straight run: batches are seeded per step), keeps the trunk at
the end of each segment, and trains a stage-2 head on each frozen trunk with
`head_warmup.py --features trunk` (the pipeline's warm-up recipe: 800 Adam steps, 128 x 4 pairs,
8,000 bins), with and without the mean. Prints and writes (`--out`, TSV) per snapshot: steps,
stage-1 seconds, stage-1 validation AUPRC (validation loci x training contexts), and the heads'
pooled AUPRC on held-out contexts x training loci, next to the oracle head's and the baselines'
(`--oracle`: the acceptance table's fold row, as given).

    python training/diagnostics/learning_curve.py --config training/configs/benchmark_v2.yaml --fold 0 \\
        --steps 150,300,600,900 --out training/diagnostics/learning_curve_fold0.tsv

Resumable: finished segments and heads are kept under `--run-dir` and not run again.
THREADS (default 2) threads for stage 1 and the heads.
"""
import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from chromdragonn.training.config import load_config  # noqa: E402
from chromdragonn.training.train import train_stage1  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--config", default="training/configs/benchmark_v2.yaml")
ap.add_argument("--fold", type=int, default=0)
ap.add_argument("--steps", default="150,300,600,900", help="stage-1 steps at which the trunk is kept")
ap.add_argument("--run-dir", default=None, help="default: tmp/learning_curve/<config stem>/fold<F>")
ap.add_argument("--out", default=None, help="TSV of the curve (default: RUN_DIR/curve.tsv)")
ap.add_argument("--no-heads", action="store_true", help="stage 1 only")
ap.add_argument("--lr", type=float, default=None, help="stage-1 learning rate instead of the config's")
ap.add_argument("--store", default=None, help="training store instead of the config's (e.g. a rule variant's)")
a = ap.parse_args()

threads = int(os.environ.get("THREADS", "2"))
torch.set_num_threads(threads)
cfg = load_config(REPO / a.config)
cfg = cfg.replace(store=str(REPO / (a.store or cfg.store)), folds_file=str(REPO / cfg.folds_file))
if a.lr is not None:
    cfg = cfg.replace(stage1=dataclasses.replace(cfg.stage1, lr=a.lr))
run = Path(a.run_dir or REPO / "tmp/learning_curve" / Path(a.config).stem / f"fold{a.fold}")
stage1_dir = run / "stage1"
snapshots = run / "snapshots"
snapshots.mkdir(parents=True, exist_ok=True)
out = Path(a.out) if a.out else run / "curve.tsv"
PAT = re.compile(r"^training loci \(AUPRC pooled / per context\): model ([0-9.]+) / ([0-9.]+), "
                 r"mean ([0-9.]+) / [0-9.]+, weighted mean ([0-9.]+)", re.M)


def history():
    rows = (stage1_dir / "history.tsv").read_text().splitlines()[1:]
    return [[float(x) for x in r.split("\t")] for r in rows]


def head(snapshot: Path, no_mean: bool) -> tuple[float, float, float, float]:
    log = snapshot.with_suffix(".nomean.log" if no_mean else ".mean.log")
    if not (log.is_file() and PAT.search(log.read_text())):
        cmd = [sys.executable, str(REPO / "training/diagnostics/head_warmup.py"), "--config", a.config,
               "--fold", str(a.fold), "--stage1", str(snapshot), "--features", "trunk", "--steps", "800"] + \
            (["--no-mean"] if no_mean else []) + (["--store", a.store] if a.store else [])
        env = dict(os.environ, THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        text = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True, env=env).stdout
        log.write_text(" ".join(cmd) + "\n" + text)
    m = PAT.search(log.read_text())
    return tuple(float(x) for x in m.groups())


rows = []
for target in [int(s) for s in a.steps.split(",")]:
    snap = snapshots / f"step{target}.pt"
    if not snap.is_file():
        t0 = time.time()
        step_cfg = cfg.replace(stage1=dataclasses.replace(cfg.stage1, steps=target))
        train_stage1(step_cfg, a.fold, stage1_dir, progress=False)
        last = torch.load(stage1_dir / "last.pt", map_location="cpu", weights_only=True)
        assert int(last["step"]) == target, (last["step"], target)
        torch.save({"trunk": cfg.trunk, "state_dict": last["model"], "step": target}, snap)
        print(f"stage 1 to step {target}: {time.time() - t0:.0f} s", flush=True)
    h = [r for r in history() if int(r[0]) <= target]
    valid = [r[2] for r in h if r[2] == r[2]]  # NaN where a step was not validated
    row = {"steps": target, "stage1_seconds": h[-1][3], "stage1_valid_auprc": valid[-1] if valid else float("nan")}
    if not a.no_heads:
        nm, with_m = head(snap, True), head(snap, False)
        row.update(head_no_mean=nm[0], head_with_mean=with_m[0], mean_baseline=with_m[2],
                   weighted_mean_baseline=with_m[3])
    rows.append(row)
    print("\t".join(f"{k} {v}" for k, v in row.items()), flush=True)
    with open(out, "w") as fh:
        fh.write("\t".join(rows[0]) + "\n")
        for r in rows:
            fh.write("\t".join(str(r.get(k, "")) for k in rows[0]) + "\n")
shutil.copy(stage1_dir / "history.tsv", run / "stage1_history.tsv")
print(f"written {out}")
