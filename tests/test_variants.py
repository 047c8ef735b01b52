"""Variant effect scoring: reference checks, indels, RC/shift averaging, outputs, models, CLI."""

import os

import h5py
import numpy as np
import pytest
import tensorflow as tf

from analysis_toys import MOTIF, MotifModel, random_sequence, tiny_enformer_config, without_motif, write_genome
from tf_seqmodels.analysis import variants as variants_module
from tf_seqmodels.analysis.inference import AnalysisModel, BatchRunner, load_analysis_model
from tf_seqmodels.analysis.variants import (VariantScoringConfig, averaged_predictions,
                                            one_hot_indices, pca_summary, reduce_head,
                                            reverse_complement_indices, score_sequence_pairs,
                                            score_variants, score_vcf, variant_windows)
from tf_seqmodels.data.genome import Genome
from tf_seqmodels.data.vcf import Variant, read_vcf, write_vcf

SITE = 1000  # 0-based start of the planted motif on chr1


@pytest.fixture(scope="module")
def genome_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp("variant_genome")
  chr1 = without_motif(random_sequence(2400, seed=1))
  chr1 = chr1[:SITE] + MOTIF + chr1[SITE + len(MOTIF):]
  write_genome(str(directory), {"chr1": chr1, "chr2": without_motif(random_sequence(900, 2))})
  return directory, chr1


def _other(base):
  return "A" if base != "A" else "C"


def _variants(chr1):
  return [
      Variant("chr1", SITE + 2, "motif_snv", "G", "T"),             # TGACTCA -> TTACTCA
      Variant("chr1", 400, "bg1", chr1[399], _other(chr1[399])),
      Variant("chr1", 1700, "bg2", chr1[1699], _other(chr1[1699])),
      Variant("chr1", SITE + 40, "near", chr1[SITE + 39], _other(chr1[SITE + 39])),
      Variant("chr1", 600, "mismatch", _other(chr1[599]), "G"),     # REF disagrees with FASTA
      Variant("chr1", SITE + 3, "motif_del", chr1[SITE + 2:SITE + 5], chr1[SITE + 2]),
      Variant("chr1", 1300, "far_ins", chr1[1299], chr1[1299] + "GG"),
      Variant("chr9", 10, "no_chrom", "A", "C"),
      Variant("chr1", 800, "symbolic", chr1[799], "<DEL>"),
  ]


def test_planted_motif_destroyed_has_largest_negative_score(genome_dir, tmp_path):
  directory, chr1 = genome_dir
  vcf = str(tmp_path / "variants.vcf.gz")
  write_vcf(vcf, _variants(chr1), compress=True)
  output = str(tmp_path / "scores.h5")
  config = VariantScoringConfig(shifts=(-1, 0, 1), batch_size=3)
  result = score_vcf(AnalysisModel(MotifModel()), vcf, str(directory / "genome.fa"), output,
                     config, progress=False)
  assert result["scored"] == 6 and result["skipped"] == 3
  with h5py.File(output) as f:
    ids = [x.decode() for x in f["variants/id"][:]]
    diff = dict(zip(ids, f["scores/total/diff"][:, 0]))
    log_fc = dict(zip(ids, f["scores/total/log_fc"][:, 0]))
    assert f["variants/pos"][ids.index("motif_snv")] == SITE + 2
  # The motif scores 2 on the forward strand and 0 on the reverse: averaged, ref = 1, alt = 0.
  assert diff["motif_snv"] == pytest.approx(-1.0)
  assert log_fc["motif_snv"] == pytest.approx(np.log2(1 / 2))
  assert diff["motif_del"] == pytest.approx(-1.0)
  snvs = ["motif_snv", "bg1", "bg2", "near"]
  assert max(snvs, key=lambda v: abs(diff[v])) == "motif_snv"
  for name in ("bg1", "bg2", "near", "far_ins"):
    assert diff[name] == pytest.approx(0.0)
  skipped = open(result["skipped_file"]).read()
  assert "mismatch" in skipped and "reference mismatch: VCF REF" in skipped
  assert "chromosome chr9 not in the FASTA" in skipped and "symbolic" in skipped
  assert not os.path.exists(output + ".tmp")


