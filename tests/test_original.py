"""Import of original ChromDragoNN checkpoints (chromdragonn.nn.original, chromdragonn.convert).

The original authors' checkpoints cannot be had here, so the test builds a
replica of the ORIGINAL architecture (Conv2d with (k, 1) kernels, each layer
registered twice through nn.Sequential, stage-1 multi-task head under
basset_model) whose state_dict must equal every row of the reference TSV read
off a real instance, gives it non-trivial weights and BN statistics, saves a
model_best.pth.tar the way the original runner did, and checks that the
imported model gives the replica's numbers on real hg19 chr22 sequence and
real Roadmap expression.
"""
from __future__ import annotations

import contextlib
import gzip
import os
import subprocess
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import chromdragonn
from chromdragonn import paths
from chromdragonn.convert import main as convert_main
from chromdragonn.convert import read_gene_list
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.expression import read_gene_panel
from chromdragonn.nn.original import convert_state_dict, load_original, read_original_checkpoint
from chromdragonn.nn.weights import load_model, md5sum

REPO = Path(__file__).resolve().parents[1]
SHARED = paths.SHARED_DIR
DATA = SHARED / "data"
REFERENCE_TSV = SHARED / "reference" / "original_stage2_state_dict_keys.tsv"
FASTA_GZ = DATA / "genome" / "hg19_chr22_1-22000000.fa.gz"
RPKM = DATA / "expression" / "57epigenomes.RPKM.pc.gz"
GENCODE = DATA / "expression" / "gencode_v10_genes_simplified.tsv"
E003_BED = DATA / "accessibility" / "roadmap_E003_H1_DNase_enhancer_regions_hg19_chr22.bed.gz"

N_GENES = 1630
N_TRAIN_CONTEXTS = 103  # 123 contexts, 10 validation, 10 test
CONTEXTS = ["E003", "E116", "E123", "E066", "E003", "E116", "E123"]


# --- a replica of the original architecture ------------------------------------
# Registration order matters: it is the state_dict order the reference TSV lists.

