"""score-variants additions (issue 12): --contrast, --specificity, --background, --motifs.

Real 1000 Genomes and ClinVar records of ../shared/data, the conftest's random-init fold. Every extra
column is recomputed independently: contrasts and z-scores from plain ``score_variants`` runs in the
same and in all 56 Roadmap contexts, percentiles from a separate scoring of the background VCF, motif
matches from memelite.fimo itself and from the MEME file's matrices summed by hand.
Tolerance: the extras are arithmetic on the same float64 P's, so they agree to ~1e-12; values read back
from a TSV carry 6 significant digits.
"""
from __future__ import annotations

import gzip
import math

import numpy as np
import pandas as pd
import pytest
from conftest import FASTA, MEAN_BW, SHARED_DATA

from chromdragonn.cli import main
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.expression import ExpressionSource
from chromdragonn.inputs.genome import Genome, one_hot_batch
from chromdragonn.motifs import JASPAR, MotifAnnotator
from chromdragonn.variant_extras import Background, specificity_z
from chromdragonn.variants import score_variants

KG = SHARED_DATA / "variants" / "1kg_phase3_chr22_ADA2_GAB4.sites.vcf.gz"


def _subset(dest, n, skip=0):
    with gzip.open(KG, "rt") as fh:
        lines = fh.read().splitlines()
    header = [ln for ln in lines if ln.startswith("#")]
    recs = [ln for ln in lines if not ln.startswith("#")][skip: skip + n]
    dest.write_text("\n".join(header + recs) + "\n")
    return dest


@pytest.fixture(scope="module")
def vcfs(tmp_path_factory):
    d = tmp_path_factory.mktemp("extras")
    return _subset(d / "variants.vcf", 12, skip=100), _subset(d / "background.vcf", 30, skip=400)


@pytest.fixture(scope="module")
def annotator():
    return MotifAnnotator.load("jaspar")


def _kw(random_weights):
    return dict(model=str(random_weights[0]), mean_bigwig=MEAN_BW)


def test_contrast_and_specificity(vcfs, random_weights):
    variants, _ = vcfs
    df = score_variants(variants, FASTA, "E003,E116", contrast=["E003,E116", "E116,E003"], specificity=True,
                        **_kw(random_weights))
    assert list(df.columns[5:]) == ["E003/diff", "E003/z", "E116/diff", "E116/z", "E003-E116/diff",
                                    "E116-E003/diff", "ref_match"]
    np.testing.assert_allclose(df["E003-E116/diff"], df["E003/diff"] - df["E116/diff"], atol=1e-15)
    np.testing.assert_allclose(df["E116-E003/diff"], -df["E003-E116/diff"], atol=1e-15)
    roadmap = ExpressionSource().contexts
    assert len(roadmap) == 56
    ref = score_variants(variants, FASTA, roadmap, **_kw(random_weights))
    diffs = ref[[f"{c}/diff" for c in roadmap]].to_numpy()
    for c in ("E003", "E116"):
        want = (df[f"{c}/diff"].to_numpy() - diffs.mean(axis=1)) / diffs.std(axis=1)
        np.testing.assert_allclose(df[f"{c}/z"], want, rtol=1e-9, atol=1e-9)
        # a context of the 56: its own diff is the column of the reference matrix
        np.testing.assert_allclose(df[f"{c}/diff"], ref[f"{c}/diff"], atol=1e-12)
    assert df["E003/z"].abs().max() > 0.1


def test_specificity_z_is_nan_when_the_reference_is_flat():
    z = specificity_z(np.array([[0.1], [0.3]]), np.array([[0.2, 0.2], [0.1, 0.5]]))
    assert np.isnan(z[0, 0]) and z[1, 0] == pytest.approx(0.0)


def test_background_vcf_percentiles(vcfs, random_weights):
    variants, background = vcfs
    df = score_variants(variants, FASTA, "E123", background=str(background), **_kw(random_weights))
    bg = score_variants(background, FASTA, "E123", **_kw(random_weights))
    ref = np.sort(np.abs(bg["E123/diff"].to_numpy()))
    want = [100.0 * np.sum(ref <= abs(d)) / len(ref) for d in df["E123/diff"]]
    np.testing.assert_allclose(df["E123/pct"], want)
    assert len(ref) == 30 and df["E123/pct"].between(0, 100).all()
    # the background against itself: percentiles spread over (0, 100]
    self_pct = Background({"E123": bg["E123/diff"]}, "self").percentile("E123", bg["E123/diff"].to_numpy())
    assert self_pct.max() == 100.0 and self_pct.min() == pytest.approx(100 / 30)


