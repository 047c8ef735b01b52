"""keras-tuner searches whose trials train through `training.Trainer` (via the run config).

A search config is a run config plus a search section:

    run:                                  # a `tf-seqmodels train` config (TrainConfig)
      model: {name: dream_cnn, demo: true}
      task: {type: dream_soft_bin}
      data: {type: dream, batch_size: 1024, options: {...}}
      optimizer: {name: adamw, schedule: one_cycle}
      trainer: {epochs: 10, select_best_by: pearson}
      strategy: {kind: mirrored}          # any strategy; created once, shared by the trials
    search:
      algorithm: bayesian                 # random | bayesian | hyperband
      max_trials: 20                      # random / bayesian (hyperband: from max_epochs, factor)
      objective: pearson                  # a validation metric (val_<name>); its direction is
                                          # the task's declaration ("min:"/"max:" force it)
      space: dream_cnn                    # a registered model's search space (default model.name)
      overrides: {optimizer.learning_rate: {type: float, min: 1e-3, max: 1e-2, sampling: log}}
      directory: tuning_runs
      project_name: dream_cnn
      overwrite: false                    # false: resume, finished trials are not rerun

    tf-seqmodels tune --config search.yaml   ->  <directory>/<project_name>/
        trial_<id>/run/      the trial's run dir: checkpoints (best + latest), metrics, run.json
        best_run.yaml        the best trial's run config, for `tf-seqmodels train --config`
        best_hyperparameters.json, search_summary.json (every trial: status, values, metrics,
                             failure message)

Each trial's `run_dir` is its own; a trial interrupted mid-way resumes from its checkpoint.
Hyperband passes `tuner/epochs` (trainer.epochs) and, for trials continuing a bracket,
`tuner/trial_id`: the trial then starts from that parent trial's best checkpoint
(`model.init_from`) and trains `tuner/epochs - tuner/initial_epoch` more epochs (fresh
optimizer state).

keras-tuner records a crashing trial and carries on; here every failure is surfaced: its
message is logged and written to search_summary.json, and `SearchFailedError` is raised when
no trial completed (or keras-tuner stopped on `max_consecutive_failures`).

Distributed tuning (keras-tuner's chief/worker protocol over gRPC), e.g. on one host:

    KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=8012 KERASTUNER_TUNER_ID=chief \\
        tf-seqmodels tune --config search.yaml &          # the oracle: hands out trials
    KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=8012 KERASTUNER_TUNER_ID=tuner0 \\
        tf-seqmodels tune --config search.yaml            # a worker (one per GPU / host)

Every process needs the same config and a shared `directory`; workers run the trials, the
chief serves the oracle and, once every trial has ended, writes search_summary.json and
best_run.yaml (a worker's `run_search` returns without them).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any, Literal, Optional

from tf_seqmodels.config import Config, ConfigError, atomic_write_text
from tf_seqmodels.training.run_config import TrainConfig, declared_selection, resolve_model_config
from tf_seqmodels.tuning.spaces import ParamSpec, apply_values, check_paths, declare_space, search_space

log = logging.getLogger(__name__)

ALGORITHMS = ("random", "bayesian", "hyperband")


class SearchFailedError(RuntimeError):
  """No trial of the search completed; the message lists the trials' failures."""


