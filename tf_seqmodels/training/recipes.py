"""The DREAM training recipe (the Prix Fixe autosome trainer used for DREAM-CNN/RNN/Attn):
AdamW (weight decay 0.01, beta2 0.999, eps 1e-8) under a per-batch OneCycle schedule
(max LR from the model's registration: 0.005, or 0.001 for DREAM-Attn; div_factor 25,
pct_start 0.3, final_div_factor 1e4, cosine annealing, beta1 cycled 0.95 -> 0.85 -> 0.95),
KL loss on soft labels, batch 1024, 80 epochs, best checkpoint by validation Pearson.

    config = dream_train_config({"train": "train.txt", "valid": "val.txt",
                                 "plasmid": "plasmid.json"}, model="dream_attn",
                                run_dir="runs/dream_attn")
    run_training(config)     # or save it and run `tf-seqmodels train --config`

`DreamTrainingConfig` holds the recipe's settings (a typed config; `for_model` fills the
registered model's defaults) and makes the optimizer for hand-written training code.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal, Mapping, Optional

from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.training.optimizers import AdamW
from tf_seqmodels.training.schedules import OneCycle

@dataclasses.dataclass(frozen=True)
class DreamTrainingConfig(Config):
  """The DREAM training recipe; the defaults are the yeast challenge setting for DREAM-CNN/RNN.

  `steps_per_epoch=None` means one pass over the (reverse-complement doubled) training data
  per epoch, as the Prix Fixe notebook advises; LegNet's own run used 1000 batches per epoch.
  The benchmark variants (DeepSTARR, lentiMPRA) use the same optimizer with batch_size 32,
  loss "mse" and reverse_complement "none".
  """

  model: str = "dream_cnn"
  batch_size: int = 1024
  validation_batch_size: int = 4096
  epochs: int = 80
  steps_per_epoch: Optional[int] = None
  max_learning_rate: float = 0.005
  div_factor: float = 25.0
  final_div_factor: float = 1e4
  pct_start: float = 0.3
  cycle_momentum: bool = True
  base_momentum: float = 0.85
  max_momentum: float = 0.95
  beta1: float = 0.9  # used only when cycle_momentum is False
  beta2: float = 0.999
  epsilon: float = 1e-8
  weight_decay: float = 0.01
  loss: Literal["kl", "mse"] = "kl"
  reverse_complement: Literal["double", "random", "none"] = "double"
  sequence_length: int = 150
  select_best_by: str = "pearson"
  seed: int = 0

  def validate(self) -> None:
    for name in ("batch_size", "validation_batch_size", "epochs", "sequence_length"):
      if getattr(self, name) < 1:
        raise ConfigError(f"DreamTrainingConfig.{name} must be >= 1, got {getattr(self, name)}")
    if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
      raise ConfigError(f"DreamTrainingConfig.steps_per_epoch must be >= 1 or null, "
                        f"got {self.steps_per_epoch}")
    if self.max_learning_rate <= 0 or self.weight_decay < 0:
      raise ConfigError("DreamTrainingConfig: max_learning_rate must be > 0 and weight_decay >= 0")
    if not 0.0 < self.pct_start < 1.0:
      raise ConfigError(f"DreamTrainingConfig.pct_start must be in (0, 1), got {self.pct_start}")
    if self.loss not in ("kl", "mse"):
      raise ConfigError(f"DreamTrainingConfig.loss must be 'kl' or 'mse', got {self.loss!r}")
    if self.reverse_complement not in ("double", "random", "none"):
      raise ConfigError(f"DreamTrainingConfig.reverse_complement must be double/random/none, "
                        f"got {self.reverse_complement!r}")

  @classmethod
  def for_model(cls, model: str, **overrides) -> "DreamTrainingConfig":
    """The recipe for a registered DREAM model: its registration's `recipe` defaults (max LR
    0.001 for dream_attn, else 0.005) under `overrides`."""
    from tf_seqmodels.models.registry import available_models, get_entry
    defaults = get_entry(model).recipe if model in available_models() else {}
    if not defaults:
      known = [n for n in available_models() if get_entry(n).recipe]
      raise ConfigError(f"no DREAM recipe for model {model!r}; known: {known}")
    return cls(**{"model": model, **defaults, **overrides})

  def epoch_steps(self, num_train_examples: int) -> int:
    """Batches per epoch: `steps_per_epoch`, or one pass over the training examples
    (doubled by reverse_complement="double")."""
    if self.steps_per_epoch is not None:
      return self.steps_per_epoch
    if num_train_examples < 1:
      raise ValueError(f"num_train_examples must be positive, got {num_train_examples}")
    examples = num_train_examples * (2 if self.reverse_complement == "double" else 1)
    return math.ceil(examples / self.batch_size)

  def schedule(self, steps_per_epoch: int) -> OneCycle:
    return OneCycle.from_epochs(self.max_learning_rate, self.epochs, steps_per_epoch,
                                pct_start=self.pct_start, div_factor=self.div_factor,
                                final_div_factor=self.final_div_factor,
                                cycle_momentum=self.cycle_momentum,
                                base_momentum=self.base_momentum, max_momentum=self.max_momentum)

  def make_optimizer(self, steps_per_epoch: int) -> AdamW:
    """AdamW driven by the OneCycle schedule (lr and, when cycling, beta1) for this recipe."""
    schedule = self.schedule(steps_per_epoch)
    beta1 = schedule.beta1 if self.cycle_momentum else self.beta1
    return AdamW(learning_rate=schedule, beta1=beta1, beta2=self.beta2, epsilon=self.epsilon,
                 weight_decay=self.weight_decay)


def dream_train_config(data_options: Mapping[str, Any], *, model: str = "dream_cnn",
                       run_dir: str = "runs/dream", model_config: Optional[Mapping[str, Any]] = None,
                       recipe: Optional[DreamTrainingConfig] = None, **recipe_overrides):
  """A TrainConfig of the DREAM recipe for `model` on yeast tables (`data.type: dream`
  options: train, valid, plasmid, ...). `recipe` (default `DreamTrainingConfig.for_model`)
  and `recipe_overrides` (its fields) set the schedule, batch sizes, epochs and loss."""
  from tf_seqmodels.training.run_config import TrainConfig
  r = recipe or DreamTrainingConfig.for_model(model, **recipe_overrides)
  return TrainConfig.from_dict({
      "model": {"name": r.model, "config": dict(model_config or {})},
      "task": {"type": "dream_soft_bin", "options": {"loss": r.loss}},
      "data": {"type": "dream", "batch_size": r.batch_size,
               "eval_batch_size": r.validation_batch_size,
               "options": {"reverse_complement": r.reverse_complement, "seed": r.seed,
                           **dict(data_options)}},
      "optimizer": {"name": "adamw", "learning_rate": r.max_learning_rate,
                    "weight_decay": r.weight_decay, "beta1": r.beta1, "beta2": r.beta2,
                    "epsilon": r.epsilon, "schedule": "one_cycle", "pct_start": r.pct_start,
                    "div_factor": r.div_factor, "final_div_factor": r.final_div_factor,
                    "cycle_momentum": r.cycle_momentum, "base_momentum": r.base_momentum,
                    "max_momentum": r.max_momentum},
      "trainer": {"epochs": r.epochs, "steps_per_epoch": r.steps_per_epoch, "seed": r.seed,
                  "select_best_by": r.select_best_by},
      "run_dir": run_dir,
  }, where="DREAM recipe")
