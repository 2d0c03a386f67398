"""chromdragonn.predict: the Python API and the `chromdragonn predict` command (issue 2).

The reference numbers are computed independently of predict(): windows by hand
(kipoiseq resize arithmetic), expression read with pandas from the shipped and
user tables, and one full row-paired forward (model.predict_proba) per
(interval, context) pair, averaged over the folds.  Weights are the conftest's
seeded random-init folds (nothing trained is needed).
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import BED, FASTA, MEAN_BW, P_ATOL, REPO, USER_TABLE

from chromdragonn import paths
from chromdragonn.cli import main
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.expression import read_gene_panel
from chromdragonn.inputs.genome import Genome, MeanAccessibility, one_hot
from chromdragonn.nn.weights import load_model, save_weights, tensor_checksum
from chromdragonn.predict import predict

USER_CONTEXT = "my_H1_sample"  # the one context column of example/user_rnaseq_tpm.tsv
CONTEXTS = ["E003", "E116", "E123", USER_CONTEXT]
SHUFFLED = ["E116", USER_CONTEXT, "E003", "E123"]  # the output must follow the order given
FIXED_COLUMNS = ["chrom", "start", "end", "name", "window_start", "window_end"]


# ---------------------------------------------------------------- independent reference


def _bed() -> pd.DataFrame:
    return pd.read_csv(BED, sep="\t", header=None, names=["chrom", "start", "end", "name"])


def _window_starts(bed: pd.DataFrame) -> np.ndarray:
    """kipoiseq Interval.resize(1000) on + strand: centre rounds up for odd start + end."""
    centre = (bed.start + bed.end + 1) // 2
    return (centre - 500).to_numpy()


def _expression(contexts: list[str]) -> np.ndarray:
    """arcsinh(TPM) (C, G) in panel order, straight from the TSVs with pandas."""
    panel = pd.read_csv(paths.GENE_PANEL, sep="\t")
    shipped = pd.read_csv(paths.SHIPPED_EXPRESSION, sep="\t").set_index("ensembl_id")
    user = pd.read_csv(USER_TABLE, sep="\t").set_index("gene_symbol")
    rows = []
    for ctx in contexts:
        if ctx == USER_CONTEXT:  # matched by symbol; absent panel genes take the panel's fill value
            tpm = user[ctx].reindex(panel.gene_symbol).to_numpy()
            arc = np.where(np.isnan(tpm), panel.fill_arcsinh_tpm, np.arcsinh(tpm))
        else:
            arc = np.arcsinh(shipped.loc[panel.ensembl_id, ctx].to_numpy())
        rows.append(arc)
    return np.asarray(rows, dtype=np.float32)


def _per_fold_reference(weight_files, contexts: list[str]) -> np.ndarray:
    """(folds, N, C): one full forward (trunk included) per (interval, context) pair, per fold."""
    bed = _bed()
    starts = _window_starts(bed)
    genome, track = Genome(FASTA), MeanAccessibility(MEAN_BW)
    seq = np.stack([one_hot(genome.fetch(c, s, s + 1000)) for c, s in zip(bed.chrom, starts)])
    macc = np.array([track.value(c, s, s + 1000) for c, s in zip(bed.chrom, starts)], dtype=np.float32)
    expr = _expression(contexts)
    n, c = len(bed), len(contexts)
    pair_seq = torch.from_numpy(np.repeat(seq, c, axis=0))
    pair_expr = torch.from_numpy(np.tile(expr, (n, 1)))
    pair_mean = torch.from_numpy(np.repeat(macc, c))
    return np.stack([load_model(f)[0].predict_proba(pair_seq, pair_expr, pair_mean).numpy().reshape(n, c)
                     for f in weight_files])


@pytest.fixture(scope="module")
def reference(random_weights) -> dict:
    """Per-fold reference probabilities: {(fold, context): (N,)}."""
    probs = _per_fold_reference(random_weights, CONTEXTS)
    return {(f, ctx): probs[f, :, j] for f in range(len(probs)) for j, ctx in enumerate(CONTEXTS)}


# ---------------------------------------------------------------- the Python API


@pytest.fixture(scope="module")
def ensemble_result(random_weights) -> pd.DataFrame:
    return predict(BED, FASTA, ",".join(CONTEXTS), expression=USER_TABLE, mean_bigwig=MEAN_BW,
                   model=random_weights, batch_size=8, progress=False)


def _check_layout(df: pd.DataFrame, contexts: list[str]) -> None:
    bed = _bed()
    assert list(df.columns) == FIXED_COLUMNS + contexts
    assert len(df) == len(bed) == 20
    assert df.chrom.tolist() == bed.chrom.tolist()  # as in the BED (chr22), though the FASTA says 22
    assert df.start.tolist() == bed.start.tolist() and df.end.tolist() == bed.end.tolist()
    assert df.name.tolist() == bed.name.tolist()
    assert df.window_start.tolist() == _window_starts(bed).tolist()
    assert (df.window_end - df.window_start).eq(1000).all()
    # Every window holds its interval (all example intervals are < 1 kb wide).
    assert (df.window_start <= df.start).all() and (df.window_end >= df.end).all()
    p = df[contexts].to_numpy()
    assert p.dtype == np.float32
    assert ((p > 0) & (p < 1)).all()


def test_predict_ensemble_matches_per_pair_forward(ensemble_result, reference):
    df = ensemble_result
    _check_layout(df, CONTEXTS)
    # One row checked by hand: E003_DNase_03 is [17894294, 17894403), odd sum -> centre 17894349.
    row = df.set_index("name").loc["E003_DNase_03"]
    assert (row.window_start, row.window_end) == (17_893_849, 17_894_849)
    expected = np.stack([(reference[0, c] + reference[1, c]) / 2 for c in CONTEXTS], axis=1)
    np.testing.assert_allclose(df[CONTEXTS].to_numpy(), expected, atol=1e-5, rtol=0)
    # The outputs vary across intervals and contexts (so a mix-up of rows or columns would show).
    assert df[CONTEXTS].to_numpy().std(axis=0).min() > 1e-3
    assert np.abs(np.diff(expected, axis=1)).max() > 1e-3


@pytest.fixture(scope="module")
def single_result(random_weights) -> pd.DataFrame:
    return predict(BED, FASTA, SHUFFLED, expression=USER_TABLE, mean_bigwig=MEAN_BW,
                   model=random_weights[0], batch_size=32, progress=False)


def test_predict_single_file_in_given_order(single_result, ensemble_result, reference):
    df = single_result
    _check_layout(df, SHUFFLED)
    expected = np.stack([reference[0, c] for c in SHUFFLED], axis=1)
    np.testing.assert_allclose(df[SHUFFLED].to_numpy(), expected, atol=1e-5, rtol=0)
    # One fold alone is not the ensemble.
    assert np.abs(df[SHUFFLED].to_numpy() - ensemble_result[SHUFFLED].to_numpy()).max() > 1e-4


# ---------------------------------------------------------------- the command line


def _argv(weights, output, **over) -> list[str]:
    args = {"--intervals": BED, "--fasta": FASTA, "--contexts": ",".join(CONTEXTS),
            "--expression": USER_TABLE, "--mean-bigwig": MEAN_BW}
    args.update(over)
    argv = ["predict"]
    for k, v in args.items():
        if v is not None:
            argv += [k, str(v)]
    return argv + ["--weights", *map(str, weights), "-o", str(output)]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, random_weights):
    """`python -m chromdragonn.cli predict`, the real entry point as users run it (one fold, to keep it short)."""
    out_dir = tmp_path_factory.mktemp("cli")
    out = out_dir / "pred.tsv"
    argv = _argv(random_weights[:1], out, **{"--contexts": ",".join(SHUFFLED), "--batch-size": 7})
    proc = subprocess.run([sys.executable, "-m", "chromdragonn.cli", *argv, "-q"],
                          cwd=REPO, capture_output=True, text=True)
    return proc, out


def test_cli_subprocess_writes_the_same_tsv(cli_run, single_result):
    proc, out = cli_run
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["pred.tsv"]  # no .partial left
    got = pd.read_csv(out, sep="\t")
    assert list(got.columns) == FIXED_COLUMNS + SHUFFLED
    pd.testing.assert_frame_equal(got[FIXED_COLUMNS], single_result[FIXED_COLUMNS], check_dtype=False)
    # Written with 6 significant digits.
    np.testing.assert_allclose(got[SHUFFLED].to_numpy(), single_result[SHUFFLED].to_numpy(), atol=P_ATOL, rtol=0)
    # The fill warning (40 panel TFs are not in the example table) and the summary reach the user.
    assert ("WARNING: 40 of 1575 gene-panel TFs are not in expression table "
            f"{USER_TABLE}; they are filled with") in proc.stderr
    assert f"INFO: wrote 20 intervals x 4 contexts to {out}" in proc.stderr


def test_cli_subprocess_stderr_is_only_ours(cli_run):
    proc, out = cli_run
    assert proc.stderr.splitlines() == [
        f"WARNING: 40 of 1575 gene-panel TFs are not in expression table {USER_TABLE}; they are filled with "
        "the panel's fill_arcsinh_tpm (median over the 56 Roadmap epigenomes)",
        f"INFO: wrote 20 intervals x 4 contexts to {out}"]


@pytest.fixture
def run_cli(capsys):
    """main([...]) in-process with the logging a real run would have (basicConfig to stderr).

    pytest puts its own handlers on the root logger, which would make main()'s
    basicConfig a no-op and hide warnings from stderr; they are set aside here.
    """
    root = logging.getLogger()
    saved, saved_level = root.handlers[:], root.level

    def run(argv):
        root.handlers = []
        try:
            code = main(argv)
        finally:
            root.handlers = saved
            root.setLevel(saved_level)
        out, err = capsys.readouterr()
        return code, out, err

    run.capsys = capsys
    return run


def _fails(run_cli, argv, out_dir) -> str:
    """The command fails as users must see it: exit 2, one 'error:' line, nothing written.

    Logging lines about inputs read before the bad one (the fill warning for the
    example table) may come first; nothing else may (no traceback, no progress bar).
    """
    before = set(out_dir.iterdir())
    code, out, err = run_cli(argv)
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: "), err
    assert all(ln.startswith(("WARNING: ", "INFO: ")) for ln in lines[:-1]), err
    assert set(out_dir.iterdir()) == before  # no output, no .partial
    return lines[-1]


@pytest.fixture
def out_dir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


def test_cli_missing_bed(run_cli, out_dir, random_weights, tmp_path):
    msg = _fails(run_cli, _argv(random_weights[:1], out_dir / "p.tsv", **{"--intervals": tmp_path / "no.bed"}),
                 out_dir)
    assert "BED file not found" in msg and "no.bed" in msg


def test_cli_missing_fasta(run_cli, out_dir, random_weights, tmp_path):
    msg = _fails(run_cli, _argv(random_weights[:1], out_dir / "p.tsv", **{"--fasta": tmp_path / "no.fa"}), out_dir)
    assert "FASTA file not found" in msg and "no.fa" in msg


def test_cli_bed_start_not_before_end(run_cli, out_dir, random_weights, tmp_path):
    lines = BED.read_text().splitlines()
    lines[4] = "chr22\t17746919\t17746919\tempty"  # line 5: start == end
    bed = tmp_path / "bad.bed"
    bed.write_text("\n".join(lines) + "\n")
    msg = _fails(run_cli, _argv(random_weights[:1], out_dir / "p.tsv", **{"--intervals": bed}), out_dir)
    assert f"{bed}:5:" in msg and "start 17746919 >= end 17746919" in msg


def test_cli_chromosome_not_in_fasta(run_cli, out_dir, random_weights, tmp_path):
    bed = tmp_path / "chr1.bed"
    bed.write_text(BED.read_text() + "chr1\t1000000\t1000200\ton_chr1\n")
    msg = _fails(run_cli, _argv(random_weights[:1], out_dir / "p.tsv", **{"--intervals": bed}), out_dir)
    assert "'chr1'" in msg and str(FASTA) in msg and "chr" in msg and "it has: 22" in msg


def test_cli_unknown_context(run_cli, out_dir, random_weights):
    msg = _fails(run_cli, _argv(random_weights[:1], out_dir / "p.tsv", **{"--contexts": "E003,E999"}), out_dir)
    assert "unknown cell context 'E999'" in msg
    # The known ones are listed: the 56 shipped Roadmap epigenomes and the user's context.
    assert "E003" in msg and "E128" in msg and USER_CONTEXT in msg


def _user_table_with(tmp_path, name: str, edit) -> str:
    lines = USER_TABLE.read_text().splitlines()
    edit(lines)
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _set_value(lines, symbol: str, value: str) -> int:
    """Replace `symbol`'s value; return its 1-based line number."""
    i = next(i for i, ln in enumerate(lines) if ln.split("\t")[0] == symbol)
    lines[i] = f"{symbol}\t{value}"
    return i + 1


