"""Small building blocks shared by every model: activations, normalisation, residuals, crops."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import sonnet as snt
import tensorflow as tf


def shape_list(x: tf.Tensor) -> list:
  """Dimensions of `x`: Python ints where static, scalar tensors where dynamic.

  Reshapes built from it keep every static dimension, so shape inference survives
  dynamic-length tracing.
  """
  dynamic = tf.shape(x)
  return [dim if dim is not None else dynamic[i] for i, dim in enumerate(x.shape.as_list())]


def gelu_sigmoid(x: tf.Tensor) -> tf.Tensor:
  """GELU by its sigmoid approximation, x * sigmoid(1.702 x), as Enformer uses (not erf/tanh)."""
  return tf.nn.sigmoid(1.702 * x) * x


class ExponentialMovingAverage(snt.ExponentialMovingAverage):
  """Sonnet's debiased EMA whose `average` starts at `initial_value` instead of zero.

  Sonnet starts every average at zero, so a BatchNorm that has not been trained divides
  by sqrt(eps) at inference and an untrained model outputs ~1e30. Starting the variance
  at one (as Keras and PyTorch do) makes fresh models usable; the value is replaced on the
  first update (debiasing ignores it) and by imported weights, so trained models and
  reference equivalence are unaffected. Variable names and checkpoint keys are Sonnet's.
  """

  def __init__(self, decay: float, initial_value: float = 0.0, name: Optional[str] = None):
    super().__init__(decay, name=name)
    self._initial_value = initial_value

  @snt.once
  def initialize(self, value: tf.Tensor):
    self._hidden = tf.Variable(tf.zeros_like(value), trainable=False, name="hidden")
    self.average = tf.Variable(tf.ones_like(value) * self._initial_value, trainable=False,
                               name="average")


def cross_replica_batch_norm(decay: float = 0.9, eps: float = 1e-5,
                             name: Optional[str] = None) -> snt.Module:
  """BatchNorm whose statistics are all-reduced across replicas; EMA test statistics.

  Identical to a single-device BatchNorm without a distribution strategy, and the right
  thing under `snt.distribute.Replicator`/`TpuReplicator` (per-replica statistics would
  make the gradient depend on the number of devices).
  """
  return snt.distribute.CrossReplicaBatchNorm(
      create_scale=True,
      create_offset=True,
      scale_init=snt.initializers.Ones(),
      moving_mean=ExponentialMovingAverage(decay, 0.0, name="moving_mean"),
      moving_variance=ExponentialMovingAverage(decay, 1.0, name="moving_variance"),
      eps=eps,
      name=name)


class Residual(snt.Module):
  """`x + module(x, is_training)`."""

  def __init__(self, module: snt.Module, name: Optional[str] = None):
    super().__init__(name=name)
    self.module = module

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    return inputs + self.module(inputs, is_training=is_training)


class ConvBlock(snt.Module):
  """Pre-activation convolution: BatchNorm -> activation -> Conv1D.

  Shapes: [B, L, C_in] -> [B, L, filters] (padding SAME).
  """

  def __init__(self, filters: int, kernel_size: int,
               activation: Callable[[tf.Tensor], tf.Tensor] = gelu_sigmoid,
               bn_decay: float = 0.9, bn_eps: float = 1e-5,
               name: Optional[str] = None):
    super().__init__(name=name)
    self.norm = cross_replica_batch_norm(bn_decay, bn_eps, name="batch_norm")
    self.activation = activation
    self.conv = snt.Conv1D(filters, kernel_size, name="conv")

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    return self.conv(self.activation(self.norm(inputs, is_training=is_training)))


def centre_crop(inputs: tf.Tensor, length: int, axis: int = 1, context: str = "") -> tf.Tensor:
  """The central `length` positions of `inputs` along `axis`, start offset (T - length) // 2
  (the reference's; for even T - length, Keras' symmetric Cropping1D).

  The one centre crop of the package: Enformer's target crop, BPNet's profile and residual
  crops, ChromBPNet's bias-profile crop, the exported model's published-length input crop.
  Static lengths are checked at trace time (ValueError), dynamic ones (either `length` or
  the axis may be a tensor) by an assertion; `context` prefixes the message.
  """
  axis = axis % inputs.shape.rank
  total = inputs.shape[axis]
  if total is not None and isinstance(length, int):
    if total < length:
      raise ValueError(f"{context}cannot centre-crop {total} positions to {length}")
    if total == length:
      return inputs
  else:
    total = tf.shape(inputs)[axis]
    tf.debugging.assert_greater_equal(
        total, length, message=f"{context}sequence too short to centre-crop to {length}")
  start = (total - length) // 2
  index = [slice(None)] * inputs.shape.rank
  index[axis] = slice(start, start + length)
  return inputs[tuple(index)]


class TargetLengthCrop1D(snt.Module):
  """Keeps the central `target_length` positions of [B, T, C] (no-op when None or T == target).

  The start offset is (T - target) // 2, as in the reference; the result always has exactly
  `target_length` positions.
  """

  def __init__(self, target_length: Optional[int], name: Optional[str] = None):
    super().__init__(name=name)
    self.target_length = target_length

  def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
    if self.target_length is None:
      return inputs
    return centre_crop(inputs, self.target_length, axis=-2,
                       context=f"target length {self.target_length}: ")


def exponential_linspace_int(start: int, end: int, num: int, divisible_by: int = 1) -> list[int]:
  """`num` integers growing geometrically from `start` to `end`, rounded to `divisible_by`."""
  if num == 1:
    return [int(round(end / divisible_by) * divisible_by)]
  base = (end / start) ** (1.0 / (num - 1))
  # np.round semantics (half to even) as in the reference: Python's round() matches it.
  return [int(round(start * base**i / divisible_by) * divisible_by) for i in range(num)]


def count_parameters(variables: Sequence[tf.Variable]) -> int:
  """Number of scalar parameters in `variables`."""
  return int(sum(v.shape.num_elements() for v in variables))
