"""Data builders for training-config files: `data.type` -> the package's data readers.

    data:
      type: dream                  # a registered builder (see `available_data_builders()`)
      batch_size: 1024             # global training batch
      eval_batch_size: 4096
      options: {train: yeast_train.txt, valid: yeast_val.txt, plasmid: plasmid.json}

Each builder declares a strict options dataclass (unknown keys are errors) and returns
`TrainingData`; each task type names the builders that can feed it (`tasks.registry`).
`TrainingData` holds training and validation datasets of `(inputs [B, L, C], {target: tensor})`, the number of batches per epoch, the target names
and anything the task or the model needs from the data (e.g. ChromBPNet's counts-loss
weight, the bias recalibration). Builders:

    teacher        any task: random sequences, targets from a randomly initialised model of
                   the same architecture (a learnable task for smoke tests and benchmarks;
                   `data.synthetic` builds a realistic synthetic genome for the file builders)
    dream          DREAM yeast table + plasmid -> dream_soft_bin
    table          DeepSTARR / lentiMPRA tables -> regression
    chrombpnet     peaks + non-peaks + FASTA + bigWig + fold -> chrombpnet (mode bias or
                   accessibility; accessibility re-levels the frozen bias model's counts)
    tracks         FASTA + bigWigs (Basenji targets table) + BED + fold -> tracks
    chromoformer   histone-mark bigWigs + TSS table + interactions, the reference's
                   metadata.csv + .npy files, or synthetic -> chromoformer (4-fold CV)
    basenji        Basenji/Enformer TFRecord directory -> tracks
    multi          {source: builder section}: several sources trained in rotation (Enformer's
                   human / mouse batches), each with its own task
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Literal, Mapping, Optional

import numpy as np
import tensorflow as tf

from tf_seqmodels.config import Config, ConfigError


@dataclasses.dataclass
class TrainingData:
  """What a data builder returns (one source).

  Attributes:
    train: training dataset (one pass = one epoch; re-iterating draws the next epoch).
    valid: validation dataset or None.
    steps_per_epoch: batches per epoch.
    targets: target names of the elements (the heads they train).
    info: builder extras, e.g. {"counts_loss_weight": w}.
    prepare_model: called with the model after its variables exist and before training
      from scratch (e.g. bias recalibration); None when nothing is needed.
    eval_splits: further fixed evaluation splits by name (e.g. "test"), read by
      `tf-seqmodels evaluate`.
  """

  train: tf.data.Dataset
  valid: Optional[tf.data.Dataset]
  steps_per_epoch: int
  targets: tuple[str, ...]
  info: dict = dataclasses.field(default_factory=dict)
  prepare_model: Optional[Callable[[Any], None]] = None
  eval_splits: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class DataSection(Config):
  """The `data` section of a training config."""

  type: str = "teacher"
  batch_size: int = 32
  eval_batch_size: Optional[int] = None  # default: batch_size
  options: dict[str, Any] = dataclasses.field(default_factory=dict)

  def validate(self) -> None:
    if self.type not in _BUILDERS:
      raise ConfigError(f"data.type {self.type!r} is not a registered data builder; available: "
                        f"{available_data_builders()}")
    if self.batch_size < 1 or (self.eval_batch_size is not None and self.eval_batch_size < 1):
      raise ConfigError("data.batch_size and data.eval_batch_size must be >= 1")

  @property
  def eval_batch(self) -> int:
    return self.eval_batch_size or self.batch_size


@dataclasses.dataclass(frozen=True)
class _Builder:
  options: type
  any_task: bool  # generic builders (teacher, multi); the others feed the task types that
  build: Callable  # name them (`tasks.registry.register_task(data_builders=...)`)


_BUILDERS: dict[str, _Builder] = {}


def register_data_builder(name: str, options: type, any_task: bool = False):
  """Decorator registering `build(options, section, context) -> TrainingData | dict`.

  A task type lists the builders that can feed it (`tasks.registry.register_task`);
  `any_task` builders (synthetic teacher data, several sources) feed every task type.
  """

  def decorator(fn):
    if name in _BUILDERS:
      raise ValueError(f"data builder {name!r} is already registered")
    _BUILDERS[name] = _Builder(options, any_task, fn)
    return fn

  return decorator


def available_data_builders() -> list[str]:
  return sorted(_BUILDERS)


@dataclasses.dataclass
class BuildContext:
  """What builders may use besides their options: the model (for shapes / a teacher), its
  registry name and config, the task type, and the seed."""

  model: Any
  model_name: Optional[str]
  model_config: Any
  task_type: str
  task_options: Mapping[str, Any]
  seed: int


def build_data(section: DataSection, context: BuildContext) -> dict[str, TrainingData]:
  """Runs the builder of `section` -> {source name: TrainingData} (one source is "train")."""
  from tf_seqmodels.tasks import get_task_type
  builder = _BUILDERS[section.type]
  accepted = get_task_type(context.task_type).data_builders
  if not builder.any_task and section.type not in accepted:
    feeds = sorted(n for n, e in _BUILDERS.items() if e.any_task) + list(accepted)
    raise ConfigError(f"data.type {section.type!r} cannot feed task type {context.task_type!r}; "
                      f"its data builders are {feeds}")
  options = builder.options.from_dict(section.options, where=f"data.options ({section.type})")
  result = builder.build(options, section, context)
  return result if isinstance(result, dict) else {"train": result}


def _epoch_steps(examples: int, batch_size: int) -> int:
  if examples < 1:
    raise ValueError("the training split has no examples")
  return math.ceil(examples / batch_size)


# --- teacher (random sequences, targets from a random model) ----------------------------------

@dataclasses.dataclass(frozen=True)
class TeacherOptions(Config):
  """Random one-hot sequences (extra input channels zero) and a teacher's outputs as targets.

  The teacher is a second instance of the configured model with its own random weights:
  whatever the architecture, the task is learnable by the model being trained.
  """

  examples: int = 256
  valid_examples: int = 64
  sequence_length: Optional[int] = None  # default: the model's
  seed: int = 0

  def validate(self) -> None:
    if self.examples < 1 or self.valid_examples < 0:
      raise ConfigError("teacher: examples must be >= 1 and valid_examples >= 0")


def _teacher_targets(outputs: Mapping[str, np.ndarray], context: BuildContext,
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
  from tf_seqmodels.tasks import get_task_type
  entry = get_task_type(context.task_type)
  if entry.teacher_targets is None:
    raise ConfigError(f"teacher data cannot make targets for task type {context.task_type!r} "
                      f"(it registers no teacher_targets)")
  return entry.teacher_targets(outputs, entry.parse_options(context.task_options), rng)


@register_data_builder("teacher", TeacherOptions, any_task=True)
def _teacher(options: TeacherOptions, section: DataSection, context: BuildContext):
  from tf_seqmodels.models.registry import build_model
  if context.model_name is None:
    raise ConfigError("teacher data needs a registered model (model.name) to build a teacher")
  length = options.sequence_length or context.model.sequence_length
  if not length:
    raise ConfigError("teacher: set options.sequence_length (the model has no fixed length)")
  rng = np.random.default_rng(options.seed)
  teacher = build_model(context.model_name, context.model_config)
  channels = teacher.input_channels
  n = options.examples + options.valid_examples
  x = np.zeros((n, length, channels), np.float32)
  x[np.arange(n)[:, None], np.arange(length)[None, :], rng.integers(0, 4, (n, length))] = 1.0
  outputs: dict[str, list] = {}
  for start in range(0, n, 64):
    # Eager calls: tracing a large model once costs more than these few small batches.
    for head, value in teacher(tf.constant(x[start:start + 64]), is_training=False).items():
      outputs.setdefault(head, []).append(value.numpy())
  targets = _teacher_targets({k: np.concatenate(v) for k, v in outputs.items()}, context, rng)

  def dataset(rows, batch, shuffle):
    ds = tf.data.Dataset.from_tensor_slices((x[rows], {k: v[rows] for k, v in targets.items()}))
    if shuffle:
      ds = ds.shuffle(len(rows), seed=options.seed, reshuffle_each_iteration=True)
    return ds.batch(batch)

  train_rows = np.arange(options.examples)
  valid_rows = np.arange(options.examples, n)
  return TrainingData(
      dataset(train_rows, section.batch_size, True),
      dataset(valid_rows, section.eval_batch, False) if options.valid_examples else None,
      _epoch_steps(options.examples, section.batch_size), tuple(targets))


# --- DREAM / DeepSTARR / lentiMPRA ------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DreamOptions(Config):
  """Yeast tables (`read_dream_table`) + plasmid; `dream_dataset` settings."""

  train: str = ""
  valid: Optional[str] = None
  plasmid: str = ""
  reverse_complement: Literal["double", "random", "none"] = "double"
  singleton_channel: bool = True
  seed: int = 0

  def validate(self) -> None:
    if not self.train or not self.plasmid:
      raise ConfigError("dream: options.train and options.plasmid are required")


@register_data_builder("dream", DreamOptions)
def _dream(options: DreamOptions, section: DataSection, context: BuildContext):
  from tf_seqmodels.data import dream as D
  plasmid = D.load_plasmid(options.plasmid)
  train_table = D.read_dream_table(options.train)
  train = D.dream_dataset(train_table, plasmid, section.batch_size, seed=options.seed,
                          reverse_complement=options.reverse_complement,
                          singleton_channel=options.singleton_channel)
  valid = None
  if options.valid:
    valid = D.dream_dataset(D.read_dream_table(options.valid), plasmid, section.eval_batch,
                            shuffle=False, reverse_complement="none",
                            singleton_channel=options.singleton_channel)
  examples = len(train_table) * (2 if options.reverse_complement == "double" else 1)
  return TrainingData(train, valid, _epoch_steps(examples, section.batch_size),
                      ("expression", "bin_probs"))


@dataclasses.dataclass(frozen=True)
class TableOptions(Config):
  """DeepSTARR (`read_deepstarr_table`) or lentiMPRA (`read_lentimpra_table`) tables."""

  format: Literal["deepstarr", "lentimpra"] = "deepstarr"
  train: str = ""
  valid: Optional[str] = None
  reverse_complement: Literal["none", "double", "random"] = "none"
  seed: int = 0

  def validate(self) -> None:
    if not self.train:
      raise ConfigError("table: options.train is required")


@register_data_builder("table", TableOptions)
def _table(options: TableOptions, section: DataSection, context: BuildContext):
  from tf_seqmodels.data import dream as D
  read = D.read_deepstarr_table if options.format == "deepstarr" else D.read_lentimpra_table
  table = read(options.train)
  train = D.regression_dataset(table, section.batch_size, seed=options.seed,
                               reverse_complement=options.reverse_complement)
  valid = (D.regression_dataset(read(options.valid), section.eval_batch, shuffle=False)
           if options.valid else None)
  examples = len(table) * (2 if options.reverse_complement == "double" else 1)
  return TrainingData(train, valid, _epoch_steps(examples, section.batch_size),
                      tuple(table.targets))


# --- ChromBPNet ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ChromBPNetOptions(Config):
  """Peaks + non-peaks + FASTA + bigWig + fold (`prepare_chrombpnet_data` /
  `prepare_bias_data`); `data` holds ChromBPNetDataConfig fields."""

  mode: Literal["accessibility", "bias"] = "accessibility"
  peaks: str = ""
  nonpeaks: str = ""
  genome: str = ""
  bigwig: str = ""
  fold: str = ""
  data: dict[str, Any] = dataclasses.field(default_factory=dict)
  recalibrate_bias: bool = True  # accessibility: re-level the frozen bias model's counts

  def validate(self) -> None:
    missing = [k for k in ("peaks", "nonpeaks", "genome", "bigwig", "fold") if not getattr(self, k)]
    if missing:
      raise ConfigError(f"chrombpnet: options {missing} are required")


@register_data_builder("chrombpnet", ChromBPNetOptions)
def _chrombpnet(options: ChromBPNetOptions, section: DataSection, context: BuildContext):
  from tf_seqmodels.data.chrombpnet import (ChromBPNetDataConfig, prepare_bias_data,
                                            prepare_chrombpnet_data)
  defaults = {"max_jitter": 0} if options.mode == "bias" else {}
  config = ChromBPNetDataConfig.from_dict({**defaults, **options.data},
                                          where="data.options.data")
  prepare = prepare_bias_data if options.mode == "bias" else prepare_chrombpnet_data
  data = prepare(options.peaks, options.nonpeaks, options.genome, options.bigwig, options.fold,
                 config)
  splits = data.splits(section.batch_size)
  valid = data.valid.dataset(section.eval_batch) if len(data.valid) else None
  recalibration = data.recalibration

  def recalibrate(model):
    # The reference's "scaled bias model": re-level the bias counts on this data set.
    if hasattr(model, "recalibrate_bias") and len(recalibration):
      model.recalibrate_bias(recalibration.dataset(section.eval_batch))

  recalibrates = options.mode == "accessibility" and options.recalibrate_bias
  test = {"test": data.test.dataset(section.eval_batch)} if len(data.test) else {}
  return TrainingData(splits.train, valid, _epoch_steps(len(data.train), section.batch_size),
                      ("profile", "logcounts", "is_peak"),
                      {"counts_loss_weight": data.counts_loss_weight},
                      recalibrate if recalibrates else None, eval_splits=test)


# --- tracks ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TracksOptions(Config):
  """FASTA + bigWigs of a Basenji targets table + intervals (BED) + fold JSON
  (`track_splits`); `data` holds TrackDataConfig fields (its `head` names the target)."""

  fasta: str = ""
  targets: str = ""
  regions: str = ""
  fold: str = ""
  data: dict[str, Any] = dataclasses.field(default_factory=dict)
  seed: int = 0

  def validate(self) -> None:
    missing = [k for k in ("fasta", "targets", "regions", "fold") if not getattr(self, k)]
    if missing:
      raise ConfigError(f"tracks: options {missing} are required")


@register_data_builder("tracks", TracksOptions)
def _tracks(options: TracksOptions, section: DataSection, context: BuildContext):
  from tf_seqmodels.data.intervals import read_bed, read_fold
  from tf_seqmodels.data.tracks import TrackDataConfig, track_splits
  config = TrackDataConfig.from_dict(options.data, where="data.options.data")
  splits = track_splits(options.fasta, options.targets, read_bed(options.regions),
                        read_fold(options.fold), config, batch_size=section.batch_size,
                        seed=options.seed)
  valid = splits.valid
  if valid is not None and section.eval_batch != section.batch_size:
    valid = splits.info["windows"]["valid"].dataset(section.eval_batch)
  windows = splits.info["windows"]
  test = {"test": windows["test"].dataset(section.eval_batch)} if "test" in windows else {}
  return TrainingData(splits.train, valid, _epoch_steps(splits.sizes["train"], section.batch_size),
                      tuple(splits.targets),
                      dict(tracks=list(splits.info["tracks"]), bin_size=splits.info["bin_size"],
                           windows=windows), eval_splits=test)


@dataclasses.dataclass(frozen=True)
class BasenjiOptions(Config):
  """A Basenji / Enformer TFRecord directory (`basenji_dataset`)."""

  data_dir: str = ""
  head: str = "tracks"
  max_shift: int = 0
  jitter_bins: int = 0
  reverse_complement: bool = False
  shuffle_buffer: int = 1024
  seed: int = 0

  def validate(self) -> None:
    if not self.data_dir:
      raise ConfigError("basenji: options.data_dir is required")


@register_data_builder("basenji", BasenjiOptions)
def _basenji(options: BasenjiOptions, section: DataSection, context: BuildContext):
  from tf_seqmodels.data.tfrecords import basenji_dataset, read_statistics, tfrecord_files
  stats = read_statistics(options.data_dir)
  train = basenji_dataset(options.data_dir, "train", section.batch_size, head=options.head,
                          max_shift=options.max_shift, jitter_bins=options.jitter_bins,
                          reverse_complement=options.reverse_complement, seed=options.seed,
                          shuffle_buffer=options.shuffle_buffer)
  valid = (basenji_dataset(options.data_dir, "valid", section.eval_batch, head=options.head)
           if tfrecord_files(options.data_dir, "valid") else None)
  return TrainingData(train, valid,
                      _epoch_steps(int(stats.split_sizes.get("train", 0)), section.batch_size),
                      (options.head,))


# --- Chromoformer ----------------------------------------------------------------------------

from tf_seqmodels.data.chromoformer import ChromoformerBuilderOptions  # noqa: E402


@register_data_builder("chromoformer", ChromoformerBuilderOptions)
def _chromoformer(options: ChromoformerBuilderOptions, section: DataSection,
                  context: BuildContext):
  from tf_seqmodels.data.chromoformer import builder_examples
  # builder_examples leaves out (with a warning) genes without the mode's target, both splits.
  train, valid = builder_examples(options, context.model_config)
  mode = getattr(context.model_config, "mode", "classification")
  return TrainingData(
      train.dataset(section.batch_size, shuffle=True, seed=options.seed),
      valid.dataset(section.eval_batch) if valid is not None else None,
      _epoch_steps(len(train), section.batch_size), ("label", "expression"), {"mode": mode})


# --- several sources --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class MultiOptions(Config):
  """{source name: {type, batch_size?, eval_batch_size?, options}}: trained in rotation, one
  batch per source per step, each source with the task built from its targets."""

  sources: dict[str, Any] = dataclasses.field(default_factory=dict)

  def validate(self) -> None:
    if len(self.sources) < 2:
      raise ConfigError("multi: options.sources needs at least two sources")


@register_data_builder("multi", MultiOptions, any_task=True)
def _multi(options: MultiOptions, section: DataSection, context: BuildContext):
  result = {}
  for name, raw in options.sources.items():
    if not isinstance(raw, Mapping):
      raise ConfigError(f"multi: source {name!r} must be a mapping with a type")
    sub = DataSection.from_dict({"batch_size": section.batch_size,
                                 "eval_batch_size": section.eval_batch_size, **raw},
                                where=f"data.options.sources.{name}")
    if sub.type == "multi":
      raise ConfigError("multi: sources cannot be multi themselves")
    built = build_data(sub, context)
    if len(built) != 1:
      raise ConfigError(f"multi: source {name!r} must be a single source")
    result[name] = next(iter(built.values()))
  return result


def steps_per_epoch(data: Mapping[str, TrainingData]) -> int:
  """Steps of one epoch over several sources in rotation: each source's batches, the
  shortest source deciding (one rotation = one batch of every source)."""
  return len(data) * min(d.steps_per_epoch for d in data.values())
