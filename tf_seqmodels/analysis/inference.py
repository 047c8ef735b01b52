"""Models for DNA analyses: loading (run dir, checkpoint, SavedModel) and batched inference.

    model = load_analysis_model("runs/chrombpnet", without_bias=True)
    runner = BatchRunner(model, strategy="mirrored")
    outputs = runner.predict(one_hot)                 # one_hot [B, L, 4] ACGT -> {head: [B, ...]}

`AnalysisModel` is the one object the variant and contribution analyses see. It wraps a
contract model (`SequenceModel`: `encode_dna`, `position_axes`, gradients) or any loaded
object with `predict_on_batch(x) -> dict` (e.g. a SavedModel exported by tf-seqmodels or
TF-Hub), whose input is taken to be one-hot ACGT and whose rank >= 3 outputs ([B, bins,
tracks]) are positional unless `position_axes` says otherwise.

`BatchRunner` splits each batch over the replicas of a trainer strategy
(`training.strategy.make_strategy`: default, mirrored, multiworker, tpu) and gathers the
results in order.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Mapping, Optional, Union

import numpy as np
import tensorflow as tf

from tf_seqmodels.data.encoding import SequenceError


class AnalysisModel:
  """A model seen through the DNA-analysis interface.

  Attributes:
    model: the wrapped contract model, or None for a plain `predict_on_batch` object.
    sequence_length: the input length the model expects (None: any, or unknown).
    position_axes: {head: output axis along the sequence, or None}.
  """

  def __init__(self, model, position_axes: Optional[Mapping[str, Optional[int]]] = None,
               sequence_length: Optional[int] = None, name: str = "model"):
    self.name = name
    if hasattr(model, "encode_dna") and hasattr(model, "head_names"):
      if not getattr(model, "takes_dna_sequence", True):
        raise SequenceError(f"{type(model).__name__} does not read a DNA sequence: variant and "
                            f"contribution analyses need a takes_dna_sequence model")
      ensure_built(model)
      self.model = model
      self._predictor = None
      self.position_axes = dict(model.position_axes)
      self.sequence_length = sequence_length or model.sequence_length
    elif hasattr(model, "predict_on_batch"):
      self.model = None
      self._predictor = model
      self.position_axes = dict(position_axes or {})
      self.sequence_length = sequence_length or _saved_length(model)
    else:
      raise TypeError(f"{type(model).__name__} is neither a tf-seqmodels model nor an object "
                      f"with predict_on_batch(x) -> dict")
    if position_axes:
      self.position_axes.update(position_axes)

  @property
  def differentiable(self) -> bool:
    return self.model is not None

  def check_length(self, length: int) -> None:
    if self.model is not None:
      self.model.check_length(length)
    elif self.sequence_length is not None and length != self.sequence_length:
      raise SequenceError(f"{self.name} expects {self.sequence_length}-bp inputs, got {length}")

  def __call__(self, one_hot: tf.Tensor, is_reverse: bool = False) -> dict[str, tf.Tensor]:
    """Head outputs for one-hot ACGT [B, L, 4] (a differentiable TF function for contract
    models; graph-compatible, so it can run inside `strategy.run`)."""
    if self.model is not None:
      return self.model(self.model.encode_dna(one_hot, is_reverse), is_training=False)
    outputs = self._predictor.predict_on_batch(one_hot)
    if not isinstance(outputs, Mapping):
      outputs = {"output": outputs}
    return dict(outputs)

  def position_axis(self, head: str, output: np.ndarray) -> Optional[int]:
    if head in self.position_axes:
      return self.position_axes[head]
    return 1 if np.ndim(output) >= 3 else None

  def attention_weights(self, one_hot: tf.Tensor) -> tf.Tensor:
    if self.model is None:
      raise NotImplementedError(f"{self.name}: attention weights need a tf-seqmodels model "
                                f"(checkpoint or run directory), not a SavedModel")
    return self.model.attention_weights(self.model.encode_dna(one_hot))


def ensure_built(model, strategy=None) -> None:
  """Creates a contract model's variables under `strategy` (None: the current one).

  Replicator-style strategies cannot create variables inside a tf.function (the symbolic
  trace of `SequenceModel.build`), so there the model runs once eagerly on a zero batch, as
  the trainer does.
  """
  if model.__dict__.get("_built", False):
    return
  strategy = strategy or tf.distribute.get_strategy()
  if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
    model.ensure_built()
    return
  length = model.sequence_length
  if length is None:
    raise ValueError(f"{type(model).__name__} has no sequence_length to build it with")
  zeros = tf.zeros([1, length, model.input_channels])
  with strategy.scope():
    strategy.run(lambda x: model(x, is_training=False), args=(zeros,))
  model._built = True


def _saved_length(obj) -> Optional[int]:
  """The fixed input length of a restored `predict_on_batch` signature, if it has one."""
  fn = getattr(obj, "predict_on_batch", None)
  for concrete in getattr(fn, "concrete_functions", None) or ():
    spec = concrete.structured_input_signature[0]
    if spec and isinstance(spec[0], tf.TensorSpec) and spec[0].shape.rank == 3:
      return spec[0].shape[1]
  return None


# --- loading --------------------------------------------------------------------------------

def _is_saved_model(path: str) -> bool:
  return os.path.isdir(path) and os.path.exists(os.path.join(path, "saved_model.pb"))


def _run_model(run_dir: str):
  """(registry name, config) of the model a training run directory trained."""
  from tf_seqmodels.training.logging import RUN_METADATA
  from tf_seqmodels.training.run_config import TrainConfig, _model_config
  with open(os.path.join(run_dir, RUN_METADATA)) as f:
    metadata = json.load(f)
  train_config = metadata.get("train_config")
  if not train_config:
    raise ValueError(f"{run_dir}/{RUN_METADATA} has no train_config (was it written by "
                     f"`tf-seqmodels train`?); pass --model-name and --model-config instead")
  config = TrainConfig.from_dict(train_config, where=f"{run_dir}/{RUN_METADATA}")
  return config.model.name, _model_config(config.model)


def load_analysis_model(path: str, *, model_name: Optional[str] = None,
                        model_config: Optional[str] = None, which: str = "best",
                        without_bias: bool = False, strategy=None,
                        position_axes: Optional[Mapping[str, Optional[int]]] = None) -> AnalysisModel:
  """Loads a model for analysis.

  Args:
    path: a training run directory (run.json + checkpoints), a checkpoint (prefix or
      directory, with `model_name`), or a SavedModel directory.
    model_name, model_config: registry name and config file (.yaml/.json) for a bare
      checkpoint; the config defaults to the registered model's defaults.
    which: "best" or "latest" checkpoint of a run directory.
    without_bias: score the bias-corrected model (`without_bias()` of a bias-factorised
      model such as ChromBPNet).
    strategy: a tf.distribute strategy whose scope owns the variables (None: current).
    position_axes: overrides of the positional output axis per head.
  """
  path = os.fspath(path)
  if not os.path.exists(path) and not os.path.exists(path + ".index"):
    raise FileNotFoundError(f"model not found: {path}")
  strategy = strategy or tf.distribute.get_strategy()
  if _is_saved_model(path):
    if without_bias:
      raise ValueError("--without-bias needs a tf-seqmodels checkpoint or run directory (a "
                       "SavedModel has no separable bias model)")
    with strategy.scope():
      loaded = tf.saved_model.load(path)
    predictor = loaded if hasattr(loaded, "predict_on_batch") else getattr(loaded, "model", None)
    if predictor is None or not hasattr(predictor, "predict_on_batch"):
      raise ValueError(f"SavedModel {path} has neither predict_on_batch nor "
                       f".model.predict_on_batch")
    return AnalysisModel(predictor, position_axes, name=os.path.basename(path.rstrip("/")))
  from tf_seqmodels.models.registry import build_model, get_entry
  from tf_seqmodels.training.logging import RUN_METADATA
  is_run = os.path.isdir(path) and os.path.exists(os.path.join(path, RUN_METADATA))
  if is_run and model_name is None:
    model_name, config = _run_model(path)
  else:
    if model_name is None:
      raise ValueError(f"{path} is a checkpoint without run.json: name its model (--model-name)")
    entry = get_entry(model_name)
    config = entry.config_class.load(model_config) if model_config else entry.config_class()
  with strategy.scope():
    model = build_model(model_name, config)
    ensure_built(model, strategy)
    if is_run:
      from tf_seqmodels.training.checkpointing import restore_model
      restore_model(model, path, which)
    else:
      from tf_seqmodels.convert.weights import load_checkpoint
      load_checkpoint(model, path)
  if without_bias:
    if not hasattr(model, "without_bias"):
      raise ValueError(f"{model_name} has no bias model (--without-bias is for bias-factorised "
                       f"models such as chrombpnet)")
    model = model.without_bias()
  return AnalysisModel(model, position_axes, name=model_name)


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

  def run(self, fn: Callable, one_hot: np.ndarray):
    """`fn` on `one_hot` [B, L, 4] split over the replicas -> nest of numpy [B, ...]."""
    one_hot = np.asarray(one_hot, np.float32)
    batch = one_hot.shape[0]
    if self.replicas == 1:
      return tf.nest.map_structure(lambda t: t.numpy(), self._step(fn)(tf.constant(one_hot)))
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
    if model.model is None:  # a restored SavedModel function: already compiled, one device
      outputs = model(tf.constant(np.asarray(one_hot, np.float32)), is_reverse)
      return {k: np.asarray(v) for k, v in outputs.items()}
    fn = _cached(model, ("predict", is_reverse), lambda: lambda x: model(x, is_reverse))
    return self.run(fn, one_hot)


def _cached(owner, key, make):
  """One function object per (owner, key), so BatchRunner compiles it once."""
  cache = owner.__dict__.setdefault("_runner_fns", {})
  if key not in cache:
    cache[key] = make()
  return cache[key]
