"""The one reader per format (FASTA, BED / narrowPeak, VCF, bigWig) and its one validation."""

import gzip
import logging
import os
import subprocess
import time

import numpy as np
import pyBigWig
import pytest

from tf_seqmodels.analysis.regions import read_region_centres
from tf_seqmodels.data import genome as genome_module
from tf_seqmodels.data.genome import BigWigSignal, Genome, GenomeError, read_fasta_records
from tf_seqmodels.data.intervals import IntervalError, Regions, check_regions, read_bed, \
    read_narrowpeak
from tf_seqmodels.data.vcf import VCFError, read_vcf
from tf_seqmodels.errors import DataError

SEQS = {name: "".join(np.random.default_rng(i).choice(list("ACGT"), size))
        for i, (name, size) in enumerate({"1": 500, "2": 333}.items())}


def _write_fasta(path, records, width=60):
  with open(path, "w") as f:
    for name, seq in records.items():
      f.write(f">{name} some description\n")
      f.writelines(seq[i:i + width] + "\n" for i in range(0, len(seq), width))
  return str(path)


def _touch(path, offset):
  t = time.time() + offset
  os.utime(path, (t, t))


# --- FASTA -------------------------------------------------------------------------------------

def test_fasta_bases_soft_masking_iupac_and_invalid_characters(tmp_path, caplog):
  fasta = _write_fasta(tmp_path / "g.fa", {"1": "ACGTacgtNnRYkm" * 5, "2": "ACGT7ACGT"})
  with caplog.at_level(logging.WARNING):
    with Genome(fasta) as genome:
      assert genome.fetch("1", 0, 14) == "ACGTACGTNNRYKM"  # soft-masked read as upper case
      np.testing.assert_array_equal(genome.fetch_indices("1", 0, 14),
                                    [0, 1, 2, 3, 0, 1, 2, 3, 4, 4, 4, 4, 4, 4])
      with pytest.raises(GenomeError, match=r"g.fa: invalid character '7' in record 2 at "
                         r"position 5 "):
        genome.fetch_window("2", -3, 6)
      assert genome.fetch("2", 5, 9) == "ACGT"  # the rest of the record reads fine
  # One counted warning per file, on close: 4 codes read twice, the first at record 1 base 11.
  [message] = [r.getMessage() for r in caplog.records if "IUPAC" in r.getMessage()]
  assert ("IUPAC ambiguity codes read as N: 8 in the bases read (K x2, M x2, R x2, Y x2), first "
          "at 1:11") in message


def test_stale_or_mismatching_index_is_rebuilt(tmp_path):
  fasta = _write_fasta(tmp_path / "g.fa", SEQS, width=60)
  Genome(fasta).close()
  # Same records, other line width; the old index is newer than the FASTA (copied, restored
  # from a backup...): pyfaidx alone would return wrong bases (2 for a 1-bp fetch).
  _write_fasta(tmp_path / "g.fa", SEQS, width=50)
  _touch(fasta + ".fai", 10)
  with Genome(fasta) as genome:
    assert genome.fetch("1", 59, 60) == SEQS["1"][59]
    assert genome.fetch("2", 0, 333) == SEQS["2"]
  # A record shortened, then one added: lengths and the record list are checked too.
  shorter = dict(SEQS, **{"2": SEQS["2"][:300]})
  _write_fasta(tmp_path / "g.fa", shorter, width=50)
  _touch(fasta + ".fai", 20)
  with Genome(fasta) as genome:
    assert genome.chrom_sizes == {"1": 500, "2": 300}
  _write_fasta(tmp_path / "g.fa", dict(shorter, extra="ACGT" * 10), width=50)
  _touch(fasta + ".fai", 30)
  with Genome(fasta) as genome:
    assert genome.chrom_sizes == {"1": 500, "2": 300, "extra": 40}
  # An index older than its FASTA is rebuilt as well.
  _write_fasta(tmp_path / "g.fa", SEQS)
  _touch(fasta + ".fai", -100)
  with Genome(fasta) as genome:
    assert genome.chrom_sizes == {"1": 500, "2": 333}


