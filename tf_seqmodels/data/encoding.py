"""DNA encoding: one-hot (A, C, G, T order; N = all zeros), reverse complement and shifts.

All functions are vectorised: strings go through a 256-entry lookup table, never a Python
loop per base. The one-hot helpers accept numpy arrays or tf.Tensors and return the same
kind, so they work inside `tf.data` pipelines and in eager code alike.

Shapes: a single sequence is `[L, 4]`, a batch `[B, L, 4]`; the length axis is always -2
and the channel axis -1.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import tensorflow as tf

from tf_seqmodels.errors import DataError

ALPHABET = "ACGT"
COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")

Array = Union[np.ndarray, tf.Tensor]


class SequenceError(DataError):
  """A DNA sequence or one-hot array is malformed (bad character, length or shape)."""


def _lookup_table(alphabet: str, neutral_alphabet: str) -> np.ndarray:
  # -1 marks characters that are neither in the alphabet nor neutral (an error).
  table = np.full(256, -1, dtype=np.int16)
  for i, base in enumerate(alphabet):
    table[ord(base.upper())] = i
    table[ord(base.lower())] = i
  for base in neutral_alphabet:
    table[ord(base.upper())] = len(alphabet)
    table[ord(base.lower())] = len(alphabet)
  return table


_DEFAULT_TABLE = _lookup_table(ALPHABET, "N")


def _indices(sequence: str, table: np.ndarray) -> np.ndarray:
  try:
    raw = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
  except UnicodeEncodeError as e:
    raise SequenceError(f"non-ASCII character {sequence[e.start]!r} at position {e.start}") from None
  idx = table[raw]
  bad = np.flatnonzero(idx < 0)
  if bad.size:
    pos = int(bad[0])
    chars = sorted(set(sequence[i] for i in bad[:1000]))
    raise SequenceError(
        f"invalid character {sequence[pos]!r} at position {pos} ({bad.size} invalid in total; "
        f"distinct: {chars}); allowed: A, C, G, T and N (either case)")
  return idx


def sequence_to_indices(sequence: str) -> np.ndarray:
  """Maps a DNA string to int8 indices A=0, C=1, G=2, T=3, N=4 (case-insensitive)."""
  return _indices(sequence, _DEFAULT_TABLE).astype(np.int8)


def one_hot_encode(sequences: Union[str, Sequence[str]],
                   alphabet: str = ALPHABET,
                   neutral_alphabet: str = "N",
                   neutral_value: float = 0.0,
                   dtype=np.float32) -> np.ndarray:
  """One-hot encodes one DNA string (`[L, 4]`) or equal-length strings (`[B, L, 4]`).

  Args:
    sequences: a string, or a list of strings of equal length.
    alphabet: channel order; the published models all use "ACGT".
    neutral_alphabet: characters encoded as `neutral_value` in every channel (N).
    neutral_value: fill for neutral characters; 0 (Enformer, BPNet) or 0.25.
    dtype: numpy dtype of the result.

  Raises:
    SequenceError: on any character outside `alphabet` + `neutral_alphabet`, or
      sequences of unequal length.
  """
  table = _DEFAULT_TABLE if (alphabet, neutral_alphabet) == (ALPHABET, "N") else _lookup_table(
      alphabet, neutral_alphabet)
  if isinstance(sequences, str):
    return _encode_indices(_indices(sequences, table), len(alphabet), neutral_value, dtype)
  sequences = list(sequences)
  if not sequences:
    raise SequenceError("no sequences to encode")
  lengths = {len(s) for s in sequences}
  if len(lengths) != 1:
    raise SequenceError(f"sequences must have equal length to form a batch, got lengths {sorted(lengths)}")
  idx = np.stack([_indices(s, table) for s in sequences])
  return _encode_indices(idx, len(alphabet), neutral_value, dtype)


def _encode_indices(idx: np.ndarray, depth: int, neutral_value: float, dtype) -> np.ndarray:
  # Row `depth` of the identity-plus-neutral matrix encodes the neutral character.
  eye = np.concatenate([np.eye(depth), np.full((1, depth), neutral_value)]).astype(dtype)
  return eye[idx]


def one_hot_decode(one_hot: Array, alphabet: str = ALPHABET) -> Union[str, list[str]]:
  """Inverse of `one_hot_encode`: rows without a single 1 decode to N."""
  x = np.asarray(one_hot)
  if x.ndim not in (2, 3) or x.shape[-1] != len(alphabet):
    raise SequenceError(f"expected a one-hot array [L, {len(alphabet)}] or [B, L, {len(alphabet)}], "
                        f"got shape {x.shape}")
  chars = np.frombuffer((alphabet + "N").encode(), dtype=np.uint8)
  is_base = np.isclose(x.max(-1), 1.0) & np.isclose(x.sum(-1), 1.0)
  idx = np.where(is_base, x.argmax(-1), len(alphabet))
  if x.ndim == 2:
    return chars[idx].tobytes().decode()
  return [chars[row].tobytes().decode() for row in idx]


def reverse_complement(sequence: str) -> str:
  """Reverse complement of a DNA string (case and N preserved)."""
  _indices(sequence, _DEFAULT_TABLE)  # validates the alphabet
  return sequence.translate(COMPLEMENT)[::-1]


def reverse_complement_one_hot(one_hot: Array) -> Array:
  """Reverse complement of one-hot DNA in ACGT order: reverse the length and channel axes.

  Works on `[L, 4]` or `[..., L, 4]` numpy arrays and tf.Tensors (complementing ACGT is
  reversing the channel order).
  """
  if isinstance(one_hot, tf.Tensor) or tf.is_tensor(one_hot):
    return tf.reverse(one_hot, axis=[-2, -1])
  return np.asarray(one_hot)[..., ::-1, ::-1]


def reverse_complement_indices(indices: np.ndarray) -> np.ndarray:
  """Reverse complement of base indices [..., L] with N = 4: A=0 <-> T=3, C=1 <-> G=2 (ACGT
  order), equally G=1 <-> C=2 in DREAM's AGCT order (complement is 3 - i in both)."""
  indices = np.asarray(indices)
  return np.where(indices < 4, 3 - indices, indices)[..., ::-1].astype(indices.dtype)


