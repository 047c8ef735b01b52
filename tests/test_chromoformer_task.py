"""Chromoformer task: losses and exact classification / regression metrics (hand-computed)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tf_seqmodels.tasks.chromoformer import (ChromoformerTask, average_precision,
                                             precision_recall_curve, r2_score, roc_auc,
                                             roc_curve)


def test_auroc_and_ap_match_hand_computations():
  labels, scores = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
  assert roc_auc(labels, scores) == pytest.approx(0.75)  # 3 of 4 pairs ordered
  # thresholds 0.8 (P 1, R .5), 0.4 (P .5), 0.35 (P 2/3, R 1): .5 x 1 + .5 x 2/3
  assert average_precision(labels, scores) == pytest.approx(0.5 + 0.5 * 2 / 3)
  # Ties: a tied positive / negative pair counts 1/2; tied scores are one threshold.
  labels, scores = [1, 0, 1, 0], [0.5, 0.5, 0.9, 0.1]
  assert roc_auc(labels, scores) == pytest.approx(3.5 / 4)
  assert average_precision(labels, scores) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
  assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))
  fpr, tpr, thresholds = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
  np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
  np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
  np.testing.assert_allclose(thresholds, [np.inf, 0.8, 0.4, 0.35, 0.1])
  assert np.trapezoid(tpr, fpr) == pytest.approx(0.75)
  precision, recall, _ = precision_recall_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
  np.testing.assert_allclose(recall, [0.5, 0.5, 1, 1, 0])  # then scikit-learn's (R 0, P 1)
  np.testing.assert_allclose(precision, [1, 0.5, 2 / 3, 0.5, 1])
  with pytest.raises(ValueError, match="labels must be 0 or 1"):
    roc_auc([0, 2], [0.1, 0.2])


def test_auroc_equals_the_pairwise_definition_on_random_data():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, 200)
  scores = np.round(rng.random(200), 1)  # many ties
  pos, neg = scores[labels == 1], scores[labels == 0]
  pairwise = ((pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None])).mean()
  assert roc_auc(labels, scores) == pytest.approx(pairwise)


def test_classification_loss_and_streaming_metrics():
  task = ChromoformerTask("classification")
  logits = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, -1.0]], np.float32)
  labels = np.array([1, 0, 1, 1], np.int32)
  loss = float(task.loss({"label": tf.constant(labels)}, {"logits": tf.constant(logits)}))
  expected = np.mean([math.log(2), math.log1p(math.exp(-2)), math.log1p(math.exp(-1)),
                      math.log1p(math.exp(2))])
  assert loss == pytest.approx(expected, rel=1e-6)
  metrics = task.make_metrics()
  for rows in (slice(0, 2), slice(2, 4)):  # two batches, gathered exactly
    for m in metrics.values():
      m.update({"label": labels[rows]}, {"logits": logits[rows]})
  prob = 1 / (1 + np.exp(logits[:, 0] - logits[:, 1]))  # [.5, .12, .73, .12]
  assert metrics["accuracy"].result() == pytest.approx(np.mean((prob > 0.5) == labels))
  assert metrics["auroc"].result() == pytest.approx(roc_auc(labels, prob))
  # Negative (p .12) ties with a positive: the positives .73, .5, .12 vs the negative .12.
  assert metrics["auroc"].result() == pytest.approx((1 + 1 + 0.5) / 3)
  assert metrics["ap"].result() == pytest.approx(average_precision(labels, prob))


def test_regression_loss_and_metrics():
  task = ChromoformerTask("regression")
  observed = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
  predicted = np.array([1.0, 2.0, 3.0, 5.0], np.float32)
  loss = float(task.loss({"expression": observed}, {"expression": predicted}))
  assert loss == pytest.approx(0.25)
  assert r2_score(observed, predicted) == pytest.approx(1 - 1 / 5)
  metrics = task.make_metrics()
  for rows in (slice(0, 3), slice(3, 4)):
    for m in metrics.values():
      m.update({"expression": observed[rows]}, {"expression": predicted[rows]})
  assert metrics["r2"].result() == pytest.approx(0.8)
  assert metrics["pearson"].result() == pytest.approx(np.corrcoef(observed, predicted)[0, 1])
  assert metrics["mse"].result() == pytest.approx(0.25)
  with pytest.raises(ValueError, match="mode"):
    ChromoformerTask("ranking")


def test_training_metrics_and_the_evaluation_report_share_one_accuracy_rule():
  from tf_seqmodels.evaluation import metrics as evaluation_metrics
  from tf_seqmodels.evaluation.metrics import classification_section
  from tf_seqmodels.tasks import chromoformer, metrics
  # One implementation: the task and the evaluation use the same functions.
  for name in ("roc_auc", "average_precision", "roc_curve", "precision_recall_curve", "r2_score"):
    assert getattr(chromoformer, name) is getattr(metrics, name) is getattr(evaluation_metrics, name)
  # Equal logits give P = 0.5 exactly: class 0 (argmax), in training and in the report alike.
  logits = np.array([[0.0, 0.0], [1.0, -1.0], [-1.0, 2.0]], np.float32)
  labels = np.array([0, 0, 1])
  task_metric = ChromoformerTask("classification").make_metrics()["accuracy"]
  task_metric.update({"label": labels}, {"logits": logits})
  probability = chromoformer.expressed_probability(logits)
  assert probability[0] == 0.5
  assert task_metric.result() == pytest.approx(1.0)
  assert evaluation_metrics.classification_metrics(labels, probability)["accuracy"] == 1.0
  section = classification_section("expressed", labels, probability)
  assert section.metrics["accuracy"] == 1.0  # ">= 0.5" would give 2/3
  assert metrics.accuracy(labels, [0.5, 0.2, 0.4], threshold=0.3) == pytest.approx(2 / 3)


def test_evaluator_counts_pcres_in_the_prediction_pass():
  """Two passes over the data (predictions, pCRE ablation), not a third to count pCREs."""
  from tf_seqmodels.data.chromoformer import ChromoformerDataConfig, synthetic_examples
  from tf_seqmodels.evaluation import EvaluationContext, evaluator_options, get_evaluator
  from tf_seqmodels.models.chromoformer import ChromoformerConfig
  config = ChromoformerConfig(bin_sizes=(1000, 500), window_size=2000, max_pcres=2)
  data = synthetic_examples(12, ChromoformerDataConfig.from_model_config(config), seed=1)
  batches = list(data.dataset(5))
  passes = []

  def generate():
    passes.append(1)
    yield from batches

  class CountingModel:
    """logits [0, number of present pCREs]: P(expressed) = sigmoid(count)."""
    takes_dna_sequence = False

    def __call__(self, inputs, is_training):
      count = tf.reduce_sum(tf.cast(inputs["pcre_present"], tf.float32), axis=1)
      return {"logits": tf.stack([tf.zeros_like(count), count], axis=1)}

  dataset = tf.data.Dataset.from_generator(generate, output_signature=data.dataset(5).element_spec)
  context = EvaluationContext(CountingModel(), ChromoformerTask("classification"), dataset,
                              progress=False)
  report = get_evaluator("chromoformer").evaluate(context, evaluator_options("chromoformer"))
  assert len(passes) == 2
  counts = data.inputs["pcre_present"].sum(1).astype(int)
  assert len(np.unique(counts)) > 1
  rows = report.section("interactions").tables["by_num_pcres"]
  # Without pCREs P = 0.5: the change of a gene with k pCREs is sigmoid(k) - 0.5.
  assert [(r["num_pcres"], r["genes"]) for r in rows] == [
      (int(k), int((counts == k).sum())) for k in np.unique(counts)]
  np.testing.assert_allclose([r["mean_abs_change"] for r in rows],
                             [1 / (1 + np.exp(-k)) - 0.5 for k in np.unique(counts)], rtol=1e-6)
  assert "__num_pcres" not in report.metrics
