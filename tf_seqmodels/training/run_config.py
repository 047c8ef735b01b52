"""Run assembly: a run config (model + task + data + optimizer/schedule + trainer + strategy)
-> a strategy, a seeded model, data, tasks -> training (`run_training`), evaluation
(`evaluation.evaluate_run`) and tuning trials (`tuning.tuner`); the one path from a config
file or a run directory to a built run.

    tf-seqmodels train --config dream_cnn.yaml [--strategy mirrored] [--resume]

    model:     {name: dream_cnn, config: {...}}         # registry name + its config (or
                                                        # config_file, or demo: true)
    task:      {type: dream_soft_bin, options: {loss: kl}}
    data:      {type: dream, batch_size: 1024, eval_batch_size: 4096, options: {...}}
    optimizer: {name: adamw, learning_rate: 0.005, weight_decay: 0.01, schedule: one_cycle}
    trainer:   {epochs: 80, select_best_by: pearson, ...}    # TrainerConfig
    strategy:  {kind: default}                               # StrategyConfig
    run_dir:   runs/dream_cnn

Every section is strict (unknown keys are errors); `task.type` is a registered task type
(`tasks.registry`) and `task.options` its options config. Recipes: Enformer = adam + warmup
(learning_rate 5e-4, warmup_steps 5000) + clip_global_norm 0.2 with `data.type: multi`
(human and mouse sources in rotation); DREAM = adamw + one_cycle (beta1 cycled); ChromBPNet
= adam 1e-3 constant, first the bias model (`data.options.mode: bias`) then the accessibility
model with `model.init_from: <bias run dir>` and `model.init_component: bias_model`.
Relative paths are relative to the working directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Literal, Mapping, Optional

import tensorflow as tf

from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.training.data_builders import (BuildContext, DataSection, TrainingData,
                                                 build_data)
from tf_seqmodels.training.strategy import StrategyConfig, make_strategy
from tf_seqmodels.training.trainer import Trainer, TrainerConfig, set_determinism


@dataclasses.dataclass(frozen=True)
class ModelSection(Config):
  """The model: a registry name and its config.

  Attributes:
    name: registered model name (`tf-seqmodels models`).
    config: the model config as a mapping; its top-level keys replace those of the
      default (or demo) config.
    config_file: a model config file instead of `config`.
    demo: start from the registry's small demo config.
    init_from: a run directory or checkpoint prefix whose model weights initialise this
      model (or its `init_component`) before training from scratch.
    init_component: attribute path of this model that receives those weights, e.g.
      "bias_model" (a ChromBPNet accessibility run initialised from a bias run).
    init_which: "best" or "latest" checkpoint of `init_from` when it is a run directory.
  """

  name: str = "enformer"
  config: dict[str, Any] = dataclasses.field(default_factory=dict)
  config_file: Optional[str] = None
  demo: bool = False
  init_from: Optional[str] = None
  init_component: Optional[str] = None
  init_which: Literal["best", "latest"] = "best"

  def validate(self) -> None:
    if self.config and self.config_file:
      raise ConfigError("model: give either config or config_file, not both")
    if self.init_component and not self.init_from:
      raise ConfigError("model.init_component needs model.init_from")


@dataclasses.dataclass(frozen=True)
class TaskSection(Config):
  """The task: a registered task type (`tasks.registry.available_tasks()`) and its options
  (the type's strict options config, e.g. tracks {heads, weights}, dream_soft_bin {loss},
  regression {targets, weights}, chrombpnet {counts_loss_weight}, chromoformer {mode})."""

  type: str = "tracks"
  options: dict[str, Any] = dataclasses.field(default_factory=dict)

  def validate(self) -> None:
    from tf_seqmodels.tasks import get_task_type
    get_task_type(self.type).parse_options(self.options)


def _linear_warmup(peak: float, warmup_steps: int):
  """`schedules.LinearWarmup` with its min() taken in float64: the shared class compares a
  float32 literal with a float64 step and fails (eagerly and traced) under TF 2.21."""
  from tf_seqmodels.training.schedules import LinearWarmup

  class Warmup(LinearWarmup):
    def __call__(self, step) -> tf.Tensor:
      fraction = tf.minimum(tf.constant(1.0, tf.float64),
                            tf.cast(step, tf.float64) / max(1.0, float(self.warmup_steps)))
      return tf.cast(self.peak * fraction, tf.float32)

  return Warmup(peak, warmup_steps)


@dataclasses.dataclass(frozen=True)
class OptimizerSection(Config):
  """Adam / AdamW (decoupled weight decay) with a learning-rate schedule.

  schedule: "constant" (learning_rate), "warmup" (linear from 0 to learning_rate over
  warmup_steps, then constant: Enformer 5,000 steps to 5e-4), "one_cycle" (PyTorch OneCycleLR
  over the whole run with max learning_rate, cosine annealing and, with cycle_momentum,
  beta1 cycled max_momentum -> base_momentum -> max_momentum: DREAM), "step_decay"
  (learning_rate x decay_rate per epoch, or per decay_steps updates: PyTorch StepLR,
  Chromoformer 3e-5 x 0.87 per epoch).
  """

  name: Literal["adam", "adamw"] = "adamw"
  learning_rate: float = 1e-3
  weight_decay: Optional[float] = None  # adamw only; default 0.01
  beta1: float = 0.9
  beta2: float = 0.999
  epsilon: float = 1e-8
  schedule: Literal["constant", "warmup", "one_cycle", "step_decay"] = "constant"
  warmup_steps: int = 0
  decay_rate: float = 0.87
  decay_steps: Optional[int] = None  # step_decay; default one epoch
  pct_start: float = 0.3
  div_factor: float = 25.0
  final_div_factor: float = 1e4
  cycle_momentum: bool = True
  base_momentum: float = 0.85
  max_momentum: float = 0.95

  def validate(self) -> None:
    if self.learning_rate <= 0:
      raise ConfigError(f"optimizer.learning_rate must be positive, got {self.learning_rate}")
    if self.name == "adam" and self.weight_decay:
      raise ConfigError("optimizer.weight_decay is decoupled weight decay: use name: adamw")
    if self.weight_decay is not None and self.weight_decay < 0:
      raise ConfigError(f"optimizer.weight_decay must be >= 0, got {self.weight_decay}")
    if self.schedule == "warmup" and self.warmup_steps < 1:
      raise ConfigError("optimizer.schedule 'warmup' needs warmup_steps >= 1")

  def make(self, total_steps: int, steps_per_epoch: Optional[int] = None):
    """The optimizer for a run of `total_steps` updates (create it in the strategy scope)."""
    from tf_seqmodels.training.optimizers import Adam, AdamW
    from tf_seqmodels.training.schedules import Constant, OneCycle
    beta1: Any = self.beta1
    if self.schedule == "constant":
      rate: Any = Constant(self.learning_rate)
    elif self.schedule == "warmup":
      rate = _linear_warmup(self.learning_rate, self.warmup_steps)
    elif self.schedule == "step_decay":
      from tf_seqmodels.training.schedules import StepDecay
      every = self.decay_steps or steps_per_epoch
      if not every:
        raise ConfigError("optimizer.schedule 'step_decay' needs decay_steps (or an epoch length)")
      rate = StepDecay(self.learning_rate, self.decay_rate, every)
    else:
      rate = OneCycle(self.learning_rate, total_steps, pct_start=self.pct_start,
                      div_factor=self.div_factor, final_div_factor=self.final_div_factor,
                      cycle_momentum=self.cycle_momentum, base_momentum=self.base_momentum,
                      max_momentum=self.max_momentum)
      if self.cycle_momentum:
        beta1 = rate.beta1
    common = dict(learning_rate=rate, beta1=beta1, beta2=self.beta2, epsilon=self.epsilon)
    if self.name == "adam":
      return Adam(**common)
    return AdamW(weight_decay=0.01 if self.weight_decay is None else self.weight_decay, **common)


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
  """A whole training run (the file `tf-seqmodels train --config` reads)."""

  model: ModelSection = dataclasses.field(default_factory=ModelSection)
  task: TaskSection = dataclasses.field(default_factory=TaskSection)
  data: DataSection = dataclasses.field(default_factory=DataSection)
  optimizer: OptimizerSection = dataclasses.field(default_factory=OptimizerSection)
  trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
  strategy: StrategyConfig = dataclasses.field(default_factory=StrategyConfig)
  run_dir: str = "runs/train"


def resolve_model_config(section: ModelSection):
  """The model config a ModelSection names: a config file, or the registry's default (or
  demo) config with `section.config`'s top-level keys replaced."""
  from tf_seqmodels.models.registry import get_entry
  entry = get_entry(section.name)
  if section.config_file:
    return entry.config_class.load(section.config_file)
  base = entry.demo_config() if section.demo and entry.demo_config else entry.config_class()
  if not section.config:
    return base
  return entry.config_class.from_dict({**base.to_dict(), **section.config},
                                      where=f"model.config ({section.name})")


