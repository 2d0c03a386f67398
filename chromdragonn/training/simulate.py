"""Simulated labels: a documented, seeded generative rule for accessibility.

No multi-context DNase data is available here, so the training benchmark keeps
everything real (hg19 sequence, the 56 Roadmap epigenomes' TF expression, JASPAR
motifs of panel TFs) except the labels, which come from this rule.  The rule
scores ANY 1,000 bp one-hot window in ANY context given as a TF-expression row,
so the true effect of a variant in a context is known too.

The rule (all quantities of the central 200 bp bin, positions 400-599):

    logit(x, c) = b0
                + a_gc  * (GC(x)  - gc_mean)  / gc_sd           context-independent
                + a_cpg * (CpG(x) - cpg_mean) / cpg_sd          context-independent
                + sum_k  w_k * occ_k(x)        (constitutive motifs, e.g. CTCF)
                + sum_m  w_m * (occ_m(x) - occ_mean_m) * gate_m(c)   (context motifs)

    occ_m(x)  = sum over both strands and every start whose motif middle lies in
                the bin of sigmoid(LLR_m(x, start) - threshold_m)  (soft site count;
                LLR in bits against a uniform background)
    gate_m(c) = clip((e_mc - lo_m) / (hi_m - lo_m), 0, 1), e_mc = arcsinh(TPM) of
                TF m in context c, lo/hi = its 10th/90th percentile over the 56 contexts
    P(accessible) = sigmoid(logit);  label = 1 if u < P, u ~ U(0,1) seeded per (bin, context)

Subtracting occ_mean_m keeps the overall positive rate steady when a TF is
switched on (its sites open, the rest of the genome closes slightly); b0 is
calibrated so that about 5% of (bin, context) pairs are positive.

Two versions (``format`` in the rule JSON):

* **rule v1** (``chromdragonn-simulated-rule/1``, ``simulated_rule.json``): the formula
  above.  Accessibility is a function of the 1 kb window alone.  The rule of the shipped fold
  models is ``SHIPPED_RULE_VERSION`` (v2 since benchmark v2's folds were shipped, 2026-11-30), and
  ``SimulatedAccessibility.default()`` is that rule.
* **rule v2** (``chromdragonn-simulated-rule/2``, ``simulated_rule_v2.json``, benchmark v2):
  the same formula with every sequence effect 3 times v1's (a_gc 2.4, a_cpg 3.0, CTCF 9.0,
  context weights drawn in [7.5, 12] with the same seed, i.e. exactly 3 x v1's; same motifs,
  thresholds, occ_mean), b0 calibrated to 5.5% positives, plus a **locus field** shared by
  all contexts that the window does not determine:

      logit_v2(x, c, chrom, pos) = b0_v2 + 3 * (logit_v1(x, c) - b0_v1) + field(chrom, pos)

  amplitude 2.7 logits, correlation length 10 kb, seed 0 (the rule's seed).

  ``field`` (:class:`LocusField`) is a smooth seeded Gaussian-process-like function along
  the chromosome: random Fourier features of a squared-exponential kernel, standard
  deviation ``amplitude`` (logit units) and correlation length ``length`` (bp; correlation
  exp(-d^2 / (2 length^2)) at distance d, 0.61 at d = length), drawn from the rule's seed.
  ``pos`` is the bin's centre (bin start + 100).  The field is defined on the simulated
  region (``locus_field.regions``); anywhere else, and for a window scored without a
  position (``loci=None``), it is 0, its mean.  b0 is recalibrated with the field included.
  Like chromatin domains, it makes a bin's mean accessibility across contexts carry
  information that its sequence cannot give.  Its settings are :data:`RULE_SETTINGS` [2]; how
  they were chosen (the oracle acceptance) is in training/REPORT.md.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.genome import WINDOW
from chromdragonn.outputs.atomic import atomic_output

log = logging.getLogger(__name__)

RULE_NAME = "simulated labels"
RULE_FORMAT = "chromdragonn-simulated-rule/1"      # rule v1: the window alone
RULE_FORMAT_V2 = "chromdragonn-simulated-rule/2"   # rule v2: v1 + a locus field along the chromosome
RULE_FORMATS = {1: RULE_FORMAT, 2: RULE_FORMAT_V2}
DEFAULT_RULE = Path(__file__).resolve().parent / "simulated_rule.json"
DEFAULT_RULE_V2 = Path(__file__).resolve().parent / "simulated_rule_v2.json"
DEFAULT_RULES = {1: DEFAULT_RULE, 2: DEFAULT_RULE_V2}
# The rule whose labels the shipped weights/fold*.pt were trained on. Every truth check (the benchmarks'
# --rule-version / --rule, SimulatedAccessibility.default(), the tests of the shipped models) defaults to it,
# so replacing the shipped folds with models of another rule changes this one line (training/README.md).
SHIPPED_RULE_VERSION = 2
BIN_START, BIN_END = 400, 600  # central 200 bp of a 1,000 bp window


# build_rule's settings per rule version.  v2 (benchmark v2): every sequence effect of v1 x 3
# (a sharper rule: v2's sequence part is exactly 3 x v1's, same motifs, thresholds and seeded
# weights), a locus field of SD 2.7 logits and correlation length 10 kb, 5.5% positives.
# training/REPORT.md ("Benchmark v2 (simulated labels): oracle acceptance") has the variants tried.
RULE_SETTINGS = {
    1: {"target_rate": 0.05, "a_gc": 0.8, "a_cpg": 1.0, "weight_range": (2.5, 4.0), "constitutive_weight": 3.0},
    2: {"target_rate": 0.055, "a_gc": 2.4, "a_cpg": 3.0, "weight_range": (7.5, 12.0), "constitutive_weight": 9.0,
        "field_amplitude": 2.7, "field_length": 10_000.0},
}
V2_DEFAULTS = RULE_SETTINGS[2]


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    return x.to(torch.float64)


@dataclass
class MotifTerm:
    tf: str
    motif_id: str
    llr: np.ndarray        # (width, 4) log2 odds, A C G T
    threshold: float
    weight: float
    occ_mean: float = 0.0  # context motifs only
    gene_index: int = -1   # column in the expression input (context motifs only)
    lo: float = 0.0
    hi: float = 1.0


def _chrom_key(name: str) -> str:
    """'chr22' and '22' name the same chromosome."""
    name = str(name)
    return name[3:] if name.lower().startswith("chr") else name


class LocusField:
    """Rule v2's locus field: a smooth random function of (chromosome, position), in logit units.

    Random Fourier features of a squared-exponential kernel (Rahimi & Recht 2007):

        field(chrom, x) = amplitude * sqrt(2 / K) * sum_k cos(omega_k * x + phi_k)

    for ``x`` inside one of the field's regions of ``chrom`` (1-based-free: x is the 0-based
    base position, e.g. a bin's centre), and 0 everywhere else (other chromosomes, positions
    off the simulated region, or a window scored with no position: 0 is the field's mean).
    ``omega_k ~ N(0, 1 / length^2)`` (radians per bp) and ``phi_k ~ U(0, 2 pi)`` are drawn once
    from ``numpy.random.default_rng(seed)`` and stored in the rule JSON, so the field does not
    depend on numpy's generator staying the same.  Over a region many lengths long the field
    has mean ~0, standard deviation ``amplitude`` and autocorrelation
    ``(1/K) sum_k cos(omega_k d)`` ~ ``exp(-d^2 / (2 length^2))`` at lag ``d`` (0.61 at one
    ``length``).  The same field is added in every context.
    """

    KIND = "random Fourier features, squared-exponential kernel"

    def __init__(self, spec: dict):
        self.spec = spec
        self.amplitude = float(spec["amplitude"])
        self.length = float(spec["length"])
        self.omega = np.asarray(spec["omega"], dtype=np.float64)
        self.phi = np.asarray(spec["phi"], dtype=np.float64)
        if self.omega.shape != self.phi.shape or self.omega.ndim != 1 or not len(self.omega):
            raise ChromDragoNNError("simulated-labels locus field: omega and phi must be equal-length lists")
        self.regions = [(_chrom_key(r["chrom"]), int(r["start"]), int(r["end"])) for r in spec["regions"]]

    @staticmethod
    def make(amplitude: float, length: float, seed: int, regions: Sequence[tuple[str, int, int]],
             n_features: int = 1000) -> dict:
        """The JSON-able spec of a field (see the class docstring)."""
        rng = np.random.default_rng([int(seed), 2])
        omega = rng.normal(0.0, 1.0 / float(length), size=n_features)
        phi = rng.uniform(0.0, 2 * np.pi, size=n_features)
        return {"kind": LocusField.KIND, "amplitude": float(amplitude), "length": float(length), "seed": int(seed),
                "n_features": int(n_features),
                "regions": [{"chrom": str(c), "start": int(a), "end": int(b)} for c, a, b in regions],
                "omega": [float(v) for v in omega], "phi": [float(v) for v in phi]}

    def raw(self, positions) -> np.ndarray:
        """The field at ``positions`` (bp) as if every position were inside a region."""
        x = np.asarray(positions, dtype=np.float64).ravel()
        out = np.empty(len(x))
        scale = self.amplitude * np.sqrt(2.0 / len(self.omega))
        for i in range(0, len(x), 4096):
            out[i:i + 4096] = scale * np.cos(np.outer(x[i:i + 4096], self.omega) + self.phi).sum(axis=1)
        return out

    def __call__(self, chroms, positions) -> np.ndarray:
        """(n,) chromosome names (or one name) and (n,) 0-based positions -> (n,) field, 0 off the regions."""
        pos = np.asarray(positions, dtype=np.int64).ravel()
        if isinstance(chroms, str):
            chroms = [chroms] * len(pos)
        keys = np.array([_chrom_key(c) for c in chroms])
        inside = np.zeros(len(pos), bool)
        for c, a, b in self.regions:
            inside |= (keys == c) & (pos >= a) & (pos < b)
        out = np.zeros(len(pos))
        if inside.any():
            out[inside] = self.raw(pos[inside])
        return out

    def correlation(self, lag: float) -> float:
        """The realised field's autocorrelation at ``lag`` bp over a long region: (1/K) sum_k cos(omega_k lag)."""
        return float(np.cos(self.omega * lag).mean())


