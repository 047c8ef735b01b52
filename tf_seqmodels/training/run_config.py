"""Training-config files: model + task + data + optimizer/schedule + trainer + strategy.

    tf-seqmodels train --config dream_cnn.yaml [--strategy mirrored] [--resume]

    model:     {name: dream_cnn, config: {...}}         # registry name + its config (or
                                                        # config_file, or demo: true)
    task:      {type: dream_soft_bin, options: {loss: kl}}
    data:      {type: dream, batch_size: 1024, eval_batch_size: 4096, options: {...}}
    optimizer: {name: adamw, learning_rate: 0.005, weight_decay: 0.01, schedule: one_cycle}
    trainer:   {epochs: 80, select_best_by: pearson, ...}    # TrainerConfig
    strategy:  {kind: default}                               # StrategyConfig
    run_dir:   runs/dream_cnn

Every section is strict (unknown keys are errors). Recipes: Enformer = adam + warmup
(learning_rate 5e-4, warmup_steps 5000) + clip_global_norm 0.2 with `data.type: multi`
(human and mouse sources in rotation); DREAM = adamw + one_cycle (beta1 cycled); ChromBPNet
= adam 1e-3 constant, first the bias model (`data.options.mode: bias`) then the accessibility
model with `model.init_from: <bias run dir>` and `model.init_component: bias_model`.
Relative paths are relative to the working directory.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Mapping, Optional

import tensorflow as tf

from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.training.data_builders import (BuildContext, DataSection, TrainingData,
                                                 build_data)
from tf_seqmodels.training.strategy import StrategyConfig, make_strategy
from tf_seqmodels.training.trainer import Trainer, TrainerConfig, set_determinism

TASK_TYPES = ("tracks", "dream_soft_bin", "regression", "chrombpnet", "chromoformer")


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
  """The task: a type and its options.

  tracks          {heads: [..] (default: the data's targets), weights: {head: w}}
  dream_soft_bin  {loss: kl | mse}
  regression      {targets: [names] or {target: head}, weights: {target: w}}
  chrombpnet      {counts_loss_weight: w (default: from the data, median counts / 10)}
  chromoformer    {mode: classification | regression (default: the model's mode)}
  """

  type: Literal["tracks", "dream_soft_bin", "regression", "chrombpnet", "chromoformer"] = "tracks"
  options: dict[str, Any] = dataclasses.field(default_factory=dict)

  def validate(self) -> None:
    allowed = {"tracks": {"heads", "weights"}, "dream_soft_bin": {"loss"},
               "regression": {"targets", "weights"}, "chrombpnet": {"counts_loss_weight"},
               "chromoformer": {"mode"}}
    unknown = sorted(set(self.options) - allowed[self.type])
    if unknown:
      raise ConfigError(f"task.options for {self.type!r}: unknown key(s) {unknown}; valid keys "
                        f"are {sorted(allowed[self.type])}")


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


def _model_config(section: ModelSection):
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
  options = dict(section.options)
  if section.type == "tracks":
    from tf_seqmodels.tasks.tracks import TrackTask
    return TrackTask(options.get("heads") or data.targets, options.get("weights"))
  if section.type == "dream_soft_bin":
    from tf_seqmodels.tasks.dream import DreamSoftBinTask
    return DreamSoftBinTask(loss=options.get("loss", "kl"))
  if section.type == "regression":
    from tf_seqmodels.tasks.dream import RegressionTask
    targets = options.get("targets") or [t for t in data.targets]
    if isinstance(targets, Mapping):
      targets = {k: v if isinstance(v, str) else tuple(v) for k, v in targets.items()}
    return RegressionTask(targets, options.get("weights"))
  if section.type == "chromoformer":
    from tf_seqmodels.tasks.chromoformer import ChromoformerTask
    return ChromoformerTask(options.get("mode") or data.info.get("mode", "classification"))
  from tf_seqmodels.tasks.chrombpnet import ChromBPNetTask
  weight = options.get("counts_loss_weight", data.info.get("counts_loss_weight"))
  if weight is None:
    raise ConfigError("task chrombpnet: counts_loss_weight is neither given nor computed by the "
                      "data builder")
  return ChromBPNetTask(float(weight))


def run_training(config: TrainConfig, *, resume: bool = False,
                 metadata: Optional[Mapping[str, Any]] = None,
                 strategy_info: Optional[Any] = None) -> dict[str, Any]:
  """Builds everything a TrainConfig names and trains; returns the Trainer's history.

  The strategy is created first (logical devices and the multi-worker runtime must exist
  before TensorFlow runs ops), then the seeds are set, then model, data, task and optimizer
  are built (model and optimizer inside the strategy's scope). `strategy_info` (a
  `make_strategy` result) reuses an existing strategy instead of `config.strategy`: one
  strategy per process when several runs share it (tuning trials).
  """
  from tf_seqmodels.models.registry import build_model
  from tf_seqmodels.training.checkpointing import latest_checkpoint, restore_model
  info = strategy_info or make_strategy(config.strategy)
  if not resume and latest_checkpoint(config.run_dir):
    raise FileExistsError(f"{config.run_dir} already holds checkpoints; resume it (--resume) or "
                          f"choose a new run directory")
  set_determinism(config.trainer.seed, config.trainer.deterministic)
  model_config = _model_config(config.model)
  with info.strategy.scope():
    model = build_model(config.model.name, model_config)
  context = BuildContext(model, config.model.name, model_config, config.task.type,
                         config.task.options, config.trainer.seed)
  data = build_data(config.data, context)
  tasks = {name: build_task(config.task, source) for name, source in data.items()}
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
  task = tasks if len(tasks) > 1 else next(iter(tasks.values()))
  trainer = Trainer(model, task, optimizer, strategy=info, config=trainer_config,
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
