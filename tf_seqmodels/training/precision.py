"""Mixed precision for Sonnet models: bfloat16 compute in Linear/Conv layers, float32 variables.

    with compute_dtype(tf.bfloat16):          # while tracing the train step
      outputs = model(inputs, is_training=True)

Inside the context, every already-built `snt.Linear` and `snt.Conv{1,2,3}D` (the FLOP-heavy
layers of every model here) casts its input and its weights to bfloat16, multiplies in
bfloat16 and returns float32. Everything else (normalisation and its statistics, attention
softmax, activations, losses) stays float32, so BatchNorm moving averages and optimizer
slots never see bfloat16 and gradients arrive in float32 for the float32 variables. No
loss scaling is needed for bfloat16 (float32's exponent range).

The context patches those classes' `__call__` while it is active and restores them on exit:
use it around tracing (a tf.function keeps the casts it traced), not around long eager
work in other threads. Layers without variables yet run unchanged (they create float32
variables on that first call), as `snt.mixed_precision` does.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator, Optional

import sonnet as snt
import tensorflow as tf
import tree

from tf_seqmodels.blocks.convolution import Conv1D
from tf_seqmodels.blocks.linear import Linear

PRECISIONS = ("float32", "bfloat16")
# The classes that define `__call__` for snt.Linear and snt.Conv{1,2,3}D (ConvND serves all three),
# and for the package's Conv1D and Linear (snt.Conv1D / snt.Linear with their own `__call__`).
_PATCHED_CLASSES = tuple(dict.fromkeys(
    next(c for c in cls.__mro__ if "__call__" in c.__dict__)
    for cls in (snt.Linear, snt.Conv1D, snt.Conv2D, snt.Conv3D, Conv1D, Linear)))
_lock = threading.Lock()


def _cast_floats(structure, dtype: tf.DType):
  def cast(x):
    if isinstance(x, (tf.Tensor, tf.Variable)) and x.dtype.is_floating and x.dtype != dtype:
      return tf.cast(x, dtype)
    return x
  return tree.map_structure(cast, structure)


def _float_variables(module: snt.Module) -> dict[str, tf.Variable]:
  return {k: v for k, v in vars(module).items()
          if isinstance(v, tf.Variable) and v.dtype.is_floating}


def _low_precision_call(original, dtype: tf.DType):
  def call(self, inputs, *args, **kwargs):
    variables = _float_variables(self)
    if not variables:
      return original(self, inputs, *args, **kwargs)
    # The layer reads its weights as attributes (self.w, self.b): for this call they are
    # bfloat16 casts of the float32 variables, so gradients flow back to the variables.
    # (Swapping instance attributes avoids snt.custom_variable_getter, which patches the
    # class's __getattribute__ for every module of that class.)
    self.__dict__.update({k: tf.cast(v, dtype) for k, v in variables.items()})
    try:
      outputs = original(self, _cast_floats(inputs, dtype), *args, **kwargs)
    finally:
      self.__dict__.update(variables)
    return _cast_floats(outputs, tf.float32)
  return call


@contextlib.contextmanager
def compute_dtype(dtype: Optional[tf.DType]) -> Iterator[None]:
  """Runs Sonnet Linear/Conv layers in `dtype` (bfloat16) inside the block; None = no change."""
  if dtype is None or dtype == tf.float32:
    yield
    return
  if dtype != tf.bfloat16:
    raise ValueError(f"only bfloat16 mixed precision is supported, got {dtype}")
  with _lock:
    originals = {cls: cls.__dict__["__call__"] for cls in _PATCHED_CLASSES}
    try:
      for cls, original in originals.items():
        cls.__call__ = _low_precision_call(original, dtype)
      yield
    finally:
      for cls, original in originals.items():
        cls.__call__ = original


def precision_dtype(name: str) -> Optional[tf.DType]:
  """"float32" -> None (no mixed precision), "bfloat16" -> tf.bfloat16."""
  if name not in PRECISIONS:
    raise ValueError(f"mixed_precision must be one of {PRECISIONS}, got {name!r}")
  return None if name == "float32" else tf.bfloat16