class SimulatedAccessibility:
    """The generative rule; see the module docstring.  Build once, score many windows.

    ``logit(onehot (N, 1000, 4), expression (C, G)) -> (N, C)`` float64 numpy;
    ``probability`` is its sigmoid.  ``expression`` is arcsinh(TPM) in the order
    of ``genes`` (the gene panel).
    """

    def __init__(self, params: dict, genes: Sequence[str]):
        if params.get("format") not in RULE_FORMATS.values():
            raise ChromDragoNNError(f"not a simulated-labels rule (format {' or '.join(RULE_FORMATS.values())})")
        self.params = params
        self.version = next(v for v, f in RULE_FORMATS.items() if f == params["format"])
        if self.version >= 2 and "locus_field" not in params:
            raise ChromDragoNNError(f"simulated-labels rule {params['format']} needs a locus_field section")
        self.field = LocusField(params["locus_field"]) if self.version >= 2 else None
        self.genes = list(genes)
        index = {g: i for i, g in enumerate(self.genes)}
        self.constitutive = [MotifTerm(m["tf"], m["motif_id"], np.asarray(m["llr"]), m["threshold"], m["weight"])
                             for m in params["constitutive_motifs"]]
        self.context_terms = []
        for m in params["context_motifs"]:
            if m["tf"] not in index:
                raise ChromDragoNNError(f"simulated-labels TF {m['tf']} is not in the gene panel")
            self.context_terms.append(MotifTerm(m["tf"], m["motif_id"], np.asarray(m["llr"]), m["threshold"],
                                                m["weight"], m["occ_mean"], index[m["tf"]], m["lo"], m["hi"]))
        terms = self.constitutive + self.context_terms
        self._pad = max(t.llr.shape[0] for t in terms)
        filters = np.zeros((2 * len(terms), 4, self._pad))
        thresholds = np.zeros(2 * len(terms))
        span = BIN_END - BIN_START + 2 * self._pad
        n_out = span - self._pad + 1
        mask = np.zeros((2 * len(terms), n_out))
        for i, t in enumerate(terms):
            w = t.llr.shape[0]
            filters[2 * i, :, :w] = t.llr.T
            filters[2 * i + 1, :, :w] = t.llr[::-1, ::-1].T  # reverse complement (ACGT reversed = TGCA)
            thresholds[2 * i: 2 * i + 2] = t.threshold
            # output j is the motif starting at BIN_START - pad + j; count it when its middle is in the bin
            starts = BIN_START - self._pad + np.arange(n_out)
            middle = starts + w // 2
            ok = (middle >= BIN_START) & (middle < BIN_END)
            mask[2 * i: 2 * i + 2] = ok
        self._filters = torch.from_numpy(filters)
        self._thresholds = torch.from_numpy(thresholds)[None, :, None]
        self._mask = torch.from_numpy(mask)[None]
        self._n_const = len(self.constitutive)
        self._gene_idx = torch.tensor([t.gene_index for t in self.context_terms], dtype=torch.long)
        self._lo = torch.tensor([t.lo for t in self.context_terms], dtype=torch.float64)
        self._hi = torch.tensor([t.hi for t in self.context_terms], dtype=torch.float64)
        self._w_ctx = torch.tensor([t.weight for t in self.context_terms], dtype=torch.float64)
        self._occ_mean = torch.tensor([t.occ_mean for t in self.context_terms], dtype=torch.float64)
        self._w_const = torch.tensor([t.weight for t in self.constitutive], dtype=torch.float64)

    # ---- construction -------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike = DEFAULT_RULE, genes: Sequence[str] | None = None):
        """Read a rule JSON; ``genes`` defaults to the shipped gene panel."""
        path = Path(path)
        if not path.is_file():
            raise ChromDragoNNError(f"simulated-labels rule file not found: {path}")
        with open(path) as fh:
            params = json.load(fh)
        if genes is None:
            from chromdragonn import paths
            from chromdragonn.inputs.expression import read_gene_panel

            genes = list(read_gene_panel(paths.GENE_PANEL)["gene_symbol"])
        return cls(params, genes)

    @classmethod
    def default(cls, version: int | None = None) -> "SimulatedAccessibility":
        """Version 1: benchmark v1's rule; version 2: benchmark v2's rule (v1 + the locus field);
        None: the rule the shipped weights were trained on (``SHIPPED_RULE_VERSION``)."""
        version = SHIPPED_RULE_VERSION if version is None else version
        if version not in DEFAULT_RULES:
            raise ChromDragoNNError(f"simulated-labels rule version {version}: expected one of {sorted(DEFAULT_RULES)}")
        return cls.load(DEFAULT_RULES[version])

    def save(self, path: str | os.PathLike) -> None:
        with atomic_output(path) as tmp, open(tmp, "w") as fh:
            json.dump(self.params, fh, indent=1)

    # ---- scoring --------------------------------------------------------------------
    def _check(self, onehot: torch.Tensor) -> None:
        if onehot.dim() != 3 or onehot.shape[1] != WINDOW or onehot.shape[2] != 4:
            raise ChromDragoNNError(f"simulated labels score one-hot windows of shape (N, {WINDOW}, 4), got {tuple(onehot.shape)}")

    def composition_terms(self, onehot) -> tuple[np.ndarray, np.ndarray]:
        """GC fraction and CpG count of the central bin, standardised as the rule uses them: (N,), (N,).

        The rule's composition part is a_gc * gc_z + a_cpg * cpg_z."""
        x = _as_tensor(onehot)
        self._check(x)
        gc_z, cpg_z = self._composition(x)
        return gc_z.numpy(), cpg_z.numpy()

    def _composition(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params
        gc = x[:, BIN_START:BIN_END, 1:3].sum(dim=(1, 2)) / (BIN_END - BIN_START)
        cpg = (x[:, BIN_START:BIN_END, 1] * x[:, BIN_START + 1:BIN_END + 1, 2]).sum(dim=1)
        return (gc - p["gc_mean"]) / p["gc_sd"], (cpg - p["cpg_mean"]) / p["cpg_sd"]

    def sequence_terms(self, onehot) -> tuple[np.ndarray, np.ndarray]:
        """Context-independent part (N,) and context-motif occupancies (N, M)."""
        x = _as_tensor(onehot)
        self._check(x)
        p = self.params
        gc_z, cpg_z = self._composition(x)
        crop = x[:, BIN_START - self._pad: BIN_END + self._pad, :].transpose(1, 2)
        llr = F.conv1d(crop, self._filters)  # (N, 2T, n_out)
        occ = (torch.sigmoid(llr - self._thresholds) * self._mask).sum(dim=2)
        occ = occ[:, 0::2] + occ[:, 1::2]  # both strands -> (N, T)
        const = p["a_gc"] * gc_z + p["a_cpg"] * cpg_z + occ[:, : self._n_const] @ self._w_const
        return const.numpy(), occ[:, self._n_const:].numpy()

    def gates(self, expression) -> np.ndarray:
        """(C, G) arcsinh(TPM) -> (C, M) gate in [0, 1] of each context motif's TF."""
        e = _as_tensor(expression)
        if e.dim() != 2 or e.shape[1] != len(self.genes):
            raise ChromDragoNNError(
                f"expression must be (contexts, {len(self.genes)} panel genes), got {tuple(e.shape)}")
        g = (e[:, self._gene_idx] - self._lo) / (self._hi - self._lo)
        return g.clamp(0.0, 1.0).numpy()

    def locus_terms(self, loci, n: int) -> np.ndarray:
        """The locus field (rule v2) at ``loci`` = (chromosome name(s), (n,) bin centres), (n,).

        Zero for rule v1, for ``loci=None`` (a window scored with no position) and off the
        field's regions."""
        if loci is None or self.field is None:
            return np.zeros(n)
        chroms, centres = loci
        out = self.field(chroms, centres)
        if len(out) != n:
            raise ChromDragoNNError(f"simulated labels: {len(out)} loci for {n} windows")
        return out

    def logit_from_terms(self, const: np.ndarray, occ: np.ndarray, gates: np.ndarray,
                         field: np.ndarray | None = None) -> np.ndarray:
        w = self._w_ctx.numpy()
        ctx = ((occ - self._occ_mean.numpy()) * w) @ gates.T  # (N, C)
        out = self.params["b0"] + const[:, None] + ctx
        return out if field is None else out + np.asarray(field)[:, None]

    def logit(self, onehot, expression, loci=None) -> np.ndarray:
        """(N, 1000, 4) one-hot and (C, G) arcsinh(TPM) -> (N, C) logit of P(accessible).

        ``loci``: rule v2 only, (chromosome name(s), (N,) 0-based bin centres) of the windows,
        for the locus field; without it the field is 0 (its mean)."""
        const, occ = self.sequence_terms(onehot)
        return self.logit_from_terms(const, occ, self.gates(expression), self.locus_terms(loci, len(const)))

    def probability(self, onehot, expression, loci=None) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logit(onehot, expression, loci)))

    @property
    def tfs(self) -> list[str]:
        return [t.tf for t in self.context_terms]


