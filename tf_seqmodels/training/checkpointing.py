"""Checkpoints of a training run: resume checkpoints and the best checkpoint.

    run_dir/checkpoints/ckpt-<step>.{index,data-*}   tf.train.CheckpointManager (keeps the
                                                     newest `max_to_keep`); "checkpoint" names
                                                     the latest and is replaced atomically
    run_dir/best-step<step>-<random>/ckpt.*          the best checkpoint by a validation metric
    run_dir/best.json                                {"epoch", "step", "metric", "value", "path"}

A checkpoint holds `model`, `optimizer` and the trainer's `state` (step, epoch-loss
accumulators, best value, evaluations since the best); `restore_model(model, run_dir)`
restores the best one.

A kill at any moment leaves the last complete checkpoint usable: TensorFlow writes the
checkpoint files before the manager rewrites its "checkpoint" index, and best.json is
replaced (temporary file + rename) only after the new best checkpoint is complete.

Multi-worker: every worker must save (saving may run collectives); the chief writes into
the run directory, the other workers into temporary directories they delete at once.
Restoring reads the chief's files, so the run directory must be on a filesystem all
workers share.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from typing import Any, Optional

import tensorflow as tf

from tf_seqmodels.config import apply_default_permissions, atomic_write_text
from tf_seqmodels.errors import summarise_error

CHECKPOINT_SUBDIR = "checkpoints"
CHECKPOINT_NAME = "ckpt"
BEST_POINTER = "best.json"
BEST_PREFIX = "best-step"


class CheckpointError(RuntimeError):
  """No resume checkpoint of a run directory can be restored."""


class WeightsMismatchError(ValueError):
  """Trained weights that do not fit the model as configured; `summary` is a few lines
  (variable names and shapes) of TensorFlow's restore error, which lists every value."""

  def __init__(self, path: str, error: BaseException):
    self.summary = summarise_error(error)
    super().__init__(f"the weights {path} do not fit the model as configured (a checkpoint of "
                     f"another model or config?):\n  {self.summary}")


def checkpoint_step(path: str) -> int:
  """The step encoded in a resume checkpoint prefix ".../ckpt-<step>"."""
  match = re.search(rf"{CHECKPOINT_NAME}-(\d+)$", path)
  if not match:
    raise ValueError(f"{path!r} is not a resume checkpoint prefix ({CHECKPOINT_NAME}-<step>)")
  return int(match.group(1))


def latest_checkpoint(run_dir: str) -> Optional[str]:
  """Prefix of the newest resume checkpoint of a run directory, or None."""
  return tf.train.latest_checkpoint(os.path.join(run_dir, CHECKPOINT_SUBDIR))


def read_best(run_dir: str) -> Optional[dict[str, Any]]:
  """The best.json pointer of a run directory (path made absolute), or None."""
  pointer = os.path.join(run_dir, BEST_POINTER)
  if not os.path.exists(pointer):
    return None
  with open(pointer) as f:
    info = json.load(f)
  info["path"] = os.path.join(run_dir, info["path"])
  return info


def restore(checkpoint: tf.train.Checkpoint, path: str) -> None:
  """Restores `path` into `checkpoint`; every existing object must find its values."""
  status = checkpoint.restore(path)
  status.assert_existing_objects_matched()
  status.expect_partial()  # values of objects not (yet) attached, e.g. a bias model's slots


def restore_model(model, run_dir_or_path: str, which: str = "best",
                  component: Optional[str] = None) -> str:
  """Restores the model weights of a run (best or latest checkpoint, or a prefix).

  Args:
    model: the module to restore into (its variables may not exist yet: restoration is then
      deferred until they are created).
    run_dir_or_path: a run directory or a checkpoint prefix.
    which: "best" or "latest" when given a run directory.
    component: restore only this checkpointed attribute path of the saved model into
      `model` (e.g. "bias_model" of a ChromBPNet run), or None for the whole model.

  Returns:
    The checkpoint prefix read.
  """
  if os.path.isdir(run_dir_or_path):
    if which == "best":
      info = read_best(run_dir_or_path)
      path = info["path"] if info else None
    elif which == "latest":
      path = latest_checkpoint(run_dir_or_path)
    else:
      raise ValueError(f"which must be 'best' or 'latest', got {which!r}")
    if path is None:
      raise FileNotFoundError(f"no {which} checkpoint in {run_dir_or_path}")
  else:
    path = run_dir_or_path
    if not tf.io.gfile.exists(path + ".index"):
      raise FileNotFoundError(f"no checkpoint at {path} ({path}.index missing)")
  target: Any = model
  if component:
    # Nest the module under the same attribute path it had in the saved model.
    for name in reversed(component.split(".")):
      target = tf.train.Checkpoint(**{name: target})
  tf.train.Checkpoint(model=target).read(path).expect_partial()
  return path


