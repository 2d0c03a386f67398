"""chromdragonn.variants: `chromdragonn score-variants` and score_variants() (issue 4).

Reference numbers are computed independently of variants.py: windows cut by hand
from the FASTA (genome positions [POS - 500, POS + 500), the allele spliced in at
index 499 and, for indels, the flanks taken as the documented symmetric rule says),
and P(accessible) from one row-paired forward per (window, context)
(``model.predict_proba``).  Weights are the conftest's seeded random-init folds
with batch-norm statistics from real windows, so single-base changes move P by
about 1e-3 to 1e-1 and the comparisons below are not trivially met.
"""
from __future__ import annotations

import gzip
import logging
import sys
from pathlib import Path

import cyvcf2
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FASTA, MEAN_BW, P_ATOL, REPO, USER_TABLE

from chromdragonn import paths
from chromdragonn.cli import main
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.expression import ExpressionSource
from chromdragonn.inputs.genome import Genome, MeanAccessibility, one_hot
from chromdragonn.nn.weights import load_model
from chromdragonn.variants import (
    KEY_COLUMNS,
    REF_MATCH_COLUMN,
    Counts,
    _read_chunks,
    allele_window,
    open_vcf,
    score_variants,
)

SHARED = paths.SHARED_DATA
KG_VCF = SHARED / "variants" / "1kg_phase3_chr22_ADA2_GAB4.sites.vcf.gz"
CLINVAR_VCF = SHARED / "variants" / "clinvar_20180429_pathogenic_hg19_chr22.vcf.gz"
CONTEXTS = ["E003", "E116"]
ALL_SCORES = "diff,ref,alt,logit,abs_diff"

# Real 1000 Genomes records (CHROM 22): SNVs, then indels of lengths +8, -1, -2, and 17456879,
# a site with two records (C>A and C>CA, a multi-allelic site split over two lines).
KG_SNVS = [17442913, 17442923, 17442951, 17442987, 17443053]
KG_INDELS = [17444522, 17445640, 17449730, 17456879]


# ---------------------------------------------------------------- helpers


def _header_and_records(src: Path):
    with gzip.open(src, "rt") as fh:
        lines = fh.read().splitlines()
    header = [ln for ln in lines if ln.startswith("#")]
    records = [ln for ln in lines if not ln.startswith("#")]
    return header, records


def write_vcf(dest: Path, src: Path = KG_VCF, positions=None, edit=None, extra_records=()) -> Path:
    """A plain VCF with ``src``'s header and its records at ``positions`` (all if None);
    ``edit(fields) -> fields`` may change a record."""
    header, records = _header_and_records(src)
    out = []
    for rec in records:
        fields = rec.split("\t")
        if positions is not None and int(fields[1]) not in positions:
            continue
        out.append("\t".join(edit(fields) if edit else fields))
    dest.write_text("\n".join(header + out + list(extra_records)) + "\n")
    return dest


def hand_windows(genome: Genome, chrom: str, pos: int, ref: str, alt: str):
    """Reference and alternative windows built from the docstring's rule, without allele_window."""
    ws = pos - 500
    ref_win = genome.fetch(chrom, ws, ws + 1000)
    assert ref_win[499: 499 + len(ref)] == ref
    d = len(alt) - len(ref)
    shift = int(d / 2)  # floor(|d|/2) toward zero: trimmed (d > 0) or added (d < 0) on the left
    left = genome.fetch(chrom, ws + shift, pos - 1)
    right_len = 1000 - len(left) - len(alt)
    right = genome.fetch(chrom, pos - 1 + len(ref), pos - 1 + len(ref) + right_len)
    alt_win = left + alt + right
    assert len(alt_win) == 1000
    return ref_win, alt_win


def reference_probs(model, seqs, expr: np.ndarray, mean_acc) -> np.ndarray:
    """(N, C) P(accessible): one row-paired forward per (window, context); mean_acc scalar or (N,)."""
    out = np.zeros((len(seqs), len(expr)))
    x = torch.as_tensor(np.stack([one_hot(s) for s in seqs]))
    m = torch.as_tensor(np.broadcast_to(np.asarray(mean_acc, dtype=np.float32), (len(seqs),)).copy())
    for j in range(len(expr)):
        e = torch.as_tensor(np.repeat(expr[j][None], len(seqs), axis=0))
        out[:, j] = model.predict_proba(x, e, m).double().numpy()
    return out


