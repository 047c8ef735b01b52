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
      export_report.json             parity check results

The loaded object (`m = hub.load(".../savedmodel")`):

    m.model.predict_on_batch(x) -> {head: [B, ...]}   x: [B, L, C] float32, or for multi-input
                                                      models a dict keyed like input_spec()
    m.model.embed(x)            -> trunk embedding
    m.model.predict_dna_on_batch(one_hot_acgt)        DNA models: [B, L, 4] ACGT one-hot,
                                                      encoded as the model needs (encode_dna)
    m.model.predict_reverse_dna_on_batch(rc_acgt)     the same for a reverse-complemented copy
                                                      (strand flag set for models that have one)
    m.signatures["serving_default"](x=x)              one named argument per input
    m(x, training=False)        -> {head: ...}        plus m.variables / m.trainable_variables /
                                                      m.regularization_losses: the Reusable
                                                      SavedModel API that hub.KerasLayer
                                                      (tf_keras) fine-tunes
    m.get_metadata()            -> JSON string (config, heads, tracks, version, training data,
                                   position_axes, head_kinds, track_permutations)
    m.metadata_asset / m.config_asset                 asset paths (valid after moving the folder)

Batch is dynamic; the length is dynamic when the model allows it (`dynamic_length`), else
fixed to `sequence_length`. A model whose `published_input_length` is set (Enformer: twice
its training length, the published 393,216 bp) also accepts that length and centre-crops it
to `sequence_length` in the graph, as the published TF-Hub Enformer does.

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
  """Paths written by `export_hub` and the parity results ({check: {head: max |diff|}})."""

  directory: str
  savedmodel: str
  tarball: Optional[str]
  parity: dict[str, dict[str, float]]


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


def _positional(fn, spec):
  """A tf.function taking each input as a named positional tensor (signature kwargs)."""
  if not _is_multi_input(spec):
    return tf.function(fn, input_signature=[spec])
  keys = list(spec)
  return tf.function(lambda *args: fn(dict(zip(keys, args))),
                     input_signature=[spec[k] for k in keys])


def build_serving_module(model, metadata_path: str, config_path: str) -> tf.train.Checkpoint:
  """The object tree saved as the SavedModel (see the module docstring for its API)."""
  from tf_seqmodels.analysis.inference import use_xla
  spec = serving_spec(model)
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
    return forward(adapt(inputs))

  def embed(inputs):
    return forward_embed(adapt(inputs))

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
    dna_spec = tf.TensorSpec([None, spec.shape[1], 4], tf.float32, name="dna")
    wrapper.predict_dna_on_batch = tf.function(lambda dna: predict(encode(dna)),
                                               input_signature=[dna_spec])
    # The same for a reverse-complemented copy: models with a strand flag channel (DREAM's
    # is_reverse) encode it as such; for the others (probed on one base) it is the same
    # function, saved once.
    probe = tf.constant([[[1.0, 0.0, 0.0, 0.0]]])
    flagged = not np.array_equal(np.asarray(encode(probe)), np.asarray(encode(probe, True)))
    wrapper.predict_reverse_dna_on_batch = (
        tf.function(lambda dna: predict(encode(dna, True)), input_signature=[dna_spec])
        if flagged else wrapper.predict_dna_on_batch)
  root = tf.train.Checkpoint()
  root.model = wrapper
  root.variables = list(model.variables)
  root.trainable_variables = list(model.trainable_variables)
  root.regularization_losses = []
  # Traced for both values of `training` (a Python bool when called): dropout and batch
  # statistics follow it, as hub.KerasLayer(trainable=True) expects.
  root.__call__ = tf.function(lambda inputs, training=False: dict(
      model(adapt(inputs), is_training=training)))
  root.__call__.get_concrete_function(spec, training=False)
  root.__call__.get_concrete_function(spec, training=True)
  root.serving_default = _positional(predict, spec)
  root.metadata_asset = tf.saved_model.Asset(metadata_path)
  root.config_asset = tf.saved_model.Asset(config_path)
  root.get_metadata = tf.function(lambda: tf.io.read_file(root.metadata_asset), input_signature=[])
  root.get_config = tf.function(lambda: tf.io.read_file(root.config_asset), input_signature=[])
  return root


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
  name = config.model_name or getattr(model, "registry_name", None) or type(model).__name__
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
      "input_spec": _spec_json(serving_spec(model)),
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


def check_savedmodel_parity(model, savedmodel_dir: str, inputs, atol: float,
                            rtol: float) -> dict[str, dict[str, float]]:
  """Live model vs reloaded SavedModel on `inputs`: heads (predict_on_batch), embedding,
  serving signature, `__call__`, and for DNA models predict_dna_on_batch (and its reverse
  twin where exported) on seeded one-hot ACGT through the live model's encode_dna."""
  loaded = tf.saved_model.load(savedmodel_dir)
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


def write_savedmodel(model, directory: str, config: HubExportConfig, inputs=None) -> dict:
  """Saves `model` as a SavedModel at `directory` (not atomic: call inside a staging dir)
  and checks its parity. Returns {"metadata": ..., "parity": ..., "inputs": the inputs used}."""
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
    tf.saved_model.save(root, directory, signatures={"serving_default": root.serving_default})
  except (TypeError, ValueError) as e:
    raise ExportError(f"{type(model).__name__} could not be traced for export with input spec "
                      f"{serving_spec(model)}: {e}") from e
  finally:
    import shutil
    shutil.rmtree(meta_dir, ignore_errors=True)
  parity = check_savedmodel_parity(model, directory, inputs, config.atol, config.rtol)
  return {"metadata": metadata, "parity": parity, "inputs": inputs}


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
    tarball = None
    if config.tarball:
      tarball = make_tarball(savedmodel, os.path.join(staging, TARBALL_NAME))
      progress.update()
    model_card, instance = _kaggle_metadata(metadata, config)
    atomic_write_text(os.path.join(staging, "model-metadata.json"),
                      json.dumps(model_card, indent=2))
    atomic_write_text(os.path.join(staging, "model-instance-metadata.json"),
                      json.dumps(instance, indent=2))
    atomic_write_text(os.path.join(staging, "export_report.json"), json.dumps(
        {"parity": written["parity"], "tolerance": {"atol": config.atol, "rtol": config.rtol},
         "model_name": metadata["model_name"]}, indent=2))
  progress.close()
  directory = os.path.abspath(output_dir)
  return HubExport(directory, os.path.join(directory, SAVEDMODEL_DIR),
                   os.path.join(directory, TARBALL_NAME) if config.tarball else None,
                   written["parity"])
