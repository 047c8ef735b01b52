"""Chromoformer tasks: expressed / not expressed (classification) or log2(RPKM + 1) (regression).

    classification  loss = cross-entropy(softmax(logits [B, 2]), label [B] in {0, 1})
                    metrics accuracy (P(class 1) > 0.5, the argmax), auroc, ap
    regression      loss = MSE(expression [B], log2(RPKM + 1) [B])
                    metrics pearson, r2 (= 1 - SSE / SST), mse

The metrics are exact over everything seen (values are gathered, not binned) and computed
by the shared `tasks.metrics` functions, so the evaluation report gives the same numbers.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Literal, Optional

import numpy as np
import tensorflow as tf

from tf_seqmodels.config import Config
from tf_seqmodels.tasks.base import StreamingMetric, StreamingPearson, Task, Tensors
from tf_seqmodels.tasks.registry import register_task
# The shared numpy metrics (re-exported: callers import roc_auc etc. from here too).
from tf_seqmodels.tasks.metrics import (accuracy, average_precision, mean_squared_error,  # noqa: F401
                                        precision_recall_curve, r2_score, roc_auc, roc_curve)

LOGITS_HEAD = "logits"
EXPRESSION_HEAD = "expression"
LABEL_TARGET = "label"
EXPRESSION_TARGET = "expression"


# --- streaming (gathered) metrics --------------------------------------------------------------

Select = Callable[[Tensors, Tensors], tuple]


class GatheredMetric(StreamingMetric):
  """Keeps every (observed, predicted) pair, then applies `fn` to all of them (exact)."""

  def __init__(self, select: Select, fn: Callable[[np.ndarray, np.ndarray], float]):
    self._select, self._fn = select, fn
    self.reset()

  def reset(self) -> None:
    self._observed, self._predicted = [], []

  def update(self, targets: Tensors, outputs: Tensors) -> None:
    observed, predicted = self._select(targets, outputs)
    self._observed.append(np.asarray(observed).ravel())
    self._predicted.append(np.asarray(predicted).ravel())

  def result(self) -> float:
    if not self._observed:
      return float("nan")
    return self._fn(np.concatenate(self._observed), np.concatenate(self._predicted))


def _lookup(mapping: Tensors, key: str, kind: str):
  if key not in mapping:
    raise KeyError(f"{kind} {key!r} not found; available {kind}s: {sorted(mapping)}")
  return mapping[key]


def expressed_probability(logits) -> np.ndarray:
  """P(class 1) [B] from [B, 2] logits (a numerically stable softmax)."""
  logits = np.asarray(logits, np.float64)
  return 1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1]))


class ChromoformerTask(Task):
  """Classification (expressed >= median) or regression (log2 RPKM + 1), as the reference.

  Args:
    mode: "classification" (head "logits" [B, 2], target "label" [B]) or "regression"
      (head "expression" [B], target "expression" [B]).
  """

  METRICS = {"accuracy": True, "auroc": True, "ap": True, "pearson": True, "r2": True,
             "mse": False}

  def __init__(self, mode: Literal["classification", "regression"] = "classification"):
    if mode not in ("classification", "regression"):
      raise ValueError(f"mode must be 'classification' or 'regression', got {mode!r}")
    self.mode = mode

  @property
  def head_names(self) -> tuple[str, ...]:
    return (LOGITS_HEAD,) if self.mode == "classification" else (EXPRESSION_HEAD,)

  def loss(self, targets: Tensors, outputs: Tensors) -> tf.Tensor:
    if self.mode == "classification":
      labels = tf.cast(tf.reshape(_lookup(targets, LABEL_TARGET, "target"), [-1]), tf.int32)
      logits = tf.cast(_lookup(outputs, LOGITS_HEAD, "head"), tf.float32)
      return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    observed = tf.cast(tf.reshape(_lookup(targets, EXPRESSION_TARGET, "target"), [-1]), tf.float32)
    predicted = tf.cast(tf.reshape(_lookup(outputs, EXPRESSION_HEAD, "head"), [-1]), tf.float32)
    return tf.reduce_mean(tf.square(predicted - observed))

  def _classification(self, targets: Tensors, outputs: Tensors) -> tuple:
    return (np.asarray(_lookup(targets, LABEL_TARGET, "target")),
            expressed_probability(_lookup(outputs, LOGITS_HEAD, "head")))

  def _regression(self, targets: Tensors, outputs: Tensors) -> tuple:
    return (np.asarray(_lookup(targets, EXPRESSION_TARGET, "target"), np.float64),
            np.asarray(_lookup(outputs, EXPRESSION_HEAD, "head"), np.float64))

  def make_metrics(self) -> dict[str, StreamingMetric]:
    if self.mode == "classification":
      select = self._classification
      return {"accuracy": GatheredMetric(select, accuracy),
              "auroc": GatheredMetric(select, roc_auc),
              "ap": GatheredMetric(select, average_precision)}
    select = self._regression
    return {"pearson": StreamingPearson(select), "r2": GatheredMetric(select, r2_score),
            "mse": GatheredMetric(select, mean_squared_error)}


@dataclasses.dataclass(frozen=True)
class ChromoformerTaskOptions(Config):
  """task.options of `chromoformer`: mode (default: the data's, else classification)."""

  mode: Optional[Literal["classification", "regression"]] = None


@register_task("chromoformer", ChromoformerTaskOptions, ChromoformerTask,
               data_builders=("chromoformer",), evaluator="tf_seqmodels.evaluation.chromoformer",
               description="gene expression from histone marks and interactions (Chromoformer)")
def _chromoformer(options: ChromoformerTaskOptions, data) -> ChromoformerTask:
  return ChromoformerTask(options.mode or data.info.get("mode", "classification"))
