"""Batched, deterministic prediction over an evaluation split, under the run's strategy.

    predict_dataset(model, dataset of (inputs, targets), strategy=StrategyInfo | None,
                    predict=fn(inputs) -> {head: tensor})
      -> Predictions(targets {name: [N, ...]}, outputs {head: [N, ...]})

Each example is predicted once, in dataset order; with a distributed strategy every
replica's outputs are gathered (as the trainer's evaluation does).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class Predictions:
  """Targets and model outputs of a whole split, stacked along the first axis."""

  targets: dict[str, np.ndarray]
  outputs: dict[str, np.ndarray]

  def __len__(self) -> int:
    first = next(iter(self.outputs.values()), None)
    return 0 if first is None else len(first)


def _stack(parts: list[dict]) -> dict[str, np.ndarray]:
  if not parts:
    return {}
  return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def predict_dataset(model, dataset: tf.data.Dataset, *, strategy=None,
                    predict: Optional[Callable] = None, progress: bool = True,
                    description: str = "evaluating", collect: bool = True,
                    on_batch: Optional[Callable[[dict, dict, int], None]] = None) -> Predictions:
  """Runs `predict` (default: the model in inference mode) over every batch of `dataset`.

  Args:
    model: a `SequenceModel`.
    dataset: batches of (inputs, {target: tensor}) (inputs may be a dict for multi-input
      models).
    strategy: a `StrategyInfo` (training.strategy) or None for the default device.
    predict: inputs -> {head: tensor}; runs inside a tf.function.
    progress: show a tqdm progress bar.
    collect: keep every batch (False: only `on_batch` sees them; for large track sets).
    on_batch: called with (targets, outputs, offset of the batch's first example) as numpy.
  """
  from tqdm.auto import tqdm
  from tf_seqmodels.analysis.inference import compiled_function, use_xla
  predict = predict or (lambda x: model(x, is_training=False))
  spec = dataset.element_spec
  if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], dict)):
    raise ValueError(f"evaluation data must yield (inputs, {{target: tensor}}) batches, got "
                     f"element_spec {spec}")
  distributed = strategy is not None and strategy.distributed
  if distributed:
    tf_strategy = strategy.strategy

    def gather(structure):
      return tf.nest.map_structure(lambda v: tf_strategy.gather(v, axis=0), structure)

    @tf.function(reduce_retracing=True)
    def step(inputs, targets):
      outputs = tf_strategy.run(lambda x, y: (predict(x), y), args=(inputs, targets))
      return gather(outputs[0]), gather(outputs[1])

    batches = tf_strategy.experimental_distribute_dataset(dataset)
  else:
    compiled = compiled_function(predict, use_xla(model))  # bucketed (analysis.inference)
    step = lambda inputs, targets: (compiled(inputs), targets)  # noqa: E731
    batches = dataset
  cardinality = int(dataset.cardinality())
  total = cardinality if cardinality >= 0 else None
  outputs, targets, seen = [], [], 0
  for inputs, batch_targets in tqdm(batches, total=total, desc=description, disable=not progress,
                                    leave=False):
    batch_outputs, batch_targets = step(inputs, batch_targets)
    batch_outputs = {k: np.asarray(v, np.float32) for k, v in batch_outputs.items()}
    batch_targets = {k: np.asarray(v) for k, v in batch_targets.items()}
    if on_batch is not None:
      on_batch(batch_targets, batch_outputs, seen)
    if collect:
      outputs.append(batch_outputs)
      targets.append(batch_targets)
    seen += len(next(iter(batch_outputs.values())))
  if not seen:
    raise ValueError("the evaluation data produced no examples")
  return Predictions(_stack(targets), _stack(outputs))