def test_bad_index_in_a_read_only_folder_is_refused(tmp_path, monkeypatch):
  fasta = _write_fasta(tmp_path / "g.fa", SEQS, width=60)
  Genome(fasta).close()
  index = open(fasta + ".fai").read()
  _write_fasta(tmp_path / "g.fa", SEQS, width=50)
  _touch(fasta + ".fai", 10)
  monkeypatch.setattr(genome_module, "_writable", lambda directory: False)
  with pytest.raises(GenomeError, match=r"g.fa.fai does not match the FASTA .*g.fa \(the lines "
                     r"of record 1 are not 60 bases long\), and it cannot be \(re\)built because "
                     r".* is read-only: run `samtools faidx"):
    Genome(fasta)
  _touch(fasta + ".fai", -100)
  with pytest.raises(GenomeError, match=r"g.fa.fai is older than the FASTA"):
    Genome(fasta)
  assert open(fasta + ".fai").read() == index  # untouched
  os.remove(fasta + ".fai")
  with pytest.raises(GenomeError, match=r"has no index .*g.fa.fai, and it cannot be"):
    Genome(fasta)


def test_compressed_fasta(tmp_path):
  import pysam
  fasta = _write_fasta(tmp_path / "g.fa", SEQS)
  subprocess.run(["gzip", "-k", fasta], check=True)
  with pytest.raises(GenomeError, match=r"g.fa.gz is gzip-compressed, which cannot be read by "
                     r"position: decompress it \(`gunzip .*g.fa.gz`\), or recompress it as "
                     r"bgzip \(`gunzip .*g.fa.gz && bgzip .*g.fa`\)"):
    Genome(fasta + ".gz")
  pysam.tabix_compress(fasta, str(tmp_path / "b.fa.gz"))
  with Genome(tmp_path / "b.fa.gz") as genome:
    assert genome.fetch("2", 100, 333) == SEQS["2"][100:]
  # A bgzip index that does not match (other line width, newer index) is rebuilt too.
  _write_fasta(tmp_path / "c.fa", SEQS, width=50)
  pysam.tabix_compress(str(tmp_path / "c.fa"), str(tmp_path / "b.fa.gz"), force=True)
  _touch(tmp_path / "b.fa.gz.fai", 10)
  _touch(tmp_path / "b.fa.gz.gzi", 10)
  with Genome(tmp_path / "b.fa.gz") as genome:
    assert genome.fetch("1", 40, 120) == SEQS["1"][40:120]
  with open(tmp_path / "x.fa.bz2", "wb") as f:
    f.write(b"BZh91AY&SY")
  with pytest.raises(GenomeError, match="bzip2/zip/xz-compressed"):
    Genome(tmp_path / "x.fa.bz2")
  # Records FASTA (predict): read sequentially, so plain gzip works.
  names, seqs = read_fasta_records(fasta + ".gz")
  assert names == ["1", "2"] and seqs == [SEQS["1"], SEQS["2"]]


@pytest.mark.parametrize("content, message", [
    (None, "is a directory, expected a genome FASTA file"),
    ("", "is empty: a genome FASTA starts with a '>' header line"),
    ("chr1\t10\t20\n", r"is not a genome FASTA: its first line is 'chr1\\t10\\t20'"),
    (b"\x00\x01binary", "is not a genome FASTA: it is a binary file"),
    (">1\nACGT\n\nACGT\n", "cannot index the FASTA"),
    (">1\nACGT\n>1\nACGT\n", "more than one record is named \"1\""),
])
def test_files_that_are_not_a_genome_fasta(tmp_path, content, message):
  path = tmp_path / "g.fa"
  if content is None:
    path.mkdir()
  elif isinstance(content, bytes):
    path.write_bytes(content)
  else:
    path.write_text(content)
  with pytest.raises(DataError, match=message):
    Genome(path)


