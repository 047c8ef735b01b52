"""Import ChromBPNet / BPNet weights from the reference Keras models.

Reads the weights straight from a Keras 2 HDF5 file with h5py (no Keras model is
deserialised, so the marshalled Lambda in `chrombpnet.h5` and Keras 3's refusal of the
legacy compile config do not matter), or from a dict / `.npz` of arrays keyed by
"<layer>/<weight>" with any leading path (e.g. the fixtures' "bias/bpnet_1st_conv/kernel").

Keras 2 HDF5 layout: a full model (`model.save`) keeps weights under `model_weights/`
(optimizer state under `optimizer_weights/` is ignored); `save_weights` files have the
layer groups at the root. Each weight is a dataset `<layer>/<weight name>` where the
weight name is "<layer>/kernel:0"; a nested functional model (the bias model and
`model_wo_bias` inside `chrombpnet.h5`) stores its layers' weights under its own group:

    model_weights/model_wo_bias/wo_bias_bpnet_1st_conv/kernel:0
    model_weights/model/bpnet_1st_conv/kernel:0

Name map (layouts already agree: Conv1D kernel (k, in, out) = snt.Conv1D w; Dense kernel
(in, 1) = snt.Linear w):

    Keras layer ("bpnet" scheme / "wo_bias" scheme)              tf-seqmodels BPNet
    bpnet_1st_conv             / wo_bias_bpnet_1st_conv              trunk.first_conv
    bpnet_{i}conv              / wo_bias_bpnet_{i}conv  (i = 1..n)   trunk.dilated.convs[i-1]
    prof_out_precrop           / wo_bias_bpnet_prof_out_precrop      head.profile_conv
    logcount_predictions       / wo_bias_bpnet_logcount_predictions  head.counts_linear

The "bpnet" scheme is `bpnet_model.py` (bias models, `bias_model_scaled.h5`); "wo_bias" is
the accessibility model built by `chrombpnet_with_bias_model.py` (`chrombpnet_nobias.h5`).
"""

from __future__ import annotations

import os
from typing import Mapping, Optional, Union

import numpy as np
import tensorflow as tf

from tf_seqmodels.convert.enformer_checkpoint import WeightImportError
from tf_seqmodels.convert.weights import register_reference_importer
from tf_seqmodels.models.bias_factorized import BiasFactorizedModel
from tf_seqmodels.models.bpnet import BPNet

Source = Union[str, os.PathLike, Mapping[str, np.ndarray]]
SCHEMES = ("bpnet", "wo_bias")


class KerasImportError(WeightImportError):
  """Keras weights do not fit the model (missing, ambiguous or mis-shaped)."""


def read_keras_h5(path: Union[str, os.PathLike]) -> dict[str, np.ndarray]:
  """All weight arrays of a Keras 2 HDF5 file, keyed "<groups>/<layer>/<weight>".

  ":0" suffixes are dropped and the layer group's repeated name collapsed, so a top-level
  Conv1D's kernel is "bpnet_1st_conv/kernel" and a nested model's is
  "model_wo_bias/wo_bias_bpnet_1st_conv/kernel".
  """
  import h5py

  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"Keras weights file not found: {path}")
  arrays: dict[str, np.ndarray] = {}
  try:
    handle = h5py.File(path, "r")
  except OSError as e:
    raise KerasImportError(f"{path} is not an HDF5 file: {e}") from None
  with handle as f:
    if "model_weights" not in f and "layer_names" not in f.attrs and "layers" in f:
      raise KerasImportError(f"{path} looks like a Keras 3 '.weights.h5' file; save the reference "
                             f"model with tf-keras (Keras 2 HDF5) instead")
    root = f["model_weights"] if "model_weights" in f else f

    def visit(name, obj):
      if isinstance(obj, h5py.Dataset):
        arrays[_normalise_key(name)] = np.asarray(obj[()])

    root.visititems(visit)
  if not arrays:
    raise KerasImportError(f"no weight arrays found in {path}")
  return arrays


def _normalise_key(name: str) -> str:
  parts = [p[:-2] if p.endswith(":0") else p for p in name.split("/")]
  # Keras stores `<layer>/<layer>/<weight>`: drop the repeated layer name.
  collapsed = [p for i, p in enumerate(parts) if i == 0 or p != parts[i - 1]]
  return "/".join(collapsed)


def load_keras_arrays(source: Source) -> dict[str, np.ndarray]:
  """Arrays from a .h5 path, an .npz path or a mapping (keys normalised as in read_keras_h5)."""
  if isinstance(source, Mapping):
    return {_normalise_key(k): np.asarray(v) for k, v in source.items()}
  path = os.fspath(source)
  if path.endswith(".npz"):
    if not os.path.exists(path):
      raise FileNotFoundError(f"weights file not found: {path}")
    with np.load(path) as data:
      return {_normalise_key(k): data[k] for k in data.files}
  return read_keras_h5(path)


def keras_layer_names(num_dilated_layers: int, scheme: str) -> dict[str, str]:
  """Our module path -> Keras layer name for a BPNet with `num_dilated_layers`."""
  if scheme not in SCHEMES:
    raise ValueError(f"unknown naming scheme {scheme!r}; use one of {SCHEMES}")
  prefix = "wo_bias_" if scheme == "wo_bias" else ""
  head_prefix = "wo_bias_bpnet_" if scheme == "wo_bias" else ""
  names = {"trunk.first_conv": f"{prefix}bpnet_1st_conv"}
  for i in range(1, num_dilated_layers + 1):
    names[f"trunk.dilated.convs.{i - 1}"] = f"{prefix}bpnet_{i}conv"
  names["head.profile_conv"] = f"{head_prefix}prof_out_precrop"
  names["head.counts_linear"] = f"{head_prefix}logcount_predictions"
  return names


