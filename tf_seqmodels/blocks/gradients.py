"""Which graphs get the blocks' hand-built gradients: those traced inside `fast_gradients()`.

A block may compute its gradient by hand where autodiff's is slow or keeps too much for the
backward pass: `convolution.Conv1D` (TensorFlow's CPU convolution-gradient kernels take 2-3x
the forward pass), `recurrent`'s LSTMs (backpropagation through time that keeps a third less),
`torch_compat.LayerNorm` and `conformer.swiglu` (they keep only their inputs). The forward
pass is unchanged, so the hand-built gradient only matters where gradients are taken for training,
and a `tf.custom_gradient` is not free elsewhere: it shows up as an IdentityN op, which
DeepLIFT's per-op rules cannot see through, and SavedModel exports would carry it. So the
trainer traces its step inside `fast_gradients()` and everything else sees plain ops.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

_lock = threading.Lock()
# How many fast_gradients() blocks are open: a process-wide count, not a thread-local flag,
# because a distribution strategy traces its replica functions in threads of its own.
_active = 0


@contextlib.contextmanager
def fast_gradients() -> Iterator[None]:
  """Blocks called (traced) inside this block use their hand-built gradients."""
  global _active
  with _lock:
    _active += 1
  try:
    yield
  finally:
    with _lock:
      _active -= 1


def fast_gradients_active() -> bool:
  """Whether a `fast_gradients()` block is open (read while tracing)."""
  return _active > 0
