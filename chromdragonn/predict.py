"""Predict accessibility of many intervals in many cell contexts.

The trunk runs once per interval; the contexts only run the (split) head, so
C contexts cost little more than one (see ``ChromDragoNN.predict_grid``).
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import yaml
from tqdm import tqdm

from chromdragonn import paths
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.tables import write_tsv
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



def resolve_model_option(model: str | os.PathLike | Sequence | None = None):
    """--model: None or 'ensemble' -> the default ensemble of model.yaml; a fold number
    ('0'..'4' or 'fold3') -> that member of it; otherwise weights file path(s), comma-separated.
    Returns (model, genes)."""
    def defaults():
        """(files, md5s, n_genes, with_mean) of the default model that model.yaml declares."""
        try:
            declared = default_weights()
        except ChromDragoNNError as exc:  # predict.py's message names its own option
            raise ChromDragoNNError(str(exc).replace("--weights", "--model WEIGHTS.pt")) from None
        files, md5s = declared[0], declared[1]
        n_genes, with_mean = (declared[2], declared[3]) if len(declared) >= 4 else (None, None)
        return files, md5s, n_genes, with_mean

    if model is None or (isinstance(model, str) and model.strip().lower() in ("", "ensemble")):
        files, md5s, n_genes, with_mean = defaults()
        return load_models(files, md5s, n_genes=n_genes, with_mean=with_mean)
    if isinstance(model, str):
        m = re.fullmatch(r"(?:fold)?(\d+)", model.strip().lower())
        if m and not Path(model).exists():
            files, md5s, n_genes, with_mean = defaults()
            i = int(m.group(1))
            if i >= len(files):
                raise ChromDragoNNError(f"--model fold {i}: model.yaml lists {len(files)} folds (0-{len(files) - 1})")
            return load_models([files[i]], [md5s[i]], n_genes=n_genes, with_mean=with_mean)
        model = [p.strip() for p in model.split(",") if p.strip()]
    return resolve_model(model)


def torch_device(name: str | torch.device) -> torch.device:
    name = str(name)
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ChromDragoNNError(f"device {name!r} asked for, but torch sees no CUDA device")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ChromDragoNNError(f"unknown device {name!r}; use cpu or cuda") from None


def context_expression(contexts: Sequence[str], genes: Sequence[str], expression_file=None,
                       expression_units: str = "tpm", gene_panel=None, shipped=None,
                       weights_label: str | None = None) -> np.ndarray:
    """(C, G) float32 arcsinh(TPM) of the contexts, in the weights' gene order.

    ``weights_label`` names the weights in the error raised when their genes are not the panel's."""
    from chromdragonn.expression import ExpressionSource

    source = ExpressionSource(gene_panel=gene_panel or paths.GENE_PANEL,
                              shipped=shipped if shipped is not None else paths.SHIPPED_EXPRESSION,
                              user_table=expression_file, user_units=expression_units)
    if list(source.genes) != list(genes):
        label = f" ({weights_label})" if weights_label else ""
        raise ChromDragoNNError(
            f"the weights{label} take {len(genes)} genes, which are not the {len(source.genes)} of the gene "
            f"panel {gene_panel or paths.GENE_PANEL} the expression is matched to")
    return source.matrix(list(contexts))


def open_mean_track(model, mean_bigwig=None):
    """The mean-accessibility track when the model takes it, else None."""
    from chromdragonn.genome import MeanAccessibility

    if not model.with_mean:
        return None
    bw = Path(mean_bigwig) if mean_bigwig is not None else paths.MEAN_BIGWIG
    if not bw.is_file():
        raise ChromDragoNNError(f"this model needs the mean-accessibility bigWig (--mean-bigwig); not found: {bw}")
    return MeanAccessibility(bw)


def predict(intervals_file, fasta_file, cell_types, expression_file=None, expression_units="tpm",
            mean_bigwig=None, weights=None, batch_size: int = 32, device: str = "cpu",
            progress: bool = True) -> pd.DataFrame:
    """P(accessible) of each BED interval in each context.

    Returns one row per interval: chrom, start, end, name (as in the BED), the
    1,000 bp window actually scored (window_start, window_end), then one column per
    context, in the order given, holding P(accessible).
    """
    # Imported here so `chromdragonn --help` stays fast.
    from chromdragonn.expression import parse_contexts
    from chromdragonn.genome import Genome, centered_window, one_hot_batch, read_bed

    contexts = parse_contexts(cell_types)
    # Inputs first (cheap, and an error there should not follow model or expression warnings).
    bed = read_bed(intervals_file)
    genome = Genome(fasta_file)
    for chrom in bed["chrom"].unique():
        genome.resolve(chrom)  # fail before any work if a chromosome is missing

    model, genes = resolve_model_option(weights)
    mean_track = open_mean_track(model, mean_bigwig)
    if mean_track is not None:
        for chrom in bed["chrom"].unique():
            mean_track.resolve(chrom)  # likewise for the bigWig, before the progress bar starts
    dev = torch_device(device)
    model.to(dev)
    label = "model.yaml's default model" if weights is None else ", ".join(map(str, _as_list(weights)))
    expr = torch.from_numpy(context_expression(contexts, genes, expression_file, expression_units,
                                               weights_label=label)).to(dev)

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
    write_tsv(df, path, float_format="%.6g")


def add_model_input_options(p) -> None:
    """Options score-variants and ism share: FASTA, contexts, RNA-seq, model, mean track, device."""
    p.add_argument("--fasta", required=True, help="hg19 FASTA, plain or bgzipped")
    p.add_argument("--contexts", required=True, help="comma-separated context names, e.g. E003,E116")
    p.add_argument("--expression", default=None,
                   help="your own RNA-seq table (genes x contexts); its contexts can then be named")
    p.add_argument("--expression-units", default="tpm", choices=["tpm", "rpkm"])
    p.add_argument("--model", default=None,
                   help="'ensemble' (default: the 5 folds of model.yaml), a fold number 0-4, or weights file(s), "
                        "comma-separated")
    p.add_argument("--mean-bigwig", default=None, help="mean-accessibility bigWig (default: the shipped one)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")


def _run(args) -> int:
    weights = args.weights[0] if args.weights and len(args.weights) == 1 else args.weights
    df = predict(args.intervals, args.fasta, args.contexts, expression_file=args.expression,
                 expression_units=args.expression_units, mean_bigwig=args.mean_bigwig,
                 weights=weights, batch_size=args.batch_size, device=args.device,
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
    p.add_argument("--weights", "--model", nargs="+", default=None,
                   help="weights file(s), several averaged; or 'ensemble' (default: the 5 folds of model.yaml) "
                        "or a fold number 0-4, as --model of score-variants and ism")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("-o", "--output", required=True, help="output TSV")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
