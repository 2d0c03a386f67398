"""`chromdragonn track` and `atlas-plot` (issue 11): bigWig tracks, the sequence-feature cache, torchrun.

Reference numbers come from `chromdragonn predict` on a BED of the same 200 bp bins (its own code
path: eager trunk, ExpressionHead.forward_grid), so the track's folded trunk, split head, cache and
tiling are all checked against an independent computation.  Weights: the conftest's random folds.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pytest
import torch
from conftest import FASTA, MEAN_BW, P_ATOL, REPO, USER_TABLE

from chromdragonn.cli import main
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.nn.fast_trunk import inference_trunk
from chromdragonn.nn.head_math import SplitHead
from chromdragonn.nn.weights import load_model
from chromdragonn.predict import predict
from chromdragonn.track import CHUNK, make_track

REGION = "chr22:17000001-17002000"      # 2 kb: 37 bins at step 50
CONTEXTS = ["E116", "my_H1_sample"]      # a Roadmap context and one of the user's own RNA-seq table
CACHE_ATOL = 1e-3                        # the cache holds fc1's pre-activation in float16 (issue 11)


def _bin_starts(start0: int, end: int, step: int) -> np.ndarray:
    return np.arange(start0, end - 200 + 1, step)


def _predict_bins(tmp_path, model, starts, contexts=CONTEXTS) -> np.ndarray:
    bed = tmp_path / "bins.bed"
    bed.write_text("".join(f"chr22\t{s}\t{s + 200}\n" for s in starts))
    df = predict(bed, FASTA, contexts, expression=USER_TABLE, model=model, mean_bigwig=MEAN_BW, progress=False)
    return df[contexts].to_numpy()


def _track_values(path: Path, starts: np.ndarray, step: int) -> np.ndarray:
    """The value written over each bin's central step bp (the bigWig's value at the bin centre)."""
    bw = pyBigWig.open(str(path))
    try:
        return np.array([bw.values("22", int(s) + 100, int(s) + 101)[0] for s in starts])
    finally:
        bw.close()


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory, random_weights):
    out = tmp_path_factory.mktemp("track")
    (out / "tracks").mkdir()
    (out / "cached").mkdir()
    model = ",".join(map(str, random_weights))
    kw = dict(region=REGION, expression=USER_TABLE, model=model, mean_bigwig=MEAN_BW, progress=False)
    uncached = make_track(FASTA, CONTEXTS, out / "tracks", reference_context="E116", matrix=out / "m.h5ad", **kw)
    cached = make_track(FASTA, CONTEXTS, out / "cached", cache=out / "cache", **kw)
    return out, uncached, cached


def test_track_equals_predict_at_bin_centres_for_the_ensemble(ensemble_run, random_weights, tmp_path):
    out, uncached, cached = ensemble_run
    starts = _bin_starts(17_000_000, 17_002_000, 50)
    assert len(starts) == 37
    expected = _predict_bins(tmp_path, list(random_weights), starts)
    assert expected.std() > 0.01  # the comparison is not between constants
    for j, ctx in enumerate(CONTEXTS):
        np.testing.assert_allclose(_track_values(out / "tracks" / f"{ctx}.bw", starts, 50), expected[:, j],
                                   atol=P_ATOL, rtol=0)
        np.testing.assert_allclose(_track_values(out / "cached" / f"{ctx}.bw", starts, 50), expected[:, j],
                                   atol=CACHE_ATOL, rtol=0)
    diff = _track_values(out / "tracks" / "my_H1_sample_minus_E116.bw", starts, 50)
    np.testing.assert_allclose(diff, expected[:, 1] - expected[:, 0], atol=2 * P_ATOL, rtol=0)
    assert uncached.trunk_passes == cached.trunk_passes == 2 * 37  # two folds, every bin once


def test_track_equals_predict_for_one_fold_at_step_100(tmp_path, random_weights):
    (tmp_path / "o").mkdir()
    make_track(FASTA, CONTEXTS, tmp_path / "o", region=REGION, expression=USER_TABLE, model=str(random_weights[1]),
               mean_bigwig=MEAN_BW, step=100, cache=tmp_path / "c", progress=False)
    starts = _bin_starts(17_000_000, 17_002_000, 100)
    expected = _predict_bins(tmp_path, str(random_weights[1]), starts)
    for j, ctx in enumerate(CONTEXTS):
        np.testing.assert_allclose(_track_values(tmp_path / "o" / f"{ctx}.bw", starts, 100), expected[:, j],
                                   atol=CACHE_ATOL, rtol=0)


def test_bigwig_layout_values_tile_the_region(ensemble_run):
    out, _, _ = ensemble_run
    bw = pyBigWig.open(str(out / "tracks" / "E116.bw"))
    assert bw.chroms() == {"22": 22_000_000}  # names and sizes from the FASTA
    iv = bw.intervals("22")
    bw.close()
    assert len(iv) == 37 and iv[0][:2] == (17_000_075, 17_000_125) and iv[-1][:2] == (17_001_875, 17_001_925)
    assert all(a[1] == b[0] for a, b in zip(iv, iv[1:]))  # each bin over its central 50 bp, no gap, no overlap


def test_matrix_is_anndata_of_the_same_values(ensemble_run):
    import anndata

    out, _, _ = ensemble_run
    adata = anndata.read_h5ad(out / "m.h5ad")
    assert list(adata.var_names) == CONTEXTS and adata.n_obs == 37
    assert list(adata.obs.columns) == ["chrom", "start", "end"] and (adata.obs["end"] - adata.obs["start"] == 200).all()
    starts = adata.obs["start"].to_numpy()
    assert starts[0] == 17_000_000 and adata.obs_names[0] == "22:17000000-17000200"
    np.testing.assert_allclose(adata.X[:, 1], _track_values(out / "tracks" / "my_H1_sample.bw", starts, 50),
                               rtol=1e-6)


def test_new_contexts_with_a_warm_cache_never_run_the_trunk(ensemble_run, random_weights, tmp_path, monkeypatch):
    out, _, _ = ensemble_run
    from chromdragonn.nn.trunks import ResNetTrunk

    def no_trunk(self, seq):
        raise AssertionError("the trunk ran although the cache holds every bin")

    monkeypatch.setattr(ResNetTrunk, "forward", no_trunk)
    run = make_track(FASTA, ["E003", "E123"], tmp_path, region=REGION, model=",".join(map(str, random_weights)),
                     mean_bigwig=MEAN_BW, cache=out / "cache", progress=False)
    assert run.trunk_passes == 0
    monkeypatch.undo()
    starts = _bin_starts(17_000_000, 17_002_000, 50)
    expected = _predict_bins(tmp_path, list(random_weights), starts, ["E003", "E123"])
    np.testing.assert_allclose(_track_values(tmp_path / "E123.bw", starts, 50), expected[:, 1], atol=CACHE_ATOL)


def _fasta_with_one_base_changed(tmp_path) -> Path:
    """A plain FASTA of the slice's first 17.01 Mb with one base of the region changed (A<->C)."""
    import gzip

    with gzip.open(FASTA, "rt") as fh:
        fh.readline()
        seq = "".join(line.strip() for line in fh)[:17_010_000]
    i = 17_000_500
    seq = seq[:i] + ("C" if seq[i] != "C" else "A") + seq[i + 1:]
    path = tmp_path / "edited.fa"
    path.write_text(">22\n" + "\n".join(seq[k:k + 60] for k in range(0, len(seq), 60)) + "\n")
    return path


