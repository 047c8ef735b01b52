"""Training through `fit()` (the Trainer in one call): history, best checkpoint and guards on
a tiny model, then DREAM-CNN and DREAM-RNN overfitting rows of demo_train.txt with the
soft-label / KL pipeline end to end.

The DREAM models here are narrower than the published ones (same blocks and wiring, fewer
channels; the RNN also without dropout) and see 128-256 rows: a full-width DREAM-CNN step
takes ~3 s at batch 64 on two shared CPU cores and the full Bi-LSTM learns too slowly
for a short test. Full-width models are covered by the model tests and bench/.
"""

import json
import math
import os

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

from tf_seqmodels.data import dream as D
from tf_seqmodels.models.dream import (AutosomeCoreConfig, BHICoreConfig, BHIFirstConfig,
                                       DreamCNN, DreamCNNConfig, DreamRNN, DreamRNNConfig)
from tf_seqmodels.tasks.dream import DreamSoftBinTask, RegressionTask
from tf_seqmodels.config import ConfigError
from tf_seqmodels.training import (AdamW, Constant, DreamTrainingConfig, evaluate, fit, read_best,
                                   restore_model)


class TinyRegressor(snt.Module):
  """[B, L, 5] -> {"activity": [B]}: conv -> mean over L -> linear (a fast stand-in model)."""

  def __init__(self, name=None):
    super().__init__(name=name)
    self.conv = snt.Conv1D(8, 5, name="conv")
    self.head = snt.Linear(1, name="head")

  def __call__(self, inputs, is_training):
    hidden = tf.reduce_mean(tf.nn.relu(self.conv(inputs)), axis=1)
    return {"activity": self.head(hidden)[:, 0]}


def _toy_table(n=48, length=20, seed=0, nan_row=None):
  """Random sequences whose activity is their GC fraction (learnable by TinyRegressor)."""
  rng = np.random.default_rng(seed)
  sequences = tuple("".join(rng.choice(list("ACGT"), length)) for _ in range(n))
  activity = np.array([(s.count("G") + s.count("C")) / length for s in sequences], np.float32)
  if nan_row is not None:
    activity[nan_row] = np.nan
  return D.SequenceTable(sequences=sequences, targets={"activity": activity},
                         is_reverse=np.zeros(n, bool))


# --- fit() on a tiny model ---------------------------------------------------------------------
def test_fit_history_steps_per_epoch_and_best_checkpoint(tmp_path):
  table = _toy_table()
  train = D.regression_dataset(table, 16, seed=0)  # 3 batches per pass
  valid = D.regression_dataset(table, 48, shuffle=False)
  model, task = TinyRegressor(), RegressionTask(["activity"])
  history = fit(model, task, train, optimizer=AdamW(0.02), epochs=4, steps_per_epoch=2,
                validation_data=valid, select_best_by="pearson", run_dir=str(tmp_path),
                progress=False)
  assert history["steps"] == 8  # epochs span dataset boundaries (train.repeat())
  assert len(history["loss"]) == len(history["val_pearson"]) == len(history["epoch_time"]) == 4
  assert {"val_loss", "val_mse", "val_spearman", "val_pearson/activity"} <= set(history)
  best = int(np.nanargmax(history["val_pearson"])) + 1
  assert history["best_epoch"] == best
  assert history["best_value"] == pytest.approx(history["val_pearson"][best - 1])
  # One complete best checkpoint, named by best.json.
  with open(tmp_path / "best.json") as f:
    pointer = json.load(f)
  assert pointer["epoch"] == best and pointer["metric"] == "pearson"
  assert [e for e in os.listdir(tmp_path) if e.startswith("best-step")] == [
      os.path.dirname(pointer["path"])]
  restored = TinyRegressor()
  restore_model(restored, str(tmp_path), "best")
  assert read_best(str(tmp_path))["value"] == pytest.approx(history["best_value"])
  again = evaluate(restored, task, valid)
  assert again["pearson"] == pytest.approx(history["best_value"], rel=1e-5)


