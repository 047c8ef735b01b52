"""ChromBPNet / BPNet task: multinomial profile NLL + weighted log-counts MSE, and the
reference's evaluation metrics.

Heads read: "profile" [B, T] logits and "logcounts" [B, 1].
Targets: "profile" [B, T] per-base observed counts; optionally "logcounts" [B, 1]
(= log(1 + total), computed from "profile" when absent) and "is_peak" [B] (1 = peak,
0 = non-peak) for the per-subset metrics.

    loss = mean_b MNLL_b + w * mean_b (logcounts_b - log(1 + sum_t counts_bt))^2

MNLL_b is the full multinomial negative log-likelihood (with the log n!/prod x! term)
summed over positions, as `tfp.distributions.Multinomial(...).log_prob` in the reference,
so the profile loss is summed over positions and averaged over the batch. w comes from
data: median total counts / 10, at least 1 (`counts_loss_weight`).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Callable, Mapping, Optional

import numpy as np
import tensorflow as tf

from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.data.chrombpnet import counts_loss_weight
from tf_seqmodels.models.bpnet import COUNTS_HEAD, PROFILE_HEAD
from tf_seqmodels.tasks.base import StreamingMetric, Task, Tensors
from tf_seqmodels.tasks.registry import register_task
from tf_seqmodels.tasks.metrics import (jensen_shannon_distance, pearsonr,  # noqa: F401
                                        rankdata, spearmanr)

SUBSETS = ("peaks", "nonpeaks", "all")


def multinomial_nll(counts: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """Per-example multinomial NLL of `counts` [B, T] under softmax(`logits` [B, T]) -> [B]."""
  counts = tf.cast(counts, logits.dtype)
  total = tf.reduce_sum(counts, axis=-1)
  log_probs = tf.nn.log_softmax(logits, axis=-1)
  log_likelihood = (tf.math.lgamma(total + 1.0)
                    - tf.reduce_sum(tf.math.lgamma(counts + 1.0), axis=-1)
                    + tf.reduce_sum(counts * log_probs, axis=-1))
  return -log_likelihood


def target_logcounts(targets: Tensors, dtype=tf.float32) -> tf.Tensor:
  """Observed log(1 + total counts) [B, 1] from targets ("logcounts" or "profile")."""
  if COUNTS_HEAD in targets:
    return tf.reshape(tf.cast(targets[COUNTS_HEAD], dtype), [-1, 1])
  if PROFILE_HEAD not in targets:
    raise KeyError(f"targets need {PROFILE_HEAD!r} counts; got {sorted(targets)}")
  return tf.math.log1p(tf.reduce_sum(tf.cast(targets[PROFILE_HEAD], dtype), axis=-1, keepdims=True))


class ChromBPNetTask(Task):
  """Profile MNLL + `counts_loss_weight` x MSE of log counts (reference normalisation)."""

  # Correlations of log counts: higher is better; their MSE and the profile JSDs: lower.
  METRICS = {"counts_pearsonr_*": True, "counts_spearmanr_*": True, "counts_mse_*": False,
             "profile_median_jsd_*": False, "profile_median_norm_jsd_*": False}

  def __init__(self, counts_loss_weight: float = 1.0):
    if not np.isfinite(counts_loss_weight) or counts_loss_weight < 0:
      raise ValueError(f"counts_loss_weight must be a finite number >= 0, got {counts_loss_weight}")
    self.counts_loss_weight = float(counts_loss_weight)

  @classmethod
  def from_total_counts(cls, total_counts) -> "ChromBPNetTask":
    """Task with the weight computed from per-region total counts (median / 10, floor 1)."""
    return cls(counts_loss_weight(total_counts))

  @property
  def head_names(self) -> tuple[str, ...]:
    return (PROFILE_HEAD, COUNTS_HEAD)

  def loss_terms(self, targets: Tensors, outputs: Tensors) -> dict[str, tf.Tensor]:
    """{"mnll", "mse", "total"} scalars, each a batch mean (total = mnll + w * mse)."""
    logits = outputs[PROFILE_HEAD]
    counts = targets[PROFILE_HEAD]
    if None not in (counts.shape[-1], logits.shape[-1]) and counts.shape[-1] != logits.shape[-1]:
      raise ValueError(f"profile targets have {counts.shape[-1]} positions, the model predicts "
                       f"{logits.shape[-1]}")
    mnll = tf.reduce_mean(multinomial_nll(counts, logits))
    predicted = tf.reshape(outputs[COUNTS_HEAD], [-1, 1])
    mse = tf.reduce_mean(tf.square(predicted - target_logcounts(targets, predicted.dtype)))
    return {"mnll": mnll, "mse": mse, "total": mnll + self.counts_loss_weight * mse}

  def loss(self, targets: Tensors, outputs: Tensors) -> tf.Tensor:
    return self.loss_terms(targets, outputs)["total"]

  def make_metrics(self) -> dict[str, StreamingMetric]:
    """Counts Pearson/Spearman/MSE and profile median JSD / normalised JSD, for peaks,
    non-peaks and all regions (names like "counts_pearsonr_peaks", "profile_median_jsd_all")."""
    metrics: dict[str, StreamingMetric] = {}
    for subset in SUBSETS:
      for stat in ("pearsonr", "spearmanr", "mse"):
        metrics[f"counts_{stat}_{subset}"] = CountsMetric(stat, subset)
      metrics[f"profile_median_jsd_{subset}"] = ProfileJSDMetric(False, subset)
      metrics[f"profile_median_norm_jsd_{subset}"] = ProfileJSDMetric(True, subset)
    return metrics


# --- metrics -----------------------------------------------------------------------------------

def softmax_np(logits: np.ndarray) -> np.ndarray:
  z = np.asarray(logits, np.float64)
  z = np.exp(z - z.max(axis=-1, keepdims=True))
  return z / z.sum(axis=-1, keepdims=True)


def profile_jsd(observed_counts: np.ndarray, predicted_probs: np.ndarray,
                pseudocount: float = 0.001) -> tuple[np.ndarray, np.ndarray]:
  """Per-region (JSD, normalised JSD) as the reference reports them.

  JSD between observed / (sum + pseudocount) and the predicted probabilities; normalised
  JSD = (jsd - jsd_uniform) / (0 - jsd_uniform) clipped to [0, 1] (1 = perfect, 0 = no
  better than a uniform profile). Regions without counts give NaN (medians skip them).
  """
  observed = np.asarray(observed_counts, np.float64)
  with np.errstate(divide="ignore", invalid="ignore"):
    obs = observed / (pseudocount + np.nansum(observed, axis=-1, keepdims=True))
    jsd = jensen_shannon_distance(obs, predicted_probs)
    uniform = np.full_like(observed, 1.0 / observed.shape[-1])
    jsd_uniform = jensen_shannon_distance(observed, uniform)
    norm = np.clip((jsd - jsd_uniform) / (0.0 - jsd_uniform), 0.0, 1.0)
  return jsd, norm


def subset_mask(targets: Tensors, subset: str, size: int) -> Optional[np.ndarray]:
  """Boolean mask of the batch's examples in `subset`; None if the subset is unknowable."""
  if subset == "all":
    return np.ones(size, bool)
  if "is_peak" not in targets:
    return None
  is_peak = np.asarray(targets["is_peak"]).reshape(-1).astype(bool)
  return is_peak if subset == "peaks" else ~is_peak


