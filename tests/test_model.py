"""The architecture matches the paper / original implementation, and the fast paths match the slow ones."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import P_ATOL

from chromdragonn import paths
from chromdragonn.nn.model import ChromDragoNN, ModelConfig, ResNetTrunk, SequenceModel

REFERENCE = paths.SHARED_DIR / "reference" / "original_stage2_state_dict_keys.tsv"


@pytest.fixture(scope="module")
def real_onehot() -> torch.Tensor:
    """Eight real 1 kb windows of hg19 chr22 (shipped example FASTA)."""
    from chromdragonn import paths
    from chromdragonn.inputs.genome import Genome, one_hot_batch

    genome = Genome(paths.EXAMPLE_DIR / "hg19_chr22_1-22000000.fa.gz")
    starts = [17_000_000 + 25_000 * i for i in range(8)]
    return torch.from_numpy(one_hot_batch([genome.fetch("chr22", s, s + 1000) for s in starts]))


@pytest.fixture(scope="module")
def real_expression() -> torch.Tensor:
    """arcsinh(TPM) of the gene panel in four real Roadmap contexts."""
    from chromdragonn.inputs.expression import ExpressionSource

    return torch.from_numpy(ExpressionSource().matrix(["E003", "E116", "E123", "E066"]))


def _reference_rows():
    rows = []
    for line in REFERENCE.read_text().splitlines()[1:]:
        key, shape, alias = line.split("\t")
        rows.append((key, eval(shape, {}), alias))  # shapes are tuple literals like (48, 4, 3, 1)
    return rows


def test_trunk_lengths_follow_the_paper(real_onehot):
    """Lengths after each stage: 1000 -> pool 333 -> c2to3 339 -> pool 84 -> conv3 86 -> pool 21."""
    trunk = ResNetTrunk().eval()
    seen = {}
    for name in ["layer2", "maxpool1", "c2to3", "maxpool2", "conv3", "maxpool3"]:
        getattr(trunk, name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, tuple(o.shape)))
    with torch.no_grad():
        out = trunk(real_onehot[:2])
    assert seen["layer2"] == (2, 128, 1000)
    assert seen["maxpool1"] == (2, 128, 333)
    assert seen["c2to3"] == (2, 200, 339)
    assert seen["maxpool2"] == (2, 200, 84)
    assert seen["conv3"] == (2, 200, 86)
    assert seen["maxpool3"] == (2, 200, 21)
    assert out.shape == (2, 4200)


def test_trunk_and_head_tensors_match_the_original_checkpoint_layout():
    """Every unique original tensor has a counterpart of the same size (Conv2d (k,1) -> Conv1d k)."""
    rows = [r for r in _reference_rows() if r[0] == r[2]]  # drop the aliases
    stage1_head = ("basset_model.fc1.", "basset_model.bn4.", "basset_model.fc2.", "basset_model.bn5.",
                   "basset_model.fc3.")
    trunk_ref = {k[len("basset_model."):]: s for k, s, _ in rows
                 if k.startswith("basset_model.") and not k.startswith(stage1_head)}
    head_ref = {k: s for k, s, _ in rows if not k.startswith("basset_model.")}
    model = ChromDragoNN(ModelConfig(n_genes=1630, with_mean=True))
    ours_trunk = {k: tuple(v.shape) for k, v in model.trunk.state_dict().items()}
    ours_head = {k: tuple(v.shape) for k, v in model.head.state_dict().items()}
    assert set(ours_trunk) == set(trunk_ref)
    for k, shape in trunk_ref.items():
        squeezed = shape[:-1] if len(shape) == 4 else shape
        assert ours_trunk[k] == squeezed, k
    assert ours_head == head_ref
    # fc1 width: 4200 trunk + 1630 genes + 1 mean = 5831, as in the original.
    assert head_ref["fc1.weight"] == (1000, 5831)


def test_stage1_head_matches_original_multitask_head():
    rows = {k: s for k, s, a in _reference_rows() if k == a}
    model = SequenceModel(n_tasks=103)
    for name in ["fc1.weight", "bn4.weight", "fc2.weight", "bn5.running_var", "fc3.weight", "fc3.bias"]:
        assert tuple(model.head.state_dict()[name].shape) == rows[f"basset_model.{name}"]


def test_grid_equals_one_forward_per_pair(real_onehot, real_expression):
    """predict_grid (trunk once, split fc1) gives the naive per-pair probabilities."""
    torch.manual_seed(1)
    model = ChromDragoNN(ModelConfig(n_genes=real_expression.shape[1], with_mean=True))
    _randomise_bn(model)
    model.eval()
    seq = real_onehot[:6]
    mean = torch.linspace(0.0, 0.9, 6)
    grid = model.predict_grid(seq, real_expression, mean)
    c = real_expression.shape[0]
    naive = model.predict_proba(seq.repeat_interleave(c, 0), real_expression.repeat(6, 1),
                                mean.repeat_interleave(c, 0)).reshape(6, c)
    assert grid.shape == (6, c)
    torch.testing.assert_close(grid, naive, atol=P_ATOL, rtol=0)
    # the (N, C, G) form with identical rows takes the same path and gives the same numbers
    grid3 = model.predict_grid(seq, real_expression.expand(6, -1, -1), mean)
    torch.testing.assert_close(grid3, grid, atol=0, rtol=0)
    # and with rows that differ per interval, the per-row path
    varied = real_expression.expand(6, -1, -1).clone()
    varied[0] = real_expression.flip(0)
    grid_varied = model.predict_grid(seq, varied, mean)
    torch.testing.assert_close(grid_varied[0], grid[0].flip(0), atol=P_ATOL, rtol=0)
    # the probabilities are a real spread, not a constant
    assert float(grid.std()) > 1e-3


def test_without_mean_the_mean_is_not_an_input(real_onehot, real_expression):
    model = ChromDragoNN(ModelConfig(n_genes=real_expression.shape[1], with_mean=False)).eval()
    assert model.head.fc1.in_features == 4200 + real_expression.shape[1]
    p = model.predict_grid(real_onehot[:2], real_expression)
    assert p.shape == (2, real_expression.shape[0])
    with_mean = ChromDragoNN(ModelConfig(n_genes=real_expression.shape[1], with_mean=True)).eval()
    with pytest.raises(ValueError, match="mean"):
        with_mean.predict_grid(real_onehot[:2], real_expression)


def test_log_softmax_output_is_normalised(real_onehot, real_expression):
    model = ChromDragoNN(ModelConfig(n_genes=real_expression.shape[1], with_mean=True)).eval()
    with torch.no_grad():
        logp = model(real_onehot[:3], real_expression[:1].expand(3, -1), torch.zeros(3))
    assert logp.shape == (3, 2)
    np.testing.assert_allclose(logp.exp().sum(1).numpy(), 1.0, atol=1e-6)


def _randomise_bn(model: torch.nn.Module) -> None:
    """Non-trivial BN statistics, as in a trained model."""
    g = torch.Generator().manual_seed(7)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def test_parameter_count():
    """3,018,096 trunk parameters (weights and biases), computed from the layer list by hand."""
    convs = [(4, 48, 3), (48, 64, 3)] + [(64, 64, 3)] * 4 + [(64, 128, 3)] + [(128, 128, 7)] * 4 \
        + [(128, 200, 1)] + [(200, 200, 7), (200, 200, 3), (200, 200, 3)] * 2 + [(200, 200, 7)] * 4 \
        + [(200, 200, 7)]
    n_conv = sum(ci * co * k + co for ci, co, k in convs)
    n_bn = 2 * sum(co for _, co, _ in convs)
    trunk = ResNetTrunk()
    assert sum(p.numel() for p in trunk.parameters()) == n_conv + n_bn
    assert math.isclose(n_conv + n_bn, 3_018_096)
