"""Motifs the model learned, per cell context: ``chromdragonn learned-motifs`` (the paper's Fig. 2B).

For each context:

1. **Bins.** 200 bp candidate bins (``--region`` cut from its start, or one per ``--bed`` interval),
   each read through the 1,000 bp window centred on it (as ``predict``); windows holding an N in their
   central ``width`` bp are left out. With ``select="specific"`` (the default, the paper's choice:
   bins open in the context and in fewer than 30% of all contexts), the model's P(accessible) is
   computed in the context and in the reference contexts (the 56 shipped Roadmap epigenomes plus the
   contexts asked for); a bin is kept when P >= ``open_threshold`` in the context and P >=
   ``open_threshold`` in fewer than ``max_open_frac`` of the reference contexts. With ``select="all"``
   every candidate bin is used (your own peak calls of the context, say). Either way at most
   ``max_bins``, those of largest P in the context.
2. **Attributions.** For each kept window, the gradient of logit P(accessible) in the context with
   respect to the one-hot sequence (:func:`chromdragonn.attribute.window_gradients`, a fold ensemble
   averaging its members'), over the central ``width`` bp (default 400: the bin and 100 bp each side).
   The gradient is the hypothetical contribution of each base (TF-MoDISco's ``hypothetical_contribs``);
   the contribution of the base present is gradient x input, the ``attribute`` command's attribution.
   With ``center=True`` (default) the gradient is first centred over A, C, G, T at each position
   (Majdandzic et al. 2023): one-hot input lives on the simplex, so the gradient's component along
   (1, 1, 1, 1) is noise no input can follow.
3. **Motifs.** TF-MoDISco (modisco-lite) extracts seqlets and clusters them into patterns: positive
   patterns raise accessibility, negative ones lower it. Each pattern's CWM (mean contribution), PPM
   (base frequencies) and seqlet count are kept.
4. **Matches.** Each pattern's PPM, trimmed to the positions whose summed |CWM| is at least
   ``trim_threshold`` (0.3) of its largest (modisco-lite's own report does the same), is compared
   with every motif of the database (default JASPAR 2024 CORE vertebrates) by Tomtom (memelite, both
   strands). Tomtom's q-value is the Benjamini-Hochberg FDR over the database's motifs for that
   pattern; the E-value is p times the number of motifs.

Outputs, in a new folder written whole or not at all: ``summary.tsv`` (every pattern of every
context with its best match), and per context ``<context>/report.md`` and ``report.html`` (logos, seqlet
counts, best matches), ``matches.tsv`` (the ``n_matches`` best database motifs of every pattern, with
p, q, E, strand, offset, overlap), ``motifs.meme`` (the trimmed PPMs, MEME format), ``modisco.h5``
(modisco-lite's own results file), ``bins.bed`` (the windows used, with P) and ``logos/*.png``.
"""
from __future__ import annotations

import html
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from chromdragonn.cli import model_option
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.expression import parse_contexts
from chromdragonn.inputs.files import check_readable
from chromdragonn.inputs.genome import WINDOW, Genome, centered_window, one_hot_batch, parse_region
from chromdragonn.inputs.session import Session, context_expression, expression_source, model_label, positive_int
from chromdragonn.nn.model import ALPHABET
from chromdragonn.outputs.atomic import atomic_folder, check_new_folder
from chromdragonn.outputs.tables import FLOAT_FORMAT

log = logging.getLogger(__name__)

SELECTIONS = ("specific", "all")
FEW_BINS = 100  # fewer kept bins than this: a warning (TF-MoDISco rarely finds a pattern)
JASPAR_NAME = "jaspar"


