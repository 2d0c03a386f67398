"""Saturation mutagenesis: every single-base substitution of a region, in chosen cell contexts.

All mutants share one model input window: the 1,000 bp centred on the region
(kipoiseq ``Interval.resize``), so every mutant differs from the reference window
at exactly one base.  The trunk activations of a mutant are computed by partial
recompute of its receptive field (:mod:`chromdragonn.nn.fast_ism`); ``method="naive"``
recomputes the whole trunk per mutant and is the check (equal within 1e-4, see
tests/test_ism.py).  Only the trunk is partial; the (split) head then runs once per
mutant and context.

N bases (assembly gaps, past a chromosome end) have no substitutions: there is no
reference base to substitute, as score-variants never scores a REF on N.  Their rows
are left out of the TSV and are NaN in the NPZ and blank in the plot; the count is logged.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from chromdragonn.cli import model_option
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.genome import WINDOW, Genome, centered_window, one_hot, parse_region
from chromdragonn.inputs.session import Session, positive_int
from chromdragonn.nn.fast_ism import FastISM
from chromdragonn.nn.model import ALPHABET
from chromdragonn.outputs.atomic import atomic_outputs, check_output_path
from chromdragonn.outputs.plots import plot_mutation_map
from chromdragonn.outputs.tables import FLOAT_FORMAT

log = logging.getLogger(__name__)


def _members(model) -> list:
    return list(model.members) if hasattr(model, "members") else [model]


@dataclass
class ISMResult:
    """P(accessible) of the reference window and of every substitution.

    ref_prob: (C,); mut_prob: (L, 4, C) with the reference base's entry equal to
    ref_prob (so diff = mut_prob - ref_prob is 0 there) and NaN rows at N positions;
    ref_seq: the region's bases.
    """
    ref_prob: np.ndarray
    mut_prob: np.ndarray
    ref_seq: str
    contexts: list

    @property
    def diff(self) -> np.ndarray:
        return self.mut_prob - self.ref_prob[None, None, :]

    @property
    def n_substitutions(self) -> int:
        """Substitutions scored: 3 per A, C, G or T of the region; none at N."""
        return 3 * sum(r != "N" for r in self.ref_seq)


def _mutants(onehot: np.ndarray, offsets: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(window index, base) of every substitution at ``offsets``; an N position (all zeros) has none."""
    pos, base = [], []
    for p in offsets:
        if onehot[p].sum() != 1.0:
            continue
        for b in range(4):
            if onehot[p, b] != 1.0:
                pos.append(p)
                base.append(b)
    return np.asarray(pos, dtype=np.int64), np.asarray(base, dtype=np.int64)