def test_fit_selects_lower_is_better_and_freezes_variables():
  table = _toy_table()
  train = D.regression_dataset(table, 16, seed=0)
  valid = D.regression_dataset(table, 48, shuffle=False)
  model, task = TinyRegressor(), RegressionTask(["activity"])
  model(tf.zeros([1, 20, 5]), is_training=False)
  frozen = [v.numpy().copy() for v in model.conv.trainable_variables]
  before_head = [v.numpy().copy() for v in model.head.trainable_variables]
  history = fit(model, task, train, optimizer=AdamW(0.01), epochs=3, validation_data=valid,
                variables=model.head.trainable_variables, select_best_by="mse", progress=False)
  assert history["best_epoch"] == int(np.argmin(history["val_mse"])) + 1
  for value, variable in zip(frozen, model.conv.trainable_variables):
    np.testing.assert_array_equal(variable.numpy(), value)
  assert any(not np.array_equal(v.numpy(), b)
             for v, b in zip(model.head.trainable_variables, before_head))


@pytest.mark.parametrize("nan_row", [0, 40])
def test_fit_stops_on_nonfinite_loss_before_updating(nan_row):
  # Row 0 is in the first batch (eager step); row 40 in a later, traced step.
  table = _toy_table(nan_row=nan_row)
  train = D.regression_dataset(table, 16, shuffle=False)
  model = TinyRegressor()
  model(tf.zeros([1, 20, 5]), is_training=False)
  start = [v.numpy().copy() for v in model.trainable_variables]
  with pytest.raises(FloatingPointError, match="NaN/Inf at update"):
    fit(model, RegressionTask(["activity"]), train, optimizer=AdamW(0.01), progress=False)
  for variable in model.trainable_variables:
    assert np.all(np.isfinite(variable.numpy()))
  if nan_row == 0:
    for value, variable in zip(start, model.trainable_variables):
      np.testing.assert_array_equal(variable.numpy(), value)


def test_fit_with_an_optimizer_without_build_steps_eagerly_first():
  # snt.optimizers.Adam creates its slots on first apply: fit runs that step eagerly.
  table = _toy_table()
  model, task = TinyRegressor(), RegressionTask(["activity"])
  optimizer = snt.optimizers.Adam(0.02)
  history = fit(model, task, D.regression_dataset(table, 16, seed=0), optimizer=optimizer,
                epochs=3, progress=False)
  assert history["steps"] == 9 and int(optimizer.step) == 9
  assert history["loss"][-1] < history["loss"][0]


def test_fit_argument_errors(tmp_path):
  table = _toy_table(n=8)
  data = D.regression_dataset(table, 8)
  model, task = TinyRegressor(), RegressionTask(["activity"])
  with pytest.raises(ConfigError, match="epochs must be >= 1"):
    fit(model, task, data, optimizer=AdamW(), epochs=0)
  with pytest.raises(ValueError, match="select_best_by / patience need validation_data"):
    fit(model, task, data, optimizer=AdamW(), select_best_by="pearson")
  with pytest.raises(ConfigError, match="'r2' is not a metric of this task; its metrics are"):
    fit(model, task, data, optimizer=AdamW(), validation_data=data, select_best_by="r2",
        progress=False)
  with pytest.raises(FileNotFoundError, match="no best checkpoint"):
    restore_model(model, str(tmp_path), "best")
  with pytest.raises(ValueError, match="produced no examples"):
    evaluate(model, task, data.take(0))


# --- DREAM models, soft labels + KL end to end ---------------------------------------------------
@pytest.fixture
def demo(shared):
  table = D.read_dream_table(shared("data", "dream_yeast", "demo_train.txt"))
  plasmid = D.load_plasmid(shared("data", "dream_yeast", "plasmid.json"))
  return table, plasmid


def _training_pearson(model, rows, plasmid):
  data = D.dream_dataset(rows, plasmid, len(rows), shuffle=False, reverse_complement="none")
  return evaluate(model, DreamSoftBinTask(), data)


