"""BPNet / ChromBPNet building blocks: valid-padded dilated residual trunk and the
profile + counts output head.

Shapes (channels-last, `VALID` padding everywhere, as in the reference Keras model):

    BPNetTrunk         [B, L, 4] -> [B, L - (k1 - 1) - (kd - 1) * sum(2^i, i=1..n), C]
    ProfileCountsHead  [B, L', C] -> {"profile": [B, output_length] logits,
                                      "logcounts": [B, 1] predicted log total counts}

At the ChromBPNet sizes (k1 = 21, kd = 3, profile kernel 75) a 2,114 bp input gives a
stream of 1,074 (8 dilated layers) or 2,034 (4 layers) positions and a 1,000 bp profile.
"""

from __future__ import annotations

from typing import Optional

import sonnet as snt
import tensorflow as tf

from tf_seqmodels.blocks.core import centre_crop


def glorot_uniform() -> snt.initializers.Initializer:
  """Keras' default kernel initialiser, so fresh models start like the reference."""
  return snt.initializers.VarianceScaling(1.0, mode="fan_avg", distribution="uniform")


def kernel_initializer(name: str) -> Optional[snt.initializers.Initializer]:
  """'glorot_uniform' (Keras/reference) or 'sonnet' (Sonnet's truncated normal default)."""
  if name == "glorot_uniform":
    return glorot_uniform()
  if name == "sonnet":
    return None
  raise ValueError(f"unknown initializer {name!r}; use 'glorot_uniform' or 'sonnet'")


class DilatedResidualStack(snt.Module):
  """`num_layers` dilated valid convolutions (dilation 2^1 .. 2^n) with cropped residuals.

  Layer i: y = ReLU(Conv1D(x, kernel k, dilation 2^i, VALID)); x = y + centre_crop(x).
  The ReLU precedes the add (post-activation residual, as in ChromBPNet).
  [B, T, C] -> [B, T - (k - 1) * sum(2^i), C].
  """

  def __init__(self, filters: int, num_layers: int, kernel_size: int = 3,
               w_init: Optional[snt.initializers.Initializer] = None,
               name: Optional[str] = None):
    super().__init__(name=name)
    if kernel_size % 2 != 1:
      raise ValueError(f"dilated kernel size must be odd (symmetric crop), got {kernel_size}")
    self.kernel_size = kernel_size
    self.convs = [
        snt.Conv1D(filters, kernel_size, rate=2**i, padding="VALID", w_init=w_init,
                   name=f"conv_{i}")
        for i in range(1, num_layers + 1)
    ]

  def length_reduction(self) -> int:
    return sum((self.kernel_size - 1) * conv.rate for conv in self.convs)

  def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
    x = inputs
    for conv in self.convs:
      # A valid conv shortens the stream by (k - 1) * rate, an even number: trim half per side.
      trim = (self.kernel_size - 1) * conv.rate // 2
      x = tf.nn.relu(conv(x)) + x[:, trim:-trim]
    return x


class BPNetTrunk(snt.Module):
  """First Conv1D(k1, VALID, ReLU) then the dilated residual stack.

  [B, L, C_in] -> [B, L - (k1 - 1) - (kd - 1) * sum(2^i), filters].
  """

  def __init__(self, filters: int, num_dilated_layers: int, first_kernel_size: int = 21,
               dilated_kernel_size: int = 3, initializer: str = "glorot_uniform",
               name: Optional[str] = None):
    super().__init__(name=name)
    w_init = kernel_initializer(initializer)
    self.first_kernel_size = first_kernel_size
    self.first_conv = snt.Conv1D(filters, first_kernel_size, padding="VALID", w_init=w_init,
                                 name="first_conv")
    self.dilated = DilatedResidualStack(filters, num_dilated_layers, dilated_kernel_size,
                                        w_init=w_init, name="dilated")

  def output_length(self, input_length: int) -> int:
    return input_length - (self.first_kernel_size - 1) - self.dilated.length_reduction()

  def __call__(self, inputs: tf.Tensor, is_training: bool = False) -> tf.Tensor:
    del is_training  # no dropout or normalisation in BPNet
    return self.dilated(tf.nn.relu(self.first_conv(inputs)))


class ProfileCountsHead(snt.Module):
  """ChromBPNet output head on any [B, L', C] feature stream.

  profile:   Conv1D(1, profile_kernel_size, VALID, linear) -> centre crop to output_length
             -> [B, output_length] unnormalised logits (a softmax gives the profile shape).
  logcounts: mean over all L' positions (the whole stream, not the cropped window)
             -> Linear(1) -> [B, 1] predicted log total counts.
  """

  def __init__(self, output_length: int, profile_kernel_size: int = 75,
               initializer: str = "glorot_uniform", name: Optional[str] = None):
    super().__init__(name=name)
    w_init = kernel_initializer(initializer)
    self.output_length = output_length
    self.profile_kernel_size = profile_kernel_size
    self.profile_conv = snt.Conv1D(1, profile_kernel_size, padding="VALID", w_init=w_init,
                                   name="profile_conv")
    self.counts_linear = snt.Linear(1, w_init=w_init, name="counts_linear")

  def min_stream_length(self) -> int:
    return self.output_length + self.profile_kernel_size - 1

  def __call__(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
    length = features.shape[1]
    if length is not None and length < self.min_stream_length():
      raise ValueError(
          f"the profile head needs a feature stream of at least {self.min_stream_length()} "
          f"positions (output_length {self.output_length} + profile kernel "
          f"{self.profile_kernel_size} - 1), got {length}")
    profile = centre_crop(self.profile_conv(features), self.output_length)
    logcounts = self.counts_linear(tf.reduce_mean(features, axis=1))
    return {"profile": tf.squeeze(profile, axis=-1), "logcounts": logcounts}

  def shift_logcounts(self, delta: float) -> None:
    """Adds `delta` to the predicted log counts (the Linear's bias); needs built variables."""
    if getattr(self.counts_linear, "b", None) is None:
      raise ValueError("the counts head has no variables yet: build the model before shifting "
                       "its log counts")
    self.counts_linear.b.assign_add(tf.fill(self.counts_linear.b.shape,
                                            tf.cast(delta, self.counts_linear.b.dtype)))
