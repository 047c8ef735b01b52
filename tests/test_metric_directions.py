"""Metrics declare their direction: best checkpoints, early stopping and the tuner's objective
follow the task's declaration (ChromBPNet's counts MSE and profile JSD are lower-is-better)."""

import pytest

from tf_seqmodels.config import ConfigError
from tf_seqmodels.tasks import available_tasks, get_task_type
from tf_seqmodels.tasks.chrombpnet import ChromBPNetTask
from tf_seqmodels.tasks.chromoformer import ChromoformerTask
from tf_seqmodels.tasks.dream import DreamSoftBinTask, RegressionTask
from tf_seqmodels.tasks.tracks import TrackTask
from tf_seqmodels.training.checkpointing import read_best
from tf_seqmodels.training.run_config import TrainConfig, declared_selection, run_training
from tf_seqmodels.tuning.tuner import SearchConfig

TOY_BPNET = {"filters": 8, "num_dilated_layers": 2, "sequence_length": 128, "output_length": 64,
             "profile_kernel_size": 9, "first_kernel_size": 7}


def _chrombpnet_run(tmp_path, select_best_by):
  return TrainConfig.from_dict({
      "model": {"name": "bpnet", "config": TOY_BPNET},
      "task": {"type": "chrombpnet", "options": {"counts_loss_weight": 1.0}},
      "data": {"type": "teacher", "batch_size": 8,
               "options": {"examples": 32, "valid_examples": 32, "seed": 3}},
      "optimizer": {"name": "adam", "learning_rate": 3e-3},
      "trainer": {"epochs": 3, "eval_every": 1, "select_best_by": select_best_by,
                  "progress": False, "tensorboard": False, "keep_checkpoints": 1},
      "run_dir": str(tmp_path / select_best_by.replace(":", "_")),
  })


@pytest.mark.parametrize("metric", ["counts_mse_peaks", "profile_median_jsd_all"])
def test_chrombpnet_selection_keeps_the_checkpoint_with_the_lowest_value(tmp_path, metric):
  config = _chrombpnet_run(tmp_path, metric)
  history = run_training(config)
  values = history[f"val_{metric}"]
  assert len(values) == 12 and max(values) > min(values)  # a choice was made
  lowest = min(range(len(values)), key=values.__getitem__)
  assert history["best_value"] == pytest.approx(values[lowest])
  assert history["best_step"] == history["eval_steps"][lowest]
  best = read_best(config.run_dir)
  assert best["metric"] == metric and best["value"] == pytest.approx(values[lowest])
  assert best["step"] == history["eval_steps"][lowest]


def test_every_registered_task_declares_the_direction_of_its_metrics():
  tasks = {"tracks": TrackTask(["human", "mouse"]), "dream_soft_bin": DreamSoftBinTask(),
           "regression": RegressionTask(["dev", "hk"]), "chrombpnet": ChromBPNetTask(1.0),
           "chromoformer": ChromoformerTask("regression")}
  assert set(tasks) <= set(available_tasks())
  for name, task in tasks.items():
    assert get_task_type(name).task_class is type(task)
    directions = task.metric_directions()  # raises for a metric without a direction
    assert directions["loss"] is False and len(directions) == len(task.make_metrics()) + 1
  assert ChromoformerTask("classification").metric_directions()["auroc"] is True
  chrombpnet = tasks["chrombpnet"].metric_directions()
  assert not any(chrombpnet[f"counts_mse_{s}"] for s in ("peaks", "nonpeaks", "all"))
  assert not chrombpnet["profile_median_jsd_peaks"] and chrombpnet["counts_pearsonr_peaks"]


def test_declared_selection_and_the_tuners_objective(tmp_path):
  run = _chrombpnet_run(tmp_path, "loss")
  assert declared_selection(run, "counts_mse_peaks") == ("counts_mse_peaks", False)
  assert declared_selection(run, "counts_spearmanr_all") == ("counts_spearmanr_all", True)
  assert declared_selection(run, "max:counts_mse_peaks") == ("counts_mse_peaks", True)
  with pytest.raises(ConfigError, match=r"'pearson' is not a metric of task type 'chrombpnet'; "
                     r"its metrics are \['loss', 'counts_pearsonr_\*'"):
    declared_selection(run, "pearson")
  search = {"run": run.to_dict(), "search": {"overrides": {
      "optimizer.learning_rate": {"type": "float", "min": 1e-4, "max": 1e-2}}}}
  for objective, expected in [("profile_median_jsd_peaks", "min"), ("counts_pearsonr_peaks", "max"),
                              ("loss", "min"), ("min:counts_pearsonr_peaks", "min")]:
    search["search"]["objective"] = objective
    name, direction = SearchConfig.from_dict(search).objective()
    assert (name, direction) == (f"val_{objective.split(':')[-1]}", expected)
  search["search"]["objective"] = "jsd"
  with pytest.raises(ConfigError, match="'jsd' is not a metric of task type 'chrombpnet'"):
    SearchConfig.from_dict(search)