@pytest.fixture(scope="module")
def fold0(random_weights):
    model, genes = load_model(random_weights[0])
    return model, genes


@pytest.fixture(scope="module")
def expr():
    return ExpressionSource().matrix(CONTEXTS)


# ---------------------------------------------------------------- windows


def test_snv_window_is_kipoiseq_resize_with_first_ref_base_at_499(genome):
    from kipoiseq import Interval

    pos = KG_SNVS[0]
    iv = Interval("22", pos - 1, pos).resize(1000)
    assert (iv.start, iv.end) == (pos - 500, pos + 500)
    seq = allele_window(genome, "22", pos, 1, "C")
    assert seq == genome.fetch("22", iv.start, iv.end)
    assert seq[499] == "C"  # the VCF REF of 22:17442913
    alt = allele_window(genome, "22", pos, 1, "T")
    assert alt[:499] == seq[:499] and alt[500:] == seq[500:] and alt[499] == "T"


def test_indel_windows_keep_1000bp_with_symmetric_real_flanks(genome):
    ws = 17445640 - 500
    ref = genome.fetch("22", ws - 10, ws + 1010)
    # AC -> A (d = -1): the REF window's left 499 bases stay; one more real base on the right.
    alt = allele_window(genome, "22", 17445640, 2, "A")
    assert alt == ref[10: 10 + 499] + "A" + ref[10 + 501: 10 + 501 + 500]
    # TAA -> T at 17449730 (d = -2): one more real base on each side.
    ws2 = 17449730 - 500
    ref2 = genome.fetch("22", ws2 - 10, ws2 + 1010)
    alt2 = allele_window(genome, "22", 17449730, 3, "T")
    assert alt2 == ref2[9: 10 + 499] + "T" + ref2[10 + 502: 10 + 502 + 499]
    # C -> CAGCCCAGT at 17444522 (d = +8): four bases trimmed on each side.
    ws3 = 17444522 - 500
    ref3 = genome.fetch("22", ws3, ws3 + 1000)
    alt3 = allele_window(genome, "22", 17444522, 1, "CAGCCCAGT")
    assert alt3 == ref3[4:499] + "CAGCCCAGT" + ref3[500:996]
    for s in (alt, alt2, alt3):
        assert len(s) == 1000


def test_window_near_chromosome_end_is_padded_with_n(genome):
    length = genome.lengths["22"]
    seq = allele_window(genome, "22", length - 10, 1, "A")
    assert len(seq) == 1000 and seq[499] == "A"
    assert seq[510:] == "N" * 490  # 22 is 22,000,000 bp in this FASTA slice


# ---------------------------------------------------------------- scores against an independent path


def test_scores_equal_independent_windows_and_forward(tmp_path, genome, fold0, expr):
    model, genes = fold0
    # Two real ALTs of one site (T and G) plus a symbolic and a '*' allele, as one multi-allelic record.
    multi = "22\t17443166\tmulti1\tC\tA,G,<DEL>,*\t100\tPASS\t."
    vcf = write_vcf(tmp_path / "subset.vcf", positions=set(KG_SNVS + KG_INDELS), extra_records=[multi])
    mean = MeanAccessibility(MEAN_BW)
    df = score_variants(vcf, FASTA, CONTEXTS, model=(model, genes), scores=ALL_SCORES, mean_bigwig=MEAN_BW)

    assert list(df.columns) == KEY_COLUMNS + [f"{c}/{s}" for c in CONTEXTS for s in ALL_SCORES.split(",")] + [REF_MATCH_COLUMN]
    # 10 records (17456879 has two), plus 2 rows from the multi-allelic record's real ALTs
    assert len(df) == len(KG_SNVS) + len(KG_INDELS) + 1 + 2
    assert df[REF_MATCH_COLUMN].tolist() == [1] * len(df)
    assert df.loc[df.ID == "multi1", "ALT"].tolist() == ["A", "G"]

    refs, alts, means = [], [], []
    for r in df.itertuples(index=False):
        pos, ref, alt = int(r[1]), r[3], r[4]
        a, b = hand_windows(genome, "22", pos, ref, alt)
        refs.append(a)
        alts.append(b)
        means.append(mean.value("22", pos - 500, pos + 500))
    means = np.asarray(means, dtype=np.float32)
    p_ref = reference_probs(model, refs, expr, means)
    p_alt = reference_probs(model, alts, expr, means)
    for j, c in enumerate(CONTEXTS):
        np.testing.assert_allclose(df[f"{c}/ref"], p_ref[:, j], atol=P_ATOL)
        np.testing.assert_allclose(df[f"{c}/alt"], p_alt[:, j], atol=P_ATOL)
        np.testing.assert_allclose(df[f"{c}/diff"], p_alt[:, j] - p_ref[:, j], atol=P_ATOL)
        np.testing.assert_allclose(df[f"{c}/abs_diff"], np.abs(p_alt[:, j] - p_ref[:, j]), atol=P_ATOL)
        logit = np.log(p_alt[:, j] / (1 - p_alt[:, j])) - np.log(p_ref[:, j] / (1 - p_ref[:, j]))
        np.testing.assert_allclose(df[f"{c}/logit"], logit, atol=1e-4)
    # Not a trivial comparison: the indels and some SNVs move P by more than 1e-4.
    assert np.abs(p_alt - p_ref).max() > 1e-3


