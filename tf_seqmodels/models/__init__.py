"""Models honouring the tf-seqmodels contract, and the name registry."""

from tf_seqmodels.models.base import SequenceModel, num_trainable_parameters
from tf_seqmodels.models.bias_factorized import (BiasFactorizedConfig, BiasFactorizedModel,
                                                 ProfileCountsConfig, ProfileCountsModel,
                                                 TrunkSequence, recalibrate_bias)
from tf_seqmodels.models.bpnet import BiasBPNetConfig, BPNet, BPNetConfig, ChromBPNetBias
from tf_seqmodels.models.dream import (AutosomeCoreConfig, AutosomeFirstConfig, BHICoreConfig,
                                       BHIFirstConfig, DreamAttn, DreamAttnConfig, DreamCNN,
                                       DreamCNNConfig, DreamConfig, DreamModel, DreamRNN,
                                       DreamRNNConfig, PrixFixeTrunk, ProformerCoreConfig,
                                       RegressionHeadConfig, SoftBinHeadConfig)
from tf_seqmodels.models.enformer import Enformer, EnformerConfig
from tf_seqmodels.models.chromoformer import Chromoformer, ChromoformerConfig
from tf_seqmodels.models.registry import available_models, build_model, get_entry, register_model

__all__ = ["SequenceModel", "num_trainable_parameters", "Enformer", "EnformerConfig",
           "available_models", "build_model", "get_entry", "register_model"]
__all__ += ["BiasFactorizedConfig", "BiasFactorizedModel", "ProfileCountsConfig",
            "ProfileCountsModel", "TrunkSequence", "recalibrate_bias", "BiasBPNetConfig", "BPNet",
            "BPNetConfig", "ChromBPNetBias"]
__all__ += ["AutosomeCoreConfig", "AutosomeFirstConfig", "BHICoreConfig", "BHIFirstConfig",
            "DreamAttn", "DreamAttnConfig", "DreamCNN", "DreamCNNConfig", "DreamConfig",
            "DreamModel", "DreamRNN", "DreamRNNConfig", "PrixFixeTrunk", "ProformerCoreConfig",
            "RegressionHeadConfig", "SoftBinHeadConfig"]
__all__ += ["Chromoformer", "ChromoformerConfig"]
