"""Search spaces: hyper-parameters as dotted paths into a training config, per model family.

A hyper-parameter's name says where its value goes in the run config (`tf-seqmodels train
--config` file), e.g. `model.config.channels`, `model.config.first.dropout_rate`,
`optimizer.learning_rate`, `task.options.counts_loss_weight`. Spaces are declared up front
(keras-tuner cannot discover them without a hypermodel), per registry name, and a search
config overrides, adds or removes entries:

    search:
      space: dream_cnn                # default: the run's model.name
      overrides:
        model.config.first.out_channels: {type: choice, values: [32, 64]}
        optimizer.learning_rate: {type: float, min: 1.0e-3, max: 1.0e-2, sampling: log}
      remove: [model.config.core.kernel_size]
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Literal, Mapping, Optional, Union

from tf_seqmodels.config import Config, ConfigError

Value = Union[int, float, str, bool]


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


def _specs(raw: Mapping[str, Mapping[str, Any]]) -> dict[str, ParamSpec]:
  return {name: ParamSpec.from_dict(spec, where=f"search space {name!r}")
          for name, spec in raw.items()}


_LR_ONE_CYCLE = {"type": "float", "min": 1e-3, "max": 1e-2, "sampling": "log"}
_DREAM_COMMON = {
    "model.config.first.dropout_rate": {"type": "float", "min": 0.1, "max": 0.4, "step": 0.1},
    "optimizer.learning_rate": _LR_ONE_CYCLE,  # the one-cycle schedule's max LR
    "optimizer.weight_decay": {"type": "float", "min": 1e-3, "max": 1e-1, "sampling": "log"},
}
_BPNET = {
    "filters": {"type": "choice", "values": [64, 128, 256, 512]},
    "num_dilated_layers": {"type": "int", "min": 4, "max": 9},
}

# Per registry name; values are raw dicts so the table reads like a config file.
FAMILY_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "enformer": {
        "model.config.channels": {"type": "choice", "values": [768, 1152, 1536]},
        "model.config.num_transformer_layers": {"type": "int", "min": 4, "max": 11},
        "model.config.num_heads": {"type": "choice", "values": [4, 8]},
        "optimizer.learning_rate": {"type": "float", "min": 1e-4, "max": 1e-3, "sampling": "log"},
        "optimizer.warmup_steps": {"type": "int", "min": 1000, "max": 10000, "step": 1000},
    },
    "dream_cnn": {
        "model.config.first.out_channels": {"type": "choice", "values": [128, 256, 320]},
        "model.config.core.kernel_size": {"type": "choice", "values": [5, 7, 9]},
        **_DREAM_COMMON,
    },
    "dream_rnn": {
        "model.config.first.out_channels": {"type": "choice", "values": [128, 256, 320]},
        "model.config.core.lstm_hidden_size": {"type": "choice", "values": [128, 256, 320]},
        "model.config.core.dropout_rate": {"type": "float", "min": 0.2, "max": 0.5, "step": 0.1},
        **_DREAM_COMMON,
    },
    "dream_attn": {
        "model.config.first.out_channels": {"type": "choice", "values": [128, 256]},
        "model.config.core.num_layers": {"type": "int", "min": 2, "max": 6},
        "model.config.core.kernel_size": {"type": "choice", "values": [7, 15]},
        "model.config.core.dropout_rate": {"type": "float", "min": 0.0, "max": 0.3, "step": 0.1},
        "optimizer.learning_rate": _LR_ONE_CYCLE,
    },
    "bpnet": {
        **{f"model.config.{k}": v for k, v in _BPNET.items()},
        "task.options.counts_loss_weight": {"type": "float", "min": 1.0, "max": 100.0,
                                            "sampling": "log"},
        "optimizer.learning_rate": {"type": "float", "min": 1e-4, "max": 3e-3, "sampling": "log"},
    },
    "chrombpnet": {
        **{f"model.config.model_config.{k}": v for k, v in _BPNET.items()},
        "task.options.counts_loss_weight": {"type": "float", "min": 1.0, "max": 100.0,
                                            "sampling": "log"},
        "optimizer.learning_rate": {"type": "float", "min": 1e-4, "max": 3e-3, "sampling": "log"},
    },
}
FAMILY_SPACES["chromoformer"] = {
    "model.config.channels": {"type": "choice", "values": [64, 128]},
    "model.config.regulation_layers": {"type": "int", "min": 2, "max": 6},
    "model.config.pairwise_layers": {"type": "int", "min": 1, "max": 3},
    "optimizer.learning_rate": {"type": "float", "min": 1e-5, "max": 1e-3, "sampling": "log"},
}
FAMILY_SPACES["dream_prixfixe"] = {"optimizer.learning_rate": _LR_ONE_CYCLE,
                                   "model.config.first.out_channels":
                                       {"type": "choice", "values": [64, 128, 256]}}
FAMILY_SPACES["chrombpnet_bias"] = FAMILY_SPACES["bpnet"]


def search_space(family: str, overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
                 remove: tuple[str, ...] = ()) -> dict[str, ParamSpec]:
  """The family's declared space with `overrides` (replace or add) and `remove` applied."""
  if family not in FAMILY_SPACES and not overrides:
    raise ConfigError(f"no search space is declared for {family!r} (families: "
                      f"{sorted(FAMILY_SPACES)}); give search.overrides")
  space = copy.deepcopy(FAMILY_SPACES.get(family, {}))
  unknown = sorted(set(remove) - set(space) - set(overrides or {}))
  if unknown:
    raise ConfigError(f"search.remove names parameter(s) {unknown} not in the {family!r} space "
                      f"{sorted(space)}")
  space.update(overrides or {})
  for name in remove:
    space.pop(name, None)
  if not space:
    raise ConfigError(f"the {family!r} search space is empty")
  return _specs(space)


