"""Models for DNA analyses: loading (run dir, checkpoint, SavedModel) and batched inference.

    model = load_analysis_model("runs/chrombpnet", without_bias=True)
    runner = BatchRunner(model, strategy="mirrored")
    outputs = runner.predict(one_hot)                 # one_hot [B, L, 4] ACGT -> {head: [B, ...]}

`AnalysisModel` is the one object the variant and contribution analyses see. It wraps a
contract model (`SequenceModel`: `encode_dna`, `position_axes`, `head_kinds`, gradients) or a
SavedModel. A tf-seqmodels export is read through its metadata (position axes, head kinds,
strand pairs) and its `predict_dna_on_batch` / `predict_reverse_dna_on_batch` (one-hot ACGT
encoded as the model needs); another SavedModel's `predict_on_batch` must take one-hot ACGT
[B, L, 4], and its positional axes must be given (`position_axes`). Strand-paired tracks
(`track_permutations`) come from the run's data config, the export's metadata or a targets
table.

`BatchRunner` splits each batch over the replicas of a trainer strategy
(`training.strategy.make_strategy`: default, mirrored, multiworker, tpu) and gathers the
results in order.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Callable, Mapping, Optional, Union

import numpy as np
import tensorflow as tf

from tf_seqmodels.data.encoding import SequenceError
from tf_seqmodels.models.base import NoAttentionError


class AnalysisModel:
  """A model seen through the DNA-analysis interface.

  Attributes:
    model: the wrapped contract model, or None for a SavedModel.
    sequence_length: the input length the model expects (None: any, or unknown).
    position_axes: {head: output axis along the sequence, or None}.
    head_kinds: {head: one of models.base.HEAD_KINDS} (what the values mean).
    track_permutations: {head: strand-pair permutation [T] of its tracks} for stranded heads;
      reverse-complement copies swap the pairs back (`data.strands`).
  """

  def __init__(self, model, position_axes: Optional[Mapping[str, Optional[int]]] = None,
               sequence_length: Optional[int] = None, name: str = "model",
               track_permutations: Optional[Mapping[str, Any]] = None,
               head_kinds: Optional[Mapping[str, str]] = None):
    self.name = name
    self._reverse_predictor = None
    if hasattr(model, "encode_dna") and hasattr(model, "head_names"):
      if not getattr(model, "takes_dna_sequence", True):
        raise SequenceError(f"{type(model).__name__} does not read a DNA sequence: variant and "
                            f"contribution analyses need a takes_dna_sequence model")
      ensure_built(model)
      self.model = model
      self._predictor = None
      self.position_axes = dict(model.position_axes)
      self.head_kinds = dict(getattr(model, "head_kinds", None) or {})
      self.sequence_length = sequence_length or model.sequence_length
      self.strand_averaged_prediction = bool(getattr(model, "strand_averaged_prediction", False))
      self._metadata_perms = {}
      self._has_metadata = True
      self._fixed_length = None
    elif _predictor_of(model) is not None:
      self.model = None
      self._saved = model  # owns the variables that the restored functions read
      metadata = _saved_metadata(model)
      self._predictor, self._reverse_predictor = _dna_predictors(_predictor_of(model), metadata,
                                                                 name)
      self.position_axes = dict(metadata.get("position_axes") or {})
      self.head_kinds = dict(metadata.get("head_kinds") or {})
      self.strand_averaged_prediction = bool(metadata.get("strand_averaged_prediction", False))
      self._metadata_perms = dict(metadata.get("track_permutations") or {})
      self._has_metadata = bool(metadata)
      # The signature's length is binding; a dynamic-length export takes the length it was
      # trained on (metadata) as its default window.
      self._fixed_length = _saved_length(self._predictor)
      self.sequence_length = (sequence_length or self._fixed_length
                              or metadata.get("sequence_length"))
    else:
      raise TypeError(f"{type(model).__name__} is neither a tf-seqmodels model nor an object "
                      f"with predict_on_batch(x) -> dict")
    if position_axes:
      self.position_axes.update(position_axes)
    if head_kinds:
      self.head_kinds.update(head_kinds)
    from tf_seqmodels.data.strands import check_track_permutation
    perms = {**self._metadata_perms, **dict(track_permutations or {})}
    self.track_permutations = {h: check_track_permutation(p, f"track permutation of {h!r}")
                               for h, p in perms.items()}

  @property
  def differentiable(self) -> bool:
    return self.model is not None

  @functools.cached_property
  def strand_blind(self) -> bool:
    """Whether a sequence's input is the same whichever strand it is said to come from (no
    strand-flag channel, unlike DREAM's): forward and reverse-complement copies can then share
    one forward pass."""
    if self.model is None:
      return self._reverse_predictor is self._predictor
    from tf_seqmodels.data.strands import strand_flagged
    return not strand_flagged(self.model)

  def check_length(self, length: int) -> None:
    if self.model is not None:
      self.model.check_length(length)
    elif self._fixed_length is not None and length != self._fixed_length:
      raise SequenceError(f"{self.name} expects {self._fixed_length}-bp inputs, got {length}")

  def __call__(self, one_hot: tf.Tensor, is_reverse: bool = False) -> dict[str, tf.Tensor]:
    """Head outputs for one-hot ACGT [B, L, 4] (a differentiable TF function for contract
    models; graph-compatible, so it can run inside `strategy.run`)."""
    if self.model is not None:
      return self.model(self.model.encode_dna(one_hot, is_reverse), is_training=False)
    predictor = self._reverse_predictor if is_reverse else self._predictor
    outputs = predictor(one_hot)
    if not isinstance(outputs, Mapping):
      outputs = {"output": outputs}
    return dict(outputs)

  def position_axis(self, head: str, output: Any = None) -> Optional[int]:
    """The positional output axis of `head` (None: one value per sequence)."""
    if head in self.position_axes:
      return self.position_axes[head]
    if self.model is None and not self._has_metadata:
      raise ValueError(f"{self.name}: a SavedModel without tf-seqmodels metadata does not say "
                       f"which output axis of head {head!r} runs along the sequence; give "
                       f"position_axes (CLI: --position-axes {head}:AXIS or {head}:none)")
    return None

  def head_kind(self, head: str, output: Any = None) -> str:
    """What `head`'s values mean (default: "tracks" if positional, else "scalar")."""
    if head in self.head_kinds:
      return self.head_kinds[head]
    return "tracks" if self.position_axis(head, output) is not None else "scalar"

  def attention_weights(self, one_hot: tf.Tensor) -> tf.Tensor:
    if self.model is None:
      raise NoAttentionError(f"{self.name}: attention weights need a tf-seqmodels model "
                             f"(checkpoint or run directory), not a SavedModel")
    return self.model.attention_weights(self.model.encode_dna(one_hot))


