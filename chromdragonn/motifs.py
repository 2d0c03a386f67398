"""Motif matches a variant touches, in REF and in ALT, with their score change (score-variants --motifs).

FIMO-style, with memelite (pure Python): each motif's log-odds matrix is log2(p + 1e-4) - log2(0.25)
(memelite.fimo's), a match's score is the sum over its columns, and it is a match when its p-value
under a uniform background is below ``threshold`` (1e-4, FIMO's default). The score threshold of each
motif and strand is read off memelite's own score -> p-value tables, computed once per motif file
(``memelite.fimo._pvalue_tables``, the same code ``memelite.fimo.fimo`` runs on every call), so the
matches are exactly those memelite.fimo reports on the same sequence (tested); the scan itself is
one convolution per chunk of alleles over only the bases around each variant.

For each allele: every motif placement (both strands) that overlaps the variant's bases in REF or in
ALT and is a match in either; its score in the other allele is taken at the same start counted from
the left flank (for indels, the placement keeps its left end). Reported as
``MOTIF_ID:NAME:STRAND:REF_SCORE>ALT_SCORE``, largest |change| first, joined by ``|``; "breaks a
GATA site" reads as ``MA0035.5:Gata1:+:9.8>2.1``.
"""
from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from chromdragonn import paths
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.files import check_readable
from chromdragonn.inputs.genome import one_hot_batch

log = logging.getLogger(__name__)

JASPAR = paths.SHARED_DATA / "motifs" / "JASPAR2024_CORE_vertebrates_latest.meme"
EPS = 1e-4  # memelite.fimo's pseudocount
BIN_SIZE = 0.1  # memelite.fimo's score discretisation
THRESHOLD = 1e-4
MAX_REPORTED = 5  # matches per allele in the column


def _safe(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.:+\-]", "_", text)


def read_meme_file(path: str | os.PathLike, what: str) -> tuple[Path, dict]:
    """``path`` (``"jaspar"``: :data:`JASPAR`) -> (its path, memelite's {"ID NAME": PPM}); a file that
    cannot be read or is not MEME is a one-line error naming it as ``what``."""
    from memelite.io import read_meme

    path = JASPAR if str(path).strip().lower() == "jaspar" else Path(path)
    check_readable(path, what)
    try:
        return path, read_meme(str(path))
    except (ValueError, AttributeError, IndexError, UnicodeDecodeError) as exc:
        raise ChromDragoNNError(f"{what} {path} is not a MEME motif file: {exc}") from None


