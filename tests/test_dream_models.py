"""DREAM-CNN / DREAM-RNN / DREAM-Attn: parameter counts, PyTorch fixture equivalence (outputs
and gradients), state-dict import/export, configs, block combinations and PyTorch-semantics
building blocks."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tf_seqmodels.blocks.legnet import GroupedConv1D
from tf_seqmodels.blocks.recurrent import LSTM, BidirectionalLSTM
from tf_seqmodels.blocks.torch_compat import TorchBatchNorm
from tf_seqmodels.config import ConfigError
from tf_seqmodels.convert.torch_state_dict import (Entry, StateDictError, export_torch_state_dict,
                                                   load_torch_state_dict, read_state_dict,
                                                   to_torch_layout, torch_parameter_map)
from tf_seqmodels.convert.weights import import_reference_weights
from tf_seqmodels.data.encoding import SequenceError
from tf_seqmodels.models import available_models, build_model, get_entry
from tf_seqmodels.models.base import num_trainable_parameters
from tf_seqmodels.models.dream import (AutosomeCoreConfig, AutosomeFirstConfig, BHICoreConfig,
                                       BHIFirstConfig, DreamAttn, DreamAttnConfig, DreamCNN,
                                       DreamCNNConfig, DreamConfig, DreamModel, DreamRNN,
                                       DreamRNNConfig, PrixFixeTrunk, ProformerCoreConfig,
                                       RegressionHeadConfig, SoftBinHeadConfig,
                                       reverse_complement_inputs)

MODELS = {"cnn": DreamCNN, "rnn": DreamRNN, "attn": DreamAttn}
# (first, core, final, total) trainable parameters of the PyTorch reference (yeast, 6 x 150).
COUNTS = {
    "cnn": (23_360, 1_909_440, 1_170, 1_933_970),
    "rnn": (23_360, 4_101_440, 5_778, 4_130_578),
    "attn": (11_264, 4_523_520, 4_626, 4_539_410),
}
TOLERANCE = 1e-4


def rel_error(actual, expected) -> float:
  """max |actual - expected| / max |expected|: relative to the tensor's scale."""
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  assert actual.shape == expected.shape, (actual.shape, expected.shape)
  return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-12))


def ncl_to_nlc(x: np.ndarray) -> np.ndarray:
  return np.transpose(x, (0, 2, 1))


# --- parameter counts --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_parameter_counts(kind):
  model = MODELS[kind]()
  model.build()
  first, core, final, total = COUNTS[kind]
  assert num_trainable_parameters(model) == total
  assert num_trainable_parameters(model.trunk.first) == first
  assert num_trainable_parameters(model.trunk.core) == core
  assert num_trainable_parameters(model.final) == final
  # BatchNorm running statistics are state, not parameters.
  assert all(not v.trainable for v in model.variables
             if "running" in v.name or "num_batches" in v.name)


