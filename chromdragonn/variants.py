"""Variant-effect scores: VCF alleles -> reference / alternative windows -> scores per cell context.

For each VCF record, the window is the 1,000 bp whose 0-based index 499 holds the
record's first REF base (kipoiseq ``Interval(chrom, POS - 1, POS).resize(1000)``,
i.e. genome positions [POS - 500, POS + 500) 0-based).  The reference window has
the VCF's REF there and the alternative window the ALT.  When REF and ALT differ
in length (indels) the ALT window keeps 1,000 bp by taking real flanking sequence
symmetrically around the variant: an ALT d bases longer than REF drops floor(d/2)
bases on the left and ceil(d/2) on the right; an ALT d bases shorter takes
floor(d/2) more bases on the left and ceil(d/2) more on the right (see
:func:`allele_window`).  Past a chromosome end the window is padded with N.

Each window goes through the trunk once; the contexts only run the split head
(``predict_grid``), so C contexts cost about what one does.  The mean
accessibility input (models that have it) is that of the reference window's
central 200 bp, the same for REF and ALT.

Scores, per allele and context, from P = P(accessible):
``ref`` = P(ref), ``alt`` = P(alt), ``diff`` = P(alt) - P(ref),
``abs_diff`` = |diff|, ``logit`` = logit(P(alt)) - logit(P(ref)) (P clipped to
[1e-7, 1 - 1e-7]).  With ``both_strands`` the probabilities of a window and of
its reverse complement are averaged before the scores are taken, as the fold
ensemble averages its members' probabilities.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from chromdragonn.cli import model_option
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.genome import WINDOW, Genome, match_chrom, one_hot_batch
from chromdragonn.inputs.session import Session, positive_int
from chromdragonn.outputs.atomic import atomic_output, check_output_path
from chromdragonn.outputs.tables import FLOAT_FORMAT
from chromdragonn.outputs.vcf import VCF_SUFFIXES, ScoreVcfWriter, is_vcf_output
from chromdragonn.scores import DEFAULT_SCORE, SCORES, compute_scores, parse_scores

log = logging.getLogger(__name__)

VARIANT_INDEX = WINDOW // 2 - 1  # 499: the first REF base's index in the window
REF_MISMATCH_MODES = ("flag", "skip", "stop")
KEY_COLUMNS = ["#CHROM", "POS", "ID", "REF", "ALT"]
REF_MATCH_COLUMN = "ref_match"


# ---------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------

def window_start(pos: int) -> int:
    """0-based start of the window of a variant at 1-based ``pos`` (first REF base at index 499)."""
    return pos - 1 - VARIANT_INDEX


def allele_window(genome, chrom: str, pos: int, ref_len: int, allele: str, width: int = WINDOW) -> str:
    """The ``width``-bp sequence with ``allele`` in place of the ``ref_len`` bases at 1-based ``pos``.

    An allele as long as REF starts at index 499.  One d = len(allele) - ref_len
    bases longer starts at 499 - floor(d/2) (drops floor(d/2) flanking bases on the
    left, ceil(d/2) on the right); one |d| bases shorter starts at 499 + floor(|d|/2)
    (takes that many more real bases on the left, the rest on the right).
    """
    p0 = pos - 1
    d = len(allele) - ref_len
    shift = int(d / 2)  # toward zero
    left_len = VARIANT_INDEX - shift
    right_len = width - left_len - len(allele)
    left = genome.fetch(chrom, p0 - left_len, p0) if left_len > 0 else ""
    right = genome.fetch(chrom, p0 + ref_len, p0 + ref_len + right_len) if right_len > 0 else ""
    return (left + allele.upper() + right)[:width]


def fits_window(ref_len: int, allele: str, width: int = WINDOW) -> bool:
    """Whether the allele's window shows the variant with reference sequence on both sides: REF no
    longer than the window, and at least one flanking reference base left and right of the allele."""
    left_len = VARIANT_INDEX - int((len(allele) - ref_len) / 2)
    return ref_len <= width and left_len >= 1 and width - left_len - len(allele) >= 1


# ---------------------------------------------------------------------------
# Reading the VCF
# ---------------------------------------------------------------------------

@dataclass
class Counts:
    """What happened to the VCF's records and alleles."""
    records: int = 0
    alleles_scored: int = 0
    ref_mismatch_flagged: int = 0
    ref_mismatch_skipped: int = 0
    symbolic: int = 0
    star: int = 0
    missing_alt: int = 0
    beyond_end: int = 0
    ref_on_n: int = 0
    too_long: int = 0
    chrom_missing: Counter = field(default_factory=Counter)
    chroms_seen: set = field(default_factory=set)

    def log(self, vcf, genome, n_contexts: int) -> None:
        log.info("%d VCF records read; %d alleles scored in %d contexts", self.records, self.alleles_scored,
                 n_contexts)
        if self.alleles_scored == 0:
            log.info("0 variants scored")
        skipped = [
            (self.symbolic, "symbolic ALT alleles (<DEL>, breakends, ...) skipped"),
            (self.star, "'*' ALT alleles (overlapping deletion) skipped"),
            (self.missing_alt, "records with a missing ALT ('.') skipped"),
            (self.beyond_end, f"records beyond the end of their chromosome in {genome.path} "
                              f"({', '.join(f'{k} is {v:,} bp' for k, v in genome.lengths.items())}) skipped"),
            (self.ref_on_n, f"records whose REF has N, in the VCF or in {genome.path} (assembly gap or outside "
                            "the FASTA's sequence: no base to score) skipped"),
            (self.too_long, f"alleles too long for the {WINDOW:,} bp window (REF longer than it, or an ALT that leaves "
                            "no reference base on one side) skipped"),
            (self.ref_mismatch_skipped, f"alleles whose REF does not match {genome.path} skipped "
                                        "(--ref-mismatch skip)"),
        ]
        for n, what in skipped:
            if n:
                log.warning("%d %s", n, what)
        if self.chrom_missing:
            log.warning("%d records on chromosome(s) not in %s skipped (chr-prefix naming was reconciled): %s",
                        sum(self.chrom_missing.values()), genome.path,
                        ", ".join(f"{k} ({v})" for k, v in self.chrom_missing.items()))
        if self.ref_mismatch_flagged:
            log.warning("%d alleles whose VCF REF does not match %s were scored with the VCF alleles and "
                        "flagged (%s = 0)", self.ref_mismatch_flagged, genome.path, REF_MATCH_COLUMN)


