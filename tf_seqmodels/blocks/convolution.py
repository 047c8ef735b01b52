"""Conv1D: `snt.Conv1D` whose gradient is cheaper on CPU.

TensorFlow's CPU kernels for the gradients of a convolution (Conv2DBackpropInput and
Conv2DBackpropFilter; a 1-D convolution runs as a 2-D one of height 1) take two to three
times the time of the forward convolution with the same FLOPs. At stride 1 both gradients are
themselves a forward convolution and a matrix product:

    y[l]    = sum_j xp[l + j r] w[j]                    (xp: x padded by (before, after))
    dx      = VALID conv of dy padded by (s - before, s - after), kernel w flipped along j
              and transposed to [k, C_out, C_in]        (s = (k - 1) r, the kernel's span)
    dw[j]   = sum_l xp[l + j r]^T dy[l]                 one [C_in, N] x [N, k C_out] product
              against k shifted copies of the narrower of x and dy (TensorFlow's kernel,
              or dilated one product per tap, when those copies would be wide: k x that
              width > 1024 channels)

On a 2-core CPU (DREAM-CNN's k=7, 640 -> 128 convolution at batch 256) the input gradient
takes 0.54 instead of 1.12 CPU-s and the filter gradient 0.62 instead of 0.86. The forward
pass is the op `snt.Conv1D` runs, so outputs are bit-identical; gradients agree to float32
rounding. Variables, names and checkpoints are `snt.Conv1D`'s.

Used by the DREAM blocks (LegNet, Prix Fixe, Proformer), where it was measured and where the
trained models match their references. Enformer, BPNet and the dilated blocks keep
`snt.Conv1D`: trained with this gradient, the demo Enformer of `tests/test_synthetic.py` ended
worse than with TensorFlow's in 6 of 7 seeds (3 of them below the test's bar, against none),
although its per-step gradients agree to rounding except for the biases that feed a
BatchNorm (whose true gradient is zero). The gap is not the run's sensitivity to rounding
alone: with the gradient clipping the test now uses, seeds 0 and 2 of 7 still stay at the
baseline with this gradient and the rest end lower, while all 7 clear the test's bars with
TensorFlow's. Until that is understood they do not use it.

The gradient is on only in graphs traced inside `gradients.fast_gradients()` (the trainer's
step; elsewhere the plain op keeps DeepLIFT's per-op rules and exports simple). GPUs and
TPUs have fast gradient kernels (and the shifted copies would cost accelerator memory), so
when one is visible the layer is exactly `snt.Conv1D` there too.
"""

from __future__ import annotations

import functools

import sonnet as snt
import tensorflow as tf

from tf_seqmodels.blocks.gradients import fast_gradients_active


# Above this many channels (k x the narrower of C_in, C_out) the shifted copies the filter
# gradient multiplies against would take more memory than they save time (e.g. k=5 at 768
# channels), so the filter gradient uses TensorFlow's kernel (or, dilated, one product per
# kernel tap). DREAM-CNN's widest case is 7 x 128 = 896; DREAM-RNN's k=15, 640 -> 160
# convolutions (2400) take TensorFlow's kernel.
_MAX_SHIFTED_CHANNELS = 1024


@functools.lru_cache(maxsize=None)
def _accelerator_visible() -> bool:
  return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def _paddings(kernel_size: int, rate: int, padding: str) -> tuple[int, int]:
  """(before, after) padding of the length axis, as TensorFlow pads for `padding`."""
  span = (kernel_size - 1) * rate
  if padding == "VALID":
    return 0, 0
  return span // 2, span - span // 2  # SAME: the extra element goes after, as in TF