def test_both_strands_average_forward_and_reverse_complement(tmp_path, genome, fold0, expr):
    model, genes = fold0
    vcf = write_vcf(tmp_path / "two.vcf", positions=set(KG_SNVS[:2]))
    df = score_variants(vcf, FASTA, CONTEXTS, model=(model, genes), scores="ref,alt", both_strands=True,
                        mean_bigwig=MEAN_BW)
    mean = MeanAccessibility(MEAN_BW)
    rc = str.maketrans("ACGTN", "TGCAN")
    for k, r in enumerate(df.itertuples(index=False)):
        pos = int(r[1])
        ref_w, alt_w = hand_windows(genome, "22", pos, r[3], r[4])
        m = mean.value("22", pos - 500, pos + 500)
        for name, w in (("ref", ref_w), ("alt", alt_w)):
            both = reference_probs(model, [w, w.translate(rc)[::-1]], expr, m)
            np.testing.assert_allclose(df[[f"{c}/{name}" for c in CONTEXTS]].iloc[k], both.mean(0), atol=P_ATOL)


# ---------------------------------------------------------------- real inputs end to end


def test_clinvar_chr_naming_reconciled_and_records_past_the_slice_counted(tmp_path, random_weights, caplog):
    out = tmp_path / "clinvar.tsv"
    with caplog.at_level(logging.INFO, logger="chromdragonn"):
        rc = main(["score-variants", "--vcf", str(CLINVAR_VCF), "--fasta", str(FASTA), "--contexts", "E003,E116",
                   "-o", str(out), "--model", str(random_weights[0]), "--mean-bigwig", str(MEAN_BW),
                   "--scores", "diff,logit", "-q"])
    assert rc == 0
    df = pd.read_csv(out, sep="\t")
    # 582 records: 72 inside the 22 Mb FASTA slice are scored, 510 lie beyond its end.
    assert len(df) == 72
    assert set(df["#CHROM"]) == {"chr22"}  # the VCF's naming is kept in the output
    assert df[REF_MATCH_COLUMN].sum() == 72
    assert df["POS"].max() <= 22_000_000
    assert list(df.columns[5:9]) == ["E003/diff", "E003/logit", "E116/diff", "E116/logit"]
    assert np.isfinite(df.iloc[:, 5:9].to_numpy()).all()
    text = caplog.text
    assert "582 VCF records read; 72 alleles scored in 2 contexts" in text
    assert "510 records beyond the end of their chromosome" in text and "22,000,000 bp" in text
    assert not (tmp_path / "clinvar.tsv.partial").exists()


