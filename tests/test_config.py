"""Typed config base: round-trips, nested configs, strict keys and types, atomic saves."""

import dataclasses
import os
from typing import Optional

import pytest

from tf_seqmodels.config import Config, ConfigError, atomic_write_text
from tf_seqmodels.models import available_models, build_model


@dataclasses.dataclass(frozen=True)
class Inner(Config):
  width: int = 8
  rate: float = 0.5


@dataclasses.dataclass(frozen=True)
class Outer(Config):
  name: str = "x"
  inner: Inner = dataclasses.field(default_factory=Inner)
  sizes: tuple[int, ...] = (1, 2)
  extra: Optional[int] = None
  mapping: dict[str, int] = dataclasses.field(default_factory=lambda: {"a": 1})

  def validate(self):
    if self.inner.width <= 0:
      raise ConfigError("inner.width must be positive")


def test_round_trip_nested(tmp_path):
  cfg = Outer(name="y", inner=Inner(width=3, rate=1), sizes=(4, 5, 6), extra=7, mapping={"b": 2})
  assert isinstance(cfg.inner.rate, float)
  for ext in ("yaml", "json"):
    path = tmp_path / f"c.{ext}"
    cfg.save(path)
    assert Outer.load(path) == cfg
  assert Outer.from_dict(cfg.to_dict()) == cfg
  assert Outer.from_yaml("inner: {width: 2}").inner == Inner(width=2)


def test_strictness():
  with pytest.raises(ConfigError, match=r"Outer.inner: unknown key\(s\) \['widht'\]"):
    Outer.from_dict({"inner": {"widht": 3}})
  with pytest.raises(ConfigError, match="expected an integer"):
    Outer.from_dict({"sizes": [1, "2"]})
  with pytest.raises(ConfigError, match="positive"):
    Outer.from_dict({"inner": {"width": 0}})
  with pytest.raises(FileNotFoundError, match="config file not found"):
    Outer.load("does/not/exist.yaml")


def test_atomic_write_leaves_no_temporary_files(tmp_path):
  path = tmp_path / "sub" / "f.txt"
  atomic_write_text(str(path), "one")
  atomic_write_text(str(path), "two")
  assert path.read_text() == "two"
  assert os.listdir(path.parent) == ["f.txt"]


def test_registry():
  assert "enformer" in available_models()
  with pytest.raises(ConfigError, match="unknown model 'enformr'"):
    build_model("enformr")


def test_atomic_write_gives_files_the_umask_mode(tmp_path):
  import os
  from tf_seqmodels.config import atomic_write_text
  previous = os.umask(0o022)
  try:
    atomic_write_text(str(tmp_path / "run.yaml"), "a: 1\n")
  finally:
    os.umask(previous)
  assert (tmp_path / "run.yaml").read_text() == "a: 1\n"
  assert os.stat(tmp_path / "run.yaml").st_mode & 0o777 == 0o644