def sample_labels(prob: np.ndarray, seed: int, row_offset: int = 0, n_rows_total: int | None = None) -> np.ndarray:
    """Bernoulli draws, reproducible per (row, context) whatever the chunking.

    One uniform per (row, context) from a generator keyed on (seed, row), so a
    chunk of rows gets the same labels as the whole matrix would.
    """
    n, c = prob.shape
    out = np.empty((n, c), dtype=np.uint8)
    for i in range(n):
        u = np.random.default_rng([seed, row_offset + i]).random(c)
        out[i] = u < prob[i]
    return out


# ---- building the rule from real data ---------------------------------------------

def choose_tfs(expression_arcsinh, panel_symbols: Sequence[str], motif_names: dict[str, str],
               families: dict[str, str], n_tfs: int, min_max_arcsinh: float = 3.0) -> list[str]:
    """TFs whose expression varies most across the contexts, one per DNA-binding family.

    expression_arcsinh: DataFrame contexts x panel genes (symbols).  A TF needs a
    JASPAR motif named after it and a maximum arcsinh(TPM) >= ``min_max_arcsinh``
    (TPM >= 10) so that it is really expressed somewhere.
    """
    sd = expression_arcsinh.std(axis=0)
    mx = expression_arcsinh.max(axis=0)
    chosen, used_families = [], set()
    for tf in sd.sort_values(ascending=False, kind="mergesort").index:
        if tf.upper() not in motif_names or mx[tf] < min_max_arcsinh or tf not in panel_symbols:
            continue
        fam = families.get(tf, tf)
        if fam in used_families:
            continue
        chosen.append(tf)
        used_families.add(fam)
        if len(chosen) == n_tfs:
            break
    return chosen


