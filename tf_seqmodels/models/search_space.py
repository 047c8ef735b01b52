"""Hyper-parameter search spaces as plain typed configs, declared by model families at
registration (`register_model(..., search_space={...})`) and read by `tf_seqmodels.tuning`.

A space maps dotted paths into a run config (`model.config.channels`,
`optimizer.learning_rate`, `task.options.counts_loss_weight`) to a `ParamSpec`:

    search_space={
        "model.config.channels": {"type": "choice", "values": [768, 1152, 1536]},
        "optimizer.learning_rate": {"type": "float", "min": 1e-4, "max": 1e-3, "sampling": "log"},
    }
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Mapping, Optional

from tf_seqmodels.config import Config, ConfigError


@dataclasses.dataclass(frozen=True)
class ParamSpec(Config):
  """One hyper-parameter.

  type int / float: min, max (inclusive), optional step, sampling linear | log | reverse_log;
  type choice: values (ints, floats, strings or booleans; one type); type bool.
  default: the first trial's value (default: min / the first choice / False).
  """

  type: Literal["int", "float", "choice", "bool"] = "float"
  min: Optional[float] = None
  max: Optional[float] = None
  step: Optional[float] = None
  sampling: Literal["linear", "log", "reverse_log"] = "linear"
  values: list[Any] = dataclasses.field(default_factory=list)
  default: Any = None

  def validate(self) -> None:
    if self.type in ("int", "float"):
      if self.min is None or self.max is None or self.min > self.max:
        raise ConfigError(f"a {self.type} hyper-parameter needs min <= max, got min={self.min} "
                          f"max={self.max}")
      if self.sampling != "linear" and self.min <= 0:
        raise ConfigError(f"{self.sampling} sampling needs min > 0, got {self.min}")
      if self.type == "int" and (self.min != int(self.min) or self.max != int(self.max)):
        raise ConfigError(f"an int hyper-parameter needs integer bounds, got "
                          f"{self.min}..{self.max}")
    if self.type == "choice" and not self.values:
      raise ConfigError("a choice hyper-parameter needs values")

  def declare(self, hp, name: str):
    """Declares this parameter on a keras_tuner.HyperParameters object."""
    if self.type == "int":
      return hp.Int(name, int(self.min), int(self.max), step=int(self.step) if self.step else None,
                    sampling=self.sampling, default=self.default)
    if self.type == "float":
      return hp.Float(name, float(self.min), float(self.max), step=self.step,
                      sampling=self.sampling, default=self.default)
    if self.type == "choice":
      return hp.Choice(name, list(self.values), default=self.default)
    return hp.Boolean(name, default=bool(self.default))


def parse_space(raw: Mapping[str, Any], where: str) -> dict[str, ParamSpec]:
  """{path: ParamSpec} from {path: ParamSpec or its mapping} (checked: bad specs fail here)."""
  return {name: spec if isinstance(spec, ParamSpec)
          else ParamSpec.from_dict(spec, where=f"{where}: search space {name!r}")
          for name, spec in raw.items()}
