"""Enformer (Avsec et al. 2021, Nature Methods) as Sonnet v2 modules.

Faithful to the 2022 reference (`deepmind-research/enformer`, commit 57456a0): cross-replica
BatchNorm with EMA(0.9) statistics, sigmoid-GELU, softmax pooling initialised at 2·I, relative
positional basis functions with per-basis gamma normalisation, pre-LN transformer without a
final LayerNorm, centre crop to the target length, softplus heads.

    inputs [B, L, 4] one-hot ACGT, L % bin_size == 0 and L / bin_size >= target_length
      stem           [B, L/2, C/2]
      conv_tower     [B, L/128, C]          (6 blocks, each halves the length)
      transformer    [B, L/128, C]
      crop           [B, target_length, C]
      final          [B, target_length, 2C]  = embed(inputs)
      heads          {name: [B, target_length, tracks]}

The blocks are in blocks/enformer.py (stem, conv tower, transformer stack, final pointwise,
heads), blocks/attention.py and blocks/core.py; this module configures and composes them.

At the defaults (L = 196,608, C = 1536, 11 layers, 8 heads) there are 251,221,292 trainable
parameters, the embedding is [B, 896, 3072] and the heads are human 5,313 / mouse 1,643.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Optional

import tensorflow as tf

from tf_seqmodels.blocks.attention import POSITIONAL_FUNCTIONS, num_positional_components
from tf_seqmodels.blocks.absolute_positions import sinusoidal_position_encoding
from tf_seqmodels.blocks.core import TargetLengthCrop1D, exponential_linspace_int, shape_list
from tf_seqmodels.blocks.enformer import (FinalPointwise, SoftplusHead, Stem, conv_tower,
                                          transformer_stack)
from tf_seqmodels.blocks.dilated import DilatedResidualBlock, dilation_rates
from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.data.encoding import SequenceError
from tf_seqmodels.models.base import NoAttentionError, SequenceModel
from tf_seqmodels.models.registry import register_model

_HEAD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class EnformerConfig(Config):
  """Enformer hyper-parameters; the defaults are the published model."""

  channels: int = 1536
  num_transformer_layers: int = 11
  num_heads: int = 8
  pooling_type: str = "attention"  # 'attention' (softmax pooling) or 'max'
  heads: dict[str, int] = dataclasses.field(
      default_factory=lambda: {"human": 5313, "mouse": 1643})
  sequence_length: int = 196_608  # training length; any multiple of bin_size works
  target_length: Optional[int] = 896  # output bins kept after the centre crop; None = no crop
  num_conv_tower_blocks: int = 6  # bin size = 2 ** (blocks + 1): 128 bp
  filters_divisible_by: int = 128  # conv tower widths are rounded to multiples of this
  stem_kernel_size: int = 15
  conv_tower_kernel_size: int = 5
  key_size: int = 64
  dropout_rate: float = 0.4
  attention_dropout_rate: float = 0.05
  positional_dropout_rate: float = 0.01
  final_dropout_rate: float = 0.05  # the reference's dropout_rate / 8
  relative_position_functions: tuple[str, ...] = POSITIONAL_FUNCTIONS
  relative_position_symmetric: bool = False
  bn_decay: float = 0.9
  # Ablations of the Enformer paper (defaults = the published model; what each variant tests:
  # models/enformer_ablations.py). trunk 'dilated' replaces the transformer layers by as many
  # Basenji2 dilated residual blocks at the same width; attention_window limits attention to
  # keys within that many bins; positional_encoding 'absolute' adds sinusoidal positions
  # before the transformer instead of the relative basis functions.
  trunk: str = "transformer"  # 'transformer' or 'dilated'
  dilation_rate_multiplier: float = 1.5
  attention_window: Optional[int] = None
  positional_encoding: str = "relative"  # 'relative' or 'absolute'

  @property
  def bin_size(self) -> int:
    return 2 ** (self.num_conv_tower_blocks + 1)

  @property
  def conv_tower_filters(self) -> list[int]:
    return exponential_linspace_int(self.channels // 2, self.channels,
                                    self.num_conv_tower_blocks, self.filters_divisible_by)

  @property
  def embedding_size(self) -> int:
    return 2 * self.channels

  @property
  def value_size(self) -> int:
    return self.channels // self.num_heads

  def output_length(self, sequence_length: int) -> int:
    bins = sequence_length // self.bin_size
    return bins if self.target_length is None else self.target_length

  def validate(self) -> None:
    def fail(msg):
      raise ConfigError(f"EnformerConfig: {msg}")

    for field in ("channels", "num_heads", "key_size", "sequence_length", "num_conv_tower_blocks",
                  "filters_divisible_by", "stem_kernel_size", "conv_tower_kernel_size"):
      if getattr(self, field) <= 0:
        fail(f"{field} must be positive, got {getattr(self, field)}")
    if self.num_transformer_layers < 0:
      fail(f"num_transformer_layers must be >= 0, got {self.num_transformer_layers}")
    if self.channels % 2:
      fail(f"channels must be even (the stem has channels / 2), got {self.channels}")
    if self.channels % self.num_heads:
      fail(f"channels {self.channels} must be divisible by num_heads {self.num_heads}")
    components = num_positional_components(self.relative_position_functions,
                                           self.relative_position_symmetric)
    unknown = set(self.relative_position_functions) - set(POSITIONAL_FUNCTIONS)
    if unknown or not self.relative_position_functions:
      fail(f"relative_position_functions must be a non-empty subset of {POSITIONAL_FUNCTIONS}, "
           f"got {self.relative_position_functions}")
    if self.value_size % components:
      fail(f"channels / num_heads = {self.value_size} must be divisible by {components} "
           f"(relative position features: {len(self.relative_position_functions)} functions"
           f"{'' if self.relative_position_symmetric else ' x 2 signs'})")
    filters = self.conv_tower_filters
    if min(filters) <= 0 or filters[-1] != self.channels:
      fail(f"conv tower widths {filters} (channels/2 -> channels rounded to multiples of "
           f"{self.filters_divisible_by}) must be positive and end at channels={self.channels}; "
           f"choose channels as a multiple of filters_divisible_by")
    if self.pooling_type not in ("attention", "max"):
      fail(f"pooling_type must be 'attention' or 'max', got {self.pooling_type!r}")
    if self.trunk not in ("transformer", "dilated"):
      fail(f"trunk must be 'transformer' or 'dilated', got {self.trunk!r}")
    if self.positional_encoding not in ("relative", "absolute"):
      fail(f"positional_encoding must be 'relative' or 'absolute', got {self.positional_encoding!r}")
    if self.attention_window is not None and self.attention_window < 0:
      fail(f"attention_window must be >= 0 bins or null, got {self.attention_window}")
    if self.dilation_rate_multiplier < 1.0:
      fail(f"dilation_rate_multiplier must be >= 1, got {self.dilation_rate_multiplier}")
    if not self.heads:
      fail("heads must name at least one output head")
    for name, tracks in self.heads.items():
      if not _HEAD_NAME.match(name):
        fail(f"head name {name!r} must be an identifier (letters, digits, underscore)")
      if tracks <= 0:
        fail(f"head {name!r} must have a positive number of tracks, got {tracks}")
    if self.target_length is not None and self.target_length <= 0:
      fail(f"target_length must be positive or null, got {self.target_length}")
    try:
      check_enformer_length(self, self.sequence_length)
    except SequenceError as e:
      fail(f"sequence_length: {e}")
    for field in ("dropout_rate", "attention_dropout_rate", "positional_dropout_rate",
                  "final_dropout_rate"):
      if not 0.0 <= getattr(self, field) < 1.0:
        fail(f"{field} must be in [0, 1), got {getattr(self, field)}")


def check_enformer_length(config: EnformerConfig, length: int) -> None:
  if length % config.bin_size:
    raise SequenceError(f"Enformer input length must be a multiple of {config.bin_size} bp, got {length}")
  bins = length // config.bin_size
  if config.target_length is not None and bins < config.target_length:
    raise SequenceError(
        f"Enformer input of {length} bp gives {bins} bins of {config.bin_size} bp, fewer than "
        f"target_length {config.target_length}; use at least {config.target_length * config.bin_size} bp")


def enformer_demo_config() -> EnformerConfig:
  """The published architecture at 384 channels / 2 layers on 16 kb: seconds on a CPU."""
  return EnformerConfig(channels=384, num_transformer_layers=2, sequence_length=16_384,
                        target_length=64)


def enformer_tiny_config() -> EnformerConfig:
  """Every part of the architecture (stem, 6-block conv tower to 128-bp bins, one
  transformer layer with relative positions, crop, two organism heads) at toy widths on 1 kb."""
  return EnformerConfig(channels=48, num_transformer_layers=1, num_heads=2, key_size=8,
                        filters_divisible_by=8, heads={"human": 5, "mouse": 3},
                        sequence_length=1024, target_length=4)


@register_model("enformer", EnformerConfig, "Enformer (Avsec et al. 2021): conv tower + "
                "relative-position transformer, 128-bp track heads",
                demo_config=enformer_demo_config, tiny_config=enformer_tiny_config,
                search_space={
                    "model.config.channels": {"type": "choice", "values": [768, 1152, 1536]},
                    "model.config.num_transformer_layers": {"type": "int", "min": 4, "max": 11},
                    "model.config.num_heads": {"type": "choice", "values": [4, 8]},
                    "optimizer.learning_rate": {"type": "float", "min": 1e-4, "max": 1e-3,
                                                "sampling": "log"},
                    "optimizer.warmup_steps": {"type": "int", "min": 1000, "max": 10000,
                                               "step": 1000}})
class Enformer(SequenceModel):
  """Enformer; see the module docstring for shapes."""

  config: EnformerConfig
  citation = "https://doi.org/10.1038/s41592-021-01252-x"  # Avsec et al. 2021, Nat Methods

  def __init__(self, config: Optional[EnformerConfig] = None, name: Optional[str] = "enformer"):
    super().__init__(config or EnformerConfig(), name=name)
    cfg = self.config
    self.stem = Stem(cfg.channels // 2, cfg.stem_kernel_size, cfg.pooling_type, cfg.bn_decay,
                     name="stem")
    self.conv_tower = conv_tower(cfg.conv_tower_filters, cfg.conv_tower_kernel_size,
                                 cfg.pooling_type, cfg.bn_decay)
    self.transformer = transformer_stack(
        cfg.num_transformer_layers if cfg.trunk == "transformer" else 0, cfg.channels,
        cfg.num_heads, key_size=cfg.key_size, dropout_rate=cfg.dropout_rate,
        attention_dropout_rate=cfg.attention_dropout_rate,
        positional_dropout_rate=cfg.positional_dropout_rate,
        relative_position_functions=cfg.relative_position_functions,
        relative_position_symmetric=cfg.relative_position_symmetric,
        relative_positions=cfg.positional_encoding == "relative",
        attention_window=cfg.attention_window)
    if cfg.trunk == "dilated":  # only then: the published model's variables stay unchanged
      self.dilated_trunk = [
          DilatedResidualBlock(cfg.channels, rate, dropout_rate=cfg.dropout_rate,
                               bn_decay=cfg.bn_decay, name=f"dilated_block_{i}")
          for i, rate in enumerate(dilation_rates(cfg.num_transformer_layers,
                                                  cfg.dilation_rate_multiplier))]
    self.crop = TargetLengthCrop1D(cfg.target_length, name="target_input")
    self.final_pointwise = FinalPointwise(cfg.embedding_size, cfg.final_dropout_rate,
                                          cfg.bn_decay, name="final_pointwise")
    self.heads = {head: SoftplusHead(tracks, name=f"head_{head}")
                  for head, tracks in cfg.heads.items()}

  # --- contract -----------------------------------------------------------------------------
  @property
  def input_channels(self) -> int:
    return 4

  @property
  def head_names(self) -> tuple[str, ...]:
    return tuple(self.config.heads)

  @property
  def dynamic_length(self) -> bool:
    return True

  @property
  def published_input_length(self) -> Optional[int]:
    # The published TF-Hub Enformer takes twice the training length (393,216 bp) and keeps
    # only the central 196,608 bp.
    return 2 * self.config.sequence_length

  @property
  def min_length(self) -> int:
    return self.config.bin_size * (self.config.target_length or 1)

  @property
  def length_multiple(self) -> int:
    return self.config.bin_size

  def check_length(self, length: int) -> None:
    check_enformer_length(self.config, length)

  def trunk_stages(self, inputs: tf.Tensor, is_training: bool) -> "collections.OrderedDict[str, tf.Tensor]":
    """All trunk activations by stage name: stem, conv_tower, transformer, target_input,
    final_pointwise (the last is the embedding)."""
    self.check_inputs(inputs)
    if inputs.shape[1] is None:
      tf.debugging.assert_equal(
          tf.shape(inputs)[1] % self.config.bin_size, 0,
          message=f"Enformer input length must be a multiple of {self.config.bin_size} bp")
    stages = collections.OrderedDict()
    x = self._transformer_inputs(inputs, is_training, stages)
    for block in self.transformer + getattr(self, "dilated_trunk", []):
      x = block(x, is_training=is_training)
    stages["transformer"] = x  # the trunk's output, whichever its kind
    x = stages["target_input"] = self.crop(x)
    stages["final_pointwise"] = self.final_pointwise(x, is_training=is_training)
    return stages

  def _transformer_inputs(self, inputs: tf.Tensor, is_training: bool,
                          stages: Optional[dict] = None) -> tf.Tensor:
    """Stem and conv tower [B, L / 128, C], plus absolute positions when configured: the
    transformer's input (records "stem" and "conv_tower" into `stages` when given)."""
    stages = {} if stages is None else stages
    x = stages["stem"] = self.stem(inputs, is_training=is_training)
    for block in self.conv_tower:
      x = block(x, is_training=is_training)
    stages["conv_tower"] = x
    if self.config.positional_encoding == "absolute" and self.transformer:
      x += sinusoidal_position_encoding(shape_list(x)[1], self.config.channels)
    return x

  @property
  def position_axes(self) -> dict[str, Optional[int]]:
    return {head: 1 for head in self.head_names}  # [B, bins, tracks]

  def attention_weights(self, inputs: tf.Tensor) -> tf.Tensor:
    """Inference attention weights [B, layers, heads, T, T] (query, key) over the L/128
    bins before the crop."""
    self.check_inputs(inputs)
    x = self._transformer_inputs(inputs, is_training=False)
    weights = []
    for block in self.transformer:  # one pass per block: its output and its weights
      x, block_weights = block(x, is_training=False, return_weights=True)
      weights.append(block_weights)
    if not weights:
      raise NoAttentionError("this Enformer has no transformer layers (attention weights)")
    return tf.stack(weights, axis=1)

  def embed(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Trunk embedding [B, target_length, 2C] ([B, 896, 3072] at the defaults)."""
    return self.trunk_stages(inputs, is_training)["final_pointwise"]

  def apply_heads(self, embedding: tf.Tensor) -> dict[str, tf.Tensor]:
    return {head: module(embedding) for head, module in self.heads.items()}

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> dict[str, tf.Tensor]:
    return self.apply_heads(self.embed(inputs, is_training))
