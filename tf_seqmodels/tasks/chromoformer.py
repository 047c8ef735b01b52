"""Chromoformer tasks: expressed / not expressed (classification) or log2(RPKM + 1) (regression).

    classification  loss = cross-entropy(softmax(logits [B, 2]), label [B] in {0, 1})
                    metrics accuracy, auroc, ap (score = P(class 1))
    regression      loss = MSE(expression [B], log2(RPKM + 1) [B])
                    metrics pearson, r2 (= 1 - SSE / SST), mse

AUROC and AP are exact over everything seen (values are gathered, not binned): AUROC is the
Mann-Whitney statistic with tied scores counted 1/2; AP = sum_k (R_k - R_{k-1}) P_k over
distinct score thresholds (scikit-learn's `average_precision_score`).
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
import tensorflow as tf

from tf_seqmodels.tasks.base import StreamingMetric, StreamingPearson, Task, Tensors
from tf_seqmodels.tasks.dream import rankdata

LOGITS_HEAD = "logits"
EXPRESSION_HEAD = "expression"
LABEL_TARGET = "label"
EXPRESSION_TARGET = "expression"


# --- metric functions (numpy, float64) ---------------------------------------------------------

def _binary(labels, scores) -> tuple[np.ndarray, np.ndarray]:
  labels = np.asarray(labels).ravel()
  scores = np.asarray(scores, np.float64).ravel()
  if labels.shape != scores.shape:
    raise ValueError(f"{labels.size} labels but {scores.size} scores")
  if not np.all(np.isin(labels, (0, 1))):
    raise ValueError(f"labels must be 0 or 1, found {sorted(set(labels.tolist()) - {0, 1})[:5]}")
  return labels.astype(np.int64), scores


def roc_auc(labels, scores) -> float:
  """Area under the ROC curve (ties count 1/2); NaN when a class is absent."""
  labels, scores = _binary(labels, scores)
  positives = int(labels.sum())
  negatives = labels.size - positives
  if positives == 0 or negatives == 0:
    return float("nan")
  ranks = rankdata(scores)
  return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2)
               / (positives * negatives))


def average_precision(labels, scores) -> float:
  """AP = sum_k (R_k - R_{k-1}) P_k over distinct thresholds; NaN without positives."""
  labels, scores = _binary(labels, scores)
  positives = labels.sum()
  if positives == 0:
    return float("nan")
  order = np.argsort(-scores, kind="mergesort")
  sorted_scores, sorted_labels = scores[order], labels[order]
  # The last index of each run of equal scores is one threshold.
  last = np.flatnonzero(np.concatenate([sorted_scores[1:] != sorted_scores[:-1], [True]]))
  true_positives = np.cumsum(sorted_labels)[last]
  precision = true_positives / (last + 1)
  recall = true_positives / positives
  return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))


def accuracy(labels, predicted) -> float:
  labels = np.asarray(labels).ravel()
  predicted = np.asarray(predicted).ravel()
  return float(np.mean(labels == predicted)) if labels.size else float("nan")


def r_squared(observed, predicted) -> float:
  """Coefficient of determination 1 - SSE / SST; NaN for constant `observed`."""
  observed = np.asarray(observed, np.float64).ravel()
  predicted = np.asarray(predicted, np.float64).ravel()
  sst = np.square(observed - observed.mean()).sum() if observed.size else 0.0
  if sst <= 0:
    return float("nan")
  return float(1.0 - np.square(observed - predicted).sum() / sst)


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray]:
  """(false positive rate, true positive rate) at each distinct threshold, from (0, 0)."""
  labels, scores = _binary(labels, scores)
  order = np.argsort(-scores, kind="mergesort")
  sorted_scores, sorted_labels = scores[order], labels[order]
  last = np.flatnonzero(np.concatenate([sorted_scores[1:] != sorted_scores[:-1], [True]]))
  tp = np.cumsum(sorted_labels)[last]
  fp = last + 1 - tp
  return (np.concatenate([[0.0], fp / max(fp[-1], 1)]),
          np.concatenate([[0.0], tp / max(tp[-1], 1)]))


def precision_recall_curve(labels, scores) -> tuple[np.ndarray, np.ndarray]:
  """(recall, precision) at each distinct threshold, highest threshold first."""
  labels, scores = _binary(labels, scores)
  order = np.argsort(-scores, kind="mergesort")
  sorted_scores, sorted_labels = scores[order], labels[order]
  last = np.flatnonzero(np.concatenate([sorted_scores[1:] != sorted_scores[:-1], [True]]))
  tp = np.cumsum(sorted_labels)[last]
  return tp / max(labels.sum(), 1), tp / (last + 1)


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
      return {"accuracy": GatheredMetric(select, lambda y, p: accuracy(y, p > 0.5)),
              "auroc": GatheredMetric(select, roc_auc),
              "ap": GatheredMetric(select, average_precision)}
    select = self._regression
    return {"pearson": StreamingPearson(select), "r2": GatheredMetric(select, r_squared),
            "mse": GatheredMetric(select, lambda y, p: float(np.mean(np.square(y - p))))}
