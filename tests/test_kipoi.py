"""The Kipoi face of the package: kipoi test / predict (TSV, HDF5), the Python API, R, schemas, bad input.

Every path is checked against predictions computed directly with the package
(weights, genome, expression, predict_grid) on the shipped example.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import BED, FASTA, MEAN_BW, P_ATOL, USER_TABLE, VENV_BIN

from chromdragonn import paths
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.expression import ExpressionSource, read_gene_panel
from chromdragonn.inputs.genome import Genome, MeanAccessibility, centered_window, one_hot, read_bed
from chromdragonn.kipoi.render import render_dataloader_yaml
from chromdragonn.nn.weights import load_models, md5sum, tensor_checksum

CONTEXTS = ["E003", "E116", "my_H1_sample"]
N_GENES = 1575
DL_ARG_NAMES = ["intervals_file", "fasta_file", "cell_types", "expression_file", "expression_units",
                "mean_bigwig", "gene_panel"]


def _load_file_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def expected(model_dir) -> pd.DataFrame:
    """Predictions computed directly with the package, one row per example interval."""
    model_yaml = yaml.safe_load((model_dir / "model.yaml").read_text())
    args = model_yaml["args"]
    model, genes = load_models([model_dir / w for w in args["weights"]], args["md5s"], args["n_genes"],
                               args["with_mean"])
    bed = read_bed(BED)
    genome, mean = Genome(FASTA), MeanAccessibility(MEAN_BW)
    wins = [centered_window(c, s, e) for c, s, e in zip(bed.chrom, bed.start, bed.end)]
    seq = np.stack([one_hot(genome.fetch(w.chrom, w.start, w.end)) for w in wins])
    macc = np.array([mean.value(w.chrom, w.start, w.end) for w in wins], dtype=np.float32)
    expr = ExpressionSource(user_table=USER_TABLE).matrix(CONTEXTS)
    probs = model.predict_grid(torch.as_tensor(seq), torch.as_tensor(expr), torch.as_tensor(macc)).numpy()
    out = pd.DataFrame(probs, columns=CONTEXTS)
    out["id"], out["start"], out["end"] = bed.name.to_numpy(), [w.start for w in wins], [w.end for w in wins]
    return out


def test_random_model_output_varies(expected):
    """The test model must not be near-constant, or the comparisons below would prove little."""
    p = expected[CONTEXTS].to_numpy()
    assert p.std(axis=0).min() > 0.01
    assert np.abs(p[:, 0] - p[:, 1]).max() > 0.01


def test_expected_equals_python_api(model_dir, expected):
    """The reference above equals chromdragonn.predict.predict, the package's Python API."""
    from chromdragonn.predict import predict

    weights = sorted((model_dir / "weights").glob("fold*.pt"))
    df = predict(BED, FASTA, CONTEXTS, expression=USER_TABLE, mean_bigwig=MEAN_BW, model=weights,
                 batch_size=8, progress=False)
    np.testing.assert_allclose(df[CONTEXTS].to_numpy(), expected[CONTEXTS].to_numpy(), atol=P_ATOL)
    assert df["name"].tolist() == expected["id"].tolist()
    assert df["window_start"].tolist() == expected["start"].tolist()


