"""Which TFs' expression drives accessibility of some bins in a context: ``chromdragonn tf-drivers``.

ChromDragoNN sees a cell context only through its TF expression (arcsinh TPM of the gene panel), so
the contribution of TF g to logit P(accessible) of bin b in context c, relative to a baseline
expression profile e0 (default: the panel's median over the 56 Roadmap epigenomes,
``fill_arcsinh_tpm`` of weights/gene_panel.tsv; or ``--baseline-context``), is

- ``gradient``: (e_cg - e0_g) * d logit_b / d e_g at e_c (gradient x (expression - baseline));
- ``ig`` (default): integrated gradients, (e_cg - e0_g) * the mean of d logit_b / d e_g along the
  straight path from e0 to e_c (``steps`` midpoint-rule points); their sum over the TFs equals
  logit_b(e_c) - logit_b(e0) up to the quadrature error (completeness, tested),

summed over the bins (for ``ig``, they add up to the summed logit's change). A fold ensemble
averages its members' scores (each of its own logit). The sequence trunk runs once per bin and
member; only the head runs per path point.

The top TFs (``top``, by |score|) are then checked by in-silico perturbation: the TF's TPM set to 0
(arcsinh 0 = 0), and multiplied by ``scale`` (arcsinh(k sinh(e))), each re-scored; the change of P
(mean over the bins; the ensemble's P is the mean of its members') is reported.

Bins: ``--region`` is cut into 200 bp bins from its start (the last may run past its end), each read
through the 1,000 bp window centred on it; each ``--bed`` interval is one bin, its centred window
(as ``predict``).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from chromdragonn import paths
from chromdragonn.cli import model_option
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.expression import read_gene_panel
from chromdragonn.inputs.genome import MEAN_BIN, Genome, centered_window, one_hot_batch, parse_region, read_bed
from chromdragonn.inputs.session import Session, context_expression, positive_int
from chromdragonn.outputs.atomic import atomic_outputs, check_output_path
from chromdragonn.outputs.tables import FLOAT_FORMAT

log = logging.getLogger(__name__)

METHODS = ("ig", "gradient")
MEDIAN_BASELINE = "median"


def members(model) -> list:
    return list(model.members) if hasattr(model, "members") else [model]


# ---- bins ------------------------------------------------------------------------------

def driver_bins(region: str | None = None, bed=None) -> pd.DataFrame:
    """chrom, start, end, name of the bins (0-based half-open); see the module docstring."""
    if (region is None) == (bed is None):
        raise ChromDragoNNError("give either a region or a BED file")
    if region is not None:
        chrom, start, end = parse_region(region)
        n = math.ceil((end - start) / MEAN_BIN)
        starts = start + MEAN_BIN * np.arange(n)
        return pd.DataFrame({"chrom": chrom, "start": starts, "end": starts + MEAN_BIN,
                             "name": [f"{chrom}:{s + 1}-{s + MEAN_BIN}" for s in starts]})
    df = read_bed(bed)
    if len(df) == 0:
        raise ChromDragoNNError(f"BED file {bed} has no intervals")
    return df


@torch.no_grad()
def trunk_features(model, seq: torch.Tensor, batch_size: int = 32, progress: bool = False) -> list[torch.Tensor]:
    """(N, 4200) trunk features of the windows, one tensor per member."""
    out = []
    ms = members(model)
    bar = tqdm(total=len(seq) * len(ms), unit="window", disable=not progress, desc="sequence features")
    for m in ms:
        m.eval()
        parts = []
        for lo in range(0, len(seq), batch_size):
            parts.append(m.trunk(seq[lo: lo + batch_size]))
            bar.update(len(parts[-1]))
        out.append(torch.cat(parts))
    bar.close()
    return out


# ---- scores ----------------------------------------------------------------------------

def expression_attributions(model, features: list[torch.Tensor], expression, baseline, mean_acc=None,
                            method: str = "ig", steps: int = 32) -> np.ndarray:
    """Contribution of every TF summed over the bins: (G,) float64, the members' mean.

    features: per member (N, 4200) (:func:`trunk_features`); expression, baseline: (G,) arcsinh TPM;
    mean_acc: (N,) or None. The bins share the path, so one backward pass of the sum of all bins'
    logits at all path points gives, per point, the gradient summed over the bins.
    """
    if method not in METHODS:
        raise ChromDragoNNError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    steps = positive_int(steps, "steps")
    dev = features[0].device
    e = torch.as_tensor(np.asarray(expression, np.float32), device=dev)
    e0 = torch.as_tensor(np.asarray(baseline, np.float32), device=dev)
    delta = e - e0
    alphas = torch.tensor([1.0]) if method == "gradient" else (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    path = e0[None] + alphas[:, None].to(dev) * delta[None]  # (K, G)
    total = torch.zeros(e.shape[0], dtype=torch.float64, device=dev)
    ms = members(model)
    for m, f in zip(ms, features):
        p = path.clone().requires_grad_(True)
        with torch.enable_grad():
            y = m.head.logit_grid(f, p, mean_acc)  # (N, K)
            (g,) = torch.autograd.grad(y.sum(), p)  # (K, G): per point, summed over the bins
        total += (g.double().mean(0) * delta.double())
    return (total / len(ms)).cpu().numpy()


@torch.no_grad()
def summed_logit(model, features: list[torch.Tensor], expression, mean_acc=None) -> float:
    """Sum over the bins of logit P at one expression profile (members' mean): what IG's scores add up to."""
    dev = features[0].device
    e = torch.as_tensor(np.asarray(expression, np.float32), device=dev)[None]
    ys = [m.head.logit_grid(f, e, mean_acc).sum().double() for m, f in zip(members(model), features)]
    return float(torch.stack(ys).mean())


@torch.no_grad()
def mean_probability(model, features: list[torch.Tensor], expression: torch.Tensor, mean_acc=None) -> np.ndarray:
    """(K,) P(accessible) averaged over the bins, for each of K expression rows (members' mean of P)."""
    ps = [m.head.forward_grid(f, expression, mean_acc).exp() for m, f in zip(members(model), features)]
    return torch.stack(ps).mean(0).mean(0).double().cpu().numpy()


@dataclass
class DriverResult:
    table: pd.DataFrame  # one row per (context, TF), ranked
    bins: pd.DataFrame
    baseline: str


def perturbed_profiles(expression: np.ndarray, genes: Sequence[int], scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(K, G) profiles with each TF's TPM set to 0, and multiplied by ``scale``."""
    zero = np.repeat(expression[None], len(genes), 0).astype(np.float32)
    scaled = zero.copy()
    for k, g in enumerate(genes):
        zero[k, g] = 0.0
        scaled[k, g] = np.arcsinh(scale * np.sinh(np.float64(expression[g])))
    return zero, scaled


def baseline_profile(session: Session, baseline_context: str | None, expression=None,
                     expression_units: str = "tpm") -> tuple[np.ndarray, str]:
    if baseline_context in (None, "", MEDIAN_BASELINE):
        panel = read_gene_panel(paths.GENE_PANEL)
        if panel["gene_symbol"].tolist() != list(session.genes):
            raise ChromDragoNNError(
                f"the weights' genes are not the gene panel {paths.GENE_PANEL}; give --baseline-context")
        return panel["fill_arcsinh_tpm"].to_numpy(np.float32), "panel median (fill_arcsinh_tpm)"
    return context_expression([baseline_context], session.genes, expression, expression_units)[0], baseline_context


def tf_drivers(fasta, contexts, region: str | None = None, bed=None, expression=None, expression_units: str = "tpm",
               model=None, mean_bigwig=None, baseline_context: str | None = None, method: str = "ig",
               steps: int = 32, top: int = 10, scale: float = 2.0, batch_size: int = 32, device: str = "cpu",
               progress: bool = True) -> DriverResult:
    """Rank the panel TFs by their contribution to the bins' logit P in each context; perturb the top ones."""
    if method not in METHODS:
        raise ChromDragoNNError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    steps = positive_int(steps, "--steps")
    top = positive_int(top, "--top")
    batch_size = positive_int(batch_size, "--batch-size")
    try:
        scale = float(scale)
    except (TypeError, ValueError):
        scale = float("nan")
    if not (np.isfinite(scale) and scale >= 0):
        raise ChromDragoNNError(f"--scale must be a number >= 0, got {scale!r}")
    bins = driver_bins(region, bed)
    genome = Genome(fasta)
    if region is not None:
        chrom, _, end = parse_region(region)
        name = genome.resolve(chrom)
        if end > genome.lengths[name]:
            raise ChromDragoNNError(
                f"region {region} runs past the end of {name} in {genome.path} ({genome.lengths[name]:,} bp)")
    for r in bins.itertuples():
        genome.check_interval(r.chrom, r.start, r.end, f"bin {r.name}")
    session = Session.open(contexts, model, expression, expression_units, mean_bigwig, device)
    session.check_chromosomes(bins["chrom"].unique())
    base, base_label = baseline_profile(session, baseline_context, expression, expression_units)
    wins = [centered_window(r.chrom, r.start, r.end) for r in bins.itertuples()]
    seq = torch.from_numpy(one_hot_batch([genome.fetch(w.chrom, w.start, w.end) for w in wins])).to(session.device)
    mean = session.mean_values(wins)
    feats = trunk_features(session.model, seq, batch_size, progress)
    panel = read_gene_panel(paths.GENE_PANEL).set_index("gene_symbol")
    tables = []
    for j, ctx in enumerate(tqdm(session.contexts, unit="context", disable=not progress, desc="TF drivers")):
        e = session.expression[j]
        score = expression_attributions(session.model, feats, e, base, mean, method, steps)
        order = np.lexsort((np.arange(len(score)), -np.abs(score)))
        df = pd.DataFrame({"context": ctx, "rank": np.arange(1, len(order) + 1),
                           "tf": [session.genes[g] for g in order],
                           "ensembl_id": [panel["ensembl_id"].get(session.genes[g], "") for g in order],
                           "score": score[order], "expression_arcsinh_tpm": e[order].astype(np.float64),
                           "baseline_arcsinh_tpm": base[order].astype(np.float64),
                           "tpm": np.sinh(e[order].astype(np.float64))})
        chosen = order[:top]
        zero, scaled = perturbed_profiles(e, chosen, scale)
        rows = torch.from_numpy(np.concatenate([e[None], zero, scaled])).to(session.device)
        p = mean_probability(session.model, feats, rows, mean)
        df["p"] = p[0]
        df["dP_tpm0"] = np.nan
        df[f"dP_tpm_x{scale:g}"] = np.nan
        df.loc[: len(chosen) - 1, "dP_tpm0"] = p[1: 1 + len(chosen)] - p[0]
        df.loc[: len(chosen) - 1, f"dP_tpm_x{scale:g}"] = p[1 + len(chosen):] - p[0]
        tables.append(df)
    return DriverResult(pd.concat(tables, ignore_index=True), bins, base_label)


# ---- outputs -----------------------------------------------------------------------------

def plot_drivers(result: DriverResult, png, n: int = 20) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    contexts = list(dict.fromkeys(result.table["context"]))
    fig, axes = plt.subplots(1, len(contexts), figsize=(4.2 * len(contexts), 0.26 * n + 1.4), squeeze=False,
                             layout="constrained")
    for ax, ctx in zip(axes[0], contexts):
        df = result.table[result.table["context"] == ctx].head(n).iloc[::-1]
        colors = ["#C0392B" if s > 0 else "#2E86C1" for s in df["score"]]
        ax.barh(df["tf"], df["score"], color=colors)
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_title(f"{ctx} (P = {df['p'].iloc[0]:.3f}, {len(result.bins)} bins)", fontsize=9)
        ax.set_xlabel(f"contribution to logit P, vs {result.baseline}", fontsize=8)
        ax.tick_params(labelsize=7)
    try:
        fig.savefig(png, dpi=100, format="png")
    finally:
        plt.close(fig)


def write_drivers(result: DriverResult, output, png=None) -> None:
    paths_ = [Path(output)] + ([Path(png)] if png is not None else [])
    with atomic_outputs(*paths_) as temps:
        result.table.to_csv(temps[0], sep="\t", index=False, float_format=FLOAT_FORMAT)
        if png is not None:
            plot_drivers(result, temps[1])


def _run(args) -> int:
    output = check_output_path(args.output, "output TSV")
    png = None if args.no_png else check_output_path(args.png or output.with_suffix(".png"), "PNG")
    if png is not None and png.resolve() == output.resolve():
        raise ChromDragoNNError(f"--png {png} is the same file as the output")
    for value, name in ((args.steps, "--steps"), (args.top, "--top"), (args.batch_size, "--batch-size")):
        positive_int(value, name)
    if not args.scale >= 0:
        raise ChromDragoNNError(f"--scale must be a number >= 0, got {args.scale}")
    result = tf_drivers(args.fasta, args.contexts, region=args.region, bed=args.bed, expression=args.expression,
                        expression_units=args.expression_units, model=model_option(args),
                        mean_bigwig=args.mean_bigwig, baseline_context=args.baseline_context, method=args.method,
                        steps=args.steps, top=args.top, scale=args.scale, batch_size=args.batch_size,
                        device=args.device, progress=not args.quiet)
    write_drivers(result, output, png)
    first = result.table.groupby("context", sort=False).head(3)
    for ctx, df in first.groupby("context", sort=False):
        log.info("%s: top TFs %s", ctx, ", ".join(f"{t} ({s:+.3g})" for t, s in zip(df["tf"], df["score"])))
    log.info("wrote %d TFs x %d contexts (%d bins) to %s%s", result.table["tf"].nunique(),
             result.table["context"].nunique(), len(result.bins), output, f" and {png}" if png else "")
    return 0


def add_cli(subparsers, common) -> None:
    p = subparsers.add_parser(
        "tf-drivers", parents=[common], help="rank TFs by how their expression drives accessibility of bins",
        description="Rank the gene panel's TFs by their contribution, through the expression input, to logit "
                    "P(accessible) of the bins of a region or BED in each context (integrated gradients or "
                    "gradient x (expression - baseline), summed over bins), then perturb the top ones "
                    "(TPM set to 0, TPM times --scale) and report the change in P. Writes a TSV and a bar chart.")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--region", help="CHROM:START-END, 1-based inclusive; cut into 200 bp bins")
    where.add_argument("--bed", help="BED: each interval is one bin (its centred 1 kb window)")
    p.add_argument("-o", "--output", required=True, help="output TSV")
    p.add_argument("--png", default=None, help="bar chart (default: OUTPUT with .png)")
    p.add_argument("--no-png", action="store_true", help="no bar chart")
    p.add_argument("--method", default="ig", choices=list(METHODS),
                   help="ig: integrated gradients (default); gradient: gradient x (expression - baseline)")
    p.add_argument("--baseline-context", default=None,
                   help="baseline expression profile: a context name, or 'median' (default: the panel's median "
                        "over the 56 Roadmap epigenomes)")
    p.add_argument("--steps", type=int, default=32, help="integrated-gradient path points (default 32)")
    p.add_argument("--top", type=int, default=10, help="TFs confirmed by perturbation (default 10)")
    p.add_argument("--scale", type=float, default=2.0, help="perturbation: TPM multiplied by this (default 2)")
    p.add_argument("--batch-size", type=int, default=32, help="windows per trunk pass (default 32)")
    p.set_defaults(func=_run)
