"""Enformer paper ablations: each is a config switch of the one Enformer module."""

import numpy as np
import pytest
import tensorflow as tf

from tf_seqmodels.blocks.absolute_positions import sinusoidal_position_encoding
from tf_seqmodels.blocks.attention import MultiheadAttention, local_attention_bias
from tf_seqmodels.blocks.dilated import dilation_rates, receptive_field
from tf_seqmodels.config import ConfigError
from tf_seqmodels.data.synthetic_long_range import (LongRangeConfig, generate_long_range,
                                                    promoter_pearson)
from tf_seqmodels.models.enformer import Enformer, EnformerConfig
from tf_seqmodels.models.enformer_ablations import (ABLATIONS, ablation, ablation_config,
                                                    short_range_reach_bins)
from tf_seqmodels.tasks.tracks import TrackTask

TINY = EnformerConfig(channels=48, num_transformer_layers=2, num_heads=2, filters_divisible_by=8,
                      heads={"tracks": 3}, sequence_length=1024, target_length=4)
SHARED = ("stem", "conv_tower", "final_pointwise", "heads")


def count(module_or_modules) -> int:
  if isinstance(module_or_modules, dict):
    module_or_modules = list(module_or_modules.values())
  if not isinstance(module_or_modules, (list, tuple)):
    module_or_modules = [module_or_modules]
  return int(sum(v.shape.num_elements() for m in module_or_modules for v in m.trainable_variables))


def one_hot(batch, length, seed=0):
  return np.eye(4, dtype=np.float32)[np.random.default_rng(seed).integers(0, 4, (batch, length))]


def test_defaults_are_the_published_switches():
  config = EnformerConfig()
  assert (config.trunk, config.attention_window, config.positional_encoding) == (
      "transformer", None, "relative")
  assert config.relative_position_functions == ("exponential", "central_mask", "gamma")
  assert not config.relative_position_symmetric
  assert ablation_config("enformer") == EnformerConfig()
  assert set(ABLATIONS) == {"enformer", "dilated", "local_attention", "exponential_only",
                            "central_mask_only", "gamma_only", "symmetric_only",
                            "absolute_positions"}
  for name in ABLATIONS:
    assert ablation(name).tests  # each documents what it tests
  with pytest.raises(ConfigError, match="unknown Enformer ablation"):
    ablation("no_such_variant")
  for bad in ({"trunk": "lstm"}, {"positional_encoding": "rotary"}, {"attention_window": -1}):
    with pytest.raises(ConfigError):
      TINY.replace(**bad)


