"""BPNet as used by ChromBPNet (Pampari et al. 2025; kundajelab/chrombpnet v1.0.1).

    inputs [B, L, 4] one-hot ACGT (N = all zeros), L = sequence_length (2,114)
      first_conv   Conv1D(filters, 21, VALID) + ReLU               [B, L - 20, F]
      dilated      n x (Conv1D(filters, 3, dilation 2^i, VALID) + ReLU, + cropped residual)
                                                                    [B, L', F] = embed(inputs)
      heads        profile   Conv1D(1, 75, VALID) -> centre crop    [B, output_length] logits
                   logcounts mean over L' -> Linear(1)               [B, 1] log total counts

Two registered presets share the code:

- "bpnet": the ChromBPNet accessibility model (512 filters, 8 dilated layers; L' = 1,074,
  6,377,986 parameters);
- "chrombpnet_bias": the bias model (128 filters, 4 dilated layers; L' = 2,034, 217,730
  parameters).

Both map 2,114 bp to 1,000 bp. Kernels start from Keras' glorot-uniform initialiser
(`initializer="sonnet"` for Sonnet's default) and biases at zero, like the reference.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow as tf

from tf_seqmodels.blocks.bpnet import BPNetTrunk, ProfileCountsHead
from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.models.base import SequenceModel
from tf_seqmodels.models.registry import register_model

PROFILE_HEAD = "profile"
COUNTS_HEAD = "logcounts"
HEAD_NAMES = (PROFILE_HEAD, COUNTS_HEAD)


@dataclasses.dataclass(frozen=True)
class BPNetConfig(Config):
  """BPNet hyper-parameters; the defaults are ChromBPNet's accessibility model."""

  filters: int = 512
  num_dilated_layers: int = 8
  first_kernel_size: int = 21
  dilated_kernel_size: int = 3
  profile_kernel_size: int = 75
  sequence_length: int = 2114
  output_length: int = 1000
  initializer: str = "glorot_uniform"  # or 'sonnet'

  @property
  def stream_length(self) -> int:
    """Positions of the trunk output (what the counts head averages over)."""
    dilations = sum(2**i for i in range(1, self.num_dilated_layers + 1))
    return (self.sequence_length - (self.first_kernel_size - 1)
            - (self.dilated_kernel_size - 1) * dilations)

  @property
  def profile_precrop_length(self) -> int:
    return self.stream_length - (self.profile_kernel_size - 1)

  @property
  def receptive_field(self) -> int:
    """Input positions seen by one profile output position."""
    return self.sequence_length - self.profile_precrop_length + 1

  def validate(self) -> None:
    def fail(msg):
      raise ConfigError(f"{type(self).__name__}: {msg}")

    for field in ("filters", "first_kernel_size", "dilated_kernel_size", "profile_kernel_size",
                  "sequence_length", "output_length"):
      if getattr(self, field) <= 0:
        fail(f"{field} must be positive, got {getattr(self, field)}")
    if self.num_dilated_layers < 0:
      fail(f"num_dilated_layers must be >= 0, got {self.num_dilated_layers}")
    if self.dilated_kernel_size % 2 != 1:
      fail(f"dilated_kernel_size must be odd (residuals are centre-cropped symmetrically), "
           f"got {self.dilated_kernel_size}")
    if self.initializer not in ("glorot_uniform", "sonnet"):
      fail(f"initializer must be 'glorot_uniform' or 'sonnet', got {self.initializer!r}")
    if self.profile_precrop_length < self.output_length:
      needed = self.sequence_length + self.output_length - self.profile_precrop_length
      fail(f"sequence_length {self.sequence_length} is too short: the profile convolution "
           f"yields {self.profile_precrop_length} positions, fewer than output_length "
           f"{self.output_length}; use sequence_length >= {needed} or fewer/smaller layers")


@dataclasses.dataclass(frozen=True)
class BiasBPNetConfig(BPNetConfig):
  """ChromBPNet's bias model: the same BPNet, 128 filters and 4 dilated layers."""

  filters: int = 128
  num_dilated_layers: int = 4


def demo_bpnet_config() -> BPNetConfig:
  """A small BPNet (32 filters, 3 layers, 512 bp -> 256 bp) for demos and smoke tests."""
  return BPNetConfig(filters=32, num_dilated_layers=3, sequence_length=512, output_length=256)


