"""``python -m chromdragonn.training COMMAND``: the training pipeline's command line.

Commands (see training/README.md):
  simulate        build the benchmark store with simulated labels (real sequence, RNA, motifs)
  preprocess      peaks (one BED/narrowPeak per context) + RNA-seq -> a store
  import-release  the original ChromDragoNN joblib release -> a store
  folds           write the folds file (train / valid / test contexts per fold)
  stage1 / stage2 train one fold (stage2 --no-mean for the model without the mean feature)
  evaluate        one fold's four rows on held-out contexts (training and held-out loci)
  report          training/REPORT.md from the evaluated folds
  export          weights/, folds.tsv, mean bigWig, model.yaml
  export-named    one fold's with-mean model as a named Kipoi model folder weights/NAME/
  run             everything for the folds of a config, in order, resuming what is done
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from chromdragonn import paths
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.training.config import TrainingConfig, load_config

log = logging.getLogger("chromdragonn.training")

SHARED = paths.SHARED_DATA


def _threads(cfg: TrainingConfig) -> None:
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)


def fold_dir(cfg: TrainingConfig, fold: int) -> Path:
    return Path(cfg.run_dir) / f"fold{fold}"


def cmd_simulate(args) -> int:
    from chromdragonn.training.simulate import build_simulated_store

    store, rule = build_simulated_store(
        args.out, args.fasta, args.rna, args.rna_units, args.gene_panel, args.lambert, args.motifs,
        args.chromosomes.split(","), args.regions.split(",") if args.regions else None, args.blacklist,
        seed=args.seed, rule_out=args.rule_out, rule_version=args.rule_version)
    print(f"wrote {store.directory}: {len(store)} bins x {len(store.contexts)} contexts (simulated labels); "
          f"context TFs {', '.join(rule.tfs)}")
    return 0


def cmd_preprocess(args) -> int:
    from chromdragonn.training.preprocess import build_store_from_peaks, read_peaks_manifest

    peaks, flanks = read_peaks_manifest(args.peaks, with_flanks=True)
    store = build_store_from_peaks(args.out, args.fasta, peaks, args.rna, args.rna_units,
                                   args.gene_panel, args.chromosomes.split(","),
                                   args.regions.split(",") if args.regions else None, args.blacklist,
                                   summit_flank=flanks)
    print(f"wrote {store.directory}: {len(store)} bins x {len(store.contexts)} contexts")
    return 0


def cmd_import_release(args) -> int:
    from chromdragonn.training.release import import_release

    store = import_release(args.dnase_dir, args.rna, args.out)
    print(f"wrote {store.directory}: {len(store)} windows x {len(store.contexts)} contexts")
    return 0


def cmd_folds(args) -> int:
    from chromdragonn.training.folds import make_folds, write_folds
    from chromdragonn.training.store import Store

    df = make_folds(Store(args.store).contexts, args.n_folds, args.n_valid, args.seed)
    write_folds(df, args.out)
    print(f"wrote {args.out}: {args.n_folds} folds")
    return 0


def _cfg(args) -> TrainingConfig:
    cfg = load_config(args.config, args.set or (), store=args.store, run_dir=args.run_dir, folds_file=args.folds_file)
    _threads(cfg)
    return cfg


def cmd_stage1(args) -> int:
    from chromdragonn.training.train import train_stage1

    cfg = _cfg(args)
    train_stage1(cfg, args.fold, fold_dir(cfg, args.fold) / "stage1")
    return 0


def cmd_stage2(args) -> int:
    from chromdragonn.training.train import train_stage2

    cfg = _cfg(args)
    fd = fold_dir(cfg, args.fold)
    with_mean = not args.no_mean
    stage1 = Path(args.stage1) if args.stage1 else fd / "stage1" / "stage1.pt"
    if not stage1.is_file():
        raise ChromDragoNNError(f"stage-1 state {stage1} not found: run stage1 for fold {args.fold} first")
    train_stage2(cfg, args.fold, fd / ("stage2_with_mean" if with_mean else "stage2_no_mean"), with_mean, stage1)
    return 0


def cmd_evaluate(args) -> int:
    from chromdragonn.training.evaluate import evaluate_fold

    cfg = _cfg(args)
    fd = fold_dir(cfg, args.fold)
    w_mean, w_nomean = fd / "stage2_with_mean" / "weights.pt", fd / "stage2_no_mean" / "weights.pt"
    res = evaluate_fold(cfg, args.fold, w_mean if w_mean.is_file() else None,
                        w_nomean if w_nomean.is_file() else None, fd / "eval")
    for setting, r in res["settings"].items():
        print(setting + ": " + ", ".join(f"{m} AUPRC {v['auprc']:.3f}" for m, v in r["methods"].items()))
    return 0


def _timings(cfg: TrainingConfig) -> str:
    import pandas as pd

    rows = []
    for fd in sorted(Path(cfg.run_dir).glob("fold*")):
        for stage in ("stage1", "stage2_with_mean", "stage2_no_mean"):
            h = fd / stage / "history.tsv"
            if h.is_file():
                df = pd.read_csv(h, sep="\t")
                scored = df["valid_auprc"].dropna()
                best = scored.max()
                # stage 1 with `select: last` hands its final trunk to stage 2, not its best one
                kept = scored.iloc[-1] if stage == "stage1" and cfg.stage1.select == "last" else best
                rows.append(f"| {fd.name} | {stage} | {len(df)} | {df['seconds'].iloc[-1]:.0f} | {best:.3f} "
                            f"| {kept:.3f} |")
    if not rows:
        return ""
    timing_file = Path(cfg.run_dir) / "timings.json"
    extra = ""
    if timing_file.is_file():
        t = json.loads(timing_file.read_text())
        extra = "\n".join(f"- {k}: {v:.0f} s" for k, v in t.items()) + "\n"
    return ("Training steps, wall-clock seconds, best validation AUPRC and that of the state kept "
            f"(stage 1 keeps its {'final' if cfg.stage1.select == 'last' else 'best'} trunk; stage 2 its best "
            "head) (stage 1: training contexts on validation loci; stage 2: validation contexts on validation "
            "loci), as measured in this run:\n\n"
            "| fold | stage | steps | seconds | best validation AUPRC | kept state's validation AUPRC |\n"
            "|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n\n" + extra)


def _exact_mean_section(cfg: TrainingConfig) -> str:
    """The mean baseline with each bin's own mean (the paper's definition) beside the smoothed
    track the model gets (what the bigWig can hold), on the same evaluation bins."""
    import numpy as np

    from chromdragonn.training.data import FoldData
    from chromdragonn.training.evaluate import auprc

    ev = cfg.evaluate
    rows = []
    for fd in sorted(Path(cfg.run_dir).glob("fold*/eval/metrics.json")):
        fold = int(fd.parent.parent.name[4:])
        data = FoldData(cfg, fold)
        cells = []
        for bins, n, tag in ((data.train_bins, ev.bins_training_loci, 3),
                             (data.heldout_bins, ev.bins_heldout_loci, 4)):
            idx = data.sample(bins, n, tag)
            y = np.asarray(data.store.labels[idx][:, data.test_ctx])
            exact = np.asarray(data.store.labels[idx][:, data.train_ctx]).mean(axis=1)
            for score in (data.mean[idx], exact):
                cells.append(auprc(y, np.repeat(score[:, None], y.shape[1], axis=1)))
        rows.append(f"| {fold} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    if not rows:
        return ""
    return ("The mean baseline above uses the smoothed mean-accessibility track that the with-mean model "
            "receives (50 bp segments, what the shipped bigWig holds; see `chromdragonn/training/data.py`). "
            "With each bin's own mean over the training contexts (the paper's definition) instead, on the "
            "same bins:\n\n| fold | training loci, smoothed | training loci, exact | held-out loci, smoothed | "
            "held-out loci, exact |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


def cmd_report(args) -> int:
    from chromdragonn.training.report import write_report

    cfg = _cfg(args)
    commands = cfg.report_commands or [f"python -m chromdragonn.training run --config {args.config}"]
    summary = Path(args.summary).read_text() if args.summary else ""
    write_report(cfg, cfg.run_dir, args.out, args.figures, commands,
                 extra_sections=_timings(cfg) + "\n" + _exact_mean_section(cfg), summary=summary)
    print(f"wrote {args.out}")
    return 0


def cmd_export(args) -> int:
    from chromdragonn.training.export import export_run

    cfg = _cfg(args)
    folds = [int(f) for f in args.folds.split(",")] if args.folds else None
    res = export_run(cfg, cfg.run_dir, args.weights_dir, folds=folds,
                     ship_no_mean=tuple(int(x) for x in args.ship_no_mean.split(",")) if args.ship_no_mean else (),
                     write_root_yaml=not args.no_yaml, per_fold_dir=args.per_fold_dir, fp16_from=args.fp16_from)
    print(json.dumps(res, indent=1))
    return 0


def cmd_export_fold(args) -> int:
    from chromdragonn.training.export import export_fold

    cfg = _cfg(args)
    out = args.out or str(Path("training/runs") / Path(args.config).stem)
    res = export_fold(cfg, cfg.run_dir, args.fold, out, command=" ".join(sys.argv))
    print(json.dumps(res, indent=1))
    return 0


def cmd_export_named(args) -> int:
    from chromdragonn.training.export import export_named_model

    cfg = _cfg(args)
    res = export_named_model(cfg, cfg.run_dir, args.name, args.fold, args.weights_dir, title=args.title)
    print(json.dumps(res, indent=1))
    return 0


def _stage1_to_extend(cfg: TrainingConfig, fold: int) -> int:
    """The steps a finished stage 1 ran when the config now asks for more (0: nothing to extend).
    Its stage-2 models and evaluation come from the shorter trunk: then it is an error to go on."""
    from chromdragonn.training.train import load_checkpoint

    fd = fold_dir(cfg, fold)
    last = fd / "stage1" / "last.pt"
    if not ((fd / "stage1" / "stage1.pt").is_file() and last.is_file()):
        return 0
    ran = int(load_checkpoint(last)["step"])
    if ran >= cfg.stage1.steps:
        return 0
    made = [p.name for p in (fd / "stage2_with_mean", fd / "stage2_no_mean", fd / "eval") if p.exists()]
    if made:
        raise ChromDragoNNError(f"fold {fold}: stage 1 ran {ran} steps and the config asks for {cfg.stage1.steps}, "
                                f"but {', '.join(made)} in {fd} come from the {ran}-step trunk: move them aside "
                                f"and stage 1 resumes from {last}")
    return ran


def cmd_run(args) -> int:
    """Every fold: stage 1, stage 2 with and without mean, evaluation; skips finished parts."""
    from chromdragonn.training.data import FoldData
    from chromdragonn.training.evaluate import evaluate_fold
    from chromdragonn.training.train import train_stage1, train_stage2

    cfg = _cfg(args)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    timing_file = run_dir / "timings.json"
    timings = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
    folds = [int(f) for f in args.folds.split(",")] if args.folds else list(range(cfg.n_folds))
    extend = {fold: _stage1_to_extend(cfg, fold) for fold in folds}  # checked for every fold before any runs
    for fold in folds:
        fd = fold_dir(cfg, fold)
        t0 = time.time()
        data = FoldData(cfg, fold)
        if extend[fold]:
            log.info("fold %d: stage 1 ran %d steps, the config asks for %d: resuming it", fold, extend[fold],
                     cfg.stage1.steps)
        if extend[fold] or not (fd / "stage1" / "stage1.pt").is_file():
            train_stage1(cfg, fold, fd / "stage1", data=data)
        if args.until != "stage1":
            for with_mean in (True, False):
                out = fd / ("stage2_with_mean" if with_mean else "stage2_no_mean")
                if not (out / "weights.pt").is_file():
                    train_stage2(cfg, fold, out, with_mean, fd / "stage1" / "stage1.pt", data=data)
        if args.until == "evaluate" and not (fd / "eval" / "metrics.json").is_file():
            t1 = time.time()
            evaluate_fold(cfg, fold, fd / "stage2_with_mean" / "weights.pt", fd / "stage2_no_mean" / "weights.pt",
                          fd / "eval", data=data)
            timings[f"fold {fold} evaluation"] = time.time() - t1
        timings[f"fold {fold} total (this invocation)"] = time.time() - t0
        # several `run --folds` processes may share the run directory: merge, then replace atomically
        merged = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
        merged.update({k: v for k, v in timings.items() if k.startswith(f"fold {fold} ")})
        tmp = timing_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(merged, indent=1))
        os.replace(tmp, timing_file)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m chromdragonn.training", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("simulate", help="benchmark store with simulated labels")
    s.add_argument("--out", required=True)
    s.add_argument("--fasta", required=True, help="plain or bgzipped FASTA (e.g. example/hg19_chr22_1-22000000.fa.gz)")
    s.add_argument("--rna", default=str(SHARED / "expression" / "57epigenomes.RPKM.pc.gz"))
    s.add_argument("--rna-units", default="rpkm", choices=["tpm", "rpkm"])
    s.add_argument("--gene-panel", default=None)
    s.add_argument("--lambert", default=str(SHARED / "tf_lists" / "Lambert2018_DatabaseExtract_v_1.01.csv"))
    s.add_argument("--motifs", default=str(SHARED / "motifs" / "JASPAR2024_CORE_vertebrates_latest.meme"))
    s.add_argument("--chromosomes", default="22")
    s.add_argument("--regions", default="22:16050001-22000000", help="comma-separated CHROM:START-END (1-based, inclusive)")
    s.add_argument("--blacklist", default=str(SHARED / "genome" / "hg19-blacklist.v2.bed"))
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--rule-out", default=None, help="also write the fitted rule JSON here")
    s.add_argument("--rule-version", type=int, default=1, choices=[1, 2],
                   help="1: the shipped models' rule (window only); 2: benchmark v2 (+ a locus field along the chromosome)")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("preprocess", help="peaks + RNA-seq -> store")
    s.add_argument("--peaks", required=True, help="TSV manifest: context<TAB>BED/narrowPeak file[<TAB>summit_flank]; "
                   "a summit_flank F replaces that file's peaks by narrowPeak summit +- F bp")
    s.add_argument("--fasta", required=True)
    s.add_argument("--rna", required=True, help="genes x contexts table (TSV/CSV, optionally gzipped)")
    s.add_argument("--rna-units", default="tpm", choices=["tpm", "rpkm"])
    s.add_argument("--gene-panel", default=None)
    s.add_argument("--chromosomes", required=True, help="comma-separated, e.g. chr1,chr2")
    s.add_argument("--regions", default=None)
    s.add_argument("--blacklist", default=None)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_preprocess)

    s = sub.add_parser("import-release", help="original ChromDragoNN joblib release -> store")
    s.add_argument("--dnase-dir", required=True)
    s.add_argument("--rna", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_import_release)

    s = sub.add_parser("folds", help="write the folds file")
    s.add_argument("--store", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--n-folds", type=int, default=5)
    s.add_argument("--n-valid", type=int, default=4)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_folds)

    def with_config(s):
        s.add_argument("--config", required=True)
        s.add_argument("--store", default=None, help="override the config's store")
        s.add_argument("--run-dir", default=None, help="override the config's run_dir")
        s.add_argument("--folds-file", default=None, help="override the config's folds_file")
        s.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="change a config value, dotted for sections (repeatable): --set stage1.steps=2000 "
                            "--set threads=2")

    for name, func in (("stage1", cmd_stage1), ("stage2", cmd_stage2), ("evaluate", cmd_evaluate)):
        s = sub.add_parser(name)
        with_config(s)
        s.add_argument("--fold", type=int, required=True)
        if name == "stage2":
            s.add_argument("--no-mean", action="store_true", help="the model without the mean feature")
            s.add_argument("--stage1", default=None, help="stage-1 state (default: the fold's)")
        s.set_defaults(func=func)

    s = sub.add_parser("report")
    with_config(s)
    s.add_argument("--out", default="training/REPORT.md")
    s.add_argument("--figures", default="training/figures")
    s.add_argument("--summary", default=None, help="markdown file placed at the top of the report")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("export")
    with_config(s)
    s.add_argument("--weights-dir", default=None)
    s.add_argument("--ship-no-mean", default="", help="folds whose no-mean model is also written to weights/ "
                   "(comma-separated; none by default: weights/ stays under 120 MB)")
    s.add_argument("--no-yaml", action="store_true", help="do not rewrite the root model.yaml")
    s.add_argument("--per-fold-dir", default=None, help="also write one Kipoi model folder per shipped model here")
    s.add_argument("--folds", default=None, help="comma-separated folds to write (default: all)")
    s.add_argument("--fp16-from", default=None, help="ship the with-mean files kept by export-fold under this folder "
                   "(e.g. training/runs/benchmark_v2) instead of converting the run's")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("export-fold", help="keep one finished fold in the repository (fp16 with-mean weights, "
                       "evaluation, histories, fold.json): training/runs/<config>/fold<f>/")
    with_config(s)
    s.add_argument("--fold", type=int, required=True)
    s.add_argument("--out", default=None, help="default: training/runs/<config file stem>")
    s.set_defaults(func=cmd_export_fold)

    s = sub.add_parser("export-named", help="one fold's with-mean model as a named model (weights/NAME/)")
    with_config(s)
    s.add_argument("--name", required=True, help="the model's name (a key of NAMED_MODELS in inputs/session.py)")
    s.add_argument("--fold", type=int, default=0)
    s.add_argument("--weights-dir", default=None)
    s.add_argument("--title", default=None, help="first line of model.yaml's info.doc")
    s.set_defaults(func=cmd_export_named)

    s = sub.add_parser("run")
    with_config(s)
    s.add_argument("--folds", default=None, help="comma-separated fold numbers (default: all)")
    s.add_argument("--until", choices=["stage1", "stage2", "evaluate"], default="evaluate",
                   help="stop each fold after this step (default: evaluate, i.e. everything)")
    s.set_defaults(func=cmd_run)
    return p


def _shipped_defaults(args) -> None:
    from chromdragonn import paths

    if getattr(args, "gene_panel", "unset") is None:
        args.gene_panel = str(paths.GENE_PANEL)
    if getattr(args, "weights_dir", "unset") is None:
        args.weights_dir = str(paths.WEIGHTS_DIR)


def main(argv=None) -> int:
    from chromdragonn.cli import dispatch

    return dispatch(build_parser(), argv, prepare=_shipped_defaults)


if __name__ == "__main__":
    sys.exit(main())
