"""ChromBPNet task: losses (vs the reference fixtures and a direct formula), the counts-loss
weight, and the evaluation metrics."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tf_seqmodels.data.chrombpnet import counts_loss_weight
from tf_seqmodels.tasks.chrombpnet import (ChromBPNetTask, CountsMetric, ProfileJSDMetric,
                                           jensen_shannon_distance, multinomial_nll, profile_jsd,
                                           rankdata, softmax_np, spearmanr)


def direct_mnll(counts, logits):
  """-log Multinomial(counts | n, softmax(logits)) with math.lgamma, one example."""
  logp = logits - np.log(np.sum(np.exp(logits - logits.max()))) - logits.max()
  n = counts.sum()
  return -(math.lgamma(n + 1) - sum(math.lgamma(c + 1) for c in counts) + float(counts @ logp))


def test_losses_match_reference_fixture(shared):
  out = dict(np.load(shared("fixtures", "chrombpnet", "outputs.npz")))
  task = ChromBPNetTask(counts_loss_weight=1.0)
  targets = {"profile": tf.constant(out["y_profile"])}  # logcounts derived: log(1 + sum)
  for name in ("bias", "nobias", "chrombpnet"):
    outputs = {"profile": tf.constant(out[f"{name}_logits"]),
               "logcounts": tf.constant(out[f"{name}_logcounts"])}
    terms = task.loss_terms(targets, outputs)
    for term in ("mnll", "mse", "total"):
      expected = float(out[f"loss_{name}_{term}"])
      assert abs(float(terms[term]) - expected) / abs(expected) < 1e-5, (name, term)
    assert float(task.loss(targets, outputs)) == pytest.approx(float(terms["total"]))
  np.testing.assert_allclose(np.log1p(out["y_profile"].sum(-1, keepdims=True)), out["y_logcounts"],
                             rtol=1e-6)


def test_multinomial_nll_formula_and_weighting():
  rng = np.random.default_rng(0)
  counts = rng.poisson(2.0, (3, 50)).astype(np.float32)
  logits = rng.normal(size=(3, 50)).astype(np.float32)
  per_example = multinomial_nll(tf.constant(counts), tf.constant(logits)).numpy()
  np.testing.assert_allclose(per_example, [direct_mnll(c.astype(np.float64), l.astype(np.float64))
                                           for c, l in zip(counts, logits)], rtol=1e-5)
  # Shift-invariant in the logits; zero counts cost nothing.
  np.testing.assert_allclose(multinomial_nll(counts, logits + 7.0), per_example, rtol=1e-5)
  assert float(multinomial_nll(np.zeros((1, 50), np.float32), logits[:1])[0]) == 0.0

  targets = {"profile": tf.constant(counts), "logcounts": tf.constant([[1.0], [2.0], [3.0]])}
  outputs = {"profile": tf.constant(logits), "logcounts": tf.constant([[1.5], [2.0], [2.0]])}
  terms = ChromBPNetTask(counts_loss_weight=4.0).loss_terms(targets, outputs)
  assert float(terms["mnll"]) == pytest.approx(per_example.mean(), rel=1e-6)
  assert float(terms["mse"]) == pytest.approx((0.25 + 0 + 1.0) / 3, rel=1e-6)
  assert float(terms["total"]) == pytest.approx(per_example.mean() + 4.0 * 1.25 / 3, rel=1e-6)
  with pytest.raises(ValueError, match="profile targets have 40 positions, the model predicts 50"):
    ChromBPNetTask().loss({"profile": tf.zeros([3, 40])}, outputs)
  with pytest.raises(ValueError, match="counts_loss_weight"):
    ChromBPNetTask(counts_loss_weight=-1.0)


def test_counts_loss_weight_from_data():
  assert counts_loss_weight([100, 300, 500]) == pytest.approx(30.0)
  assert counts_loss_weight([1, 2, 3, 40]) == 1.0  # median 2.5 / 10 < 1: floored
  task = ChromBPNetTask.from_total_counts(np.array([200.0, 220.0]))
  assert task.counts_loss_weight == pytest.approx(21.0)
  with pytest.raises(ValueError, match="no regions"):
    counts_loss_weight([])


def reference_jsd(p, q):
  """scipy.spatial.distance.jensenshannon (natural log), written out for one pair."""
  p = p / p.sum()
  q = q / q.sum()
  m = (p + q) / 2
  kl = lambda a, b: sum(x * math.log(x / y) for x, y in zip(a, b) if x > 0)
  return math.sqrt((kl(p, m) + kl(q, m)) / 2)


def test_jsd_and_normalised_jsd():
  rng = np.random.default_rng(1)
  observed = rng.poisson(1.0, (4, 30)).astype(np.float64)
  observed[3] = 0.0  # an empty profile: NaN, skipped by the medians
  logits = rng.normal(size=(4, 30))
  probs = softmax_np(logits)
  jsd, norm = profile_jsd(observed, probs)
  for i in range(3):
    expected = reference_jsd(observed[i] / (observed[i].sum() + 0.001), probs[i])
    assert jsd[i] == pytest.approx(expected)
    uniform = reference_jsd(observed[i], np.ones(30))
    assert norm[i] == pytest.approx(min(max((jsd[i] - uniform) / -uniform, 0.0), 1.0))
  assert np.isnan(jsd[3]) and np.isnan(norm[3])
  # Perfect prediction: distance 0, normalised 1; a uniform prediction: normalised 0.
  truth = observed[:3] / observed[:3].sum(-1, keepdims=True)
  jsd_perfect, norm_perfect = profile_jsd(observed[:3], truth)
  np.testing.assert_allclose(jsd_perfect, 0.0, atol=1e-6)
  np.testing.assert_allclose(norm_perfect, 1.0)
  _, norm_uniform = profile_jsd(observed[:3], np.full((3, 30), 1 / 30))
  np.testing.assert_allclose(norm_uniform, 0.0, atol=1e-6)
  disjoint = jensen_shannon_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
  assert disjoint == pytest.approx(math.sqrt(math.log(2)))


def test_rank_correlation_with_ties():
  np.testing.assert_array_equal(rankdata([10, 20, 20, 5]), [2, 3.5, 3.5, 1])
  assert spearmanr([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
  assert spearmanr([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
  # Pearson of the average ranks (scipy's definition): ranks [1, 2.5, 2.5, 4] vs [1, 2, 3, 4].
  x = np.array([1, 2.5, 2.5, 4]) - 2.5
  assert spearmanr([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx((x @ (np.arange(4) - 1.5)) /
                                                                 np.sqrt((x @ x) * 5.0))


def test_metrics_by_subset_stream_over_batches():
  rng = np.random.default_rng(2)
  n = 40
  counts = rng.poisson(3.0, (n, 20)).astype(np.float32)
  logcounts = np.log1p(counts.sum(-1, keepdims=True))
  predicted = logcounts + rng.normal(0, 0.05, (n, 1))
  logits = rng.normal(size=(n, 20))
  is_peak = (np.arange(n) % 3 == 0).astype(np.float32)
  metrics = ChromBPNetTask().make_metrics()
  assert set(metrics) >= {"counts_pearsonr_peaks", "counts_spearmanr_nonpeaks", "counts_mse_all",
                          "profile_median_jsd_peaks", "profile_median_norm_jsd_all"}
  for start in range(0, n, 16):
    sl = slice(start, start + 16)
    targets = {"profile": counts[sl], "is_peak": is_peak[sl]}
    outputs = {"profile": logits[sl], "logcounts": predicted[sl]}
    for metric in metrics.values():
      metric.update(targets, outputs)
  peaks = is_peak.astype(bool)
  obs, pred = logcounts[:, 0], predicted[:, 0]
  # Observed log counts are computed in float32 from the profile: compare at 1e-5.
  close = lambda value: pytest.approx(value, rel=1e-5)
  assert metrics["counts_pearsonr_peaks"].result() == close(
      np.corrcoef(obs[peaks], pred[peaks])[0, 1])
  assert metrics["counts_pearsonr_all"].result() == close(np.corrcoef(obs, pred)[0, 1])
  assert metrics["counts_pearsonr_all"].result() > 0.5
  assert metrics["counts_spearmanr_nonpeaks"].result() == close(
      np.corrcoef(rankdata(obs[~peaks]), rankdata(pred[~peaks]))[0, 1])
  assert metrics["counts_mse_nonpeaks"].result() == close(np.mean((obs - pred)[~peaks] ** 2))
  jsd, norm = profile_jsd(counts, softmax_np(logits))
  assert metrics["profile_median_jsd_peaks"].result() == pytest.approx(np.median(jsd[peaks]))
  assert metrics["profile_median_norm_jsd_all"].result() == pytest.approx(np.median(norm))
  # Without is_peak the subsets are unknowable (NaN), "all" still works; reset empties.
  metric = CountsMetric("pearsonr", "peaks")
  metric.update({"profile": counts}, {"logcounts": predicted})
  assert math.isnan(metric.result())
  jsd_metric = ProfileJSDMetric(False, "all")
  jsd_metric.update({"profile": counts}, {"profile": logits})
  assert jsd_metric.result() == pytest.approx(np.median(jsd))
  jsd_metric.reset()
  assert math.isnan(jsd_metric.result())
  with pytest.raises(ValueError, match="subset"):
    CountsMetric("pearsonr", "everything")