@dataclasses.dataclass(frozen=True)
class SearchSection(Config):
  """The `search` section (see the module docstring).

  Attributes:
    algorithm: random | bayesian | hyperband.
    max_trials: trials of random / bayesian search.
    objective: validation metric to optimise (e.g. loss, pearson, counts_mse_peaks; its
      direction is the one the task type declares, "min:"/"max:" force it); default:
      run.trainer.select_best_by, else loss. Checked against the task's metrics up front.
    space, overrides, remove: the search space (tuning.spaces.search_space).
    hyperband_max_epochs, hyperband_factor, hyperband_iterations: Hyperband's budget.
    num_initial_points: bayesian: random trials before the Gaussian process.
    directory, project_name: where trials and results go.
    overwrite: start afresh (False: resume, finished trials are kept).
    max_consecutive_failures: stop after this many failed trials in a row.
    seed: the oracle's seed.
  """

  algorithm: Literal["random", "bayesian", "hyperband"] = "random"
  max_trials: int = 10
  objective: Optional[str] = None
  space: Optional[str] = None
  overrides: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
  remove: tuple[str, ...] = ()
  hyperband_max_epochs: int = 9
  hyperband_factor: int = 3
  hyperband_iterations: int = 1
  num_initial_points: Optional[int] = None
  directory: str = "tuning_runs"
  project_name: str = "search"
  overwrite: bool = False
  max_consecutive_failures: int = 3
  seed: int = 0

  def validate(self) -> None:
    if self.max_trials < 1:
      raise ConfigError(f"search.max_trials must be >= 1, got {self.max_trials}")
    if self.hyperband_max_epochs < 1 or self.hyperband_factor < 2:
      raise ConfigError("search.hyperband_max_epochs must be >= 1 and hyperband_factor >= 2")
    if self.max_consecutive_failures < 1:
      raise ConfigError("search.max_consecutive_failures must be >= 1")


@dataclasses.dataclass(frozen=True)
class SearchConfig(Config):
  """A search: the base run config and the search section."""

  run: TrainConfig = dataclasses.field(default_factory=TrainConfig)
  search: SearchSection = dataclasses.field(default_factory=SearchSection)

  def validate(self) -> None:
    self.objective()  # an objective the task does not report fails when the config is read

  def space(self) -> dict[str, ParamSpec]:
    return search_space(self.search.space or self.run.model.name, self.search.overrides,
                        self.search.remove)

  def objective(self) -> tuple[str, str]:
    """(keras-tuner metric name, "min" | "max")."""
    name = self.search.objective or self.run.trainer.select_best_by or "loss"
    metric, maximise = declared_selection(self.run, name)
    return f"val_{metric}", "max" if maximise else "min"


@dataclasses.dataclass
class SearchResult:
  """What `run_search` returns (also in search_summary.json)."""

  project_dir: str
  best_values: dict[str, Any]
  best_score: Optional[float]
  best_run_config: str
  trials: list[dict[str, Any]]

  @property
  def failures(self) -> list[dict[str, Any]]:
    return [t for t in self.trials if t["status"] not in ("COMPLETED", "RUNNING", "IDLE")]


def trial_run_config(config: SearchConfig, values: dict[str, Any], run_dir: str,
                     parent_run_dir: Optional[str] = None) -> TrainConfig:
  """The run config of a trial: hyper-parameter values applied to `config.run`."""
  run = config.run
  plain = apply_values(run.to_dict(), values, resolve_model_config(run.model).to_dict())
  plain["run_dir"] = run_dir
  epochs = values.get("tuner/epochs")
  if epochs is not None:
    initial = values.get("tuner/initial_epoch", 0) if parent_run_dir else 0
    plain["trainer"]["epochs"] = max(1, int(epochs) - int(initial))
  if parent_run_dir:
    plain["model"].update(init_from=parent_run_dir, init_component=None, init_which="best")
  # The trial's best checkpoint (a Hyperband child's warm start) follows the objective.
  plain["trainer"]["select_best_by"] = (config.search.objective
                                        or plain["trainer"].get("select_best_by") or "loss")
  return TrainConfig.from_dict(plain, where="trial run config")


def best_run_config(config: SearchConfig, values: dict[str, Any], run_dir: str) -> TrainConfig:
  """The run config to train the best trial's configuration from scratch."""
  values = dict(values)
  if "tuner/epochs" in values:
    values["tuner/epochs"] = config.search.hyperband_max_epochs  # the full budget
  return trial_run_config(config, values, run_dir)


