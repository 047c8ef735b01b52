"""PyTorch state dicts <-> DREAM models (Prix Fixe parameter names and layouts).

A state dict is a mapping {PyTorch name: array}, given as a dict of numpy arrays or an
.npz file (`np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})`). An
.npz whose keys carry `param/` and `buffer/` prefixes (the layout of the DREAM reference
fixtures) is read from those entries only, prefixes stripped.

The name map is explicit: `torch_parameter_map(module)` lists every PyTorch name with its
Sonnet variable and layout, for `DreamModel` (names `first.*`, `core.*`, `final.*`),
`PrixFixeTrunk` (`first.*`, `core.*`) or a single block. Layouts (`LAYOUTS`):

    identity  biases, LayerNorm/BatchNorm vectors, BN running_mean / running_var /
              num_batches_tracked, LSTM biases, in_proj_bias, Embedding weight [N, C]
    conv      Conv1d weight (out, in / groups, k) <-> Sonnet / grouped / depthwise
              [k, in / groups, out]
    linear    Linear weight (out, in) <-> snt.Linear w [in, out]; also LSTM weight_ih / weight_hh
              (4H, in) <-> [in, 4H] (gate order i, f, g, o in both) and MultiheadAttention
              in_proj_weight (3C, C) <-> [C, 3C] (q | k | v)

Names per block (i = block / layer index, j = parallel conv index):
    BHI first          conv_list.{j}.conv.{weight,bias}
    Autosome first     block.0.weight,
                       block.1.{weight,bias,running_mean,running_var,num_batches_tracked}
    Autosome core      seqextractor.inv_res_blc{i}.{0 expand conv, 1 BN, 3 grouped conv, 4 BN,
                       6.fc.0 SE squeeze Linear, 6.fc.2 SE excite Linear, 7 project conv, 8 BN}
                       seqextractor.resize_blc{i}.{0 conv, 1 BN}
    BHI core           lstm.{weight_ih,weight_hh,bias_ih,bias_hh}_l0[_reverse], conv_list.{j}.conv.*
    Proformer core     pos_embedding.weight; blocks.{i}.{ff1,ff2}.{layernorm.*, linear1.weight,
                       linear2.weight}, blocks.{i}.layernorm{1,2}.*, blocks.{i}.conv.0.weight
                       (depthwise), blocks.{i}.conv.1.{weight,bias},
                       blocks.{i}.attn.{in_proj_weight,in_proj_bias,out_proj.weight,out_proj.bias}
    soft-bin final     mapper.0.{weight,bias}; buffer `bins` (= arange(num_bins): checked, not
                       stored)
    regression final   one task: mapper.*, linear.0.*;
                       n tasks: mapper{t}.*, linear{t}.0.* for t = 1..n
                       (the Prix Fixe lentiMPRA / DeepSTARR final blocks)

`load_torch_state_dict` checks everything before assigning anything and raises
`StateDictError` listing missing, unexpected and shape-mismatched keys. Other models' PyTorch
importers (`convert.chromoformer_state_dict`) register their name maps with
`register_torch_name_map`; parameters a reference defines but never uses are
`UnusedParameter` entries: accepted when their shape fits, and listed in `LoadReport.unused`.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Mapping, Union

import numpy as np
import sonnet as snt
import tensorflow as tf

from tf_seqmodels.blocks.conformer import Proformer, SwiGLUFeedForward
from tf_seqmodels.blocks.legnet import ConvBatchNormAct, LegNetCore
from tf_seqmodels.blocks.recurrent import BidirectionalLSTM, LSTMWeights
from tf_seqmodels.blocks.torch_compat import TorchBatchNorm
from tf_seqmodels.convert.weights import register_reference_importer
from tf_seqmodels.blocks.prixfixe import BHICore, MultiKernelConv, RegressionHead, SoftBinHead
from tf_seqmodels.models.dream import DreamModel, PrixFixeTrunk

LAYOUTS = ("identity", "conv", "linear")

StateDict = Mapping[str, np.ndarray]


class StateDictError(ValueError):
  """A state dict does not fit the model: missing, unexpected or mis-shaped entries."""


@dataclasses.dataclass(frozen=True)
class Entry:
  """One PyTorch state-dict entry: the Sonnet variable it maps to, and its layout."""

  variable: tf.Variable
  layout: str


@dataclasses.dataclass(frozen=True)
class DerivedBuffer:
  """A PyTorch buffer the Sonnet model computes instead of storing (checked on load)."""

  value: np.ndarray


@dataclasses.dataclass(frozen=True)
class UnusedParameter:
  """A reference parameter that its forward pass never reads (so the Sonnet model has no
  variable for it): shape-checked and reported on load, written as `fill` on export."""

  shape: tuple[int, ...]
  fill: float = 0.0


def to_sonnet_layout(array: np.ndarray, layout: str) -> np.ndarray:
  """PyTorch layout -> Sonnet layout (every layout is its own inverse)."""
  if layout == "identity":
    return array
  if layout == "conv":
    if array.ndim != 3:
      raise StateDictError(f"a Conv1d weight must be 3-D (out, in/groups, k), got shape "
                           f"{array.shape}")
    return np.transpose(array, (2, 1, 0))
  if layout == "linear":
    if array.ndim != 2:
      raise StateDictError(f"a Linear-style weight must be 2-D (out, in), got shape {array.shape}")
    return array.T
  raise ValueError(f"unknown layout {layout!r}; known: {LAYOUTS}")


to_torch_layout = to_sonnet_layout


# --- name map ----------------------------------------------------------------------------------
def _conv(module: snt.Conv1D, prefix: str, out: dict) -> None:
  out[f"{prefix}weight"] = Entry(module.w, "conv")
  if module.with_bias:
    out[f"{prefix}bias"] = Entry(module.b, "identity")


def _linear(module: snt.Linear, prefix: str, out: dict) -> None:
  out[f"{prefix}weight"] = Entry(module.w, "linear")
  if module.with_bias:
    out[f"{prefix}bias"] = Entry(module.b, "identity")


def _batch_norm(module: TorchBatchNorm, prefix: str, out: dict) -> None:
  out[f"{prefix}weight"] = Entry(module.scale, "identity")
  out[f"{prefix}bias"] = Entry(module.offset, "identity")
  out[f"{prefix}running_mean"] = Entry(module.running_mean, "identity")
  out[f"{prefix}running_var"] = Entry(module.running_var, "identity")
  out[f"{prefix}num_batches_tracked"] = Entry(module.num_batches_tracked, "identity")


def _layer_norm(module: snt.LayerNorm, prefix: str, out: dict) -> None:
  out[f"{prefix}weight"] = Entry(module.scale, "identity")
  out[f"{prefix}bias"] = Entry(module.offset, "identity")


def _multi_kernel_conv(module: MultiKernelConv, prefix: str, out: dict) -> None:
  for j, conv in enumerate(module.convs):
    _conv(conv, f"{prefix}conv_list.{j}.conv.", out)


def _conv_bn_act(module: ConvBatchNormAct, prefix: str, out: dict) -> None:
  _conv(module.conv, f"{prefix}0.", out)
  _batch_norm(module.norm, f"{prefix}1.", out)


def _legnet_core(module: LegNetCore, prefix: str, out: dict) -> None:
  for i, block in enumerate(module.blocks):
    p = f"{prefix}seqextractor.inv_res_blc{i}."
    ir = block.inverted_residual
    _conv(ir.expand, f"{p}0.", out)
    _batch_norm(ir.expand_norm, f"{p}1.", out)
    out[f"{p}3.weight"] = Entry(ir.grouped.w, "conv")
    _batch_norm(ir.grouped_norm, f"{p}4.", out)
    _linear(ir.se.squeeze, f"{p}6.fc.0.", out)
    _linear(ir.se.excite, f"{p}6.fc.2.", out)
    _conv(ir.project, f"{p}7.", out)
    _batch_norm(ir.project_norm, f"{p}8.", out)
    _conv_bn_act(block.resize, f"{prefix}seqextractor.resize_blc{i}.", out)


def _lstm_direction(weights: LSTMWeights, prefix: str, suffix: str, out: dict) -> None:
  out[f"{prefix}weight_ih_l0{suffix}"] = Entry(weights.w_ih, "linear")
  out[f"{prefix}weight_hh_l0{suffix}"] = Entry(weights.w_hh, "linear")
  out[f"{prefix}bias_ih_l0{suffix}"] = Entry(weights.b_ih, "identity")
  out[f"{prefix}bias_hh_l0{suffix}"] = Entry(weights.b_hh, "identity")


def _bidirectional_lstm(module: BidirectionalLSTM, prefix: str, out: dict) -> None:
  _lstm_direction(module.forward, prefix, "", out)
  _lstm_direction(module.backward, prefix, "_reverse", out)


def _bhi_core(module: BHICore, prefix: str, out: dict) -> None:
  _bidirectional_lstm(module.lstm, f"{prefix}lstm.", out)
  _multi_kernel_conv(module.convs, prefix, out)


def _feed_forward(module: SwiGLUFeedForward, prefix: str, out: dict) -> None:
  _layer_norm(module.norm, f"{prefix}layernorm.", out)
  _linear(module.linear1, f"{prefix}linear1.", out)
  _linear(module.linear2, f"{prefix}linear2.", out)


def _proformer(module: Proformer, prefix: str, out: dict) -> None:
  for i, layer in enumerate(module.layers):
    p = f"{prefix}blocks.{i}."
    _feed_forward(layer.ff1, f"{p}ff1.", out)
    _layer_norm(layer.norm1, f"{p}layernorm1.", out)
    out[f"{p}conv.0.weight"] = Entry(layer.conv.depthwise.w, "conv")
    _conv(layer.conv.pointwise, f"{p}conv.1.", out)
    _layer_norm(layer.norm2, f"{p}layernorm2.", out)
    attention = layer.attention
    out[f"{p}attn.in_proj_weight"] = Entry(attention.in_proj_w, "linear")
    out[f"{p}attn.in_proj_bias"] = Entry(attention.in_proj_b, "identity")
    _linear(attention.out_proj, f"{p}attn.out_proj.", out)
    _feed_forward(layer.ff2, f"{p}ff2.", out)
  out[f"{prefix}pos_embedding.weight"] = Entry(module.position_embedding, "identity")


def _soft_bin_head(module: SoftBinHead, prefix: str, out: dict) -> None:
  _conv(module.mapper, f"{prefix}mapper.0.", out)
  out[f"{prefix}bins"] = DerivedBuffer(np.arange(module.num_bins, dtype=np.int64))


def _regression_head(module: RegressionHead, prefix: str, out: dict) -> None:
  single = len(module.task_names) == 1
  for t, (mapper, linear) in enumerate(zip(module.mappers, module.linears), start=1):
    tag = "" if single else str(t)
    _conv(mapper, f"{prefix}mapper{tag}.", out)
    _linear(linear, f"{prefix}linear{tag}.0.", out)


def _trunk(module: PrixFixeTrunk, prefix: str, out: dict) -> None:
  _block(module.first, f"{prefix}first.", out)
  _block(module.core, f"{prefix}core.", out)


def _dream_model(module: DreamModel, prefix: str, out: dict) -> None:
  _trunk(module.trunk, prefix, out)
  _block(module.final, f"{prefix}final.", out)


def _first_conv_bn_act(module: ConvBatchNormAct, prefix: str, out: dict) -> None:
  _conv_bn_act(module, f"{prefix}block.", out)  # AutosomeFirstLayersBlock.block = Sequential


_MAPPERS = [
    (DreamModel, _dream_model),
    (PrixFixeTrunk, _trunk),
    (MultiKernelConv, _multi_kernel_conv),
    (ConvBatchNormAct, _first_conv_bn_act),
    (LegNetCore, _legnet_core),
    (BHICore, _bhi_core),
    (Proformer, _proformer),
    (SoftBinHead, _soft_bin_head),
    (RegressionHead, _regression_head),
]


def register_torch_name_map(module_class: type, mapper) -> None:
  """`mapper(module, prefix, out)` fills `out` with {PyTorch name: Entry / DerivedBuffer /
  UnusedParameter} for a `module_class` (other models' importers add their name maps here)."""
  _MAPPERS.insert(0, (module_class, mapper))


def _block(module: snt.Module, prefix: str, out: dict) -> None:
  for module_class, mapper in _MAPPERS:
    if isinstance(module, module_class):
      mapper(module, prefix, out)
      return
  raise TypeError(f"no PyTorch name map for {type(module).__name__}; supported: "
                  f"{[c.__name__ for c, _ in _MAPPERS]}")


def _is_unbuilt(module: snt.Module) -> bool:
  # Sonnet Conv/Linear/LayerNorm and TorchBatchNorm create their variables on the first call.
  if isinstance(module, (snt.Conv1D, snt.Linear)):
    return not hasattr(module, "w")
  if isinstance(module, (snt.LayerNorm, TorchBatchNorm)):
    return not hasattr(module, "scale")
  return False


def _ensure_built(module: snt.Module) -> None:
  """Creates lazily created variables by tracing the module once, if needed."""
  if not any(_is_unbuilt(m) for m in (module, *module.submodules)):
    return
  if hasattr(module, "ensure_built"):
    module.ensure_built()
    return
  if not hasattr(module, "build"):
    raise StateDictError(f"{type(module).__name__} has variables that are not created yet; call "
                         f"it once on an input (or map a DreamModel / PrixFixeTrunk, which build "
                         f"themselves) before mapping its parameters")
  module.build()


def torch_parameter_map(module: snt.Module, prefix: str = "") -> "collections.OrderedDict":
  """{PyTorch state-dict name: Entry(variable, layout), DerivedBuffer or UnusedParameter}.

  `module` is a DreamModel, a PrixFixeTrunk, one block, or a model with a registered name
  map (`register_torch_name_map`: Chromoformer); `prefix` is prepended to every name (e.g.
  "model." for a state dict saved from a wrapper). Builds the module if needed.
  """
  _ensure_built(module)
  out: dict = collections.OrderedDict()
  _block(module, prefix, out)
  return out


# --- I/O ---------------------------------------------------------------------------------------
def read_state_dict(source: Union[str, os.PathLike, StateDict]) -> dict[str, np.ndarray]:
  """A state dict from an .npz path or a mapping (see the module docstring for prefixes)."""
  if isinstance(source, (str, os.PathLike)):
    path = os.fspath(source)
    if not os.path.exists(path):
      raise FileNotFoundError(f"state dict file not found: {path}")
    with np.load(path, allow_pickle=False) as data:
      arrays = {key: data[key] for key in data.files}
  elif isinstance(source, Mapping):
    arrays = {key: np.asarray(value) for key, value in source.items()}
  else:
    raise TypeError(f"expected an .npz path or a mapping of arrays, got {type(source).__name__}")
  tagged = [k for k in arrays if k.startswith(("param/", "buffer/"))]
  if tagged:
    return {k.split("/", 1)[1]: arrays[k] for k in tagged}
  return arrays


@dataclasses.dataclass(frozen=True)
class LoadReport:
  """What `load_torch_state_dict` did: names loaded, (non-strict) names skipped, and the
  reference's unused parameters that were accepted (shape-checked) but not stored."""

  loaded: tuple[str, ...]
  missing: tuple[str, ...]
  unexpected: tuple[str, ...]
  unused: tuple[str, ...] = ()

  def summary(self) -> str:
    """One line: counts, and the unused reference parameters by name."""
    text = f"loaded {len(self.loaded)} parameters"
    if self.unused:
      text += "; " + _describe("accepted unused reference parameters", list(self.unused), 6)
    if self.missing or self.unexpected:
      text += f"; skipped: {len(self.missing)} missing, {len(self.unexpected)} unexpected"
    return text


def _describe(title: str, names: list[str], limit: int = 20) -> str:
  shown = ", ".join(names[:limit])
  more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
  return f"{title} ({len(names)}): {shown}{more}"


def load_torch_state_dict(module: snt.Module,
                          source: Union[str, os.PathLike, StateDict],
                          strict: bool = True,
                          prefix: str = "") -> LoadReport:
  """Assigns a PyTorch state dict to `module`'s variables.

  Args:
    module: a DreamModel, PrixFixeTrunk or single block (built here if needed), or any model
      with a registered name map (`register_torch_name_map`).
    source: an .npz path or {name: array}.
    strict: if True (default), any missing or unexpected key is an error; if False they are
      skipped and listed in the report. Shape mismatches and wrong derived buffers are
      always errors.
    prefix: prepended to every expected name.

  Raises:
    StateDictError: listing every missing, unexpected and mis-shaped key. Nothing is
      assigned unless every check passes.
  """
  return assign_state_dict(module, read_state_dict(source),
                           torch_parameter_map(module, prefix), strict)


def assign_state_dict(module: snt.Module, state: StateDict, expected: Mapping,
                      strict: bool = True) -> LoadReport:
  """Checks `state` against the name map `expected` (`torch_parameter_map`), then assigns.

  UnusedParameter entries may be absent; when present they are shape-checked and listed in
  `LoadReport.unused`. See `load_torch_state_dict` for `strict` and the errors.
  """
  missing = [name for name, entry in expected.items()
             if name not in state and not isinstance(entry, UnusedParameter)]
  unexpected = [name for name in state if name not in expected]
  problems, unused = [], []
  assignments = []
  for name, entry in expected.items():
    if name not in state:
      continue
    value = np.asarray(state[name])
    if isinstance(entry, DerivedBuffer):
      if value.shape != entry.value.shape or not np.array_equal(value, entry.value):
        problems.append(f"{name}: expected the fixed buffer {entry.value.tolist()}, got "
                        f"{value.tolist()}")
      continue
    if isinstance(entry, UnusedParameter):
      if value.shape != tuple(entry.shape):
        problems.append(f"{name}: PyTorch shape {value.shape}, expected {tuple(entry.shape)} "
                        f"(a parameter the reference never uses)")
      else:
        unused.append(name)
      continue
    try:
      converted = to_sonnet_layout(value, entry.layout)
    except StateDictError as e:
      problems.append(f"{name}: {e}")
      continue
    target = tuple(entry.variable.shape)
    if converted.shape != target:
      problems.append(f"{name}: PyTorch shape {value.shape} gives {converted.shape} in the "
                      f"{entry.layout!r} layout, but {entry.variable.name} is {target}")
      continue
    assignments.append((name, entry.variable, converted))
  if problems or (strict and (missing or unexpected)):
    parts = [f"cannot load the state dict into {type(module).__name__}"]
    if missing:
      parts.append(_describe("missing keys", missing))
    if unexpected:
      parts.append(_describe("unexpected keys", unexpected))
    if problems:
      parts.append(_describe("mismatched", problems))
    raise StateDictError("; ".join(parts))
  for _, variable, value in assignments:
    variable.assign(value.astype(variable.dtype.as_numpy_dtype))
  return LoadReport(loaded=tuple(name for name, _, _ in assignments), missing=tuple(missing),
                    unexpected=tuple(unexpected), unused=tuple(unused))


def export_torch_state_dict(module: snt.Module,
                            prefix: str = "") -> "collections.OrderedDict[str, np.ndarray]":
  """The inverse of `load_torch_state_dict`: {PyTorch name: array in PyTorch layout}."""
  out = collections.OrderedDict()
  for name, entry in torch_parameter_map(module, prefix).items():
    if isinstance(entry, DerivedBuffer):
      out[name] = entry.value.copy()
    elif isinstance(entry, UnusedParameter):
      out[name] = np.full(entry.shape, entry.fill, np.float32)
    else:
      out[name] = to_torch_layout(entry.variable.numpy(), entry.layout)
  return out


# `convert.import_reference_weights(model, "state_dict.npz")` (CLI --reference-weights) for
# every DREAM / Prix Fixe model.
register_reference_importer(DreamModel, load_torch_state_dict)
