"""TF-Hub export: a self-contained SavedModel for any model honouring the model contract.

    from tf_seqmodels.export.hub import HubExportConfig, export_hub
    result = export_hub(model, "exports/dream_cnn", HubExportConfig(model_name="dream_cnn"))

writes (atomically: everything appears at once or not at all)

    exports/dream_cnn/
      savedmodel/                    hub.load(...) / tf.saved_model.load(...); no tf-seqmodels
                                     or Sonnet needed to use it
        saved_model.pb, variables/, assets/{metadata.json, config.json}
      model.tar.gz                   the same SavedModel, members at the archive root (the
                                     TF-Hub "compressed" download format; a Kaggle Models upload)
      model-metadata.json            Kaggle Models model card (owner, slug, title, licence)
      model-instance-metadata.json   Kaggle Models TensorFlow2 variation (training data, usage)
      export_report.json             parity check results, the wrongly shaped inputs refused

The loaded object (`m = hub.load(".../savedmodel")`):

    m.model.predict_on_batch(x) -> {head: [B, ...]}   x: [B, L, C] float32, or for multi-input
                                                      models a dict keyed like input_spec()
    m.model.embed(x)            -> trunk embedding
    m.model.predict_dna_on_batch(one_hot_acgt)        DNA models: [B, L, 4] ACGT one-hot,
                                                      encoded as the model needs (encode_dna)
    m.model.predict_reverse_dna_on_batch(rc_acgt)     the same for a reverse-complemented copy
                                                      (strand flag set for models that have one)
    m.signatures["serving_default"](x=x)              one named argument per input; also the
                                                      attribute m.serving_default(x) (x: a dict
                                                      for multi-input models), which Keras 3
                                                      TFSMLayer(path, "serving_default") calls
    m.signatures["predict_dna"](dna=one_hot_acgt)     DNA models (and predict_reverse_dna where
                                                      the model has a strand flag): one-hot
                                                      A, C, G, T whatever the model's encoding
    m(x, training=False)        -> {head: ...}        plus m.variables / m.trainable_variables /
                                                      m.regularization_losses: the Reusable
                                                      SavedModel API that hub.KerasLayer
                                                      (tf_keras) fine-tunes
    m.get_metadata()            -> JSON string (config, heads, tracks, version, training data,
                                   position_axes, head_kinds, track_permutations, the channel
                                   order of every input, accepted lengths, signatures, citation)
    m.metadata_asset / m.config_asset                 asset paths (valid after moving the folder)

Batch is dynamic; the length is dynamic when the model allows it (`dynamic_length`), else
fixed to `sequence_length`. A model whose `published_input_length` is set (Enformer: twice
its training length, the published 393,216 bp) also accepts that length and centre-crops it
to `sequence_length` in the graph, as the published TF-Hub Enformer does.

Every exported function checks its inputs in the graph, because signatures (TF Serving,
TFSMLayer, `signatures[...]`) run without checking their declared shapes: rank, channels and
an accepted length (`accepted_lengths`: the fixed length, or Enformer's multiples of 128 bp
with at least target_length bins), or for multi-input models every input's shape and one batch
size. A wrong input fails with an InvalidArgumentError naming the model, the input, what it
must be and what it was; each export calls its signatures with such inputs and fails unless
they are refused.

Parity check (built into the export, never skipped): the live model and the reloaded
SavedModel predict the same seeded inputs (the contract's `example_inputs`: one-hot DNA for
DNA models, valid masks and pCRE slots for Chromoformer; or `inputs=` given by the caller)
through predict_on_batch, embed, serving_default, `__call__` and predict_dna_on_batch (one-hot
ACGT vs the live model's encode_dna); every head and the embedding must
satisfy |reloaded - live| <= atol + rtol * |live| (defaults atol = 1e-5, rtol = 1e-5: both
run the same float32 graph, so real differences are ~1e-7). Otherwise `ParityError` and
nothing is written.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from typing import Any, Mapping, Optional

import numpy as np
import tensorflow as tf

from tf_seqmodels.blocks.core import centre_crop
from tf_seqmodels.export.staging import make_tarball, staged_directory
from tf_seqmodels.config import Config, ConfigError, atomic_write_text
from tf_seqmodels.data.strands import strand_flagged

SAVEDMODEL_DIR = "savedmodel"
TARBALL_NAME = "model.tar.gz"
METADATA_ASSET = "metadata.json"
CONFIG_ASSET = "config.json"
METADATA_FORMAT = 1


class ExportError(RuntimeError):
  """An export could not be completed (nothing was written to the destination)."""


class ParityError(ExportError):
  """The exported model's predictions differ from the live model's beyond the tolerance."""


@dataclasses.dataclass(frozen=True)
class HubExportConfig(Config):
  """What a TF-Hub export writes besides the weights.

  Attributes:
    model_name: registry name recorded in the metadata (default: the model's registry name).
    description: model card text (Kaggle `description`).
    training_data: what the weights were trained on (metadata and Kaggle `trainingData`).
    track_names: {head: [track name per output channel]} recorded in the metadata.
    track_permutations: {head: strand-pair permutation [T] of its tracks} (index of each
      track's opposite-strand pair, itself if unstranded; `data.tracks.strand_permutation`),
      recorded so that analyses of the export average reverse complements correctly.
    owner, slug, title, license: Kaggle Models card fields (slug default: the model name).
    parity_batch_size: examples in the parity check.
    parity_length: input length of the parity check (default: the model's sequence_length).
    atol, rtol: parity tolerance, |reloaded - live| <= atol + rtol * |live|.
    tarball: also write model.tar.gz (TF-Hub compressed / Kaggle layout).
    overwrite: replace an existing destination (atomically).
    seed: seeds the parity inputs.
  """

  model_name: Optional[str] = None
  description: str = ""
  training_data: str = ""
  track_names: dict[str, list[str]] = dataclasses.field(default_factory=dict)
  track_permutations: dict[str, list[int]] = dataclasses.field(default_factory=dict)
  owner: str = "tf-seqmodels"
  slug: Optional[str] = None
  title: Optional[str] = None
  license: str = "Apache 2.0"
  parity_batch_size: int = 2
  parity_length: Optional[int] = None
  atol: float = 1e-5
  rtol: float = 1e-5
  tarball: bool = True
  overwrite: bool = False
  seed: int = 0

  def validate(self) -> None:
    if self.parity_batch_size < 1:
      raise ConfigError(f"parity_batch_size must be >= 1, got {self.parity_batch_size}")
    if self.atol < 0 or self.rtol < 0:
      raise ConfigError("atol and rtol must be >= 0")
    if self.parity_length is not None and self.parity_length < 1:
      raise ConfigError(f"parity_length must be >= 1, got {self.parity_length}")
    from tf_seqmodels.data.strands import check_track_permutation
    for head, perm in self.track_permutations.items():
      check_track_permutation(perm, f"track_permutations[{head!r}]")


@dataclasses.dataclass
class HubExport:
  """Paths written by `export_hub`, the parity results ({check: {head: max |diff|}}) and the
  wrongly shaped inputs the signatures refused ({case: error})."""

  directory: str
  savedmodel: str
  tarball: Optional[str]
  parity: dict[str, dict[str, float]]
  refusals: dict[str, str] = dataclasses.field(default_factory=dict)


# --- serving specs and example inputs --------------------------------------------------------

def _is_multi_input(spec) -> bool:
  return not isinstance(spec, tf.TensorSpec)


def serving_spec(model):
  """The exported functions' input spec: batch dynamic, named inputs ("x", or the dict keys)."""
  spec = model.input_spec(batch_size=None)
  if _is_multi_input(spec):
    if not isinstance(spec, Mapping) or not spec:
      raise ExportError(f"{type(model).__name__}.input_spec() must return a TensorSpec or a "
                        f"non-empty dict of TensorSpecs, got {spec!r}")
    return {key: tf.TensorSpec([None, *s.shape[1:]], s.dtype, name=key) for key, s in spec.items()}
  shape = [None, *spec.shape[1:]]
  if getattr(model, "published_input_length", None):
    shape[1] = None  # both the training length and the published (cropped) length
  return tf.TensorSpec(shape, spec.dtype, name="x")


def _parity_length(model, config: HubExportConfig) -> Optional[int]:
  return config.parity_length or getattr(model, "sequence_length", None)


def example_inputs(model, batch_size: int, length: Optional[int] = None, seed: int = 0):
  """Seeded valid inputs of `model` (numpy [B, L, C] or {key: array}): the contract's
  `example_inputs` (one-hot DNA through encode_dna for DNA models; the model's own valid
  inputs for multi-input models such as Chromoformer). Unknown dimensions other than the
  batch take `length` (default: the model's sequence_length)."""
  from tf_seqmodels.data.encoding import SequenceError
  from tf_seqmodels.models.base import SequenceModel
  # Models that honour the contract without subclassing SequenceModel get its default.
  method = getattr(model, "example_inputs", None) or (
      lambda *args, **kwargs: SequenceModel.example_inputs(model, *args, **kwargs))
  try:
    return method(batch_size, seed=seed, length=length)
  except SequenceError as e:
    raise ExportError(f"{e} (pass parity_length, or inputs)") from e


def to_tensors(model, inputs):
  """`inputs` (numpy or tensors, a dict for multi-input models) as tensors of the spec dtypes."""
  spec = model.input_spec()
  if not _is_multi_input(spec):
    return tf.convert_to_tensor(np.asarray(inputs), spec.dtype)
  if not isinstance(inputs, Mapping) or set(inputs) != set(spec):
    found = sorted(inputs) if isinstance(inputs, Mapping) else type(inputs).__name__
    raise KeyError(f"expected a dict with keys {sorted(spec)}, got {found}")
  return {key: tf.convert_to_tensor(np.asarray(inputs[key]), spec[key].dtype) for key in spec}


# --- what the exported functions accept ------------------------------------------------------

DNA_CHANNELS = ("A", "C", "G", "T")


def model_label(model) -> str:
  return getattr(model, "registry_name", None) or type(model).__name__


def input_channel_names(model) -> dict[str, Optional[list[str]]]:
  """{served input name: its channels (last axis), in order} for the metadata and the error
  messages: a DNA model's bases in its own order (read from `encode_dna`, e.g. DREAM's
  A, G, C, T), `is_reverse` for the flag that `encode_dna(..., is_reverse=True)` sets, and
  `channel_<i>` for other channels; None for the inputs of multi-input models (their last
  axis is described by the model's docs), and "dna" (one-hot A, C, G, T) for the
  predict_dna entry points."""
  spec = serving_spec(model)
  if _is_multi_input(spec):
    return {key: None for key in spec}
  channels = int(spec.shape[-1])
  names = [f"channel_{c}" for c in range(channels)]
  encode = getattr(model, "encode_dna", None)
  if model.takes_dna_sequence and encode is not None:
    from tf_seqmodels.data.encoding import SequenceError
    try:
      bases = tf.eye(4, dtype=tf.float32)[None]
      forward = np.asarray(encode(bases), np.float32)[0]  # row b: the input vector of base b
      reverse = np.asarray(encode(bases, is_reverse=True), np.float32)[0]
    except SequenceError:
      forward = None  # no DNA encoding for these channels: leave them unnamed
    if forward is not None and forward.shape == (4, channels):
      for c in range(channels):
        column = forward[:, c]
        if sorted(column.tolist()) == [0.0, 0.0, 0.0, 1.0]:
          names[c] = DNA_CHANNELS[int(np.argmax(column))]
        elif not column.any() and np.all(reverse[:, c] == 1.0):
          names[c] = "is_reverse"
  out = {"x": names}
  if model.takes_dna_sequence:
    out["dna"] = list(DNA_CHANNELS)
  return out


def accepted_lengths(model) -> Optional[dict]:
  """The input lengths every exported function accepts (single-tensor models; None for
  multi-input models, whose shapes are all fixed): {"exactly": [...]} and, for dynamic
  lengths, {"at_least": n, "multiple_of": m}; a length is accepted if it is in "exactly" or
  meets both of the others. Recorded in the metadata and checked in the graph."""
  if _is_multi_input(serving_spec(model)):
    return None
  length = getattr(model, "sequence_length", None)
  published = getattr(model, "published_input_length", None)
  exactly = sorted({int(n) for n in (length, published) if n})
  if not getattr(model, "dynamic_length", False) and length:
    return {"exactly": exactly}
  at_least = int(getattr(model, "min_length", 1))
  multiple = int(getattr(model, "length_multiple", 1))
  return {"exactly": [n for n in exactly if n < at_least or n % multiple],
          "at_least": at_least, "multiple_of": multiple}


def _describe_lengths(rule: dict) -> str:
  parts = []
  if "at_least" in rule:
    parts.append(f"a multiple of {rule['multiple_of']} and at least {rule['at_least']}"
                 if rule["multiple_of"] > 1 else f"at least {rule['at_least']}")
  if rule["exactly"]:
    parts.append(" or ".join(str(n) for n in rule["exactly"]))
  return " or ".join(parts)


def _length_ok(length: tf.Tensor, rule: dict) -> tf.Tensor:
  ok = tf.constant(False)
  for n in rule["exactly"]:
    ok = tf.logical_or(ok, tf.equal(length, n))
  if "at_least" in rule:
    ok = tf.logical_or(ok, tf.logical_and(tf.greater_equal(length, rule["at_least"]),
                                          tf.equal(length % rule["multiple_of"], 0)))
  return ok


def _padded_shape(x: tf.Tensor, rank: int) -> tuple[tf.Tensor, tf.Tensor]:
  """(rank, shape padded with -1 to `rank` entries): the shape checks below index it safely
  whatever the caller passed (signatures run without checking their declared shapes)."""
  shape = tf.shape(x)
  return tf.size(shape), tf.concat([shape, tf.fill([rank], -1)], 0)[:rank]


def _after(checks: list, value):
  with tf.control_dependencies(checks):
    return tf.nest.map_structure(tf.identity, value)


def sequence_guard(model, what: str, channel_names: list[str]):
  """inputs -> inputs, failing in the graph (InvalidArgumentError naming the model, the
  input, and the expected and actual length or channels) unless `inputs` is [batch, length,
  channels] with an accepted length. SavedModel signatures (TF Serving, TFSMLayer,
  `signatures[...]`) run without checking their declared shapes, so the checks live in the
  graph of every exported function."""
  rule = accepted_lengths(model)
  label = model_label(model)
  channels = len(channel_names)
  expects = f"{label}: {what} must be [batch, length, {channels}]"  # no quotes: TF escapes them

  def guard(x):
    rank, shape = _padded_shape(x, 3)
    checks = [
        tf.debugging.Assert(tf.equal(rank, 3), [f"{expects}; its rank is", rank]),
        tf.debugging.Assert(tf.equal(shape[2], channels), [
            f"{expects} with channels ({', '.join(channel_names)}); its channels:", shape[2]]),
        tf.debugging.Assert(_length_ok(shape[1], rule), [
            f"{expects} with length {_describe_lengths(rule)}; its length:", shape[1]]),
    ]
    return _after(checks, x)

  return guard


def inputs_guard(model, spec: Mapping[str, tf.TensorSpec]):
  """The same for multi-input models: every input's rank and non-batch dimensions, and one
  batch size for all of them."""
  label = model_label(model)

  def guard(inputs):
    checks, first = [], None
    for key, s in spec.items():
      want = s.shape.as_list()
      rank, shape = _padded_shape(inputs[key], len(want))
      dims = ", ".join(["batch"] + [str(d) for d in want[1:]])
      ok = tf.equal(rank, len(want))
      for axis, dim in enumerate(want[1:], 1):
        if dim is not None:
          ok = tf.logical_and(ok, tf.equal(shape[axis], dim))
      checks.append(tf.debugging.Assert(ok, [f"{label}: input {key} must be [{dims}]; its "
                                             f"shape:", tf.shape(inputs[key])]))
      if first is None:
        first = (key, shape[0])
      else:
        checks.append(tf.debugging.Assert(tf.equal(shape[0], first[1]), [
            f"{label}: inputs disagree on the batch size: {key} has", shape[0],
            f"{first[0]} has", first[1]]))
    return _after(checks, dict(inputs))

  return guard


# --- the serving module ----------------------------------------------------------------------

def _input_adapter(model):
  """Maps served inputs onto the model's: centre-crops the published input length."""
  published = getattr(model, "published_input_length", None)
  target = getattr(model, "sequence_length", None)
  if not published or not target or published == target:
    return lambda x: x

  def adapt(x):
    return tf.cond(tf.equal(tf.shape(x)[1], published),
                   lambda: centre_crop(x, target), lambda: x)

  return adapt


def build_serving_module(model, metadata_path: str, config_path: str) -> tf.train.Checkpoint:
  """The object tree saved as the SavedModel (see the module docstring for its API)."""
  from tf_seqmodels.analysis.inference import use_xla
  spec = serving_spec(model)
  channels = input_channel_names(model)
  check = (inputs_guard(model, spec) if _is_multi_input(spec)
           else sequence_guard(model, "input x", channels["x"]))
  adapt = _input_adapter(model)
  xla = use_xla(model)

  # The model's inference is XLA-compiled where it gains from it (analysis.inference.use_xla),
  # once per input shape when first called: the package's fast path travels with the
  # SavedModel to hub.load and Kipoi users. The input adapter stays outside the compiled
  # function (its length-dependent tf.cond would give XLA a data-dependent shape), and
  # `__call__` (fine-tuning, training=True) stays in graph mode.
  def compiled(fn):
    return tf.function(fn, jit_compile=True) if xla else fn

  forward = compiled(lambda inputs: dict(model(inputs, is_training=False)))
  forward_embed = compiled(lambda inputs: model.embed(inputs, is_training=False))

  def predict(inputs):
    return forward(adapt(check(inputs)))

  def embed(inputs):
    return forward_embed(adapt(check(inputs)))

  # tf.train.Checkpoint is a public AutoTrackable that, unlike tf.Module, lets us set
  # `variables`, `trainable_variables` and `__call__` (the Reusable SavedModel API).
  wrapper = tf.train.Checkpoint()
  wrapper.network = model  # tracks every variable
  wrapper.predict_on_batch = tf.function(predict, input_signature=[spec])
  wrapper.embed = tf.function(embed, input_signature=[spec])
  if model.takes_dna_sequence and not _is_multi_input(spec):
    # One-hot ACGT in, whatever the model's own encoding (channel order, strand flags):
    # what Kipoi's DNA dataloaders produce.
    encode = getattr(model, "encode_dna", None) or (lambda dna, is_reverse=False: dna)
    check_dna = sequence_guard(model, "one-hot DNA input dna", channels["dna"])
    dna_spec = tf.TensorSpec([None, spec.shape[1], 4], tf.float32, name="dna")
    wrapper.predict_dna_on_batch = tf.function(lambda dna: predict(encode(check_dna(dna))),
                                               input_signature=[dna_spec])
    # The same for a reverse-complemented copy: models with a strand flag channel (DREAM's
    # is_reverse) encode it as such; for the others it is the same function, saved once.
    wrapper.predict_reverse_dna_on_batch = (
        tf.function(lambda dna: predict(encode(check_dna(dna), True)),
                    input_signature=[dna_spec])
        if strand_flagged(model) else wrapper.predict_dna_on_batch)
  root = tf.train.Checkpoint()
  root.model = wrapper
  root.variables = list(model.variables)
  root.trainable_variables = list(model.trainable_variables)
  root.regularization_losses = []
  # Traced for both values of `training` (a Python bool when called): dropout and batch
  # statistics follow it, as hub.KerasLayer(trainable=True) expects.
  root.__call__ = tf.function(lambda inputs, training=False: dict(
      model(adapt(check(inputs)), is_training=training)))
  root.__call__.get_concrete_function(spec, training=False)
  root.__call__.get_concrete_function(spec, training=True)
  # An attribute as well as the signature: Keras 3 `TFSMLayer(path, "serving_default")` calls
  # the attribute with the layer's input (a dict for multi-input models); the signature takes
  # one keyword argument per input (`x`, or the dict keys).
  root.serving_default = wrapper.predict_on_batch
  root.metadata_asset = tf.saved_model.Asset(metadata_path)
  root.config_asset = tf.saved_model.Asset(config_path)
  root.get_metadata = tf.function(lambda: tf.io.read_file(root.metadata_asset), input_signature=[])
  root.get_config = tf.function(lambda: tf.io.read_file(root.config_asset), input_signature=[])
  return root


def signature_inputs(model) -> dict[str, list[str]]:
  """{signature name: its keyword arguments} (see serving_signatures)."""
  spec = serving_spec(model)
  if _is_multi_input(spec):
    return {"serving_default": list(spec)}
  out = {"serving_default": ["x"]}
  if model.takes_dna_sequence:
    out["predict_dna"] = ["dna"]
    if strand_flagged(model):
      out["predict_reverse_dna"] = ["dna"]
  return out


def serving_signatures(root) -> dict:
  """The SavedModel signatures: serving_default (the model's own inputs) and, for DNA models,
  predict_dna / predict_reverse_dna (keyword `dna`: one-hot A, C, G, T, encoded in the graph
  as the model needs; DREAM's 6-channel encoding, for one)."""
  signatures = {"serving_default": root.serving_default}
  dna = getattr(root.model, "predict_dna_on_batch", None)
  if dna is not None:
    signatures["predict_dna"] = dna
    reverse = root.model.predict_reverse_dna_on_batch
    if reverse is not dna:
      signatures["predict_reverse_dna"] = reverse
  return signatures


# --- metadata --------------------------------------------------------------------------------

def _spec_json(spec) -> Any:
  if _is_multi_input(spec):
    return {key: _spec_json(s) for key, s in spec.items()}
  return {"shape": spec.shape.as_list(), "dtype": spec.dtype.name}


def _check_per_track(model, head_shapes: Mapping[str, list], field: str,
                     per_head: Mapping[str, Any], items: str) -> None:
  """`per_head` ({head: one item per output track}) names known heads, with one item per
  track of each."""
  unknown = sorted(set(per_head) - set(model.head_names))
  if unknown:
    raise ConfigError(f"{field} names unknown head(s) {unknown}; heads: {list(model.head_names)}")
  for head, values in per_head.items():
    if head_shapes[head] and len(values) != head_shapes[head][-1]:
      raise ConfigError(f"{field}[{head!r}] has {len(values)} {items} for "
                        f"{head_shapes[head][-1]} output tracks")


def model_metadata(model, config: HubExportConfig, head_shapes: Mapping[str, list]) -> dict:
  """The metadata stored as an asset (and in the Kipoi folder)."""
  import tf_seqmodels
  name = config.model_name or model_label(model)
  _check_per_track(model, head_shapes, "track_names", config.track_names, "names")
  _check_per_track(model, head_shapes, "track_permutations", config.track_permutations, "entries")
  # Analyses of the export (variant scores, reverse-complement averaging) need these: which
  # output axis runs along the sequence, and what each head's values mean.
  position_axes = dict(getattr(model, "position_axes", None) or {})
  head_kinds = dict(getattr(model, "head_kinds", None) or {})
  return {
      "format": METADATA_FORMAT,
      "package": "tf-seqmodels",
      "package_version": tf_seqmodels.__version__,
      "tensorflow_version": tf.__version__,
      "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "model_name": name,
      "model_class": type(model).__name__,
      "config": model.config.to_dict(),
      "heads": list(model.head_names),
      "head_shapes": {k: list(v) for k, v in head_shapes.items()},
      "track_names": {k: list(v) for k, v in config.track_names.items()},
      "track_permutations": {k: [int(i) for i in v] for k, v in config.track_permutations.items()},
      "position_axes": {h: position_axes.get(h) for h in model.head_names},
      "head_kinds": {h: head_kinds[h] for h in model.head_names if h in head_kinds},
      "strand_averaged_prediction": bool(getattr(model, "strand_averaged_prediction", False)),
      "input_spec": _spec_json(serving_spec(model)),
      # Channel order of every input (DREAM: A, G, C, T, is_reverse, ...; "dna": the
      # predict_dna entry points' A, C, G, T) and the lengths the graph accepts.
      "input_channels": input_channel_names(model),
      "accepted_lengths": accepted_lengths(model),
      "signatures": signature_inputs(model),
      "citation": getattr(model, "citation", None),
      "takes_dna_sequence": bool(model.takes_dna_sequence),
      "dynamic_length": bool(getattr(model, "dynamic_length", False)),
      "sequence_length": getattr(model, "sequence_length", None),
      "published_input_length": getattr(model, "published_input_length", None),
      "training_data": config.training_data,
      "description": config.description,
      "parity_tolerance": {"atol": config.atol, "rtol": config.rtol},
  }


def read_metadata(savedmodel_dir: str) -> dict:
  """The metadata of an exported SavedModel (without loading it)."""
  path = os.path.join(savedmodel_dir, "assets", METADATA_ASSET)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{savedmodel_dir} has no assets/{METADATA_ASSET}: not a tf-seqmodels "
                            f"export")
  with open(path) as f:
    return json.load(f)


# --- parity ----------------------------------------------------------------------------------

def compare_outputs(expected: Mapping[str, Any], actual: Mapping[str, Any], atol: float,
                    rtol: float, what: str) -> dict[str, float]:
  """{name: max |actual - expected|}; raises ParityError beyond atol + rtol * |expected|."""
  missing = sorted(set(expected) ^ set(actual))
  if missing:
    raise ParityError(f"{what}: outputs differ in names: {missing}")
  diffs, failures = {}, []
  for name in expected:
    want = np.asarray(expected[name], np.float64)
    got = np.asarray(actual[name], np.float64)
    if want.shape != got.shape:
      raise ParityError(f"{what}: {name!r} has shape {got.shape}, expected {want.shape}")
    diff = np.abs(got - want)
    diffs[name] = float(diff.max()) if diff.size else 0.0
    if not np.all(np.isfinite(got)) or np.any(diff > atol + rtol * np.abs(want)):
      failures.append(f"{name} (max |diff| {diffs[name]:.3g})")
  if failures:
    raise ParityError(f"{what}: predictions disagree beyond atol={atol}, rtol={rtol}: "
                      + ", ".join(failures))
  return diffs


def _numpy(structure):
  return tf.nest.map_structure(lambda t: np.asarray(t), structure)


def _load(savedmodel):
  """A SavedModel directory loaded, or an already loaded one as it is."""
  return tf.saved_model.load(savedmodel) if isinstance(savedmodel, (str, os.PathLike)) else savedmodel


def check_savedmodel_parity(model, savedmodel, inputs, atol: float,
                            rtol: float) -> dict[str, dict[str, float]]:
  """Live model vs reloaded SavedModel (a directory or the loaded object) on `inputs`: heads
  (predict_on_batch), embedding, signatures, `__call__`, and for DNA models
  predict_dna_on_batch (and its reverse twin where exported) and the predict_dna signatures
  on seeded one-hot ACGT through the live model's encode_dna."""
  loaded = _load(savedmodel)
  tensors = to_tensors(model, inputs)
  live = _numpy(model(tensors, is_training=False))
  results = {"savedmodel": compare_outputs(
      live, _numpy(loaded.model.predict_on_batch(tensors)), atol, rtol, "reloaded SavedModel")}
  def flat(embedding):  # an embedding may be one tensor or a structure of them
    leaves = tf.nest.flatten(embedding)
    return {"embedding" if len(leaves) == 1 else f"embedding/{i}": np.asarray(v)
            for i, v in enumerate(leaves)}

  results["embedding"] = compare_outputs(
      flat(model.embed(tensors, is_training=False)), flat(loaded.model.embed(tensors)), atol,
      rtol, "reloaded SavedModel embedding")
  kwargs = tensors if isinstance(tensors, Mapping) else {"x": tensors}
  results["serving_default"] = compare_outputs(
      live, _numpy(loaded.signatures["serving_default"](**kwargs)), atol, rtol,
      "serving_default signature")
  # The Reusable SavedModel API (what hub.KerasLayer calls) ...
  results["call"] = compare_outputs(live, _numpy(loaded(tensors, training=False)), atol, rtol,
                                    "reloaded SavedModel __call__")
  # ... and the one-hot ACGT entry points (DNA models), against the live model's encode_dna.
  if not isinstance(tensors, Mapping) and hasattr(loaded.model, "predict_dna_on_batch"):
    dna_rng = np.random.default_rng(2)
    positions = (int(tensors.shape[0]), int(tensors.shape[1]))
    dna = tf.constant(np.eye(4, dtype=np.float32)[dna_rng.integers(0, 4, positions)])
    encode = getattr(model, "encode_dna", None) or (lambda x, is_reverse=False: x)
    for entry, is_reverse in (("predict_dna_on_batch", False),
                              ("predict_reverse_dna_on_batch", True)):
      if hasattr(loaded.model, entry):
        results[entry] = compare_outputs(
            _numpy(model(encode(dna, is_reverse=is_reverse), is_training=False)),
            _numpy(getattr(loaded.model, entry)(dna)), atol, rtol, f"reloaded SavedModel {entry}")
    for name, is_reverse in (("predict_dna", False), ("predict_reverse_dna", True)):
      if name in loaded.signatures:
        results[f"{name} signature"] = compare_outputs(
            _numpy(model(encode(dna, is_reverse=is_reverse), is_training=False)),
            _numpy(loaded.signatures[name](dna=dna)), atol, rtol, f"{name} signature")
  published = getattr(model, "published_input_length", None)
  target = getattr(model, "sequence_length", None)
  if published and target and published != target and not isinstance(tensors, Mapping):
    # The published convention: a longer input is centre-cropped before the model.
    pad = (published - target) // 2
    rng = np.random.default_rng(1)
    flank = lambda n: np.eye(4, tensors.shape[-1], dtype=np.float32)[  # noqa: E731
        rng.integers(0, 4, (tensors.shape[0], n))]
    long_inputs = np.concatenate(
        [flank(pad), np.asarray(tensors), flank(published - target - pad)], axis=1)
    results["published_length"] = compare_outputs(
        live, _numpy(loaded.model.predict_on_batch(tf.constant(long_inputs))), atol, rtol,
        f"reloaded SavedModel on {published}-long (centre-cropped) inputs")
  return results


def _invalid_length(rule: dict) -> int:
  """A length that `rule` (accepted_lengths) refuses."""
  candidates = [n + 1 for n in rule["exactly"]]
  if "at_least" in rule:
    candidates += [rule["at_least"] + 1, rule["at_least"] - 1]
  for n in candidates:
    if n >= 1 and not ("at_least" in rule and n >= rule["at_least"]
                       and n % rule["multiple_of"] == 0) and n not in rule["exactly"]:
      return n
  return 0  # every positive length is valid: an empty sequence is still refused


def bad_inputs(model, inputs) -> dict[str, tuple[str, dict]]:
  """{case: (signature, keyword arguments)} of wrongly shaped inputs every signature must
  refuse: a length the model does not accept and a wrong channel count (DREAM given plain
  ACGT), through serving_default and the predict_dna signatures; for multi-input models an
  input with a wrong dimension and inputs of two batch sizes."""
  spec = serving_spec(model)
  if _is_multi_input(spec):
    arrays = {k: np.asarray(v)[:1] for k, v in to_tensors(model, inputs).items()}
    key = next(k for k, s in spec.items() if s.shape.rank > 1)
    wrong = np.zeros(arrays[key].shape[:-1] + (arrays[key].shape[-1] + 1,), arrays[key].dtype)
    other = next(k for k in spec if k != key) if len(spec) > 1 else None
    cases = {f"input {key!r} of shape {list(wrong.shape)}":
             ("serving_default", {**arrays, key: wrong})}
    if other is not None:
      doubled = np.concatenate([arrays[other]] * 2)
      cases["inputs of batch sizes 1 and 2"] = ("serving_default", {**arrays, other: doubled})
    return cases
  rule = accepted_lengths(model)
  channels = int(spec.shape[-1])
  good = int(np.asarray(inputs).shape[1])
  bad_length = _invalid_length(rule)
  cases = {f"length {bad_length}": ("serving_default",
                                    {"x": np.zeros([1, bad_length, channels], np.float32)}),
           f"{4 if channels != 4 else 5} channels": (
               "serving_default", {"x": np.zeros([1, good, 4 if channels != 4 else 5], np.float32)})}
  for name in signature_inputs(model):
    if name != "serving_default":
      cases[f"{name}: length {bad_length}"] = (name, {"dna": np.zeros([1, bad_length, 4],
                                                                       np.float32)})
      cases[f"{name}: {channels if channels != 4 else 6} channels"] = (
          name, {"dna": np.zeros([1, good, channels if channels != 4 else 6], np.float32)})
  return cases


def check_refusals(model, savedmodel, inputs) -> dict[str, str]:
  """Calls every signature of the SavedModel with `bad_inputs` and returns {case: the first
  line of the error it raised}; raises ExportError if one was accepted (a silent wrong answer
  for whoever serves the model)."""
  loaded = _load(savedmodel)
  refused = {}
  for case, (name, kwargs) in bad_inputs(model, inputs).items():
    try:
      loaded.signatures[name](**{k: tf.constant(v) for k, v in kwargs.items()})
    except tf.errors.InvalidArgumentError as e:
      line = next((line for line in e.message.splitlines() if "assertion failed" in line),
                  e.message.splitlines()[0])
      refused[case] = line[line.find("assertion failed"):].strip()
      continue
    raise ExportError(f"the exported {name} signature accepted {case} instead of refusing it")
  return refused


# --- export ----------------------------------------------------------------------------------

_CONTRACT = ("config", "head_names", "input_spec", "embed", "takes_dna_sequence", "ensure_built",
             "check_inputs")


def check_contract(model) -> None:
  """Raises ExportError unless `model` honours the SequenceModel contract."""
  missing = [name for name in _CONTRACT if not hasattr(model, name)]
  if missing or not callable(model):
    raise ExportError(f"{type(model).__name__} does not honour the model contract "
                      f"(tf_seqmodels.models.SequenceModel): missing {missing or ['__call__']}")
  if not hasattr(model.config, "to_dict"):
    raise ExportError(f"{type(model).__name__}.config must be a tf_seqmodels Config (its JSON "
                      f"goes into the export's metadata)")


def _parity_inputs(model, config: HubExportConfig, inputs):
  """The parity inputs (given or the seeded example_inputs), checked against the model."""
  check_contract(model)
  model.ensure_built()
  if inputs is None:
    inputs = example_inputs(model, config.parity_batch_size, _parity_length(model, config),
                            config.seed)
  try:
    tensors = to_tensors(model, inputs)
    model.check_inputs(tensors)
  except (ValueError, TypeError, KeyError) as e:
    raise ExportError(f"parity inputs do not fit the model's input_spec(): {e}") from e
  return inputs, tensors


def verify_savedmodel(model, directory: str, config: HubExportConfig, inputs=None) -> dict:
  """Checks an exported SavedModel of `model` (written by write_savedmodel, perhaps
  elsewhere): it must be an export of the same config and pass the parity and refusal
  checks. Returns write_savedmodel's dictionary, with the SavedModel's own metadata."""
  inputs, _ = _parity_inputs(model, config, inputs)
  metadata = read_metadata(directory)
  if metadata.get("config") != json.loads(json.dumps(model.config.to_dict())):
    raise ExportError(f"{directory} is an export of another configuration than this "
                      f"{type(model).__name__}'s (its metadata's config differs)")
  loaded = tf.saved_model.load(directory)
  parity = check_savedmodel_parity(model, loaded, inputs, config.atol, config.rtol)
  refusals = check_refusals(model, loaded, inputs)
  return {"metadata": metadata, "parity": parity, "inputs": inputs, "refusals": refusals}


def write_savedmodel(model, directory: str, config: HubExportConfig, inputs=None) -> dict:
  """Saves `model` as a SavedModel at `directory` (not atomic: call inside a staging dir)
  and checks its parity. Returns {"metadata": ..., "parity": ..., "inputs": the inputs used,
  "refusals": the wrongly shaped inputs refused}."""
  inputs, tensors = _parity_inputs(model, config, inputs)
  live = model(tensors, is_training=False)
  head_shapes = {k: list(v.shape[1:]) for k, v in live.items()}
  metadata = model_metadata(model, config, head_shapes)
  meta_dir = directory + ".meta"
  os.makedirs(meta_dir, exist_ok=True)
  metadata_path = os.path.join(meta_dir, METADATA_ASSET)
  config_path = os.path.join(meta_dir, CONFIG_ASSET)
  atomic_write_text(metadata_path, json.dumps(metadata, indent=2) + "\n")
  atomic_write_text(config_path, json.dumps(
      {"model_name": metadata["model_name"], "config": metadata["config"]}, indent=2) + "\n")
  root = build_serving_module(model, metadata_path, config_path)
  try:
    tf.saved_model.save(root, directory, signatures=serving_signatures(root))
  except (TypeError, ValueError) as e:
    raise ExportError(f"{type(model).__name__} could not be traced for export with input spec "
                      f"{serving_spec(model)}: {e}") from e
  finally:
    import shutil
    shutil.rmtree(meta_dir, ignore_errors=True)
  loaded = tf.saved_model.load(directory)
  parity = check_savedmodel_parity(model, loaded, inputs, config.atol, config.rtol)
  refusals = check_refusals(model, loaded, inputs)
  return {"metadata": metadata, "parity": parity, "inputs": inputs, "refusals": refusals}


def _kaggle_metadata(metadata: dict, config: HubExportConfig) -> tuple[dict, dict]:
  slug = (config.slug or metadata["model_name"]).replace("_", "-")
  model_card = {
      "ownerSlug": config.owner, "title": config.title or metadata["model_name"], "slug": slug,
      "licenseName": config.license, "isPrivate": True,
      "description": config.description or f"{metadata['model_class']} exported by tf-seqmodels "
                                            f"{metadata['package_version']}",
  }
  instance = {
      "ownerSlug": config.owner, "modelSlug": slug, "instanceSlug": "default",
      "framework": "tensorFlow2", "licenseName": config.license, "fineTunable": True,
      "trainingData": [config.training_data] if config.training_data else [],
      "overview": f"Heads: {', '.join(metadata['heads'])}",
      "usage": "m = hub.load(path)\nout = m.model.predict_on_batch(x)  # {head: tensor}",
  }
  return model_card, instance


def export_hub(model, output_dir: str, config: Optional[HubExportConfig] = None,
               inputs=None) -> HubExport:
  """Exports `model` to `output_dir` (see the module docstring); atomic and parity-checked.

  Args:
    model: a built (or buildable) model honouring the `SequenceModel` contract.
    output_dir: destination folder (must not exist unless `config.overwrite`).
    config: export options.
    inputs: parity-check inputs (numpy [B, L, C] or a dict keyed like input_spec());
      default: seeded `example_inputs`.

  Raises:
    ParityError: reloaded predictions differ from the live model's.
    ExportError: the model cannot be traced or the inputs do not fit it.
    FileExistsError: output_dir exists and overwrite is False.
  """
  from tqdm import tqdm
  config = config or HubExportConfig()
  progress = tqdm(total=1 + config.tarball, desc="export hub", unit="step")
  with staged_directory(output_dir, config.overwrite) as staging:
    savedmodel = os.path.join(staging, SAVEDMODEL_DIR)
    written = write_savedmodel(model, savedmodel, config, inputs)
    progress.update()
    metadata = written["metadata"]
    if config.tarball:
      make_tarball(savedmodel, os.path.join(staging, TARBALL_NAME))
      progress.update()
    model_card, instance = _kaggle_metadata(metadata, config)
    atomic_write_text(os.path.join(staging, "model-metadata.json"),
                      json.dumps(model_card, indent=2))
    atomic_write_text(os.path.join(staging, "model-instance-metadata.json"),
                      json.dumps(instance, indent=2))
    atomic_write_text(os.path.join(staging, "export_report.json"), json.dumps(
        {"parity": written["parity"], "tolerance": {"atol": config.atol, "rtol": config.rtol},
         "refused_inputs": written["refusals"], "model_name": metadata["model_name"]},
        indent=2))
  progress.close()
  directory = os.path.abspath(output_dir)
  return HubExport(directory, os.path.join(directory, SAVEDMODEL_DIR),
                   os.path.join(directory, TARBALL_NAME) if config.tarball else None,
                   written["parity"], written["refusals"])
