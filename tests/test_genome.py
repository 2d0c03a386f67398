"""chromdragonn.inputs.genome on the shipped example and the real shared data."""
from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
from conftest import BED, FASTA, MEAN_BW, SHARED_DATA
from kipoiseq import Interval

from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.genome import (
    Genome,
    MeanAccessibility,
    centered_window,
    match_chrom,
    one_hot,
    one_hot_batch,
    read_bed,
)

SOURCE_FASTA = SHARED_DATA / "genome" / "hg19_chr22_1-22000000.fa.gz"  # plain gzip, header `22`, 60 bp lines


def _source_bases(start: int, end: int) -> str:
    """[start, end) read straight from the plain-gzip source by line arithmetic (independent of pyfaidx)."""
    with gzip.open(SOURCE_FASTA, "rt") as fh:
        assert fh.readline().strip() == ">22"
        first, last = start // 60, (end - 1) // 60
        lines = []
        for i, line in enumerate(fh):
            if i >= first:
                lines.append(line.strip())
            if i == last:
                break
    return "".join(lines)[start - first * 60: end - first * 60].upper()


def test_match_chrom():
    assert match_chrom("chr22", ["22", "X"]) == "22"
    assert match_chrom("22", ["chr22"]) == "chr22"
    assert match_chrom("chr22", ["chr22", "22"]) == "chr22"  # exact name wins
    assert match_chrom("chrM", ["MT"]) == "MT"
    assert match_chrom("MT", ["chrM"]) == "chrM"
    assert match_chrom("chr21", ["22", "chr22"]) is None


def test_genome_reads_bgzipped_slice(genome):
    assert genome.chromosomes == ["22"]
    assert genome.lengths == {"22": 22_000_000}
    assert genome.resolve("chr22") == "22"
    # Real bases start at 16,050,001 (1-based): 10 N, then sequence.
    seq = genome.fetch("chr22", 16_049_990, 16_050_010)
    assert seq == "N" * 10 + _source_bases(16_050_000, 16_050_010)
    assert seq[10:] == "GATCTGATAA"
    window = genome.fetch("22", 17_273_742, 17_274_742)
    assert window == _source_bases(17_273_742, 17_274_742)
    assert len(window) == 1000 and set(window) <= set("ACGT")


def test_fetch_pads_past_both_ends(genome):
    assert genome.fetch("22", -5, 3) == "N" * 8
    right = genome.fetch("22", 21_999_995, 22_000_005)
    assert right == _source_bases(21_999_995, 22_000_000) + "N" * 5
    assert genome.fetch("22", 22_000_100, 22_000_200) == "N" * 100


def test_unknown_chromosome_is_one_line_error(genome):
    with pytest.raises(ChromDragoNNError) as err:
        genome.resolve("chrX")
    msg = str(err.value)
    assert "'chrX'" in msg and str(FASTA) in msg and "'chr' prefix" in msg and "\n" not in msg


def test_plain_gzip_fasta_is_refused_with_bgzip_hint():
    with pytest.raises(ChromDragoNNError, match="bgzip") as err:
        Genome(SOURCE_FASTA)
    # The suggested command must not write onto its own input (the shell would truncate it first).
    command = str(err.value).split("`")[1]
    source, target = command.split(" | bgzip > ")
    assert source == f"zcat {SOURCE_FASTA.name}" and target != SOURCE_FASTA.name
    assert target == "hg19_chr22_1-22000000.bgz.fa.gz"


