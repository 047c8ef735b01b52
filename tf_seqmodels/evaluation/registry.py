"""Evaluators keyed by task type: `tf-seqmodels evaluate` dispatches on the run's task.type.

An evaluator turns a trained model and one data split into a `Report` (metrics, tables and
figures, written as JSON + Markdown + PNG). To add one for a new task type:

    from tf_seqmodels.evaluation import EvaluationContext, Report, register_evaluator

    @dataclasses.dataclass(frozen=True)
    class MyOptions(Config):          # the `evaluation.options` a user may set (strict)
      threshold: float = 0.5

    @register_evaluator("my_task", MyOptions, "what it reports")
    def evaluate_my_task(context: EvaluationContext, options: MyOptions) -> Report:
      predictions = context.predict()   # batched, under the run's strategy, progress bar
      report = Report(f"{context.title}: my task")
      report.add_section(classification_section(...))   # or regression_section(...)
      return report

The task type names that module (`tasks.registry.register_task(..., evaluator="pkg.module")`):
`get_evaluator` imports it on first use.
Evaluators only use the model contract (`context.model`), the task and the data; they are
deterministic (no sampling; fixed order of the evaluation split).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional

from tf_seqmodels.config import Config, ConfigError


@dataclasses.dataclass(frozen=True)
class NoOptions(Config):
  """Evaluators without options."""


@dataclasses.dataclass(frozen=True)
class EvaluatorEntry:
  task_type: str
  options: type
  description: str
  evaluate: Callable[..., Any]


_EVALUATORS: dict[str, EvaluatorEntry] = {}


def register_evaluator(task_type: str, options: type = NoOptions, description: str = ""):
  """Decorator registering `evaluate(context, options) -> Report` for `task_type`.

  Args:
    task_type: the run config's `task.type` this evaluator serves (one per type).
    options: a `Config` subclass holding the evaluator's settings (`evaluation.options`).
    description: one line for `tf-seqmodels evaluate --list`.
  """
  if not (isinstance(options, type) and issubclass(options, Config)):
    raise TypeError(f"evaluator options for {task_type!r} must be a Config subclass, got {options!r}")

  def decorator(fn):
    if task_type in _EVALUATORS:
      raise ValueError(f"an evaluator for task type {task_type!r} is already registered")
    _EVALUATORS[task_type] = EvaluatorEntry(task_type, options, description, fn)
    return fn

  return decorator


def available_evaluators() -> list[str]:
  from tf_seqmodels.tasks import available_tasks, import_evaluator
  for task_type in available_tasks():
    import_evaluator(task_type)
  return sorted(_EVALUATORS)


def get_evaluator(task_type: str) -> EvaluatorEntry:
  from tf_seqmodels.tasks import available_tasks, import_evaluator
  if task_type not in _EVALUATORS and task_type in available_tasks():
    # The task type names the module registering its evaluator (imported on first use:
    # evaluators import matplotlib).
    import_evaluator(task_type)
  if task_type not in _EVALUATORS:
    raise ConfigError(f"no evaluator for task type {task_type!r}; available: "
                      f"{available_evaluators()}")
  return _EVALUATORS[task_type]


def evaluator_options(task_type: str, options: Optional[Mapping[str, Any]] = None) -> Config:
  """The typed options of `task_type`'s evaluator from a plain mapping (unknown keys fail)."""
  entry = get_evaluator(task_type)
  return entry.options.from_dict(dict(options or {}), where=f"evaluation.options ({task_type})")
