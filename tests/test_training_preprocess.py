"""Peaks -> labels, RNA -> TF matrix, the store, and the original release format, on real chr22 data."""
import collections
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from chromdragonn import paths
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.expression import read_expression_table, rpkm_to_tpm
from chromdragonn.inputs.genome import Genome, one_hot, read_bed
from chromdragonn.training.preprocess import (
    build_store_from_peaks,
    covered_bases,
    label_bins,
    merge_intervals,
    tile_bins,
)
from chromdragonn.training.release import import_release, safe_joblib_load
from chromdragonn.training.store import encode

SHARED = paths.SHARED_DATA
FASTA = paths.EXAMPLE_DIR / "hg19_chr22_1-22000000.fa.gz"
E003 = SHARED / "accessibility" / "roadmap_E003_H1_DNase_enhancer_regions_hg19_chr22.bed.gz"
RANDOM = SHARED / "accessibility" / "kipoi_random_regions_hg19_chr22.bed.gz"
RPKM = SHARED / "expression" / "57epigenomes.RPKM.pc.gz"
BLACKLIST = SHARED / "genome" / "hg19-blacklist.v2.bed"


def test_more_than_half_rule_at_the_edges():
    s, e = merge_intervals(np.array([1000, 1050, 5000]), np.array([1100, 1200, 5101]))
    assert s.tolist() == [1000, 5000] and e.tolist() == [1200, 5101]
    starts = np.array([1000, 1100, 4900, 4950, 5000])
    # [1000,1200) fully; [1100,1300) 100 bp (= half, not more); [4900,5100) 100 bp; [4950,5150) 101 bp
    assert covered_bases(s, e, starts, starts + 200).tolist() == [200, 100, 100, 101, 101]
    assert label_bins((s, e), starts).tolist() == [1, 0, 0, 1, 1]


@pytest.fixture(scope="module")
def peak_store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("peaks")
    manifest = tmp / "peaks.tsv"
    manifest.write_text(f"E003\t{E003}\nE116\t{RANDOM}\n")
    from chromdragonn.training.preprocess import read_peaks_manifest

    return build_store_from_peaks(tmp / "store", FASTA, read_peaks_manifest(manifest), RPKM, "rpkm",
                                  paths.GENE_PANEL, ["chr22"], ["chr22:17000001-18000000"], BLACKLIST)


def test_peak_labels_match_a_base_by_base_count(peak_store):
    store = peak_store
    assert store.label_kind == "peaks" and store.contexts == ["E003", "E116"]
    starts = np.asarray(store.bins[:, 1])
    # blacklist chr22:17348200-17393500 and 17494600-17519200 leave no bin touching them
    assert not ((starts + 200 > 17348200) & (starts < 17393500)).any()
    # 19,981 windows fit in the region (starts 17,000,400 .. 17,999,400); 909 + 495 bins touch the blacklist
    assert len(store) == 19_981 - 909 - 495
    bed = read_bed(E003)
    bed = bed[(bed.chrom == "chr22") & (bed.end > 17_000_000) & (bed.start < 18_000_000)]
    covered = np.zeros(1_000_000, bool)
    for s, e in zip(bed.start, bed.end):
        covered[max(s - 17_000_000, 0): max(min(e - 17_000_000, 1_000_000), 0)] = True
    expect = np.array([covered[b - 17_000_000: b - 17_000_000 + 200].sum() > 100 for b in starts])
    assert np.array_equal(np.asarray(store.labels[:, 0]).astype(bool), expect)
    assert 10 < expect.sum() < len(expect) // 2


def test_store_windows_are_the_genome_windows(peak_store):
    genome = Genome(FASTA)
    idx = np.array([0, 7, len(peak_store) - 1])
    x = peak_store.onehot(idx)
    for i, row in zip(idx, x):
        b = int(peak_store.bins[i, 1])
        assert np.array_equal(row, one_hot(genome.fetch("22", b - 400, b + 600)))


def test_rna_matrix_is_arcsinh_tpm_in_panel_order(peak_store):
    tpm = rpkm_to_tpm(read_expression_table(RPKM))
    panel = pd.read_csv(paths.GENE_PANEL, sep="\t")
    j = panel.index[panel.gene_symbol == "SOX2"][0]
    row = [g for g in tpm.index if g.startswith(panel.ensembl_id[j])][0]
    assert peak_store.expression.shape == (2, len(panel))
    assert peak_store.expression[0, j] == pytest.approx(np.arcsinh(tpm.loc[row, "E003"]), rel=1e-5)


def test_tiling_drops_n_bins_and_counts_them():
    codes = encode("N" * 500 + "ACGT" * 500 + "N" * 500)
    starts, counts = tile_bins(codes)
    assert counts["dropped_with_N"] > 0 and counts["kept"] == len(starts)
    assert all((codes[s:s + 200] != 4).all() for s in starts)


# ---- the original release format -------------------------------------------------------

def _write_release(tmp: Path, n: int = 12, tasks: int = 11):
    genome = Genome(FASTA)
    starts = 17_100_000 + 50 * np.arange(n)
    onehot = np.stack([one_hot(genome.fetch("22", s, s + 1000)) for s in starts]).astype(np.int8)
    labels = (np.random.default_rng(0).random((n, tasks)) < 0.3).astype(np.int8)
    names = [f"E{100 + i:03d}" for i in range(tasks)]
    joblib.dump({"num_cell_types": tasks, "labels": np.packbits(labels, axis=1), "label_metadata": names,
                 "example_metadata": [f"chr22:{s + 1}-{s + 1001}" for s in starts],
                 "features": np.packbits(onehot, axis=2)}, tmp / "dnase.chr22.packbit.joblib")
    rna = np.random.default_rng(1).random((tasks, 5)).astype(np.float32)
    joblib.dump({"rna_quants": rna, "genes": ["SOX2", "CTCF", "GATA4", "SPI1", "MYCN"], "tasks": names},
                tmp / "rna_quants.joblib")
    return starts, onehot, labels, rna