def _kipoi(args, env, cwd):
    return subprocess.run([str(VENV_BIN / "kipoi"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_kipoi_test_cli(model_dir, kipoi_env, tmp_path):
    r = _kipoi(["test", str(model_dir), "--source", "dir"], kipoi_env, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout + r.stderr
    assert "Successfully ran test_predict" in out
    assert "dataloader.output_schema is compatible with model.schema" in out
    # The example's user table lacks 40 panel TFs: that warning is expected, and nothing else.
    expected_warning = "WARNING [chromdragonn.inputs.expression] 40 of 1575 gene-panel TFs are not in expression table"
    assert out.count(expected_warning) == 1
    rest = "\n".join(line for line in out.splitlines() if expected_warning not in line)
    for word in ("WARNING", "Warning", "not compatible", "mismatch", "Traceback"):
        assert word not in rest, out[-2000:]


@pytest.mark.parametrize("suffix", ["tsv", "h5"])
def test_kipoi_predict(model_dir, kipoi_env, tmp_path, dl_args, expected, suffix):
    out = tmp_path / f"preds.{suffix}"
    r = _kipoi(["predict", str(model_dir), "--source", "dir", "--dataloader_args", json.dumps(dl_args),
                "--keep_metadata", "-o", str(out)], kipoi_env, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    # The one warning a user should see: how many panel TFs the user table lacks.
    assert "WARNING [chromdragonn.inputs.expression] 40 of 1575 gene-panel TFs are not in expression table" in r.stderr
    if suffix == "tsv":
        df = pd.read_csv(out, sep="\t")
        assert list(df.columns) == ["metadata/cell_types", "metadata/ranges/chr", "metadata/ranges/end",
                                    "metadata/ranges/id", "metadata/ranges/start", "metadata/ranges/strand",
                                    "preds/0", "preds/1", "preds/2"]
        preds = df[["preds/0", "preds/1", "preds/2"]].to_numpy()
        ids, starts, ends = df["metadata/ranges/id"], df["metadata/ranges/start"], df["metadata/ranges/end"]
        cell_types, chroms = df["metadata/cell_types"], df["metadata/ranges/chr"]
    else:
        import h5py

        with h5py.File(out, "r") as f:
            preds = f["preds"][:]
            ids = [x.decode() for x in f["metadata/ranges/id"][:]]
            starts, ends = f["metadata/ranges/start"][:], f["metadata/ranges/end"][:]
            cell_types = [x.decode() for x in f["metadata/cell_types"][:]]
            chroms = [x.decode() for x in f["metadata/ranges/chr"][:]]
    assert preds.shape == (20, 3)
    np.testing.assert_allclose(preds, expected[CONTEXTS].to_numpy(), atol=P_ATOL)
    assert list(ids) == expected["id"].tolist()
    assert list(starts) == expected["start"].tolist() and list(ends) == expected["end"].tolist()
    assert set(cell_types) == {"E003,E116,my_H1_sample"} and set(chroms) == {"chr22"}


@pytest.fixture(scope="module")
def kipoi_model(model_dir):
    import kipoi

    return kipoi.get_model(str(model_dir), source="dir")


def test_get_model_pipeline(kipoi_model, dl_args, expected):
    preds = kipoi_model.pipeline.predict(dict(dl_args, cell_types=list(CONTEXTS)))
    assert preds.shape == (20, 3) and preds.dtype == np.float32
    np.testing.assert_allclose(preds, expected[CONTEXTS].to_numpy(), atol=P_ATOL)
    # Context order is the user's.
    rev = kipoi_model.pipeline.predict(dict(dl_args, cell_types="my_H1_sample,E003"), batch_size=7)
    np.testing.assert_allclose(rev, expected[["my_H1_sample", "E003"]].to_numpy(), atol=P_ATOL)


def test_r_reticulate(model_dir, kipoi_env, tmp_path, dl_args, expected):
    rscript = shutil.which("Rscript")
    assert rscript, "R is not installed: apt-get install -y --no-install-recommends r-base-core r-cran-reticulate"
    out = tmp_path / "r_preds.tsv"
    script = tmp_path / "predict.R"
    r_args = ", ".join(f'{k} = "{v}"' for k, v in dl_args.items())
    script.write_text(f"""
library(reticulate)
use_python("{sys.executable}", required = TRUE)
kipoi <- import("kipoi")
model <- kipoi$get_model("{model_dir}", source = "dir")
preds <- model$pipeline$predict(list({r_args}))
# reticulate 1.28 (Debian 12) does not convert numpy 2 arrays: go through a list of rows.
preds <- do.call(rbind, lapply(preds$tolist(), unlist))
write.table(preds, "{out}", sep = "\\t", row.names = FALSE, col.names = FALSE)
""")
    r = subprocess.run([rscript, str(script)], cwd=tmp_path, env=kipoi_env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    preds = np.loadtxt(out, delimiter="\t")
    assert preds.shape == (20, 3)
    np.testing.assert_allclose(preds, expected[CONTEXTS].to_numpy(), atol=P_ATOL)


def _shape_ok(schema_shape, array_shape) -> bool:
    return len(schema_shape) == len(array_shape) and all(s is None or s == a for s, a in zip(schema_shape, array_shape))


def test_schemas_agree_with_real_batches(kipoi_model, dl_args):
    """kipoi test only warns on schema mismatches, so assert them here on a real batch."""
    dl_cls = kipoi_model.default_dataloader
    dl_schema = dl_cls.output_schema
    model_schema = kipoi_model.schema
    batch = next(iter(dl_cls(**dl_args).batch_iter(batch_size=8)))
    inputs, meta = batch["inputs"], batch["metadata"]

    assert set(inputs) == set(dl_schema.inputs) == set(model_schema.inputs) == {"seq", "expression", "mean_acc"}
    for name, arr in inputs.items():
        assert arr.dtype == np.float32, name
        assert arr.shape[0] == 8
        assert _shape_ok(dl_schema.inputs[name].shape, arr.shape[1:]), (name, arr.shape)
        assert _shape_ok(model_schema.inputs[name].shape, arr.shape[1:]), (name, arr.shape)
        assert dl_schema.inputs[name].shape == model_schema.inputs[name].shape
    assert inputs["seq"].shape == (8, 1000, 4) and inputs["expression"].shape == (8, 3, N_GENES)
    assert model_schema.inputs["expression"].shape == (None, len(read_gene_panel(paths.GENE_PANEL)))
    assert inputs["mean_acc"].shape == (8, 1)
    np.testing.assert_array_equal(inputs["seq"].sum(axis=2)[1:], 1)  # real bases: exactly one hot
    assert str(dl_schema.inputs["seq"].special_type) == str(model_schema.inputs["seq"].special_type)

    assert set(meta) == set(dl_schema.metadata) == {"ranges", "cell_types"}
    assert set(meta["ranges"]) == {"chr", "start", "end", "id", "strand"}
    assert dl_schema.metadata["ranges"].type.value == "GenomicRanges"
    np.testing.assert_array_equal(meta["ranges"]["end"] - meta["ranges"]["start"], 1000)
    assert list(meta["cell_types"]) == ["E003,E116,my_H1_sample"] * 8

    preds = kipoi_model.predict_on_batch(inputs)
    assert preds.shape == (8, 3) and preds.dtype == np.float32
    assert _shape_ok(model_schema.targets.shape, preds.shape[1:])
    assert ((preds > 0) & (preds < 1)).all()
    # kipoi's own checks agree.
    assert dl_schema.compatible_with_batch(batch)
    assert model_schema.compatible_with_schema(dl_schema)


def test_root_yaml_files():
    """The root yaml files are generated: dataloader.yaml verbatim, model.yaml for the five folds."""
    import kipoi.specs

    panel = read_gene_panel(paths.GENE_PANEL)
    assert (paths.REPO_ROOT / "dataloader.yaml").read_text() == render_dataloader_yaml(len(panel), True)
    model_yaml = yaml.safe_load((paths.REPO_ROOT / "model.yaml").read_text())
    assert model_yaml["defined_as"] == "model.ChromDragoNNModel"
    assert model_yaml["args"]["weights"] == [f"weights/fold{i}.with_mean.pt" for i in range(5)]
    assert model_yaml["args"]["n_genes"] == len(panel) == N_GENES
    assert model_yaml["args"]["with_mean"] is True
    veff = model_yaml["postprocessing"]["variant_effects"]
    assert list(model_yaml["postprocessing"]) == ["variant_effects"]
    assert veff["seq_input"] == ["seq"]
    assert [f["name"] for f in veff["scoring_functions"]] == ["diff", "logit", "ref", "alt"]
    assert [f["name"] for f in veff["scoring_functions"] if f.get("default")] == ["diff"]
    assert model_yaml["info"]["cite_as"] == "https://doi.org/10.1093/bioinformatics/btz352"
    md = kipoi.specs.ModelDescription.load(str(paths.REPO_ROOT / "model.yaml"))
    assert md.schema.inputs["expression"].shape == (None, N_GENES)
    assert md.schema.targets.shape == (None,)
    dl = kipoi.specs.DataLoaderDescription.load(str(paths.REPO_ROOT / "dataloader.yaml"))
    assert list(dl.args) == DL_ARG_NAMES
    assert all(dl.args[k].doc for k in DL_ARG_NAMES)
    dl_yaml = yaml.safe_load((paths.REPO_ROOT / "dataloader.yaml").read_text())
    assert dl_yaml["postprocessing"] == {"variant_effects": {"bed_input": ["intervals_file"]}}
    for name in ("intervals_file", "fasta_file", "expression_file"):
        assert (paths.REPO_ROOT / dl_yaml["args"][name]["example"]).is_file()
    # No example mean track: kipoi test and the README's Kipoi example use the default, the shipped
    # track the models were trained with (no stand-in of another meaning).
    assert "example" not in dl_yaml["args"]["mean_bigwig"] and "default" not in dl_yaml["args"]["mean_bigwig"]
    assert "weights/mean_accessibility_chr22.bw" in dl_yaml["args"]["mean_bigwig"]["doc"]


# ------------------------------------------------------------------------------------------ bad input

@pytest.fixture(scope="module")
def dataset_cls(model_dir):
    return _load_file_module(model_dir / "dataloader.py", "chromdragonn_test_dataloader").ChromDragoNNDataset


@pytest.fixture(scope="module")
def model_cls(model_dir):
    return _load_file_module(model_dir / "model.py", "chromdragonn_test_model").ChromDragoNNModel


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _bigwig_with(path: Path, chrom: str) -> str:
    import pyBigWig

    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([(chrom, 1_000_000)])
    bw.addEntries([chrom], [0], ends=[50], values=[1.0])
    bw.close()
    return str(path)


BAD_DATALOADER_INPUTS = {
    "missing BED": (lambda t: {"intervals_file": str(t / "none.bed")}, r"BED file not found: .*none.bed"),
    "missing FASTA": (lambda t: {"fasta_file": str(t / "none.fa")}, r"FASTA file not found: .*none.fa"),
    "chrom not in FASTA": (lambda t: {"intervals_file": _write(t / "a.bed", "chr22\t17000000\t17000200\nchr21\t100\t200\n")},
                           r"chromosome 'chr21' is not in FASTA file .*hg19_chr22_1-22000000.fa.gz"),
    "start >= end": (lambda t: {"intervals_file": _write(t / "b.bed", "chr22\t17000000\t17000200\nchr22\t17000300\t17000300\n")},
                     r"b.bed:2: start 17000300 >= end 17000300"),
    "past chromosome end": (lambda t: {"intervals_file": _write(t / "c.bed", "chr22\t30000000\t30000200\tfar\n")},
                            r"interval far \(chr22:30000000-30000200\) starts past the end of chr22"),
    "unknown context": (lambda t: {"cell_types": "E003,E999"}, r"unknown cell context 'E999'; known contexts: E003, E004"),
    "no panel genes": (lambda t: {"expression_file": _write(t / "d.tsv", "gene\tmine\nFOO\t1\nBAR\t2\n"), "cell_types": "mine"},
                       r"d.tsv has none of the 1575 gene-panel TFs"),
    "NaN TPM": (lambda t: {"expression_file": _write(t / "e.tsv", "gene\tmine\nTFAP2A\t1\nSP1\tnan\n"), "cell_types": "mine"},
                r"e.tsv:3: gene SP1, context mine: value 'nan' is missing"),
    "negative TPM": (lambda t: {"expression_file": _write(t / "f.tsv", "gene\tmine\nTFAP2A\t-1\n"), "cell_types": "mine"},
                     r"f.tsv:2: gene TFAP2A, context mine: value '-1' is negative"),
    "duplicate gene rows": (lambda t: {"expression_file": _write(t / "g.tsv", "gene\tmine\nSP1\t1\nSP1\t2\n"), "cell_types": "mine"},
                            r"g.tsv:3: duplicate gene row 'SP1'"),
    "bigWig without the chromosome": (lambda t: {"mean_bigwig": _bigwig_with(t / "h.bw", "chr21")},
                                      r"chromosome 'chr22' is not in bigWig file .*h.bw"),
    "empty BED": (lambda t: {"intervals_file": _write(t / "i.bed", "# nothing\n")}, r"i.bed has no intervals"),
    "context twice": (lambda t: {"cell_types": "E003,E116,E003"}, r"context\(s\) E003 given more than once"),
}


@pytest.mark.parametrize("case", list(BAD_DATALOADER_INPUTS))
def test_bad_dataloader_input(dataset_cls, dl_args, tmp_path, case):
    change, match = BAD_DATALOADER_INPUTS[case]
    with pytest.raises(ChromDragoNNError, match=match) as err:
        dataset_cls(**dict(dl_args, **change(tmp_path)))
    assert "\n" not in str(err.value)


def _model_args(model_dir) -> dict:
    args = yaml.safe_load((model_dir / "model.yaml").read_text())["args"]
    args["weights"] = [str(model_dir / w) for w in args["weights"]]
    args["gene_panel"] = str(model_dir / args["gene_panel"])
    return args


def _save_variant(model_dir, tmp_path, edit, keep_checksum: bool = False) -> str:
    """fold0 with ``edit`` applied; its tensor checksum recomputed (an intact file of another
    shape), or kept (what a file damaged on disk looks like)."""
    payload = torch.load(model_dir / "weights" / "fold0.with_mean.pt", map_location="cpu", weights_only=True)
    edit(payload)
    if not keep_checksum:
        payload["tensor_sha256"] = tensor_checksum(payload["state_dict"])
    path = tmp_path / "variant.pt"
    torch.save(payload, path)
    return str(path)


def test_bad_weights(model_cls, model_dir, tmp_path):
    args = _model_args(model_dir)
    with pytest.raises(ChromDragoNNError, match=r"fold1.with_mean.pt has md5 [0-9a-f]{32}, but model.yaml expects 0{32}"):
        model_cls(**dict(args, md5s=[args["md5s"][0], "0" * 32]))
    with pytest.raises(ChromDragoNNError, match=r"weights file not found: .*missing.pt"):
        model_cls(**dict(args, weights=[str(tmp_path / "missing.pt")], md5s=None))

    def wrong_tensor(p):
        p["state_dict"]["head.fc2.weight"] = p["state_dict"]["head.fc2.weight"][:, :999].clone()

    path = _save_variant(model_dir, tmp_path, wrong_tensor)
    with pytest.raises(ChromDragoNNError, match=r"tensor head.fc2.weight has shape \(1000, 999\), expected \(1000, 1000\)"):
        model_cls(**dict(args, weights=[path], md5s=[md5sum(path)]))
    with pytest.raises(ChromDragoNNError, match=r"takes 1575 genes, but model.yaml declares 1600"):
        model_cls(**dict(args, n_genes=1600))

    def one_weight_changed(p):
        p["state_dict"]["head.fc2.weight"][0, 0] += 1.0

    path = _save_variant(model_dir, tmp_path, one_weight_changed, keep_checksum=True)
    with pytest.raises(ChromDragoNNError, match=r"variant.pt is damaged: its tensors do not match the checksum"):
        model_cls(**dict(args, weights=[path], md5s=None))
    with pytest.raises(ChromDragoNNError, match=r"has with_mean=True, but model.yaml declares with_mean=False"):
        model_cls(**dict(args, with_mean=False))
    panel = pd.read_csv(args["gene_panel"], sep="\t")
    panel.iloc[[0, 1]] = panel.iloc[[1, 0]].to_numpy()
    swapped = tmp_path / "panel.tsv"
    panel.to_csv(swapped, sep="\t", index=False)
    with pytest.raises(ChromDragoNNError, match=r"differs from the weights' panel \(1575 genes\) first at position 0"):
        model_cls(**dict(args, gene_panel=str(swapped)))


def test_model_without_mean_input(model_cls, model_dir, dataset_cls, dl_args, tmp_path):
    model = model_cls(**_model_args(model_dir))
    item = dataset_cls(**dl_args)[0]
    x = {"seq": item["inputs"]["seq"][None], "expression": item["inputs"]["expression"][None]}
    with pytest.raises(ChromDragoNNError, match="uses the mean-accessibility input; give the dataloader a mean_bigwig"):
        model.predict_on_batch(x)
    x["mean_acc"] = item["inputs"]["mean_acc"][None]
    x["expression"] = x["expression"][..., :100]
    with pytest.raises(ChromDragoNNError, match="expression has 100 genes per context, the weights take 1575"):
        model.predict_on_batch(x)


def _copy_model_dir(model_dir: Path, dest: Path) -> Path:
    dest.mkdir()
    for f in model_dir.iterdir():
        if f.is_dir():
            dest.joinpath(f.name).mkdir()
            for g in f.iterdir():
                dest.joinpath(f.name, g.name).symlink_to(g)
        else:
            shutil.copyfile(f, dest / f.name)
    return dest


@pytest.mark.parametrize("case", ["unknown context", "missing FASTA", "wrong md5"])
def test_bad_input_through_kipoi_cli(model_dir, kipoi_env, tmp_path, dl_args, case):
    """One `error:` line, a non-zero exit, and no output file."""
    mdir = model_dir
    args = dict(dl_args)
    if case == "unknown context":
        args["cell_types"] = "E003,E999"
    elif case == "missing FASTA":
        args["fasta_file"] = str(tmp_path / "none.fa")
    else:
        mdir = _copy_model_dir(model_dir, tmp_path / "model")
        text = (mdir / "model.yaml").read_text()
        md5 = yaml.safe_load(text)["args"]["md5s"][1]
        (mdir / "model.yaml").write_text(text.replace(md5, "f" * 32))
    out = tmp_path / "out.tsv"
    r = _kipoi(["predict", str(mdir), "--source", "dir", "--dataloader_args", json.dumps(args), "-o", str(out)],
               kipoi_env, tmp_path)
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert {"unknown context": "unknown cell context 'E999'", "missing FASTA": "FASTA file not found",
            "wrong md5": "but model.yaml expects " + "f" * 32}[case] in errors[0]
    assert not out.exists() and not list(tmp_path.glob("out.tsv*"))