def _is_predictor(obj) -> bool:
  return hasattr(obj, "predict_dna_on_batch") or hasattr(obj, "predict_on_batch")


def _predictor_of(obj):
  """The object holding the predict functions: a tf-seqmodels export's `.model`, else `obj`."""
  inner = getattr(obj, "model", None)
  if inner is not None and _is_predictor(inner):
    return inner
  return obj if _is_predictor(obj) else None


def _saved_metadata(obj) -> dict:
  """The metadata of a tf-seqmodels export (its root's get_metadata; {} for others)."""
  fn = getattr(obj, "get_metadata", None)
  return json.loads(fn().numpy().decode()) if fn is not None else {}


def _dna_predictors(obj, metadata: Mapping[str, Any], name: str):
  """(forward, reverse-complement) functions of one-hot ACGT [B, L, 4] -> outputs."""
  if hasattr(obj, "predict_dna_on_batch"):
    reverse = getattr(obj, "predict_reverse_dna_on_batch", None) or obj.predict_dna_on_batch
    return obj.predict_dna_on_batch, reverse
  if metadata and not metadata.get("takes_dna_sequence", True):
    raise SequenceError(f"{name}: the exported {metadata.get('model_class', 'model')} does not "
                        f"read a DNA sequence; variant and contribution analyses need one that does")
  channels = _saved_channels(obj.predict_on_batch)
  if channels is not None and channels != 4:
    raise SequenceError(f"{name}: its predict_on_batch takes {channels} input channels, not "
                        f"one-hot ACGT, and it has no predict_dna_on_batch to encode DNA (export "
                        f"it with a current tf-seqmodels, or analyse its checkpoint)")
  return obj.predict_on_batch, obj.predict_on_batch


def ensure_built(model, strategy=None) -> None:
  """Creates a contract model's variables under `strategy` (see
  `training.checkpointing.ensure_built`)."""
  from tf_seqmodels.training.checkpointing import ensure_built as build
  build(model, strategy)