class _CollectingMetric(StreamingMetric):
  """Collects per-example values of one subset, then reduces them."""

  def __init__(self, subset: str):
    if subset not in SUBSETS:
      raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    self.subset = subset
    self.reset()

  def reset(self) -> None:
    self._values: list[np.ndarray] = []

  @abc.abstractmethod
  def _per_example(self, targets: Tensors, outputs: Tensors) -> np.ndarray:
    """Per-example values of the batch, leading axis = examples."""

  def update(self, targets: Tensors, outputs: Tensors) -> None:
    values = self._per_example(targets, outputs)
    mask = subset_mask(targets, self.subset, values.shape[0])
    if mask is not None:
      self._values.append(values[mask])

  def _collected(self) -> np.ndarray:
    return np.concatenate(self._values) if self._values else np.zeros((0,))


class CountsMetric(_CollectingMetric):
  """Pearson r / Spearman rho / MSE between observed log(1 + total) and predicted log counts."""

  _STATS: Mapping[str, Callable] = {
      "pearsonr": lambda obs, pred: pearsonr(obs, pred),
      "spearmanr": lambda obs, pred: spearmanr(obs, pred),
      "mse": lambda obs, pred: float(np.mean((obs - pred)**2)) if obs.size else float("nan"),
  }

  def __init__(self, stat: str, subset: str = "all"):
    if stat not in self._STATS:
      raise ValueError(f"stat must be one of {sorted(self._STATS)}, got {stat!r}")
    self.stat = stat
    super().__init__(subset)

  def _per_example(self, targets, outputs):
    observed = np.asarray(target_logcounts(targets), np.float64).reshape(-1)
    predicted = np.asarray(outputs[COUNTS_HEAD], np.float64).reshape(-1)
    return np.stack([observed, predicted], axis=-1)

  def result(self) -> float:
    pairs = self._collected().reshape(-1, 2)
    return self._STATS[self.stat](pairs[:, 0], pairs[:, 1])