@dataclass
class _Allele:
    record: int  # index of its record in the chunk
    alt: str
    alt_index: int  # 0-based among the record's ALTs (VCF Number=A order)
    ref_match: bool


@dataclass
class _Record:
    variant: object  # the cyvcf2 Variant, kept for VCF output
    chrom: str
    pos: int
    ref: str
    fasta_chrom: str | None
    alleles: list


def _is_symbolic(alt: str) -> bool:
    return alt.startswith("<") or "[" in alt or "]" in alt


def _read_chunks(vcf, genome, counts: Counts, ref_mismatch: str, vcf_path, chunk_alleles: int
                 ) -> Iterator[list[_Record]]:
    """Records in chunks of about ``chunk_alleles`` scorable alleles; every record is yielded
    (unscorable ones with no alleles) so a VCF output can copy it."""
    chunk: list[_Record] = []
    n_alleles = 0
    fasta_names: dict[str, str | None] = {}
    for variant in vcf:
        counts.records += 1
        chrom, pos, ref = variant.CHROM, int(variant.POS), str(variant.REF)
        counts.chroms_seen.add(chrom)
        if chrom not in fasta_names:
            fasta_names[chrom] = match_chrom(chrom, genome.lengths)
        name = fasta_names[chrom]
        rec = _Record(variant, chrom, pos, ref, name, [])
        chunk.append(rec)
        if name is None:
            counts.chrom_missing[chrom] += 1
        elif pos > genome.lengths[name]:
            counts.beyond_end += 1
        else:
            genome_ref = genome.fetch(name, pos - 1, pos - 1 + len(ref))
            alts = [str(a) for a in variant.ALT]
            if "N" in genome_ref or "N" in ref.upper():  # the rule for N: no REF with N is scored (ISM: no mutants of N)
                counts.ref_on_n += 1
            elif not alts or alts == ["."]:
                counts.missing_alt += 1
            else:
                match = genome_ref == ref.upper()
                for i, alt in enumerate(alts):
                    if alt == "*":
                        counts.star += 1
                        continue
                    if _is_symbolic(alt) or alt in (".", ""):
                        counts.symbolic += 1
                        continue
                    if not fits_window(len(ref), alt):
                        counts.too_long += 1
                        continue
                    if not match:
                        if ref_mismatch == "stop":
                            raise ChromDragoNNError(
                                f"{vcf_path}: record {counts.records} ({chrom}:{pos}) has REF {ref[:20]} but "
                                f"{genome.path} has {genome_ref[:20]} there (--ref-mismatch stop)")
                        if ref_mismatch == "skip":
                            counts.ref_mismatch_skipped += 1
                            continue
                        counts.ref_mismatch_flagged += 1
                    rec.alleles.append(_Allele(len(chunk) - 1, alt, i, match))
                    counts.alleles_scored += 1
                    n_alleles += 1
        # Records that cannot be scored still count, so a VCF of them stays bounded too.
        if n_alleles >= chunk_alleles or len(chunk) >= 8 * chunk_alleles:
            yield chunk
            chunk, n_alleles = [], 0
    if chunk:
        yield chunk


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------

