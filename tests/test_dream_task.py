"""DREAM task pieces: soft labels + KL against the PyTorch fixtures, metrics and challenge scores
against hand-computed values, OneCycle / warm-up schedules against PyTorch's formulas, AdamW
against a hand-computed update, the data readers on the real samples, and bad-input errors."""

import json
import math

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

from tf_seqmodels.config import ConfigError
from tf_seqmodels.data import dream as D
from tf_seqmodels.data.encoding import SequenceError
from tf_seqmodels.tasks.dream import (CHALLENGE_WEIGHTS, DreamSoftBinTask, RegressionTask,
                                      StreamingMSE, StreamingSpearman, challenge_scores,
                                      kl_divergence_loss, mse_loss, pearson_r, rankdata,
                                      spearman_rho)
from tf_seqmodels.training import (Adam, AdamW, Constant, DreamTrainingConfig, LinearWarmup,
                                   OneCycle)

FIXTURE_LOSS = {"cnn": 2.0353, "rnn": 1.9975, "attn": 2.3784}


def _fixture(shared, model):
  # NpzFile loads members lazily: only the small arrays below are read.
  return np.load(shared("fixtures", "dream", f"dream_{model}_seed0.npz"))


# --- soft labels and losses --------------------------------------------------------------------
def test_soft_labels_equal_fixture(shared):
  fixture = _fixture(shared, "cnn")
  probs = D.soft_labels(fixture["y_bins"])
  assert probs.shape == (8, 18) and probs.dtype == np.float32
  np.testing.assert_allclose(probs, fixture["y_probs"], rtol=1e-6, atol=1e-12)


def test_soft_labels_hand_values():
  # y = 1: Normal(1.5, 0.5) split at 1, 2, 3, ... -> Phi(-1), Phi(1)-Phi(-1), Phi(3)-Phi(1), Phi(5)-Phi(3)
  probs = D.soft_labels(np.array([1.0, 0.0, 17.0]))
  np.testing.assert_allclose(probs[0, :4], [0.15865525, 0.68268949, 0.15730535, 0.00134961],
                             rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
  # Expected class index ~ y in the interior; the end bins absorb the tails.
  np.testing.assert_allclose((probs[0] * np.arange(18)).sum(), 1.0, atol=2e-3)
  assert probs[1, 0] == pytest.approx(0.84134475, rel=1e-6)  # Phi(1)
  assert probs[2, 17] == pytest.approx(0.84134475, rel=1e-6)  # 1 - Phi(-1): [17, inf)
  tensor = D.soft_labels(tf.constant([1.0]))
  assert tf.is_tensor(tensor)
  np.testing.assert_allclose(tensor.numpy()[0], probs[0], rtol=1e-6)


@pytest.mark.parametrize("model", ["cnn", "rnn", "attn"])
def test_kl_loss_equals_fixture(shared, model):
  fixture = _fixture(shared, model)
  loss = kl_divergence_loss(fixture["y_probs"], fixture["logits"])
  np.testing.assert_allclose(float(loss), float(fixture["loss"]), rtol=1e-5)
  assert float(fixture["loss"]) == pytest.approx(FIXTURE_LOSS[model], abs=1e-4)


def test_kl_loss_hand_value_and_zero_targets():
  # Row 1: KL([.5, .5, 0] || uniform) = ln 1.5 (0 log 0 = 0); row 2: identical -> 0.
  probs = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], np.float32)
  logits = np.array([[0.0, 0.0, 0.0], np.log([0.2, 0.3, 0.5])], np.float32)
  assert float(kl_divergence_loss(probs, logits)) == pytest.approx(math.log(1.5) / 2, rel=1e-6)
  with pytest.raises(ValueError, match="batch, bins"):
    kl_divergence_loss(probs, logits[:, :2])


def test_mse_loss_hand_value():
  assert float(mse_loss([1.0, 2.0, 3.0], [[1.5], [2.0], [1.0]])) == pytest.approx((0.25 + 4) / 3)
  with pytest.raises(ValueError, match="3 elements"):
    mse_loss([1.0, 2.0, 3.0], [1.0, 2.0])


# --- metric functions ------------------------------------------------------------------------------
def test_pearson_hand_value():
  # dx = [-1.5, -.5, .5, 1.5], dy = [-1.75, .25, 1.25, .25]: r = 3.5 / sqrt(5 * 4.75)
  assert pearson_r([1, 2, 3, 4], [2, 4, 5, 4]) == pytest.approx(3.5 / math.sqrt(23.75), rel=1e-12)
  assert math.isnan(pearson_r([1, 1, 1], [1, 2, 3]))
  assert math.isnan(pearson_r([1], [2]))
  with pytest.raises(ValueError, match="differ in size"):
    pearson_r([1, 2], [1, 2, 3])