@pytest.mark.parametrize("change, what", [
    ({"step": 100}, "a different step"),
    ({"region": "chr22:17000001-17002200"}, "different regions"),
    ({"model": "weights0"}, "different weights"),
    ({"fasta": "edited"}, "a different FASTA sequence"),
])
def test_cache_of_other_inputs_is_refused(ensemble_run, random_weights, tmp_path, change, what):
    out, _, _ = ensemble_run
    kw = dict(region=REGION, model=",".join(map(str, random_weights)), mean_bigwig=MEAN_BW, progress=False)
    fasta = FASTA
    if change.get("model") == "weights0":
        change = {"model": str(random_weights[0])}
    if change.get("fasta") == "edited":
        fasta, change = _fasta_with_one_base_changed(tmp_path), {}
    kw.update(change)
    with pytest.raises(ChromDragoNNError, match=f"cache .* was computed with {what} than this run's"):
        make_track(fasta, ["E003"], tmp_path, cache=out / "cache", **kw)
    assert not (tmp_path / "E003.bw").exists()


def test_damaged_cache_is_refused(ensemble_run, random_weights, tmp_path):
    import shutil

    out, _, _ = ensemble_run
    cache = tmp_path / "cache"
    shutil.copytree(out / "cache", cache)
    data = bytearray((cache / "fold1.f16").read_bytes())
    data[5000] ^= 0xFF
    (cache / "fold1.f16").write_bytes(bytes(data))
    with pytest.raises(ChromDragoNNError, match=r"fold1.f16 is damaged"):
        make_track(FASTA, ["E003"], tmp_path, region=REGION, model=",".join(map(str, random_weights)),
                   mean_bigwig=MEAN_BW, cache=cache, progress=False)


