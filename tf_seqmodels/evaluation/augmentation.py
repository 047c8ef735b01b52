"""Test-time augmentation: average a DNA model over shifted and reverse-complemented inputs.

The Enformer paper averages each prediction over 8 augmented copies of the input: the
forward and reverse-complement strands, each at 4 small shifts (≤ 3 bp, far below a 128-bp
bin, so the output bins are not moved back). Reverse-complement outputs are flipped back
along their positional axis before averaging (`positional_axes`: {head: axis}; heads not
named there, e.g. scalar expression or counts, are averaged as they are).

    inputs [B, L, 4] -> {head: mean over copies of model(augment(inputs))}
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional

import tensorflow as tf

from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.data.encoding import reverse_complement_one_hot, shift_sequence


@dataclasses.dataclass(frozen=True)
class TestTimeAugmentation(Config):
  """Which augmented copies are averaged (default: 2 strands x 4 shifts = 8, as the paper).

  Attributes:
    reverse_complement: also predict the reverse-complement strand.
    shifts: bp shifts of the input (0 = unshifted; positive moves the sequence right,
      padding with N). The paper uses 4 shifts of at most 3 bp.
  """

  __test__ = False  # not a pytest test class despite its name

  reverse_complement: bool = True
  shifts: tuple[int, ...] = (-2, -1, 0, 1)

  def validate(self) -> None:
    if not self.shifts:
      raise ConfigError("test-time augmentation needs at least one shift (0 = unshifted)")
    if len(set(self.shifts)) != len(self.shifts):
      raise ConfigError(f"test-time augmentation shifts must be distinct, got {self.shifts}")

  @property
  def copies(self) -> int:
    return len(self.shifts) * (2 if self.reverse_complement else 1)


@tf.autograph.experimental.do_not_convert  # plain Python loops over a fixed list of copies
def augmented_predict(model, inputs: tf.Tensor, augmentation: Optional[TestTimeAugmentation],
                      positional_axes: Mapping[str, int]) -> dict[str, tf.Tensor]:
  """Mean of `model(copy, is_training=False)` over the augmented copies of `inputs`.

  Args:
    model: a `SequenceModel` reading one-hot DNA (`takes_dna_sequence`).
    inputs: [B, L, 4] one-hot.
    augmentation: the copies; None = the plain prediction.
    positional_axes: per head, the output axis that runs along the sequence (reversed for
      reverse-complement copies), e.g. {"tracks": 1}.
  """
  if augmentation is None:
    return model(inputs, is_training=False)
  if not model.takes_dna_sequence or model.input_channels != 4:
    raise ConfigError(f"test-time augmentation needs a model reading one-hot DNA [B, L, 4]; "
                      f"{type(model).__name__} takes other inputs")
  # The model contract's `position_axes` (when the model defines it) says which output axis
  # runs along the sequence; the evaluator's `positional_axes` fill in the rest.
  declared = getattr(model, "position_axes", None) or {}
  positional_axes = {**{h: a for h, a in declared.items() if a is not None}, **positional_axes}
  total = {}

  def add(outputs, flipped: bool):
    for head, value in outputs.items():
      if flipped and head in positional_axes:
        value = tf.reverse(value, axis=[positional_axes[head]])
      total[head] = value if head not in total else total[head] + value

  for shift in augmentation.shifts:
    shifted = shift_sequence(inputs, shift) if shift else inputs
    add(model(shifted, is_training=False), flipped=False)
    if augmentation.reverse_complement:
      add(model(reverse_complement_one_hot(shifted), is_training=False), flipped=True)
  return {head: value / float(augmentation.copies) for head, value in total.items()}
