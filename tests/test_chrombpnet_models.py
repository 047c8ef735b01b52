"""BPNet / ChromBPNet models: sizes, the bias-factorisation wrapper, Keras weight import
against the reference fixtures (../shared/fixtures/chrombpnet)."""

import h5py
import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

from tf_seqmodels.config import ConfigError
from tf_seqmodels.convert.keras_h5 import (KerasImportError, detect_scheme, load_bpnet_keras,
                                           load_chrombpnet_keras, read_keras_h5)
from tf_seqmodels.data.encoding import SequenceError
from tf_seqmodels.models import (BiasBPNetConfig, BiasFactorizedConfig, BiasFactorizedModel, BPNet,
                                 BPNetConfig, ChromBPNetBias, ProfileCountsConfig,
                                 ProfileCountsModel, TrunkSequence, build_model,
                                 num_trainable_parameters, recalibrate_bias)
from tf_seqmodels.tasks.chrombpnet import ChromBPNetTask

SMALL = dict(sequence_length=300, output_length=150)


def small_pair(output_length_bias=150):
  model = BPNet(BPNetConfig(filters=8, num_dilated_layers=3, **SMALL))
  bias = ChromBPNetBias(BiasBPNetConfig(filters=4, num_dilated_layers=2, sequence_length=300,
                                        output_length=output_length_bias))
  return model, bias


def random_one_hot(batch, length, seed=0):
  idx = np.random.default_rng(seed).integers(0, 4, (batch, length))
  return np.eye(4, dtype=np.float32)[idx]


def total_parameters(module):
  return sum(v.shape.num_elements() for v in module.variables)


# --- sizes -------------------------------------------------------------------------------------

def test_parameter_counts_match_reference():
  # Symbolic build (no FLOPs) of the registered defaults: ChromBPNet = "bpnet" + "chrombpnet_bias".
  chrombpnet = build_model("chrombpnet")
  chrombpnet.build()
  assert type(chrombpnet.model) is BPNet and chrombpnet.model.config == BPNetConfig()
  assert type(chrombpnet.bias_model) is ChromBPNetBias
  assert chrombpnet.bias_model.config == BiasBPNetConfig()
  assert num_trainable_parameters(chrombpnet.bias_model) == 217_730
  assert num_trainable_parameters(chrombpnet.without_bias()) == 6_377_986
  assert total_parameters(chrombpnet) == 6_595_716
  assert num_trainable_parameters(chrombpnet) == 6_377_986
  assert sum(v.shape.num_elements() for v in chrombpnet.frozen_variables) == 217_730


def test_length_arithmetic():
  acc, bias = BPNetConfig(), BiasBPNetConfig()
  assert (acc.stream_length, acc.profile_precrop_length, acc.receptive_field) == (1074, 1000, 1115)
  assert (bias.stream_length, bias.profile_precrop_length, bias.receptive_field) == (
      2034, 1960, 155)
  model = BPNet(BPNetConfig(filters=4, num_dilated_layers=2, **SMALL))
  out = model(tf.constant(random_one_hot(2, 300)), is_training=False)
  assert out["profile"].shape == (2, 150) and out["logcounts"].shape == (2, 1)
  assert model.embed(tf.constant(random_one_hot(2, 300)), False).shape == (2, 300 - 20 - 12, 4)


def test_config_validation_and_round_trip():
  with pytest.raises(ConfigError, match="too short.*sequence_length >= 2114"):
    BPNetConfig(sequence_length=2000)
  with pytest.raises(ConfigError, match="odd"):
    BPNetConfig(dilated_kernel_size=4)
  with pytest.raises(ConfigError, match="unknown model"):
    BiasFactorizedConfig(model="no_such_model")
  cfg = BiasBPNetConfig(filters=64)
  assert BiasBPNetConfig.from_json(cfg.to_json()) == cfg
  model, bias = small_pair()
  wrapper = BiasFactorizedModel(model=model, bias_model=bias)
  assert wrapper.config.model == "bpnet" and wrapper.config.bias_model == "chrombpnet_bias"
  rebuilt = build_model("chrombpnet", BiasFactorizedConfig.from_yaml(wrapper.config.to_yaml()))
  rebuilt.build()
  wrapper.build()
  assert [v.shape for v in rebuilt.variables] == [v.shape for v in wrapper.variables]


