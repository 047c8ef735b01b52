"""Basenji2-style dilated residual convolutions (Kelley 2020), Enformer's ablation baseline.

Each block, at width C and dilation d (pre-activation, SAME padding, length preserved):

    x + Dropout(Conv1D(C, 1)(GELU(BN(Conv1D(C/2, k, dilation=d)(GELU(BN(x)))))))

The stack multiplies the dilation by `rate_multiplier` per block and rounds it, as Basenji2's
`dilated_residual` (int(round(1.5 ** i)): 1, 2, 2, 3, 5, 8, 11, 17, ... at 1.5; rates may
repeat), so its receptive field grows geometrically but stays bounded, unlike
self-attention: this is the Enformer paper's "dilated convolutions instead of
transformer" comparison. Shapes: [B, T, C] -> [B, T, C].
"""

from __future__ import annotations

from typing import Optional

import sonnet as snt
import tensorflow as tf

from tf_seqmodels.blocks.core import cross_replica_batch_norm, gelu_sigmoid


def dilation_rates(num_blocks: int, rate_multiplier: float = 1.5) -> list[int]:
  """Dilation of each block: int(round(rate_multiplier ** i)), i = 0 .. num_blocks - 1.

  As Basenji2 the unrounded rate is carried from block to block (so 1.5 gives 1, 2, 2, 3,
  5, 8, 11, 17, not a strictly increasing sequence).
  """
  rates, rate = [], 1.0
  for _ in range(num_blocks):
    rates.append(int(round(rate)))
    rate *= rate_multiplier
  return rates


def receptive_field(kernel_size: int, rates: list[int]) -> int:
  """Receptive field (positions) of the stack of dilated convolutions."""
  return 1 + sum((kernel_size - 1) * r for r in rates)


class DilatedResidualBlock(snt.Module):
  """One Basenji2 dilated residual block (see the module docstring)."""

  def __init__(self, channels: int, dilation: int, kernel_size: int = 3,
               dropout_rate: float = 0.3, bn_decay: float = 0.9, name: Optional[str] = None):
    super().__init__(name=name)
    self.dropout_rate = dropout_rate
    self.dilated_norm = cross_replica_batch_norm(bn_decay, name="dilated_norm")
    self.dilated_conv = snt.Conv1D(channels // 2, kernel_size, rate=dilation, name="dilated_conv")
    self.pointwise_norm = cross_replica_batch_norm(bn_decay, name="pointwise_norm")
    self.pointwise_conv = snt.Conv1D(channels, 1, name="pointwise_conv")

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    x = self.dilated_conv(gelu_sigmoid(self.dilated_norm(inputs, is_training=is_training)))
    x = self.pointwise_conv(gelu_sigmoid(self.pointwise_norm(x, is_training=is_training)))
    if is_training:
      x = tf.nn.dropout(x, rate=self.dropout_rate)
    return inputs + x
