"""The distributed trainer on one device: loop mechanics, checkpoints, logs, guards, the TPU
path as far as a CPU can take it, the strategy factory, and training every model family
through training configs (the `train` CLI path).

Multi-replica runs (Replicator, MultiWorkerMirroredStrategy) and kill-and-resume need their
own processes: see test_distributed.py. Nothing here enables op determinism (a
process-wide switch), so numeric comparisons use tolerances.
"""

import json
import math
import os
import socket

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

from tf_seqmodels import cli
from tf_seqmodels.blocks.torch_compat import TorchBatchNorm
from tf_seqmodels.config import ConfigError
from tf_seqmodels.tasks.base import StreamingMetric, Task
from tf_seqmodels.tasks.dream import RegressionTask
from tf_seqmodels.training import strategy as strategy_lib
from tf_seqmodels.training.checkpointing import checkpoint_step, read_best, restore_model
from tf_seqmodels.training.logging import MetricsLog
from tf_seqmodels.training.optimizers import AdamW
from tf_seqmodels.training.run_config import TrainConfig, run_training
from tf_seqmodels.training.schedules import OneCycle
from tf_seqmodels.training.strategy import (StrategyConfig, StrategyError, StrategyInfo,
                                            make_strategy)
from tf_seqmodels.training.trainer import (NonFiniteLossError, Trainer, TrainerConfig, evaluate,
                                           fit, selection)


class TinyNet(snt.Module):
  """[B, L, 4] -> {"gc": [B], "at": [B]}: conv -> PyTorch BatchNorm -> relu -> mean -> linear."""

  def __init__(self, dropout: float = 0.0, name=None):
    super().__init__(name=name)
    # No bias before BatchNorm: its gradient is rounding noise, which Adam would amplify to
    # full-size steps and make exact comparisons between graph and eager runs meaningless.
    self.conv = snt.Conv1D(8, 5, with_bias=False, name="conv")
    self.norm = TorchBatchNorm(name="norm")
    self.gc_head = snt.Linear(1, name="gc_head")
    self.at_head = snt.Linear(1, name="at_head")
    self.dropout = dropout

  def __call__(self, inputs, is_training):
    hidden = tf.nn.relu(self.norm(self.conv(inputs), is_training=is_training))
    if is_training and self.dropout:
      hidden = tf.nn.dropout(hidden, self.dropout)
    pooled = tf.reduce_mean(hidden, axis=1)
    return {"gc": self.gc_head(pooled)[:, 0], "at": self.at_head(pooled)[:, 0]}


def toy_data(n=64, length=20, seed=0):
  """One-hot ACGT sequences; targets: GC and AT fractions (learnable by TinyNet)."""
  rng = np.random.default_rng(seed)
  x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (n, length))]
  gc = x[..., 1:3].sum(-1).mean(-1).astype(np.float32)
  return x, {"gc": gc, "at": (1.0 - gc).astype(np.float32)}


def first(x, y, n):
  return x[:n], {k: v[:n] for k, v in y.items()}


def dataset(x, y, batch, shuffle_seed=None):
  ds = tf.data.Dataset.from_tensor_slices((x, y))
  if shuffle_seed is not None:
    ds = ds.shuffle(len(x), seed=shuffle_seed)
  return ds.batch(batch)


def quiet(**kwargs):
  return TrainerConfig(progress=False, **kwargs)


def variables_of(model):
  return {v.name: v.numpy() for v in model.variables}


# --- mechanics, logs, checkpoints -----------------------------------------------------------------

def test_fit_trains_logs_checkpoints_and_refuses_accidental_reuse(tmp_path):
  x, y = toy_data()
  train, valid = dataset(x, y, 16, shuffle_seed=1), dataset(*first(x, y, 40), 16)
  model = TinyNet()
  trainer = Trainer(model, RegressionTask(["gc"]), AdamW(0.02),
                    config=quiet(epochs=4, select_best_by="pearson", log_every=2, seed=3),
                    run_dir=str(tmp_path), metadata={"note": "unit test"})
  history = trainer.fit(train, valid)
  assert history["steps"] == 16 and history["stopped"] == "completed"
  assert len(history["loss"]) == len(history["epoch_time"]) == 4
  assert history["loss"][-1] < 0.5 * history["loss"][0]
  assert history["eval_steps"] == [4, 8, 12, 16]
  best = int(np.nanargmax(history["val_pearson"]))
  assert history["best_step"] == history["eval_steps"][best]
  assert history["best_epoch"] == best + 1
  assert history["best_value"] == pytest.approx(history["val_pearson"][best])

  meta = json.loads((tmp_path / "run.json").read_text())
  assert meta["status"] == "completed" and meta["seed"] == 3 and meta["deterministic"] is False
  assert meta["strategy"]["kind"] == "default" and meta["strategy"]["num_replicas"] == 1
  assert meta["versions"]["tensorflow"] == tf.__version__
  assert meta["trainer"]["select_best_by"] == "pearson" and meta["config"] == {"note": "unit test"}

  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  train_records = [r for r in records if r["split"] == "train"]
  assert [r["step"] for r in train_records] == [2, 4, 6, 8, 10, 12, 14, 16]
  assert {"loss", "learning_rate", "examples_per_sec", "steps_per_sec", "grad_norm"} <= set(
      train_records[0])
  assert train_records[0]["learning_rate"] == pytest.approx(0.02)
  csv_lines = (tmp_path / "metrics.csv").read_text().splitlines()
  assert csv_lines[0] == "step,epoch,split,name,value,time"
  assert sum(",valid,pearson," in line for line in csv_lines) == 4

  # TensorBoard scalars (written without the tensorboard package) match the JSON log.
  events = tf.io.gfile.glob(str(tmp_path / "tensorboard" / "events.out.tfevents.*"))
  losses = {}
  for event in tf.compat.v1.train.summary_iterator(events[0]):
    for value in event.summary.value:
      if value.tag == "train/loss":
        losses[event.step] = float(tf.make_ndarray(value.tensor))
      if value.tag == "train/loss":
        assert value.metadata.plugin_data.plugin_name == "scalars"
  assert losses == pytest.approx({r["step"]: r["loss"] for r in train_records}, rel=1e-6)

  # The best checkpoint, restored into a fresh model, scores the best validation value.
  restored = TinyNet()
  restore_model(restored, str(tmp_path), "best")
  assert read_best(str(tmp_path))["step"] == history["best_step"]
  assert evaluate(restored, RegressionTask(["gc"]), valid)["pearson"] == pytest.approx(
      history["best_value"], rel=1e-5)

  again = Trainer(TinyNet(), RegressionTask(["gc"]), AdamW(0.02), config=quiet(epochs=4),
                  run_dir=str(tmp_path))
  with pytest.raises(FileExistsError, match="resume"):
    again.fit(train, valid)
  # Resuming a finished run restores it and trains no further.
  done = again.fit(train, valid, resume=True)
  assert done["resumed_from"] == 16 and done["steps"] == 16 and done["loss"] == history["loss"]