def test_rankdata_and_spearman_with_ties():
  np.testing.assert_array_equal(rankdata([10, 20, 20, 5, 20]), [2, 4, 4, 1, 4])
  # ranks x = [1, 2.5, 2.5, 4], y = [1, 3, 2, 4]: rho = 4.5 / sqrt(4.5 * 5)
  assert spearman_rho([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / math.sqrt(22.5), rel=1e-12)
  assert spearman_rho([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)
  assert math.isnan(spearman_rho([1, 2, np.nan], [1, 2, 3]))


def test_streaming_metrics_equal_whole_batch():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=50), rng.normal(size=50)
  select = lambda t, o: (t["y"], o["y"])  # noqa: E731
  spearman, mse = StreamingSpearman(select), StreamingMSE(select)
  for part in (slice(0, 20), slice(20, 50)):
    spearman.update({"y": x[part]}, {"y": y[part]})
    mse.update({"y": x[part]}, {"y": y[part]})
  assert spearman.result() == pytest.approx(spearman_rho(x, y), rel=1e-12)
  assert mse.result() == pytest.approx(np.mean((x - y) ** 2), rel=1e-12)
  spearman.reset()
  assert math.isnan(spearman.result())


# --- tasks -------------------------------------------------------------------------------------
def test_dream_soft_bin_task(shared):
  fixture = _fixture(shared, "cnn")
  task = DreamSoftBinTask()
  assert task.head_names == ("expression", "bin_logits")
  targets = {"expression": fixture["y_bins"], "bin_probs": fixture["y_probs"]}
  outputs = {"expression": fixture["output"], "bin_logits": fixture["logits"]}
  assert float(task.loss(targets, outputs)) == pytest.approx(float(fixture["loss"]), rel=1e-5)
  mse_task = DreamSoftBinTask(loss="mse")
  assert mse_task.head_names == ("expression",)
  assert float(mse_task.loss(targets, outputs)) == pytest.approx(
      np.mean((fixture["y_bins"] - fixture["output"]) ** 2), rel=1e-5)
  metrics = task.make_metrics()
  assert sorted(metrics) == ["mse", "pearson", "spearman"]
  for metric in metrics.values():
    metric.update(targets, outputs)
  assert metrics["pearson"].result() == pytest.approx(
      pearson_r(fixture["y_bins"], fixture["output"]), rel=1e-9)
  with pytest.raises(KeyError, match="target 'bin_probs' not found"):
    task.loss({"expression": fixture["y_bins"]}, outputs)
  with pytest.raises(ValueError, match="'kl' or 'mse'"):
    DreamSoftBinTask(loss="huber")


def test_regression_task_sums_mse_and_averages_metrics():
  task = RegressionTask(["dev", "hk"])
  assert task.head_names == ("dev", "hk")
  targets = {"dev": np.array([0.0, 1.0, 2.0]), "hk": np.array([1.0, 1.0, 4.0])}
  outputs = {"dev": np.array([0.0, 2.0, 2.0]), "hk": np.array([0.0, 1.0, 1.0])}
  # MSE dev = 1/3, hk = (1 + 9)/3; the reference sums the two with weight 1.
  assert float(task.loss(targets, outputs)) == pytest.approx(1 / 3 + 10 / 3, rel=1e-6)
  weighted = RegressionTask({"dev": "dev", "hk": "hk"}, weights={"hk": 0.5})
  assert float(weighted.loss(targets, outputs)) == pytest.approx(1 / 3 + 5 / 3, rel=1e-6)
  metrics = task.make_metrics()
  for metric in metrics.values():
    metric.update(targets, outputs)
  dev_r, hk_r = pearson_r(targets["dev"], outputs["dev"]), pearson_r(targets["hk"], outputs["hk"])
  assert metrics["pearson/dev"].result() == pytest.approx(dev_r)
  assert metrics["pearson"].result() == pytest.approx((dev_r + hk_r) / 2)
  assert metrics["mse"].result() == pytest.approx((1 / 3 + 10 / 3) / 2)
  # A (head, column) spec reads one column of a [B, T] head.
  column = RegressionTask({"hk": ("both", 1)})
  both = {"both": np.stack([outputs["dev"], outputs["hk"]], axis=1)}
  assert float(column.loss(targets, both)) == pytest.approx(10 / 3, rel=1e-6)
  with pytest.raises(ValueError, match="unknown targets"):
    RegressionTask(["dev"], weights={"hk": 1.0})
  with pytest.raises(ValueError, match="name or"):
    RegressionTask({"dev": 3})


# --- challenge scoring ------------------------------------------------------------------------------
def _tiny_challenge():
  """12 test indices; single subsets of 3-4 indices, pair subsets of 3 (alt, ref) pairs."""
  measured = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0])
  predictions = np.array([0.5, 1.0, 2.5, 2.0, 4.0, 6.0, 5.0, 7.5, 8.0, 9.5, 9.0, 12.0])
  single = {"high": np.array([9, 10, 11]), "low": np.array([0, 1, 2]),
            "native": np.array([3, 4, 5]), "random": np.array([4, 6, 7, 8]),
            "challenging": np.array([2, 5, 8])}
  # SNV: measured alt - ref = [1, 2, 3] (indices 1-0, 3-1, 5-2); predicted = [0.5, 1.0, 3.5].
  # Perturbation: measured [4, 4, 2] - ... see the test for the expected values.
  pairs = {"snv": np.array([[1, 0], [3, 1], [5, 2]]),
           "motif_perturbation": np.array([[10, 6], [11, 7], [9, 7]]),
           "motif_tiling": np.array([[4, 0], [8, 0], [6, 3]])}
  return measured, predictions, D.ChallengeSubsets(single=single, pairs=pairs)


