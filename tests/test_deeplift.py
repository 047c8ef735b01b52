"""DeepLIFT (rescale rule): completeness on ReLU nets (toys, max pooling, BPNet / ChromBPNet),
gradient x delta on a linear model, unsupported ops, the CLI, the planted motif."""

import h5py
import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

from analysis_toys import (MOTIF, MotifModel, MotifModelConfig, random_sequence, without_motif,
                           write_genome)
from tf_seqmodels.analysis import contributions as C
from tf_seqmodels.analysis import deeplift as D
from tf_seqmodels.analysis.inference import AnalysisModel
from tf_seqmodels.analysis.variants import allele_indices, one_hot_indices
from tf_seqmodels.blocks.core import gelu_sigmoid
from tf_seqmodels.models.base import SequenceModel

MOTIF_AT = 120


def _one_hot(*sequences):
  return np.stack([one_hot_indices(allele_indices(s)) for s in sequences])


def _motif_sequence(seed, length=256):
  sequence = without_motif(random_sequence(length, seed))
  return sequence[:MOTIF_AT] + MOTIF + sequence[MOTIF_AT + len(MOTIF):]


def _pairs(x, count):
  """Each row of x repeated `count` times, against dinucleotide shuffles and random one-hots."""
  rng = np.random.default_rng(0)
  refs = np.concatenate([C.dinucleotide_shuffles(x[k], count, seed=k) for k in range(len(x))])
  refs[::2] = np.eye(4, dtype=np.float32)[rng.integers(0, 4, refs.shape[:2])][::2]
  return np.repeat(x, count, axis=0), refs


def _assert_complete(model, x, refs, target, atol=1e-4, min_delta=1e-2):
  multipliers = D.deeplift_multipliers(model, x, refs, target, batch_size=8)
  total = (multipliers * (x - refs)).sum(axis=(1, 2))
  expected = C.predict_target(model, x, target) - C.predict_target(model, refs, target)
  assert np.abs(expected).max() > min_delta  # the references do differ in f
  np.testing.assert_allclose(total, expected, atol=atol)
  return multipliers


class _ConvNet(SequenceModel):
  """A small seeded conv net: `activation`, optional max pooling, a global max or mean, and a
  linear output; with activation=None and pool="mean" it is purely linear."""

  def __init__(self, activation=tf.nn.relu, pool="max", length=64, head=None):
    super().__init__(MotifModelConfig(sequence_length=length), name="conv_net")
    self.activation = activation or (lambda t: t)
    self.pool = pool
    self.head = head
    self.conv1 = snt.Conv1D(8, 5, name="conv1", w_init=snt.initializers.RandomNormal(0.5, seed=1))
    self.conv2 = snt.Conv1D(8, 3, name="conv2", w_init=snt.initializers.RandomNormal(0.5, seed=2))
    self.out = snt.Linear(2, name="out", w_init=snt.initializers.RandomNormal(0.5, seed=3))

  input_channels = 4
  head_names = ("score",)

  def embed(self, inputs, is_training):
    x = self.activation(self.conv1(inputs))
    if self.pool == "max":
      x = tf.nn.max_pool1d(x, 4, 4, "SAME")
    else:
      x = tf.nn.avg_pool1d(x, 4, 4, "SAME")
    return self.activation(self.conv2(x))

  def __call__(self, inputs, is_training):
    features = self.embed(inputs, is_training)
    if self.head == "softmax_pool":  # attention-like pooling: softmax weights x features
      weights = tf.nn.softmax(features, axis=1)
      return {"score": self.out(tf.reduce_sum(weights * features, axis=1))}
    reduce = tf.reduce_max if self.pool == "max" else tf.reduce_mean
    return {"score": self.out(reduce(features, axis=1))}


def _built(module):
  module.ensure_built()
  return AnalysisModel(module)


def test_completeness_on_relu_toys():
  x = _one_hot(_motif_sequence(0), _motif_sequence(1))
  inputs, refs = _pairs(x, 3)
  motif = AnalysisModel(MotifModel())
  target = C.Target("signal", bins=(6, 9))
  assert D.deeplift_support(motif, target) == []
  _assert_complete(motif, inputs, refs, target)
  # ReLU + MaxPool + reduce_max (shap's max rule), two output tracks.
  net = _built(_ConvNet())
  x = _one_hot(random_sequence(64, 2), random_sequence(64, 3))
  inputs, refs = _pairs(x, 4)
  target = C.Target("score", tracks=(1,))
  assert D.deeplift_support(net, target) == []
  multipliers = _assert_complete(net, inputs, refs, target)
  # DeepLIFT is not the gradient here (the ReLUs and max pools are crossed).
  assert not np.allclose(multipliers, C.gradients(net, inputs, target), atol=1e-3)