def _conv(c_in, c_out, k, pad=None):
    return nn.Conv2d(c_in, c_out, (k, 1), stride=(1, 1), padding=(k // 2 if pad is None else pad, 0))


class _Block(nn.Module):
    """Original residual block; ``grouped``: all convs registered before all BNs (L2Block, L3Block)."""

    def __init__(self, channels, kernels, grouped):
        super().__init__()
        convs = [_conv(channels, channels, k) for k in kernels]
        bns = [nn.BatchNorm2d(channels) for _ in kernels]
        order = ([("conv", i) for i in range(len(kernels))] + [("bn", i) for i in range(len(kernels))]
                 if grouped else [(kind, i) for i in range(len(kernels)) for kind in ("conv", "bn")])
        for kind, i in order:
            setattr(self, f"{kind}{i + 1}", (convs if kind == "conv" else bns)[i])
        seq = []
        for i in range(len(kernels)):
            seq += [convs[i], bns[i]] + ([nn.ReLU(inplace=True)] if i < len(kernels) - 1 else [])
        self.layer = nn.Sequential(*seq)

    def forward(self, x):
        out = self.layer(x)
        out += x
        return F.relu(out)


class OriginalStage1(nn.Module):
    def __init__(self, n_tasks=N_TRAIN_CONTEXTS, dropout=0.3):
        super().__init__()
        self.dropout = dropout
        self.conv1 = _conv(4, 48, 3)
        self.bn1 = nn.BatchNorm2d(48)
        self.conv2 = _conv(48, 64, 3)
        self.bn2 = nn.BatchNorm2d(64)
        self.prelayer = nn.Sequential(self.conv1, self.bn1, nn.ReLU(inplace=True),
                                      self.conv2, self.bn2, nn.ReLU(inplace=True))
        self.layer1 = nn.Sequential(*[_Block(64, (3, 3), grouped=False) for _ in range(2)])
        self.layer2 = nn.Sequential(*[_Block(128, (7, 7), grouped=True) for _ in range(2)])
        self.layer3 = nn.Sequential(*[_Block(200, (7, 3, 3), grouped=True) for _ in range(2)])
        self.layer4 = nn.Sequential(*[_Block(200, (7, 7), grouped=False) for _ in range(2)])
        self.c1to2 = _conv(64, 128, 3)
        self.b1to2 = nn.BatchNorm2d(128)
        self.l1tol2 = nn.Sequential(self.c1to2, self.b1to2, nn.ReLU(inplace=True))
        self.c2to3 = nn.Conv2d(128, 200, (1, 1), padding=(3, 0))
        self.b2to3 = nn.BatchNorm2d(200)
        self.l2tol3 = nn.Sequential(self.c2to3, self.b2to3, nn.ReLU(inplace=True))
        self.maxpool1 = nn.MaxPool2d((3, 1))
        self.maxpool2 = nn.MaxPool2d((4, 1))
        self.maxpool3 = nn.MaxPool2d((4, 1))
        self.fc1 = nn.Linear(4200, 1000)
        self.bn4 = nn.BatchNorm1d(1000)
        self.fc2 = nn.Linear(1000, 1000)
        self.bn5 = nn.BatchNorm1d(1000)
        self.fc3 = nn.Linear(1000, n_tasks)
        self.conv3 = _conv(200, 200, 7, pad=4)
        self.bn3 = nn.BatchNorm2d(200)
        self.flayer = nn.Sequential(self.conv3, self.bn3, nn.ReLU(inplace=True))

    def forward(self, s):
        s = s.permute(0, 2, 1).contiguous().view(-1, 4, 1000, 1)
        out = self.layer1(self.prelayer(s))
        out = self.maxpool1(self.layer2(self.l1tol2(out)))
        out = self.maxpool2(self.layer3(self.l2tol3(out)))
        out = self.maxpool3(self.flayer(self.layer4(out)))
        conv_out = out.view(-1, 4200)
        out = F.dropout(F.relu(self.bn4(self.fc1(conv_out))), p=self.dropout, training=self.training)
        out = F.dropout(F.relu(self.bn5(self.fc2(out))), p=self.dropout, training=self.training)
        return self.fc3(out), conv_out


class OriginalStage2(nn.Module):
    def __init__(self, n_genes, with_mean, dropout=0.3):
        super().__init__()
        self.with_mean = with_mean
        self.dropout = dropout
        self.basset_model = OriginalStage1(dropout=dropout)
        self.fc1 = nn.Linear(n_genes + 4200 + int(with_mean), 1000)
        self.bn1 = nn.BatchNorm1d(1000)
        self.fc2 = nn.Linear(1000, 1000)
        self.bn2 = nn.BatchNorm1d(1000)
        self.fc3 = nn.Linear(1000, 2)

    def forward(self, s, g, m=None):
        _, conv_out = self.basset_model(s)
        g = torch.cat((conv_out, g, m.view(-1, 1)), 1) if self.with_mean else torch.cat([conv_out, g], dim=-1)
        g = F.dropout(F.relu(self.bn1(self.fc1(g))), p=self.dropout, training=self.training)
        g = F.dropout(F.relu(self.bn2(self.fc2(g))), p=self.dropout, training=self.training)
        return F.log_softmax(self.fc3(g), dim=1)


def _dotdict_class():
    class dotdict(dict):  # as utils.data_utils.dotdict of the original
        __slots__ = ()

        def __getattr__(self, item):
            try:
                return self[item]
            except KeyError:
                raise AttributeError(item)

        def __setattr__(self, key, value):
            self[key] = value

    dotdict.__module__ = "utils.data_utils"
    dotdict.__qualname__ = "dotdict"
    return dotdict


@contextlib.contextmanager
def fake_original_modules():
    """`utils.data_utils` as the original code has it, only while pickling."""
    pkg, mod = types.ModuleType("utils"), types.ModuleType("utils.data_utils")
    mod.dotdict = _dotdict_class()
    pkg.data_utils = mod
    saved = {k: sys.modules.get(k) for k in ("utils", "utils.data_utils")}
    sys.modules["utils"], sys.modules["utils.data_utils"] = pkg, mod
    try:
        yield mod
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def stage2_args(dotdict, with_mean, n_genes=N_GENES):
    """The original stage-2 argparser's values (utils/fetch_global_args.py defaults)."""
    return dotdict({
        "momentum": 0.98, "dropout": 0.3, "cuda": 1, "epochs": 100, "batches_per_epoch": 4000,
        "batches_per_test_epoch": 500, "schedule": [], "resume_from_best": 0, "evaluate": 0,
        "eval_on_validation": 0, "eval_mode": "report", "report_filename": "report", "labels_avail": 1,
        "hold_out": "cell_types", "validation_list": [1, 11, 21, 31, 41, 51, 61, 71, 81, 91],
        "test_list": [15, 25, 35, 45, 55, 65, 75, 85, 95, 105], "dnase": "/data/packbited",
        "rna_quants": "/data/rna_quants_1630tf.joblib", "chromosomes": list(range(1, 23)) + ["X", "Y"],
        "num_total_cell_types": 123, "checkpoint": "/scratch/stage2/fold0", "lr": 0.0001, "batch_size": 512,
        "freeze_pretrained_model": 0, "positive_proportion": 0.25, "pos_class_weight": 1.0,
        "basset_pretrained_path": "/scratch/stage1/", "stage1_file": "model_zoo/stage1/resnet.py",
        "num_genes": n_genes, "with_mean": int(with_mean)})


# --- real inputs ------------------------------------------------------------------

@pytest.fixture(scope="module")
def chr22() -> bytes:
    with gzip.open(FASTA_GZ, "rb") as fh:
        raw = fh.read()
    header_end = raw.index(b"\n") + 1
    assert raw[:header_end] == b">22\n"
    return raw[header_end:].replace(b"\n", b"").upper()


def one_hot(seq: bytes) -> np.ndarray:
    codes = np.frombuffer(seq, dtype=np.uint8)
    out = np.zeros((len(seq), 4), dtype=np.float32)
    for j, base in enumerate(b"ACGT"):
        out[codes == base, j] = 1.0
    return out


@pytest.fixture(scope="module")
def inputs(chr22):
    """7 real 1 kb windows (6 centred on E003 DNase regions, 1 across the N/ACGT boundary) x real expression."""
    bed = pd.read_csv(E003_BED, sep="\t", header=None, usecols=[0, 1, 2], names=["chrom", "start", "end"])
    bed = bed[(bed.start > 16_100_000) & (bed.end < 21_900_000)].sort_values("start").head(6)
    centres = [int((s + e) // 2) for s, e in zip(bed.start, bed.end)] + [16_050_000]
    seqs = np.stack([one_hot(chr22[c - 500:c + 500]) for c in centres])
    rpkm = pd.read_csv(RPKM, sep="\t", index_col=0, nrows=N_GENES)
    expr = np.arcsinh(rpkm[CONTEXTS].to_numpy(dtype=np.float64).T).astype(np.float32)
    mean = np.random.default_rng(7).uniform(0.0, 0.6, len(centres)).astype(np.float32)
    return {"seq": torch.from_numpy(seqs), "expression": torch.from_numpy(expr), "mean_acc": torch.from_numpy(mean),
            "ensembl_ids": list(rpkm.index), "centres": centres}


def make_replica(with_mean: bool, seed: int):
    """A seeded replica with non-trivial BN affine parameters and running statistics, after 2 Adam steps."""
    torch.manual_seed(seed)
    model = OriginalStage2(N_GENES, with_mean)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.uniform_(0.7, 1.3)
                m.bias.uniform_(-0.2, 0.2)
                m.momentum = None  # running stats = the average over the training batches below
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(2):
        seq = F.one_hot(torch.randint(0, 4, (8, 1000), generator=gen), 4).float()
        expr = torch.asinh(torch.rand(8, N_GENES, generator=gen) * 30)
        mean = torch.rand(8, generator=gen)
        target = torch.tensor([0, 1, 0, 0, 1, 0, 1, 0])
        loss = F.nll_loss(model(seq, expr, mean), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.momentum = 0.1
    return model.eval(), optimizer


def save_like_original(path, model, optimizer, with_mean, legacy=False, data_parallel=True):
    """model_best.pth.tar as utils/runner.py run_stage2 wrote it."""
    state_dict = nn.DataParallel(model).state_dict() if data_parallel else model.state_dict()
    with fake_original_modules() as mod:
        args = stage2_args(mod.dotdict, with_mean)
        torch.save({
            "epoch": 7, "state_dict": state_dict, "acc": np.float64(0.6154), "best_acc": np.float64(0.6154),
            "best_loss": 0.2917, "pos_class_weight": 1.0, "args": args, "hold_out": "cell_types",
            "validation_list": args.validation_list, "test_list": args.test_list,
            "optimizer": optimizer.state_dict(),
        }, path, _use_new_zipfile_serialization=not legacy)


@pytest.fixture(scope="module")
def with_mean_ckpt(tmp_path_factory, inputs):
    model, optimizer = make_replica(with_mean=True, seed=11)
    path = tmp_path_factory.mktemp("orig") / "model_best.pth.tar"
    save_like_original(path, model, optimizer, with_mean=True)
    with torch.no_grad():
        logp = model(inputs["seq"].clone(), inputs["expression"], inputs["mean_acc"])
    return {"path": path, "model": model, "expected": logp[:, 1].exp(), "state_dict": model.state_dict()}


# --- tests ------------------------------------------------------------------------

def test_replica_state_dict_matches_reference_tsv(with_mean_ckpt):
    ref = pd.read_csv(REFERENCE_TSV, sep="\t", dtype=str)
    assert len(ref) == 354
    model = with_mean_ckpt["model"]
    sd = model.state_dict(keep_vars=True)
    first_key_of: dict[int, str] = {}
    rows = []
    for key, tensor in sd.items():
        first = first_key_of.setdefault(id(tensor), key)
        rows.append((key, str(tuple(tensor.shape)), first))
    assert [r[0] for r in rows] == list(ref["key"])  # same keys, same order
    assert [r[1] for r in rows] == list(ref["shape"])
    assert [r[2] for r in rows] == list(ref["alias_of"])
    assert sum(r[0] != r[2] for r in rows) == 161  # duplicate registrations


def test_load_original_matches_replica_with_mean(with_mean_ckpt, inputs):
    model = chromdragonn.load_original(with_mean_ckpt["path"])
    assert not model.training and model.with_mean and model.n_genes == N_GENES
    assert model.args.num_genes == N_GENES and model.args.with_mean == 1
    assert model.checkpoint_info["epoch"] == 7 and float(model.checkpoint_info["acc"]) == pytest.approx(0.6154)
    with torch.no_grad():
        p = model(inputs["seq"], inputs["expression"], inputs["mean_acc"])
    expected = with_mean_ckpt["expected"]
    assert p.dtype == torch.float32 and p.shape == (7,)
    assert torch.allclose(p, expected, atol=1e-5, rtol=0), (p - expected).abs().max()
    assert float(expected.std()) > 1e-3  # the comparison is not between constants
    # numpy input works too (R / reticulate users)
    p_np = model(inputs["seq"].numpy(), inputs["expression"].numpy(), inputs["mean_acc"].numpy())
    assert torch.allclose(p_np.detach(), expected, atol=1e-5, rtol=0)
    with pytest.raises(ChromDragoNNError, match="mean_acc"):
        model(inputs["seq"], inputs["expression"])
    with pytest.raises(ChromDragoNNError, match=r"expected \(7, 1630\)"):
        model(inputs["seq"], inputs["expression"][:, :100], inputs["mean_acc"])


def test_convert_cli_output_loads_with_same_numbers(with_mean_ckpt, inputs, tmp_path):
    gencode = pd.read_csv(GENCODE, sep="\t", header=None, usecols=[4, 5], names=["id", "symbol"])
    symbol_of = dict(zip(gencode.id, gencode.symbol))
    genes = [symbol_of.get(e, e) for e in inputs["ensembl_ids"]]
    genes = [g if genes.count(g) == 1 else e for g, e in zip(genes, inputs["ensembl_ids"])]
    genes_file = tmp_path / "genes.txt"
    genes_file.write_text("\n".join(genes) + "\n")
    out = tmp_path / "converted"
    proc = subprocess.run([sys.executable, "-m", "chromdragonn.convert", str(with_mean_ckpt["path"]), str(out),
                           "--genes", str(genes_file)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    weights = out / "model.with_mean.pt"
    assert sorted(p.name for p in out.iterdir()) == ["gene_panel.tsv", "model.with_mean.pt"]
    assert f"md5 {md5sum(weights)}" in proc.stdout
    model, loaded_genes = load_model(weights, md5=md5sum(weights), n_genes=N_GENES, with_mean=True)
    assert loaded_genes == genes
    panel = read_gene_panel(out / "gene_panel.tsv")
    assert list(panel.gene_symbol) == genes and len(panel) == N_GENES
    p = model.predict_proba(inputs["seq"], inputs["expression"], inputs["mean_acc"])
    assert torch.allclose(p, with_mean_ckpt["expected"], atol=1e-5, rtol=0)
    # the multi-context path: every interval in the 4 distinct contexts
    grid = model.predict_grid(inputs["seq"], inputs["expression"][:4], inputs["mean_acc"])
    direct = chromdragonn.load_original(with_mean_ckpt["path"])
    with torch.no_grad():
        for c in range(4):
            ref = direct(inputs["seq"], inputs["expression"][c].expand(7, -1), inputs["mean_acc"])
            assert torch.allclose(grid[:, c], ref, atol=1e-5, rtol=0)


def test_convert_half_and_joblib_genes(with_mean_ckpt, inputs, tmp_path, capsys):
    import joblib

    genes = [f"TF{i}" for i in range(N_GENES)]
    rna = tmp_path / "rna_quants_1630tf.joblib"  # as preprocess/make_rna_joblib.py writes it
    joblib.dump({"rna_quants": np.zeros((3, N_GENES)), "genes": genes, "tasks": ["E003", "E116", "E123"]}, rna)
    assert read_gene_list(rna) == genes
    as_array = tmp_path / "genes_array.joblib"
    joblib.dump(np.array(genes, dtype=object), as_array, compress=3)
    assert read_gene_list(as_array) == genes
    out = tmp_path / "half"
    assert convert_main([str(with_mean_ckpt["path"]), str(out), "--genes", str(rna), "--half"]) == 0
    printed = capsys.readouterr().out
    assert "float16" in printed and "1630 with fill_arcsinh_tpm 0.0" in printed
    model, loaded = load_model(out / "model.with_mean.pt")
    assert loaded == genes
    p = model.predict_proba(inputs["seq"], inputs["expression"], inputs["mean_acc"])
    diff = float((p - with_mean_ckpt["expected"]).abs().max())
    assert 0 < diff < 2e-2  # float16 storage of these random weights: measured 3.6e-3
    size32 = sum(v.numel() * 4 for v in model.state_dict().values())
    assert (out / "model.with_mean.pt").stat().st_size < 0.6 * size32


def test_joblib_gene_list_with_foreign_global_refused(tmp_path):
    import joblib

    sentinel = tmp_path / "SENTINEL"
    bad = tmp_path / "rna.joblib"
    joblib.dump({"genes": ["A", "B"], "x": _Exploit(sentinel)}, bad)
    with pytest.raises(ChromDragoNNError, match="posix.system|os.system"):
        read_gene_list(bad)
    assert not sentinel.exists()


def test_no_mean_checkpoint_legacy_format_bare_keys(inputs, tmp_path):
    model, optimizer = make_replica(with_mean=False, seed=5)
    path = tmp_path / "model_best.pth.tar"
    save_like_original(path, model, optimizer, with_mean=False, legacy=True, data_parallel=False)
    with open(path, "rb") as fh:
        assert fh.read(2) != b"PK"  # the pre-1.6 (non-zip) torch format
    with torch.no_grad():
        expected = model(inputs["seq"].clone(), inputs["expression"])[:, 1].exp()
    loaded = load_original(path)
    assert not loaded.with_mean and loaded.n_genes == N_GENES
    with torch.no_grad():
        p = loaded(inputs["seq"], inputs["expression"], None)
        p_ignored = loaded(inputs["seq"], inputs["expression"], inputs["mean_acc"])  # ignored
    assert torch.allclose(p, expected, atol=1e-5, rtol=0)
    assert torch.equal(p, p_ignored)
    assert convert_main([str(path), str(tmp_path / "out")]) == 0  # placeholder gene names
    m2, genes = load_model(tmp_path / "out" / "model.no_mean.pt", with_mean=False)
    assert genes[0] == "gene_0001" and genes[-1] == "gene_1630"
    assert torch.allclose(m2.predict_proba(inputs["seq"], inputs["expression"]), expected, atol=1e-5, rtol=0)
    # a checkpoint written with numpy 1.x names numpy.core.multiarray.scalar (for `acc`)
    old = tmp_path / "old_numpy.pth.tar"
    raw = path.read_bytes()
    assert raw.count(b"numpy._core.multiarray\n") >= 1
    old.write_bytes(raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    assert float(read_original_checkpoint(old)["acc"]) == pytest.approx(0.6154)


class _Exploit:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


@pytest.mark.parametrize("legacy", [False, True])
def test_forbidden_globals_refused_without_running(with_mean_ckpt, tmp_path, legacy):
    sentinel = tmp_path / "SENTINEL"
    base = {"epoch": 1, "state_dict": {"fc3.bias": torch.zeros(2)}}
    # os.system in args, as a malicious checkpoint would carry it
    path = tmp_path / "os_system.pth.tar"
    torch.save({**base, "args": _Exploit(sentinel)}, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(ChromDragoNNError) as err:
        read_original_checkpoint(path)
    msg = str(err.value)
    assert str(path) in msg and "posix.system" in msg and "\n" not in msg
    assert not sentinel.exists()
    # a class from a module other than the allow-listed ones
    evil = types.ModuleType("evil_payload")

    class Payload:
        def __setstate__(self, state):
            sentinel.write_text("ran")

    Payload.__module__, Payload.__qualname__ = "evil_payload", "Payload"
    evil.Payload = Payload
    sys.modules["evil_payload"] = evil
    try:
        path2 = tmp_path / "foreign_class.pth.tar"
        torch.save({**base, "args": Payload()}, path2, _use_new_zipfile_serialization=not legacy)
    finally:
        del sys.modules["evil_payload"]
    with pytest.raises(ChromDragoNNError, match=r"refused to unpickle global evil_payload\.Payload"):
        chromdragonn.load_original(path2)
    # builtins.eval
    path3 = tmp_path / "eval.pth.tar"
    torch.save({**base, "args": eval}, path3, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(ChromDragoNNError, match=r"refused to unpickle global .*eval"):
        read_original_checkpoint(path3)
    assert not sentinel.exists()
    # the CLI: exit 2, one line on stderr, nothing written
    out = tmp_path / "out"
    assert convert_main([str(path), str(out)]) == 2
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_checkpoint_one_line_error(with_mean_ckpt, tmp_path, legacy, capsys):
    full = tmp_path / "full.pth.tar"
    model = with_mean_ckpt["model"]
    save_like_original(full, model, torch.optim.Adam(model.parameters()), with_mean=True, legacy=legacy)
    cut = tmp_path / "cut.pth.tar"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    with pytest.raises(ChromDragoNNError) as err:
        load_original(cut)
    assert str(cut) in str(err.value) and "\n" not in str(err.value)
    assert "truncated" in str(err.value)
    out = tmp_path / "out"
    assert convert_main([str(cut), str(out)]) == 2
    stderr = capsys.readouterr().err.strip().splitlines()
    assert len(stderr) == 1 and stderr[0].startswith("error: ")
    assert not out.exists() or not any(out.iterdir())


def _convert_error(sd, args=None) -> str:
    with pytest.raises(ChromDragoNNError) as err:
        convert_state_dict(sd, args, source="ckpt.pth.tar")
    assert "\n" not in str(err.value)
    return str(err.value)


def test_state_dict_problems_name_the_key(with_mean_ckpt):
    sd = OrderedDict(("module." + k, v) for k, v in with_mean_ckpt["state_dict"].items())
    ours, config = convert_state_dict(sd, {"with_mean": 1, "num_genes": N_GENES})
    assert config.n_genes == N_GENES and config.with_mean and config.dropout == 0.3
    assert len(ours) == 354 - 161 - 16 == 177  # minus aliases and the stage-1 head (fc1, bn4, fc2, bn5, fc3)
    assert ours["trunk.conv1.weight"].shape == (48, 4, 3)
    # no args: the original 1,630-gene panel plus the mean input, read off fc1's 5,831 inputs
    assert convert_state_dict(sd)[1] == config

    bad = OrderedDict(sd)
    bad["module.fc2.weight"] = torch.zeros(1000, 999)
    assert "fc2.weight has shape (1000, 999), expected (1000, 1000)" in _convert_error(bad)
    bad = OrderedDict(sd)
    bad["module.basset_model.conv1.weight"] = torch.zeros(48, 4, 3, 2)
    bad["module.basset_model.prelayer.0.weight"] = bad["module.basset_model.conv1.weight"]
    assert "basset_model.conv1.weight has shape (48, 4, 3, 2)" in _convert_error(bad)
    bad = OrderedDict(sd)
    bad["module.basset_model.layer5.0.conv1.weight"] = torch.zeros(1)
    assert "unexpected key basset_model.layer5.0.conv1.weight" in _convert_error(bad)
    bad = OrderedDict(sd)
    bad["module.basset_model.layer1.0.layer.2.weight"] = torch.zeros(1)  # a ReLU position
    assert "unexpected key basset_model.layer1.0.layer.2.weight" in _convert_error(bad)
    bad = OrderedDict(sd)
    del bad["module.fc3.bias"]
    assert "key fc3.bias is missing" in _convert_error(bad)
    bad = OrderedDict(sd)
    bad["module.basset_model.layer3.1.layer.6.weight"] = sd["module.basset_model.layer3.1.conv3.weight"] + 1
    assert "layer3.1.layer.6.weight should be the same tensor as basset_model.layer3.1.conv3.weight" in _convert_error(bad)
    assert "args say with_mean=1 and num_genes=1000" in _convert_error(sd, {"with_mean": 1, "num_genes": 1000})
    assert "args say num_genes=1500" in _convert_error(sd, {"num_genes": 1500})
    # torch < 0.4.1 saved no num_batches_tracked: filled with 0
    old = OrderedDict((k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    ours_old, _ = convert_state_dict(old)
    assert int(ours_old["trunk.bn1.num_batches_tracked"]) == 0
    assert torch.equal(ours_old["head.fc1.weight"], ours["head.fc1.weight"])