def test_1kg_vcf_streams_in_bounded_chunks_and_every_ref_matches(genome):
    """The whole 1000 Genomes file through the reader (no model): counts, REF check, chunk sizes."""
    counts = Counts()
    sizes, n_alleles = [], 0
    for chunk in _read_chunks(open_vcf(KG_VCF), genome, counts, "flag", KG_VCF, chunk_alleles=64):
        sizes.append(sum(len(r.alleles) for r in chunk))
        n_alleles += sizes[-1]
        assert all(a.ref_match for r in chunk for a in r.alleles)
    assert counts.records == 2185 and n_alleles == 2185 == counts.alleles_scored
    assert counts.ref_mismatch_flagged == 0 and not counts.chrom_missing
    assert max(sizes) == 64 and len(sizes) == 35  # ceil(2185 / 64)


def test_vcf_output_declares_info_fields_and_matches_tsv(tmp_path, random_weights):
    multi = "22\t17443166\tmulti1\tC\tA,<DEL>\t100\tPASS\t."  # the symbolic ALT gets '.'
    vcf = write_vcf(tmp_path / "in.vcf", positions=set(KG_SNVS[:2] + KG_INDELS[:1]), extra_records=[multi])
    out_vcf, out_tsv = tmp_path / "out.vcf.gz", tmp_path / "out.tsv"
    # my_H1_sample is a context of the user's own RNA-seq table (example/user_rnaseq_tpm.tsv).
    common = ["--vcf", str(vcf), "--fasta", str(FASTA), "--contexts", "E003,my_H1_sample", "--model",
              str(random_weights[0]), "--mean-bigwig", str(MEAN_BW), "--scores", "diff,alt", "--expression",
              str(USER_TABLE), "-q"]
    assert main(["score-variants", *common, "-o", str(out_vcf)]) == 0
    assert main(["score-variants", *common, "-o", str(out_tsv)]) == 0
    with open(out_vcf, "rb") as fh:
        assert fh.read(2) == b"\x1f\x8b"  # bgzipped
    reader = cyvcf2.VCF(str(out_vcf))
    header = reader.raw_header
    for key in ("CDN_E003_diff", "CDN_E003_alt", "CDN_my_H1_sample_diff", "CDN_my_H1_sample_alt"):
        assert f"##INFO=<ID={key},Number=A,Type=Float" in header
    assert "##INFO=<ID=CDN_REF_MISMATCH,Number=0,Type=Flag" in header
    tsv = pd.read_csv(out_tsv, sep="\t")
    records = list(reader)
    assert [r.POS for r in records] == tsv["POS"].tolist()
    for r, (_, row) in zip(records, tsv.iterrows()):
        assert r.INFO.get("CDN_REF_MISMATCH") is None
        for key, col in (("CDN_E003_diff", "E003/diff"), ("CDN_my_H1_sample_alt", "my_H1_sample/alt")):
            value = r.INFO.get(key)
            if r.ID == "multi1":  # Number=A: one value per ALT, '.' (None) for the skipped <DEL>
                assert value[1] is None
                value = value[0]
            assert value == pytest.approx(row[col], rel=1e-5, abs=1e-7)
    assert records[0].INFO.get("AC") is not None  # the input's own INFO is kept


# ---------------------------------------------------------------- REF mismatches


def _wrong_ref(fields):
    if int(fields[1]) == KG_SNVS[1]:  # real REF G
        fields[3] = "T"
    return fields


def test_ref_mismatch_flag_skip_stop(tmp_path, random_weights, caplog):
    vcf = write_vcf(tmp_path / "mm.vcf", positions=set(KG_SNVS[:2]), edit=_wrong_ref)
    model = str(random_weights[0])
    with caplog.at_level(logging.WARNING, logger="chromdragonn"):
        flagged = score_variants(vcf, FASTA, CONTEXTS, model=model, mean_bigwig=MEAN_BW, ref_mismatch="flag")
    assert flagged[REF_MATCH_COLUMN].tolist() == [1, 0]
    assert flagged["REF"].tolist() == ["C", "T"]  # scored with the VCF alleles
    assert "1 alleles whose VCF REF does not match" in caplog.text
    skipped = score_variants(vcf, FASTA, CONTEXTS, model=model, mean_bigwig=MEAN_BW, ref_mismatch="skip")
    assert skipped["POS"].tolist() == [KG_SNVS[0]]
    out = tmp_path / "stop.tsv"
    with pytest.raises(ChromDragoNNError, match=r"record 2 \(22:17442923\) has REF T but .* has G"):
        score_variants(vcf, FASTA, CONTEXTS, model=model, mean_bigwig=MEAN_BW, ref_mismatch="stop", output=out)
    assert not out.exists() and not (tmp_path / "stop.tsv.partial").exists()


