"""DREAM-optimised models (Rafi et al. 2024): DREAM-CNN, -RNN and -Attn as Prix Fixe blocks.

A Prix Fixe model is first block -> core block -> final block. Any first block fits any core
(channel widths are derived, never typed twice) and any final block fits any trunk:

    inputs [B, L, input_channels]   yeast: 150 nt, 6 channels (A, G, C, T, is_reverse, is_singleton)
      first  [B, L, C1]             "bhi": parallel convs k (9, 15), 2 x 160 ch, ReLU, dropout 0.2
                                    "autosome": conv k 7 (no bias), BatchNorm, SiLU, 256 ch
      core   [B, L, C2] = embed()   "autosome": LegNet core, C2 = block_sizes[-1] (64)
                                    "bhi": Bi-LSTM (320 / direction) -> parallel convs (320)
                                           -> dropout 0.5
                                    "proformer": positions + 4 macaron conformer layers, C2 = C1
      final  heads                  "soft_bins": 1x1 conv -> mean over L = bin_logits [B, 18];
                                           expression = sum_k softmax(bin_logits)_k * k, [B]
                                    "regression": per task 1x1 conv (256) -> mean over L
                                           -> Linear(1), [B]

Published combinations (yeast, 6 x 150; parameters first / core / final = total):
    dream_cnn   bhi + autosome + soft_bins    23,360 / 1,909,440 / 1,170 = 1,933,970
    dream_rnn   bhi + bhi + soft_bins         23,360 / 4,101,440 / 5,778 = 4,130,578
    dream_attn  autosome + proformer + soft   11,264 / 4,523,520 / 4,626 = 4,539,410

The blocks live in tf_seqmodels.blocks: prixfixe (BHI convs, BHI core, both final blocks),
legnet (Autosome stem and core), conformer (Proformer); this module holds their configs and
the combinations.

The reference is the Prix Fixe code (de-Boer-Lab/random-promoter-dream-challenge-2022,
commit f7b2e19), not the paper prose; PyTorch numerics are reproduced exactly (BatchNorm
momentum/eps/unbiased running variance, two LSTM biases, LayerNorm eps 1e-6, 4 attention
heads). Weights trained in PyTorch load with `tf_seqmodels.convert.torch_state_dict`.

Initialisation mirrors the reference: Autosome blocks (first, core, both final blocks) use
conv N(0, sqrt(2 / (k * out))), Linear N(0, 0.001), zero biases; BHI and Proformer blocks
keep PyTorch's defaults. Random streams differ from PyTorch's, so only distributions match.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Literal, Mapping, Optional, Union

import sonnet as snt
import tensorflow as tf

from tf_seqmodels.blocks.conformer import Proformer
from tf_seqmodels.blocks.legnet import ConvBatchNormAct, LegNetCore
from tf_seqmodels.blocks.prixfixe import BHICore, MultiKernelConv, RegressionHead, SoftBinHead
from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.models.base import SequenceModel
from tf_seqmodels.models.registry import register_model

_HEAD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NUM_NUCLEOTIDE_CHANNELS = 4


def _fail(where: str, message: str):
  raise ConfigError(f"{where}: {message}")


def _check_positive(where: str, **values) -> None:
  for field, value in values.items():
    if value <= 0:
      _fail(where, f"{field} must be positive, got {value}")


def _check_rate(where: str, **values) -> None:
  for field, value in values.items():
    if not 0.0 <= value < 1.0:
      _fail(where, f"{field} must be in [0, 1), got {value}")


# === block configs ===========================================================================
@dataclasses.dataclass(frozen=True)
class BHIFirstConfig(Config):
  """BHI first block: parallel 'same' convs (with bias) -> ReLU -> Dropout, concatenated.

  out_channels are split evenly over the kernels (320 = 2 x 160 for kernels 9 and 15).
  The reference's MaxPool1d(pool_size=1) is a no-op and is not modelled.
  """

  kind: Literal["bhi"] = "bhi"
  out_channels: int = 320
  kernel_sizes: tuple[int, ...] = (9, 15)
  dropout_rate: float = 0.2

  def validate(self) -> None:
    where = type(self).__name__
    _check_positive(where, out_channels=self.out_channels)
    if not self.kernel_sizes or min(self.kernel_sizes) <= 0:
      _fail(where, f"kernel_sizes must be a non-empty list of positive sizes, got "
            f"{self.kernel_sizes}")
    if self.out_channels % len(self.kernel_sizes):
      _fail(where, f"out_channels {self.out_channels} must be divisible by the number of kernel "
            f"sizes {len(self.kernel_sizes)}")
    _check_rate(where, dropout_rate=self.dropout_rate)

  def output_channels(self, in_channels: int) -> int:
    del in_channels
    return self.out_channels


@dataclasses.dataclass(frozen=True)
class AutosomeFirstConfig(Config):
  """Autosome (LegNet) stem: Conv1D k (no bias) -> PyTorch BatchNorm -> SiLU."""

  kind: Literal["autosome"] = "autosome"
  out_channels: int = 256
  kernel_size: int = 7
  bn_momentum: float = 0.1
  bn_eps: float = 1e-5

  def validate(self) -> None:
    where = type(self).__name__
    _check_positive(where, out_channels=self.out_channels, kernel_size=self.kernel_size,
                    bn_eps=self.bn_eps)
    if not 0.0 < self.bn_momentum <= 1.0:
      _fail(where, f"bn_momentum must be in (0, 1], got {self.bn_momentum}")

  def output_channels(self, in_channels: int) -> int:
    del in_channels
    return self.out_channels


@dataclasses.dataclass(frozen=True)
class AutosomeCoreConfig(Config):
  """Autosome core: LegNet blocks in -> block_sizes[0] -> ... -> block_sizes[-1] (blocks.legnet)."""

  kind: Literal["autosome"] = "autosome"
  block_sizes: tuple[int, ...] = (128, 128, 64, 64, 64, 64)
  kernel_size: int = 7
  resize_factor: int = 4
  filters_per_group: int = 2
  se_reduction: int = 4
  bn_momentum: float = 0.1
  bn_eps: float = 1e-5

  def validate(self) -> None:
    where = type(self).__name__
    if not self.block_sizes or min(self.block_sizes) <= 0:
      _fail(where, f"block_sizes must be a non-empty list of positive widths, got "
            f"{self.block_sizes}")
    _check_positive(where, kernel_size=self.kernel_size, resize_factor=self.resize_factor,
                    filters_per_group=self.filters_per_group, se_reduction=self.se_reduction,
                    bn_eps=self.bn_eps)
    if not 0.0 < self.bn_momentum <= 1.0:
      _fail(where, f"bn_momentum must be in (0, 1], got {self.bn_momentum}")
    for size in self.block_sizes:
      if (size * self.resize_factor) % self.filters_per_group:
        _fail(where, f"expanded width {size} x resize_factor {self.resize_factor} must be "
              f"divisible by filters_per_group {self.filters_per_group}")
    for size in self.block_sizes[:-1]:
      if size < self.se_reduction:
        _fail(where, f"block size {size} is below se_reduction {self.se_reduction}: the "
              f"squeeze-excitation hidden width would be 0")

  def output_channels(self, in_channels: int) -> int:
    del in_channels
    return self.block_sizes[-1]

  def check_input(self, in_channels: int, sequence_length: int, where: str) -> None:
    del sequence_length
    if in_channels < self.se_reduction:
      _fail(where, f"the Autosome core's input width {in_channels} (first block output) is below "
            f"se_reduction {self.se_reduction}: its first squeeze-excitation would have 0 units")


@dataclasses.dataclass(frozen=True)
class BHICoreConfig(Config):
  """BHI core: Bi-LSTM (lstm_hidden_size per direction) -> BHI parallel convs -> Dropout."""

  kind: Literal["bhi"] = "bhi"
  lstm_hidden_size: int = 320
  out_channels: int = 320
  kernel_sizes: tuple[int, ...] = (9, 15)
  conv_dropout_rate: float = 0.2
  dropout_rate: float = 0.5

  def validate(self) -> None:
    where = type(self).__name__
    _check_positive(where, lstm_hidden_size=self.lstm_hidden_size, out_channels=self.out_channels)
    if not self.kernel_sizes or min(self.kernel_sizes) <= 0:
      _fail(where, f"kernel_sizes must be a non-empty list of positive sizes, got "
            f"{self.kernel_sizes}")
    if self.out_channels % len(self.kernel_sizes):
      _fail(where, f"out_channels {self.out_channels} must be divisible by the number of kernel "
            f"sizes {len(self.kernel_sizes)}")
    _check_rate(where, conv_dropout_rate=self.conv_dropout_rate, dropout_rate=self.dropout_rate)

  def output_channels(self, in_channels: int) -> int:
    del in_channels
    return self.out_channels

  def check_input(self, in_channels: int, sequence_length: int, where: str) -> None:
    del in_channels, sequence_length, where


@dataclasses.dataclass(frozen=True)
class ProformerCoreConfig(Config):
  """Unlock_DNA Proformer core (see blocks.conformer); width = the first block's output width.

  num_heads defaults to 4, the value the reference code actually uses (its num_heads=8
  argument is ignored). The position table has `DreamConfig.sequence_length` rows, so
  this core only accepts that length.
  """

  kind: Literal["proformer"] = "proformer"
  num_layers: int = 4
  num_heads: int = 4
  kernel_size: int = 15
  ff_mult: int = 4
  dropout_rate: float = 0.1
  attention_dropout_rate: float = 0.0
  layer_norm_eps: float = 1e-6

  def validate(self) -> None:
    where = type(self).__name__
    _check_positive(where, num_layers=self.num_layers, num_heads=self.num_heads,
                    kernel_size=self.kernel_size, ff_mult=self.ff_mult,
                    layer_norm_eps=self.layer_norm_eps)
    _check_rate(where, dropout_rate=self.dropout_rate,
                attention_dropout_rate=self.attention_dropout_rate)

  def output_channels(self, in_channels: int) -> int:
    return in_channels

  def check_input(self, in_channels: int, sequence_length: int, where: str) -> None:
    del sequence_length
    if in_channels % self.num_heads:
      _fail(where, f"the Proformer core's width {in_channels} (first block output) must be "
            f"divisible by num_heads {self.num_heads}")
    if (in_channels * self.ff_mult) % 2:
      _fail(where, f"the Proformer core's width {in_channels} x ff_mult {self.ff_mult} must be "
            f"even (SwiGLU splits it in half)")


@dataclasses.dataclass(frozen=True)
class SoftBinHeadConfig(Config):
  """Autosome final block: soft classification over expression bins 0..num_bins-1.

  Heads: bin_logits [B, num_bins] (1x1 conv, mean over L; pre-softmax) and expression [B]
  = sum_k softmax(bin_logits)_k * k, the expected bin.
  """

  kind: Literal["soft_bins"] = "soft_bins"
  num_bins: int = 18

  def validate(self) -> None:
    if self.num_bins < 2:
      _fail(type(self).__name__, f"num_bins must be at least 2, got {self.num_bins}")

  @property
  def head_names(self) -> tuple[str, ...]:
    return ("expression", "bin_logits")


@dataclasses.dataclass(frozen=True)
class RegressionHeadConfig(Config):
  """Benchmark final block (DeepSTARR / lentiMPRA): per task 1x1 conv (hidden) -> mean over L
  -> Linear(1). One head per task name, each [B]."""

  kind: Literal["regression"] = "regression"
  task_names: tuple[str, ...] = ("dev", "hk")
  hidden_channels: int = 256

  def validate(self) -> None:
    where = type(self).__name__
    _check_positive(where, hidden_channels=self.hidden_channels)
    if not self.task_names:
      _fail(where, "task_names must name at least one task")
    for name in self.task_names:
      if not _HEAD_NAME.match(name):
        _fail(where, f"task name {name!r} must be an identifier (letters, digits, underscore)")
    if len(set(self.task_names)) != len(self.task_names):
      _fail(where, f"task_names must be unique, got {self.task_names}")

  @property
  def head_names(self) -> tuple[str, ...]:
    return tuple(self.task_names)


FirstBlockConfig = Union[BHIFirstConfig, AutosomeFirstConfig]
CoreBlockConfig = Union[AutosomeCoreConfig, BHICoreConfig, ProformerCoreConfig]
FinalBlockConfig = Union[SoftBinHeadConfig, RegressionHeadConfig]

BLOCK_KINDS: dict[str, dict[str, type]] = {
    "first": {"bhi": BHIFirstConfig, "autosome": AutosomeFirstConfig},
    "core": {"autosome": AutosomeCoreConfig, "bhi": BHICoreConfig,
             "proformer": ProformerCoreConfig},
    "final": {"soft_bins": SoftBinHeadConfig, "regression": RegressionHeadConfig},
}

# Input layout and final block of each dataset the DREAM paper evaluates.
DATASETS: dict[str, dict] = {
    # [A, G, C, T, is_reverse, is_singleton], 150 nt after plasmid padding; 18 expression bins.
    "yeast": dict(sequence_length=150, input_channels=6, reverse_channel=4,
                  final=SoftBinHeadConfig()),
    # one-hot + is_reverse, 249 bp; developmental and housekeeping enhancer activity.
    "deepstarr": dict(sequence_length=249, input_channels=5, reverse_channel=4,
                      final=RegressionHeadConfig(task_names=("dev", "hk"))),
    # one-hot + is_reverse, 230 bp (adapters included); one activity per cell type model.
    "lentimpra": dict(sequence_length=230, input_channels=5, reverse_channel=4,
                      final=RegressionHeadConfig(task_names=("activity",))),
}


@dataclasses.dataclass(frozen=True)
class DreamConfig(Config):
  """Any Prix Fixe combination: first + core + final block configs and the input layout.

  Block configs are chosen by their `kind` key in YAML/JSON (e.g. `core: {kind: proformer}`);
  a missing kind means the default block of that slot. The defaults are DREAM-CNN on yeast.

  input_channels: the first NUM_NUCLEOTIDE_CHANNELS (4) are one-hot DNA in a
    complement-symmetric order (AGCT as in Prix Fixe, or ACGT), so that reversing the
    channel order complements a base; the rest are extra per-position features.
  reverse_channel: index of the is_reverse flag channel (set to 1 on reverse-complemented
    inputs), or None when the encoding has none.
  """

  sequence_length: int = 150
  input_channels: int = 6
  reverse_channel: Optional[int] = 4
  first: FirstBlockConfig = dataclasses.field(default_factory=BHIFirstConfig)
  core: CoreBlockConfig = dataclasses.field(default_factory=AutosomeCoreConfig)
  final: FinalBlockConfig = dataclasses.field(default_factory=SoftBinHeadConfig)

  @classmethod
  def for_dataset(cls, dataset: str, **changes) -> "DreamConfig":
    """The config for one of DATASETS ('yeast', 'deepstarr', 'lentimpra'), plus `changes`."""
    if dataset not in DATASETS:
      raise ConfigError(f"unknown DREAM dataset {dataset!r}; available: {sorted(DATASETS)}")
    return cls(**{**DATASETS[dataset], **changes})

  @classmethod
  def from_dict(cls, data: Mapping, where: Optional[str] = None) -> "DreamConfig":
    # Resolve each block config by its `kind` first: the error then names the kind, instead
    # of listing why every block class of the slot rejected the mapping.
    where = where or cls.__name__
    if isinstance(data, Mapping):
      data = dict(data)
      defaults = cls()
      for slot, kinds in BLOCK_KINDS.items():
        value = data.get(slot)
        if isinstance(value, Mapping):
          kind = value.get("kind", getattr(defaults, slot).kind)
          if kind not in kinds:
            raise ConfigError(f"{where}.{slot}: unknown {slot} block kind {kind!r}; available: "
                              f"{sorted(kinds)}")
          data[slot] = kinds[kind].from_dict(value, where=f"{where}.{slot}")
    return super().from_dict(data, where=where)

  @property
  def first_channels(self) -> int:
    return self.first.output_channels(self.input_channels)

  @property
  def core_channels(self) -> int:
    """Width C of the trunk embedding [B, L, C]."""
    return self.core.output_channels(self.first_channels)

  @property
  def head_names(self) -> tuple[str, ...]:
    return self.final.head_names

  def validate(self) -> None:
    where = type(self).__name__
    _check_positive(where, sequence_length=self.sequence_length)
    if self.input_channels < NUM_NUCLEOTIDE_CHANNELS:
      _fail(where, f"input_channels must be at least {NUM_NUCLEOTIDE_CHANNELS} (one-hot DNA), got "
            f"{self.input_channels}")
    if self.reverse_channel is not None and not (
        NUM_NUCLEOTIDE_CHANNELS <= self.reverse_channel < self.input_channels):
      _fail(where, f"reverse_channel must index an extra channel in [{NUM_NUCLEOTIDE_CHANNELS}, "
            f"{self.input_channels}) or be null, got {self.reverse_channel}")
    for slot, kinds in BLOCK_KINDS.items():
      value = getattr(self, slot)
      if not isinstance(value, tuple(kinds.values())):
        _fail(where, f"{slot} must be one of {[c.__name__ for c in kinds.values()]}, got "
              f"{type(value).__name__}")
    self.core.check_input(self.first_channels, self.sequence_length, f"{where}.core")


def _require_blocks(config: DreamConfig, model: str, first: type, core: type) -> None:
  if not isinstance(config.first, first) or not isinstance(config.core, core):
    raise ConfigError(
        f"{type(config).__name__}: {model} is {first.__name__.replace('Config', '')} first + "
        f"{core.__name__.replace('Config', '')} core blocks, got {type(config.first).__name__} + "
        f"{type(config.core).__name__}; use DreamConfig / the 'dream_prixfixe' model for other "
        f"combinations")


@dataclasses.dataclass(frozen=True)
class DreamCNNConfig(DreamConfig):
  """DREAM-CNN: BHI first block + Autosome (LegNet) core; any final block."""

  def validate(self) -> None:
    super().validate()
    _require_blocks(self, "DREAM-CNN", BHIFirstConfig, AutosomeCoreConfig)


@dataclasses.dataclass(frozen=True)
class DreamRNNConfig(DreamConfig):
  """DREAM-RNN: BHI first block + BHI (Bi-LSTM) core; any final block."""

  core: CoreBlockConfig = dataclasses.field(default_factory=BHICoreConfig)

  def validate(self) -> None:
    super().validate()
    _require_blocks(self, "DREAM-RNN", BHIFirstConfig, BHICoreConfig)


@dataclasses.dataclass(frozen=True)
class DreamAttnConfig(DreamConfig):
  """DREAM-Attn: Autosome first block + Unlock_DNA Proformer core; any final block."""

  first: FirstBlockConfig = dataclasses.field(default_factory=AutosomeFirstConfig)
  core: CoreBlockConfig = dataclasses.field(default_factory=ProformerCoreConfig)

  def validate(self) -> None:
    super().validate()
    _require_blocks(self, "DREAM-Attn", AutosomeFirstConfig, ProformerCoreConfig)


def build_first_block(config: FirstBlockConfig, in_channels: int,
                      name: str = "first") -> snt.Module:
  """The first block module of `config`: [B, L, in_channels] -> [B, L, config.out_channels]."""
  if isinstance(config, BHIFirstConfig):
    return MultiKernelConv(in_channels, config.out_channels, config.kernel_sizes,
                           config.dropout_rate, name=name)
  if isinstance(config, AutosomeFirstConfig):
    return ConvBatchNormAct(config.out_channels, config.kernel_size, bn_momentum=config.bn_momentum,
                            bn_eps=config.bn_eps, name=name)
  raise ConfigError(f"unknown first block config {type(config).__name__}")


def build_core_block(config: CoreBlockConfig, in_channels: int, sequence_length: int,
                     name: str = "core") -> snt.Module:
  """The core block module of `config`: [B, L, in_channels] -> [B, L, output_channels]."""
  if isinstance(config, AutosomeCoreConfig):
    return LegNetCore(in_channels, config.block_sizes, config.kernel_size, config.resize_factor,
                      config.filters_per_group, config.se_reduction, bn_momentum=config.bn_momentum,
                      bn_eps=config.bn_eps, name=name)
  if isinstance(config, BHICoreConfig):
    return BHICore(in_channels, config.lstm_hidden_size, config.out_channels,
                   config.kernel_sizes, config.conv_dropout_rate, config.dropout_rate,
                   name=name)
  if isinstance(config, ProformerCoreConfig):
    return Proformer(in_channels, sequence_length, config.num_layers, config.num_heads,
                     config.kernel_size, config.dropout_rate, config.ff_mult,
                     config.attention_dropout_rate, config.layer_norm_eps, name=name)
  raise ConfigError(f"unknown core block config {type(config).__name__}")


def build_final_block(config: FinalBlockConfig, name: str = "final") -> snt.Module:
  """The final block module of `config`: [B, L, C] -> {head: tensor}."""
  if isinstance(config, SoftBinHeadConfig):
    return SoftBinHead(config.num_bins, name=name)
  if isinstance(config, RegressionHeadConfig):
    return RegressionHead(config.task_names, config.hidden_channels, name=name)
  raise ConfigError(f"unknown final block config {type(config).__name__}")


class PrixFixeTrunk(snt.Module):
  """first + core: [B, L, input_channels] -> [B, L, out_channels], usable under any head.

  Build one for a new head (e.g. ChromBPNet-style profile + counts) with
  `PrixFixeTrunk(BHIFirstConfig(), BHICoreConfig(), input_channels=4, sequence_length=2114)`.
  """

  def __init__(self, first: FirstBlockConfig, core: CoreBlockConfig, input_channels: int,
               sequence_length: int, name: Optional[str] = "trunk"):
    super().__init__(name=name)
    core.check_input(first.output_channels(input_channels), sequence_length, type(core).__name__)
    self.input_channels = input_channels
    self.sequence_length = sequence_length
    self.first_channels = first.output_channels(input_channels)
    self.out_channels = core.output_channels(self.first_channels)
    self.fixed_length = isinstance(core, ProformerCoreConfig)
    self.first = build_first_block(first, input_channels, name="first")
    self.core = build_core_block(core, self.first_channels, sequence_length, name="core")

  def stages(self, inputs: tf.Tensor,
             is_training: bool) -> "collections.OrderedDict[str, tf.Tensor]":
    """{"first": [B, L, first_channels], "core": [B, L, out_channels]}."""
    inputs = tf.convert_to_tensor(inputs, tf.float32)
    if inputs.shape.rank != 3 or inputs.shape[-1] != self.input_channels:
      raise ValueError(f"{self.name}: expected inputs [B, L, {self.input_channels}], got shape "
                       f"{inputs.shape}")
    stages = collections.OrderedDict()
    x = stages["first"] = self.first(inputs, is_training=is_training)
    stages["core"] = self.core(x, is_training=is_training)
    return stages

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    return self.stages(inputs, is_training)["core"]

  def build(self, batch_size: Optional[int] = 1) -> None:
    """Creates all variables (convs and BatchNorm create theirs lazily).

    Eagerly this is one inference call on a zero batch [1, sequence_length, C]: for these
    small models it costs ~1 s against ~5 s for a symbolic `snt.build` trace.
    """
    if tf.executing_eagerly():
      self(tf.zeros([1, self.sequence_length, self.input_channels]), is_training=False)
    else:
      length = self.sequence_length if self.fixed_length else None
      spec = tf.TensorSpec([batch_size, length, self.input_channels], tf.float32)
      snt.build(lambda x: self(x, is_training=False), spec)
    self._built = True

  def ensure_built(self) -> None:
    """Builds the trunk unless `build()` already ran."""
    if not self.__dict__.get("_built", False):
      self.build()


def reverse_complement_inputs(inputs: tf.Tensor, reverse_channel: Optional[int] = 4) -> tf.Tensor:
  """Reverse complement of DREAM-encoded inputs [B, L, C] -> [B, L, C].

  Channels 0-3 (one-hot DNA in a complement-symmetric order such as AGCT or ACGT) are
  reversed along L and in channel order; extra channels are reversed along L (per-sequence
  flags are constant, so they are kept); `reverse_channel`, if given, is set to 1, as the
  Prix Fixe predictor encodes the reverse strand.
  """
  inputs = tf.convert_to_tensor(inputs, tf.float32)
  channels = inputs.shape[-1]
  if channels is None or channels < NUM_NUCLEOTIDE_CHANNELS:
    raise ValueError(f"expected at least {NUM_NUCLEOTIDE_CHANNELS} channels, got shape "
                     f"{inputs.shape}")
  reversed_inputs = tf.reverse(inputs, axis=[1])
  parts = [tf.reverse(reversed_inputs[..., :NUM_NUCLEOTIDE_CHANNELS], axis=[-1])]
  for c in range(NUM_NUCLEOTIDE_CHANNELS, channels):
    column = reversed_inputs[..., c:c + 1]
    parts.append(tf.ones_like(column) if c == reverse_channel else column)
  return tf.concat(parts, axis=-1)


# === models ==================================================================================
def dream_cnn_demo_config() -> DreamCNNConfig:
  """DREAM-CNN's blocks at reduced widths (64-channel convs, LegNet 32 -> 16): seconds on a CPU."""
  return DreamCNNConfig(first=BHIFirstConfig(out_channels=64),
                        core=AutosomeCoreConfig(block_sizes=(32, 16)))


