"""Base-level attributions per cell context: gradient x input of logit P(accessible).

For every 1,000 bp model window over a region (or the intervals of a BED), the gradient of
logit P(accessible) in each context with respect to the one-hot sequence is taken, and the
attribution of a base is that gradient at the base present (gradient x input, the paper's Fig. 2A
method). A fold ensemble averages its members' attributions (each of its own logit).

Windows: a region (or BED interval; overlapping or touching intervals are merged first) of L bp is
covered by ceil(L / 1000) adjacent 1,000 bp windows, together centred on it (kipoiseq
``Interval.resize``), so each base is read in exactly one window, and a region of up to 1 kb has
the one window ``predict`` and ``ism`` use. Bases past a chromosome end are N. N bases have an
all-zero one-hot, so their attribution is 0 (their gradient is still reported).

Speed: the sequence trunk runs forward once per window whatever the number of contexts; the
per-context backward passes are one batched vector-Jacobian product (``is_grads_batched``: the
backward graph of that one forward is run under vmap for the C unit vectors of the C logits).
``method="loop"`` is the naive path, one forward and backward per context, kept as the check and
the benchmark's reference (benchmarks/bench_attributions.py).
"""
from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from chromdragonn.cli import model_option
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.expression import parse_contexts
from chromdragonn.inputs.genome import WINDOW, Genome, centered_window, one_hot_batch, parse_region, read_bed
from chromdragonn.inputs.session import Session, positive_int
from chromdragonn.nn.model import ALPHABET
from chromdragonn.outputs.atomic import atomic_outputs, check_output_path

log = logging.getLogger(__name__)

METHODS = ("batched", "loop")
LOGO_WIDTH = 30  # bp of the strongest stretch drawn as a sequence logo


def members(model) -> list:
    """The fold models of an ensemble, or the model itself."""
    return list(model.members) if hasattr(model, "members") else [model]


# ---- gradients of one model ---------------------------------------------------------------

def _as_tensors(seq, expression, mean_acc, device, dtype=torch.float32):
    """Inputs as tensors of the model's device and dtype (float32; float64 for a model made double)."""
    def conv(a):
        return torch.as_tensor(a if torch.is_tensor(a) else np.asarray(a), device=device).to(dtype)

    return conv(seq), conv(expression), None if mean_acc is None else conv(mean_acc).reshape(-1)


def sequence_gradients(member, seq, expression, mean_acc=None, method: str = "batched") -> torch.Tensor:
    """d logit P(accessible) / d one-hot of one (non-ensemble) model: (B, C, 1000, 4), float32.

    seq (B, 1000, 4); expression (C, G) arcsinh(TPM); mean_acc (B,) or None.
    ``batched``: one trunk forward for the B windows and one backward batched over the C contexts;
    ``loop``: one forward and one backward per context (the naive cost).
    """
    if method not in METHODS:
        raise ChromDragoNNError(f"attribution method must be one of {', '.join(METHODS)}, got {method!r}")
    member.eval()
    param = next(member.parameters())
    seq, expr, mean = _as_tensors(seq, expression, mean_acc, param.device, param.dtype)
    n, c = seq.shape[0], expr.shape[0]
    if method == "batched":
        x = seq.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            y = member.head.logit_grid(member.trunk(x), expr, mean)  # (B, C)
            # One unit vector per context: row k selects context k's logit of every window.
            eye = torch.eye(c, device=y.device, dtype=y.dtype)[:, None, :].expand(c, n, c)
            (g,) = torch.autograd.grad(y, x, grad_outputs=eye, is_grads_batched=True)
        return g.transpose(0, 1).detach()  # (C, B, L, 4) -> (B, C, L, 4)
    out = torch.empty((n, c) + tuple(seq.shape[1:]), dtype=seq.dtype, device=seq.device)
    for k in range(c):
        x = seq.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            y = member.head.logit_grid(member.trunk(x), expr[k: k + 1], mean)  # (B, 1)
            (g,) = torch.autograd.grad(y.sum(), x)
        out[:, k] = g
    return out


