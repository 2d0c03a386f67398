"""The simulated-labels rule: real windows of hg19 chr22, real Roadmap expression, real JASPAR motifs."""

import numpy as np
import pytest

from chromdragonn import paths
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.expression import ExpressionSource
from chromdragonn.inputs.genome import one_hot
from chromdragonn.training.motifs import log_odds, read_meme
from chromdragonn.training.simulate import (
    V2_DEFAULTS,
    SimulatedAccessibility,
    sample_labels,
)

SHARED = paths.SHARED_DATA
FASTA = paths.EXAMPLE_DIR / "hg19_chr22_1-22000000.fa.gz"


@pytest.fixture(scope="module")
def rule():
    return SimulatedAccessibility.default(1)


@pytest.fixture(scope="module")
def expression():
    src = ExpressionSource()
    return src.contexts, src.matrix(src.contexts)


def test_meme_reader_reads_real_jaspar():
    motifs = read_meme(SHARED / "motifs" / "JASPAR2024_CORE_vertebrates_latest.meme")
    assert len(motifs) == 879
    ctcf = next(m for m in motifs if m.motif_id == "MA0139.2")
    assert ctcf.name == "CTCF" and ctcf.pfm.shape == (15, 4)
    assert np.allclose(ctcf.pfm.sum(axis=1), 1, atol=1e-3)
    llr = log_odds(ctcf.pfm)
    assert llr.max() < 2.0 and np.isfinite(llr).all()  # log2(1 / 0.25) = 2 is the ceiling


def test_rule_is_the_shipped_one(rule):
    assert rule.params["name"] == "simulated labels"
    assert rule.tfs == ["SOX2", "ZIC2", "NR2F1", "FOXG1", "IRF6", "MYCN", "ELF3", "GATA4", "SPI1", "RUNX3"]
    assert [m["tf"] for m in rule.params["constitutive_motifs"]] == ["CTCF"]


def test_positive_rate_per_context_on_real_windows(rule, genome, expression):
    """3-10% positives per context (the store's rates were 3.3-7.1% over 77,526 bins)."""
    contexts, expr = expression
    rng = np.random.default_rng(5)
    starts = rng.integers(17_000_000, 20_300_000, size=300) // 50 * 50
    x = np.stack([one_hot(genome.fetch("22", s - 400, s + 600)) for s in starts])
    p = rule.probability(x, expr)
    assert p.shape == (300, 56)
    rates = p.mean(axis=0)
    assert 0.02 < rates.min() and rates.max() < 0.12
    # logit and probability agree; same input, same output
    assert np.allclose(1 / (1 + np.exp(-rule.logit(x, expr))), p)
    assert np.array_equal(rule.logit(x[:5], expr), rule.logit(x[:5], expr))


def test_planted_motif_opens_only_where_its_tf_is_expressed(rule, genome, expression):
    """SOX2's strongest site planted in a real window: up in H1 (E003, SOX2 expressed), ~not in GM12878 (E116)."""
    contexts, expr = expression
    term = next(t for t in rule.context_terms if t.tf == "SOX2")
    site = "".join("ACGT"[i] for i in term.llr.argmax(axis=1))
    seq = genome.fetch("22", 19_000_000 - 400, 19_000_000 + 600)
    mutated = seq[:500] + site + seq[500 + len(site):]
    x = np.stack([one_hot(seq), one_hot(mutated)])
    e = expr[[contexts.index("E003"), contexts.index("E116")]]
    logit = rule.logit(x, e)
    gate = rule.gates(e)[:, rule.tfs.index("SOX2")]
    assert gate[0] > 0.9 and gate[1] < 0.1
    effect = logit[1] - logit[0]
    assert effect[0] > 2.0            # about w * (1 - occ_mean) of SOX2 in H1
    assert abs(effect[1]) < 0.5 * effect[0]


def test_rule_refuses_bad_shapes(rule, expression):
    with pytest.raises(ChromDragoNNError, match="1000, 4"):
        rule.logit(np.zeros((2, 999, 4), np.float32), expression[1])
    with pytest.raises(ChromDragoNNError, match="panel genes"):
        rule.logit(np.zeros((2, 1000, 4), np.float32), np.zeros((3, 10), np.float32))


def test_label_draws_do_not_depend_on_chunking():
    p = np.random.default_rng(0).random((40, 7))
    whole = sample_labels(p, seed=3)
    parts = np.vstack([sample_labels(p[:15], seed=3), sample_labels(p[15:], seed=3, row_offset=15)])
    assert np.array_equal(whole, parts)
    assert 0.3 < whole.mean() < 0.7


# ---- rule v2 (benchmark v2): rule v1 + a locus field along the chromosome --------------------