def test_cli_expression_nan(run_cli, out_dir, random_weights, tmp_path):
    holder = {}
    path = _user_table_with(tmp_path, "nan.tsv", lambda ls: holder.setdefault("line", _set_value(ls, "TFAP2A", "NaN")))
    msg = _fails(run_cli, _argv(random_weights[:1], out_dir / "p.tsv", **{"--expression": path}), out_dir)
    assert f"{path}:{holder['line']}:" in msg and "TFAP2A" in msg and USER_CONTEXT in msg and "missing" in msg


def test_cli_expression_negative(run_cli, out_dir, random_weights, tmp_path):
    holder = {}
    path = _user_table_with(tmp_path, "neg.tsv", lambda ls: holder.setdefault("line", _set_value(ls, "CTCF", "-2.5")))
    msg = _fails(run_cli, _argv(random_weights[:1], out_dir / "p.tsv", **{"--expression": path}), out_dir)
    assert f"{path}:{holder['line']}:" in msg and "CTCF" in msg and "'-2.5'" in msg and "negative" in msg


def test_cli_expression_duplicate_gene(run_cli, out_dir, random_weights, tmp_path):
    path = _user_table_with(tmp_path, "dup.tsv", lambda ls: ls.append("ctcf\t12.0"))  # same gene, other case
    n_lines = len(USER_TABLE.read_text().splitlines()) + 1
    msg = _fails(run_cli, _argv(random_weights[:1], out_dir / "p.tsv", **{"--expression": path}), out_dir)
    assert f"{path}:{n_lines}:" in msg and "duplicate gene row 'ctcf'" in msg


