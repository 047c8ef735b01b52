"""Contribution scores: ISM vs brute force, gradients vs finite differences, DeepSHAP-style
completeness, the planted motif, attention rows, outputs (HDF5, bigWig, logos), CLI."""

import os

import h5py
import numpy as np
import pyBigWig
import pytest
import tensorflow as tf

from analysis_toys import (MOTIF, MotifModel, MotifModelConfig, random_sequence,
                           tiny_enformer_config, without_motif, write_genome)
from tf_seqmodels.analysis import contributions as C
from tf_seqmodels.analysis.contribution_outputs import write_contribution_bigwig, write_modisco_h5
from tf_seqmodels.analysis.inference import AnalysisModel
from tf_seqmodels.analysis.logos import plot_contribution_logo
from tf_seqmodels.analysis.variants import allele_indices, one_hot_indices

MOTIF_AT = 120


def _sequence(seed=0, length=256):
  sequence = without_motif(random_sequence(length, seed))
  return sequence[:MOTIF_AT] + MOTIF + sequence[MOTIF_AT + len(MOTIF):]


def _one_hot(*sequences):
  return np.stack([one_hot_indices(allele_indices(s)) for s in sequences])


def test_ism_equals_brute_force_predictions():
  model = AnalysisModel(MotifModel(MotifModelConfig(smooth=True)))
  x = _one_hot(_sequence(0), _sequence(1))
  target = C.Target("signal", bins=(6, 9))
  positions = [0, 50, 118, 121, 125, 255]
  delta = C.ism(model, x, target, positions=positions, batch_size=7)
  reference = model.model.predict_on_batch(x)["signal"].numpy()[:, 6:9].sum(axis=(1, 2))
  for k in range(2):
    for i in positions:
      for b in range(4):
        mutant = x[k].copy()
        mutant[i] = np.eye(4)[b]
        value = model.model.predict_on_batch(mutant[None])["signal"].numpy()[0, 6:9].sum()
        assert delta[k, i, b] == pytest.approx(value - reference[k], abs=1e-5)
  assert np.all(delta[:, [p for p in range(256) if p not in positions]] == 0)
  assert np.all(delta[x.astype(bool)] == 0)


def test_gradient_matches_finite_differences():
  model = AnalysisModel(MotifModel(MotifModelConfig(smooth=True)))
  x = _one_hot(_sequence(2)) * 0.9 + 0.025  # an interior point: both sides of each input
  target = C.Target("total")
  grad = C.gradients(model, x, target)
  eps = 1e-2
  rng = np.random.default_rng(0)
  for i, b in zip(rng.integers(110, 135, 12), rng.integers(0, 4, 12)):
    up, down = x.copy(), x.copy()
    up[0, i, b] += eps
    down[0, i, b] -= eps
    fd = (C.predict_target(model, up, target) - C.predict_target(model, down, target))[0] / (2 * eps)
    assert grad[0, i, b] == pytest.approx(fd, rel=1e-2, abs=1e-4)
  np.testing.assert_allclose(C.gradient_x_input(model, x, target), grad * x, rtol=1e-6)


def test_contributions_highlight_the_planted_motif():
  model = AnalysisModel(MotifModel())
  x = _one_hot(_sequence(3), _sequence(4))
  target = C.Target("total")
  motif = np.arange(MOTIF_AT, MOTIF_AT + len(MOTIF))
  per_base = {
      "gradient_x_input": C.gradient_x_input(model, x, target).sum(-1),
      "deepshap": (C.deepshap(model, x, target, num_references=4, steps=8) * x).sum(-1),
      "ism": -C.ism(model, x, target, positions=range(100, 150)).sum(-1),
  }
  for name, scores in per_base.items():
    for k in range(2):
      top = np.argsort(-scores[k])[:len(MOTIF)]
      assert set(top) == set(motif), name
  # DeepSHAP-style completeness: sum of contributions = f(x) - mean f(references) (on the
  # smooth model: the midpoint rule resolves a ReLU kink only to ~1 / steps).
  model = AnalysisModel(MotifModel(MotifModelConfig(smooth=True)))
  total = (C.deepshap(model, x, target, num_references=4, steps=32, seed=0) * x).sum(axis=(1, 2))
  references = [C.predict_target(model, C.dinucleotide_shuffles(x[k], 4, k), target).mean()
                for k in range(2)]
  np.testing.assert_allclose(total, C.predict_target(model, x, target) - references, atol=0.02)