def test_indel_windows_keep_length_and_anchor(genome_dir):
  directory, chr1 = genome_dir
  length = 64
  with Genome(str(directory / "genome.fa")) as genome:
    deletion = Variant("chr1", 501, "d", chr1[500:504], chr1[500])
    ref, alt = variant_windows(genome, deletion, deletion.start, length)
    letters = np.array(list("ACGTN"))
    ref_s, alt_s = "".join(letters[ref]), "".join(letters[alt])
    assert ref_s == chr1[500 - 32:500 + 32]
    # Left of the variant in place, alt allele, then the genome after the deleted bases.
    assert alt_s == chr1[468:500] + chr1[500] + chr1[504:504 + 31] and len(alt_s) == length
    insertion = Variant("chr1", 501, "i", chr1[500], chr1[500] + "TTTT")
    _, alt = variant_windows(genome, insertion, insertion.start, length)
    assert "".join(letters[alt]) == (chr1[468:501] + "TTTT" + chr1[501:])[:length]
    # Gene mode, variant upstream of the anchor: the anchor's side (right) stays in place.
    _, alt = variant_windows(genome, deletion, 520, length)
    assert "".join(letters[alt])[-(520 + 32 - 504):] == chr1[504:520 + 32]
    assert len(alt) == length
    # Past the chromosome start: N padding.
    edge = Variant("chr1", 3, "e", chr1[2], _other(chr1[2]))
    ref, alt = variant_windows(genome, edge, edge.start, length)
    assert (ref[:30] == 4).all() and alt[32] == "ACGT".index(edge.alt)


def test_reverse_complement_and_shift_averaging_are_symmetric():
  model = AnalysisModel(MotifModel())
  runner = BatchRunner()
  rng = np.random.default_rng(0)
  windows = rng.integers(0, 4, (3, 1, 256)).astype(np.int8)
  windows[0, 0, 100:107] = ["ACGT".index(b) for b in MOTIF]
  config = VariantScoringConfig()  # all bins: a window is centred on a base, not the sequence
  forward = averaged_predictions(model, runner, windows, config, ["signal", "total"])
  backward = averaged_predictions(model, runner, reverse_complement_indices(windows), config,
                                  ["signal", "total"])
  for head in forward:  # RC averaging makes a sequence and its reverse complement agree
    np.testing.assert_allclose(forward[head], backward[head], atol=1e-6)
  # Averaging over shifts = mean of the single-shift averages.
  stacked = rng.integers(0, 4, (2, 3, 256)).astype(np.int8)
  mean = averaged_predictions(model, runner, stacked, config, ["signal"])["signal"]
  single = [averaged_predictions(model, runner, stacked[:, s:s + 1], config, ["signal"])["signal"]
            for s in range(3)]
  np.testing.assert_allclose(mean, np.mean(single, axis=0), atol=1e-6)


def test_ref_alt_swap_negates_scores(genome_dir, tmp_path):
  _, chr1 = genome_dir
  model = AnalysisModel(MotifModel())
  alt_chr1 = chr1[:SITE + 1] + "T" + chr1[SITE + 2:]
  fasta = write_genome(str(tmp_path), {"chr1": alt_chr1})
  config = VariantScoringConfig(shifts=(-2, 0, 2))
  with Genome(fasta) as genome:
    back = next(score_variants(model, [Variant("chr1", SITE + 2, "v", "T", "G")], genome, config))
  assert back.scores["total"]["diff"][0, 0] == pytest.approx(1.0)
  assert back.scores["total"]["abs_diff"][0, 0] == pytest.approx(1.0)


def test_window_bins_and_track_reduction():
  values = np.arange(2 * 6 * 3, dtype=np.float32).reshape(2, 6, 3)
  out = reduce_head(values, 1, 3, [0, 2])
  np.testing.assert_allclose(out, values[:, 2:5][..., [0, 2]].sum(1))
  np.testing.assert_allclose(reduce_head(values[:, 0, 0], None, None, None), values[:, 0, :1])
  with pytest.raises(ValueError, match="out of range"):
    reduce_head(values, 1, None, [5])


