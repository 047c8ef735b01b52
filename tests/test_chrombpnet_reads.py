"""Reads -> insertion bigWig: shift conventions against hand values, shift detection on
simulated reads, BAM checks, bad input."""

import gzip

import numpy as np
import pyBigWig
import pytest

from tf_seqmodels.chrombpnet.reads import reads_to_bigwig, shift_deltas
from tf_seqmodels.chrombpnet.simulate import SimulationConfig, simulate_atac
from tf_seqmodels.data.genome import GenomeError


@pytest.fixture(scope="module")
def small_genome(tmp_path_factory):
  root = tmp_path_factory.mktemp("reads_genome")
  rng = np.random.default_rng(0)
  (root / "g.fa").write_text(">chr1\n" + "".join(rng.choice(list("ACGT"), 1000)) + "\n>chr2\n"
                             + "".join(rng.choice(list("ACGT"), 500)) + "\n")
  return root


def insertions(path, chrom="chr1", length=1000):
  bw = pyBigWig.open(str(path))
  values = np.nan_to_num(np.array(bw.values(chrom, 0, length)))
  bw.close()
  return {int(i): float(values[i]) for i in np.flatnonzero(values)}


@pytest.mark.parametrize("fmt,lines,assay,shift,expected", [
    # Unshifted single-end reads (as in a BAM): '+' 5' end 100 -> 104; '-' 5' end 249 -> 245.
    ("tagalign", ["chr1\t100\t150\tr\t1000\t+", "chr1\t200\t250\tr\t1000\t-"], "ATAC", (0, 0),
     {104: 1.0, 245: 1.0}),
    # DNase: '+' at the 5' end, '-' one past it (the reference's +0/+1).
    ("tagalign", ["chr1\t100\t150\tr\t1000\t+", "chr1\t200\t250\tr\t1000\t-"], "DNASE", (0, 0),
     {100: 1.0, 250: 1.0}),
    # 10x fragments carry +4/-5: the two insertions are the fragment's start and end.
    ("fragments", ["chr1\t100\t250\tcell\t1"], "ATAC", (4, -5), {100: 1.0, 250: 1.0}),
    # Unshifted fragments: a '+' and a '-' tag over the same interval.
    ("fragments", ["chr1\t100\t250\tcell\t1", "chr1\t100\t250\tcell\t1"], "ATAC", (0, 0),
     {104: 2.0, 245: 2.0}),
])
def test_shift_conventions(small_genome, tmp_path, fmt, lines, assay, shift, expected):
  path = tmp_path / ("reads.tsv.gz" if fmt == "fragments" else "reads.tagAlign")
  text = "# comment\n" + "\n".join(lines) + "\n"
  if fmt == "fragments":
    with gzip.open(path, "wt") as f:
      f.write(text)
  else:
    path.write_text(text)
  summary = reads_to_bigwig(path, fmt, small_genome / "g.fa", tmp_path / "out.bw", assay, shift,
                            progress=False)
  assert insertions(tmp_path / "out.bw") == expected
  assert summary["applied_deltas"] == list(shift_deltas(shift, assay))
  assert summary["insertions"] == sum(expected.values()) and not summary["detected"]


def test_bad_reads(small_genome, tmp_path):
  fasta = small_genome / "g.fa"
  (tmp_path / "unknown.tsv").write_text("chr1\t10\t50\nchrZ\t10\t50\n")
  with pytest.raises(GenomeError, match=r"\['chrZ'\]"):
    reads_to_bigwig(tmp_path / "unknown.tsv", "fragments", fasta, tmp_path / "o.bw",
                    shift=(4, -5), progress=False)
  summary = reads_to_bigwig(tmp_path / "unknown.tsv", "fragments", fasta, tmp_path / "o.bw",
                            shift=(4, -5), skip_unknown=True, progress=False)
  assert summary["skipped_chromosomes"] == {"chrZ": 2} and summary["insertions"] == 2
  (tmp_path / "bad.tsv").write_text("chr1\t10\t50\nchr1\tten\t50\n")
  with pytest.raises(ValueError, match=r"bad.tsv:2: start and end must be integers"):
    reads_to_bigwig(tmp_path / "bad.tsv", "fragments", fasta, tmp_path / "o.bw", shift=(4, -5),
                    progress=False)
  (tmp_path / "strand.tagAlign").write_text("chr1\t10\t50\tr\t0\t*\n")
  with pytest.raises(ValueError, match=r"strand.tagAlign:1: strand"):
    reads_to_bigwig(tmp_path / "strand.tagAlign", "tagalign", fasta, tmp_path / "o.bw",
                    shift=(0, 0), progress=False)
  with pytest.raises(FileNotFoundError):
    reads_to_bigwig(tmp_path / "absent.tsv", "fragments", fasta, tmp_path / "o.bw", progress=False)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
  root = tmp_path_factory.mktemp("sim_reads")
  return simulate_atac(root, SimulationConfig(chromosome_length=30_000, peak_spacing=1500,
                                              background_rate=0.5), write_tagalign=True)