# ---------------------------------------------------------------- bad input: one line, exit 2, nothing written


def _cli(tmp_path, vcf, out_name="out.tsv", contexts="E003", fasta=FASTA, model=None):
    out = tmp_path / out_name
    args = ["score-variants", "--vcf", str(vcf), "--fasta", str(fasta), "--contexts", contexts, "-o", str(out),
            "--mean-bigwig", str(MEAN_BW), "-q"]
    if model is not None:
        args += ["--model", str(model)]
    return main(args), out


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [ln for ln in err if ln.startswith("error: ")]
    assert len(errors) == 1
    return errors[0]


def test_not_a_vcf(tmp_path, random_weights, capsys):
    bad = tmp_path / "notes.vcf"
    bad.write_text("this is not a VCF\n")
    rc, out = _cli(tmp_path, bad, model=random_weights[0])
    assert rc == 2 and not out.exists() and not (tmp_path / "out.tsv.partial").exists()
    assert "is not a VCF or BCF file" in _one_line_error(capsys)


def test_vcf_chromosomes_missing_from_fasta(tmp_path, random_weights, capsys):
    def to_chr1(fields):
        fields[0] = "chr1"
        return fields

    vcf = write_vcf(tmp_path / "chr1.vcf", positions=set(KG_SNVS[:3]), edit=to_chr1)
    rc, out = _cli(tmp_path, vcf, model=random_weights[0])
    assert rc == 2 and not out.exists() and not (tmp_path / "out.tsv.partial").exists()
    msg = _one_line_error(capsys)
    assert "chr1" in msg and "chr-prefix naming was already reconciled" in msg and "22" in msg


def test_unknown_context(tmp_path, random_weights, capsys):
    vcf = write_vcf(tmp_path / "one.vcf", positions={KG_SNVS[0]})
    rc, out = _cli(tmp_path, vcf, contexts="E003,NOT_A_CONTEXT", model=random_weights[0])
    assert rc == 2 and not out.exists()
    msg = _one_line_error(capsys)
    assert "unknown cell context 'NOT_A_CONTEXT'" in msg and "E116" in msg


def test_empty_vcf_writes_header_only(tmp_path, random_weights, caplog):
    vcf = write_vcf(tmp_path / "empty.vcf", positions=set())
    with caplog.at_level(logging.INFO, logger="chromdragonn"):
        rc, out = _cli(tmp_path, vcf, contexts="E003,E116", model=random_weights[0])
    assert rc == 0
    assert out.read_text() == "#CHROM\tPOS\tID\tREF\tALT\tE003/diff\tE116/diff\tref_match\n"
    assert "0 variants scored" in caplog.text


def test_fasta_that_cannot_be_indexed(tmp_path, random_weights, capsys):
    fasta = tmp_path / "ragged.fa"
    fasta.write_text(">22\nACGTACGTAC\nACG\nACGTACGTAC\nACGT\n")  # inconsistent line lengths
    vcf = write_vcf(tmp_path / "one.vcf", positions={KG_SNVS[0]})
    rc, out = _cli(tmp_path, vcf, fasta=fasta, model=random_weights[0])
    assert rc == 2 and not out.exists()
    msg = _one_line_error(capsys)
    assert "cannot read or index FASTA file" in msg and "ragged.fa" in msg


def test_unknown_score_and_missing_output_folder(tmp_path, random_weights, capsys):
    vcf = write_vcf(tmp_path / "one.vcf", positions={KG_SNVS[0]})
    with pytest.raises(ChromDragoNNError, match="unknown score"):
        score_variants(vcf, FASTA, "E003", model=str(random_weights[0]), scores="diff,effect")
    rc, _ = _cli(tmp_path, vcf, out_name="no_such_dir/out.tsv", model=random_weights[0])
    assert rc == 2 and "output folder does not exist" in _one_line_error(capsys)