def _input_specs(fn):
  for concrete in getattr(fn, "concrete_functions", None) or ():
    spec = concrete.structured_input_signature[0]
    if spec and isinstance(spec[0], tf.TensorSpec) and spec[0].shape.rank == 3:
      yield spec[0]


def _saved_length(fn) -> Optional[int]:
  """The fixed input length of a restored signature, if it has one."""
  return next((spec.shape[1] for spec in _input_specs(fn)), None)


def _saved_channels(fn) -> Optional[int]:
  return next((spec.shape[2] for spec in _input_specs(fn)), None)


# --- loading --------------------------------------------------------------------------------

def load_analysis_model(path: str, *, model_name: Optional[str] = None,
                        model_config: Optional[str] = None, which: str = "best",
                        without_bias: bool = False, strategy=None,
                        position_axes: Optional[Mapping[str, Optional[int]]] = None,
                        targets: Optional[str] = None, source=None) -> AnalysisModel:
  """Loads a model for analysis through the one model loader (`model_source.load_model`).

  Args:
    path: what `--model` names: a training run directory, a checkpoint (prefix or directory,
      with `model_config` and/or `model_name`), a registered model name, or a SavedModel
      directory (a tf-seqmodels export: its metadata gives position axes, head kinds and
      strand pairs).
    model_name, model_config: registry name and config file (training or model config) of a
      bare checkpoint.
    which: "best" or "latest" checkpoint of a run directory (best falls back to latest).
    without_bias: score the bias-corrected model (`without_bias()` of a bias-factorised
      model such as ChromBPNet).
    strategy: a tf.distribute strategy whose scope owns the variables (None: current).
    position_axes: overrides of the positional output axis per head.
    targets: a Basenji targets table whose strand pairs apply to the model's track head
      (default: the run's own data config, or the export's metadata).
    source: a `model_source.ModelSource` (all its flags) instead of path/model_name/...
  """
  from tf_seqmodels.data.strands import (check_track_permutation, data_track_permutations,
                                         targets_permutation)
  from tf_seqmodels.model_source import (RUN, SAVED_MODEL, ModelSource, ModelSourceError, load_model,
                                         recorded_file)
  if source is None:
    source = ModelSource(os.fspath(path), config=model_config, model_name=model_name,
                         which=which)
  if without_bias and source.kind == SAVED_MODEL:
    raise ModelSourceError("--without-bias needs a tf-seqmodels checkpoint or run directory (a "
                           "SavedModel has no separable bias model)")
  loaded = load_model(source, strategy or tf.distribute.get_strategy())
  if loaded.kind == SAVED_MODEL:
    if _predictor_of(loaded.model) is None:
      raise ModelSourceError(f"SavedModel {loaded.path} has neither predict_on_batch nor "
                             f".model.predict_on_batch")
    model = AnalysisModel(loaded.model, position_axes, name=loaded.name)
    model.track_permutations.update(_targets_perms(model, targets, targets_permutation))
    return model
  model, train_config = loaded.model, loaded.train_config
  perms = {}
  if train_config is not None and not targets:  # --targets overrides what the run recorded
    data = train_config.data
    table = dict(data.options).get("targets") if data.type == "tracks" else None
    if isinstance(table, str):
      recorded_file(table, "targets table", "--targets",
                    source.model if loaded.kind == RUN else None)
    perms = data_track_permutations(data)
  if without_bias:
    if not hasattr(model, "without_bias"):
      raise ModelSourceError(f"{loaded.name} has no bias model (--without-bias is for "
                             f"bias-factorised models such as chrombpnet)")
    model = model.without_bias()
  analysis = AnalysisModel(model, position_axes, name=loaded.name)
  perms.update(_targets_perms(analysis, targets, targets_permutation))
  analysis.track_permutations.update(
      {h: check_track_permutation(p, f"strand pairs of {h!r}") for h, p in perms.items()
       if h in model.head_names})
  return analysis


def _targets_perms(model: AnalysisModel, targets: Optional[str], read) -> dict:
  """{track head: permutation} of a targets table given on the command line."""
  if not targets:
    return {}
  heads = [h for h, kind in model.head_kinds.items() if kind == "tracks"]
  if len(heads) != 1:
    raise ValueError(f"a targets table needs exactly one track head to apply to; the model "
                     f"has {heads or 'none'}")
  from tf_seqmodels.data.strands import check_track_permutation
  return {heads[0]: check_track_permutation(read(targets), f"strand pairs of {targets}")}


