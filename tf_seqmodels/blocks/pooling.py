"""Pooling along the length axis: Enformer's softmax ("attention") pooling and max pooling."""

from __future__ import annotations

from typing import Optional

import sonnet as snt
import tensorflow as tf

from tf_seqmodels.blocks.core import shape_list


class SoftmaxPooling1D(snt.Module):
  """Weighted pooling of non-overlapping windows with softmax weights from a linear map.

  For each window of `pool_size` positions, logits = x W (W: [C, C] if `per_channel` else
  [C, 1], no bias, initialised to `w_init_scale` * I); the output is the softmax-weighted
  sum over the window. With `w_init_scale` 2.0 it starts close to max pooling.

  Shapes: [B, L, C] -> [B, L / pool_size, C]; L must be divisible by `pool_size`.
  """

  def __init__(self, pool_size: int = 2, per_channel: bool = True, w_init_scale: float = 2.0,
               name: Optional[str] = None):
    super().__init__(name=name)
    self.pool_size = pool_size
    self.per_channel = per_channel
    self.w_init_scale = w_init_scale
    self.logit_linear = None

  @snt.once
  def _initialize(self, num_features: int):
    self.logit_linear = snt.Linear(
        num_features if self.per_channel else 1, with_bias=False,
        w_init=snt.initializers.Identity(self.w_init_scale), name="logit_linear")

  def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
    num_features = inputs.shape[-1]
    self._initialize(num_features)
    # Dynamic length (tf.shape) so the same trace serves every input length.
    batch, length, _ = shape_list(inputs)
    windows = tf.reshape(inputs, [batch, length // self.pool_size, self.pool_size, num_features])
    if self.pool_size == 2:
      # Same function, half the work: a softmax over two logits is sigmoid(l0 - l1), and as
      # the logits are linear without bias, l0 - l1 = (x0 - x1) W. One matmul over L/2
      # positions instead of one over L (as large as a pointwise conv at Enformer's widths).
      first, second = windows[:, :, 0], windows[:, :, 1]
      difference = first - second
      return second + tf.nn.sigmoid(self.logit_linear(difference)) * difference
    weights = tf.nn.softmax(self.logit_linear(windows), axis=-2)
    return tf.reduce_sum(windows * weights, axis=-2)


class MaxPooling1D(snt.Module):
  """Max pooling with stride = `pool_size`, padding SAME. [B, L, C] -> [B, ceil(L / p), C]."""

  def __init__(self, pool_size: int = 2, name: Optional[str] = None):
    super().__init__(name=name)
    self.pool_size = pool_size

  def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
    return tf.nn.max_pool1d(inputs, self.pool_size, self.pool_size, padding="SAME")


def pooling_module(pooling_type: str, pool_size: int = 2, name: Optional[str] = None) -> snt.Module:
  """'attention' -> SoftmaxPooling1D(per_channel, 2·I init); 'max' -> MaxPooling1D."""
  if pooling_type == "attention":
    return SoftmaxPooling1D(pool_size=pool_size, per_channel=True, w_init_scale=2.0, name=name)
  if pooling_type == "max":
    return MaxPooling1D(pool_size=pool_size, name=name)
  raise ValueError(f"unknown pooling_type {pooling_type!r}; expected 'attention' or 'max'")
