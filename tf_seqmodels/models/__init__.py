"""Models honouring the tf-seqmodels contract, and the name registry."""

from tf_seqmodels.models.base import SequenceModel, num_trainable_parameters
from tf_seqmodels.models.enformer import Enformer, EnformerConfig
from tf_seqmodels.models.registry import available_models, build_model, get_entry, register_model

__all__ = ["SequenceModel", "num_trainable_parameters", "Enformer", "EnformerConfig",
           "available_models", "build_model", "get_entry", "register_model"]