@pytest.fixture(scope="module")
def rule_v2():
    return SimulatedAccessibility.default(2)


def test_v2_is_3x_v1_sequence_part_plus_the_documented_field(rule, rule_v2, genome, expression):
    """v2's sequence part is v1's x 3 (same motifs, thresholds, seeded weights x 3), plus the field:
    logit_v2 - b0_v2 = 3 * (logit_v1 - b0_v1) + field."""
    assert rule.version == 1 and rule_v2.version == 2
    assert rule_v2.params["format"] == "chromdragonn-simulated-rule/2"
    assert rule_v2.params["name"] == "simulated labels" and rule_v2.tfs == rule.tfs
    for key in ("gc_mean", "gc_sd", "cpg_mean", "cpg_sd"):
        assert rule_v2.params[key] == rule.params[key], key
    assert (rule_v2.params["a_gc"], rule_v2.params["a_cpg"]) == (2.4, 3.0)
    assert (rule.params["a_gc"], rule.params["a_cpg"]) == (0.8, 1.0)
    for v1, v2 in zip(rule.params["constitutive_motifs"] + rule.params["context_motifs"],
                      rule_v2.params["constitutive_motifs"] + rule_v2.params["context_motifs"]):
        assert {k: v for k, v in v1.items() if k != "weight"} == {k: v for k, v in v2.items() if k != "weight"}
        assert v2["weight"] == pytest.approx(3 * v1["weight"], rel=1e-12)
    field = rule_v2.params["locus_field"]
    assert (field["amplitude"], field["length"]) == (V2_DEFAULTS["field_amplitude"], V2_DEFAULTS["field_length"])
    assert field["regions"] == [{"chrom": "22", "start": 16_050_000, "end": 22_000_000}]
    contexts, expr = expression
    centres = np.array([17_000_100, 18_500_100, 21_000_100])
    x = np.stack([one_hot(genome.fetch("22", c - 500, c + 500)) for c in centres])
    f = rule_v2.field("22", centres)
    v1_part = 3 * (rule.logit(x, expr) - rule.params["b0"])
    assert np.allclose(rule_v2.logit(x, expr, loci=("chr22", centres)) - rule_v2.params["b0"], v1_part + f[:, None],
                       atol=1e-9)
    assert np.abs(f).max() > 0.1
    # no position, another chromosome, or off the simulated region: field 0
    assert np.allclose(rule_v2.logit(x, expr) - rule_v2.params["b0"], v1_part, atol=1e-9)
    assert np.array_equal(rule_v2.field(["21", "22", "22"], [17_000_100, 16_049_999, 22_000_000]), np.zeros(3))


def test_v2_field_has_the_documented_sd_and_correlation_length(rule_v2):
    """Over the 5.95 Mb region: SD ~ amplitude, autocorrelation ~ exp(-d^2 / (2 length^2)).

    Tolerances: the realised field is one draw; over a region R long its variance and
    autocorrelation estimates have a standard error of about sqrt(length / R) = 0.04 at
    length 10 kb, and the 1,000 random features add sqrt(1 / 2000) = 0.02 to the correlation.
    """
    f = rule_v2.field
    x = np.arange(16_050_000, 22_000_000, 500)
    v = f("22", x)
    assert abs(v.std() / f.amplitude - 1) < 0.15 and abs(v.mean()) < 0.2 * f.amplitude
    for lag in (0.5, 1.0, 2.0, 3.0):
        k = int(round(lag * f.length / 500))
        r = np.corrcoef(v[:-k], v[k:])[0, 1]
        assert abs(r - np.exp(-lag ** 2 / 2)) < 0.1, (lag, r)
        assert abs(f.correlation(lag * f.length) - np.exp(-lag ** 2 / 2)) < 0.07