def test_challenge_scores_tiny_table():
  measured, predictions, subsets = _tiny_challenge()
  scores = challenge_scores(predictions, measured, subsets)
  # SNV pairs are scored on differences: measured [1, 2, 3], predicted [0.5, 1.0, 3.5].
  snv_r = pearson_r([1, 2, 3], [0.5, 1.0, 3.5])
  assert scores["snv/pearson"] == pytest.approx(snv_r, rel=1e-12)
  assert scores["snv/spearman"] == pytest.approx(1.0)
  # Perturbation: measured [4, 4, 2], predicted [4.0, 4.5, 2.0] -> spearman with a tie.
  assert scores["motif_perturbation/pearson"] == pytest.approx(
      pearson_r([4, 4, 2], [4.0, 4.5, 2.0]), rel=1e-12)
  assert scores["motif_perturbation/spearman"] == pytest.approx(
      pearson_r([2.5, 2.5, 1], [2, 3, 1]), rel=1e-12)
  assert scores["high/pearson"] == pytest.approx(pearson_r([9, 10, 11], [9.5, 9.0, 12.0]))
  assert scores["all/n"] == 12 and scores["random/n"] == 4
  r = {name: scores[f"{name}/pearson"] for name in CHALLENGE_WEIGHTS}
  rho = {name: scores[f"{name}/spearman"] for name in CHALLENGE_WEIGHTS}
  expected_p = (r["all"]**2 + 0.3 * r["high"]**2 + 0.3 * r["low"]**2 + 0.3 * r["native"]**2
                + 0.3 * r["random"]**2 + 0.5 * r["challenging"]**2 + 1.25 * r["snv"]**2
                + 0.3 * r["motif_perturbation"]**2 + 0.4 * r["motif_tiling"]**2) / 4.65
  expected_s = (rho["all"] + 0.3 * rho["high"] + 0.3 * rho["low"] + 0.3 * rho["native"]
                + 0.3 * rho["random"] + 0.5 * rho["challenging"] + 1.25 * rho["snv"]
                + 0.3 * rho["motif_perturbation"] + 0.4 * rho["motif_tiling"]) / 4.65
  assert scores["pearson_score"] == pytest.approx(expected_p, rel=1e-12)
  assert scores["spearman_score"] == pytest.approx(expected_s, rel=1e-12)
  # Perfect predictions score 1 on both.
  perfect = challenge_scores(measured, measured, subsets)
  assert perfect["pearson_score"] == pytest.approx(1.0) and perfect["spearman_score"] == pytest.approx(1.0)


def test_challenge_scores_sign_of_pair_differences_matters():
  measured, _, subsets = _tiny_challenge()
  # Levels track the measurement, but every SNV difference is reversed: r_snv = -1, r^2 = 1.
  predictions = measured.copy()
  predictions[[1, 3, 5]] = [-1.0, -3.0, -1.0]  # alt - ref = [-1, -2, -3] for measured [1, 2, 3]
  scores = challenge_scores(predictions, measured, subsets)
  assert scores["snv/pearson"] == pytest.approx(-1.0)
  assert scores["snv/spearman"] == pytest.approx(-1.0)


def test_challenge_scores_public_leaderboard_exclusion():
  measured, predictions, subsets = _tiny_challenge()
  # Index 2 is public: it leaves "all", low and challenging; the public pair (3, 1) leaves
  # SNV, and its members 3 and 1 leave the single subsets, but pair (5, 2) stays in SNV.
  scores = challenge_scores(predictions, measured, subsets, exclude=([2], [(3, 1)]))
  assert scores["all/n"] == 9
  assert scores["low/n"] == 1 and scores["native/n"] == 2 and scores["challenging/n"] == 2
  assert scores["snv/n"] == 2
  assert scores["snv/pearson"] == pytest.approx(1.0)  # 2 pairs: differences [1, 3] vs [0.5, 3.5]


