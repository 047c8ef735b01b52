"""A minimal single-device training loop over the model and task contracts.

    history = fit(model, task, train_data, optimizer=AdamW(...), epochs=80,
                  validation_data=valid_data, select_best_by="pearson", checkpoint_dir="run/")
    metrics = evaluate(model, task, test_data)

Datasets yield `(inputs [B, L, C], {target name: tensor})`. The train step is a tf.function;
lazily created model variables and optimizer slots are created before it is traced (a
symbolic build of the model and `optimizer.build`; an eager first step for optimizers
without `build`, see `TrainStep`). A NaN/Inf loss stops training with `FloatingPointError` before the bad
update is applied. The best checkpoint (by a validation metric) is written with
`tf.train.Checkpoint` into a fresh directory and published by atomically rewriting
`best.json`, so a reader never sees a half-written best checkpoint.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import tempfile
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import sonnet as snt
import tensorflow as tf
import tqdm

from tf_seqmodels.config import apply_default_permissions, atomic_write_text
from tf_seqmodels.tasks.base import Task

BEST_POINTER = "best.json"
_NONFINITE_MARKER = "tf_seqmodels: non-finite training loss"
_LOWER_IS_BETTER = ("loss", "mse", "mae", "rmse")


def _selection(select_best_by: str) -> tuple[str, bool]:
  """'pearson' -> ('pearson', maximise); 'mse' / 'loss' -> minimise; 'min:'/'max:' prefixes force."""
  if select_best_by.startswith(("min:", "max:")):
    return select_best_by[4:], select_best_by.startswith("max:")
  base = select_best_by.split("/")[0]
  return select_best_by, base not in _LOWER_IS_BETTER


def _numpy_dict(tensors) -> dict[str, np.ndarray]:
  return {k: v.numpy() if tf.is_tensor(v) else np.asarray(v) for k, v in tensors.items()}


def _check_element(element) -> tuple:
  if not (isinstance(element, (tuple, list)) and len(element) == 2 and isinstance(element[1], dict)):
    raise ValueError("dataset elements must be (inputs, {target name: tensor}) pairs, got "
                     f"{type(element).__name__}")
  return element[0], element[1]


def make_eval_fn(model, task: Task) -> Callable:
  """tf.function: (inputs, targets) -> (outputs dict, scalar loss), with is_training=False."""

  def eval_step(inputs, targets):
    outputs = model(inputs, is_training=False)
    return outputs, task.loss(targets, outputs)

  return tf.function(eval_step, reduce_retracing=True)


def _evaluate(eval_fn: Callable, task: Task, data: tf.data.Dataset) -> dict[str, float]:
  metrics = task.make_metrics()
  total, count = 0.0, 0
  for element in data:
    inputs, targets = _check_element(element)
    outputs, loss = eval_fn(inputs, targets)
    batch = int(tf.shape(inputs)[0])
    total += float(loss) * batch
    count += batch
    targets_np, outputs_np = _numpy_dict(targets), _numpy_dict(outputs)
    for metric in metrics.values():
      metric.update(targets_np, outputs_np)
  if count == 0:
    raise ValueError("evaluation data produced no batches")
  result = {"loss": total / count}
  result.update({name: float(metric.result()) for name, metric in metrics.items()})
  return result


def evaluate(model, task: Task, data: tf.data.Dataset) -> dict[str, float]:
  """Mean task loss (weighted by batch size) and the task's metrics over `data`.

  Returns:
    {"loss": float, <metric name>: float for each of task.make_metrics()}.
  """
  return _evaluate(make_eval_fn(model, task), task, data)


def _trainable_variables(model) -> list[tf.Variable]:
  # Sonnet modules raise (rather than return []) before their variables exist.
  try:
    return list(model.trainable_variables)
  except ValueError:
    return []


class TrainStep:
  """One gradient step of `model` on `task`: forward (is_training=True), loss, gradients,
  `optimizer.apply`, returning the loss (a NaN/Inf loss fails the step before any update).

  Call it as `train_step(inputs, targets)`. Everything stateful is created before the step is
  traced: on the first call the model's variables come from a symbolic trace of the training
  forward pass (`snt.build`, no computation), and the optimizer's slots from its
  `build(variables)`. An eager first step would do the same but holds every eager
  intermediate at once (1.8x the compiled step's peak memory for DREAM-CNN); it remains the
  fallback for optimizers without `build` (e.g. `snt.optimizers.Adam`).

  Attributes:
    step: the eager step function; `compiled`: its tf.function.
    variables: the trained variables (model.trainable_variables unless given).
  """

  def __init__(self, model, task: Task, optimizer, variables: Optional[Sequence[tf.Variable]]):
    self.model, self.task, self.optimizer = model, task, optimizer
    self.variables = list(variables) if variables is not None else None
    self.compiled = tf.function(self.step, reduce_retracing=True)
    self._ready = False

  def _prepare(self, inputs) -> bool:
    """Creates variables and slots; True when the compiled step can run straight away."""
    if self.variables is None:
      ensure_built = getattr(self.model, "ensure_built", None)
      if ensure_built is not None:
        # Contract models know when they are complete: some (Enformer's attention biases)
        # create a few variables eagerly, so "has variables" does not mean "built".
        ensure_built()
      elif not _trainable_variables(self.model):
        spec = tf.TensorSpec([None, *inputs.shape[1:]], inputs.dtype)
        snt.build(lambda x: self.model(x, is_training=True), spec)
      self.variables = _trainable_variables(self.model)
      if not self.variables:
        raise ValueError("the model has no trainable variables")
    build = getattr(self.optimizer, "build", None)
    if build is None:
      return False
    build(self.variables)
    return True

  def __call__(self, inputs, targets) -> tf.Tensor:
    if not self._ready:
      compiled = self._prepare(inputs)
      self._ready = True
      if not compiled:
        return self.step(inputs, targets)
    return self.compiled(inputs, targets)

  def step(self, inputs, targets) -> tf.Tensor:
    with tf.GradientTape() as tape:
      outputs = self.model(inputs, is_training=True)
      loss = self.task.loss(targets, outputs)
    if self.variables is None:
      self.variables = _trainable_variables(self.model)
      if not self.variables:
        raise ValueError("the model has no trainable variables")
    gradients = tape.gradient(loss, self.variables)
    checked = tf.debugging.check_numerics(loss, _NONFINITE_MARKER)
    # Every op of the update (weight decay included) waits for the check, so a bad loss
    # never reaches the parameters; eagerly the check raises before the update runs.
    with tf.control_dependencies([checked]):
      self.optimizer.apply(gradients, self.variables)
    return checked


def _write_best(checkpoint_dir: str, checkpoint: tf.train.Checkpoint, info: dict) -> str:
  """Writes a complete checkpoint into a new directory, then repoints best.json at it."""
  os.makedirs(checkpoint_dir, exist_ok=True)
  directory = tempfile.mkdtemp(dir=checkpoint_dir, prefix=f"best-epoch{info['epoch']:04d}-")
  apply_default_permissions(directory)
  prefix = checkpoint.write(os.path.join(directory, "ckpt"))
  relative = os.path.relpath(prefix, checkpoint_dir)
  atomic_write_text(os.path.join(checkpoint_dir, BEST_POINTER),
                    json.dumps({**info, "path": relative}, indent=2))
  # Only now are older best checkpoints (and leftovers of interrupted runs) unreferenced.
  keep = os.path.basename(directory)
  for entry in os.listdir(checkpoint_dir):
    if entry.startswith("best-epoch") and entry != keep:
      shutil.rmtree(os.path.join(checkpoint_dir, entry), ignore_errors=True)
  return prefix


def restore_best(model, checkpoint_dir: str, optimizer=None) -> dict[str, Any]:
  """Restores the checkpoint named by `checkpoint_dir/best.json` into `model` (and `optimizer`).

  Works before the model's variables exist (restoration is deferred until they are created).
  Returns the pointer's metadata: epoch, metric, value, path.
  """
  pointer = os.path.join(checkpoint_dir, BEST_POINTER)
  if not os.path.exists(pointer):
    raise FileNotFoundError(f"no best checkpoint recorded in {checkpoint_dir} ({BEST_POINTER} missing)")
  with open(pointer) as f:
    info = json.load(f)
  objects = {"model": model}
  if optimizer is not None:
    objects["optimizer"] = optimizer
  status = tf.train.Checkpoint(**objects).read(os.path.join(checkpoint_dir, info["path"]))
  status.expect_partial()  # optimizer slots are in the file even when not restored
  return info


def fit(model, task: Task, train_data: tf.data.Dataset, *, optimizer, epochs: int = 1,
        steps_per_epoch: Optional[int] = None,
        validation_data: Optional[tf.data.Dataset] = None,
        variables: Optional[Sequence[tf.Variable]] = None,
        select_best_by: Optional[str] = None, checkpoint_dir: Optional[str] = None,
        progress: bool = True) -> dict[str, Any]:
  """Trains `model` on `task` for `epochs` epochs on one device.

  Args:
    model: a model honouring the contract: model(inputs, is_training) -> {head: tensor}.
    task: loss(targets, outputs) -> scalar and make_metrics().
    train_data: dataset of (inputs [B, L, C], {target: tensor}).
    optimizer: anything with `apply(gradients, variables)` (e.g. `training.AdamW`); its
      schedules advance with its own step counter, one per batch.
    epochs: number of epochs.
    steps_per_epoch: batches per epoch, drawn from `train_data.repeat()` so an epoch may
      span a dataset boundary (the reference's `batch_per_epoch`); None = one full pass.
    validation_data: evaluated after every epoch (`evaluate`); its results are recorded
      with a `val_` prefix.
    variables: the variables to train (default: model.trainable_variables, created by a
      symbolic build when the model has none yet); pass a subset to freeze the rest (e.g. a
      fixed bias model).
    select_best_by: validation metric that picks the best epoch, e.g. "pearson" (higher is
      better) or "mse"/"loss" (lower is better); force with "max:" / "min:" prefixes.
    checkpoint_dir: where the best checkpoint (model + optimizer) goes (needs
      select_best_by); restore it with `restore_best`.
    progress: show a tqdm progress bar per epoch.

  Returns:
    {"loss": [mean train loss per epoch], "val_<metric>": [per epoch] (with validation
    data), "epoch_time": [seconds per epoch], "steps": total updates, "best_epoch": 1-based
    epoch or None, "best_value": float or None, "best_checkpoint": checkpoint prefix or None}.

  Raises:
    FloatingPointError: the training loss became NaN/Inf (that update is not applied).
    ValueError: inconsistent arguments or empty data.
  """
  if epochs < 1:
    raise ValueError(f"epochs must be >= 1, got {epochs}")
  if steps_per_epoch is not None and steps_per_epoch < 1:
    raise ValueError(f"steps_per_epoch must be >= 1 or None, got {steps_per_epoch}")
  if select_best_by is not None and validation_data is None:
    raise ValueError("select_best_by needs validation_data")
  if checkpoint_dir is not None and select_best_by is None:
    raise ValueError("checkpoint_dir is given but select_best_by is not: name the validation "
                     "metric that picks the best checkpoint (e.g. select_best_by='pearson')")
  metric, maximise = _selection(select_best_by) if select_best_by else (None, True)
  if metric is not None:
    names = ["loss", *task.make_metrics()]
    if metric not in names:
      raise KeyError(f"select_best_by metric {metric!r} is not among the validation results "
                     f"{sorted(names)}")
  if checkpoint_dir is not None:
    objects = {"model": model}
    if isinstance(optimizer, tf.Module):
      objects["optimizer"] = optimizer
    checkpoint = tf.train.Checkpoint(**objects)

  trainer = TrainStep(model, task, optimizer, variables)
  eval_fn = make_eval_fn(model, task) if validation_data is not None else None
  repeated = iter(train_data.repeat()) if steps_per_epoch is not None else None
  history: dict[str, Any] = {"loss": [], "epoch_time": [], "steps": 0, "best_epoch": None,
                             "best_value": None, "best_checkpoint": None}
  global_step = 0

  for epoch in range(1, epochs + 1):
    start = time.perf_counter()
    batches = (itertools.islice(repeated, steps_per_epoch) if repeated is not None
               else iter(train_data))
    total = steps_per_epoch
    if total is None:
      cardinality = int(train_data.cardinality())
      total = cardinality if cardinality > 0 else None
    bar = tqdm.tqdm(batches, total=total, desc=f"epoch {epoch}/{epochs}", disable=not progress,
                    leave=False)
    loss_sum, steps = tf.constant(0.0), 0
    for element in bar:
      inputs, targets = _check_element(element)
      try:
        loss = trainer(inputs, targets)
      except tf.errors.InvalidArgumentError as e:
        if _NONFINITE_MARKER in str(e):
          raise FloatingPointError(
              f"training loss is NaN or Inf at epoch {epoch}, step {steps + 1} (update "
              f"{global_step + 1}); that update was not applied. Check the inputs/targets for "
              f"NaN and consider a lower learning rate.") from None
        raise
      loss_sum += loss
      steps += 1
      global_step += 1
      if progress and steps % 10 == 0:  # a host sync; keep it infrequent
        bar.set_postfix(loss=f"{float(loss_sum) / steps:.4f}")
    bar.close()
    if steps == 0:
      raise ValueError("the training data produced no batches")
    history["loss"].append(float(loss_sum) / steps)
    history["steps"] = global_step

    if eval_fn is not None:
      results = _evaluate(eval_fn, task, validation_data)
      for name, value in results.items():
        history.setdefault(f"val_{name}", []).append(value)
      if metric is not None:
        value = results[metric]
        best = history["best_value"]
        improved = math.isfinite(value) and (
            best is None or (value > best if maximise else value < best))
        if improved:
          history["best_epoch"], history["best_value"] = epoch, value
          if checkpoint_dir is not None:
            history["best_checkpoint"] = _write_best(
                checkpoint_dir, checkpoint,
                {"epoch": epoch, "metric": metric, "value": value, "step": global_step})
    history["epoch_time"].append(time.perf_counter() - start)
    if progress:
      summary = f"epoch {epoch}/{epochs}: loss {history['loss'][-1]:.4f}"
      if eval_fn is not None:
        summary += "".join(f", {k} {v[-1]:.4f}" for k, v in history.items()
                           if k.startswith("val_") and "/" not in k)
      tqdm.tqdm.write(summary)
  return history
