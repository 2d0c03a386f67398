"""Export a finished run: weights/ (fp16 fold files), folds.tsv, mean bigWig, model.yaml.

What goes where (repository layout, docs/DESIGN.md):
- ``weights/fold{f}.with_mean.pt`` for every fold and ``weights/fold{f}.no_mean.pt``
  for the folds in ``ship_no_mean`` (fp16 matrices, fp32 1-D tensors; predictions checked
  against fp32 on 256 store windows x all contexts, refused above 1e-3);
- ``weights/folds.tsv``: the train / valid / test contexts of each fold;
- ``weights/mean_accessibility_<chrom>.bw``: the mean-accessibility track over ALL
  the store's contexts (every context is a training context of some fold, and at
  prediction time users ask about new contexts), 50 bp steps (see data.mean_track);
- the root ``model.yaml`` / ``dataloader.yaml``: the with-mean fold ensemble (default
  model), and, when ``per_fold_dir`` is given, one Kipoi model folder per fold model.

Folds trained in successive sessions are kept as they finish with :func:`export_fold`
(``training/runs/<config>/fold<f>/``: the fp16 with-mean weights, the evaluation and the
histories), so that nothing is lost when a session ends; :func:`export_run` ships those very
files (``fp16_from``), byte for byte, and ``report --run-dir training/runs/<config>`` assembles
the report from them.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from chromdragonn import paths
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.nn.weights import load_model, save_weights
from chromdragonn.outputs.atomic import atomic_output, atomic_outputs
from chromdragonn.training.config import TrainingConfig

log = logging.getLogger(__name__)


def write_mean_bigwig(store, ctx_idx, path: str | os.PathLike) -> Path:
    """The mean-accessibility track of ``ctx_idx`` as a bigWig (50 bp fixed steps), atomically."""
    import pyBigWig

    from chromdragonn.training.data import mean_track
    from chromdragonn.training.store import STEP

    path = Path(path)
    track = mean_track(store, np.asarray(ctx_idx))
    header = []
    for c in sorted(track):
        length = store.chromosomes[c]["length"] or int(track[c][0] + len(track[c][1]) * STEP)
        header.append((store.chrom_names[c], int(length)))
    with atomic_output(path) as tmp:
        bw = pyBigWig.open(str(tmp), "w")
        bw.addHeader(header)
        for c in sorted(track):
            first, values = track[c]
            length = dict(header)[store.chrom_names[c]]
            n = min(len(values), (length - first) // STEP)
            bw.addEntries(store.chrom_names[c], int(first), values=[float(v) for v in values[:n]], span=STEP,
                          step=STEP)
        bw.close()
    return path


def save_weights_fp16(model, path: str | os.PathLike, genes) -> str:
    """A weights file with matrices and kernels in fp16 and 1-D tensors (biases, batch-norm
    parameters and statistics: a few kB) kept in fp32, which halves the error of all-fp16
    storage.  Same format as :func:`chromdragonn.nn.weights.save_weights` (it writes the file;
    this only narrows its tensors); ``load_model`` casts everything back to fp32."""
    from chromdragonn.nn.weights import md5sum, tensor_checksum

    path = Path(path)
    save_weights(model, path, genes, half=False)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    payload["state_dict"] = {k: (v.half() if v.is_floating_point() and v.dim() > 1 else v)
                             for k, v in payload["state_dict"].items()}
    payload["tensor_sha256"] = tensor_checksum(payload["state_dict"])  # of the tensors as now stored
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return md5sum(path)


def half_precision_gap(weights_fp32: str | os.PathLike, weights_fp16: str | os.PathLike, store, n: int = 256,
                       seed: int = 0) -> float:
    """Largest |P(fp16 weights) - P(fp32 weights)| over n store windows x all contexts,
    with the mean feature the shipped bigWig gives (mean over all the store's contexts)."""
    from chromdragonn.training.data import mean_feature

    m32, _ = load_model(weights_fp32)
    m16, _ = load_model(weights_fp16)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(store), min(n, len(store)), replace=False))
    seq = torch.from_numpy(store.onehot(idx))
    expr = torch.from_numpy(store.expression)
    mean = torch.from_numpy(mean_feature(store, np.arange(len(store.contexts)))[idx])
    with torch.no_grad():
        a = m32.predict_grid(seq, expr, mean if m32.with_mean else None)
        b = m16.predict_grid(seq, expr, mean if m16.with_mean else None)
    return float((a - b).abs().max())