def test_cli_expression_without_panel_genes(run_cli, out_dir, random_weights, tmp_path):
    panel = set(read_gene_panel(paths.GENE_PANEL).gene_symbol)
    user = pd.read_csv(USER_TABLE, sep="\t")
    not_tfs = user[~user.gene_symbol.isin(panel)].head(30)
    path = tmp_path / "no_tfs.tsv"
    not_tfs.to_csv(path, sep="\t", index=False)
    msg = _fails(run_cli, _argv(random_weights[:1], out_dir / "p.tsv", **{"--expression": path}), out_dir)
    assert str(path) in msg and "none of the 1575 gene-panel TFs" in msg


def test_cli_bigwig_without_chromosome(run_cli, out_dir, random_weights, tmp_path):
    import pyBigWig

    path = tmp_path / "chr21_only.bw"
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([("chr21", 48_129_895)])
    bw.addEntries(["chr21"], [9_411_193], ends=[9_411_393], values=[0.5])
    bw.close()
    # No -q: the progress bar must not leave a line of its own on a failed run.
    msg = _fails(run_cli, _argv(random_weights[:1], out_dir / "p.tsv", **{"--mean-bigwig": path}), out_dir)
    assert "'chr22'" in msg and str(path) in msg and "chr21" in msg


def test_cli_weights_other_gene_count(run_cli, out_dir, tmp_path):
    from chromdragonn.nn.model import ChromDragoNN, ModelConfig

    genes = read_gene_panel(paths.GENE_PANEL).gene_symbol.tolist()[:10]
    torch.manual_seed(0)
    path = tmp_path / "ten_genes.pt"
    save_weights(ChromDragoNN(ModelConfig(n_genes=10, with_mean=True)).eval(), path, genes)
    msg = _fails(run_cli, _argv([path], out_dir / "p.tsv"), out_dir)
    assert str(path) in msg and "take 10 genes" in msg and f"1575 of the gene panel {paths.GENE_PANEL}" in msg


