"""Bad input files through the real command line (`tf_seqmodels.cli.main`): every command reads
FASTA, BED / narrowPeak, VCF and bigWig through the same readers, so each case ends in exit
code 2 with one clear line naming the file (and line, record or position), no traceback, and
no input or output file changed."""

import hashlib
import os
import time

import numpy as np
import pytest

from tf_seqmodels import cli
from tf_seqmodels.data import genome as genome_module

GENOME = {name: "".join(np.random.default_rng(i).choice(list("ACGT"), 2000))
          for i, name in enumerate(("1", "2"))}


def _fasta(path, records, width=60):
  with open(path, "w") as f:
    for name, seq in records.items():
      f.write(f">{name}\n")
      f.writelines(seq[i:i + width] + "\n" for i in range(0, len(seq), width))
  return str(path)


def _indexed(path, records, width=60):
  from tf_seqmodels.data.genome import Genome
  if records:
    _fasta(path, records, width)
  Genome(path).close()  # writes the .fai before the case runs
  return str(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
  """A ChromBPNet demo checkpoint (score-variants, contributions, predict), an indexed genome
  ('1', '2' without 'chr'), and the inputs of a tiny track-training run (test_trainer's)."""
  from test_trainer import write_track_inputs
  from tf_seqmodels.convert.weights import save_checkpoint
  from tf_seqmodels.models import build_model, get_entry
  root = tmp_path_factory.mktemp("world")
  (root / "model").mkdir()
  config = get_entry("chrombpnet").demo_config()
  model = build_model("chrombpnet", config)
  model.ensure_built()
  save_checkpoint(model, str(root / "model" / "ckpt"))
  config.save(str(root / "model" / "model.yaml"))
  (root / "inputs").mkdir()
  _indexed(root / "inputs" / "genome.fa", GENOME)
  (root / "train").mkdir()
  write_track_inputs(root / "train")
  _indexed(root / "train" / "genome.fa", {})  # the .fai only (the FASTA is kept)
  return root


def _model(world):
  return ["--model", str(world / "model" / "ckpt"), "--model-name", "chrombpnet",
          "--model-config", str(world / "model" / "model.yaml"), "--without-bias", "--quiet"]


def _genome(world):
  return str(world / "inputs" / "genome.fa")


def _write(path, content):
  if isinstance(content, bytes):
    path.write_bytes(content)
  else:
    path.write_text(content)
  return str(path)


# --- the commands ------------------------------------------------------------------------------

def predict(fasta_content):
  def argv(world, case):
    fasta = case / "seqs.fa"
    if fasta_content is None:
      fasta.mkdir()
    else:
      _write(fasta, fasta_content)
    return ["predict", "--model", "chrombpnet", "--config", str(world / "model" / "model.yaml"),
            "--fasta", str(fasta), "--output", str(case / "out" / "predictions.h5")]
  return argv


def predict_regions(regions_content, genome=True):
  """`predict --regions`: the windows' regions go through the one interval reader."""
  def argv(world, case):
    regions = _write(case / "peaks.bed", regions_content)
    return ["predict", "--model", "chrombpnet", "--config", str(world / "model" / "model.yaml"),
            "--regions", str(regions),
            *(["--genome", _genome(world)] if genome else []),
            "--output", str(case / "out" / "predictions.h5")]
  return argv


def score_variants(vcf_content, fasta=None):
  def argv(world, case):
    vcf = case / "v.vcf"
    if vcf_content is None:
      vcf.mkdir()
    else:
      _write(vcf, vcf_content)
    return ["score-variants", *_model(world), "--vcf", str(vcf), "--fasta",
            fasta(world, case) if fasta else _genome(world), "--heads", "logcounts",
            "--output", str(case / "out" / "scores.h5")]
  return argv


def contributions(regions_content, fasta=None):
  def argv(world, case):
    regions = case / "peaks.bed"
    if regions_content is None:
      regions.mkdir()
    else:
      _write(regions, regions_content)
    return ["contributions", *_model(world), "--fasta",
            fasta(world, case) if fasta else _genome(world), "--regions", str(regions),
            "--output-dir", str(case / "out" / "contributions"), "--head", "logcounts"]
  return argv


def train(change):
  """A tiny Enformer track run whose inputs `change(train_inputs, case)` edits (copies)."""
  def argv(world, case):
    inputs = {"fasta": str(world / "train" / "genome.fa"),
              "targets": str(world / "train" / "targets.txt"),
              "regions": str(world / "train" / "regions.bed"),
              "fold": str(world / "train" / "fold.json")}
    inputs.update(change(world / "train", case))
    from tf_seqmodels.training.run_config import TrainConfig
    config = TrainConfig.from_dict({
        "model": {"name": "enformer", "config": {
            "channels": 48, "num_transformer_layers": 1, "num_heads": 2,
            "filters_divisible_by": 8, "heads": {"tracks": 2}, "sequence_length": 256,
            "target_length": 4, "num_conv_tower_blocks": 3}},
        "task": {"type": "tracks"},
        "data": {"type": "tracks", "batch_size": 8, "options": {
            **inputs, "data": {"sequence_length": 256, "bin_size": 16, "target_length": 4}}},
        "trainer": {"epochs": 1, "progress": False},
        "run_dir": str(case / "out" / "run")})
    config.save(str(case / "train.yaml"))
    return ["train", "--config", str(case / "train.yaml")]
  return argv


# --- inputs that need their own file -----------------------------------------------------------

def gzip_genome(world, case):
  import gzip
  with open(_genome(world), "rb") as src, gzip.open(case / "genome.fa.gz", "wb") as dst:
    dst.write(src.read())
  return str(case / "genome.fa.gz")


def digit_genome(world, case):
  records = dict(GENOME)
  records["1"] = records["1"][:1000] + "7" + records["1"][1001:]
  return _indexed(case / "genome.fa", records)


def mismatching_index(world, case):
  """The FASTA rewritten with another line width after indexing; the old index is newer."""
  path = _indexed(case / "genome.fa", GENOME, width=60)
  _fasta(path, GENOME, width=50)
  t = time.time() + 60
  os.utime(path + ".fai", (t, t))
  return path


def stale_index(world, case):
  path = _indexed(case / "genome.fa", GENOME, width=60)
  _fasta(path, GENOME, width=50)
  os.utime(path + ".fai", (1, 1))
  return path


def directory(world, case):
  (case / "genome_dir").mkdir()
  return str(case / "genome_dir")


def bed_as_fasta(world, case):
  return _write(case / "genome.fa", "1\t10\t20\n")


def regions_file(lines):
  def change(train_inputs, case):
    return {"regions": _write(case / "regions.bed", lines)}
  return change


def targets_with(path_maker):
  def change(train_inputs, case):
    track = path_maker(case)
    return {"targets": _write(case / "targets.txt", "index\tidentifier\tfile\tsum_stat\n"
                              f"0\tcov\t{track}\tsum\n1\tcov_max\t{track}\tmax\n")}
  return change


def train_digit_genome(train_inputs, case):
  text = (train_inputs / "genome.fa").read_text().splitlines()
  text[1] = text[1][:400] + "9" + text[1][401:]  # chr1, inside the first training window
  _write(case / "genome.fa", "\n".join(text) + "\n")
  return {"fasta": _indexed(case / "genome.fa", {})}


def _header(vcf_lines):
  return "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + vcf_lines


SNV = f"1\t1001\tv1\t{GENOME['1'][1000]}\t{'A' if GENOME['1'][1000] != 'A' else 'C'}\t.\t.\t.\n"

CASES = {
    # predict: the records FASTA shares the genome reader's base validation
    "predict-invalid-character": (
        predict(">s1\nACGT\n>s2\nACXT\n"), r"seqs.fa: invalid character 'X' in record s2 at "
        r"position 3"),
    "predict-fasta-directory": (predict(None), r"seqs.fa is a directory, expected a FASTA file$"),
    "predict-empty-fasta": (predict(""), r"seqs.fa is empty: a FASTA file starts with a '>' header"),
    "predict-bed-as-fasta": (predict("chr1\t10\t20\n"), r"seqs.fa is not a FASTA file: its first line "
                             r"is 'chr1\\t10\\t20'"),
    "predict-binary-as-fasta": (predict(b"\x00\x01\x02\x03"), r"seqs.fa is not a FASTA file: it is a "
                                r"binary file"),
    # predict --regions: the regions through the interval reader, against the genome
    "predict-regions-past-chromosome-end": (
        predict_regions("1\t100\t200\n1\t1950\t2050\n"), r"peaks.bed:2: interval 1:1950-2050 "
        r"ends past the end of 1 \(2,000 bp in .*genome.fa\)"),
    "predict-regions-unknown-chromosome": (
        predict_regions("chr1\t100\t200\n"), r"peaks.bed:1: chromosome chr1 not in .*genome.fa; "
        r".*genome.fa names chromosomes without 'chr' \(1\)$"),
    "predict-regions-without-genome": (
        predict_regions("1\t100\t200\n", genome=False), r"--regions and --genome go together"),
    # score-variants: VCF
    "vcf-chr-prefix-mismatch": (
        score_variants(_header("chr1\t1001\t.\tA\tC\nchr2\t50\t.\tG\tT\n")),
        r"no variant of .*v.vcf was scored: all 2 were skipped: 2 unknown chromosome \(e.g. "
        r"chromosome chr1 not in the FASTA; the FASTA names chromosomes without 'chr' \(1\)\)"),
    "vcf-only-symbolic-alleles": (
        score_variants(_header("1\t1001\t.\tA\t<DEL>,*\n1\t1500\t.\tC\tC]2:100]\n")),
        r"all 3 were skipped: 3 symbolic allele \(e.g. <DEL>\)"),
    "vcf-reference-mismatch-everywhere": (
        score_variants(_header("1\t1001\t.\tACGTACGTACGT\tA\n")),
        r"all 1 were skipped: 1 reference mismatch \(e.g. VCF REF ACGTACGTACGT, FASTA "),
    "vcf-bad-position": (score_variants(_header(SNV + "1\tx\t.\tA\tC\n")),
                         r"v.vcf:4: POS 'x' is not an integer"),
    "vcf-no-records": (score_variants(_header("")), r"v.vcf: no variant records"),
    "vcf-directory": (score_variants(None), r"v.vcf is a directory, expected a VCF file$"),
    # score-variants: genome FASTA
    "fasta-gzip-not-bgzip": (
        score_variants(_header(SNV), gzip_genome), r"genome.fa.gz is gzip-compressed, which "
        r"cannot be read by position: decompress it \(`gunzip .*`\), or recompress it as bgzip"),
    "fasta-mismatching-index-read-only": (
        score_variants(_header(SNV), mismatching_index), r"genome.fa.fai does not match the "
        r"FASTA .*genome.fa \(the lines of record 1 are not 60 bases long\), and it cannot be "
        r"\(re\)built because .* is read-only"),
    "fasta-directory": (score_variants(_header(SNV), directory),
                        r"genome_dir is a directory, expected a genome FASTA file$"),
    # contributions: regions through the interval reader, against the genome
    "regions-past-chromosome-end": (
        contributions("1\t100\t200\n1\t1950\t2050\n"), r"peaks.bed:2: interval 1:1950-2050 ends "
        r"past the end of 1 \(2,000 bp in .*genome.fa\)"),
    "regions-negative-start": (contributions("1\t-10\t200\n"),
                               r"peaks.bed:1: invalid interval 1:-10-200: negative start"),
    "regions-inverted": (contributions("1\t300\t200\n"),
                         r"peaks.bed:1: invalid interval 1:300-200: end before start"),
    "regions-empty-interval": (contributions("1\t300\t300\n"),
                               r"peaks.bed:1: invalid interval 1:300-300: empty"),
    "regions-summit-outside": (
        contributions("1\t100\t200\t.\t0\t.\t1\t1\t1\t250\n"), r"peaks.bed:1: summit offset 250 "
        r"\(column 10\) is outside the 100-bp interval 1:100-200"),
    "regions-chr-prefix-mismatch": (
        contributions("1\t100\t200\nchr2\t100\t200\n"), r"peaks.bed:2: chromosome chr2 not in "
        r".*genome.fa; .*genome.fa names chromosomes without 'chr' \(2\)"),
    "regions-not-integers": (contributions("1\tstart\tend\n"),
                             r"peaks.bed:1: start and end \(columns 2, 3\) must be integers"),
    "regions-directory": (contributions(None), r"peaks.bed is a directory, expected a BED file$"),
    "fasta-invalid-character-in-window": (
        contributions("1\t900\t1100\n", digit_genome), r"genome.fa: invalid character '7' in "
        r"record 1 at position 1,001"),
    "fasta-stale-index-read-only": (
        contributions("1\t900\t1100\n", stale_index), r"genome.fa.fai is older than the FASTA "
        r".*genome.fa, and it cannot be \(re\)built because .* is read-only"),
    "fasta-is-a-bed-file": (contributions("1\t900\t1100\n", bed_as_fasta),
                            r"genome.fa is not a genome FASTA: its first line is '1\\t10\\t20'"),
    # train: the same readers behind the tracks data builder
    "train-regions-past-chromosome-end": (
        train(regions_file("chr1\t100\t356\nchr2\t2900\t3156\nchr3\t100\t356\n")),
        r"regions.bed:2: interval chr2:2900-3156 is off the end of chr2 \(length 3000\)"),
    "train-regions-chr-prefix-mismatch": (
        train(regions_file("1\t100\t356\n2\t100\t356\n")),
        r"no interval lies on a fold chromosome \(one uses 'chr' prefixes, the other does not\)"),
    "train-regions-summit-outside": (
        train(regions_file("chr1\t100\t356\t.\t0\t+\t1\t1\t1\t300\n")),
        r"regions.bed:1: summit offset 300 \(column 10\) is outside the 256-bp interval"),
    "train-bigwig-is-text": (
        train(targets_with(lambda case: _write(case / "cov.bw", "chr1\t0\t10\t1\n"))),
        r"cov.bw is not a bigWig file: it is a text file"),
    "train-bigwig-is-directory": (
        train(targets_with(lambda case: (case / "cov_dir").mkdir() or str(case / "cov_dir"))),
        r"cov_dir is a directory, expected a bigWig file$"),
    "train-invalid-character-in-genome": (
        train(train_digit_genome), r"genome.fa: invalid character '9' in record chr1 at "
        r"position 401"),
}

READ_ONLY = {"fasta-mismatching-index-read-only", "fasta-stale-index-read-only"}


def _snapshot(*roots):
  """{path: (sha1, mtime_ns)} of every file under `roots` (inputs, indexes, earlier outputs)."""
  out = {}
  for root in roots:
    for directory, _, files in os.walk(root):
      for name in files:
        path = os.path.join(directory, name)
        with open(path, "rb") as f:
          out[path] = (hashlib.sha1(f.read()).hexdigest(), os.stat(path).st_mtime_ns)
  return out


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_file(name, world, tmp_path, capsys, monkeypatch):
  make_argv, message = CASES[name]
  case = tmp_path / "case"
  case.mkdir()
  (case / "out").mkdir()
  (case / "out" / "earlier.txt").write_text("an earlier output\n")
  argv = make_argv(world, case)
  if name in READ_ONLY:  # tests run as any user (root ignores permissions): patch the check
    monkeypatch.setattr(genome_module, "_writable", lambda directory: False)
  before = _snapshot(case, world / "inputs", world / "train")
  capsys.readouterr()
  code = cli.main(argv)
  err = capsys.readouterr().err
  assert code == 2, err
  assert f"tf-seqmodels {argv[0]}: error: " in err and "Traceback" not in err, err
  import re
  assert re.search(message, err, re.MULTILINE), err
  assert _snapshot(case, world / "inputs", world / "train") == before  # nothing written or changed
