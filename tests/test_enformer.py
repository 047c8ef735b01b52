"""Enformer: published shapes and parameter count, dynamic lengths, errors, reference equivalence."""

import json

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

from tf_seqmodels import Enformer, EnformerConfig, SequenceError, build_model, one_hot_encode
from tf_seqmodels.blocks.attention import positional_features, relative_shift
from tf_seqmodels.config import ConfigError
from tf_seqmodels.convert import (WeightImportError, load_enformer, load_reference_weights,
                                  reference_layout, reference_variable_map,
                                  save_reference_checkpoint)
from tf_seqmodels.models import num_trainable_parameters

FIXTURE_TAG = "c384_l2_h8_attention_L2048_t8_s0"
FIXTURE_CONFIG = EnformerConfig(channels=384, num_transformer_layers=2, num_heads=8,
                                pooling_type="attention", target_length=8, sequence_length=2048)
# A tiny but structurally complete Enformer: 7 halvings -> 128-bp bins.
TINY = EnformerConfig(channels=48, num_transformer_layers=1, num_heads=2, filters_divisible_by=8,
                      heads={"human": 5, "mouse": 3}, sequence_length=1024, target_length=4)


def random_one_hot(batch, length, seed=0):
  rng = np.random.default_rng(seed)
  return np.eye(4, dtype=np.float32)[rng.integers(0, 4, (batch, length))]


def relative_error(actual, expected):
  return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


@pytest.mark.slow
def test_published_defaults_parameter_count_and_shapes():
  model = Enformer()
  assert model.config.sequence_length == 196_608 and model.config.target_length == 896
  heads = snt.build(lambda x: model(x, is_training=False), tf.TensorSpec([None, 196_608, 4]))
  assert {k: v.shape.as_list() for k, v in heads.items()} == {
      "human": [None, 896, 5313], "mouse": [None, 896, 1643]}
  assert num_trainable_parameters(model) == 251_221_292
  assert len(model.trainable_variables) == 245 and len(model.variables) == 329
  # The heads read the [B, 896, 3072] trunk embedding.
  assert model.heads["human"].linear.w.shape == (3072, 5313)
  # Published breakdown: trunk 229,845,504 + heads 21,375,788.
  head_params = sum(v.shape.num_elements() for h in model.heads.values() for v in h.variables)
  assert head_params == 21_375_788


def test_conv_tower_widths_match_reference():
  assert EnformerConfig().conv_tower_filters == [768, 896, 1024, 1152, 1280, 1536]
  assert FIXTURE_CONFIG.conv_tower_filters == [256, 256, 256, 256, 384, 384]


def test_small_config_shapes_dynamic_batch_and_length():
  model = Enformer(TINY)
  for batch, length in [(1, 1024), (3, 2048)]:
    x = tf.constant(random_one_hot(batch, length))
    out = model(x, is_training=False)
    assert out["human"].shape == (batch, 4, 5) and out["mouse"].shape == (batch, 4, 3)
    assert model.embed(x, is_training=False).shape == (batch, 4, 96)
    assert np.all(out["human"].numpy() >= 0)  # softplus heads
  # One traced function serves every batch size and valid length.
  traced = tf.function(lambda x: model(x, is_training=False),
                       input_signature=[tf.TensorSpec([None, None, 4], tf.float32)])
  for batch, length in [(2, 1024), (1, 3072)]:
    out = traced(tf.constant(random_one_hot(batch, length)))
    assert out["human"].shape == (batch, 4, 5)
  assert len(traced._list_all_concrete_functions()) == 1


def test_no_crop_and_max_pooling_variants():
  model = Enformer(TINY.replace(target_length=None, pooling_type="max"))
  out = model(tf.constant(random_one_hot(2, 2048)), is_training=False)
  assert out["human"].shape == (2, 16, 5)
  assert not any("logit_linear" in v.name for v in model.variables)


def test_training_mode_updates_batch_norm_statistics_and_gradients_flow():
  model = Enformer(TINY)
  x = tf.constant(random_one_hot(2, 1024))
  with tf.GradientTape() as tape:
    out = model(x, is_training=True)
    loss = tf.reduce_mean(out["human"]) + tf.reduce_mean(out["mouse"])
  grads = tape.gradient(loss, model.trainable_variables)
  assert all(g is not None for g in grads)
  counter = model.stem.pointwise.module.norm.moving_mean._counter
  assert int(counter.numpy()) == 1
  # Dropout is active in training and off at inference.
  a = model(x, is_training=True)["human"].numpy()
  b = model(x, is_training=True)["human"].numpy()
  assert not np.allclose(a, b)
  np.testing.assert_array_equal(model(x, is_training=False)["human"].numpy(),
                                model(x, is_training=False)["human"].numpy())