def conv1d(inputs: tf.Tensor, filters: tf.Tensor, rate: int = 1,
           padding: str = "SAME") -> tf.Tensor:
  """`tf.nn.convolution` at stride 1, NWC; inside `fast_gradients()` (and with no GPU or TPU
  visible) with the CPU gradient described above.

  Shapes: inputs [B, L, C_in], filters [k, C_in, C_out] -> [B, L_out, C_out].
  """
  if padding not in ("SAME", "VALID"):
    raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")

  def forward(x, w):
    return tf.nn.convolution(x, w, padding=padding, dilations=rate)

  if not fast_gradients_active() or _accelerator_visible():
    return forward(inputs, filters)

  @tf.custom_gradient
  def convolve(x, w):
    outputs = forward(x, w)

    def grad(d_outputs):
      kernel_size, in_channels, out_channels = w.shape
      before, after = _paddings(kernel_size, rate, padding)
      span = (kernel_size - 1) * rate
      # The padded (and shifted) copies of x depend on x alone: without this dependency the
      # executor builds them for every layer as soon as x exists, in the forward pass, and
      # holds them until the backward pass reaches the layer.
      with tf.control_dependencies([d_outputs]):
        padded = tf.pad(x, [[0, 0], [before, after], [0, 0]]) if span else tf.identity(x)
        flipped = tf.transpose(tf.reverse(w, [0]), [0, 2, 1])
      d_inputs = tf.nn.convolution(
          tf.pad(d_outputs, [[0, 0], [span - before, span - after], [0, 0]]), flipped,
          padding="VALID", dilations=rate)
      out_length = tf.shape(d_outputs)[1]
      narrower = min(in_channels, out_channels)
      flat_d_outputs = tf.reshape(d_outputs, [-1, out_channels])
      if kernel_size * narrower > _MAX_SHIFTED_CHANNELS and rate == 1:
        # k shifted copies of a wide tensor would cost k activations of memory: TensorFlow's
        # kernel (measured a little faster than the per-tap products below).
        d_filters = tf.raw_ops.Conv2DBackpropFilter(
            input=tf.expand_dims(x, 1), filter_sizes=[1, kernel_size, in_channels, out_channels],
            out_backprop=tf.expand_dims(d_outputs, 1), strides=[1, 1, 1, 1],
            padding=padding)[0]
      elif kernel_size * narrower > _MAX_SHIFTED_CHANNELS:
        # The same with dilation, which TensorFlow's CPU kernel does not support: one
        # [C_in, N] x [N, C_out] product per kernel tap, one window at a time.
        d_filters = tf.stack([
            tf.matmul(tf.reshape(padded[:, j * rate:j * rate + out_length], [-1, in_channels]),
                      flat_d_outputs, transpose_a=True) for j in range(kernel_size)])
      elif kernel_size == 1:
        d_filters = tf.matmul(tf.reshape(padded, [-1, in_channels]), flat_d_outputs,
                              transpose_a=True)[tf.newaxis]
      elif in_channels <= out_channels:
        # k shifted windows of x against dy: [k C_in, N] x [N, C_out].
        windows = tf.concat([padded[:, j * rate:j * rate + out_length]
                             for j in range(kernel_size)], axis=-1)
        d_filters = tf.matmul(tf.reshape(windows, [-1, kernel_size * in_channels]),
                              flat_d_outputs, transpose_a=True)
        d_filters = tf.reshape(d_filters, [kernel_size, in_channels, out_channels])
      else:
        # x against k shifted copies of dy (dy placed at offset j r in a padded-length frame):
        # [C_in, N'] x [N', k C_out].
        shifted = tf.concat([tf.pad(d_outputs, [[0, 0], [j * rate, span - j * rate], [0, 0]])
                             for j in range(kernel_size)], axis=-1)
        d_filters = tf.matmul(tf.reshape(padded, [-1, in_channels]),
                              tf.reshape(shifted, [-1, kernel_size * out_channels]),
                              transpose_a=True)
        d_filters = tf.transpose(tf.reshape(d_filters, [in_channels, kernel_size, out_channels]),
                                 [1, 0, 2])
      return d_inputs, d_filters

    return outputs, grad

  return convolve(inputs, filters)


class Conv1D(snt.Conv1D):
  """`snt.Conv1D` (same arguments, variables and outputs) with `conv1d`'s CPU gradient.

  Stride 1 with 'SAME' or 'VALID' padding, channels last, takes the faster gradient inside
  `fast_gradients()`; any other configuration, or a call outside it, is plain `snt.Conv1D`.
  """

  def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
    stride, rate = (v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else v
                    for v in (self.stride, self.rate))
    if stride != 1 or self.padding_func is not None or self.data_format != "NWC":
      return super().__call__(inputs)
    self._initialize(inputs)
    outputs = conv1d(inputs, self.w, rate=rate, padding=self.conv_padding)
    if self.with_bias:
      outputs = tf.nn.bias_add(outputs, self.b)
    return outputs
