"""Plots: the mutation map of saturation mutagenesis."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ALPHABET = "ACGT"

_BASE_COLORS = {"A": "#109648", "C": "#255C99", "G": "#F7B32B", "T": "#D62839", "N": "#888888"}


def plot_mutation_map(result, chrom: str, region_start: int, png: str | os.PathLike) -> None:
    """Mutation map of an ISM result: per context a 4 x L heatmap of P(mutant) - P(reference), the
    reference as letters; N positions (no substitutions) are blank.  Written to ``png`` as it is (the
    caller makes it atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    png = Path(png)
    n = len(result.ref_seq)
    diff = result.diff
    vmax = float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 0.0
    vmax = vmax or 1e-6
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
    try:
        fig.savefig(png, dpi=100, format="png")
    finally:
        plt.close(fig)