class VariantScorer:
    """Scores allele chunks: trunk once per window, contexts through the split head.

    Optional extras (:mod:`chromdragonn.variant_extras`): ``contrasts`` [(A, B)] add ``A-B/diff``;
    ``specificity`` adds ``<context>/z`` (the 56 Roadmap contexts run through the same head pass);
    ``background`` (a :class:`~chromdragonn.variant_extras.Background`) adds ``<context>/pct``;
    ``motifs`` (a :class:`~chromdragonn.motifs.MotifAnnotator`) adds the ``motifs`` column."""

    def __init__(self, session: Session, genome, scores=(DEFAULT_SCORE,), both_strands: bool = False,
                 batch_size: int = 32, contrasts=(), specificity: bool = False, background=None, motifs=None):
        self.session = session
        self.model = session.model
        self.device = session.device
        self.expr = session.expression_tensor()
        self.contexts = list(session.contexts)
        self.genome = genome
        self.scores = parse_scores(scores)
        self.mean_track = session.mean_track
        self.both_strands = both_strands
        self.batch_size = positive_int(batch_size, "batch size")
        self.contrasts = list(contrasts)
        self.specificity = bool(specificity)
        self.background = background
        self.motifs = motifs
        self.n_reference = 0
        if self.specificity:
            from chromdragonn.inputs.expression import ExpressionSource
            from chromdragonn.inputs.session import context_expression

            roadmap = ExpressionSource().contexts
            reference = torch.from_numpy(context_expression(roadmap, session.genes)).to(self.device)
            self.n_reference = len(roadmap)
            self.expr = torch.cat([self.expr, reference])
        extra = (["z"] if self.specificity else []) + (["pct"] if background is not None else [])
        self.columns = [f"{c}/{s}" for c in self.contexts for s in self.scores + extra]
        self.columns += [f"{a}-{b}/diff" for a, b in self.contrasts]
        self.string_columns = ["motifs"] if motifs is not None else []

    @torch.no_grad()
    def _probs(self, seqs: list[str], means: np.ndarray | None) -> np.ndarray:
        out = np.empty((len(seqs), self.expr.shape[0]), dtype=np.float64)  # contexts (+ the 56 reference ones)
        for lo in range(0, len(seqs), self.batch_size):
            x = torch.from_numpy(one_hot_batch(seqs[lo: lo + self.batch_size])).to(self.device)
            m = None if means is None else torch.as_tensor(means[lo: lo + self.batch_size], device=self.device)
            p = self.model.predict_grid(x, self.expr, m).double()
            if self.both_strands:
                p = (p + self.model.predict_grid(x.flip(1, 2), self.expr, m).double()) / 2
            out[lo: lo + len(x)] = p.cpu().numpy()
        return out

    def empty(self) -> pd.DataFrame:
        return pd.DataFrame(columns=KEY_COLUMNS + self.columns + self.string_columns + [REF_MATCH_COLUMN])

    def score_chunk(self, chunk: list[_Record]) -> pd.DataFrame:
        """One row per scorable allele of the chunk: key columns, scores, ref_match."""
        recs = [r for r in chunk if r.alleles]
        alleles = [a for r in recs for a in r.alleles]
        if not alleles:
            return self.empty()
        ref_seqs = [allele_window(self.genome, r.fasta_chrom, r.pos, len(r.ref), r.ref) for r in recs]
        alt_seqs = [allele_window(self.genome, chunk[a.record].fasta_chrom, chunk[a.record].pos,
                                  len(chunk[a.record].ref), a.alt) for a in alleles]
        rec_row = {id(r): i for i, r in enumerate(recs)}
        allele_rec = np.array([rec_row[id(chunk[a.record])] for a in alleles])
        means = None
        if self.mean_track is not None:
            means = np.array([self.mean_track.value(r.fasta_chrom, window_start(r.pos), window_start(r.pos) + WINDOW)
                              for r in recs], dtype=np.float32)
        probs = self._probs(ref_seqs + alt_seqs, None if means is None else np.concatenate([means, means[allele_rec]]))
        n_ctx = len(self.contexts)
        p_ref = probs[: len(recs)][allele_rec]
        p_alt = probs[len(recs):]
        values = compute_scores(p_ref[:, :n_ctx], p_alt[:, :n_ctx], self.scores)
        diff = p_alt[:, :n_ctx] - p_ref[:, :n_ctx]
        if self.specificity:
            from chromdragonn.variant_extras import specificity_z

            values["z"] = specificity_z(diff, p_alt[:, n_ctx:] - p_ref[:, n_ctx:])
        if self.background is not None:
            values["pct"] = np.stack([self.background.percentile(c, diff[:, j]) for j, c in enumerate(self.contexts)],
                                     axis=1)
        df = pd.DataFrame({
            "#CHROM": [chunk[a.record].chrom for a in alleles],
            "POS": [chunk[a.record].pos for a in alleles],
            "ID": [chunk[a.record].variant.ID or "." for a in alleles],
            "REF": [chunk[a.record].ref for a in alleles],
            "ALT": [a.alt for a in alleles],
        })
        extra = [k for k in ("z", "pct") if k in values]
        cols = {f"{c}/{s}": values[s][:, j] for j, c in enumerate(self.contexts) for s in self.scores + extra}
        index = {c: j for j, c in enumerate(self.contexts)}
        for a, b in self.contrasts:
            cols[f"{a}-{b}/diff"] = diff[:, index[a]] - diff[:, index[b]]
        if self.motifs is not None:
            cols["motifs"] = self.motifs.annotate(
                self.genome, [(chunk[a.record].fasta_chrom, chunk[a.record].pos, chunk[a.record].ref, a.alt)
                              for a in alleles])
        df = pd.concat([df, pd.DataFrame(cols)], axis=1)
        df[REF_MATCH_COLUMN] = [int(a.ref_match) for a in alleles]
        return df


