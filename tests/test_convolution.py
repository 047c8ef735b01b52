"""blocks.convolution: Conv1D is snt.Conv1D with a hand-built CPU gradient; both must agree."""

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

from tf_seqmodels.blocks.convolution import Conv1D, conv1d
from tf_seqmodels.blocks.gradients import fast_gradients
from tf_seqmodels.training.precision import compute_dtype

# (kernel, rate, padding, C_in, C_out): odd and even kernels, dilation, both paddings, and both
# filter-gradient layouts (C_in <= C_out shifts x, C_in > C_out shifts dy), and where the shifted
# copies would be wide TensorFlow's filter kernel (undilated) or one product per tap (dilated).
CASES = [
    (7, 1, "SAME", 12, 5),
    (7, 1, "SAME", 5, 12),
    (4, 1, "SAME", 6, 3),
    (4, 2, "SAME", 3, 6),
    (3, 4, "VALID", 8, 4),
    (21, 1, "VALID", 4, 9),
    (1, 1, "SAME", 10, 7),
    (1, 1, "VALID", 7, 10),
    (5, 2, "SAME", 210, 240),  # k x narrower = 1050 > 1024, dilated: one product per tap
    (5, 1, "VALID", 240, 210),  # the same undilated: TensorFlow's filter kernel
]


@pytest.mark.parametrize("kernel,rate,padding,c_in,c_out", CASES)
def test_conv1d_matches_tensorflow_outputs_and_gradients(kernel, rate, padding, c_in, c_out):
  rng = np.random.default_rng(kernel * 100 + rate * 10 + c_in)
  x = tf.constant(rng.normal(size=(3, 40, c_in)), tf.float32)
  w = tf.constant(rng.normal(size=(kernel, c_in, c_out)), tf.float32)

  def loss_and_grads(fn):
    with tf.GradientTape() as tape:
      tape.watch([x, w])
      y = fn(x, w)
      # A position-dependent weighting, so a gradient shifted by one position would differ.
      loss = tf.reduce_sum(y * tf.sin(tf.range(tf.shape(y)[1], dtype=tf.float32))[:, None])
    return y, tape.gradient(loss, [x, w])

  expected_y, expected = loss_and_grads(
      lambda a, b: tf.nn.convolution(a, b, padding=padding, dilations=rate))
  with fast_gradients():
    y, got = loss_and_grads(lambda a, b: conv1d(a, b, rate=rate, padding=padding))
  np.testing.assert_array_equal(y.numpy(), expected_y.numpy())  # the same forward op
  for g, e in zip(got, expected):
    assert g.shape == e.shape
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-4, atol=1e-4)


def test_conv1d_gradient_inside_tf_function_with_unknown_length():
  w = tf.random.stateless_normal([5, 4, 6], seed=[1, 2])

  @tf.function(input_signature=[tf.TensorSpec([None, None, 4])])
  def grads(x):
    with tf.GradientTape() as tape, fast_gradients():
      tape.watch([x, w])
      loss = tf.reduce_sum(tf.square(conv1d(x, w)))
    return tape.gradient(loss, [x, w])

  x = tf.random.stateless_normal([2, 33, 4], seed=[3, 4])
  with tf.GradientTape() as tape:
    tape.watch([x, w])
    loss = tf.reduce_sum(tf.square(tf.nn.convolution(x, w, padding="SAME")))
  for g, e in zip(grads(x), tape.gradient(loss, [x, w])):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-4, atol=1e-4)


def test_conv1d_rejects_other_paddings():
  with pytest.raises(ValueError, match="padding"):
    conv1d(tf.zeros([1, 4, 2]), tf.zeros([3, 2, 2]), padding="CAUSAL")


