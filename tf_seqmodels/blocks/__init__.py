"""Reusable Sonnet blocks shared by the models."""

from tf_seqmodels.blocks.attention import MultiheadAttention, positional_features, relative_shift
from tf_seqmodels.blocks.bpnet import BPNetTrunk, DilatedResidualStack, ProfileCountsHead
from tf_seqmodels.blocks.absolute_positions import sinusoidal_position_encoding
from tf_seqmodels.blocks.core import (ConvBlock, Residual, TargetLengthCrop1D, centre_crop,
                                      count_parameters, cross_replica_batch_norm,
                                      exponential_linspace_int, gelu_sigmoid)
from tf_seqmodels.blocks.enformer import (ConvTowerBlock, FinalPointwise, SoftplusHead, Stem,
                                          conv_tower, transformer_stack)
from tf_seqmodels.blocks.prixfixe import (BHICore, MultiKernelConv, RegressionHead, SoftBinHead,
                                          soft_bin_expectation)
from tf_seqmodels.blocks.convolution import Conv1D
from tf_seqmodels.blocks.linear import Linear
from tf_seqmodels.blocks.conformer import (PackedMultiheadAttention, Proformer, ProformerLayer,
                                           SwiGLUFeedForward)
from tf_seqmodels.blocks.legnet import (GroupedConv1D, InvertedResidual, LegNetBlock, LegNetCore,
                                        SqueezeExcitation)
from tf_seqmodels.blocks.pooling import MaxPooling1D, SoftmaxPooling1D, pooling_module
from tf_seqmodels.blocks.recurrent import LSTM, BidirectionalLSTM
from tf_seqmodels.blocks.torch_compat import LayerNorm, TorchBatchNorm
from tf_seqmodels.blocks.transformer import TransformerBlock

__all__ = [
    "MultiheadAttention", "positional_features", "relative_shift", "ConvBlock", "Residual",
    "TargetLengthCrop1D", "count_parameters", "cross_replica_batch_norm", "exponential_linspace_int",
    "gelu_sigmoid", "MaxPooling1D", "SoftmaxPooling1D", "pooling_module", "TransformerBlock",
]
__all__ += ["PackedMultiheadAttention", "Proformer", "ProformerLayer", "SwiGLUFeedForward",
            "GroupedConv1D", "InvertedResidual", "LegNetBlock", "LegNetCore", "SqueezeExcitation",
            "LSTM", "BidirectionalLSTM", "TorchBatchNorm", "LayerNorm"]
__all__ += ["BPNetTrunk", "DilatedResidualStack", "ProfileCountsHead", "Conv1D", "Linear"]
__all__ += ["sinusoidal_position_encoding", "centre_crop", "ConvTowerBlock", "FinalPointwise",
            "SoftplusHead", "Stem", "conv_tower", "transformer_stack", "BHICore",
            "MultiKernelConv", "RegressionHead", "SoftBinHead", "soft_bin_expectation"]
