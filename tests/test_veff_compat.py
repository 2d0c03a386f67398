"""chromdragonn.kipoi.veff: the legacy kipoi_veff.score_variants on this model (issue 4).

Runs kipoi-veff 0.3.1's own scoring through a Kipoi model folder (the conftest's
2-fold random-weights ensemble) and compares it with chromdragonn's
score_variants; and checks `diff` against P(alt) - P(ref) from calling the Kipoi
model's predict_on_batch on hand-made windows (an independent path).
"""
from __future__ import annotations

import numpy
import numpy as np
import pytest
from conftest import FASTA, MEAN_BW
from test_variants import KG_INDELS, KG_SNVS, write_vcf

from chromdragonn.inputs.expression import ExpressionSource
from chromdragonn.inputs.genome import Genome, MeanAccessibility, one_hot
from chromdragonn.kipoi import veff as veff_compat
from chromdragonn.kipoi.compat import LegacyNumpy
from chromdragonn.variants import score_variants

CONTEXTS = ["E003", "E116"]


@pytest.fixture(scope="module")
def kipoi_model(model_dir):
    import kipoi

    veff_compat.install()
    return kipoi.get_model(str(model_dir), source="dir")


@pytest.fixture(scope="module")
def variants_vcf(tmp_path_factory):
    # 5 SNVs and one indel (kipoi-veff 0.3.1 skips indels).
    return write_vcf(tmp_path_factory.mktemp("veff") / "in.vcf", positions=set(KG_SNVS + KG_INDELS[1:2]))


@pytest.fixture(scope="module")
def ours(variants_vcf, random_weights):
    return score_variants(variants_vcf, FASTA, CONTEXTS, model=",".join(map(str, random_weights)),
                          scores="diff,logit", mean_bigwig=MEAN_BW)


def test_install_is_idempotent_and_leaves_numpy_alone():
    import kipoi_veff.snv_predict
    import kipoi_veff.utils.mutators

    veff_compat.install()
    first = kipoi_veff.snv_predict.predict_snvs
    veff_compat.install()
    assert kipoi_veff.snv_predict.predict_snvs is first and veff_compat.is_installed()
    legacy_np = kipoi_veff.utils.mutators.np
    assert isinstance(legacy_np, LegacyNumpy)
    assert legacy_np.int is int and legacy_np.zeros is numpy.zeros
    assert "in1d" not in vars(numpy) and "int" not in vars(numpy)  # numpy itself unchanged
    np.testing.assert_array_equal(legacy_np.in1d([1, 2, 3, 2], [2, 5]), [False, True, False, True])
    np.testing.assert_array_equal(legacy_np.in1d(np.array((1000, 4)), None), [False, False])
    np.testing.assert_array_equal(legacy_np.in1d(np.array([None, 4], dtype=object), None), [True, False])
    assert kipoi_veff.snv_predict.ensure_tabixed_vcf is veff_compat._vcf_as_is


def test_legacy_kipoi_veff_diff_equals_ours(kipoi_model, variants_vcf, ours, tmp_path):
    import kipoi_veff

    out_vcf = tmp_path / "legacy.vcf"
    preds = kipoi_veff.score_variants(
        kipoi_model, dl_args={"fasta_file": str(FASTA), "cell_types": ",".join(CONTEXTS), "mean_bigwig": str(MEAN_BW)},
        input_vcf=str(variants_vcf), output_vcf=str(out_vcf), scores=["diff"], return_predictions=True)
    diff = preds["diff"]
    assert list(diff.columns) == CONTEXTS  # labelled with the dataloader's cell_types
    assert len(diff) == len(KG_SNVS)  # the indel is skipped by kipoi-veff 0.3.1
    snvs = ours[ours["REF"].str.len() + ours["ALT"].str.len() == 2].reset_index(drop=True)
    ids = [f"22:{p}:{r}:['{a}']" for p, r, a in zip(snvs["POS"], snvs["REF"], snvs["ALT"])]
    assert list(diff.index) == ids
    for c in CONTEXTS:
        np.testing.assert_allclose(diff[c].to_numpy(), snvs[f"{c}/diff"].to_numpy(), atol=1e-5)
    assert np.abs(diff.to_numpy()).max() > 1e-3  # real effects, not all ~0
    text = out_vcf.read_text()
    assert "##INFO=<ID=KV:" in text and ":DIFF,Number=.,Type=String" in text
    assert sum(1 for ln in text.splitlines() if not ln.startswith("#")) == len(KG_SNVS)


def test_diff_equals_kipoi_predict_on_batch_on_the_two_windows(kipoi_model, ours):
    """Independent path: windows cut by hand, Kipoi's own model object, P(alt) - P(ref)."""
    genome, mean = Genome(FASTA), MeanAccessibility(MEAN_BW)
    expr = ExpressionSource().matrix(CONTEXTS)
    refs, alts, means = [], [], []
    for pos, ref, alt in zip(ours["POS"], ours["REF"], ours["ALT"]):
        left = genome.fetch("22", pos - 500, pos - 1)
        tail = genome.fetch("22", pos - 1 + len(ref), pos + 500 + 10)
        refs.append(one_hot((left + ref + tail)[:1000]))
        shift = int((len(alt) - len(ref)) / 2)  # the documented indel rule
        alt_left = genome.fetch("22", pos - 500 + shift, pos - 1)
        alts.append(one_hot((alt_left + alt + tail)[:1000]))
        means.append(mean.value("22", pos - 500, pos + 500))
    n = len(refs)
    batch = {"expression": np.repeat(expr[None], n, axis=0), "mean_acc": np.array(means, dtype=np.float32)[:, None]}
    p_ref = kipoi_model.predict_on_batch({**batch, "seq": np.stack(refs)})
    p_alt = kipoi_model.predict_on_batch({**batch, "seq": np.stack(alts)})
    assert p_ref.shape == (n, len(CONTEXTS))
    for j, c in enumerate(CONTEXTS):
        np.testing.assert_allclose(ours[f"{c}/diff"].to_numpy(), p_alt[:, j] - p_ref[:, j], atol=1e-5)
