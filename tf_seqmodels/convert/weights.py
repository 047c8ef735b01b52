"""Model weights on disk: our own checkpoints, and a table of reference-format importers.

Our checkpoints are `tf.train.Checkpoint(model=model)` object graphs. Reference formats
(Sonnet checkpoints, PyTorch state dicts, Keras .h5) each have an importer registered here
for the model class it fills, so callers (CLI, exporters) never special-case a model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Callable

import tensorflow as tf

from tf_seqmodels.config import apply_default_permissions

_REFERENCE_IMPORTERS: dict[type, Callable[..., Any]] = {}


def register_reference_importer(model_class: type, importer: Callable[..., Any]) -> None:
  """`importer(model, source, **kwargs)` loads reference weights into a `model_class`."""
  _REFERENCE_IMPORTERS[model_class] = importer


def import_reference_weights(model, source, **kwargs):
  """Loads weights in the reference implementation's format into `model`."""
  for cls in type(model).__mro__:
    if cls in _REFERENCE_IMPORTERS:
      return _REFERENCE_IMPORTERS[cls](model, source, **kwargs)
  supported = sorted(c.__name__ for c in _REFERENCE_IMPORTERS)
  raise ValueError(f"no reference-weight importer for {type(model).__name__}; "
                   f"available for: {supported}")


def _resolve_prefix(path: str) -> str:
  if os.path.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is None:
      indexes = sorted(f for f in os.listdir(path) if f.endswith(".index"))
      if len(indexes) != 1:
        raise FileNotFoundError(f"no checkpoint in directory {path} (found {indexes or 'no'} .index files)")
      latest = os.path.join(path, indexes[0][:-len(".index")])
    return latest
  if path.endswith(".index"):
    path = path[:-len(".index")]
  if not os.path.exists(path + ".index"):
    raise FileNotFoundError(f"no checkpoint at {path} (expected {path}.index)")
  return path


def save_checkpoint(model, directory: str, name: str = "model") -> str:
  """Writes `model`'s variables to `directory/name` atomically; returns the prefix.

  The files are written into a temporary sibling directory that replaces `directory` by a
  rename, so an interrupted save never leaves a half-written checkpoint behind.
  """
  directory = os.path.abspath(directory)
  parent = os.path.dirname(directory)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-ckpt-")
  try:
    tf.train.Checkpoint(model=model).write(os.path.join(tmp, name))
    apply_default_permissions(tmp)
    if os.path.exists(directory):
      old = tempfile.mkdtemp(dir=parent, prefix=".old-ckpt-")
      os.rename(directory, os.path.join(old, "ckpt"))
      os.rename(tmp, directory)
      shutil.rmtree(old)
    else:
      os.rename(tmp, directory)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp)
  return os.path.join(directory, name)


def load_checkpoint(model, path: str) -> None:
  """Restores a checkpoint written by `save_checkpoint` (or any `Checkpoint(model=...)`).

  Every variable of `model` must be restored; mismatched configs raise a clear error.
  """
  prefix = _resolve_prefix(os.fspath(path))
  model.ensure_built()
  status = tf.train.Checkpoint(model=model).read(prefix)
  try:
    status.assert_existing_objects_matched()
  except AssertionError as e:
    raise ValueError(f"checkpoint {prefix} does not match the model's config: {e}") from None
  status.expect_partial()