def test_shift_detected_from_the_data(simulated, tmp_path):
  # Fragments carry +4/-5, single-end tagAlign reads none; both end at the same +4/-4 track.
  frag = reads_to_bigwig(simulated.fragments, "fragments", simulated.fasta, tmp_path / "f.bw",
                         progress=False)
  tags = reads_to_bigwig(simulated.tagalign, "tagalign", simulated.fasta, tmp_path / "t.bw",
                         progress=False)
  assert frag["input_shift"] == [4, -5] and frag["detected"]
  assert tags["input_shift"] == [0, 0] and tags["detected"]
  for chrom in simulated.config.chromosomes:
    assert insertions(tmp_path / "f.bw", chrom, 30_000) == insertions(tmp_path / "t.bw", chrom,
                                                                      30_000)
  # '+' reads moved 7 bp downstream: a shift no aligner or fragment convention produces.
  moved = tmp_path / "moved.tagAlign"
  with gzip.open(simulated.tagalign, "rt") as f, open(moved, "w") as out:
    for line in f:
      chrom, start, end, name, score, strand = line.rstrip("\n").split("\t")
      if strand == "+":
        start, end = int(start) + 7, int(end) + 7
      out.write(f"{chrom}\t{start}\t{end}\t{name}\t{score}\t{strand}\n")
  with pytest.raises(ValueError, match=r"non-standard ATAC shift \+7/\+0.*--shift"):
    reads_to_bigwig(moved, "tagalign", simulated.fasta, tmp_path / "d.bw", progress=False)


def test_bam_sorted_and_indexed(simulated, tmp_path):
  pysam = pytest.importorskip("pysam")
  from tf_seqmodels.data.genome import Genome
  with Genome(simulated.fasta) as genome:
    sizes = dict(genome.chrom_sizes)
  header = {"HD": {"VN": "1.6", "SO": "unsorted"},
            "SQ": [{"SN": c, "LN": s} for c, s in sizes.items()]}
  unsorted = str(tmp_path / "reads.bam")
  rows = [line.split("\t") for line in gzip.open(simulated.tagalign, "rt").read().splitlines()]
  with pysam.AlignmentFile(unsorted, "wb", header=header) as bam:
    for k, (chrom, start, end, _, _, strand) in enumerate(rows[:4000]):
      read = pysam.AlignedSegment(bam.header)
      read.query_name, read.reference_id = f"r{k}", list(sizes).index(chrom)
      read.reference_start, read.cigarstring = int(start), f"{int(end) - int(start)}M"
      read.flag = 16 if strand == "-" else 0
      read.query_sequence = "A" * (int(end) - int(start))
      read.mapping_quality = 60
      bam.write(read)
  with pytest.raises(ValueError, match="not coordinate-sorted.*samtools sort"):
    reads_to_bigwig(unsorted, "bam", simulated.fasta, tmp_path / "b.bw", shift=(0, 0),
                    progress=False)
  sorted_bam = str(tmp_path / "sorted.bam")
  pysam.sort("-o", sorted_bam, unsorted)
  with pytest.raises(ValueError, match="no index.*samtools index"):
    reads_to_bigwig(sorted_bam, "bam", simulated.fasta, tmp_path / "b.bw", shift=(0, 0),
                    progress=False)
  pysam.index(sorted_bam)
  reads_to_bigwig(sorted_bam, "bam", simulated.fasta, tmp_path / "b.bw", shift=(0, 0),
                  progress=False)
  tag_path = tmp_path / "first.tagAlign"
  tag_path.write_text("".join("\t".join(r) + "\n" for r in rows[:4000]))
  reads_to_bigwig(tag_path, "tagalign", simulated.fasta, tmp_path / "t.bw", shift=(0, 0),
                  progress=False)
  assert insertions(tmp_path / "b.bw", "chr1", 30_000) == insertions(tmp_path / "t.bw", "chr1",
                                                                     30_000)
