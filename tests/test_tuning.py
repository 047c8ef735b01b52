"""keras-tuner searches through the trainer: random (via the CLI), Bayesian and Hyperband on a
toy BPNet, resume without redoing trials, warm starts, surfaced failures, best run config."""

import json
import os

import pytest
import yaml

from tf_seqmodels import cli
from tf_seqmodels.config import ConfigError
from tf_seqmodels.training.run_config import TrainConfig
from tf_seqmodels.models import get_entry
from tf_seqmodels.tuning.spaces import apply_values, search_space
from tf_seqmodels.tuning.tuner import SearchConfig, SearchFailedError, run_search

TOY_RUN = {
    "model": {"name": "bpnet", "config": {"filters": 8, "num_dilated_layers": 1,
                                          "sequence_length": 128, "output_length": 64,
                                          "profile_kernel_size": 9, "first_kernel_size": 7}},
    "task": {"type": "chrombpnet", "options": {"counts_loss_weight": 1.0}},
    "data": {"type": "teacher", "batch_size": 8, "options": {"examples": 16, "valid_examples": 8}},
    "optimizer": {"name": "adam", "learning_rate": 1e-3},
    "trainer": {"epochs": 1, "progress": False, "tensorboard": False, "log_every": 1},
    "run_dir": "unused",
}
TOY_SPACE = {"model.config.filters": {"type": "choice", "values": [4, 8]},
             "model.config.num_dilated_layers": {"type": "int", "min": 1, "max": 2}}


def _search(tmp_path, algorithm, **search):
  return SearchConfig.from_dict({"run": TOY_RUN, "search": {
      "algorithm": algorithm, "max_trials": 2, "hyperband_max_epochs": 2, "hyperband_factor": 2,
      "overrides": TOY_SPACE, "directory": str(tmp_path / "runs"), "project_name": algorithm,
      **search}})


def _trial_dirs(project):
  return sorted(p for p in os.listdir(project) if p.startswith("trial_"))


def test_spaces_are_declared_and_applied_to_the_run_config():
  for family in ("enformer", "dream_cnn", "dream_rnn", "dream_attn", "chrombpnet",
                 "chromoformer"):
    assert search_space(family)
  # The space is the model family's registration (no table keyed by model name elsewhere).
  assert "task.options.counts_loss_weight" in get_entry("chrombpnet").search_space
  assert search_space("chrombpnet") == dict(get_entry("chrombpnet").search_space)
  with pytest.raises(ConfigError, match="no search space is declared for 'profile_counts'"):
    search_space("profile_counts")
  space = search_space("dream_cnn", {"optimizer.learning_rate": {"type": "float", "min": 0.01,
                                                                 "max": 0.1}},
                       remove=("model.config.core.kernel_size",))
  assert space["optimizer.learning_rate"].max == 0.1
  assert "model.config.core.kernel_size" not in space
  with pytest.raises(ConfigError, match="not in the"):
    search_space("dream_cnn", remove=("model.config.nope",))
  run = apply_values({"model": {"name": "x", "config": {}}, "optimizer": {"learning_rate": 1.0}},
                     {"model.config.first.out_channels": 32, "optimizer.learning_rate": 0.5,
                      "tuner/epochs": 3}, {"first": {"out_channels": 64, "kernel_sizes": [9]}})
  assert run["model"]["config"] == {"first": {"out_channels": 32, "kernel_sizes": [9]}}
  assert run["optimizer"]["learning_rate"] == 0.5 and not run["model"]["demo"]


def test_random_search_cli_resume_and_best_run_config(tmp_path, capsys):
  config = _search(tmp_path, "random")
  path = tmp_path / "search.yaml"
  config.save(path)
  assert cli.main(["tune", "--config", str(path)]) == 0
  assert "2 of 2 trials completed" in capsys.readouterr().out
  project = tmp_path / "runs" / "random"
  trials = _trial_dirs(project)
  assert len(trials) == 2
  for trial in trials:  # each trial trained through the trainer and kept its checkpoints
    assert os.listdir(project / trial / "run" / "checkpoints")
  stamps = {t: os.path.getmtime(project / t / "trial.json") for t in trials}

  # Resume: nothing is redone; one more trial when max_trials grows.
  assert cli.main(["tune", "--config", str(path)]) == 0
  assert {t: os.path.getmtime(project / t / "trial.json") for t in trials} == stamps
  assert cli.main(["tune", "--config", str(path), "--max-trials", "3"]) == 0
  assert len(_trial_dirs(project)) == 3
  assert {t: os.path.getmtime(project / t / "trial.json") for t in trials} == stamps

  best = json.loads((project / "best_hyperparameters.json").read_text())
  assert set(best["values"]) == {"model.config.filters", "model.config.num_dilated_layers",
                                 "task.options.counts_loss_weight", "optimizer.learning_rate"}
  run = TrainConfig.load(project / "best_run.yaml")  # what `tf-seqmodels train` reads
  assert run.model.config["filters"] == best["values"]["model.config.filters"]
  assert run.task.options["counts_loss_weight"] == pytest.approx(
      best["values"]["task.options.counts_loss_weight"])
  assert cli.main(["train", "--config", str(project / "best_run.yaml")]) == 0
  assert "trained 2 steps" in capsys.readouterr().out