def test_challenge_scores_missing_subsets():
  measured, predictions, subsets = _tiny_challenge()
  no_snv = D.ChallengeSubsets(single=subsets.single,
                              pairs={k: v for k, v in subsets.pairs.items() if k != "snv"})
  with pytest.raises(ValueError, match=r"\['snv'\] are missing"):
    challenge_scores(predictions, measured, no_snv)
  partial = challenge_scores(predictions, measured, no_snv, partial=True)
  weights = {k: w for k, w in CHALLENGE_WEIGHTS.items() if k != "snv"}
  expected = sum(w * partial[f"{k}/pearson"]**2 for k, w in weights.items()) / sum(weights.values())
  # Renormalised scores are not the challenge's: they carry the partial_ name only.
  assert partial["partial_pearson_score"] == pytest.approx(expected, rel=1e-12)
  assert "pearson_score" not in partial and "spearman_score" not in partial
  assert "partial_pearson_score" not in challenge_scores(predictions, measured, subsets,
                                                         partial=True)
  with pytest.raises(ValueError, match="outside the 5 predictions"):
    challenge_scores(predictions[:5], measured[:5], subsets)


def test_challenge_subsets_from_shared_csvs(shared):
  subsets = D.load_challenge_subsets(shared("data", "dream_yeast", "test_subsets"))
  # Unique indices / pairs, as prixfixe/evaluation.py deduplicates the CSV rows.
  assert {k: len(v) for k, v in subsets.single.items()} == {
      "high": 968, "low": 997, "native": 578, "random": 6349, "challenging": 1953}
  assert {k: len(v) for k, v in subsets.pairs.items()} == {
      "motif_perturbation": 3287, "motif_tiling": 2624}
  assert len(subsets.sequences) == 16746  # the 16,746 unique test indices named by the CSVs
  assert subsets.sequences[590].startswith(D.LEFT_ADAPTER)
  assert (10922 == subsets.pairs["motif_tiling"][:, 1]).any()  # ref of tiling pairs (alt, ref)


def test_public_leaderboard_reader(tmp_path):
  (tmp_path / "high_exp_indices.json").write_text(json.dumps({"44031": 1.5, "25430": 1.2}))
  (tmp_path / "SNVs_exp_indices.json").write_text(json.dumps({"49960,49969": [1.2, 1.2]}))
  singles, pairs = D.load_public_leaderboard_ids(tmp_path)
  assert singles == {44031, 25430} and pairs == {(49960, 49969)}
  with pytest.raises(D.DataFormatError, match="no public-leaderboard"):
    D.load_public_leaderboard_ids(tmp_path / "high_exp_indices.json")


# --- schedules ---------------------------------------------------------------------------------
def test_one_cycle_matches_pytorch_formulas():
  # OneCycleLR(max_lr=5e-3, total_steps=100, pct_start=.3, div_factor=25, final_div_factor=1e4):
  # phase 1 ends at step 0.3*100 - 1 = 29, phase 2 at 99; initial 2e-4, min 2e-8.
  schedule = OneCycle(0.005, 100)
  lr = lambda s: float(schedule(s))  # noqa: E731
  beta1 = lambda s: float(schedule.beta1(s))  # noqa: E731
  assert lr(0) == pytest.approx(2e-4, rel=1e-6) and beta1(0) == pytest.approx(0.95)
  assert lr(29) == pytest.approx(0.005, rel=1e-6) and beta1(29) == pytest.approx(0.85)
  assert lr(99) == pytest.approx(2e-8, rel=1e-5) and beta1(99) == pytest.approx(0.95)
  # step 10: pct = 10/29, cos annealing end + (start - end)/2 (1 + cos(pi pct)).
  assert lr(10) == pytest.approx(0.0014758197423205034, rel=1e-6)
  assert beta1(10) == pytest.approx(0.9234204220349895, rel=1e-6)
  # step 64: pct = (64 - 29)/70 = 1/2 -> midpoints.
  assert lr(64) == pytest.approx((0.005 + 2e-8) / 2, rel=1e-6)
  assert beta1(64) == pytest.approx(0.9, rel=1e-6)
  assert lr(80) == pytest.approx(0.000855169764537978, rel=1e-5)
  assert beta1(80) == pytest.approx(0.9328969362969856, rel=1e-6)
  assert lr(150) == pytest.approx(2e-8, rel=1e-5)  # held past the end (PyTorch raises)
  # Phase-1 midpoint: total 210 -> phase 1 ends at 62, its midpoint is step 31.
  assert float(OneCycle(0.005, 210)(31)) == pytest.approx((0.005 + 2e-4) / 2, rel=1e-6)