@dataclass
class MotifSettings:
    """How bins are chosen and TF-MoDISco / Tomtom are run (defaults: the command's)."""

    select: str = "specific"
    open_threshold: float = 0.5
    max_open_frac: float = 0.3
    max_bins: int = 1000
    width: int = 400
    center: bool = True
    max_seqlets: int = 2000
    min_seqlets: int = 100
    leiden_runs: int = 10
    trim_threshold: float = 0.3
    n_matches: int = 10
    batch_size: int = 8

    def check(self) -> "MotifSettings":
        if self.select not in SELECTIONS:
            raise ChromDragoNNError(f"--select must be one of {', '.join(SELECTIONS)}, got {self.select!r}")
        if not 0.0 < float(self.open_threshold) < 1.0:
            raise ChromDragoNNError(f"--open-threshold must be between 0 and 1, got {self.open_threshold}")
        if not 0.0 < float(self.max_open_frac) <= 1.0:
            raise ChromDragoNNError(f"--max-open-frac must be in (0, 1], got {self.max_open_frac}")
        for name in ("max_bins", "width", "max_seqlets", "min_seqlets", "leiden_runs", "n_matches", "batch_size"):
            positive_int(getattr(self, name), "--" + name.replace("_", "-"))
        if self.width > WINDOW or self.width < 30:
            raise ChromDragoNNError(f"--width must be between 30 and {WINDOW} bp, got {self.width}")
        if not 0.0 <= float(self.trim_threshold) < 1.0:
            raise ChromDragoNNError(f"--trim-threshold must be in [0, 1), got {self.trim_threshold}")
        return self


# ---- motif database and Tomtom ------------------------------------------------------------

@dataclass
class MotifDatabase:
    """A MEME file's motifs: ids, names, PPMs (4, w)."""

    path: Path
    ids: list[str]
    names: list[str]
    ppms: list[np.ndarray]

    @classmethod
    def load(cls, path: str | os.PathLike = JASPAR_NAME) -> "MotifDatabase":
        from chromdragonn.motifs import read_meme_file

        path, motifs = read_meme_file(path, "motif database")
        if not motifs:
            raise ChromDragoNNError(f"motif database {path} has no motifs (is it a MEME file?)")
        keys = list(motifs)
        ids = [k.split(" ")[0] for k in keys]
        names = [k.split(" ", 1)[1] if " " in k else k for k in keys]
        return cls(path, ids, names, [np.asarray(motifs[k], dtype=np.float64) for k in keys])


def tomtom_matches(queries: Sequence[np.ndarray], db: MotifDatabase, n_matches: int = 10) -> list[pd.DataFrame]:
    """Tomtom (memelite) of each query PPM (w, 4) against every motif of ``db``.

    One table per query, its ``n_matches`` best motifs by p-value: ``rank match_id match_name p q E
    strand offset overlap``; q is the Benjamini-Hochberg FDR over all of the database's motifs for
    that query (Tomtom's q-value), E = p x the number of motifs.
    """
    from memelite import tomtom
    from scipy.stats import false_discovery_control

    if not queries:
        return []
    qs = [np.ascontiguousarray(np.asarray(q, dtype=np.float64).T) for q in queries]
    p, _, offsets, overlaps, strands = tomtom(qs, db.ppms, n_jobs=1)
    out = []
    n_db = len(db.ids)
    for i in range(len(qs)):
        pi = np.clip(np.asarray(p[i], dtype=np.float64), 0.0, 1.0)
        qi = false_discovery_control(pi, method="bh")
        order = np.lexsort((np.arange(n_db), pi))[: min(n_matches, n_db)]
        out.append(pd.DataFrame({
            "rank": np.arange(1, len(order) + 1),
            "match_id": [db.ids[k] for k in order],
            "match_name": [db.names[k] for k in order],
            "p": pi[order], "q": qi[order], "E": pi[order] * n_db,
            "strand": ["+" if int(strands[i, k]) == 0 else "-" for k in order],
            "offset": [int(offsets[i, k]) for k in order],
            "overlap": [int(overlaps[i, k]) for k in order],
        }))
    return out


# ---- bins -------------------------------------------------------------------------------

def candidate_bins(region: str | None = None, bed=None) -> pd.DataFrame:
    """chrom, start, end, name (0-based half-open): ``tf-drivers``' bins (200 bp from the region's
    start, or one per BED interval)."""
    from chromdragonn.tf_drivers import driver_bins

    return driver_bins(region, bed).reset_index(drop=True)


def _windows(bins: pd.DataFrame):
    return [centered_window(c, int(s), int(e)) for c, s, e in zip(bins["chrom"], bins["start"], bins["end"])]