def test_fetch_works_around_pyfaidx_bgzf_block_boundary(genome):
    """pyfaidx 0.9.2.2 cannot start a read at a BGZF block boundary of the bgzipped example FASTA
    (22:16,050,945 is one); Genome.fetch reads one base earlier there."""
    with pytest.raises(ValueError, match="within_block_offset"):
        genome._fasta["22"][16_050_945:16_051_945]  # the bug, straight through pyfaidx
    seq = genome.fetch("22", 16_050_945, 16_051_945)
    assert seq == genome.fetch("22", 16_050_944, 16_051_945)[1:] and len(seq) == 1000

    # A variant whose window starts there scores: its window is cut through the workaround.
    assert allele_window(genome, "22", 16_051_445, 1, seq[499]) == seq


# ---------------------------------------------------------------- against the simulated truth (trained weights)

TRAINED_FOLD0 = REPO / "weights" / "fold0.with_mean.pt"


def _bench_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_variants", REPO / "benchmarks" / "bench_variants.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.parametrize("rule_version", [1, 2])
def test_truth_check_runs_on_random_weights(tmp_path, random_weights, rule_version):
    """The truth-check code path end to end (a random model, so no correlation is expected), from a
    weights folder other than weights/ (fold file, folds.tsv, mean bigWig), for either rule."""
    import shutil

    from chromdragonn import paths
    from chromdragonn.training.folds import read_folds

    shutil.copyfile(random_weights[0], tmp_path / "fold0.with_mean.pt")
    for f in (paths.FOLDS_FILE, paths.MEAN_BIGWIG):
        shutil.copyfile(f, tmp_path / f.name)
    rows, n = _bench_module().truth_check(folds=(0,), max_variants=16, weights_dir=tmp_path,
                                          rule_version=rule_version)
    folds = read_folds(REPO / "weights" / "folds.tsv")
    test_contexts = folds[(folds.fold == 0) & (folds.role == "test")]["context"].tolist()
    assert n == 16 and [r["context"] for r in rows] == test_contexts
    assert all(np.isfinite(r["rho_all"]) for r in rows)


def test_truth_rows_are_kept_and_summarised_again(tmp_path, random_weights, monkeypatch, capsys):
    """`truth --rows-out` keeps a fold's rows; `--from-rows` gives the same table and medians without a
    model (the no-mean folds are not shipped); rows of another rule are refused, naming the file."""
    import shutil

    from chromdragonn import paths
    from chromdragonn.errors import ChromDragoNNError

    shutil.copyfile(random_weights[0], tmp_path / "fold0.with_mean.pt")
    for f in (paths.FOLDS_FILE, paths.MEAN_BIGWIG):
        shutil.copyfile(f, tmp_path / f.name)
    bench = _bench_module()
    rows_file = tmp_path / "rows.tsv"
    monkeypatch.setattr(sys, "argv", ["bench_variants.py", "truth", "--folds", "0", "--max-variants", "16",
                                      "--weights-dir", str(tmp_path), "--rule-version", "2",
                                      "--rows-out", str(rows_file)])
    bench.main()
    scored = capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["bench_variants.py", "truth", "--from-rows", str(rows_file)])
    bench.main()
    again = capsys.readouterr().out
    table = [line for line in scored.splitlines() if line.startswith("| 0 |") or line.startswith("Median")]
    assert len(table) == 13 and table == [line for line in again.splitlines()
                                          if line.startswith("| 0 |") or line.startswith("Median")]
    assert "rule v2" in again and "16 real SNVs" in again
    other = tmp_path / "other.tsv"
    other.write_text(rows_file.read_text().replace("\t2\t16\n", "\t1\t16\n"))
    with pytest.raises(ChromDragoNNError, match="other.tsv: model, rule version or SNV count differs"):
        bench.read_truth_rows([str(rows_file), str(other)])


@pytest.mark.skipif(not TRAINED_FOLD0.is_file(),
                    reason="needs the trained fold models in weights/ (issue 3); "
                           "then also run `python benchmarks/bench_variants.py truth`")
