"""One model source for every command: what `--model` names and the one loader that reads it.

`predict`, `evaluate`, `score-variants`, `contributions` and `export` take the same flags
(`add_model_source_arguments`) and load through `load_model`:

    --model RUN_DIR                     a training run directory (run.json records the model,
                                        its config and the data; --which best|latest checkpoint)
    --model CHECKPOINT --config FILE    a checkpoint (prefix or directory) and its config: a
                                        training config (its model section names the model) or
                                        a model config (--model-name NAME, or the one registered
                                        config class that reads all its keys)
    --model NAME [--config FILE | --demo] [--weights CKPT | --reference-weights W]
                                        a registered model (`tf-seqmodels models`) with a config
                                        (default: the published one) and optional weights
    --model SAVED_MODEL                 an exported SavedModel (`tf-seqmodels export hub`)

A run directory is self-contained: the relative paths its training config records (targets
tables, genomes, data folders) are resolved against the run directory and the folders above
it (the folder training ran in, wherever the run was moved), then the current directory
(`load_train_config`).

This module imports TensorFlow only when a model is loaded.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

from tf_seqmodels.errors import summarise_error
from tf_seqmodels.config import ConfigError, read_mapping_file

RUN = "run directory"
CHECKPOINT = "checkpoint"
REGISTRY = "registered model"
SAVED_MODEL = "SavedModel"


class ModelSourceError(ConfigError):
  """`--model` and its flags do not name a loadable model, or the weights do not fit it."""


@dataclasses.dataclass
class ModelSource:
  """What the model flags of a command name (see the module docstring)."""

  model: str
  config: Optional[str] = None
  model_name: Optional[str] = None
  weights: Optional[str] = None
  reference_weights: Optional[str] = None
  demo: bool = False
  which: str = "best"

  @classmethod
  def from_args(cls, args) -> "ModelSource":
    return cls(model=args.model, config=getattr(args, "config", None),
               model_name=getattr(args, "model_name", None),
               weights=getattr(args, "weights", None),
               reference_weights=getattr(args, "reference_weights", None),
               demo=bool(getattr(args, "demo", False)), which=getattr(args, "which", "best"))

  @property
  def kind(self) -> str:
    """RUN, CHECKPOINT, REGISTRY or SAVED_MODEL; a name that is none of them is an error."""
    path = self.model
    if is_saved_model(path):
      return SAVED_MODEL
    if is_run_dir(path):
      return RUN
    if os.path.isdir(path) and not _holds_checkpoint(path):
      raise ModelSourceError(f"--model {path}: not a training run directory (no run.json), "
                             f"a SavedModel (no saved_model.pb) or a checkpoint directory (no "
                             f".index file)")
    if os.path.exists(path) or os.path.exists(path + ".index"):
      return CHECKPOINT
    from tf_seqmodels.models.registry import available_models
    names = available_models()
    if path in names:
      return REGISTRY
    looks_like_path = os.sep in path or path.startswith(".") or "." in os.path.basename(path)
    raise ModelSourceError(
        f"--model {path}: " + ("no such run directory, checkpoint or SavedModel" if looks_like_path
                               else f"not a registered model name (available: {', '.join(names)})"
                               " nor an existing path"))

  def check(self) -> str:
    """Validates the combination of flags for this kind of source; returns the kind."""
    kind = self.kind
    def refuse(flag, why):
      raise ModelSourceError(f"--model {self.model} is a {kind}: {flag} {why}")
    if kind == SAVED_MODEL:
      for flag, value in (("--config", self.config), ("--model-name", self.model_name),
                          ("--weights", self.weights), ("--demo", self.demo),
                          ("--reference-weights", self.reference_weights)):
        if value:
          refuse(flag, "does not apply (an export carries its own config and weights)")
    elif kind == RUN:
      for flag, value in (("--config", self.config), ("--model-name", self.model_name),
                          ("--weights", self.weights), ("--demo", self.demo),
                          ("--reference-weights", self.reference_weights)):
        if value:
          refuse(flag, "does not apply (the run records its model, config and checkpoints; "
                 "use --which best|latest)")
    elif kind == CHECKPOINT:
      for flag, value in (("--weights", self.weights), ("--demo", self.demo),
                          ("--reference-weights", self.reference_weights)):
        if value:
          refuse(flag, "does not apply (the checkpoint is the weights; give its --config)")
    else:
      if self.model_name and self.model_name != self.model:
        refuse("--model-name", "contradicts it")
      if self.config and self.demo:
        refuse("--demo", "and --config are alternatives; give one")
      if self.weights and self.reference_weights:
        refuse("--weights", "and --reference-weights are alternatives; give one")
    return kind


@dataclasses.dataclass
class LoadedModel:
  """A loaded model and where it came from.

  Attributes:
    model: a registered contract model (`SequenceModel`) or, for a SAVED_MODEL, the object
      `tf.saved_model.load` returned.
    name: the registry name (a SavedModel: its folder name).
    kind: RUN, CHECKPOINT, REGISTRY or SAVED_MODEL.
    config: the model config (None for a SavedModel).
    train_config: the training config (run directory, or a checkpoint given one), else None.
    weights: the checkpoint prefix read (None: initial weights or a SavedModel).
    path: the path --model named (None for a registry name).
  """

  model: Any
  name: str
  kind: str
  config: Any = None
  train_config: Any = None
  weights: Optional[str] = None
  path: Optional[str] = None


def is_saved_model(path: str) -> bool:
  return os.path.isdir(path) and os.path.exists(os.path.join(path, "saved_model.pb"))


def _holds_checkpoint(folder: str) -> bool:
  """A folder `training.checkpointing.restore_weights` can read: checkpoint files (*.index),
  a best.json pointer or a checkpoints/ folder of a run."""
  import glob
  return bool(glob.glob(os.path.join(glob.escape(folder), "*.index"))) or any(
      os.path.exists(os.path.join(folder, name)) for name in ("best.json", "checkpoints"))


def is_run_dir(path: str) -> bool:
  """A training run directory: holds the run.json of `tf-seqmodels train`."""
  return os.path.isdir(path) and os.path.exists(os.path.join(path, "run.json"))


# --- recorded paths of run directories ------------------------------------------------------

def resolve_recorded_path(path: str, run_dir: str) -> str:
  """A path a run recorded, as it is found now: absolute paths as they are; a relative path
  against the run directory, then each folder above it (training ran in one of them, and a
  moved run keeps its layout), then the current directory. Unfound paths are returned as
  recorded (the reader's error then names them)."""
  if not path or os.path.isabs(path):
    return path
  folder = os.path.abspath(run_dir)
  while True:
    candidate = os.path.join(folder, path)
    if os.path.exists(candidate):
      return candidate
    parent = os.path.dirname(folder)
    if parent == folder:
      break
    folder = parent
  return os.path.abspath(path) if os.path.exists(path) else path


def _resolve_in(value: Any, run_dir: str) -> Any:
  """Resolves every string in a nested options mapping that names an existing file found
  from the run directory (other strings, e.g. head names, are left unchanged)."""
  if isinstance(value, dict):
    return {k: _resolve_in(v, run_dir) for k, v in value.items()}
  if isinstance(value, list):
    return [_resolve_in(v, run_dir) for v in value]
  if isinstance(value, str) and value and not os.path.isabs(value) and (
      os.sep in value or "." in value):
    found = resolve_recorded_path(value, run_dir)
    return found if os.path.isabs(found) else value
  return value


def load_train_config(run_dir: str):
  """The training config `tf-seqmodels train` recorded in `run_dir/run.json`, with the paths
  it recorded (data options, model config file, init_from) resolved from the run directory
  (`resolve_recorded_path`) and run_dir set to where the run is now."""
  from tf_seqmodels.training.run_config import read_train_config
  config = read_train_config(run_dir)
  model = config.model
  changes = {}
  for field in ("config_file", "init_from"):
    value = getattr(model, field)
    if value:
      changes[field] = resolve_recorded_path(value, run_dir)
  data = config.data.replace(options=_resolve_in(dict(config.data.options), run_dir))
  # The run is where it is now (reports default to <run_dir>/evaluation_<split>), not where
  # it was trained.
  return config.replace(model=model.replace(**changes) if changes else model, data=data,
                        run_dir=os.path.abspath(run_dir))


def recorded_file(path: str, what: str, flag: str, run_dir: Optional[str] = None) -> str:
  """`path` (recorded by a run, resolved) if it exists, else a FileNotFoundError naming the
  file and the flag that overrides it."""
  found = resolve_recorded_path(path, run_dir) if run_dir else path
  if not os.path.exists(found):
    where = f" (recorded by the run {run_dir}; looked in it and the folders above it)" \
        if run_dir else ""
    raise FileNotFoundError(f"{what} not found: {path}{where}; give {flag} to use another")
  return found


# --- configs -----------------------------------------------------------------------------

def _is_train_config(data: dict) -> bool:
  return isinstance(data.get("model"), dict) and "name" in data["model"]


def _model_name_for(data: dict, path: str) -> str:
  """The one registered model whose config class reads every key of `data`."""
  from tf_seqmodels.models.registry import available_models, get_entry
  fits = []
  for name in available_models():
    fields = {f.name for f in dataclasses.fields(get_entry(name).config_class)}
    if set(data) <= fields:
      fits.append(name)
  if len(fits) == 1:
    return fits[0]
  raise ModelSourceError(f"{path}: a model config that " + (
      f"several models could read ({', '.join(fits)})" if fits else "no registered model reads")
      + "; name the model with --model-name NAME (or give --model NAME --config FILE "
      "--weights CHECKPOINT)")


def model_config_of(source: ModelSource):
  """(registry name, model config, training config or None) that `source` names (not for a
  SavedModel)."""
  from tf_seqmodels.models.registry import get_entry
  kind = source.check()
  if kind == RUN:
    train_config = load_train_config(source.model)
    from tf_seqmodels.training.run_config import resolve_model_config
    return train_config.model.name, resolve_model_config(train_config.model), train_config
  name = source.model if kind == REGISTRY else source.model_name
  if source.config:
    data = read_mapping_file(source.config)
    if _is_train_config(data):
      from tf_seqmodels.training.run_config import TrainConfig, resolve_model_config
      train_config = TrainConfig.from_dict(data, where=source.config)
      if name and name != train_config.model.name:
        raise ModelSourceError(f"{source.config} is a training config of "
                               f"{train_config.model.name!r}, not {name!r}")
      return train_config.model.name, resolve_model_config(train_config.model), train_config
    name = name or _model_name_for(data, source.config)
    return name, get_entry(name).config_class.from_dict(data, where=source.config), None
  if kind == CHECKPOINT and not name:
    raise ModelSourceError(f"--model {source.model} is a checkpoint: give its --config (the "
                           f"training or model config it was trained with)")
  entry = get_entry(name)
  if source.demo:
    if entry.demo_config is None:
      raise ModelSourceError(f"{name} has no demo config")
    return name, entry.demo_config(), None
  return name, entry.config_class(), None


# --- loading -------------------------------------------------------------------------------

def restore_into(model, name: str, weights: str, which: str = "best", strategy=None) -> str:
  """Reads `weights` (a run directory's best/latest checkpoint, or a checkpoint prefix or
  directory) into `model`; a checkpoint that does not fit the model's config is a
  ModelSourceError of a few lines. Returns the prefix read."""
  from tf_seqmodels.training.checkpointing import WeightsMismatchError, restore_weights
  try:
    return restore_weights(model, weights, which, strategy)
  except WeightsMismatchError as e:
    raise ModelSourceError(f"the weights {weights} do not fit {name} as configured (a "
                           f"checkpoint of another model or config?):\n  {e.summary}") from e


def load_model(source: ModelSource, strategy=None) -> LoadedModel:
  """Loads the model `source` names (see the module docstring), under `strategy`'s scope
  (None: the current strategy)."""
  import tensorflow as tf
  kind = source.check()
  strategy = strategy or tf.distribute.get_strategy()
  if kind == SAVED_MODEL:
    with strategy.scope():
      try:
        loaded = tf.saved_model.load(source.model)
      except (ValueError, OSError, tf.errors.OpError) as e:
        raise ModelSourceError(f"--model {source.model}: not a readable SavedModel:\n  "
                               f"{summarise_error(e)}") from e
    return LoadedModel(loaded, os.path.basename(os.path.normpath(source.model)), kind,
                       path=source.model)
  from tf_seqmodels.models.registry import build_model
  name, config, train_config = model_config_of(source)
  weights = source.model if kind in (RUN, CHECKPOINT) else source.weights
  with strategy.scope():
    model = build_model(name, config)
    read = restore_into(model, name, weights, source.which, strategy) if weights else None
  if source.reference_weights:
    from tf_seqmodels.convert import import_reference_weights
    import_reference_weights(model, source.reference_weights)
  return LoadedModel(model, name, kind, config=config, train_config=train_config, weights=read,
                     path=None if kind == REGISTRY else source.model)


def add_model_source_arguments(parser, *, demo: bool = True, required: bool = True) -> None:
  """The model flags every model-reading command shares (see the module docstring)."""
  parser.add_argument("--model", required=required, metavar="SOURCE",
                      help="a training run directory, a checkpoint (prefix or directory; with "
                      "--config), a registered model name (`tf-seqmodels models`) or an "
                      "exported SavedModel")
  parser.add_argument("--config", "--model-config", dest="config", metavar="FILE",
                      help="the training or model config (.yaml/.json) of a checkpoint or "
                      "registered model name (default for a name: the published config)")
  parser.add_argument("--model-name", help="registered model name of a checkpoint whose "
                      "--config is a model config of several possible models")
  parser.add_argument("--weights", help="with a registered model name: its checkpoint (prefix, "
                      "directory or run directory)")
  parser.add_argument("--reference-weights", help="with a registered model name: weights in the "
                      "reference implementation's format (e.g. the published Enformer "
                      "checkpoint or SavedModel)")
  if demo:
    parser.add_argument("--demo", action="store_true",
                        help="with a registered model name: its small demo config")
  parser.add_argument("--which", choices=("best", "latest"), default="best",
                      help="checkpoint of a run directory")