class _TsvSink:
    """Scores streamed to a TSV, one chunk at a time."""

    def __init__(self, path: Path, scorer: VariantScorer):
        self.fh = open(path, "w")
        self.fh.write("\t".join(scorer.empty().columns) + "\n")

    def write(self, chunk, df: pd.DataFrame) -> None:
        if len(df):
            df.to_csv(self.fh, sep="\t", header=False, index=False, float_format=FLOAT_FORMAT)

    def close(self) -> None:
        self.fh.close()


class _VcfSink:
    """The input VCF, every record, with the scores of its scored alleles as INFO fields."""

    def __init__(self, path: Path, reader, vcf_path, scorer: VariantScorer, compressed: bool):
        from chromdragonn.variant_extras import EXTRA_DOCS

        extra = [k for k in ("z", "pct") if f"{scorer.contexts[0]}/{k}" in scorer.columns]
        fields = [(f"{c}/{s}", c, s, SCORES[s].doc if s in SCORES else EXTRA_DOCS[s])
                  for c in scorer.contexts for s in scorer.scores + extra]
        fields += [(f"{a}-{b}/diff", f"{a}-{b}", "diff", f"diff in {a} minus diff in {b}") for a, b in scorer.contrasts]
        strings = [("motifs", "CDN_MOTIFS", EXTRA_DOCS["motifs"])] if scorer.string_columns else []
        self.writer = ScoreVcfWriter(path, reader, vcf_path, fields, compressed, string_fields=strings)

    def write(self, chunk: list[_Record], df: pd.DataFrame) -> None:
        row = 0
        columns = {col: df[col].to_numpy() for col in self.writer.columns + self.writer.string_columns} \
            if len(df) else {}
        for rec in chunk:
            values = {}
            if rec.alleles:
                values = {col: [(a.alt_index, v[row + k]) for k, a in enumerate(rec.alleles)]
                          for col, v in columns.items()}
                row += len(rec.alleles)
            self.writer.write(rec.variant, values, ref_mismatch=bool(rec.alleles) and not rec.alleles[0].ref_match)

    def close(self) -> None:
        self.writer.close()


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------