def test_diff_correlates_with_the_simulated_truth():
    """Fold 0's model on its held-out contexts: Spearman(diff, true effect of the generative rule). Measured with
    the benchmark-v2 fold 0 (rule v2, 2026-11-30): median 0.363 over all 200 SNVs, 0.335 over the SNVs that
    matter (11-22 per context, so one context moves it: the bounds are loose on purpose)."""
    rows, n = _bench_module().truth_check(folds=(0,), max_variants=200)
    assert n == 200 and rows
    assert np.nanmedian([r["rho_all"] for r in rows]) > 0.05
    matter = [r["rho_matter"] for r in rows if r["n_matter"] >= 10]
    assert matter and np.nanmedian(matter) > 0.2


def test_model_option_ensemble_fold_and_paths(monkeypatch, random_weights):
    """--model: 'ensemble' / a fold number pick from model.yaml's list; paths load those files."""
    from chromdragonn import paths
    from chromdragonn.inputs.session import DeclaredModel
    from chromdragonn.inputs.session import resolve_model as resolve_model_option

    declared = DeclaredModel(list(random_weights), [None, None], 1575, True, None)
    monkeypatch.setattr(DeclaredModel, "read", classmethod(lambda cls, model_yaml=None: declared))
    ensemble, genes = resolve_model_option("ensemble")
    assert len(ensemble.members) == 2 and len(genes) == 1575
    fold1, _ = resolve_model_option("fold1")
    single, _ = resolve_model_option(str(random_weights[1]))
    for a, b in zip(fold1.state_dict().values(), single.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ChromDragoNNError, match="model.yaml lists 2 folds"):
        resolve_model_option("7")
    pair, _ = resolve_model_option(",".join(map(str, random_weights)))
    assert len(pair.members) == 2
    fold0, _ = resolve_model_option(0)  # an int fold number, as score_variants(model=0) passes it
    for a, b in zip(fold0.state_dict().values(), ensemble.members[0].state_dict().values()):
        assert torch.equal(a, b)

    monkeypatch.setattr(paths, "MODEL_YAML", paths.REPO_ROOT / "no_such_model.yaml")
    monkeypatch.setattr(DeclaredModel, "read", classmethod(lambda cls, model_yaml=None: DeclaredModel(
        [paths.WEIGHTS_DIR / "fold9.with_mean.pt"], [None], None, None, None)))
    with pytest.raises(ChromDragoNNError, match="--model WEIGHTS.pt"):
        resolve_model_option(None)


# ---------------------------------------------------------------- records that must not crash or be scored


def _undeclared_header_vcf(dest: Path) -> Path:
    """Real 1000 Genomes records whose header declares none of their INFO tags, plus VEP-style CSQ
    annotations and an undeclared FILTER, as public VCFs often have (htslib reads them with a warning)."""
    header, records = _header_and_records(KG_VCF)
    header = [ln for ln in header if not ln.startswith(("##INFO", "##FILTER"))]
    out = []
    for rec in records:
        fields = rec.split("\t")
        if int(fields[1]) in set(KG_SNVS[:3]):
            fields[6] = "LowQual" if int(fields[1]) == KG_SNVS[1] else "PASS"
            fields[7] += ";CSQ=A|missense_variant|MODERATE"
            out.append("\t".join(fields))
    dest.write_text("\n".join(header + out) + "\n")
    return dest


def test_vcf_output_keeps_records_with_undeclared_info_and_filter_tags(tmp_path, random_weights, caplog, capfd):
    vcf = _undeclared_header_vcf(tmp_path / "undeclared.vcf")
    outs = {s: tmp_path / f"out{s}" for s in (".vcf", ".vcf.gz", ".tsv")}
    for out in outs.values():
        with caplog.at_level(logging.WARNING, logger="chromdragonn"):
            rc = main(["score-variants", "--vcf", str(vcf), "--fasta", str(FASTA), "--contexts", "E003",
                       "--model", str(random_weights[0]), "-q", "-o", str(out)])
        assert rc == 0 and out.is_file()
    assert "INFO and 1 FILTER tag(s) its header does not declare" in caplog.text
    tsv = pd.read_csv(outs[".tsv"], sep="\t")
    for name in (".vcf", ".vcf.gz"):
        records = list(cyvcf2.VCF(str(outs[name])))
        assert [r.POS for r in records] == KG_SNVS[:3]  # every input record kept
        assert records[1].FILTER == "LowQual" and records[0].INFO.get("CSQ") == "A|missense_variant|MODERATE"
        np.testing.assert_allclose([r.INFO.get("CDN_E003_diff") for r in records], tsv["E003/diff"], rtol=1e-5)
    header = cyvcf2.VCF(str(outs[".vcf"])).raw_header
    assert "##INFO=<ID=CSQ,Number=.,Type=String" in header and "##FILTER=<ID=LowQual" in header


