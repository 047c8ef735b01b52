"""Proformer (Unlock_DNA, DREAM-Attn core): macaron conformer layers with SwiGLU feed-forwards.

    Proformer        x + E[pos] (learned, [seq_len, C]) -> num_layers x ProformerLayer
    ProformerLayer   x = x + 0.5 FF1(x)
                     x1 = LN1(x); x1 = x1 + ConvModule(x1); x = x + x1
                     x = LN2(x)                       (x is *replaced* by its norm)
                     x = x + MHA(x, x, x)
                     x = x + 0.5 FF2(x)
    FF               LN -> Linear(C -> mult C, no bias) -> SwiGLU -> Dropout
                     -> Linear(mult C / 2 -> C, no bias) -> Dropout
    ConvModule       depthwise conv k (no bias) -> 1x1 conv (bias) -> ReLU -> Dropout
    MHA              `torch.nn.MultiheadAttention`: packed q/k/v projection with bias,
                     softmax(q k^T / sqrt(d)) v, output projection with bias; no positions

This is the reference *code*, which differs from a textbook conformer: step 4 is not a
pre-norm residual, there is no final LayerNorm, and the reference hard-codes 4 attention
heads (its `num_heads` argument is ignored). LayerNorm eps is 1e-6. All shapes are
[B, L, C] -> [B, L, C]; L must equal the position table's length.

Initialisation is PyTorch's default (the reference does not re-initialise these blocks):
Linear/Conv U(±1/sqrt(fan_in)), in_proj Xavier-uniform with zero bias, out_proj bias 0,
LayerNorm 1 / 0, position embedding N(0, 1).
"""

from __future__ import annotations

from typing import Optional

import sonnet as snt
import tensorflow as tf

from tf_seqmodels.blocks.convolution import Conv1D
from tf_seqmodels.blocks.gradients import fast_gradients_active
from tf_seqmodels.blocks.linear import Linear
from tf_seqmodels.blocks.legnet import GroupedConv1D
from tf_seqmodels.blocks.torch_compat import (dropout, layer_norm, silu, torch_uniform,
                                              xavier_uniform)


class PackedMultiheadAttention(snt.Module):
  """`torch.nn.MultiheadAttention(C, num_heads, batch_first=True)` self-attention.

  Shapes: [B, L, C] -> [B, L, C].
  Variables: in_proj_w [C, 3C] (PyTorch in_proj_weight (3C, C) transposed; columns q | k | v),
  in_proj_b [3C], out_proj (snt.Linear C -> C: w [C, C], b [C]).
  """

  def __init__(self, channels: int, num_heads: int, attention_dropout: float = 0.0,
               name: Optional[str] = None):
    super().__init__(name=name)
    if channels % num_heads:
      raise ValueError(f"channels {channels} must be divisible by num_heads {num_heads}")
    self.channels = channels
    self.num_heads = num_heads
    self.head_size = channels // num_heads
    self.attention_dropout = attention_dropout
    self.in_proj_w = tf.Variable(xavier_uniform(channels, 3 * channels)(
        [channels, 3 * channels], tf.float32), name="in_proj_w")
    self.in_proj_b = tf.Variable(tf.zeros([3 * channels]), name="in_proj_b")
    self.out_proj = Linear(channels, w_init=torch_uniform(channels),
                           b_init=snt.initializers.Zeros(), name="out_proj")

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    shape = tf.shape(inputs)
    batch, length = shape[0], shape[1]
    qkv = tf.einsum("blc,cd->bld", inputs, self.in_proj_w) + self.in_proj_b
    qkv = tf.reshape(qkv, [batch, length, 3, self.num_heads, self.head_size])
    q, k, v = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4]))  # each [B, H, L, d]
    logits = tf.matmul(q * self.head_size**-0.5, k, transpose_b=True)  # [B, H, L, L]
    weights = dropout(tf.nn.softmax(logits, axis=-1), self.attention_dropout, is_training)
    attended = tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3])  # [B, L, H, d]
    return self.out_proj(tf.reshape(attended, [batch, length, self.channels]))


class SwiGLUFeedForward(snt.Module):
  """LN -> Linear(C -> mult C) -> out * silu(gate) -> Dropout -> Linear(mult C / 2 -> C) -> Dropout.

  Shapes: [B, L, C] -> [B, L, C]. The first half of the expanded channels is `out`, the
  second the gate (`torch.chunk` order).
  """

  def __init__(self, channels: int, mult: int = 4, dropout_rate: float = 0.1,
               use_bias: bool = False, layer_norm_eps: float = 1e-6,
               name: Optional[str] = None):
    super().__init__(name=name)
    if (channels * mult) % 2:
      raise ValueError(f"channels * mult = {channels * mult} must be even for SwiGLU")
    hidden = channels * mult // 2
    self.dropout_rate = dropout_rate
    self.norm = layer_norm(layer_norm_eps, name="norm")
    self.linear1 = Linear(channels * mult, with_bias=use_bias, w_init=torch_uniform(channels),
                          b_init=torch_uniform(channels) if use_bias else None, name="linear1")
    self.linear2 = Linear(channels, with_bias=use_bias, w_init=torch_uniform(hidden),
                          b_init=torch_uniform(hidden) if use_bias else None, name="linear2")

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    x = dropout(swiglu(self.linear1(self.norm(inputs))), self.dropout_rate, is_training)
    return dropout(self.linear2(x), self.dropout_rate, is_training)


