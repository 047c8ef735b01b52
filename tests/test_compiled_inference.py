"""The compiled (XLA) inference path equals graph mode, and bucketing bounds the compiles."""

import numpy as np
import pytest
import tensorflow as tf

from tf_seqmodels.analysis.inference import (AnalysisModel, BatchRunner, CompiledFunction,
                                             batch_bucket, compiled_function, compiled_predictor,
                                             use_xla, xla_default)
from tf_seqmodels.models import build_model, get_entry
from tf_seqmodels.models.enformer import EnformerConfig
from weight_perturbation import perturb_weights

# Attention pooling and the asymmetric relative-position basis: every Enformer op at work.
TINY_ENFORMER = EnformerConfig(channels=48, num_transformer_layers=2, num_heads=2,
                               filters_divisible_by=8, heads={"tracks": 3},
                               sequence_length=1024, target_length=4)


@pytest.fixture(autouse=True)
def _xla_on(monkeypatch):
  """The suite runs graph mode (conftest); these tests check the users' default, XLA."""
  monkeypatch.setenv("TF_SEQMODELS_XLA", "1")


def _one_hot(batch, length, channels=4, seed=0):
  rng = np.random.default_rng(seed)
  return np.eye(channels, dtype=np.float32)[rng.integers(0, channels, (batch, length))]


def _assert_close(a, b, scale=None):
  for head in a:
    reference = np.abs(b[head]).max() if scale is None else scale
    np.testing.assert_allclose(a[head], b[head], atol=1e-5 * max(1.0, reference), rtol=1e-5,
                               err_msg=head)


def test_batch_buckets_are_powers_of_two():
  assert [batch_bucket(b) for b in (1, 2, 3, 4, 5, 63, 64, 65)] == [1, 2, 4, 4, 8, 64, 64, 128]
  with pytest.raises(ValueError, match="at least one example"):
    batch_bucket(0)


def test_xla_enformer_equals_graph_and_eager():
  model = build_model("enformer", TINY_ENFORMER)
  model.ensure_built()
  perturb_weights(model, seed=1)  # a fresh model's attention output projection is zero
  x = _one_hot(3, 1024)
  eager = {k: v.numpy() for k, v in model(tf.constant(x), is_training=False).items()}
  graph = compiled_predictor(model, jit_compile=False)(x)
  xla = compiled_predictor(model, jit_compile=True)(x)
  assert compiled_predictor(model, jit_compile=True).jit_compile
  assert xla["tracks"].shape == (3, 4, 3) and np.abs(eager["tracks"]).max() > 0
  _assert_close(graph, eager)
  _assert_close(xla, eager)


@pytest.mark.parametrize("name", ["dream_cnn", "dream_rnn", "dream_attn"])
def test_xla_dream_equals_graph(name):
  model = build_model(name, get_entry(name).demo_config())
  model.build()
  perturb_weights(model, seed=2)
  x = _one_hot(5, model.config.sequence_length, model.config.input_channels)
  eager = {k: v.numpy() for k, v in model(tf.constant(x), is_training=False).items()}
  xla = compiled_predictor(model, jit_compile=True)(x)
  assert set(xla) == set(eager) and xla["expression"].shape == (5,)
  _assert_close(xla, eager)


def test_bucketing_bounds_the_compiles_and_drops_the_padding():
  calls = []

  def fn(x):
    calls.append(x.shape)  # runs once per trace
    return {"sum": tf.reduce_sum(x, axis=[1, 2]), "first": x[:, 0]}

  compiled = CompiledFunction(fn, jit_compile=True)
  data = _one_hot(48, 16, seed=3)
  start = 0
  for size in (8, 8, 5, 8, 3, 7, 8, 1):
    out = compiled(data[start:start + size])
    np.testing.assert_allclose(out["sum"], data[start:start + size].sum(axis=(1, 2)))
    np.testing.assert_array_equal(out["first"], data[start:start + size, 0])
    start += size
  # Batches of 8, 5, 3, 7 and 1 compile for buckets 8, 4 and 1 only.
  assert compiled.compiles == 3 == len(calls)
  assert sorted(s[0][0] for s in compiled.shapes) == [1, 4, 8]
  # A nest of inputs (multi-input models) is padded as one batch.
  nested = CompiledFunction(lambda d: d["a"] + tf.cast(d["b"], tf.float32)[:, :, None],
                            jit_compile=False)
  out = nested({"a": np.ones((3, 2, 1), np.float32), "b": np.full((3, 2), 2, np.int32)})
  np.testing.assert_array_equal(out, np.full((3, 2, 1), 3.0, np.float32))


def test_runner_forward_passes_use_xla_unless_disabled(monkeypatch):
  model = AnalysisModel(build_model("dream_rnn", get_entry("dream_rnn").demo_config()))
  x = _one_hot(3, 150)
  assert use_xla(model) and use_xla(model.model)
  # DREAM-CNN's LegNet core runs faster in graph mode: it opts out.
  assert not use_xla(build_model("dream_cnn", get_entry("dream_cnn").demo_config()))
  runner = BatchRunner()
  assert xla_default()
  xla = runner.predict(model, x)
  fn = model._runner_fns[("predict", False)]  # pylint: disable=protected-access
  assert compiled_function(fn).jit_compile and compiled_function(fn).compiles == 1
  monkeypatch.setenv("TF_SEQMODELS_XLA", "0")
  assert not xla_default()
  graph = runner.predict(model, x)
  assert not compiled_function(fn).jit_compile
  _assert_close(xla, graph)


def test_exports_carry_the_compiled_path_with_parity(tmp_path):
  """A SavedModel exported with XLA on: its forward functions are compiled, the export's
  parity check (live model vs reloaded SavedModel, every entry point) passes, and a reload
  predicts what the live model does."""
  from tf_seqmodels.export.hub import HubExportConfig, export_hub
  model = build_model("enformer", TINY_ENFORMER)
  model.ensure_built()
  perturb_weights(model, seed=4)
  result = export_hub(model, str(tmp_path / "hub"), HubExportConfig(tarball=False))
  loaded = tf.saved_model.load(result.savedmodel)
  x = _one_hot(2, 1024, seed=5)
  served = loaded.model.predict_on_batch(tf.constant(x))
  live = model(tf.constant(x), is_training=False)
  _assert_close({k: served[k].numpy() for k in live}, {k: v.numpy() for k, v in live.items()})
