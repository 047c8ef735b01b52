"""The task contract: what a model's heads are trained against and how they are scored.

    task.loss(targets: {name: Tensor}, outputs: {head: Tensor}) -> scalar Tensor
        mean over the batch it is given (the trainer rescales for replicas)
    task.make_metrics() -> {metric name: StreamingMetric}
        each metric's update(targets, outputs) accumulates one batch (eager, numpy side)

Models never see targets; trainers and evaluators only see `Task` and the model contract.
"""

from __future__ import annotations

import abc
from typing import Callable, Mapping

import numpy as np
import tensorflow as tf

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
  """Loss and metrics for a model's heads."""

  @property
  @abc.abstractmethod
  def head_names(self) -> tuple[str, ...]:
    """Heads of the model output this task reads."""

  @abc.abstractmethod
  def loss(self, targets: Tensors, outputs: Tensors) -> tf.Tensor:
    """Scalar loss, averaged over the examples of the batch."""

  def make_metrics(self) -> dict[str, StreamingMetric]:
    return {}