def test_each_ablation_builds_trains_a_step_and_differs_only_where_it_should():
  x = tf.constant(one_hot(2, 1024))
  task = TrackTask(("tracks",))
  targets = {"tracks": tf.constant(np.random.default_rng(1).gamma(1.0, 1.0, (2, 4, 3)), tf.float32)}
  reference = None
  counts = {}
  for name in ABLATIONS:
    tf.random.set_seed(0)
    model = Enformer(ablation_config(name, TINY, attention_window=1))
    with tf.GradientTape() as tape:
      loss = task.loss(targets, model(x, is_training=True))
    variables = model.trainable_variables
    grads = tape.gradient(loss, variables)
    assert np.isfinite(float(loss)), name
    before = [v.numpy().copy() for v in variables]
    tf.keras.optimizers.SGD(0.1).apply_gradients(
        [(g, v) for g, v in zip(grads, variables) if g is not None])
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)), name
    shared = {part: count(getattr(model, part)) for part in SHARED}
    reference = reference or shared
    assert shared == reference, name  # stem, conv tower, final pointwise, heads: identical
    counts[name] = count(model.transformer) + count(getattr(model, "dilated_trunk", []))
  # Positional-basis and window variants change no shapes: the same attention parameters.
  for name in ("local_attention", "exponential_only", "central_mask_only", "gamma_only",
               "symmetric_only"):
    assert counts[name] == counts["enformer"], name
  # Absolute positions drop exactly the relative-position weights (W_r, r_w_bias, r_r_bias).
  heads, key, features = TINY.num_heads, TINY.key_size, TINY.value_size
  per_layer = features * heads * key + 2 * heads * key
  assert counts["enformer"] - counts["absolute_positions"] == TINY.num_transformer_layers * per_layer
  # The dilated trunk has no transformer layer but as many dilated blocks (same width).
  dilated = Enformer(ablation_config("dilated", TINY))
  dilated(x, is_training=False)
  assert dilated.transformer == [] and len(dilated.dilated_trunk) == TINY.num_transformer_layers
  c = TINY.channels
  # BN(C) + dilated conv C -> C/2 (kernel 3) + BN(C/2) + pointwise conv C/2 -> C.
  per_block = 2 * c + (3 * c * (c // 2) + c // 2) + 2 * (c // 2) + ((c // 2) * c + c)
  assert count(dilated.dilated_trunk) == TINY.num_transformer_layers * per_block
  assert not hasattr(Enformer(TINY), "dilated_trunk")  # the published variable set is unchanged


def test_switches_reach_the_attention_layers():
  for name, functions, symmetric in [("gamma_only", ("gamma",), False),
                                     ("symmetric_only", ("exponential", "central_mask", "gamma"), True)]:
    attention = Enformer(ablation_config(name, TINY)).transformer[0].attention
    assert attention.relative_position_functions == functions
    assert attention.relative_position_symmetric == symmetric
  local = Enformer(ablation_config("local_attention", TINY, attention_window=5))
  assert local.transformer[0].attention.attention_window == 5
  absolute = Enformer(ablation_config("absolute_positions", TINY))
  assert not absolute.transformer[0].attention.relative_positions


def test_local_attention_ignores_keys_beyond_the_window():
  bias = local_attention_bias(5, 1).numpy()
  assert (bias == 0).sum() == 13 and bias[0, 2] == -1e9 and bias[2, 1] == 0
  tf.random.set_seed(0)
  attention = MultiheadAttention(value_size=12, key_size=8, num_heads=2, zero_initialize=False,
                                 attention_window=2, positional_dropout_rate=0.0)
  x = np.random.default_rng(0).normal(size=(1, 12, 16)).astype(np.float32)
  y = x.copy()
  y[0, 11] += 5.0  # change the last position only
  a, b = attention(tf.constant(x)).numpy(), attention(tf.constant(y)).numpy()
  changed = np.abs(a - b).max(axis=-1)[0]
  np.testing.assert_array_equal(changed[:9], 0.0)  # queries more than 2 away: unaffected
  assert (changed[9:] > 1e-4).all()


def test_dilation_rates_and_sinusoidal_positions():
  # Basenji2's int(round(1.5 ** i)), repeats included (1.5 -> 2, 2.25 -> 2).
  assert dilation_rates(8) == [1, 2, 2, 3, 5, 8, 11, 17]
  assert dilation_rates(8) == [int(round(1.5**i)) for i in range(8)]
  assert dilation_rates(4, 2.0) == [1, 2, 4, 8]
  assert receptive_field(3, [1, 2, 4, 8]) == 31
  pe = sinusoidal_position_encoding(7, 4).numpy()
  np.testing.assert_allclose(pe[5], [np.sin(5), np.cos(5), np.sin(5 / 100), np.cos(5 / 100)],
                             rtol=1e-5)


def test_long_range_data_plants_distal_enhancers_deterministically():
  config = LongRangeConfig(sequence_length=1024, bin_size=32, min_distance=8, max_distance=13)
  data = generate_long_range(64, config, seed=3)
  again = generate_long_range(64, config, seed=3)
  np.testing.assert_array_equal(data.sequences, again.sequences)
  assert data.sequences.shape == (64, 1024, 4) and data.targets.shape == (64, 32, 2)
  has = data.enhancer_bin >= 0
  assert 10 < has.sum() < 54
  distance = np.abs(data.enhancer_bin[has] - data.promoter_bin[has])
  assert distance.min() >= 8 and distance.max() <= 13
  rows = np.arange(64)
  cage = data.targets[rows, data.promoter_bin, 0]
  np.testing.assert_allclose(cage, np.where(has, 2.0 * 5.0, 2.0))
  assert data.targets[..., 0].sum() == pytest.approx(cage.sum())  # CAGE only at promoters
  assert promoter_pearson(data, data.targets) == pytest.approx(1.0)


def _gradient_reach_bins(model, length: int, bin_size: int, seed: int = 0) -> int:
  """Farthest bin whose input changes the output at the central bin: gradients of that
  output, with every weight randomised (the zero-initialised attention output projection
  would otherwise hide the attention path)."""
  x = tf.constant(one_hot(1, length, seed=seed))
  model(x, is_training=False)
  rng = np.random.default_rng(seed)
  for variable in model.trainable_variables:
    variable.assign(0.2 * rng.standard_normal(variable.shape).astype(np.float32))
  probe = length // bin_size // 2
  with tf.GradientTape() as tape:
    tape.watch(x)
    output = tf.reduce_sum(model(x, is_training=False)["tracks"][0, probe])
  per_bin = np.abs(tape.gradient(output, x).numpy()[0]).reshape(-1, bin_size * 4).sum(1)
  return int(np.abs(np.flatnonzero(per_bin > 0) - probe).max())


def test_bench_enhancers_lie_beyond_the_reach_of_the_short_range_variants():
  import importlib.util
  import os
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench",
                      "enformer_ablations.py")
  spec = importlib.util.spec_from_file_location("enformer_ablations_bench", path)
  bench = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bench)
  args = bench.make_parser().parse_args([])
  data = bench.long_range_config(args)
  base = bench.base_config(args)
  reach = {}
  for name in ("local_attention", "dilated"):
    config = ablation_config(name, base, attention_window=args.window)
    tf.random.set_seed(0)
    reach[name] = _gradient_reach_bins(Enformer(config), args.length, config.bin_size)
    assert short_range_reach_bins(config) == reach[name], name  # the bound is tight
  # 2 layers x ±3 bins of local attention + the conv tower's 67 bp (3 bins of 32 bp); the
  # dilated trunk (rates 1, 2): ±3 + 3.
  assert reach == {"local_attention": 9, "dilated": 6}
  assert data.min_distance == 10 and data.max_distance == 15
  assert short_range_reach_bins(ablation_config("enformer", base)) is None  # global attention