def selected_epoch_metrics(history: dict[str, Any]) -> dict[str, float]:
  """The validation metrics {val_<name>: value} of the evaluation the trial's best checkpoint
  comes from (`best_step`; trial configs select it by the objective): the model a Hyperband
  child warm-starts from and best_run.yaml retrains. The last evaluation when no best was
  recorded (or it predates this session's history)."""
  series = {k: v for k, v in history.items() if k.startswith("val_") and isinstance(v, list) and v}
  steps = list(history.get("eval_steps") or [])
  best_step = history.get("best_step")
  index = -1
  if best_step is not None and best_step in steps:
    index = len(steps) - 1 - steps[::-1].index(best_step)  # the latest evaluation at that step
  return {k: float(v[index]) if len(v) == len(steps) else float(v[-1])
          for k, v in series.items()}


def _tuner_classes():
  """keras-tuner classes whose trials run our trainer (imported lazily: keras-tuner loads Keras)."""
  import keras_tuner as kt

  class TrainerTrials:
    """Mixin: run_trial trains the trial's run config with `run_training`."""

    def __init__(self, search_config: SearchConfig, strategy_info=None, **kwargs):
      self.search_config = search_config
      self.strategy_info = strategy_info
      super().__init__(**kwargs)

    def trial_run_dir(self, trial_id: str) -> str:
      return os.path.join(self.get_trial_dir(trial_id), "run")

    def run_trial(self, trial, *args, **kwargs):
      from tf_seqmodels.training.checkpointing import latest_checkpoint
      from tf_seqmodels.training.run_config import run_training
      values = trial.hyperparameters.values
      parent = values.get("tuner/trial_id")
      parent_dir = self.trial_run_dir(parent) if parent else None
      run_dir = self.trial_run_dir(trial.trial_id)
      try:
        run = trial_run_config(self.search_config, values, run_dir, parent_dir)
        os.makedirs(run_dir, exist_ok=True)
        run.save(os.path.join(run_dir, "train_config.yaml"))
        history = run_training(run, resume=latest_checkpoint(run_dir) is not None,
                               metadata={"tuning_trial": trial.trial_id, "hyperparameters":
                                         {k: v for k, v in values.items()}},
                               strategy_info=self.strategy_info)
      except Exception as e:  # noqa: BLE001 - every trial failure is reported, then re-raised
        message = f"trial {trial.trial_id} failed: {type(e).__name__}: {e}"
        log.error(message)
        print(f"tf-seqmodels tune: {message}", flush=True)
        raise kt.errors.FailedTrialError(message) from e
      metrics = selected_epoch_metrics(history)
      name, _ = self.search_config.objective()
      if name not in metrics:
        raise kt.errors.FailedTrialError(
            f"trial {trial.trial_id}: the objective {name!r} is not among the validation "
            f"metrics {sorted(metrics)} (is there validation data?)")
      return metrics

  class RandomSearchTuner(TrainerTrials, kt.RandomSearch):
    pass

  class BayesianTuner(TrainerTrials, kt.BayesianOptimization):
    pass

  class HyperbandTuner(TrainerTrials, kt.Hyperband):
    pass

  return {"random": RandomSearchTuner, "bayesian": BayesianTuner, "hyperband": HyperbandTuner}


def make_tuner(config: SearchConfig, strategy_info=None):
  """The keras-tuner Tuner of `config` (resuming its project unless search.overwrite)."""
  import keras_tuner as kt
  search = config.search
  space = config.space()
  check_paths(config.run.to_dict(), space, resolve_model_config(config.run.model).to_dict())
  name, direction = config.objective()
  common = dict(search_config=config, strategy_info=strategy_info,
                hyperparameters=declare_space(space),
                objective=kt.Objective(name, direction), directory=search.directory,
                project_name=search.project_name, overwrite=search.overwrite, seed=search.seed,
                max_consecutive_failed_trials=search.max_consecutive_failures)
  tuner_class = _tuner_classes()[search.algorithm]
  if search.algorithm == "random":
    return tuner_class(max_trials=search.max_trials, **common)
  if search.algorithm == "bayesian":
    try:
      import sklearn  # noqa: F401 - keras-tuner's Gaussian process needs scikit-learn and scipy
    except ImportError as e:
      raise ConfigError("search.algorithm 'bayesian' needs scikit-learn (pip install "
                        "scikit-learn scipy)") from e
    return tuner_class(max_trials=search.max_trials,
                       num_initial_points=search.num_initial_points, **common)
  return tuner_class(max_epochs=search.hyperband_max_epochs, factor=search.hyperband_factor,
                     hyperband_iterations=search.hyperband_iterations, **common)