def test_dream_cnn_overfits_with_recipe_and_best_checkpoint(demo, tmp_path):
  """Narrow DREAM-CNN (BHI 64 ch + LegNet core 32-32-16), 256 rows, the DREAM recipe
  (AdamW wd 0.01, OneCycle with cycled beta1; max LR raised to 0.01 for 160 updates)."""
  table, plasmid = demo
  rows = table.select(np.arange(256))
  tf.random.set_seed(0)
  model = DreamCNN(DreamCNNConfig(first=BHIFirstConfig(out_channels=64),
                                  core=AutosomeCoreConfig(block_sizes=(32, 32, 16))))
  recipe = DreamTrainingConfig.for_model("dream_cnn", batch_size=32, epochs=20,
                                         max_learning_rate=0.01, reverse_complement="none")
  steps = recipe.epoch_steps(len(rows))
  assert steps == 8
  train = D.dream_dataset(rows, plasmid, recipe.batch_size, seed=recipe.seed,
                          reverse_complement=recipe.reverse_complement)
  valid = D.dream_dataset(rows, plasmid, 256, shuffle=False, reverse_complement="none")
  task = DreamSoftBinTask(loss=recipe.loss)
  start = evaluate(model, task, valid)
  history = fit(model, task, train, optimizer=recipe.make_optimizer(steps), epochs=recipe.epochs,
                validation_data=valid, select_best_by=recipe.select_best_by,
                run_dir=str(tmp_path), progress=False)
  assert history["steps"] == 160
  assert history["loss"][-1] < 0.6 * history["loss"][0]
  assert history["best_value"] > 0.75 and history["best_value"] > start["pearson"] + 0.5
  restored = DreamCNN(model.config)
  restore_model(restored, str(tmp_path), "best")
  again = _training_pearson(restored, rows, plasmid)
  assert again["pearson"] == pytest.approx(history["best_value"], rel=1e-4)


def test_dream_rnn_overfits_with_soft_labels(demo):
  """Narrow DREAM-RNN (BHI 64 ch, Bi-LSTM 64 per direction, convs 64, no dropout), 128 rows,
  240 updates of AdamW (wd 0.01) at a constant 0.003: the Bi-LSTM needs ~100 updates before
  it starts to separate the sequences, so a short OneCycle (mostly warm-up and decay) is
  too slow for a test."""
  table, plasmid = demo
  rows = table.select(np.arange(128))
  tf.random.set_seed(0)
  model = DreamRNN(DreamRNNConfig(
      first=BHIFirstConfig(out_channels=64, dropout_rate=0.0),
      core=BHICoreConfig(lstm_hidden_size=64, out_channels=64, conv_dropout_rate=0.0,
                         dropout_rate=0.0)))
  train = D.dream_dataset(rows, plasmid, 16, seed=0, reverse_complement="none")
  start = _training_pearson(model, rows, plasmid)
  history = fit(model, DreamSoftBinTask(), train, optimizer=AdamW(Constant(0.003)), epochs=30,
                progress=False)
  end = _training_pearson(model, rows, plasmid)
  assert history["steps"] == 240
  assert history["loss"][-1] < history["loss"][0] - 0.3
  assert end["pearson"] > 0.4 and end["pearson"] > start["pearson"] + 0.3
  assert end["loss"] < start["loss"] - 0.3
  assert math.isfinite(end["spearman"])


def test_the_dream_recipe_is_a_run_config_with_the_recipes_schedule(shared):
  from tf_seqmodels.training import dream_train_config
  data = {"train": shared("data", "dream_yeast", "demo_train.txt"),
          "plasmid": shared("data", "dream_yeast", "plasmid.json")}
  config = dream_train_config(data, model="dream_attn", epochs=2, steps_per_epoch=10,
                              run_dir="runs/x")
  assert config.model.name == "dream_attn" and config.task.type == "dream_soft_bin"
  assert config.data.type == "dream" and config.data.batch_size == 1024
  assert config.optimizer.learning_rate == 0.001  # DREAM-Attn's registered max LR
  assert config.trainer.select_best_by == "pearson" and config.trainer.epochs == 2
  # The optimizer the run config makes follows the recipe's OneCycle (LR and cycled beta1).
  recipe = DreamTrainingConfig.for_model("dream_attn", epochs=2, steps_per_epoch=10)
  ours, reference = config.optimizer.make(20, 10), recipe.make_optimizer(10)
  for step in (0, 3, 6, 12, 19):
    step = tf.constant(step, tf.int64)
    assert float(ours.learning_rate(step)) == pytest.approx(float(reference.learning_rate(step)))
    assert float(ours.beta1(step)) == pytest.approx(float(reference.beta1(step)))
  assert ours.weight_decay == reference.weight_decay == 0.01
