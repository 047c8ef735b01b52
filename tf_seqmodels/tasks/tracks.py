"""Track prediction task (Enformer / Basenji): Poisson NLL and per-track Pearson r.

Heads read: one or more heads `{name: [B, bins, T]}` of non-negative rates (Enformer's
softplus heads). Targets: the same names, `[B, bins, T]` binned coverage.

    loss = sum over heads of  w_head x mean_{b, bins, tracks} (pred - target x log(pred + 1e-7))

which is the reference's `tf.reduce_mean(tf.keras.losses.poisson(target, pred))` (the
target-only log-factorial term of the Poisson NLL is left out, so the loss is not zero at a
perfect fit). Metrics, as the reference's `PearsonR(reduce_axis=(0, 1))`: Pearson r of each
track over all examples and bins of the evaluation set, averaged over tracks ("pearson"),
and the same on log(1 + x) ("pearson_log"); with several heads also "pearson/<head>".
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_seqmodels.config import Config
from tf_seqmodels.tasks.base import StreamingMetric, Task, Tensors
from tf_seqmodels.tasks.registry import register_task

POISSON_EPSILON = 1e-7  # Keras' epsilon, as in tf.keras.losses.poisson


def poisson_loss(targets: tf.Tensor, predictions: tf.Tensor) -> tf.Tensor:
  """Per-position Poisson loss, mean over the last (track) axis: [B, bins, T] -> [B, bins]."""
  predictions = tf.convert_to_tensor(predictions)
  targets = tf.cast(targets, predictions.dtype)
  return tf.reduce_mean(predictions - targets * tf.math.log(predictions + POISSON_EPSILON), axis=-1)


class StreamingTrackPearson(StreamingMetric):
  """Pearson r per track, pooled over examples and bins, averaged over tracks.

  Args:
    head: the head / target name read.
    log: correlate log(1 + x) instead of x.
  Tracks with no variance in the data seen (observed or predicted) are left out of the
  average; `per_track()` returns NaN for them.
  """

  def __init__(self, head: str, log: bool = False):
    self.head, self.log = head, log
    self.reset()

  def reset(self) -> None:
    self._n = 0
    self._sums = None  # [5, T]: x, y, xx, yy, xy

  def update(self, targets: Tensors, outputs: Tensors) -> None:
    x = np.asarray(targets[self.head], np.float64)
    y = np.asarray(outputs[self.head], np.float64)
    if x.shape != y.shape:
      raise ValueError(f"head {self.head!r}: targets {x.shape} and predictions {y.shape} differ")
    x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
    if self.log:
      x, y = np.log1p(np.maximum(x, 0)), np.log1p(np.maximum(y, 0))
    sums = np.stack([x.sum(0), y.sum(0), (x * x).sum(0), (y * y).sum(0), (x * y).sum(0)])
    self._sums = sums if self._sums is None else self._sums + sums
    self._n += x.shape[0]

  def per_track(self) -> np.ndarray:
    """[T] Pearson r per track (NaN where undefined)."""
    if self._sums is None or self._n < 2:
      return np.full(0 if self._sums is None else self._sums.shape[1], np.nan)
    sx, sy, sxx, syy, sxy = self._sums
    n = self._n
    vx, vy = sxx - sx * sx / n, syy - sy * sy / n
    cov = sxy - sx * sy / n
    with np.errstate(invalid="ignore", divide="ignore"):
      r = cov / np.sqrt(vx * vy)
    return np.where((vx > 0) & (vy > 0), r, np.nan)

  def result(self) -> float:
    r = self.per_track()
    return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")


class TrackTask(Task):
  """Poisson NLL over one or more track heads (Enformer's human + mouse, or one head).

  Args:
    heads: head names; targets use the same names.
    weights: per-head loss weights (default 1 each).
  """

  METRICS = {"pearson": True, "pearson_log": True, "pearson/*": True, "pearson_log/*": True}

  def __init__(self, heads: Sequence[str] = ("tracks",), weights: Optional[Mapping[str, float]] = None):
    heads = tuple(heads)
    if not heads:
      raise ValueError("TrackTask needs at least one head")
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(heads))
    if unknown:
      raise ValueError(f"weights name unknown heads {unknown}; heads are {list(heads)}")
    self._heads = heads
    self.weights = {h: float(weights.get(h, 1.0)) for h in heads}

  @property
  def head_names(self) -> tuple[str, ...]:
    return self._heads

  def loss(self, targets: Tensors, outputs: Tensors) -> tf.Tensor:
    missing = [h for h in self._heads if h not in targets or h not in outputs]
    if missing:
      raise KeyError(f"heads {missing} are missing from the targets {sorted(targets)} or the "
                     f"model outputs {sorted(outputs)}")
    total = 0.0
    for head in self._heads:
      total += self.weights[head] * tf.reduce_mean(poisson_loss(targets[head], outputs[head]))
    return total

  def make_metrics(self) -> dict[str, StreamingMetric]:
    if len(self._heads) == 1:
      head = self._heads[0]
      return {"pearson": StreamingTrackPearson(head),
              "pearson_log": StreamingTrackPearson(head, log=True)}
    metrics: dict[str, StreamingMetric] = {}
    for head in self._heads:
      metrics[f"pearson/{head}"] = StreamingTrackPearson(head)
      metrics[f"pearson_log/{head}"] = StreamingTrackPearson(head, log=True)
    metrics["pearson"] = _MeanOf([metrics[f"pearson/{h}"] for h in self._heads])
    return metrics


class _MeanOf(StreamingMetric):
  """Mean of other metrics' results; updating is left to them (they are in the same dict)."""

  def __init__(self, parts: Sequence[StreamingMetric]):
    self._parts = list(parts)

  def reset(self) -> None:
    pass

  def update(self, targets: Tensors, outputs: Tensors) -> None:
    pass

  def result(self) -> float:
    values = [p.result() for p in self._parts]
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


@dataclasses.dataclass(frozen=True)
class TrackTaskOptions(Config):
  """task.options of `tracks`: heads (default: the data's targets) and per-head weights."""

  heads: Optional[list[str]] = None
  weights: Optional[dict[str, float]] = None


def _track_teacher_targets(outputs, options: TrackTaskOptions, rng) -> dict:
  return {h: np.asarray(outputs[h], np.float32) for h in options.heads or list(outputs)}


@register_task("tracks", TrackTaskOptions, TrackTask, data_builders=("tracks", "basenji"),
               evaluator="tf_seqmodels.evaluation.tracks", teacher_targets=_track_teacher_targets,
               description="binned coverage tracks: Poisson NLL (Enformer, Basenji)")
def _tracks(options: TrackTaskOptions, data) -> TrackTask:
  return TrackTask(options.heads or data.targets, options.weights)