def test_gene_mode_centres_the_tss_bins(genome_dir, tmp_path):
  directory, chr1 = genome_dir
  genes = tmp_path / "genes.bed"
  # TSS 50 bp right of the motif: the motif falls in the TSS-centred window but outside the
  # 3 central bins of 16 bp, so only the whole-window score sees it.
  genes.write_text(f"chr1\t{SITE + 50}\t{SITE + 900}\tgeneA\t0\t+\nchr2\t10\t20\tfar\t0\t-\n")
  vcf = str(tmp_path / "v.vcf")
  write_vcf(vcf, [Variant("chr1", SITE + 2, "motif_snv", "G", "T")])
  model = AnalysisModel(MotifModel())
  results = {}
  for bins in (3, None):
    out = str(tmp_path / f"genes{bins}.h5")
    score_vcf(model, vcf, str(directory / "genome.fa"), out,
              VariantScoringConfig(window_bins=bins, heads=("signal",), reverse_complement=False),
              genes_bed=str(genes), progress=False)
    with h5py.File(out) as f:
      assert [g.decode() for g in f["variants/gene"][:]] == ["geneA"]
      assert f["variants/anchor"][0] == SITE + 50
      results[bins] = f["scores/signal/diff"][0, 0]
  assert results[3] == pytest.approx(0.0) and results[None] == pytest.approx(-2.0)


def test_variants_sharing_a_reference_window_share_its_prediction(genome_dir, tmp_path):
  """Gene mode scores every SNV near a TSS in the TSS's window: one reference prediction per
  batch serves them all (and the alleles of one site), with the scores of one-by-one runs."""
  directory, chr1 = genome_dir

  class CountingRunner(BatchRunner):
    sequences = calls = 0

    def predict(self, model, one_hot, is_reverse=False):
      CountingRunner.sequences += len(one_hot)
      CountingRunner.calls += 1
      return super().predict(model, one_hot, is_reverse=is_reverse)

  sites = (SITE + 2, SITE + 20, SITE + 60, SITE + 61)
  variants = [Variant("chr1", p, f"v{p}", chr1[p - 1], b) for p in sites
              for b in "ACGT" if b != chr1[p - 1]][:8]
  genes = [("chr1", SITE + 50, "geneA")]
  config = VariantScoringConfig(shifts=(0, 1), reverse_complement=True, batch_size=8)
  model = AnalysisModel(MotifModel())
  with Genome(str(directory / "genome.fa")) as genome:
    CountingRunner.sequences = 0
    together, = list(score_variants(model, variants, genome, config, runner=CountingRunner(),
                                    genes=genes))
    # 1 probe + (1 shared reference + 8 alternatives) x 2 shifts x 2 strands, the shifts and
    # strands of the batch in one call (the model has no strand flag)
    assert CountingRunner.sequences == 1 + (1 + 8) * 2 * 2
    assert CountingRunner.calls == 2 and model.strand_blind
    alone = [next(score_variants(model, [v], genome, config, genes=genes)) for v in variants]
  for head, statistics in together.scores.items():
    for name, value in statistics.items():
      np.testing.assert_allclose(value, np.concatenate([a.scores[head][name] for a in alone]),
                                 rtol=1e-6, atol=1e-7, err_msg=f"{head} {name}")
  assert np.abs(together.scores["total"]["diff"]).max() > 0


def test_score_vcf_streams_the_vcf(genome_dir, tmp_path, monkeypatch):
  """A VCF is never held in memory: one validating pass, then scoring reads it batch by batch
  (each batch is predicted when exactly its variants have been read, not the whole file)."""
  directory, chr1 = genome_dir
  positions = sorted(np.random.default_rng(0).choice(np.arange(50, 2300), 40, replace=False))
  variants = [Variant("chr1", int(p), f"v{p}", chr1[p - 1], _other(chr1[p - 1]))
              for p in positions]
  vcf = str(tmp_path / "many.vcf")
  write_vcf(vcf, variants)
  passes = []

  def counting_reader(path):
    passes.append(0)
    for variant in read_vcf(path):
      passes[-1] += 1
      yield variant

  monkeypatch.setattr(variants_module, "read_vcf", counting_reader)
  read_when_predicting = []

  class Runner(BatchRunner):
    def predict(self, model, one_hot, is_reverse=False):
      read_when_predicting.append(passes[-1])
      return super().predict(model, one_hot, is_reverse=is_reverse)

  result = score_vcf(AnalysisModel(MotifModel()), vcf, str(directory / "genome.fa"),
                     str(tmp_path / "many.h5"), VariantScoringConfig(batch_size=8),
                     runner=Runner(), progress=False)
  assert result["scored"] == 40 and passes == [40, 40]
  assert sorted(set(read_when_predicting)) == [8, 16, 24, 32, 40]


