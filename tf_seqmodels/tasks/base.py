"""The task contract: what a model's heads are trained against and how they are scored.

    task.loss(targets: {name: Tensor}, outputs: {head: Tensor}) -> scalar Tensor
        mean over the batch it is given (the trainer rescales for replicas)
    task.make_metrics() -> {metric name: StreamingMetric}
        each metric's update(targets, outputs) accumulates one batch (eager, numpy side)
    Task.METRICS = {metric name pattern: higher is better}
        the direction of every metric (and of "loss": lower), read by best-checkpoint
        selection, early stopping, the tuner's objective and evaluation reports

Models never see targets; trainers and evaluators only see `Task` and the model contract.
"""

from __future__ import annotations

import abc
import fnmatch
from typing import Callable, ClassVar, Mapping, Optional

import numpy as np
import tensorflow as tf

from tf_seqmodels.config import ConfigError

Tensors = Mapping[str, tf.Tensor]


class StreamingMetric(abc.ABC):
  """Accumulates over batches, then reports one float."""

  @abc.abstractmethod
  def reset(self) -> None: ...

  @abc.abstractmethod
  def update(self, targets: Tensors, outputs: Tensors) -> None: ...

  @abc.abstractmethod
  def result(self) -> float: ...


class StreamingPearson(StreamingMetric):
  """Pearson r between two selected arrays, accumulated with running sums (float64).

  `select` maps (targets, outputs) to (observed, predicted) arrays of equal shape; all
  elements are pooled (flatten first for a per-track metric).
  """

  def __init__(self, select: Callable[[Tensors, Tensors], tuple]):
    self._select = select
    self.reset()

  def reset(self) -> None:
    self._n = 0
    self._sx = self._sy = self._sxx = self._syy = self._sxy = 0.0

  def update(self, targets: Tensors, outputs: Tensors) -> None:
    x, y = self._select(targets, outputs)
    x = np.asarray(x, np.float64).ravel()
    y = np.asarray(y, np.float64).ravel()
    if x.shape != y.shape:
      raise ValueError(f"observed and predicted sizes differ: {x.shape} vs {y.shape}")
    self._n += x.size
    self._sx += x.sum()
    self._sy += y.sum()
    self._sxx += (x * x).sum()
    self._syy += (y * y).sum()
    self._sxy += (x * y).sum()

  def result(self) -> float:
    if self._n < 2:
      return float("nan")
    n = self._n
    cov = self._sxy - self._sx * self._sy / n
    vx = self._sxx - self._sx**2 / n
    vy = self._syy - self._sy**2 / n
    if vx <= 0 or vy <= 0:
      return float("nan")
    return float(cov / np.sqrt(vx * vy))


class Task(abc.ABC):
  """Loss and metrics for a model's heads.

  `METRICS` maps each metric name (an fnmatch pattern, e.g. "counts_mse_*" or "pearson/*")
  to True when higher is better; every name `make_metrics` returns must match one. The
  loss is always lower-is-better.
  """

  METRICS: ClassVar[Mapping[str, bool]] = {}

  @property
  @abc.abstractmethod
  def head_names(self) -> tuple[str, ...]:
    """Heads of the model output this task reads."""

  @abc.abstractmethod
  def loss(self, targets: Tensors, outputs: Tensors) -> tf.Tensor:
    """Scalar loss, averaged over the examples of the batch."""

  def make_metrics(self) -> dict[str, StreamingMetric]:
    return {}

  @classmethod
  def metric_direction(cls, metric: str) -> Optional[bool]:
    """True when higher `metric` is better, False when lower is; None when undeclared."""
    if metric == "loss":
      return False
    for pattern, higher in cls.METRICS.items():
      if fnmatch.fnmatchcase(metric, pattern):
        return bool(higher)
    return None

  def metric_directions(self) -> dict[str, bool]:
    """{metric name: higher is better} for "loss" and every metric of `make_metrics()`."""
    directions = {"loss": False}
    for name in self.make_metrics():
      higher = self.metric_direction(name)
      if higher is None:
        raise TypeError(f"{type(self).__name__}: metric {name!r} has no declared direction; "
                        f"add it to {type(self).__name__}.METRICS")
      directions[name] = higher
    return directions


def select_metric(select_best_by: str, directions: Mapping[str, bool]) -> tuple[str, bool]:
  """Resolves a `select_best_by` / tuning objective against the metrics a run reports.

  Args:
    select_best_by: a metric name ("pearson", "counts_mse_peaks", with several sources
      "<source>/<metric>"); a "max:" or "min:" prefix forces the direction.
    directions: {metric name: higher is better} of the run (`Task.metric_directions`).

  Returns:
    (metric name, maximise).

  Raises:
    ConfigError: the metric is not one of `directions`, listing them.
  """
  forced = None
  metric = select_best_by
  if metric.startswith(("min:", "max:")):
    forced, metric = metric.startswith("max:"), metric[4:]
  if metric not in directions:
    raise ConfigError(f"select_best_by / objective {metric!r} is not a metric of this task; "
                      f"its metrics are {sorted(directions)}")
  return metric, directions[metric] if forced is None else forced


def source_metric_directions(tasks: Mapping[str, Task]) -> dict[str, bool]:
  """{validation metric: higher is better} as a trainer names them: one task's own metric
  names, or "<source>/<metric>" (plus the mean "loss") for several sources."""
  if len(tasks) == 1:
    return next(iter(tasks.values())).metric_directions()
  directions = {"loss": False}
  for name, task in tasks.items():
    directions.update({f"{name}/{k}": v for k, v in task.metric_directions().items()})
  return directions
