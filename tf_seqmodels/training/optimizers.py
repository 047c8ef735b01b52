"""Sonnet-style optimizers with PyTorch semantics and schedule support.

    opt = AdamW(learning_rate=OneCycle(...), beta1=one_cycle.beta1, weight_decay=0.01)
    opt.apply(gradients, variables)        # eagerly or inside tf.function

`learning_rate` and `beta1` may be floats, tf.Variables or schedules (callables of the step:
the number of updates already applied, so the first update uses schedule(0), as a PyTorch
scheduler stepped after every batch). Slot variables are created on the first `apply` (run
it eagerly once, or call `build(variables)`, before tracing a tf.function).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import sonnet as snt
import tensorflow as tf

Hyper = Union[float, tf.Variable, Callable[[tf.Tensor], tf.Tensor]]


def _resolve(value: Hyper, step: tf.Tensor, dtype) -> tf.Tensor:
  if callable(value) and not isinstance(value, tf.Variable):
    value = value(step)
  return tf.cast(value, dtype)


class AdamW(snt.Optimizer):
  """Adam with decoupled weight decay, exactly `torch.optim.AdamW` (amsgrad=False).

  For each parameter p with gradient g, at update t = 1, 2, ... with lr_t, beta1_t:

      p <- p * (1 - lr_t * weight_decay)
      m <- beta1_t * m + (1 - beta1_t) * g          v <- beta2 * v + (1 - beta2) * g^2
      p <- p - lr_t / (1 - beta1_t^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + epsilon)

  Weight decay applies to every parameter given (the reference decays biases and norm
  parameters too); pass a filtered variable list to exempt some. With a cycled beta1 the
  bias correction uses the current beta1, as PyTorch does.

  Attributes:
    step: int64 number of updates applied.
    m, v: first / second moment slots, one per parameter (created on first apply).
  """

  def __init__(self, learning_rate: Hyper = 1e-3, beta1: Hyper = 0.9, beta2: float = 0.999,
               epsilon: float = 1e-8, weight_decay: float = 0.01, name: Optional[str] = None):
    super().__init__(name=name)
    if weight_decay < 0:
      raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if not 0.0 <= beta2 < 1.0:
      raise ValueError(f"beta2 must be in [0, 1), got {beta2}")
    self.learning_rate = learning_rate
    self.beta1 = beta1
    self.beta2 = beta2
    self.epsilon = epsilon
    self.weight_decay = weight_decay
    self.step = tf.Variable(0, trainable=False, name="step", dtype=tf.int64)
    self.m = []
    self.v = []

  @snt.once
  def _initialize(self, parameters: Sequence[tf.Variable]):
    with tf.init_scope():
      for p in parameters:
        # Plain zero slots shaped like each parameter (on its device).
        with tf.device(p.device):
          self.m.append(tf.Variable(tf.zeros_like(p), trainable=False, name="m"))
          self.v.append(tf.Variable(tf.zeros_like(p), trainable=False, name="v"))

  def build(self, parameters: Sequence[tf.Variable]) -> None:
    """Creates the slot variables for `parameters` now (eagerly)."""
    self._initialize(list(parameters))

  def current_learning_rate(self) -> tf.Tensor:
    """The learning rate the next update will use."""
    return _resolve(self.learning_rate, self.step, tf.float32)

  def apply(self, updates: Sequence[Optional[tf.Tensor]], parameters: Sequence[tf.Variable]) -> None:
    """Applies one update; `updates[i]` (e.g. a gradient) belongs to `parameters[i]`.

    Raises:
      ValueError: empty/mismatched lists, all updates None, a dtype mismatch, or parameters
        that differ from those the slots were created for.
    """
    updates, parameters = list(updates), list(parameters)
    if len(updates) != len(parameters):
      raise ValueError(f"got {len(updates)} updates for {len(parameters)} parameters")
    if not parameters:
      raise ValueError("no parameters to update")
    if all(u is None for u in updates):
      raise ValueError("every update is None: the loss does not depend on these parameters")
    self._initialize(parameters)
    if len(self.m) != len(parameters) or any(
        m.shape != p.shape for m, p in zip(self.m, parameters)):
      raise ValueError(f"this optimizer was built for {len(self.m)} parameters with other shapes; "
                       f"use one optimizer per parameter list")
    lr = _resolve(self.learning_rate, self.step, tf.float32)
    beta1 = _resolve(self.beta1, self.step, tf.float32)
    self.step.assign_add(1)
    t = tf.cast(self.step, tf.float32)
    bias_correction1 = 1.0 - tf.pow(beta1, t)
    bias_correction2_sqrt = tf.sqrt(1.0 - tf.pow(tf.constant(self.beta2, tf.float32), t))
    step_size = lr / bias_correction1
    for update, param, m, v in zip(updates, parameters, self.m, self.v):
      if update is None:
        continue
      if isinstance(update, tf.IndexedSlices):
        update = tf.convert_to_tensor(update)  # dense moments, as PyTorch's dense AdamW
      if update.dtype != param.dtype:
        raise ValueError(f"update dtype {update.dtype} differs from parameter {param.name} "
                         f"dtype {param.dtype}")
      dtype = param.dtype
      if self.weight_decay:
        param.assign(param * (1.0 - tf.cast(lr * self.weight_decay, dtype)))
      b1 = tf.cast(beta1, dtype)
      m.assign(b1 * m + (1.0 - b1) * update)
      v.assign(self.beta2 * v + (1.0 - self.beta2) * tf.square(update))
      denom = tf.sqrt(v) / tf.cast(bias_correction2_sqrt, dtype) + self.epsilon
      param.assign_sub(tf.cast(step_size, dtype) * m / denom)


class Adam(AdamW):
  """`torch.optim.Adam` without weight decay (same update as AdamW with weight_decay=0),
  with schedule support for the learning rate and beta1 (e.g. Enformer's `LinearWarmup`)."""

  def __init__(self, learning_rate: Hyper = 1e-3, beta1: Hyper = 0.9, beta2: float = 0.999,
               epsilon: float = 1e-8, name: Optional[str] = None):
    super().__init__(learning_rate=learning_rate, beta1=beta1, beta2=beta2, epsilon=epsilon,
                     weight_decay=0.0, name=name)