def open_vcf(path: str | os.PathLike):
    """cyvcf2 reader, or a one-line error for a missing or non-VCF file."""
    import cyvcf2

    path = Path(path)
    if not path.is_file():
        raise ChromDragoNNError(f"VCF file not found: {path}")
    try:
        return cyvcf2.VCF(str(path))
    except OSError:
        raise ChromDragoNNError(f"{path} is not a VCF or BCF file (plain or bgzipped) that htslib can read") from None


def _prepare(vcf, fasta, contexts, expression, expression_units, model, scores, ref_mismatch, mean_bigwig,
             both_strands, batch_size, device, contrast=None, specificity=False, background=None, motifs=None,
             progress=False):
    """Open and check every input before any output exists (a background VCF is scored here)."""
    from chromdragonn.variant_extras import parse_contrasts

    scores = parse_scores(scores)
    batch_size = positive_int(batch_size, "batch size")
    if ref_mismatch not in REF_MISMATCH_MODES:
        raise ChromDragoNNError(f"--ref-mismatch must be one of {', '.join(REF_MISMATCH_MODES)}, got {ref_mismatch!r}")
    reader = open_vcf(vcf)
    genome = Genome(fasta)
    session = Session.open(contexts, model, expression, expression_units, mean_bigwig, device)
    contrasts = parse_contrasts(contrast, session.contexts)
    annotator = None
    if motifs is not None:
        from chromdragonn.motifs import MotifAnnotator

        annotator = motifs if isinstance(motifs, MotifAnnotator) else MotifAnnotator.load(motifs)
    bg = None
    if background is not None:
        bg = load_background(background, session, genome, model, both_strands, batch_size, progress)
    return reader, genome, VariantScorer(session, genome, scores, both_strands, batch_size, contrasts, specificity,
                                         bg, annotator)


def load_background(background, session: Session, genome, model, both_strands: bool, batch_size: int,
                    progress: bool = False):
    """``shipped`` (the 1000 Genomes common SNVs scored with the default model), a
    :class:`~chromdragonn.variant_extras.Background`, or a VCF scored here the same way as the variants."""
    from chromdragonn.inputs.expression import ExpressionSource
    from chromdragonn.inputs.session import DEFAULT_MODEL_NAMES
    from chromdragonn.variant_extras import SHIPPED_NAMES, Background

    if isinstance(background, Background):
        return background
    if str(background).strip().lower() in SHIPPED_NAMES:
        shipped = ExpressionSource()
        own = [c for j, c in enumerate(session.contexts)
               if c not in shipped.contexts or not np.array_equal(session.expression[j], shipped.matrix([c])[0])]
        is_default = model is None or (isinstance(model, str) and model.strip().lower() in DEFAULT_MODEL_NAMES)
        return Background.shipped(session.contexts, is_default, both_strands, own)
    reader = open_vcf(background)
    try:
        plain = VariantScorer(session, genome, ("diff",), both_strands, batch_size)
        df, counts = _stream(reader, genome, plain, background, "skip", progress)
    finally:
        reader.close()
    if not len(df):
        raise ChromDragoNNError(f"background VCF {background} has no variant that could be scored")
    log.info("background: %d alleles of %s scored", len(df), background)
    return Background({c: df[f"{c}/diff"].to_numpy(np.float64) for c in session.contexts},
                      f"{background} ({len(df)} alleles)")


