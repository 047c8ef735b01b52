"""Evaluation: gene-level CAGE, test-time augmentation, metrics, registry and the reports of
each model family (tiny models, hand-checked numbers)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.data.encoding import shift_sequence
from tf_seqmodels.evaluation import (EvaluationContext, Report, Section, TSSBins,
                                     TestTimeAugmentation, augmented_predict, average_precision,
                                     classification_metrics, classification_section,
                                     gene_level_cage, get_evaluator, map_tss_to_bins,
                                     r2_score, register_evaluator, regression_metrics, roc_auc,
                                     roc_curve)
from tf_seqmodels.evaluation import registry
from tf_seqmodels.evaluation.cage import GeneSums, gene_sums
from tf_seqmodels.evaluation.tracks import TrackEvaluationOptions, assay_type
from tf_seqmodels.models.base import SequenceModel
from tf_seqmodels.models.enformer import Enformer, EnformerConfig
from tf_seqmodels.tasks.chrombpnet import ChromBPNetTask, pearsonr, profile_jsd, softmax_np, spearmanr
from tf_seqmodels.tasks.dream import DreamSoftBinTask, RegressionTask
from tf_seqmodels.tasks.tracks import TrackTask


def one_hot(batch, length, seed=0):
  return np.eye(4, dtype=np.float32)[np.random.default_rng(seed).integers(0, 4, (batch, length))]


# --- gene-level CAGE ---------------------------------------------------------------------------

def test_gene_level_cage_equals_a_hand_computation():
  rng = np.random.default_rng(0)
  observed = rng.integers(0, 20, (2, 5, 3)).astype(np.float64)
  predicted = rng.integers(0, 20, (2, 5, 3)).astype(np.float64)
  # Gene A has two TSSs in neighbouring bins of window 0 (their bins are counted once), B sits
  # at the window's first bin (no left neighbour), C in window 1, D at window 0's last bin.
  tss = TSSBins(np.array(["A", "A", "B", "C", "D"]), np.array([0, 0, 1, 1, 0]),
                np.array([1, 2, 0, 3, 4]))
  cells = {"A": [(0, 0), (0, 1), (0, 2), (0, 3)], "B": [(1, 0), (1, 1)],
           "C": [(1, 2), (1, 3), (1, 4)], "D": [(0, 3), (0, 4)]}

  def by_hand(values):
    sums = np.array([[sum(values[e, b, t] for e, b in cells[g]) for t in range(3)] for g in "ABCD"])
    logged = np.log(1.0 + sums)
    return (logged - logged.mean(0)) / logged.std(0)

  obs_z, pred_z = by_hand(observed), by_hand(predicted)
  per_experiment = [np.corrcoef(obs_z[:, t], pred_z[:, t])[0, 1] for t in range(3)]
  per_gene = [np.corrcoef(obs_z[g], pred_z[g])[0, 1] for g in range(4)]

  result = gene_level_cage(observed, predicted, tss)
  assert result.genes == ["A", "B", "C", "D"]
  np.testing.assert_allclose(result.observed[0], observed[0, :4].sum(0))
  np.testing.assert_allclose(result.per_experiment, per_experiment, rtol=1e-12)
  np.testing.assert_allclose(result.per_gene, per_gene, rtol=1e-12)
  assert result.summary()["per_experiment_pearson"] == pytest.approx(np.mean(per_experiment))
  # Only the chosen CAGE tracks are used.
  only = gene_level_cage(observed, predicted, tss, tracks=[2, 0])
  np.testing.assert_allclose(only.per_experiment, [per_experiment[2], per_experiment[0]])
  # Streaming in batches gives the same sums.
  streamed = GeneSums(tss, bins=5)
  streamed.update(observed[:1], 0)
  streamed.update(observed[1:], 1)
  np.testing.assert_allclose(streamed.result()[1], gene_sums(observed, tss)[1])
  with pytest.raises(ValueError, match="outside"):
    gene_level_cage(observed, predicted, TSSBins(np.array(["A"]), np.array([0]), np.array([5])))


def test_tss_coordinates_map_to_the_most_central_window():
  tss = map_tss_to_bins(["g1", "g2", "g3", "g4"], ["chr1", "chr1", "chr2", "chr1"],
                        [100, 330, 5, 200], ["chr1", "chr1"], [0, 160], bins=5, bin_size=64)
  assert list(tss.gene) == ["g1", "g2", "g4"]  # g3's chromosome has no window
  assert list(tss.example) == [0, 1, 0] and list(tss.bin) == [1, 2, 3]


# --- test-time augmentation ----------------------------------------------------------------

class ConvTracks(SequenceModel):
  """[B, L, 4] -> {"tracks": [B, L, 2]} through a fixed random convolution; `symmetric` adds
  the reverse-complement mirror, making the model RC-equivariant by construction."""

  def __init__(self, symmetric: bool):
    super().__init__(Config(), name="conv_tracks")
    self.symmetric = symmetric
    self.kernel = tf.constant(np.random.default_rng(1).normal(size=(5, 4, 2)), tf.float32)

  input_channels = 4
  head_names = ("tracks",)
  position_axes = {"tracks": 1}
  dynamic_length = True

  def embed(self, inputs, is_training):
    return tf.nn.conv1d(inputs, self.kernel, 1, "SAME")

  def __call__(self, inputs, is_training):
    out = self.embed(inputs, is_training)
    if self.symmetric:
      out += tf.reverse(self.embed(tf.reverse(inputs, [1, 2]), is_training), [1])
    return {"tracks": out}


def test_augmentation_of_an_rc_symmetric_model_returns_its_plain_prediction():
  x = tf.constant(one_hot(3, 40))
  rc_only = TestTimeAugmentation(shifts=(0,))
  symmetric, plain = ConvTracks(True), ConvTracks(False)
  np.testing.assert_allclose(augmented_predict(symmetric, x, rc_only, {})["tracks"],
                             symmetric(x, False)["tracks"], atol=1e-5)
  assert np.abs(augmented_predict(plain, x, rc_only, {})["tracks"]
                - plain(x, False)["tracks"]).max() > 0.1
  # The default: 8 copies (2 strands x 4 shifts), each reverse copy flipped back.
  default = TestTimeAugmentation()
  assert default.copies == 8 and max(abs(s) for s in default.shifts) <= 3
  expected = 0
  for shift in default.shifts:
    shifted = shift_sequence(x.numpy(), shift)
    expected += plain(tf.constant(shifted), False)["tracks"].numpy()
    expected += plain(tf.constant(shifted[:, ::-1, ::-1].copy()), False)["tracks"].numpy()[:, ::-1]
  np.testing.assert_allclose(augmented_predict(plain, x, default, {})["tracks"], expected / 8,
                             atol=1e-5)
  with pytest.raises(ConfigError, match="distinct"):
    TestTimeAugmentation(shifts=(0, 0))


# --- generic metrics -----------------------------------------------------------------------

def test_classification_and_regression_metrics_by_hand():
  labels, scores = [1, 0, 1, 1, 0], [0.9, 0.8, 0.7, 0.3, 0.2]
  assert roc_auc(labels, scores) == pytest.approx(4 / 6)
  assert average_precision(labels, scores) == pytest.approx(1 / 3 + 2 / 9 + 1 / 4)
  metrics = classification_metrics(labels, scores)
  assert metrics["accuracy"] == pytest.approx(0.6) and metrics["n"] == 5
  fpr, tpr, _ = roc_curve(labels, scores)
  np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 0.5, 1])
  np.testing.assert_allclose(tpr, [0, 1 / 3, 1 / 3, 2 / 3, 1, 1])
  assert r2_score([1, 2, 3, 4], [1, 2, 3, 5]) == pytest.approx(0.8)
  reg = regression_metrics([1, 2, 3, 4], [2, 4, 6, 8])
  assert reg["pearson"] == pytest.approx(1.0) and reg["mse"] == pytest.approx(7.5)
  section = classification_section("expression_class", np.array(labels), np.array(scores))
  assert section.metrics["auroc"] == pytest.approx(4 / 6) and "roc_pr" in section.figures
  with pytest.raises(ValueError, match="0 or 1"):
    roc_auc([0, 2], [0.1, 0.2])


def test_registry_dispatch_and_registration(tmp_path):
  assert {"tracks", "dream_soft_bin", "regression", "chrombpnet"} <= set(registry.available_evaluators())
  with pytest.raises(ConfigError, match="no evaluator for task type 'nope'"):
    get_evaluator("nope")
  with pytest.raises(ConfigError, match="unknown key"):
    registry.evaluator_options("tracks", {"augmentations": {}})
  with pytest.raises(ValueError, match="already registered"):
    register_evaluator("tracks")(lambda context, options: None)

  @register_evaluator("unit_test_task", description="for this test")
  def evaluate(context, options):
    report = Report("unit")
    report.add_section(Section("s", metrics={"x": 1.0}))
    return report

  try:
    assert get_evaluator("unit_test_task").evaluate(None, registry.NoOptions()).metrics == {"s/x": 1.0}
  finally:
    del registry._EVALUATORS["unit_test_task"]


# --- reports per family ---------------------------------------------------------------------

TRACK_NAMES = ["CAGE:liver", "CAGE:brain", "DNASE:K562", "CHIP:H3K27ac:HepG2", "CHIP:CTCF:GM12878"]


def test_assay_types_from_descriptions():
  assert [assay_type(n) for n in TRACK_NAMES + ["ATAC:x", "RNA:y"]] == [
      "CAGE", "CAGE", "DNase/ATAC", "histone ChIP", "TF ChIP", "DNase/ATAC", "other"]
  # Keywords anywhere in free-text descriptions, any case.
  free_text = {"synthetic cage plus counts": "CAGE", "cage_minus": "CAGE",
               "liver atac-seq, rep 2": "DNase/ATAC", "K562 DNase-seq": "DNase/ATAC",
               "HepG2 H3K27ac ChIP-seq": "histone ChIP", "H2A.Z in GM12878": "histone ChIP",
               "ChIP-seq of CTCF in HepG2": "TF ChIP", "total RNA-seq": "other",
               "H3F3A expression": "other"}
  assert {d: assay_type(d) for d in free_text} == free_text


def test_tracks_report_has_all_sections_plots_and_correct_numbers(tmp_path):
  tf.random.set_seed(0)
  model = Enformer(EnformerConfig(channels=48, num_transformer_layers=1, num_heads=2,
                                  filters_divisible_by=8, heads={"tracks": 5},
                                  sequence_length=1024, target_length=4))
  x = one_hot(6, 1024)
  y = np.random.default_rng(2).gamma(1.0, 1.0, (6, 4, 5)).astype(np.float32)
  data = tf.data.Dataset.from_tensor_slices((x, {"tracks": y})).batch(4)
  tss_path = tmp_path / "tss.tsv"
  tss_path.write_text("gene\texample\tbin\nA\t0\t1\nB\t2\t3\nC\t5\t0\nA\t0\t2\n")
  augmentation = TestTimeAugmentation(shifts=(-1, 2))  # 4 copies keep the test fast
  options = TrackEvaluationOptions(augmentation=augmentation, tss=str(tss_path),
                                   plot_examples=(0, 5))
  context = EvaluationContext(model, TrackTask(("tracks",)), data, split="test",
                              data_info={"tracks": TRACK_NAMES, "bin_size": 128}, title="tiny",
                              progress=False)
  report = get_evaluator("tracks").evaluate(context, options)
  assert [s.name for s in report.sections] == ["tracks", "gene_cage", "browser"]

  # Independently of augmented_predict: the 4 copies by hand (one batch), reverse ones
  # flipped back.
  copies = []
  for shift in (-1, 2):
    shifted = shift_sequence(x, shift)
    copies += [shifted, shifted[:, ::-1, ::-1]]
  out = model(tf.constant(np.concatenate(copies)), False)["tracks"].numpy().reshape(4, 6, 4, 5)
  predicted = (out[0] + out[1][:, ::-1] + out[2] + out[3][:, ::-1]) / 4
  per_track = [np.corrcoef(y[..., t].ravel(), predicted[..., t].ravel())[0, 1] for t in range(5)]
  rows = report.section("tracks").tables["per_track"]
  np.testing.assert_allclose([r["pearson"] for r in rows], per_track, rtol=1e-4, atol=1e-5)
  metrics = report.section("tracks").metrics
  assert metrics["pearson/CAGE"] == pytest.approx(np.mean(per_track[:2]), rel=1e-4, abs=1e-5)
  assert metrics["pearson/TF ChIP"] == pytest.approx(per_track[4], rel=1e-4, abs=1e-5)
  tss = TSSBins(np.array(["A", "B", "C", "A"]), np.array([0, 2, 5, 0]), np.array([1, 3, 0, 2]))
  cage = gene_level_cage(y, predicted, tss, tracks=[0, 1])
  assert report.section("gene_cage").metrics["per_experiment_pearson"] == pytest.approx(
      np.mean(cage.per_experiment), rel=1e-4, abs=1e-5)

  paths = report.write(str(tmp_path / "report"))
  for name in ("tracks_per_track_pearson.png", "gene_cage_genes_first_experiment.png",
               "browser_example_0.png", "browser_example_5.png", "report.json", "report.md"):
    assert os.path.getsize(tmp_path / "report" / name) > 0, name
  with open(paths["json"]) as f:
    saved = json.load(f)
  assert saved["sections"][0]["metrics"]["pearson/histone ChIP"] == pytest.approx(per_track[3], abs=1e-4)
  markdown = open(paths["markdown"]).read()
  assert "## gene_cage" in markdown and "![example_5](browser_example_5.png)" in markdown


class Stub:
  """A model stand-in returning fixed functions of the inputs (evaluators use only calls)."""

  takes_dna_sequence = True
  input_channels = 4

  def __init__(self, fn):
    self.fn = fn

  def __call__(self, inputs, is_training):
    return self.fn(inputs)


class DreamLikeModel(SequenceModel):
  """DREAM's encoding (A, G, C, T, is_reverse, is_singleton; 150 nt) around a fixed function;
  decode_dna is the contract's default."""

  input_channels, head_names, sequence_length = 6, ("expression",), 150

  def __init__(self, fn):
    super().__init__(Config(), name="dream_like")
    self.fn = fn

  def encode_dna(self, one_hot, is_reverse=False):
    agct = tf.gather(tf.convert_to_tensor(one_hot, tf.float32), [0, 2, 1, 3], axis=-1)
    flag = tf.ones_like(agct[..., :1]) * float(is_reverse)
    return tf.concat([agct, flag, tf.zeros_like(flag)], axis=-1)

  def embed(self, inputs, is_training):
    return inputs

  def __call__(self, inputs, is_training):
    return self.fn(inputs)


