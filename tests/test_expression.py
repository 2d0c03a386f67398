"""chromdragonn.inputs.expression on the real Roadmap RNA-seq and the shipped tables."""
from __future__ import annotations

import gzip
import logging

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, USER_TABLE

from chromdragonn import paths
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.expression import (
    ExpressionSource,
    build_gene_panel,
    parse_contexts,
    read_expression_table,
    read_gene_panel,
    rpkm_to_tpm,
)

RPKM = SHARED_DATA / "expression" / "57epigenomes.RPKM.pc.gz"
LAMBERT = SHARED_DATA / "tf_lists" / "Lambert2018_DatabaseExtract_v_1.01.csv"


@pytest.fixture(scope="module")
def rpkm_pandas() -> pd.DataFrame:
    """The RPKM matrix read by pandas directly (rows end with a tab: 59 fields for 58 names)."""
    return pd.read_csv(RPKM, sep="\t", usecols=range(58)).set_index("gene_id")


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return read_gene_panel(paths.GENE_PANEL)


def test_read_roadmap_rpkm(rpkm_pandas):
    t = read_expression_table(RPKM)
    assert t.shape == (19_795, 57)
    assert t.columns[0] == "E000" and t.columns[-1] == "E128" and "E003" in t.columns
    assert t.index[0] == "ENSG00000000003"
    assert t.loc["ENSG00000000003", "E003"] == 43.985
    assert t.dtypes.unique().tolist() == [np.float64]
    np.testing.assert_array_equal(t.to_numpy(), rpkm_pandas.loc[t.index, t.columns].to_numpy())


def test_rpkm_to_tpm(rpkm_pandas):
    tpm = rpkm_to_tpm(read_expression_table(RPKM))
    np.testing.assert_allclose(tpm.sum(axis=0), 1e6, rtol=1e-12)
    expected = 43.985 / rpkm_pandas["E003"].sum() * 1e6
    assert tpm.loc["ENSG00000000003", "E003"] == pytest.approx(expected, rel=1e-12)


def test_gene_panel_is_lambert_tfs_in_roadmap(rpkm_pandas, panel):
    built = build_gene_panel(LAMBERT, RPKM)
    assert len(built) == 1575
    assert built.iloc[0, :2].tolist() == ["TFAP2A", "ENSG00000137203"]
    assert "PHF19" in set(built.gene_symbol)  # the Lambert entry with a trailing space
    # The shipped TSV is exactly what build_gene_panel makes (fill rounded to 6 decimals).
    assert built.gene_symbol.tolist() == panel.gene_symbol.tolist()
    assert built.ensembl_id.tolist() == panel.ensembl_id.tolist()
    np.testing.assert_allclose(built.fill_arcsinh_tpm, panel.fill_arcsinh_tpm, atol=1e-6)
    # Fill value of one TF recomputed independently: median over the 56 epigenomes (E000 excluded).
    epi = [c for c in rpkm_pandas.columns if c != "E000"]
    tpm = rpkm_pandas[epi] / rpkm_pandas[epi].sum() * 1e6
    assert panel.set_index("gene_symbol").loc["TFAP2A", "fill_arcsinh_tpm"] == pytest.approx(
        float(np.median(np.arcsinh(tpm.loc["ENSG00000137203"]))), abs=1e-6)
    lam = pd.read_csv(LAMBERT)
    assert (lam["Is TF?"] == "Yes").sum() == 1639


def test_shipped_table_is_roadmap_tpm(rpkm_pandas, panel):
    shipped = pd.read_csv(paths.SHIPPED_EXPRESSION, sep="\t")
    epi = [c for c in rpkm_pandas.columns if c != "E000"]
    assert list(shipped.columns) == ["gene_symbol", "ensembl_id"] + epi
    assert len(epi) == 56 and "E000" not in shipped.columns
    assert shipped.gene_symbol.tolist() == panel.gene_symbol.tolist()
    tpm = rpkm_pandas[epi] / rpkm_pandas[epi].sum() * 1e6  # over all 19,795 genes
    np.testing.assert_allclose(shipped[epi].to_numpy(), tpm.loc[shipped.ensembl_id].to_numpy(), atol=6e-5)