def _finish(counts: Counts, genome, vcf_path, n_contexts: int) -> None:
    if counts.records and not (counts.chroms_seen - set(counts.chrom_missing)):
        raise ChromDragoNNError(
            f"none of the VCF's chromosomes ({', '.join(sorted(counts.chroms_seen)[:10])}) is in {genome.path} "
            f"(chr-prefix naming was already reconciled); the FASTA has {', '.join(genome.chromosomes[:10])}")
    counts.log(vcf_path, genome, n_contexts)


def _stream(reader, genome, scorer: VariantScorer, vcf_path, ref_mismatch: str, progress: bool, sink=None,
            keep: bool = True) -> tuple[pd.DataFrame | None, Counts]:
    counts = Counts()
    frames = []
    bar = tqdm(unit=" variants", disable=not progress, desc="scoring variants", smoothing=0.1)
    try:
        for chunk in _read_chunks(reader, genome, counts, ref_mismatch, vcf_path, scorer.batch_size):
            df = scorer.score_chunk(chunk)
            if sink is not None:
                sink.write(chunk, df)
            if keep:
                frames.append(df)
            bar.update(len(chunk))
    finally:
        bar.close()
    _finish(counts, genome, vcf_path, len(scorer.contexts))
    if not keep:
        return None, counts
    frames = [f for f in frames if len(f)]
    df = pd.concat(frames, ignore_index=True) if frames else scorer.empty()
    return df, counts


def write_variant_scores(vcf, fasta, contexts, output, expression=None, expression_units: str = "tpm",
                         model=None, scores=(DEFAULT_SCORE,), both_strands: bool = False, batch_size: int = 32,
                         device: str = "cpu", ref_mismatch: str = "flag", mean_bigwig=None,
                         progress: bool = True, keep: bool = False, contrast=None, specificity: bool = False,
                         background=None, motifs=None):
    """Stream scores to ``output`` (TSV, or VCF / VCF.gz with INFO fields), memory bounded by one chunk.

    Never half-written (:mod:`chromdragonn.outputs.atomic`).  Returns (DataFrame or None, Counts).
    """
    output = check_output_path(output, "output", suffixes=(".tsv", ".txt") + VCF_SUFFIXES,
                               inputs=[vcf, fasta, expression, mean_bigwig])
    reader, genome, scorer = _prepare(vcf, fasta, contexts, expression, expression_units, model, scores,
                                      ref_mismatch, mean_bigwig, both_strands, batch_size, device, contrast,
                                      specificity, background, motifs, progress)
    try:
        with atomic_output(output) as tmp:
            if is_vcf_output(output):
                sink = _VcfSink(tmp, reader, vcf, scorer, compressed=output.name.lower().endswith((".gz", ".bgz")))
            else:
                sink = _TsvSink(tmp, scorer)
            try:
                df, counts = _stream(reader, genome, scorer, vcf, ref_mismatch, progress, sink, keep)
            finally:
                sink.close()
    finally:
        reader.close()
    return df, counts