def test_augmentation_reads_dna_through_the_models_encoding():
  from tf_seqmodels.data.encoding import reverse_complement_one_hot
  dna = one_hot(3, 150, seed=8)
  dna[0, :7] = 0.25  # N
  model = DreamLikeModel(lambda x: {"expression": tf.reduce_sum(x[..., 0] * tf.range(150.0), 1)
                                    + 3.0 * x[:, 0, 4] + x[:, 0, 5]})
  inputs = model.encode_dna(dna, is_reverse=False).numpy()
  inputs[..., 5] = 1.0  # a dataset's is_singleton flag: test sequences are encoded without it
  np.testing.assert_array_equal(model.decode_dna(inputs).numpy(), dna)
  augmentation = TestTimeAugmentation(shifts=(0, 2))
  expected = 0
  for shift in (0, 2):
    shifted = shift_sequence(dna, shift)
    expected += model(model.encode_dna(shifted, False), False)["expression"].numpy()
    expected += model(model.encode_dna(reverse_complement_one_hot(shifted), True),
                      False)["expression"].numpy()
  np.testing.assert_allclose(augmented_predict(model, tf.constant(inputs), augmentation, {})[
      "expression"], expected / 4, rtol=1e-6)
  # The DREAM models' own encoding round-trips through the default decode_dna.
  from tf_seqmodels.models.dream import DreamCNN, DreamCNNConfig
  dream = DreamCNN(DreamCNNConfig())
  encoded = dream.encode_dna(tf.constant(dna), is_reverse=True)
  np.testing.assert_array_equal(dream.decode_dna(encoded).numpy(), dna)
  class FiveChannels(Stub):
    input_channels = 5

  with pytest.raises(ConfigError, match="encode_dna"):
    augmented_predict(FiveChannels(lambda x: {}), tf.zeros([1, 8, 5]), augmentation, {})


