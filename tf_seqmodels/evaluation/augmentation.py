"""Test-time augmentation: average a DNA model over shifted and reverse-complemented inputs.

The Enformer paper averages each prediction over 8 augmented copies of the input: the
forward and reverse-complement strands, each at 4 small shifts (≤ 3 bp, far below a 128-bp
bin, so the output bins are not moved back). Reverse-complement outputs are flipped back
along their positional axis before averaging (`positional_axes`: {head: axis}; heads not
named there, e.g. scalar expression or counts, are averaged as they are), and strand-paired
tracks are swapped back (`track_permutations`; see `data.strands`).

    inputs [B, L, 4] -> {head: mean over copies of model(augment(inputs))}
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import tensorflow as tf

from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.data.encoding import reverse_complement_one_hot, shift_sequence
from tf_seqmodels.data.strands import CopyAverage


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
                      positional_axes: Mapping[str, int],
                      track_permutations: Optional[Mapping[str, Any]] = None
                      ) -> dict[str, tf.Tensor]:
  """Mean of `model(copy, is_training=False)` over the augmented copies of `inputs`.

  The copies are made on the DNA (`model.decode_dna(inputs)`, one-hot ACGT) and each is
  encoded with `model.encode_dna(copy, is_reverse)`: reverse-complement copies carry the
  model's strand flag (DREAM's is_reverse channel), forward copies not, and other flag
  channels of the inputs (DREAM's is_singleton) are 0, as the reference predictors encode
  test sequences. For one-hot ACGT models both maps are the identity.

  Args:
    model: a `SequenceModel` reading DNA (`takes_dna_sequence`).
    inputs: [B, L, input_channels] model inputs.
    augmentation: the copies; None = the plain prediction.
    positional_axes: per head, the output axis that runs along the sequence (reversed for
      reverse-complement copies), e.g. {"tracks": 1}.
    track_permutations: per head, the strand-pair permutation [T] of its last (track) axis
      (`data.tracks.strand_permutation`), applied to reverse-complement copies so that a
      stranded track (CAGE +) is averaged with its pair's reverse-strand prediction.
  """
  if augmentation is None:
    return model(inputs, is_training=False)
  encode, dna = _dna_copies_codec(model, inputs)
  # The model contract's `position_axes` (when the model defines it) says which output axis
  # runs along the sequence; the evaluator's `positional_axes` fill in the rest.
  declared = getattr(model, "position_axes", None) or {}
  positional_axes = {**{h: a for h, a in declared.items() if a is not None}, **positional_axes}
  average = CopyAverage(positional_axes, track_permutations)
  for shift in augmentation.shifts:
    shifted = shift_sequence(dna, shift) if shift else dna
    average.add(model(encode(shifted, False), is_training=False), is_reverse=False)
    if augmentation.reverse_complement:
      average.add(model(encode(reverse_complement_one_hot(shifted), True), is_training=False),
                  is_reverse=True)
  return average.result()


def _dna_copies_codec(model, inputs):
  """(encode(one_hot, is_reverse) -> model inputs, one-hot ACGT DNA [B, L, 4] of `inputs`)."""
  from tf_seqmodels.data.encoding import SequenceError
  if not getattr(model, "takes_dna_sequence", False):
    raise ConfigError(f"test-time augmentation needs a model reading DNA; {type(model).__name__} "
                      f"takes other inputs")
  if hasattr(model, "encode_dna") and hasattr(model, "decode_dna"):
    try:
      return model.encode_dna, model.decode_dna(inputs)
    except SequenceError as e:
      raise ConfigError(f"test-time augmentation cannot read DNA from the inputs of "
                        f"{type(model).__name__}: {e}") from e
  if model.input_channels == 4:  # a duck-typed model reading one-hot ACGT as given
    return (lambda one_hot, is_reverse: one_hot), inputs
  raise ConfigError(f"test-time augmentation needs encode_dna() / decode_dna() for the "
                    f"{model.input_channels} input channels of {type(model).__name__}")