def test_one_cycle_variants_and_errors():
  linear = OneCycle(1.0, 100, div_factor=10, anneal_strategy="linear")
  assert float(linear(14.5)) == pytest.approx(0.55, rel=1e-6)  # halfway 0.1 -> 1.0
  three = OneCycle(1.0, 100, div_factor=10, final_div_factor=10, three_phase=True)
  # three_phase: up to step 29, back down to initial at 58, then to min at 99.
  assert float(three(29)) == pytest.approx(1.0) and float(three(58)) == pytest.approx(0.1)
  assert float(three(99)) == pytest.approx(0.01, rel=1e-5)
  assert float(three.beta1(58)) == pytest.approx(0.95)
  assert OneCycle.from_epochs(0.005, 80, 1000).total_steps == 80_000
  with pytest.raises(ValueError, match="positive integer"):
    OneCycle(0.005, 0)
  with pytest.raises(ValueError, match="too small"):
    OneCycle(0.005, 3)
  with pytest.raises(ValueError, match="cycle_momentum=False"):
    OneCycle(0.005, 100, cycle_momentum=False).beta1(0)


def test_one_cycle_in_tf_function():
  schedule = OneCycle(0.005, 100)
  step = tf.Variable(0, dtype=tf.int64)
  fn = tf.function(lambda: (schedule(step), schedule.beta1(step)))
  step.assign(64)
  lr, beta1 = fn()
  assert float(lr) == pytest.approx(0.0025, rel=1e-5) and float(beta1) == pytest.approx(0.9)


def test_linear_warmup_and_constant():
  warmup = LinearWarmup(5e-4, 5000)  # Enformer
  assert float(warmup(0)) == 0.0
  assert float(warmup(2500)) == pytest.approx(2.5e-4)
  assert float(warmup(5000)) == pytest.approx(5e-4)
  assert float(warmup(10**6)) == pytest.approx(5e-4)
  assert float(Constant(0.1)(123)) == pytest.approx(0.1)


# --- optimizers --------------------------------------------------------------------------------
def test_adamw_first_step_hand_computed():
  p = tf.Variable([1.0, -2.0])
  opt = AdamW(learning_rate=0.1, weight_decay=0.01)
  opt.apply([tf.constant([0.5, 0.1])], [p])
  # decay: p *= 1 - 0.1*0.01; m = 0.1 g, v = 0.001 g^2; m_hat/sqrt(v_hat) = g/|g| -> step 0.1.
  expected = np.array([1.0 * 0.999 - 0.1 * 0.5 / (0.5 + 1e-8),
                       -2.0 * 0.999 - 0.1 * 0.1 / (0.1 + 1e-8)])
  np.testing.assert_allclose(p.numpy(), expected, rtol=1e-6)
  np.testing.assert_allclose(p.numpy(), [0.899, -2.098], atol=1e-6)
  assert int(opt.step) == 1
  np.testing.assert_allclose(opt.m[0].numpy(), [0.05, 0.01], rtol=1e-6)
  np.testing.assert_allclose(opt.v[0].numpy(), [0.00025, 0.00001], rtol=1e-5)


def _torch_adamw_reference(p, grads, lrs, beta1s, beta2=0.999, eps=1e-8, wd=0.01):
  """torch.optim.AdamW's update in numpy float64."""
  m, v = np.zeros_like(p), np.zeros_like(p)
  for t, (g, lr, b1) in enumerate(zip(grads, lrs, beta1s), start=1):
    p = p * (1 - lr * wd)
    m = b1 * m + (1 - b1) * g
    v = beta2 * v + (1 - beta2) * g * g
    denom = np.sqrt(v) / np.sqrt(1 - beta2**t) + eps
    p = p - lr / (1 - b1**t) * m / denom
  return p


def test_adamw_with_one_cycle_in_tf_function():
  rng = np.random.default_rng(0)
  grads = [rng.normal(size=(3, 2)).astype(np.float32) for _ in range(5)]
  schedule = OneCycle(0.01, 10)
  p = tf.Variable(np.ones((3, 2), np.float32))
  opt = AdamW(learning_rate=schedule, beta1=schedule.beta1)
  opt.apply([tf.constant(grads[0])], [p])  # eager first step creates the slots
  step = tf.function(lambda g: opt.apply([g], [p]))
  for g in grads[1:]:
    step(tf.constant(g))
  lrs = [float(schedule(s)) for s in range(5)]
  beta1s = [float(schedule.beta1(s)) for s in range(5)]
  expected = _torch_adamw_reference(np.ones((3, 2)), [g.astype(np.float64) for g in grads], lrs, beta1s)
  np.testing.assert_allclose(p.numpy(), expected, rtol=2e-5)
  assert float(opt.current_learning_rate()) == pytest.approx(float(schedule(5)))