def _trial_summary(trial) -> dict[str, Any]:
  metrics = {}
  for name in trial.metrics.metrics:
    value = trial.metrics.get_last_value(name)
    if value is not None:
      metrics[name] = float(value)
  return {"trial_id": trial.trial_id, "status": str(trial.status),
          "values": dict(trial.hyperparameters.values), "score": trial.score,
          "metrics": metrics,
          "message": ((trial.message or "").strip().splitlines() or [None])[-1]}


def is_distributed_worker() -> bool:
  """Whether this process is a keras-tuner worker of a distributed search (not the chief)."""
  return ("KERASTUNER_ORACLE_IP" in os.environ
          and os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief")


def run_search(config: SearchConfig, strategy_info=None) -> SearchResult:
  """Runs (or resumes) the search and writes best_run.yaml and search_summary.json.

  Raises:
    SearchFailedError: no trial completed, or keras-tuner stopped on consecutive failures.
  """
  from tf_seqmodels.training.strategy import make_strategy
  if strategy_info is None:
    strategy_info = make_strategy(config.run.strategy)  # one strategy for every trial
  tuner = make_tuner(config, strategy_info)
  project_dir = os.path.join(config.search.directory, config.search.project_name)
  stopped = None
  try:
    tuner.search()
  except RuntimeError as e:
    if "consecutive failures" not in str(e):
      raise
    stopped = str(e).splitlines()[0]
  best_path = os.path.join(project_dir, "best_run.yaml")
  if is_distributed_worker():
    # A worker only sees its own trials through the oracle client: the chief, which holds
    # the oracle, writes the summary and best_run.yaml once every trial has ended.
    return SearchResult(os.path.abspath(project_dir), {}, None, best_path, [])
  trials = [_trial_summary(t) for t in tuner.oracle.trials.values()]
  failures = [t for t in trials if t["status"] != "COMPLETED"]
  completed = [t for t in trials if t["status"] == "COMPLETED"]
  summary_path = os.path.join(project_dir, "search_summary.json")
  summary = {"algorithm": config.search.algorithm, "objective": list(config.objective()),
             "trials": trials, "completed": len(completed), "failed": len(failures),
             "stopped": stopped}
  if stopped or not completed:
    atomic_write_text(summary_path, json.dumps(summary, indent=2, default=str))
    details = "; ".join(f"trial {t['trial_id']}: {t['message']}" for t in failures) or "none ran"
    raise SearchFailedError(f"{stopped or 'no trial completed'} ({len(failures)} failed: "
                            f"{details})")
  best = tuner.oracle.get_best_trials(1)[0]
  values = dict(best.hyperparameters.values)
  best_config = best_run_config(config, values, os.path.join(project_dir, "best_run"))
  best_config.save(best_path)
  public = {k: v for k, v in values.items() if not k.startswith("tuner/")}
  atomic_write_text(os.path.join(project_dir, "best_hyperparameters.json"),
                    json.dumps({"trial_id": best.trial_id, "score": best.score, "values": public},
                               indent=2))
  summary.update(best_trial=best.trial_id, best_score=best.score, best_values=public)
  atomic_write_text(summary_path, json.dumps(summary, indent=2, default=str))
  if failures:
    print(f"tf-seqmodels tune: {len(failures)} of {len(trials)} trials failed: "
          + "; ".join(f"{t['trial_id']}: {t['message']}" for t in failures), flush=True)
  return SearchResult(os.path.abspath(project_dir), public, best.score, best_path, trials)