def test_stale_fai_over_a_truncated_fasta_is_refused(tmp_path):
    """An index left from the full file describes sequence the truncated FASTA no longer has;
    pyfaidx would only warn and read short sequence."""
    fa = tmp_path / "slice.fa"
    with gzip.open(SOURCE_FASTA, "rb") as fin, open(fa, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    Genome(fa).close()  # builds slice.fa.fai
    with open(fa, "r+b") as fh:
        fh.truncate(fa.stat().st_size // 2)
    with pytest.raises(ChromDragoNNError, match=r"slice.fa.fai describes .* bytes but .*slice.fa has .*: the FASTA "
                                                r"is truncated or the index is stale; delete slice.fa.fai"):
        Genome(fa)


def test_stale_gzi_over_a_truncated_bgzf_fasta_is_refused(tmp_path):
    for suffix in ("", ".fai", ".gzi"):
        shutil.copyfile(str(FASTA) + suffix, str(tmp_path / FASTA.name) + suffix)
    cut = tmp_path / FASTA.name
    with open(cut, "r+b") as fh:
        fh.truncate(cut.stat().st_size // 3)
    with pytest.raises(ChromDragoNNError, match=r"\.gzi points past the end of .*: the FASTA is truncated"):
        Genome(cut)


def test_plain_fasta_builds_index(tmp_path):
    fa = tmp_path / "slice.fa"
    with gzip.open(SOURCE_FASTA, "rb") as fin, open(fa, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    g = Genome(fa)
    assert (tmp_path / "slice.fa.fai").is_file()
    assert g.fetch("chr22", 17_273_742, 17_274_742) == Genome(FASTA).fetch("22", 17_273_742, 17_274_742)


def test_missing_fasta():
    with pytest.raises(ChromDragoNNError, match="FASTA file not found: .*nope.fa"):
        Genome("nope.fa")


def test_one_hot():
    x = one_hot("ACGTNacgtX")
    assert x.dtype == np.float32 and x.shape == (10, 4)
    np.testing.assert_array_equal(x[:4], np.eye(4, dtype=np.float32))
    np.testing.assert_array_equal(x[5:9], np.eye(4, dtype=np.float32))
    assert x[4].sum() == 0 and x[9].sum() == 0
    batch = one_hot_batch(["ACGT", "NNNN"])
    assert batch.shape == (2, 4, 4) and batch[1].sum() == 0


def test_one_hot_of_real_window(genome):
    seq = genome.fetch("22", 16_049_500, 16_050_500)
    x = one_hot(seq)
    assert x.shape == (1000, 4)
    assert x[:500].sum() == 0  # N before the slice's sequence
    assert x[500:].sum() == 500
    assert "ACGT"[int(x[500].argmax())] == "G"


@pytest.mark.parametrize("start,end", [(17_274_217, 17_274_267), (100, 101), (10, 1010), (7, 20)])
def test_centered_window_is_kipoiseq_resize(start, end):
    w = centered_window("chr22", start, end)
    ref = Interval("chr22", start, end).resize(1000)
    assert (w.chrom, w.start, w.end) == (ref.chrom, ref.start, ref.end)
    assert w.end - w.start == 1000


def test_centered_window_of_odd_width():
    # 50 bp, centre 17,274,242: kipoiseq puts 500 bp on each side.
    w = centered_window("chr22", 17_274_217, 17_274_267)
    assert (w.start, w.end) == (17_273_742, 17_274_742)
    w = centered_window("chr22", 100, 101)  # a single base at index 499 of its window (the VCF convention)
    assert (w.start, w.end) == (-399, 601) and 100 - w.start == 499


def test_read_bed_example():
    bed = read_bed(BED)
    assert list(bed.columns) == ["chrom", "start", "end", "name"]
    assert len(bed) == 20
    assert set(bed.chrom) == {"chr22"}
    assert bed.iloc[0].tolist() == ["chr22", 16_050_100, 16_050_300, "slice_sequence_start"]
    assert bed.name.str.startswith("E003_DNase_").sum() == 12


def test_read_bed_gzipped_real_regions():
    bed = read_bed(SHARED_DATA / "accessibility" / "roadmap_E003_H1_DNase_enhancer_regions_hg19_chr22.bed.gz")
    assert len(bed) == 6365
    assert bed.iloc[0].tolist() == ["chr22", 17_274_217, 17_274_267, "chr22:17274217-17274267"]


def _bed(tmp_path, text):
    p = tmp_path / "x.bed"
    p.write_text(text)
    return p


def test_read_bed_skips_headers(tmp_path):
    p = _bed(tmp_path, "track name=x\nbrowser position chr22\n# c\n\nchr22\t10\t20\n22\t30\t40\tmy\n")
    bed = read_bed(p)
    assert bed.values.tolist() == [["chr22", 10, 20, "chr22:10-20"], ["22", 30, 40, "my"]]


@pytest.mark.parametrize("text,match", [
    ("chr22\t10\t20\nchr22\t50\t50\n", r"x.bed:2: start 50 >= end 50"),
    ("chr22\t10\t20\nchr22\t60\t50\n", r"x.bed:2: start 60 >= end 50"),
    ("# h\nchr22\tten\t20\n", r"x.bed:2: start and end must be integers"),
    ("chr22\t10\n", r"x.bed:1: a BED record needs at least 3 columns"),
    ("chr22\t-5\t10\n", r"x.bed:1: start -5 is negative"),
])
def test_read_bed_errors_name_file_and_line(tmp_path, text, match):
    with pytest.raises(ChromDragoNNError, match=match):
        read_bed(_bed(tmp_path, text))


def test_mean_accessibility_values():
    """The value is the base-weighted mean of the track over the window's central 200 bp, computed
    here independently from the bigWig's intervals (pyBigWig), on the shipped track."""
    import pyBigWig

    m = MeanAccessibility(MEAN_BW)
    bw = pyBigWig.open(str(MEAN_BW))
    checked = 0
    for centre in range(17_000_025, 21_000_000, 97_003):  # off the 50 bp grid: bins straddle the edges
        lo, hi = centre - 100, centre + 100
        expected = sum(v * (min(e, hi) - max(s, lo)) for s, e, v in bw.intervals("22", lo, hi) or []) / 200
        w = centered_window("chr22", centre - 1, centre + 1)
        assert (w.start + w.end) // 2 == centre
        assert m.value("22", w.start, w.end) == pytest.approx(expected, abs=1e-6)
        assert m.value("chr22", w.start, w.end) == m.value("22", w.start, w.end)
        checked += expected > 0
    assert checked >= 5  # the comparison covered accessible bins, not only zeros
    assert m.value("22", 0, 1000) == 0.0  # no data (before the slice's sequence): 0, not NaN
    assert m.value("22", 21_999_500, 22_000_500) >= 0.0  # runs past the end


def test_bigwig_without_chromosome():
    m = MeanAccessibility(MEAN_BW)
    with pytest.raises(ChromDragoNNError, match=r"chromosome 'chr21' is not in bigWig file .*mean_accessibility_chr22.bw"):
        m.value("chr21", 0, 1000)


def test_not_a_bigwig_is_one_line_of_ours(tmp_path, capfd):
    p = tmp_path / "x.bw"
    p.write_text("not a bigwig\n")
    with pytest.raises(ChromDragoNNError, match="is not a bigWig file"):
        MeanAccessibility(p)
    assert capfd.readouterr().err == ""  # libBigWig never got to print its own lines