FP16_TOLERANCE = 1e-3  # largest |P(fp16) - P(fp32)| accepted for a shipped file


def write_fp16_checked(src: str | os.PathLike, dst: str | os.PathLike, store, name: str | None = None) -> float:
    """``src`` (fp32 weights) as the fp16 file ``dst``; its predictions checked against ``src``'s
    (:func:`half_precision_gap`), refused above :data:`FP16_TOLERANCE`.  Returns the gap.
    ``dst`` is a temporary path of the caller's (atomic_output / atomic_folder), so that a refused
    file is never left in place."""
    model, genes = load_model(src)
    if list(genes) != list(store.genes):
        raise ChromDragoNNError(f"{src}: its genes are not the store's")
    save_weights_fp16(model, dst, genes)
    gap = half_precision_gap(src, dst, store)
    if gap > FP16_TOLERANCE:
        raise ChromDragoNNError(f"{name or dst}: fp16 predictions differ from fp32 by {gap:.2e} (> {FP16_TOLERANCE:g})")
    return gap


def export_fold(cfg: TrainingConfig, run_dir: str | os.PathLike, fold: int, out_root: str | os.PathLike,
                command: str = "") -> dict:
    """One finished fold (stage 1, both stage-2 models, evaluation) as ``out_root/fold<f>/``, written whole.

    It holds ``fold<f>.with_mean.pt`` (fp16, checked against fp32 as :func:`export_run` checks it; the
    file :func:`export_run` ships with ``fp16_from``), ``eval/metrics.json`` and ``eval/pr_curves.json``,
    each stage's ``history.tsv``, and ``fold.json``: what was run (config, seeds, steps, the stage-1 step
    kept, seconds, the fold's timings, the fp16 gap, the git commit).  The no-mean model is not kept
    (weights/ ships with-mean models only); its evaluation is in metrics.json.
    """
    import datetime
    import subprocess

    from chromdragonn.outputs.atomic import atomic_folder
    from chromdragonn.training.store import Store

    run_dir, out_root = Path(run_dir), Path(out_root)
    fd = run_dir / f"fold{fold}"
    need = [fd / "stage1" / "stage1.pt", fd / "stage2_with_mean" / "weights.pt", fd / "stage2_no_mean" / "weights.pt",
            fd / "eval" / "metrics.json"]
    missing = [p for p in need if not p.is_file()]
    if missing:
        raise ChromDragoNNError(f"{missing[0]} is missing: fold {fold} is not finished "
                                f"(python -m chromdragonn.training run --config ... --folds {fold})")
    out_root.mkdir(parents=True, exist_ok=True)
    out = out_root / f"fold{fold}"
    if out.exists():
        raise ChromDragoNNError(f"{out} already exists: fold {fold} was exported before (remove it to replace it)")
    store = Store(cfg.store)
    s1 = torch.load(fd / "stage1" / "stage1.pt", map_location="cpu", weights_only=True)
    timings = {}
    if (run_dir / "timings.json").is_file():
        timings = {k: v for k, v in json.loads((run_dir / "timings.json").read_text()).items()
                   if k.startswith(f"fold {fold} ")}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.REPO_ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = ""
    with atomic_folder(out) as tmp:
        src = fd / "stage2_with_mean" / "weights.pt"
        dst = tmp / f"fold{fold}.with_mean.pt"
        gap = write_fp16_checked(src, dst, store, name=dst.name)
        (tmp / "eval").mkdir()
        for name in ("metrics.json", "pr_curves.json"):
            if (fd / "eval" / name).is_file():
                shutil.copyfile(fd / "eval" / name, tmp / "eval" / name)
        stages = {}
        for stage in ("stage1", "stage2_with_mean", "stage2_no_mean"):
            (tmp / stage).mkdir()
            shutil.copyfile(fd / stage / "history.tsv", tmp / stage / "history.tsv")
            rows = (fd / stage / "history.tsv").read_text().splitlines()[1:]
            stages[stage] = {"steps": int(float(rows[-1].split("\t")[0])) if rows else 0,
                             "seconds": float(rows[-1].split("\t")[3]) if rows else 0.0}
        stages["stage1"].update(select=cfg.stage1.select, kept_step=int(s1["best_step"]),
                                valid_auprc=float(s1["valid_auprc"]), seed=cfg.seed + 101 * fold)
        record = {"fold": fold, "config": dataclasses.asdict(cfg), "command": command, "stages": stages,
                  "timings_seconds": timings, "fp16_max_abs_diff": gap, "git_commit": commit,
                  "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        (tmp / "fold.json").write_text(json.dumps(record, indent=1) + "\n")
    merged = json.loads((out_root / "timings.json").read_text()) if (out_root / "timings.json").is_file() else {}
    merged.update(timings)
    with atomic_output(out_root / "timings.json") as t:
        t.write_text(json.dumps(merged, indent=1) + "\n")
    log.info("exported fold %d to %s; fp16 vs fp32 max |dP| %.1e", fold, out, gap)
    return {"folder": str(out), "fp16_max_abs_diff": gap, "stages": stages}


def export_run(cfg: TrainingConfig, run_dir: str | os.PathLike, weights_dir: str | os.PathLike = paths.WEIGHTS_DIR,
               folds: list[int] | None = None, ship_no_mean: tuple[int, ...] = (),
               write_root_yaml: bool = True, per_fold_dir: str | os.PathLike | None = None,
               fp16_from: str | os.PathLike | None = None) -> dict:
    """``fp16_from``: ship the with-mean files kept by :func:`export_fold` under this folder (copied byte
    for byte; their fp16 check was made then and is read from fold.json) instead of converting run_dir's."""
    from chromdragonn.kipoi.render import write_model_dir
    from chromdragonn.training.folds import read_folds
    from chromdragonn.training.store import Store

    run_dir, weights_dir = Path(run_dir), Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    store = Store(cfg.store)
    folds_df = read_folds(cfg.folds_file)
    folds = sorted(folds_df["fold"].unique()) if folds is None else folds
    # (fold, with_mean, source) of every file, all checked to exist before any conversion
    plan = []
    for f in folds:
        for with_mean in (True, False):
            if not with_mean and f not in ship_no_mean:
                continue
            if with_mean and fp16_from is not None:
                src = Path(fp16_from) / f"fold{f}" / f"fold{f}.with_mean.pt"
                if not src.is_file():
                    raise ChromDragoNNError(f"{src} is missing: export fold {f} first (export-fold --fold {f})")
            else:
                src = run_dir / f"fold{f}" / ("stage2_with_mean" if with_mean else "stage2_no_mean") / "weights.pt"
                if not src.is_file():
                    raise ChromDragoNNError(f"{src} is missing: train fold {f} stage 2 first")
            plan.append((f, with_mean, src))
    shipped = [weights_dir / f"fold{f}.{'with_mean' if with_mean else 'no_mean'}.pt" for f, with_mean, _ in plan]
    chrom = store.chrom_names[0]
    bw = weights_dir / f"mean_accessibility_chr{chrom.removeprefix('chr')}.bw"
    gaps = {}
    # all or nothing: a file refused (fp16 gap, checksum) leaves weights/ as it was
    with atomic_outputs(*shipped, weights_dir / "folds.tsv", bw) as temps:
        for (f, with_mean, src), dst, tmp in zip(plan, shipped, temps):
            if with_mean and fp16_from is not None:
                load_model(src)  # its tensor checksum is checked on loading
                shutil.copyfile(src, tmp)
                gaps[dst.name] = json.loads((src.parent / "fold.json").read_text())["fp16_max_abs_diff"]
            else:
                gaps[dst.name] = write_fp16_checked(src, tmp, store, dst.name)
        shutil.copyfile(cfg.folds_file, temps[len(plan)])
        write_mean_bigwig(store, np.arange(len(store.contexts)), temps[len(plan) + 1])
    with_mean_files = [p for p in shipped if "with_mean" in p.name]
    if write_root_yaml and with_mean_files and weights_dir.resolve() == paths.WEIGHTS_DIR.resolve():
        write_model_dir(paths.REPO_ROOT, with_mean_files,
                        title="ChromDragoNN: chromatin accessibility from DNA sequence and TF expression "
                              f"({len(with_mean_files)}-fold ensemble, with mean accessibility)",
                        description_extra=cfg.model_description, copy_example=False)
    if per_fold_dir is not None:
        for p in shipped:
            write_model_dir(Path(per_fold_dir) / p.stem.replace(".", "_"), [p],
                            title=f"ChromDragoNN {p.stem} (one fold model)",
                            description_extra=cfg.model_description,
                            extra_files=[paths.SHIPPED_EXPRESSION, bw] if paths.SHIPPED_EXPRESSION.is_file() else [bw])
    log.info("exported %s; fp16 vs fp32 max |dP| %s", ", ".join(p.name for p in shipped),
             ", ".join(f"{k} {v:.1e}" for k, v in gaps.items()))
    return {"weights": [str(p) for p in shipped], "fp16_max_abs_diff": gaps, "mean_bigwig": str(bw)}


def export_named_model(cfg: TrainingConfig, run_dir: str | os.PathLike, name: str, fold: int = 0,
                       weights_dir: str | os.PathLike = paths.WEIGHTS_DIR, title: str | None = None,
                       trained_on: str | None = None) -> dict:
    """One fold's with-mean model as a named model: the Kipoi model folder ``weights_dir/name``.

    It holds ``weights/<name>.with_mean.pt`` (fp16 matrices, checked against fp32 as in
    :func:`export_run`), ``weights/mean_accessibility_<chrom>.bw`` (the mean over the fold's
    TRAINING contexts, the feature the model was trained with), model.yaml and dataloader.yaml
    rendered for it, and copies of the root model.py / dataloader.py; the gene panel is the
    repository's (declared by a relative path, not copied).  ``NAMED_MODELS`` in
    chromdragonn/inputs/session.py makes ``--model <name>`` resolve to this folder.
    """
    from chromdragonn.kipoi.render import write_model_dir
    from chromdragonn.training.data import FoldData
    from chromdragonn.training.store import Store

    run_dir = Path(run_dir)
    out = Path(weights_dir) / name
    wdir = out / "weights"
    wdir.mkdir(parents=True, exist_ok=True)
    src = run_dir / f"fold{fold}" / "stage2_with_mean" / "weights.pt"
    if not src.is_file():
        raise ChromDragoNNError(f"{src} is missing: train fold {fold} stage 2 (with the mean) first")
    store = Store(cfg.store)
    data = FoldData(cfg, fold, store)
    dst = wdir / f"{name}.with_mean.pt"
    with atomic_output(dst) as tmp:
        gap = write_fp16_checked(src, tmp, store, dst.name)
    chrom = store.chrom_names[0]
    bw = write_mean_bigwig(store, data.train_ctx, wdir / f"mean_accessibility_chr{chrom.removeprefix('chr')}.bw")
    write_model_dir(out, [dst], title=title or f"ChromDragoNN {name}", description_extra=cfg.model_description,
                    trained_on=trained_on or cfg.model_description, copy_example=False, share_gene_panel=True)
    log.info("exported %s to %s; fp16 vs fp32 max |dP| %.1e", name, out, gap)
    return {"folder": str(out), "weights": str(dst), "fp16_max_abs_diff": gap, "mean_bigwig": str(bw),
            "mean_contexts": [store.contexts[i] for i in data.train_ctx]}