def test_records_fasta_validation(tmp_path, caplog):
  path = tmp_path / "r.fa"
  path.write_text(">a first\nACGTRY\nacgt\n>b\nNNNN\n")
  with caplog.at_level(logging.WARNING):
    assert read_fasta_records(path) == (["a", "b"], ["ACGTNNACGT", "NNNN"])
  assert any("read as N: 2 in the bases read (R x1, Y x1), first at a:5" in r.getMessage()
             for r in caplog.records)
  path.write_text(">a\nACGT\n>b\nACGTAC-T\n")
  with pytest.raises(GenomeError, match="r.fa: invalid character '-' in record b at position 7"):
    read_fasta_records(path)
  path.write_text(">a\n>b\nACGT\n")
  with pytest.raises(GenomeError, match="record a has no sequence"):
    read_fasta_records(path)
  path.write_text("ACGT\n")
  with pytest.raises(GenomeError, match="is not a FASTA file: its first line is 'ACGT'"):
    read_fasta_records(path)


# --- BED / narrowPeak --------------------------------------------------------------------------

SIZES = {"1": 1000, "2": 500}


@pytest.mark.parametrize("line, message", [
    ("1\t-5\t20", r"b.bed:2: invalid interval 1:-5-20: negative start"),
    ("1\t50\t20", r"b.bed:2: invalid interval 1:50-20: end before start"),
    ("1\t50\t50", r"b.bed:2: invalid interval 1:50-50: empty"),
    ("1\t900\t1100", r"b.bed:2: interval 1:900-1100 ends past the end of 1 \(1,000 bp in g.fa\)"),
    ("chr2\t10\t20", r"b.bed:2: chromosome chr2 not in g.fa; g.fa names chromosomes without "
     r"'chr' \(2\)"),
    ("1\t10\t110\t.\t0\t.\t1\t1\t1\t100", r"b.bed:2: summit offset 100 \(column 10\) is outside "
     r"the 100-bp interval 1:10-110"),
    ("1\t10\t110\t.\t0\t.\t1\t1\t1\t-7", r"summit offset -7"),
    ("1\t10\t110\t.\t0\t*", r"b.bed:2: strand \(column 6\) must be '\+', '-' or '.', got '\*'"),
    ("1\tten\t20", r"b.bed:2: start and end \(columns 2, 3\) must be integers"),
    ("1\t10", r"b.bed:2: expected at least 3 columns"),
])
def test_bed_validation_names_file_and_line(tmp_path, line, message):
  path = tmp_path / "b.bed"
  path.write_text(f"# header\n{line}\n1\t0\t10\n")
  with pytest.raises(IntervalError, match=message):
    read_bed(path, SIZES, "g.fa")


def test_bed_and_narrowpeak_readers_share_one_path(tmp_path):
  path = tmp_path / "p.narrowPeak"
  path.write_text("1\t100\t300\tp1\t5\t+\t2\t3\t4\t60\n2\t0\t50\tp2\t1\t-\t1\t1\t1\t-1\n")
  for reader in (read_bed, read_narrowpeak):
    regions = reader(path, SIZES, "g.fa")
    assert list(regions.centre) == [160, 25] and list(regions.strand) == ["+", "-"]
    assert list(regions.line) == [1, 2] and regions.source == str(path)
  # Lines travel with the regions, so later checks name them.
  with pytest.raises(IntervalError, match=r"p.narrowPeak:2: interval 2:0-50 is off the end of 2 "
                     r"\(length 40\) in the FASTA"):
    check_regions(read_bed(path).subset([1]), {"1": 1000, "2": 40}, "the FASTA")
  with pytest.raises(IntervalError, match=r"p.narrowPeak:1: chromosome\(s\) \['1'\] not in x"):
    check_regions(read_bed(path), {"chr1": 1000, "2": 100}, "x")
  (tmp_path / "empty.bed").write_text("track name=x\n")
  assert len(read_narrowpeak(tmp_path / "empty.bed")) == 0
  with pytest.raises(IntervalError, match="no intervals"):
    read_bed(tmp_path / "empty.bed")
  with gzip.open(tmp_path / "p.bed.gz", "wt") as f:
    f.write("1 10 20\n")  # whitespace-separated, gzip
  assert list(read_bed(tmp_path / "p.bed.gz").end) == [20]
  with pytest.raises(DataError, match="is a directory, expected a BED file$"):
    read_bed(tmp_path)
  regions = Regions.from_intervals(["1"], [5], [15])
  assert regions.line is None and regions.where(0) == ""