def test_release_format_round_trip(tmp_path):
    starts, onehot, labels, rna = _write_release(tmp_path)
    store = import_release(tmp_path, tmp_path / "rna_quants.joblib", tmp_path / "store")
    assert store.label_kind == "original release" and len(store) == 12 and len(store.contexts) == 11
    assert np.array_equal(store.onehot(np.arange(12)), onehot.astype(np.float32))
    assert np.array_equal(np.asarray(store.labels), labels)
    assert np.allclose(store.expression, rna)
    assert np.asarray(store.bins[:, 1]).tolist() == (starts + 400).tolist()  # the central 200 bp bin


def test_release_reader_refuses_code_and_object_arrays(tmp_path):
    joblib.dump({"x": collections.Counter("abc")}, tmp_path / "evil.joblib")
    with pytest.raises(ChromDragoNNError, match="refusing to load collections.Counter"):
        safe_joblib_load(tmp_path / "evil.joblib")
    joblib.dump({"x": np.array([1, "a"], dtype=object)}, tmp_path / "objects.joblib")
    with pytest.raises(ChromDragoNNError, match="refusing"):
        safe_joblib_load(tmp_path / "objects.joblib")
    joblib.dump({"a": np.arange(3), "b": ["x", 1, 2.5]}, tmp_path / "ok.joblib")
    ok = safe_joblib_load(tmp_path / "ok.joblib")
    assert ok["a"].tolist() == [0, 1, 2] and ok["b"] == ["x", 1, 2.5]


# ---- encode_dnase_chr22: real ENCODE DNase-seq peaks (training/configs/encode_dnase_chr22_peaks.tsv) ----

ACC = SHARED / "accessibility"
H1_IDR = ACC / "encode_dnase_duke_idr_H1-hESC_E003_hg19_chr22.narrowPeak.gz"
GM12878 = ACC / "encode_dnase_uniform_GM12878_E116_hg19_chr22.narrowPeak.gz"
MANIFEST = paths.REPO_ROOT / "training" / "configs" / "encode_dnase_chr22_peaks.tsv"


def test_h1_idr_peaks_standardised_to_summit_plus_minus_75():
    from chromdragonn.training.preprocess import read_summit_peaks

    raw = read_bed(H1_IDR)
    std = read_summit_peaks(H1_IDR, 75)
    assert len(std) == len(raw) == 1852
    assert (std["end"] - std["start"] == 150).all()
    # first record: chr22 17081845 17084554 ... summit offset 437 -> [17082282 - 75, 17082282 + 75)
    assert (std["start"].iloc[0], std["end"].iloc[0]) == (17082207, 17082357)
    centre = std["start"] + 75
    assert ((centre >= raw["start"]) & (centre < raw["end"])).all()
    assert (raw["end"] - raw["start"]).median() == 1463  # the wide peaks (the data README says ~1,462 bp)


def test_summit_standardisation_changes_the_labels_and_needs_a_summit(tmp_path):
    from chromdragonn.training.preprocess import read_regions, read_summit_peaks

    starts = np.array([17082100, 17082150, 17082200, 17082250, 17082300, 17083000])
    wide = read_regions(H1_IDR, ["chr22"])["chr22"]
    summit = read_regions(H1_IDR, ["chr22"], summit_flank=75)["chr22"]
    assert label_bins(wide, starts).tolist() == [1, 1, 1, 1, 1, 1]
    # [17082207, 17082357) covers 93, 143, 150, 107, 57 and 0 bp of the six bins
    assert label_bins(summit, starts).tolist() == [0, 1, 1, 1, 0, 0]
    # the uniform peaks have no summit (column 10 is -1): standardising them is refused, naming file:line
    with pytest.raises(ChromDragoNNError, match=r"GM12878_E116_hg19_chr22.narrowPeak.gz:1: no usable summit"):
        read_summit_peaks(GM12878, 75)


def test_label_rule_on_real_uniform_peaks():
    from chromdragonn.training.preprocess import read_regions

    merged = read_regions(GM12878, ["chr22"])["chr22"]
    # GM12878 peak chr22 21033165 21033315 (150 bp, ENCODE uniform): bins every 50 bp around it
    starts = np.array([21033000, 21033050, 21033100, 21033150, 21033200, 21033250])
    assert covered_bases(*merged, starts, starts + 200).tolist() == [35, 85, 135, 150, 115, 65]
    assert label_bins(merged, starts).tolist() == [0, 0, 1, 1, 1, 0]


def test_encode_manifest_standardises_h1_only(tmp_path):
    from chromdragonn.training.preprocess import read_peaks_manifest

    peaks, flanks = read_peaks_manifest(MANIFEST, with_flanks=True)
    assert list(peaks) == ["E116", "E117", "E123", "E003"] and flanks == {"E003": 75}
    assert all(p.is_file() for p in peaks.values())
    assert peaks["E003"] == paths.SHARED_DATA / "accessibility" / H1_IDR.name  # shared: follows CHROMDRAGONN_SHARED
    bad = tmp_path / "bad.tsv"
    bad.write_text(f"E003\t{H1_IDR}\tseventy\n")
    with pytest.raises(ChromDragoNNError, match=r"bad.tsv:1: summit_flank must be a whole number"):
        read_peaks_manifest(bad, with_flanks=True)
