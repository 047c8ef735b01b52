"""Chromoformer model: shapes, reference defaults, masks and the Hi-C attention bias."""

import numpy as np
import pytest
import tensorflow as tf

from tf_seqmodels.data.encoding import SequenceError
from tf_seqmodels.models.base import num_trainable_parameters
from tf_seqmodels.models.chromoformer import (Chromoformer, ChromoformerConfig, demo_config,
                                              input_shapes, regulation_attention)
from tf_seqmodels.models.registry import build_model

TINY = ChromoformerConfig(num_marks=3, bin_sizes=(400, 100), window_size=800, max_pcres=3,
                          channels=8, embedding_hidden=8, pairwise_layers=1, pairwise_hidden=8,
                          regulation_layers=2, regulation_heads=2, regulation_attention_size=8,
                          regulation_hidden=8, head_hidden=8)


def random_inputs(config, batch=4, seed=0, absent_slot=None, pad=True):
  """Random inputs; pCRE slot `absent_slot` is absent; pCREs have padded edge bins."""
  rng = np.random.default_rng(seed)
  x = {k: rng.random((batch,) + s).astype(np.float32) for k, s in input_shapes(config).items()}
  for size in config.bin_sizes:
    bins = config.num_bins(size)
    x[f"promoter_mask_{size}"][:] = 1.0
    x[f"pcre_mask_{size}"][:] = 1.0
    if pad and bins >= 4:
      x[f"promoter_mask_{size}"][:, 0] = 0.0  # a padded promoter bin (away from the centre)
      x[f"pcre_mask_{size}"][:, :, :1] = 0.0
      x[f"pcre_mask_{size}"][:, :, -1:] = 0.0
  x["pcre_present"][:] = 1.0
  if absent_slot is not None:
    x["pcre_present"][:, absent_slot] = 0.0
    for size in config.bin_sizes:
      x[f"pcre_mask_{size}"][:, absent_slot] = 0.0
  x["interaction_freq"][:] = 0.0
  x["interaction_freq"][:, 0, 1:] = rng.uniform(1.5, 3.0, (batch, config.max_pcres))
  return x


@pytest.fixture(scope="module")
def tiny_model():
  tf.random.set_seed(1)
  model = Chromoformer(TINY)
  model.build()
  return model


def predict(model, x):
  return model.predict_on_batch(x)["logits"].numpy()


def test_shapes_heads_and_input_spec(tiny_model):
  spec = tiny_model.input_spec()
  assert set(spec) == set(input_shapes(TINY))
  assert spec["pcre_100"].shape.as_list() == [None, 3, 8, 3]
  assert spec["interaction_freq"].shape.as_list() == [None, 4, 4]
  assert not tiny_model.takes_dna_sequence
  x = random_inputs(TINY, batch=5)
  out = tiny_model.predict_on_batch(x)
  assert tiny_model.head_names == ("logits",) and out["logits"].shape == (5, 2)
  assert tiny_model.embed({k: tf.constant(v) for k, v in x.items()}).shape == (5, 16)
  regressor = Chromoformer(TINY.replace(mode="regression"))
  assert regressor.head_names == ("expression",)
  assert regressor({k: tf.constant(v) for k, v in x.items()})["expression"].shape == (5,)


def test_registry_demo_config_builds_and_runs():
  model = build_model("chromoformer", demo_config())
  # Eager: tracing the model once costs more than this check.
  out = model({k: tf.constant(v) for k, v in random_inputs(model.config, batch=2).items()})
  assert out["logits"].shape == (2, 2) and np.all(np.isfinite(out["logits"]))


def test_defaults_match_the_reference_architecture():
  config = ChromoformerConfig()
  assert (config.num_marks, config.bin_sizes, config.window_size, config.max_pcres) == (
      7, (2000, 500, 100), 40000, 8)
  assert {k: v for k, v in input_shapes(config).items() if k.endswith("_100")} == {
      "promoter_100": (400, 7), "promoter_mask_100": (400,), "pcre_100": (8, 400, 7),
      "pcre_mask_100": (8, 400)}
  # Parameters of dohlee/chromoformer's ChromoformerClassifier that take part in the forward
  # pass (its unused per-attention `w_bias`, non-regulation `gamma_f` and the pairwise
  # transformer's unused LayerNorm are left out), from the module definitions.
  d, f, ln = 128, 7, 2 * 128
  embedding = d * f + (d * 3 * d + d * d + d + ln) + (d * d + d + d * d + d + ln)
  pairwise = d * d + d * f + 2 * ((d * d + d * 2 * d + d * d + d + ln)
                                  + (d * 256 + 256 + 256 * d + d + ln))
  regulation = 6 * ((d * 4 * 256 + 256 * d + d + ln + 8) + (d * 256 + 256 + 256 * d + d + ln))
  head = 3 * d * 128 + 128 + 128 * 2 + 2
  # Parameter shapes depend on neither the window nor the pCRE slots: a short window with
  # the default widths builds fast.
  model = Chromoformer(config.replace(window_size=400, bin_sizes=(200, 50, 10), max_pcres=1))
  model.build()
  assert num_trainable_parameters(model) == 3 * (embedding + pairwise + regulation) + head


