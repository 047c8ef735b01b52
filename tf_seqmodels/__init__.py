"""tf-seqmodels: sequence-to-function genomics models in TensorFlow 2 / Sonnet v2."""

__version__ = "0.1.0"

from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.data.encoding import (SequenceError, one_hot_decode, one_hot_encode,
                                        reverse_complement, reverse_complement_one_hot,
                                        shift_sequence)
from tf_seqmodels.models import Enformer, EnformerConfig, SequenceModel, available_models, build_model

__all__ = [
    "__version__", "Config", "ConfigError", "SequenceError", "one_hot_encode", "one_hot_decode",
    "reverse_complement", "reverse_complement_one_hot", "shift_sequence", "Enformer",
    "EnformerConfig", "SequenceModel", "available_models", "build_model",
]
