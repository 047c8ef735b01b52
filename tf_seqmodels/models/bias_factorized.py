"""Bias factorisation (ChromBPNet): any profile-and-counts model plus a frozen bias model.

Two pieces, both honouring the model contract:

`ProfileCountsModel` puts the ChromBPNet output head on any trunk:

    trunk(inputs [B, L, C_in], is_training) -> [B, L', C]   (a SequenceModel's embed(), or any
                                                            module called as trunk(x, is_training))
    head -> {"profile": [B, output_length] logits, "logcounts": [B, 1]}

`BiasFactorizedModel` combines a trainable model and a frozen bias model, both with those
two heads and the same input:

    profile   = model.profile + centre_crop(bias.profile, output_length)   (logits add: the
                profile is the normalised product of the two softmaxes)
    logcounts = log(exp(model.logcounts) + exp(bias.logcounts))             (counts add)

The bias model always runs with `is_training=False` behind a stop-gradient, and its
variables are left out of the wrapper's `trainable_variables`, so one bias instance can be
shared by any number of wrappers without being duplicated or trained. `without_bias()`
returns the bias-corrected model (ChromBPNet's "nobias" model) for interpretation and
variant scoring; `recalibrate_bias` re-levels the bias model's counts on new data (the
reference's "scaled bias model").
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterable, Optional

import numpy as np
import sonnet as snt
import tensorflow as tf

from tf_seqmodels.blocks.bpnet import ProfileCountsHead
from tf_seqmodels.blocks.core import centre_crop
from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.data.encoding import SequenceError
from tf_seqmodels.models.base import SequenceModel
from tf_seqmodels.models.bpnet import (COUNTS_HEAD, HEAD_NAMES, PROFILE_HEAD, ProfileCountsOutputs,
                                       bpnet_search_space, demo_bias_config, demo_bpnet_config)
from tf_seqmodels.models.registry import build_model, get_entry, register_model


def _registered_config(model) -> tuple[Optional[str], dict[str, Any]]:
  """(registry name, config dict) describing `model`, or (None, {}) for an unregistered one."""
  name = getattr(type(model), "registry_name", None)
  config = getattr(model, "config", None)
  if name is None or not isinstance(config, Config):
    return None, {}
  return name, config.to_dict()


# --- ChromBPNet head on any trunk -------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ProfileCountsConfig(Config):
  """A registered trunk model (its `embed()` is the feature stream) under the ChromBPNet head.

  `trunk` may be None when the trunk module is passed to the constructor instead; then
  `sequence_length` and `input_channels` describe its input.
  """

  trunk: Optional[str] = "bpnet"
  trunk_config: dict[str, Any] = dataclasses.field(default_factory=dict)
  output_length: int = 1000
  profile_kernel_size: int = 75
  initializer: str = "glorot_uniform"
  sequence_length: Optional[int] = None  # None: the trunk model's
  input_channels: int = 4

  def validate(self) -> None:
    if self.output_length <= 0 or self.profile_kernel_size <= 0:
      raise ConfigError(f"ProfileCountsConfig: output_length and profile_kernel_size must be "
                        f"positive, got {self.output_length}, {self.profile_kernel_size}")
    if self.initializer not in ("glorot_uniform", "sonnet"):
      raise ConfigError(f"ProfileCountsConfig: initializer must be 'glorot_uniform' or 'sonnet', "
                        f"got {self.initializer!r}")
    if self.trunk is not None:
      get_entry(self.trunk)  # raises ConfigError for an unknown name


def _demo_profile_counts() -> ProfileCountsConfig:
  return ProfileCountsConfig(trunk="bpnet", trunk_config=demo_bpnet_config().to_dict(),
                             output_length=256)


def _demo_chrombpnet() -> "BiasFactorizedConfig":
  return BiasFactorizedConfig(model_config=demo_bpnet_config().to_dict(),
                              bias_model_config=demo_bias_config().to_dict())


@register_model("profile_counts", ProfileCountsConfig, "ChromBPNet-style profile + log-counts "
                "head on any registered trunk model's embedding", demo_config=_demo_profile_counts)
class ProfileCountsModel(ProfileCountsOutputs):
  """Trunk + `ProfileCountsHead`; heads {"profile": [B, output_length], "logcounts": [B, 1]}.

  Args:
    config: the head settings and (optionally) the registry name/config of the trunk.
    trunk: instead of building `config.trunk`, use this module: a `SequenceModel` (its
      `embed()` is used, so unused output heads never create variables) or any
      `snt.Module` called as `trunk(inputs, is_training)` returning [B, L', C].
  """

  # The profile + log-counts head design is BPNet's (Avsec et al. 2021, Nat Genet).
  citation = "https://doi.org/10.1038/s41588-021-00782-6"

  config: ProfileCountsConfig

  def __init__(self, config: Optional[ProfileCountsConfig] = None,
               trunk: Optional[snt.Module] = None, name: Optional[str] = "profile_counts"):
    config = config or ProfileCountsConfig()
    if trunk is None:
      if config.trunk is None:
        raise ConfigError("ProfileCountsModel: config.trunk is None, so pass the trunk module")
      trunk = build_model(config.trunk, config.trunk_config)
    else:
      trunk_name, trunk_config = _registered_config(trunk)
      config = config.replace(trunk=trunk_name, trunk_config=trunk_config)
    super().__init__(config, name=name)
    self.trunk = trunk
    self.head = ProfileCountsHead(config.output_length, config.profile_kernel_size,
                                  config.initializer, name="head")

  @property
  def input_channels(self) -> int:
    if isinstance(self.trunk, SequenceModel):
      return self.trunk.input_channels
    return self.config.input_channels

  @property
  def sequence_length(self) -> Optional[int]:
    if self.config.sequence_length is not None:
      return self.config.sequence_length
    if isinstance(self.trunk, SequenceModel):
      return self.trunk.sequence_length
    return None

  @property
  def dynamic_length(self) -> bool:
    return isinstance(self.trunk, SequenceModel) and self.trunk.dynamic_length

  # A dynamic-length trunk's length rule is the model's (base check_length reads these).
  @property
  def min_length(self) -> int:
    return self.trunk.min_length if self.dynamic_length else 1

  @property
  def length_multiple(self) -> int:
    return self.trunk.length_multiple if self.dynamic_length else 1

  @property
  def output_length(self) -> int:
    return self.config.output_length

  def encode_dna(self, one_hot: tf.Tensor, is_reverse: bool = False) -> tf.Tensor:
    if isinstance(self.trunk, SequenceModel):
      return self.trunk.encode_dna(one_hot, is_reverse)
    return super().encode_dna(one_hot, is_reverse)

  def embed(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    """The trunk's feature stream [B, L', C]."""
    self.check_inputs(inputs)
    if isinstance(self.trunk, SequenceModel):
      return self.trunk.embed(inputs, is_training)
    return self.trunk(inputs, is_training=is_training)

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> dict[str, tf.Tensor]:
    features = self.embed(inputs, is_training)
    if features.shape.rank != 3:
      raise ValueError(f"the trunk must return a [batch, length, channels] stream for the profile "
                       f"head, got shape {features.shape}")
    return self.head(features)

  def shift_logcounts(self, delta: float) -> None:
    self.head.shift_logcounts(delta)


class TrunkSequence(snt.Module):
  """Chains blocks called as block(x, is_training) (e.g. a Prix Fixe first + core block)."""

  def __init__(self, blocks: Iterable[Callable], name: Optional[str] = None):
    super().__init__(name=name)
    self.blocks = list(blocks)
    if not self.blocks:
      raise ValueError("TrunkSequence needs at least one block")

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    x = inputs
    for block in self.blocks:
      x = block(x, is_training=is_training)
    return x


# --- bias factorisation ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class BiasFactorizedConfig(Config):
  """Registry names and configs of the trainable model and the frozen bias model.

  The defaults are ChromBPNet: the 512-filter/8-layer BPNet plus the 128-filter/4-layer bias
  model (6,595,716 parameters, 6,377,986 trainable).
  """

  model: str = "bpnet"
  model_config: dict[str, Any] = dataclasses.field(default_factory=dict)
  bias_model: str = "chrombpnet_bias"
  bias_model_config: dict[str, Any] = dataclasses.field(default_factory=dict)

  def validate(self) -> None:
    get_entry(self.model)
    get_entry(self.bias_model)


@register_model("chrombpnet", BiasFactorizedConfig, "ChromBPNet: a trainable profile/counts "
                "model plus a frozen bias model (logits added, counts log-sum-exp)",
                demo_config=_demo_chrombpnet,
                search_space=bpnet_search_space("model.config.model_config."))
class BiasFactorizedModel(ProfileCountsOutputs):
  """`model` + frozen `bias_model`; heads {"profile": [B, T] logits, "logcounts": [B, 1]}.

  T is `model`'s profile length; the bias profile (length >= T) is centre-cropped to it.

  Args:
    config: registry names/configs used to build whichever of `model` / `bias_model` is
      not passed.
    model: the trainable profile/counts model (any SequenceModel with "profile" [B, T] and
      "logcounts" [B, 1] heads).
    bias_model: the bias model (same heads); may be shared with other wrappers.
  """

  config: BiasFactorizedConfig
  citation = "https://doi.org/10.1101/2024.12.25.630221"  # Pampari et al. 2024, bioRxiv

  def __init__(self, config: Optional[BiasFactorizedConfig] = None, *,
               model: Optional[SequenceModel] = None,
               bias_model: Optional[SequenceModel] = None,
               name: Optional[str] = "chrombpnet"):
    config = config or BiasFactorizedConfig()
    if model is None:
      model = build_model(config.model, config.model_config)
    else:
      model_name, model_config = _registered_config(model)
      if model_name is not None:
        config = config.replace(model=model_name, model_config=model_config)
    if bias_model is None:
      bias_model = build_model(config.bias_model, config.bias_model_config)
    else:
      bias_name, bias_config = _registered_config(bias_model)
      if bias_name is not None:
        config = config.replace(bias_model=bias_name, bias_model_config=bias_config)
    for role, module in (("model", model), ("bias_model", bias_model)):
      missing = set(HEAD_NAMES) - set(getattr(module, "head_names", ()))
      if missing:
        raise ConfigError(f"BiasFactorizedModel: {role} {type(module).__name__} must have heads "
                          f"{HEAD_NAMES}; missing {sorted(missing)}")
    if model is bias_model:
      raise ConfigError("BiasFactorizedModel: model and bias_model must be different modules")
    if model.input_channels != bias_model.input_channels:
      raise ConfigError(f"BiasFactorizedModel: model takes {model.input_channels} input channels, "
                        f"the bias model {bias_model.input_channels}")
    if (model.sequence_length is not None and bias_model.sequence_length is not None
        and model.sequence_length != bias_model.sequence_length
        and not bias_model.dynamic_length):
      raise ConfigError(f"BiasFactorizedModel: model input length {model.sequence_length} differs "
                        f"from the bias model's {bias_model.sequence_length}; both see the same "
                        f"sequence")
    super().__init__(config, name=name)
    self.model = model
    self.bias_model = bias_model

  # --- contract -----------------------------------------------------------------------------
  @property
  def input_channels(self) -> int:
    return self.model.input_channels

  @property
  def sequence_length(self) -> Optional[int]:
    return self.model.sequence_length

  @property
  def dynamic_length(self) -> bool:
    return self.model.dynamic_length and self.bias_model.dynamic_length

  @property
  def min_length(self) -> int:
    return max(self.model.min_length, self.bias_model.min_length)

  @property
  def length_multiple(self) -> int:
    return math.lcm(self.model.length_multiple, self.bias_model.length_multiple)

  def check_length(self, length: int) -> None:
    self.model.check_length(length)
    self.bias_model.check_length(length)

  def encode_dna(self, one_hot: tf.Tensor, is_reverse: bool = False) -> tf.Tensor:
    return self.model.encode_dna(one_hot, is_reverse)

  def embed(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    """The trainable model's embedding (the bias model is not part of the representation)."""
    return self.model.embed(inputs, is_training)

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> dict[str, tf.Tensor]:
    outputs = self.components(inputs, is_training)
    return {PROFILE_HEAD: outputs[PROFILE_HEAD], COUNTS_HEAD: outputs[COUNTS_HEAD]}

  def components(self, inputs: tf.Tensor, is_training: bool) -> dict[str, tf.Tensor]:
    """Combined heads plus both parts from one forward pass.

    Returns {"profile", "logcounts"} (combined), {"nobias_profile", "nobias_logcounts"}
    (the trainable model alone) and {"bias_profile", "bias_logcounts"} (the bias model,
    profile cropped to the model's length).
    """
    self.check_inputs(inputs)
    main = self.model(inputs, is_training=is_training)
    # Frozen: inference mode (no dropout/BN updates) and no gradient into the bias model.
    bias = self.bias_model(inputs, is_training=False)
    length = main[PROFILE_HEAD].shape[-1]
    if length is None:
      length = tf.shape(main[PROFILE_HEAD])[-1]
    bias_profile = tf.stop_gradient(centre_crop(
        bias[PROFILE_HEAD], length, axis=-1,
        context="the bias model's profile must cover the model's output window: "))
    bias_logcounts = tf.stop_gradient(bias[COUNTS_HEAD])
    profile = main[PROFILE_HEAD] + bias_profile
    logcounts = tf.reduce_logsumexp(tf.concat([main[COUNTS_HEAD], bias_logcounts], axis=-1),
                                    axis=-1, keepdims=True)
    return {PROFILE_HEAD: profile, COUNTS_HEAD: logcounts,
            "nobias_profile": main[PROFILE_HEAD], "nobias_logcounts": main[COUNTS_HEAD],
            "bias_profile": bias_profile, "bias_logcounts": bias_logcounts}

  # --- frozen bias --------------------------------------------------------------------------
  @property
  def trainable_variables(self) -> tuple[tf.Variable, ...]:
    """The trainable model's variables only: the bias model is frozen here."""
    frozen = {v.ref() for v in self.frozen_variables}
    return tuple(v for v in super().trainable_variables if v.ref() not in frozen)

  @property
  def frozen_variables(self) -> tuple[tf.Variable, ...]:
    """The bias model's variables (empty before it is first called)."""
    try:
      return tuple(self.bias_model.variables)
    except ValueError:  # Sonnet refuses `.variables` on a module that has none yet
      return ()

  def without_bias(self) -> SequenceModel:
    """The bias-corrected model (shares its variables with this one)."""
    return self.model

  def build(self, sequence_length: Optional[int] = None, batch_size: Optional[int] = 1) -> None:
    super().build(sequence_length, batch_size)
    self.model._built = True  # pylint: disable=protected-access
    self.bias_model._built = True  # pylint: disable=protected-access

  def recalibrate_bias(self, data, apply: bool = True) -> float:
    """`recalibrate_bias(self.bias_model, data, apply)`; affects every wrapper sharing it."""
    return recalibrate_bias(self.bias_model, data, apply=apply)