def test_chrombpnet_report_counts_and_profile_metrics(tmp_path):
  rng = np.random.default_rng(3)
  n, width = 12, 16
  x = one_hot(n, width, seed=3)
  counts = rng.poisson(3.0, (n, width)).astype(np.float32)
  is_peak = (np.arange(n) % 3 == 0).astype(np.float32)
  data = tf.data.Dataset.from_tensor_slices((x, {
      "profile": counts, "logcounts": np.log1p(counts.sum(-1, keepdims=True)),
      "is_peak": is_peak})).batch(5)
  model = Stub(lambda x: {"profile": 2.0 * x[..., 0] - x[..., 2],
                          "logcounts": tf.reduce_sum(x[..., 1:2], axis=1) / 2.0})
  context = EvaluationContext(model, ChromBPNetTask(1.0), data, progress=False, title="stub")
  report = get_evaluator("chrombpnet").evaluate(context, registry.evaluator_options("chrombpnet"))
  observed = np.log1p(counts.sum(-1))
  predicted = x[..., 1].sum(-1) / 2.0
  peaks = is_peak.astype(bool)
  counts_metrics = report.section("counts").metrics
  assert counts_metrics["pearson/peaks"] == pytest.approx(pearsonr(observed[peaks], predicted[peaks]))
  assert counts_metrics["spearman/all"] == pytest.approx(spearmanr(observed, predicted))
  assert counts_metrics["mse/nonpeaks"] == pytest.approx(
      np.mean((observed[~peaks] - predicted[~peaks])**2), rel=1e-5)
  jsd, norm = profile_jsd(counts, softmax_np(2.0 * x[..., 0] - x[..., 2]))
  profile = report.section("profile").metrics
  assert profile["median_jsd/all"] == pytest.approx(np.nanmedian(jsd), rel=1e-5)
  assert profile["median_norm_jsd/peaks"] == pytest.approx(np.nanmedian(norm[peaks]), rel=1e-5)
  # The report's numbers are the training metrics' (one implementation).
  training = ChromBPNetTask(1.0).make_metrics()
  for metric in training.values():
    metric.update({"profile": counts, "logcounts": np.log1p(counts.sum(-1, keepdims=True)),
                   "is_peak": is_peak}, {k: np.asarray(v) for k, v in model(x, False).items()})
  for subset in ("peaks", "nonpeaks", "all"):
    for stat, name in (("pearsonr", "pearson"), ("spearmanr", "spearman"), ("mse", "mse")):
      assert counts_metrics[f"{name}/{subset}"] == pytest.approx(
          training[f"counts_{stat}_{subset}"].result(), rel=1e-6)
    assert profile[f"median_jsd/{subset}"] == pytest.approx(
        training[f"profile_median_jsd_{subset}"].result(), rel=1e-6)
  report.write(str(tmp_path))
  assert (tmp_path / "counts_scatter.png").exists() and (tmp_path / "profile_top_peaks.png").exists()


