"""Search spaces: hyper-parameters as dotted paths into a training config, per model family.

A hyper-parameter's name says where its value goes in the run config (`tf-seqmodels train
--config` file), e.g. `model.config.channels`, `model.config.first.dropout_rate`,
`optimizer.learning_rate`, `task.options.counts_loss_weight`. Spaces are declared up front
(keras-tuner cannot discover them without a hypermodel), per registry name, and a search
config overrides, adds or removes entries. A model family declares its space when it registers
(`register_model(..., search_space=...)`, `tf_seqmodels.models.search_space`):

    search:
      space: dream_cnn                # a registered model (default: the run's model.name)
      overrides:
        model.config.first.out_channels: {type: choice, values: [32, 64]}
        optimizer.learning_rate: {type: float, min: 1.0e-3, max: 1.0e-2, sampling: log}
      remove: [model.config.core.kernel_size]
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Optional, Union

from tf_seqmodels.config import ConfigError
from tf_seqmodels.models.search_space import ParamSpec, parse_space

__all__ = ["ParamSpec", "Value", "search_space", "declare_space", "apply_values", "check_paths"]

Value = Union[int, float, str, bool]


def search_space(family: str, overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
                 remove: tuple[str, ...] = ()) -> dict[str, ParamSpec]:
  """The registered model `family`'s space with `overrides` (replace or add) and `remove`
  applied."""
  from tf_seqmodels.models.registry import available_models, get_entry
  declared = get_entry(family).search_space if family in available_models() else {}
  if not declared and not overrides:
    families = [n for n in available_models() if get_entry(n).search_space]
    raise ConfigError(f"no search space is declared for {family!r} (models with one: "
                      f"{families}); give search.overrides")
  space = dict(declared)
  unknown = sorted(set(remove) - set(space) - set(overrides or {}))
  if unknown:
    raise ConfigError(f"search.remove names parameter(s) {unknown} not in the {family!r} space "
                      f"{sorted(space)}")
  space.update(parse_space(overrides or {}, "search.overrides"))
  for name in remove:
    space.pop(name, None)
  if not space:
    raise ConfigError(f"the {family!r} search space is empty")
  return space


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