def test_adam_equals_sonnet_adam():
  rng = np.random.default_rng(1)
  grads = [rng.normal(size=(4,)).astype(np.float32) for _ in range(4)]
  ours, theirs = tf.Variable(np.ones(4, np.float32)), tf.Variable(np.ones(4, np.float32))
  opt, ref = Adam(learning_rate=0.01), snt.optimizers.Adam(learning_rate=0.01)
  for g in grads:
    opt.apply([tf.constant(g)], [ours])
    ref.apply([tf.constant(g)], [theirs])
  np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


def test_optimizer_errors():
  p = tf.Variable([1.0])
  opt = AdamW()
  with pytest.raises(ValueError, match="every update is None"):
    opt.apply([None], [p])
  with pytest.raises(ValueError, match="1 parameters"):
    opt.apply([], [p])
  opt.build([p])
  assert len(opt.m) == 1
  with pytest.raises(ValueError, match="built for 1 parameters"):
    opt.apply([tf.constant([1.0, 2.0])], [tf.Variable([1.0, 2.0])])
  with pytest.raises(ValueError, match="weight_decay"):
    AdamW(weight_decay=-1.0)


# --- training recipe config -------------------------------------------------------------------
def test_dream_training_config_round_trip(tmp_path):
  config = DreamTrainingConfig()
  assert (config.batch_size, config.epochs, config.max_learning_rate, config.weight_decay,
          config.select_best_by) == (1024, 80, 0.005, 0.01, "pearson")
  attn = DreamTrainingConfig.for_model("dream_attn", epochs=2)
  assert attn.max_learning_rate == 0.001 and attn.epochs == 2
  for suffix in ("json", "yaml"):
    path = tmp_path / f"recipe.{suffix}"
    attn.save(path)
    assert DreamTrainingConfig.load(path) == attn
  assert DreamTrainingConfig.from_dict({"steps_per_epoch": 1000}).steps_per_epoch == 1000
  with pytest.raises(ConfigError, match="unknown key"):
    DreamTrainingConfig.from_dict({"max_lr": 0.1})
  with pytest.raises(ConfigError, match="pct_start"):
    DreamTrainingConfig(pct_start=1.5)
  with pytest.raises(ConfigError, match="no DREAM recipe"):
    DreamTrainingConfig.for_model("enformer")
  # 6,369 rows doubled by reverse complements at batch 1024 -> 13 batches per epoch.
  assert config.epoch_steps(6369) == 13
  opt = config.make_optimizer(steps_per_epoch=13)
  assert float(opt.current_learning_rate()) == pytest.approx(2e-4, rel=1e-6)
  assert float(opt.beta1(0)) == pytest.approx(0.95)
  assert opt.learning_rate.total_steps == 80 * 13


# --- data readers on the shared samples ------------------------------------------------------------
def test_read_dream_table_and_plasmid_padding(shared):
  table = D.read_dream_table(shared("data", "dream_yeast", "demo_train.txt"))
  assert len(table) == 6370 and table.fold is None
  assert table.targets["expression"][0] == pytest.approx(15.1823836007871)
  assert table.targets["expression"][1] == 12.0
  np.testing.assert_array_equal(D.is_singleton(table.targets["expression"][:3]), [False, True, True])
  plasmid = D.load_plasmid(shared("data", "dream_yeast", "plasmid.json"))
  insert = plasmid.find("N" * 80)
  assert plasmid[insert - 17:insert] == D.LEFT_ADAPTER  # why padding keeps the adapter
  seq = table.sequences[0]
  assert len(seq) == 110
  padded = D.pad_with_plasmid([seq, seq[:-10]], plasmid)
  assert [len(s) for s in padded] == [150, 150]
  # 40 (50) nt of plasmid upstream of the adapter, then the whole original sequence.
  assert padded[0] == plasmid[insert - 57:insert - 17] + seq
  assert padded[1] == plasmid[insert - 67:insert - 17] + seq[:-10]


