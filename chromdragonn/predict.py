"""Predict accessibility of many intervals in many cell contexts.

The trunk runs once per interval; the contexts only run the (split) head, so
C contexts cost little more than one (see ``ChromDragoNN.predict_grid``).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import yaml
from tqdm import tqdm

from chromdragonn import paths
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.weights import load_models

log = logging.getLogger(__name__)


def default_weights(model_yaml: Path = paths.MODEL_YAML):
    """The default model as the root model.yaml declares it: (files, md5s, n_genes, with_mean)."""
    with open(model_yaml) as fh:
        args = yaml.safe_load(fh)["args"]
    files = args["weights"] if isinstance(args["weights"], list) else [args["weights"]]
    md5s = args.get("md5s") or [None] * len(files)
    md5s = md5s if isinstance(md5s, list) else [md5s]
    files = [model_yaml.parent / f for f in files]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ChromDragoNNError(
            f"the default model's weights are not there ({', '.join(missing)}); "
            "train them (training/README.md) or pass --weights")
    return files, md5s, args.get("n_genes"), args.get("with_mean")


def _as_list(weights) -> list:
    return [weights] if isinstance(weights, (str, os.PathLike)) else list(weights)


def resolve_model(weights: str | os.PathLike | Sequence[str | os.PathLike] | None = None):
    """None -> the default model of model.yaml (checked against its md5s, n_genes and
    with_mean); a path or a list of paths -> that model or ensemble."""
    if weights is None:
        files, md5s, n_genes, with_mean = default_weights()
        return load_models(files, md5s, n_genes=n_genes, with_mean=with_mean)
    return load_models([Path(w) for w in _as_list(weights)])


def _device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ChromDragoNNError(f"device {name!r} asked for, but torch sees no CUDA device")
    return torch.device(name)


def predict(intervals_file, fasta_file, cell_types, expression_file=None, expression_units="tpm",
            mean_bigwig=None, weights=None, batch_size: int = 32, device: str = "cpu",
            progress: bool = True) -> pd.DataFrame:
    """P(accessible) of each BED interval in each context.

    Returns one row per interval: chrom, start, end, name (as in the BED), the
    1,000 bp window actually scored (window_start, window_end), then one column per
    context, in the order given, holding P(accessible).
    """
    # Imported here so `chromdragonn --help` stays fast.
    from chromdragonn.expression import ExpressionSource, parse_contexts
    from chromdragonn.genome import Genome, MeanAccessibility, centered_window, one_hot_batch, read_bed

    contexts = parse_contexts(cell_types)
    # Inputs first (cheap, and an error there should not follow model or expression warnings).
    bed = read_bed(intervals_file)
    genome = Genome(fasta_file)
    for chrom in bed["chrom"].unique():
        genome.resolve(chrom)  # fail before any work if a chromosome is missing

    model, genes = resolve_model(weights)
    mean_track = None
    if model.with_mean:
        bw = mean_bigwig if mean_bigwig is not None else paths.MEAN_BIGWIG
        if not Path(bw).is_file():
            raise ChromDragoNNError(f"this model needs the mean-accessibility bigWig; not found: {bw}")
        mean_track = MeanAccessibility(bw)
        for chrom in bed["chrom"].unique():
            mean_track.resolve(chrom)  # likewise for the bigWig, before the progress bar starts

    dev = _device(device)
    model.to(dev)
    expression = ExpressionSource(user_table=expression_file, user_units=expression_units)
    if list(expression.genes) != list(genes):
        source = "model.yaml's default model" if weights is None else ", ".join(map(str, _as_list(weights)))
        raise ChromDragoNNError(
            f"the weights ({source}) take {len(genes)} genes, which are not the "
            f"{len(expression.genes)} of the gene panel {paths.GENE_PANEL} the expression is matched to")
    expr = torch.from_numpy(expression.matrix(contexts)).to(dev)

    windows = [centered_window(r.chrom, r.start, r.end) for r in bed.itertuples()]
    probs = np.empty((len(bed), len(contexts)), dtype=np.float32)
    bar = tqdm(total=len(bed), unit="interval", disable=not progress, desc="predicting")
    for lo in range(0, len(bed), batch_size):
        batch = windows[lo: lo + batch_size]
        seq = torch.from_numpy(one_hot_batch([genome.fetch(w.chrom, w.start, w.end) for w in batch]))
        mean = None
        if mean_track is not None:
            mean = torch.tensor([mean_track.value(w.chrom, w.start, w.end) for w in batch],
                                dtype=torch.float32, device=dev)
        probs[lo: lo + len(batch)] = model.predict_grid(seq.to(dev), expr, mean).float().cpu().numpy()
        bar.update(len(batch))
    bar.close()

    out = bed[["chrom", "start", "end", "name"]].copy()
    out["window_start"] = [w.start for w in windows]
    out["window_end"] = [w.end for w in windows]
    for j, ctx in enumerate(contexts):
        out[ctx] = probs[:, j]
    return out


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """TSV, written to <path>.partial and renamed, so no half-written file is left."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _run(args) -> int:
    df = predict(args.intervals, args.fasta, args.contexts, expression_file=args.expression,
                 expression_units=args.expression_units, mean_bigwig=args.mean_bigwig,
                 weights=args.weights, batch_size=args.batch_size, device=args.device,
                 progress=not args.quiet)
    write_table(df, args.output)
    log.info("wrote %d intervals x %d contexts to %s", len(df), len(df.columns) - 6, args.output)
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="P(accessible) of BED intervals in chosen cell contexts",
        description="Predict chromatin accessibility of each BED interval (resized to 1 kb around its "
                    "centre) in each named cell context; writes a TSV with one column per context.")
    p.add_argument("--intervals", required=True, help="BED file (any width; 4th column kept as name)")
    p.add_argument("--fasta", required=True, help="hg19 FASTA, plain or bgzipped")
    p.add_argument("--contexts", required=True, help="comma-separated context names, e.g. E003,E116,E123")
    p.add_argument("--expression", default=None,
                   help="your own RNA-seq table (genes x contexts); its contexts can then be named")
    p.add_argument("--expression-units", default="tpm", choices=["tpm", "rpkm"])
    p.add_argument("--mean-bigwig", default=None, help="mean-accessibility bigWig (default: the shipped one)")
    p.add_argument("--weights", nargs="+", default=None,
                   help="weights file(s); several are averaged (default: the 5-fold ensemble of model.yaml)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("-o", "--output", required=True, help="output TSV")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
