"""Chromoformer evaluator (`task.type: chromoformer`).

classification  accuracy, AUROC and average precision of P(expressed above the median), with
                ROC and precision-recall curves (the reference's metrics).
regression      Pearson r, Spearman rho, R² and MSE of log2(RPKM + 1), with a scatter plot.
interactions    how much the 3D part matters: every prediction is repeated with all pCREs
                removed (pcre_present = 0, their bins masked); reports the mean absolute change
                and the metric without pCREs, per number of pCREs of the gene.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from tf_seqmodels.config import Config
from tf_seqmodels.evaluation.context import EvaluationContext
from tf_seqmodels.evaluation.metrics import classification_section, regression_section
from tf_seqmodels.evaluation.predict import predict_dataset
from tf_seqmodels.evaluation.registry import register_evaluator
from tf_seqmodels.evaluation.report import Report, Section
from tf_seqmodels.tasks.chromoformer import (EXPRESSION_HEAD, EXPRESSION_TARGET, LABEL_TARGET,
                                             LOGITS_HEAD, expressed_probability)
from tf_seqmodels.tasks.metrics import r2_score, roc_auc


_NUM_PCRES = "__num_pcres"  # an extra output of the prediction pass (not a model head)


@dataclasses.dataclass(frozen=True)
class ChromoformerEvaluationOptions(Config):
  """threshold: accuracy counts a gene as expressed when P(expressed) > threshold (0.5: the
  argmax, as the training metric); interaction_ablation: also predict without pCREs (doubles
  the prediction time)."""

  threshold: float = 0.5
  interaction_ablation: bool = True


def _without_pcres(inputs, targets):
  inputs = dict(inputs)
  for name in list(inputs):
    if name == "pcre_present" or name.startswith("pcre_mask_"):
      inputs[name] = tf.zeros_like(inputs[name])
  return inputs, targets


def _prediction(outputs, classification: bool) -> np.ndarray:
  if classification:
    return expressed_probability(outputs[LOGITS_HEAD])
  return np.asarray(outputs[EXPRESSION_HEAD], np.float64).reshape(-1)


@register_evaluator("chromoformer", ChromoformerEvaluationOptions,
                    "accuracy / AUROC / AP or r / R², ROC-PR curves, pCRE ablation")
def evaluate_chromoformer(context: EvaluationContext,
                          options: ChromoformerEvaluationOptions) -> Report:
  classification = getattr(context.task, "mode", "classification") == "classification"
  model = context.model

  def predict(inputs):
    # The genes' pCRE counts ride along with the outputs: one pass over the data gives both.
    return {**model(inputs, is_training=False),
            _NUM_PCRES: tf.reduce_sum(tf.cast(inputs["pcre_present"], tf.float32), axis=1)}

  predictions = predict_dataset(model, context.dataset, strategy=context.strategy,
                                predict=predict, progress=context.progress,
                                description=f"evaluating {context.split}")
  counts = np.rint(predictions.outputs.pop(_NUM_PCRES)).astype(np.int64)
  predicted = _prediction(predictions.outputs, classification)
  report = Report(f"{context.title}: Chromoformer ({context.split})")
  if classification:
    observed = np.asarray(predictions.targets[LABEL_TARGET]).reshape(-1)
    report.add_section(classification_section(
        "expressed", observed, predicted, threshold=options.threshold,
        notes="P(expression >= the median) vs the label: accuracy, AUROC, average precision."))
  else:
    observed = np.asarray(predictions.targets[EXPRESSION_TARGET], np.float64).reshape(-1)
    report.add_section(regression_section("log2_expression", observed, predicted))
  if not options.interaction_ablation:
    return report

  ablated = predict_dataset(context.model, context.dataset.map(_without_pcres),
                            strategy=context.strategy, progress=context.progress,
                            description="evaluating without pCREs")
  without = _prediction(ablated.outputs, classification)
  score = roc_auc if classification else r2_score
  metric = "auroc" if classification else "r2"
  section = report.add_section(Section("interactions", notes=(
      "Predictions repeated with every pCRE removed: mean |change| of the prediction and the "
      f"{metric} without pCREs, overall and by the gene's number of pCREs.")))
  section.metrics.update({"mean_abs_change": float(np.mean(np.abs(predicted - without))),
                          f"{metric}_without_pcres": float(score(observed, without)),
                          metric: float(score(observed, predicted))})
  rows = []
  for k in np.unique(counts):
    rows.append({"num_pcres": int(k), "genes": int(np.sum(counts == k)),
                 "mean_abs_change": float(np.mean(np.abs(predicted - without)[counts == k]))})
  section.add_table("by_num_pcres", rows)
  return report
