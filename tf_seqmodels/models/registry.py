"""Name -> (model class, config class), so configs files and the CLI can name a model."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional, Type

from tf_seqmodels.config import Config, ConfigError


@dataclasses.dataclass(frozen=True)
class ModelEntry:
  name: str
  model_class: type
  config_class: Type[Config]
  description: str
  # A small, fast configuration of the same architecture for demos and smoke tests.
  demo_config: Optional[Callable[[], Config]] = None


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, config_class: Type[Config], description: str = "",
                   demo_config: Optional[Callable[[], Config]] = None):
  """Class decorator adding a model to the registry under `name`."""

  def decorator(model_class):
    if name in _REGISTRY:
      raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = ModelEntry(name, model_class, config_class, description, demo_config)
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