def dream_rnn_demo_config() -> DreamRNNConfig:
  """DREAM-RNN's blocks at reduced widths (64-channel convs, 32-unit LSTM): seconds on a CPU."""
  return DreamRNNConfig(first=BHIFirstConfig(out_channels=64),
                        core=BHICoreConfig(lstm_hidden_size=32, out_channels=64))


def dream_attn_demo_config() -> DreamAttnConfig:
  """DREAM-Attn's blocks at reduced size (64 channels, 2 layers): seconds on a CPU."""
  return DreamAttnConfig(first=AutosomeFirstConfig(out_channels=64),
                         core=ProformerCoreConfig(num_layers=2))


def dream_prixfixe_demo_config() -> DreamConfig:
  """A mixed combination at reduced size: Autosome stem (64) + BHI core (32-unit LSTM)."""
  return DreamConfig(first=AutosomeFirstConfig(out_channels=64),
                     core=BHICoreConfig(lstm_hidden_size=32, out_channels=64))


# Tuner search spaces (run-config paths) and DREAM-recipe defaults of the registered models;
# the max learning rate is the reference notebooks' (0.001 for DREAM-Attn, else 0.005).
_LR_ONE_CYCLE = {"type": "float", "min": 1e-3, "max": 1e-2, "sampling": "log"}
_DREAM_COMMON = {
    "model.config.first.dropout_rate": {"type": "float", "min": 0.1, "max": 0.4, "step": 0.1},
    "optimizer.learning_rate": _LR_ONE_CYCLE,  # the one-cycle schedule's max LR
    "optimizer.weight_decay": {"type": "float", "min": 1e-3, "max": 1e-1, "sampling": "log"},
}