class Checkpointer:
  """Saves and restores resume checkpoints and the best checkpoint of one run directory."""

  def __init__(self, run_dir: str, checkpoint: tf.train.Checkpoint, *, is_chief: bool = True,
               max_to_keep: int = 3):
    if max_to_keep < 1:
      raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}")
    self.run_dir = run_dir
    self.directory = os.path.join(run_dir, CHECKPOINT_SUBDIR)
    self.checkpoint = checkpoint
    self.is_chief = is_chief
    self.max_to_keep = max_to_keep
    self._manager = (tf.train.CheckpointManager(checkpoint, self.directory, max_to_keep,
                                                checkpoint_name=CHECKPOINT_NAME)
                     if is_chief else None)

  def latest(self) -> Optional[str]:
    return tf.train.latest_checkpoint(self.directory)

  def candidates(self) -> list[str]:
    """Resume checkpoints on disk, newest first (those the "checkpoint" index lists)."""
    state = tf.train.get_checkpoint_state(self.directory)
    if state is None:
      return []
    paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    if state.model_checkpoint_path and state.model_checkpoint_path not in paths:
      paths.append(state.model_checkpoint_path)
    paths = [p if os.path.isabs(p) else os.path.join(self.directory, p) for p in paths]
    return sorted(set(paths), key=checkpoint_step, reverse=True)

  def restore_latest(self) -> Optional[int]:
    """Restores the newest resume checkpoint that restores; returns its step, or None if
    there is none. A damaged newer checkpoint (files cut short by a full disk or a kill
    during a copy) is skipped with a warning naming it."""
    candidates = self.candidates()
    if not candidates:
      return None
    failures = []
    for path in candidates:
      try:
        restore(self.checkpoint, path)
      except (tf.errors.OpError, IndexError, ValueError, AssertionError, KeyError) as e:
        failures.append(f"{path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        continue
      for failure in failures:
        logging.getLogger(__name__).warning("skipped a checkpoint that does not restore: %s",
                                            failure)
      return checkpoint_step(path)
    raise CheckpointError(f"no resume checkpoint in {self.directory} restores: "
                          + "; ".join(failures))

  def save(self, step: int) -> Optional[str]:
    """Writes resume checkpoint `step`; returns its prefix on the chief, None elsewhere."""
    if self.is_chief:
      return self._manager.save(checkpoint_number=int(step))
    scratch = tempfile.mkdtemp(prefix="tf_seqmodels-worker-ckpt-")
    try:
      tf.train.CheckpointManager(self.checkpoint, scratch, 1,
                                 checkpoint_name=CHECKPOINT_NAME).save(checkpoint_number=int(step))
    finally:
      shutil.rmtree(scratch, ignore_errors=True)
    return None

  def write_best(self, info: dict[str, Any]) -> Optional[str]:
    """Writes the best checkpoint and repoints best.json at it (info: step, epoch, metric,
    value); removes older best checkpoints. Returns the prefix on the chief."""
    if not self.is_chief:
      scratch = tempfile.mkdtemp(prefix="tf_seqmodels-worker-best-")
      try:
        self.checkpoint.write(os.path.join(scratch, CHECKPOINT_NAME))
      finally:
        shutil.rmtree(scratch, ignore_errors=True)
      return None
    os.makedirs(self.run_dir, exist_ok=True)
    directory = tempfile.mkdtemp(dir=self.run_dir, prefix=f"{BEST_PREFIX}{int(info['step']):09d}-")
    apply_default_permissions(directory)
    prefix = self.checkpoint.write(os.path.join(directory, CHECKPOINT_NAME))
    relative = os.path.relpath(prefix, self.run_dir)
    atomic_write_text(os.path.join(self.run_dir, BEST_POINTER),
                      json.dumps({**info, "path": relative}, indent=2) + "\n")
    keep = os.path.basename(directory)
    for entry in os.listdir(self.run_dir):
      if entry.startswith(BEST_PREFIX) and entry != keep:
        shutil.rmtree(os.path.join(self.run_dir, entry), ignore_errors=True)
    return prefix


# --- trained models from run directories and checkpoints ---------------------------------------

def is_run_dir(path: str) -> bool:
  """Whether `path` is a training run directory (holds the run.json of `tf-seqmodels train`)."""
  from tf_seqmodels.training.logging import RUN_METADATA
  return os.path.isdir(path) and os.path.exists(os.path.join(path, RUN_METADATA))


def ensure_built(model, strategy=None) -> None:
  """Creates a contract model's variables under `strategy` (None: the current one).

  Replicator-style strategies cannot create variables inside a tf.function (the symbolic
  trace of `SequenceModel.build`), so there the model runs once eagerly on a zero batch, as
  the trainer does.
  """
  if model.__dict__.get("_built", False):
    return
  strategy = strategy or tf.distribute.get_strategy()
  if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
    model.ensure_built()
    return
  length = model.sequence_length
  if length is None or not model.takes_dna_sequence:
    with strategy.scope():
      model.ensure_built()
    return
  zeros = tf.zeros([1, length, model.input_channels])
  with strategy.scope():
    strategy.run(lambda x: model(x, is_training=False), args=(zeros,))
  model._built = True  # pylint: disable=protected-access


def restore_weights(model, path: str, which: str = "best", strategy=None) -> str:
  """Loads trained weights into `model` (built first, under `strategy`): the best or latest
  checkpoint of a run directory (best falls back to latest when the run selected none), or a
  checkpoint prefix / directory written by `convert.weights.save_checkpoint`.

  Returns:
    The checkpoint prefix read.
  """
  if not os.path.exists(path) and not os.path.exists(path + ".index"):
    raise FileNotFoundError(f"weights not found: {path} (a run directory or checkpoint prefix)")
  ensure_built(model, strategy)
  try:
    if os.path.isdir(path) and (read_best(path) or latest_checkpoint(path)):
      if which == "best" and read_best(path) is None:
        which = "latest"  # the run selected no best checkpoint (no trainer.select_best_by)
      return restore_model(model, path, which)
    from tf_seqmodels.convert.weights import load_checkpoint
    load_checkpoint(model, path)
  except (ValueError, AssertionError, tf.errors.OpError) as e:
    if isinstance(e, WeightsMismatchError):
      raise
    raise WeightsMismatchError(path, e) from e
  return path
