"""Pre-LayerNorm transformer block: attention and MLP, each inside a residual."""

from __future__ import annotations

from typing import Optional, Sequence

import sonnet as snt
import tensorflow as tf

from tf_seqmodels.blocks.attention import MultiheadAttention, POSITIONAL_FUNCTIONS


class TransformerBlock(snt.Module):
  """x + Dropout(MHA(LN(x))), then x + Dropout(Linear(ReLU(Dropout(Linear_2C(LN(x)))))).

  Enformer's block: no final LayerNorm after the stack; MLP hidden width 2C.
  Shapes: [B, T, C] -> [B, T, C].
  """

  def __init__(self,
               channels: int,
               num_heads: int,
               key_size: int = 64,
               dropout_rate: float = 0.4,
               attention_dropout_rate: float = 0.05,
               positional_dropout_rate: float = 0.01,
               relative_position_functions: Sequence[str] = POSITIONAL_FUNCTIONS,
               relative_position_symmetric: bool = False,
               num_relative_position_features: Optional[int] = None,
               relative_positions: bool = True,
               attention_window: Optional[int] = None,
               name: Optional[str] = None):
    super().__init__(name=name)
    if channels % num_heads:
      raise ValueError(f"channels {channels} must be divisible by num_heads {num_heads}")
    self.dropout_rate = dropout_rate
    self.attention_norm = snt.LayerNorm(axis=-1, create_scale=True, create_offset=True,
                                        name="attention_norm")
    self.attention = MultiheadAttention(
        value_size=channels // num_heads,
        key_size=key_size,
        num_heads=num_heads,
        scaling=True,
        attention_dropout_rate=attention_dropout_rate,
        relative_positions=relative_positions,
        relative_position_symmetric=relative_position_symmetric,
        relative_position_functions=relative_position_functions,
        num_relative_position_features=num_relative_position_features or channels // num_heads,
        positional_dropout_rate=positional_dropout_rate,
        zero_initialize=True,
        attention_window=attention_window,
        name="attention")
    self.mlp_norm = snt.LayerNorm(axis=-1, create_scale=True, create_offset=True, name="mlp_norm")
    self.mlp_hidden = snt.Linear(2 * channels, name="mlp_hidden")
    self.mlp_output = snt.Linear(channels, name="mlp_output")

  def _dropout(self, x: tf.Tensor, is_training: bool) -> tf.Tensor:
    return tf.nn.dropout(x, rate=self.dropout_rate) if is_training else x

  def attention_weights(self, inputs: tf.Tensor) -> tf.Tensor:
    """Inference attention weights of this block, [B, H, T, T] (query, key)."""
    return self(inputs, is_training=False, return_weights=True)[1]

  def __call__(self, inputs: tf.Tensor, is_training: bool, return_weights: bool = False):
    """[B, T, C] -> [B, T, C]; with `return_weights`, (output, attention weights [B, H, T, T])
    from the same pass (weights before attention dropout)."""
    x = self.attention(self.attention_norm(inputs), is_training=is_training,
                       return_weights=return_weights)
    if return_weights:
      x, weights = x
    x = inputs + self._dropout(x, is_training)
    y = self._dropout(self.mlp_hidden(self.mlp_norm(x)), is_training)
    y = self._dropout(self.mlp_output(tf.nn.relu(y)), is_training)
    return (x + y, weights) if return_weights else x + y
