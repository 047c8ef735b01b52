"""Conformance: every registered model honours the contract end to end, at its demo config.

Parametrised over `tf_seqmodels.models.available_models()`, so registering a model adds it to
every test here (as Sonnet tests every module for checkpointing, SavedModel, distribution):

- build and call: a dict of the declared heads, [batch, ...] each, finite; head kinds and
  position axes for every head; `embed`;
- `example_inputs`: seeded, valid for `check_inputs`, DNA models' inputs decode to one-hot
  ACGT that encodes back to them;
- config round trip (to_dict / from_dict and YAML) rebuilds the same architecture, and a
  checkpoint round trip (`tf_seqmodels.convert.save_checkpoint` / `load_checkpoint`) into
  that rebuilt model gives the same outputs;
- one trainer step under the default strategy, and under `snt.distribute.Replicator` over two
  logical CPUs (one subprocess for every model: logical devices must exist before TensorFlow
  initialises), with a task derived from the model's `head_kinds` (`derived_task`);
- export to TF-Hub and to a Kipoi folder, each parity-checked (the Kipoi pipeline runs in this
  process on the hub export's SavedModel; tests/test_export_kipoi.py runs Kipoi's CLI), the
  exported signatures refusing wrongly shaped inputs, and the exports' declared accepted
  lengths agreeing with the model's `check_length`.

One model is built per name (module-scoped fixtures), at its smallest registered size
(`tiny_config`, else `demo_config`).
Run directly as `python tests/test_conformance.py replicator OUT.json` it is the worker of the
Replicator test.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
BATCH = 4  # divisible by the two replicas


# --- shared by the tests and the Replicator worker ---------------------------------------------

def derived_task(model):
  """A task for a trainer step, from the model's head kinds: Poisson NLL on track heads
  (Enformer), ChromBPNet's MNLL + counts MSE on a profile-logits + log-counts pair, MSE on
  every column of scalar heads (DREAM, Chromoformer). The package has no registry pairing a
  model with its task yet; a model whose heads fit none of these fails here, naming them."""
  from tf_seqmodels.tasks import ChromBPNetTask, RegressionTask, TrackTask
  kinds = dict(model.head_kinds)
  if set(kinds.values()) == {"tracks"}:
    return TrackTask(list(kinds))
  if sorted(kinds.values()) == ["log_counts", "profile_logits"]:
    return ChromBPNetTask(1.0)
  if set(kinds.values()) == {"scalar"}:
    return RegressionTask(_scalar_targets(model))
  raise AssertionError(f"{type(model).__name__}: no task for head kinds {kinds}")


def _scalar_targets(model):
  """{target: head or (head, column)} for every column of every scalar head."""
  import tensorflow as tf
  outputs = model(tf.nest.map_structure(tf.constant, model.example_inputs(1, seed=0)),
                  is_training=False)
  targets = {}
  for head in model.head_names:
    shape = outputs[head].shape[1:]
    if shape.num_elements() == 1:
      targets[head] = head
    else:
      assert shape.rank == 1, (head, shape)
      targets.update({f"{head}/{i}": (head, i) for i in range(shape[0])})
  return targets


def task_targets(model, outputs, seed):
  """Random targets of the derived task's structure for `outputs` ({head: tensor})."""
  rng = np.random.default_rng(seed)
  kinds = model.head_kinds
  targets = {}
  for head, value in outputs.items():
    shape = tuple(value.shape)
    if kinds[head] == "tracks":
      targets[head] = rng.gamma(2.0, 0.5, shape).astype(np.float32)
    elif kinds[head] == "profile_logits":
      targets[head] = rng.poisson(2.0, shape).astype(np.float32)
    elif kinds[head] == "log_counts":
      targets[head] = rng.normal(3.0, 0.5, shape).astype(np.float32)
    elif np.prod(shape[1:], dtype=int) == 1:
      targets[head] = rng.normal(size=shape[:1]).astype(np.float32)
    else:
      targets.update({f"{head}/{i}": rng.normal(size=shape[:1]).astype(np.float32)
                      for i in range(shape[1])})
  return targets