def build_task(section: TaskSection, data: TrainingData):
  """The Task of `section` for one data source (defaults filled from the data)."""
  from tf_seqmodels.tasks import get_task_type
  return get_task_type(section.type).build(section.options, data)


@dataclasses.dataclass
class AssembledRun:
  """Everything a run config names, built: the strategy, the model (its variables created
  under the strategy; trained weights restored when asked), the data sources and their
  tasks ({source: ...}; one source is "train")."""

  config: TrainConfig
  info: Any  # StrategyInfo
  model: Any
  model_config: Any
  data: dict[str, TrainingData]
  tasks: dict[str, Any]
  weights: Optional[str] = None  # the checkpoint prefix restored, if any

  @property
  def task(self):
    """The task, or {source: task} with several sources (what `Trainer` takes)."""
    return self.tasks if len(self.tasks) > 1 else next(iter(self.tasks.values()))

  def metric_directions(self) -> dict[str, bool]:
    """{validation metric: higher is better} as the trainer names them."""
    from tf_seqmodels.tasks.base import source_metric_directions
    return source_metric_directions(self.tasks)


def declared_selection(config: TrainConfig, select_best_by: str) -> tuple[str, bool]:
  """(metric, maximise) of a select_best_by / tuning objective for the run `config`
  describes, from its task type's declared metric directions (`Task.METRICS`), before
  anything is built; "max:"/"min:" force the direction. With several data sources the
  metric is "<source>/<metric>" (or the mean "loss").

  Raises:
    ConfigError: the task type reports no such metric (the message lists its metrics).
  """
  from tf_seqmodels.tasks import get_task_type
  forced, metric = None, select_best_by
  if metric.startswith(("min:", "max:")):
    forced, metric = metric.startswith("max:"), metric[4:]
  entry = get_task_type(config.task.type)
  base = metric
  sources = config.data.options.get("sources") if config.data.type == "multi" else None
  if sources and metric != "loss":
    source, _, base = metric.partition("/")
    if source not in sources or not base:
      raise ConfigError(f"select_best_by / objective {metric!r}: with several data sources name "
                        f"'<source>/<metric>' (sources: {sorted(sources)}) or 'loss'")
  higher = entry.metric_direction(base)
  if higher is None:
    raise ConfigError(f"select_best_by / objective {metric!r} is not a metric of task type "
                      f"{entry.name!r}; its metrics are {['loss', *entry.task_class.METRICS]}")
  return metric, higher if forced is None else forced