def test_dream_dataset_channels_and_reverse_complement_doubling(shared):
  table = D.read_dream_table(shared("data", "dream_yeast", "demo_train.txt")).select(np.arange(6))
  plasmid = D.load_plasmid(shared("data", "dream_yeast", "plasmid.json"))
  padded = D.pad_with_plasmid(table.sequences, plasmid)
  batches = list(D.dream_dataset(table, plasmid, batch_size=5, seed=3))
  assert [int(x.shape[0]) for x, _ in batches] == [5, 5, 2]  # 2N examples per epoch
  inputs = np.concatenate([x.numpy() for x, _ in batches])
  expression = np.concatenate([y["expression"].numpy() for _, y in batches])
  probs = np.concatenate([y["bin_probs"].numpy() for _, y in batches])
  assert inputs.shape == (12, 150, 6) and probs.shape == (12, 18)
  np.testing.assert_allclose(probs, D.soft_labels(expression), rtol=1e-6)
  rev = inputs[:, 0, 4]
  assert rev.sum() == 6 and np.all(inputs[:, :, 4] == rev[:, None])
  np.testing.assert_array_equal(inputs[:, 0, 5], D.is_singleton(expression))
  decoded = ["".join("AGCTN"[i] if v else "N" for i, v in zip(row.argmax(1), row.max(1)))
             for row in inputs[:, :, :4]]
  rc = lambda s: s.translate(str.maketrans("ACGTN", "TGCAN"))[::-1]  # noqa: E731
  # Every padded sequence appears once as given (rev 0) and once reverse-complemented (rev 1),
  # each carrying its own measured bin.
  value_of = dict(zip(padded, table.targets["expression"]))
  forward = [seq for seq, r in zip(decoded, rev) if not r]
  backward = [rc(seq) for seq, r in zip(decoded, rev) if r]
  assert sorted(forward) == sorted(backward) == sorted(padded)
  for seq, is_rev, value in zip(decoded, rev, expression):
    assert value_of[rc(seq) if is_rev else seq] == value
  # Same seed, same order; the next epoch reshuffles.
  again = np.concatenate([y["expression"].numpy() for _, y in D.dream_dataset(
      table, plasmid, batch_size=5, seed=3)])
  np.testing.assert_array_equal(again, expression)
  dataset = D.dream_dataset(table, plasmid, batch_size=12, seed=3)
  first, second = [next(iter(dataset))[1]["expression"].numpy() for _ in range(2)]
  assert not np.array_equal(first, second)
  plain = next(iter(D.dream_dataset(table, plasmid, 6, shuffle=False, reverse_complement="none",
                                    singleton_channel=False, soft_label_targets=False)))
  assert plain[0].shape == (6, 150, 5) and sorted(plain[1]) == ["expression"]
  np.testing.assert_array_equal(plain[1]["expression"], table.targets["expression"])


def test_dream_one_hot_layout():
  x = D.dream_one_hot(["AGCTN", "TTNAA"], is_reverse=[0, 1], is_singleton=1.0)
  assert x.shape == (2, 5, 6) and x.dtype == np.float32
  np.testing.assert_array_equal(x[0, :, :4], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0],
                                              [0, 0, 0, 1], [0, 0, 0, 0]])
  np.testing.assert_array_equal(x[:, :, 4], [[0] * 5, [1] * 5])
  assert np.all(x[..., 5] == 1)
  assert D.dream_one_hot(["ACGT"], is_singleton=None).shape == (1, 4, 5)
  assert D.dream_one_hot(["ACGT"], is_reverse=None, is_singleton=None).shape == (1, 4, 4)
  np.testing.assert_array_equal(D.reverse_complement_indices(D.encode_indices(["AGCTN"])),
                                D.encode_indices(["NAGCT"]))


def test_dream_test_inputs_and_rc_average(shared):
  plasmid = D.load_plasmid(shared("data", "dream_yeast", "plasmid.json"))
  seq = D.LEFT_ADAPTER + "ACGTN" * 16 + D.RIGHT_ADAPTER
  forward, reverse = D.dream_test_inputs([seq], plasmid)
  assert forward.shape == reverse.shape == (1, 150, 6)
  assert np.all(forward[..., 4] == 0) and np.all(reverse[..., 4] == 1)
  assert np.all(forward[..., 5] == 0) and np.all(reverse[..., 5] == 0)
  bases = forward[0, :, :4].max(axis=1) == 1.0  # N rows are 0.25 in every channel
  assert (~bases).sum() == 16 and np.all(forward[0, ~bases, :4] == 0.25)
  np.testing.assert_array_equal(reverse[..., :4], forward[:, ::-1, 3::-1])  # AGCT: complement = flip

  class Toy(snt.Module):  # expression = mean of channel 0 (A): differs between strands
    def __call__(self, x, is_training):
      return {"expression": tf.reduce_mean(x[..., 0], axis=1)}

  average = D.predict_rc_average(Toy(), forward, reverse)
  expected = (forward[..., 0].mean(1) + reverse[..., 0].mean(1)) / 2
  np.testing.assert_allclose(average, expected, rtol=1e-6)


