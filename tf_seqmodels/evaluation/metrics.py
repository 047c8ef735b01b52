"""Generic classification and regression metrics and report sections (numpy only).

    classification_metrics(labels [N], scores [N]) -> accuracy, auroc, average_precision
    roc_curve / precision_recall_curve -> the curves behind AUROC / AP
    regression_metrics(observed [N], predicted [N]) -> pearson, spearman, r2, mse
    classification_section(...) / regression_section(...) -> a report Section with plots

AUROC is the Mann-Whitney probability that a positive outranks a negative (ties count
half); AP is sklearn's step-wise sum over thresholds of (R_n - R_{n-1}) P_n; R² is the
coefficient of determination 1 - SS_res / SS_tot (not r²).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from tf_seqmodels.evaluation.report import Section, new_figure
from tf_seqmodels.tasks.chrombpnet import pearsonr, rankdata, spearmanr


def _binary(labels, scores) -> tuple[np.ndarray, np.ndarray]:
  labels = np.asarray(labels, np.float64).ravel()
  scores = np.asarray(scores, np.float64).ravel()
  if labels.shape != scores.shape:
    raise ValueError(f"labels ({labels.size}) and scores ({scores.size}) must have one value per example")
  if not np.isin(labels, (0.0, 1.0)).all():
    raise ValueError("classification labels must be 0 or 1")
  return labels.astype(bool), scores


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
  last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each distinct score
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
  """(precision, recall, thresholds) with recall increasing, ending at (1, 0) as sklearn."""
  y, s = _binary(labels, scores)
  tps, fps, thresholds = _thresholds(y, s)
  precision = tps / np.maximum(tps + fps, 1.0)
  recall = tps / tps[-1] if tps.size and tps[-1] > 0 else np.full_like(tps, np.nan)
  return np.r_[precision, 1.0], np.r_[recall, 0.0], thresholds


def average_precision(labels, scores) -> float:
  y, s = _binary(labels, scores)
  if not y.any():
    return float("nan")
  tps, fps, _ = _thresholds(y, s)
  precision = tps / (tps + fps)
  recall = tps / tps[-1]
  return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def classification_metrics(labels, scores, threshold: float = 0.5) -> dict[str, float]:
  """accuracy (score >= threshold), auroc, average_precision, positive_fraction, n."""
  y, s = _binary(labels, scores)
  return {"accuracy": float(np.mean((s >= threshold) == y)) if y.size else float("nan"),
          "auroc": roc_auc(y, s), "average_precision": average_precision(y, s),
          "positive_fraction": float(y.mean()) if y.size else float("nan"), "n": float(y.size)}


def r2_score(observed, predicted) -> float:
  observed = np.asarray(observed, np.float64).ravel()
  predicted = np.asarray(predicted, np.float64).ravel()
  total = np.sum((observed - observed.mean())**2) if observed.size else 0.0
  if total <= 0:
    return float("nan")
  return float(1.0 - np.sum((observed - predicted)**2) / total)


def regression_metrics(observed, predicted) -> dict[str, float]:
  """pearson, spearman, r2 (coefficient of determination), mse, n."""
  observed = np.asarray(observed, np.float64).ravel()
  predicted = np.asarray(predicted, np.float64).ravel()
  if observed.shape != predicted.shape:
    raise ValueError(f"observed ({observed.size}) and predicted ({predicted.size}) sizes differ")
  return {"pearson": pearsonr(observed, predicted), "spearman": spearmanr(observed, predicted),
          "r2": r2_score(observed, predicted),
          "mse": float(np.mean((observed - predicted)**2)) if observed.size else float("nan"),
          "n": float(observed.size)}


def classification_section(name: str, labels, scores, *, threshold: float = 0.5,
                           class_names: Optional[Sequence[str]] = None, notes: str = "") -> Section:
  """Metrics + ROC and PR curves for binary `labels` [N] or multi-label [N, K] with `scores`
  (probabilities) of the same shape; K > 1 reports each column and their mean."""
  labels = np.asarray(labels, np.float64)
  scores = np.asarray(scores, np.float64)
  if labels.shape != scores.shape:
    raise ValueError(f"labels {labels.shape} and scores {scores.shape} must have the same shape")
  columns = labels.reshape(len(labels), -1) if labels.ndim > 1 else labels[:, None]
  column_scores = scores.reshape(len(scores), -1) if scores.ndim > 1 else scores[:, None]
  k = columns.shape[1]
  names = list(class_names or ([name] if k == 1 else [f"class_{i}" for i in range(k)]))
  rows = [{"class": n, **classification_metrics(columns[:, i], column_scores[:, i], threshold)}
          for i, n in enumerate(names)]
  section = Section(name, notes=notes or (
      f"Binary classification at threshold {threshold}: accuracy, AUROC, average precision."))
  for key in ("accuracy", "auroc", "average_precision"):
    section.metrics[key] = float(np.nanmean([r[key] for r in rows]))
  section.metrics["n"] = float(len(columns))
  if k > 1:
    section.add_table("per_class", rows)
  fig, axes = new_figure(9.0, 4.0, 1, 2)
  for i, n in enumerate(names):
    fpr, tpr, _ = roc_curve(columns[:, i], column_scores[:, i])
    precision, recall, _ = precision_recall_curve(columns[:, i], column_scores[:, i])
    axes[0, 0].plot(fpr, tpr, label=f"{n} (AUROC {rows[i]['auroc']:.3f})")
    axes[0, 1].step(recall, precision, where="post", label=f"{n} (AP {rows[i]['average_precision']:.3f})")
  axes[0, 0].plot([0, 1], [0, 1], "k:", lw=0.8)
  axes[0, 0].set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
  axes[0, 1].set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
  for ax in axes[0]:
    ax.legend(fontsize=7, loc="lower right")
  section.add_figure("roc_pr", fig)
  return section


def scatter_figure(observed, predicted, title: str, xlabel: str = "measured",
                   ylabel: str = "predicted", max_points: int = 20_000):
  """Predicted-vs-observed scatter (a deterministic subsample above `max_points`)."""
  observed = np.asarray(observed, np.float64).ravel()
  predicted = np.asarray(predicted, np.float64).ravel()
  if observed.size > max_points:
    keep = np.linspace(0, observed.size - 1, max_points).astype(int)
    observed, predicted = observed[keep], predicted[keep]
  fig, axes = new_figure(4.5, 4.5)
  ax = axes[0, 0]
  ax.scatter(observed, predicted, s=4, alpha=0.4, linewidths=0)
  if observed.size:
    low = float(min(observed.min(), predicted.min()))
    high = float(max(observed.max(), predicted.max()))
    ax.plot([low, high], [low, high], "k:", lw=0.8)
  ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
  return fig


def regression_section(name: str, observed, predicted, *, target_names: Optional[Sequence[str]] = None,
                       notes: str = "") -> Section:
  """Pearson / Spearman / R² / MSE + a scatter plot per target; `observed` and `predicted`
  are [N] or [N, K] (K targets, each reported, the summary is their mean)."""
  observed = np.asarray(observed, np.float64)
  predicted = np.asarray(predicted, np.float64)
  if observed.shape != predicted.shape:
    raise ValueError(f"observed {observed.shape} and predicted {predicted.shape} must have the same shape")
  obs = observed.reshape(len(observed), -1) if observed.ndim > 1 else observed[:, None]
  pred = predicted.reshape(len(predicted), -1) if predicted.ndim > 1 else predicted[:, None]
  names = list(target_names or ([name] if obs.shape[1] == 1 else
                                [f"target_{i}" for i in range(obs.shape[1])]))
  rows = [{"target": n, **regression_metrics(obs[:, i], pred[:, i])} for i, n in enumerate(names)]
  section = Section(name, notes=notes or "Pearson r, Spearman rho, R² (1 - SS_res/SS_tot) and MSE.")
  for key in ("pearson", "spearman", "r2", "mse"):
    section.metrics[key] = float(np.nanmean([r[key] for r in rows]))
  section.metrics["n"] = float(len(obs))
  if len(rows) > 1:
    section.add_table("per_target", rows)
  for i, n in enumerate(names[:8]):
    section.add_figure(f"scatter_{n}", scatter_figure(
        obs[:, i], pred[:, i], f"{n}: r = {rows[i]['pearson']:.3f}"))
  return section
