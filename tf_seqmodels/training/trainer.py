"""The training loop: any model honouring the contract, any task, any strategy.

    info = make_strategy("mirrored")                       # or "default", "multiworker", "tpu"
    with info.strategy.scope():
      model = build_model("dream_cnn", config)
      optimizer = AdamW(learning_rate=OneCycle(...), beta1=..., weight_decay=0.01)
    trainer = Trainer(model, DreamSoftBinTask(), optimizer, strategy=info,
                      config=TrainerConfig(epochs=80, batch_size=1024, select_best_by="pearson"),
                      run_dir="runs/dream_cnn")
    history = trainer.fit(train_data, validation_data=valid_data, resume=True)

Datasets yield global batches `(inputs [B, L, C], {target name: [B, ...]})`; a mapping
{source: dataset} with a mapping {source: task} trains several sources in strict rotation,
one batch per step (Enformer: human, mouse, human, ...).

The step (`tf.function`; per replica under `strategy.run`):

    forward (is_training=True) -> task.loss (mean over the replica's examples)
    -> gradients -> all_reduce(MEAN) across replicas (equal replica batches: = gradient of the
       global-batch mean; BatchNorm statistics are all-reduced by the models' own layers)
    -> finite check (a cross-replica vote: every replica sees the same reduced values)
    -> optional global-norm clipping -> optimizer.apply(gradients, variables), skipped when
       the loss or a gradient is NaN/Inf

Variables are replica-local (see `strategy`), so each replica applies the identical update
with a Sonnet-style optimizer (`training.AdamW` / `Adam`, with their schedules) on every
strategy. They are created before any step is traced, by an inference-mode call on one
example of zeros: eagerly (Replicator / MultiWorkerReplicator cannot create variables inside
a tf.function), inside a tf.function on TPU (which has no eager mode); then
`optimizer.build(variables)` creates the slots when the optimizer has it.

Data order and resume. Training reads `train_data.repeat()` (so epochs follow each other
in one stream) from a freshly built dataset; after a restart from the checkpoint of step s
the stream is rebuilt and its first s batches skipped. The resumed run therefore sees the
same batches as an uninterrupted run when the dataset yields the same stream every time it
is built and iterated from the start: seeded shuffles (`shuffle(seed=...)`, tf.data random
ops with seeds) and generators whose random state is created with the dataset (the
package's DREAM, ChromBPNet and track builders). Skipping costs one pass of the input
pipeline over the skipped batches (no model compute). With more than one replica (and on
TPU) each pass is rebatched to full global batches (`rebatch(B, drop_remainder=True)`), so
every replica gets B / replicas examples; multi-worker pipelines are sharded by DATA (each
worker reads the same stream and keeps its part of every batch).

Determinism (`TrainerConfig.deterministic`): seeds Python, NumPy and TensorFlow, enables
op determinism, and re-seeds TensorFlow and re-traces the step at every checkpoint, so
stateful random ops inside the model (dropout) restart from the same state in an
uninterrupted and in a resumed run: the final weights are then identical. Without it the
run is seeded (same initial weights) but not bitwise reproducible.

Checkpoints (`checkpointing`), logs, TensorBoard and run metadata (`logging`) go under
`run_dir` (chief only); without a run directory nothing is written.
"""

from __future__ import annotations

import dataclasses
import math
import random
import signal
import threading
import time
from typing import Any, Callable, Iterator, Literal, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tf_seqmodels.blocks.gradients import fast_gradients
from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.tasks.base import Task, select_metric, source_metric_directions
from tf_seqmodels.training import checkpointing
from tf_seqmodels.training import logging as run_logging
from tf_seqmodels.training.precision import compute_dtype, precision_dtype
from tf_seqmodels.training.strategy import (StrategyConfig, StrategyError, StrategyInfo,
                                            describe_strategy, make_strategy)

DEFAULT_SOURCE = "train"


class NonFiniteLossError(FloatingPointError):
  """Training stopped on a NaN/Inf loss or gradient; the last good checkpoint is intact.

  Attributes:
    step: the 1-based update whose loss or gradients were not finite (never applied).
    checkpoint: the checkpoint restored into the model (the last good one), or None.
    history: the run's history up to the failure.
  """

  def __init__(self, message: str, step: int, checkpoint: Optional[str], history: dict):
    super().__init__(message)
    self.step, self.checkpoint, self.history = step, checkpoint, history


class TrainingInterrupted(Exception):
  """SIGINT / SIGTERM stopped training after the step in progress; a resume checkpoint of
  that step was saved (with a run directory) and run.json says "interrupted".

  Attributes:
    step: updates applied; checkpoint: the checkpoint saved, or None; history: the run's
    history so far; signal_name: "SIGINT" or "SIGTERM".
  """

  def __init__(self, message: str, step: int, checkpoint: Optional[str], history: dict,
               signal_name: str):
    super().__init__(message)
    self.step, self.checkpoint, self.history = step, checkpoint, history
    self.signal_name = signal_name


class _Interrupts:
  """Within `with`: SIGINT / SIGTERM set `received` instead of killing the step in progress
  (a second signal interrupts at once). Only the main thread can install handlers; elsewhere
  signals keep their handlers. Not with several workers: each would stop at its own step
  while the others wait in the step's collectives (a multi-worker run resumes from its last
  periodic checkpoint)."""

  def __init__(self, enabled: bool = True):
    self.received: Optional[str] = None
    self.enabled = enabled
    self._previous: dict = {}

  def _handle(self, signum, frame):
    if self.received is not None:
      raise KeyboardInterrupt
    self.received = signal.Signals(signum).name

  def __enter__(self):
    if self.enabled and threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGINT, signal.SIGTERM):
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    return False


