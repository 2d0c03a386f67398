"""Folds, loci, the mean feature (= what the shipped bigWig gives), and the B x K pair batches."""

import numpy as np
import pytest

from chromdragonn import paths
from chromdragonn.inputs.expression import ExpressionSource
from chromdragonn.inputs.genome import MeanAccessibility
from chromdragonn.training.data import PairSampler, Stage1Sampler, mean_feature
from chromdragonn.training.export import write_mean_bigwig
from chromdragonn.training.folds import fold_contexts, loci_roles, make_folds, read_folds, write_folds
from chromdragonn.training.simulate import SimulatedAccessibility, label_region_with_rule

FASTA = paths.EXAMPLE_DIR / "hg19_chr22_1-22000000.fa.gz"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    src = ExpressionSource()
    contexts = src.contexts
    return label_region_with_rule(tmp_path_factory.mktemp("data") / "store", FASTA, SimulatedAccessibility.default(1),
                                  src.matrix(contexts), contexts, ["22"], ["22:19000001-19150000"], seed=0)


def test_folds_hold_out_every_context_once():
    contexts = [f"E{i:03d}" for i in range(56)]
    df = make_folds(contexts, n_folds=5, n_valid=4, seed=0)
    test = df[df.role == "test"]
    assert sorted(test.context) == contexts and test.groupby("fold").size().tolist() == [12, 11, 11, 11, 11]
    for f in range(5):
        roles = fold_contexts(df, f)
        assert len(roles["valid"]) == 4 and len(roles["train"]) == 56 - 4 - len(roles["test"])
        assert not set(roles["train"]) & (set(roles["test"]) | set(roles["valid"]))
    assert df.equals(make_folds(contexts, n_folds=5, n_valid=4, seed=0))


def test_shipped_folds_file_covers_the_56_roadmap_contexts(tmp_path):
    df = read_folds(paths.FOLDS_FILE)
    tpm_contexts = ExpressionSource().contexts
    assert sorted(df[df.role == "test"].context) == sorted(tpm_contexts)
    write_folds(df, tmp_path / "f.tsv")
    assert read_folds(tmp_path / "f.tsv").equals(df)


def test_loci_roles_keep_windows_apart(store):
    roles = loci_roles(store, ["22:19100001-19120000"], ["22:19120001-19150000"])  # 1-based, inclusive
    start = np.asarray(store.bins[:, 1])
    assert set(roles) == {"train", "valid", "heldout", "gap"}
    assert (start[roles == "valid"] - 400 >= 19_100_000).all() and (start[roles == "valid"] + 600 <= 19_120_000).all()
    assert (start[roles == "train"] + 600 <= 19_100_000).all()
    assert (start[roles == "heldout"] - 400 >= 19_120_000).all()
    # a 1 kb window at a 50 bp step straddles a boundary in 19 positions
    assert (roles == "gap").sum() == 2 * 19


def test_mean_feature_is_what_the_bigwig_gives(store, tmp_path):
    ctx = np.arange(0, 56, 2)
    feat = mean_feature(store, ctx)
    bw = MeanAccessibility(write_mean_bigwig(store, ctx, tmp_path / "mean.bw"))
    rng = np.random.default_rng(0)
    for i in rng.choice(len(store), 40, replace=False):
        b = int(store.bins[i, 1])
        assert bw.value("chr22", b - 400, b + 600) == pytest.approx(float(feat[i]), abs=1e-6)
    # the track smooths the bins' own means (weights 1,2,3,4,3,2,1 / 16 over neighbours)
    own = np.asarray(store.labels[:, ctx]).mean(axis=1)
    assert abs(feat.mean() - own.mean()) < 0.005 and np.corrcoef(feat, own)[0, 1] > 0.8


def test_pair_batches_are_b_by_k_with_the_papers_balance(store):
    """B x K batches whose pairs follow the paper's 1 positive : 3 negatives balanced sampling."""
    ctx = np.arange(40)
    bins = np.arange(len(store))
    mean = mean_feature(store, ctx)
    s = PairSampler(store, bins, ctx, mean, intervals=16, contexts_per_interval=32, seed=1)
    labels, means = [], []
    for _ in range(12):
        b = s.next()
        assert b.seq.shape == (16, 1000, 4) and b.contexts.shape == (16, 32) == b.labels.shape
        assert set(np.unique(b.contexts)) <= set(ctx)
        # labels are the store's labels of (interval, context); windows are the store's windows
        assert np.array_equal(b.labels, np.asarray(store.labels)[b.bins[:, None], b.contexts])
        assert np.array_equal(b.seq, store.onehot(b.bins))
        labels.append(b.labels)
        means.append(np.repeat(b.mean[:, None], 32, axis=1))
    y, m = np.concatenate(labels).ravel(), np.concatenate(means).ravel()
    assert 0.17 < y.mean() < 0.33  # 0.25 in expectation
    # as in the paper, positives are drawn per positive pair, so often-open bins dominate them
    assert m[y == 1].mean() > 2 * m[y == 0].mean()
    # without upsampling, pairs are uniform: the store's own positive rate (~5%)
    u = PairSampler(store, bins, ctx, mean, 16, 32, seed=1, upsample_positives=False)
    rate = np.mean([u.next().labels.mean() for _ in range(6)])
    assert rate < 0.15
    s1 = Stage1Sampler(store, bins, ctx, batch_size=8, seed=0)
    b1 = s1.next()
    assert b1.seq.shape == (8, 1000, 4) and b1.labels.shape == (8, 40)