def window_gradients(model, seq, expression, mean_acc=None, method: str = "batched") -> torch.Tensor:
    """:func:`sequence_gradients` of a model or fold ensemble (the members' mean): (B, C, 1000, 4)."""
    grads = [sequence_gradients(m, seq, expression, mean_acc, method) for m in members(model)]
    return torch.stack(grads).mean(0) if len(grads) > 1 else grads[0]


@torch.no_grad()
def window_probabilities(model, seq, expression, mean_acc=None) -> torch.Tensor:
    """P(accessible) of the windows in the contexts, (B, C) (the ensemble's mean of probabilities)."""
    param = next(model.parameters())
    seq, expr, mean = _as_tensors(seq, expression, mean_acc, param.device, param.dtype)
    return model.predict_grid(seq, expr, mean)


# ---- regions and windows ------------------------------------------------------------------

@dataclass(frozen=True)
class Segment:
    """A stretch of genome attributed: 0-based half-open [start, end), with its covering windows."""

    chrom: str
    start: int
    end: int
    name: str

    @property
    def windows(self) -> list[tuple[int, int]]:
        """Adjacent 1,000 bp windows (0-based starts/ends), together centred on the segment."""
        n = max(1, math.ceil((self.end - self.start) / WINDOW))
        span = centered_window(self.chrom, self.start, self.end, width=n * WINDOW)
        return [(span.start + i * WINDOW, span.start + (i + 1) * WINDOW) for i in range(n)]


def region_segments(region: str | None = None, bed: str | os.PathLike | None = None) -> list[Segment]:
    """``--region`` (1-based inclusive) or ``--bed`` -> segments; a BED's overlapping or touching
    intervals are merged (each base is attributed once), in the BED's chromosome order."""
    if (region is None) == (bed is None):
        raise ChromDragoNNError("give either a region or a BED file")
    if region is not None:
        chrom, start, end = parse_region(region)
        return [Segment(chrom, start, end, f"{chrom}:{start + 1}-{end}")]
    df = read_bed(bed)
    if len(df) == 0:
        raise ChromDragoNNError(f"BED file {bed} has no intervals")
    order = list(dict.fromkeys(df["chrom"]))
    out: list[Segment] = []
    for chrom in order:
        rows = df[df["chrom"] == chrom].sort_values(["start", "end"], kind="mergesort")
        cur = None
        for r in rows.itertuples():
            if cur is not None and r.start <= cur[1]:
                cur = (cur[0], max(cur[1], r.end), cur[2] + "," + r.name)
            else:
                if cur is not None:
                    out.append(Segment(chrom, *cur))
                cur = (r.start, r.end, r.name)
        out.append(Segment(chrom, *cur))
    return out


@dataclass
class AttributionResult:
    """Per-base attributions of the segments, in order.

    chrom (B,) and position (B,, 0-based) of every base; seq: the bases; attribution (B, C) =
    gradient x input (0 at N); gradient (B, C, 4) = d logit / d one-hot (A, C, G, T), the
    hypothetical contributions; window_prob (W, C): P(accessible) of each window, with
    window_chrom/window_start; segments.
    """

    contexts: list
    segments: list
    chrom: np.ndarray
    position: np.ndarray
    seq: str
    attribution: np.ndarray
    gradient: np.ndarray
    window_chrom: list = field(default_factory=list)
    window_start: np.ndarray | None = None
    window_prob: np.ndarray | None = None

    def strongest(self, width: int = LOGO_WIDTH) -> tuple[int, int]:
        """[i, j) of the ``width`` consecutive bases (within one segment) with the largest summed
        |attribution| over contexts; the whole of a shorter segment."""
        score = np.abs(self.attribution).sum(axis=1)
        best, best_val, lo = (0, min(width, len(score))), -1.0, 0
        for seg in self.segments:
            n = seg.end - seg.start
            w = min(width, n)
            csum = np.concatenate([[0.0], np.cumsum(score[lo: lo + n])])
            sums = csum[w:] - csum[:-w]
            k = int(np.argmax(sums))
            if sums[k] > best_val:
                best, best_val = (lo + k, lo + k + w), float(sums[k])
            lo += n
        return best


