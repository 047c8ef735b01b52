"""Import Enformer weights saved by the reference Sonnet implementation.

The published Enformer (deepmind-research/enformer, 2022) is a tree of `Sequential`s; its
checkpoint keys are object-graph paths:

    module/<module path with '.' -> '/'>/.ATTRIBUTES/VARIABLE_VALUE

Our modules have self-explanatory attribute names instead, so the mapping is explicit.
With `s` = `_trunk._layers`, `cb(P)` = a conv block at P (`P._layers.0` BatchNorm: scale,
offset, moving_{mean,variance}.{average,_hidden,_counter}; `P._layers.2` Conv1D: w, b):

    reference module path                                  tf-seqmodels Enformer
    s.0._layers.0.{w,b}                                     stem.conv
    cb(s.0._layers.1._module)                               stem.pointwise.module
    s.0._layers.2._logit_linear.w                           stem.pool.logit_linear
    cb(s.1._layers.i._layers.0)                             conv_tower[i].conv
    cb(s.1._layers.i._layers.1._module)                     conv_tower[i].pointwise.module
    s.1._layers.i._layers.2._logit_linear.w                 conv_tower[i].pool.logit_linear
    s.2._layers.l._layers.0._module._layers.0.{scale,offset}  transformer[l].attention_norm
    s.2._layers.l._layers.0._module._layers.1._q_layer.w     transformer[l].attention.q_layer
      (also _k_layer, _v_layer, _r_k_layer, _embedding_layer.{w,b}, _r_w_bias, _r_r_bias)
    s.2._layers.l._layers.1._module._layers.0.{scale,offset} transformer[l].mlp_norm
    s.2._layers.l._layers.1._module._layers.1.{w,b}          transformer[l].mlp_hidden
    s.2._layers.l._layers.1._module._layers.4.{w,b}          transformer[l].mlp_output
    cb(s.4._layers.0)                                       final_pointwise.conv
    _heads.<name>._layers.0.{w,b}                           heads[<name>].linear

(`s.3` is the crop and has no variables.) Weights are matched by path, never by TF variable
name: the reference's TF names are not unique. The same loader reads a TF checkpoint (the
published `enformer-fine-tuned-human-1`), a SavedModel's `variables/` folder, a SavedModel
directory, an `.npz` keyed by module path (the test fixtures) or a dict of arrays.
"""

from __future__ import annotations

import os
import re
from typing import Iterator, Mapping, Optional, Union

import numpy as np
import tensorflow as tf

from tf_seqmodels.blocks.pooling import SoftmaxPooling1D
from tf_seqmodels.convert.weights import register_reference_importer
from tf_seqmodels.models.enformer import Enformer, EnformerConfig

_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
# A key present in every Enformer checkpoint: the stem conv kernel.
_ANCHOR = re.compile(r"^(.*?)_trunk/_layers/0/_layers/0/w" + re.escape(_SUFFIX) + "$")

Source = Union[str, os.PathLike, Mapping[str, np.ndarray]]


class WeightImportError(ValueError):
  """Reference weights do not fit the model (missing, unexpected or mis-shaped variables)."""


def _batch_norm(prefix: str, norm) -> Iterator[tuple[str, tf.Variable]]:
  yield f"{prefix}.scale", norm.scale
  yield f"{prefix}.offset", norm.offset
  for stat in ("moving_mean", "moving_variance"):
    ema = getattr(norm, stat)
    # Sonnet's EMA keeps a debiasing counter and a hidden accumulator beside the average;
    # all three are needed to continue training with the statistics of the checkpoint.
    yield f"{prefix}.{stat}.average", ema.average
    yield f"{prefix}.{stat}._hidden", ema._hidden  # pylint: disable=protected-access
    yield f"{prefix}.{stat}._counter", ema._counter  # pylint: disable=protected-access


def _conv_block(prefix: str, block) -> Iterator[tuple[str, tf.Variable]]:
  yield from _batch_norm(f"{prefix}._layers.0", block.norm)
  yield f"{prefix}._layers.2.w", block.conv.w
  yield f"{prefix}._layers.2.b", block.conv.b


def _pool(prefix: str, pool) -> Iterator[tuple[str, tf.Variable]]:
  if isinstance(pool, SoftmaxPooling1D):
    yield f"{prefix}._logit_linear.w", pool.logit_linear.w