def test_completeness_on_bpnet():
  """BPNet, ChromBPNet's bias-free model (the CLI test covers the bias-factorised wrapper)."""
  from tf_seqmodels.models import build_model, get_entry
  model = AnalysisModel(build_model("bpnet", get_entry("bpnet").demo_config()))
  x = _one_hot(random_sequence(512, 4))
  inputs, refs = _pairs(x, 4)
  assert D.deeplift_support(model, C.Target("logcounts")) == []
  # (Random weights: log counts, a mean over 500 positions, move by only ~1e-2.)
  _assert_complete(model, inputs, refs, C.Target("logcounts"), atol=1e-6, min_delta=5e-3)
  bins = C.Target("profile", bins=(100, 140))
  multipliers = _assert_complete(model, inputs, refs, bins)
  gradient = C.gradients(model, inputs, bins)  # far from complete on this ReLU net
  assert np.abs(((gradient - multipliers) * (inputs - refs)).sum(axis=(1, 2))).max() > 1.0
  # Profile target: each row keeps its own softmax weights w (a stop-gradient, as in
  # ChromBPNet), so the sum is sum_t w_t(x) (m_t(x) - m_t(ref)) of the centred logits m.
  profile = C.Target("profile", kind="profile")
  assert D.deeplift_support(model, profile) == []
  multipliers = D.deeplift_multipliers(model, inputs, refs, profile)
  def centred(one_hot):
    logits = model.model.predict_on_batch(one_hot)["profile"].numpy().astype(np.float64)
    return logits - logits.mean(1, keepdims=True)
  m_x, m_ref = centred(inputs), centred(refs)
  weights = np.exp(m_x) / np.exp(m_x).sum(1, keepdims=True)
  np.testing.assert_allclose((multipliers * (inputs - refs)).sum(axis=(1, 2)),
                             (weights * (m_x - m_ref)).sum(1), atol=1e-4)


def test_linear_model_equals_gradient_times_delta():
  net = _built(_ConvNet(activation=None, pool="mean"))
  x = _one_hot(random_sequence(64, 5), random_sequence(64, 6))
  inputs, refs = _pairs(x, 3)
  target = C.Target("score")
  assert D.deeplift_support(net, target) == []
  multipliers = _assert_complete(net, inputs, refs, target)
  gradient = C.gradients(net, inputs, target)
  np.testing.assert_allclose(multipliers * (inputs - refs), gradient * (inputs - refs),
                             atol=1e-6)
  # The hypothetical scores are then the genomics formula applied to the gradient.
  hyp = D.deeplift(net, x, target, num_references=3)
  shuffles = np.stack([C.dinucleotide_shuffles(x[k], 3, k) for k in range(2)])  # [2, R, L, 4]
  grad = C.gradients(net, x, target)[:, None]
  np.testing.assert_allclose(hyp, (grad - (shuffles * grad).sum(-1, keepdims=True)).mean(1),
                             atol=1e-6)


def test_unsupported_ops_raise_in_strict_mode():
  net = _built(_ConvNet(activation=gelu_sigmoid, pool="mean", head="softmax_pool"))
  x = _one_hot(random_sequence(64, 7))
  target = C.Target("score")
  problems = D.deeplift_support(net, target)
  kinds = {(p.op_type, p.reason) for p in problems}
  assert ("Mul", "a product of two input-dependent tensors (multiplicative interaction)") in kinds
  assert any(op_type == "Softmax" for op_type, _ in kinds)
  with pytest.raises(D.UnsupportedOpsError, match="without a DeepLIFT rule") as error:
    D.deeplift(net, x, target, num_references=2)
  assert "Mul x" in str(error.value) and "Softmax x1" in str(error.value)
  with pytest.warns(UserWarning, match="completeness"):
    hyp = D.deeplift(net, x, target, num_references=2, strict=False)
  assert hyp.shape == x.shape and np.all(np.isfinite(hyp)) and np.abs(hyp).max() > 0


def test_cli_deeplift_writes_the_python_api_arrays(tmp_path, capsys):
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
  (tmp_path / "peaks.bed").write_text("chr1\t600\t700\nchr1\t900\t1300\n")
  common = ["contributions", "--model", str(tmp_path / "ckpt"), "--model-name", "chrombpnet",
            "--model-config", str(tmp_path / "model.yaml"), "--fasta", fasta, "--regions",
            str(tmp_path / "peaks.bed"), "--head", "logcounts", "--method", "deeplift",
            "--references", "3", "--logos", "0", "--quiet"]
  out = tmp_path / "contrib"
  assert main(common + ["--without-bias", "--output-dir", str(out)]) == 0
  with h5py.File(out / "scores.h5") as f:
    hyp = f["shap/seq"][:].transpose(0, 2, 1)
    x = f["raw/seq"][:].transpose(0, 2, 1).astype(np.float32)
    assert f.attrs["method"] == "deeplift"
  expected = D.deeplift(AnalysisModel(model.without_bias()), x, C.Target("logcounts"),
                        num_references=3)
  np.testing.assert_allclose(hyp, expected, rtol=1e-5, atol=1e-6)
  # The full bias-factorised model fails strict mode with a clear error: the frozen bias
  # branch and logsumexp's max sit behind stop-gradients of input-dependent tensors.
  assert main(common + ["--output-dir", str(tmp_path / "full")]) == 2
  error = capsys.readouterr().err
  assert "without a DeepLIFT rule" in error and "StopGradient x2" in error


def test_deeplift_highlights_the_planted_motif():
  model = AnalysisModel(MotifModel())
  x = _one_hot(_motif_sequence(3), _motif_sequence(4))
  target = C.Target("total")
  hyp = D.deeplift(model, x, target, num_references=4)
  projected = (hyp * x).sum(-1)  # [2, L]
  motif = set(range(MOTIF_AT, MOTIF_AT + len(MOTIF)))
  for k in range(2):
    assert set(np.argsort(-projected[k])[:len(MOTIF)]) == motif
  # Completeness of the reference average: sum = f(x) - mean_r f(r), exactly.
  references = [C.predict_target(model, C.dinucleotide_shuffles(x[k], 4, k), target).mean()
                for k in range(2)]
  np.testing.assert_allclose(projected.sum(1), C.predict_target(model, x, target) - references,
                             atol=1e-4)
  # The smooth (softplus) motif model is covered by the rescale rule too.
  smooth = AnalysisModel(MotifModel(MotifModelConfig(smooth=True)))
  inputs, refs = _pairs(x, 2)
  _assert_complete(smooth, inputs, refs, target)
