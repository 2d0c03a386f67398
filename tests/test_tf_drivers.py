"""chromdragonn tf-drivers: TF contributions through the expression input, and their perturbation (issue 12).

On real hg19 bins with the conftest's random-init folds: integrated gradients add up to the change
of the summed logit from the baseline (completeness); gradient x (expression - baseline) equals an
independent autograd computation through the model's ordinary row-paired forward; the perturbation
columns equal re-scoring through ``predict_grid`` with the TF's expression changed by hand.

Tolerances: scores are float32 gradients summed in float64 over <= 10 bins (~1e-6 relative). IG's
completeness holds up to the midpoint rule's error: the head is piecewise linear in the expression
(ReLU), so the rule is exact between kinks and off by O(1/steps) at each kink crossed; 128 points
were within 0.2% here, 1% is asserted. P differences: conftest's P_ATOL.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FASTA, MEAN_BW, P_ATOL

from chromdragonn import paths
from chromdragonn.cli import main
from chromdragonn.inputs.expression import ExpressionSource, read_gene_panel
from chromdragonn.inputs.genome import Genome, MeanAccessibility, centered_window, one_hot_batch
from chromdragonn.nn.weights import load_models
from chromdragonn.tf_drivers import (
    driver_bins,
    expression_attributions,
    perturbed_profiles,
    summed_logit,
    tf_drivers,
    trunk_features,
)

REGION = "chr22:17,746,401-17,747,400"  # five 200 bp bins around an E003 DNase peak of example/intervals.bed


@pytest.fixture(scope="module")
def setup(random_weights):
    model, genes = load_models(random_weights)
    genome = Genome(FASTA)
    bins = driver_bins(REGION)
    wins = [centered_window(r.chrom, r.start, r.end) for r in bins.itertuples()]
    seq = torch.from_numpy(one_hot_batch([genome.fetch(w.chrom, w.start, w.end) for w in wins]))
    track = MeanAccessibility(MEAN_BW)
    mean = torch.tensor([track.value(w.chrom, w.start, w.end) for w in wins], dtype=torch.float32)
    expr = ExpressionSource().matrix(["E116", "E123"])
    base = read_gene_panel(paths.GENE_PANEL)["fill_arcsinh_tpm"].to_numpy(np.float32)
    return model, genes, seq, mean, expr, base, trunk_features(model, seq)


def test_bins_of_a_region():
    bins = driver_bins("chr22:1,001-1,450")
    assert list(bins["start"]) == [1000, 1200, 1400] and list(bins["end"]) == [1200, 1400, 1600]
    assert bins["name"].iloc[0] == "chr22:1001-1200"


def test_integrated_gradients_add_up_to_the_logit_change(setup):
    model, _, _, mean, expr, base, feats = setup
    for e in expr:
        sc = expression_attributions(model, feats, e, base, mean, "ig", steps=128)
        change = summed_logit(model, feats, e, mean) - summed_logit(model, feats, base, mean)
        assert abs(change) > 0.1
        assert sc.sum() == pytest.approx(change, rel=0.01)
        assert np.count_nonzero(sc) > 1000  # every TF whose expression differs from the median


def test_gradient_x_delta_equals_plain_autograd(setup):
    """Each member's ordinary forward over the bins (the expression row repeated per bin), the summed logit from
    its log-softmax, plain autograd; members' mean. One batch, as the cached trunk features were computed: a
    per-bin forward differs from the batched one by float32 noise, and where a hidden ReLU of the head sits at
    its kink that noise flips it, which moves the gradient by far more than the noise (seen: 2e-4 of the
    largest score, with other inputs)."""
    model, _, seq, mean, expr, base, feats = setup
    e = expr[0]
    got = expression_attributions(model, feats, e, base, mean, "gradient")
    want = np.zeros(len(e))
    for m in model.members:
        x = torch.as_tensor(e[None]).clone().requires_grad_(True)
        out = m(seq, x.expand(len(seq), -1), mean)
        (out[:, 1] - out[:, 0]).sum().backward()
        want += x.grad[0].double().numpy() / len(model.members)
    want *= (e - base).astype(np.float64)
    # float32 through the head and 5 members: 6.5e-7 of the largest score measured; 1e-5 leaves room for other CPUs
    np.testing.assert_allclose(got, want, atol=1e-5 * np.abs(want).max(), rtol=0)
    assert np.abs(want).max() > 1e-3


def test_command_ranks_and_perturbation_equals_rescoring(tmp_path, random_weights, setup):
    model, genes, seq, mean, expr, base, _ = setup
    out = tmp_path / "drivers.tsv"
    rc = main(["tf-drivers", "--region", REGION, "--fasta", str(FASTA), "--contexts", "E116,E123",
               "--model", *map(str, random_weights), "--mean-bigwig", str(MEAN_BW), "--top", "3", "--scale", "4",
               "--steps", "16", "-q", "-o", str(out)])
    assert rc == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["drivers.png", "drivers.tsv"]
    df = pd.read_csv(out, sep="\t")
    assert list(df.columns) == ["context", "rank", "tf", "ensembl_id", "score", "expression_arcsinh_tpm",
                                "baseline_arcsinh_tpm", "tpm", "p", "dP_tpm0", "dP_tpm_x4"]
    assert len(df) == 2 * len(genes) and set(df["context"]) == {"E116", "E123"}
    for j, ctx in enumerate(["E116", "E123"]):
        d = df[df["context"] == ctx].reset_index(drop=True)
        assert sorted(d["tf"]) == sorted(genes) and list(d["rank"]) == list(range(1, len(genes) + 1))
        assert (np.diff(np.abs(d["score"].to_numpy())) <= 1e-6).all()  # ranked by |score|
        assert d["dP_tpm0"].notna().sum() == 3 and d["dP_tpm0"].head(3).notna().all()
        with torch.no_grad():
            p0 = float(model.predict_grid(seq, torch.from_numpy(expr[j: j + 1]), mean).mean())
            assert d["p"].iloc[0] == pytest.approx(p0, abs=P_ATOL)
            for k in range(3):
                g = genes.index(d["tf"].iloc[k])
                zero, scaled = perturbed_profiles(expr[j], [g], 4.0)
                assert zero[0, g] == 0 and np.sinh(scaled[0, g]) == pytest.approx(4 * np.sinh(expr[j, g]), rel=1e-5)
                pz = float(model.predict_grid(seq, torch.from_numpy(zero), mean).mean())
                ps = float(model.predict_grid(seq, torch.from_numpy(scaled), mean).mean())
                assert d["dP_tpm0"].iloc[k] == pytest.approx(pz - p0, abs=P_ATOL)
                assert d["dP_tpm_x4"].iloc[k] == pytest.approx(ps - p0, abs=P_ATOL)
    assert (tmp_path / "drivers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_baseline_context_and_python_api(random_weights):
    res = tf_drivers(FASTA, "E116", bed=paths.EXAMPLE_DIR / "intervals.bed", model=str(random_weights[0]),
                     mean_bigwig=MEAN_BW, baseline_context="E116", method="gradient", top=2, progress=False)
    # against itself the expression does not differ from the baseline: every score is 0, P does not move
    assert len(res.bins) == 20 and (res.table["score"] == 0).all()
    assert res.baseline == "E116"


@pytest.mark.parametrize("extra, message", [
    (["--scale", "-1"], "--scale must be a number >= 0"),
    (["--steps", "0"], "--steps must be a whole number >= 1"),
    (["--baseline-context", "E999"], "unknown cell context 'E999'"),
    (["--region", "chr22:21,999,901-22,000,100"], "runs past the end of 22"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, random_weights, capsys, extra, message):
    region = [] if "--region" in extra else ["--region", REGION]
    rc = main(["tf-drivers", *region, "--fasta", str(FASTA), "--contexts", "E116", "--model", str(random_weights[0]),
               "--mean-bigwig", str(MEAN_BW), "-q", "-o", str(tmp_path / "d.tsv"), *extra])
    assert rc == 2 and list(tmp_path.iterdir()) == []
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]
    assert len(err) == 1 and message in err[0]