# --- distributed batches --------------------------------------------------------------------

class BatchRunner:
  """Runs a function of a one-hot batch on every replica of a strategy, results in order.

  `fn(one_hot [b, L, 4]) -> nest of tensors [b, ...]` runs once per replica on a contiguous
  slice of the batch (the batch is padded to a multiple of the replica count and the padding
  dropped from the results), inside one `tf.function` per function.
  """

  def __init__(self, strategy: Union[None, str, Any] = None):
    from tf_seqmodels.training.strategy import StrategyInfo, describe_strategy, make_strategy
    if isinstance(strategy, StrategyInfo):
      info = strategy
    elif strategy is None or isinstance(strategy, tf.distribute.Strategy):
      info = describe_strategy(strategy)
    else:
      info = make_strategy(strategy)
    self.info = info
    self.strategy = info.strategy
    self.replicas = info.num_replicas

  def _step(self, fn: Callable) -> Callable:
    # Compiled steps live on the function object, per strategy, so a new runner over the
    # same strategy (one per call of an analysis) reuses the traced graph.
    compiled = fn.__dict__.setdefault("_compiled_steps", {})
    key = id(self.strategy)
    if key not in compiled:
      strategy = self.strategy
      def step(shards):
        return strategy.run(fn, args=(shards,))
      compiled[key] = tf.function(step, reduce_retracing=True)
    return compiled[key]

  def run(self, fn: Callable, one_hot: np.ndarray, jit_compile: bool = False):
    """`fn` on `one_hot` [B, L, 4] split over the replicas -> nest of numpy [B, ...].

    On one replica `fn` runs as a `CompiledFunction` (XLA with `jit_compile`; batches
    bucketed); over several replicas as one graph per strategy (no XLA across replicas).
    """
    one_hot = np.asarray(one_hot, np.float32)
    batch = one_hot.shape[0]
    if self.replicas == 1:
      return compiled_function(fn, jit_compile)(one_hot)
    per_replica = -(-batch // self.replicas)
    padded = np.zeros((per_replica * self.replicas,) + one_hot.shape[1:], np.float32)
    padded[:batch] = one_hot
    shards = self.strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(padded[ctx.replica_id_in_sync_group * per_replica:
                                       (ctx.replica_id_in_sync_group + 1) * per_replica]))
    results = self._step(fn)(shards)
    def gather(value):
      parts = [t.numpy() for t in self.strategy.experimental_local_results(value)]
      return np.concatenate(parts)[:batch]
    return tf.nest.map_structure(gather, results)

  def predict(self, model: AnalysisModel, one_hot: np.ndarray,
              is_reverse: bool = False) -> dict[str, np.ndarray]:
    """{head: [B, ...]} predictions of `model` for one-hot ACGT `one_hot` [B, L, 4]."""
    if model.model is None:  # a restored SavedModel function: compiled at export, one device
      outputs = model(tf.constant(np.asarray(one_hot, np.float32)), is_reverse)
      return {k: np.asarray(v) for k, v in outputs.items()}
    fn = _cached(model, ("predict", is_reverse), lambda: lambda x: model(x, is_reverse))
    return self.forward(fn, one_hot, model)

  def forward(self, fn: Callable, one_hot: np.ndarray, model=None):
    """`run` for a forward pass (no gradients) of `model`: XLA where `use_xla(model)`."""
    return self.run(fn, one_hot, jit_compile=use_xla(model))


def _cached(owner, key, make):
  """One function object per (owner, key), so BatchRunner compiles it once."""
  cache = owner.__dict__.setdefault("_runner_fns", {})
  if key not in cache:
    cache[key] = make()
  return cache[key]


# --- compiled inference ---------------------------------------------------------------------
# Every forward pass of the package (predict, score-variants, contributions' predictions,
# evaluate) runs through one CompiledFunction. XLA fuses the elementwise work around each
# convolution (BatchNorm, GELU, softmax pooling) that graph mode runs as separate passes over
# memory; for Enformer on a CPU that is ~3x fewer CPU-seconds per sequence (README,
# "Performance"). XLA compiles once per input shape, so batches are zero-padded to a
# power-of-two bucket: a run compiles once per bucket it meets (its batch size and, at most,
# the bucket of its last partial batch), not once per batch.

