"""Absolute (sinusoidal) position encodings (Vaswani et al. 2017): the package's one copy.

Channel 2i holds sin(p / 10000^(2i/C)), channel 2i+1 the cosine, for position p; with an odd
C the last channel is a sine. Used by Enformer's "absolute positions" ablation and by
Chromoformer's transformers (the reference's `_pos_enc`). Parameter-free.
Shapes: (T, C) -> [T, C].
"""

from __future__ import annotations

import tensorflow as tf


def sinusoidal_position_encoding(length, channels: int) -> tf.Tensor:
  """[length, channels] float32 sinusoidal encodings (`length` may be a tensor).

  Computed in float64 and rounded once, as the numpy references do: float32 angles of
  positions in the thousands would be off in the fourth digit.
  """
  if channels <= 0:
    raise ValueError(f"sinusoidal encodings need a positive number of channels, got {channels}")
  positions = tf.cast(tf.range(length), tf.float64)[:, tf.newaxis]
  frequencies = tf.exp(tf.range(0, channels, 2, dtype=tf.float64)
                       * (-tf.math.log(tf.constant(10_000.0, tf.float64)) / channels))
  angles = positions * frequencies[tf.newaxis, :]  # [T, ceil(C / 2)]
  pairs = 2 * ((channels + 1) // 2)
  table = tf.reshape(tf.stack([tf.sin(angles), tf.cos(angles)], axis=-1), [length, pairs])
  return tf.cast(table[:, :channels], tf.float32)