def test_contribution_regions_use_the_interval_reader(tmp_path, caplog):
  path = tmp_path / "r.bed"
  path.write_text("1\t10\t30\n2\t400\t500\t.\t0\t.\t0\t0\t0\t90\n")
  with caplog.at_level(logging.WARNING):
    assert read_region_centres(str(path), SIZES, "g.fa", window=100) == [("1", 20), ("2", 490)]
  assert any("2 of 2 windows of 100 bp reach past a chromosome end" in r.getMessage()
             for r in caplog.records)
  path.write_text("1\t990\t1010\n")
  with pytest.raises(IntervalError, match="r.bed:1: interval 1:990-1010 ends past the end of 1"):
    read_region_centres(str(path), SIZES, "g.fa")


# --- VCF ---------------------------------------------------------------------------------------

def test_vcf_splits_multiallelic_and_classifies_symbolic_alleles(tmp_path):
  path = tmp_path / "v.vcf"
  path.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\n"
                  "1\t10\trs1\tA\tC,G,<DEL>\r\n"
                  "1\t20\t.\tC\t*\n1\t30\t.\tG\tG]2:100]\n1\t40\t.\tT\t.\n1\t50\t.\ta\tr\n")
  variants = list(read_vcf(path))
  assert [(v.pos, v.alt) for v in variants[:3]] == [(10, "C"), (10, "G"), (10, "<DEL>")]
  reasons = [v.unscorable for v in variants]
  assert reasons[:2] == [None, None]
  assert reasons[2:] == ["symbolic allele: <DEL>",
                         "symbolic allele: '*' (allele missing due to an overlapping deletion)",
                         "symbolic allele: breakend G]2:100]",
                         "symbolic allele: no ALT allele ('.')", "non-ACGTN allele: A>R"]


@pytest.mark.parametrize("content, message", [
    ("##fileformat=VCFv4.2\n", "v.vcf: no variant records"),
    ("1\t10\t.\tA\n", "v.vcf:1: a VCF record needs at least 5 tab-separated columns"),
    ("1\tx\t.\tA\tC\n", "v.vcf:1: POS 'x' is not an integer"),
    ("1\t0\t.\tA\tC\n", "v.vcf:1: POS must be >= 1"),
    ("1\t5\t.\t.\tC\n", "v.vcf:1: empty REF allele"),
    (b"\x1f\x8b\x08\x00garbage", "v.vcf: cannot read the VCF"),
    (None, "is a directory, expected a VCF file"),
])
def test_vcf_errors(tmp_path, content, message):
  path = tmp_path / "v.vcf"
  if content is None:
    path.mkdir()
  elif isinstance(content, bytes):
    path.write_bytes(content)
  else:
    path.write_text(content)
  with pytest.raises(VCFError if content is not None else DataError, match=message):
    list(read_vcf(path))


# --- bigWig ------------------------------------------------------------------------------------

def test_bigwig_reader_refuses_other_files(tmp_path):
  good = tmp_path / "s.bw"
  bw = pyBigWig.open(str(good), "w")
  bw.addHeader([("1", 100)])
  bw.addEntries("1", 0, values=[1.0] * 100, span=1, step=1)
  bw.close()
  with BigWigSignal(good) as signal:
    assert signal.values("1", 0, 3).tolist() == [1, 1, 1]
  (tmp_path / "t.bedGraph").write_text("1\t0\t10\t1.5\n")
  (tmp_path / "b.bin").write_bytes(b"\x00\x01\x02\x03\x04")
  (tmp_path / "e.bw").write_bytes(b"")
  cases = {tmp_path / "t.bedGraph": "is not a bigWig file: it is a text file (for a bedGraph: "
           "convert it with bedGraphToBigWig)",
           tmp_path / "b.bin": "is not a bigWig file: it is in another binary format",
           tmp_path / "e.bw": "is not a bigWig file: it is empty",
           tmp_path: "is a directory, expected a bigWig file"}
  for path, message in cases.items():
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
      BigWigSignal(path)
  with pytest.raises(FileNotFoundError, match="bigWig not found"):
    BigWigSignal(tmp_path / "absent.bw")
