"""Linear: `snt.Linear` that accepts [..., C] inputs as one [N, C] x [C, D] product.

`snt.Linear` multiplies a [B, L, C] input with `tf.matmul`, i.e. a broadcasting batched
matmul. Its gradient for the weights is then B separate [C, L] x [L, D] products summed
afterwards: on DREAM-Attn (batch 256, 2-core CPU) those sums were a twelfth of the train
step, and each materialised a [B, C, D] tensor (256 MiB for one 256 -> 1024 layer). Folding
the leading axes into one makes both directions single large matrix products.

Variables, names, initialisation and checkpoints are `snt.Linear`'s; rank-2 inputs run
exactly as in `snt.Linear`.
"""

from __future__ import annotations

import sonnet as snt
import tensorflow as tf


class Linear(snt.Linear):
  """`snt.Linear` over the last axis of inputs of any rank >= 2. [..., C] -> [..., D]."""

  def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
    if inputs.shape.rank is None or inputs.shape.rank <= 2:
      return super().__call__(inputs)
    self._initialize(inputs)
    outputs = tf.matmul(tf.reshape(inputs, [-1, self.input_size]), self.w)
    if self.with_bias:
      outputs = tf.add(outputs, self.b)
    shape = tf.concat([tf.shape(inputs)[:-1], [self.output_size]], axis=0)
    outputs = tf.reshape(outputs, shape)
    outputs.set_shape(inputs.shape[:-1].concatenate([self.output_size]))
    return outputs