class ProfileJSDMetric(_CollectingMetric):
  """Median (normalised) Jensen-Shannon distance between observed and predicted profiles."""

  def __init__(self, normalized: bool, subset: str = "all"):
    self.normalized = normalized
    super().__init__(subset)

  def _per_example(self, targets, outputs):
    jsd, norm = profile_jsd(np.asarray(targets[PROFILE_HEAD]),
                            softmax_np(np.asarray(outputs[PROFILE_HEAD])))
    return norm if self.normalized else jsd

  def result(self) -> float:
    values = self._collected()
    if values.size == 0 or np.all(np.isnan(values)):
      return float("nan")
    return float(np.nanmedian(values))


@dataclasses.dataclass(frozen=True)
class ChromBPNetTaskOptions(Config):
  """task.options of `chrombpnet`: counts_loss_weight (default: from the data builder,
  median total counts / 10)."""

  counts_loss_weight: Optional[float] = None


def _teacher_targets(outputs, options: ChromBPNetTaskOptions, rng) -> dict:
  # Counts drawn from the teacher's profile and total, half of the examples called peaks.
  probs = softmax_np(np.asarray(outputs[PROFILE_HEAD], np.float64))
  totals = np.exp(np.clip(np.asarray(outputs[COUNTS_HEAD], np.float64).reshape(-1, 1), -5, 8))
  counts = rng.poisson(probs * (10.0 + 10.0 * totals)).astype(np.float32)
  return {PROFILE_HEAD: counts, COUNTS_HEAD: np.log1p(counts.sum(-1, keepdims=True)),
          "is_peak": (rng.random(len(counts)) < 0.5).astype(np.float32)}


@register_task("chrombpnet", ChromBPNetTaskOptions, ChromBPNetTask, data_builders=("chrombpnet",),
               evaluator="tf_seqmodels.evaluation.chrombpnet", teacher_targets=_teacher_targets,
               description="base-resolution profiles + log counts (BPNet, ChromBPNet)")
def _chrombpnet(options: ChromBPNetTaskOptions, data) -> ChromBPNetTask:
  weight = options.counts_loss_weight
  if weight is None:
    weight = data.info.get("counts_loss_weight")
  if weight is None:
    raise ConfigError("task chrombpnet: counts_loss_weight is neither given nor computed by the "
                      "data builder")
  return ChromBPNetTask(float(weight))