def reference_variable_map(model: Enformer) -> dict[str, tf.Variable]:
  """Reference module path -> our variable, for every variable of a built `model`."""
  model.ensure_built()
  items: list[tuple[str, tf.Variable]] = []
  stem = "_trunk._layers.0._layers"
  items += [(f"{stem}.0.w", model.stem.conv.w), (f"{stem}.0.b", model.stem.conv.b)]
  items += _conv_block(f"{stem}.1._module", model.stem.pointwise.module)
  items += _pool(f"{stem}.2", model.stem.pool)
  for i, block in enumerate(model.conv_tower):
    p = f"_trunk._layers.1._layers.{i}._layers"
    items += _conv_block(f"{p}.0", block.conv)
    items += _conv_block(f"{p}.1._module", block.pointwise.module)
    items += _pool(f"{p}.2", block.pool)
  for i, block in enumerate(model.transformer):
    mha = f"_trunk._layers.2._layers.{i}._layers.0._module._layers"
    mlp = f"_trunk._layers.2._layers.{i}._layers.1._module._layers"
    att = block.attention
    items += [
        (f"{mha}.0.scale", block.attention_norm.scale),
        (f"{mha}.0.offset", block.attention_norm.offset),
        (f"{mha}.1._q_layer.w", att.q_layer.w),
        (f"{mha}.1._k_layer.w", att.k_layer.w),
        (f"{mha}.1._v_layer.w", att.v_layer.w),
        (f"{mha}.1._r_k_layer.w", att.r_k_layer.w),
        (f"{mha}.1._embedding_layer.w", att.embedding_layer.w),
        (f"{mha}.1._embedding_layer.b", att.embedding_layer.b),
        (f"{mha}.1._r_w_bias", att.r_w_bias),
        (f"{mha}.1._r_r_bias", att.r_r_bias),
        (f"{mlp}.0.scale", block.mlp_norm.scale),
        (f"{mlp}.0.offset", block.mlp_norm.offset),
        (f"{mlp}.1.w", block.mlp_hidden.w),
        (f"{mlp}.1.b", block.mlp_hidden.b),
        (f"{mlp}.4.w", block.mlp_output.w),
        (f"{mlp}.4.b", block.mlp_output.b),
    ]
  items += _conv_block("_trunk._layers.4._layers.0", model.final_pointwise.conv)
  for name, head in model.heads.items():
    items += [(f"_heads.{name}._layers.0.w", head.linear.w),
              (f"_heads.{name}._layers.0.b", head.linear.b)]

  mapping = dict(items)
  mapped = {v.ref() for v in mapping.values()}
  unmapped = [v.name for v in model.variables if v.ref() not in mapped]
  if len(mapping) != len(items) or unmapped:
    raise AssertionError(f"Enformer weight map is inconsistent with the module tree: {unmapped}")
  return mapping


def checkpoint_key(module_path: str, prefix: str = "module/") -> str:
  """`_heads.human._layers.0.b` -> `module/_heads/human/_layers/0/b/.ATTRIBUTES/VARIABLE_VALUE`."""
  return prefix + module_path.replace(".", "/") + _SUFFIX


def _checkpoint_prefix(path: str) -> str:
  """Resolves a checkpoint prefix from a prefix, a checkpoint dir, a SavedModel dir or its variables/."""
  if os.path.isdir(path):
    if os.path.isdir(os.path.join(path, "variables")) and (
        os.path.exists(os.path.join(path, "saved_model.pb"))):
      path = os.path.join(path, "variables")
    latest = tf.train.latest_checkpoint(path)
    if latest:
      return latest
    if os.path.exists(os.path.join(path, "variables.index")):
      return os.path.join(path, "variables")
    indexes = sorted(f for f in os.listdir(path) if f.endswith(".index"))
    if len(indexes) == 1:
      return os.path.join(path, indexes[0][:-len(".index")])
    raise FileNotFoundError(
        f"no TF checkpoint found in directory {path} (looked for a 'checkpoint' file, "
        f"variables.index or a single *.index file; found {indexes or 'none'})")
  if os.path.exists(path + ".index"):
    return path
  if path.endswith(".index") and os.path.exists(path):
    return path[:-len(".index")]
  raise FileNotFoundError(f"no TF checkpoint at {path} (expected {path}.index or a directory)")


def read_checkpoint_arrays(path: str, prefix: Optional[str] = None) -> dict[str, np.ndarray]:
  """Reads a Sonnet object-graph checkpoint into {module path: array}.

  `prefix` is the object path of the Enformer module inside the checkpoint ("module/" for
  `tf.train.Checkpoint(module=Enformer())`); by default it is detected from the keys.
  """
  reader = tf.train.load_checkpoint(_checkpoint_prefix(os.fspath(path)))
  keys = [k for k in reader.get_variable_to_shape_map() if k.endswith(_SUFFIX)]
  if prefix is None:
    prefixes = sorted({m.group(1) for m in map(_ANCHOR.match, keys) if m})
    if len(prefixes) != 1:
      examples = sorted(keys)[:5]
      raise WeightImportError(
          f"cannot locate a single Enformer module in checkpoint {path}: found "
          f"{len(prefixes)} candidates {prefixes}; pass prefix=... Example keys: {examples}")
    prefix = prefixes[0]
  arrays = {}
  for key in keys:
    if key.startswith(prefix) and "/.OPTIMIZER_SLOT/" not in key:
      module_path = key[len(prefix):-len(_SUFFIX)].replace("/", ".")
      arrays[module_path] = reader.get_tensor(key)
  if not arrays:
    raise WeightImportError(f"no variables under prefix {prefix!r} in checkpoint {path}")
  return arrays