def test_layer_is_snt_conv1d_with_same_variables_and_outputs():
  x = tf.random.stateless_normal([2, 30, 5], seed=[5, 6])
  ours = Conv1D(8, 7, rate=2, name="conv")
  theirs = snt.Conv1D(8, 7, rate=2, name="conv")
  ours(x), theirs(x)
  assert isinstance(ours, snt.Conv1D)
  assert [v.name for v in ours.variables] == [v.name for v in theirs.variables]
  for a, b in zip(theirs.variables, ours.variables):
    b.assign(a)
  np.testing.assert_array_equal(ours(x).numpy(), theirs(x).numpy())
  with tf.GradientTape(persistent=True) as tape, fast_gradients():
    mine, ref = tf.reduce_sum(ours(x) ** 2), tf.reduce_sum(theirs(x) ** 2)
  for g, e in zip(tape.gradient(mine, ours.trainable_variables),
                  tape.gradient(ref, theirs.trainable_variables)):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-4, atol=1e-4)


def test_layer_falls_back_to_sonnet_for_strides():
  x = tf.random.stateless_normal([2, 30, 5], seed=[7, 8])
  ours, theirs = Conv1D(4, 3, stride=2), snt.Conv1D(4, 3, stride=2)
  ours(x), theirs(x)
  for a, b in zip(theirs.variables, ours.variables):
    b.assign(a)
  assert ours(x).shape == [2, 15, 4]
  np.testing.assert_array_equal(ours(x).numpy(), theirs(x).numpy())


def test_layer_computes_in_bfloat16_under_mixed_precision():
  x = tf.random.stateless_normal([2, 16, 3], seed=[9, 10])
  layer = Conv1D(4, 5)
  full = layer(x)
  with compute_dtype(tf.bfloat16):
    low = layer(x)
  assert low.dtype == tf.float32
  # bfloat16 has an 8-bit mantissa: close to the float32 result, but not equal to it.
  assert not np.array_equal(low.numpy(), full.numpy())
  np.testing.assert_allclose(low.numpy(), full.numpy(), rtol=0.05, atol=0.05)


def _graph_op_types(fn, *args) -> set:
  return {op.type for op in tf.function(fn).get_concrete_function(*args).graph.get_operations()}


def test_hand_built_gradient_only_inside_fast_gradients():
  """Outside the context (inference, DeepLIFT's op rules, exports) the graph is the plain
  convolution; inside it (the trainer's step) the custom gradient's IdentityN wraps it."""
  x, w = tf.zeros([1, 8, 3]), tf.zeros([3, 3, 2])
  assert "IdentityN" not in _graph_op_types(lambda a: conv1d(a, w), x)

  def traced_in_context(a):
    with fast_gradients():
      return conv1d(a, w)

  assert "IdentityN" in _graph_op_types(traced_in_context, x)
  assert "IdentityN" not in _graph_op_types(lambda a: conv1d(a, w), tf.zeros([1, 9, 3]))


def test_trainer_step_traces_convolutions_with_the_cpu_gradient(monkeypatch):
  """The trainer traces its step inside fast_gradients() (the only place the gradient is on)."""
  from tf_seqmodels.blocks import convolution, gradients
  from tf_seqmodels.training.trainer import Trainer, TrainerConfig
  seen = []
  original = convolution.conv1d

  def spy(*args, **kwargs):
    seen.append(gradients.fast_gradients_active())
    return original(*args, **kwargs)

  monkeypatch.setattr(convolution, "conv1d", spy)

  class Tiny(snt.Module):
    def __init__(self):
      super().__init__()
      self.conv = Conv1D(2, 3)

    def __call__(self, inputs, is_training):
      return {"y": tf.reduce_mean(self.conv(inputs), axis=[1, 2])}

  from tf_seqmodels.tasks.dream import RegressionTask
  from tf_seqmodels.training.optimizers import AdamW
  data = tf.data.Dataset.from_tensors((tf.ones([4, 6, 3]), {"y": tf.zeros([4])})).repeat()
  trainer = Trainer(Tiny(), RegressionTask(["y"]), AdamW(0.01),
                    config=TrainerConfig(progress=False, tensorboard=False))
  next(trainer.train_steps(data))
  # The model is built (variables created) outside the step; the step's trace is the last call.
  assert seen[-1]
  assert not gradients.fast_gradients_active()