def test_bins_of_all_n_get_no_value_and_are_counted(tmp_path, random_weights, caplog):
    """Real bases start at 16,050,001: bins in the gap before have no value (the N rule)."""
    with caplog.at_level(logging.INFO, logger="chromdragonn"):
        make_track(FASTA, ["E003"], tmp_path, region="22:16049001-16051000", model=str(random_weights[0]),
                   mean_bigwig=MEAN_BW, progress=False)
    bw = pyBigWig.open(str(tmp_path / "E003.bw"))
    iv = bw.intervals("22")
    bw.close()
    # 37 bins start at 16,049,000 + 50 k; bin [s, s + 200) has sequence when s + 200 > 16,050,000,
    # i.e. s >= 16,049,850: 20 bins have a value, 17 have none
    assert iv[0][:2] == (16_049_925, 16_049_975) and len(iv) == 20
    assert "; 17 bins whose 200 bp are all N have no value" in caplog.text


@pytest.mark.parametrize("argv, message", [
    (["--region", "chr22:21999001-22000100"], "runs past the end of 22"),
    (["--region", "chr22:17000001-17000100"], "shorter than one 200 bp bin"),
    (["--region", REGION, "--step", "0"], "--step must be a whole number >= 1, got 0"),
    (["--region", REGION, "--step", "300"], "--step 300 is larger than the 200 bp bins"),
    (["--region", REGION, "--contexts", "E003,E999"], "unknown cell context 'E999'"),
    (["--region", REGION, "--reference-context", "E123"], "--reference-context E123 is not among --contexts"),
    (["--region", REGION, "--matrix", "m.tsv"], "give a file name ending in .h5ad"),
    (["--chromosomes", "21"], "chromosome '21' is not in FASTA"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, random_weights, capsys, argv, message):
    out = tmp_path / "o"
    out.mkdir()
    args = ["track", "--fasta", str(FASTA), "--contexts", "E003", "--model", str(random_weights[0]), "-q",
            "-o", str(out)]
    args += [str(tmp_path / a) if a == "m.tsv" else a for a in argv]
    if "--contexts" in argv:
        args = args[:3] + args[5:]  # the parametrised --contexts replaces the default one
    assert main(args) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]
    assert len(err) == 1 and message in err[0], err
    assert list(out.iterdir()) == []


def test_missing_output_folder(tmp_path, random_weights, capsys):
    assert main(["track", "--fasta", str(FASTA), "--region", REGION, "--contexts", "E003", "--model",
                 str(random_weights[0]), "-q", "-o", str(tmp_path / "no_such_dir")]) == 2
    assert "output folder does not exist" in capsys.readouterr().err


def test_folded_trunk_and_split_head_equal_the_model(random_weights):
    model, _ = load_model(random_weights[0])
    torch.manual_seed(1)
    idx = torch.randint(0, 4, (6, 1000))
    x = torch.nn.functional.one_hot(idx, 4).float()
    expr = torch.rand(3, model.n_genes) * 4
    mean = torch.rand(6)
    with torch.no_grad():
        expected = model.predict_grid(x, expr, mean)
        head = SplitHead(model)
        got = head.probability(head.per_bin(inference_trunk(model.trunk)(x), mean), head.per_context(expr))
    torch.testing.assert_close(got, expected, atol=P_ATOL, rtol=0)


def test_torchrun_two_processes_write_the_files_of_one(tmp_path, random_weights):
    """Two gloo ranks deal the chunks between them (cache and tracks) and write the same files."""
    region = "chr22:17100001-17113000"  # 257 bins: two chunks of CHUNK, one per rank
    assert (13_000 - 200) // 50 + 1 == CHUNK + 1
    env = dict(os.environ, OMP_NUM_THREADS="1")
    common = ["track", "--fasta", str(FASTA), "--region", region, "--contexts", "E003,my_H1_sample",
              "--expression", str(USER_TABLE), "--model", str(random_weights[0]), "--mean-bigwig", str(MEAN_BW), "-q"]
    runs = {}
    for name, launcher in (("one", [sys.executable, "-m", "chromdragonn"]),
                           ("two", [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                                    "--master_port=29533", "-m", "chromdragonn"])):
        out = tmp_path / name
        out.mkdir()
        r = subprocess.run(launcher + common + ["-o", str(out), "--cache", str(tmp_path / f"cache_{name}")],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        runs[name] = out
    for ctx in ("E003", "my_H1_sample"):
        a = pyBigWig.open(str(runs["one"] / f"{ctx}.bw"))
        b = pyBigWig.open(str(runs["two"] / f"{ctx}.bw"))
        assert a.intervals("22") == b.intervals("22") and len(a.intervals("22")) == 257
        a.close(), b.close()
    assert (tmp_path / "cache_one" / "fold0.f16").read_bytes() == (tmp_path / "cache_two" / "fold0.f16").read_bytes()
    assert sorted(p.name for p in runs["two"].iterdir()) == ["E003.bw", "my_H1_sample.bw"]  # no scratch left


def test_atlas_plot_of_all_contexts(tmp_path, random_weights, capsys):
    """--contexts all (56 Roadmap + the user's), the matrix, then the embedding PNG."""
    out = tmp_path / "atlas"
    out.mkdir()
    assert main(["track", "--fasta", str(FASTA), "--region", "chr22:17000001-17001000", "--contexts", "all",
                 "--expression", str(USER_TABLE), "--model", str(random_weights[0]), "--mean-bigwig", str(MEAN_BW),
                 "-q", "--matrix", str(out / "all.h5ad"), "-o", str(out)]) == 0
    import anndata

    adata = anndata.read_h5ad(out / "all.h5ad")
    assert adata.n_vars == 57 and adata.var_names[-1] == "my_H1_sample" and len(list(out.glob("*.bw"))) == 57
    png = tmp_path / "atlas.png"
    assert main(["atlas-plot", "--matrix", str(out / "all.h5ad"), "--expression", str(USER_TABLE),
                 "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    bad = tmp_path / "not.h5ad"
    bad.write_text("no")
    assert main(["atlas-plot", "--matrix", str(bad), "-o", str(tmp_path / "x.png")]) == 2
    assert "is not an AnnData (.h5ad) file" in capsys.readouterr().err


def test_context_groups_cover_the_shipped_contexts():
    from chromdragonn import paths
    from chromdragonn.atlas import context_groups

    shipped = pd.read_csv(paths.SHIPPED_EXPRESSION, sep="\t", nrows=1).columns[2:].tolist()
    groups = context_groups(shipped + ["mine"])
    assert groups.loc["E116", "group"] == "ENCODE2012" and groups.loc["E003", "group"] == "ESC"
    assert groups.loc["mine", "group"] == "your RNA-seq" and (groups["group"] != "your RNA-seq").sum() == 56


def test_a_compiled_trunk_gets_full_chunks(tmp_path, random_weights, monkeypatch):
    """The last, short chunk is padded to CHUNK windows for a compiled trunk (one shape, one compilation)
    and only its own bins are kept; here the padding path runs on the uncompiled trunk."""
    import chromdragonn.track as track

    shapes = []
    real_fold_parts = track.fold_parts

    def parts_marked_compiled(model, compile_trunk=False):
        parts = real_fold_parts(model, False)
        for p in parts:
            p.compiled = True
            inner = p.trunk
            p.trunk = lambda x, inner=inner: (shapes.append(tuple(x.shape)), inner(x))[1]
        return parts

    monkeypatch.setattr(track, "fold_parts", parts_marked_compiled)
    (tmp_path / "padded").mkdir()
    run = make_track(FASTA, ["E003"], tmp_path / "padded", region=REGION, model=str(random_weights[0]),
                     mean_bigwig=MEAN_BW, compile_trunk="yes", progress=False)
    assert shapes == [(CHUNK, 1000, 4)] and run.trunk_passes == 37
    monkeypatch.undo()
    make_track(FASTA, ["E003"], tmp_path, region=REGION, model=str(random_weights[0]), mean_bigwig=MEAN_BW,
               compile_trunk="no", progress=False)
    starts = _bin_starts(17_000_000, 17_002_000, 50)
    np.testing.assert_allclose(_track_values(tmp_path / "padded" / "E003.bw", starts, 50),
                               _track_values(tmp_path / "E003.bw", starts, 50), atol=P_ATOL, rtol=0)


def test_runs_sharing_an_output_folder_or_a_cache_do_not_collide(tmp_path, random_weights):
    """Each run has its own scratch folder (another run's is left alone), and a cache being built by
    another run (its lock file exists) is refused instead of being overwritten."""
    other = tmp_path / ".chromdragonn-track-other.partial"
    other.mkdir()
    (other / "results.npy").write_bytes(b"another run's")
    make_track(FASTA, ["E003"], tmp_path, region=REGION, model=str(random_weights[0]), mean_bigwig=MEAN_BW,
               progress=False)
    assert (other / "results.npy").read_bytes() == b"another run's"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".chromdragonn-track-other.partial", "E003.bw"]
    (tmp_path / "c.lock").write_text("12345\n")
    with pytest.raises(ChromDragoNNError, match=r"cache .*c is being built by another run \(.*c.lock exists\)"):
        make_track(FASTA, ["E003"], tmp_path, region=REGION, model=str(random_weights[0]), mean_bigwig=MEAN_BW,
                   cache=tmp_path / "c", progress=False)
    assert not (tmp_path / "c").exists() and not (tmp_path / "c.partial").exists()


def test_output_names_are_checked_before_any_work(tmp_path, random_weights):
    (tmp_path / "E116.bw").mkdir()
    with pytest.raises(ChromDragoNNError, match=r"output .*E116.bw is a directory"):
        make_track(FASTA, ["E003", "E116"], tmp_path, region=REGION, model=str(random_weights[0]), progress=False)
    table = tmp_path / "t.tsv"
    table.write_text("gene\tE116_minus_E003\nGATA1\t5\nTAL1\t3\n")
    out = tmp_path / "o"
    out.mkdir()
    with pytest.raises(ChromDragoNNError, match="two outputs would be the same file .*E116_minus_E003.bw"):
        make_track(FASTA, ["E003", "E116", "E116_minus_E003"], out, region=REGION, expression=table,
                   reference_context="E003", model=str(random_weights[0]), progress=False)
    assert list(out.iterdir()) == []


def _h5ad(path, x, contexts):
    import anndata

    obs = pd.DataFrame({"chrom": pd.Categorical(["22"] * x.shape[0])},
                       index=pd.Index([f"b{i}" for i in range(x.shape[0])], dtype=object))
    anndata.AnnData(X=x.astype(np.float32), obs=obs, var=pd.DataFrame(index=pd.Index(contexts, dtype=object))
                    ).write_h5ad(path)
    return path


@pytest.mark.filterwarnings("ignore:Variable names are not unique")  # anndata, on the duplicated-names matrix built here
def test_atlas_plot_of_replicates_and_of_bad_matrices(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.random((40, 6))
    x[:, 1] = x[:, 2] = x[:, 0]  # three contexts with identical predictions (replicates)
    contexts = ["E003", "E004", "E005", "E116", "E123", "E071"]
    png = tmp_path / "a.png"
    assert main(["atlas-plot", "--matrix", str(_h5ad(tmp_path / "rep.h5ad", x, contexts)), "-o", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    nan = x.copy()
    nan[3, 2] = np.nan
    for path, message in [(_h5ad(tmp_path / "nan.h5ad", nan, contexts), "1 missing or infinite value"),
                          (_h5ad(tmp_path / "one.h5ad", x[:1], contexts), r"has 1 bin\(s\)"),
                          (_h5ad(tmp_path / "dup.h5ad", x, contexts[:5] + ["E003"]), r"names context\(s\) E003 more than once"),
                          (_h5ad(tmp_path / "mine.h5ad", x, contexts[:5] + ["my_sample"]),
                           "context 'my_sample' of .* is not in the expression tables; give the --expression table")]:
        assert main(["atlas-plot", "--matrix", str(path), "-o", str(tmp_path / "b.png")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and __import__("re").search(message, err), err
    assert main(["atlas-plot", "--matrix", str(tmp_path / "rep.h5ad"), "-o", str(tmp_path / "a.pdf")]) == 2
    assert "give a file name ending in .png" in capsys.readouterr().err
    assert not (tmp_path / "b.png").exists()
