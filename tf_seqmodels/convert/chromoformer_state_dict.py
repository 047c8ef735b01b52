"""PyTorch state dicts of dohlee/chromoformer <-> our Chromoformer (explicit name map).

A state dict is given as an .npz (or a mapping of arrays), as for the DREAM models:

    ckpt = torch.load("chromoformer-reproduction-E003-conf1-fold1.pt", map_location="cpu")
    np.savez("E003-fold1.npz", **{k: v.numpy() for k, v in ckpt["net"].items()})

Names (b = bin size, l = layer), for `ChromoformerClassifier` / `ChromoformerRegressor`:

    embed.{b}.lin_proj.weight                               embedding[b].projection (Linear)
    embed.{b}.transformer.layers.{l}.self_att.att.weight    attention.projection [q|k|v]
    pairwise_interaction.{b}.lin_proj_p.weight              pairwise[b].promoter_projection
    pairwise_interaction.{b}.lin_proj_pcre.weight           pairwise[b].pcre_projection
    pairwise_interaction.{b}.transformer.layers.{l}.self_att.p_att.weight   query_projection
    pairwise_interaction.{b}.transformer.layers.{l}.self_att.c_att.weight   key_value_projection
    regulation.{b}.transformer.layers.{l}.self_att.att.weight   attention.projection [q|k|v|gate]
    regulation.{b}.transformer.layers.{l}.self_att.gamma_f      attention.gamma (Hi-C scale)
    <any>.layers.{l}.self_att.ff.{weight,bias}, self_att.ln.*   attention.output, attention.norm
    <any>.layers.{l}.ff.l1.*, ff.l2.*, ff.ln.*                  feed_forward.hidden/output/norm
    fc_head.0.*, fc_head.2.*                                    head_hidden, head_output

The legacy class `Chromoformer` (flat 16-argument forward) names the same tensors
`embed{b}.`, `pw_int{b}.`, `reg{b}.` instead of `embed.{b}.`, `pairwise_interaction.{b}.`,
`regulation.{b}.`; such state dicts are recognised and mapped alike.

Parameters the reference defines but its forward never reads are accepted (shape-checked),
not stored, and listed in `LoadReport.unused`: `self_att.gamma_f` of the embedding and
pairwise attentions (they get no Hi-C bias), `self_att.w_bias.weight` of every embedding and
regulation attention, and `pairwise_interaction.{b}.ln.*`. Our model has no variables for
them, so its parameter count is the 5,341,586 the reference uses.
"""

from __future__ import annotations

import collections
import logging
import os
import re
from typing import Union

import numpy as np

from tf_seqmodels.blocks.chromoformer import (ChromoformerLayer, EmbeddingTransformer,
                                              PairwiseInteractionTransformer,
                                              RegulationTransformer)
from tf_seqmodels.convert.torch_state_dict import (Entry, LoadReport, StateDict, StateDictError,
                                                   UnusedParameter, _layer_norm, _linear,
                                                   assign_state_dict, read_state_dict,
                                                   register_torch_name_map,
                                                   to_torch_layout, torch_parameter_map)
from tf_seqmodels.convert.weights import register_reference_importer
from tf_seqmodels.models.chromoformer import Chromoformer

log = logging.getLogger(__name__)

# Modern (ChromoformerBase) prefix -> legacy (`Chromoformer`) prefix, per bin size.
_LEGACY_PREFIXES = (("embed.{b}.", "embed{b}."), ("pairwise_interaction.{b}.", "pw_int{b}."),
                    ("regulation.{b}.", "reg{b}."))
_LEGACY_KEY = re.compile(r"^(embed|pw_int|reg)\d+\.")


def _layer(layer: ChromoformerLayer, prefix: str, out: dict) -> None:
  attention = layer.attention
  p = f"{prefix}self_att."
  if attention.cross:
    _linear(attention.query_projection, f"{p}p_att.", out)
    _linear(attention.key_value_projection, f"{p}c_att.", out)
  else:
    _linear(attention.projection, f"{p}att.", out)
  if attention.gamma is not None:
    out[f"{p}gamma_f"] = Entry(attention.gamma, "identity")
  else:
    # The reference creates gamma_f in every attention; without a Hi-C bias it is never read.
    out[f"{p}gamma_f"] = UnusedParameter((attention.num_heads,), fill=1.0)
  if not attention.cross:
    # MultiHeadAttention.w_bias = Linear(2, n_heads, bias=False): created, never called.
    out[f"{p}w_bias.weight"] = UnusedParameter((attention.num_heads, 2))
  _linear(attention.output, f"{p}ff.", out)
  _layer_norm(attention.norm, f"{p}ln.", out)
  _linear(layer.feed_forward.hidden, f"{prefix}ff.l1.", out)
  _linear(layer.feed_forward.output, f"{prefix}ff.l2.", out)
  _layer_norm(layer.feed_forward.norm, f"{prefix}ff.ln.", out)


def _embedding(module: EmbeddingTransformer, prefix: str, out: dict) -> None:
  _linear(module.projection, f"{prefix}lin_proj.", out)
  for i, layer in enumerate(module.layers):
    _layer(layer, f"{prefix}transformer.layers.{i}.", out)