def test_fit_function_trains_through_the_trainer(tmp_path):
  x, y = toy_data()
  valid = dataset(*first(x, y, 32), 16)
  model = TinyNet()
  history = fit(model, RegressionTask(["gc"]), dataset(x, y, 16, shuffle_seed=0),
                optimizer=AdamW(0.02), epochs=3, steps_per_epoch=2, validation_data=valid,
                select_best_by="pearson", run_dir=str(tmp_path), progress=False)
  assert history["steps"] == 6 and len(history["loss"]) == len(history["val_pearson"]) == 3
  assert history["best_epoch"] == int(np.nanargmax(history["val_pearson"])) + 1
  restored = TinyNet()
  restore_model(restored, str(tmp_path), "best")
  assert evaluate(restored, RegressionTask(["gc"]), valid)["pearson"] == pytest.approx(
      history["best_value"], rel=1e-5)
  assert history["best_checkpoint"].startswith(str(tmp_path))


class ScriptedMetric(StreamingMetric):
  """Reports the next value of a script at every validation."""

  def __init__(self, script):
    self.script = script

  def reset(self):
    pass

  def update(self, targets, outputs):
    pass

  def result(self):
    return self.script.pop(0)


class ScriptedTask(Task):
  METRICS = {"score": True}

  def __init__(self, script):
    self.inner, self.script = RegressionTask(["gc"]), script

  @property
  def head_names(self):
    return ("gc",)

  def loss(self, targets, outputs):
    return self.inner.loss(targets, outputs)

  def make_metrics(self):
    return {"score": ScriptedMetric(self.script)}


