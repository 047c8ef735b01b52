"""Chromoformer's training recipe (dohlee/chromoformer `configs/default.yaml`, `train.py`).

    AdamW (lr 3e-5, PyTorch's weight decay 0.01), batch 64, StepLR x 0.87 per epoch,
    10 epochs (the reference's loop `range(1, num_epoch)` actually runs 9), seed 123,
    4-fold cross-validation over chromosome groups (fold k validates on group k).

    config = chromoformer_train_config({"source": "bigwig", "genes": "genes.tsv", ...},
                                       fold=1, run_dir="runs/chromoformer_fold1")
    run_training(config)     # or save it and run `tf-seqmodels train --config`
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Optional

REFERENCE_LEARNING_RATE = 3e-5
REFERENCE_BATCH_SIZE = 64
REFERENCE_DECAY_RATE = 0.87
REFERENCE_EPOCHS = 10
REFERENCE_SEED = 123


def chromoformer_train_config(data_options: Mapping[str, Any], *, fold: Optional[int] = 1,
                              mode: Literal["classification", "regression"] = "classification",
                              run_dir: str = "runs/chromoformer",
                              model_config: Optional[Mapping[str, Any]] = None,
                              **trainer_overrides):
  """A TrainConfig for the reference recipe on `data_options` (ChromoformerBuilderOptions)."""
  from tf_seqmodels.training.run_config import TrainConfig
  select = "auroc" if mode == "classification" else "pearson"
  return TrainConfig.from_dict({
      "model": {"name": "chromoformer", "config": {"mode": mode, **dict(model_config or {})}},
      "task": {"type": "chromoformer", "options": {"mode": mode}},
      "data": {"type": "chromoformer", "batch_size": REFERENCE_BATCH_SIZE,
               "options": {**dict(data_options), "fold": fold, "seed": REFERENCE_SEED}},
      "optimizer": {"name": "adamw", "learning_rate": REFERENCE_LEARNING_RATE,
                    "weight_decay": 0.01, "schedule": "step_decay",
                    "decay_rate": REFERENCE_DECAY_RATE},
      "trainer": {"epochs": REFERENCE_EPOCHS, "seed": REFERENCE_SEED,
                  "select_best_by": select, **trainer_overrides},
      "run_dir": run_dir,
  }, where="chromoformer recipe")