def test_cli_weights_tensor_of_wrong_shape(run_cli, out_dir, random_weights, tmp_path):
    payload = torch.load(random_weights[0], map_location="cpu", weights_only=True)
    w = payload["state_dict"]["head.fc1.weight"]
    payload["state_dict"]["head.fc1.weight"] = w[:, :-5].clone()  # 5 expression columns short
    payload["tensor_sha256"] = tensor_checksum(payload["state_dict"])  # intact file, wrong shape
    path = tmp_path / "bad_shape.pt"
    torch.save(payload, path)
    msg = _fails(run_cli, _argv([path], out_dir / "p.tsv"), out_dir)
    want = tuple(w.shape)
    assert str(path) in msg and "head.fc1.weight" in msg
    assert f"{(want[0], want[1] - 5)}" in msg and f"expected {want}" in msg


def test_cli_corrupt_weights(run_cli, out_dir, random_weights, tmp_path):
    path = tmp_path / "truncated.pt"
    path.write_bytes(random_weights[0].read_bytes()[:100_000])
    msg = _fails(run_cli, _argv([random_weights[0], path], out_dir / "p.tsv"), out_dir)
    assert f"cannot read weights file {path}" in msg
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(4096))
    msg = _fails(run_cli, _argv([garbage], out_dir / "p.tsv"), out_dir)
    assert f"cannot read weights file {garbage}" in msg