def test_dream_and_regression_reports(tmp_path):
  n = 20
  x = one_hot(n, 10, seed=4)
  measured = np.random.default_rng(4).normal(size=n).astype(np.float32)
  model = Stub(lambda x: {"expression": tf.reduce_sum(x[..., 0], axis=1),
                          "dev": tf.reduce_sum(x[..., 1], axis=1),
                          "hk": tf.reduce_sum(x[..., 2], axis=1)})
  data = tf.data.Dataset.from_tensor_slices((x, {"expression": measured,
                                                 "bin_probs": np.zeros((n, 18), np.float32)})).batch(8)
  context = EvaluationContext(model, DreamSoftBinTask(), data, progress=False, title="stub")
  report = get_evaluator("dream_soft_bin").evaluate(
      context, registry.evaluator_options("dream_soft_bin"))
  # The split is averaged over both strands too: the reverse complement's A count is the
  # forward T count.
  r = pearsonr(measured, (x[..., 0].sum(1) + x[..., 3].sum(1)) / 2)
  metrics = report.section("challenge").metrics
  assert metrics["pearson"] == pytest.approx(r, rel=1e-5)
  # Only "all" (weight 1): a partial score, never under the challenge-score name.
  assert metrics["partial_pearson_score"] == pytest.approx(r**2, rel=1e-5)
  assert "pearson_score" not in metrics and "spearman_score" not in metrics
  assert "missing: ['high'," in report.section("challenge").notes
  assert report.section("challenge").tables["subsets"][0]["subset"] == "all"

  dev, hk = (np.random.default_rng(5).normal(size=n).astype(np.float32) for _ in range(2))
  data = tf.data.Dataset.from_tensor_slices((x, {"dev": dev, "hk": hk})).batch(8)
  context = EvaluationContext(model, RegressionTask(["dev", "hk"]), data, progress=False)
  report = get_evaluator("regression").evaluate(context, registry.evaluator_options("regression"))
  rows = report.section("regression").tables["per_target"]
  assert rows[0]["r2"] == pytest.approx(r2_score(dev, x[..., 1].sum(1)), rel=1e-5)
  assert rows[1]["pearson"] == pytest.approx(pearsonr(hk, x[..., 2].sum(1)), rel=1e-5)
  paths = report.write(str(tmp_path))
  assert os.path.exists(paths["figure/regression/scatter_dev"])