def test_ref_with_n_is_never_scored_and_is_counted(tmp_path, random_weights, caplog):
    """The N rule (docs/variant_effects.md): no REF with N is scored, whether the FASTA has N there
    (the assembly gap before 16,050,000 in this slice) or the VCF's REF is N."""
    gap = "22\t16000000\tgapN\tN\tA\t.\tPASS\t."
    n_ref = "22\t17442913\tvcfN\tN\tT\t.\tPASS\t."  # the FASTA has C here
    vcf = write_vcf(tmp_path / "n.vcf", positions={KG_SNVS[2]}, extra_records=[gap, n_ref])
    with caplog.at_level(logging.WARNING, logger="chromdragonn"):
        df = score_variants(vcf, FASTA, ["E003"], model=str(random_weights[0]))
    assert df["POS"].tolist() == [KG_SNVS[2]] and df[REF_MATCH_COLUMN].tolist() == [1]
    assert "2 records whose REF has N" in caplog.text


def test_alleles_longer_than_the_window_are_skipped_and_counted(tmp_path, genome, random_weights, caplog):
    pos = 17_500_001
    long_ref = genome.fetch("22", pos - 1, pos - 1 + 1_200)  # a 1.2 kb deletion: REF longer than the window
    ins_ok = long_ref[0] + "ACGT" * 240                        # +960 bp: still flanked inside the window
    ins_long = long_ref[0] + "ACGT" * 250                      # +1,000 bp: no reference base left on one side
    records = [f"22\t{pos}\tdel1200\t{long_ref}\t{long_ref[0]}\t.\tPASS\t.",
               f"22\t{pos}\tins960\t{long_ref[0]}\t{ins_ok}\t.\tPASS\t.",
               f"22\t{pos}\tins1000\t{long_ref[0]}\t{ins_long}\t.\tPASS\t."]
    vcf = write_vcf(tmp_path / "long.vcf", positions=set(), extra_records=records)
    with caplog.at_level(logging.WARNING, logger="chromdragonn"):
        df = score_variants(vcf, FASTA, ["E003"], model=str(random_weights[0]))
    assert df["ID"].tolist() == ["ins960"]
    assert "2 alleles too long for the 1,000 bp window" in caplog.text


def test_batch_size_must_be_positive(tmp_path, random_weights, capsys):
    vcf = write_vcf(tmp_path / "one.vcf", positions={KG_SNVS[0]})
    for bad in ("-3", "0"):
        rc = main(["score-variants", "--vcf", str(vcf), "--fasta", str(FASTA), "--contexts", "E003", "--model",
                   str(random_weights[0]), "--batch-size", bad, "-o", str(tmp_path / "o.tsv")])
        assert rc == 2 and not (tmp_path / "o.tsv").exists()
        assert f"batch size must be a whole number >= 1, got {bad}" in _one_line_error(capsys)


def test_output_onto_a_directory_is_refused_before_work(tmp_path, random_weights, capsys):
    vcf = write_vcf(tmp_path / "one.vcf", positions={KG_SNVS[0]})
    rc, _ = _cli(tmp_path, vcf, out_name=".", model=random_weights[0])
    assert rc == 2 and "is a directory" in _one_line_error(capsys)


def test_sigterm_leaves_no_partial_file(tmp_path, random_weights):
    """What a batch scheduler sends: SIGTERM while scoring ends the command with 143 and removes
    the half-written output."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "kg.vcf.gz"
    partial = tmp_path / "kg.vcf.gz.partial"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "chromdragonn", "score-variants", "--vcf", str(KG_VCF),
                             "--fasta", str(FASTA), "--contexts", "E003,E116", "--model", str(random_weights[0]),
                             "--batch-size", "4", "-q", "-o", str(out)], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not partial.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert partial.exists(), "scoring never started"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "error: terminated (SIGTERM)" in err
    assert not partial.exists() and not out.exists()