# --- PyTorch fixtures --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_fixture_equivalence(kind, shared):
  path = shared("fixtures", "dream", f"dream_{kind}_seed0.npz")
  summary = json.loads(shared("fixtures", "dream", "summary.json").read_text())["models"][kind]
  fixture = np.load(path)
  model = MODELS[kind]()
  report = load_torch_state_dict(model, path)
  assert len(report.loaded) == len(summary["param_shapes"]) + len(summary["buffer_shapes"]) - 1
  assert num_trainable_parameters(model) == summary["params"]

  # Forward pass in inference mode: every stage and both heads.
  x = tf.constant(ncl_to_nlc(fixture["input"]))
  stages = model.trunk_stages(x, is_training=False)
  heads = model.final(stages["core"])
  assert rel_error(stages["first"], ncl_to_nlc(fixture["first_out"])) < TOLERANCE
  assert rel_error(stages["core"], ncl_to_nlc(fixture["core_out"])) < TOLERANCE
  assert rel_error(heads["bin_logits"], fixture["logits"]) < TOLERANCE
  assert rel_error(heads["expression"], fixture["output"]) < TOLERANCE
  outputs = model(x, is_training=False)
  assert sorted(outputs) == sorted(model.head_names) == ["bin_logits", "expression"]
  assert outputs["expression"].shape == (8,) and outputs["bin_logits"].shape == (8, 18)

  # Reverse-complement averaging: the RC input and the averaged prediction.
  np.testing.assert_array_equal(model.reverse_complement(x).numpy(),
                                ncl_to_nlc(fixture["input_rc"]))
  averaged = model.rc_average(x)
  assert rel_error(averaged["expression"], fixture["output_avg"]) < TOLERANCE

  # Eval-mode KL loss and its gradient for every parameter.
  y_probs = tf.constant(fixture["y_probs"])
  entries = {name: e for name, e in torch_parameter_map(model).items()
             if isinstance(e, Entry) and e.variable.trainable}
  assert len(entries) == len(summary["param_shapes"])
  with tf.GradientTape() as tape:
    logits = model(x, is_training=False)["bin_logits"]
    loss = tf.reduce_sum(tf.math.xlogy(y_probs, y_probs) - y_probs * tf.nn.log_softmax(logits))
    loss = loss / y_probs.shape[0]  # KLDivLoss(reduction="batchmean")
  grads = tape.gradient(loss, [e.variable for e in entries.values()])
  assert abs(float(loss) - float(fixture["loss"])) < TOLERANCE * float(fixture["loss"])
  for (name, entry), grad in zip(entries.items(), grads):
    error = rel_error(to_torch_layout(grad.numpy(), entry.layout), fixture[f"grad/{name}"])
    assert error < TOLERANCE, f"gradient of {name}: relative error {error:.2e}"

  # Export restores the PyTorch state dict exactly (layouts, buffers, int64 counters).
  exported = export_torch_state_dict(model)
  reference = read_state_dict(path)
  assert sorted(exported) == sorted(reference)
  for name, value in reference.items():
    assert exported[name].dtype == value.dtype, name
    np.testing.assert_array_equal(exported[name], value, err_msg=name)


# --- state dicts -------------------------------------------------------------------------------
def _small_model(config=None):
  model = DreamModel(config or DreamConfig(first=BHIFirstConfig(out_channels=16),
                                           core=AutosomeCoreConfig(block_sizes=(8, 8)),
                                           sequence_length=20))
  model.build()
  return model