def test_cli_damaged_weights_refused_by_checksum(run_cli, out_dir, random_weights, tmp_path):
    """One flipped byte inside a tensor still loads with torch; the stored tensor checksum refuses it,
    whatever route loads the file (a path here; model.yaml and Kipoi go through the same loader)."""
    payload = torch.load(random_weights[0], map_location="cpu", weights_only=True)
    payload["state_dict"]["head.fc2.weight"][3, 7] += 0.5
    damaged = tmp_path / "damaged.pt"
    torch.save(payload, damaged)  # the old checksum kept: what a damaged copy looks like
    msg = _fails(run_cli, _argv([damaged], out_dir / "p.tsv"), out_dir)
    assert msg == f"error: weights file {damaged} is damaged: its tensors do not match the checksum stored with them"
    with pytest.raises(ChromDragoNNError, match="is damaged"):
        load_model(damaged)


def test_cli_pickle_with_code_refused_in_one_line(run_cli, out_dir, tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "chromdragonn-weights/2", "x": Evil()}, path)
    msg = _fails(run_cli, _argv([path], out_dir / "p.tsv"), out_dir)
    assert msg.startswith(f"error: refused to read weights file {path}") and "weights_only" not in msg
    assert "\n" not in msg and not (out_dir / "pwned").exists()


