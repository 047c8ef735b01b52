"""Task types by name: what a run config's `task:` section may say, and everything that
depends on it.

    @register_task("dream_soft_bin", DreamSoftBinOptions, DreamSoftBinTask,
                   data_builders=("dream",), evaluator="tf_seqmodels.evaluation.dream",
                   description="18 expression bins: KL (or MSE) on soft labels")
    def _dream_soft_bin(options: DreamSoftBinOptions, data) -> DreamSoftBinTask:
      return DreamSoftBinTask(loss=options.loss)

A task type registers:
  options        a strict `Config` for `task.options` (unknown keys are errors);
  task class     the `Task` it builds; its `METRICS` declare each metric's direction;
  factory        (options, data) -> Task, where `data` is the source's `TrainingData`
                 (target names, builder extras such as ChromBPNet's counts-loss weight);
  data_builders  the `data.type` builders that can feed it (besides the generic "teacher"
                 and "multi", which feed any task);
  evaluator      the module that registers its `tf-seqmodels evaluate` evaluator (imported
                 on first use: evaluators import plotting libraries);
  teacher_targets  (model outputs {head: np.ndarray}, options, rng) -> {target: np.ndarray}:
                 how the "teacher" data builder turns a random model's outputs into targets
                 (a learnable task for any model; smoke tests and benchmarks).

The built-in types register when `tf_seqmodels.tasks` is imported: look task types up
through it (`from tf_seqmodels.tasks import get_task_type`).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping, Optional, Type

from tf_seqmodels.config import Config, ConfigError


@dataclasses.dataclass(frozen=True)
class TaskEntry:
  name: str
  options: Type[Config]
  task_class: type
  factory: Callable[[Any, Any], Any]
  data_builders: tuple[str, ...]
  evaluator: Optional[str]
  description: str
  teacher_targets: Optional[Callable[..., Any]] = None

  def parse_options(self, options: Optional[Mapping[str, Any]] = None) -> Config:
    """The typed options from a plain mapping (unknown keys fail, naming the valid ones)."""
    return self.options.from_dict(dict(options or {}), where=f"task.options ({self.name})")

  def build(self, options: Optional[Mapping[str, Any]], data: Any):
    """The Task for one data source (`data`: a `TrainingData`, for defaults)."""
    return self.factory(self.parse_options(options), data)

  def metric_direction(self, metric: str) -> Optional[bool]:
    """True when higher values of `metric` are better, False when lower are, None when the
    task type has no such metric (`Task.METRICS`)."""
    return self.task_class.metric_direction(metric)


_TASKS: dict[str, TaskEntry] = {}


def register_task(name: str, options: Type[Config], task_class: type, *,
                  data_builders: tuple[str, ...] = (), evaluator: Optional[str] = None,
                  description: str = "", teacher_targets: Optional[Callable[..., Any]] = None):
  """Decorator registering `factory(options, data) -> Task` as task type `name`."""
  if not (isinstance(options, type) and issubclass(options, Config)):
    raise TypeError(f"task {name!r}: options must be a Config subclass, got {options!r}")

  def decorator(factory):
    if name in _TASKS:
      raise ValueError(f"task type {name!r} is already registered")
    _TASKS[name] = TaskEntry(name, options, task_class, factory, tuple(data_builders), evaluator,
                             description, teacher_targets)
    return factory

  return decorator


def available_tasks() -> list[str]:
  return sorted(_TASKS)


def get_task_type(name: str) -> TaskEntry:
  if name not in _TASKS:
    raise ConfigError(f"unknown task type {name!r}; available: {sorted(_TASKS)}")
  return _TASKS[name]


def import_evaluator(name: str) -> None:
  """Imports the module that registers task type `name`'s evaluator (if it names one)."""
  entry = get_task_type(name)
  if entry.evaluator:
    importlib.import_module(entry.evaluator)
