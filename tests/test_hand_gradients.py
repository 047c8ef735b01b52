"""Blocks whose training gradient is written by hand (LayerNorm, SwiGLU) or whose product is
reshaped (Linear) must match what they replace: outputs exactly, gradients to rounding."""

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

from gradient_checks import outputs_and_gradients
from tf_seqmodels.blocks.conformer import swiglu
from tf_seqmodels.blocks.gradients import fast_gradients
from tf_seqmodels.blocks.linear import Linear
from tf_seqmodels.blocks.torch_compat import LayerNorm
from tf_seqmodels.training.precision import compute_dtype


@pytest.mark.parametrize("graph", [False, True])
def test_layer_norm_matches_sonnet_outputs_and_gradients(graph):
  rng = np.random.default_rng(0)
  ours = LayerNorm(eps=1e-6)
  reference = snt.LayerNorm(axis=-1, create_scale=True, create_offset=True, eps=1e-6)
  x = tf.constant(rng.normal(2.0, 3.0, size=(3, 7, 16)), tf.float32)
  ours(x), reference(x)
  scale, offset = rng.normal(1.0, 0.5, size=(2, 16)).astype(np.float32)
  for module in (ours, reference):  # non-trivial scale and offset
    module.scale.assign(scale)
    module.offset.assign(offset)
  upstream = tf.constant(rng.normal(size=(3, 7, 16)), tf.float32)

  def both():
    return (outputs_and_gradients(reference, x, reference.trainable_variables, False, upstream),
            outputs_and_gradients(ours, x, ours.trainable_variables, True, upstream))

  (expected_y, expected), (y, got) = tf.function(both)() if graph else both()
  np.testing.assert_array_equal(y.numpy(), expected_y.numpy())  # the same forward ops
  for g, e, name in zip(got, expected, ["x", "offset", "scale"]):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_layer_norm_is_plain_sonnet_outside_fast_gradients():
  norm = LayerNorm()
  spec = tf.TensorSpec([2, 5, 8])
  norm(tf.zeros([2, 5, 8]))

  def types(fast):
    def call(x):
      if fast:
        with fast_gradients():
          return norm(x)
      return norm(x)
    return {op.type for op in tf.function(call).get_concrete_function(spec).graph.get_operations()}

  assert "IdentityN" in types(True) and "IdentityN" not in types(False)


def test_swiglu_matches_autodiff():
  rng = np.random.default_rng(1)
  x = tf.constant(rng.normal(0.0, 2.0, size=(4, 6, 10)), tf.float32)
  upstream = tf.constant(rng.normal(size=(4, 6, 5)), tf.float32)
  expected_y, [expected] = outputs_and_gradients(swiglu, x, [], False, upstream)
  y, [got] = outputs_and_gradients(swiglu, x, [], True, upstream)
  out, gate = np.split(x.numpy().astype(np.float64), 2, axis=-1)
  np.testing.assert_allclose(expected_y.numpy(), out * gate / (1 + np.exp(-gate)), rtol=1e-5)
  np.testing.assert_array_equal(y.numpy(), expected_y.numpy())
  np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(5, 8), (2, 3, 8), (2, 3, 4, 8)])
def test_linear_matches_sonnet_for_any_rank(shape):
  rng = np.random.default_rng(2)
  ours, reference = Linear(6), snt.Linear(6)
  x = tf.constant(rng.normal(size=shape), tf.float32)
  ours(x), reference(x)
  for a, b in zip(ours.variables, reference.variables):
    a.assign(b)
  upstream = tf.constant(rng.normal(size=shape[:-1] + (6,)), tf.float32)
  expected_y, expected = outputs_and_gradients(reference, x, reference.trainable_variables, False,
                                               upstream)
  y, got = outputs_and_gradients(ours, x, ours.trainable_variables, False, upstream)
  assert y.shape == expected_y.shape
  np.testing.assert_allclose(y.numpy(), expected_y.numpy(), rtol=1e-6, atol=1e-6)
  for g, e in zip(got, expected):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-5)


def test_linear_keeps_static_shapes_and_runs_in_bfloat16():
  layer = Linear(3)

  @tf.function(input_signature=[tf.TensorSpec([None, 7, 4])])
  def call(x):
    y = layer(x)
    assert y.shape.as_list() == [None, 7, 3]
    return y

  x = tf.random.stateless_normal([2, 7, 4], seed=[0, 1])
  full = call(x)
  with compute_dtype(tf.bfloat16):
    low = layer(x)
  assert low.dtype == tf.float32  # cast back, as for snt.Linear
  np.testing.assert_allclose(low.numpy(), full.numpy(), atol=0.05)
