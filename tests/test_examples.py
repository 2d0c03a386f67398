"""The README's usage examples (docs/usage_examples/) run as written and agree with each other.

Each script is run as a user would run it, as a subprocess, against a Kipoi model
folder with the conftest's random-init folds (nothing trained is needed) laid out
like the repository will be once trained weights ship: fold weights, gene panel,
Roadmap expression table and a mean-accessibility track under weights/ (the
track is the example's stand-in, copied under the shipped name).  Every output is
checked against chromdragonn.predict.predict run here, in-process, on the same files.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import BED, FASTA, MEAN_BW, P_ATOL, REPO, USER_TABLE

from chromdragonn import paths
from chromdragonn.predict import predict

EXAMPLES = REPO / "docs" / "usage_examples"
ROADMAP = ["E003", "E116", "E123"]
WITH_USER = ROADMAP + ["my_H1_sample"]
N_INTERVALS = 20  # example/intervals.bed
NOISE_WORDS = ("WARNING", "Warning", "Traceback", "error")


@pytest.fixture(scope="module")
def example_model_dir(tmp_path_factory, random_weights) -> Path:
    from chromdragonn.kipoi.render import write_model_dir

    staging = tmp_path_factory.mktemp("staging")
    mean_track = staging / paths.MEAN_BIGWIG.name
    shutil.copyfile(MEAN_BW, mean_track)
    out = tmp_path_factory.mktemp("example_model")
    write_model_dir(out, random_weights, "ChromDragoNN example test model (random weights, not trained)",
                    extra_files=[paths.SHIPPED_EXPRESSION, mean_track])
    return out


@pytest.fixture(scope="module")
def expected(random_weights) -> pd.DataFrame:
    """The package's predictions on the example, computed in this process (interval rows, context columns)."""
    return predict(BED, FASTA, WITH_USER, expression=USER_TABLE, mean_bigwig=MEAN_BW,
                   model=random_weights, progress=False)


def _run(cmd: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
    return r


def test_expected_varies(expected):
    """Random-init outputs must differ across intervals and contexts, or the comparisons prove little."""
    p = expected[WITH_USER].to_numpy()
    assert p.shape == (N_INTERVALS, 4)
    assert p.std(axis=0).min() > 0.01
    assert np.abs(p[:, 0] - p[:, 1]).max() > 0.01


def test_example_kipoi_sh(example_model_dir, kipoi_env, tmp_path, expected):
    r = _run(["bash", str(EXAMPLES / "example_kipoi.sh"), str(example_model_dir)], kipoi_env, tmp_path)
    for word in NOISE_WORDS:  # Roadmap contexts only: nothing to warn about
        assert word not in r.stderr, r.stderr[-2000:]

    tsv = pd.read_csv(example_model_dir / "output" / "example_kipoi.tsv", sep="\t")
    assert list(tsv.columns) == ["metadata/cell_types", "metadata/ranges/chr", "metadata/ranges/end",
                                 "metadata/ranges/id", "metadata/ranges/start", "metadata/ranges/strand",
                                 "preds/0", "preds/1", "preds/2"]
    np.testing.assert_allclose(tsv[["preds/0", "preds/1", "preds/2"]].to_numpy(), expected[ROADMAP].to_numpy(),
                               atol=P_ATOL)
    assert tsv["metadata/ranges/id"].tolist() == expected["name"].tolist()
    assert tsv["metadata/ranges/start"].tolist() == expected["window_start"].tolist()
    assert set(tsv["metadata/cell_types"]) == {"E003,E116,E123"}

    with h5py.File(example_model_dir / "output" / "example_kipoi.h5", "r") as f:
        assert f["preds"].shape == (N_INTERVALS, 3) and f["preds"].dtype == np.float32
        np.testing.assert_allclose(f["preds"][:], expected[ROADMAP].to_numpy(), atol=P_ATOL)
        assert [x.decode() for x in f["metadata/ranges/id"][:]] == expected["name"].tolist()
        np.testing.assert_array_equal(f["metadata/ranges/end"][:] - f["metadata/ranges/start"][:], 1000)


def test_example_python(example_model_dir, kipoi_env, tmp_path, expected):
    r = _run([sys.executable, str(EXAMPLES / "example_python.py"), str(example_model_dir)], kipoi_env, tmp_path)
    assert "kipoi: (20, 4)" in r.stdout
    # The one warning a user should see: 40 panel TFs are missing from their table (filled).
    warning = "40 of 1575 gene-panel TFs are not in expression table"
    assert warning in r.stderr
    rest = "\n".join(line for line in r.stderr.splitlines() if warning not in line)
    for word in NOISE_WORDS:
        assert word not in rest, r.stderr[-2000:]

    table = pd.read_csv(example_model_dir / "output" / "example_python.tsv", sep="\t")
    assert list(table.columns) == ["chrom", "start", "end", "name", "window_start", "window_end", *WITH_USER]
    np.testing.assert_allclose(table[WITH_USER].to_numpy(), expected[WITH_USER].to_numpy(), atol=P_ATOL)
    assert table["name"].tolist() == expected["name"].tolist()


def test_example_r(example_model_dir, kipoi_env, tmp_path, expected):
    rscript = shutil.which("Rscript")
    assert rscript, "R is not installed: apt-get install -y --no-install-recommends r-base-core r-cran-reticulate"
    env = dict(kipoi_env, RETICULATE_PYTHON=sys.executable)
    _run([rscript, str(EXAMPLES / "example_r.R"), str(example_model_dir)], env, tmp_path)

    table = pd.read_csv(example_model_dir / "output" / "example_r.tsv", sep="\t", index_col=0)
    assert list(table.columns) == ROADMAP
    assert table.index.tolist() == expected["name"].tolist()
    np.testing.assert_allclose(table.to_numpy(), expected[ROADMAP].to_numpy(), atol=P_ATOL)


def test_readme_blocks_are_the_scripts():
    """Every README code block marked `<!-- from: PATH -->` is a verbatim run of lines of that script."""
    import re

    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"<!-- from: (\S+) -->\n```\w*\n(.*?)```", readme, flags=re.S)
    assert sorted({path for path, _ in blocks}) == sorted(
        f"docs/usage_examples/{name}" for name in ("example_kipoi.sh", "example_python.py", "example_r.R"))
    assert len(blocks) == 4
    for path, block in blocks:
        script = (REPO / path).read_text()
        assert block in script, f"README block not found verbatim in {path}:\n{block}"