@torch.no_grad()
def saturation_mutagenesis(model, window_onehot: np.ndarray, offsets: Sequence[int], expression: np.ndarray,
                           mean_acc: float | None = None, method: str = "fast", batch_size: int | None = None,
                           device: str | torch.device = "cpu", progress: bool = False,
                           contexts: Sequence[str] | None = None) -> ISMResult:
    """Score every single-base substitution at window indices ``offsets``.

    window_onehot: (1000, 4) reference window; expression: (C, G) arcsinh(TPM);
    mean_acc: the window's mean accessibility (models with the mean input).
    ``method`` "fast" (partial recompute) or "naive" (whole trunk per mutant);
    ``batch_size`` mutants per batch (default 256 fast, 32 naive, whose batches hold
    whole windows).  A fold ensemble averages its members' probabilities.
    """
    if method not in ("fast", "naive"):
        raise ChromDragoNNError(f"method must be 'fast' or 'naive', got {method!r}")
    batch_size = positive_int(batch_size, "batch size") if batch_size is not None else (256 if method == "fast" else 32)
    offsets = [int(o) for o in offsets]
    if not offsets or min(offsets) < 0 or max(offsets) >= WINDOW:
        raise ChromDragoNNError(f"mutagenesis offsets must lie in [0, {WINDOW})")
    dev = torch.device(device)
    ref = torch.as_tensor(np.asarray(window_onehot, dtype=np.float32), device=dev)
    expr = torch.as_tensor(np.asarray(expression, dtype=np.float32), device=dev)
    pos, base = _mutants(window_onehot, offsets)
    n_ctx = expr.shape[0]
    mut = np.zeros((len(pos), n_ctx), dtype=np.float64)
    ref_prob = np.zeros(n_ctx, dtype=np.float64)
    members = _members(model)
    bar = tqdm(total=len(pos) * len(members), unit="mutant", disable=not progress, desc=f"ISM ({method})")
    for member in members:
        member.eval()

        def head(features):
            n = features.shape[0]
            mean = None if mean_acc is None else torch.full((n,), float(mean_acc), device=dev)
            return member.head.forward_grid(features, expr, mean).exp()

        if method == "fast":
            engine = FastISM(member.trunk, ref)
            ref_prob += head(engine.ref_features)[0].double().cpu().numpy()
        else:
            mean = None if mean_acc is None else torch.tensor([float(mean_acc)], device=dev)
            ref_prob += member.predict_grid(ref[None], expr, mean)[0].double().cpu().numpy()
        for lo in range(0, len(pos), batch_size):
            p = torch.as_tensor(pos[lo: lo + batch_size], device=dev)
            b = torch.as_tensor(base[lo: lo + batch_size], device=dev)
            if method == "fast":
                probs = head(engine.features(p, b))
            else:
                seq = ref[None].repeat(len(p), 1, 1)
                idx = torch.arange(len(p), device=dev)
                seq[idx, p, :] = 0.0
                seq[idx, p, b] = 1.0
                mean = None if mean_acc is None else torch.full((len(p),), float(mean_acc), device=dev)
                probs = member.predict_grid(seq, expr, mean)
            mut[lo: lo + len(p)] += probs.double().cpu().numpy()
            bar.update(len(p))
    bar.close()
    ref_prob /= len(members)
    mut /= len(members)

    index = {o: i for i, o in enumerate(offsets)}
    mut_prob = np.repeat(np.repeat(ref_prob[None, None, :], len(offsets), 0), 4, 1)
    ref_seq = "".join(ALPHABET[int(np.argmax(r))] if r.sum() == 1 else "N" for r in window_onehot[offsets])
    mut_prob[[i for i, r in enumerate(ref_seq) if r == "N"]] = np.nan  # no substitutions of N
    for (p, b), row in zip(zip(pos, base), mut):
        mut_prob[index[p], b] = row
    ctx = list(contexts) if contexts is not None else [str(i) for i in range(n_ctx)]
    return ISMResult(ref_prob.astype(np.float32), mut_prob.astype(np.float32), ref_seq, ctx)


MAX_REGION = WINDOW  # every mutant shares the one window centred on the region


def parse_ism_region(region: str) -> tuple[str, int, int]:
    """A region (:func:`chromdragonn.inputs.genome.parse_region`) of at most :data:`MAX_REGION` bp."""
    chrom, start, end = parse_region(region)
    if end - start > MAX_REGION:
        raise ChromDragoNNError(
            f"region {region!r} is {end - start} bp; saturation mutagenesis takes at most {MAX_REGION} bp")
    return chrom, start, end


def ism_table(result: ISMResult, chrom: str, region_start: int) -> pd.DataFrame:
    """Long table: one row per substitution, ``<context>/diff`` and ``<context>/alt`` (= P(mutant))."""
    keep = [(i, b) for i, r in enumerate(result.ref_seq) if r != "N" for b, a in enumerate(ALPHABET) if a != r]
    ii = np.array([k[0] for k in keep], dtype=np.int64)
    bb = np.array([k[1] for k in keep], dtype=np.int64)
    df = pd.DataFrame({"#CHROM": chrom, "POS": region_start + ii + 1,
                       "REF": [result.ref_seq[i] for i in ii], "ALT": [ALPHABET[b] for b in bb]})
    diff = result.diff
    cols = {}
    for j, ctx in enumerate(result.contexts):
        cols[f"{ctx}/diff"] = diff[ii, bb, j]
        cols[f"{ctx}/alt"] = result.mut_prob[ii, bb, j]
    return pd.concat([df, pd.DataFrame(cols)], axis=1)


def _write_ism_file(result: ISMResult, chrom: str, region_start: int, path: Path, fmt: str) -> None:
    if fmt == ".npz":
        with open(path, "wb") as fh:
            np.savez_compressed(
                fh, diff=result.diff.transpose(2, 0, 1), mut_prob=result.mut_prob.transpose(2, 0, 1),
                ref_prob=result.ref_prob, contexts=np.array(result.contexts), alphabet=np.array(list(ALPHABET)),
                chrom=np.array(chrom), positions=np.arange(region_start + 1, region_start + 1 + len(result.ref_seq)),
                ref_seq=np.array(result.ref_seq))
    else:
        ism_table(result, chrom, region_start).to_csv(path, sep="\t", index=False, float_format=FLOAT_FORMAT)