def assemble_run(config: TrainConfig, *, strategy_info: Optional[Any] = None,
                 weights: Optional[str] = None, which: str = "best") -> AssembledRun:
  """Builds what `config` names, in the order every command needs.

  The strategy is created first (logical devices and the multi-worker runtime must exist
  before TensorFlow runs ops), then the seeds are set, then the model is built inside the
  strategy's scope (and `weights`, a run directory or checkpoint prefix, restored into it),
  then the data and a task per data source. `strategy_info` (a `make_strategy` result)
  reuses an existing strategy: one strategy per process when several runs share it.
  """
  from tf_seqmodels.models.registry import build_model
  from tf_seqmodels.training.checkpointing import restore_weights
  info = strategy_info or make_strategy(config.strategy)
  set_determinism(config.trainer.seed, config.trainer.deterministic)
  resolved = resolve_model_config(config.model)
  read = None
  with info.strategy.scope():
    model = build_model(config.model.name, resolved)
    if weights is not None:
      read = restore_weights(model, weights, which, info.strategy)
  context = BuildContext(model, config.model.name, resolved, config.task.type,
                         config.task.options, config.trainer.seed)
  data = build_data(config.data, context)
  tasks = {name: build_task(config.task, source) for name, source in data.items()}
  return AssembledRun(config, info, model, resolved, data, tasks, read)


