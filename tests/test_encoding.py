"""One-hot encoding, reverse complement and shifts: round-trips, numpy/TF agreement, errors."""

import numpy as np
import pytest
import tensorflow as tf

from tf_seqmodels.data.encoding import (SequenceError, check_one_hot, one_hot_decode,
                                        one_hot_encode, random_shift, reverse_complement,
                                        reverse_complement_one_hot, sequence_to_indices,
                                        shift_sequence)


def test_one_hot_layout_acgt_and_n_zero():
  x = one_hot_encode("ACGTN")
  np.testing.assert_array_equal(x, [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1],
                                    [0, 0, 0, 0]])
  assert x.dtype == np.float32
  np.testing.assert_array_equal(one_hot_encode("acgtn"), x)  # soft-masked genomes
  np.testing.assert_array_equal(one_hot_encode("N", neutral_value=0.25), [[0.25] * 4])
  np.testing.assert_array_equal(sequence_to_indices("ACGTN"), [0, 1, 2, 3, 4])


def test_batch_encoding_and_decode_round_trip():
  rng = np.random.default_rng(0)
  seqs = ["".join(rng.choice(list("ACGTN"), 300)) for _ in range(5)]
  x = one_hot_encode(seqs)
  assert x.shape == (5, 300, 4)
  assert one_hot_decode(x) == seqs
  assert one_hot_decode(x[0]) == seqs[0]


def test_bad_characters_and_lengths_are_named():
  with pytest.raises(SequenceError, match=r"invalid character 'X' at position 3 \(2 invalid"):
    one_hot_encode("ACGXTX")
  with pytest.raises(SequenceError, match="non-ASCII"):
    one_hot_encode("ACGÅ")
  with pytest.raises(SequenceError, match="equal length"):
    one_hot_encode(["ACGT", "ACG"])
  with pytest.raises(SequenceError, match="no sequences"):
    one_hot_encode([])
  with pytest.raises(SequenceError, match="invalid character"):
    reverse_complement("ACGU")
  with pytest.raises(SequenceError, match="shape"):
    one_hot_decode(np.zeros((3, 5)))


def test_reverse_complement_strings_and_one_hot_agree():
  seq = "AACGTNacgtG"
  assert reverse_complement(seq) == "CacgtNACGTT"
  assert reverse_complement(reverse_complement(seq)) == seq
  x = one_hot_encode(seq.upper())
  rc = reverse_complement_one_hot(x)
  assert one_hot_decode(rc) == reverse_complement(seq.upper())
  batch = one_hot_encode([seq.upper(), "ACGTACGTACG"])
  rc_tf = reverse_complement_one_hot(tf.constant(batch))
  assert isinstance(rc_tf, tf.Tensor)
  np.testing.assert_array_equal(rc_tf.numpy(), reverse_complement_one_hot(batch))
  np.testing.assert_array_equal(reverse_complement_one_hot(reverse_complement_one_hot(batch)), batch)


@pytest.mark.parametrize("shift", [-3, -1, 0, 2])
def test_shift_numpy_and_tf_agree(shift):
  x = one_hot_encode(["ACGTACGTAC", "GGGTTTAACC"])
  expected_first = "ACGTACGTAC"
  shifted = shift_sequence(x, shift)
  decoded = one_hot_decode(shifted)[0]
  if shift > 0:
    assert decoded == "N" * shift + expected_first[:-shift]
  elif shift < 0:
    assert decoded == expected_first[-shift:] + "N" * -shift
  else:
    assert decoded == expected_first
  np.testing.assert_array_equal(shift_sequence(tf.constant(x), shift).numpy(), shifted)
  with pytest.raises(SequenceError, match="smaller than the sequence length"):
    shift_sequence(x, 10)


def test_random_shift_is_seeded_and_bounded():
  x = tf.constant(one_hot_encode("ACGTACGTACGTACGTACGT"))
  a = random_shift(x, 3, seed=tf.constant([1, 2]))
  b = random_shift(x, 3, seed=tf.constant([1, 2]))
  np.testing.assert_array_equal(a.numpy(), b.numpy())
  seen = set()
  for i in range(40):
    y = random_shift(x, 3, seed=tf.constant([i, 0])).numpy()
    matches = [s for s in range(-3, 4) if np.array_equal(y, shift_sequence(x.numpy(), s))]
    assert matches
    seen.update(matches)
  assert seen == set(range(-3, 4))


def test_check_one_hot_rank_and_channels():
  check_one_hot(np.zeros((2, 10, 4)))
  with pytest.raises(SequenceError, match="rank 2"):
    check_one_hot(np.zeros((10, 4)))
  with pytest.raises(SequenceError, match="6 channels"):
    check_one_hot(np.zeros((2, 10, 4)), channels=6)