def test_profile_target_matches_formula():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 10)).astype(np.float32)
  value = C.target_value(C.Target("profile", kind="profile"), {"profile": logits}, 1).numpy()
  centred = logits - logits.mean(1, keepdims=True)
  weights = np.exp(centred) / np.exp(centred).sum(1, keepdims=True)
  np.testing.assert_allclose(value, (weights * centred).sum(1), rtol=1e-5)
  tracks = rng.normal(size=(2, 6, 3)).astype(np.float32)
  value = C.target_value(C.Target("t", tracks=(0, 2), bins=(2, 4)), {"t": tracks}, 1).numpy()
  np.testing.assert_allclose(value, tracks[:, 2:4][..., [0, 2]].sum((1, 2)), rtol=1e-5)


def test_dinucleotide_shuffle_preserves_dinucleotides():
  rng = np.random.default_rng(1)
  indices = rng.integers(0, 4, 200)
  shuffled = C.dinucleotide_shuffle(indices, rng)
  def counts(s):
    return np.bincount(4 * s[:-1] + s[1:], minlength=16)
  assert np.array_equal(counts(indices), counts(shuffled)) and shuffled[0] == indices[0]
  assert not np.array_equal(indices, shuffled)


def test_window_ism_replaces_the_enhancer():
  model = AnalysisModel(MotifModel())
  x = _one_hot(_sequence(5))
  delta = C.window_ism(model, x, C.Target("total"), [(MOTIF_AT - 5, MOTIF_AT + 12), (0, 30)],
                       replacement="N")
  np.testing.assert_allclose(delta, [[-2.0, 0.0]], atol=1e-6)
  delta = C.window_ism(model, x, C.Target("total"), [(MOTIF_AT - 20, MOTIF_AT + 27)],
                       num_samples=4)
  assert -2.0 <= delta[0, 0] <= -1.0  # shuffles destroy the motif in most samples


def test_enformer_attention_rows(tmp_path):
  from tf_seqmodels.models import build_model
  enformer = build_model("enformer", tiny_enformer_config())
  model = AnalysisModel(enformer)
  x = _one_hot(random_sequence(1024, 6), random_sequence(1024, 7))
  rows = C.attention_rows(model, x)
  weights = enformer.attention_weights(x).numpy()  # [B, layers, heads, T, T]
  assert weights.shape == (2, 1, 2, 64, 64)
  np.testing.assert_allclose(rows, weights.mean(axis=(1, 2))[:, 32], rtol=1e-5)
  np.testing.assert_allclose(rows.sum(-1), 1.0, rtol=1e-5)
  # The optional weights do not change the layer's output.
  block = enformer.transformer[0]
  stream = tf.constant(np.random.default_rng(0).normal(size=(1, 64, 24)), tf.float32)
  out, w = block.attention(stream, return_weights=True)
  np.testing.assert_allclose(out.numpy(), block.attention(stream).numpy(), rtol=1e-6)
  assert w.shape == (1, 2, 64, 64)
  # CLI: TSS-centred regions -> the centre query row of each.
  from tf_seqmodels.cli import main
  from tf_seqmodels.convert.weights import save_checkpoint
  save_checkpoint(enformer, str(tmp_path / "ckpt"))
  tiny_enformer_config().save(str(tmp_path / "enformer.yaml"))
  chrom = random_sequence(3000, 12)
  fasta = write_genome(str(tmp_path), {"chr1": chrom})
  (tmp_path / "tss.bed").write_text("chr1\t1500\t1501\n")
  assert main(["contributions", "--model", str(tmp_path / "ckpt"), "--model-name", "enformer",
               "--model-config", str(tmp_path / "enformer.yaml"), "--fasta", fasta, "--regions",
               str(tmp_path / "tss.bed"), "--method", "attention", "--output-dir",
               str(tmp_path / "out"), "--quiet"]) == 0
  saved = np.load(tmp_path / "out" / "attention.npz")
  x = _one_hot(chrom[1500 - 512:1500 + 512])
  np.testing.assert_allclose(saved["rows"], C.attention_rows(model, x), rtol=1e-5)