def test_pca_summary_and_tsv_output(genome_dir, tmp_path):
  scores = np.random.default_rng(0).normal(size=(30, 8)) @ np.diag([5, 3, 1, 1, .1, .1, .1, .1])
  summary = pca_summary(scores, 3)
  assert summary["projection"].shape == (30, 3) and summary["components"].shape == (3, 8)
  assert np.all(np.diff(summary["explained_variance_ratio"]) <= 1e-12)
  directory, chr1 = genome_dir
  vcf = str(tmp_path / "v.vcf")
  write_vcf(vcf, _variants(chr1)[:3])
  assert [v.name for v in read_vcf(vcf)] == ["motif_snv", "bg1", "bg2"]
  out = str(tmp_path / "scores.tsv")
  score_vcf(AnalysisModel(MotifModel()), vcf, str(directory / "genome.fa"), out,
            VariantScoringConfig(statistics=("diff",)), progress=False)
  lines = open(out).read().splitlines()
  assert lines[0].split("\t") == ["id", "chrom", "pos", "ref", "alt", "gene", "signal/diff/0",
                                  "total/diff/0"]
  assert float(lines[1].split("\t")[-1]) == pytest.approx(-1.0)


def test_mirrored_replicator_gives_same_scores(genome_dir):
  import sonnet as snt
  directory, chr1 = genome_dir
  strategy = snt.distribute.Replicator(devices=["/cpu:0"])
  with strategy.scope():
    model = AnalysisModel(MotifModel())
  runner = BatchRunner(strategy)
  assert runner.info.kind == "mirrored"
  with Genome(str(directory / "genome.fa")) as genome:
    batches = list(score_variants(model, _variants(chr1)[:4], genome,
                                  VariantScoringConfig(batch_size=3), runner=runner))
  np.testing.assert_allclose(np.concatenate([b.scores["total"]["diff"] for b in batches])[:, 0],
                             [-1, 0, 0, 0], atol=1e-6)


def test_enformer_dream_and_bias_corrected_chrombpnet(genome_dir, tmp_path):
  from tf_seqmodels.models import build_model, get_entry
  directory, chr1 = genome_dir
  variants = _variants(chr1)[:2]
  with Genome(str(directory / "genome.fa")) as genome:
    enformer = AnalysisModel(build_model("enformer", tiny_enformer_config()))
    batch = next(score_variants(enformer, variants, genome, VariantScoringConfig(window_bins=3)))
    assert batch.scores["tracks"]["diff"].shape == (2, 3)
    assert np.isfinite(batch.scores["tracks"]["log_fc"]).all()
    chrombpnet = build_model("chrombpnet", get_entry("chrombpnet").demo_config())
    corrected = AnalysisModel(chrombpnet.without_bias())
    batch = next(score_variants(corrected, variants, genome,
                                VariantScoringConfig(heads=("logcounts",), shifts=(-1, 0, 1))))
    assert batch.scores["logcounts"]["diff"].shape == (2, 1)
    # The SNV changes the bias-corrected prediction directly: recompute without averaging.
    single = next(score_variants(corrected, variants[:1], genome, VariantScoringConfig(
        heads=("logcounts",), reverse_complement=False)))
    ref, alt = variant_windows(genome, variants[0], variants[0].start, 512)
    direct = corrected.model.predict_on_batch(one_hot_indices(np.stack([ref, alt])))["logcounts"]
    assert single.scores["logcounts"]["diff"][0, 0] == pytest.approx(
        float(direct[1, 0] - direct[0, 0]), abs=1e-5)
  # DREAM: promoter SNV pairs of the model's length, encoded through the contract (6 channels).
  dream = AnalysisModel(build_model("dream_cnn", get_entry("dream_cnn").demo_config()))
  assert not dream.strand_blind  # its strand flag: the two strands are two computations
  ref = random_sequence(150, 3)
  alt = ref[:75] + _other(ref[75]) + ref[76:]
  scores = score_sequence_pairs(dream, [ref, ref], [alt, ref],
                                VariantScoringConfig(heads=("expression",)))
  assert scores["expression"]["diff"].shape == (2, 1)
  assert scores["expression"]["diff"][1, 0] == pytest.approx(0.0, abs=1e-6)
  assert scores["expression"]["diff"][0, 0] != 0.0
  # The same through the CLI's --pairs (a DREAM checkpoint + config, TSV out).
  from tf_seqmodels.cli import main
  from tf_seqmodels.convert.weights import save_checkpoint
  save_checkpoint(dream.model, str(tmp_path / "dream_ckpt"))
  get_entry("dream_cnn").demo_config().save(str(tmp_path / "dream.yaml"))
  (tmp_path / "pairs.tsv").write_text(f"id\tref_sequence\talt_sequence\nsnv1\t{ref}\t{alt}\n")
  assert main(["score-variants", "--model", str(tmp_path / "dream_ckpt"), "--model-name",
               "dream_cnn", "--model-config", str(tmp_path / "dream.yaml"), "--pairs",
               str(tmp_path / "pairs.tsv"), "--heads", "expression", "--statistics", "diff",
               "--output", str(tmp_path / "pairs_out.tsv")]) == 0
  header, row = (tmp_path / "pairs_out.tsv").read_text().splitlines()
  assert header == "id\texpression/diff/0" and row.startswith("snv1\t")
  assert float(row.split("\t")[1]) == pytest.approx(scores["expression"]["diff"][0, 0], rel=1e-4)


