"""Classification and regression metric functions (numpy, float64): the one implementation
that task metrics (`tasks/*`) and evaluation reports (`evaluation/*`) share.

    accuracy(labels [N], scores [N], threshold)  fraction with (score > threshold) == label
    roc_auc / average_precision(labels [N], scores [N])
    roc_curve / precision_recall_curve           the curves behind AUROC / AP
    classification_metrics(labels, scores)       accuracy, auroc, average_precision, ...
    r2_score / regression_metrics(observed [N], predicted [N])
    pearson_r / spearman_rho(x, y), rankdata(x)  correlations (NaN when undefined)
    jensen_shannon_distance(p [..., T], q)       JS distance between (normalised) profiles

Accuracy counts a score as positive when it is strictly above `threshold` (default 0.5):
for two-class softmax probabilities this is the argmax rule (a tie at 0.5 is class 0) and
Keras' BinaryAccuracy. AUROC is the Mann-Whitney probability that a positive outranks a
negative (ties count half); AP is scikit-learn's step-wise sum over distinct thresholds of
(R_n - R_{n-1}) P_n; R² is the coefficient of determination 1 - SS_res / SS_tot (not r²).
"""

from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLD = 0.5


# --- correlations -------------------------------------------------------------------------------

def paired_arrays(x, y) -> tuple[np.ndarray, np.ndarray]:
  """x, y flattened to float64 vectors of equal size (ValueError otherwise)."""
  x = np.asarray(x, np.float64).ravel()
  y = np.asarray(y, np.float64).ravel()
  if x.shape != y.shape:
    raise ValueError(f"arrays differ in size: {x.size} vs {y.size}")
  return x, y


def pearson_r(x, y) -> float:
  """Pearson correlation of two equal-size arrays; NaN when undefined (n < 2, constant input)."""
  x, y = paired_arrays(x, y)
  if x.size < 2 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
    return float("nan")
  xc, yc = x - x.mean(), y - y.mean()
  denom = np.sqrt((xc * xc).sum() * (yc * yc).sum())
  return float((xc * yc).sum() / denom) if denom > 0 else float("nan")


def rankdata(x) -> np.ndarray:
  """Ranks 1..n of a 1-D array, ties getting the mean of their ranks (scipy's 'average')."""
  x = np.asarray(x, np.float64).ravel()
  order = np.argsort(x, kind="mergesort")
  sorted_x = x[order]
  # Start index of each run of equal values; a run spanning positions i..j gets rank (i+j)/2 + 1.
  starts = np.flatnonzero(np.concatenate([[True], sorted_x[1:] != sorted_x[:-1]]))
  ends = np.concatenate([starts[1:], [x.size]]) - 1
  run_rank = (starts + ends) / 2.0 + 1.0
  ranks = np.empty(x.size, np.float64)
  ranks[order] = np.repeat(run_rank, ends - starts + 1)
  return ranks


def spearman_rho(x, y) -> float:
  """Spearman rank correlation (Pearson of average ranks), as `scipy.stats.spearmanr`."""
  x, y = paired_arrays(x, y)
  if x.size < 2 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
    return float("nan")
  return pearson_r(rankdata(x), rankdata(y))


# Short names used by the ChromBPNet code and tests.
pearsonr = pearson_r
spearmanr = spearman_rho



def _binary(labels, scores) -> tuple[np.ndarray, np.ndarray]:
  labels = np.asarray(labels, np.float64).ravel()
  scores = np.asarray(scores, np.float64).ravel()
  if labels.shape != scores.shape:
    raise ValueError(f"labels ({labels.size}) and scores ({scores.size}) must have one value per example")
  if not np.isin(labels, (0.0, 1.0)).all():
    bad = sorted(set(labels[~np.isin(labels, (0.0, 1.0))].tolist()))[:5]
    raise ValueError(f"classification labels must be 0 or 1, found {bad}")
  return labels.astype(bool), scores


def accuracy(labels, scores, threshold: float = DEFAULT_THRESHOLD) -> float:
  """Fraction of examples with (score > threshold) == label; NaN when empty."""
  y, s = _binary(labels, scores)
  return float(np.mean((s > threshold) == y)) if y.size else float("nan")


