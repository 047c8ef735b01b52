"""DREAM (random promoter) and generic scalar-regression evaluators.

dream_soft_bin: the challenge report — per subset Pearson r, r² and Spearman rho, and the
weighted Pearson and Spearman scores (`tasks.dream.challenge_scores`), from a test table in
challenge order plus the subset CSVs; predictions average the forward and the
reverse-complement inputs, each encoded by the model's `encode_dna` (is_reverse = 0 / 1,
is_singleton = 0), as the reference predictor. Without a test table the run's evaluation
split is scored the same way ("all" only). Without all nine subsets the weighted means are
reported as partial_pearson_score / partial_spearman_score. Scatter plots.

regression: Pearson / Spearman / R² / MSE per target of a `RegressionTask` with scatters.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.evaluation.augmentation import TestTimeAugmentation
from tf_seqmodels.evaluation.context import EvaluationContext
from tf_seqmodels.evaluation.metrics import regression_section, scatter_figure
from tf_seqmodels.evaluation.registry import register_evaluator
from tf_seqmodels.evaluation.report import Report, Section, new_figure


@dataclasses.dataclass(frozen=True)
class DreamEvaluationOptions(Config):
  """Options of the dream_soft_bin evaluator.

  Attributes:
    test_table: the challenge test file (sequence<TAB>measured expression, challenge order);
      null = the run's evaluation split.
    plasmid: plasmid JSON for padding (default: the run's data.options.plasmid).
    subsets: directory of the challenge subset CSVs (`test_subset_ids/`).
    public_leaderboard: directory whose public-leaderboard ids are excluded (as the private
      leaderboard scoring); null = keep all.
    reverse_complement_average: average forward and reverse-complement predictions.
    head: the expression head.
  """

  test_table: Optional[str] = None
  plasmid: Optional[str] = None
  subsets: Optional[str] = None
  public_leaderboard: Optional[str] = None
  reverse_complement_average: bool = True
  head: str = "expression"


def _averaging(options: DreamEvaluationOptions) -> Optional[TestTimeAugmentation]:
  """Forward + reverse complement (no shifts), as the reference predictor; None = forward."""
  return (TestTimeAugmentation(reverse_complement=True, shifts=(0,))
          if options.reverse_complement_average else None)


def _table_predictions(context: EvaluationContext, options: DreamEvaluationOptions):
  from tf_seqmodels.data import dream as D
  from tf_seqmodels.data.encoding import one_hot_encode
  table = D.read_dream_table(options.test_table)
  plasmid_path = options.plasmid or context.data_info.get("data_options", {}).get("plasmid")
  if not plasmid_path:
    raise ConfigError("dream evaluation: give evaluation.options.plasmid (or data.options.plasmid)")
  padded = D.pad_with_plasmid(table.sequences, D.load_plasmid(plasmid_path),
                              context.model.sequence_length or D.DREAM_SEQUENCE_LENGTH)
  # One-hot ACGT with N = 0.25 (the reference predictor), in the model's own encoding.
  one_hot = one_hot_encode(padded, neutral_value=0.25)
  inputs = np.asarray(context.model.encode_dna(tf.constant(one_hot), is_reverse=False), np.float32)
  measured = table.targets["expression"]
  batch = int(context.data_info.get("eval_batch_size", 1024))
  data = tf.data.Dataset.from_tensor_slices((inputs, {"expression": measured})).batch(batch)
  table_context = dataclasses.replace(context, dataset=data, split=options.test_table)
  out = table_context.predict(_averaging(options))
  return measured, np.asarray(out.outputs[options.head], np.float64).reshape(len(measured), -1)[:, 0]


@register_evaluator("dream_soft_bin", DreamEvaluationOptions,
                    "DREAM challenge report: per-subset r, r², rho, Pearson / Spearman scores")
def evaluate_dream(context: EvaluationContext, options: DreamEvaluationOptions) -> Report:
  from tf_seqmodels.data.dream import ChallengeSubsets, load_challenge_subsets, load_public_leaderboard_ids
  from tf_seqmodels.tasks.dream import CHALLENGE_WEIGHTS, challenge_scores, partial_score_subsets
  if options.test_table:
    measured, predicted = _table_predictions(context, options)
    split = options.test_table
  else:
    predictions = context.predict(_averaging(options))
    measured = np.asarray(predictions.targets["expression"], np.float64).reshape(-1)
    predicted = np.asarray(predictions.outputs[options.head], np.float64).reshape(len(measured), -1)[:, 0]
    split = context.split
  subsets = (load_challenge_subsets(options.subsets) if options.subsets
             else ChallengeSubsets(single={}, pairs={}))
  exclude = load_public_leaderboard_ids(options.public_leaderboard) if options.public_leaderboard else None
  scores = challenge_scores(predicted, measured, subsets, exclude=exclude, partial=True)
  names = [k[:-len("/pearson")] for k in scores if k.endswith("/pearson")]
  rows = [{"subset": n, "n": int(scores[f"{n}/n"]), "pearson": scores[f"{n}/pearson"],
           "r2": scores[f"{n}/pearson"]**2, "spearman": scores[f"{n}/spearman"]} for n in names]
  covered = partial_score_subsets(scores)
  complete = len(covered) == len(CHALLENGE_WEIGHTS)
  # Without all nine subsets the weighted means are not the challenge scores: name them so.
  score_names = ("pearson_score", "spearman_score") if complete else (
      "partial_pearson_score", "partial_spearman_score")
  report = Report(f"{context.title}: DREAM challenge ({split})")
  section = report.add_section(Section("challenge", notes=(
      "Pearson r, r² and Spearman rho per test subset (pair subsets score alt - ref "
      "differences); Pearson score = weighted mean of r², Spearman score = weighted mean of rho "
      "(challenge weights)." +
      ("" if complete else
       f" Only the subsets {covered} are present (missing: "
       f"{[n for n in CHALLENGE_WEIGHTS if n not in covered]}), so the scores are reported as "
       f"partial_pearson_score / partial_spearman_score with the weights renormalised over "
       f"those subsets; they are not comparable with challenge scores.") +
      (" Predictions average the forward and reverse-complement strands."
       if options.reverse_complement_average else ""))))
  section.metrics.update({score_names[0]: scores[score_names[0]],
                          score_names[1]: scores[score_names[1]],
                          "pearson": scores["all/pearson"], "r2": scores["all/pearson"]**2,
                          "spearman": scores["all/spearman"], "n": float(len(measured))})
  section.add_table("subsets", rows)
  section.add_figure("scatter_all", scatter_figure(
      measured, predicted, f"all: r = {scores['all/pearson']:.3f}", "measured expression",
      "predicted expression"))
  singles = [n for n in subsets.single if n in names]
  if singles:
    fig, axes = new_figure(3.2 * len(singles), 3.2, 1, len(singles))
    for ax, name in zip(axes[0], singles):
      idx = np.asarray(subsets.single[name], np.int64)
      idx = idx[idx < len(measured)]
      ax.scatter(measured[idx], predicted[idx], s=3, alpha=0.4, linewidths=0)
      ax.set(title=f"{name}: r = {scores[f'{name}/pearson']:.3f}", xlabel="measured")
    axes[0, 0].set_ylabel("predicted")
    section.add_figure("scatter_subsets", fig)
  return report


@dataclasses.dataclass(frozen=True)
class RegressionEvaluationOptions(Config):
  """Options of the regression evaluator (none needed: targets come from the task)."""


@register_evaluator("regression", RegressionEvaluationOptions,
                    "Pearson / Spearman / R² / MSE per target with scatter plots")
def evaluate_regression(context: EvaluationContext, options: RegressionEvaluationOptions) -> Report:
  task = context.task
  predictions = context.predict()
  names = list(task.targets)
  observed = np.stack([np.asarray(predictions.targets[n], np.float64).reshape(-1) for n in names], 1)
  predicted = np.stack([np.asarray(task._prediction(predictions.outputs, n), np.float64).reshape(-1)
                        for n in names], 1)
  report = Report(f"{context.title}: regression ({context.split})")
  report.add_section(regression_section("regression", observed, predicted, target_names=names))
  return report
