"""The Enformer paper's ablations as config switches of the one `Enformer` module.

Each variant changes only the `EnformerConfig` fields named below; everything else (stem,
conv tower, crop, final pointwise, heads, training) is the published model's, so parameter
counts of the shared parts are equal and any difference in accuracy is due to the switch.

    variant              switch                                   what it tests
    enformer             (defaults)                               the published model
    dilated              trunk: dilated                           attention vs Basenji2 dilated
                                                                  residual convolutions (same width
                                                                  and depth): bounded receptive field
    local_attention      attention_window: W bins                 whether attention helps because it
                                                                  reaches far (keys limited to ±W)
    exponential_only     relative_position_functions: [exponential]   each relative basis family
    central_mask_only    relative_position_functions: [central_mask]  alone vs all three
    gamma_only           relative_position_functions: [gamma]
    symmetric_only       relative_position_symmetric: true        no sign(d) features: direction-blind
    absolute_positions   positional_encoding: absolute            sinusoidal absolute positions
                                                                  instead of relative ones

    config = ablation_config("dilated", base=enformer_demo_config())
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from tf_seqmodels.config import ConfigError
from tf_seqmodels.models.enformer import EnformerConfig


@dataclasses.dataclass(frozen=True)
class Ablation:
  name: str
  changes: Mapping[str, Any]
  tests: str


def _ablations(attention_window: int) -> dict[str, Ablation]:
  items = [
      Ablation("enformer", {}, "the published model (all switches at their defaults)"),
      Ablation("dilated", {"trunk": "dilated"},
               "transformer layers replaced by as many Basenji2 dilated residual blocks at the "
               "same width (the paper's main comparison: bounded receptive field)"),
      Ablation("local_attention", {"attention_window": attention_window},
               f"attention limited to keys within ±{attention_window} bins (is long range the "
               f"reason attention helps?)"),
      Ablation("exponential_only", {"relative_position_functions": ("exponential",)},
               "relative positions from the exponential basis functions only"),
      Ablation("central_mask_only", {"relative_position_functions": ("central_mask",)},
               "relative positions from the central-mask basis functions only"),
      Ablation("gamma_only", {"relative_position_functions": ("gamma",)},
               "relative positions from the gamma basis functions only"),
      Ablation("symmetric_only", {"relative_position_symmetric": True},
               "symmetric relative features only (no sign(d) copy: upstream = downstream)"),
      Ablation("absolute_positions", {"positional_encoding": "absolute"},
               "sinusoidal absolute positions instead of relative positional basis functions"),
  ]
  return {a.name: a for a in items}


ABLATIONS = tuple(_ablations(8))


def ablation(name: str, attention_window: int = 8) -> Ablation:
  table = _ablations(attention_window)
  if name not in table:
    raise ConfigError(f"unknown Enformer ablation {name!r}; available: {list(table)}")
  return table[name]


def conv_tower_reach_bp(config: EnformerConfig) -> int:
  """bp beyond its own bin on each side that the stem + conv tower let an output bin see.

  SAME-padded convolutions reach at most k // 2 positions each way at their resolution (the
  stem's at 1 bp, tower block i's at 2 ** (i + 1) bp); the pools tile bins exactly.
  """
  reach = config.stem_kernel_size // 2
  for i in range(config.num_conv_tower_blocks):
    reach += config.conv_tower_kernel_size // 2 * 2 ** (i + 1)
  return reach


def short_range_reach_bins(config: EnformerConfig) -> Optional[int]:
  """Largest bin distance |e - p| at which input in bin e can change output bin p; None when
  global attention makes it unbounded.

  Trunk reach: `layers x attention_window` for local attention, the dilated stack's
  half receptive field for the dilated trunk; plus the conv tower's (rounded up to bins).
  """
  from tf_seqmodels.blocks.dilated import dilation_rates, receptive_field
  layers = config.num_transformer_layers
  if config.trunk == "dilated":
    # DilatedResidualBlock's default kernel: 3.
    trunk = (receptive_field(3, dilation_rates(layers, config.dilation_rate_multiplier)) - 1) // 2
  elif config.attention_window is not None:
    trunk = layers * config.attention_window
  else:
    return None
  return trunk + -(-conv_tower_reach_bp(config) // config.bin_size)


def ablation_config(name: str, base: Optional[EnformerConfig] = None,
                    attention_window: int = 8) -> EnformerConfig:
  """`base` (default: the published config) with ablation `name`'s switches applied."""
  base = base or EnformerConfig()
  return base.replace(**dict(ablation(name, attention_window).changes))