def _swiglu(expanded: tf.Tensor) -> tf.Tensor:
  out, gate = tf.split(expanded, 2, axis=-1)
  return out * silu(gate)


@tf.custom_gradient
def _swiglu_keeping_input(expanded: tf.Tensor):
  """`_swiglu` whose gradient keeps only its input (autodiff also keeps silu(gate))."""
  def grad(dy):
    # The dependency on dy keeps the executor from recomputing every layer's sigmoid as soon
    # as the forward pass ends (they do not otherwise depend on the backward pass).
    with tf.control_dependencies([dy]):
      out, gate = tf.split(expanded, 2, axis=-1)
    sigmoid = tf.sigmoid(gate)
    # d silu(x) / dx = sigmoid(x) (1 + x (1 - sigmoid(x)))
    return tf.concat([dy * gate * sigmoid,
                      dy * out * sigmoid * (1 + gate * (1 - sigmoid))], axis=-1)
  return _swiglu(expanded), grad


def swiglu(expanded: tf.Tensor) -> tf.Tensor:
  """out * silu(gate) of [..., 2n] = [out | gate] (`torch.chunk` order) -> [..., n].

  Inside `gradients.fast_gradients()` (the trainer's step) with a hand-written gradient that
  recomputes silu(gate) from the kept input: one [..., n] tensor less per feed-forward for the
  backward pass. The forward ops are the same either way.
  """
  if fast_gradients_active():
    return _swiglu_keeping_input(expanded)
  return _swiglu(expanded)


class ConformerConvModule(snt.Module):
  """Depthwise conv k (no bias, 'same') -> 1x1 conv (bias) -> ReLU -> Dropout.

  Shapes: [B, L, C] -> [B, L, C].
  """

  def __init__(self, channels: int, kernel_size: int = 15, dropout_rate: float = 0.1,
               name: Optional[str] = None):
    super().__init__(name=name)
    self.dropout_rate = dropout_rate
    self.depthwise = GroupedConv1D(channels, channels, kernel_size, groups=channels,
                                   w_init=torch_uniform(kernel_size), name="depthwise")
    self.pointwise = Conv1D(channels, 1, w_init=torch_uniform(channels),
                            b_init=torch_uniform(channels), name="pointwise")

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    x = tf.nn.relu(self.pointwise(self.depthwise(inputs)))
    return dropout(x, self.dropout_rate, is_training)


class ProformerLayer(snt.Module):
  """One macaron conformer layer (`ConformerSASwiGLULayer`); see the module docstring.

  Shapes: [B, L, C] -> [B, L, C]. 1,121,280 parameters at C = 256, mult 4, k 15.
  """

  def __init__(self, channels: int, num_heads: int = 4, kernel_size: int = 15,
               dropout_rate: float = 0.1, ff_mult: int = 4, attention_dropout: float = 0.0,
               layer_norm_eps: float = 1e-6, name: Optional[str] = None):
    super().__init__(name=name)
    self.ff1 = SwiGLUFeedForward(channels, ff_mult, dropout_rate, layer_norm_eps=layer_norm_eps,
                                 name="ff1")
    self.norm1 = layer_norm(layer_norm_eps, name="norm1")
    self.conv = ConformerConvModule(channels, kernel_size, dropout_rate, name="conv")
    self.norm2 = layer_norm(layer_norm_eps, name="norm2")
    self.attention = PackedMultiheadAttention(channels, num_heads, attention_dropout,
                                              name="attention")
    self.ff2 = SwiGLUFeedForward(channels, ff_mult, dropout_rate, layer_norm_eps=layer_norm_eps,
                                 name="ff2")

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    x = inputs + 0.5 * self.ff1(inputs, is_training=is_training)
    x1 = self.norm1(x)
    x1 = x1 + self.conv(x1, is_training=is_training)
    x = self.norm2(x + x1)
    x = x + self.attention(x, is_training=is_training)
    return x + 0.5 * self.ff2(x, is_training=is_training)


class Proformer(snt.Module):
  """Learned absolute positions + ProformerLayers (Unlock_DNA core). [B, L, C] -> [B, L, C].

  L must equal `sequence_length` (the position table has one row per position).
  Variables: position_embedding [sequence_length, C] plus the layers'.
  """

  def __init__(self, channels: int, sequence_length: int, num_layers: int = 4,
               num_heads: int = 4, kernel_size: int = 15, dropout_rate: float = 0.1,
               ff_mult: int = 4, attention_dropout: float = 0.0, layer_norm_eps: float = 1e-6,
               name: Optional[str] = None):
    super().__init__(name=name)
    self.channels = channels
    self.sequence_length = sequence_length
    self.position_embedding = tf.Variable(
        snt.initializers.RandomNormal(stddev=1.0)([sequence_length, channels], tf.float32),
        name="position_embedding")
    self.layers = [
        ProformerLayer(channels, num_heads, kernel_size, dropout_rate, ff_mult, attention_dropout,
                       layer_norm_eps, name=f"layer_{i}")
        for i in range(num_layers)
    ]

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    length = inputs.shape[1]
    if length is not None and length != self.sequence_length:
      raise ValueError(f"{self.name}: the learned position embedding covers exactly "
                       f"{self.sequence_length} positions, got inputs of length {length}")
    if length is None:
      tf.debugging.assert_equal(tf.shape(inputs)[1], self.sequence_length,
                                message="Proformer input length must equal its sequence_length")
    x = inputs + self.position_embedding
    for layer in self.layers:
      x = layer(x, is_training=is_training)
    return x
