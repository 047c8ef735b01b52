"""blocks.recurrent: the hand-written backward pass (BPTT) must agree with autodiff's."""

import numpy as np
import pytest
import tensorflow as tf

from gradient_checks import outputs_and_gradients
from tf_seqmodels.blocks.gradients import fast_gradients
from tf_seqmodels.blocks.recurrent import LSTM, BidirectionalLSTM


def _layers():
  tf.random.set_seed(3)
  return {"bidirectional": BidirectionalLSTM(5, 4), "forward": LSTM(5, 4),
          "reverse": LSTM(5, 4, reverse=True)}


def _outputs_and_gradients(layer, x, upstream, fast: bool, compile_with=None):
  """Outputs and gradients for inputs and variables, autodiff's or BPTT's (optionally traced)."""
  def run(x):
    return outputs_and_gradients(layer, x, layer.trainable_variables, fast, upstream)
  return tf.function(run, **compile_with)(x) if compile_with is not None else run(x)


@pytest.mark.parametrize("kind", ["bidirectional", "forward", "reverse"])
@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_bptt_matches_autodiff(kind, mode):
  layer = _layers()[kind]
  rng = np.random.default_rng(7)
  x = tf.constant(rng.normal(size=(3, 9, 5)), tf.float32)
  width = 8 if kind == "bidirectional" else 4
  # Position- and channel-dependent upstream gradients: a gradient sent to the wrong step or
  # direction would differ.
  weights = tf.constant(rng.normal(size=(3, 9, width)), tf.float32)
  compile_with = {"eager": None, "graph": {}, "xla": {"jit_compile": True}}[mode]
  expected_y, expected = _outputs_and_gradients(layer, x, weights, False, compile_with)
  y, got = _outputs_and_gradients(layer, x, weights, True, compile_with)
  if mode != "xla":  # the same ops in the same order (XLA may fuse each graph differently)
    np.testing.assert_array_equal(y.numpy(), expected_y.numpy())
  np.testing.assert_allclose(y.numpy(), expected_y.numpy(), rtol=1e-6, atol=1e-6)
  assert len(got) == 1 + len(layer.trainable_variables)
  for g, e, name in zip(got, expected, ["inputs"] + [v.name for v in layer.trainable_variables]):
    assert g.shape == e.shape, name
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_bptt_matches_a_finite_difference():
  # Independent of autodiff: d loss / d x[0, 2, 1] by central differences in float64 numpy.
  layer = BidirectionalLSTM(2, 3)
  x = np.random.default_rng(0).normal(size=(1, 5, 2))
  weights = np.random.default_rng(1).normal(size=(1, 5, 6))
  _, grads = _outputs_and_gradients(layer, tf.constant(x, tf.float32),
                                    tf.constant(weights, tf.float32), True)
  params = {d: [getattr(w, n).numpy().astype(np.float64) for n in ("w_ih", "w_hh", "b_ih", "b_hh")]
            for d, w in (("f", layer.forward), ("b", layer.backward))}

  def numpy_lstm(x, w_ih, w_hh, b_ih, b_hh):
    sig = lambda v: 1 / (1 + np.exp(-v))
    h, c, out = np.zeros(3), np.zeros(3), []
    for x_t in x:
      i, f, g, o = np.split(x_t @ w_ih + b_ih + h @ w_hh + b_hh, 4)
      c = sig(f) * c + sig(i) * np.tanh(g)
      h = sig(o) * np.tanh(c)
      out.append(h)
    return np.array(out)

  def loss(x):
    seq = x[0]
    forward = numpy_lstm(seq, *params["f"])
    backward = numpy_lstm(seq[::-1], *params["b"])[::-1]
    return np.sum(np.concatenate([forward, backward], -1) * weights[0])

  step = 1e-6
  plus, minus = x.copy(), x.copy()
  plus[0, 2, 1] += step
  minus[0, 2, 1] -= step
  numeric = (loss(plus) - loss(minus)) / (2 * step)
  np.testing.assert_allclose(grads[0].numpy()[0, 2, 1], numeric, rtol=1e-4, atol=1e-6)


def test_bptt_with_unknown_batch_and_length_and_a_single_step():
  layer = BidirectionalLSTM(5, 4)

  @tf.function(input_signature=[tf.TensorSpec([None, None, 5])])
  def grads(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      with fast_gradients():
        y = layer(x)
      loss = tf.reduce_sum(tf.square(y))
    return tape.gradient(loss, [x] + list(layer.trainable_variables))

  for shape in [(2, 6, 5), (1, 1, 5)]:
    x = tf.random.stateless_normal(shape, seed=[4, 2])
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(tf.square(layer(x)))
    expected = tape.gradient(loss, [x] + list(layer.trainable_variables))
    for g, e in zip(grads(x), expected):
      np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-6)


def test_hand_written_gradient_only_inside_fast_gradients():
  layer = BidirectionalLSTM(5, 4)
  spec = tf.TensorSpec([2, 6, 5])

  def op_types(fast: bool) -> set:
    def call(x):
      if fast:
        with fast_gradients():
          return layer(x)
      return layer(x)
    graph = tf.function(call).get_concrete_function(spec).graph
    return {op.type for op in graph.get_operations()}

  # tf.custom_gradient marks its outputs with an IdentityN; inference and DeepLIFT see plain ops.
  assert "IdentityN" in op_types(True)
  assert "IdentityN" not in op_types(False)
