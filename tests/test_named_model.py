"""The named model encode_dnase_chr22 (real ENCODE DNase-seq, 4 contexts, hg19 chr22 slice) through every route:
the registry, the CLI, the Python API and Kipoi; its own mean track as the default; unknown names refused."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import BED, FASTA, P_ATOL, REPO, VENV_BIN

from chromdragonn import paths
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.session import NAMED_MODELS, Session, default_mean_bigwig, named_model, resolve_model

NAME = "encode_dnase_chr22"
FOLDER = paths.WEIGHTS_DIR / NAME
TRACK = FOLDER / "weights" / "mean_accessibility_chr22.bw"
WEIGHTS = FOLDER / "weights" / f"{NAME}.with_mean.pt"
CONTEXTS = ["E116", "E117", "E123", "E003"]


def test_registry_names_the_folder_and_its_own_mean_track():
    entry = named_model(NAME)
    assert entry is NAMED_MODELS[NAME] and entry.folder == FOLDER and entry.mean_bigwig == TRACK
    assert named_model(None) is named_model("ensemble") is named_model("default") is NAMED_MODELS["ensemble"]
    assert default_mean_bigwig(NAME) == TRACK
    assert default_mean_bigwig(None) == default_mean_bigwig("ensemble") == paths.MEAN_BIGWIG
    assert default_mean_bigwig(FOLDER) == TRACK  # the folder given by path finds its own track too
    declared = yaml.safe_load((FOLDER / "model.yaml").read_text())["args"]
    assert declared["weights"] == [f"weights/{NAME}.with_mean.pt"] and declared["with_mean"] is True
    assert declared["gene_panel"] == "../gene_panel.tsv"  # the repository's panel, not a copy
    assert (FOLDER / "model.py").read_text() == (REPO / "model.py").read_text()
    assert (FOLDER / "dataloader.py").read_text() == (REPO / "dataloader.py").read_text()


def test_the_named_models_mean_track_is_the_session_default():
    named = Session.open(CONTEXTS, model=NAME)
    default = Session.open(CONTEXTS)
    assert named.mean_track.path == TRACK and default.mean_track.path == paths.MEAN_BIGWIG
    assert list(named.genes) == list(default.genes) and len(named.genes) == 1575
    # The ENCODE track is the mean of four real peak sets: 0 where no context has a peak, > 0 at a
    # GM12878 uniform peak (chr22 21033165 21033315); the default track (simulated labels) differs there.
    at_peak = named.mean_track.value("chr22", 21032740, 21033740)
    assert 0 < at_peak <= 1 and at_peak != default.mean_track.value("chr22", 21032740, 21033740)


@pytest.fixture(scope="module")
def api_result():
    from chromdragonn.predict import predict

    return predict(BED, FASTA, CONTEXTS, model=NAME, progress=False)


def test_cli_predict_equals_the_python_api(api_result, tmp_path):
    out = tmp_path / "pred.tsv"
    proc = subprocess.run([sys.executable, "-m", "chromdragonn.cli", "predict", "--intervals", str(BED), "--fasta",
                           str(FASTA), "--contexts", ",".join(CONTEXTS), "--model", NAME, "-o", str(out), "-q"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = pd.read_csv(out, sep="\t")
    np.testing.assert_allclose(got[CONTEXTS].to_numpy(), api_result[CONTEXTS].to_numpy(), atol=P_ATOL, rtol=0)
    # the same as naming the weights file and the named model's track explicitly
    from chromdragonn.predict import predict

    explicit = predict(BED, FASTA, CONTEXTS, model=str(WEIGHTS), mean_bigwig=TRACK, progress=False)
    np.testing.assert_allclose(explicit[CONTEXTS].to_numpy(), api_result[CONTEXTS].to_numpy(), atol=P_ATOL, rtol=0)
    # and not the same as with the default model's track: the default track matters
    other = predict(BED, FASTA, CONTEXTS, model=str(WEIGHTS), progress=False)
    assert np.abs(other[CONTEXTS].to_numpy() - api_result[CONTEXTS].to_numpy()).max() > 1e-3


def test_kipoi_predict_on_the_named_models_folder(api_result, kipoi_env, tmp_path):
    out = tmp_path / "preds.tsv"
    dl = {"intervals_file": str(BED), "fasta_file": str(FASTA), "cell_types": ",".join(CONTEXTS)}
    r = subprocess.run([str(VENV_BIN / "kipoi"), "predict", str(FOLDER), "--source", "dir", "--dataloader_args",
                        json.dumps(dl), "--keep_metadata", "-o", str(out)], cwd=tmp_path, env=kipoi_env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    df = pd.read_csv(out, sep="\t")
    preds = df[[f"preds/{i}" for i in range(len(CONTEXTS))]].to_numpy()
    np.testing.assert_allclose(preds, api_result[CONTEXTS].to_numpy(), atol=P_ATOL, rtol=0)
    assert df["metadata/ranges/id"].tolist() == api_result["name"].tolist()


def test_unknown_model_name_is_a_one_line_error(tmp_path):
    with pytest.raises(ChromDragoNNError, match=r"unknown model 'encode_dnase_chr21': give a model name "
                                                r"\(ensemble, encode_dnase_chr22\)"):
        resolve_model("encode_dnase_chr21")
    out = tmp_path / "pred.tsv"
    proc = subprocess.run([sys.executable, "-m", "chromdragonn.cli", "predict", "--intervals", str(BED), "--fasta",
                           str(FASTA), "--contexts", "E116", "--model", "encode_dnase_chr21", "-o", str(out), "-q"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: unknown model 'encode_dnase_chr21': give a model name (ensemble, encode_dnase_chr22), a fold "
        "number, a Kipoi model folder or a weights file"]
    assert not out.exists() and list(tmp_path.iterdir()) == []
