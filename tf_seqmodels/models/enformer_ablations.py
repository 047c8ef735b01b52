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


def ablation_config(name: str, base: Optional[EnformerConfig] = None,
                    attention_window: int = 8) -> EnformerConfig:
  """`base` (default: the published config) with ablation `name`'s switches applied."""
  base = base or EnformerConfig()
  return base.replace(**dict(ablation(name, attention_window).changes))