def test_v2_positive_rates_and_the_mean_carries_the_field(rule_v2, genome, expression):
    """Real windows every 2 kb over the simulated region (1,933 store-like bins), scored at their
    positions: 3-10% positives per context (expected rates, the mean probability: 3.7-7.6% here; the
    store's labels: 3.4-8.0%), and a bin's mean label over the 56 contexts follows the field beyond what
    its sequence part predicts, which is what v2 is for: r = 0.38 here (about 0.02 standard error at
    n = 1,933; without the field it would be ~0)."""
    contexts, expr = expression
    bl = [line.split()[:3] for line in open(SHARED / "genome" / "hg19-blacklist.v2.bed")]
    bl = np.array([(int(a), int(b)) for c, a, b in bl if c in ("chr22", "22")])
    starts = np.arange(16_060_000, 21_990_000, 2_000)  # a systematic sample: every 2 kb
    seqs = [genome.fetch("22", s - 400, s + 600) for s in starts]
    # the store's bins: no N in the window's bin, no blacklist overlap (preprocess.build_bins)
    keep = [i for i, (s, q) in enumerate(zip(starts, seqs)) if "N" not in q[400:600].upper()
            and not ((bl[:, 0] < s + 200) & (bl[:, 1] > s)).any()]
    assert len(keep) > 1500
    x = np.stack([one_hot(seqs[i]) for i in keep])
    centres = starts[keep] + 100
    p = rule_v2.probability(x, expr, loci=("22", centres))
    rates = p.mean(axis=0)
    assert 0.03 <= rates.min() and rates.max() <= 0.10, (rates.min(), rates.max())
    field = rule_v2.field("22", centres)
    const, occ = rule_v2.sequence_terms(x)
    p_seq = 1 / (1 + np.exp(-rule_v2.logit_from_terms(const, occ, rule_v2.gates(expr))))  # no field
    labels = sample_labels(p, seed=0)
    resid = labels.mean(axis=1) - p_seq.mean(axis=1)
    r = np.corrcoef(resid, field)[0, 1]
    assert r > 0.25, r


def test_motif_core_cuts_each_context_motif_to_its_most_informative_positions(genome, expression):
    """build_rule(motif_core=6): each context motif is its JASPAR PFM's 6 contiguous positions of highest
    information content (GATA4 -> a GATA core), with the threshold at the site-rate quantile of that core."""
    import pandas as pd
    import torch
    import torch.nn.functional as F

    from chromdragonn.training.simulate import build_rule

    contexts, expr = expression
    from chromdragonn.inputs.expression import read_gene_panel

    panel = list(read_gene_panel(paths.GENE_PANEL)["gene_symbol"])
    assert expr.shape == (len(contexts), len(panel))
    windows = np.stack([one_hot(genome.fetch("22", s, s + 1000)) for s in range(17_000_000, 17_300_000, 1000)])
    params = build_rule(windows, pd.DataFrame(expr.astype(np.float64), index=contexts, columns=panel),
                        SHARED / "motifs" / "JASPAR2024_CORE_vertebrates_latest.meme",
                        SHARED / "tf_lists" / "Lambert2018_DatabaseExtract_v_1.01.csv", seed=0, motif_core=6,
                        site_rate=1 / 1000)
    motifs = {m.motif_id: m.pfm for m in read_meme(SHARED / "motifs" / "JASPAR2024_CORE_vertebrates_latest.meme")}
    for t in params["context_motifs"]:
        pfm = motifs[t["motif_id"]]
        llr = np.asarray(t["llr"])
        assert llr.shape == (6, 4)
        p = (pfm + 0.01) / (pfm + 0.01).sum(axis=1, keepdims=True)
        ic = 2 + (p * np.log2(p)).sum(axis=1)
        best = max(range(len(pfm) - 5), key=lambda i: ic[i:i + 6].sum())
        assert np.allclose(llr, np.round(log_odds(pfm[best:best + 6]), 5))
        # the threshold is the site-rate quantile of the core's score on the sample, both strands (a 6 bp
        # core's scores take few values, so the quantile sits on a tie)
        filt = torch.stack([torch.from_numpy(llr.T), torch.from_numpy(llr[::-1, ::-1].T.copy())])
        s = F.conv1d(torch.from_numpy(windows.astype(np.float64)).transpose(1, 2), filt).flatten().numpy()
        assert (s > t["threshold"] + 1e-9).mean() <= 1 / 1000 <= (s >= t["threshold"] - 1e-9).mean()
    assert [m["tf"] for m in params["constitutive_motifs"]] == ["CTCF"] and params["motif_core"] == 6
    assert len(params["constitutive_motifs"][0]["llr"]) == 15  # the constitutive motif stays whole
    gata = "".join("ACGT"[i] for i in np.asarray(next(t for t in params["context_motifs"]
                                                       if t["tf"] == "GATA4")["llr"]).argmax(axis=1))
    assert "GATA" in gata or "TATC" in gata  # the core of GATA4's motif, on either strand


def test_the_default_rule_is_the_shipped_models_rule(monkeypatch):
    """SimulatedAccessibility.default() follows SHIPPED_RULE_VERSION (one line to change when the shipped
    folds are replaced by models of another rule); explicit versions are kept."""
    from chromdragonn.training import simulate

    assert SimulatedAccessibility.default().version == simulate.SHIPPED_RULE_VERSION
    monkeypatch.setattr(simulate, "SHIPPED_RULE_VERSION", 2)
    assert SimulatedAccessibility.default().version == 2 and SimulatedAccessibility.default().field is not None
    assert SimulatedAccessibility.default(1).version == 1
