"""Typed configuration: dataclasses that round-trip through dicts, JSON and YAML.

Every model, task and run is described by a dataclass deriving from `Config`. A config
file is the dataclass's fields as a mapping; unknown keys are an error (a typo must never
silently fall back to a default), nested dataclasses and tuples are rebuilt from their
annotations, and `Config.load(Config.save(...))` returns an equal object.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import types
import typing
from typing import Any, Mapping, TypeVar

ConfigT = TypeVar("ConfigT", bound="Config")


class ConfigError(ValueError):
  """A configuration is malformed: unknown key, wrong type or invalid value."""


def _convert(value: Any, annotation: Any, where: str) -> Any:
  """Converts plain JSON/YAML data `value` into the type named by `annotation`."""
  origin = typing.get_origin(annotation)
  args = typing.get_args(annotation)
  if annotation is Any:
    return value
  if origin in (typing.Union, types.UnionType):
    if value is None and type(None) in args:
      return None
    errors = []
    for arg in args:
      if arg is type(None):
        continue
      try:
        return _convert(value, arg, where)
      except ConfigError as e:
        errors.append(str(e))
    raise ConfigError(f"{where}: {value!r} matches none of {annotation}: {errors}")
  if isinstance(annotation, type) and issubclass(annotation, Config):
    if isinstance(value, annotation):
      return value
    if not isinstance(value, Mapping):
      raise ConfigError(f"{where}: expected a mapping for {annotation.__name__}, got {value!r}")
    return annotation.from_dict(value, where=where)
  if origin is tuple:
    if not isinstance(value, (list, tuple)):
      raise ConfigError(f"{where}: expected a list, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
      return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if len(args) != len(value):
      raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
    return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
  if origin in (list, typing.List):
    if not isinstance(value, (list, tuple)):
      raise ConfigError(f"{where}: expected a list, got {value!r}")
    return [_convert(v, args[0] if args else Any, f"{where}[{i}]") for i, v in enumerate(value)]
  if origin in (dict, typing.Dict, Mapping):
    if not isinstance(value, Mapping):
      raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    key_type, value_type = args if args else (Any, Any)
    return {_convert(k, key_type, where): _convert(v, value_type, f"{where}.{k}")
            for k, v in value.items()}
  if origin is typing.Literal:
    if value not in args:
      raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
    return value
  if annotation is float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise ConfigError(f"{where}: expected a number, got {value!r}")
    return float(value)
  if annotation is int:
    if isinstance(value, bool) or not isinstance(value, int):
      raise ConfigError(f"{where}: expected an integer, got {value!r}")
    return value
  if annotation is bool:
    if not isinstance(value, bool):
      raise ConfigError(f"{where}: expected true/false, got {value!r}")
    return value
  if annotation is str:
    if not isinstance(value, str):
      raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value
  return value


def _to_plain(value: Any) -> Any:
  if isinstance(value, Config):
    return value.to_dict()
  if isinstance(value, (list, tuple)):
    return [_to_plain(v) for v in value]
  if isinstance(value, Mapping):
    return {k: _to_plain(v) for k, v in value.items()}
  return value


@dataclasses.dataclass(frozen=True)
class Config:
  """Base of every configuration dataclass (frozen: a config is a value, not a state)."""

  def __post_init__(self):
    # Coerce and type-check constructor arguments the same way as file contents, so
    # `Cfg(rate=1)` stores 1.0 and `Cfg(sizes=[1, 2])` a tuple (configs stay comparable).
    hints = typing.get_type_hints(type(self))
    for f in dataclasses.fields(self):
      value = _convert(getattr(self, f.name), hints[f.name], f"{type(self).__name__}.{f.name}")
      object.__setattr__(self, f.name, value)
    self.validate()

  def validate(self) -> None:
    """Raises `ConfigError` when field values are inconsistent. Override per config."""

  def to_dict(self) -> dict[str, Any]:
    return {f.name: _to_plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

  @classmethod
  def from_dict(cls: type[ConfigT], data: Mapping[str, Any], where: str | None = None) -> ConfigT:
    where = where or cls.__name__
    if not isinstance(data, Mapping):
      raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
      raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(fields)}")
    kwargs = {name: _convert(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs)

  def replace(self: ConfigT, **changes: Any) -> ConfigT:
    return dataclasses.replace(self, **changes)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=False)

  @classmethod
  def from_json(cls: type[ConfigT], text: str) -> ConfigT:
    return cls.from_dict(parse_json(text))

  def to_yaml(self) -> str:
    import yaml
    return yaml.safe_dump(self.to_dict(), sort_keys=False)

  @classmethod
  def from_yaml(cls: type[ConfigT], text: str) -> ConfigT:
    return cls.from_dict(parse_yaml(text) or {})

  def save(self, path: str | os.PathLike) -> None:
    """Writes the config as YAML or JSON (by extension), atomically."""
    path = os.fspath(path)
    text = self.to_json() if path.endswith(".json") else self.to_yaml()
    atomic_write_text(path, text)

  @classmethod
  def load(cls: type[ConfigT], path: str | os.PathLike) -> ConfigT:
    """Reads a YAML/JSON config file (`read_mapping_file`: syntax errors name file and line,
    duplicate keys and empty files are errors)."""
    path = os.fspath(path)
    return cls.from_dict(read_mapping_file(path), where=path)


class _UniqueKeyLoader:
  """Builds (once) a yaml SafeLoader subclass that refuses duplicate mapping keys: YAML
  itself lets the last one win, so a repeated key would silently drop a setting."""
  _cls = None

  @classmethod
  def get(cls):
    if cls._cls is None:
      import yaml

      class Loader(yaml.SafeLoader):
        pass

      def construct_mapping(loader, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
          key = loader.construct_object(key_node, deep=True)
          if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", mark)
          seen[key] = key_node.start_mark.line
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

      Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
      cls._cls = Loader
    return cls._cls


def parse_yaml(text: str, name: str = "<string>") -> Any:
  """YAML `text` -> plain data; a syntax error or duplicate key is a `ConfigError` naming
  `name` (the file) and the line and column."""
  import yaml
  try:
    return yaml.load(text, Loader=_UniqueKeyLoader.get())  # noqa: S506 (a SafeLoader)
  except yaml.MarkedYAMLError as e:
    mark = e.problem_mark or e.context_mark
    where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
    problem = " ".join(str(p) for p in (e.context, e.problem) if p)
    raise ConfigError(f"{where}: invalid YAML: {problem}") from None
  except yaml.YAMLError as e:
    raise ConfigError(f"{name}: invalid YAML: {e}") from None


def parse_json(text: str, name: str = "<string>") -> Any:
  """JSON `text` -> plain data; syntax errors and duplicate keys name `name`, line, column."""
  def unique(pairs):
    out = {}
    for key, value in pairs:
      if key in out:
        raise ConfigError(f"{name}: duplicate key {key!r}")
      out[key] = value
    return out
  try:
    return json.loads(text, object_pairs_hook=unique)
  except json.JSONDecodeError as e:
    raise ConfigError(f"{name}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None


def read_mapping_file(path: str | os.PathLike, what: str = "config", allow_empty: bool = False
                      ) -> dict[str, Any]:
  """The mapping in a YAML or JSON file (by extension; .json is JSON, anything else YAML).

  Raises:
    FileNotFoundError: no such file. ConfigError: a directory, undecodable text, a syntax
      error or duplicate key (file:line:column), an empty file (unless `allow_empty`: then {}),
      or a top level that is not a mapping.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{what} file not found: {path}")
  if os.path.isdir(path):
    raise ConfigError(f"{path}: is a directory, expected a {what} file (.yaml/.json)")
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except UnicodeDecodeError as e:
    raise ConfigError(f"{path}: not a text {what} file ({e.reason} at byte {e.start})") from None
  data = parse_json(text, path) if path.endswith(".json") else parse_yaml(text, path)
  if data is None or data == {}:
    if allow_empty:
      return {}
    # An empty file would silently mean every default (e.g. the full published model).
    raise ConfigError(f"{path}: empty {what} file; write the settings (see `tf-seqmodels config "
                      f"MODEL` for a model's keys)")
  if not isinstance(data, Mapping):
    raise ConfigError(f"{path}: a {what} file must hold a mapping (key: value lines), got "
                      f"{type(data).__name__}")
  return dict(data)


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def apply_default_permissions(path: str) -> None:
  """Gives a file or directory made by mkstemp/mkdtemp (0600/0700) the usual umask-based mode,
  so written configs, data and checkpoints stay readable by the group like any other file."""
  base = 0o777 if os.path.isdir(path) else 0o666
  os.chmod(path, base & ~_umask())


def temporary_path(path: str) -> str:
  """A new, unique empty file next to `path` (same folder, so a rename is atomic) for a
  writer that opens the file itself; concurrent writers of one `path` never share it."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
  os.close(fd)
  return tmp


@contextlib.contextmanager
def atomic_output(path: str):
  """Yields a temporary path (`temporary_path`) to write `path` through (HDF5, bigWig, npz):
  renamed to `path` when the block succeeds, deleted when it raises."""
  tmp = temporary_path(path)
  try:
    yield tmp
    apply_default_permissions(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def atomic_write_text(path: str, text: str) -> None:
  """Writes `text` to `path` via a temporary file and rename, so readers never see half a file."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text)
    apply_default_permissions(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