def test_check_inputs_names_the_problem(tiny_model):
  x = random_inputs(TINY, batch=2)
  missing = dict(x)
  del missing["pcre_present"]
  with pytest.raises(SequenceError, match="missing.*pcre_present"):
    tiny_model.predict_on_batch(missing)
  wrong = dict(x, pcre_100=x["pcre_100"][:, :2])
  with pytest.raises(SequenceError, match="pcre_100"):
    tiny_model.predict_on_batch(wrong)
  with pytest.raises(SequenceError, match="unknown inputs"):
    tiny_model.check_inputs(dict(x, extra=x["pcre_present"]))
  with pytest.raises(SequenceError, match="dict of inputs"):
    tiny_model.check_inputs(np.zeros((2, 8, 3)))


def test_padded_bins_do_not_change_the_output(tiny_model):
  x = random_inputs(TINY)
  before = predict(tiny_model, x)
  changed = {k: v.copy() for k, v in x.items()}
  rng = np.random.default_rng(5)
  for size in TINY.bin_sizes:
    promoter_pad = changed[f"promoter_mask_{size}"] == 0
    changed[f"promoter_{size}"][promoter_pad] = rng.random((promoter_pad.sum(), 3)) * 10
    pcre_pad = changed[f"pcre_mask_{size}"] == 0
    changed[f"pcre_{size}"][pcre_pad] = rng.random((pcre_pad.sum(), 3)) * 10
  np.testing.assert_allclose(predict(tiny_model, changed), before, atol=1e-5)
  # The same change to real bins does change the output (the check is not vacuous).
  real = {k: v.copy() for k, v in x.items()}
  real["pcre_100"][:, 0, 3] += 5.0
  assert np.abs(predict(tiny_model, real) - before).max() > 1e-3


def test_absent_pcres_do_not_change_the_output(tiny_model):
  x = random_inputs(TINY, absent_slot=2)
  before = predict(tiny_model, x)
  changed = {k: v.copy() for k, v in x.items()}
  for size in TINY.bin_sizes:
    changed[f"pcre_{size}"][:, 2] = 7.0
  changed["interaction_freq"][:, 0, 3] = 100.0
  changed["interaction_freq"][:, 3, :] = -3.0
  np.testing.assert_allclose(predict(tiny_model, changed), before, atol=1e-5)
  # Removing a present pCRE changes it.
  removed = {k: v.copy() for k, v in x.items()}
  removed["pcre_present"][:, 0] = 0.0
  assert np.abs(predict(tiny_model, removed) - before).max() > 1e-3


def test_hic_bias_adds_gamma_times_frequency_to_the_logits(tiny_model):
  x = random_inputs(TINY, batch=2, absent_slot=2)
  zero = dict(x, interaction_freq=np.zeros_like(x["interaction_freq"]))
  attention = tiny_model.regulation[tiny_model.resolution(100)].layers[0].attention
  gamma = np.array([1.0, 2.5], np.float32)
  attention.gamma.assign(gamma)
  try:
    with_bias = regulation_attention(tiny_model, x, 100).numpy()  # [B, H, 4, 4]
    without = regulation_attention(tiny_model, zero, 100).numpy()
  finally:
    attention.gamma.assign(np.ones(2, np.float32))
  valid = [0, 1, 2]  # promoter + two present pCREs; slot 3 (pCRE 2) is absent
  freq = x["interaction_freq"][:, 0, valid]
  # log softmax(l + g F) - log softmax(l) = g F - const(row): the same for every valid key.
  shift = np.log(with_bias[:, :, 0, valid]) - np.log(without[:, :, 0, valid])
  residual = shift - gamma[None, :, None] * freq[:, None, :]
  np.testing.assert_allclose(residual - residual[..., :1], 0.0, atol=1e-4)
  # Masked (absent) tokens get no attention; rows sum to one.
  assert with_bias[:, :, :3, 3].max() < 1e-6
  np.testing.assert_allclose(with_bias.sum(-1), 1.0, atol=1e-5)
  stacked = tiny_model.attention_weights(x).numpy()  # 2 resolutions x 2 layers
  assert stacked.shape == (2, 4, 2, 4, 4)
  np.testing.assert_allclose(stacked[:, 2], regulation_attention(tiny_model, x, 100).numpy(),
                             atol=1e-6)
  # A larger frequency draws more attention from the promoter to that pCRE.
  stronger = {k: v.copy() for k, v in x.items()}
  stronger["interaction_freq"][:, 0, 1] += 2.0
  assert np.all(regulation_attention(tiny_model, stronger, 100).numpy()[:, :, 0, 1]
                > with_bias[:, :, 0, 1])


def test_gradients_reach_every_variable_including_gamma():
  model = Chromoformer(TINY)
  x = {k: tf.constant(v) for k, v in random_inputs(TINY, batch=3).items()}
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(model(x, is_training=True)["logits"] ** 2)
  grads = tape.gradient(loss, model.trainable_variables)
  names = [v.name for v, g in zip(model.trainable_variables, grads) if g is None]
  assert not names
  assert any("gamma" in v.name for v in model.trainable_variables)
