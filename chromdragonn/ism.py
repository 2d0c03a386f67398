"""Saturation mutagenesis: every single-base substitution of a region, in chosen cell contexts.

All mutants share one model input window: the 1,000 bp centred on the region
(kipoiseq ``Interval.resize``), so every mutant differs from the reference window
at exactly one base.  A substitution can only change the trunk activations inside
its receptive field, so the reference activations of every layer are computed
once and each mutant recomputes, layer by layer, only the slice that depends on
the changed base (the fastISM idea, Nair et al. 2022).  The slice is tracked
through every convolution (it grows by k - 1), every max-pool (it shrinks by the
pool size), the k1-pad-3 ``c2to3`` and k7-pad-4 ``conv3`` layers (which shift
coordinates) and the residual additions; outside it, the reference activation is
used.  Batch-norm in eval mode is a per-channel affine map, so many mutants run
as one batch.  ``method="naive"`` recomputes the whole trunk per mutant and is
the check (equal within 1e-4, see tests/test_ism.py).

Only the trunk is partial; the (split) head then runs once per mutant and context.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from chromdragonn.errors import ChromDragoNNError
from chromdragonn.model import ALPHABET, SEQ_LEN, ResNetTrunk

log = logging.getLogger(__name__)

MAX_REGION = 1000


# ---------------------------------------------------------------------------
# The trunk as a list of steps over named tensors
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Conv:
    src: int
    dst: int
    conv: nn.Conv1d
    bn: nn.BatchNorm1d
    relu: bool


@dataclass(frozen=True)
class _Pool:
    src: int
    dst: int
    k: int


@dataclass(frozen=True)
class _AddRelu:
    """dst = relu(src + skip): the end of a post-activation residual block."""
    src: int
    skip: int
    dst: int


def _trunk_steps(trunk: ResNetTrunk) -> list:
    """ResNetTrunk.forward written out as steps; tensor 0 is the (N, 4, 1000) input."""
    steps: list = []
    last = 0

    def conv(c, bn, relu=True):
        nonlocal last
        if c.stride != (1,) or c.dilation != (1,) or c.groups != 1:
            raise ChromDragoNNError("fast saturation mutagenesis expects stride-1, undilated convolutions")
        steps.append(_Conv(last, last + 1, c, bn, relu))
        last += 1

    def pool(p):
        nonlocal last
        k = p.kernel_size if isinstance(p.kernel_size, int) else p.kernel_size[0]
        stride = p.stride if isinstance(p.stride, int) else p.stride[0]
        pad = p.padding if isinstance(p.padding, int) else p.padding[0]
        if stride != k or pad != 0 or p.ceil_mode:
            raise ChromDragoNNError("fast saturation mutagenesis expects non-overlapping, unpadded max-pools")
        steps.append(_Pool(last, last + 1, k))
        last += 1

    def block(b):
        nonlocal last
        skip = last
        for i in range(1, b.n_convs + 1):
            conv(getattr(b, f"conv{i}"), getattr(b, f"bn{i}"), relu=i < b.n_convs)
        steps.append(_AddRelu(last, skip, last + 1))
        last += 1

    conv(trunk.conv1, trunk.bn1)
    conv(trunk.conv2, trunk.bn2)
    for b in trunk.layer1:
        block(b)
    conv(trunk.c1to2, trunk.b1to2)
    for b in trunk.layer2:
        block(b)
    pool(trunk.maxpool1)
    conv(trunk.c2to3, trunk.b2to3)
    for b in trunk.layer3:
        block(b)
    pool(trunk.maxpool2)
    for b in trunk.layer4:
        block(b)
    conv(trunk.conv3, trunk.bn3)
    pool(trunk.maxpool3)
    return steps


def _full_step(step, tensors: dict) -> torch.Tensor:
    """One step on whole tensors (the reference pass)."""
    if isinstance(step, _Conv):
        y = step.bn(step.conv(tensors[step.src]))
        return F.relu(y) if step.relu else y
    if isinstance(step, _Pool):
        return F.max_pool1d(tensors[step.src], step.k)
    return F.relu(tensors[step.src] + tensors[step.skip])


@dataclass
class _Window:
    """Per-mutant values of one tensor on positions [start, start + width); the
    reference holds everywhere else.  start: (B,) long; data: (B, C, width).

    Windows are not clipped to the tensor: positions outside [0, L) hold 0 (which
    is what a convolution's zero padding reads), so every mutant of a batch has
    the same width and the same offsets between windows, whatever its position.
    """
    start: torch.Tensor
    width: int
    data: torch.Tensor


def _gather_ref(ref: torch.Tensor, start: torch.Tensor, width: int) -> torch.Tensor:
    """Reference values of positions [start, start + width) per mutant, (B, C, width); 0 outside [0, L)."""
    c, length = ref.shape
    pos = start[:, None] + torch.arange(width, device=ref.device)[None, :]
    out = ref[:, pos.clamp(0, length - 1)].permute(1, 0, 2)
    inside = ((pos >= 0) & (pos < length)).to(out.dtype)
    return out * inside[:, None, :]


def _splice(ref: torch.Tensor, start: torch.Tensor, width: int, win: _Window) -> torch.Tensor:
    """Mutant values of positions [start, start + width), (B, C, width), for any window offsets."""
    c = ref.shape[0]
    out = _gather_ref(ref, start, width)
    rel = start[:, None] + torch.arange(width, device=ref.device)[None, :] - win.start[:, None]
    in_win = (rel >= 0) & (rel < win.width)
    vals = win.data.gather(2, rel.clamp(0, win.width - 1)[:, None, :].expand(-1, c, -1))
    return torch.where(in_win[:, None, :], vals, out)


def _widen(ref: torch.Tensor, win: _Window, left: int, right: int) -> torch.Tensor:
    """The window's values with ``left`` / ``right`` reference positions added on each side."""
    parts = [win.data]
    if left:
        parts.insert(0, _gather_ref(ref, win.start - left, left))
    if right:
        parts.append(_gather_ref(ref, win.start + win.width, right))
    return torch.cat(parts, dim=2) if len(parts) > 1 else win.data


def _zero_outside(win: _Window, length: int) -> _Window:
    pos = win.start[:, None] + torch.arange(win.width, device=win.data.device)[None, :]
    inside = ((pos >= 0) & (pos < length)).to(win.data.dtype)
    return _Window(win.start, win.width, win.data * inside[:, None, :])


def _partial_step(step, windows: dict, ref: dict) -> _Window:
    """One step on the changed slices only."""
    length = ref[step.dst].shape[-1]
    if isinstance(step, _Conv):
        win = windows[step.src]
        k, pad = step.conv.kernel_size[0], step.conv.padding[0]
        # Output j reads inputs j - pad .. j - pad + k - 1, so the changed outputs are
        # [start + pad - (k - 1), start + width - 1 + pad], computed from the window
        # widened by k - 1 reference positions on each side.
        x = _widen(ref[step.src], win, k - 1, k - 1)
        y = step.bn(F.conv1d(x, step.conv.weight, step.conv.bias))
        y = F.relu(y) if step.relu else y
        return _zero_outside(_Window(win.start + pad - (k - 1), win.width + k - 1, y), length)
    if isinstance(step, _Pool):
        win = windows[step.src]
        k = step.k
        # Changed outputs: start // k .. (start + width - 1) // k, at most (width - 1) // k + 2 of them;
        # the window's offset inside the pooled input varies with start % k, hence the general splice.
        start = torch.div(win.start, k, rounding_mode="floor")
        width = (win.width - 1) // k + 2
        x = _splice(ref[step.src], start * k, width * k, win)
        return _zero_outside(_Window(start, width, F.max_pool1d(x, k)), length)
    # Residual: the block's last conv window contains the block input's window at a fixed offset.
    main, skip = windows[step.src], windows[step.skip]
    left = int(skip.start[0] - main.start[0])
    right = main.width - skip.width - left
    return _Window(main.start, main.width, F.relu(main.data + _widen(ref[step.skip], skip, left, right)))


class FastISM:
    """Reference trunk activations of one window, and partial recompute for single-base mutants."""

    def __init__(self, trunk: ResNetTrunk, ref_onehot: torch.Tensor):
        if not isinstance(trunk, ResNetTrunk):
            raise ChromDragoNNError("fast saturation mutagenesis needs the ResNet trunk; use method='naive'")
        if trunk.training:
            raise ChromDragoNNError("fast saturation mutagenesis needs an eval-mode model (batch-norm as affine)")
        self.steps = _trunk_steps(trunk)
        x = ref_onehot.reshape(1, SEQ_LEN, 4).transpose(1, 2)
        tensors = {0: x}
        for step in self.steps:
            tensors[step.dst] = _full_step(step, tensors)
        self.ref = {k: v[0] for k, v in tensors.items()}  # (C, L) each
        self.last = self.steps[-1].dst
        self.ref_features = tensors[self.last].flatten(1)  # (1, 4200)

    def features(self, positions: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
        """Trunk features (B, 4200) of the mutants 'base ``bases[i]`` at window index ``positions[i]``'."""
        b = positions.shape[0]
        onehot = torch.zeros(b, 4, 1, dtype=self.ref[0].dtype, device=self.ref[0].device)
        onehot[torch.arange(b), bases, 0] = 1.0
        windows = {0: _Window(positions, 1, onehot)}
        for step in self.steps:
            windows[step.dst] = _partial_step(step, windows, self.ref)
        last = self.ref[self.last]
        full = _splice(last, torch.zeros_like(positions), last.shape[-1], windows[self.last])
        return full.flatten(1)

    def touched_fraction(self) -> float:
        """Share of the trunk's convolution multiply-adds that one mutant recomputes."""
        full = part = 0
        windows = {0: (SEQ_LEN // 2, 1)}
        for step in self.steps:
            if isinstance(step, _Conv):
                s, w = windows[step.src]
                k, pad = step.conv.kernel_size[0], step.conv.padding[0]
                length = self.ref[step.dst].shape[-1]
                w2 = w + k - 1
                macs = step.conv.in_channels * step.conv.out_channels * k
                full += macs * length
                part += macs * w2
                windows[step.dst] = (s + pad - (k - 1), w2)
            elif isinstance(step, _Pool):
                s, w = windows[step.src]
                windows[step.dst] = (s // step.k, (w - 1) // step.k + 2)
            else:
                windows[step.dst] = windows[step.src]
        return part / full


def _members(model) -> list:
    return list(model.members) if hasattr(model, "members") else [model]


@dataclass
class ISMResult:
    """P(accessible) of the reference window and of every substitution.

    ref_prob: (C,); mut_prob: (L, 4, C) with the reference base's entry equal to
    ref_prob (so diff = mut_prob - ref_prob is 0 there); ref_seq: the region's bases.
    """
    ref_prob: np.ndarray
    mut_prob: np.ndarray
    ref_seq: str
    contexts: list

    @property
    def diff(self) -> np.ndarray:
        return self.mut_prob - self.ref_prob[None, None, :]


def _mutants(onehot: np.ndarray, offsets: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(window index, base) of every substitution at ``offsets``; an N position gets all 4 bases."""
    pos, base = [], []
    for p in offsets:
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
    batch_size = int(batch_size) if batch_size else (256 if method == "fast" else 32)
    offsets = [int(o) for o in offsets]
    if not offsets or min(offsets) < 0 or max(offsets) >= SEQ_LEN:
        raise ChromDragoNNError(f"mutagenesis offsets must lie in [0, {SEQ_LEN})")
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
    for (p, b), row in zip(zip(pos, base), mut):
        mut_prob[index[p], b] = row
    ref_seq = "".join(ALPHABET[int(np.argmax(r))] if r.sum() == 1 else "N" for r in window_onehot[offsets])
    ctx = list(contexts) if contexts is not None else [str(i) for i in range(n_ctx)]
    return ISMResult(ref_prob.astype(np.float32), mut_prob.astype(np.float32), ref_seq, ctx)


# ---------------------------------------------------------------------------
# Region, outputs, plot, command line
# ---------------------------------------------------------------------------

_REGION = re.compile(r"^\s*([^:\s]+):([\d,]+)-([\d,]+)\s*$")


def parse_region(region: str) -> tuple[str, int, int]:
    """'chr22:17,000,001-17,000,100' (1-based, inclusive) -> ('chr22', 17000000, 17000100), 0-based half-open."""
    m = _REGION.match(str(region))
    if not m:
        raise ChromDragoNNError(f"region {region!r} is not CHROM:START-END (1-based, inclusive), e.g. chr22:17000001-17000200")
    chrom, start, end = m.group(1), int(m.group(2).replace(",", "")), int(m.group(3).replace(",", ""))
    if start < 1 or end < start:
        raise ChromDragoNNError(f"region {region!r}: need 1 <= START <= END")
    if end - start + 1 > MAX_REGION:
        raise ChromDragoNNError(f"region {region!r} is {end - start + 1} bp; saturation mutagenesis takes at most {MAX_REGION} bp")
    return chrom, start - 1, end


def ism_table(result: ISMResult, chrom: str, region_start: int):
    """Long TSV: one row per substitution, ``<context>/diff`` and ``<context>/alt`` (= P(mutant))."""
    import pandas as pd

    rows, cols = [], {}
    diff = result.diff
    keep = []
    for i, r in enumerate(result.ref_seq):
        for b, a in enumerate(ALPHABET):
            if a != r:
                rows.append((chrom, region_start + i + 1, r, a))
                keep.append((i, b))
    ii = np.array([k[0] for k in keep], dtype=np.int64)
    bb = np.array([k[1] for k in keep], dtype=np.int64)
    df = pd.DataFrame(rows, columns=["#CHROM", "POS", "REF", "ALT"])
    for j, ctx in enumerate(result.contexts):
        cols[f"{ctx}/diff"] = diff[ii, bb, j]
        cols[f"{ctx}/alt"] = result.mut_prob[ii, bb, j]
    return pd.concat([df, pd.DataFrame(cols)], axis=1)


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def write_ism(result: ISMResult, chrom: str, region_start: int, output: str | os.PathLike) -> None:
    """TSV (default) or .npz, written to <output>.partial and renamed."""
    output = Path(output)
    tmp = _partial(output)
    try:
        if output.suffix == ".npz":
            with open(tmp, "wb") as fh:
                np.savez_compressed(
                    fh, diff=result.diff.transpose(2, 0, 1), mut_prob=result.mut_prob.transpose(2, 0, 1),
                    ref_prob=result.ref_prob, contexts=np.array(result.contexts), alphabet=np.array(list(ALPHABET)),
                    chrom=np.array(chrom), positions=np.arange(region_start + 1, region_start + 1 + len(result.ref_seq)),
                    ref_seq=np.array(result.ref_seq))
        else:
            ism_table(result, chrom, region_start).to_csv(tmp, sep="\t", index=False, float_format="%.6g")
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()


_BASE_COLORS = {"A": "#109648", "C": "#255C99", "G": "#F7B32B", "T": "#D62839", "N": "#888888"}


def plot_ism(result: ISMResult, chrom: str, region_start: int, png: str | os.PathLike) -> None:
    """Mutation map: per context a 4 x L heatmap of P(mutant) - P(reference), the reference as letters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    png = Path(png)
    n = len(result.ref_seq)
    diff = result.diff
    vmax = float(np.abs(diff).max()) or 1e-6
    width = float(np.clip(0.09 * n + 2.0, 6.0, 92.0))
    fig, axes = plt.subplots(len(result.contexts), 1, figsize=(width, 1.7 * len(result.contexts) + 0.6),
                             squeeze=False, constrained_layout=True)
    letter_size = float(np.clip(620.0 / max(n, 1) * (width / 8.0), 3.0, 11.0))
    for j, (ax, ctx) in enumerate(zip(axes[:, 0], result.contexts)):
        im = ax.imshow(diff[:, :, j].T, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                       interpolation="nearest", extent=(-0.5, n - 0.5, 3.5, -0.5))
        ax.set_yticks(range(4), list(ALPHABET))
        ax.set_ylabel(ctx)
        for i, r in enumerate(result.ref_seq):
            # The reference base: its cell is 0 by definition, so write the letter in it.
            row = ALPHABET.index(r) if r in ALPHABET else None
            ax.text(i, -0.9, r, ha="center", va="bottom", fontsize=letter_size, family="monospace",
                    color=_BASE_COLORS.get(r, "#888888"), clip_on=False)
            if row is not None:
                ax.text(i, row, "\u00b7", ha="center", va="center", fontsize=letter_size, color="black")
        ax.set_ylim(3.5, -1.6)
        step = max(1, int(round(n / 10)))
        ticks = list(range(0, n, step))
        ax.set_xticks(ticks, [f"{region_start + 1 + t:,}" for t in ticks])
        ax.set_title(f"{ctx}: P(ref) = {result.ref_prob[j]:.3f}", fontsize=9, loc="left")
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01, label="P(mut) - P(ref)")
    axes[-1, 0].set_xlabel(f"{chrom} position (1-based)")
    tmp = _partial(png)
    try:
        fig.savefig(tmp, dpi=100, format="png")
        os.replace(tmp, png)
    finally:
        plt.close(fig)
        if tmp.exists():
            tmp.unlink()


def run_ism(region: str, fasta: str | os.PathLike, contexts, expression_file=None, expression_units="tpm",
            model=None, mean_bigwig=None, method: str = "fast", batch_size: int | None = None, device: str = "cpu",
            progress: bool = True) -> tuple[ISMResult, str, int]:
    """Region string -> (ISMResult, chrom as given, region start 0-based)."""
    from chromdragonn.expression import parse_contexts
    from chromdragonn.genome import Genome, centered_window, one_hot
    from chromdragonn.variants import context_expression, fetch, open_mean_track, resolve_model_option, torch_device

    chrom, start, end = parse_region(region)
    contexts = parse_contexts(contexts)
    net, genes = resolve_model_option(model)
    dev = torch_device(device)
    net.to(dev)
    expr = context_expression(contexts, genes, expression_file, expression_units)
    genome = Genome(fasta)
    name = genome.resolve(chrom)
    if end > genome.lengths[name]:
        raise ChromDragoNNError(
            f"region {region} runs past the end of {name} in {genome.path} ({genome.lengths[name]:,} bp)")
    window = centered_window(chrom, start, end)
    onehot = one_hot(fetch(genome, chrom, window.start, window.end))
    mean_track = open_mean_track(net, mean_bigwig)
    mean = mean_track.value(chrom, window.start, window.end) if mean_track is not None else None
    offsets = list(range(start - window.start, end - window.start))
    result = saturation_mutagenesis(net, onehot, offsets, expr, mean, method=method, batch_size=batch_size,
                                    device=dev, progress=progress, contexts=contexts)
    return result, chrom, start


def _run(args) -> int:
    output = Path(args.output)
    png = Path(args.png) if args.png else output.with_suffix(".png")
    result, chrom, start = run_ism(args.region, args.fasta, args.contexts, args.expression, args.expression_units,
                                   args.model, args.mean_bigwig, args.method, args.batch_size, args.device,
                                   progress=not args.quiet)
    write_ism(result, chrom, start, output)
    plot_ism(result, chrom, start, png)
    log.info("wrote %d substitutions x %d contexts to %s and the map to %s",
             3 * len(result.ref_seq), len(result.contexts), output, png)
    return 0


def add_cli(subparsers) -> None:
    from chromdragonn.predict import add_model_input_options

    p = subparsers.add_parser(
        "ism", help="saturation mutagenesis of a region (every single-base substitution)",
        description="Score every single-base substitution across a region of up to 1 kb in each context "
                    "(P(mutant) - P(reference), on the 1 kb window centred on the region); writes a TSV "
                    "(or .npz) and a PNG mutation map.")
    p.add_argument("--region", required=True, help="CHROM:START-END, 1-based inclusive, at most 1,000 bp")
    p.add_argument("-o", "--output", required=True, help="output .tsv or .npz")
    p.add_argument("--png", default=None, help="mutation-map PNG (default: OUTPUT with .png)")
    add_model_input_options(p)
    p.add_argument("--method", default="fast", choices=["fast", "naive"],
                   help="fast: recompute only each substitution's receptive field (default); naive: whole trunk")
    p.add_argument("--batch-size", type=int, default=None, help="mutants per batch (default 256 fast, 32 naive)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