def _pairwise(module: PairwiseInteractionTransformer, prefix: str, out: dict) -> None:
  # PairwiseInteractionTransformer.ln: created, never called.
  out[f"{prefix}ln.weight"] = UnusedParameter((module.channels,), fill=1.0)
  out[f"{prefix}ln.bias"] = UnusedParameter((module.channels,))
  _linear(module.promoter_projection, f"{prefix}lin_proj_p.", out)
  _linear(module.pcre_projection, f"{prefix}lin_proj_pcre.", out)
  for i, layer in enumerate(module.layers):
    _layer(layer, f"{prefix}transformer.layers.{i}.", out)


def _regulation(module: RegulationTransformer, prefix: str, out: dict) -> None:
  for i, layer in enumerate(module.layers):
    _layer(layer, f"{prefix}transformer.layers.{i}.", out)


def _chromoformer(model: Chromoformer, prefix: str, out: dict) -> None:
  # The reference's state dict lists the modules in this order: embed, pairwise, regulation.
  for size, module in zip(model.config.bin_sizes, model.embedding):
    _embedding(module, f"{prefix}embed.{size}.", out)
  for size, module in zip(model.config.bin_sizes, model.pairwise):
    _pairwise(module, f"{prefix}pairwise_interaction.{size}.", out)
  for size, module in zip(model.config.bin_sizes, model.regulation):
    _regulation(module, f"{prefix}regulation.{size}.", out)
  _linear(model.head_hidden, f"{prefix}fc_head.0.", out)
  _linear(model.head_output, f"{prefix}fc_head.2.", out)


register_torch_name_map(Chromoformer, _chromoformer)


def _to_legacy(name: str, bin_sizes) -> str:
  for size in bin_sizes:
    for modern, legacy in _LEGACY_PREFIXES:
      head = modern.format(b=size)
      if name.startswith(head):
        return legacy.format(b=size) + name[len(head):]
  return name


def chromoformer_parameter_map(model: Chromoformer, legacy: bool = False
                               ) -> "collections.OrderedDict[str, Entry | UnusedParameter]":
  """{reference state-dict name: Entry(variable, layout) or UnusedParameter} for `model`.

  legacy: names of the reference's older `Chromoformer` class (`embed2000.` ...).
  """
  expected = torch_parameter_map(model)
  if not legacy:
    return expected
  return collections.OrderedDict((_to_legacy(name, model.config.bin_sizes), entry)
                                 for name, entry in expected.items())


def is_legacy_state_dict(state: StateDict) -> bool:
  """Whether `state` uses the legacy `Chromoformer` class's names (`embed2000.` ...)."""
  return any(_LEGACY_KEY.match(name) for name in state)


def _mode_hint(model: Chromoformer, state: StateDict) -> str:
  """A sentence naming a classifier / regressor mismatch of the head, or ''."""
  head = next((np.asarray(v) for k, v in state.items() if k.endswith("fc_head.2.weight")), None)
  if head is None or head.ndim != 2:
    return ""
  outputs = {2: "classification", 1: "regression"}.get(head.shape[0])
  if outputs is None or outputs == model.config.mode:
    return ""
  kind = "ChromoformerClassifier" if outputs == "classification" else "ChromoformerRegressor"
  return (f" (fc_head.2.weight has {head.shape[0]} output(s): a {kind} state dict; build the "
          f"model with mode: {outputs})")


def load_chromoformer_state_dict(model: Chromoformer,
                                 source: Union[str, os.PathLike, StateDict],
                                 strict: bool = True) -> LoadReport:
  """Loads a dohlee/chromoformer state dict (.npz path or mapping) into `model`.

  Both naming schemes are accepted (ChromoformerClassifier / ChromoformerRegressor, and the
  legacy `Chromoformer`). Unused reference parameters are accepted and reported.

  Raises:
    StateDictError: listing every missing, unexpected and mis-shaped key (and naming a
      classifier / regressor mismatch of the head); nothing is assigned then.
  """
  if not isinstance(model, Chromoformer):
    raise TypeError(f"expected a Chromoformer, got {type(model).__name__}")
  state = read_state_dict(source)
  expected = chromoformer_parameter_map(model, legacy=is_legacy_state_dict(state))
  try:
    report = assign_state_dict(model, state, expected, strict)
  except StateDictError as e:
    where = f"{os.fspath(source)}: " if isinstance(source, (str, os.PathLike)) else ""
    raise StateDictError(f"{where}{e}{_mode_hint(model, state)}") from None
  log.info("Chromoformer reference weights: %s", report.summary())
  return report


def export_chromoformer_state_dict(model: Chromoformer, legacy: bool = False
                                   ) -> "collections.OrderedDict[str, np.ndarray]":
  """The inverse of `load_chromoformer_state_dict`: {reference name: array, torch layout},
  with the reference's unused parameters at their initial values (gamma_f and LayerNorm
  weights 1, the rest 0), so `torch_model.load_state_dict` accepts it."""
  out = collections.OrderedDict()
  for name, entry in chromoformer_parameter_map(model, legacy).items():
    if isinstance(entry, UnusedParameter):
      out[name] = np.full(entry.shape, entry.fill, np.float32)
    else:
      out[name] = to_torch_layout(entry.variable.numpy(), entry.layout)
  return out


# `convert.import_reference_weights(model, "weights.npz")` (CLI --reference-weights).
register_reference_importer(Chromoformer, load_chromoformer_state_dict)

__all__ = ["chromoformer_parameter_map", "export_chromoformer_state_dict",
           "is_legacy_state_dict", "load_chromoformer_state_dict"]