def test_parse_contexts():
    assert parse_contexts("E003, E116,E123") == ["E003", "E116", "E123"]
    assert parse_contexts(["E003", " E116 "]) == ["E003", "E116"]
    for empty in ("", " , ", []):
        with pytest.raises(ChromDragoNNError, match="no cell contexts"):
            parse_contexts(empty)
    for repeated in ("E003,E116,E003", ["E116", "E116 "]):
        with pytest.raises(ChromDragoNNError, match="given more than once; name each context once"):
            parse_contexts(repeated)


def test_gene_by_symbol_and_by_ensembl_id_with_different_values_is_said(tmp_path, caplog, panel):
    """A table that gives a panel TF twice (symbol row and Ensembl row) with different values: the
    Ensembl row is used, and a warning names the gene and both rows."""
    gata1 = panel.set_index("gene_symbol").loc["GATA1", "ensembl_id"]
    p = tmp_path / "both.tsv"
    p.write_text(f"gene\tS\nGATA1\t5.0\n{gata1}\t50.0\nTAL1\t3.0\n")
    with caplog.at_level(logging.WARNING, logger="chromdragonn"):
        m = ExpressionSource(user_table=p, shipped=None).matrix(["S"])
    i = panel.gene_symbol.tolist().index("GATA1")
    assert m[0, i] == pytest.approx(np.arcsinh(50.0), rel=1e-6)
    assert f"gives 1 gene-panel TF(s) twice, by symbol and by Ensembl ID, with different values; the Ensembl ID " \
           f"rows are used: GATA1 (GATA1 vs {gata1})" in caplog.text


def test_rpkm_table_of_tfs_only_is_warned(tmp_path, caplog, rpkm_pandas, panel):
    """RPKM -> TPM divides by the sample's total; a table holding only TFs gives TPMs far too high."""
    tfs = rpkm_pandas.loc[rpkm_pandas.index.isin(panel.ensembl_id), ["E003"]]
    p = tmp_path / "tf_rpkm.tsv"
    tfs.rename_axis("gene_id").to_csv(p, sep="\t")
    with caplog.at_level(logging.WARNING, logger="chromdragonn"):
        ExpressionSource(user_table=p, user_units="rpkm")
    assert f"has only {len(tfs)} genes: RPKM is converted to TPM over the genes of the table" in caplog.text
    caplog.clear()
    whole = tmp_path / "all_rpkm.tsv"
    rpkm_pandas[["E003"]].rename_axis("gene_id").to_csv(whole, sep="\t")
    with caplog.at_level(logging.WARNING, logger="chromdragonn"):
        ExpressionSource(user_table=whole, user_units="rpkm")
    assert "RPKM is converted" not in caplog.text


def test_source_shipped_contexts(panel):
    src = ExpressionSource()
    assert len(src.contexts) == 56 and src.contexts[0] == "E003"
    m = src.matrix("E116,E003")
    assert m.shape == (2, 1575) and m.dtype == np.float32
    shipped = pd.read_csv(paths.SHIPPED_EXPRESSION, sep="\t")
    np.testing.assert_allclose(m[1], np.arcsinh(shipped["E003"].to_numpy()), rtol=1e-6)
    np.testing.assert_allclose(m[0], np.arcsinh(shipped["E116"].to_numpy()), rtol=1e-6)


