"""Enformer's blocks (Avsec et al. 2021; deepmind-research `enformer/enformer.py`, 2022).

The model (models/enformer.py) strings them together:

    stem            Conv1D(C/2, 15) -> Residual(ConvBlock(C/2, 1)) -> pool(2)
    conv tower      per width f: ConvBlock(f, 5) -> Residual(ConvBlock(f, 1)) -> pool(2)
    transformer     pre-LN TransformerBlocks with relative positions (no final LayerNorm)
    final pointwise ConvBlock(2C, 1) -> Dropout -> GELU
    heads           Linear(tracks) -> softplus

Module names are the attribute paths of the model's checkpoints and of the reference-weight
name map (convert/enformer_checkpoint.py): keep them.
"""

from __future__ import annotations

from typing import Optional, Sequence

import sonnet as snt
import tensorflow as tf

from tf_seqmodels.blocks.attention import POSITIONAL_FUNCTIONS
from tf_seqmodels.blocks.core import ConvBlock, Residual, gelu_sigmoid
from tf_seqmodels.blocks.pooling import pooling_module
from tf_seqmodels.blocks.transformer import TransformerBlock


class Stem(snt.Module):
  """Conv1D(width, k) -> Residual(ConvBlock(width, 1)) -> pool(2). [B, L, 4] -> [B, L/2, width].

  No normalisation before the first convolution (the input is one-hot DNA).
  """

  def __init__(self, width: int, kernel_size: int = 15, pooling_type: str = "attention",
               bn_decay: float = 0.9, name: Optional[str] = None):
    super().__init__(name=name)
    self.conv = snt.Conv1D(width, kernel_size, name="conv")
    self.pointwise = Residual(ConvBlock(width, 1, bn_decay=bn_decay, name="pointwise"))
    self.pool = pooling_module(pooling_type, 2, name="pool")

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    return self.pool(self.pointwise(self.conv(inputs), is_training=is_training))


class ConvTowerBlock(snt.Module):
  """ConvBlock(f, k) -> Residual(ConvBlock(f, 1)) -> pool(2). [B, L, C_in] -> [B, L/2, f]."""

  def __init__(self, filters: int, kernel_size: int, pooling_type: str, bn_decay: float,
               name: Optional[str] = None):
    super().__init__(name=name)
    self.conv = ConvBlock(filters, kernel_size, bn_decay=bn_decay, name="conv")
    self.pointwise = Residual(ConvBlock(filters, 1, bn_decay=bn_decay, name="pointwise"))
    self.pool = pooling_module(pooling_type, 2, name="pool")

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    x = self.conv(inputs, is_training=is_training)
    return self.pool(self.pointwise(x, is_training=is_training))


def conv_tower(filters: Sequence[int], kernel_size: int = 5, pooling_type: str = "attention",
               bn_decay: float = 0.9) -> list[ConvTowerBlock]:
  """One ConvTowerBlock per width (`conv_tower_block_i`): each halves the length."""
  return [ConvTowerBlock(f, kernel_size, pooling_type, bn_decay, name=f"conv_tower_block_{i}")
          for i, f in enumerate(filters)]


def transformer_stack(num_layers: int, channels: int, num_heads: int, key_size: int = 64,
                      dropout_rate: float = 0.4, attention_dropout_rate: float = 0.05,
                      positional_dropout_rate: float = 0.01,
                      relative_position_functions: Sequence[str] = POSITIONAL_FUNCTIONS,
                      relative_position_symmetric: bool = False, relative_positions: bool = True,
                      attention_window: Optional[int] = None) -> list[TransformerBlock]:
  """`num_layers` pre-LN TransformerBlocks (`transformer_block_i`), applied in order; no final
  LayerNorm after the last one, as in the reference. [B, T, C] -> [B, T, C]."""
  return [
      TransformerBlock(
          channels, num_heads, key_size=key_size, dropout_rate=dropout_rate,
          attention_dropout_rate=attention_dropout_rate,
          positional_dropout_rate=positional_dropout_rate,
          relative_position_functions=relative_position_functions,
          relative_position_symmetric=relative_position_symmetric,
          relative_positions=relative_positions, attention_window=attention_window,
          name=f"transformer_block_{i}")
      for i in range(num_layers)
  ]


class FinalPointwise(snt.Module):
  """ConvBlock(channels, 1) -> Dropout -> GELU. [B, T, C] -> [B, T, channels]."""

  def __init__(self, channels: int, dropout_rate: float, bn_decay: float,
               name: Optional[str] = None):
    super().__init__(name=name)
    self.conv = ConvBlock(channels, 1, bn_decay=bn_decay, name="conv")
    self.dropout_rate = dropout_rate

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    x = self.conv(inputs, is_training=is_training)
    if is_training:
      x = tf.nn.dropout(x, rate=self.dropout_rate)
    return gelu_sigmoid(x)


class SoftplusHead(snt.Module):
  """Linear(tracks) -> softplus: non-negative track predictions. [B, T, D] -> [B, T, tracks]."""

  def __init__(self, num_tracks: int, name: Optional[str] = None):
    super().__init__(name=name)
    self.linear = snt.Linear(num_tracks, name="linear")

  def __call__(self, embedding: tf.Tensor) -> tf.Tensor:
    return tf.nn.softplus(self.linear(embedding))