def score_variants(vcf, fasta, contexts, expression=None, expression_units: str = "tpm", model=None,
                   scores=(DEFAULT_SCORE,), both_strands: bool = False, batch_size: int = 32, device: str = "cpu",
                   ref_mismatch: str = "flag", mean_bigwig=None, output=None, progress: bool = False,
                   contrast=None, specificity: bool = False, background=None, motifs=None) -> pd.DataFrame:
    """Score every ALT allele of a VCF in each context; one row per allele.

    Columns: ``#CHROM POS ID REF ALT`` (as in the VCF), one ``<context>/<score>``
    column per context and score, and ``ref_match`` (1 when the VCF REF equals the
    FASTA, 0 when it does not: scored with the VCF alleles, see ``ref_mismatch``).
    ``model``: see :mod:`chromdragonn.inputs.session` (a fold number, 'ensemble', paths,
    or a loaded ``(model, genes)`` pair).  With ``output`` the scores are also written
    there (TSV or VCF).  Extras (:mod:`chromdragonn.variant_extras`): ``contrast`` "A,B" (or a list of
    them) adds ``A-B/diff``; ``specificity`` adds ``<context>/z``; ``background`` ("shipped", a VCF
    path, or a Background) adds ``<context>/pct``; ``motifs`` (a MEME file, "jaspar", or a
    MotifAnnotator) adds the ``motifs`` column (:mod:`chromdragonn.motifs`).
    """
    if output is not None:
        df, _ = write_variant_scores(vcf, fasta, contexts, output, expression, expression_units, model, scores,
                                     both_strands, batch_size, device, ref_mismatch, mean_bigwig, progress,
                                     keep=True, contrast=contrast, specificity=specificity, background=background,
                                     motifs=motifs)
        return df
    reader, genome, scorer = _prepare(vcf, fasta, contexts, expression, expression_units, model, scores,
                                      ref_mismatch, mean_bigwig, both_strands, batch_size, device, contrast,
                                      specificity, background, motifs, progress)
    try:
        df, _ = _stream(reader, genome, scorer, vcf, ref_mismatch, progress)
    finally:
        reader.close()
    return df


def _run(args) -> int:
    write_variant_scores(args.vcf, args.fasta, args.contexts, args.output, expression=args.expression,
                         expression_units=args.expression_units, model=model_option(args), scores=args.scores,
                         both_strands=args.both_strands, batch_size=args.batch_size, device=args.device,
                         ref_mismatch=args.ref_mismatch, mean_bigwig=args.mean_bigwig, progress=not args.quiet,
                         contrast=args.contrast, specificity=args.specificity, background=args.background,
                         motifs=args.motifs)
    log.info("wrote %s", args.output)
    return 0


def add_cli(subparsers, common) -> None:
    p = subparsers.add_parser(
        "score-variants", parents=[common], help="effect of VCF variants on accessibility in chosen cell contexts",
        description="Score each ALT allele of a VCF: P(accessible) of the 1 kb window with the ALT minus that "
                    "with the REF (and other scores), in each named cell context.  Writes a TSV, or the input "
                    "VCF with INFO fields when OUTPUT ends in .vcf or .vcf.gz.")
    p.add_argument("--vcf", required=True, help="VCF or bgzipped VCF, any order; chr22 and 22 both work")
    p.add_argument("-o", "--output", required=True, help="output .tsv, or .vcf / .vcf.gz for an annotated VCF")
    p.add_argument("--scores", default=DEFAULT_SCORE,
                   help=f"comma-separated scores among {', '.join(SCORES)} (default: {DEFAULT_SCORE})")
    p.add_argument("--both-strands", action="store_true",
                   help="average P over each window and its reverse complement")
    p.add_argument("--batch-size", type=int, default=32, help="windows per forward pass (default 32)")
    p.add_argument("--ref-mismatch", default="flag", choices=list(REF_MISMATCH_MODES),
                   help="VCF REF differs from the FASTA: flag (score with the VCF alleles, ref_match = 0; default), "
                        "skip the allele, or stop with an error")
    p.add_argument("--contrast", action="append", default=None, metavar="A,B",
                   help="add A-B/diff: the effect in context A minus that in B (both among --contexts; repeatable)")
    p.add_argument("--specificity", action="store_true",
                   help="add <context>/z: the effect's z-score against its effects in the 56 Roadmap contexts")
    p.add_argument("--background", default=None, metavar="VCF|shipped",
                   help="add <context>/pct: percentile of |diff| among a background VCF's variants scored the same "
                        "way; 'shipped': the common 1000 Genomes SNVs scored with the default model")
    p.add_argument("--motifs", default=None, metavar="MEME|jaspar",
                   help="add the motifs column: motif matches overlapping the variant in REF and ALT with their "
                        "score change (a MEME file; 'jaspar': JASPAR 2024 CORE vertebrates of the shared data)")
    p.set_defaults(func=_run)