def _read_source(source: Source, prefix: Optional[str]) -> dict[str, np.ndarray]:
  if isinstance(source, Mapping):
    return {k: np.asarray(v) for k, v in source.items()}
  path = os.fspath(source)
  if path.endswith(".npz"):
    if not os.path.exists(path):
      raise FileNotFoundError(f"weights file not found: {path}")
    with np.load(path) as data:
      return {k: data[k] for k in data.files}
  if not os.path.exists(path) and not os.path.exists(path + ".index"):
    raise FileNotFoundError(f"weights not found: {path}")
  return read_checkpoint_arrays(path, prefix)


def load_reference_weights(model: Enformer, source: Source, *, prefix: Optional[str] = None,
                           allow_unused: bool = False) -> dict[str, list[str]]:
  """Assigns reference Enformer weights to `model` (built first if needed).

  Args:
    model: our Enformer; its config must match the checkpoint's (channels, layers, heads...).
    source: TF checkpoint prefix or directory, SavedModel directory or its `variables/`,
      `.npz` keyed by module path, or a mapping {module path: array}.
    prefix: object path of the Enformer inside a checkpoint; detected when None.
    allow_unused: accept weights the model has no place for (e.g. loading only the human
      head of the published model); otherwise they are an error.

  Returns:
    {"loaded": [...module paths], "unused": [...module paths]}.

  Raises:
    WeightImportError: on missing, mis-shaped or (unless allowed) unused weights; every
      problem is listed, with a hint about the config field that likely differs.
  """
  arrays = _read_source(source, prefix)
  mapping = reference_variable_map(model)
  missing = sorted(set(mapping) - set(arrays))
  unused = sorted(set(arrays) - set(mapping))
  mismatched = [f"{path}: reference {tuple(arrays[path].shape)} vs model {tuple(var.shape)}"
                for path, var in mapping.items()
                if path in arrays and tuple(arrays[path].shape) != tuple(var.shape)]
  problems = []
  if missing:
    problems.append(f"{len(missing)} model variables have no reference weight, e.g. {missing[:5]}")
  if mismatched:
    problems.append(f"{len(mismatched)} shape mismatches, e.g. {mismatched[:5]}")
  if unused and not allow_unused:
    problems.append(f"{len(unused)} reference weights are unused, e.g. {unused[:5]} "
                    f"(pass allow_unused=True to ignore them)")
  if problems:
    raise WeightImportError(
        "reference Enformer weights do not fit this model's config "
        f"(channels={model.config.channels}, layers={model.config.num_transformer_layers}, "
        f"heads={dict(model.config.heads)}, pooling={model.config.pooling_type!r}):\n  - "
        + "\n  - ".join(problems))
  for path, var in mapping.items():
    var.assign(arrays[path].astype(var.dtype.as_numpy_dtype))
  return {"loaded": sorted(mapping), "unused": unused}


def load_enformer(source: Source, config: Optional[EnformerConfig] = None, **kwargs) -> Enformer:
  """Builds an Enformer (published config by default) and loads reference weights into it."""
  model = Enformer(config or EnformerConfig())
  load_reference_weights(model, source, **kwargs)
  return model


def reference_layout(model: Enformer) -> tf.Module:
  """A trackable tree holding `model`'s variables at the reference's object paths.

  Checkpointing it as `module` (or saving it inside a SavedModel) gives exactly the key
  layout of the published Enformer checkpoint.
  """
  tree = tf.Module()
  for path, var in reference_variable_map(model).items():
    node = tree
    *parents, leaf = path.split(".")
    for part in parents:
      child = getattr(node, part, None)
      if child is None:
        child = tf.Module()
        setattr(node, part, child)
      node = child
    setattr(node, leaf, var)
  return tree


def save_reference_checkpoint(model: Enformer, prefix: str) -> str:
  """Writes `model`'s weights with the published checkpoint's keys; returns the path.

  The reference code restores it with `tf.train.Checkpoint(module=Enformer()).restore(path)`.
  """
  return tf.train.Checkpoint(module=reference_layout(model)).write(prefix)


register_reference_importer(Enformer, load_reference_weights)
