"""What score-variants adds so a variant's score can be read: contrasts, specificity, calibration.

- Contrast ``A,B``: ``A-B/diff`` = diff in A minus diff in B (the variant's effect in A beyond B).
- Specificity: ``<context>/z`` = (diff in the context - mean of its diffs over the 56 Roadmap
  contexts) / their standard deviation (ddof 0): how unusual the effect is in that context for this
  variant. NaN when the 56 diffs are all equal.
- Calibration: ``<context>/pct`` = the percentage of background SNVs (common 1000 Genomes SNVs, or
  any VCF given) whose |diff| in that context, scored the same way, is at or below this variant's
  |diff|. 99 means: larger than 99% of common SNVs' effects in this context, by this model.

The shipped background (``weights/variant_background_1kg.tsv.gz``, made by
scripts/make_variant_background.py) holds the default ensemble's diff of the common SNVs (minor
allele frequency >= 1%) of the 1000 Genomes file in the 56 Roadmap contexts; it applies only to that
model in those contexts, one strand. Any other set-up takes ``--background VCF``, scored on the fly.
"""
from __future__ import annotations

import json
import logging
from typing import Sequence

import numpy as np
import pandas as pd

from chromdragonn import paths
from chromdragonn.errors import ChromDragoNNError

log = logging.getLogger(__name__)

SHIPPED_BACKGROUND = paths.WEIGHTS_DIR / "variant_background_1kg.tsv.gz"
SHIPPED_BACKGROUND_INFO = paths.WEIGHTS_DIR / "variant_background_1kg.json"
SHIPPED_NAMES = ("shipped", "default", "1kg")
EXTRA_DOCS = {
    "z": "z-score of diff against the variant's diffs in the 56 Roadmap contexts",
    "pct": "percentage of background SNVs whose |diff| in this context is at or below this one's",
    "motifs": "motif matches overlapping the variant, MOTIF_ID:NAME:STRAND:REF_SCORE>ALT_SCORE joined by '|'",
}


def parse_contrasts(specs, contexts: Sequence[str]) -> list[tuple[str, str]]:
    """``["E003,E116", ...]`` (or one string) -> [(A, B), ...], both among ``contexts``."""
    if specs is None:
        return []
    if isinstance(specs, str):
        specs = [specs]
    out = []
    for spec in specs:
        parts = [p.strip() for p in str(spec).split(",")]
        if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
            raise ChromDragoNNError(f"--contrast {spec!r}: give two different contexts as A,B")
        for p in parts:
            if p not in contexts:
                raise ChromDragoNNError(f"--contrast {spec}: context {p} is not among --contexts "
                                        f"({', '.join(contexts)})")
        out.append((parts[0], parts[1]))
    return list(dict.fromkeys(out))


def specificity_z(diff: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(N, C) diffs -> z against each row's (N, R) reference diffs (mean, sd with ddof 0); NaN where sd is 0."""
    mu = reference.mean(axis=1, keepdims=True)
    sd = reference.std(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, (diff - mu) / np.where(sd > 0, sd, 1.0), np.nan)


class Background:
    """|diff| of background SNVs per context, sorted; ``percentile(context, diff)``."""

    def __init__(self, absdiff: dict[str, np.ndarray], label: str):
        self.sorted = {c: np.sort(np.abs(np.asarray(v, np.float64))) for c, v in absdiff.items()}
        self.label = label
        for c, v in self.sorted.items():
            if len(v) == 0:
                raise ChromDragoNNError(f"background {label} has no scored SNV in context {c}")

    def percentile(self, context: str, diff: np.ndarray) -> np.ndarray:
        ref = self.sorted[context]
        return 100.0 * np.searchsorted(ref, np.abs(np.asarray(diff, np.float64)), side="right") / len(ref)

    @classmethod
    def shipped(cls, contexts: Sequence[str], model_is_default: bool, both_strands: bool,
                user_contexts: Sequence[str] = ()) -> "Background":
        why = None
        if not model_is_default:
            why = "it was scored with the default model (model.yaml's ensemble)"
        elif both_strands:
            why = "it was scored on one strand (no --both-strands)"
        elif not SHIPPED_BACKGROUND.is_file():
            raise ChromDragoNNError(f"the shipped variant background {SHIPPED_BACKGROUND} is missing; "
                                    "rebuild it with scripts/make_variant_background.py or give --background VCF")
        else:
            from chromdragonn.inputs.session import DeclaredModel

            info = json.loads(SHIPPED_BACKGROUND_INFO.read_text())
            bad = [c for c in contexts if c in user_contexts or c not in info["contexts"]]
            if info.get("weights_md5") != list(DeclaredModel.read().md5s):
                raise ChromDragoNNError(
                    f"the shipped variant background {SHIPPED_BACKGROUND} was scored with other weights than "
                    "model.yaml's; rebuild it with scripts/make_variant_background.py")
            if bad:
                why = f"it holds the shipped Roadmap contexts only, not {', '.join(bad[:5])}"
        if why:
            raise ChromDragoNNError(f"the shipped background cannot calibrate this run: {why}; give "
                                    "--background VCF (common SNVs) to have one scored the same way")
        df = pd.read_csv(SHIPPED_BACKGROUND, sep="\t")
        return cls({c: df[f"{c}/diff"].to_numpy() for c in contexts},
                   f"{SHIPPED_BACKGROUND.name} ({len(df)} common 1000 Genomes SNVs)")
