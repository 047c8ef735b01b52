"""Moves a fresh model's weights off their initial values (tests helper).

A fresh Enformer block is an identity inside its residual (zero-initialised attention output
projection), so tests that must exercise attention and relative positions perturb it first.
"""

import numpy as np


def perturb_weights(model, seed: int = 0, scale: float = 0.2) -> None:
  """Adds scale x N(0, 1) (times the variable's own spread when it has one) to every
  trainable variable; batch-norm statistics (not trainable) are left alone."""
  rng = np.random.default_rng(seed)
  for variable in model.trainable_variables:
    value = variable.numpy()
    spread = float(value.std()) if value.size > 1 and value.std() > 0 else 1.0
    noise = rng.standard_normal(value.shape) * scale * spread
    variable.assign((value + noise).astype(value.dtype))