def test_invalid_inputs_raise_clear_errors():
  model = Enformer(TINY)
  with pytest.raises(SequenceError, match="multiple of 128"):
    model(tf.zeros([1, 1000, 4]), is_training=False)
  with pytest.raises(SequenceError, match="fewer than target_length 4"):
    model(tf.zeros([1, 384, 4]), is_training=False)
  with pytest.raises(SequenceError, match="4 channels"):
    model(tf.zeros([1, 1024, 5]), is_training=False)
  with pytest.raises(SequenceError, match="rank 2"):
    model.predict_on_batch(np.zeros([1024, 4], np.float32))
  traced = tf.function(lambda x: model(x, is_training=False),
                       input_signature=[tf.TensorSpec([None, None, 4], tf.float32)])
  with pytest.raises(tf.errors.InvalidArgumentError, match="multiple of 128"):
    traced(tf.zeros([1, 1000, 4]))


def test_predict_on_batch_from_encoded_strings():
  model = Enformer(TINY)
  rng = np.random.default_rng(1)
  seqs = ["".join(rng.choice(list("ACGTN"), 1024)) for _ in range(2)]
  out = model.predict_on_batch(one_hot_encode(seqs))
  assert set(out) == {"human", "mouse"} and out["human"].shape == (2, 4, 5)


def test_config_round_trip_and_validation(tmp_path):
  cfg = TINY.replace(relative_position_functions=("exponential", "gamma"))
  for suffix in ("yaml", "json"):
    path = tmp_path / f"enformer.{suffix}"
    cfg.save(path)
    assert EnformerConfig.load(path) == cfg
  assert EnformerConfig.from_json(EnformerConfig().to_json()) == EnformerConfig()
  assert build_model("enformer", json.loads(TINY.to_json())).config == TINY
  with pytest.raises(ConfigError, match="unknown key"):
    EnformerConfig.from_dict({"chanels": 768})
  with pytest.raises(ConfigError, match="divisible by 6"):
    EnformerConfig(channels=256)
  with pytest.raises(ConfigError, match="end at channels"):
    EnformerConfig(channels=192, num_heads=4, filters_divisible_by=128)
  with pytest.raises(ConfigError, match="pooling_type"):
    EnformerConfig(pooling_type="mean")
  with pytest.raises(ConfigError, match="sequence_length"):
    EnformerConfig(sequence_length=100_000)
  with pytest.raises(ConfigError, match="expected an integer"):
    EnformerConfig.from_dict({"channels": "1536"})


def test_relative_shift_indexes_distance_j_minus_i():
  t = 5
  distances = np.arange(-t + 1, t)  # column c of the unshifted logits is distance c - (t - 1)
  logits = np.broadcast_to(distances, (1, 1, t, 2 * t - 1)).astype(np.float32)
  shifted = relative_shift(tf.constant(logits)).numpy()[0, 0]
  expected = np.arange(t)[None, :] - np.arange(t)[:, None]
  np.testing.assert_array_equal(shifted, expected)


def test_positional_features_shapes_and_symmetry():
  t = 16
  d = tf.range(-t + 1, t, dtype=tf.float32)[tf.newaxis]
  feats = positional_features(d, 48, t).numpy()[0]
  assert feats.shape == (2 * t - 1, 48)
  np.testing.assert_allclose(feats[:, :24], feats[::-1, :24])  # symmetric half
  np.testing.assert_allclose(feats[:, 24:], -feats[::-1, 24:], atol=0)  # sign-flipped half
  gamma = feats[:, 16:24]
  np.testing.assert_allclose(gamma.max(axis=0), 1.0, rtol=1e-6)  # per-basis normalisation
  with pytest.raises(ValueError, match="divisible by 6"):
    positional_features(d, 50, t)


def _fixture(shared, suffix):
  return shared("fixtures", "enformer", f"{FIXTURE_TAG}_{suffix}")


def _assert_matches_fixture(model, io):
  x = tf.constant(io["input"])
  stages = model.trunk_stages(x, is_training=False)
  for stage, value in stages.items():
    assert relative_error(value.numpy(), io[f"stage/{stage}"]) < 1e-4, stage
  np.testing.assert_array_equal(stages["final_pointwise"].numpy(),
                                model.embed(x, is_training=False).numpy())
  out = model.predict_on_batch(io["input"])
  for head in ("human", "mouse"):
    assert relative_error(out[head].numpy(), io[head]) < 1e-4, head


