"""LSTMs with PyTorch's parameterisation (`torch.nn.LSTM`, one layer, batch_first).

PyTorch keeps two biases per direction (b_ih and b_hh, both trained, both initialised
U(±1/sqrt(H))) and stacks the gates in the order i, f, g, o. `snt.LSTM` has the same gate
order but a single bias (and adds forget_bias = 1 at init), so it cannot reproduce a
PyTorch parameter count or initial distribution; these modules can.

    i, f, g, o = split(x_t W_ih + b_ih + h_{t-1} W_hh + b_hh, 4)
    c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g);   h_t = sigmoid(o) tanh(c_t)

with zero initial state. The bidirectional layer runs the reverse direction on the
time-reversed input, re-reverses its outputs and concatenates [forward, backward] on the
channel axis, exactly like `bidirectional=True`.

Variables per direction: w_ih [in, 4H] (= PyTorch weight_ih_l0 transposed), w_hh [H, 4H],
b_ih [4H], b_hh [4H].
"""

from __future__ import annotations

import math
from typing import Optional

import sonnet as snt
import tensorflow as tf


class LSTMWeights(snt.Module):
  """The four parameters of one LSTM direction, PyTorch default init U(±1/sqrt(H))."""

  def __init__(self, input_size: int, hidden_size: int, name: Optional[str] = None):
    super().__init__(name=name)
    if input_size <= 0 or hidden_size <= 0:
      raise ValueError(f"LSTM sizes must be positive, got input {input_size}, hidden {hidden_size}")
    self.input_size = input_size
    self.hidden_size = hidden_size
    bound = 1.0 / math.sqrt(hidden_size)
    init = snt.initializers.RandomUniform(-bound, bound)
    gates = 4 * hidden_size
    self.w_ih = tf.Variable(init([input_size, gates], tf.float32), name="w_ih")
    self.w_hh = tf.Variable(init([hidden_size, gates], tf.float32), name="w_hh")
    self.b_ih = tf.Variable(init([gates], tf.float32), name="b_ih")
    self.b_hh = tf.Variable(init([gates], tf.float32), name="b_hh")

  def input_gates(self, inputs: tf.Tensor) -> tf.Tensor:
    """The time-parallel part of the gates: [B, L, in] -> [B, L, 4H] (both biases added)."""
    return tf.einsum("bli,ig->blg", inputs, self.w_ih) + (self.b_ih + self.b_hh)


def _recur(input_gates: tf.Tensor, w_hh: tf.Tensor) -> tf.Tensor:
  """Runs D independent LSTM recurrences in one loop.

  Args:
    input_gates: [L, D, B, 4H] precomputed input contributions, time-major.
    w_hh: [D, H, 4H] recurrent weights of each direction.
  Returns:
    hidden states [L, D, B, H].
  """
  hidden = w_hh.shape[1]
  shape = tf.shape(input_gates)
  zeros = tf.zeros([shape[1], shape[2], hidden], input_gates.dtype)

  def step(state, gates_t):
    h, c = state
    gates = gates_t + tf.matmul(h, w_hh)  # [D, B, 4H]
    i, f, g, o = tf.split(gates, 4, axis=-1)  # PyTorch gate order
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    h = tf.sigmoid(o) * tf.tanh(c)
    return h, c

  hs, _ = tf.scan(step, input_gates, initializer=(zeros, zeros))
  return hs


class LSTM(snt.Module):
  """Unidirectional `torch.nn.LSTM` layer (batch_first). [B, L, in] -> [B, L, H].

  `reverse=True` processes the sequence from the end (PyTorch's `_reverse` direction) and
  returns outputs aligned with the input positions.
  """

  def __init__(self, input_size: int, hidden_size: int, reverse: bool = False,
               name: Optional[str] = None):
    super().__init__(name=name)
    self.reverse = reverse
    self.cell = LSTMWeights(input_size, hidden_size, name="cell")

  def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
    x = tf.reverse(inputs, axis=[1]) if self.reverse else inputs
    gates = tf.transpose(self.cell.input_gates(x), [1, 0, 2])[:, tf.newaxis]  # [L, 1, B, 4H]
    hs = tf.transpose(_recur(gates, self.cell.w_hh[tf.newaxis])[:, 0], [1, 0, 2])
    return tf.reverse(hs, axis=[1]) if self.reverse else hs


class BidirectionalLSTM(snt.Module):
  """`torch.nn.LSTM(in, H, batch_first=True, bidirectional=True)`. [B, L, in] -> [B, L, 2H].

  Output channels [:H] are the forward direction, [H:] the backward one. Both directions
  share one time loop (a batched matmul per step), halving the sequential steps.
  """

  def __init__(self, input_size: int, hidden_size: int, name: Optional[str] = None):
    super().__init__(name=name)
    self.input_size = input_size
    self.hidden_size = hidden_size
    self.forward = LSTMWeights(input_size, hidden_size, name="forward")
    self.backward = LSTMWeights(input_size, hidden_size, name="backward")

  def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
    if inputs.shape.rank != 3 or inputs.shape[-1] != self.input_size:
      raise ValueError(f"{self.name}: expected inputs [B, L, {self.input_size}], got shape "
                       f"{inputs.shape}")
    gates = tf.stack([self.forward.input_gates(inputs),
                      self.backward.input_gates(tf.reverse(inputs, axis=[1]))])  # [2, B, L, 4H]
    hs = _recur(tf.transpose(gates, [2, 0, 1, 3]),
                tf.stack([self.forward.w_hh, self.backward.w_hh]))  # [L, 2, B, H]
    forward = tf.transpose(hs[:, 0], [1, 0, 2])
    backward = tf.reverse(tf.transpose(hs[:, 1], [1, 0, 2]), axis=[1])
    return tf.concat([forward, backward], axis=-1)