def run_training(config: TrainConfig, *, resume: bool = False,
                 metadata: Optional[Mapping[str, Any]] = None,
                 strategy_info: Optional[Any] = None) -> dict[str, Any]:
  """Assembles the run (`assemble_run`), creates the optimizer in the strategy's scope and
  trains with `Trainer`; returns the Trainer's history. `strategy_info` reuses an existing
  strategy instead of `config.strategy` (tuning trials)."""
  from tf_seqmodels.training.checkpointing import latest_checkpoint, restore_model
  if not resume and latest_checkpoint(config.run_dir):
    raise FileExistsError(f"{config.run_dir} already holds checkpoints; resume it (--resume) or "
                          f"choose a new run directory")
  run = assemble_run(config, strategy_info=strategy_info)
  info, model, data = run.info, run.model, run.data
  if len(data) > 1:
    steps = len(data) * min(d.steps_per_epoch for d in data.values())
  else:
    steps = next(iter(data.values())).steps_per_epoch
  trainer_config = config.trainer
  if trainer_config.steps_per_epoch is None:
    trainer_config = trainer_config.replace(steps_per_epoch=steps)
  if trainer_config.batch_size is None:
    trainer_config = trainer_config.replace(batch_size=config.data.batch_size)
  total = trainer_config.epochs * trainer_config.steps_per_epoch
  with info.strategy.scope():
    optimizer = config.optimizer.make(total, trainer_config.steps_per_epoch)
  trainer = Trainer(model, run.task, optimizer, strategy=info, config=trainer_config,
                    run_dir=config.run_dir,
                    metadata={"train_config": config.to_dict(), **(metadata or {})})
  train = {name: d.train for name, d in data.items()}
  valid = {name: d.valid for name, d in data.items() if d.valid is not None}
  first = next(iter(data.values()))
  trainer.build(first.train.element_spec[0])
  fresh = not (resume and latest_checkpoint(config.run_dir))
  if fresh:
    # Initialisation from another run and data-dependent preparation only for a new run:
    # a resumed run gets all of it back from its own checkpoint.
    if config.model.init_from:
      target = model
      for part in (config.model.init_component or "").split("."):
        target = getattr(target, part) if part else target
      restore_model(target, config.model.init_from, config.model.init_which)
    for source in data.values():
      if source.prepare_model is not None:
        source.prepare_model(model)
  if len(data) == 1:
    train, valid = first.train, first.valid
  return trainer.fit(train, valid or None, resume=resume)


# --- trained runs ---------------------------------------------------------------------------------

def read_train_config(run_dir: str) -> TrainConfig:
  """The `TrainConfig` that `tf-seqmodels train` recorded in `run_dir/run.json`
  (metadata["config"]["train_config"]: the trainer stores its metadata under "config").

  Raises:
    FileNotFoundError: no run.json; ValueError: run.json records no training config.
  """
  from tf_seqmodels.training.logging import RUN_METADATA
  path = os.path.join(run_dir, RUN_METADATA)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{run_dir} is not a training run directory (no {RUN_METADATA})")
  with open(path) as f:
    recorded = (json.load(f).get("config") or {}).get("train_config")
  if not recorded:
    raise ValueError(f"{path} records no training config (the run was not started by "
                     f"`tf-seqmodels train`); name the model and its config instead")
  return TrainConfig.from_dict(recorded, where=path)
