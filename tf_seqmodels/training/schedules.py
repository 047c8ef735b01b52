"""Learning-rate (and momentum) schedules as small callables of the step.

A schedule is called with the number of optimizer updates already applied (0 for the first
update; PyTorch's scheduler convention) and returns a float32 scalar tensor, so it works
eagerly and inside tf.function:

    lr = schedule(step)                     # every schedule
    beta1 = one_cycle.beta1(step)           # OneCycle with cycle_momentum=True

`training.optimizers.AdamW` accepts these for `learning_rate` and `beta1`.
"""

from __future__ import annotations

import abc
import math

import tensorflow as tf


class Schedule(abc.ABC):
  """A value as a function of the step (number of updates already applied)."""

  @abc.abstractmethod
  def __call__(self, step) -> tf.Tensor:
    """float32 scalar value at `step` (int or scalar tensor)."""


def _step(step) -> tf.Tensor:
  return tf.cast(tf.convert_to_tensor(step), tf.float64)


class Constant(Schedule):
  """The same value at every step."""

  def __init__(self, value: float):
    self.value = float(value)

  def __call__(self, step) -> tf.Tensor:
    del step
    return tf.constant(self.value, tf.float32)

  def __repr__(self) -> str:
    return f"Constant({self.value})"


class LinearWarmup(Schedule):
  """`peak * min(1, step / warmup_steps)` (Enformer's training: 5,000 steps to 5e-4).

  As in the Enformer training notebook, the value is computed from the step before the
  update, so the very first update uses 0 and `peak` is reached at update `warmup_steps`;
  the value is then held.
  """

  def __init__(self, peak: float = 5e-4, warmup_steps: int = 5000):
    if warmup_steps < 0:
      raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    self.peak = float(peak)
    self.warmup_steps = int(warmup_steps)

  def __call__(self, step) -> tf.Tensor:
    # float64 throughout: a float32 1.0 against the float64 step fails inside tf.function.
    frac = tf.minimum(tf.constant(1.0, tf.float64), _step(step) / max(1.0, float(self.warmup_steps)))
    return tf.cast(self.peak * frac, tf.float32)

  def __repr__(self) -> str:
    return f"LinearWarmup(peak={self.peak}, warmup_steps={self.warmup_steps})"


