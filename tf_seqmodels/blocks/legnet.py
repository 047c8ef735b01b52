"""LegNet / Autosome.org pieces (Penzar et al. 2023): EfficientNetV2-style blocks for DNA.

    GroupedConv1D          grouped conv, [B, L, C_in] -> [B, L, C_out], trains on CPU
    SqueezeExcitation      x * sigmoid(MLP(mean_L x)), [B, L, C] -> [B, L, C]
    ConvBatchNormAct       Conv1D (no bias) -> BatchNorm -> activation
    InvertedResidual       1x1 expand -> grouped conv -> SE -> 1x1 project, [B, L, P] -> [B, L, P]
    LegNetBlock            concat([x, InvertedResidual(x)]) -> ConvBatchNormAct,
                           [B, L, P] -> [B, L, S]
    LegNetCore             a chain of LegNetBlocks: [B, L, C_in] -> [B, L, block_sizes[-1]]

Every convolution is 'same'-padded with stride 1, so the length never changes. BatchNorm
is PyTorch's (`torch_compat.TorchBatchNorm`, momentum 0.1, eps 1e-5). Initialisation follows the
Autosome `initialize_weights`: conv W ~ N(0, sqrt(2 / (k * out_channels))), Linear
W ~ N(0, 0.001), biases 0, BN scale 1 / offset 0.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import sonnet as snt
import tensorflow as tf

from tf_seqmodels.blocks.convolution import Conv1D
from tf_seqmodels.blocks.torch_compat import TorchBatchNorm, silu


def autosome_conv_init(kernel_size: int, out_channels: int) -> snt.initializers.Initializer:
  """Autosome conv init: N(0, sqrt(2 / (kernel_size * out_channels)))."""
  return snt.initializers.RandomNormal(stddev=math.sqrt(2.0 / (kernel_size * out_channels)))


def autosome_linear_init() -> snt.initializers.Initializer:
  """Autosome Linear init: N(0, 0.001) (the std, as in the reference)."""
  return snt.initializers.RandomNormal(stddev=0.001)


class GroupedConv1D(snt.Module):
  """Grouped 1-D convolution ('same' padding, stride 1) that also trains on CPU.

  TensorFlow's grouped `conv1d` runs forward on CPU but has no CPU gradient, and
  `snt.Conv1D` has no `groups`. Exact reformulation: with n_in = C_in / groups and
  n_out = C_out / groups, a depthwise conv with channel multiplier n_out and filter
  D[k, n_in * g + i, o] = w[k, i, n_out * g + o] gives, for each input channel of group g,
  its contribution to each output channel of g; summing over the n_in channels of the
  group gives the grouped conv. groups == C_in is an ordinary depthwise conv.

  Shapes: [B, L, C_in] -> [B, L, C_out].
  Variables: w [k, C_in / groups, C_out] (TF's grouped-conv layout; PyTorch's
  (C_out, C_in / groups, k) transposed), optional b [C_out].
  """

  def __init__(self,
               in_channels: int,
               out_channels: int,
               kernel_size: int,
               groups: int,
               with_bias: bool = False,
               w_init: Optional[snt.initializers.Initializer] = None,
               b_init: Optional[snt.initializers.Initializer] = None,
               name: Optional[str] = None):
    super().__init__(name=name)
    if min(in_channels, out_channels, kernel_size, groups) <= 0:
      raise ValueError(f"GroupedConv1D arguments must be positive, got in={in_channels}, "
                       f"out={out_channels}, kernel={kernel_size}, groups={groups}")
    if in_channels % groups or out_channels % groups:
      raise ValueError(f"in_channels {in_channels} and out_channels {out_channels} must both be "
                       f"divisible by groups {groups}")
    self.in_channels = in_channels
    self.out_channels = out_channels
    self.kernel_size = kernel_size
    self.groups = groups
    self.in_per_group = in_channels // groups
    self.out_per_group = out_channels // groups
    w_init = w_init or snt.initializers.TruncatedNormal(
        stddev=1.0 / math.sqrt(self.in_per_group * kernel_size))
    self.w = tf.Variable(w_init([kernel_size, self.in_per_group, out_channels], tf.float32),
                         name="w")
    b_init = b_init or snt.initializers.Zeros()
    self.b = tf.Variable(b_init([out_channels], tf.float32), name="b") if with_bias else None

  def depthwise_filter(self) -> tf.Tensor:
    """w rearranged as the depthwise filter D [1, k, C_in, n_out] described above."""
    k, n_in, n_out, g = self.kernel_size, self.in_per_group, self.out_per_group, self.groups
    w = tf.reshape(self.w, [k, n_in, g, n_out])
    w = tf.transpose(w, [0, 2, 1, 3])  # [k, g, n_in, n_out]
    return tf.reshape(w, [1, k, self.in_channels, n_out])

  def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
    if inputs.shape[-1] != self.in_channels:
      raise ValueError(f"{self.name}: expected {self.in_channels} input channels, got shape "
                       f"{inputs.shape}")
    # expand_dims / squeeze rather than slicing: their gradients are reshapes, a slice's is a
    # StridedSliceGrad that writes a new activation-sized tensor.
    y = tf.squeeze(tf.nn.depthwise_conv2d(tf.expand_dims(inputs, 1), self.depthwise_filter(),
                                          strides=[1, 1, 1, 1], padding="SAME"), 1)
    if self.in_per_group > 1:  # sum the contributions of a group's input channels
      shape = tf.shape(y)
      y = tf.reshape(y, [shape[0], shape[1], self.groups, self.in_per_group, self.out_per_group])
      y = tf.reshape(tf.reduce_sum(y, axis=3), [shape[0], shape[1], self.out_channels])
    if self.b is not None:
      y = y + self.b
    return y


class SqueezeExcitation(snt.Module):
  """Squeeze-excitation (Prix Fixe `SELayerSimple`): x * sigmoid(W2 silu(W1 mean_L(x))).

  Shapes: [B, L, C] -> [B, L, C]; the hidden width is given explicitly (LegNet derives it
  from the block's *input* width, not from C).
  """

  def __init__(self, channels: int, hidden: int, name: Optional[str] = None):
    super().__init__(name=name)
    if hidden <= 0:
      raise ValueError(f"SqueezeExcitation hidden width must be positive, got {hidden}")
    init = autosome_linear_init()
    self.squeeze = snt.Linear(hidden, w_init=init, name="squeeze")
    self.excite = snt.Linear(channels, w_init=init, name="excite")

  def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
    gate = tf.reduce_mean(inputs, axis=1)  # [B, C]
    gate = tf.nn.sigmoid(self.excite(silu(self.squeeze(gate))))
    return inputs * gate[:, tf.newaxis, :]


class ConvBatchNormAct(snt.Module):
  """Conv1D (no bias, 'same') -> PyTorch BatchNorm -> activation. [B, L, C_in] -> [B, L, out]."""

  def __init__(self,
               out_channels: int,
               kernel_size: int,
               activation: Callable[[tf.Tensor], tf.Tensor] = silu,
               bn_momentum: float = 0.1,
               bn_eps: float = 1e-5,
               name: Optional[str] = None):
    super().__init__(name=name)
    self.conv = Conv1D(out_channels, kernel_size, padding="SAME", with_bias=False,
                       w_init=autosome_conv_init(kernel_size, out_channels), name="conv")
    self.norm = TorchBatchNorm(bn_momentum, bn_eps, name="norm")
    self.activation = activation

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    return self.norm(self.conv(inputs), is_training=is_training, activation=self.activation)


class InvertedResidual(snt.Module):
  """LegNet's inverted-residual branch (no skip here; LegNetBlock concatenates instead).

    1x1 conv P -> E, BN, SiLU -> grouped conv k (filters_per_group channels per group), BN,
    SiLU -> SE (hidden P // se_reduction) -> 1x1 conv E -> P, BN, SiLU

  Shapes: [B, L, P] -> [B, L, P], with expanded width E.
  """

  def __init__(self,
               in_channels: int,
               expanded_channels: int,
               kernel_size: int = 7,
               filters_per_group: int = 2,
               se_reduction: int = 4,
               activation: Callable[[tf.Tensor], tf.Tensor] = silu,
               bn_momentum: float = 0.1,
               bn_eps: float = 1e-5,
               name: Optional[str] = None):
    super().__init__(name=name)
    if expanded_channels % filters_per_group:
      raise ValueError(f"expanded width {expanded_channels} must be divisible by "
                       f"filters_per_group {filters_per_group}")
    e = expanded_channels
    self.activation = activation
    self.expand = Conv1D(e, 1, with_bias=False, w_init=autosome_conv_init(1, e), name="expand")
    self.expand_norm = TorchBatchNorm(bn_momentum, bn_eps, name="expand_norm")
    self.grouped = GroupedConv1D(e, e, kernel_size, groups=e // filters_per_group,
                                 w_init=autosome_conv_init(kernel_size, e), name="grouped")
    self.grouped_norm = TorchBatchNorm(bn_momentum, bn_eps, name="grouped_norm")
    self.se = SqueezeExcitation(e, in_channels // se_reduction, name="se")
    self.project = Conv1D(in_channels, 1, with_bias=False,
                          w_init=autosome_conv_init(1, in_channels), name="project")
    self.project_norm = TorchBatchNorm(bn_momentum, bn_eps, name="project_norm")

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    act = self.activation
    # BatchNorm + activation as one call: in training its gradient recomputes the normalised
    # values instead of keeping them (TorchBatchNorm._fused_activation).
    x = self.expand_norm(self.expand(inputs), is_training=is_training, activation=act)
    x = self.grouped_norm(self.grouped(x), is_training=is_training, activation=act)
    x = self.se(x)
    return self.project_norm(self.project(x), is_training=is_training, activation=act)


class LegNetBlock(snt.Module):
  """concat([x, InvertedResidual(x)], channels) -> ConvBatchNormAct(S, k). [B, L, P] -> [B, L, S].

  The expanded width is resize_factor * S (the block's *output* width), the SE hidden width
  P // se_reduction (its *input* width), as in the reference.
  """

  def __init__(self,
               in_channels: int,
               out_channels: int,
               kernel_size: int = 7,
               resize_factor: int = 4,
               filters_per_group: int = 2,
               se_reduction: int = 4,
               activation: Callable[[tf.Tensor], tf.Tensor] = silu,
               bn_momentum: float = 0.1,
               bn_eps: float = 1e-5,
               name: Optional[str] = None):
    super().__init__(name=name)
    self.inverted_residual = InvertedResidual(
        in_channels, out_channels * resize_factor, kernel_size, filters_per_group, se_reduction,
        activation, bn_momentum, bn_eps, name="inverted_residual")
    self.resize = ConvBatchNormAct(out_channels, kernel_size, activation, bn_momentum, bn_eps,
                                   name="resize")

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    x = tf.concat([inputs, self.inverted_residual(inputs, is_training=is_training)], axis=-1)
    return self.resize(x, is_training=is_training)


class LegNetCore(snt.Module):
  """The Autosome core (DREAM-CNN): LegNetBlocks in_channels -> block_sizes[0] -> ... -> [-1].

  Shapes: [B, L, in_channels] -> [B, L, block_sizes[-1]]. At the DREAM-CNN setting
  (in 320, block_sizes (128, 128, 64, 64, 64, 64)) it has 1,909,440 parameters.
  """

  def __init__(self,
               in_channels: int,
               block_sizes: Sequence[int] = (128, 128, 64, 64, 64, 64),
               kernel_size: int = 7,
               resize_factor: int = 4,
               filters_per_group: int = 2,
               se_reduction: int = 4,
               activation: Callable[[tf.Tensor], tf.Tensor] = silu,
               bn_momentum: float = 0.1,
               bn_eps: float = 1e-5,
               name: Optional[str] = None):
    super().__init__(name=name)
    if not block_sizes:
      raise ValueError("LegNetCore needs at least one block size")
    widths = [in_channels, *block_sizes]
    self.out_channels = widths[-1]
    self.blocks = [
        LegNetBlock(prev, size, kernel_size, resize_factor, filters_per_group, se_reduction,
                    activation, bn_momentum, bn_eps, name=f"block_{i}")
        for i, (prev, size) in enumerate(zip(widths[:-1], widths[1:]))
    ]

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    x = inputs
    for block in self.blocks:
      x = block(x, is_training=is_training)
    return x