@register_model("dream_prixfixe", DreamConfig,
                "Prix Fixe model: any DREAM first + core + final block combination",
                demo_config=dream_prixfixe_demo_config,
                search_space={"optimizer.learning_rate": _LR_ONE_CYCLE,
                              "model.config.first.out_channels":
                                  {"type": "choice", "values": [64, 128, 256]}})
class DreamModel(SequenceModel):
  """A Prix Fixe model (see the module docstring for blocks and shapes).

  Heads: soft_bins final -> {"expression": [B], "bin_logits": [B, num_bins]};
  regression final -> {task_name: [B] for each task}.
  """

  citation = "https://doi.org/10.1038/s41587-024-02414-w"  # Rafi et al. 2024, Nat Biotech
  strand_averaged_prediction = True  # the challenge's scores average both strands

  config: DreamConfig

  def __init__(self, config: Optional[DreamConfig] = None, name: Optional[str] = "dream"):
    super().__init__(config or DreamConfig(), name=name)
    cfg = self.config
    self.trunk = PrixFixeTrunk(cfg.first, cfg.core, cfg.input_channels, cfg.sequence_length,
                               name="trunk")
    self.final = build_final_block(cfg.final, name="final")

  # --- contract -----------------------------------------------------------------------------
  @property
  def input_channels(self) -> int:
    return self.config.input_channels

  @property
  def head_names(self) -> tuple[str, ...]:
    return self.config.head_names

  @property
  def dynamic_length(self) -> bool:
    # Convs, the LSTM and the global pooling take any length; the Proformer's learned
    # position table fixes it.
    return not self.trunk.fixed_length

  @property
  def inference_xla(self) -> bool:
    """Whether inference compiles with XLA (analysis.inference.use_xla): not with the LegNet
    core, whose grouped convolutions (a depthwise workaround) XLA runs ~3x slower on a CPU
    than graph mode; the BHI and Proformer cores gain or break even (bench/results)."""
    return not isinstance(self.config.core, AutosomeCoreConfig)

  def trunk_stages(self, inputs: tf.Tensor,
                   is_training: bool) -> "collections.OrderedDict[str, tf.Tensor]":
    """{"first": [B, L, C1], "core": [B, L, C2]}: the first and core block outputs."""
    inputs = tf.convert_to_tensor(inputs, tf.float32)
    self.check_inputs(inputs)
    return self.trunk.stages(inputs, is_training)

  def embed(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    """The core block output [B, L, C2] (C2 = config.core_channels)."""
    return self.trunk_stages(inputs, is_training)["core"]

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> dict[str, tf.Tensor]:
    return self.final(self.embed(inputs, is_training))

  def build(self, sequence_length: Optional[int] = None, batch_size: Optional[int] = 1) -> None:
    """Creates all variables; eagerly by one inference call on a zero batch [1, L, C] (L =
    `sequence_length` or the config's), which is several times faster than the symbolic
    trace of `SequenceModel.build` (used when not executing eagerly)."""
    if not tf.executing_eagerly():
      super().build(sequence_length, batch_size)
      return
    length = sequence_length or self.config.sequence_length
    self(tf.zeros([1, length, self.input_channels]), is_training=False)
    self._built = True

  def encode_dna(self, one_hot: tf.Tensor, is_reverse: bool = False) -> tf.Tensor:
    """One-hot ACGT [B, L, 4] -> [B, L, input_channels]: AGCT order, is_reverse flag set as
    given, other flags (is_singleton) 0 as for test sequences."""
    one_hot = tf.convert_to_tensor(one_hot, tf.float32)
    agct = tf.gather(one_hot, [0, 2, 1, 3], axis=-1)
    flags = [tf.ones_like(one_hot[..., :1]) if (is_reverse and c == self.config.reverse_channel)
             else tf.zeros_like(one_hot[..., :1])
             for c in range(NUM_NUCLEOTIDE_CHANNELS, self.input_channels)]
    return tf.concat([agct] + flags, axis=-1)

  # --- reverse-complement averaging -----------------------------------------------------------
  def reverse_complement(self, inputs: tf.Tensor) -> tf.Tensor:
    """`inputs` [B, L, C] reverse-complemented, with the is_reverse channel set to 1."""
    return reverse_complement_inputs(inputs, self.config.reverse_channel)

  def rc_average(self, inputs: tf.Tensor, is_training: bool = False) -> dict[str, tf.Tensor]:
    """Every head averaged over `inputs` and its reverse complement: (f(x) + f(rc(x))) / 2.

    The Prix Fixe predictor's test-time procedure (its `output_avg`) for the `expression`
    head: encode the forward strand with is_reverse = 0 (the input is used as given);
    the reverse strand gets is_reverse = 1. Shapes as `__call__`.
    """
    forward = self(inputs, is_training=is_training)
    backward = self(self.reverse_complement(inputs), is_training=is_training)
    return {head: 0.5 * (forward[head] + backward[head]) for head in forward}


@register_model("dream_cnn", DreamCNNConfig,
                "DREAM-CNN (Rafi et al. 2024): BHI convs + LegNet core, 1.93 M parameters",
                demo_config=dream_cnn_demo_config, recipe={"max_learning_rate": 0.005},
                search_space={
                    "model.config.first.out_channels": {"type": "choice", "values": [128, 256, 320]},
                    "model.config.core.kernel_size": {"type": "choice", "values": [5, 7, 9]},
                    **_DREAM_COMMON})
class DreamCNN(DreamModel):
  """DREAM-CNN: 1,933,970 parameters at the yeast defaults."""

  def __init__(self, config: Optional[DreamCNNConfig] = None, name: Optional[str] = "dream_cnn"):
    super().__init__(config or DreamCNNConfig(), name=name)


@register_model("dream_rnn", DreamRNNConfig,
                "DREAM-RNN (Rafi et al. 2024): BHI convs + Bi-LSTM core, 4.13 M parameters",
                demo_config=dream_rnn_demo_config, recipe={"max_learning_rate": 0.005},
                search_space={
                    "model.config.first.out_channels": {"type": "choice", "values": [128, 256, 320]},
                    "model.config.core.lstm_hidden_size": {"type": "choice",
                                                           "values": [128, 256, 320]},
                    "model.config.core.dropout_rate": {"type": "float", "min": 0.2, "max": 0.5,
                                                       "step": 0.1},
                    **_DREAM_COMMON})
class DreamRNN(DreamModel):
  """DREAM-RNN: 4,130,578 parameters at the yeast defaults."""

  def __init__(self, config: Optional[DreamRNNConfig] = None, name: Optional[str] = "dream_rnn"):
    super().__init__(config or DreamRNNConfig(), name=name)


@register_model("dream_attn", DreamAttnConfig,
                "DREAM-Attn (Rafi et al. 2024): LegNet stem + Proformer core, 4.54 M parameters",
                demo_config=dream_attn_demo_config, recipe={"max_learning_rate": 0.001},
                search_space={
                    "model.config.first.out_channels": {"type": "choice", "values": [128, 256]},
                    "model.config.core.num_layers": {"type": "int", "min": 2, "max": 6},
                    "model.config.core.kernel_size": {"type": "choice", "values": [7, 15]},
                    "model.config.core.dropout_rate": {"type": "float", "min": 0.0, "max": 0.3,
                                                       "step": 0.1},
                    "optimizer.learning_rate": _LR_ONE_CYCLE})
class DreamAttn(DreamModel):
  """DREAM-Attn: 4,539,410 parameters at the yeast defaults."""

  def __init__(self, config: Optional[DreamAttnConfig] = None, name: Optional[str] = "dream_attn"):
    super().__init__(config or DreamAttnConfig(), name=name)


# Trainable parameters of the published models (PyTorch reference, yeast 6 x 150).
PUBLISHED_PARAMETER_COUNTS = {"dream_cnn": 1_933_970, "dream_rnn": 4_130_578,
                              "dream_attn": 4_539_410}