def test_outputs_are_readable_and_positioned(tmp_path):
  rng = np.random.default_rng(0)
  x = _one_hot(*(random_sequence(40, seed) for seed in (8, 9, 10)))
  hyp = rng.normal(size=x.shape).astype(np.float32)
  chroms, starts = ["chr1", "chr1", "chr2"], [100, 120, 5]
  h5 = str(tmp_path / "scores.h5")
  write_modisco_h5(h5, x, hyp, chroms, starts)
  with h5py.File(h5) as f:
    assert f["raw/seq"].shape == (3, 4, 40) and f["raw/seq"].dtype == np.int8
    np.testing.assert_allclose(f["projected_shap/seq"][:], (hyp * x).transpose(0, 2, 1))
    np.testing.assert_allclose(f["shap/seq"][:], hyp.transpose(0, 2, 1))
    assert list(f["regions/end"][:]) == [140, 160, 45]
  values = (hyp * x).sum(-1)
  bw_path = str(tmp_path / "contrib.bw")
  write_contribution_bigwig(bw_path, {"chr1": 1000, "chr2": 500}, chroms, starts, values)
  bw = pyBigWig.open(bw_path)
  # Regions 1 and 2 overlap on [120, 140): split at the midpoint of their centres (130).
  np.testing.assert_allclose(bw.values("chr1", 100, 130), values[0, :30], rtol=1e-6)
  np.testing.assert_allclose(bw.values("chr1", 130, 160), values[1, 10:], rtol=1e-6)
  np.testing.assert_allclose(bw.values("chr2", 5, 45), values[2], rtol=1e-6)
  assert np.isnan(bw.values("chr1", 99, 100)[0])
  bw.close()
  png = plot_contribution_logo(str(tmp_path / "logo.png"), (hyp * x)[0], title="test", start=100)
  assert os.path.getsize(png) > 1000 and open(png, "rb").read(4) == b"\x89PNG"


