"""Batches for training, drawn from the memory-mapped store.

Stage 1: B intervals, each with its labels in all training contexts (multi-task).
Stage 2: B intervals x K contexts.  The trunk runs once per interval and its
features are repeated K times (see :mod:`chromdragonn.training.train`).  The pairs
follow the paper's balanced sampling (1 positive : 3 negatives by upsampling
positives; original ``sample_batch_balanced_train``: a quarter of the pairs drawn
uniformly from all positive (bin, context) pairs, the rest uniformly from the
negative ones), rearranged into B x K: with n_b the number of training contexts in
which bin b is open, intervals are drawn with probability
    P(b) = 1/4 * n_b / N_pos + 3/4 * (T - n_b) / N_neg
and each interval's K contexts independently with weight 1/4 / N_pos for its open
contexts and 3/4 / N_neg for its closed ones.  Each (bin, context) pair then has
exactly the paper's probability, while the trunk runs B times instead of B * K.

Data parallel: each rank draws its own share of the global batch from a
generator seeded with (seed, rank), so ranks see different examples.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chromdragonn.training.config import TrainingConfig
from chromdragonn.training.folds import fold_contexts, loci_roles, read_folds
from chromdragonn.training.store import BIN_SIZE, STEP, Store


def mean_track(store: Store, ctx_idx: np.ndarray) -> dict[int, tuple[int, np.ndarray]]:
    """Mean-accessibility track over the given contexts, per chromosome, in 50 bp segments.

    Each 50 bp segment holds the mean label (over the contexts and over the store's
    bins covering it) -- the track written to the shipped bigWig.  Returns
    {chrom index: (first segment start, values)}; segments no bin covers are 0.
    """
    per_bin = np.asarray(store.labels[:, ctx_idx], dtype=np.float64).mean(axis=1)
    chrom = np.asarray(store.bins[:, 0])
    start = np.asarray(store.bins[:, 1])
    per_seg = BIN_SIZE // STEP
    out = {}
    for c in np.unique(chrom):
        on = chrom == c
        seg = start[on] // STEP
        first = int(seg.min())
        n = int(seg.max()) - first + per_seg
        total = np.zeros(n)
        count = np.zeros(n)
        for k in range(per_seg):
            np.add.at(total, seg - first + k, per_bin[on])
            np.add.at(count, seg - first + k, 1)
        out[int(c)] = (first * STEP, np.divide(total, count, out=np.zeros(n), where=count > 0))
    return out


def mean_feature(store: Store, ctx_idx: np.ndarray) -> np.ndarray:
    """Per bin: the mean of :func:`mean_track` over the bin's 200 bp, float32 (n_bins,).

    This is exactly what :class:`chromdragonn.inputs.genome.MeanAccessibility` reads from
    the bigWig at prediction time, so training and prediction see the same feature.
    """
    track = mean_track(store, ctx_idx)
    chrom = np.asarray(store.bins[:, 0])
    start = np.asarray(store.bins[:, 1])
    feat = np.zeros(len(store), np.float64)
    per_seg = BIN_SIZE // STEP
    for c, (first, values) in track.items():
        on = chrom == c
        seg = (start[on] - first) // STEP
        feat[on] = sum(values[seg + k] for k in range(per_seg)) / per_seg
    return feat.astype(np.float32)


def positive_enriched_subset(store: Store, bin_idx: np.ndarray, ctx_idx: np.ndarray, n_bins: int | None,
                             positive_share: float, seed: int) -> np.ndarray:
    """At most ``n_bins`` of ``bin_idx``: ``positive_share`` of them open in >= 1 of the contexts."""
    if n_bins is None or n_bins >= len(bin_idx):
        return np.sort(bin_idx)
    rng = np.random.default_rng([seed, 7])
    open_any = np.asarray(store.labels[bin_idx][:, ctx_idx]).any(axis=1)
    pos, neg = bin_idx[open_any], bin_idx[~open_any]
    n_pos = min(len(pos), int(round(n_bins * positive_share)))
    n_neg = min(len(neg), n_bins - n_pos)
    return np.sort(np.concatenate([rng.choice(pos, n_pos, replace=False), rng.choice(neg, n_neg, replace=False)]))


@dataclass
class Stage1Batch:
    seq: np.ndarray     # (B, 1000, 4)
    labels: np.ndarray  # (B, T) float32


class Stage1Sampler:
    def __init__(self, store: Store, bin_idx: np.ndarray, ctx_idx: np.ndarray, batch_size: int,
                 seed: int, rank: int = 0, world: int = 1):
        self.store, self.bins, self.ctx = store, np.asarray(bin_idx), np.asarray(ctx_idx)
        self.batch = max(1, batch_size // world)
        self.rng = np.random.default_rng([seed, rank])

    def next(self) -> Stage1Batch:
        idx = np.sort(self.rng.choice(self.bins, self.batch))
        labels = np.asarray(self.store.labels[idx][:, self.ctx], dtype=np.float32)
        return Stage1Batch(self.store.onehot(idx), labels)


@dataclass
class PairBatch:
    seq: np.ndarray | None  # (B, 1000, 4); None when the sampler skips sequence
    contexts: np.ndarray  # (B, K) store context indices
    labels: np.ndarray   # (B, K) int64
    mean: np.ndarray     # (B,) float32
    bins: np.ndarray     # (B,) store bin indices


class PairSampler:
    """B intervals x K training contexts per step with the paper's 1 : 3 balanced pair distribution."""

    def __init__(self, store: Store, bin_idx: np.ndarray, ctx_idx: np.ndarray, mean: np.ndarray,
                 intervals: int, contexts_per_interval: int, seed: int, rank: int = 0, world: int = 1,
                 upsample_positives: bool = True, positive_fraction: float = 0.25, with_sequence: bool = True):
        self.store, self.ctx, self.mean = store, np.asarray(ctx_idx), mean
        self.with_sequence = with_sequence  # False: batches without one-hot (head trained on cached features)
        self.bins = np.asarray(bin_idx)
        self.B = max(1, intervals // world)
        self.K = contexts_per_interval
        self.rng = np.random.default_rng([seed, rank])
        self._labels = np.asarray(store.labels[self.bins][:, self.ctx])
        lab = self._labels.astype(np.float64)
        n_pos, n_all = lab.sum(), lab.size
        if upsample_positives and 0 < n_pos < n_all:
            w_pos, w_neg = positive_fraction / n_pos, (1 - positive_fraction) / (n_all - n_pos)
        else:  # uniform over all pairs
            w_pos = w_neg = 1.0 / n_all
        self._w = (w_neg, w_pos)
        # interval probability = the sum of its pairs' weights; contexts are drawn within the row later
        n_open = self._labels.sum(axis=1, dtype=np.float64)
        row = n_open * w_pos + (len(self.ctx) - n_open) * w_neg
        self._bin_p = row / row.sum()

    def next(self) -> PairBatch:
        rng, B, K = self.rng, self.B, self.K
        rows = rng.choice(len(self.bins), size=B, p=self._bin_p)
        w = np.where(self._labels[rows] == 1, self._w[1], self._w[0])
        cdf = np.cumsum(w, axis=1) / w.sum(axis=1, keepdims=True)
        u = rng.random((B, K))
        pos = np.minimum((cdf[:, None, :] < u[:, :, None]).sum(axis=2), len(self.ctx) - 1)
        labels = self._labels[rows[:, None], pos].astype(np.int64)
        idx = self.bins[rows]
        order = np.argsort(idx, kind="stable")  # sorted reads from the memory-mapped store
        rows, pos, labels, idx = rows[order], pos[order], labels[order], idx[order]
        seq = self.store.onehot(idx) if self.with_sequence else None
        return PairBatch(seq, self.ctx[pos], labels, self.mean[idx].astype(np.float32), idx)


class FoldData:
    """Everything a fold's training and evaluation need from the store, computed once."""

    def __init__(self, cfg: TrainingConfig, fold: int, store: Store | None = None):
        self.cfg = cfg
        self.fold = fold
        self.store = store or Store(cfg.store)
        folds = read_folds(cfg.folds_file)
        roles = fold_contexts(folds, fold)
        self.train_ctx = self.store.context_index(roles["train"])
        self.valid_ctx = self.store.context_index(roles["valid"])
        self.test_ctx = self.store.context_index(roles["test"])
        self.loci = loci_roles(self.store, cfg.loci.valid, cfg.loci.heldout)
        self.train_bins = np.flatnonzero(self.loci == "train")
        self.valid_bins = np.flatnonzero(self.loci == "valid")
        self.heldout_bins = np.flatnonzero(self.loci == "heldout")
        # mean accessibility over this fold's training contexts only
        self.mean = mean_feature(self.store, self.train_ctx)

    def sample(self, bins: np.ndarray, n: int | None, tag: int) -> np.ndarray:
        """A seeded uniform sample of ``n`` bins (all when n is None); same for every fold."""
        if n is None or n >= len(bins):
            return bins
        rng = np.random.default_rng([self.cfg.seed, 1000 + tag])
        return np.sort(rng.choice(bins, n, replace=False))