def test_bayesian_search(tmp_path):
  result = run_search(_search(tmp_path, "bayesian", max_trials=3, num_initial_points=2))
  assert [t["status"] for t in result.trials] == ["COMPLETED"] * 3
  scores = [t["score"] for t in result.trials]
  assert result.best_score == pytest.approx(min(scores))
  assert os.path.exists(result.best_run_config)


def test_hyperband_warm_starts_from_parent_trials(tmp_path):
  result = run_search(_search(tmp_path, "hyperband"))
  assert len(result.trials) >= 3
  assert all(t["status"] == "COMPLETED" for t in result.trials)
  children = [t for t in result.trials if t["values"].get("tuner/trial_id")]
  assert children, "Hyperband should continue at least one trial from a parent"
  child = children[0]
  run = yaml.safe_load(open(os.path.join(result.project_dir, f"trial_{child['trial_id']}", "run",
                                         "train_config.yaml")))
  parent_run = os.path.join(result.project_dir, f"trial_{child['values']['tuner/trial_id']}", "run")
  assert run["model"]["init_from"] == parent_run
  assert run["trainer"]["epochs"] == child["values"]["tuner/epochs"] - child["values"][
      "tuner/initial_epoch"]
  assert yaml.safe_load(open(result.best_run_config))["trainer"]["epochs"] == 2
  again = run_search(_search(tmp_path, "hyperband"))
  assert len(again.trials) == len(result.trials)


def test_failed_trials_are_surfaced(tmp_path, capsys):
  # 9 dilated layers do not fit 128 bp: every trial's model config is invalid.
  bad = {**TOY_SPACE, "model.config.num_dilated_layers": {"type": "int", "min": 9, "max": 10}}
  with pytest.raises(SearchFailedError, match="too short"):
    run_search(_search(tmp_path, "random", overrides=bad))
  summary = json.loads((tmp_path / "runs" / "random" / "search_summary.json").read_text())
  assert summary["completed"] == 0 and summary["failed"] == 2
  assert "trial 0 failed: ConfigError" in capsys.readouterr().out
  typo = {"model.config.filterz": {"type": "choice", "values": [4, 8]}}
  with pytest.raises(ConfigError, match="filterz"):  # before any trial runs
    run_search(_search(tmp_path, "random", overrides=typo, project_name="typo"))
  assert not (tmp_path / "runs" / "typo").exists()


@pytest.mark.slow
def test_distributed_search_chief_and_worker_over_loopback(tmp_path):
  """keras-tuner's chief/worker protocol (gRPC on 127.0.0.1) with two `tf-seqmodels tune`s."""
  import socket
  import subprocess
  import sys
  import time
  _search(tmp_path, "random").save(tmp_path / "search.yaml")
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERASTUNER_ORACLE_IP": "127.0.0.1",
         "KERASTUNER_ORACLE_PORT": str(port),
         "PYTHONPATH": os.pathsep.join([os.path.dirname(os.path.dirname(__file__)),
                                        os.environ.get("PYTHONPATH", "")])}
  command = [sys.executable, "-m", "tf_seqmodels.cli", "tune", "--config", "search.yaml"]
  chief = subprocess.Popen(command, cwd=tmp_path, env={**env, "KERASTUNER_TUNER_ID": "chief"},
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    deadline = time.time() + 180  # the chief's oracle must listen before the worker asks
    while True:
      with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
          break
      assert chief.poll() is None and time.time() < deadline, "the chief oracle did not start"
      time.sleep(0.5)
    worker = subprocess.run(command, cwd=tmp_path, env={**env, "KERASTUNER_TUNER_ID": "tuner0"},
                            capture_output=True, text=True, timeout=300)
    assert worker.returncode == 0, worker.stdout[-2000:] + worker.stderr[-2000:]
    assert "worker finished" in worker.stdout
    out, _ = chief.communicate(timeout=120)
  finally:
    if chief.poll() is None:
      chief.kill()
  assert chief.returncode == 0, out[-3000:]
  assert "2 of 2 trials completed" in out
  assert TrainConfig.load(tmp_path / "runs" / "random" / "best_run.yaml").model.name == "bpnet"