class MotifAnnotator:
    """Motifs of a MEME file, ready to scan alleles. ``annotate(genome, alleles)`` -> one string per allele."""

    def __init__(self, motifs: dict[str, np.ndarray], threshold: float = THRESHOLD, label: str = ""):
        from memelite.fimo import _pvalue_tables

        if not motifs:
            raise ChromDragoNNError(f"motif file {label} has no motifs")
        self.label = label
        self.threshold = float(threshold)
        names = list(motifs)
        self.ids = [n.split(" ")[0] for n in names]
        self.names = [n.split(" ", 1)[1] if " " in n else n for n in names]
        pwms = [np.asarray(motifs[n], dtype=np.float64) for n in names]  # (4, w) as memelite reads them
        # forward then reverse complement, as memelite.fimo orders them
        both = pwms + [p[::-1, ::-1] for p in pwms]
        self.widths = np.array([p.shape[1] for p in both])
        self.max_width = int(self.widths.max())
        lengths = np.cumsum([0] + [p.shape[1] for p in both]).astype(np.uint64)
        logodds = np.log2(np.concatenate(both, axis=-1) + EPS) - math.log2(0.25)
        smallest, table_lengths, table = _pvalue_tables(logodds, lengths, BIN_SIZE)
        starts = table_lengths[:-1]
        passing = np.flatnonzero(table < math.log2(self.threshold))
        pos = np.searchsorted(passing, starts)
        first = passing[np.minimum(pos, len(passing) - 1)] if len(passing) else starts
        found = (pos < len(passing)) & (first < table_lengths[1:])
        self.score_threshold = np.full(len(both), np.inf, dtype=np.float64)
        self.score_threshold[found] = ((first - starts + smallest) * BIN_SIZE)[found]
        filters = np.zeros((len(both), 4, self.max_width), dtype=np.float32)
        for k in range(len(both)):
            filters[k, :, : self.widths[k]] = logodds[:, int(lengths[k]): int(lengths[k + 1])]
        self.filters = torch.from_numpy(filters)

    @classmethod
    def load(cls, path: str | os.PathLike = "jaspar", threshold: float = THRESHOLD) -> "MotifAnnotator":
        """A MEME file; ``"jaspar"``: JASPAR 2024 CORE vertebrates of the project's shared data."""
        path, motifs = read_meme_file(path, "motif file")
        return cls(motifs, threshold, str(path))

    def motif_label(self, k: int) -> tuple[str, str, str]:
        n = len(self.ids)
        return self.ids[k % n], self.names[k % n], "+" if k < n else "-"

    @torch.no_grad()
    def scores(self, seqs: Sequence[str]) -> np.ndarray:
        """(N, 2M, L) match scores at every start of sequences of one length L; -inf where the motif
        would run past the sequence's end."""
        x = torch.from_numpy(one_hot_batch(seqs)).transpose(1, 2)
        x = torch.nn.functional.pad(x, (0, self.max_width - 1))
        out = torch.nn.functional.conv1d(x, self.filters).double().numpy()
        length = len(seqs[0])
        past = np.arange(length)[None, :] + self.widths[:, None] > length  # (2M, L)
        out[:, past] = -np.inf
        return out

    def annotate(self, genome, alleles: Sequence[tuple[str, int, str, str]]) -> list[str]:
        """alleles: (FASTA chromosome, 1-based POS, REF, ALT) -> one string per allele ('' for none)."""
        if not alleles:
            return []
        flank = self.max_width - 1
        ref_seqs, alt_seqs, ref_spans, alt_spans = [], [], [], []
        span = max(max(len(r), len(a)) for _, _, r, a in alleles)
        total = 2 * flank + span  # one length for the batch; N pads the right
        for chrom, pos, ref, alt in alleles:
            left = genome.fetch(chrom, pos - 1 - flank, pos - 1)
            right = genome.fetch(chrom, pos - 1 + len(ref), pos - 1 + len(ref) + flank + span)
            r = (left + ref.upper() + right)[:total]
            a = (left + alt.upper() + right)[:total]
            ref_seqs.append(r + "N" * (total - len(r)))
            alt_seqs.append(a + "N" * (total - len(a)))
            ref_spans.append((flank, flank + len(ref)))
            alt_spans.append((flank, flank + len(alt)))
        s = self.scores(ref_seqs + alt_seqs)
        sr, sa = s[: len(alleles)], s[len(alleles):]
        n_starts = sr.shape[2]
        starts = np.arange(n_starts)
        thr = self.score_threshold[:, None]
        out = []
        for i in range(len(alleles)):
            (r0, r1), (a0, a1) = ref_spans[i], alt_spans[i]
            ends = starts[None, :] + self.widths[:, None]  # (2M, S)
            over = ((starts[None, :] < r1) & (ends > r0)) | ((starts[None, :] < a1) & (ends > a0))
            hit = over & ((sr[i] >= thr) | (sa[i] >= thr))
            k_idx, p_idx = np.nonzero(hit)
            if len(k_idx) == 0:
                out.append("")
                continue
            ref_sc, alt_sc = sr[i][k_idx, p_idx], sa[i][k_idx, p_idx]
            order = np.argsort(-np.abs(alt_sc - ref_sc), kind="stable")[:MAX_REPORTED]
            parts = []
            for j in order:
                mid, name, strand = self.motif_label(int(k_idx[j]))
                parts.append(f"{_safe(mid)}:{_safe(name)}:{strand}:{ref_sc[j]:.2f}>{alt_sc[j]:.2f}")
            out.append("|".join(parts))
        return out