XLA_ENV = "TF_SEQMODELS_XLA"


def xla_default() -> bool:
  """Whether forward passes compile with XLA: yes, unless TF_SEQMODELS_XLA is 0/false/off."""
  return os.environ.get(XLA_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def use_xla(model=None) -> bool:
  """Whether `model`'s forward passes compile with XLA: `xla_default()`, unless the model
  (or the contract model inside an AnalysisModel) says `inference_xla = False` because
  graph mode measured faster for it."""
  inner = getattr(model, "model", None) if isinstance(model, AnalysisModel) else model
  return xla_default() and bool(getattr(inner, "inference_xla", True))


def batch_bucket(batch: int) -> int:
  """The padded batch size of a batch of `batch` examples: the next power of two."""
  if batch < 1:
    raise ValueError(f"a batch needs at least one example, got {batch}")
  return 1 << (batch - 1).bit_length()


def _is_xla_failure(error: Exception) -> bool:
  message = str(error)
  return "XLA" in message or "compil" in message.lower()


class CompiledFunction:
  """`fn(inputs) -> nest of tensors [B, ...]`, compiled once per bucketed input shape.

  Call it with numpy arrays or tensors (a nest of them with one batch size, e.g. a dict for
  multi-input models); the batch is zero-padded to `batch_bucket(B)` and the padding dropped
  from the numpy results. Examples must not interact (inference mode: BatchNorm uses its
  moving statistics), which holds for every model of the package.

  jit_compile: XLA (default: `xla_default()`). If XLA cannot compile `fn` (an op without an
    XLA kernel), the function falls back to graph mode once, with a warning.
  """

  def __init__(self, fn: Callable, jit_compile: Optional[bool] = None):
    self._fn = fn
    self.jit_compile = xla_default() if jit_compile is None else bool(jit_compile)
    self._compiled = self._make()
    self.shapes: list = []  # the bucketed input shapes met so far: one compile each

  def _make(self):
    # Static shapes (no reduce_retracing): each bucket gets its own trace, every dimension
    # known to the model's shape logic and to XLA.
    return tf.function(self._fn, jit_compile=self.jit_compile)

  @property
  def compiles(self) -> int:
    """How many input shapes were traced (= XLA compilations)."""
    return self._compiled.experimental_get_tracing_count()

  def __call__(self, inputs):
    flat = [t.numpy() if tf.is_tensor(t) else np.asarray(t) for t in tf.nest.flatten(inputs)]
    batch = flat[0].shape[0]
    bucket = batch_bucket(batch)
    if bucket != batch:
      flat = [np.concatenate([a, np.zeros((bucket - batch,) + a.shape[1:], a.dtype)])
              for a in flat]
    tensors = tf.nest.pack_sequence_as(inputs, [tf.constant(a) for a in flat])
    shape = tuple(tuple(a.shape) for a in flat)
    try:
      outputs = self._compiled(tensors)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
      if not self.jit_compile or not _is_xla_failure(error):
        raise
      import logging
      logging.getLogger(__name__).warning(
          "XLA cannot compile this model (%s); running it in graph mode",
          str(error).strip().splitlines()[0][:200])
      self.jit_compile = False
      self._compiled = self._make()
      outputs = self._compiled(tensors)
    if shape not in self.shapes:
      self.shapes.append(shape)
    return tf.nest.map_structure(lambda t: t.numpy()[:batch], outputs)


def compiled_function(fn: Callable, jit_compile: Optional[bool] = None) -> CompiledFunction:
  """The CompiledFunction of `fn`, cached on the function object (one per XLA setting), so
  repeated analyses with the same function reuse its compiled shapes."""
  jit = xla_default() if jit_compile is None else bool(jit_compile)
  cache = fn.__dict__.setdefault("_compiled_functions", {})
  if jit not in cache:
    cache[jit] = CompiledFunction(fn, jit)
  return cache[jit]


def compiled_predictor(model, jit_compile: Optional[bool] = None) -> CompiledFunction:
  """The cached inference function of a contract model: inputs [B, L, C] (or its dict of
  inputs) -> {head: numpy [B, ...]}, at is_training=False; XLA per `use_xla(model)` unless
  `jit_compile` says otherwise."""
  fn = _cached(model, ("inference",), lambda: lambda x: dict(model(x, is_training=False)))
  return compiled_function(fn, use_xla(model) if jit_compile is None else jit_compile)