def _core_start(pfm: np.ndarray, k: int) -> int:
    """Start of the k contiguous positions of a PFM with the most information content (bits)."""
    p = (pfm + 0.01) / (pfm + 0.01).sum(axis=1, keepdims=True)
    ic = 2 + (p * np.log2(p)).sum(axis=1)
    return int(np.argmax(np.convolve(ic, np.ones(k), mode="valid")))


def build_rule(windows_sample: np.ndarray, expression_arcsinh, motif_file: str | os.PathLike,
               lambert_csv: str | os.PathLike, seed: int = 0, n_tfs: int = 10,
               constitutive_tfs: Sequence[str] = ("CTCF",), site_rate: float = 1 / 4000,
               target_rate: float | None = None, a_gc: float | None = None, a_cpg: float | None = None,
               weight_range: tuple[float, float] | None = None, constitutive_weight: float | None = None,
               rule_version: int = 1, field_amplitude: float | None = None, field_length: float | None = None,
               field_regions: Sequence[tuple[str, int, int]] | None = None, sample_loci=None,
               motif_core: int | None = None) -> dict:
    """Fit the rule's free numbers on real data and return its JSON-able parameters.

    windows_sample: (N, 1000, 4) one-hot windows of the genome (a seeded sample of
    bins); expression_arcsinh: DataFrame contexts x panel gene symbols.
    Thresholds give each motif ``site_rate`` hits per position and strand on the
    sample; b0 gives ``target_rate`` positives over sample x contexts.

    Settings left None take the version's :data:`RULE_SETTINGS`.  ``rule_version=2`` adds
    the locus field (:class:`LocusField`, ``field_amplitude``, ``field_length``, over
    ``field_regions``, seeded with ``seed``); ``sample_loci`` = (chromosome names, bin
    centres) of the sample then enters the calibration of b0.  ``motif_core`` = k cuts each
    context motif to its k contiguous positions of highest information content (its core, e.g.
    GATA's AGATAA), a denser and shorter sequence feature than the full motif.
    """
    if rule_version not in RULE_FORMATS:
        raise ChromDragoNNError(f"simulated-labels rule version {rule_version}: expected one of {sorted(RULE_FORMATS)}")
    given = dict(target_rate=target_rate, a_gc=a_gc, a_cpg=a_cpg, weight_range=weight_range,
                 constitutive_weight=constitutive_weight, field_amplitude=field_amplitude, field_length=field_length)
    settings = {**RULE_SETTINGS[rule_version], **{k: v for k, v in given.items() if v is not None}}
    target_rate, a_gc, a_cpg = settings["target_rate"], settings["a_gc"], settings["a_cpg"]
    weight_range, constitutive_weight = tuple(settings["weight_range"]), settings["constitutive_weight"]
    if rule_version >= 2 and (field_regions is None or sample_loci is None):
        raise ChromDragoNNError("simulated-labels rule v2 needs field_regions and sample_loci")
    import pandas as pd

    from chromdragonn.training.motifs import log_odds, read_meme

    rng = np.random.default_rng(seed)
    motifs = read_meme(motif_file)
    by_name: dict[str, str] = {}
    pfms = {}
    for m in motifs:
        if "::" in m.name:
            continue  # dimers: no single TF to gate them
        by_name.setdefault(m.name.upper(), m.motif_id)
        pfms[m.motif_id] = m.pfm
    lam = pd.read_csv(lambert_csv)
    lam = lam[lam["Is TF?"] == "Yes"]
    families = dict(zip(lam["HGNC symbol"].astype(str).str.strip(), lam["DBD"].astype(str)))
    panel = list(expression_arcsinh.columns)
    for tf in constitutive_tfs:
        if tf.upper() not in by_name:
            raise ChromDragoNNError(f"{motif_file}: no motif named {tf}")
    tfs = choose_tfs(expression_arcsinh.drop(columns=[t for t in constitutive_tfs if t in panel]),
                     panel, by_name, families, n_tfs)
    weights = rng.uniform(*weight_range, size=len(tfs))

    def term(tf, weight, core=None):
        mid = by_name[tf.upper()]
        pfm = pfms[mid]
        if core is not None and core < len(pfm):
            pfm = pfm[_core_start(pfm, core):][:core]
        return {"tf": tf, "motif_id": mid, "llr": np.round(log_odds(pfm), 5).tolist(),
                "threshold": 0.0, "weight": float(weight)}

    params = {
        "format": RULE_FORMATS[rule_version], "name": RULE_NAME, "seed": int(seed),
        "motif_source": Path(motif_file).name, "site_rate": site_rate, "target_rate": target_rate,
        "a_gc": a_gc, "a_cpg": a_cpg, "gc_mean": 0.0, "gc_sd": 1.0, "cpg_mean": 0.0, "cpg_sd": 1.0, "b0": 0.0,
        "constitutive_motifs": [term(tf, constitutive_weight) for tf in constitutive_tfs],
        "context_motifs": [],
    }
    if motif_core is not None:
        params["motif_core"] = int(motif_core)  # provenance: the context motifs are cores, not whole motifs
    if rule_version >= 2:
        params["locus_field"] = LocusField.make(settings["field_amplitude"], settings["field_length"], seed,
                                                field_regions)
    for tf, w in zip(tfs, weights):
        e = expression_arcsinh[tf].to_numpy()
        t = term(tf, w, motif_core)
        t.update(lo=float(np.percentile(e, 10)), hi=float(np.percentile(e, 90)), occ_mean=0.0)
        params["context_motifs"].append(t)

    # Thresholds: the (1 - site_rate) quantile of each motif's LLR on the sample, both strands.
    x = torch.from_numpy(windows_sample.astype(np.float64))
    for t in params["constitutive_motifs"] + params["context_motifs"]:
        llr = torch.from_numpy(np.asarray(t["llr"]))
        filt = torch.stack([llr.T, llr.flip(0).flip(1).T])
        s = F.conv1d(x.transpose(1, 2), filt).flatten().numpy()
        t["threshold"] = float(np.quantile(s, 1 - site_rate))
    centre = windows_sample[:, BIN_START:BIN_END, :].astype(np.float64)
    gc = centre[:, :, 1:3].sum(axis=(1, 2)) / (BIN_END - BIN_START)
    cpg = (windows_sample[:, BIN_START:BIN_END, 1] * windows_sample[:, BIN_START + 1:BIN_END + 1, 2]).sum(axis=1)
    params.update(gc_mean=float(gc.mean()), gc_sd=float(gc.std()), cpg_mean=float(cpg.mean()), cpg_sd=float(cpg.std()))
    rule = SimulatedAccessibility(params, panel)
    const, occ = rule.sequence_terms(windows_sample)
    for t, mu in zip(params["context_motifs"], occ.mean(axis=0)):
        t["occ_mean"] = float(mu)
    rule = SimulatedAccessibility(params, panel)
    const, occ = rule.sequence_terms(windows_sample)
    gates = rule.gates(expression_arcsinh.to_numpy())
    field = rule.locus_terms(sample_loci, len(const)) if rule_version >= 2 else None
    base = rule.logit_from_terms(const, occ, gates, field) - params["b0"]
    lo, hi = -30.0, 10.0
    for _ in range(60):  # bisection on b0 for the target positive rate
        mid = (lo + hi) / 2
        rate = (1 / (1 + np.exp(-(base + mid)))).mean()
        lo, hi = (mid, hi) if rate < target_rate else (lo, mid)
    params["b0"] = float((lo + hi) / 2)
    params["context_tfs"] = tfs
    return params


