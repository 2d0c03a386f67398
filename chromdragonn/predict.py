"""Predict accessibility of many intervals in many cell contexts.

The trunk runs once per interval; the contexts only run the (split) head, so
C contexts cost little more than one (see ``ChromDragoNN.predict_grid``).
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from chromdragonn.cli import model_option
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.genome import Genome, centered_window, one_hot_batch, read_bed
from chromdragonn.inputs.session import Session, positive_int
from chromdragonn.outputs.atomic import check_output_path
from chromdragonn.outputs.tables import write_table

log = logging.getLogger(__name__)


def predict(intervals, fasta, contexts, expression=None, expression_units: str = "tpm", mean_bigwig=None,
            model=None, batch_size: int = 32, device: str = "cpu", progress: bool = True) -> pd.DataFrame:
    """P(accessible) of each BED interval in each context.

    Returns one row per interval: chrom, start, end, name (as in the BED), the
    1,000 bp window actually scored (window_start, window_end), then one column per
    context, in the order given, holding P(accessible).  ``model``: see
    :mod:`chromdragonn.inputs.session`.  An empty BED, or an interval starting past
    the end of its chromosome in the FASTA, is a one-line error (as through Kipoi).
    """
    batch_size = positive_int(batch_size, "batch size")
    # Inputs first (cheap, and an error there should not follow model or expression warnings).
    bed = read_bed(intervals)
    if len(bed) == 0:
        raise ChromDragoNNError(f"BED file {intervals} has no intervals")
    genome = Genome(fasta)
    for row in bed.itertuples():
        genome.check_interval(row.chrom, row.start, row.end, f"{intervals}: interval {row.name}")
    session = Session.open(contexts, model, expression, expression_units, mean_bigwig, device)
    session.check_chromosomes(bed["chrom"].unique())
    expr = session.expression_tensor()

    windows = [centered_window(r.chrom, r.start, r.end) for r in bed.itertuples()]
    probs = np.empty((len(bed), len(session.contexts)), dtype=np.float32)
    bar = tqdm(total=len(bed), unit="interval", disable=not progress, desc="predicting")
    with torch.no_grad():
        for lo in range(0, len(bed), batch_size):
            batch = windows[lo: lo + batch_size]
            seq = torch.from_numpy(one_hot_batch([genome.fetch(w.chrom, w.start, w.end) for w in batch]))
            out = session.model.predict_grid(seq.to(session.device), expr, session.mean_values(batch))
            probs[lo: lo + len(batch)] = out.float().cpu().numpy()
            bar.update(len(batch))
    bar.close()

    out = bed[["chrom", "start", "end", "name"]].copy()
    out["window_start"] = [w.start for w in windows]
    out["window_end"] = [w.end for w in windows]
    return pd.concat([out, pd.DataFrame(probs, columns=session.contexts, index=out.index)], axis=1)


def _run(args) -> int:
    check_output_path(args.output, "output TSV", suffixes=(".tsv", ".txt"),
                      inputs=[args.intervals, args.fasta, args.expression, args.mean_bigwig])
    df = predict(args.intervals, args.fasta, args.contexts, expression=args.expression,
                 expression_units=args.expression_units, mean_bigwig=args.mean_bigwig,
                 model=model_option(args), batch_size=args.batch_size, device=args.device, progress=not args.quiet)
    write_table(df, args.output)
    log.info("wrote %d intervals x %d contexts to %s", len(df), len(df.columns) - 6, args.output)
    return 0


def add_cli(subparsers, common) -> None:
    p = subparsers.add_parser(
        "predict", parents=[common], help="P(accessible) of BED intervals in chosen cell contexts",
        description="Predict chromatin accessibility of each BED interval (resized to 1 kb around its "
                    "centre) in each named cell context; writes a TSV with one column per context.")
    p.add_argument("--intervals", required=True, help="BED file (any width; 4th column kept as name)")
    p.add_argument("-o", "--output", required=True, help="output TSV")
    p.add_argument("--batch-size", type=int, default=32, help="intervals per forward pass (default 32)")
    p.set_defaults(func=_run)
