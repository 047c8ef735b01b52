"""Reusable Sonnet blocks shared by the models."""

from tf_seqmodels.blocks.attention import MultiheadAttention, positional_features, relative_shift
from tf_seqmodels.blocks.core import (ConvBlock, Residual, TargetLengthCrop1D, count_parameters,
                                      cross_replica_batch_norm, exponential_linspace_int,
                                      gelu_sigmoid)
from tf_seqmodels.blocks.pooling import MaxPooling1D, SoftmaxPooling1D, pooling_module
from tf_seqmodels.blocks.transformer import TransformerBlock

__all__ = [
    "MultiheadAttention", "positional_features", "relative_shift", "ConvBlock", "Residual",
    "TargetLengthCrop1D", "count_parameters", "cross_replica_batch_norm", "exponential_linspace_int",
    "gelu_sigmoid", "MaxPooling1D", "SoftmaxPooling1D", "pooling_module", "TransformerBlock",
]
