"""keras-tuner scores a trial by the evaluation its best checkpoint comes from (the model a
Hyperband child warm-starts from), not by the last epoch's."""

import json

import pytest

from test_tuning import TOY_RUN
from tf_seqmodels.tuning.tuner import SearchConfig, run_search, selected_epoch_metrics

# The tuning tests' toy BPNet run, trained for three epochs so the best one can differ from the last.
RUN = {**TOY_RUN, "trainer": {**TOY_RUN["trainer"], "epochs": 3}}

# Three evaluations; the best checkpoint (objective val_loss) is the second.
HISTORY = {"loss": [1.0, 0.6, 0.3], "val_loss": [0.9, 0.2, 0.4],
           "val_pearson": [0.1, 0.7, 0.5], "eval_steps": [2, 4, 6], "best_step": 4}


def test_selected_epoch_metrics():
  assert selected_epoch_metrics(HISTORY) == {"val_loss": 0.2, "val_pearson": 0.7}
  # No best recorded (no selection) -> the last evaluation.
  assert selected_epoch_metrics({**HISTORY, "best_step": None}) == {"val_loss": 0.4,
                                                                     "val_pearson": 0.5}


def test_trial_score_is_the_best_checkpoints(tmp_path, monkeypatch):
  from tf_seqmodels.training import run_config
  trained = []

  def fake_run_training(config, **kwargs):
    trained.append(config.trainer.select_best_by)
    return dict(HISTORY)

  monkeypatch.setattr(run_config, "run_training", fake_run_training)
  search = SearchConfig.from_dict({"run": RUN, "search": {
      "algorithm": "random", "max_trials": 1, "objective": "loss",
      "overrides": {"model.config.filters": {"type": "choice", "values": [4, 8]}},
      "directory": str(tmp_path / "runs"), "project_name": "p"}})
  result = run_search(search)
  assert trained == ["loss"]  # the trial's best checkpoint follows the objective
  assert result.best_score == pytest.approx(0.2)  # the last epoch's would be 0.4
  summary = json.loads((tmp_path / "runs" / "p" / "search_summary.json").read_text())
  assert summary["trials"][0]["metrics"]["val_pearson"] == pytest.approx(0.7)