def demo_bias_config() -> BiasBPNetConfig:
  """A small bias model matching `demo_bpnet_config`'s input and output lengths."""
  return BiasBPNetConfig(filters=16, num_dilated_layers=2, sequence_length=512, output_length=256)


class ProfileCountsOutputs(SequenceModel):
  """Contract pieces shared by every model with ChromBPNet's heads: {"profile": [B, P]
  logits along the sequence, "logcounts": [B, 1]}."""

  @property
  def head_names(self) -> tuple[str, ...]:
    return HEAD_NAMES

  @property
  def position_axes(self) -> dict[str, Optional[int]]:
    return {PROFILE_HEAD: 1, COUNTS_HEAD: None}

  @property
  def head_kinds(self) -> dict[str, str]:
    return {PROFILE_HEAD: "profile_logits", COUNTS_HEAD: "log_counts"}


def bpnet_search_space(prefix: str = "model.config.") -> dict:
  """The tuner's BPNet space; `prefix` is where the BPNet config sits in the run config."""
  return {f"{prefix}filters": {"type": "choice", "values": [64, 128, 256, 512]},
          f"{prefix}num_dilated_layers": {"type": "int", "min": 4, "max": 9},
          "task.options.counts_loss_weight": {"type": "float", "min": 1.0, "max": 100.0,
                                              "sampling": "log"},
          "optimizer.learning_rate": {"type": "float", "min": 1e-4, "max": 3e-3,
                                      "sampling": "log"}}


@register_model("bpnet", BPNetConfig, "BPNet as in ChromBPNet: valid dilated residual convs, "
                "profile logits + log counts heads (defaults: the accessibility model)",
                demo_config=demo_bpnet_config, search_space=bpnet_search_space())
class BPNet(ProfileCountsOutputs):
  """BPNet; heads {"profile": [B, output_length] logits, "logcounts": [B, 1]}."""

  config: BPNetConfig
  citation = "https://doi.org/10.1038/s41588-021-00782-6"  # Avsec et al. 2021, Nat Genet

  def __init__(self, config: Optional[BPNetConfig] = None, name: Optional[str] = "bpnet"):
    super().__init__(config or self.default_config(), name=name)
    cfg = self.config
    self.trunk = BPNetTrunk(cfg.filters, cfg.num_dilated_layers, cfg.first_kernel_size,
                            cfg.dilated_kernel_size, cfg.initializer, name="trunk")
    self.head = ProfileCountsHead(cfg.output_length, cfg.profile_kernel_size, cfg.initializer,
                                  name="head")

  @classmethod
  def default_config(cls) -> BPNetConfig:
    return BPNetConfig()

  # --- contract -----------------------------------------------------------------------------
  @property
  def input_channels(self) -> int:
    return 4

  @property
  def output_length(self) -> int:
    return self.config.output_length

  def embed(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Trunk stream [B, stream_length, filters] ([B, 1074, 512] at the defaults)."""
    self.check_inputs(inputs)
    return self.trunk(inputs, is_training=is_training)

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> dict[str, tf.Tensor]:
    return self.head(self.embed(inputs, is_training))

  def shift_logcounts(self, delta: float) -> None:
    """Adds `delta` to the log-counts output (bias recalibration)."""
    self.head.shift_logcounts(delta)


@register_model("chrombpnet_bias", BiasBPNetConfig, "ChromBPNet bias model: BPNet with 128 "
                "filters and 4 dilated layers, trained on low-count non-peaks",
                demo_config=demo_bias_config, search_space=bpnet_search_space())
class ChromBPNetBias(BPNet):
  """The bias model (a BPNet with `BiasBPNetConfig` defaults)."""

  config: BiasBPNetConfig
  citation = "https://doi.org/10.1101/2024.12.25.630221"  # Pampari et al. 2024, bioRxiv

  def __init__(self, config: Optional[BiasBPNetConfig] = None,
               name: Optional[str] = "chrombpnet_bias"):
    super().__init__(config, name=name)

  @classmethod
  def default_config(cls) -> BiasBPNetConfig:
    return BiasBPNetConfig()
