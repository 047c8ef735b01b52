"""Multi-head attention with Enformer's relative positional basis functions.

Positions enter only through relative distances d = j - i. Each basis function family maps
|d| to `n` features; the asymmetric variant appends sign(d) times the same features, so the
feature size is n * len(functions) * (1 if symmetric else 2). The features depend on the
sequence length T at the attention layer, which is read dynamically (tf.shape): the same
weights serve any input length.

Shapes: attention maps [B, T, C] -> [B, T, num_heads * value_size].
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import sonnet as snt
import tensorflow as tf

from tf_seqmodels.blocks.core import shape_list

POSITIONAL_FUNCTIONS = ("exponential", "central_mask", "gamma")


def _as_float(x) -> tf.Tensor:
  return tf.cast(x, tf.float32)


def positional_features_exponential(abs_positions: tf.Tensor, num_basis: int,
                                    seq_length: tf.Tensor, min_half_life: float = 3.0) -> tf.Tensor:
  """exp(-ln2 |d| / h) with half-lives h = 2^linspace(3, log2 T, n). [..., P] -> [..., P, n]."""
  max_range = tf.math.log(_as_float(seq_length)) / tf.math.log(2.0)
  half_life = tf.pow(2.0, tf.linspace(min_half_life, max_range, num_basis))
  return tf.exp(-tf.math.log(2.0) / half_life * abs_positions[..., tf.newaxis])


def positional_features_central_mask(abs_positions: tf.Tensor, num_basis: int,
                                     seq_length: tf.Tensor) -> tf.Tensor:
  """1[|d| < 2^k - 1] for k = 1..n: nested windows around the query. [..., P] -> [..., P, n]."""
  del seq_length
  center_widths = tf.pow(2.0, tf.range(1, num_basis + 1, dtype=tf.float32)) - 1.0
  return tf.cast(center_widths > abs_positions[..., tf.newaxis], tf.float32)


def _gamma_pdf(x: tf.Tensor, concentration: tf.Tensor, rate: tf.Tensor) -> tf.Tensor:
  log_unnormalized = tf.math.xlogy(concentration - 1.0, x) - rate * x
  log_normalization = tf.math.lgamma(concentration) - concentration * tf.math.log(rate)
  return tf.exp(log_unnormalized - log_normalization)


def positional_features_gamma(abs_positions: tf.Tensor, num_basis: int,
                              seq_length: tf.Tensor) -> tf.Tensor:
  """Gamma densities with means linspace(T/n, T, n) and std T/(2n). [..., P] -> [..., P, n].

  Each basis function is divided by its own maximum over positions (the 2022 reference; the
  2021 code used one global maximum). Uses TF's float32 xlogy/lgamma, like the reference:
  other implementations of these ops change the published model's outputs noticeably.
  """
  if not isinstance(seq_length, int):
    seq_length = _as_float(seq_length)
  # With a static length these stay Python floats (float64), exactly as in the reference.
  stddev = seq_length / (2 * num_basis)
  start_mean = seq_length / num_basis
  mean = tf.linspace(_as_float(start_mean), _as_float(seq_length), num_basis)
  concentration = (mean / stddev) ** 2
  rate = mean / stddev**2
  probabilities = _gamma_pdf(abs_positions[..., tf.newaxis], concentration, rate) + 1e-8
  return probabilities / tf.reduce_max(probabilities, axis=-2, keepdims=True)


_FUNCTIONS: dict[str, Callable[[tf.Tensor, int, tf.Tensor], tf.Tensor]] = {
    "exponential": positional_features_exponential,
    "central_mask": positional_features_central_mask,
    "gamma": positional_features_gamma,
}


def num_positional_components(functions: Sequence[str], symmetric: bool) -> int:
  return len(functions) * (1 if symmetric else 2)


def positional_features(positions: tf.Tensor, feature_size: int, seq_length,
                        functions: Sequence[str] = POSITIONAL_FUNCTIONS,
                        symmetric: bool = False) -> tf.Tensor:
  """Relative-position features for signed distances `positions` [P] -> [P, feature_size]."""
  unknown = [f for f in functions if f not in _FUNCTIONS]
  if unknown:
    raise ValueError(f"unknown positional functions {unknown}; available: {sorted(_FUNCTIONS)}")
  components = num_positional_components(functions, symmetric)
  if feature_size % components:
    raise ValueError(f"feature_size {feature_size} must be divisible by {components} "
                     f"({len(functions)} functions x {'1' if symmetric else '2 (asymmetric)'})")
  num_basis = feature_size // components
  abs_positions = tf.abs(positions)
  features = tf.concat([_FUNCTIONS[f](abs_positions, num_basis, seq_length) for f in functions],
                       axis=-1)
  if not symmetric:
    features = tf.concat([features, tf.sign(positions)[..., tf.newaxis] * features], axis=-1)
  return features


def relative_shift(x: tf.Tensor) -> tf.Tensor:
  """Transformer-XL shift: [B, H, T, 2T-1] logits over distances -> [B, H, T, T] over keys.

  Row i of the input indexes distances -T+1..T-1; after the shift, entry (i, j) holds the
  logit for distance j - i.
  """
  batch, heads, t1, t2 = shape_list(x)
  x = tf.concat([tf.zeros_like(x[..., :1]), x], axis=-1)
  x = tf.reshape(x, [batch, heads, t2 + 1, t1])
  x = x[:, :, 1:, :]
  x = tf.reshape(x, [batch, heads, t1, t2])
  return x[..., :(t2 + 1) // 2]


def local_attention_bias(length, window: int) -> tf.Tensor:
  """[T, T] additive logit bias: 0 where |key - query| <= window, -1e9 elsewhere."""
  positions = tf.range(length)
  distance = tf.abs(positions[:, tf.newaxis] - positions[tf.newaxis, :])
  return tf.where(distance <= window, 0.0, -1e9)


class MultiheadAttention(snt.Module):
  """Multi-head self-attention with optional Transformer-XL-style relative positions.

  logits = (q + r_w_bias) k^T + shift((q + r_r_bias) r_k^T), with r_k = W_r · features(d).
  The output projection is zero-initialised by default, so a fresh block is an identity
  inside its residual.
  """

  def __init__(self,
               value_size: int,
               key_size: int,
               num_heads: int,
               scaling: bool = True,
               attention_dropout_rate: float = 0.1,
               relative_positions: bool = True,
               relative_position_symmetric: bool = False,
               relative_position_functions: Sequence[str] = POSITIONAL_FUNCTIONS,
               num_relative_position_features: Optional[int] = None,
               positional_dropout_rate: float = 0.1,
               zero_initialize: bool = True,
               initializer: Optional[snt.initializers.Initializer] = None,
               attention_window: Optional[int] = None,
               name: Optional[str] = None):
    super().__init__(name=name)
    # Local attention (Enformer ablation): queries see keys at most this many positions away.
    if attention_window is not None and attention_window < 0:
      raise ValueError(f"attention_window must be >= 0 or None, got {attention_window}")
    self.attention_window = attention_window
    self.value_size = value_size
    self.key_size = key_size
    self.num_heads = num_heads
    self.scaling = scaling
    self.attention_dropout_rate = attention_dropout_rate
    self.relative_positions = relative_positions
    self.relative_position_symmetric = relative_position_symmetric
    self.relative_position_functions = tuple(relative_position_functions)
    # The reference's default: one feature per value channel (must divide by the components).
    if num_relative_position_features is None:
      num_relative_position_features = value_size
    components = num_positional_components(self.relative_position_functions,
                                           relative_position_symmetric)
    if relative_positions and num_relative_position_features % components:
      raise ValueError(
          f"num_relative_position_features {num_relative_position_features} must be divisible by "
          f"{components} ({len(self.relative_position_functions)} positional functions"
          f"{'' if relative_position_symmetric else ' x 2 signs'})")
    self.num_relative_position_features = num_relative_position_features
    self.positional_dropout_rate = positional_dropout_rate

    init = initializer or snt.initializers.VarianceScaling(scale=2.0)
    key_proj_size = key_size * num_heads
    embedding_size = value_size * num_heads
    self.q_layer = snt.Linear(key_proj_size, with_bias=False, w_init=init, name="q_layer")
    self.k_layer = snt.Linear(key_proj_size, with_bias=False, w_init=init, name="k_layer")
    self.v_layer = snt.Linear(embedding_size, with_bias=False, w_init=init, name="v_layer")
    self.embedding_layer = snt.Linear(
        embedding_size, w_init=snt.initializers.Zeros() if zero_initialize else init,
        name="embedding_layer")
    if relative_positions:
      self.r_k_layer = snt.Linear(key_proj_size, with_bias=False, w_init=init, name="r_k_layer")
      self.r_w_bias = tf.Variable(init([1, num_heads, 1, key_size], tf.float32), name="r_w_bias")
      self.r_r_bias = tf.Variable(init([1, num_heads, 1, key_size], tf.float32), name="r_r_bias")

  def _split_heads(self, linear: snt.Linear, inputs: tf.Tensor) -> tf.Tensor:
    """[B, T, C] -> [B, H, T, C'] with C' = projected channels / H."""
    projected = linear(inputs)
    batch, length, channels = shape_list(projected)
    projected = tf.reshape(projected, [batch, length, self.num_heads, channels // self.num_heads])
    return tf.transpose(projected, [0, 2, 1, 3])

  def __call__(self, inputs: tf.Tensor, is_training: bool = False,
               return_weights: bool = False):
    """[B, T, C] -> [B, T, H * V]; with `return_weights`, also the attention weights
    [B, H, T, T] (query, key) before attention dropout."""
    q = self._split_heads(self.q_layer, inputs)
    k = self._split_heads(self.k_layer, inputs)
    v = self._split_heads(self.v_layer, inputs)
    if self.scaling:
      q *= self.key_size**-0.5

    if self.relative_positions:
      seq_length = shape_list(inputs)[1]
      distances = tf.range(-seq_length + 1, seq_length, dtype=tf.float32)[tf.newaxis]
      features = positional_features(
          distances, self.num_relative_position_features, seq_length,
          self.relative_position_functions, self.relative_position_symmetric)  # [1, 2T-1, F]
      if is_training:
        features = tf.nn.dropout(features, rate=self.positional_dropout_rate)
      r_k = self._split_heads(self.r_k_layer, features)  # [1, H, 2T-1, K]
      content_logits = tf.matmul(q + self.r_w_bias, k, transpose_b=True)
      relative_logits = relative_shift(tf.matmul(q + self.r_r_bias, r_k, transpose_b=True))
      logits = content_logits + relative_logits
    else:
      logits = tf.matmul(q, k, transpose_b=True)
    if self.attention_window is not None:
      logits += local_attention_bias(shape_list(inputs)[1], self.attention_window)

    probabilities = tf.nn.softmax(logits)
    weights = probabilities
    if is_training:
      weights = tf.nn.dropout(weights, rate=self.attention_dropout_rate)
    attended = tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3])  # [B, T, H, V]
    batch, length, _, _ = shape_list(attended)
    attended = tf.reshape(attended, [batch, length, self.num_heads * self.value_size])
    outputs = self.embedding_layer(attended)
    return (outputs, probabilities) if return_weights else outputs