def test_dream_challenge_report_from_a_test_table_with_subsets(tmp_path):
  from tf_seqmodels.data.dream import dream_test_inputs, load_challenge_subsets, load_plasmid
  from tf_seqmodels.tasks.dream import challenge_scores
  rng = np.random.default_rng(6)
  sequences = ["".join(rng.choice(list("ACGT"), 80)) for _ in range(10)]
  measured = rng.normal(size=10)
  (tmp_path / "test.txt").write_text("".join(f"{s}\t{m}\n" for s, m in zip(sequences, measured)))
  (tmp_path / "plasmid.json").write_text(json.dumps("ACGT" * 60 + "N" * 80 + "TTGCA" * 30))
  subsets = tmp_path / "subsets"
  subsets.mkdir()
  (subsets / "high_exp_seqs.csv").write_text(
      "pos,sequence\n" + "".join(f"{i},{sequences[i]}\n" for i in range(5)))
  (subsets / "all_SNVs_seqs.csv").write_text("alt_pos,ref_pos\n5,6\n7,8\n9,4\n")

  # Expression depends on the strand flag (channel 4), so the averaging is visible; the
  # evaluator knows the encoding only through encode_dna.
  model = DreamLikeModel(lambda x: {"expression": tf.reduce_sum(x[..., 0], 1) + 3.0 * x[:, 0, 4]})
  data = tf.data.Dataset.from_tensor_slices((np.zeros((1, 150, 6), np.float32),
                                             {"expression": np.zeros(1, np.float32)})).batch(1)
  context = EvaluationContext(model, DreamSoftBinTask(), data, progress=False, title="stub",
                              data_info={"data_options": {"plasmid": str(tmp_path / "plasmid.json")}})
  options = registry.evaluator_options("dream_soft_bin", {
      "test_table": str(tmp_path / "test.txt"), "subsets": str(subsets)})
  report = get_evaluator("dream_soft_bin").evaluate(context, options)
  forward, reverse = dream_test_inputs(sequences, load_plasmid(tmp_path / "plasmid.json"))
  predicted = (forward[..., 0].sum(1) + 3 * forward[:, 0, 4] + reverse[..., 0].sum(1)
               + 3 * reverse[:, 0, 4]) / 2
  expected = challenge_scores(predicted, measured, load_challenge_subsets(subsets), partial=True)
  metrics = report.section("challenge").metrics
  assert metrics["partial_pearson_score"] == pytest.approx(expected["partial_pearson_score"],
                                                           rel=1e-5)
  assert metrics["partial_spearman_score"] == pytest.approx(expected["partial_spearman_score"],
                                                            rel=1e-5)
  rows = {r["subset"]: r for r in report.section("challenge").tables["subsets"]}
  assert set(rows) == {"all", "high", "snv"} and rows["snv"]["n"] == 3
  assert rows["high"]["r2"] == pytest.approx(expected["high/pearson"]**2, rel=1e-5)
  assert {"scatter_all", "scatter_subsets"} <= set(report.section("challenge").figures)