def attribute(fasta, contexts, region: str | None = None, bed=None, expression=None, expression_units: str = "tpm",
              model=None, mean_bigwig=None, method: str = "batched", batch_size: int = 2, device: str = "cpu",
              progress: bool = True) -> AttributionResult:
    """Gradient x input of logit P(accessible), per context, of every base of ``region`` or ``bed``.

    ``model``: see :mod:`chromdragonn.inputs.session` (a fold ensemble averages its members'
    attributions). Returns an :class:`AttributionResult`.
    """
    batch_size = positive_int(batch_size, "batch size")
    if method not in METHODS:
        raise ChromDragoNNError(f"attribution method must be one of {', '.join(METHODS)}, got {method!r}")
    segments = region_segments(region, bed)
    genome = Genome(fasta)
    for s in segments:
        name = genome.resolve(s.chrom)
        if s.end > genome.lengths[name]:
            raise ChromDragoNNError(
                f"{s.name} runs past the end of {name} in {genome.path} ({genome.lengths[name]:,} bp)")
    session = Session.open(contexts, model, expression, expression_units, mean_bigwig, device)
    session.check_chromosomes(sorted({s.chrom for s in segments}))
    expr = session.expression_tensor()
    n_ctx = len(session.contexts)

    windows = [(s.chrom, ws, we, si) for si, s in enumerate(segments) for ws, we in s.windows]
    n_bases = sum(s.end - s.start for s in segments)
    attribution = np.zeros((n_bases, n_ctx), np.float32)
    gradient = np.zeros((n_bases, n_ctx, 4), np.float32)
    seq_chars: list[str] = []
    win_prob = np.zeros((len(windows), n_ctx), np.float32)
    offsets = np.cumsum([0] + [s.end - s.start for s in segments])
    from kipoiseq import Interval

    bar = tqdm(total=len(windows), unit="window", disable=not progress, desc=f"attributions ({n_ctx} contexts)")
    for lo in range(0, len(windows), batch_size):
        batch = windows[lo: lo + batch_size]
        seqs = [genome.fetch(c, ws, we) for c, ws, we, _ in batch]
        onehot = torch.from_numpy(one_hot_batch(seqs)).to(session.device)
        mean = session.mean_values([Interval(c, ws, we) for c, ws, we, _ in batch])
        grads = window_gradients(session.model, onehot, expr, mean, method)  # (B, C, L, 4)
        win_prob[lo: lo + len(batch)] = window_probabilities(session.model, onehot, expr, mean).cpu().numpy()
        gi = grads.cpu().numpy()
        xi = onehot.cpu().numpy()
        for k, (c, ws, we, si) in enumerate(batch):
            seg = segments[si]
            a, b = max(ws, seg.start), min(we, seg.end)
            if b <= a:
                continue
            rows = slice(offsets[si] + a - seg.start, offsets[si] + b - seg.start)
            g = gi[k, :, a - ws: b - ws, :].transpose(1, 0, 2)  # (n, C, 4)
            gradient[rows] = g
            attribution[rows] = (g * xi[k, a - ws: b - ws, None, :]).sum(axis=2)
        bar.update(len(batch))
    bar.close()
    for s in segments:
        seq_chars.append(genome.fetch(s.chrom, s.start, s.end))
    chrom = np.concatenate([np.full(s.end - s.start, s.chrom, dtype=object) for s in segments]).astype(str)
    position = np.concatenate([np.arange(s.start, s.end, dtype=np.int64) for s in segments])
    return AttributionResult(session.contexts, segments, chrom, position, "".join(seq_chars), attribution, gradient,
                             [w[0] for w in windows], np.array([w[1] for w in windows], dtype=np.int64), win_prob)


# ---- outputs ------------------------------------------------------------------------------

def _safe(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]", "_", name)


