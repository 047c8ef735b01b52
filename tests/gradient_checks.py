"""Shared by the tests of blocks with hand-written training gradients."""

import tensorflow as tf

from tf_seqmodels.blocks.gradients import fast_gradients


def outputs_and_gradients(fn, x, variables, fast: bool, upstream):
  """fn(x) and d(sum(fn(x) * upstream)) / d(x, *variables): with the hand-written gradients
  (fn traced inside `fast_gradients()`) when `fast`, autodiff's otherwise."""
  with tf.GradientTape() as tape:
    tape.watch(x)
    if fast:
      with fast_gradients():
        y = fn(x)
    else:
      y = fn(x)
    loss = tf.reduce_sum(y * upstream)
  return y, tape.gradient(loss, [x] + list(variables))