def test_tss_table_with_genomic_positions_uses_the_split_windows(tmp_path):
  from types import SimpleNamespace

  from tf_seqmodels.data.tracks import TrackDataConfig
  from tf_seqmodels.evaluation.tracks import _tss_bins
  config = TrackDataConfig(sequence_length=1024, bin_size=128, target_length=4)
  windows = SimpleNamespace(regions=SimpleNamespace(chrom=np.array(["chr1", "chr2"]),
                                                    centre=np.array([1000, 5000]),
                                                    strand=np.array(["+", "+"])), config=config)
  context = EvaluationContext(None, None, None, split="test",
                              data_info={"windows": {"test": windows}})
  path = tmp_path / "tss.tsv"
  # Output windows start at centre - 256 (the 1,024-bp input keeps its central 4 x 128 bp).
  path.write_text("gene\tchrom\tposition\nA\tchr1\t874\nB\tchr2\t5255\nC\tchr2\t9000\n")
  tss = _tss_bins(context, str(path), bins=4)
  assert list(tss.gene) == ["A", "B"] and list(tss.example) == [0, 1] and list(tss.bin) == [1, 3]
  with pytest.raises(ConfigError, match="no window coordinates"):
    _tss_bins(EvaluationContext(None, None, None, split="valid"), str(path), bins=4)


