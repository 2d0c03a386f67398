"""Variant-effect scores on P = P(accessible): the one registry that variant scoring, saturation
mutagenesis and the model.yaml renderer read.  A new score is one :class:`Score` entry here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from chromdragonn.errors import ChromDragoNNError

LOGIT_EPS = 1e-7  # P is clipped to [eps, 1 - eps] before the logit


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, LOGIT_EPS, 1 - LOGIT_EPS)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class Score:
    name: str
    doc: str
    compute: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (P(ref), P(alt)) -> score, float64
    kipoi_veff_type: str | None = None  # kipoi-veff's scoring function of the same meaning, if any


SCORES: dict[str, Score] = {s.name: s for s in [
    Score("diff", "P(alt) - P(ref)", lambda r, a: a - r, "diff"),
    Score("logit", "logit(P(alt)) - logit(P(ref))", lambda r, a: _logit(a) - _logit(r), "logit"),
    Score("ref", "P(ref)", lambda r, a: r, "ref"),
    Score("alt", "P(alt)", lambda r, a: a, "alt"),
    Score("abs_diff", "|P(alt) - P(ref)|", lambda r, a: np.abs(a - r)),
]}
DEFAULT_SCORE = "diff"


def parse_scores(scores: str | Sequence[str]) -> list[str]:
    """``"diff,logit"`` or a list -> known score names, in order, each once."""
    items = scores.split(",") if isinstance(scores, str) else list(scores)
    items = [s.strip() for s in items if s.strip()]
    bad = [s for s in items if s not in SCORES]
    if bad or not items:
        raise ChromDragoNNError(f"unknown score(s) {', '.join(bad) or '(none)'}; choose from {', '.join(SCORES)}")
    return list(dict.fromkeys(items))


def compute_scores(p_ref, p_alt, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Each named score of the probability pairs, float64."""
    r = np.asarray(p_ref, dtype=np.float64)
    a = np.asarray(p_alt, dtype=np.float64)
    return {n: SCORES[n].compute(r, a) for n in names}


def kipoi_veff_scoring_functions() -> list[dict]:
    """model.yaml's ``postprocessing.variant_effects.scoring_functions``: the scores kipoi-veff also has."""
    return [{"name": s.name, "type": s.kipoi_veff_type, **({"default": True} if s.name == DEFAULT_SCORE else {})}
            for s in SCORES.values() if s.kipoi_veff_type]