def indices_to_one_hot(indices: np.ndarray, neutral_value: float = 0.0,
                       dtype=np.float32) -> np.ndarray:
  """int base indices [..., L] (N = 4) -> one-hot [..., L, 4] (numpy; N rows = neutral_value)."""
  return _encode_indices(np.asarray(indices), 4, neutral_value, dtype)


def shift_sequence(one_hot: Array, shift: int, pad_value: float = 0.0) -> Array:
  """Shifts one-hot DNA along its length axis, padding the vacated end with `pad_value`.

  A positive `shift` moves the sequence to the right (towards higher positions): the first
  `shift` positions become padding and the last `shift` bases fall off. `|shift|` must be
  smaller than the length. The length is preserved.
  """
  if isinstance(one_hot, tf.Tensor) or tf.is_tensor(one_hot):
    return _shift_tf(one_hot, tf.convert_to_tensor(shift, tf.int32), pad_value)
  x = np.asarray(one_hot)
  length = x.shape[-2]
  if abs(shift) >= length:
    raise SequenceError(f"shift {shift} must be smaller than the sequence length {length}")
  if shift == 0:
    return x.copy()
  out = np.full_like(x, pad_value)
  if shift > 0:
    out[..., shift:, :] = x[..., :-shift, :]
  else:
    out[..., :shift, :] = x[..., -shift:, :]
  return out


def _shift_tf(x: tf.Tensor, shift: tf.Tensor, pad_value: float) -> tf.Tensor:
  length = tf.shape(x)[-2]
  positions = tf.range(length) - shift
  valid = (positions >= 0) & (positions < length)
  gathered = tf.gather(x, tf.clip_by_value(positions, 0, length - 1), axis=-2)
  mask = tf.reshape(valid, [-1, 1])
  return tf.where(mask, gathered, tf.cast(pad_value, x.dtype))


def random_shift(one_hot: tf.Tensor, max_shift: int, seed=None, pad_value: float = 0.0) -> tf.Tensor:
  """Shifts by a uniform random integer in [-max_shift, max_shift] (Enformer/Basenji augmentation).

  `seed` is a stateless seed (shape [2] int tensor); with `None` a stateful op is used.
  Returns the shifted tensor (same shape).
  """
  if max_shift == 0:
    return one_hot
  if seed is None:
    shift = tf.random.uniform([], -max_shift, max_shift + 1, dtype=tf.int32)
  else:
    shift = tf.random.stateless_uniform([], seed, -max_shift, max_shift + 1, dtype=tf.int32)
  return _shift_tf(one_hot, shift, pad_value)


def check_one_hot(x: Array, channels: int = 4, name: str = "inputs") -> None:
  """Raises SequenceError unless `x` is a [B, L, channels] float array (static checks only)."""
  shape = tuple(x.shape)
  if len(shape) != 3:
    raise SequenceError(f"{name} must be a batch of one-hot sequences [batch, length, {channels}], "
                        f"got rank {len(shape)} shape {shape}")
  if shape[-1] is not None and shape[-1] != channels:
    raise SequenceError(f"{name} must have {channels} channels (one-hot A, C, G, T), got {shape[-1]} "
                        f"(shape {shape})")
