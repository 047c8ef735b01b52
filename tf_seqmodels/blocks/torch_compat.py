"""PyTorch semantics in Sonnet: BatchNorm1d, LayerNorm, activations and default initialisers.

Ports of PyTorch models (DREAM-CNN/RNN/Attn) must reproduce PyTorch numerics, not just its
architecture. The differences that matter:

- BatchNorm1d: `momentum` m weights the *new* batch statistic (running = (1 - m) running +
  m batch), i.e. decay 1 - m; eps 1e-5; running statistics start at 0 / 1 and are never
  debiased; running_var is updated with the *unbiased* batch variance (n / (n - 1)) while
  the batch itself is normalised with the biased one. `snt.BatchNorm` (zero-debiased EMAs,
  decay 0.999) and Keras (momentum = decay, eps 1e-3) differ on each of these points.
- LayerNorm: PyTorch's default eps is 1e-5, Sonnet's too, but models often override it (the
  Proformer uses 1e-6); both normalise with the biased variance.
- Activations: `nn.SiLU` is exactly x * sigmoid(x) (`tf.nn.silu`); `nn.GELU()` is the erf form
  (`tf.nn.gelu(approximate=False)`, not Keras' tanh approximation nor Enformer's sigmoid one).
- Default initialisers: `nn.Conv1d` / `nn.Linear` weights and biases ~ U(±1/sqrt(fan_in)) with
  fan_in = in_channels / groups * kernel_size; `nn.Embedding` ~ N(0, 1);
  `nn.MultiheadAttention.in_proj_weight` ~ Xavier-uniform, its biases 0.

Layouts: activations are channels-last [B, L, C] here (PyTorch: [B, C, L]).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import sonnet as snt
import tensorflow as tf

from tf_seqmodels.blocks.gradients import fast_gradients_active


# --- activations -------------------------------------------------------------------------------
def silu(x: tf.Tensor) -> tf.Tensor:
  """`torch.nn.SiLU`: x * sigmoid(x) (exact)."""
  return tf.nn.silu(x)


def gelu(x: tf.Tensor) -> tf.Tensor:
  """`torch.nn.GELU()` (approximate='none'): x * Phi(x) with the erf, not the tanh form."""
  return tf.nn.gelu(x, approximate=False)


ACTIVATIONS = {"silu": silu, "relu": tf.nn.relu, "gelu": gelu}


def dropout(x: tf.Tensor, rate: float, is_training: bool) -> tf.Tensor:
  """`torch.nn.Dropout`: inverted dropout while training, identity at inference."""
  if is_training and rate > 0.0:
    return tf.nn.dropout(x, rate=rate)
  return x


# --- initialisers ------------------------------------------------------------------------------
def torch_uniform(fan_in: int) -> snt.initializers.Initializer:
  """PyTorch's default Conv/Linear weight and bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

  (kaiming_uniform with a = sqrt(5) reduces to this bound.) fan_in = in / groups * kernel.
  """
  if fan_in <= 0:
    raise ValueError(f"fan_in must be positive, got {fan_in}")
  bound = 1.0 / math.sqrt(fan_in)
  return snt.initializers.RandomUniform(-bound, bound)


def xavier_uniform(fan_in: int, fan_out: int) -> snt.initializers.Initializer:
  """`torch.nn.init.xavier_uniform_`: U(±sqrt(6 / (fan_in + fan_out)))."""
  bound = math.sqrt(6.0 / (fan_in + fan_out))
  return snt.initializers.RandomUniform(-bound, bound)


# --- normalisation -----------------------------------------------------------------------------
class TorchBatchNorm(snt.Module):
  """`torch.nn.BatchNorm1d` over the last axis of [B, C] or [B, L, C] inputs.

  Training: normalises with the biased batch variance over every axis but the last and
  updates running_mean / running_var with PyTorch's momentum rule (unbiased variance), in one
  fused kernel; with `activation`, activation(BatchNorm(x)) keeps less for the backward pass
  (`_fused_activation`); inference: uses the running statistics. Inside a multi-replica
  `tf.distribute` replica context the batch moments are all-reduced (synchronised BatchNorm),
  so every replica computes the same statistics and the same running-stat update.

  Variables (created on the first call, C read from the input):
    scale [C] (PyTorch `weight`), offset [C] (`bias`): trainable.
    running_mean [C], running_var [C], num_batches_tracked (int64 scalar): not trainable.
  """

  def __init__(self, momentum: float = 0.1, eps: float = 1e-5, name: Optional[str] = None):
    super().__init__(name=name)
    if not 0.0 < momentum <= 1.0:
      raise ValueError(f"BatchNorm momentum must be in (0, 1], got {momentum}")
    if eps <= 0.0:
      raise ValueError(f"BatchNorm eps must be positive, got {eps}")
    self.momentum = momentum
    self.eps = eps

  @snt.once
  def _initialize(self, inputs: tf.Tensor) -> None:
    channels = inputs.shape[-1]
    if channels is None:
      raise ValueError(f"{self.name}: the channel axis of the input must be statically known")
    # ONLY_FIRST_REPLICA: replicas compute identical (all-reduced) updates, so assigning
    # from a replica context under a distribution strategy is well defined.
    stat = dict(trainable=False, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.scale = tf.Variable(tf.ones([channels]), name="scale")
    self.offset = tf.Variable(tf.zeros([channels]), name="offset")
    self.running_mean = tf.Variable(tf.zeros([channels]), name="running_mean", **stat)
    self.running_var = tf.Variable(tf.ones([channels]), name="running_var", **stat)
    self.num_batches_tracked = tf.Variable(tf.constant(0, tf.int64), name="num_batches_tracked",
                                           **stat)

  def _batch_moments(self, inputs: tf.Tensor, axes: list[int]):
    """(mean [C], biased variance [C], number of values per channel) of the global batch."""
    count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(inputs), axes)), inputs.dtype)
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
      mean, variance = tf.nn.moments(inputs, axes)
      return mean, variance, count
    mean = context.all_reduce("MEAN", tf.reduce_mean(inputs, axes))
    mean_of_squares = context.all_reduce("MEAN", tf.reduce_mean(tf.square(inputs), axes))
    count = count * context.num_replicas_in_sync
    return mean, tf.maximum(mean_of_squares - tf.square(mean), 0.0), count

  @staticmethod
  def _as_image(inputs: tf.Tensor) -> tf.Tensor:
    """[B, ..., C] as the [N, 1, W, C] image the fused kernels take (a reshape, no copy)."""
    return tf.reshape(inputs, [-1, 1, tf.reduce_prod(tf.shape(inputs)[1:-1]), inputs.shape[-1]])

  def _fused(self, inputs: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor):
    """Training-mode BatchNorm as one fused kernel.

    Returns (outputs, batch mean, unbiased variance, saved statistics). Same function as the
    composite ops of the multi-replica path; what changes is memory and time: the composite
    ops' gradient materialises several input-sized temporaries per BatchNorm (the broadcast
    gradient, x - mean, their product, their sum), the fused one none. FusedBatchNormV3
    normalises with the biased batch variance and returns the unbiased one (factor 1.0), which
    is what PyTorch's running_var update uses. The saved statistics are what its gradient
    kernel (FusedBatchNormGradV3) reads: on CPU the batch mean and the biased variance.
    """
    channels = inputs.shape[-1]
    outputs, mean, unbiased, saved_mean, saved_variance, reserve = tf.raw_ops.FusedBatchNormV3(
        x=self._as_image(inputs), scale=scale, offset=offset, mean=tf.zeros([channels]),
        variance=tf.ones([channels]), epsilon=self.eps, exponential_avg_factor=1.0,
        data_format="NHWC", is_training=True)
    return (tf.reshape(outputs, tf.shape(inputs)), tf.stop_gradient(mean),
            tf.stop_gradient(unbiased), (saved_mean, saved_variance, reserve))

  def _fused_activation(self, activation: Callable[[tf.Tensor], tf.Tensor]):
    """activation(BatchNorm(x)) whose gradient recomputes the normalised values from x.

    Training keeps for the backward pass only what the gradient of the next layer keeps anyway
    (x for the BatchNorm, the activation's output for the next layer), not the normalised
    tensor between them: one activation-sized tensor less per BatchNorm (a quarter of a LegNet
    block's training memory). The recomputation reuses the batch statistics the forward kernel
    saved, so it is one elementwise pass (the kernel in inference mode), not another reduction,
    and the BatchNorm gradient is the kernel TensorFlow's own gradient for the op calls.
    """
    @tf.custom_gradient
    def forward(inputs, scale, offset):
      normalised, mean, unbiased, saved = self._fused(inputs, scale, offset)

      def grad(d_outputs, d_mean, d_unbiased):
        del d_mean, d_unbiased  # the statistics only feed the running averages
        saved_mean, saved_variance, reserve = saved
        image = self._as_image(inputs)
        # The control dependency keeps Grappler from merging the recomputation with the
        # forward pass (which would keep the normalised tensor alive after all), as tf.nn.silu
        # does for its sigmoid.
        with tf.control_dependencies([d_outputs]):
          again = tf.raw_ops.FusedBatchNormV3(
              x=image, scale=scale, offset=offset, mean=saved_mean, variance=saved_variance,
              epsilon=self.eps, data_format="NHWC", is_training=False)[0]
        with tf.GradientTape() as tape:
          tape.watch(again)
          activated = activation(again)
        d_normalised = tape.gradient(activated, again,
                                     output_gradients=self._as_image(d_outputs))
        d_inputs, d_scale, d_offset = tf.raw_ops.FusedBatchNormGradV3(
            y_backprop=d_normalised, x=image, scale=scale, reserve_space_1=saved_mean,
            reserve_space_2=saved_variance, reserve_space_3=reserve, epsilon=self.eps,
            data_format="NHWC", is_training=True)[:3]
        return tf.reshape(d_inputs, tf.shape(inputs)), d_scale, d_offset

      return (activation(normalised), mean, unbiased), grad

    return forward

  def _update_running(self, mean: tf.Tensor, unbiased_variance: tf.Tensor) -> None:
    m = self.momentum
    self.running_mean.assign((1.0 - m) * self.running_mean + m * tf.stop_gradient(mean))
    self.running_var.assign((1.0 - m) * self.running_var +
                            m * tf.stop_gradient(unbiased_variance))
    self.num_batches_tracked.assign_add(1)

  def __call__(self, inputs: tf.Tensor, is_training: bool,
               activation: Optional[Callable[[tf.Tensor], tf.Tensor]] = None) -> tf.Tensor:
    """BatchNorm of `inputs`, followed by `activation` when given (fused in training)."""
    self._initialize(inputs)
    axes = list(range(inputs.shape.rank - 1))
    if is_training:
      static_count = np.prod([inputs.shape[a] for a in axes]) if all(
          inputs.shape[a] is not None for a in axes) else None
      if static_count is not None and static_count < 2:
        raise ValueError(f"{self.name}: BatchNorm in training needs more than 1 value per channel "
                         f"(as PyTorch), got input shape {inputs.shape}")
      context = tf.distribute.get_replica_context()
      if inputs.dtype == tf.float32 and (context is None or context.num_replicas_in_sync == 1):
        scale, offset = tf.convert_to_tensor(self.scale), tf.convert_to_tensor(self.offset)
        if activation is None:
          outputs, mean, unbiased, _ = self._fused(inputs, scale, offset)
        else:
          outputs, mean, unbiased = self._fused_activation(activation)(inputs, scale, offset)
        self._update_running(mean, unbiased)
        return outputs
      # Several replicas: the batch moments are all-reduced first (synchronised BatchNorm).
      mean, variance, count = self._batch_moments(inputs, axes)
      self._update_running(mean, variance * count / tf.maximum(count - 1.0, 1.0))
    else:
      mean, variance = self.running_mean, self.running_var
    outputs = tf.nn.batch_normalization(inputs, mean, variance, self.offset, self.scale, self.eps)
    return outputs if activation is None else activation(outputs)


class LayerNorm(snt.LayerNorm):
  """`snt.LayerNorm` over the last axis with scale and offset, whose training gradient keeps
  only its input.

  Autodiff through `tf.nn.batch_normalization` keeps the input and the broadcast product
  rsqrt(var + eps) * scale, a second input-sized tensor, for every LayerNorm: on DREAM-Attn's
  16 of them a tenth of the train step's peak memory. Inside `gradients.fast_gradients()`
  (the trainer's step) the same forward ops run under a hand-written gradient that recomputes
  the normalised input from the input and the saved moments:

      x_hat = (x - mean) rsqrt(var + eps);  g = dy scale
      dx = rsqrt(var + eps) (g - mean(g) - x_hat mean(g x_hat));  dscale = sum(dy x_hat);
      doffset = sum(dy)   (means over the normalised axis, sums over all others)

  Outputs are bit-identical to `snt.LayerNorm`; variables and names are its own.
  """

  def __init__(self, eps: float = 1e-5, name: Optional[str] = None):
    super().__init__(axis=-1, create_scale=True, create_offset=True, eps=eps, name=name)

  def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
    if not fast_gradients_active():
      return super().__call__(inputs)
    self._initialize(inputs)
    eps = self._eps
    batch_axes = list(range(inputs.shape.rank - 1))

    @tf.custom_gradient
    def normalize(x, scale, offset):
      mean, variance = tf.nn.moments(x, [-1], keepdims=True)
      outputs = tf.nn.batch_normalization(x, mean, variance, offset, scale, eps)

      def grad(dy):
        # Recomputed only once dy exists: without the dependency the executor would rebuild
        # every LayerNorm's x_hat as soon as the forward pass ends.
        with tf.control_dependencies([dy]):
          inverse = tf.math.rsqrt(variance + eps)
          x_hat = (x - mean) * inverse
        g = dy * scale
        dx = inverse * (g - tf.reduce_mean(g, -1, keepdims=True)
                        - x_hat * tf.reduce_mean(g * x_hat, -1, keepdims=True))
        return (dx, tf.reduce_sum(dy * x_hat, batch_axes), tf.reduce_sum(dy, batch_axes))

      return outputs, grad

    return normalize(inputs, tf.convert_to_tensor(self.scale), tf.convert_to_tensor(self.offset))


def layer_norm(eps: float = 1e-5, name: Optional[str] = None) -> LayerNorm:
  """`torch.nn.LayerNorm(C, eps)` over the last axis: variables scale [C] / offset [C]."""
  return LayerNorm(eps=eps, name=name)
