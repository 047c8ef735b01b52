"""LSTMs with PyTorch's parameterisation (`torch.nn.LSTM`, one layer, batch_first).

PyTorch keeps two biases per direction (b_ih and b_hh, both trained, both initialised
U(±1/sqrt(H))) and stacks the gates in the order i, f, g, o. `snt.LSTM` has the same gate
order but a single bias (and adds forget_bias = 1 at init), so it cannot reproduce a
PyTorch parameter count or initial distribution; these modules can.

    i, f, g, o = split(x_t W_ih + b_ih + h_{t-1} W_hh + b_hh, 4)
    c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g);   h_t = sigmoid(o) tanh(c_t)

with zero initial state. The bidirectional layer runs the reverse direction from the last
position to the first and concatenates [forward, backward] on the channel axis, exactly like
`bidirectional=True`.

Variables per direction: w_ih [in, 4H] (= PyTorch weight_ih_l0 transposed), w_hh [H, 4H],
b_ih [4H], b_hh [4H].

Training memory. Autodiff through the time loop keeps seven [B, H] tensors per step and
direction and builds the gate gradients [L, B, 4H] before projecting them back to the input.
Inside `gradients.fast_gradients()` (the trainer's step) the layers instead run
`_recurrence_with_bptt`, whose hand-written backward pass (backpropagation through time)
keeps only the activated gates, cells and hidden states (six [B, H] per step) and projects
each step's gate gradients onto the input and the weights as it goes. On DREAM-RNN (batch
256, 2-core CPU) that cut the allocator's peak by a third. The forward pass is the same ops,
so outputs are identical; gradients agree with autodiff's to float32 rounding
(tests/test_recurrent.py).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import sonnet as snt
import tensorflow as tf

from tf_seqmodels.blocks.gradients import fast_gradients_active


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
    """The time-parallel part of the gates: [..., in] -> [..., 4H] (both biases added)."""
    return tf.tensordot(inputs, self.w_ih, 1) + (self.b_ih + self.b_hh)


def _cell(gates: tf.Tensor, c_prev: tf.Tensor):
  """One step from the pre-activation gates [B, 4H]: (h, c, (i, f, g, o) activated)."""
  i, f, g, o = tf.split(gates, 4, axis=-1)  # PyTorch gate order
  i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
  c = f * c_prev + i * g
  return o * tf.tanh(c), c, (i, f, g, o)


class _Direction(NamedTuple):
  weights: LSTMWeights
  reverse: bool  # processes the sequence from its last position to its first


def _recurrence(inputs: tf.Tensor, directions: Sequence[_Direction]) -> list:
  """Hidden states [L, B, H] of each direction, by position, from time-major inputs [L, B, in].

  Autodiff differentiates this version. Each direction keeps its own tensors, all
  time-major: stacking the directions into one [L, D, B, 4H] operand (one batched matmul
  per step) cost a gates-sized copy and a transpose of the gate gradients each way, the
  largest tensors of a DREAM-RNN step.
  """
  hidden = directions[0].weights.hidden_size
  zeros = tf.zeros([tf.shape(inputs)[1], hidden], inputs.dtype)
  sequences = [tf.reverse(inputs, [0]) if d.reverse else inputs for d in directions]
  gates = tuple(d.weights.input_gates(x) for d, x in zip(directions, sequences))

  def step(states, gates_t):
    new_states = []
    for (h, c), gates_in, d in zip(states, gates_t, directions):
      h, c, _ = _cell(gates_in + tf.matmul(h, d.weights.w_hh), c)
      new_states.append((h, c))
    return tuple(new_states)

  states = tf.scan(step, gates, initializer=tuple((zeros, zeros) for _ in directions))
  return [tf.reverse(h, [0]) if d.reverse else h for (h, _), d in zip(states, directions)]


def _recurrence_with_bptt(inputs: tf.Tensor, directions: Sequence[_Direction]) -> list:
  """`_recurrence` with a hand-written backward pass (see the module docstring).

  The forward loop stores, per direction and position, the activated gates, the cell and
  the hidden state, each in a TensorArray with one zero entry on the side the recurrence
  starts from (so a step's previous state is always the neighbouring entry). The backward
  loop walks each direction in reverse order and, per step, turns dh into the gate
  gradients dz = d(pre-activation gates), then projects dz onto the input (dx_t = dz W_ih^T),
  the previous hidden state (dz W_hh^T) and the weights (x_t^T dz, h_{t-1}^T dz, sum dz),
  so no [L, B, 4H] tensor is kept.
  """
  params = []
  for d in directions:
    params += [tf.convert_to_tensor(d.weights.w_ih), tf.convert_to_tensor(d.weights.w_hh),
               d.weights.b_ih + d.weights.b_hh]
  hidden = directions[0].weights.hidden_size
  reverse = [d.reverse for d in directions]

  @tf.custom_gradient
  def recurrence(x, *weights):
    w_ih, w_hh, bias = weights[0::3], weights[1::3], weights[2::3]
    length, batch = tf.shape(x)[0], tf.shape(x)[1]
    zeros = tf.zeros([batch, hidden], x.dtype)

    def position(s, backwards):  # the position a direction processes at its step s
      return length - 1 - s if backwards else s

    def entry(t, backwards):  # index of position t in a padded (L + 1)-entry array
      return t if backwards else t + 1

    def padded_array(backwards):
      return tf.TensorArray(x.dtype, size=length + 1, element_shape=[None, hidden],
                            clear_after_read=False).write(length if backwards else 0, zeros)

    gates_in = [tf.tensordot(x, w, 1) + b for w, b in zip(w_ih, bias)]  # [L, B, 4H] each
    arrays = [[padded_array(r) for _ in range(6)] for r in reverse]  # i, f, g, o, c, h

    def forward_step(s, states, arrays):
      new_states, new_arrays = [], []
      for (h, c), saved, gates, w, r in zip(states, arrays, gates_in, w_hh, reverse):
        t = position(s, r)
        h, c, act = _cell(tf.gather(gates, t) + tf.matmul(h, w), c)
        new_states.append((h, c))
        new_arrays.append([a.write(entry(t, r), v) for a, v in zip(saved, act + (c, h))])
      return s + 1, new_states, new_arrays

    _, _, arrays = tf.while_loop(
        lambda s, *_: s < length, forward_step,
        (tf.constant(0), [(zeros, zeros) for _ in directions], arrays))
    # Hidden states by position: drop each padded array's zero entry.
    hidden_all = [a[5].stack() for a in arrays]
    outputs = [h[:length] if r else h[1:] for h, r in zip(hidden_all, reverse)]

    def grad(*d_outputs):
      d_outputs = [tf.zeros_like(h) if d is None else d for d, h in zip(d_outputs, outputs)]

      def backward_step(s, carries, sums, dx_arrays):
        new_carries, new_sums, new_dx = [], [], []
        for (dh_next, dc_next), (dw_ih, dw_hh, db), dx_array, saved, h_all, d_out, w_i, w_h, r \
            in zip(carries, sums, dx_arrays, arrays, hidden_all, d_outputs, w_ih, w_hh, reverse):
          t = position(length - 1 - s, r)  # this direction's steps, last first
          here, before = entry(t, r), entry(t, r) + (1 if r else -1)
          i, f, g, o, c = (a.read(here) for a in saved[:5])
          c_prev, h_prev = saved[4].read(before), tf.gather(h_all, before)
          dh = tf.gather(d_out, t) + dh_next
          tanh_c = tf.tanh(c)
          dc = dc_next + dh * o * (1 - tanh_c * tanh_c)
          dz = tf.concat([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                          dc * i * (1 - g * g), dh * tanh_c * o * (1 - o)], axis=-1)
          new_carries.append((tf.matmul(dz, w_h, transpose_b=True), dc * f))
          new_sums.append((dw_ih + tf.matmul(tf.gather(x, t), dz, transpose_a=True),
                           dw_hh + tf.matmul(h_prev, dz, transpose_a=True),
                           db + tf.reduce_sum(dz, axis=0)))
          new_dx.append(dx_array.write(t, tf.matmul(dz, w_i, transpose_b=True)))
        return s + 1, new_carries, new_sums, new_dx

      sums = [(tf.zeros_like(wi), tf.zeros_like(wh), tf.zeros_like(b))
              for wi, wh, b in zip(w_ih, w_hh, bias)]
      dx_arrays = [tf.TensorArray(x.dtype, size=length, element_shape=x.shape[1:])
                   for _ in directions]
      _, _, sums, dx_arrays = tf.while_loop(
          lambda s, *_: s < length, backward_step,
          (tf.constant(0), [(zeros, zeros) for _ in directions], sums, dx_arrays))
      dx = tf.add_n([a.stack() for a in dx_arrays])
      return (dx,) + tuple(g for per_direction in sums for g in per_direction)

    return outputs, grad

  return recurrence(inputs, *params)


def _run(inputs: tf.Tensor, directions: Sequence[_Direction]) -> list:
  """Time-major [L, B, in] -> per direction [L, B, H]; the BPTT version when training."""
  if fast_gradients_active():
    return _recurrence_with_bptt(inputs, directions)
  return _recurrence(inputs, directions)


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
    [hs] = _run(tf.transpose(inputs, [1, 0, 2]), [_Direction(self.cell, self.reverse)])
    return tf.transpose(hs, [1, 0, 2])


class BidirectionalLSTM(snt.Module):
  """`torch.nn.LSTM(in, H, batch_first=True, bidirectional=True)`. [B, L, in] -> [B, L, 2H].

  Output channels [:H] are the forward direction, [H:] the backward one. Both directions
  share one time loop, halving the sequential steps.
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
    # Time-major inside: the input is the layer's narrowest tensor, so it is the one to move.
    forward, backward = _run(tf.transpose(inputs, [1, 0, 2]),
                             [_Direction(self.forward, False), _Direction(self.backward, True)])
    return tf.transpose(tf.concat([forward, backward], axis=-1), [1, 0, 2])
