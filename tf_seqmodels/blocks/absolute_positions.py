"""Absolute (sinusoidal) position encodings: Enformer's "absolute positions" ablation.

Vaswani et al. 2017: channel 2i holds sin(p / 10000^(2i/C)), channel 2i+1 the cosine, for
position p. Parameter-free, so a model using them differs from the relative-position one
only by the attention's relative-position weights. Shapes: (T, C) -> [T, C].
"""

from __future__ import annotations

import tensorflow as tf


def sinusoidal_position_encoding(length, channels: int) -> tf.Tensor:
  """[length, channels] float32 sinusoidal encodings (`length` may be a tensor)."""
  if channels % 2:
    raise ValueError(f"sinusoidal encodings need an even number of channels, got {channels}")
  positions = tf.cast(tf.range(length), tf.float32)[:, tf.newaxis]
  frequencies = tf.pow(10_000.0, -tf.range(0, channels, 2, dtype=tf.float32) / channels)
  angles = positions * frequencies[tf.newaxis, :]  # [T, C/2]
  return tf.reshape(tf.stack([tf.sin(angles), tf.cos(angles)], axis=-1), [length, channels])