def one_trainer_step(name, strategy=None):
  """Builds `name`'s smallest model under `strategy`, trains one step of BATCH examples with its
  derived task; returns {"loss", "changed", "total", "finite", "replicas", "strategy"}."""
  import tensorflow as tf
  from tf_seqmodels.models import build_model, get_entry
  from tf_seqmodels.training.optimizers import AdamW
  from tf_seqmodels.training.strategy import describe_strategy
  from tf_seqmodels.training.trainer import Trainer, TrainerConfig
  info = strategy or describe_strategy()
  with info.strategy.scope():
    model = build_model(name, get_entry(name).smallest_config())
    inputs = model.example_inputs(BATCH, seed=3)
    # Variables are created lazily: by an eager call in a replica (cross-replica BatchNorm
    # runs only there; tracing cannot create replicated variables).
    info.strategy.run(lambda x: model(x, is_training=False),
                      args=(tf.nest.map_structure(tf.constant, inputs),))
  outputs = model(tf.nest.map_structure(tf.constant, inputs), is_training=False)
  targets = task_targets(model, outputs, seed=4)
  trainer = Trainer(model, derived_task(model), lambda: AdamW(1e-3), strategy=info,
                    config=TrainerConfig(epochs=1, steps_per_epoch=1, batch_size=BATCH,
                                         progress=False, tensorboard=False, log_every=1))
  before = [v.numpy().copy() for v in model.trainable_variables]
  history = trainer.fit(tf.data.Dataset.from_tensors((inputs, targets)))
  after = [v.numpy() for v in model.trainable_variables]
  return {"loss": float(history["loss"][-1]), "steps": int(history["steps"]),
          "changed": int(sum(not np.array_equal(a, b) for a, b in zip(before, after))),
          "total": len(after), "finite": bool(all(np.isfinite(a).all() for a in after)),
          "replicas": int(info.num_replicas), "strategy": type(info.strategy).__name__}


def _replicator_worker(out, names=()):
  from tf_seqmodels.training.strategy import make_strategy
  info = make_strategy("mirrored", cpu_devices=2)  # snt.distribute.Replicator
  from tf_seqmodels.models import available_models
  report = {}
  for name in names or available_models():
    try:
      report[name] = one_trainer_step(name, info)
    except Exception as e:  # reported per model by the test
      report[name] = {"error": f"{type(e).__name__}: {e}"[-3000:]}
  Path(out).write_text(json.dumps(report))


# --- the tests -------------------------------------------------------------------------------------

if __name__ != "__main__":
  import tensorflow as tf

  from tf_seqmodels.config import Config
  from tf_seqmodels.convert import load_checkpoint, save_checkpoint
  from tf_seqmodels.export.hub import HubExportConfig, export_hub, read_metadata
  from tf_seqmodels.export.kipoi import KipoiExportConfig, export_kipoi
  from tf_seqmodels.models import available_models, build_model, get_entry
  from tf_seqmodels.models.base import HEAD_KINDS

  NAMES = available_models()

  def _constant(inputs):
    return tf.nest.map_structure(tf.constant, inputs)

  def _assert_same(actual, expected, atol=1e-5):
    assert set(actual) == set(expected)
    for key in expected:
      np.testing.assert_allclose(np.asarray(actual[key]), np.asarray(expected[key]), atol=atol,
                                 rtol=1e-5, err_msg=key)


@pytest.fixture(scope="module", params=NAMES if __name__ != "__main__" else [])
def case(request):
  """One model per registered name at its smallest size (`tiny_config`, else the demo
  configuration), built and seeded, with example inputs and outputs."""
  name = request.param
  entry = get_entry(name)
  assert entry.demo_config is not None, f"register {name!r} with a demo_config"
  tf.random.set_seed(0)
  model = build_model(name, entry.smallest_config())
  model.ensure_built()
  inputs = model.example_inputs(2, seed=1)
  outputs = {k: v.numpy() for k, v in model(_constant(inputs), is_training=False).items()}
  return {"name": name, "model": model, "inputs": inputs, "outputs": outputs}


def test_call_returns_the_declared_heads(case):
  model, outputs = case["model"], case["outputs"]
  assert list(outputs) == list(model.head_names)
  for head, value in outputs.items():
    assert value.shape[0] == 2 and np.isfinite(value).all(), head
  assert set(model.head_kinds) == set(model.head_names)
  assert set(model.head_kinds.values()) <= set(HEAD_KINDS)
  assert set(model.position_axes) == set(model.head_names)
  for head, axis in model.position_axes.items():
    assert axis is None or 1 <= axis < outputs[head].ndim, (head, axis)
  embedding = tf.nest.flatten(model.embed(_constant(case["inputs"]), is_training=False))
  assert embedding and all(e.shape[0] == 2 and np.isfinite(e.numpy()).all() for e in embedding)


def test_example_inputs(case):
  model, inputs = case["model"], case["inputs"]
  model.check_inputs(_constant(inputs))
  again = model.example_inputs(2, seed=1)
  other = model.example_inputs(2, seed=2)
  for a, b, c in zip(tf.nest.flatten(inputs), tf.nest.flatten(again), tf.nest.flatten(other)):
    np.testing.assert_array_equal(a, b)  # seeded
  assert any(not np.array_equal(a, c)
             for a, c in zip(tf.nest.flatten(inputs), tf.nest.flatten(other)))
  spec = model.input_spec()
  if isinstance(spec, tf.TensorSpec):
    assert inputs.shape[2] == model.input_channels
    if model.takes_dna_sequence:
      dna = model.decode_dna(tf.constant(inputs)).numpy()
      np.testing.assert_array_equal(dna.sum(-1), 1.0)  # one base per position
      np.testing.assert_array_equal(model.encode_dna(tf.constant(dna)).numpy(), inputs)
  else:
    assert set(inputs) == set(spec)
    for key, s in spec.items():
      assert inputs[key].shape[1:] == tuple(s.shape[1:]), key