def test_bad_inputs_raise_clear_errors():
  model, _ = small_pair()
  with pytest.raises(SequenceError, match="expects sequences of length 300"):
    model(tf.zeros([1, 299, 4]), is_training=False)
  with pytest.raises(SequenceError, match="4 channels"):
    model(tf.zeros([1, 300, 5]), is_training=False)
  long_model = BPNet(BPNetConfig(filters=4, num_dilated_layers=2, sequence_length=400,
                                 output_length=150))
  with pytest.raises(ConfigError, match="input length 400 differs from the bias model's 300"):
    BiasFactorizedModel(model=long_model, bias_model=small_pair()[1])
  with pytest.raises(ConfigError, match="different modules"):
    BiasFactorizedModel(model=model, bias_model=model)


# --- the wrapper -------------------------------------------------------------------------------

def test_wrapper_combines_logits_and_counts_with_cropped_bias():
  model, bias = small_pair(output_length_bias=170)  # bias profile wider: centre-cropped
  wrapper = BiasFactorizedModel(model=model, bias_model=bias)
  x = tf.constant(random_one_hot(3, 300))
  parts = wrapper.components(x, is_training=False)
  main, b = model(x, is_training=False), bias(x, is_training=False)
  np.testing.assert_allclose(parts["profile"], main["profile"] + b["profile"][:, 10:160], rtol=1e-6)
  expected = np.log(np.exp(main["logcounts"].numpy()) + np.exp(b["logcounts"].numpy()))
  np.testing.assert_allclose(parts["logcounts"], expected, rtol=1e-5)
  assert wrapper.without_bias() is model
  np.testing.assert_array_equal(parts["nobias_profile"], main["profile"])
  out = wrapper(x, is_training=False)
  assert set(out) == {"profile", "logcounts"} and out["profile"].shape == (3, 150)


def test_shared_bias_is_frozen_and_not_duplicated():
  model_a, bias = small_pair()
  model_b = BPNet(BPNetConfig(filters=8, num_dilated_layers=3, **SMALL), name="other")
  a = BiasFactorizedModel(model=model_a, bias_model=bias, name="a")
  b = BiasFactorizedModel(model=model_b, bias_model=bias, name="b")
  a.build()
  b.build()
  bias_refs = {v.ref() for v in bias.variables}
  assert {v.ref() for v in a.frozen_variables} == bias_refs == {v.ref() for v in b.frozen_variables}
  assert not bias_refs & {v.ref() for v in a.trainable_variables}
  assert not bias_refs & {v.ref() for v in b.trainable_variables}
  # One copy of the bias: the union of both wrappers' variables counts it once.
  union = {v.ref() for v in a.variables} | {v.ref() for v in b.variables}
  assert len(union) == len(a.variables) + len(b.variables) - len(bias.variables)

  # Even a tape over every variable gets no gradient into the bias model.
  x = tf.constant(random_one_hot(4, 300))
  targets = {"profile": tf.random.poisson([4, 150], 1.0, seed=1)}
  with tf.GradientTape() as tape:
    loss = ChromBPNetTask(2.0).loss(targets, a(x, is_training=True))
  grads = tape.gradient(loss, list(bias.variables) + list(a.trainable_variables))
  assert all(g is None for g in grads[:len(bias.variables)])
  assert all(g is not None for g in grads[len(bias.variables):])

  before = [v.numpy().copy() for v in bias.variables]
  optimizers = {a.name: snt.optimizers.Adam(1e-2), b.name: snt.optimizers.Adam(1e-2)}
  for _ in range(2):
    for wrapper in (a, b):
      with tf.GradientTape() as tape:
        loss = ChromBPNetTask(2.0).loss(targets, wrapper(x, is_training=True))
      trainable = wrapper.trainable_variables
      optimizers[wrapper.name].apply(tape.gradient(loss, trainable), trainable)
  for old, v in zip(before, bias.variables):
    np.testing.assert_array_equal(old, v.numpy())