def write_ism(result: ISMResult, chrom: str, region_start: int, output: str | os.PathLike,
              png: str | os.PathLike | None = None) -> None:
    """TSV (default) or .npz, and the mutation map PNG when ``png`` is given: written together,
    never half-written (:mod:`chromdragonn.outputs.atomic`)."""
    output = Path(output)
    fmt = ".npz" if output.suffix == ".npz" else ".tsv"
    paths = [output] + ([Path(png)] if png is not None else [])
    with atomic_outputs(*paths) as temps:
        _write_ism_file(result, chrom, region_start, temps[0], fmt)
        if png is not None:
            plot_mutation_map(result, chrom, region_start, temps[1])


def run_ism(region: str, fasta: str | os.PathLike, contexts, expression=None, expression_units="tpm",
            model=None, mean_bigwig=None, method: str = "fast", batch_size: int | None = None, device: str = "cpu",
            progress: bool = True) -> tuple[ISMResult, str, int]:
    """Region string -> (ISMResult, chrom as given, region start 0-based)."""
    chrom, start, end = parse_ism_region(region)
    genome = Genome(fasta)
    name = genome.resolve(chrom)
    if end > genome.lengths[name]:
        raise ChromDragoNNError(
            f"region {region} runs past the end of {name} in {genome.path} ({genome.lengths[name]:,} bp)")
    window = centered_window(chrom, start, end)
    onehot = one_hot(genome.fetch(chrom, window.start, window.end))
    offsets = list(range(start - window.start, end - window.start))
    if not onehot[offsets].any():
        raise ChromDragoNNError(f"region {region} is all N in {genome.path}: no A, C, G or T to substitute")
    session = Session.open(contexts, model, expression, expression_units, mean_bigwig, device)
    session.check_chromosomes([chrom])
    mean = session.mean_values([window])
    result = saturation_mutagenesis(session.model, onehot, offsets, session.expression,
                                    None if mean is None else float(mean[0]), method=method, batch_size=batch_size,
                                    device=session.device, progress=progress, contexts=session.contexts)
    return result, chrom, start


def _run(args) -> int:
    inputs = [args.fasta, args.expression, args.mean_bigwig]
    output = check_output_path(args.output, "output", suffixes=(".tsv", ".txt", ".npz"), inputs=inputs)
    png = check_output_path(args.png if args.png else output.with_suffix(".png"), "mutation-map PNG",
                            suffixes=(".png",), inputs=inputs)
    if png.resolve() == output.resolve():
        raise ChromDragoNNError(f"--png {png} is the same file as the output")
    if args.batch_size is not None:
        positive_int(args.batch_size, "--batch-size")
    result, chrom, start = run_ism(args.region, args.fasta, args.contexts, args.expression, args.expression_units,
                                   model_option(args), args.mean_bigwig, args.method, args.batch_size, args.device,
                                   progress=not args.quiet)
    write_ism(result, chrom, start, output, png)
    n_gap = result.ref_seq.count("N")
    log.info("wrote %d substitutions x %d contexts to %s and the map to %s%s", result.n_substitutions,
             len(result.contexts), output, png,
             f" ({n_gap} N positions of the region have no substitutions)" if n_gap else "")
    return 0


def add_cli(subparsers, common) -> None:
    p = subparsers.add_parser(
        "ism", parents=[common], help="saturation mutagenesis of a region (every single-base substitution)",
        description="Score every single-base substitution across a region of up to 1 kb in each context "
                    "(P(mutant) - P(reference), on the 1 kb window centred on the region); writes a TSV "
                    "(or .npz) and a PNG mutation map.")
    p.add_argument("--region", required=True, help="CHROM:START-END, 1-based inclusive, at most 1,000 bp")
    p.add_argument("-o", "--output", required=True, help="output .tsv or .npz")
    p.add_argument("--png", default=None, help="mutation-map PNG (default: OUTPUT with .png)")
    p.add_argument("--method", default="fast", choices=["fast", "naive"],
                   help="fast: recompute only each substitution's receptive field (default); naive: whole trunk")
    p.add_argument("--batch-size", type=int, default=None, help="mutants per batch (default 256 fast, 32 naive)")
    p.set_defaults(func=_run)