def test_config_and_checkpoint_round_trip(case, tmp_path):
  model = case["model"]
  config = model.config
  entry = get_entry(case["name"])
  assert entry.config_class.from_dict(config.to_dict()) == config
  assert entry.config_class.from_yaml(config.to_yaml()) == config
  config.save(tmp_path / "config.yaml")
  loaded = entry.config_class.load(tmp_path / "config.yaml")
  assert isinstance(loaded, Config) and loaded == config
  prefix = save_checkpoint(model, str(tmp_path / "ckpt"))
  tf.random.set_seed(123)  # other initial weights: the outputs come from the checkpoint
  rebuilt = build_model(case["name"], loaded)
  rebuilt.ensure_built()
  assert ([v.shape for v in rebuilt.variables] == [v.shape for v in model.variables])
  load_checkpoint(rebuilt, prefix)
  _assert_same({k: v.numpy() for k, v in rebuilt(_constant(case["inputs"]),
                                                  is_training=False).items()}, case["outputs"])


def test_trainer_step_default_strategy(case):
  result = one_trainer_step(case["name"])
  assert result["steps"] == 1 and np.isfinite(result["loss"]) and result["finite"], result
  assert result["changed"] >= 0.5 * result["total"], result


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
  """One subprocess trains one step of every registered model under Replicator."""
  out = tmp_path_factory.mktemp("replicator") / "report.json"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
             PYTHONPATH=str(REPO))
  done = subprocess.run([sys.executable, str(HERE), "replicator", str(out)], cwd=str(REPO),
                        env=env, capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
  return json.loads(out.read_text())


def test_trainer_step_under_replicator(case, replicated):
  result = replicated[case["name"]]
  assert "error" not in result, result.get("error")
  assert result["strategy"] == "Replicator" and result["replicas"] == 2, result
  assert result["steps"] == 1 and np.isfinite(result["loss"]) and result["finite"], result
  assert result["changed"] >= 0.5 * result["total"], result


def test_export_hub_and_kipoi(case, tmp_path):
  model, name = case["model"], case["name"]
  hub = export_hub(model, str(tmp_path / "hub"), HubExportConfig(tarball=False, model_name=name))
  for check, diffs in hub.parity.items():
    assert max(diffs.values(), default=0.0) <= 1e-4, (check, diffs)
  assert {"savedmodel", "embedding", "serving_default", "call"} <= set(hub.parity)
  assert hub.refusals  # wrongly shaped inputs were tried and refused in the graph
  metadata = read_metadata(hub.savedmodel)
  assert metadata["config"] == model.config.to_dict() and metadata["heads"] == list(
      model.head_names)
  rule = metadata["accepted_lengths"]
  if rule is not None:
    # What the exported graphs accept is what the model's check_length accepts.
    from tf_seqmodels.data.encoding import SequenceError
    top = 3 * max([model.sequence_length or 64, rule.get("at_least", 1)])
    for length in sorted({*range(1, 300), *range(top - 300, top)} - {0}):
      declared = length in rule["exactly"] or (
          "at_least" in rule and length >= rule["at_least"]
          and length % rule["multiple_of"] == 0)
      try:
        model.check_length(length)
        accepted = True
      except SequenceError:
        accepted = False
      published = getattr(model, "published_input_length", None)
      assert declared == (accepted or length == published), (name, length, rule)
  kipoi = export_kipoi(model, str(tmp_path / "kipoi"),
                       KipoiExportConfig(in_process=True, run_kipoi_test=False,
                                         example_intervals=3, batch_size=2),
                       savedmodel=hub.savedmodel)
  assert set(kipoi.parity["kipoi"]) == set(model.head_names)
  assert set(kipoi.parity["expect"]) == set(model.head_names)
  for check in ("kipoi", "expect", "savedmodel"):
    assert max(kipoi.parity[check].values()) <= 1e-4, (check, kipoi.parity[check])
  if model.takes_dna_sequence:
    assert kipoi.parity["kipoi_inputs"]["inputs"] == 0.0


if __name__ == "__main__":
  if sys.argv[1:2] == ["replicator"]:
    _replicator_worker(sys.argv[2], sys.argv[3:])
  else:
    sys.exit(f"usage: {sys.argv[0]} replicator OUT.json [MODEL ...]")