@dataclasses.dataclass(frozen=True)
class TrainerConfig(Config):
  """How long and how to train; every schedule below is in optimizer steps (batches).

  Attributes:
    epochs, steps_per_epoch: the run lasts epochs x steps_per_epoch steps; steps_per_epoch
      None = one pass over the training data (its cardinality, or one counting pass of the
      input pipeline when unknown).
    batch_size: global batch size; needed with several replicas or on TPU when the
      dataset's batch dimension is not static (each pass is rebatched to it).
    eval_every: validate every this many steps; None = at the end of every epoch.
    checkpoint_every: also save a resume checkpoint every this many steps (checkpoints are
      always saved after each validation, at each epoch end and at the end of the run).
    keep_checkpoints: resume checkpoints kept.
    select_best_by: validation metric for the best checkpoint and early stopping, e.g.
      "pearson", "loss", "counts_mse_peaks"; its direction is the one the task declares
      (`Task.METRICS`; the loss is lower-is-better); "max:"/"min:" force it; with several
      sources "<source>/<metric>". A metric the task does not report is an error.
    patience: stop after this many validations without improvement (None = never).
    min_delta: an improvement must exceed this.
    log_every: write training metrics every this many steps.
    steps_per_call: steps per tf.function call (host overhead amortised; TPU: ~100); with
      several sources rounded up to whole rotations.
    clip_global_norm: clip the (all-reduced) gradients to this global norm.
    jit_compile: XLA-compile the step (one replica; TPU always compiles).
    mixed_precision: "bfloat16" runs Sonnet Linear/Conv layers in bfloat16 with float32
      variables (`training.precision`); "float32" (default) does not.
    deterministic: op determinism and per-checkpoint re-seeding (see the module docstring).
    seed: seeds Python, NumPy and TensorFlow.
    progress: show a progress bar (chief only).
    tensorboard: write TensorBoard scalars under run_dir/tensorboard.
  """

  epochs: int = 1
  steps_per_epoch: Optional[int] = None
  batch_size: Optional[int] = None
  eval_every: Optional[int] = None
  checkpoint_every: Optional[int] = None
  keep_checkpoints: int = 3
  select_best_by: Optional[str] = None
  patience: Optional[int] = None
  min_delta: float = 0.0
  log_every: int = 50
  steps_per_call: int = 1
  clip_global_norm: Optional[float] = None
  jit_compile: bool = False
  mixed_precision: Literal["float32", "bfloat16"] = "float32"
  deterministic: bool = False
  seed: int = 0
  progress: bool = True
  tensorboard: bool = True

  def validate(self) -> None:
    def fail(msg):
      raise ConfigError(f"TrainerConfig: {msg}")

    for name in ("epochs", "keep_checkpoints", "log_every", "steps_per_call"):
      if getattr(self, name) < 1:
        fail(f"{name} must be >= 1, got {getattr(self, name)}")
    for name in ("steps_per_epoch", "batch_size", "eval_every", "checkpoint_every", "patience"):
      value = getattr(self, name)
      if value is not None and value < 1:
        fail(f"{name} must be >= 1 or null, got {value}")
    if self.patience is not None and not self.select_best_by:
      fail("patience (early stopping) needs select_best_by (the validation metric to watch)")
    if self.min_delta < 0:
      fail(f"min_delta must be >= 0, got {self.min_delta}")
    if self.clip_global_norm is not None and self.clip_global_norm <= 0:
      fail(f"clip_global_norm must be positive or null, got {self.clip_global_norm}")
    if self.mixed_precision not in ("float32", "bfloat16"):
      fail(f"mixed_precision must be 'float32' or 'bfloat16', got {self.mixed_precision!r}")


def selection(select_best_by: str, tasks: Union[Task, Mapping[str, Task]]) -> tuple[str, bool]:
  """(metric, maximise) of a select_best_by against the tasks' declared metric directions
  ("max:"/"min:" force the direction); ConfigError for a metric the tasks do not report."""
  return select_metric(select_best_by, source_metric_directions(_as_sources(tasks, "task")))


def set_determinism(seed: int, deterministic: bool) -> None:
  """Seeds Python, NumPy and TensorFlow; with `deterministic`, also enables op determinism
  (a process-wide TensorFlow setting that cannot be switched off again)."""
  random.seed(seed)
  np.random.seed(seed % 2**32)
  tf.random.set_seed(seed)
  if deterministic:
    tf.config.experimental.enable_op_determinism()


def _segment_seed(seed: int, step: int) -> int:
  """The TensorFlow seed of the RNG segment starting at `step` (deterministic mode)."""
  return (seed * 1_000_003 + step * 7_919 + 1) % (2**31 - 1)


class _TrainState(tf.Module):
  """The loop's own checkpointed state (plain variables, written from the host)."""

  def __init__(self):
    super().__init__(name="trainer_state")
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    self.epoch_loss_sum = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="epoch_loss_sum")
    self.epoch_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch_steps")
    self.best_value = tf.Variable(math.nan, dtype=tf.float64, trainable=False, name="best_value")
    self.best_step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="best_step")
    self.evals_since_best = tf.Variable(0, dtype=tf.int64, trainable=False,
                                        name="evals_since_best")


def _check_element_spec(spec, where: str):
  # Inputs are one tensor [B, L, C], or a dict of tensors [B, ...] for multi-input models
  # (the model's `input_spec()` structure).
  inputs_ok = isinstance(spec, tuple) and len(spec) == 2 and (
      isinstance(spec[0], tf.TensorSpec) or (
          isinstance(spec[0], dict) and spec[0]
          and all(isinstance(s, tf.TensorSpec) for s in tf.nest.flatten(spec[0]))))
  if not (inputs_ok and isinstance(spec[1], dict)):
    raise ValueError(f"{where}: dataset elements must be (inputs [B, L, C] or {{input name: "
                     f"tensor}}, {{target name: tensor}}) pairs, got {spec}")
  if isinstance(spec[0], tf.TensorSpec) and spec[0].shape.rank != 3:
    raise ValueError(f"{where}: inputs must be [batch, length, channels], got {spec[0].shape}")
  for name, leaf in (spec[0].items() if isinstance(spec[0], dict) else ()):
    if leaf.shape.rank is None or leaf.shape.rank < 1:
      raise ValueError(f"{where}: input {name!r} must have a batch dimension, got {leaf.shape}")
  return spec