def test_state_dict_round_trip_through_npz(tmp_path):
  source = _small_model()
  for v in source.variables:  # make BN statistics and counters non-trivial
    v.assign(tf.random.uniform(v.shape, 1, 5, dtype=v.dtype) if v.dtype.is_integer
             else tf.random.uniform(v.shape, 0.5, 1.5))
  path = tmp_path / "state.npz"
  np.savez(path, **export_torch_state_dict(source))
  target = _small_model()
  report = import_reference_weights(target, str(path))  # registered importer
  assert not report.missing and not report.unexpected
  for a, b in zip(source.variables, target.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  x = tf.random.uniform([2, 20, 6])
  np.testing.assert_allclose(source(x, is_training=False)["expression"],
                             target(x, is_training=False)["expression"], rtol=1e-6)


def test_state_dict_errors_name_every_problem():
  model = _small_model()
  state = dict(export_torch_state_dict(model))
  before = [v.numpy().copy() for v in model.variables]
  broken = dict(state)
  del broken["core.seqextractor.inv_res_blc0.6.fc.0.weight"]
  broken["core.extra.weight"] = np.zeros(3, np.float32)
  broken["first.conv_list.0.conv.weight"] = np.zeros((8, 6, 7), np.float32)  # kernel 9 expected
  broken["final.bins"] = np.arange(1, 19)
  with pytest.raises(StateDictError) as error:
    load_torch_state_dict(model, broken)
  message = str(error.value)
  for fragment in ("missing keys (1): core.seqextractor.inv_res_blc0.6.fc.0.weight",
                   "unexpected keys (1): core.extra.weight",
                   "first.conv_list.0.conv.weight: PyTorch shape (8, 6, 7)", "final.bins"):
    assert fragment in message
  for old, v in zip(before, model.variables):  # nothing was assigned
    np.testing.assert_array_equal(old, v.numpy())
  # Non-strict loading skips missing / unexpected keys but never a shape mismatch.
  del state["final.mapper.0.bias"]
  state["unused"] = np.zeros(1)
  report = load_torch_state_dict(model, state, strict=False)
  assert report.missing == ("final.mapper.0.bias",) and report.unexpected == ("unused",)
  with pytest.raises(StateDictError, match="must be 3-D"):
    load_torch_state_dict(model, {**state, "core.seqextractor.resize_blc0.0.weight": np.zeros(4)},
                          strict=False)


def test_regression_head_names_follow_the_benchmark_blocks():
  two = _small_model(DreamCNNConfig.for_dataset(
      "deepstarr", first=BHIFirstConfig(out_channels=16), core=AutosomeCoreConfig(block_sizes=(8,)),
      sequence_length=31))
  names = [n for n in torch_parameter_map(two) if n.startswith("final.")]
  assert names == ["final.mapper1.weight", "final.mapper1.bias", "final.linear1.0.weight",
                   "final.linear1.0.bias", "final.mapper2.weight", "final.mapper2.bias",
                   "final.linear2.0.weight", "final.linear2.0.bias"]
  assert tuple(torch_parameter_map(two)["final.mapper1.weight"].variable.shape) == (1, 8, 256)
  outputs = two(tf.random.uniform([3, 31, 5]), is_training=False)
  assert {k: tuple(v.shape) for k, v in outputs.items()} == {"dev": (3,), "hk": (3,)}
  one = _small_model(DreamRNNConfig.for_dataset(
      "lentimpra", first=BHIFirstConfig(out_channels=8),
      core=BHICoreConfig(lstm_hidden_size=4, out_channels=8), sequence_length=12))
  assert [n for n in torch_parameter_map(one) if n.startswith("final.")] == [
      "final.mapper.weight", "final.mapper.bias", "final.linear.0.weight", "final.linear.0.bias"]
  assert one.head_names == ("activity",)


# --- configs -----------------------------------------------------------------------------------
def test_published_configs_and_registry():
  assert {"dream_cnn", "dream_rnn", "dream_attn", "dream_prixfixe"} <= set(available_models())
  cnn, rnn, attn = (build_model(n).config for n in ("dream_cnn", "dream_rnn", "dream_attn"))
  assert (type(cnn.first), type(cnn.core)) == (BHIFirstConfig, AutosomeCoreConfig)
  assert (type(rnn.first), type(rnn.core)) == (BHIFirstConfig, BHICoreConfig)
  assert (type(attn.first), type(attn.core)) == (AutosomeFirstConfig, ProformerCoreConfig)
  for config in (cnn, rnn, attn):
    assert (config.sequence_length, config.input_channels, config.reverse_channel) == (150, 6, 4)
    assert config.final == SoftBinHeadConfig(num_bins=18)
  assert attn.core.num_heads == 4  # the reference hard-codes 4 heads
  assert (cnn.core_channels, rnn.core_channels, attn.core_channels) == (64, 320, 256)
  assert isinstance(build_model("dream_rnn"), DreamRNN)
  for name in ("dream_cnn", "dream_rnn", "dream_attn", "dream_prixfixe"):
    entry = get_entry(name)
    assert isinstance(entry.demo_config(), entry.config_class)


@pytest.mark.parametrize("config", [
    DreamCNNConfig(), DreamRNNConfig(), DreamAttnConfig(),
    DreamConfig(first=AutosomeFirstConfig(out_channels=128),
                core=BHICoreConfig(lstm_hidden_size=64)),
    DreamAttnConfig.for_dataset("deepstarr"),
    DreamRNNConfig.for_dataset("lentimpra", reverse_channel=None),
], ids=["cnn", "rnn", "attn", "mixed", "attn_deepstarr", "rnn_lentimpra"])
def test_config_round_trip(config, tmp_path):
  cls = type(config)
  assert cls.from_yaml(config.to_yaml()) == config
  assert cls.from_json(config.to_json()) == config
  for ext in ("yaml", "json"):
    path = tmp_path / f"dream.{ext}"
    config.save(path)
    assert cls.load(path) == config
  assert config.to_dict()["core"]["kind"] == config.core.kind


def test_config_kinds_select_blocks_in_files():
  config = DreamConfig.from_yaml("first: {kind: autosome}\ncore: {kind: proformer, num_layers: 2}\n"
                                 "final: {kind: regression, task_names: [a]}\nsequence_length: 50")
  assert config.first == AutosomeFirstConfig()
  assert config.core == ProformerCoreConfig(num_layers=2)
  assert config.final == RegressionHeadConfig(task_names=("a",))
  # A block without `kind` is the slot's default block of the named model.
  assert DreamRNNConfig.from_dict({"core": {"lstm_hidden_size": 8}}).core == BHICoreConfig(
      lstm_hidden_size=8)
  assert DreamAttnConfig.for_dataset("deepstarr").sequence_length == 249


@pytest.mark.parametrize("build, message", [
    (lambda: DreamConfig.from_dict({"core": {"kind": "transformer"}}),
     "unknown core block kind 'transformer'"),
    (lambda: DreamConfig.from_dict({"first": {"kind": "bhi", "kernel_size": 7}}),
     r"unknown key\(s\) \['kernel_size'\]"),
    (lambda: DreamRNNConfig(core=AutosomeCoreConfig()), "DREAM-RNN is BHIFirst first \\+ BHICore"),
    (lambda: DreamAttnConfig(first=AutosomeFirstConfig(out_channels=250)),
     "width 250 \\(first block output\\) must be divisible by num_heads 4"),
    (lambda: DreamConfig(first=BHIFirstConfig(out_channels=3), core=AutosomeCoreConfig()),
     "out_channels 3 must be divisible by the number of kernel sizes 2"),
    (lambda: DreamConfig(first=BHIFirstConfig(out_channels=2, kernel_sizes=(3,))),
     "input width 2 .* below se_reduction 4"),
    (lambda: DreamConfig(input_channels=4), "reverse_channel must index an extra channel"),
    (lambda: DreamConfig(input_channels=3, reverse_channel=None),
     "input_channels must be at least 4"),
    (lambda: RegressionHeadConfig(task_names=("dev", "dev")), "task_names must be unique"),
    (lambda: RegressionHeadConfig(task_names=("dev-1",)), "must be an identifier"),
    (lambda: BHIFirstConfig(kind="autosome"), "'autosome' is not one of \\['bhi'\\]"),
    (lambda: BHICoreConfig(dropout_rate=1.0), "dropout_rate must be in \\[0, 1\\)"),
    (lambda: DreamConfig.for_dataset("mouse"), "unknown DREAM dataset 'mouse'"),
    (lambda: build_model("dream_cnn", DreamRNNConfig()), "needs a DreamCNNConfig"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_configs_raise_config_error(build, message):
  with pytest.raises(ConfigError, match=message):
    build()


# --- combinations and shapes -------------------------------------------------------------------
@pytest.mark.parametrize("config", [
    DreamConfig(first=AutosomeFirstConfig(out_channels=32),
                core=BHICoreConfig(lstm_hidden_size=8, out_channels=16), sequence_length=40),
    DreamConfig(first=BHIFirstConfig(out_channels=32), core=ProformerCoreConfig(num_layers=1),
                sequence_length=40),
    DreamConfig(first=AutosomeFirstConfig(out_channels=32),
                core=AutosomeCoreConfig(block_sizes=(16, 8)),
                final=RegressionHeadConfig(task_names=("a", "b", "c"), hidden_channels=4),
                sequence_length=40),
], ids=["autosome+lstm", "bhi+proformer", "autosome+legnet+regression"])
def test_mixed_combinations_build_train_and_infer(config):
  model = build_model("dream_prixfixe", config)
  x = tf.random.uniform([3, 40, 6])
  stages = model.trunk_stages(x, is_training=False)
  assert stages["first"].shape == (3, 40, config.first_channels)
  assert stages["core"].shape == (3, 40, config.core_channels)
  with tf.GradientTape() as tape:
    outputs = model(x, is_training=True)
    loss = sum(tf.reduce_mean(tf.square(v)) for v in outputs.values())
  grads = tape.gradient(loss, model.trainable_variables)
  assert all(g is not None for g in grads)
  for head in model.head_names:
    assert outputs[head].shape[0] == 3


@pytest.mark.parametrize("name", ["dream_cnn", "dream_rnn", "dream_attn"])
def test_training_mode_updates_batch_norm_and_uses_dropout(name):
  model = build_model(name, get_entry(name).demo_config())
  x = tf.random.uniform([4, 150, 6])
  eval_before = model(x, is_training=False)["expression"].numpy()
  train_a = model(x, is_training=True)["expression"].numpy()
  train_b = model(x, is_training=True)["expression"].numpy()
  assert not np.allclose(train_a, train_b)  # dropout is active
  eval_after = model(x, is_training=False)["expression"].numpy()
  counters = [v for v in model.variables if "num_batches_tracked" in v.name]
  assert all(int(c.numpy()) == 2 for c in counters)
  if counters:  # BatchNorm running statistics moved
    assert not np.allclose(eval_before, eval_after)
  else:  # DREAM-RNN has no state: inference is unchanged
    np.testing.assert_array_equal(eval_before, eval_after)


def test_lengths_and_inputs_are_checked():
  cnn = build_model("dream_cnn", get_entry("dream_cnn").demo_config())
  assert cnn.dynamic_length
  assert cnn(tf.zeros([2, 90, 6]), is_training=False)["bin_logits"].shape == (2, 18)
  attn = build_model("dream_attn", get_entry("dream_attn").demo_config())
  assert not attn.dynamic_length
  with pytest.raises(SequenceError, match="expects sequences of length 150"):
    attn(tf.zeros([2, 90, 6]), is_training=False)
  with pytest.raises(SequenceError, match="must have 6 channels"):
    cnn(tf.zeros([2, 150, 4]), is_training=False)


def test_trunk_is_usable_without_a_final_block():
  trunk = PrixFixeTrunk(BHIFirstConfig(out_channels=16), BHICoreConfig(lstm_hidden_size=8,
                                                                       out_channels=12),
                        input_channels=4, sequence_length=64)
  assert trunk(tf.zeros([2, 64, 4]), is_training=False).shape == (2, 64, 12)
  assert trunk.out_channels == 12
  names = list(torch_parameter_map(trunk))
  assert names[0] == "first.conv_list.0.conv.weight" and "core.lstm.weight_hh_l0_reverse" in names


def test_reverse_complement_inputs_layout():
  x = np.zeros([1, 3, 6], np.float32)
  x[0, :, :4] = np.eye(4)[[0, 1, 3]]  # A G T in AGCT order
  x[0, :, 4] = 0.0  # forward strand
  x[0, :, 5] = 1.0  # singleton flag
  rc = reverse_complement_inputs(x, reverse_channel=4).numpy()
  np.testing.assert_array_equal(rc[0, :, :4], np.eye(4)[[0, 2, 3]])  # A C T = rc(AGT)
  np.testing.assert_array_equal(rc[0, :, 4:], [[1, 1]] * 3)
  np.testing.assert_array_equal(reverse_complement_inputs(x, None).numpy()[..., 4], 0)


# --- PyTorch-semantics blocks ------------------------------------------------------------------
def test_torch_batch_norm_matches_pytorch_update_rule():
  bn = TorchBatchNorm(momentum=0.1, eps=1e-5)
  x = np.random.RandomState(1).normal(2.0, 3.0, size=(4, 5, 3)).astype(np.float32)
  y = bn(tf.constant(x), is_training=True).numpy()
  flat = x.reshape(-1, 3).astype(np.float64)
  mean, var = flat.mean(0), flat.var(0)
  np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean, rtol=1e-5)
  np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * flat.var(0, ddof=1), rtol=1e-5)
  assert int(bn.num_batches_tracked.numpy()) == 1
  y_eval = bn(tf.constant(x), is_training=False).numpy()
  expected = (x - bn.running_mean.numpy()) / np.sqrt(bn.running_var.numpy() + 1e-5)
  np.testing.assert_allclose(y_eval, expected, rtol=1e-4, atol=1e-5)
  names = [v.name.split("/")[-1].split(":")[0] for v in bn.trainable_variables]
  assert names == ["offset", "scale"]
  with pytest.raises(ValueError, match="more than 1 value per channel"):
    TorchBatchNorm()(tf.zeros([1, 1, 3]), is_training=True)


@pytest.mark.parametrize("shape, activation", [((6, 7, 3), None), ((9, 3), None),
                                               ((6, 7, 3), tf.nn.silu), ((9, 3), tf.nn.relu)])
def test_torch_batch_norm_fused_training_is_the_composite_function(shape, activation):
  """Training runs one fused kernel (its gradient keeps no input-sized temporaries), and with an
  activation a gradient that recomputes the normalised values; outputs and gradients equal the
  composite ops', for [B, L, C] and [B, C], with an unknown batch size."""
  act = activation or tf.identity
  rng = np.random.RandomState(2)
  x = tf.constant(rng.normal(1.0, 2.0, size=shape).astype(np.float32))
  upstream = tf.constant(rng.normal(size=shape).astype(np.float32))
  bn = TorchBatchNorm()
  bn(x, is_training=False)  # creates the variables
  bn.scale.assign(rng.uniform(0.5, 1.5, 3).astype(np.float32))
  bn.offset.assign(rng.normal(size=3).astype(np.float32))

  @tf.function(input_signature=[tf.TensorSpec([None] + list(shape[1:]))])
  def fused(inputs):
    with tf.GradientTape() as tape:
      tape.watch(inputs)
      y = bn(inputs, is_training=True, activation=activation)
      loss = tf.reduce_sum(y * upstream)
    return y, tape.gradient(loss, [inputs, bn.scale, bn.offset])

  y, grads = fused(x)
  with tf.GradientTape() as tape:
    tape.watch(x)
    mean, variance = tf.nn.moments(x, list(range(len(shape) - 1)))
    expected = act(tf.nn.batch_normalization(x, mean, variance, bn.offset, bn.scale, 1e-5))
    loss = tf.reduce_sum(expected * upstream)
  expected_grads = tape.gradient(loss, [x, bn.scale, bn.offset])
  np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
  for got, want in zip(grads, expected_grads):
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
  flat = x.numpy().reshape(-1, 3).astype(np.float64)
  np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * flat.var(0, ddof=1), rtol=1e-5)


@pytest.mark.parametrize("in_channels, out_channels, groups", [(8, 8, 4), (6, 6, 6), (8, 4, 2),
                                                               (4, 8, 2)])
def test_grouped_conv_matches_tf_grouped_conv_and_trains_on_cpu(in_channels, out_channels, groups):
  conv = GroupedConv1D(in_channels, out_channels, 5, groups)
  x = tf.random.normal([2, 11, in_channels])
  reference = tf.nn.conv1d(x, conv.w, 1, "SAME")  # TF's grouped conv1d (forward only on CPU)
  np.testing.assert_allclose(conv(x), reference, atol=1e-5)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tf.square(conv(x)))
  assert tape.gradient(loss, conv.w).shape == (5, in_channels // groups, out_channels)


def test_lstm_directions_match_the_bidirectional_layer():
  bi = BidirectionalLSTM(3, 4)
  x = tf.random.normal([2, 7, 3])
  both = bi(x).numpy()
  for reverse, weights, half in ((False, bi.forward, both[..., :4]),
                                 (True, bi.backward, both[..., 4:])):
    single = LSTM(3, 4, reverse=reverse)
    for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
      getattr(single.cell, name).assign(getattr(weights, name))
    np.testing.assert_allclose(single(x), half, rtol=1e-5, atol=1e-6)
  # h_1 of the forward direction from the PyTorch equations.
  f = bi.forward
  gates = x[:, 0] @ f.w_ih + f.b_ih + f.b_hh
  i, _, g, o = np.split(gates.numpy(), 4, axis=-1)
  sigmoid = lambda v: 1 / (1 + np.exp(-v))
  np.testing.assert_allclose(both[:, 0, :4], sigmoid(o) * np.tanh(sigmoid(i) * np.tanh(g)),
                             rtol=1e-5, atol=1e-6)