def test_cli_default_model_checksum_mismatch(run_cli, out_dir, model_dir, random_weights, tmp_path, monkeypatch):
    """Without --weights the model.yaml's weights and md5s are used; a checksum that disagrees is refused."""

    import yaml

    from chromdragonn import paths
    from chromdragonn.inputs.session import DeclaredModel
    from chromdragonn.nn.weights import md5sum

    declared = DeclaredModel.read(model_dir / "model.yaml")
    assert (declared.n_genes, declared.with_mean) == (1575, True)
    assert declared.files == [model_dir / "weights" / f.name for f in random_weights]
    assert declared.md5s == [md5sum(f) for f in random_weights]

    spec = yaml.safe_load((model_dir / "model.yaml").read_text())
    good = spec["args"]["md5s"][1]
    spec["args"]["md5s"][1] = "0" * 32
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights").symlink_to(model_dir / "weights")
    (folder / "model.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setattr(paths, "MODEL_YAML", folder / "model.yaml")
    argv = [a for a in _argv([], out_dir / "p.tsv") if a != "--weights"]
    msg = _fails(run_cli, argv, out_dir)
    assert f"weights file {folder / 'weights' / random_weights[1].name} has md5 {good}" in msg
    assert f"model.yaml expects {'0' * 32}" in msg


# ---------------------------------------------------------------- every route behaves the same on bad input


def test_interval_past_the_fasta_end_is_refused_by_cli_and_api(run_cli, out_dir, random_weights, tmp_path):
    """A BED from another assembly (or a truncated FASTA): an interval that starts past the end of its
    chromosome would be scored from an all-N window; the CLI and predict() refuse it as Kipoi does."""
    bed = tmp_path / "far.bed"
    bed.write_text("chr22\t17000000\t17000200\tnear\nchr22\t30000000\t30000200\tfar\n")
    msg = _fails(run_cli, _argv(random_weights[:1], out_dir / "p.tsv", **{"--intervals": bed}), out_dir)
    assert "interval far (chr22:30000000-30000200) starts past the end of chr22 (22,000,000 bp)" in msg
    with pytest.raises(ChromDragoNNError, match="interval far .* starts past the end of chr22"):
        predict(bed, FASTA, CONTEXTS, expression=USER_TABLE, model=random_weights[0], progress=False)


def test_empty_bed_is_an_error_on_every_route(run_cli, out_dir, random_weights, tmp_path):
    bed = tmp_path / "empty.bed"
    bed.write_text("track name=nothing\n")
    msg = _fails(run_cli, _argv(random_weights[:1], out_dir / "p.tsv", **{"--intervals": bed}), out_dir)
    assert msg == f"error: BED file {bed} has no intervals"


@pytest.mark.parametrize("bad", ["-5", "0"])
def test_batch_size_must_be_positive(run_cli, out_dir, random_weights, bad):
    msg = _fails(run_cli, _argv(random_weights[:1], out_dir / "p.tsv") + ["--batch-size", bad], out_dir)
    assert msg == f"error: batch size must be a whole number >= 1, got {bad}"


def test_duplicated_context_is_an_error_on_every_route(run_cli, out_dir, random_weights):
    msg = _fails(run_cli, _argv(random_weights[:1], out_dir / "p.tsv", **{"--contexts": "E003,E116,E003"}), out_dir)
    assert msg == "error: context(s) E003 given more than once; name each context once"
    with pytest.raises(ChromDragoNNError, match="E003 given more than once"):
        predict(BED, FASTA, ["E003", "E003"], model=random_weights[0], progress=False)


@pytest.mark.parametrize("where, message", [("missing folder", "output folder does not exist"),
                                            ("a directory", "is a directory"),
                                            ("read-only folder", "output folder is not writable: /sys")])
def test_output_location_is_checked_before_any_work(run_cli, out_dir, tmp_path, where, message):
    """The output is checked first: with a missing weights file too, the error is about the output.
    (/sys is read-only even for root, who may write into a chmod 555 folder.)"""
    output = {"missing folder": tmp_path / "no_such_dir" / "p.tsv", "a directory": out_dir,
              "read-only folder": Path("/sys/chromdragonn_p.tsv")}[where]
    msg = _fails(run_cli, _argv([tmp_path / "missing.pt"], output), out_dir)
    assert message in msg


@pytest.mark.parametrize("argv, message", [
    (["--device", "mps"], "unknown device 'mps'; use cpu, cuda or cuda:N"),
    (["--batch-size", "2.5"], "argument --batch-size: invalid int value: '2.5'"),
    (["--model", "0", "1"], "a fold number (0) stands alone"),
])
def test_more_options_give_one_line(run_cli, out_dir, random_weights, argv, message):
    base = [a for a in _argv(random_weights[:1], out_dir / "p.tsv") if a not in ("--weights", str(random_weights[0]))]
    try:
        code, _, err = run_cli(base + argv)
    except SystemExit as exc:  # argparse's own errors exit from parse_args, as they do for users
        code, err = exc.code, run_cli.capsys.readouterr().err
    assert code == 2 and message in err and err.strip().count("\n") == 0 and err.startswith("error: "), err
    assert list(out_dir.iterdir()) == []


def test_an_output_that_is_an_input_or_of_an_unknown_format_is_refused(run_cli, out_dir, random_weights, tmp_path):
    bed = tmp_path / "same.bed"
    bed.write_text(BED.read_text())
    msg = _fails(run_cli, _argv(random_weights[:1], bed, **{"--intervals": bed}), out_dir)
    assert msg == f"error: output TSV {bed} is also an input of this command; give another output name"
    assert bed.read_text() == BED.read_text()
    msg = _fails(run_cli, _argv(random_weights[:1], out_dir / "p.csv"), out_dir)
    assert "give a file name ending in .tsv or .txt" in msg
