"""The simulated-labels rule: real windows of hg19 chr22, real Roadmap expression, real JASPAR motifs."""

import numpy as np
import pytest

from chromdragonn import paths
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.expression import ExpressionSource
from chromdragonn.inputs.genome import Genome, one_hot
from chromdragonn.training.motifs import log_odds, read_meme
from chromdragonn.training.simulate import SimulatedAccessibility, sample_labels

SHARED = paths.SHARED_DATA
FASTA = paths.EXAMPLE_DIR / "hg19_chr22_1-22000000.fa.gz"


@pytest.fixture(scope="module")
def rule():
    return SimulatedAccessibility.default()


@pytest.fixture(scope="module")
def genome():
    return Genome(FASTA)


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