def test_tss_in_a_minus_strand_window_lands_on_the_bin_the_data_layer_reads(tmp_path):
  """A '-' window is read reverse-complemented with its bins reversed: a TSS's coverage spike
  must sit in the bin `map_tss_to_bins` / `_tss_bins` name, on both strands."""
  import pyBigWig

  from tf_seqmodels.data.intervals import Regions
  from tf_seqmodels.data.tracks import TrackDataConfig, TrackSource, TrackSpec, load_windows
  from tf_seqmodels.evaluation.tracks import _tss_bins
  rng = np.random.default_rng(11)
  (tmp_path / "genome.fa").write_text(">chr1\n" + "".join(rng.choice(list("ACGT"), 600)) + "\n")
  tss_positions = {"P": 150, "M": 421}  # P in the '+' window, M in the '-' window
  coverage = np.zeros(600)
  coverage[150], coverage[421] = 5.0, 7.0
  bw = pyBigWig.open(str(tmp_path / "cage.bw"), "w")
  bw.addHeader([("chr1", 600)], maxZooms=0)
  bw.addEntries("chr1", 0, values=[float(v) for v in coverage], span=1, step=1)
  bw.close()
  config = TrackDataConfig(sequence_length=128, bin_size=16, target_length=4)
  regions = Regions.from_intervals(["chr1", "chr1"], [120, 400], [130, 410], strand=["+", "-"])
  with TrackSource(str(tmp_path / "genome.fa"),
                   [TrackSpec(name="cage", path=str(tmp_path / "cage.bw"))]) as source:
    windows = load_windows(source, regions, config)
  # Output windows: [93, 157) on '+' and [373, 437) read backwards on '-'.
  path = tmp_path / "tss.tsv"
  path.write_text("gene\tchrom\tposition\n" +
                  "".join(f"{g}\tchr1\t{p}\n" for g, p in tss_positions.items()))
  context = EvaluationContext(None, None, None, split="test",
                              data_info={"windows": {"test": windows}})
  tss = _tss_bins(context, str(path), bins=4)
  assert list(tss.gene) == ["P", "M"] and list(tss.example) == [0, 1]
  # Genomic bin of M is (421 - 373) // 16 = 3; reversed it is output bin 0.
  assert list(tss.bin) == [(150 - 93) // 16, 0]
  np.testing.assert_allclose(windows.targets[tss.example, tss.bin, 0], [5.0, 7.0])
  np.testing.assert_allclose(windows.targets[..., 0].sum(), 12.0)


def test_browser_plots_genomic_regions_in_genomic_orientation(tmp_path):
  """Regions "chrom:start-end" pick the window overlapping them most; a '-' window is drawn
  with its bins reversed back and its strand pair swapped back, in genomic coordinates."""
  import pyBigWig

  from tf_seqmodels.data.intervals import Regions
  from tf_seqmodels.data.tracks import TrackDataConfig, TrackSource, TrackSpec, load_windows
  rng = np.random.default_rng(12)
  (tmp_path / "genome.fa").write_text(">chr1\n" + "".join(rng.choice(list("ACGT"), 600)) + "\n")
  plus, minus = np.zeros(600), np.zeros(600)
  plus[380], minus[430] = 5.0, 2.0  # both in the '-' window's output [373, 437)
  for name, values in (("plus", plus), ("minus", minus)):
    bw = pyBigWig.open(str(tmp_path / f"{name}.bw"), "w")
    bw.addHeader([("chr1", 600)], maxZooms=0)
    bw.addEntries("chr1", 0, values=[float(v) for v in values], span=1, step=1)
    bw.close()
  tracks = [TrackSpec(name="CAGE:plus", path=str(tmp_path / "plus.bw"), strand_pair="CAGE:minus"),
            TrackSpec(name="CAGE:minus", path=str(tmp_path / "minus.bw"), strand_pair="CAGE:plus")]
  config = TrackDataConfig(sequence_length=128, bin_size=16, target_length=4)
  regions = Regions.from_intervals(["chr1", "chr1"], [120, 400], [130, 410], strand=["+", "-"])
  with TrackSource(str(tmp_path / "genome.fa"), tracks) as source:
    windows = load_windows(source, regions, config)
    permutation = source.permutation

  class Ramp(Stub):
    """Predicts bin index k + 10 x track for every window."""
    def __init__(self):
      super().__init__(lambda x: {"tracks": tf.tile(
          (tf.range(4.0)[:, None] + tf.constant([[0.0, 10.0]]))[None], [tf.shape(x)[0], 1, 1])})

  context = EvaluationContext(Ramp(), TrackTask(("tracks",)), windows.dataset(1), split="test",
                              data_info={"tracks": ["CAGE:plus", "CAGE:minus"], "bin_size": 16,
                                         "windows": {"test": windows},
                                         "permutation": permutation}, progress=False)
  options = TrackEvaluationOptions(plot_examples=(), plot_regions=("chr1:1,000-1,010",))
  with pytest.raises(ConfigError, match="overlaps no window"):
    get_evaluator("tracks").evaluate(context, options)
  with pytest.raises(ConfigError, match="chrom:start-end"):
    TrackEvaluationOptions(plot_regions=("chr1:500",))
  options = TrackEvaluationOptions(plot_examples=(), plot_regions=("chr1:420-440",))
  browser = get_evaluator("tracks").evaluate(context, options).section("browser")
  assert list(browser.figures) == ["region_chr1_420_440"]
  top, bottom = browser.figures["region_chr1_420_440"].axes
  x = top.lines[0].get_xdata()
  np.testing.assert_array_equal(x, [373, 389, 405, 421])  # genomic bin starts
  # Output bin k of the '-' window is genomic bin 3 - k, and its columns are swapped pairs:
  # the genomic "CAGE:plus" row shows output column 1 reversed.
  np.testing.assert_array_equal(top.lines[0].get_ydata(), [13, 12, 11, 10])
  np.testing.assert_array_equal(bottom.lines[0].get_ydata(), [3, 2, 1, 0])
  observed_plus = top.collections[-1].get_paths()[0].vertices[:, 1].max()
  observed_minus = bottom.collections[-1].get_paths()[0].vertices[:, 1].max()
  assert (observed_plus, observed_minus) == (5.0, 2.0)


def test_gene_sums_read_stranded_cage_in_genomic_strand_for_minus_windows(tmp_path):
  """A '-' window is read with its strand pair swapped (the + strand signal sits in the
  'minus' column); `genomic_strand_tracks` swaps it back so gene sums of the + strand CAGE
  column see the + strand signal in every window."""
  import pyBigWig

  from tf_seqmodels.data.intervals import Regions
  from tf_seqmodels.data.tracks import (TrackDataConfig, TrackSource, TrackSpec, load_windows,
                                        strand_permutation)
  from tf_seqmodels.evaluation.cage import gene_sums
  from tf_seqmodels.evaluation.tracks import _tss_bins, genomic_strand_tracks
  rng = np.random.default_rng(12)
  (tmp_path / "genome.fa").write_text(">chr1\n" + "".join(rng.choice(list("ACGT"), 600)) + "\n")
  plus, minus_strand = np.zeros(600), np.zeros(600)
  plus[150], plus[421], minus_strand[425] = 5.0, 7.0, 3.0
  for name, values in (("plus", plus), ("minus", minus_strand)):
    bw = pyBigWig.open(str(tmp_path / f"{name}.bw"), "w")
    bw.addHeader([("chr1", 600)], maxZooms=0)
    bw.addEntries("chr1", 0, values=[float(v) for v in values], span=1, step=1)
    bw.close()
  specs = [TrackSpec(name="cage_plus", path=str(tmp_path / "plus.bw"), strand_pair="cage_minus"),
           TrackSpec(name="cage_minus", path=str(tmp_path / "minus.bw"), strand_pair="cage_plus")]
  config = TrackDataConfig(sequence_length=128, bin_size=16, target_length=4)
  regions = Regions.from_intervals(["chr1", "chr1"], [120, 400], [130, 410], strand=["+", "-"])
  with TrackSource(str(tmp_path / "genome.fa"), specs) as source:
    windows = load_windows(source, regions, config)
  # As read, the '-' window holds the + strand spike (7) in the minus column.
  assert windows.targets[1, :, 1].sum() == pytest.approx(7.0)
  (tmp_path / "tss.tsv").write_text("gene\tchrom\tposition\nP\tchr1\t150\nM\tchr1\t421\n")
  context = EvaluationContext(None, None, None, split="test",
                              data_info={"windows": {"test": windows}})
  tss = _tss_bins(context, str(tmp_path / "tss.tsv"), bins=4)
  minus = np.asarray(windows.regions.strand).astype(str) == "-"
  genomic = genomic_strand_tracks(windows.targets, minus, strand_permutation(specs))
  genes, sums = gene_sums(genomic[..., [0]], tss)
  assert genes == ["P", "M"]
  np.testing.assert_allclose(sums[:, 0], [5.0, 7.0])  # + strand CAGE at both TSSs
  np.testing.assert_array_equal(genomic[0], windows.targets[0])  # '+' windows untouched
  np.testing.assert_array_equal(genomic_strand_tracks(windows.targets, minus, None),
                                windows.targets)
