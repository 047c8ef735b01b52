"""tf-seqmodels: sequence-to-function genomics models in TensorFlow 2 / Sonnet v2.

The top-level names are imported on first use (module `__getattr__`, PEP 562), so importing
the package (and `tf-seqmodels --help`) does not load TensorFlow.
"""

import importlib
import os

# TensorFlow's default CPU allocator hands large buffers back to the kernel when they are freed,
# so every training step page-faults its activations in again: measured on DREAM-CNN (batch 256,
# 2 cores) 9.2 s of system CPU time per step against 20.8 s of user time, and 35% more wall
# time, than with TensorFlow's own pooling (BFC) allocator. TensorFlow reads this when it first
# allocates, so it applies where the package is imported before TensorFlow runs anything (the
# CLI always); TF_CPU_ALLOCATOR_USE_BFC=false keeps TensorFlow's default.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "tf_seqmodels.config",
    "ConfigError": "tf_seqmodels.config",
    "SequenceError": "tf_seqmodels.data.encoding",
    "one_hot_encode": "tf_seqmodels.data.encoding",
    "one_hot_decode": "tf_seqmodels.data.encoding",
    "reverse_complement": "tf_seqmodels.data.encoding",
    "reverse_complement_one_hot": "tf_seqmodels.data.encoding",
    "shift_sequence": "tf_seqmodels.data.encoding",
    "Enformer": "tf_seqmodels.models",
    "EnformerConfig": "tf_seqmodels.models",
    "SequenceModel": "tf_seqmodels.models",
    "available_models": "tf_seqmodels.models",
    "build_model": "tf_seqmodels.models",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
  if name in _EXPORTS:
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value
  raise AttributeError(f"module 'tf_seqmodels' has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(_EXPORTS))