def bigwig_paths(output: str | os.PathLike, contexts: Sequence[str]) -> list[Path]:
    """One bigWig per context beside the NPZ: ``<stem>.<context>.bw``."""
    output = Path(output)
    stem = output.name[: -len(output.suffix)] if output.suffix else output.name
    return [output.with_name(f"{stem}.{_safe(c)}.bw") for c in contexts]


def write_npz(result: AttributionResult, path) -> None:
    with open(path, "wb") as fh:
        np.savez_compressed(
            fh, attribution=result.attribution, gradient=result.gradient, contexts=np.array(result.contexts),
            chrom=result.chrom, position=result.position + 1, seq=np.array(result.seq),
            alphabet=np.array(list(ALPHABET)), window_chrom=np.array(result.window_chrom),
            window_start=result.window_start + 1, window_prob=result.window_prob,
            segment=np.array([f"{s.chrom}:{s.start + 1}-{s.end}" for s in result.segments]))


def write_bigwig(result: AttributionResult, j: int, path, chrom_lengths: dict[str, int]) -> None:
    """Context ``j``'s attribution, one value per base, as a bigWig (chromosomes named as given)."""
    import pyBigWig

    chroms = list(dict.fromkeys(s.chrom for s in result.segments))
    bw = pyBigWig.open(str(path), "w")
    try:
        bw.addHeader([(c, int(chrom_lengths[c])) for c in chroms])
        lo = 0
        by_chrom = {c: [] for c in chroms}
        for s in result.segments:
            by_chrom[s.chrom].append((s, lo))
            lo += s.end - s.start
        for c in chroms:
            for s, off in sorted(by_chrom[c], key=lambda t: t[0].start):
                vals = result.attribution[off: off + s.end - s.start, j].astype(np.float64)
                bw.addEntries(c, int(s.start), values=vals.tolist(), span=1, step=1)
    finally:
        bw.close()


def plot_attributions(result: AttributionResult, png) -> None:
    """One track per context over the attributed bases, and beside each a logo of the strongest 30 bp."""
    import matplotlib

    matplotlib.use("Agg")
    import logomaker
    import matplotlib.pyplot as plt
    import pandas as pd

    n_ctx = len(result.contexts)
    i, j = result.strongest()
    fig = plt.figure(figsize=(15, 1.4 * n_ctx + 0.9), layout="constrained")
    grid = fig.add_gridspec(n_ctx, 2, width_ratios=[3, 1])
    x = np.arange(len(result.position))
    vmax = float(np.abs(result.attribution).max()) or 1e-6
    bounds = np.cumsum([s.end - s.start for s in result.segments])[:-1]
    for k, ctx in enumerate(result.contexts):
        ax = fig.add_subplot(grid[k, 0])
        a = result.attribution[:, k]
        ax.fill_between(x, np.clip(a, 0, None), 0, color="#C0392B", linewidth=0, step="mid")
        ax.fill_between(x, np.clip(a, None, 0), 0, color="#2E86C1", linewidth=0, step="mid")
        ax.axvspan(i - 0.5, j - 0.5, color="#F4D03F", alpha=0.35, linewidth=0)
        for b in bounds:
            ax.axvline(b - 0.5, color="grey", linewidth=0.6, linestyle=":")
        ax.set_xlim(-0.5, len(x) - 0.5)
        ax.set_ylim(-vmax * 1.05, vmax * 1.05)
        ax.set_ylabel(ctx, fontsize=8)
        ax.tick_params(labelsize=7)
        if k == n_ctx - 1:
            ticks = np.linspace(0, len(x) - 1, min(6, len(x))).astype(int)
            ax.set_xticks(ticks, [f"{result.chrom[t]}:{result.position[t] + 1:,}" for t in ticks])
        else:
            ax.set_xticks([])
        if k == 0:
            ax.set_title("gradient x input of logit P(accessible), per base", fontsize=9, loc="left")
        lax = fig.add_subplot(grid[k, 1])
        seg = result.seq[i:j]
        onehot = np.array([[1.0 if ch == b else 0.0 for b in ALPHABET] for ch in seg])
        df = pd.DataFrame(onehot * result.attribution[i:j, k, None], columns=list(ALPHABET))
        logomaker.Logo(df, ax=lax, color_scheme="classic", show_spines=False)
        lim = float(np.abs(result.attribution[i:j]).max()) or 1e-6
        lax.set_ylim(-lim * 1.05, lim * 1.05)
        lax.set_xticks([])
        lax.tick_params(labelsize=6)
        if k == 0:
            lax.set_title(f"strongest {j - i} bp: {result.chrom[i]}:{result.position[i] + 1:,}-"
                          f"{result.position[j - 1] + 1:,}", fontsize=8, loc="left")
    try:
        fig.savefig(png, dpi=90, format="png")
    finally:
        plt.close(fig)