def store_loci(store, idx) -> tuple[list[str], np.ndarray]:
    """(chromosome names, 0-based bin centres) of a store's bins ``idx`` -- the field's positions."""
    from chromdragonn.training.store import BIN_SIZE

    idx = np.asarray(idx, dtype=np.int64)
    bins = np.asarray(store.bins[idx])
    return [store.chrom_names[c] for c in bins[:, 0]], bins[:, 1] + BIN_SIZE // 2


def label_store_bins(rule: SimulatedAccessibility, store_like, expression: np.ndarray, seed: int,
                     chunk: int = 2048, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and seeded labels of every bin of a store in every context.

    ``store_like`` needs ``len()`` and ``onehot(idx)``.  Returns (prob float32 (n, C), labels uint8 (n, C)).
    """
    from tqdm import tqdm

    n = len(store_like)
    gates = rule.gates(expression)
    field = None
    if rule.field is not None:  # rule v2: the locus field at each bin's centre
        field = rule.locus_terms(store_loci(store_like, np.arange(n)), n)
    prob = np.zeros((n, len(expression)), np.float32)
    labels = np.zeros((n, len(expression)), np.uint8)
    for lo in tqdm(range(0, n, chunk), desc="simulated labels", unit="chunk", disable=not progress):
        idx = np.arange(lo, min(lo + chunk, n))
        const, occ = rule.sequence_terms(store_like.onehot(idx))
        p = 1.0 / (1.0 + np.exp(-rule.logit_from_terms(const, occ, gates, None if field is None else field[idx])))
        prob[idx] = p
        labels[idx] = sample_labels(p, seed, row_offset=lo)
    return prob, labels


def build_simulated_store(out_dir, fasta, rna_table, rna_units: str, gene_panel, lambert_csv, motif_file,
                          chromosomes: Sequence[str], regions: Sequence[str] | None, blacklist, seed: int = 0,
                          n_calibration_bins: int = 4000, rule_out: str | os.PathLike | None = None,
                          rule_version: int = 1, **rule_kwargs):
    """Real genome + real RNA-seq + real motifs, labels from the simulated-labels rule -> a store.

    The rule is fitted on a seeded sample of bins (:func:`build_rule`), saved as
    ``rule.json`` in the store (and to ``rule_out`` if given), and every bin is then
    labelled in every context (:func:`label_store_bins`).
    """
    import pandas as pd

    from chromdragonn.inputs.expression import read_gene_panel
    from chromdragonn.training.preprocess import build_bins, tf_expression_matrix
    from chromdragonn.training.store import write_store

    genes = list(read_gene_panel(gene_panel)["gene_symbol"])
    contexts, expression = tf_expression_matrix(rna_table, rna_units, gene_panel)
    chroms, codes, bins = build_bins(fasta, chromosomes, regions, blacklist)
    # Write the sequence and bins first (labels zero), so the store's own window reader
    # is what the rule sees: training then scores exactly the same windows.
    store = write_store(out_dir, bins=bins, labels=np.zeros((len(bins), len(contexts)), np.uint8),
                        expression=expression, contexts=contexts, genes=genes, chromosomes=chroms,
                        label_kind=RULE_NAME, sequence=np.concatenate(codes), source={})
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(store), size=min(n_calibration_bins, len(store)), replace=False))
    expr_df = pd.DataFrame(expression.astype(np.float64), index=contexts, columns=genes)
    if rule_version >= 2:
        from chromdragonn.training.preprocess import parse_region

        field_regions = ([parse_region(r) for r in regions] if regions
                         else [(name, 0, int(length)) for name, length in chroms])
        rule_kwargs = {**rule_kwargs, "field_regions": field_regions, "sample_loci": store_loci(store, sample)}
    params = build_rule(store.onehot(sample), expr_df, motif_file, lambert_csv, seed=seed,
                        rule_version=rule_version, **rule_kwargs)
    rule = SimulatedAccessibility(params, genes)
    prob, labels = label_store_bins(rule, store, expression, seed)
    rates = labels.mean(axis=0)
    log.info("simulated labels: positive rate per context %.3f-%.3f (mean %.3f)", rates.min(), rates.max(), rates.mean())
    source = {"fasta": str(fasta), "expression": str(rna_table), "expression_units": rna_units,
              "gene_panel": str(gene_panel), "motifs": str(motif_file), "regions": list(regions or []),
              "blacklist": str(blacklist) if blacklist else None, "seed": int(seed),
              "rule": "rule.json", "rule_format": params["format"], "positive_rate": {c: round(float(r), 5) for c, r in zip(contexts, rates)}}
    store = write_store(out_dir, bins=np.asarray(store.bins), labels=labels, expression=expression,
                        contexts=contexts, genes=genes, chromosomes=chroms, label_kind=RULE_NAME,
                        sequence=np.asarray(store.sequence), source=source)
    rule.save(store.directory / "rule.json")
    np.save(store.directory / "probability.npy", prob.astype(np.float16))
    if rule_out is not None:
        rule.save(rule_out)
    return store, rule


def label_region_with_rule(out_dir, fasta, rule: SimulatedAccessibility, expression: np.ndarray,
                           contexts: Sequence[str], chromosomes: Sequence[str], regions: Sequence[str] | None,
                           blacklist=None, seed: int = 0):
    """A store whose labels come from an existing rule (e.g. the shipped one) -- small test stores."""
    from chromdragonn.training.preprocess import build_bins
    from chromdragonn.training.store import write_store

    chroms, codes, bins = build_bins(fasta, chromosomes, regions, blacklist)
    kw = dict(bins=bins, expression=expression, contexts=list(contexts), genes=rule.genes, chromosomes=chroms,
              label_kind=RULE_NAME, sequence=np.concatenate(codes))
    store = write_store(out_dir, labels=np.zeros((len(bins), len(contexts)), np.uint8), source={}, **kw)
    prob, labels = label_store_bins(rule, store, expression, seed, progress=False)
    store = write_store(out_dir, labels=labels, source={"rule": "given", "seed": seed,
                                                        "regions": list(regions or [])}, **kw)
    rule.save(store.directory / "rule.json")
    np.save(store.directory / "probability.npy", prob.astype(np.float16))
    return store