@pytest.fixture(scope="module")
def fixture_model_and_io():
  from conftest import shared_path
  io = dict(np.load(shared_path("fixtures", "enformer", f"{FIXTURE_TAG}_io.npz")))
  config = json.loads(
      shared_path("fixtures", "enformer", f"{FIXTURE_TAG}_config.json").read_text())
  assert (config["channels"], config["layers"], config["heads"], config["target_length"]) == (
      384, 2, 8, 8)
  model = Enformer(FIXTURE_CONFIG)
  load_reference_weights(
      model, shared_path("fixtures", "enformer", f"{FIXTURE_TAG}_variables.npz"))
  return model, io


def test_reference_fixture_equivalence_from_npz(fixture_model_and_io, shared):
  model, io = fixture_model_and_io
  assert num_trainable_parameters(model) == 11_926_956
  assert len(model.variables) == 185 and len(model.trainable_variables) == 101
  # The mapping covers exactly the variables the reference TSV lists, checkpoint keys included.
  rows = _fixture(shared, "variables.tsv").read_text().splitlines()[1:]
  listed = {r.split("\t")[0]: r.split("\t")[2] for r in rows}
  assert set(listed) == set(reference_variable_map(model))
  assert listed["_heads.human._layers.0.b"] == (
      "module/_heads/human/_layers/0/b/.ATTRIBUTES/VARIABLE_VALUE")
  _assert_matches_fixture(model, io)


def test_reference_fixture_equivalence_from_checkpoint_and_savedmodel(
    fixture_model_and_io, tmp_path):
  model, io = fixture_model_and_io
  # A checkpoint in the published layout (keys module/...), read as a prefix and as a dir.
  prefix = save_reference_checkpoint(model, str(tmp_path / "ckpt" / "enformer"))
  reloaded = load_enformer(prefix, FIXTURE_CONFIG)
  _assert_matches_fixture(reloaded, io)
  reloaded = load_enformer(str(tmp_path / "ckpt"), FIXTURE_CONFIG)
  _assert_matches_fixture(reloaded, io)
  # A SavedModel whose root holds the Enformer under `.model` (the TF-Hub convention):
  # the module prefix inside its variables/ checkpoint is detected.
  root = tf.Module()
  root.model = reference_layout(model)
  tf.saved_model.save(root, str(tmp_path / "savedmodel"))
  for path in (tmp_path / "savedmodel", tmp_path / "savedmodel" / "variables"):
    reloaded = load_enformer(str(path), FIXTURE_CONFIG)
    _assert_matches_fixture(reloaded, io)


def test_weight_import_errors(fixture_model_and_io, shared, tmp_path):
  variables = _fixture(shared, "variables.npz")
  with pytest.raises(WeightImportError, match="shape mismatches"):
    load_enformer(variables, FIXTURE_CONFIG.replace(heads={"human": 10, "mouse": 1643}))
  with pytest.raises(WeightImportError, match="unused"):
    load_enformer(variables, FIXTURE_CONFIG.replace(heads={"human": 5313}))
  human_only = load_enformer(variables, FIXTURE_CONFIG.replace(heads={"human": 5313}),
                             allow_unused=True)
  _, io = fixture_model_and_io
  out = human_only.predict_on_batch(io["input"])
  assert relative_error(out["human"].numpy(), io["human"]) < 1e-4
  with pytest.raises(WeightImportError, match="no reference weight"):
    load_enformer(variables, FIXTURE_CONFIG.replace(num_transformer_layers=3))
  with pytest.raises(FileNotFoundError):
    load_enformer(tmp_path / "missing.npz", FIXTURE_CONFIG)
  with pytest.raises(FileNotFoundError, match="no TF checkpoint"):
    load_enformer(str(tmp_path), FIXTURE_CONFIG)


def test_fresh_model_inference_is_well_scaled():
  # Sonnet starts EMA averages at zero; ours start the variance at one so an untrained model
  # does not divide by sqrt(eps) in every BatchNorm at inference.
  model = Enformer(TINY)
  out = model.predict_on_batch(random_one_hot(1, 1024))
  assert float(tf.reduce_max(out["human"])) < 100.0
  norm = model.stem.pointwise.module.norm
  np.testing.assert_array_equal(norm.moving_variance.average.numpy(), 1.0)
  np.testing.assert_array_equal(norm.moving_mean.average.numpy(), 0.0)
  x = tf.constant(random_one_hot(2, 1024))
  model(x, is_training=True)
  # One update replaces the initial value entirely (debiased EMA).
  stem = model.stem.conv(x)
  _, variance = tf.nn.moments(stem, axes=[0, 1], keepdims=True)
  np.testing.assert_allclose(norm.moving_variance.average.numpy(), variance.numpy(), rtol=1e-4,
                             atol=1e-6)