def declare_space(space: Mapping[str, ParamSpec]):
  """A keras_tuner.HyperParameters holding every parameter of `space`."""
  import keras_tuner as kt
  hp = kt.HyperParameters()
  for name, spec in space.items():
    spec.declare(hp, name)
  return hp


def apply_values(run: Mapping[str, Any], values: Mapping[str, Value],
                 model_config: Mapping[str, Any]) -> dict[str, Any]:
  """Sets each dotted-path value in a copy of the run-config dict `run`.

  Paths under `model.config.` are applied to the complete model config `model_config` (the
  run's resolved default/demo/file config), which then replaces `model.config` outright: a
  nested block is never half-reset to its defaults, and the written config is explicit.
  Keys of keras-tuner's own ("tuner/...") are ignored.

  Raises:
    ConfigError: a path that does not lead into the config.
  """
  result = copy.deepcopy(dict(run))
  model = copy.deepcopy(dict(model_config))
  touched_model = False
  for name, value in values.items():
    if name.startswith("tuner/"):
      continue
    parts = name.split(".")
    if parts[:2] == ["model", "config"] and len(parts) > 2:
      target, parts, touched_model = model, parts[2:], True
    else:
      target = result
    for i, part in enumerate(parts[:-1]):
      nxt = target.get(part)
      if nxt is None and parts[:i + 1] in (["task", "options"], ["data", "options"]):
        nxt = target[part] = {}
      if not isinstance(nxt, dict):
        raise ConfigError(f"hyper-parameter {name!r}: {'.'.join(parts[:i + 1])!r} is not a "
                          f"section of the config")
      target = nxt
    if target is model and parts[-1] not in model and len(parts) == 1:
      raise ConfigError(f"hyper-parameter {name!r}: the model config has no field {parts[-1]!r}")
    target[parts[-1]] = value
  if touched_model:
    result.setdefault("model", {})
    result["model"].update({"config": model, "config_file": None, "demo": False})
  return result


def check_paths(run: Mapping[str, Any], names, model_config: Mapping[str, Any]) -> None:
  """Raises ConfigError for hyper-parameter names that lead nowhere in the run config (checked
  before the search, so a typo fails at once instead of failing every trial).

  Paths must name existing fields, except keys under `task.options` / `data.options`
  (free-form sections checked by the task / data builder).
  """
  for name in names:
    parts = name.split(".")
    node: Any = run
    if parts[:2] == ["model", "config"] and len(parts) > 2:
      node, parts = model_config, parts[2:]
    elif parts[:2] in (["task", "options"], ["data", "options"]) and len(parts) == 3:
      continue
    for i, part in enumerate(parts):
      if not isinstance(node, Mapping) or part not in node:
        where = ".".join(name.split(".")[:len(name.split(".")) - len(parts) + i + 1])
        raise ConfigError(f"search space parameter {name!r}: {where!r} is not a field of the run "
                          f"config (model.config paths follow the model's config, e.g. "
                          f"{sorted(model_config)[:6]})")
      node = node[part]
