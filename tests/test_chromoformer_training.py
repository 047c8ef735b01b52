"""Chromoformer through the common trainer and `tf-seqmodels train`: it learns the synthetic
rule, including its interaction-dependent part."""

import json

import numpy as np
import pytest
import tensorflow as tf
import yaml

from tf_seqmodels.data.chromoformer import ChromoformerDataConfig, synthetic_examples
from tf_seqmodels.models.chromoformer import Chromoformer, ChromoformerConfig
from tf_seqmodels.tasks.chromoformer import ChromoformerTask, expressed_probability, roc_auc
from tf_seqmodels.training.optimizers import AdamW
from tf_seqmodels.training.trainer import Trainer, TrainerConfig

SMALL = ChromoformerConfig(bin_sizes=(1000, 500, 250), window_size=2000, max_pcres=2,
                           channels=16, embedding_hidden=16, pairwise_layers=1,
                           pairwise_hidden=16, regulation_layers=1, regulation_heads=2,
                           regulation_attention_size=16, regulation_hidden=16, head_hidden=16)


def _without_pcre(inputs, slot):
  ablated = {k: v.copy() for k, v in inputs.items()}
  ablated["pcre_present"][:, slot] = 0.0
  for size in SMALL.bin_sizes:
    ablated[f"pcre_mask_{size}"][:, slot] = 0.0
  return ablated


def test_learns_the_synthetic_rule_and_its_interaction_part(tmp_path):
  data = synthetic_examples(640, ChromoformerDataConfig.from_model_config(SMALL), seed=0)
  train, valid = data.fold(1)  # 480 / 160 genes
  model = Chromoformer(SMALL)
  trainer = Trainer(model, ChromoformerTask("classification"), AdamW(learning_rate=3e-3),
                    config=TrainerConfig(epochs=4, progress=False, seed=0))
  history = trainer.fit(train.dataset(32, shuffle=True), valid.dataset(160))
  assert history["loss"][-1] < history["loss"][0]
  assert history["val_auroc"][-1] > 0.9

  logits = model.predict_on_batch(valid.inputs)["logits"].numpy()
  assert roc_auc(valid.targets["label"], expressed_probability(logits)) == pytest.approx(
      history["val_auroc"][-1], abs=1e-6)
  # Ablating the interacting pCRE lowers P(expressed) where it is an active enhancer, and
  # much less where it is present but inactive.
  before = expressed_probability(logits)
  after = expressed_probability(
      model.predict_on_batch(_without_pcre(valid.inputs, 0))["logits"].numpy())
  active = valid.active_enhancer == 1
  inactive = (valid.inputs["pcre_present"][:, 0] == 1) & ~active
  drop_active = float(np.mean(before[active] - after[active]))
  drop_inactive = float(np.mean(before[inactive] - after[inactive]))
  assert drop_active > 0.3, (drop_active, drop_inactive)
  assert drop_active > drop_inactive + 0.2, (drop_active, drop_inactive)

  # The evaluator reports the same AUROC, curves, and the pCRE ablation.
  from tf_seqmodels.evaluation import EvaluationContext, evaluator_options, get_evaluator
  context = EvaluationContext(model, trainer.tasks["train"], valid.dataset(64), progress=False)
  report = get_evaluator("chromoformer").evaluate(context, evaluator_options("chromoformer"))
  metrics = report.metrics
  assert metrics["expressed/auroc"] == pytest.approx(history["val_auroc"][-1], abs=1e-6)
  assert metrics["interactions/mean_abs_change"] > 0.05
  report.write(str(tmp_path / "report"))
  assert (tmp_path / "report" / "expressed_roc_pr.png").exists()


def test_train_command_with_a_config_file(tmp_path):
  from tf_seqmodels.cli import main
  run_dir = tmp_path / "run"
  config = {
      "model": {"name": "chromoformer", "demo": True, "config": {"mode": "regression"}},
      "task": {"type": "chromoformer"},
      "data": {"type": "chromoformer", "batch_size": 16,
               "options": {"source": "synthetic", "examples": 64, "fold": 2}},
      "optimizer": {"name": "adamw", "learning_rate": 3e-5, "schedule": "step_decay",
                    "decay_rate": 0.87},
      "trainer": {"epochs": 2, "progress": False, "select_best_by": "pearson",
                  "tensorboard": False},
      "run_dir": str(run_dir),
  }
  path = tmp_path / "run.yaml"
  path.write_text(yaml.safe_dump(config))
  assert main(["train", "--config", str(path)]) in (0, None)
  records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
  valid = [r for r in records if r["split"] == "valid"]
  assert len(valid) == 2 and {"pearson", "r2", "mse", "loss"} <= set(valid[-1])
  train = [r for r in records if r["split"] == "train"]
  # 48 training genes / 16 = 3 steps per epoch; StepLR x 0.87 per epoch: after 2 epochs the
  # next update's rate is 3e-5 x 0.87^2.
  assert train[-1]["step"] == 6
  assert train[-1]["learning_rate"] == pytest.approx(3e-5 * 0.87**2, rel=1e-5)


def test_step_decay_schedule_matches_steplr():
  from tf_seqmodels.training.schedules import StepDecay
  schedule = StepDecay(3e-5, 0.87, 10)
  values = [float(schedule(tf.constant(s))) for s in (0, 9, 10, 25)]
  np.testing.assert_allclose(values, [3e-5, 3e-5, 3e-5 * 0.87, 3e-5 * 0.87**2], rtol=1e-6)


def test_reference_recipe_config():
  from tf_seqmodels.training.chromoformer_recipe import chromoformer_train_config
  config = chromoformer_train_config({"source": "reference", "metadata": "meta.csv",
                                      "npy_dir": "npy"}, fold=2, mode="regression")
  assert (config.data.batch_size, config.trainer.epochs, config.trainer.seed) == (64, 10, 123)
  assert config.data.options["fold"] == 2 and config.task.options == {"mode": "regression"}
  assert config.trainer.select_best_by == "pearson"
  optimizer = config.optimizer.make(total_steps=100, steps_per_epoch=10)
  rates = [float(optimizer.learning_rate(s)) for s in (0, 10, 95)]
  np.testing.assert_allclose(rates, [3e-5, 3e-5 * 0.87, 3e-5 * 0.87**9], rtol=1e-6)