def test_shipped_background_refuses_another_model(vcfs, random_weights):
    variants, _ = vcfs
    with pytest.raises(ChromDragoNNError, match="scored with the default model"):
        score_variants(variants, FASTA, "E003", background="shipped", **_kw(random_weights))


def test_contrast_context_must_be_scored(vcfs, random_weights):
    with pytest.raises(ChromDragoNNError, match="context E123 is not among --contexts"):
        score_variants(vcfs[0], FASTA, "E003,E116", contrast="E003,E123", **_kw(random_weights))


def test_motif_matches_are_memelite_fimo_matches(annotator):
    from memelite import fimo
    from memelite.io import read_meme

    genome = Genome(FASTA)
    seqs = [genome.fetch("22", s, s + 80) for s in range(17_500_000, 17_500_000 + 80 * 30, 80)]
    sc = annotator.scores(seqs)
    mine = {(i, int(k), int(p)) for i in range(len(seqs))
            for k, p in zip(*np.nonzero(sc[i] >= annotator.score_threshold[:, None]))}
    motifs = read_meme(str(JASPAR))
    hits = fimo(motifs, one_hot_batch(seqs).transpose(0, 2, 1).copy(), threshold=1e-4)
    n = len(motifs)
    theirs = {(int(r.sequence_name), r.motif_idx + (n if r.strand == "-" else 0), int(r.start))
              for d in hits for r in d.itertuples()}
    assert len(theirs) > 100 and mine == theirs


def test_motif_column_scores_are_the_matrices_summed(vcfs, random_weights, annotator):
    from memelite.io import read_meme

    df = score_variants(vcfs[0], FASTA, "E003", motifs=annotator, **_kw(random_weights))
    assert df["motifs"].str.len().gt(0).sum() >= 6
    motifs = {k.split(" ")[0]: v for k, v in read_meme(str(JASPAR)).items()}
    genome = Genome(FASTA)
    checked = 0
    for r in df.itertuples():
        entries = [e.split(":") for e in r.motifs.split("|")] if r.motifs else []
        changes = [abs(float(e[-1].split(">")[1]) - float(e[-1].split(">")[0])) for e in entries]
        assert changes == sorted(changes, reverse=True)
        for e in entries:
            mid, strand, (s_ref, s_alt) = e[0], e[-2], map(float, e[-1].split(">"))
            pwm = motifs[mid]
            lo = np.log2(pwm + 1e-4) + 2.0  # log2(p + eps) - log2(1/4)
            if strand == "-":
                lo = lo[::-1, ::-1]
            w = lo.shape[1]
            # the placement overlapping the SNV whose REF score is the one reported
            found = False
            for start in range(r.POS - w, r.POS):
                ref_seq = genome.fetch("22", start, start + w)
                alt_seq = ref_seq[: r.POS - 1 - start] + r.ALT + ref_seq[r.POS - start:]
                sr = sum(lo["ACGT".index(b), i] for i, b in enumerate(ref_seq))
                sa = sum(lo["ACGT".index(b), i] for i, b in enumerate(alt_seq))
                if math.isclose(sr, s_ref, abs_tol=0.006) and math.isclose(sa, s_alt, abs_tol=0.006):
                    found = True
            assert found, (r.POS, e)
            checked += 1
    assert checked >= 6