def test_deepstarr_and_lentimpra_readers(shared):
  deepstarr = D.read_deepstarr_table(shared("data", "deepstarr_sample", "sample_train.txt"))
  assert len(deepstarr) == 1000 and sorted(deepstarr.targets) == ["dev", "hk"]
  assert deepstarr.ids[1] == "chrX_20638201_20638449_-_negative" and deepstarr.is_reverse[1]
  assert not deepstarr.is_reverse[0]
  assert deepstarr.targets["dev"][0] == pytest.approx(0.0029580836399493)
  assert deepstarr.targets["hk"][0] == pytest.approx(-1.64088967459238)
  x, y = next(iter(D.regression_dataset(deepstarr.select(np.arange(4)), 4, shuffle=False)))
  assert x.shape == (4, 249, 5) and sorted(y) == ["dev", "hk"]
  np.testing.assert_array_equal(x[:, 0, 4], deepstarr.is_reverse[:4])
  lenti = D.read_lentimpra_table(shared("data", "lentimpra_sample", "sample_train.txt"))
  assert len(lenti) == 1000 and lenti.ids[0] == "seq22915_Reversed:" and lenti.is_reverse[0]
  assert lenti.targets["activity"][0] == pytest.approx(-0.551) and lenti.fold[0] == 0
  assert set(np.unique(lenti.fold)) == set(range(10))
  x, y = next(iter(D.regression_dataset(lenti, 8, seed=0, reverse_complement="random")))
  assert x.shape == (8, 230, 5) and sorted(y) == ["activity"]


# --- bad inputs --------------------------------------------------------------------------------
def test_bad_dream_files(tmp_path):
  path = tmp_path / "t.txt"
  with pytest.raises(FileNotFoundError, match="not found"):
    D.read_dream_table(path)
  path.write_text("")
  with pytest.raises(D.DataFormatError, match="empty"):
    D.read_dream_table(path)
  path.write_text("ACGT\t1.0\nACGT\t2.0\t3\t4\n")
  with pytest.raises(D.DataFormatError, match="malformed"):
    D.read_dream_table(path)
  path.write_text("ACGT\t1.0\t0\nACGT\t2.0\n")
  with pytest.raises(D.DataFormatError, match="line 2: column 3 is empty"):
    D.read_dream_table(path)
  path.write_text("ACGT\t1.0\nACGT\tabc\n")
  with pytest.raises(D.DataFormatError, match="line 2: column 'expression' must be a finite number"):
    D.read_dream_table(path)
  path.write_text("ACGT\t1.0\nACXT\t2.0\n")
  with pytest.raises(SequenceError, match="'X' at position 2 of the sequence on line 2"):
    D.read_dream_table(path)
  path.write_text("ACGT\t1.0\nACÅ\t2.0\n")
  with pytest.raises(SequenceError, match="'Å' at position 2 of the sequence on line 2"):
    D.read_dream_table(path)
  path.write_text("ACGT\t1.0\t0.5\n")
  with pytest.raises(D.DataFormatError, match="must be an integer"):
    D.read_dream_table(path)


def test_bad_tables_plasmids_and_arguments(tmp_path, shared):
  path = tmp_path / "d.txt"
  path.write_text("ID\tSequence\tDev_log2_enrichment\nx\tACGT\t1.0\n")
  with pytest.raises(D.DataFormatError, match=r"missing column\(s\) \['Hk_log2_enrichment'\]"):
    D.read_deepstarr_table(path)
  path.write_text("seq_id\tseq\tmean_value\na\tACGT\t1.0\nb\tACG\t2.0\n")
  with pytest.raises(SequenceError, match="line 2: sequence has length 4, expected 230"):
    D.read_lentimpra_table(path)
  assert len(D.read_lentimpra_table(path, sequence_length=None)) == 2
  plasmid_path = tmp_path / "p.json"
  plasmid_path.write_text(json.dumps({"seq": "ACGT"}))
  with pytest.raises(D.DataFormatError, match="JSON string"):
    D.load_plasmid(plasmid_path)
  with pytest.raises(D.DataFormatError, match="80-N insert"):
    D.plasmid_flank("ACGT" * 100)
  with pytest.raises(D.DataFormatError, match="only 10 nt upstream"):
    D.plasmid_flank("A" * 10 + "N" * 80)
  plasmid = D.load_plasmid(shared("data", "dream_yeast", "plasmid.json"))
  with pytest.raises(SequenceError, match="17-nt left adapter"):
    D.pad_with_plasmid(["ACGT"], plasmid)
  table = D.SequenceTable(sequences=("ACGT",), targets={"activity": np.zeros(1, np.float32)})
  with pytest.raises(ValueError, match="reverse_complement must be one of"):
    D.regression_dataset(table, reverse_complement="both")
  with pytest.raises(ValueError, match="batch_size must be positive"):
    D.regression_dataset(table, batch_size=0)
  with pytest.raises(D.DataFormatError, match="no 'expression' target"):
    D.dream_dataset(table, plasmid)
  with pytest.raises(D.DataFormatError, match=r"shape \(2,\), expected \(1,\)"):
    D.SequenceTable(sequences=("ACGT",), targets={"a": np.zeros(2)})
  with pytest.raises(SequenceError, match="length 3, expected 4"):
    D.encode_indices(["ACGT", "ACG"])
