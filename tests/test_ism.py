"""chromdragonn.ism: saturation mutagenesis, fast (partial recompute) against naive (issue 4).

The naive path builds each mutant window and runs the whole model on it
(``predict_grid``); the fast path recomputes only each substitution's receptive
field layer by layer.  They must agree within 1e-4 in P(accessible) on real
hg19 windows with the conftest's random-init folds, whose batch-norm statistics
come from real windows so that single substitutions move P visibly.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FASTA, MEAN_BW, P_ATOL

from chromdragonn.cli import main
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.expression import ExpressionSource
from chromdragonn.inputs.genome import MeanAccessibility, centered_window, one_hot, parse_region
from chromdragonn.ism import parse_ism_region, saturation_mutagenesis
from chromdragonn.nn.fast_ism import FastISM
from chromdragonn.nn.weights import load_models

CONTEXTS = ["E003", "E116"]


@pytest.fixture(scope="module")
def expr():
    return ExpressionSource().matrix(CONTEXTS)


def _window(genome, chrom, start, end):
    w = centered_window(chrom, start, end)
    return w, one_hot(genome.fetch(chrom, w.start, w.end))


def test_fast_equals_naive_on_a_real_region(genome, expr, fold0):
    start, end = 17_500_100, 17_500_124  # chr22:17,500,101-17,500,124 (24 bp, 72 substitutions)
    w, onehot = _window(genome, "22", start, end)
    mean = MeanAccessibility(MEAN_BW).value("22", w.start, w.end)
    offsets = list(range(start - w.start, end - w.start))
    assert offsets[0] == 488  # the region sits in the middle of its 1 kb window
    fast = saturation_mutagenesis(fold0, onehot, offsets, expr, mean, method="fast", batch_size=32)
    naive = saturation_mutagenesis(fold0, onehot, offsets, expr, mean, method="naive", batch_size=32)
    np.testing.assert_allclose(fast.ref_prob, naive.ref_prob, atol=P_ATOL)
    np.testing.assert_allclose(fast.mut_prob, naive.mut_prob, atol=1e-4)
    assert np.abs(naive.diff).max() > 1e-3  # substitutions do move P: the 1e-4 check is not void
    assert fast.ref_seq == genome.fetch("22", start, end)
    # The reference base's cell is P(ref) itself (diff 0), the other three are the mutants.
    for i, base in enumerate(fast.ref_seq):
        assert np.all(fast.diff[i, "ACGT".index(base)] == 0)
    assert (np.abs(fast.diff) > 0).sum() >= 3 * 24 * len(CONTEXTS) - 4


def test_fast_equals_naive_at_the_window_edges_and_in_n(genome, expr, fold0):
    # Substitutions at the first and last window positions exercise the zero padding of every layer,
    # the pools' dropped tail and the c2to3 / conv3 coordinate shifts.
    _, onehot = _window(genome, "22", 17_600_000, 17_600_001)
    offsets = [0, 1, 500, 998, 999]
    fast = saturation_mutagenesis(fold0, onehot, offsets, expr, 0.2, method="fast")
    naive = saturation_mutagenesis(fold0, onehot, offsets, expr, 0.2, method="naive")
    np.testing.assert_allclose(fast.mut_prob, naive.mut_prob, atol=1e-4)
    # Real bases start at 16,050,001 in this FASTA: N positions have no substitutions (NaN rows).
    w, onehot = _window(genome, "22", 16_049_997, 16_050_001)
    offsets = list(range(16_049_997 - w.start, 16_050_001 - w.start))
    fast = saturation_mutagenesis(fold0, onehot, offsets, expr, 0.0, method="fast")
    naive = saturation_mutagenesis(fold0, onehot, offsets, expr, 0.0, method="naive")
    assert fast.ref_seq[:3] == "NNN" and fast.ref_seq[3] != "N"
    np.testing.assert_allclose(fast.mut_prob, naive.mut_prob, atol=1e-4)
    assert np.isnan(fast.mut_prob[:3]).all() and not np.isnan(fast.mut_prob[3:]).any()
    assert fast.n_substitutions == 3 * (len(offsets) - 3)


def test_trunk_features_exact_and_about_8_percent_of_the_work(genome, fold0):
    _, onehot = _window(genome, "22", 17_700_000, 17_700_001)
    engine = FastISM(fold0.trunk, torch.as_tensor(onehot))
    x = torch.as_tensor(onehot)[None]
    with torch.no_grad():
        assert torch.equal(engine.ref_features, fold0.trunk(x))
        pos = torch.tensor([0, 250, 333, 499, 500, 998, 999])
        base = torch.tensor([0, 1, 2, 3, 0, 1, 2])
        mut = x.repeat(len(pos), 1, 1)
        mut[torch.arange(len(pos)), pos] = 0.0
        mut[torch.arange(len(pos)), pos, base] = 1.0
        full = fold0.trunk(mut)
        part = engine.features(pos, base)
    assert (part - full).abs().max().item() < 1e-4
    assert (full - engine.ref_features).abs().max().item() > 1e-2
    assert 0.06 < engine.touched_fraction() < 0.10  # the "about 8%"


def test_ensemble_averages_members(genome, expr, random_weights):
    model, _ = load_models(random_weights)
    w, onehot = _window(genome, "22", 17_500_200, 17_500_201)
    offsets = [17_500_200 - w.start]
    fast = saturation_mutagenesis(model, onehot, offsets, expr, 0.1, method="fast")
    naive = saturation_mutagenesis(model, onehot, offsets, expr, 0.1, method="naive")
    np.testing.assert_allclose(fast.mut_prob, naive.mut_prob, atol=1e-4)
    members = [saturation_mutagenesis(m, onehot, offsets, expr, 0.1) for m in model.members]
    np.testing.assert_allclose(fast.mut_prob, np.mean([m.mut_prob for m in members], axis=0), atol=P_ATOL)


def test_ism_cli_tsv_npz_and_png(tmp_path, random_weights, genome):
    common = ["ism", "--region", "chr22:17,500,101-17,500,110", "--fasta", str(FASTA), "--contexts", "E003,E116",
              "--model", str(random_weights[0]), "--mean-bigwig", str(MEAN_BW), "-q"]
    assert main([*common, "-o", str(tmp_path / "map.tsv")]) == 0
    assert main([*common, "-o", str(tmp_path / "map.npz"), "--png", str(tmp_path / "other.png")]) == 0
    tsv = pd.read_csv(tmp_path / "map.tsv", sep="\t")
    assert list(tsv.columns) == ["#CHROM", "POS", "REF", "ALT", "E003/diff", "E003/alt", "E116/diff", "E116/alt"]
    assert len(tsv) == 30 and set(tsv["#CHROM"]) == {"chr22"}
    assert tsv["POS"].min() == 17_500_101 and tsv["POS"].max() == 17_500_110
    ref = genome.fetch("22", 17_500_100, 17_500_110)
    assert "".join(tsv.groupby("POS")["REF"].first()) == ref
    assert (tsv["REF"] != tsv["ALT"]).all()
    npz = np.load(tmp_path / "map.npz")
    assert npz["diff"].shape == (2, 10, 4) and list(npz["contexts"]) == ["E003", "E116"]
    assert str(npz["ref_seq"]) == ref
    for r in tsv.itertuples(index=False):
        i, b = r.POS - 17_500_101, "ACGT".index(r.ALT)
        assert npz["diff"][0, i, b] == pytest.approx(r[4], rel=1e-5, abs=1e-7)
    for png in (tmp_path / "map.png", tmp_path / "other.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("region, message", [
    ("chr22:17500001-17501001", "at most 1000 bp"),
    ("chr22:16049001-16049100", "no A, C, G or T to substitute"),
    ("chr22:17500001", "is not CHROM:START-END"),
    ("chr22:200-100", "need 1 <= START <= END"),
    ("chr22:21999990-22000010", "runs past the end of 22"),
    ("chr5:100-200", "chromosome 'chr5' is not in FASTA"),
])
def test_bad_regions(tmp_path, random_weights, capsys, region, message):
    out = tmp_path / "map.tsv"
    rc = main(["ism", "--region", region, "--fasta", str(FASTA), "--contexts", "E003", "-o", str(out),
               "--model", str(random_weights[0]), "--mean-bigwig", str(MEAN_BW), "-q"])
    assert rc == 2 and not out.exists() and not (tmp_path / "map.png").exists()
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]
    assert len(err) == 1 and message in err[0]


def test_parse_region():
    assert parse_region("chr22:17,500,101-17,500,110") == ("chr22", 17_500_100, 17_500_110)
    assert parse_region(" 22:1-1000 ") == ("22", 0, 1000)
    with pytest.raises(ChromDragoNNError, match="at most 1000 bp"):
        parse_ism_region("chr22:1-1001")


def _ism_argv(tmp_path, random_weights, *extra, region="chr22:17,500,101-17,500,110"):
    return ["ism", "--region", region, "--fasta", str(FASTA), "--contexts", "E003", "--model",
            str(random_weights[0]), "--mean-bigwig", str(MEAN_BW), "-q", *extra]


@pytest.mark.parametrize("bad", ["-4", "0"])
def test_batch_size_must_be_positive(tmp_path, random_weights, capsys, bad):
    out = tmp_path / "map.tsv"
    assert main(_ism_argv(tmp_path, random_weights, "--batch-size", bad, "-o", str(out))) == 2
    assert not out.exists() and not (tmp_path / "map.png").exists()
    assert f"error: --batch-size must be a whole number >= 1, got {bad}" in capsys.readouterr().err


def test_png_into_a_missing_folder_fails_first_and_writes_nothing(tmp_path, random_weights, capsys):
    out = tmp_path / "map.tsv"
    rc = main(_ism_argv(tmp_path, random_weights, "-o", str(out), "--png", str(tmp_path / "no_dir" / "m.png")))
    assert rc == 2 and not out.exists() and list(tmp_path.iterdir()) == []
    assert "output folder does not exist" in capsys.readouterr().err


def test_interrupt_while_plotting_leaves_neither_file(tmp_path, random_weights, capsys, monkeypatch):
    """Ctrl-C in the PNG step: the run is reported as interrupted and no output stays, not even the TSV."""
    import chromdragonn.ism as ism

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ism, "plot_mutation_map", interrupted)
    out = tmp_path / "map.tsv"
    assert main(_ism_argv(tmp_path, random_weights, "-o", str(out))) == 130
    assert list(tmp_path.iterdir()) == []
    assert "error: interrupted" in capsys.readouterr().err


def test_n_positions_have_no_rows_and_the_log_counts_true(tmp_path, random_weights, caplog):
    """Real bases start at 16,050,001 in this FASTA: 4 N then 6 bases give 18 substitutions, not 30."""
    out = tmp_path / "gap.tsv"
    with caplog.at_level(logging.INFO, logger="chromdragonn"):
        assert main(_ism_argv(tmp_path, random_weights, "-o", str(out), region="22:16049997-16050006")) == 0
    tsv = pd.read_csv(out, sep="\t")
    assert len(tsv) == 18 and tsv["POS"].min() == 16_050_001 and "N" not in set(tsv["REF"])
    assert "wrote 18 substitutions x 1 contexts" in caplog.text
    assert "4 N positions of the region have no substitutions" in caplog.text
