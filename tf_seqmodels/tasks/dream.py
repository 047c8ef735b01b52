"""DREAM tasks: soft-bin KL loss, regression (DeepSTARR, lentiMPRA), correlation metrics and
the challenge's weighted Pearson / Spearman scores.

Losses follow the Prix Fixe reference (`prixfixe/autosome/final_layers_block.py`):

    soft-bin   KLDivLoss(reduction="batchmean")(log_softmax(bin_logits), bin_probs)
               = sum_{b,k} p_bk (log p_bk - log q_bk) / B          (0 log 0 = 0)
    fallback   MSE(expected bin, measured bin)   when trained without soft labels
    benchmarks sum over tasks of MSE(prediction_t, target_t)      (DeepSTARR: dev + hk)

Challenge scoring follows `prixfixe/evaluation.py`: Pearson r and Spearman rho per test
subset, SNV / motif-perturbation / motif-tiling scored on alt - ref differences, combined as

    pearson_score  = sum_s w_s r_s^2 / 4.65     spearman_score = sum_s w_s rho_s / 4.65

with w = all 1, high 0.3, low 0.3, native 0.3, random 0.3, challenging 0.5, SNV 1.25,
motif perturbation 0.3, motif tiling 0.4.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Literal, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tf_seqmodels.config import Config
from tf_seqmodels.data.dream import ChallengeSubsets
from tf_seqmodels.tasks.base import StreamingMetric, StreamingPearson, Task, Tensors
from tf_seqmodels.tasks.registry import register_task
from tf_seqmodels.tasks.metrics import paired_arrays, pearson_r, rankdata, spearman_rho  # noqa: F401

CHALLENGE_WEIGHTS = {"all": 1.0, "high": 0.3, "low": 0.3, "native": 0.3, "random": 0.3,
                     "challenging": 0.5, "snv": 1.25, "motif_perturbation": 0.3,
                     "motif_tiling": 0.4}


# --- losses ---------------------------------------------------------------------------------------
def kl_divergence_loss(probs: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """KL(probs || softmax(logits)) summed over classes, averaged over the batch.

  Args:
    probs: target distribution [B, K] (soft labels).
    logits: unnormalised predictions [B, K].
  Returns:
    scalar float32, equal to PyTorch `KLDivLoss(reduction="batchmean")(log_softmax(logits), probs)`.
  """
  probs = tf.convert_to_tensor(probs, tf.float32)
  logits = tf.convert_to_tensor(logits, tf.float32)
  if not probs.shape.is_compatible_with(logits.shape) or probs.shape.rank != 2:
    raise ValueError(f"soft labels {probs.shape} and logits {logits.shape} must both be [batch, bins]")
  log_q = tf.nn.log_softmax(logits, axis=-1)
  # xlogy gives 0 for p = 0 (PyTorch's convention); tiny negative float noise in p is not expected.
  pointwise = tf.math.xlogy(probs, probs) - probs * log_q
  batch = tf.cast(tf.shape(probs)[0], tf.float32)
  return tf.reduce_sum(pointwise) / batch


def mse_loss(targets: tf.Tensor, predictions: tf.Tensor) -> tf.Tensor:
  """Mean squared error over all elements (PyTorch `MSELoss()`); shapes must have equal size."""
  targets = tf.reshape(tf.cast(targets, tf.float32), [-1])
  predictions = tf.reshape(tf.cast(predictions, tf.float32), [-1])
  if (targets.shape[0] is not None and predictions.shape[0] is not None
      and targets.shape[0] != predictions.shape[0]):
    raise ValueError(f"targets have {targets.shape[0]} elements, predictions {predictions.shape[0]}")
  return tf.reduce_mean(tf.square(predictions - targets))


# --- streaming metrics ----------------------------------------------------------------------------
Select = Callable[[Tensors, Tensors], tuple]


class StreamingSpearman(StreamingMetric):
  """Spearman rho between two selected arrays; keeps all values (ranks need the whole set)."""

  def __init__(self, select: Select):
    self._select = select
    self.reset()

  def reset(self) -> None:
    self._x, self._y = [], []

  def update(self, targets: Tensors, outputs: Tensors) -> None:
    x, y = paired_arrays(*self._select(targets, outputs))
    self._x.append(x)
    self._y.append(y)

  def result(self) -> float:
    if not self._x:
      return float("nan")
    return spearman_rho(np.concatenate(self._x), np.concatenate(self._y))


class StreamingMSE(StreamingMetric):
  """Mean squared error between two selected arrays (running float64 sums)."""

  def __init__(self, select: Select):
    self._select = select
    self.reset()

  def reset(self) -> None:
    self._n, self._sse = 0, 0.0

  def update(self, targets: Tensors, outputs: Tensors) -> None:
    x, y = paired_arrays(*self._select(targets, outputs))
    self._n += x.size
    self._sse += float(np.square(y - x).sum())

  def result(self) -> float:
    return self._sse / self._n if self._n else float("nan")


class MeanOfMetrics(StreamingMetric):
  """The mean of other metrics' results (the reference's multi-task 'combined' metric)."""

  def __init__(self, metrics: Sequence[StreamingMetric]):
    if not metrics:
      raise ValueError("MeanOfMetrics needs at least one metric")
    self._metrics = list(metrics)

  def reset(self) -> None:
    for metric in self._metrics:
      metric.reset()

  def update(self, targets: Tensors, outputs: Tensors) -> None:
    # The wrapped metrics are usually also reported individually and updated there; this
    # wrapper only reads them, so updating here would double-count.
    del targets, outputs

  def result(self) -> float:
    return float(np.mean([m.result() for m in self._metrics]))


def _lookup(mapping: Tensors, key: str, kind: str) -> tf.Tensor:
  if key not in mapping:
    raise KeyError(f"{kind} {key!r} not found; available {kind}s: {sorted(mapping)}")
  return mapping[key]


# --- tasks ---------------------------------------------------------------------------------------
class DreamSoftBinTask(Task):
  """The DREAM yeast task: soft-bin KL (default) or MSE on the expected bin.

  Model heads: `expression_head` [B] (expected bin, sum_k softmax(logits)_k * k) and
  `logits_head` [B, 18] (pre-softmax bin logits). Targets: `expression_target` [B] (measured
  bin) and, for the KL loss, `probs_target` [B, 18] (soft labels, `data.dream.soft_labels`).
  Metrics (on the expected bin vs the measured bin): pearson, spearman, mse.
  """

  METRICS = {"pearson": True, "spearman": True, "mse": False}

  def __init__(self, loss: str = "kl", expression_head: str = "expression",
               logits_head: str = "bin_logits", expression_target: str = "expression",
               probs_target: str = "bin_probs"):
    if loss not in ("kl", "mse"):
      raise ValueError(f"loss must be 'kl' or 'mse', got {loss!r}")
    self.loss_type = loss
    self.expression_head = expression_head
    self.logits_head = logits_head
    self.expression_target = expression_target
    self.probs_target = probs_target

  @property
  def head_names(self) -> tuple[str, ...]:
    if self.loss_type == "kl":
      return (self.expression_head, self.logits_head)
    return (self.expression_head,)

  def loss(self, targets: Tensors, outputs: Tensors) -> tf.Tensor:
    if self.loss_type == "kl":
      return kl_divergence_loss(_lookup(targets, self.probs_target, "target"),
                                _lookup(outputs, self.logits_head, "head"))
    return mse_loss(_lookup(targets, self.expression_target, "target"),
                    _lookup(outputs, self.expression_head, "head"))

  def _select(self, targets: Tensors, outputs: Tensors) -> tuple:
    return (np.asarray(_lookup(targets, self.expression_target, "target")),
            np.asarray(_lookup(outputs, self.expression_head, "head")))

  def make_metrics(self) -> dict[str, StreamingMetric]:
    return {"pearson": StreamingPearson(self._select), "spearman": StreamingSpearman(self._select),
            "mse": StreamingMSE(self._select)}


HeadSpec = Union[str, tuple]


class RegressionTask(Task):
  """Scalar regression targets, MSE each, summed over targets (DeepSTARR dev + hk, lentiMPRA).

  Args:
    targets: {target name: head} where head is a head name (output [B] or [B, 1]) or a
      (head name, column) pair picking one column of a [B, T] head; a list of names means
      target = head (DeepSTARR: ["dev", "hk"], lentiMPRA: ["activity"]).
    weights: per-target loss weights (default 1.0 each, as the reference).

  Metrics: per target `pearson/<t>`, `spearman/<t>`, `mse/<t>`; with one target also plain
  `pearson`, `spearman`, `mse`; with several, `pearson`, `spearman` and `mse` are the means
  over targets (the reference's "combined" metrics, used to pick the best checkpoint).
  """

  METRICS = {"pearson": True, "spearman": True, "mse": False, "pearson/*": True,
             "spearman/*": True, "mse/*": False}

  def __init__(self, targets: Union[Mapping[str, HeadSpec], Sequence[str], None] = None,
               weights: Optional[Mapping[str, float]] = None):
    if targets is None:
      targets = {"expression": "expression"}
    elif isinstance(targets, str):
      targets = {targets: targets}
    elif not isinstance(targets, Mapping):
      targets = {name: name for name in targets}
    targets = dict(targets)
    if not targets:
      raise ValueError("RegressionTask needs at least one target")
    for name, spec in targets.items():
      if not (isinstance(spec, str) or (isinstance(spec, tuple) and len(spec) == 2
                                        and isinstance(spec[0], str) and isinstance(spec[1], int))):
        raise ValueError(f"target {name!r}: head must be a name or (name, column), got {spec!r}")
    weights = dict(weights) if weights is not None else {}
    unknown = sorted(set(weights) - set(targets))
    if unknown:
      raise ValueError(f"weights given for unknown targets {unknown}; targets are {sorted(targets)}")
    self.targets = targets
    self.weights = {name: float(weights.get(name, 1.0)) for name in targets}

  @property
  def head_names(self) -> tuple[str, ...]:
    names = []
    for spec in self.targets.values():
      head = spec if isinstance(spec, str) else spec[0]
      if head not in names:
        names.append(head)
    return tuple(names)

  def _prediction(self, outputs, name: str):
    spec = self.targets[name]
    if isinstance(spec, str):
      return _lookup(outputs, spec, "head")
    return _lookup(outputs, spec[0], "head")[:, spec[1]]

  def loss(self, targets: Tensors, outputs: Tensors) -> tf.Tensor:
    total = 0.0
    for name in self.targets:
      total += self.weights[name] * mse_loss(_lookup(targets, name, "target"),
                                             self._prediction(outputs, name))
    return total

  def make_metrics(self) -> dict[str, StreamingMetric]:
    metrics = {}
    for name in self.targets:
      select = lambda t, o, name=name: (np.asarray(_lookup(t, name, "target")),  # noqa: E731
                                        np.asarray(self._prediction(o, name)))
      metrics[f"pearson/{name}"] = StreamingPearson(select)
      metrics[f"spearman/{name}"] = StreamingSpearman(select)
      metrics[f"mse/{name}"] = StreamingMSE(select)
    for kind in ("pearson", "spearman", "mse"):
      metrics[kind] = MeanOfMetrics([metrics[f"{kind}/{name}"] for name in self.targets])
    return metrics


# --- challenge scoring ----------------------------------------------------------------------------
def challenge_scores(predictions, measured, subsets: ChallengeSubsets,
                     exclude: Optional[tuple[Iterable[int], Iterable[tuple[int, int]]]] = None,
                     partial: bool = False) -> dict[str, float]:
  """The DREAM challenge evaluation (`prixfixe/evaluation.py::evaluate_predictions`).

  Args:
    predictions: [N] predicted expression per test-set index (position in the test file).
    measured: [N] measured expression per test-set index.
    subsets: subset indices (`data.dream.load_challenge_subsets`); "all" is every index.
    exclude: (indices, (alt, ref) pairs) of the public leaderboard
      (`data.dream.load_public_leaderboard_ids`); as in the reference, single subsets and
      "all" drop every index named there (including both members of public pairs), pair
      subsets drop only the public pairs themselves.
    partial: if some subsets are missing (e.g. no SNV file), compute the scores with the
      weights of the present subsets renormalised to sum to 1, instead of raising. Such
      scores are not the challenge's, so they are named "partial_pearson_score" /
      "partial_spearman_score" (`partial_score_subsets` lists what they cover).

  Returns:
    {"pearson_score", "spearman_score", "<subset>/pearson", "<subset>/spearman", "<subset>/n"}
    for subsets all, high, low, native, random, challenging, snv, motif_perturbation,
    motif_tiling (those present); "partial_pearson_score" / "partial_spearman_score" instead
    of the two scores when some subsets are missing.
  """
  predictions = np.asarray(predictions, np.float64).ravel()
  measured = np.asarray(measured, np.float64).ravel()
  if predictions.shape != measured.shape:
    raise ValueError(f"predictions ({predictions.size}) and measured ({measured.size}) must both "
                     f"hold one value per test-set index")
  n = predictions.size
  excluded_single, excluded_pairs = set(), set()
  if exclude is not None:
    singles, pairs = exclude
    excluded_pairs = {(int(a), int(r)) for a, r in pairs}
    excluded_single = {int(i) for i in singles} | {i for pair in excluded_pairs for i in pair}

  chosen: dict[str, tuple[np.ndarray, np.ndarray]] = {}
  keep_all = np.setdiff1d(np.arange(n), np.fromiter(excluded_single, np.int64, len(excluded_single)))
  chosen["all"] = (measured[keep_all], predictions[keep_all])
  for name, idx in subsets.single.items():
    idx = np.asarray(idx, np.int64)
    idx = idx[~np.isin(idx, list(excluded_single))] if excluded_single else idx
    _check_range(idx, n, name)
    chosen[name] = (measured[idx], predictions[idx])
  for name, pairs in subsets.pairs.items():
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if excluded_pairs:
      pairs = pairs[[(int(a), int(r)) not in excluded_pairs for a, r in pairs]]
    _check_range(pairs, n, name)
    alt, ref = pairs[:, 0], pairs[:, 1]
    chosen[name] = (measured[alt] - measured[ref], predictions[alt] - predictions[ref])

  unknown = sorted(set(chosen) - set(CHALLENGE_WEIGHTS))
  if unknown:
    raise ValueError(f"unknown subset names {unknown}; known: {sorted(CHALLENGE_WEIGHTS)}")
  missing = sorted(set(CHALLENGE_WEIGHTS) - set(chosen))
  if missing and not partial:
    raise ValueError(f"subsets {missing} are missing; the challenge scores need all of "
                     f"{list(CHALLENGE_WEIGHTS)} (pass partial=True to renormalise the weights)")

  result: dict[str, float] = {}
  pearson_score = spearman_score = 0.0
  for name in CHALLENGE_WEIGHTS:
    if name not in chosen:
      continue
    obs, pred = chosen[name]
    r, rho = pearson_r(obs, pred), spearman_rho(obs, pred)
    result[f"{name}/pearson"], result[f"{name}/spearman"], result[f"{name}/n"] = r, rho, float(obs.size)
    pearson_score += CHALLENGE_WEIGHTS[name] * r**2
    spearman_score += CHALLENGE_WEIGHTS[name] * rho
  total = sum(CHALLENGE_WEIGHTS[name] for name in chosen)
  prefix = "partial_" if missing else ""
  result[f"{prefix}pearson_score"] = pearson_score / total
  result[f"{prefix}spearman_score"] = spearman_score / total
  return result


def partial_score_subsets(scores: Mapping[str, float]) -> list[str]:
  """The subsets (challenge order) that `challenge_scores` results cover."""
  return [name for name in CHALLENGE_WEIGHTS if f"{name}/pearson" in scores]


def _check_range(idx: np.ndarray, n: int, name: str) -> None:
  if idx.size and (idx.min() < 0 or idx.max() >= n):
    raise ValueError(f"subset {name!r} names test index {int(idx.max() if idx.max() >= n else idx.min())}, "
                     f"outside the {n} predictions")


# --- task types (run configs' `task.type`) ---------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DreamSoftBinOptions(Config):
  """task.options of `dream_soft_bin`: the loss (KL on soft labels, or MSE on the bin)."""

  loss: Literal["kl", "mse"] = "kl"


def _soft_bin_teacher_targets(outputs, options: DreamSoftBinOptions, rng) -> dict:
  from tf_seqmodels.data.dream import NUM_BINS, soft_labels
  expression = np.clip(np.asarray(outputs["expression"], np.float32), 0.0, NUM_BINS - 1)
  return {"expression": expression, "bin_probs": soft_labels(expression)}


@register_task("dream_soft_bin", DreamSoftBinOptions, DreamSoftBinTask, data_builders=("dream",),
               evaluator="tf_seqmodels.evaluation.dream", teacher_targets=_soft_bin_teacher_targets,
               description="DREAM yeast expression bins: soft-bin KL or MSE")
def _dream_soft_bin(options: DreamSoftBinOptions, data) -> DreamSoftBinTask:
  return DreamSoftBinTask(loss=options.loss)


@dataclasses.dataclass(frozen=True)
class RegressionOptions(Config):
  """task.options of `regression`: targets (names, or {target: head or [head, column]};
  default: the data's targets) and per-target loss weights."""

  targets: Union[list[str], dict[str, Any], None] = None
  weights: Optional[dict[str, float]] = None


def _regression_teacher_targets(outputs, options: RegressionOptions, rng) -> dict:
  spec = options.targets or list(outputs)
  mapping = {t: t for t in spec} if not isinstance(spec, Mapping) else dict(spec)
  targets = {}
  for name, head in mapping.items():
    head, column = (head, None) if isinstance(head, str) else tuple(head)
    value = np.asarray(outputs[head], np.float32)
    targets[name] = value[:, column] if column is not None else value.reshape(len(value), -1)[:, 0]
  return targets


@register_task("regression", RegressionOptions, RegressionTask, data_builders=("table", "dream"),
               evaluator="tf_seqmodels.evaluation.dream", teacher_targets=_regression_teacher_targets,
               description="scalar regression targets, MSE each (DeepSTARR, lentiMPRA)")
def _regression(options: RegressionOptions, data) -> RegressionTask:
  targets = options.targets or list(data.targets)
  if isinstance(targets, Mapping):
    targets = {k: v if isinstance(v, str) else tuple(v) for k, v in targets.items()}
  return RegressionTask(targets, options.weights)