def _find(arrays: Mapping[str, np.ndarray], layer: str, weight: str,
          scope: Optional[str]) -> Optional[tuple[str, np.ndarray]]:
  """The unique array whose key ends in <layer>/<weight> (under `scope`), else None."""
  suffix = [layer, weight]
  hits = []
  for key, value in arrays.items():
    parts = key.split("/")
    if parts[-2:] != suffix:
      continue
    if scope is not None and scope not in parts[:-2]:
      continue
    hits.append((key, value))
  if len(hits) > 1:
    raise KerasImportError(f"{layer}/{weight} is ambiguous: {[k for k, _ in hits]}; pass scope= "
                           f"to pick the sub-model")
  return hits[0] if hits else None


def detect_scheme(arrays: Mapping[str, np.ndarray], scope: Optional[str] = None) -> str:
  """'wo_bias' if the arrays hold wo_bias_bpnet_1st_conv (under scope), else 'bpnet'."""
  wo_bias = _find(arrays, "wo_bias_bpnet_1st_conv", "kernel", scope) is not None
  plain = _find(arrays, "bpnet_1st_conv", "kernel", scope) is not None
  if wo_bias and plain:
    raise KerasImportError("the weights hold both a bias model and an accessibility model: pass "
                           "scheme= (or scope=) to choose, or use load_chrombpnet_keras")
  if not (wo_bias or plain):
    raise KerasImportError(f"no BPNet first convolution (bpnet_1st_conv or wo_bias_bpnet_1st_conv) "
                           f"found; keys start with {sorted(arrays)[:8]}")
  return "wo_bias" if wo_bias else "bpnet"


def _modules(model: BPNet) -> dict[str, object]:
  mods = {"trunk.first_conv": model.trunk.first_conv,
          "head.profile_conv": model.head.profile_conv,
          "head.counts_linear": model.head.counts_linear}
  for i, conv in enumerate(model.trunk.dilated.convs):
    mods[f"trunk.dilated.convs.{i}"] = conv
  return mods


def load_bpnet_keras(model: BPNet, source: Source, scheme: str = "auto",
                     scope: Optional[str] = None) -> list[str]:
  """Assigns reference Keras weights to a BPNet (built here if needed).

  Args:
    model: a `BPNet` (or `ChromBPNetBias`) whose config matches the Keras model.
    source: .h5 / .npz path or mapping of arrays.
    scheme: 'bpnet', 'wo_bias' or 'auto' (detected from the layer names).
    scope: a group / key component to look under (e.g. "bias", "model_wo_bias") when the
      source holds more than one model.

  Returns:
    The keys that were loaded, in order.

  Raises:
    KerasImportError: a weight is missing, ambiguous or has the wrong shape, or the source
      has a dilated layer beyond the model's depth.
  """
  if not isinstance(model, BPNet):
    raise TypeError(f"load_bpnet_keras needs a BPNet, got {type(model).__name__}")
  arrays = load_keras_arrays(source)
  if scheme == "auto":
    scheme = detect_scheme(arrays, scope)
  names = keras_layer_names(model.config.num_dilated_layers, scheme)
  extra_layer = keras_layer_names(model.config.num_dilated_layers + 1, scheme)[
      f"trunk.dilated.convs.{model.config.num_dilated_layers}"]
  if _find(arrays, extra_layer, "kernel", scope) is not None:
    raise KerasImportError(f"the source has layer {extra_layer}: it has more dilated layers than "
                           f"the model's {model.config.num_dilated_layers}")
  found = []
  for path, layer in names.items():
    for weight, attribute in (("kernel", "w"), ("bias", "b")):
      hit = _find(arrays, layer, weight, scope)
      if hit is None:
        raise KerasImportError(f"missing {layer}/{weight} (for {path}); available keys ending in "
                               f"{weight}: {sorted(k for k in arrays if k.endswith(weight))[:12]}")
      found.append((path, attribute) + hit)
  # Names are checked before building: building (a symbolic trace) is the slow part.
  if getattr(model.head.counts_linear, "w", None) is None:  # variables are created lazily
    model.build()
  modules = _modules(model)
  assignments = []
  for path, attribute, key, value in found:
    variable = getattr(modules[path], attribute)
    if tuple(value.shape) != tuple(variable.shape):
      raise KerasImportError(f"{key} has shape {value.shape}, but {path}.{attribute} needs "
                             f"{tuple(variable.shape)}: the model config does not match the "
                             f"Keras model (filters / kernel sizes)")
    assignments.append((key, variable, value))
  for _, variable, value in assignments:
    variable.assign(tf.convert_to_tensor(value, variable.dtype))
  return [key for key, _, _ in assignments]


def load_chrombpnet_keras(model: BiasFactorizedModel, source: Source,
                          bias_source: Optional[Source] = None) -> list[str]:
  """Loads a ChromBPNet: accessibility (wo_bias scheme) and bias (bpnet scheme) BPNets.

  `source` is a full `chrombpnet.h5` (or the fixtures' npz) holding both, or the
  `chrombpnet_nobias.h5` when `bias_source` (e.g. `bias_model_scaled.h5`) is given.
  """
  if not isinstance(model.model, BPNet) or not isinstance(model.bias_model, BPNet):
    raise TypeError("load_chrombpnet_keras needs a BiasFactorizedModel of two BPNets")
  loaded = load_bpnet_keras(model.model, source, scheme="wo_bias")
  loaded += load_bpnet_keras(model.bias_model, bias_source if bias_source is not None else source,
                             scheme="bpnet")
  return loaded


register_reference_importer(BPNet, load_bpnet_keras)
register_reference_importer(BiasFactorizedModel, load_chrombpnet_keras)
