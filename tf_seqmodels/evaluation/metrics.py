"""Generic classification and regression report sections (metrics, ROC / PR curves, scatters).

    classification_section(name, labels, scores) / regression_section(name, observed, predicted)
      -> a report Section with plots
    scatter_figure(observed, predicted, title) -> a predicted-vs-observed scatter

The metric functions themselves live in `tasks.metrics` (shared with the tasks' training
metrics, one implementation) and are re-exported here: accuracy counts scores strictly above
the threshold (0.5) as positive; see that module for AUROC, AP and R².
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from tf_seqmodels.evaluation.report import Section, new_figure
from tf_seqmodels.tasks.metrics import (accuracy, average_precision, classification_metrics,  # noqa: F401
                                        precision_recall_curve, r2_score, regression_metrics,
                                        roc_auc, roc_curve)


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
      f"Binary classification: accuracy (positive when the score is above {threshold}), "
      f"AUROC, average precision."))
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
