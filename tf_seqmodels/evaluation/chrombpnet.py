"""ChromBPNet-style (profile + counts) evaluator, as the reference's `chrombpnet` metrics.

  counts    Pearson r, Spearman rho and MSE between observed log(1 + total counts) and the
            predicted log counts, on peaks, non-peaks and all regions (`is_peak` targets).
  profile   median Jensen-Shannon distance between the observed and predicted (softmax)
            profiles and the median normalised JSD (1 = perfect, 0 = no better than uniform).
  plots     counts scatter; observed vs predicted (softmax x exp(logcounts)) profiles of the
            top peaks by observed counts.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from tf_seqmodels.config import Config
from tf_seqmodels.evaluation.augmentation import TestTimeAugmentation
from tf_seqmodels.evaluation.context import EvaluationContext
from tf_seqmodels.evaluation.metrics import scatter_figure
from tf_seqmodels.evaluation.registry import register_evaluator
from tf_seqmodels.evaluation.report import Report, Section, new_figure
from tf_seqmodels.models.bpnet import COUNTS_HEAD, PROFILE_HEAD
from tf_seqmodels.tasks.chrombpnet import (SUBSETS, CountsMetric, ProfileJSDMetric, pearsonr,
                                           softmax_np, subset_mask, target_logcounts)


@dataclasses.dataclass(frozen=True)
class ChromBPNetEvaluationOptions(Config):
  """Options of the chrombpnet evaluator.

  Attributes:
    augmentation: test-time augmentation (reverse complement flips the profile back).
    top_peaks: number of top peaks (by observed counts) whose profiles are plotted.
  """

  augmentation: Optional[TestTimeAugmentation] = None
  top_peaks: int = 4


@register_evaluator("chrombpnet", ChromBPNetEvaluationOptions,
                    "counts Pearson / Spearman / MSE and profile JSD on peaks, non-peaks, all")
def evaluate_chrombpnet(context: EvaluationContext, options: ChromBPNetEvaluationOptions) -> Report:
  predictions = context.predict(options.augmentation, positional_axes={PROFILE_HEAD: 1})
  targets, outputs = predictions.targets, predictions.outputs
  observed_profile = np.asarray(targets[PROFILE_HEAD], np.float64)
  n = len(observed_profile)
  observed_profile = observed_profile.reshape(n, -1)
  observed = np.asarray(target_logcounts(targets), np.float64).reshape(-1)
  predicted = np.asarray(outputs[COUNTS_HEAD], np.float64).reshape(-1)
  probs = softmax_np(np.asarray(outputs[PROFILE_HEAD], np.float64).reshape(n, -1))
  is_peak = subset_mask(targets, "peaks", n)
  # The numbers are the training metrics' (tasks.chrombpnet), over the whole split at once.
  flat = ({**targets, PROFILE_HEAD: observed_profile},
          {**outputs, PROFILE_HEAD: np.asarray(outputs[PROFILE_HEAD]).reshape(n, -1)})

  def result(metric):
    metric.update(*flat)
    return metric.result()

  report = Report(f"{context.title}: ChromBPNet ({context.split})")
  counts = report.add_section(Section("counts", notes=(
      "Observed log(1 + total counts) vs predicted log counts, per region subset.")))
  profile = report.add_section(Section("profile", notes=(
      "Median Jensen-Shannon distance (observed counts / (total + 0.001) vs softmax of the "
      "predicted logits; lower is better) and median normalised JSD (1 = perfect, 0 = uniform).")))
  count_rows, profile_rows = [], []
  for subset in SUBSETS:
    mask = subset_mask(targets, subset, n)
    if mask is None or not mask.any():
      continue
    row = {"subset": subset, "n": int(mask.sum()),
           "pearson": result(CountsMetric("pearsonr", subset)),
           "spearman": result(CountsMetric("spearmanr", subset)),
           "mse": result(CountsMetric("mse", subset))}
    count_rows.append(row)
    counts.metrics.update({f"{k}/{subset}": row[k] for k in ("pearson", "spearman", "mse")})
    prow = {"subset": subset, "n": int(mask.sum()),
            "median_jsd": result(ProfileJSDMetric(False, subset)),
            "median_norm_jsd": result(ProfileJSDMetric(True, subset))}
    profile_rows.append(prow)
    profile.metrics.update({f"median_jsd/{subset}": prow["median_jsd"],
                            f"median_norm_jsd/{subset}": prow["median_norm_jsd"]})
  counts.add_table("subsets", count_rows)
  profile.add_table("subsets", profile_rows)
  counts.add_figure("scatter", scatter_figure(observed, predicted,
                                              f"log counts: r = {pearsonr(observed, predicted):.3f}",
                                              "observed log(1 + counts)", "predicted log counts"))
  pool = np.flatnonzero(is_peak) if is_peak is not None and is_peak.any() else np.arange(n)
  top = pool[np.argsort(-observed[pool], kind="mergesort")][:max(0, options.top_peaks)]
  if top.size:
    expected = probs[top] * np.exp(predicted[top])[:, None]
    fig, axes = new_figure(8.0, 1.6 * top.size + 0.4, top.size, 1, sharex=True)
    for ax, i, values in zip(axes[:, 0], top, expected):
      ax.fill_between(np.arange(observed_profile.shape[1]), observed_profile[i], step="mid",
                      color="0.6", label="observed")
      ax.plot(values, color="C3", lw=0.9, label="predicted")
      ax.set_ylabel(f"region {i}", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("position (bp)")
    profile.add_figure("top_peaks", fig)
  return report
