"""What an evaluator receives: the trained model, its task and one evaluation split."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import tensorflow as tf

from tf_seqmodels.evaluation.augmentation import TestTimeAugmentation, augmented_predict
from tf_seqmodels.evaluation.predict import Predictions, predict_dataset


@dataclasses.dataclass
class EvaluationContext:
  """Inputs of an evaluator.

  Attributes:
    model: the trained `SequenceModel` (only its contract is used).
    task: the run's `Task` (or None when evaluating bare predictions).
    dataset: the split's batches of (inputs, {target: tensor}), in a fixed order.
    split: the split's name ("valid", "test", ...).
    strategy: a `StrategyInfo` (prediction is distributed under it) or None.
    data_info: the data builder's extras (track names, windows, ...); "track_permutations"
      ({head: strand-pair permutation [T]}) makes test-time augmentation swap strand pairs.
    title: report title prefix (model name, run).
    progress: show progress bars.
  """

  model: Any
  task: Any
  dataset: tf.data.Dataset
  split: str = "valid"
  strategy: Any = None
  data_info: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  title: str = "evaluation"
  progress: bool = True

  def predict(self, augmentation: Optional[TestTimeAugmentation] = None,
              positional_axes: Optional[Mapping[str, int]] = None, collect: bool = True,
              on_batch=None) -> Predictions:
    """Targets and (optionally test-time-augmented) outputs of the whole split (see
    `predict_dataset` for `collect` and `on_batch`)."""
    axes = dict(positional_axes or {})
    model = self.model
    perms = self.data_info.get("track_permutations") or {}
    return predict_dataset(model, self.dataset, strategy=self.strategy,
                           predict=lambda x: augmented_predict(model, x, augmentation, axes, perms),
                           progress=self.progress, description=f"evaluating {self.split}",
                           collect=collect, on_batch=on_batch)
