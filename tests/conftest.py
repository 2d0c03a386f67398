"""Shared fixtures: real data paths and a Kipoi model folder with random-weight folds.

The model folder never depends on weights/ holding trained files: two folds are
initialised at random (seeded), their batch-norm statistics set from one pass
over the real example windows (so outputs vary across intervals and contexts as
a trained model's would), saved by the test, and model.yaml is rendered with their md5s.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from chromdragonn import paths

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = paths.SHARED_DATA
EXAMPLE = REPO / "example"
FASTA = EXAMPLE / "hg19_chr22_1-22000000.fa.gz"
BED = EXAMPLE / "intervals.bed"
MEAN_BW = paths.MEAN_BIGWIG  # the shipped track (mean of the benchmark labels over training contexts)
USER_TABLE = EXAMPLE / "user_rnaseq_tpm.tsv"
# Tolerance on P(accessible) when one float32 network is run by two routes or batchings. They reorder
# its sums (oneDNN and MKL pick kernels and blockings by batch shape), so results agree only up to
# rounding: a dot product of K float32 terms carries a relative error of about sqrt(K) * 2^-24, i.e.
# ~5e-6 for fc1's K = 5,776 inputs (fc2: 1,000; the convolutions: <= 1,400), on pre-activations of
# order 1, and sigmoid's slope is at most 1/4, so P differs by ~1e-6 (1.04e-6 was seen between two
# batchings). 1e-5 leaves a factor of 10 for other CPUs and kernels while still catching any real
# error (a wrong window, context or mean value moves P by far more). TSVs hold P with 6 significant
# digits (<= 5e-7 of rounding), which fits in the same bound.
P_ATOL = 1e-5
# The executables of the environment running the tests (kipoi, Rscript's python).
VENV_BIN = Path(sys.executable).parent


def _calibrated_random_model(seed: int, genes: list[str]):
    """A random-init ChromDragoNN whose BN running stats come from real example windows."""
    import numpy as np
    import torch

    from chromdragonn.inputs.expression import ExpressionSource
    from chromdragonn.inputs.genome import Genome, MeanAccessibility, centered_window, one_hot, read_bed
    from chromdragonn.nn.model import ChromDragoNN, ModelConfig

    torch.manual_seed(seed)
    model = ChromDragoNN(ModelConfig(n_genes=len(genes), with_mean=True))
    bed = read_bed(BED).iloc[:12]
    genome, mean = Genome(FASTA), MeanAccessibility(MEAN_BW)
    wins = [centered_window(c, s, e) for c, s, e in zip(bed.chrom, bed.start, bed.end)]
    seq = np.stack([one_hot(genome.fetch(w.chrom, w.start, w.end)) for w in wins])
    macc = np.array([mean.value(w.chrom, w.start, w.end) for w in wins], dtype=np.float32)
    expr = ExpressionSource().matrix(["E003", "E116", "E123", "E071"])
    n, c = len(wins), len(expr)
    # Row-paired: every window with every context.
    seq_t = torch.as_tensor(np.repeat(seq, c, axis=0))
    expr_t = torch.as_tensor(np.tile(expr, (n, 1)))
    mean_t = torch.as_tensor(np.repeat(macc, c))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: running stats = this batch's stats
    model.train()
    with torch.no_grad():
        model(seq_t, expr_t, mean_t)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.momentum = 0.1
    return model.eval()


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory) -> list[Path]:
    from chromdragonn import paths
    from chromdragonn.inputs.expression import read_gene_panel
    from chromdragonn.nn.weights import save_weights

    genes = read_gene_panel(paths.GENE_PANEL)["gene_symbol"].tolist()
    out = tmp_path_factory.mktemp("random_weights")
    files = []
    for fold in range(2):
        path = out / f"fold{fold}.with_mean.pt"
        save_weights(_calibrated_random_model(fold, genes), path, genes)
        files.append(path)
    return files


@pytest.fixture(scope="session")
def genome():
    """The shipped example FASTA (hg19 chr22 slice, bgzipped)."""
    from chromdragonn.inputs.genome import Genome

    return Genome(FASTA)


@pytest.fixture(scope="session")
def fold0(random_weights):
    """The first random-weight fold as a loaded model."""
    from chromdragonn.nn.weights import load_model

    return load_model(random_weights[0])[0]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, random_weights) -> Path:
    """A copy of the root Kipoi files with two random-weight folds (a 2-fold ensemble)."""
    from chromdragonn import paths
    from chromdragonn.kipoi.render import write_model_dir

    out = tmp_path_factory.mktemp("kipoi_model")
    write_model_dir(out, random_weights, "ChromDragoNN test model (random weights, not trained)",
                    extra_files=[paths.SHIPPED_EXPRESSION])
    return out


@pytest.fixture(scope="session")
def dl_args() -> dict:
    """Dataloader arguments on the shipped example, with absolute paths."""
    return {"intervals_file": str(BED), "fasta_file": str(FASTA), "cell_types": "E003,E116,my_H1_sample",
            "expression_file": str(USER_TABLE), "mean_bigwig": str(MEAN_BW)}


@pytest.fixture(scope="session")
def kipoi_env() -> dict:
    """Environment for kipoi / Rscript subprocesses: this venv first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def pytest_sessionstart(session):
    # The tests assert numbers on the project's real shared data; say where it was looked for.
    if not SHARED_DATA.is_dir():
        pytest.exit(f"shared data not found at {SHARED_DATA}: clone next to ../shared, "
                    "or set CHROMDRAGONN_SHARED to the folder holding data/ and reference/", returncode=2)