def test_cli_checkpoint_and_saved_model(genome_dir, tmp_path):
  from tf_seqmodels.cli import main
  from tf_seqmodels.convert.weights import save_checkpoint
  from tf_seqmodels.models import build_model, get_entry
  directory, chr1 = genome_dir
  vcf = str(tmp_path / "v.vcf")
  write_vcf(vcf, _variants(chr1)[:5])
  config = get_entry("chrombpnet").demo_config()
  model = build_model("chrombpnet", config)
  model.ensure_built()
  save_checkpoint(model, str(tmp_path / "ckpt"))
  config.save(str(tmp_path / "model.yaml"))
  out = str(tmp_path / "cli.h5")
  code = main(["score-variants", "--model", str(tmp_path / "ckpt"), "--model-name", "chrombpnet",
               "--model-config", str(tmp_path / "model.yaml"), "--without-bias", "--vcf", vcf,
               "--fasta", str(directory / "genome.fa"), "--output", out, "--heads", "logcounts",
               "--pca", "2", "--quiet"])
  assert code == 0
  with h5py.File(out) as f:
    assert f["scores/logcounts/diff"].shape == (4, 1)
    assert f["pca/logcounts/diff/projection"].shape == (4, 1)
  assert "mismatch" in open(out + ".skipped.tsv").read()
  # A SavedModel exposing predict_on_batch (as the TF-Hub exporter writes).
  toy = MotifModel()
  module = tf.Module()
  module.toy = toy
  module.predict_on_batch = tf.function(lambda x: toy(x, is_training=False),
                                        input_signature=[tf.TensorSpec([None, 256, 4], tf.float32)])
  tf.saved_model.save(module, str(tmp_path / "saved"))
  loaded = load_analysis_model(str(tmp_path / "saved"), position_axes={"signal": 1, "total": None})
  assert loaded.sequence_length == 256
  with Genome(str(directory / "genome.fa")) as genome:
    batch = next(score_variants(loaded, _variants(chr1)[:2], genome, VariantScoringConfig()))
  np.testing.assert_allclose(batch.scores["total"]["diff"][:, 0], [-1, 0], atol=1e-6)
  assert main(["score-variants", "--model", str(tmp_path / "nope"), "--vcf", vcf, "--fasta",
               str(directory / "genome.fa"), "--output", out]) == 2


_TWO_REPLICAS = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from analysis_toys import MotifModel
from tf_seqmodels.analysis import contributions as C
from tf_seqmodels.analysis.inference import AnalysisModel, BatchRunner
from tf_seqmodels.training.strategy import make_strategy
info = make_strategy("mirrored", cpu_devices=2)
with info.strategy.scope():
  model = AnalysisModel(MotifModel())
x = np.eye(4, dtype=np.float32)[np.random.default_rng(0).integers(0, 4, (5, 256))]
x[3, 100:107] = np.eye(4, dtype=np.float32)[[3, 2, 0, 1, 3, 1, 0]]
mirrored, default = BatchRunner(info), BatchRunner("default")
assert mirrored.replicas == 2
a = mirrored.predict(model, x)["total"]
np.testing.assert_allclose(a[:, 0], [0, 0, 0, 2, 0], atol=1e-6)
g = C.gradients(model, x, C.Target("total"), mirrored, batch_size=5)
np.testing.assert_allclose(g, C.gradients(model, x, C.Target("total"), default, batch_size=5))
assert (g * x)[3, 100:107].sum() == 7 and (g * x).sum() == 7
print("ok")
"""


def test_two_replica_batches_keep_order():
  import subprocess
  import sys
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  here = os.path.dirname(os.path.abspath(__file__))
  result = subprocess.run([sys.executable, "-c", _TWO_REPLICAS, here], capture_output=True,
                          text=True, timeout=300, env=env, cwd=os.path.dirname(here))
  assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]