def test_user_table_by_symbol_fills_missing_and_warns(caplog, panel):
    src = ExpressionSource(user_table=USER_TABLE)
    assert src.contexts[-1] == "my_H1_sample" and len(src.contexts) == 57
    with caplog.at_level(logging.WARNING, logger="chromdragonn"):
        m = src.matrix(["E003", "my_H1_sample"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("40 of 1575 gene-panel TFs are not in expression table")
    # my_H1_sample is E003 written by symbol: equal where the symbol matched, the fill value elsewhere.
    user = pd.read_csv(USER_TABLE, sep="\t")
    matched = panel.gene_symbol.isin(user.gene_symbol).to_numpy()
    assert (~matched).sum() == 40
    # One symbol names a different gene in GENCODE v10 than in Lambert 2018: NME2 is ENSG00000011052 in
    # GENCODE v10 but ENSG00000243678 (GENCODE v10's NME1-NME2) in Lambert, so its values differ.
    differs = matched & (np.abs(m[1] - m[0]) > 1e-3)
    assert panel.gene_symbol[differs].tolist() == ["NME2"]
    np.testing.assert_allclose(m[1][matched & ~differs], m[0][matched & ~differs], atol=1e-3)
    np.testing.assert_allclose(m[1][~matched], panel.fill_arcsinh_tpm.to_numpy()[~matched], atol=1e-6)


def test_user_rpkm_by_ensembl_id_with_versions(tmp_path, rpkm_pandas):
    """E003 RPKM of all genes, Ensembl IDs with version suffixes, CSV, gzipped, units rpkm -> the shipped E003."""
    p = tmp_path / "mine.csv.gz"
    df = pd.DataFrame({"gene_id": [f"{g}.7" for g in rpkm_pandas.index], "sampleA": rpkm_pandas["E003"].to_numpy()})
    with gzip.open(p, "wt") as fh:
        df.to_csv(fh, index=False)
    src = ExpressionSource(user_table=p, user_units="rpkm")
    m = src.matrix(["E003", "sampleA"])
    np.testing.assert_allclose(m[1], m[0], atol=1e-4)


def test_user_context_overrides_shipped(tmp_path, panel):
    p = tmp_path / "e003.tsv"
    pd.DataFrame({"gene": panel.gene_symbol, "E003": 1.0}).to_csv(p, sep="\t", index=False)
    src = ExpressionSource(user_table=p)
    assert src.contexts.count("E003") == 1 and len(src.contexts) == 56
    np.testing.assert_allclose(src.matrix(["E003"]), np.arcsinh(1.0), rtol=1e-6)


def test_unknown_context_lists_known():
    src = ExpressionSource(user_table=USER_TABLE)
    with pytest.raises(ChromDragoNNError) as err:
        src.matrix(["E003", "E999"])
    msg = str(err.value)
    assert "unknown cell context 'E999'" in msg and "E003, E004" in msg and "my_H1_sample" in msg


def _table(tmp_path, text, name="t.tsv"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("text,match", [
    ("gene\tA\nTFAP2A\t1\nSP1\t\n", r"t.tsv:3: gene SP1, context A: value '' is missing"),
    ("gene\tA\nTFAP2A\t1\nSP1\tNaN\n", r"t.tsv:3: gene SP1, context A: value 'NaN' is missing"),
    ("gene\tA\tB\nTFAP2A\t1\t-0.5\n", r"t.tsv:2: gene TFAP2A, context B: value '-0.5' is negative"),
    ("gene\tA\nTFAP2A\thigh\n", r"t.tsv:2: gene TFAP2A, context A: value 'high' is not a number"),
    ("gene\tA\nTFAP2A\t1\nSP1\t2\nTFAP2A\t3\n", r"t.tsv:4: duplicate gene row 'TFAP2A' \(same gene as line 2\)"),
    ("gene\tA\nENSG00000137203.4\t1\nENSG00000137203.5\t3\n", r"t.tsv:3: duplicate gene row"),
    ("gene\tA\tA\nTFAP2A\t1\t2\n", r"context column\(s\) repeated: A"),
    ("gene\tA\nTFAP2A\t1\t2\t3\n", r"t.tsv:2: 4 fields, but the header has 2"),
    ("gene\n", r"has no gene rows"),
])
def test_bad_tables(tmp_path, text, match):
    with pytest.raises(ChromDragoNNError, match=match):
        read_expression_table(_table(tmp_path, text))


def test_table_without_panel_genes(tmp_path):
    p = _table(tmp_path, "gene\tmine\nNOT_A_TF\t3\nENSG00000000003\t5\n")
    with pytest.raises(ChromDragoNNError, match=r"has none of the 1575 gene-panel TFs"):
        ExpressionSource(user_table=p)


def test_bad_units_and_missing_file(tmp_path):
    with pytest.raises(ChromDragoNNError, match="units must be one of tpm, rpkm"):
        ExpressionSource(user_table=USER_TABLE, user_units="fpkm")
    with pytest.raises(ChromDragoNNError, match="expression table not found"):
        ExpressionSource(user_table=tmp_path / "none.tsv")


def test_rpkm_context_summing_to_zero():
    with pytest.raises(ChromDragoNNError, match="B sum to 0"):
        rpkm_to_tpm(pd.DataFrame({"A": [1.0, 2.0], "B": [0.0, 0.0]}, index=["x", "y"]))