def roc_auc(labels, scores) -> float:
  """Area under the ROC curve; NaN when only one class is present."""
  y, s = _binary(labels, scores)
  positives, negatives = int(y.sum()), int((~y).sum())
  if positives == 0 or negatives == 0:
    return float("nan")
  ranks = rankdata(s)
  return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _thresholds(y: np.ndarray, s: np.ndarray):
  """True / false positives at each distinct score, highest first."""
  order = np.argsort(-s, kind="mergesort")
  s, y = s[order], y[order]
  last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1] if s.size else np.zeros(0, np.int64)
  tps = np.cumsum(y)[last].astype(np.float64)
  fps = (last + 1 - tps).astype(np.float64)
  return tps, fps, s[last]


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(false positive rate, true positive rate, thresholds), starting at (0, 0)."""
  y, s = _binary(labels, scores)
  tps, fps, thresholds = _thresholds(y, s)
  tpr = np.r_[0.0, tps / max(tps[-1], 1.0)] if tps.size else np.zeros(1)
  fpr = np.r_[0.0, fps / max(fps[-1], 1.0)] if fps.size else np.zeros(1)
  return fpr, tpr, np.r_[np.inf, thresholds]


def precision_recall_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(precision, recall, thresholds), highest threshold first, then the (P 1, R 0) end
  point as scikit-learn."""
  y, s = _binary(labels, scores)
  tps, fps, thresholds = _thresholds(y, s)
  precision = tps / np.maximum(tps + fps, 1.0)
  recall = tps / tps[-1] if tps.size and tps[-1] > 0 else np.full_like(tps, np.nan)
  return np.r_[precision, 1.0], np.r_[recall, 0.0], thresholds


def average_precision(labels, scores) -> float:
  """AP = sum_n (R_n - R_{n-1}) P_n over distinct thresholds; NaN without positives."""
  y, s = _binary(labels, scores)
  if not y.any():
    return float("nan")
  tps, fps, _ = _thresholds(y, s)
  precision = tps / (tps + fps)
  recall = tps / tps[-1]
  return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def classification_metrics(labels, scores, threshold: float = DEFAULT_THRESHOLD) -> dict[str, float]:
  """accuracy (score > threshold), auroc, average_precision, positive_fraction, n."""
  y, s = _binary(labels, scores)
  return {"accuracy": accuracy(y, s, threshold), "auroc": roc_auc(y, s),
          "average_precision": average_precision(y, s),
          "positive_fraction": float(y.mean()) if y.size else float("nan"), "n": float(y.size)}


def r2_score(observed, predicted) -> float:
  """Coefficient of determination 1 - SS_res / SS_tot; NaN for constant `observed`."""
  observed = np.asarray(observed, np.float64).ravel()
  predicted = np.asarray(predicted, np.float64).ravel()
  total = np.sum((observed - observed.mean())**2) if observed.size else 0.0
  if total <= 0:
    return float("nan")
  return float(1.0 - np.sum((observed - predicted)**2) / total)


def mean_squared_error(observed, predicted) -> float:
  observed = np.asarray(observed, np.float64).ravel()
  predicted = np.asarray(predicted, np.float64).ravel()
  return float(np.mean((observed - predicted)**2)) if observed.size else float("nan")


def regression_metrics(observed, predicted) -> dict[str, float]:
  """pearson, spearman, r2 (coefficient of determination), mse, n."""
  observed = np.asarray(observed, np.float64).ravel()
  predicted = np.asarray(predicted, np.float64).ravel()
  if observed.shape != predicted.shape:
    raise ValueError(f"observed ({observed.size}) and predicted ({predicted.size}) sizes differ")
  return {"pearson": pearsonr(observed, predicted), "spearman": spearmanr(observed, predicted),
          "r2": r2_score(observed, predicted), "mse": mean_squared_error(observed, predicted),
          "n": float(observed.size)}


def _kl_terms(p: np.ndarray, m: np.ndarray) -> np.ndarray:
  with np.errstate(divide="ignore", invalid="ignore"):
    return np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / m), 0.0).sum(axis=-1)


def jensen_shannon_distance(p: np.ndarray, q: np.ndarray) -> np.ndarray:
  """JS distance (natural log) between rows of p and q, each normalised to sum 1 first
  (scipy.spatial.distance.jensenshannon). All-zero rows give NaN. [..., T] -> [...]."""
  p = np.asarray(p, np.float64)
  q = np.asarray(q, np.float64)
  with np.errstate(divide="ignore", invalid="ignore"):
    p = p / p.sum(axis=-1, keepdims=True)
    q = q / q.sum(axis=-1, keepdims=True)
  m = (p + q) / 2.0
  js = (_kl_terms(p, m) + _kl_terms(q, m)) / 2.0
  return np.sqrt(np.maximum(js, 0.0))  # maximum keeps NaN (empty profiles)