def test_vcf_output_declares_the_new_fields(tmp_path, vcfs, random_weights, annotator):
    import cyvcf2

    out = tmp_path / "x.vcf.gz"
    rc = main(["score-variants", "--vcf", str(vcfs[0]), "--fasta", str(FASTA), "--contexts", "E003,E116",
               "--model", str(random_weights[0]), "--mean-bigwig", str(MEAN_BW), "--contrast", "E003,E116",
               "--specificity", "--background", str(vcfs[1]), "--motifs", "jaspar", "-q", "-o", str(out)])
    assert rc == 0
    reader = cyvcf2.VCF(str(out))
    declared = {h.info().get("ID"): h.info() for h in reader.header_iter() if h.type == "INFO"}
    for key in ("CDN_E003_diff", "CDN_E003_z", "CDN_E003_pct", "CDN_E116_pct", "CDN_E003_E116_diff", "CDN_MOTIFS"):
        assert key in declared, key
    assert declared["CDN_MOTIFS"]["Type"] == "String" and declared["CDN_E003_pct"]["Type"] == "Float"
    tsv = score_variants(vcfs[0], FASTA, "E003,E116", contrast="E003,E116", specificity=True,
                         background=str(vcfs[1]), motifs=annotator, **_kw(random_weights))
    recs = list(reader)
    assert len(recs) == len(tsv) == 12
    for v, row in zip(recs, tsv.itertuples(index=False)):
        assert v.INFO.get("CDN_E003_pct") == pytest.approx(row[tsv.columns.get_loc("E003/pct")], rel=1e-5)
        assert v.INFO.get("CDN_E003_E116_diff") == pytest.approx(row[tsv.columns.get_loc("E003-E116/diff")],
                                                                  rel=1e-5, abs=1e-9)
        got = v.INFO.get("CDN_MOTIFS")
        assert (got if got not in (None, ".") else "") == row[tsv.columns.get_loc("motifs")]


def test_shipped_background_is_the_default_model_on_common_1kg_snvs(tmp_path):
    """Three of its SNVs rescored with model.yaml's ensemble give its diffs; its percentiles of itself."""
    import json

    from chromdragonn.variant_extras import SHIPPED_BACKGROUND, SHIPPED_BACKGROUND_INFO

    info = json.loads(SHIPPED_BACKGROUND_INFO.read_text())
    bg = pd.read_csv(SHIPPED_BACKGROUND, sep="\t")
    assert len(bg) == info["scored"] == info["common_snvs"] == 421 and len(info["contexts"]) == 56
    af = bg["AF"].to_numpy()
    assert (np.minimum(af, 1 - af) >= 0.01).all()
    rows = bg.iloc[[0, 200, 420]]
    lines = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    lines += [f"22\t{r.POS}\t.\t{r.REF}\t{r.ALT}\t.\tPASS\t." for r in rows.itertuples()]
    (tmp_path / "three.vcf").write_text("\n".join(lines) + "\n")
    df = score_variants(tmp_path / "three.vcf", FASTA, "E003,E123", background="shipped")
    # the background was scored 421 SNVs to a batch, these 3 alone: float32 P moves by ~1e-8 between batchings
    # (7.8e-9 seen), so a diff of two P's is compared to 1e-7 absolute, beside 6-digit rounding of the file
    np.testing.assert_allclose(df["E003/diff"], rows["E003/diff"], rtol=1e-5, atol=1e-7)
    want = [100.0 * np.sum(np.abs(bg["E123/diff"]) <= abs(d)) / 421 for d in df["E123/diff"]]
    np.testing.assert_allclose(df["E123/pct"], want)


@pytest.mark.parametrize("extra, message", [
    (["--contrast", "E003"], "--contrast 'E003': give two different contexts as A,B"),
    (["--contrast", "E003,E123"], "context E123 is not among --contexts"),
    (["--motifs", "{d}/not_meme.txt"], "has no motifs"),
    (["--motifs", "{d}/missing.meme"], "not found"),
    (["--background", "{d}/missing.vcf"], "VCF file not found"),
])
def test_bad_extras_are_one_line_and_write_nothing(tmp_path, vcfs, random_weights, capsys, extra, message):
    (tmp_path / "not_meme.txt").write_text("just text\n")
    before = set(tmp_path.iterdir())
    out = tmp_path / "s.tsv"
    rc = main(["score-variants", "--vcf", str(vcfs[0]), "--fasta", str(FASTA), "--contexts", "E003,E116",
               "--model", str(random_weights[0]), "--mean-bigwig", str(MEAN_BW), "-q", "-o", str(out),
               *[e.format(d=tmp_path) for e in extra]])
    assert rc == 2 and set(tmp_path.iterdir()) == before
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]
    assert len(err) == 1 and message in err[0], err