def _members(model) -> list:
    return list(model.members) if hasattr(model, "members") else [model]


@torch.no_grad()
def bin_probabilities(session: Session, genome: Genome, bins: pd.DataFrame, expression: np.ndarray,
                      batch_size: int = 32, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """P(accessible) of every bin in every row of ``expression``: (N, K), the ensemble's mean of P; and
    the bins' window sequences (1,000 bp each)."""
    wins = _windows(bins)
    expr = torch.from_numpy(np.asarray(expression, np.float32)).to(session.device)
    probs = np.zeros((len(wins), len(expr)), np.float32)
    seqs_n = []
    bar = tqdm(total=len(wins), unit="bin", disable=not progress, desc="P(accessible) of the candidate bins")
    for lo in range(0, len(wins), batch_size):
        batch = wins[lo: lo + batch_size]
        seqs = [genome.fetch(w.chrom, w.start, w.end) for w in batch]
        seqs_n.extend(seqs)
        x = torch.from_numpy(one_hot_batch(seqs)).to(session.device)
        mean = session.mean_values(batch)
        ps = [m.head.forward_grid(m.trunk(x), expr, mean).exp() for m in _members(session.model)]
        probs[lo: lo + len(batch)] = torch.stack(ps).mean(0).float().cpu().numpy()
        bar.update(len(batch))
    bar.close()
    return probs, seqs_n


def _central(width: int) -> slice:
    lo = (WINDOW - width) // 2
    return slice(lo, lo + width)


def select_bins(p_context: np.ndarray, p_reference: np.ndarray, usable: np.ndarray,
                settings: MotifSettings) -> tuple[np.ndarray, dict]:
    """Indices of the bins kept for one context (largest P first) and counts for the report."""
    n = len(p_context)
    counts = {"candidates": int(n), "with_N": int((~usable).sum())}
    ok = usable.copy()
    if settings.select == "specific":
        open_here = p_context >= settings.open_threshold
        frac = (p_reference >= settings.open_threshold).mean(axis=1)
        counts["open_here"] = int((open_here & usable).sum())
        ok &= open_here & (frac < settings.max_open_frac)
        counts["open_here_specific"] = int(ok.sum())
    idx = np.flatnonzero(ok)
    order = idx[np.lexsort((idx, -p_context[idx]))][: settings.max_bins]
    counts["kept"] = int(len(order))
    return order, counts


# ---- attributions and TF-MoDISco ----------------------------------------------------------

def hypothetical_contributions(session: Session, onehot: np.ndarray, expression: np.ndarray, mean, width: int,
                               center: bool = True, batch_size: int = 8, progress: bool = True,
                               desc: str = "attributions") -> np.ndarray:
    """(N, width, 4) d logit P / d one-hot over the central ``width`` bp of (N, 1000, 4) windows in one
    context (expression (1, G)), centred over the bases at each position when ``center``."""
    from chromdragonn.attribute import window_gradients

    cut = _central(width)
    out = np.zeros((len(onehot), width, 4), np.float32)
    bar = tqdm(total=len(onehot), unit="window", disable=not progress, desc=desc)
    for lo in range(0, len(onehot), batch_size):
        x = torch.from_numpy(onehot[lo: lo + batch_size]).to(session.device)
        m = None if mean is None else mean[lo: lo + batch_size]
        g = window_gradients(session.model, x, expression, m)[:, 0, cut, :].cpu().numpy()
        if center:
            g = g - g.mean(axis=2, keepdims=True)
        out[lo: lo + len(x)] = g
        bar.update(len(x))
    bar.close()
    return out


@dataclass
class Pattern:
    """One TF-MoDISco pattern: ``name`` (pos_pattern_0 ...), PPM, CWM, hypothetical CWM (L, 4),
    seqlet count, the trimmed span [lo, hi), and its database matches."""

    name: str
    ppm: np.ndarray
    cwm: np.ndarray
    hcwm: np.ndarray
    n_seqlets: int
    lo: int = 0
    hi: int = 0
    matches: pd.DataFrame | None = None

    @property
    def direction(self) -> str:
        return "opens" if self.name.startswith("pos") else "closes"

    @property
    def trimmed_ppm(self) -> np.ndarray:
        return self.ppm[self.lo: self.hi]


def trim_span(cwm: np.ndarray, threshold: float = 0.3) -> tuple[int, int]:
    """[lo, hi) of the positions from the first to the last whose summed |CWM| >= threshold x its max."""
    score = np.abs(cwm).sum(axis=1)
    keep = np.flatnonzero(score >= threshold * score.max())
    return int(keep.min()), int(keep.max()) + 1


def run_modisco(onehot: np.ndarray, hyp: np.ndarray, settings: MotifSettings):
    """TF-MoDISco (modisco-lite) -> (pos_patterns, neg_patterns, [Pattern]) (raw lists may be None)."""
    from modiscolite.tfmodisco import TFMoDISco

    pos, neg = TFMoDISco(one_hot=onehot.astype(np.float32), hypothetical_contribs=hyp.astype(np.float32),
                         max_seqlets_per_metacluster=settings.max_seqlets, min_metacluster_size=settings.min_seqlets,
                         n_leiden_runs=settings.leiden_runs, verbose=False)
    out = []
    for prefix, group in (("pos", pos), ("neg", neg)):
        for k, pat in enumerate(group or []):
            cwm = np.asarray(pat.contrib_scores, np.float64)
            lo, hi = trim_span(cwm, settings.trim_threshold)
            out.append(Pattern(f"{prefix}_pattern_{k}", np.asarray(pat.sequence, np.float64), cwm,
                               np.asarray(pat.hypothetical_contribs, np.float64), len(pat.seqlets), lo, hi))
    return pos, neg, out


# ---- one context ------------------------------------------------------------------------

@dataclass
class ContextMotifs:
    context: str
    bins: pd.DataFrame  # the bins used, with p
    counts: dict
    patterns: list = field(default_factory=list)
    modisco: tuple = (None, None)
    seconds: dict = field(default_factory=dict)


@dataclass
class LearnedMotifs:
    contexts: list
    results: list
    settings: MotifSettings
    model: str
    db: MotifDatabase


def learned_motifs(fasta, contexts, region: str | None = None, bed=None, expression=None,
                   expression_units: str = "tpm", model=None, mean_bigwig=None, device: str = "cpu",
                   settings: MotifSettings | None = None, motif_db=JASPAR_NAME, progress: bool = True) -> LearnedMotifs:
    """Bins -> attributions -> TF-MoDISco -> Tomtom, per context (module docstring)."""
    settings = (settings or MotifSettings()).check()
    db = motif_db if isinstance(motif_db, MotifDatabase) else MotifDatabase.load(motif_db)
    bins = candidate_bins(region, bed)
    genome = Genome(fasta)
    if region is not None:
        chrom, _, end = parse_region(region)
        name = genome.resolve(chrom)
        if end > genome.lengths[name]:
            raise ChromDragoNNError(
                f"region {region} runs past the end of {name} in {genome.path} ({genome.lengths[name]:,} bp)")
    for c, starts in bins.groupby("chrom", sort=False)["start"]:
        name = genome.resolve(c)
        if int(starts.max()) >= genome.lengths[name]:
            raise ChromDragoNNError(f"a BED interval on {c} starts past the end of {name} in {genome.path} "
                                    f"({genome.lengths[name]:,} bp): a wrong or truncated FASTA?")
    session = Session.open(contexts, model, expression, expression_units, mean_bigwig, device)
    session.check_chromosomes(sorted(bins["chrom"].unique()))
    names = session.contexts
    reference: list[str] = []
    if settings.select == "specific":
        shipped = expression_source(expression, expression_units).contexts
        reference = list(dict.fromkeys(list(shipped) + list(names)))
    rows = list(names) + [c for c in reference if c not in names]
    expr_all = context_expression(rows, session.genes, expression, expression_units, label=model_label(model))
    t0 = time.perf_counter()
    probs, seqs = bin_probabilities(session, genome, bins, expr_all, progress=progress)
    t_prob = time.perf_counter() - t0
    cut = _central(settings.width)
    usable = np.array([set(s[cut].upper()) <= set(ALPHABET) for s in seqs])
    p_ref = probs[:, [rows.index(c) for c in reference]] if reference else probs[:, :0]
    results = []
    for j, ctx in enumerate(names):
        idx, counts = select_bins(probs[:, j], p_ref, usable, settings)
        used = bins.iloc[idx].reset_index(drop=True).assign(p=probs[idx, j])
        res = ContextMotifs(ctx, used, counts, seconds={"P of the candidates": round(t_prob, 1)})
        results.append(res)
        if len(idx) == 0:
            log.warning("%s: no bin passes the selection (%s); no motifs", ctx, counts)
            continue
        if len(idx) < FEW_BINS:
            log.warning("%s: only %d bins pass the selection (%s); TF-MoDISco needs a few hundred: give a larger "
                        "region, a lower --open-threshold or --select all", ctx, len(idx), counts)
        onehot = one_hot_batch([seqs[i] for i in idx])
        mean = session.mean_values(_windows(used))
        t0 = time.perf_counter()
        hyp = hypothetical_contributions(session, onehot, expr_all[j: j + 1], mean, settings.width, settings.center,
                                         settings.batch_size, progress, desc=f"attributions {ctx}")
        res.seconds["attributions"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        log.info("%s: TF-MoDISco on %d windows of %d bp", ctx, len(idx), settings.width)
        pos, neg, patterns = run_modisco(onehot[:, cut, :], hyp, settings)
        res.seconds["tf-modisco"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        for pat, table in zip(patterns, tomtom_matches([p.trimmed_ppm for p in patterns], db, settings.n_matches)):
            pat.matches = table
        res.seconds["tomtom"] = round(time.perf_counter() - t0, 1)
        res.patterns, res.modisco = patterns, (pos, neg)
        log.info("%s: %d bins, %d patterns (%s)", ctx, len(idx), len(patterns),
                 ", ".join(f"{p.name}: {p.n_seqlets} seqlets, {p.matches['match_name'].iloc[0]}"
                           for p in patterns) or "none")
    return LearnedMotifs(names, results, settings, model_label(model), db)


# ---- outputs ----------------------------------------------------------------------------

def _safe(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]", "_", name)


def _ic_scaled(ppm: np.ndarray) -> np.ndarray:
    """(w, 4) PPM scaled by each position's information content (bits), as a sequence logo draws it."""
    p = np.clip(ppm, 1e-9, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    ic = 2.0 + (p * np.log2(p)).sum(axis=1)
    return p * ic[:, None]


def plot_pattern(pat: Pattern, db: MotifDatabase, png) -> None:
    """The pattern's CWM (trimmed span shaded) and, below, its best match's logo in the matched orientation."""
    import matplotlib

    matplotlib.use("Agg")
    import logomaker
    import matplotlib.pyplot as plt

    best = pat.matches.iloc[0] if pat.matches is not None and len(pat.matches) else None
    fig, axes = plt.subplots(2 if best is not None else 1, 1, figsize=(max(4.0, 0.28 * len(pat.cwm)), 3.6),
                             squeeze=False, layout="constrained")
    ax = axes[0, 0]
    logomaker.Logo(pd.DataFrame(pat.cwm, columns=list(ALPHABET)), ax=ax, color_scheme="classic", show_spines=False)
    ax.axvspan(pat.lo - 0.5, pat.hi - 0.5, color="#F4D03F", alpha=0.25, linewidth=0)
    ax.set_title(f"{pat.name} ({pat.direction} accessibility; {pat.n_seqlets} seqlets): CWM", fontsize=8, loc="left")
    ax.tick_params(labelsize=6)
    if best is not None:
        k = db.ids.index(best["match_id"])
        ppm = db.ppms[k].T  # (w, 4)
        if best["strand"] == "-":
            ppm = ppm[::-1, ::-1]
        ax2 = axes[1, 0]
        logomaker.Logo(pd.DataFrame(_ic_scaled(ppm), columns=list(ALPHABET)), ax=ax2, color_scheme="classic",
                       show_spines=False)
        ax2.set_ylim(0, 2)
        ax2.set_title(f"best match {best['match_id']} {best['match_name']} ({best['strand']}): "
                      f"p = {best['p']:.2g}, q = {best['q']:.2g} (bits)", fontsize=8, loc="left")
        ax2.tick_params(labelsize=6)
    try:
        fig.savefig(png, dpi=80, format="png")
    finally:
        plt.close(fig)


def write_meme(patterns: Sequence[Pattern], path, context: str) -> None:
    """The patterns' trimmed PPMs as a MEME file (nsites: the seqlet count)."""
    from modiscolite.meme_writer import MEMEWriter, MEMEWriterMotif

    writer = MEMEWriter(memesuite_version="4", motifs=[], alphabet="ACGT",
                        background_frequencies="A 0.25 C 0.25 G 0.25 T 0.25", strands="+ -")
    for p in patterns:
        ppm = np.clip(p.trimmed_ppm, 0.0, None)
        ppm = ppm / ppm.sum(axis=1, keepdims=True)
        writer.add_motif(MEMEWriterMotif(name=f"{_safe(context)}.{p.name}", probability_matrix=ppm,
                                         source_sites=int(p.n_seqlets), alphabet="ACGT"))
    writer.write(path)


def _fmt(x: float) -> str:
    return f"{x:.2g}"


def _match_cell(table: pd.DataFrame | None, n: int = 3, sep: str = "<br>") -> str:
    if table is None or not len(table):
        return "-"
    return sep.join(f"{r.match_id} {r.match_name} (p {_fmt(r.p)}, q {_fmt(r.q)}, {r.strand})"
                    for r in table.iloc[:n].itertuples())


def _describe_selection(res: ContextMotifs, s: MotifSettings) -> str:
    c = res.counts
    if s.select == "specific":
        how = (f"{c['candidates']:,} candidate bins ({c['with_N']:,} left out for N in the central {s.width} bp); "
               f"{c['open_here']:,} open here (P >= {s.open_threshold}), {c['open_here_specific']:,} of them open in "
               f"fewer than {s.max_open_frac:.0%} of the reference contexts; kept {c['kept']:,} (largest P first, "
               f"at most {s.max_bins:,})")
    else:
        how = (f"{c['candidates']:,} candidate bins, all used (--select all; {c['with_N']:,} left out for N); kept "
               f"{c['kept']:,} (largest P first, at most {s.max_bins:,})")
    if len(res.bins):
        how += f"; their P here: median {float(np.median(res.bins['p'])):.3f}, min {float(res.bins['p'].min()):.3f}"
    return how


def report_markdown(res: ContextMotifs, lm: LearnedMotifs) -> str:
    s = lm.settings
    lines = [f"# Motifs the model learned in {res.context}", "",
             f"Model: {lm.model}. Motif database: {lm.db.path.name} ({len(lm.db.ids)} motifs).", "",
             f"**Bins.** {_describe_selection(res, s)}.", "",
             f"**Attributions**: gradient of logit P(accessible) in {res.context} over the central {s.width} bp "
             f"of each 1 kb window{', centred over A/C/G/T' if s.center else ''} (hypothetical contributions); "
             f"**TF-MoDISco** (modisco-lite): at most {s.max_seqlets:,} seqlets per sign, {s.leiden_runs} Leiden "
             f"runs; **Tomtom** (memelite) of each pattern's PPM trimmed where summed |CWM| >= {s.trim_threshold} "
             "of its max; q: Benjamini-Hochberg over the database.", "",
             "Seconds: " + ", ".join(f"{k} {v}" for k, v in res.seconds.items()) + ".", ""]
    if not res.patterns:
        lines += ["**No motifs**: " + ("no bin passed the selection." if not len(res.bins) else
                  f"TF-MoDISco found no pattern (fewer than --min-seqlets {s.min_seqlets} seqlets of a sign, or no "
                  "cluster large enough); give more bins."), ""]
        return "\n".join(lines)
    lines += ["| pattern | effect | seqlets | logo (CWM; best match) | best matches (Tomtom) |", "|---|---|---:|---|---|"]
    for p in res.patterns:
        lines.append(f"| {p.name} | {p.direction} | {p.n_seqlets} | ![{p.name}](logos/{p.name}.png) | "
                     f"{_match_cell(p.matches)} |")
    lines += ["", "All matches: matches.tsv; the motifs: motifs.meme; TF-MoDISco's results: modisco.h5.", ""]
    return "\n".join(lines)


def report_html(res: ContextMotifs, lm: LearnedMotifs) -> str:
    s = lm.settings
    e = html.escape
    head = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Learned motifs: {e(res.context)}</title>"
            "<style>body{font-family:sans-serif;max-width:1100px}td,th{border:1px solid #ccc;padding:4px;"
            "vertical-align:top}table{border-collapse:collapse}</style></head><body>")
    parts = [head, f"<h1>Motifs the model learned in {e(res.context)}</h1>",
             f"<p>Model: {e(lm.model)}. Motif database: {e(lm.db.path.name)} ({len(lm.db.ids)} motifs).</p>",
             f"<p><b>Bins.</b> {e(_describe_selection(res, s))}.</p>",
             "<p>Seconds: " + e(", ".join(f"{k} {v}" for k, v in res.seconds.items())) + ".</p>"]
    if not res.patterns:
        parts.append("<p><b>No motifs.</b></p>")
    else:
        parts.append("<table><tr><th>pattern</th><th>effect</th><th>seqlets</th><th>logo (CWM; best match)</th>"
                     "<th>best matches (Tomtom)</th></tr>")
        for p in res.patterns:
            parts.append(f"<tr><td>{e(p.name)}</td><td>{p.direction}</td><td>{p.n_seqlets}</td>"
                         f"<td><img src='logos/{e(p.name)}.png' width='420'></td>"
                         f"<td>{_match_cell(p.matches).replace('&', '&amp;')}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def matches_table(res: ContextMotifs) -> pd.DataFrame:
    cols = ["context", "pattern", "effect", "n_seqlets", "rank", "match_id", "match_name", "p", "q", "E", "strand",
            "offset", "overlap"]
    frames = [p.matches.assign(context=res.context, pattern=p.name, effect=p.direction, n_seqlets=p.n_seqlets)
              for p in res.patterns if p.matches is not None]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def summary_table(lm: LearnedMotifs) -> pd.DataFrame:
    rows = []
    for res in lm.results:
        for p in res.patterns:
            best = p.matches.iloc[0]
            rows.append({"context": res.context, "n_bins": len(res.bins), "pattern": p.name, "effect": p.direction,
                         "n_seqlets": p.n_seqlets, "best_match_id": best["match_id"],
                         "best_match_name": best["match_name"], "p": best["p"], "q": best["q"]})
        if not res.patterns:
            rows.append({"context": res.context, "n_bins": len(res.bins), "pattern": "", "effect": "", "n_seqlets": 0,
                         "best_match_id": "", "best_match_name": "", "p": np.nan, "q": np.nan})
    return pd.DataFrame(rows)


def write_learned_motifs(lm: LearnedMotifs, out_dir) -> Path:
    """The whole output folder, written at once (module docstring)."""
    from modiscolite.io import save_hdf5

    with atomic_folder(out_dir) as tmp:
        summary_table(lm).to_csv(tmp / "summary.tsv", sep="\t", index=False, float_format=FLOAT_FORMAT)
        for res in lm.results:
            d = tmp / _safe(res.context)
            (d / "logos").mkdir(parents=True)
            b = res.bins
            pd.DataFrame({"chrom": b["chrom"], "start": b["start"], "end": b["end"], "name": b["name"],
                          "p": b["p"]}).to_csv(d / "bins.bed", sep="\t", index=False, header=False,
                                                 float_format=FLOAT_FORMAT)
            matches_table(res).to_csv(d / "matches.tsv", sep="\t", index=False, float_format="%.4g")
            write_meme(res.patterns, d / "motifs.meme", res.context)
            pos, neg = res.modisco
            save_hdf5(str(d / "modisco.h5"), pos, neg, lm.settings.width)
            for p in res.patterns:
                plot_pattern(p, lm.db, d / "logos" / f"{p.name}.png")
            (d / "report.md").write_text(report_markdown(res, lm))
            (d / "report.html").write_text(report_html(res, lm))
    return Path(out_dir)


# ---- command ----------------------------------------------------------------------------

def _run(args) -> int:
    out = check_new_folder(args.output)
    if (args.region is None) == (args.bed is None):
        raise ChromDragoNNError("give either --region or --bed")
    settings = MotifSettings(select=args.select, open_threshold=args.open_threshold, max_open_frac=args.max_open_frac,
                             max_bins=args.max_bins, width=args.width, center=not args.no_center,
                             max_seqlets=args.max_seqlets, min_seqlets=args.min_seqlets, leiden_runs=args.leiden_runs,
                             trim_threshold=args.trim_threshold, n_matches=args.matches,
                             batch_size=args.batch_size).check()
    parse_contexts(args.contexts)
    db = MotifDatabase.load(args.motifs)
    if args.bed is not None:
        check_readable(args.bed, "BED file")
    lm = learned_motifs(args.fasta, args.contexts, region=args.region, bed=args.bed, expression=args.expression,
                        expression_units=args.expression_units, model=model_option(args), mean_bigwig=args.mean_bigwig,
                        device=args.device, settings=settings, motif_db=db, progress=not args.quiet)
    write_learned_motifs(lm, out)
    n = sum(len(r.patterns) for r in lm.results)
    log.info("wrote %d motifs over %d contexts to %s (summary.tsv, <context>/report.md)", n, len(lm.results), out)
    return 0


def add_cli(subparsers, common) -> None:
    p = subparsers.add_parser(
        "learned-motifs", parents=[common], help="motifs the model learned per context (TF-MoDISco + Tomtom)",
        description="Per context: bins open there (and in few contexts), gradient attributions, TF-MoDISco "
                    "(modisco-lite) motifs, Tomtom (memelite) matches to JASPAR 2024; writes a folder with "
                    "summary.tsv and per context report.md/.html with logos, matches.tsv, motifs.meme, modisco.h5.")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--region", help="CHROM:START-END, 1-based inclusive, cut into 200 bp candidate bins")
    where.add_argument("--bed", help="BED of candidate bins (each interval one bin, read through its centred 1 kb)")
    p.add_argument("-o", "--output", required=True, help="output folder (must not exist)")
    p.add_argument("--select", default="specific", choices=list(SELECTIONS),
                   help="specific (default): bins with P >= --open-threshold in the context and in fewer than "
                        "--max-open-frac of the reference contexts (the 56 shipped ones and yours); all: every bin")
    p.add_argument("--open-threshold", type=float, default=0.5, help="P(accessible) that counts as open (0.5)")
    p.add_argument("--max-open-frac", type=float, default=0.3,
                   help="specific bins are open in fewer than this fraction of the reference contexts (0.3)")
    p.add_argument("--max-bins", type=int, default=1000, help="bins per context, largest P first (1000)")
    p.add_argument("--width", type=int, default=400, help="central bp of each 1 kb window given to TF-MoDISco (400)")
    p.add_argument("--no-center", action="store_true",
                   help="do not centre the gradient over A/C/G/T at each position")
    p.add_argument("--max-seqlets", type=int, default=2000, help="TF-MoDISco seqlets per sign at most (2000)")
    p.add_argument("--min-seqlets", type=int, default=100,
                   help="TF-MoDISco clusters a sign's seqlets only when there are more than this (100)")
    p.add_argument("--leiden-runs", type=int, default=10, help="TF-MoDISco Leiden runs (10; modisco-lite's own: 50)")
    p.add_argument("--trim-threshold", type=float, default=0.3,
                   help="trim a pattern to positions with summed |CWM| >= this x its max before Tomtom (0.3)")
    p.add_argument("--motifs", default=JASPAR_NAME,
                   help="MEME motif database for Tomtom (default 'jaspar': JASPAR 2024 CORE vertebrates)")
    p.add_argument("--matches", type=int, default=10, help="database motifs listed per pattern in matches.tsv (10)")
    p.add_argument("--batch-size", type=int, default=8, help="windows per attribution pass (8)")
    p.set_defaults(func=_run)
