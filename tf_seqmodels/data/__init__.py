"""Sequence encoding and (in later modules) genomics data pipelines."""

from tf_seqmodels.data.encoding import (ALPHABET, SequenceError, one_hot_decode, one_hot_encode,
                                        random_shift, reverse_complement,
                                        reverse_complement_one_hot, sequence_to_indices,
                                        shift_sequence)

__all__ = ["ALPHABET", "SequenceError", "one_hot_decode", "one_hot_encode", "random_shift",
           "reverse_complement", "reverse_complement_one_hot", "sequence_to_indices", "shift_sequence"]