def test_recalibrate_bias_shifts_counts_only():
  _, bias = small_pair()
  x = random_one_hot(16, 300, seed=3)
  totals = np.random.default_rng(0).poisson(50.0, 16).astype(np.float64)
  before = bias.predict_on_batch(x)
  delta = recalibrate_bias(bias, (x, totals))
  np.testing.assert_allclose(delta, np.mean(np.log1p(totals) - before["logcounts"].numpy()[:, 0]),
                             rtol=1e-5)
  after = bias.predict_on_batch(x)
  np.testing.assert_allclose(after["logcounts"], before["logcounts"] + delta, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(after["profile"], before["profile"])
  assert abs(np.mean(np.log1p(totals) - after["logcounts"].numpy()[:, 0])) < 1e-5
  # A batch iterable with targets works the same (shift already applied: delta ~ 0).
  batches = [(x[:8], {"logcounts": np.log1p(totals[:8])[:, None]}),
             (x[8:], {"profile": np.stack([np.r_[t, np.zeros(149)] for t in totals[8:]])})]
  assert abs(recalibrate_bias(bias, batches, apply=False)) < 1e-5
  with pytest.raises(TypeError, match="shift_logcounts"):
    recalibrate_bias(snt.Module(), batches)


def test_profile_counts_head_on_other_trunks():
  # A registered trunk by name (config rebuilds it) ...
  cfg = ProfileCountsConfig(trunk="bpnet", output_length=100,
                            trunk_config=dict(filters=4, num_dilated_layers=2, **SMALL))
  model = build_model("profile_counts", cfg)
  out = model(tf.constant(random_one_hot(2, 300)), is_training=False)
  assert out["profile"].shape == (2, 100) and out["logcounts"].shape == (2, 1)
  assert ProfileCountsConfig.from_json(model.config.to_json()) == model.config
  # ... or any module called as trunk(x, is_training): a 'same'-padded conv stack.
  trunk = TrunkSequence([lambda x, is_training: tf.nn.relu(snt.Conv1D(6, 5)(x))])
  module_model = ProfileCountsModel(ProfileCountsConfig(trunk=None, sequence_length=300,
                                                        output_length=200), trunk=trunk)
  assert module_model(tf.constant(random_one_hot(2, 300)), False)["profile"].shape == (2, 200)
  with pytest.raises(ValueError, match="at least 274"):
    ProfileCountsModel(ProfileCountsConfig(trunk=None, sequence_length=300, output_length=200),
                       trunk=TrunkSequence([lambda x, is_training: x[:, :250]]))(
                           tf.constant(random_one_hot(1, 300)), False)
  # Any such model can take a frozen bias.
  wrapper = BiasFactorizedModel(model=model, bias_model=small_pair()[1])
  assert wrapper(tf.constant(random_one_hot(2, 300)), False)["profile"].shape == (2, 100)


# --- Keras weight import vs the reference fixtures -----------------------------------------------

@pytest.fixture(scope="module")
def fixture_arrays():
  from conftest import shared_path
  weights = dict(np.load(shared_path("fixtures", "chrombpnet", "weights.npz")))
  outputs = dict(np.load(shared_path("fixtures", "chrombpnet", "outputs.npz")))
  return weights, outputs


@pytest.fixture(scope="module")
def reference_chrombpnet(fixture_arrays):
  weights, outputs = fixture_arrays
  model = build_model("chrombpnet")
  loaded = load_chrombpnet_keras(model, weights)
  assert len(loaded) == 36
  parts = model.components(tf.constant(outputs["x"]), is_training=False)
  return model, {k: v.numpy() for k, v in parts.items()}


def relative_error(actual, expected):
  return float(np.max(np.abs(np.asarray(actual, np.float64) - expected)) / np.max(np.abs(expected)))


def test_fixture_outputs_match(reference_chrombpnet, fixture_arrays):
  from tf_seqmodels.analysis.tracks import predicted_track
  from tf_seqmodels.tasks.chrombpnet import softmax_np
  _, outputs = fixture_arrays
  _, parts = reference_chrombpnet
  pairs = {"profile": "chrombpnet_logits", "logcounts": "chrombpnet_logcounts",
           "nobias_profile": "nobias_logits", "nobias_logcounts": "nobias_logcounts",
           "bias_profile": "bias_logits", "bias_logcounts": "bias_logcounts"}
  for ours, ref in pairs.items():
    assert relative_error(parts[ours], outputs[ref]) < 1e-4, ours
  for prefix in ("chrombpnet", "nobias"):
    key = "" if prefix == "chrombpnet" else "nobias_"
    heads = {"profile": parts[key + "profile"], "logcounts": parts[key + "logcounts"]}
    assert relative_error(softmax_np(heads["profile"]), outputs[f"{prefix}_probs"]) < 1e-4
    assert relative_error(predicted_track(heads), outputs[f"{prefix}_pred_track"]) < 1e-4


def test_fixture_losses_match(reference_chrombpnet, fixture_arrays):
  _, outputs = fixture_arrays
  _, parts = reference_chrombpnet
  task = ChromBPNetTask(counts_loss_weight=1.0)
  targets = {"profile": tf.constant(outputs["y_profile"]),
             "logcounts": tf.constant(outputs["y_logcounts"])}
  for name, key in (("chrombpnet", ""), ("nobias", "nobias_"), ("bias", "bias_")):
    terms = task.loss_terms(targets, {"profile": tf.constant(parts[key + "profile"]),
                                      "logcounts": tf.constant(parts[key + "logcounts"])})
    for term in ("mnll", "mse", "total"):
      expected = float(outputs[f"loss_{name}_{term}"])
      assert abs(float(terms[term]) - expected) / abs(expected) < 1e-4, (name, term)


def write_keras_h5(path, arrays, nested):
  """Writes arrays in the Keras 2 HDF5 layout (model_weights/<layer>/<layer>/<w>:0).

  `nested` maps a functional sub-model's layer name -> the npz prefix whose arrays it holds
  (a full chrombpnet.h5); otherwise the arrays' layers are written at the top level.
  """
  with h5py.File(path, "w") as f:
    root = f.create_group("model_weights")
    root.attrs["layer_names"] = [name.encode() for name in nested]
    for group_name, prefix in nested.items():
      group = root.create_group(group_name)
      names = []
      for key, value in arrays.items():
        if not key.startswith(prefix + "/"):
          continue
        layer, weight = key.split("/")[1:]
        names.append(f"{layer}/{weight}:0".encode())
        group.create_dataset(f"{layer}/{weight}:0", data=value)
      group.attrs["weight_names"] = names
    # Optimizer slots share layer names; the importer must not read them.
    opt = f.create_group("optimizer_weights")
    opt.create_dataset("Adam/wo_bias_bpnet_1st_conv/kernel/m:0", data=np.zeros(3))


def test_h5_import_matches_npz(tmp_path, fixture_arrays, reference_chrombpnet):
  weights, _ = fixture_arrays
  reference, _ = reference_chrombpnet
  # A full chrombpnet.h5: both BPNets nested as functional sub-models.
  full = tmp_path / "chrombpnet.h5"
  write_keras_h5(full, weights, {"model_wo_bias": "model_wo_bias", "model": "bias"})
  arrays = read_keras_h5(full)
  assert "model_wo_bias/wo_bias_bpnet_1st_conv/kernel" in arrays
  assert "model/logcount_predictions/bias" in arrays
  model = build_model("chrombpnet")
  load_chrombpnet_keras(model, full)
  for ours, ref in zip(model.variables, reference.variables):
    np.testing.assert_array_equal(ours.numpy(), ref.numpy())

  # The portable pair: chrombpnet_nobias.h5 + bias_model_scaled.h5 (layers at the top level).
  nobias, bias_h5 = tmp_path / "nobias.h5", tmp_path / "bias_model_scaled.h5"
  with h5py.File(nobias, "w") as f, h5py.File(bias_h5, "w") as g:
    for key, value in weights.items():
      prefix, layer, weight = key.split("/")
      target = f if prefix == "model_wo_bias" else g
      target.create_dataset(f"model_weights/{layer}/{layer}/{weight}:0", data=value)
  bias = build_model("chrombpnet_bias")
  assert len(load_bpnet_keras(bias, bias_h5)) == 14  # scheme detected: 'bpnet'
  for ours, ref in zip(bias.variables, reference.bias_model.variables):
    np.testing.assert_array_equal(ours.numpy(), ref.numpy())
  assert detect_scheme(read_keras_h5(nobias)) == "wo_bias"


def test_import_errors(tmp_path, fixture_arrays):
  weights, _ = fixture_arrays
  bias_only = {k: v for k, v in weights.items() if k.startswith("bias/")}
  with pytest.raises(KerasImportError, match="both a bias model and an accessibility model"):
    load_bpnet_keras(build_model("chrombpnet_bias"), weights)
  with pytest.raises(KerasImportError, match="shape"):
    load_bpnet_keras(ChromBPNetBias(BiasBPNetConfig(filters=64)), bias_only)
  with pytest.raises(KerasImportError, match="more dilated layers"):
    load_bpnet_keras(ChromBPNetBias(BiasBPNetConfig(num_dilated_layers=3, sequence_length=2114)),
                     bias_only)
  missing = {k: v for k, v in bias_only.items() if "bpnet_2conv" not in k}
  with pytest.raises(KerasImportError, match="missing bpnet_2conv/kernel"):
    load_bpnet_keras(build_model("chrombpnet_bias"), missing)
  with pytest.raises(FileNotFoundError):
    read_keras_h5(tmp_path / "absent.h5")
