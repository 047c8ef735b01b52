"""Name -> model family: model class, config class, demo config, search space and recipe
defaults, so config files, the CLI, the tuner and the recipes can name a model.

    @register_model("my_model", MyModelConfig, "one line for `tf-seqmodels models`",
                    demo_config=my_model_demo_config,
                    search_space={"model.config.channels": {"type": "choice", "values": [64, 128]},
                                  "optimizer.learning_rate": {"type": "float", "min": 1e-4,
                                                              "max": 1e-2, "sampling": "log"}},
                    recipe={"max_learning_rate": 0.005})
    class MyModel(SequenceModel): ...
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional, Type

from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.models.search_space import ParamSpec, parse_space


@dataclasses.dataclass(frozen=True)
class ModelEntry:
  name: str
  model_class: type
  config_class: Type[Config]
  description: str
  # A small, fast configuration of the same architecture for demos and smoke tests.
  demo_config: Optional[Callable[[], Config]] = None
  # Hyper-parameters the tuner searches by default: {run-config path: ParamSpec}.
  search_space: Mapping[str, ParamSpec] = dataclasses.field(default_factory=dict)
  # Defaults of the family's training recipe (e.g. the DREAM recipe's max_learning_rate).
  recipe: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  # The smallest configuration that still runs every code path of the family (toy widths and
  # lengths, few tracks): the size of the conformance suite. None: the demo configuration.
  tiny_config: Optional[Callable[[], Config]] = None

  def smallest_config(self) -> Config:
    """`tiny_config()`, else `demo_config()`, else the published defaults."""
    make = self.tiny_config or self.demo_config or self.config_class
    return make()


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, config_class: Type[Config], description: str = "",
                   demo_config: Optional[Callable[[], Config]] = None, *,
                   search_space: Optional[Mapping[str, Any]] = None,
                   recipe: Optional[Mapping[str, Any]] = None,
                   tiny_config: Optional[Callable[[], Config]] = None):
  """Class decorator adding a model family to the registry under `name`.

  Args:
    search_space: {run-config path: ParamSpec or its mapping}, the tuner's default space.
    recipe: defaults of the family's training recipe (e.g. {"max_learning_rate": 0.005}).
    tiny_config: where the demo configuration is too large for a many-model test suite, the
      smallest configuration that still runs every code path.
  """
  space = parse_space(search_space or {}, f"model {name!r}")

  def decorator(model_class):
    if name in _REGISTRY:
      raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = ModelEntry(name, model_class, config_class, description, demo_config,
                                 space, dict(recipe or {}), tiny_config)
    model_class.registry_name = name
    return model_class

  return decorator


def available_models() -> list[str]:
  return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
  if name not in _REGISTRY:
    raise ConfigError(f"unknown model {name!r}; available: {available_models()}")
  return _REGISTRY[name]


def build_model(name: str, config: Optional[Config | Mapping[str, Any]] = None):
  """Instantiates model `name` from a config object, a plain mapping, or the defaults."""
  entry = get_entry(name)
  if config is None:
    config = entry.config_class()
  elif not isinstance(config, Config):
    config = entry.config_class.from_dict(config, where=f"{name} config")
  elif not isinstance(config, entry.config_class):
    raise ConfigError(f"model {name!r} needs a {entry.config_class.__name__}, "
                      f"got {type(config).__name__}")
  return entry.model_class(config)