def test_keep_best_and_early_stopping_with_patience(tmp_path):
  """Scores 0.5, 0.7, 0.65, 0.72, 0.71, 0.70, ... with min_delta 0.03 and patience 3: the best
  is the 2nd validation (0.72 is not 0.03 better), training stops after the 5th."""
  x, y = toy_data()
  model = TinyNet()
  trainer = Trainer(model, ScriptedTask([0.5, 0.7, 0.65, 0.72, 0.71, 0.70, 0.9, 0.9]),
                    AdamW(0.01),
                    config=quiet(epochs=4, steps_per_epoch=4, eval_every=2, select_best_by="score",
                                 patience=3, min_delta=0.03, keep_checkpoints=10),
                    run_dir=str(tmp_path))
  history = trainer.fit(dataset(x, y, 16), dataset(*first(x, y, 32), 16))
  assert history["stopped"] == "early_stopping"
  assert history["eval_steps"] == [2, 4, 6, 8, 10] and history["steps"] == 10
  assert history["val_score"] == [0.5, 0.7, 0.65, 0.72, 0.71]
  assert history["best_step"] == 4 and history["best_value"] == 0.7 and history["best_epoch"] == 1
  best = read_best(str(tmp_path))
  assert best["step"] == 4 and best["metric"] == "score"
  assert len([e for e in os.listdir(tmp_path) if e.startswith("best-step")]) == 1
  # The best checkpoint holds the weights of step 4 (the resume checkpoint of that step).
  at_best, at_step4 = TinyNet(), TinyNet()
  restore_model(at_best, str(tmp_path), "best")
  restore_model(at_step4, str(tmp_path / "checkpoints" / "ckpt-4"))
  for module in (at_best, at_step4):  # deferred restoration happens as variables are created
    module(tf.zeros([1, 20, 4]), is_training=False)
  for a, b in zip(at_best.trainable_variables, at_step4.trainable_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert json.loads((tmp_path / "run.json").read_text())["status"] == "early_stopping"
  # Resuming a run that stopped early does not train on.
  again = Trainer(TinyNet(), ScriptedTask([]), AdamW(0.01), config=trainer.config,
                  run_dir=str(tmp_path))
  resumed = again.fit(dataset(x, y, 16), dataset(*first(x, y, 32), 16), resume=True)
  assert resumed["stopped"] == "early_stopping" and resumed["steps"] == 10
  assert resumed["val_score"] == history["val_score"] and resumed["best_step"] == 4


def test_selection_reads_the_tasks_declared_directions():
  task = RegressionTask(["gc"])
  assert selection("loss", task) == ("loss", False) and selection("max:mse", task) == ("mse", True)
  assert selection("mse", task) == ("mse", False) and selection("pearson", task) == ("pearson", True)
  assert selection("mse/gc", task) == ("mse/gc", False)
  sources = {"human": task, "mouse": RegressionTask(["gc"])}
  assert selection("human/pearson", sources) == ("human/pearson", True)
  assert selection("mouse/mse", sources) == ("mouse/mse", False)
  assert selection("loss", sources) == ("loss", False)
  with pytest.raises(ConfigError, match=r"'r2' is not a metric of this task; its metrics are "
                     r"\['loss', 'mse', 'mse/gc', 'pearson'"):
    selection("r2", task)
  with pytest.raises(ConfigError, match="'min:jsd' is not a metric|'jsd' is not a metric"):
    selection("min:jsd", task)


# --- resume after damage, interrupts --------------------------------------------------------------

def test_resume_keeps_the_metrics_around_a_torn_line_and_skips_a_damaged_checkpoint(tmp_path):
  x, y = toy_data()
  train, valid = dataset(x, y, 16, shuffle_seed=1), dataset(*first(x, y, 32), 16)
  config = quiet(epochs=2, checkpoint_every=2, keep_checkpoints=5, log_every=1)
  Trainer(TinyNet(), RegressionTask(["gc"]), AdamW(0.02), config=config,
          run_dir=str(tmp_path)).fit(train, valid)  # 8 steps, checkpoints 0, 2, 4, 6, 8
  log = tmp_path / "metrics.jsonl"
  lines = log.read_text().splitlines()
  assert len(lines) > 6
  lines[2] = lines[2][:len(lines[2]) // 2]  # one torn line in the middle of the history
  log.write_text("\n".join(lines) + "\n")
  # The newest checkpoint is cut short (a full disk): resume falls back to step 6.
  for data in tf.io.gfile.glob(str(tmp_path / "checkpoints" / "ckpt-8.data-*")):
    with open(data, "r+b") as f:
      f.truncate(max(1, os.path.getsize(data) // 3))
  again = Trainer(TinyNet(), RegressionTask(["gc"]), AdamW(0.02), config=config.replace(epochs=3),
                  run_dir=str(tmp_path))
  history = again.fit(train, valid, resume=True)
  assert history["resumed_from"] == 6 and history["steps"] == 12
  kept = MetricsLog(str(tmp_path)).records
  before = [json.loads(line) for i, line in enumerate(lines) if i != 2]
  # Every intact record up to step 6 survives (only the torn line is gone), then the new ones.
  assert [r for r in kept if r["step"] <= 6] == [r for r in before if r["step"] <= 6]
  assert max(r["step"] for r in kept) == 12 and len(history["loss"]) == 3


def test_resume_with_no_checkpoint_that_restores_is_a_clear_error(tmp_path):
  from tf_seqmodels.training.checkpointing import CheckpointError
  x, y = toy_data(n=32)
  Trainer(TinyNet(), RegressionTask(["gc"]), AdamW(0.02), config=quiet(epochs=1),
          run_dir=str(tmp_path)).fit(dataset(x, y, 16))
  for index in tf.io.gfile.glob(str(tmp_path / "checkpoints" / "ckpt-*.index")):
    with open(index, "r+b") as f:
      f.truncate(7)
  with pytest.raises(CheckpointError, match="no resume checkpoint in .* restores: .*ckpt-2"):
    Trainer(TinyNet(), RegressionTask(["gc"]), AdamW(0.02), config=quiet(epochs=2),
            run_dir=str(tmp_path)).fit(dataset(x, y, 16), resume=True)


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_signal_saves_a_checkpoint_marks_the_run_interrupted_and_resume_finishes(
    tmp_path, signal_name):
  import signal
  from tf_seqmodels.training.trainer import TrainingInterrupted
  x, y = toy_data(n=96)

  def batches():
    for i in range(0, 96, 8):
      if i == 3 * 8:  # the signal arrives while the 4th batch is read
        os.kill(os.getpid(), getattr(signal, signal_name))
      yield x[i:i + 8], {k: v[i:i + 8] for k, v in y.items()}

  spec = (tf.TensorSpec([None, 20, 4], tf.float32),
          {k: tf.TensorSpec([None], tf.float32) for k in y})
  data = tf.data.Dataset.from_generator(batches, output_signature=spec)
  config = quiet(epochs=2, steps_per_epoch=12)
  previous = signal.getsignal(signal.SIGINT)
  with pytest.raises(TrainingInterrupted, match=f"interrupted by {signal_name} at step") as stop:
    Trainer(TinyNet(), RegressionTask(["gc"]), AdamW(0.02), config=config,
            run_dir=str(tmp_path)).fit(data)
  assert signal.getsignal(signal.SIGINT) is previous  # handlers are restored
  step = stop.value.step
  assert 0 < step < 24 and checkpoint_step(stop.value.checkpoint) == step
  run = json.loads((tmp_path / "run.json").read_text())
  assert run["status"] == "interrupted" and run["final_step"] == step
  assert stop.value.history["steps"] == step

  def quiet_batches():
    for i in range(0, 96, 8):
      yield x[i:i + 8], {k: v[i:i + 8] for k, v in y.items()}

  data = tf.data.Dataset.from_generator(quiet_batches, output_signature=spec)
  done = Trainer(TinyNet(), RegressionTask(["gc"]), AdamW(0.02), config=config,
                 run_dir=str(tmp_path)).fit(data, resume=True)
  assert done["resumed_from"] == step and done["steps"] == 24 and done["stopped"] == "completed"


def test_train_cli_exits_130_with_one_line_on_an_interrupt(tmp_path, monkeypatch, capsys):
  from tf_seqmodels.training import run_config
  from tf_seqmodels.training.trainer import TrainingInterrupted

  def interrupted(config, **kwargs):
    raise TrainingInterrupted("training interrupted by SIGINT at step 5; checkpoint x saved: "
                              "continue with --resume", 5, "x", {}, "SIGINT")

  monkeypatch.setattr(run_config, "run_training", interrupted)
  path = tmp_path / "run.yaml"
  TrainConfig(run_dir=str(tmp_path / "run")).save(path)
  assert cli.main(["train", "--config", str(path)]) == 130
  err = capsys.readouterr().err.strip().splitlines()
  assert err == ["tf-seqmodels train: training interrupted by SIGINT at step 5; checkpoint x "
                 "saved: continue with --resume"]


def test_train_steps_runs_fits_step_one_update_at_a_time():
  """`train_steps` (benchmarks, custom loops) applies the very updates `fit` applies: same
  weights and data give the same variables; a NaN batch raises, its update not applied."""
  x, y = toy_data(48)
  fitted, stepped = TinyNet(), TinyNet()
  fit_trainer = Trainer(fitted, RegressionTask(["gc"]), AdamW(0.02), config=quiet(epochs=1))
  step_trainer = Trainer(stepped, RegressionTask(["gc"]), AdamW(0.02), config=quiet())
  for trainer in (fit_trainer, step_trainer):
    trainer.build(dataset(x, y, 16).element_spec[0])
  for target, source in zip(stepped.variables, fitted.variables):
    target.assign(source)
  fit_trainer.fit(dataset(x, y, 16))
  steps = step_trainer.train_steps(dataset(x, y, 16))
  losses = [next(steps) for _ in range(3)]  # one epoch of 48 examples in batches of 16
  assert len(losses) == 3 and all(np.isfinite(losses))
  for name, value in variables_of(fitted).items():
    np.testing.assert_allclose(variables_of(stepped)[name], value, rtol=1e-5, atol=1e-6,
                               err_msg=name)
  x[20, 2] = np.nan  # the second batch
  steps = step_trainer.train_steps(dataset(x, y, 16))
  next(steps)
  before = [v.numpy() for v in stepped.trainable_variables]
  with pytest.raises(NonFiniteLossError, match="update 2"):
    next(steps)
  for variable, value in zip(stepped.trainable_variables, before):
    np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.name)


@pytest.mark.parametrize("steps_per_call", [1, 4])
def test_nan_guard_stops_with_last_good_checkpoint(tmp_path, steps_per_call):
  x, y = toy_data(n=80)
  x[5 * 8 + 3, 2] = np.nan  # the 6th batch of 8
  model = TinyNet()
  trainer = Trainer(model, RegressionTask(["gc"]), AdamW(0.01),
                    config=quiet(epochs=1, checkpoint_every=4, steps_per_call=steps_per_call),
                    run_dir=str(tmp_path))
  with pytest.raises(NonFiniteLossError, match="update 6") as failure:
    trainer.fit(dataset(x, y, 8))
  assert failure.value.step == 6 and checkpoint_step(failure.value.checkpoint) == 4
  saved = sorted(checkpoint_step(p[:-len(".index")])
                 for p in tf.io.gfile.glob(str(tmp_path / "checkpoints" / "ckpt-*.index")))
  assert saved == [0, 4]  # nothing written after the bad step
  # The model in memory is the last good checkpoint, and its weights are finite.
  good = TinyNet()
  restore_model(good, failure.value.checkpoint)
  good(tf.zeros([1, 20, 4]), is_training=False)
  for a, b in zip(model.variables, good.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert np.all(np.isfinite(a.numpy()))
  assert json.loads((tmp_path / "run.json").read_text())["status"] == "nonfinite"


def test_sources_rotate_with_their_tasks_and_clipping_matches_a_manual_loop():
  """Two sources ("gc" batches, "at" batches), one batch per step in strict rotation, each
  with its own task, global-norm clipping: identical to a hand-written loop."""
  x, y = toy_data(n=32)
  data = {"gc": dataset(x[:16], {"gc": y["gc"][:16]}, 8),
          "at": dataset(x[16:], {"at": y["at"][16:]}, 8)}
  tasks = {"gc": RegressionTask(["gc"]), "at": RegressionTask(["at"])}
  tf.random.set_seed(1)
  model, reference = TinyNet(), TinyNet()
  trainer = Trainer(model, tasks, AdamW(0.05),
                    config=quiet(epochs=2, clip_global_norm=0.05, steps_per_call=2))
  trainer.build(tf.TensorSpec([None, 20, 4]))
  reference(tf.zeros([1, 20, 4]), is_training=False)
  for a, b in zip(reference.variables, model.variables):
    a.assign(b)
  optimizer = AdamW(0.05)
  batches = {name: list(ds) for name, ds in data.items()}
  for epoch in range(2):
    for i in range(2):
      for name in ("gc", "at"):
        inputs, targets = batches[name][i]
        with tf.GradientTape() as tape:
          loss = tasks[name].loss(targets, reference(inputs, is_training=True))
        grads = tape.gradient(loss, reference.trainable_variables)
        grads = [g if g is not None else None for g in grads]
        present = [g for g in grads if g is not None]
        clipped, _ = tf.clip_by_global_norm(present, 0.05)
        it = iter(clipped)
        optimizer.apply([next(it) if g is not None else None for g in grads],
                        reference.trainable_variables)
  history = trainer.fit(data)
  assert history["steps"] == 8 and len(history["loss"]) == 2
  for a, b in zip(reference.variables, model.variables):
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
  with pytest.raises(ConfigError, match="multiple of the 2"):
    Trainer(TinyNet(), tasks, AdamW(0.05), config=quiet(eval_every=3)).fit(data)


def test_metrics_log_truncation_drops_records_after_the_checkpoint(tmp_path):
  log = MetricsLog(str(tmp_path))
  for step in (2, 4, 6):
    log.append(step, "train", {"loss": 1.0 / step})
  log.append(6, "valid", {"pearson": float("nan")})
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 8, "spl')  # a line cut short by a kill
  again = MetricsLog(str(tmp_path))
  assert [r["step"] for r in again.records] == [2, 4, 6, 6]
  again.truncate(4)
  assert [r["step"] for r in MetricsLog(str(tmp_path)).records] == [2, 4]
  assert (tmp_path / "metrics.csv").read_text().splitlines()[1:] == [
      line for line in (tmp_path / "metrics.csv").read_text().splitlines()[1:]
      if line.split(",")[0] in ("2", "4")]
  assert MetricsLog(None).records == []


# --- TPU path, XLA, mixed precision ------------------------------------------------------------

def test_xla_step_matches_graph_step_and_tpu_style_static_batches():
  x, y = toy_data(n=40)
  tf.random.set_seed(2)
  plain, compiled = TinyNet(), TinyNet()
  graph = Trainer(plain, RegressionTask(["gc"]), AdamW(0.01), config=quiet())
  xla = Trainer(compiled, RegressionTask(["gc"]), AdamW(0.01), config=quiet(jit_compile=True))
  for trainer in (graph, xla):
    trainer.build(tf.TensorSpec([None, 20, 4]))
  for a, b in zip(compiled.variables, plain.variables):
    a.assign(b)
  loss_graph, grads_graph = graph.loss_and_gradients(x[:8], {"gc": y["gc"][:8]})
  loss_xla, grads_xla = xla.loss_and_gradients(x[:8], {"gc": y["gc"][:8]})
  assert loss_xla == pytest.approx(loss_graph, rel=1e-5)
  assert [g is None for g in grads_xla] == [g is None for g in grads_graph]  # the "at" head
  for a, b in zip(grads_xla, grads_graph):
    if a is not None:
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  history = xla.fit(dataset(x, y, 8, shuffle_seed=0))
  assert history["steps"] == 5 and math.isfinite(history["loss"][0])

  # The TPU data path on the default strategy: static global batches (drop_remainder via
  # rebatch), every call of several steps inside one tf.function, variables created in it.
  info = StrategyInfo(tf.distribute.get_strategy(), "tpu", 1)
  tpu_like = Trainer(TinyNet(), RegressionTask(["gc"]), AdamW(0.01), strategy=info,
                     config=quiet(epochs=2, batch_size=16, steps_per_call=4))
  history = tpu_like.fit(dataset(x, y, 16).unbatch().batch(7))  # 40 -> 2 full batches of 16
  assert history["steps"] == 4
  prepared = tpu_like._prepare(dataset(x, y, 7), training=False, where="valid")
  assert prepared.element_spec[0].shape.as_list() == [16, 20, 4]
  with pytest.raises(ValueError, match="static input shapes"):
    tpu_like._prepare(tf.data.Dataset.from_generator(
        lambda: iter([]), output_signature=(tf.TensorSpec([16, None, 4]),
                                            {"gc": tf.TensorSpec([16])})), True, "train")


def test_bfloat16_compute_keeps_float32_variables():
  originals = {cls: cls.__dict__["__call__"] for cls in (snt.Linear, snt.Conv1D.__mro__[1])}
  x, y = toy_data(n=64)
  tf.random.set_seed(4)
  full, mixed = TinyNet(), TinyNet()
  f32 = Trainer(full, RegressionTask(["gc"]), AdamW(0.02), config=quiet())
  bf16 = Trainer(mixed, RegressionTask(["gc"]), AdamW(0.02),
                 config=quiet(epochs=6, mixed_precision="bfloat16"))
  for trainer in (f32, bf16):
    trainer.build(tf.TensorSpec([None, 20, 4]))
  for a, b in zip(mixed.variables, full.variables):
    a.assign(b)
  loss32, grads32 = f32.loss_and_gradients(x[:16], {"gc": y["gc"][:16]})
  loss16, grads16 = bf16.loss_and_gradients(x[:16], {"gc": y["gc"][:16]})
  assert loss16 == pytest.approx(loss32, rel=3e-2)
  grads16, grads32 = [g for g in grads16 if g is not None], [g for g in grads32 if g is not None]
  assert len(grads16) == len(grads32) == 5 and all(g.dtype == np.float32 for g in grads16)
  for a, b in zip(grads16, grads32):
    assert np.linalg.norm(a - b) <= 0.05 * np.linalg.norm(b) + 1e-4
  history = bf16.fit(dataset(x, y, 16, shuffle_seed=0))
  assert history["loss"][-1] < 0.5 * history["loss"][0]
  assert {v.dtype for v in mixed.variables} == {tf.float32, tf.int64}
  # The precision scope patched Linear / ConvND only while tracing.
  assert {cls: cls.__dict__["__call__"] for cls in originals} == originals


# --- strategy factory --------------------------------------------------------------------------

def test_strategy_factory_default_and_config_errors():
  info = make_strategy()
  assert info.kind == "default" and info.num_replicas == 1 and info.is_chief
  assert info.strategy is tf.distribute.get_strategy()
  with pytest.raises(ConfigError, match="needs `tpu`"):
    StrategyConfig(kind="tpu")
  with pytest.raises(ConfigError, match="one of"):
    StrategyConfig.from_dict({"kind": "gpus"})
  with pytest.raises(ConfigError, match="cpu_devices"):
    StrategyConfig(kind="mirrored", cpu_devices=1)
  with pytest.raises(ConfigError, match="patience"):
    TrainerConfig(patience=2)
  with pytest.raises(StrategyError, match="already initialised"):
    strategy_lib.configure_logical_devices(3)  # TensorFlow has run ops in this process


def test_tpu_errors_are_clear_and_the_factory_builds_a_tpu_replicator(monkeypatch):
  with socket.socket() as s:  # a port nobody listens on
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  with pytest.raises(StrategyError, match=f"cannot reach the TPU worker at 127.0.0.1:{port}"):
    make_strategy("tpu", tpu=f"grpc://127.0.0.1:{port}", connect_timeout_s=2)

  calls = []

  class FakeResolver:
    def __init__(self, tpu):
      calls.append(("resolver", tpu))

  class FakeTpuReplicator:
    num_replicas_in_sync = 8

    def __init__(self, resolver):
      calls.append(("replicator", type(resolver).__name__))
      self.extended = type("Extended", (), {"worker_devices": ("/tpu:0",)})()

  monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", FakeResolver)
  monkeypatch.setattr(tf.config, "experimental_connect_to_cluster",
                      lambda r: calls.append(("connect", type(r).__name__)))
  monkeypatch.setattr(tf.tpu.experimental, "initialize_tpu_system",
                      lambda r: calls.append(("initialize", type(r).__name__)))
  monkeypatch.setattr(snt.distribute, "TpuReplicator", FakeTpuReplicator)
  info = make_strategy("tpu", tpu="local")
  assert calls == [("resolver", "local"), ("connect", "FakeResolver"),
                   ("initialize", "FakeResolver"), ("replicator", "FakeResolver")]
  assert info.kind == "tpu" and info.is_tpu and info.num_replicas == 8

  def not_found(resolver):
    raise tf.errors.NotFoundError(None, None, "TPUs not found in the cluster")

  monkeypatch.setattr(tf.tpu.experimental, "initialize_tpu_system", not_found)
  with pytest.raises(StrategyError, match="could not connect to TPU 'local': NotFoundError"):
    make_strategy("tpu", tpu="local")


# --- every model family through training configs (the `train` CLI path) ------------------------

def _train_config(tmp_path, name, model, task, data, **trainer):
  return TrainConfig.from_dict({
      "model": model, "task": task, "data": data,
      "optimizer": {"name": "adam", "learning_rate": 3e-3},
      "trainer": {"epochs": 3, "progress": False, "log_every": 4, **trainer},
      "run_dir": str(tmp_path / name)})


def write_track_inputs(root, seed=0):
  """genome.fa (chr1 8 kb train, chr2 / chr3 3 kb valid / test), a coverage bigWig that
  follows the local GC content, a two-track Basenji targets table, windows and a fold."""
  import pyBigWig
  from tf_seqmodels.data.intervals import Fold, Regions, write_bed
  from tf_seqmodels.data.tracks import TrackSpec, write_targets_table
  rng = np.random.default_rng(seed)
  sizes = {"chr1": 8000, "chr2": 3000, "chr3": 3000}
  bw = pyBigWig.open(str(root / "signal.bw"), "w")
  bw.addHeader(list(sizes.items()))
  with open(root / "genome.fa", "w") as fasta:
    for chrom, size in sizes.items():
      seq = np.array(list("ACGT"))[rng.integers(0, 4, size)]
      fasta.write(f">{chrom}\n" + "".join(seq) + "\n")
      gc = np.convolve(np.isin(seq, ["C", "G"]).astype(float), np.ones(25) / 25, "same")
      bw.addEntries(chrom, 0, values=(4.0 * gc**2).tolist(), span=1, step=1)
  bw.close()
  tracks = [TrackSpec(name="cov", path=str(root / "signal.bw")),
            TrackSpec(name="cov_max", path=str(root / "signal.bw"), sum_stat="max")]
  write_targets_table(root / "targets.txt", tracks)
  centres = {"chr1": np.arange(300, 7700, 200), "chr2": np.arange(300, 2700, 400),
             "chr3": np.arange(300, 2700, 400)}
  regions = Regions.from_centres(sum(([c] * len(v) for c, v in centres.items()), []),
                                 np.concatenate(list(centres.values())))
  write_bed(root / "regions.bed", regions)
  fold = Fold(train=("chr1",), valid=("chr2",), test=("chr3",))
  fold.save(root / "fold.json")
  return tracks, regions, fold


def test_enformer_on_bigwig_and_tfrecord_sources_in_rotation(tmp_path):
  """Tiny Enformer; human batches from FASTA + bigWig windows (`tracks` builder), mouse
  batches from Basenji TFRecords written from the same files (`basenji` builder), alternating;
  Poisson loss per head, linear warm-up and global-norm clipping (the Enformer recipe)."""
  from tf_seqmodels.data.tfrecords import write_basenji_tfrecords
  from tf_seqmodels.data.tracks import TrackDataConfig
  tracks, regions, fold = write_track_inputs(tmp_path)
  geometry = {"sequence_length": 256, "bin_size": 16, "target_length": 4}
  write_basenji_tfrecords(tmp_path / "basenji", tmp_path / "genome.fa", tracks, regions, fold,
                          TrackDataConfig(**geometry), seqs_per_tfr=16)
  enformer = {"name": "enformer", "config": {
      "channels": 48, "num_transformer_layers": 1, "num_heads": 2, "filters_divisible_by": 8,
      "heads": {"human": 2, "mouse": 2}, "sequence_length": 256, "target_length": 4,
      "num_conv_tower_blocks": 3}}
  data = {"type": "multi", "batch_size": 8, "options": {"sources": {
      "human": {"type": "tracks", "options": {
          "fasta": str(tmp_path / "genome.fa"), "targets": str(tmp_path / "targets.txt"),
          "regions": str(tmp_path / "regions.bed"), "fold": str(tmp_path / "fold.json"),
          "data": {**geometry, "head": "human", "max_shift": 3, "reverse_complement": True}}},
      "mouse": {"type": "basenji", "options": {"data_dir": str(tmp_path / "basenji"),
                                               "head": "mouse", "reverse_complement": True}}}}}
  config = _train_config(tmp_path, "enformer", enformer, {"type": "tracks"}, data,
                         clip_global_norm=0.2, epochs=3, select_best_by="human/pearson",
                         log_every=2, steps_per_call=2)
  config = config.replace(optimizer=config.optimizer.replace(
      learning_rate=5e-3, schedule="warmup", warmup_steps=4))
  history = run_training(config)
  assert history["steps"] == 3 * 2 * 5  # 37 training windows: 5 batches per source and epoch
  assert history["loss"][-1] < history["loss"][0]
  assert {"val_human/loss", "val_human/pearson", "val_mouse/pearson", "val_loss"} <= set(history)
  rates = [r["learning_rate"] for r in MetricsLog(config.run_dir).records if r["split"] == "train"]
  assert rates[:3] == pytest.approx([2.5e-3, 5e-3, 5e-3])  # warm-up over after 4 updates


def _head(src, dst, first_row, rows, header=False):
  lines = open(src).read().splitlines()
  keep = ([lines[0]] if header else []) + lines[first_row:first_row + rows]
  dst.write_text("\n".join(keep) + "\n")
  return str(dst)


def test_dream_and_deepstarr_tables_through_their_data_builders(shared, tmp_path):
  yeast = shared("data", "dream_yeast")
  narrow = {"first": {"out_channels": 16}, "core": {"block_sizes": [16, 16]}}
  config = _train_config(
      tmp_path, "yeast", {"name": "dream_cnn", "config": narrow}, {"type": "dream_soft_bin"},
      {"type": "dream", "batch_size": 32, "eval_batch_size": 48, "options": {
          "train": _head(yeast / "demo_train.txt", tmp_path / "train.txt", 0, 96),
          "valid": _head(yeast / "demo_train.txt", tmp_path / "valid.txt", 96, 48),
          "plasmid": str(yeast / "plasmid.json")}}, epochs=2, select_best_by="pearson")
  history = run_training(config.replace(optimizer=config.optimizer.replace(learning_rate=0.01)))
  assert history["steps"] == 2 * 6  # 96 sequences x 2 strands / 32
  assert history["loss"][-1] < history["loss"][0] and len(history["val_pearson"]) == 2

  starr = shared("data", "deepstarr_sample")
  deepstarr = {"sequence_length": 249, "input_channels": 5, "reverse_channel": 4, **narrow,
               "final": {"kind": "regression", "task_names": ["dev", "hk"]}}
  config = _train_config(
      tmp_path, "deepstarr", {"name": "dream_cnn", "config": deepstarr},
      {"type": "regression", "options": {"targets": ["dev", "hk"]}},
      {"type": "table", "batch_size": 32, "options": {
          "format": "deepstarr",
          "train": _head(starr / "sample_train.txt", tmp_path / "s_train.txt", 1, 96, True),
          "valid": _head(starr / "sample_val.txt", tmp_path / "s_valid.txt", 1, 64, True)}},
      epochs=2, select_best_by="pearson")
  history = run_training(config)
  assert history["steps"] == 2 * 3 and history["loss"][-1] < history["loss"][0]
  assert {"val_pearson/dev", "val_pearson/hk", "val_mse"} <= set(history)


def test_dream_soft_bins_and_regression_train_from_configs(tmp_path, capsys):
  dream = {"name": "dream_cnn", "config": {"first": {"out_channels": 16},
                                           "core": {"block_sizes": [16, 16]}}}
  config = _train_config(tmp_path, "soft_bins", dream, {"type": "dream_soft_bin"},
                         {"type": "teacher", "batch_size": 16,
                          "options": {"examples": 64, "valid_examples": 32}},
                         select_best_by="pearson")
  config = config.replace(optimizer=config.optimizer.replace(
      name="adamw", learning_rate=0.01, schedule="one_cycle"))
  path = tmp_path / "soft_bins.yaml"
  config.save(path)
  assert cli.main(["train", "--config", str(path)]) == 0
  assert "trained 12 steps (completed)" in capsys.readouterr().out
  epochs = [r for r in MetricsLog(config.run_dir).records if r["split"] == "epoch"]
  assert epochs[-1]["loss"] < epochs[0]["loss"]
  rates = [r["learning_rate"] for r in MetricsLog(config.run_dir).records if r["split"] == "train"]
  schedule = OneCycle(0.01, 12)  # the rate of the next update, logged every 4 steps
  assert rates == pytest.approx([float(schedule(step)) for step in (4, 8, 12)], rel=1e-5)

  deepstarr = {"name": "dream_cnn", "config": {
      "sequence_length": 100, "input_channels": 5, "first": {"out_channels": 16},
      "core": {"block_sizes": [16, 16]},
      "final": {"kind": "regression", "task_names": ["dev", "hk"]}}}
  history = run_training(_train_config(
      tmp_path, "regression", deepstarr, {"type": "regression", "options": {"targets": ["dev", "hk"]}},
      {"type": "teacher", "batch_size": 16, "options": {"examples": 64, "valid_examples": 32}},
      select_best_by="pearson", patience=5))
  assert history["loss"][-1] < history["loss"][0]
  assert {"val_pearson/dev", "val_pearson/hk"} <= set(history)
  with pytest.raises(ConfigError, match="unknown key"):
    TrainConfig.from_dict({"task": {"type": "regression", "options": {"target": ["dev"]}}})
  assert cli.main(["train", "--config", str(path)]) == 2  # the run exists: --resume needed
  assert "resume" in capsys.readouterr().err


def test_chrombpnet_bias_then_accessibility_with_frozen_bias(tmp_path):
  """The two ChromBPNet stages on a synthetic genome (test_chrombpnet_training's): the bias
  model on low-count non-peaks, then ChromBPNet initialised with it (recalibrated on the
  non-peaks, then frozen) on peaks + non-peaks, counts-loss weight from the data."""
  from test_chrombpnet_training import INPUT, OUTPUT, write_synthetic_genome
  write_synthetic_genome(tmp_path)
  files = {"peaks": "peaks.narrowPeak", "nonpeaks": "nonpeaks.bed", "genome": "genome.fa",
           "bigwig": "signal.bw", "fold": "fold.json"}
  inputs = {k: str(tmp_path / v) for k, v in files.items()}
  geometry = {"input_length": INPUT, "output_length": OUTPUT}
  small = {"filters": 8, "num_dilated_layers": 2, "sequence_length": INPUT,
           "output_length": OUTPUT, "profile_kernel_size": 25}
  bias = _train_config(tmp_path, "bias", {"name": "chrombpnet_bias", "config": small},
                       {"type": "chrombpnet"},
                       {"type": "chrombpnet", "batch_size": 32, "options": {
                           **inputs, "mode": "bias", "data": geometry}},
                       epochs=2, select_best_by="min:loss")
  first_stage = run_training(bias)
  assert first_stage["loss"][-1] < first_stage["loss"][0]

  chrombpnet = {"name": "chrombpnet", "init_from": bias.run_dir, "init_component": "bias_model",
                "config": {"model_config": small, "bias_model_config": small}}
  config = _train_config(tmp_path, "accessibility", chrombpnet, {"type": "chrombpnet"},
                         {"type": "chrombpnet", "batch_size": 32, "options": {
                             **inputs, "data": {**geometry, "max_jitter": 20}}},
                         epochs=2, select_best_by="min:loss")
  second_stage = run_training(config)
  assert second_stage["loss"][-1] < second_stage["loss"][0]
  assert "val_counts_pearsonr_peaks" in second_stage

  from tf_seqmodels.models import build_model

  def bias_variables(run_dir_or_path, which="latest"):
    model = build_model("chrombpnet", chrombpnet["config"])
    restore_model(model, run_dir_or_path, which)
    model.build()
    return {v.name: v.numpy() for v in model.bias_model.variables}

  reference = build_model("chrombpnet_bias", small)
  restore_model(reference, bias.run_dir, "best")
  reference.build()
  at_start = bias_variables(str(tmp_path / "accessibility" / "checkpoints" / "ckpt-0"))
  at_end = bias_variables(config.run_dir)
  assert at_start.keys() == at_end.keys()
  for name in at_start:  # frozen while ChromBPNet trained
    np.testing.assert_array_equal(at_end[name], at_start[name], err_msg=name)
  # Initialised from the bias run; only the counts offset moved (the recalibration).
  changed = [name for name, ref in zip(at_start, reference.variables)
             if not np.array_equal(at_start[name], ref.numpy())]
  assert len(changed) == 1, changed



def test_a_dataset_that_does_not_fit_the_model_is_named_before_training():
  """Five-channel inputs for a one-hot DNA model: the contract's check names the problem
  when the trainer creates the variables, instead of a TensorFlow error in the first step."""
  from tf_seqmodels.data.encoding import SequenceError
  from tf_seqmodels.models.registry import build_model, get_entry
  from tf_seqmodels.tasks.chrombpnet import ChromBPNetTask
  model = build_model("bpnet", get_entry("bpnet").demo_config())
  trainer = Trainer(model, ChromBPNetTask(), AdamW(learning_rate=1e-3), config=quiet())
  with pytest.raises(SequenceError, match="4 channels"):
    trainer.build(tf.TensorSpec([None, model.sequence_length, 5], tf.float32))
  assert not trainer.built