class OneCycle(Schedule):
  """PyTorch `OneCycleLR` (fastai 1cycle): learning rate and cycled beta1 per step.

  Two phases (three_phase=False, the DREAM trainer's setting) over `total_steps` updates:

      phase 1, steps 0 .. e1 = pct_start*T - 1:   lr   initial -> max,   beta1 max_m -> base_m
      phase 2, steps e1 .. e2 = T - 1:            lr   max -> min,       beta1 base_m -> max_m

  with initial = max_lr / div_factor, min = initial / final_div_factor and cosine annealing
  `end + (start - end) / 2 * (1 + cos(pi * pct))`, pct = (step - phase start) / (phase end -
  phase start). three_phase=True adds PyTorch's symmetric ramp-down to `initial` before the
  final annealing. Steps past `total_steps - 1` hold the final value (PyTorch raises there).

  DREAM (Prix Fixe autosome trainer): max_lr 0.005 (0.001 for DREAM-Attn), div_factor 25,
  pct_start 0.3, final_div_factor 1e4, beta1 cycled 0.95 -> 0.85 -> 0.95.
  """

  def __init__(self, max_lr: float, total_steps: int, pct_start: float = 0.3,
               div_factor: float = 25.0, final_div_factor: float = 1e4,
               anneal_strategy: str = "cos", cycle_momentum: bool = True,
               base_momentum: float = 0.85, max_momentum: float = 0.95,
               three_phase: bool = False):
    if not isinstance(total_steps, int) or total_steps <= 0:
      raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
    if not 0.0 <= pct_start <= 1.0:
      raise ValueError(f"pct_start must be in [0, 1], got {pct_start}")
    if anneal_strategy not in ("cos", "linear"):
      raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
    if max_lr <= 0 or div_factor <= 0 or final_div_factor <= 0:
      raise ValueError("max_lr, div_factor and final_div_factor must be positive")
    self.max_lr = float(max_lr)
    self.total_steps = total_steps
    self.pct_start = float(pct_start)
    self.div_factor = float(div_factor)
    self.final_div_factor = float(final_div_factor)
    self.anneal_strategy = anneal_strategy
    self.cycle_momentum = cycle_momentum
    self.base_momentum = float(base_momentum)
    self.max_momentum = float(max_momentum)
    self.three_phase = three_phase
    self.initial_lr = self.max_lr / self.div_factor
    self.min_lr = self.initial_lr / self.final_div_factor
    up_end = self.pct_start * total_steps - 1
    if three_phase:
      # (end step, lr start, lr end, momentum start, momentum end) per phase, as PyTorch.
      self._phases = [(up_end, self.initial_lr, self.max_lr, max_momentum, base_momentum),
                      (2 * self.pct_start * total_steps - 2, self.max_lr, self.initial_lr,
                       base_momentum, max_momentum),
                      (total_steps - 1, self.initial_lr, self.min_lr, max_momentum, max_momentum)]
    else:
      self._phases = [(up_end, self.initial_lr, self.max_lr, max_momentum, base_momentum),
                      (total_steps - 1, self.max_lr, self.min_lr, base_momentum, max_momentum)]
    starts = [0.0] + [phase[0] for phase in self._phases[:-1]]
    for start, phase in zip(starts, self._phases):
      # PyTorch divides by (end - start); a zero-length phase is a division by zero there.
      if phase[0] <= start:
        raise ValueError(f"total_steps={total_steps} is too small for pct_start={pct_start}: a "
                         f"schedule phase would be empty (PyTorch divides by zero here)")
    self._starts = starts

  @classmethod
  def from_epochs(cls, max_lr: float, epochs: int, steps_per_epoch: int, **kwargs) -> "OneCycle":
    """`total_steps = epochs * steps_per_epoch`, like PyTorch's `OneCycleLR(epochs=, steps_per_epoch=)`."""
    if epochs <= 0 or steps_per_epoch <= 0:
      raise ValueError(f"epochs and steps_per_epoch must be positive, got {epochs}, {steps_per_epoch}")
    return cls(max_lr, epochs * steps_per_epoch, **kwargs)

  def _anneal(self, start: float, end: float, pct: tf.Tensor) -> tf.Tensor:
    if self.anneal_strategy == "cos":
      return end + (start - end) / 2.0 * (tf.cos(math.pi * pct) + 1.0)
    return (end - start) * pct + start

  def _value(self, step, which: int) -> tf.Tensor:
    s = tf.clip_by_value(_step(step), 0.0, float(self.total_steps - 1))
    value = None
    # Walk the phases from last to first so the earliest phase containing `s` wins.
    for start, phase in reversed(list(zip(self._starts, self._phases))):
      end = phase[0]
      pct = (s - start) / (end - start)
      phase_value = self._anneal(phase[which], phase[which + 1], pct)
      value = phase_value if value is None else tf.where(s <= end, phase_value, value)
    return tf.cast(value, tf.float32)

  def __call__(self, step) -> tf.Tensor:
    """Learning rate at `step`."""
    return self._value(step, 1)

  def beta1(self, step) -> tf.Tensor:
    """Adam beta1 at `step` (cycled momentum: max -> base -> max)."""
    if not self.cycle_momentum:
      # PyTorch leaves the optimizer's own beta1 alone in this case.
      raise ValueError("this OneCycle has cycle_momentum=False; give the optimizer a fixed beta1")
    return self._value(step, 3)

  def __repr__(self) -> str:
    return (f"OneCycle(max_lr={self.max_lr}, total_steps={self.total_steps}, "
            f"pct_start={self.pct_start}, div_factor={self.div_factor}, "
            f"final_div_factor={self.final_div_factor})")


class StepDecay(Schedule):
  """`initial * rate ** floor(step / decay_steps)`: PyTorch StepLR stepped every
  `decay_steps` updates (Chromoformer: rate 0.87 once per epoch)."""

  def __init__(self, initial: float, rate: float, decay_steps: int):
    if decay_steps < 1 or rate <= 0:
      raise ValueError(f"StepDecay needs decay_steps >= 1 and rate > 0, got {decay_steps}, {rate}")
    self.initial, self.rate, self.decay_steps = float(initial), float(rate), int(decay_steps)

  def __call__(self, step) -> tf.Tensor:
    decays = tf.floor(_step(step) / float(self.decay_steps))
    return tf.cast(self.initial * tf.pow(tf.constant(self.rate, tf.float64), decays), tf.float32)

  def __repr__(self) -> str:
    return f"StepDecay({self.initial}, rate={self.rate}, decay_steps={self.decay_steps})"