def _batch_size_of(inputs) -> tf.Tensor:
  """Examples in a batch of inputs (a tensor or a dict of tensors)."""
  return tf.shape(tf.nest.flatten(inputs)[0])[0]


def _as_sources(value, what: str) -> dict:
  if value is None:
    return {}
  if isinstance(value, Mapping):
    if not value:
      raise ValueError(f"{what}: the mapping of sources is empty")
    return dict(value)
  return {DEFAULT_SOURCE: value}


def _float32(structure):
  return tf.nest.map_structure(
      lambda t: tf.cast(t, tf.float32) if t.dtype.is_floating and t.dtype != tf.float32 else t,
      structure)


class Trainer:
  """Trains `model` on `task` under a distribution strategy (see the module docstring).

  Args:
    model: honours the contract model(inputs, is_training) -> {head: tensor}; its variables
      may not exist yet (they are created under the strategy's scope by the trainer). With
      several replicas, a model built beforehand must have been built inside
      `strategy.scope()`.
    task: a Task, or {source: Task} for several training sources.
    optimizer: a Sonnet-style optimizer (`apply(updates, variables)`, optionally
      `build(variables)`), created inside `strategy.scope()`; or a zero-argument callable
      returning one, which the trainer calls inside the scope; None for a trainer that only
      evaluates.
    strategy: None (the current strategy), a StrategyInfo (`make_strategy`), a
      StrategyConfig or kind name, or a tf.distribute.Strategy.
    config: TrainerConfig.
    run_dir: where checkpoints, logs and metadata go (None: write nothing).
    variables: what to train: None = model.trainable_variables (after the variables
      exist), a list, or a callable model -> list.
    metadata: extra JSON-able data for run.json (e.g. the full training config file).
  """

  def __init__(self, model, task: Union[Task, Mapping[str, Task]], optimizer, *,
               strategy: Union[None, str, StrategyConfig, StrategyInfo, tf.distribute.Strategy] = None,
               config: Optional[TrainerConfig] = None, run_dir: Optional[str] = None,
               variables: Union[None, Sequence[tf.Variable], Callable] = None,
               metadata: Optional[Mapping[str, Any]] = None):
    self.config = config or TrainerConfig()
    if isinstance(strategy, StrategyInfo):
      self.info = strategy
    elif isinstance(strategy, (str, StrategyConfig)):
      self.info = make_strategy(strategy)
    else:
      self.info = describe_strategy(strategy)
    self.strategy = self.info.strategy
    if self.config.jit_compile and self.info.num_replicas > 1 and not self.info.is_tpu:
      raise ConfigError(
          f"jit_compile with {self.info.num_replicas} replicas is not supported: the "
          f"cross-replica all-reduces (gradients, BatchNorm statistics) run between XLA "
          f"clusters; use one device, or TPU (always compiled)")
    self.model = model
    self.tasks = _as_sources(task, "task")
    for name, t in self.tasks.items():
      if not isinstance(t, Task):
        raise TypeError(f"task {name!r} must be a tasks.Task, got {type(t).__name__}")
    if callable(optimizer) and not hasattr(optimizer, "apply"):
      with self.strategy.scope():
        optimizer = optimizer()
    if optimizer is not None and not hasattr(optimizer, "apply"):
      raise TypeError(f"optimizer must have apply(updates, variables) (a Sonnet-style "
                      f"optimizer such as training.AdamW), got {type(optimizer).__name__}")
    self.optimizer = optimizer
    self._variables_arg = variables
    self.variables: Optional[list[tf.Variable]] = None
    self.run_dir = run_dir
    self.metadata = dict(metadata or {})
    self._dtype = precision_dtype(self.config.mixed_precision)
    self.state = _TrainState()
    objects = {"model": model, "state": self.state}
    if isinstance(optimizer, tf.Module):
      objects["optimizer"] = optimizer
    self.checkpoint = tf.train.Checkpoint(**objects)
    self.checkpointer = (checkpointing.Checkpointer(run_dir, self.checkpoint,
                                                    is_chief=self.info.is_chief,
                                                    max_to_keep=self.config.keep_checkpoints)
                         if run_dir else None)
    self._eval_fns: dict[str, Callable] = {}
    self._train_call: Optional[Callable] = None
    if optimizer is not None:
      # Before any variable exists, so initial values follow the seed (a trainer that only
      # evaluates leaves the random state alone).
      set_determinism(self.config.seed, self.config.deterministic)

  # --- variables ----------------------------------------------------------------------------
  @property
  def built(self) -> bool:
    return self.variables is not None

  def build(self, input_spec: tf.TensorSpec) -> None:
    """Creates the model's variables and the optimizer's slots for inputs like `input_spec`
    ([B, L, C]; L must be static or the model's `sequence_length`; or a dict of specs with
    static non-batch shapes for multi-input models)."""
    if self.built:
      return
    if isinstance(input_spec, tf.TensorSpec):
      shape = input_spec.shape.as_list()
      length = shape[1] if shape[1] is not None else getattr(self.model, "sequence_length", None)
      if length is None or shape[2] is None:
        raise ValueError(f"cannot create the model's variables: the input length/channels are "
                         f"unknown ({input_spec.shape}) and the model has no sequence_length")
      zeros = tf.zeros([1, length, shape[2]], input_spec.dtype)
    else:
      # Several inputs: one example of zeros per input (its non-batch shape must be static).
      def one_example(spec):
        if not spec.shape[1:].is_fully_defined():
          raise ValueError(f"cannot create the model's variables: input {spec.name!r} has an "
                           f"unknown shape {spec.shape}")
        return tf.zeros([1] + spec.shape[1:].as_list(), spec.dtype)
      zeros = tf.nest.map_structure(one_example, input_spec)
    check_inputs = getattr(self.model, "check_inputs", None)
    if check_inputs is not None:
      # The contract's static checks name a dataset/model mismatch (channels, length, missing
      # input) before TensorFlow fails deep inside the first traced step.
      check_inputs(zeros)

    def forward(x):
      return self.model(x, is_training=False)

    with self.strategy.scope():
      if self.info.is_tpu:
        tf.function(lambda x: self.strategy.run(forward, args=(x,)))(zeros)
      else:
        # Eagerly: Replicator-style strategies cannot create variables inside a tf.function,
        # and one eager example is cheaper than tracing a large model just for its variables.
        self.strategy.run(forward, args=(zeros,))
      arg = self._variables_arg
      variables = list(arg(self.model) if callable(arg) else
                       arg if arg is not None else self.model.trainable_variables)
      if not variables:
        raise ValueError("the model has no trainable variables")
      if self.info.distributed:
        self._check_created_in_scope(variables)
      if self.optimizer is not None and hasattr(self.optimizer, "build"):
        self.optimizer.build(variables)
    self.variables = variables

  def _check_created_in_scope(self, variables) -> None:
    extended = self.strategy.extended
    outside = [v.name for v in variables if not extended.variable_created_in_scope(v)]
    opt_vars = list(getattr(self.optimizer, "variables", ()) or ())
    outside += [v.name for v in opt_vars if not extended.variable_created_in_scope(v)]
    if outside:
      raise StrategyError(
          f"{len(outside)} variables (e.g. {outside[:3]}) were not created inside "
          f"strategy.scope(): build the model and create the optimizer inside "
          f"`with info.strategy.scope():` (or pass a callable returning the optimizer)")

  # --- data ---------------------------------------------------------------------------------
  def _global_batch(self, spec) -> Optional[int]:
    static = tf.nest.flatten(spec[0])[0].shape[0]
    if self.config.batch_size is not None:
      return self.config.batch_size
    return int(static) if static is not None else None

  def _prepare(self, dataset: tf.data.Dataset, training: bool, where: str) -> tf.data.Dataset:
    spec = _check_element_spec(dataset.element_spec, where)
    full_batches = self.info.is_tpu or (training and self.info.num_replicas > 1)
    if full_batches:
      batch = self._global_batch(spec)
      if batch is None:
        raise ValueError(f"{where}: the global batch size is unknown (dynamic batch dimension); "
                         f"set TrainerConfig.batch_size so every replica gets equal batches")
      if batch % self.info.num_replicas:
        raise ValueError(f"{where}: the global batch size {batch} is not divisible by the "
                         f"{self.info.num_replicas} replicas")
      if tf.nest.flatten(spec[0])[0].shape[0] != batch:
        dataset = dataset.rebatch(batch, drop_remainder=True)
    if self.info.is_tpu and not all(s.shape[1:].is_fully_defined()
                                    for s in tf.nest.flatten(spec[0])):
      raise ValueError(f"{where}: TPU needs static input shapes, got {spec[0]}")
    if self.info.distributed:
      policy = dataset.options().experimental_distribute.auto_shard_policy
      if policy == tf.data.experimental.AutoShardPolicy.AUTO:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        dataset = dataset.with_options(options)
    return dataset

  def _iterator(self, dataset: tf.data.Dataset):
    if self.info.distributed:
      return iter(self.strategy.experimental_distribute_dataset(dataset))
    return iter(dataset)

  # --- the step -----------------------------------------------------------------------------
  def _replica_gradients(self, task: Task):
    """Per-replica fn: (inputs, targets) -> (loss, gradients, examples), all-reduced."""
    variables = self.variables

    def compute(inputs, targets):
      with tf.GradientTape() as tape:
        # fast_gradients: blocks with hand-built gradients use them (blocks.gradients).
        with compute_dtype(self._dtype), fast_gradients():
          outputs = self.model(inputs, is_training=True)
        loss = tf.cast(task.loss(targets, _float32(outputs)), tf.float32)
      grads = tape.gradient(loss, variables)
      present = [i for i, g in enumerate(grads) if g is not None]
      if not present:
        raise ValueError("the loss does not depend on any trained variable")
      dense = [tf.convert_to_tensor(grads[i]) for i in present]
      examples = tf.cast(_batch_size_of(inputs), tf.float32)
      context = tf.distribute.get_replica_context()
      replicas = context.num_replicas_in_sync
      if replicas > 1:
        reduced = context.all_reduce(tf.distribute.ReduceOp.MEAN, [loss, examples] + dense)
        loss, examples, dense = reduced[0], reduced[1] * replicas, reduced[2:]
      full: list = [None] * len(variables)
      for i, g in zip(present, dense):
        full[i] = g
      return loss, full, examples

    return compute

  def _replica_step(self, task: Task):
    gradients_fn = self._replica_gradients(task)
    clip = self.config.clip_global_norm

    def step(inputs, targets):
      loss, grads, examples = gradients_fn(inputs, targets)
      present = [g for g in grads if g is not None]
      norm = tf.linalg.global_norm(present)
      # A NaN or Inf in any gradient makes the norm NaN or Inf, so the norm is the one check
      # (one reduction instead of a pass over every gradient). A finite gradient whose squares
      # overflow also fails it, rightly: clipping or Adam would turn that update into NaN.
      finite = tf.logical_and(tf.reduce_all(tf.math.is_finite(loss)), tf.math.is_finite(norm))
      if clip is not None:
        clipped, _ = tf.clip_by_global_norm(present, clip, use_norm=norm)
        it = iter(clipped)
        grads = [next(it) if g is not None else None for g in grads]

      def apply():
        self.optimizer.apply(grads, self.variables)
        return tf.constant(True)

      # Skipped on every replica alike: `finite` comes from all-reduced values.
      tf.cond(finite, apply, lambda: tf.constant(False))
      return loss, tf.cast(finite, tf.float32), norm, examples

    if self.config.jit_compile and not self.info.is_tpu:
      return tf.function(step, jit_compile=True)
    return step

  def _make_train_call(self, names: Sequence[str]) -> Callable:
    """tf.function(iterators, rounds): `rounds` x (one step per source, in order)."""
    steps = [self._replica_step(self.tasks[name]) for name in names]
    strategy = self.strategy

    def first(value):
      # Every replica holds the same (all-reduced) value: read the local first one.
      return strategy.experimental_local_results(value)[0]

    def train_call(iterators, rounds):
      loss_sum = tf.constant(0.0, tf.float32)
      examples = tf.constant(0.0, tf.float32)
      norm = tf.constant(0.0, tf.float32)
      first_bad = tf.constant(-1, tf.int32)
      index = tf.constant(0, tf.int32)
      for _ in tf.range(rounds):
        for step, iterator in zip(steps, iterators):
          loss, finite, step_norm, n = strategy.run(step, args=next(iterator))
          loss, finite, step_norm, n = first(loss), first(finite), first(step_norm), first(n)
          bad = tf.logical_and(first_bad < 0, finite < 0.5)
          first_bad = tf.where(bad, index, first_bad)
          loss_sum += tf.where(finite > 0.5, loss, 0.0)
          examples += n
          norm = step_norm
          index += 1
      return loss_sum, examples, norm, first_bad

    return tf.function(train_call)

  def _reseed(self, step: int, names: Sequence[str]) -> None:
    """(Re)creates the compiled step; in deterministic mode first re-seeds TensorFlow for the
    RNG segment starting at `step` (fresh kernels, so stateful random ops restart)."""
    if self.config.deterministic:
      tf.random.set_seed(_segment_seed(self.config.seed, step))
    if self.config.deterministic or self._train_call is None:
      self._train_call = self._make_train_call(names)

  # --- evaluation ---------------------------------------------------------------------------
  def _eval_fn(self, name: str) -> Callable:
    if name in self._eval_fns:
      return self._eval_fns[name]
    task, strategy = self.tasks[name], self.strategy

    def replica(inputs, targets):
      with compute_dtype(self._dtype):
        outputs = _float32(self.model(inputs, is_training=False))
      n = _batch_size_of(inputs)
      loss = tf.cast(task.loss(targets, outputs), tf.float32)
      # A replica may get no examples of the last, partial batch: its mean loss is NaN.
      loss_sum = tf.where(n > 0, loss * tf.cast(n, tf.float32), 0.0)
      return outputs, targets, loss_sum, n

    if self.info.distributed:
      def gather(structure):
        # Leaf by leaf: Strategy.gather of a dict returns only the local replica's part
        # under Replicator (TF 2.21).
        return tf.nest.map_structure(lambda v: strategy.gather(v, axis=0), structure)

      def eval_step(batch):
        outputs, targets, loss_sum, n = strategy.run(replica, args=batch)
        return (gather(outputs), gather(targets),
                strategy.reduce(tf.distribute.ReduceOp.SUM, loss_sum, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.SUM, n, axis=None))
    else:
      def eval_step(batch):
        return replica(*batch)

    self._eval_fns[name] = tf.function(eval_step, reduce_retracing=True)
    return self._eval_fns[name]

  def _evaluate_source(self, name: str, data: tf.data.Dataset) -> dict[str, float]:
    data = self._prepare(data, training=False, where=f"validation data {name!r}")
    self.build(data.element_spec[0])
    fn = self._eval_fn(name)
    metrics = self.tasks[name].make_metrics()
    total, count = 0.0, 0
    for batch in self._iterator(data):
      outputs, targets, loss_sum, n = fn(batch)
      total += float(loss_sum)
      count += int(n)
      targets_np = {k: v.numpy() for k, v in targets.items()}
      outputs_np = {k: v.numpy() for k, v in outputs.items()}
      for metric in metrics.values():
        metric.update(targets_np, outputs_np)
    if count == 0:
      raise ValueError(f"validation data {name!r} produced no examples")
    result = {"loss": total / count}
    result.update({k: float(m.result()) for k, m in metrics.items()})
    return result

  def evaluate(self, data: Union[tf.data.Dataset, Mapping[str, tf.data.Dataset]]) -> dict[str, float]:
    """Example-weighted mean loss and the task's metrics over `data` (every example once,
    split across replicas; outputs are gathered so every worker computes the same numbers).

    With several sources, names are "<source>/<metric>" and "loss" is the mean of the
    sources' losses. On TPU the last partial batch is dropped (static shapes).
    """
    sources = _as_sources(data, "validation data")
    unknown = sorted(set(sources) - set(self.tasks))
    if unknown:
      raise KeyError(f"validation sources {unknown} have no task; tasks: {sorted(self.tasks)}")
    if len(sources) == 1 and len(self.tasks) == 1:
      (name, dataset), = sources.items()
      return self._evaluate_source(name, dataset)
    results: dict[str, float] = {}
    for name, dataset in sources.items():
      results.update({f"{name}/{k}": v for k, v in self._evaluate_source(name, dataset).items()})
    results["loss"] = float(np.mean([results[f"{n}/loss"] for n in sources]))
    return results

  def loss_and_gradients(self, inputs, targets, source: Optional[str] = None):
    """Loss and aggregated gradients of one global batch, as a training step computes them
    (split across replicas, all-reduced), without applying an update. BatchNorm statistics
    are updated as in a step. Returns (loss float, [np.ndarray per trained variable or None]).
    """
    name = source or next(iter(self.tasks))
    inputs = tf.nest.map_structure(tf.convert_to_tensor, inputs)
    batch = self.config.batch_size
    given = tf.nest.flatten(inputs)[0].shape[0]
    if batch is not None and given != batch and (self.info.num_replicas > 1
                                                 or self.info.is_tpu):
      raise ValueError(f"loss_and_gradients: give one global batch of {batch} examples "
                       f"(TrainerConfig.batch_size), got {given}")
    dataset = tf.data.Dataset.from_tensors((inputs, dict(targets)))
    dataset = self._prepare(dataset, training=True, where="loss_and_gradients")
    self.build(dataset.element_spec[0])
    compute = self._replica_gradients(self.tasks[name])
    strategy = self.strategy

    @tf.function
    def run(batch):
      loss, grads, _ = strategy.run(compute, args=batch)
      local = strategy.experimental_local_results
      return local(loss)[0], [None if g is None else local(g)[0] for g in grads]

    loss, grads = run(next(self._iterator(dataset)))
    return float(loss), [None if g is None else g.numpy() for g in grads]

  def _training_data(self, train_data) -> tuple[list[str], dict[str, tf.data.Dataset]]:
    """(source names in rotation order, {source: prepared dataset}) of `train_data`, checked
    against the tasks; builds the model from the first source's inputs."""
    if self.optimizer is None:
      raise ValueError("this Trainer has no optimizer: it can evaluate, not train")
    sources = _as_sources(train_data, "train_data")
    if set(sources) != set(self.tasks):
      raise ValueError(f"training sources {sorted(sources)} must match the tasks "
                       f"{sorted(self.tasks)}")
    names = list(self.tasks)  # the rotation order
    prepared = {n: self._prepare(sources[n], training=True, where=f"training data {n!r}")
                for n in names}
    self.build(prepared[names[0]].element_spec[0])
    for n in names[1:]:
      _check_element_spec(prepared[n].element_spec, f"training data {n!r}")
    return names, prepared

  def train_steps(self, train_data: Union[tf.data.Dataset, Mapping[str, tf.data.Dataset]]
                  ) -> Iterator[float]:
    """Yields the mean loss of one rotation at a time (one update per training source), run by
    the compiled step `fit` runs (same strategy, replicas and skipped non-finite updates), with
    none of fit's epochs, validation, logging or checkpoints: for benchmarks, profiling and
    custom loops. Each `next()` applies the updates before it returns.

    Raises (on the `next()` concerned):
      NonFiniteLossError: a non-finite loss or gradient; that update was not applied to the
        trained variables (BatchNorm statistics had seen the batch: unlike `fit`, nothing is
        restored from a checkpoint).
    """
    names, prepared = self._training_data(train_data)
    iterators = tuple(self._iterator(prepared[n].repeat()) for n in names)
    call = self._make_train_call(names)
    one_round = tf.constant(1, tf.int32)
    updates = 0
    while True:
      loss_sum, _, _, first_bad = call(iterators, one_round)
      if int(first_bad) >= 0:
        bad = updates + int(first_bad) + 1
        raise NonFiniteLossError(f"non-finite loss or gradient at update {bad} of train_steps: "
                                 f"not applied", bad, None, {})
      updates += len(names)
      yield float(loss_sum) / len(names)

  # --- training -----------------------------------------------------------------------------
  def _steps_per_epoch(self, prepared: Mapping[str, tf.data.Dataset]) -> int:
    configured = self.config.steps_per_epoch
    if configured is not None:
      return configured
    counts = {}
    for name, dataset in prepared.items():
      cardinality = int(dataset.cardinality())
      if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ValueError(f"training data {name!r} is infinite: set steps_per_epoch")
      if cardinality == tf.data.UNKNOWN_CARDINALITY:
        # One data-only pass; fresh and resumed runs both make it, so streams stay aligned.
        cardinality = int(dataset.reduce(np.int64(0), lambda count, *_: count + 1))
      if cardinality == 0:
        raise ValueError(f"training data {name!r} produced no (full) batches")
      counts[name] = cardinality
    return len(counts) * min(counts.values())

  def _learning_rate(self) -> Optional[float]:
    fn = getattr(self.optimizer, "current_learning_rate", None)
    if fn is not None:
      return float(fn())
    rate = getattr(self.optimizer, "learning_rate", None)
    if isinstance(rate, (int, float)):
      return float(rate)
    if isinstance(rate, tf.Variable):
      return float(rate.numpy())
    return None

  def fit(self, train_data: Union[tf.data.Dataset, Mapping[str, tf.data.Dataset]],
          validation_data: Union[None, tf.data.Dataset, Mapping[str, tf.data.Dataset]] = None,
          *, resume: bool = False) -> dict[str, Any]:
    """Trains for `epochs x steps_per_epoch` steps (see TrainerConfig).

    Args:
      train_data: a dataset, or {source: dataset} matching the tasks (strict rotation).
      validation_data: a dataset or {source: dataset}; needed for select_best_by/patience.
      resume: continue from run_dir's latest checkpoint if there is one (else start
        fresh). Without it, a run_dir that already holds checkpoints is an error.

    Returns:
      History: "loss" [mean training loss per completed epoch], "epoch_time" [s],
      "val_<metric>" [per validation], "eval_steps" [step of each validation], "steps"
      (updates applied), "best_step", "best_epoch", "best_value", "best_checkpoint"
      (prefix or None), "stopped" ("completed" or "early_stopping"), "resumed_from" (step
      or None).

    Raises:
      NonFiniteLossError: a NaN/Inf loss or gradient; the update was not applied, the last
        good checkpoint is restored into the model and left intact on disk.
      TrainingInterrupted: SIGINT / SIGTERM; training stopped after the step in progress,
        whose checkpoint was saved (resume continues from it).
      FileExistsError: run_dir has checkpoints and resume is False.
    """
    cfg = self.config
    names, prepared = self._training_data(train_data)
    n_sources = len(names)
    for field in ("eval_every", "checkpoint_every", "steps_per_epoch"):
      value = getattr(cfg, field)
      if value is not None and value % n_sources:
        raise ConfigError(f"TrainerConfig.{field}={value} must be a multiple of the {n_sources} "
                          f"training sources (one batch of each per rotation)")
    if cfg.select_best_by and validation_data is None:
      raise ValueError("select_best_by / patience need validation_data")
    validation = _as_sources(validation_data, "validation_data")
    metric, maximise = (selection(cfg.select_best_by, self.tasks) if cfg.select_best_by
                        else (None, True))

    # --- restore or start ---
    resumed_from = None
    if self.checkpointer is not None:
      latest = self.checkpointer.latest()
      if latest is not None and not resume:
        raise FileExistsError(f"{self.run_dir} already holds checkpoints (latest {latest}); "
                              f"resume it (--resume / resume=True) or choose a new run directory")
      if latest is not None:
        resumed_from = self.checkpointer.restore_latest()
    start = int(self.state.step.numpy()) if resumed_from is not None else 0
    if resumed_from is not None and start != resumed_from:
      raise RuntimeError(f"checkpoint {resumed_from} holds trainer step {start}")
    chief = self.info.is_chief
    log = run_logging.MetricsLog(self.run_dir, enabled=chief)
    log.truncate(start)
    metadata_writer = run_logging.RunMetadata(self.run_dir, enabled=chief)
    metadata_writer.start(run_logging.run_metadata(
        self.metadata or None, cfg.seed, cfg.deterministic, self.info.metadata(),
        trainer=cfg.to_dict(), mixed_precision=cfg.mixed_precision,
        jit_compile=cfg.jit_compile), resumed_from)
    board = run_logging.TensorBoard(self.run_dir, enabled=chief and cfg.tensorboard)

    steps_per_epoch = self._steps_per_epoch(prepared)
    if steps_per_epoch % n_sources:
      raise ConfigError(f"steps_per_epoch {steps_per_epoch} must be a multiple of the "
                        f"{n_sources} sources")
    total = cfg.epochs * steps_per_epoch
    if start > total:
      raise ValueError(f"the checkpoint is at step {start}, beyond this run's {total} steps")
    if self.checkpointer is not None and resumed_from is None:
      self._save(0)  # a good checkpoint exists from the start (NaN guard, resume)

    consumed = start // n_sources
    iterators = tuple(self._iterator(prepared[n].repeat().skip(consumed)) for n in names)
    self._train_call = None
    self._reseed(start, names)

    best_value = float(self.state.best_value.numpy())
    history_state = {"stopped": "completed"}
    if (resumed_from is not None and cfg.patience is not None
        and int(self.state.evals_since_best.numpy()) >= cfg.patience):
      history_state["stopped"] = "early_stopping"  # it had stopped: do not train on
      total = start
    progress = run_logging.Progress(total, start, enabled=cfg.progress and self.info.is_chief)
    step = start
    epoch_start = time.perf_counter()
    window = {"loss": 0.0, "steps": 0, "examples": 0.0, "time": 0.0}
    interrupts = _Interrupts(enabled=self.info.num_workers == 1)
    try:
      interrupts.__enter__()
      while step < total:
        boundary = self._next_boundary(step, steps_per_epoch, total)
        # Whole rotations only: steps_per_call is rounded up to a multiple of the sources.
        n = min(-(-cfg.steps_per_call // n_sources) * n_sources, boundary - step)
        tick = time.perf_counter()
        loss_sum, examples, norm, first_bad = self._train_call(
            iterators, tf.constant(n // n_sources, tf.int32))
        first_bad = int(first_bad)
        if first_bad >= 0:
          self._stop_nonfinite(step, step + first_bad + 1, log, metadata_writer, progress, board)
        elapsed = time.perf_counter() - tick
        step += n
        loss_sum = float(loss_sum)
        self.state.epoch_loss_sum.assign_add(loss_sum)
        self.state.epoch_steps.assign_add(n)
        window["loss"] += loss_sum
        window["steps"] += n
        window["examples"] += float(examples)
        window["time"] += elapsed
        progress.update(n, loss=loss_sum / n,
                        ex_s=window["examples"] / max(window["time"], 1e-9))
        epoch = math.ceil(step / steps_per_epoch)
        if step // cfg.log_every > (step - n) // cfg.log_every or step == total:
          self._log_train(step, epoch, window, float(norm), log, board)
          window = {"loss": 0.0, "steps": 0, "examples": 0.0, "time": 0.0}
        epoch_end = step % steps_per_epoch == 0
        if epoch_end:
          mean = float(self.state.epoch_loss_sum.numpy()) / max(int(self.state.epoch_steps.numpy()), 1)
          log.append(step, "epoch", {"loss": mean, "time": time.perf_counter() - epoch_start},
                     epoch=epoch)
          board.scalars(step, "epoch", {"loss": mean})
          self.state.epoch_loss_sum.assign(0.0)
          self.state.epoch_steps.assign(0)
          epoch_start = time.perf_counter()
        evaluate = bool(validation) and (step % cfg.eval_every == 0 if cfg.eval_every
                                         else epoch_end)
        stop = False
        if evaluate:
          results = self.evaluate(validation)
          log.append(step, "valid", results, epoch=epoch)
          board.scalars(step, "valid", results)
          shown = [k for k in results if "/" not in k][:8]
          progress.write(f"step {step} (epoch {epoch}): "
                         + ", ".join(f"val_{k} {results[k]:.4g}" for k in shown))
          if metric is not None:
            best_value, stop = self._track_best(step, epoch, results, metric, maximise, best_value)
        save = (evaluate or epoch_end or step == total or stop
                or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0))
        if save and self.checkpointer is not None:
          self._save(step)
          self._reseed(step, names)
        if stop:
          history_state["stopped"] = "early_stopping"
          break
        if interrupts.received:
          self._stop_interrupted(step, save, interrupts.received, steps_per_epoch, resumed_from,
                                 log, metadata_writer)
    finally:
      interrupts.__exit__()
      progress.close()
      board.close()
    metadata_writer.update(status=history_state["stopped"], final_step=step)
    return self._history(log, step, steps_per_epoch, resumed_from, history_state["stopped"])

  def _next_boundary(self, step: int, steps_per_epoch: int, total: int) -> int:
    """The next step at which the host must act (epoch end, validation, checkpoint, end)."""
    candidates = [total, (step // steps_per_epoch + 1) * steps_per_epoch]
    for every in (self.config.eval_every, self.config.checkpoint_every):
      if every:
        candidates.append((step // every + 1) * every)
    return min(candidates)

  def _log_train(self, step, epoch, window, norm, log, board) -> None:
    values = {"loss": window["loss"] / max(window["steps"], 1),
              "steps_per_sec": window["steps"] / max(window["time"], 1e-9),
              "examples_per_sec": window["examples"] / max(window["time"], 1e-9),
              "grad_norm": norm}
    rate = self._learning_rate()
    if rate is not None:
      values["learning_rate"] = rate
    log.append(step, "train", values, epoch=epoch)
    board.scalars(step, "train", values)

  def _track_best(self, step, epoch, results, metric, maximise, best_value):
    if metric not in results:
      raise KeyError(f"select_best_by metric {metric!r} is not among the validation results "
                     f"{sorted(results)}")
    value = results[metric]
    delta = self.config.min_delta
    improved = math.isfinite(value) and (
        math.isnan(best_value) or (value > best_value + delta if maximise
                                   else value < best_value - delta))
    if improved:
      best_value = value
      self.state.best_value.assign(value)
      self.state.best_step.assign(step)
      self.state.evals_since_best.assign(0)
      if self.checkpointer is not None:
        self.checkpointer.write_best({"epoch": epoch, "step": step, "metric": metric,
                                      "value": value})
    else:
      self.state.evals_since_best.assign_add(1)
    patience = self.config.patience
    stop = patience is not None and int(self.state.evals_since_best.numpy()) >= patience
    return best_value, stop

  def _save(self, step: int) -> None:
    self.state.step.assign(step)
    self.checkpointer.save(step)

  def _stop_interrupted(self, step, saved, signal_name, steps_per_epoch, resumed_from, log,
                        metadata_writer) -> None:
    checkpoint = None
    if self.checkpointer is not None:
      if not saved:
        self._save(step)
      checkpoint = self.checkpointer.latest()
    metadata_writer.update(status="interrupted", final_step=step, signal=signal_name)
    history = self._history(log, step, steps_per_epoch, resumed_from, "interrupted")
    where = (f"; checkpoint {checkpoint} saved: continue with --resume" if checkpoint
             else " (no run directory: nothing saved)")
    raise TrainingInterrupted(f"training interrupted by {signal_name} at step {step}{where}",
                              step, checkpoint, history, signal_name)

  def _stop_nonfinite(self, step, bad_step, log, metadata_writer, progress, board) -> None:
    restored = None
    if self.checkpointer is not None:
      restored = self.checkpointer.latest()
      if restored is not None:
        self.checkpointer.restore_latest()
    progress.close()
    board.close()
    metadata_writer.update(status="nonfinite", nonfinite_step=bad_step)
    message = (f"training loss or gradients are NaN/Inf at update {bad_step}; that update was "
               f"not applied" + (f" and the model was restored from the last good checkpoint "
                                 f"{restored}" if restored else "")
               + ". Check the inputs/targets for NaN and consider a lower learning rate or "
               "clip_global_norm.")
    history = self._history(log, step, None, None, "nonfinite")
    raise NonFiniteLossError(message, bad_step, restored, history)

  def _history(self, log, step, steps_per_epoch, resumed_from, stopped) -> dict[str, Any]:
    epochs = [r for r in log.records if r["split"] == "epoch"]
    valid = [r for r in log.records if r["split"] == "valid"]
    history: dict[str, Any] = {"loss": [r["loss"] for r in epochs],
                               "epoch_time": [r["time"] for r in epochs],
                               "eval_steps": [r["step"] for r in valid]}
    for record in valid:
      for key, value in record.items():
        if key not in ("step", "epoch", "split", "time"):
          history.setdefault(f"val_{key}", []).append(float(value))
    best_step = int(self.state.best_step.numpy())
    best = checkpointing.read_best(self.run_dir) if self.run_dir else None
    history.update(
        steps=step,
        best_step=best_step if best_step >= 0 else None,
        best_epoch=(math.ceil(best_step / steps_per_epoch)
                    if best_step >= 0 and steps_per_epoch else None),
        best_value=(float(self.state.best_value.numpy()) if best_step >= 0 else None),
        best_checkpoint=best["path"] if best else None,
        stopped=stopped, resumed_from=resumed_from)
    return history


def fit(model, task: Union[Task, Mapping[str, Task]], train_data, *, optimizer, epochs: int = 1,
        steps_per_epoch: Optional[int] = None, validation_data=None,
        variables: Union[None, Sequence[tf.Variable], Callable] = None,
        select_best_by: Optional[str] = None, run_dir: Optional[str] = None,
        progress: bool = True, strategy=None, resume: bool = False,
        **config: Any) -> dict[str, Any]:
  """`Trainer(...).fit(...)` in one call, for scripts, notebooks and tests:

      history = fit(model, task, train, optimizer=AdamW(...), epochs=80,
                    validation_data=valid, select_best_by="pearson", run_dir="run/")

  `run_dir` receives resume checkpoints, the best checkpoint (`checkpointing.restore_model`
  reads it) and logs; further keyword arguments are TrainerConfig fields (eval_every,
  patience, deterministic, batch_size, ...). Returns the Trainer's history.
  """
  trainer_config = TrainerConfig(epochs=epochs, steps_per_epoch=steps_per_epoch,
                                 select_best_by=select_best_by, progress=progress, **config)
  trainer = Trainer(model, task, optimizer, strategy=strategy, config=trainer_config,
                    run_dir=run_dir, variables=variables)
  return trainer.fit(train_data, validation_data, resume=resume)


def evaluate(model, task: Union[Task, Mapping[str, Task]], data, *, strategy=None) -> dict[str, float]:
  """The task's loss and metrics of `model` over `data` (`Trainer.evaluate`, no training)."""
  return Trainer(model, task, None, strategy=strategy,
                 config=TrainerConfig(progress=False, tensorboard=False)).evaluate(data)