def write_attributions(result: AttributionResult, output, fasta, png=None, bigwigs: bool = True) -> list[Path]:
    """NPZ, one bigWig per context and the PNG, all written together (or none)."""
    output = Path(output)
    genome = Genome(fasta)
    lengths = {s.chrom: genome.lengths[genome.resolve(s.chrom)] for s in result.segments}
    bws = bigwig_paths(output, result.contexts) if bigwigs else []
    paths = [output] + bws + ([Path(png)] if png is not None else [])
    with atomic_outputs(*paths) as temps:
        write_npz(result, temps[0])
        for j, tmp in enumerate(temps[1: 1 + len(bws)]):
            write_bigwig(result, j, tmp, lengths)
        if png is not None:
            plot_attributions(result, temps[-1])
    return paths


def _run(args) -> int:
    output = check_output_path(args.output, "output NPZ")
    if output.suffix != ".npz":
        raise ChromDragoNNError(f"output {output} must end in .npz (the bigWigs and the PNG are named after it)")
    png = None if args.no_png else check_output_path(args.png or output.with_suffix(".png"), "PNG")
    if png is not None and png.resolve() == output.resolve():
        raise ChromDragoNNError(f"--png {png} is the same file as the output")
    positive_int(args.batch_size, "--batch-size")
    if (args.region is None) == (args.bed is None):
        raise ChromDragoNNError("give either --region or --bed")
    for bw in bigwig_paths(output, parse_contexts(args.contexts)):
        check_output_path(bw, "bigWig")
    result = attribute(args.fasta, args.contexts, region=args.region, bed=args.bed, expression=args.expression,
                       expression_units=args.expression_units, model=model_option(args),
                       mean_bigwig=args.mean_bigwig, method=args.method, batch_size=args.batch_size,
                       device=args.device, progress=not args.quiet)
    paths = write_attributions(result, output, args.fasta, png)
    log.info("wrote attributions of %d bases x %d contexts (%d windows) to %s, %d bigWigs%s",
             len(result.position), len(result.contexts), len(result.window_chrom), output, len(result.contexts),
             f" and {png}" if png is not None else "")
    log.debug("files: %s", ", ".join(map(str, paths)))
    return 0


def add_cli(subparsers, common) -> None:
    p = subparsers.add_parser(
        "attribute", parents=[common], help="per-base attributions (gradient x input) per context",
        description="Gradient x input of logit P(accessible) with respect to the sequence, per context, for "
                    "every 1 kb window over a region or BED; writes an NPZ, one bigWig per context "
                    "(<output stem>.<context>.bw) and a PNG (tracks + a logo of the strongest 30 bp).")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--region", help="CHROM:START-END, 1-based inclusive")
    where.add_argument("--bed", help="BED of intervals (overlapping ones are merged)")
    p.add_argument("-o", "--output", required=True, help="output .npz")
    p.add_argument("--png", default=None, help="plot (default: OUTPUT with .png)")
    p.add_argument("--no-png", action="store_true", help="no plot")
    p.add_argument("--method", default="batched", choices=list(METHODS),
                   help="batched: one trunk forward per window, contexts' backward passes batched (default); "
                        "loop: one forward and backward per context")
    p.add_argument("--batch-size", type=int, default=2, help="windows per pass (default 2)")
    p.set_defaults(func=_run)
