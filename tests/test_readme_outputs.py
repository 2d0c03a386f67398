"""The README's printed outputs are those of the weights it ships with.

Each block marked `<!-- output of: ... -->` (scripts/refresh_readme_outputs.py rewrites them) is compared here,
in-process, with the package run on the same inputs with the shipped default model: replacing weights/ without
refreshing the README fails this test. Tolerance: the printed rounding (6 significant digits, or 6 decimals in
pandas' table, up to 5e-7) plus float32 noise between CPUs and batchings (conftest's P_ATOL per probability, twice
that for a difference of two), far below the 1e-3 and more that separates two trained models' outputs.
"""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from conftest import BED, FASTA, P_ATOL, REPO, SHARED_DATA, USER_TABLE

spec = importlib.util.spec_from_file_location("refresh_readme_outputs", REPO / "scripts" / "refresh_readme_outputs.py")
refresh = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = refresh  # dataclasses look their module up there
spec.loader.exec_module(refresh)

CLINVAR_VCF = SHARED_DATA / "variants" / "clinvar_20180429_pathogenic_hg19_chr22.vcf.gz"
ROADMAP = ["E003", "E116", "E123"]
RTOL = 1e-5


def _blocks() -> dict[str, refresh.OutputBlock]:
    keys = {"chromdragonn predict": "setup", "example_python.py": "python", "example_r.R": "r",
            "score-variants": "clinvar"}
    found = {}
    for block in refresh.read_blocks(refresh.README.read_text()):
        kind = [v for k, v in keys.items() if k in block.command]
        assert len(kind) == 1, f"README output block `{block.command}`: no check here for it; add one to this file"
        found[kind[0]] = block
    assert sorted(found) == sorted(keys.values())
    return found


def _rows(block: refresh.OutputBlock) -> list[list[str]]:
    """The data rows: not the header, the '...' line or the `kipoi: (20, 4)` line."""
    rows = [line.split() for line in block.body if line != "..." and not line.startswith("kipoi:")]
    return rows[1:]


@pytest.fixture(scope="module")
def shipped_predictions():
    from chromdragonn.predict import predict

    return predict(BED, FASTA, ROADMAP + ["my_H1_sample"], expression=USER_TABLE, progress=False).set_index("name")


def test_prediction_blocks_are_the_shipped_models_outputs(shipped_predictions):
    blocks = _blocks()
    for kind, contexts, name_at in (("setup", ROADMAP, 3), ("python", ROADMAP + ["my_H1_sample"], 3), ("r", ROADMAP, 0)):
        rows = _rows(blocks[kind])
        assert len(rows) == blocks[kind].n_lines - (2 if kind == "python" else 1)
        for row in rows:
            printed = np.array(row[-len(contexts):], dtype=float)
            np.testing.assert_allclose(printed, shipped_predictions.loc[row[name_at], contexts].to_numpy(float),
                                       rtol=RTOL, atol=P_ATOL, err_msg=f"README {kind} block, {row[name_at]}: "
                                       "run python scripts/refresh_readme_outputs.py")
    # the R example prints its row names from the BED: the same first intervals as the other two
    assert [r[0] for r in _rows(blocks["r"])] == [r[3] for r in _rows(blocks["setup"])][:len(_rows(blocks["r"]))]


def test_clinvar_block_is_the_shipped_models_scores():
    from chromdragonn.variants import score_variants

    block = _blocks()["clinvar"]
    header = block.body[0].split("\t")
    assert header == ["#CHROM", "POS", "ID", "REF", "ALT", "E003/diff", "E116/diff", "ref_match"]
    scores = score_variants(CLINVAR_VCF, FASTA, ["E003", "E116"], progress=False)
    scores = scores.astype({"ID": str}).set_index("ID")
    rows = _rows(block)
    assert len(rows) == 4
    for row in rows:
        np.testing.assert_allclose(np.array(row[5:7], dtype=float),
                                   scores.loc[row[2], ["E003/diff", "E116/diff"]].to_numpy(float),
                                   rtol=RTOL, atol=2 * P_ATOL, err_msg=f"README ClinVar block, ID {row[2]}")
        assert int(row[1]) == int(scores.loc[row[2], "POS"]) and row[7] == "1"


def test_refresh_rewrites_stale_blocks_and_check_tolerates_float_noise(tmp_path, capsys):
    readme = tmp_path / "README.md"
    marker = "<!-- output of: echo 'x 0.123456'; echo y; echo z (first 2 lines) -->"
    readme.write_text(f"intro\n{marker}\n```text\nx 0.123457\ny\n...\n```\nend\n")
    assert refresh.main(["--check", "--readme", str(readme)]) == 0  # 8e-6 relative: float noise
    readme.write_text(f"intro\n{marker}\n```text\nx 0.1236\nold\n...\n```\nend\n")
    assert refresh.main(["--check", "--readme", str(readme)]) == 1
    assert f"{readme}:3: the output of" in capsys.readouterr().err
    assert refresh.main(["--readme", str(readme)]) == 0
    assert readme.read_text() == f"intro\n{marker}\n```text\nx 0.123456\ny\n...\n```\nend\n"


def test_refresh_failures_leave_the_readme_as_it_was(tmp_path, capsys):
    readme = tmp_path / "README.md"
    text = "<!-- output of: echo a; exit 3 (first 1 lines) -->\n```text\nold\n...\n```\n"
    readme.write_text(text)
    assert refresh.main(["--readme", str(readme)]) == 2
    assert "error: `echo a; exit 3` exited 3" in capsys.readouterr().err and readme.read_text() == text
    readme.write_text("<!-- output of: echo a (first 3 lines) -->\n```text\nold\n```\n")
    assert refresh.main(["--readme", str(readme)]) == 2
    assert "printed 1 lines, the marker asks for 3" in capsys.readouterr().err
    readme.write_text("<!-- output of: echo a (first 1 lines) -->\nno fence\n")
    assert refresh.main(["--readme", str(readme)]) == 2
    assert f"error: {readme}:1: output marker not followed by a ```text fence" in capsys.readouterr().err