def test_cli_contributions_end_to_end(tmp_path):
  from tf_seqmodels.cli import main
  from tf_seqmodels.convert.weights import save_checkpoint
  from tf_seqmodels.models import build_model, get_entry
  config = get_entry("chrombpnet").demo_config()
  model = build_model("chrombpnet", config)
  model.ensure_built()
  save_checkpoint(model, str(tmp_path / "ckpt"))
  config.save(str(tmp_path / "model.yaml"))
  chrom = random_sequence(2000, 11)
  fasta = write_genome(str(tmp_path), {"chr1": chrom})
  (tmp_path / "peaks.bed").write_text("chr1\t600\t700\n"
                                      "chr1\t900\t1300\t.\t0\t.\t0\t0\t0\t100\n")
  out = tmp_path / "contrib"
  code = main(["contributions", "--model", str(tmp_path / "ckpt"), "--model-name", "chrombpnet",
               "--model-config", str(tmp_path / "model.yaml"), "--without-bias", "--fasta", fasta,
               "--regions", str(tmp_path / "peaks.bed"), "--output-dir", str(out), "--head",
               "profile", "--target-kind", "profile", "--logos", "1", "--quiet"])
  assert code == 0
  with h5py.File(out / "scores.h5") as f:
    assert f["raw/seq"].shape == (2, 4, 512)
    assert list(f["regions/start"][:]) == [650 - 256, 1000 - 256]
    projected = f["projected_shap/seq"][:].sum(1)
    raw = f["raw/seq"][:]
  assert "".join("ACGT"[i] for i in raw[0].argmax(0)) == chrom[650 - 256:650 + 256]
  # Recompute region 0 directly: gradient x input of the bias-corrected model's profile target,
  # the gradients centred across the four bases (TF-MoDISco's hypothetical scores).
  x = raw[:1].transpose(0, 2, 1).astype(np.float32)
  gradients = C.gradients(AnalysisModel(model.without_bias()), x,
                          C.Target("profile", kind="profile"))
  direct = ((gradients - gradients.mean(-1, keepdims=True)) * x).sum(-1)
  np.testing.assert_allclose(projected[:1], direct, rtol=1e-4, atol=1e-6)
  bw = pyBigWig.open(str(out / "contributions.bw"))
  np.testing.assert_allclose(bw.values("chr1", 394, 600), projected[0, :206], rtol=1e-4, atol=1e-6)
  bw.close()
  assert (out / "logo_0.png").exists()
  # Enhancer-replacement ISM over 128-bp tiles of the same regions.
  code = main(["contributions", "--model", str(tmp_path / "ckpt"), "--model-name", "chrombpnet",
               "--model-config", str(tmp_path / "model.yaml"), "--without-bias", "--fasta", fasta,
               "--regions", str(tmp_path / "peaks.bed"), "--output-dir", str(out), "--head",
               "logcounts", "--method", "window_ism", "--window-size", "128", "--replacement",
               "N", "--quiet"])
  assert code == 0
  rows = (out / "window_ism.tsv").read_text().splitlines()
  assert len(rows) == 1 + 2 * 4 and rows[1].startswith(f"chr1\t{650 - 256}\t{650 - 128}\t")
  x = raw[:1].transpose(0, 2, 1).astype(np.float32)
  expected = C.window_ism(AnalysisModel(model.without_bias()), x, C.Target("logcounts"),
                          [(0, 128)], replacement="N")[0, 0]
  assert float(rows[1].split("\t")[3]) == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_trained_toy_model_attributes_to_the_planted_motif():
  """A small conv net trained for a few seconds to detect a planted AP-1 site: gradient x
  input and ISM put the motif's bases on top."""
  import sonnet as snt
  from tf_seqmodels.models.base import SequenceModel

  class TinyConvNet(SequenceModel):
    def __init__(self):
      super().__init__(MotifModelConfig(sequence_length=64), name="tiny_conv")
      self.conv = snt.Conv1D(8, 7, name="conv")
      self.out = snt.Linear(1, name="out")

    input_channels = 4
    head_names = ("score",)

    def embed(self, inputs, is_training):
      return tf.nn.relu(self.conv(inputs))

    def __call__(self, inputs, is_training):
      return {"score": self.out(tf.reduce_max(self.embed(inputs, is_training), axis=1))}

  rng = np.random.default_rng(0)
  def batch(n):
    sequences, labels = [], []
    for _ in range(n):
      s = without_motif(random_sequence(64, int(rng.integers(1 << 30))))
      label = rng.random() < 0.5
      if label:
        at = int(rng.integers(0, 64 - len(MOTIF)))
        s = s[:at] + MOTIF + s[at + len(MOTIF):]
      sequences.append(s)
      labels.append(float(label))
    return _one_hot(*sequences), np.array(labels, np.float32)[:, None]

  tf.random.set_seed(0)
  net = TinyConvNet()
  optimizer = snt.optimizers.Adam(0.02)
  @tf.function
  def step(x, y):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, net(x, True)["score"]))
    grads = tape.gradient(loss, net.trainable_variables)
    optimizer.apply(grads, net.trainable_variables)
    return loss
  for _ in range(150):
    loss = step(*batch(64))
  x, y = batch(200)
  logits = net(x, False)["score"].numpy()
  assert float(loss) < 0.2 and np.mean((logits > 0) == (y > 0.5)) > 0.95
  model = AnalysisModel(net)
  sequences = [without_motif(random_sequence(64, 20 + k)) for k in range(2)]
  sequences = [s[:20 + 9 * k] + MOTIF + s[27 + 9 * k:] for k, s in enumerate(sequences)]
  x = _one_hot(*sequences)
  target = C.Target("score")
  for scores in (C.gradient_x_input(model, x, target).sum(-1), -C.ism(model, x, target).sum(-1)):
    for k in range(2):
      top = set(np.argsort(-scores[k])[:4])
      assert top <= set(range(20 + 9 * k, 27 + 9 * k)), (k, sorted(top))


def test_attention_of_a_model_without_attention_is_a_clear_error():
  """BPNet has no self-attention: the contract says so with NoAttentionError (a ValueError
  the CLI reports in one line), not a missing-method failure."""
  from tf_seqmodels.models.base import NoAttentionError
  from tf_seqmodels.models.registry import build_model, get_entry
  model = build_model("bpnet", get_entry("bpnet").demo_config())
  x = np.eye(4, dtype=np.float32)[np.zeros((1, model.sequence_length), int)]
  with pytest.raises(NoAttentionError, match="BPNet has no attention weights"):
    model.attention_weights(x)
  assert issubclass(NoAttentionError, ValueError)


def test_the_command_offers_every_method_and_beam_the_ones_it_can_run():
  """The CLI keeps its method lists literal (help must not import TensorFlow); they name the
  methods `analysis.hypothetical` computes, and Beam the gradient methods plus ISM."""
  from tf_seqmodels import cli_contributions
  from tf_seqmodels.analysis import hypothetical
  assert set(hypothetical.METHODS) <= set(cli_contributions.METHODS)
  assert set(cli_contributions.METHODS) - set(hypothetical.METHODS) == {"attention", "window_ism"}
  assert set(cli_contributions.BEAM_METHODS) == set(C.GRADIENT_METHODS) | {"ism"}