def _observed_logcounts(targets) -> np.ndarray:
  if isinstance(targets, dict) or hasattr(targets, "keys"):
    if COUNTS_HEAD in targets:
      return np.asarray(targets[COUNTS_HEAD], np.float64).reshape(-1)
    if PROFILE_HEAD in targets:
      return np.log1p(np.asarray(targets[PROFILE_HEAD], np.float64).sum(-1)).reshape(-1)
    raise ValueError(f"targets need {COUNTS_HEAD!r} (log(1 + total)) or {PROFILE_HEAD!r} "
                     f"(per-base counts); got keys {sorted(targets)}")
  # A bare array is per-example total counts, as the reference passes them.
  return np.log1p(np.asarray(targets, np.float64)).reshape(-1)


def recalibrate_bias(bias_model: SequenceModel, data, apply: bool = True) -> float:
  """Shifts the bias model's log counts by mean(observed - predicted) log counts.

  The reference ("scaled bias model") runs this on the train+valid non-peaks of the new
  data set before training ChromBPNet, so a bias model trained at another depth is
  re-levelled; only the counts bias term changes.

  Args:
    bias_model: a model with a "logcounts" head and a `shift_logcounts(delta)` method.
    data: an iterable of (inputs, targets[, ...]) batches (e.g. a tf.data.Dataset), where
      targets has "logcounts" = log(1 + total) or "profile" counts; or one
      (inputs [N, L, 4], total_counts [N]) pair of arrays.
    apply: False only computes the shift.

  Returns:
    The shift delta (float).
  """
  if not hasattr(bias_model, "shift_logcounts"):
    raise TypeError(f"{type(bias_model).__name__} has no shift_logcounts(delta) method, so its "
                    f"counts output cannot be recalibrated")
  arrays = (isinstance(data, tuple) and len(data) == 2 and not tf.is_tensor(data[0])
            and np.ndim(data[0]) == 3)
  if arrays:
    batches = [(data[0][i:i + 256], np.asarray(data[1])[i:i + 256])
               for i in range(0, len(data[0]), 256)]
  else:
    batches = data
  total = 0.0
  count = 0
  for batch in batches:
    inputs, targets = batch[0], batch[1]
    observed = _observed_logcounts(targets)
    predicted = np.asarray(bias_model.predict_on_batch(inputs)[COUNTS_HEAD], np.float64).reshape(-1)
    if observed.shape != predicted.shape:
      raise SequenceError(f"{observed.size} observed counts for {predicted.size} predictions")
    total += float((observed - predicted).sum())
    count += observed.size
  if count == 0:
    raise ValueError("no examples to recalibrate the bias model on")
  delta = total / count
  if apply:
    bias_model.shift_logcounts(delta)
  return delta
