"""Chromoformer: gene expression from histone marks and 3D interactions (Lee et al. 2022).

Reference: dohlee/chromoformer (PyTorch, GPU-only); this module runs on CPU and GPU.

Inputs (a dict; L_b = window_size // b bins at bin size b, I = max_pcres, F = num_marks):

    promoter_{b}       [B, L_b, F]     log(x + 1) binned marks, TSS at the centre bin L_b // 2,
                                        flipped for minus-strand genes
    promoter_mask_{b}  [B, L_b]        1 = real bin, 0 = padding
    pcre_{b}           [B, I, L_b, F]  marks of the putative cis-regulatory elements (centred)
    pcre_mask_{b}      [B, I, L_b]     1 = real bin of a present pCRE
    pcre_present       [B, I]          1 = the pCRE slot holds an interaction
    interaction_freq   [B, 1 + I, 1 + I]  Hi-C bias of the regulation logits (the reference
                                        fills row 0: promoter -> pCRE i at column i + 1)

Per resolution b:

    embedding     Linear(F -> C) + positions, 1 layer        -> promoter bins [B, L_b, C]
    pairwise      promoter bins x each pCRE's bins, 2 layers  -> [B, I, C] (centre bin)
    regulation    [promoter centre, pCREs] tokens, 6 gated layers, logits + gamma_h * freq
                  -> promoter token + its pre-regulation embedding      [B, C]

    embed(inputs) = concat over resolutions                             [B, 3C]
    heads: classification {"logits": [B, 2]} (expressed above the median: class 1)
           regression     {"expression": [B]} (log2(RPKM + 1))
    via Linear(3C -> head_hidden) -> ReLU -> Linear.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Mapping, Optional

import numpy as np
import tensorflow as tf

from tf_seqmodels.blocks.chromoformer import (EmbeddingTransformer, PairwiseInteractionTransformer,
                                              RegulationTransformer, pair_mask, torch_linear)
from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.data.encoding import SequenceError
from tf_seqmodels.models.base import NoAttentionError, SequenceModel
from tf_seqmodels.models.registry import register_model

LOGITS_HEAD = "logits"
EXPRESSION_HEAD = "expression"
PCRE_PRESENT = "pcre_present"
INTERACTION_FREQ = "interaction_freq"


@dataclasses.dataclass(frozen=True)
class ChromoformerConfig(Config):
  """Chromoformer hyper-parameters; the defaults are the reference's (`configs/default.yaml`).

  Attributes:
    mode: "classification" (2 logits, expressed >= median) or "regression" (log2 RPKM + 1).
    num_marks: histone marks per bin (the reference: H3K4me1, H3K4me3, H3K9me3, H3K27me3,
      H3K36me3, H3K27ac, H3K9ac).
    bin_sizes: one resolution per bin size (bp), each with its own three transformers.
    window_size: bp around the TSS (and the maximum pCRE length) = bins x bin size.
    max_pcres: pCRE slots per gene (i_max).
    channels: d_emb, the token width of all three transformers.
    embedding_*, pairwise_*: layers, heads and feed-forward width (attention width = channels).
    regulation_attention_size: attention width of the regulation transformer (heads x 32).
    head_hidden: width of the output MLP's hidden layer.
  """

  mode: Literal["classification", "regression"] = "classification"
  num_marks: int = 7
  bin_sizes: tuple[int, ...] = (2000, 500, 100)
  window_size: int = 40000
  max_pcres: int = 8
  channels: int = 128
  embedding_layers: int = 1
  embedding_heads: int = 2
  embedding_hidden: int = 128
  pairwise_layers: int = 2
  pairwise_heads: int = 2
  pairwise_hidden: int = 256
  regulation_layers: int = 6
  regulation_heads: int = 8
  regulation_attention_size: int = 256
  regulation_hidden: int = 256
  head_hidden: int = 128

  def validate(self) -> None:
    def fail(msg):
      raise ConfigError(f"ChromoformerConfig: {msg}")

    for name in ("num_marks", "window_size", "max_pcres", "channels", "embedding_layers",
                 "embedding_heads", "embedding_hidden", "pairwise_heads", "pairwise_hidden",
                 "regulation_heads", "regulation_attention_size", "regulation_hidden",
                 "head_hidden"):
      if getattr(self, name) < 1:
        fail(f"{name} must be >= 1, got {getattr(self, name)}")
    for name in ("pairwise_layers", "regulation_layers"):
      if getattr(self, name) < 0:
        fail(f"{name} must be >= 0, got {getattr(self, name)}")
    if not self.bin_sizes or len(set(self.bin_sizes)) != len(self.bin_sizes):
      fail(f"bin_sizes must be distinct and non-empty, got {self.bin_sizes}")
    for size in self.bin_sizes:
      if size < 1 or self.window_size % size:
        fail(f"bin size {size} must be positive and divide window_size {self.window_size}")
    for name, heads, width in (("embedding", self.embedding_heads, self.channels),
                               ("pairwise", self.pairwise_heads, self.channels),
                               ("regulation", self.regulation_heads,
                                self.regulation_attention_size)):
      if width % heads:
        fail(f"{name}: attention width {width} is not divisible by {heads} heads")
    if self.channels % 2:
      fail(f"channels must be even (sinusoidal positions), got {self.channels}")

  def num_bins(self, bin_size: int) -> int:
    return self.window_size // bin_size


def input_shapes(config: ChromoformerConfig) -> dict[str, tuple[int, ...]]:
  """{input name: shape without the batch dimension}, in a fixed order."""
  shapes: dict[str, tuple[int, ...]] = {}
  for size in config.bin_sizes:
    bins = config.num_bins(size)
    shapes[f"promoter_{size}"] = (bins, config.num_marks)
    shapes[f"promoter_mask_{size}"] = (bins,)
    shapes[f"pcre_{size}"] = (config.max_pcres, bins, config.num_marks)
    shapes[f"pcre_mask_{size}"] = (config.max_pcres, bins)
  shapes[PCRE_PRESENT] = (config.max_pcres,)
  shapes[INTERACTION_FREQ] = (config.max_pcres + 1, config.max_pcres + 1)
  return shapes


def demo_config() -> ChromoformerConfig:
  """A small, fast Chromoformer (4 kb window, 3 resolutions, 2 pCREs, width 16)."""
  return ChromoformerConfig(num_marks=7, bin_sizes=(2000, 500, 250), window_size=4000,
                            max_pcres=2, channels=16, embedding_hidden=16, pairwise_layers=1,
                            pairwise_hidden=16, regulation_layers=1, regulation_heads=2,
                            regulation_attention_size=16, regulation_hidden=16, head_hidden=16)


@register_model("chromoformer", ChromoformerConfig,
                "Chromoformer: expression from histone marks + Hi-C pCRE interactions",
                demo_config, search_space={
                    "model.config.channels": {"type": "choice", "values": [64, 128]},
                    "model.config.regulation_layers": {"type": "int", "min": 2, "max": 6},
                    "model.config.pairwise_layers": {"type": "int", "min": 1, "max": 3},
                    "optimizer.learning_rate": {"type": "float", "min": 1e-5, "max": 1e-3,
                                                "sampling": "log"}})
class Chromoformer(SequenceModel):
  """Chromoformer (see the module docstring for inputs and outputs)."""

  citation = "https://doi.org/10.1038/s41467-022-34152-5"  # Lee, Yang, Kim 2022, Nat Commun

  def __init__(self, config: Optional[ChromoformerConfig] = None, name: Optional[str] = None):
    config = config or ChromoformerConfig()
    super().__init__(config, name=name)
    c = config
    # Lists parallel to bin_sizes (checkpoint keys must not be integers).
    self.embedding = [EmbeddingTransformer(
        c.channels, c.embedding_layers, c.embedding_heads, c.embedding_hidden, c.num_marks,
        name=f"embedding_{size}") for size in c.bin_sizes]
    self.pairwise = [PairwiseInteractionTransformer(
        c.channels, c.pairwise_layers, c.pairwise_heads, c.pairwise_hidden, c.num_marks,
        name=f"pairwise_{size}") for size in c.bin_sizes]
    self.regulation = [RegulationTransformer(
        c.channels, c.regulation_layers, c.regulation_heads, c.regulation_attention_size,
        c.regulation_hidden, name=f"regulation_{size}") for size in c.bin_sizes]
    width = c.channels * len(c.bin_sizes)
    self.head_hidden = torch_linear(c.head_hidden, width, name="head_hidden")
    outputs = 2 if c.mode == "classification" else 1
    self.head_output = torch_linear(outputs, c.head_hidden, name="head_output")

  # --- contract ------------------------------------------------------------------------------
  @property
  def input_channels(self) -> int:
    return self.config.num_marks

  @property
  def head_names(self) -> tuple[str, ...]:
    return (LOGITS_HEAD,) if self.config.mode == "classification" else (EXPRESSION_HEAD,)

  @property
  def takes_dna_sequence(self) -> bool:
    return False

  def input_spec(self, batch_size: Optional[int] = None) -> dict[str, tf.TensorSpec]:
    return {name: tf.TensorSpec([batch_size, *shape], tf.float32, name=name)
            for name, shape in input_shapes(self.config).items()}

  def build(self, sequence_length: Optional[int] = None, batch_size: Optional[int] = 1) -> None:
    """Creates the variables with one eager example of zeros (variable shapes depend on
    neither the batch nor the bins); inside a tf.function, by tracing as the base class."""
    if sequence_length is not None:
      raise ValueError("Chromoformer takes several inputs; build() has no sequence_length")
    if not tf.executing_eagerly():
      super().build(batch_size=batch_size)
      return
    # Running nine small transformers once costs ~10x less than tracing them.
    zeros = {name: tf.zeros([1, *spec.shape[1:]], spec.dtype)
             for name, spec in self.input_spec().items()}
    self(zeros, is_training=False)
    self._built = True

  def check_inputs(self, inputs) -> None:
    """Raises SequenceError naming missing/unknown keys or wrong shapes."""
    if not isinstance(inputs, Mapping):
      raise SequenceError(f"Chromoformer takes a dict of inputs "
                          f"{sorted(input_shapes(self.config))}, got {type(inputs).__name__}")
    expected = input_shapes(self.config)
    missing = [k for k in expected if k not in inputs]
    if missing:
      raise SequenceError(f"Chromoformer inputs are missing {missing}")
    unknown = sorted(set(inputs) - set(expected))
    if unknown:
      raise SequenceError(f"Chromoformer got unknown inputs {unknown}; expected {list(expected)}")
    batch = None
    for name, shape in expected.items():
      value = inputs[name]
      static = tf.TensorShape(value.shape if hasattr(value, "shape") else np.shape(value))
      if static.rank is None:
        continue  # nothing known statically; the graph's own shape checks apply
      actual = tuple(static.as_list())
      if len(actual) != len(shape) + 1 or any(
          a is not None and a != e for a, e in zip(actual[1:], shape)):
        raise SequenceError(f"Chromoformer input {name!r} must have shape [batch, "
                            f"{', '.join(map(str, shape))}], got {list(actual)}")
      if actual[0] is not None:
        if batch is not None and actual[0] != batch:
          raise SequenceError(f"Chromoformer inputs disagree on the batch size: {name!r} has "
                              f"{actual[0]}, others {batch}")
        batch = actual[0]

  def example_inputs(self, batch_size: int, seed: int = 0, length: Optional[int] = None):
    """Seeded valid inputs {name: [B, ...]} through the data pipeline's binning: random
    marks and strands, 0..max_pcres pCREs of random lengths (example 0 fills every slot,
    example 1 none), so masks, pcre_present and interaction_freq are consistent 0/1 / scores."""
    from tf_seqmodels.data.chromoformer import ChromoformerDataConfig, example_arrays
    del length  # the window fixes every shape
    c = self.config
    data_config = ChromoformerDataConfig.from_model_config(c)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(batch_size):
      count = (c.max_pcres, 0)[i] if i < 2 else int(rng.integers(0, c.max_pcres + 1))
      promoter = rng.gamma(1.0, 1.0, (c.num_marks, c.window_size))
      pcres = [rng.gamma(1.0, 1.0, (c.num_marks, int(rng.integers(1, c.window_size + 1))))
               for _ in range(count)]
      scores = sorted(rng.uniform(data_config.min_score, 5.0, count).tolist(), reverse=True)
      strand = "-" if rng.random() < 0.5 else "+"
      rows.append(example_arrays(promoter, strand, pcres, scores, data_config))
    return {name: np.stack([r[name] for r in rows]) for name in input_shapes(c)}

  # --- forward -------------------------------------------------------------------------------
  def resolution(self, bin_size: int) -> int:
    """Index of `bin_size` in config.bin_sizes."""
    if bin_size not in self.config.bin_sizes:
      raise ValueError(f"bin size {bin_size} is not one of {self.config.bin_sizes}")
    return self.config.bin_sizes.index(bin_size)

  def _tokens(self, inputs, size: int, record: Optional[dict] = None
              ) -> tuple[tf.Tensor, tf.Tensor]:
    """Regulation-transformer input tokens [B, 1 + I, C] and their validity [B, 1 + I];
    the embedding and pairwise activations go into `record` when given."""
    i = self.resolution(size)
    promoter_all, promoter_centre = self.embedding[i](inputs[f"promoter_{size}"],
                                                      inputs[f"promoter_mask_{size}"])
    pairwise = self.pairwise[i].layer_outputs(promoter_all, inputs[f"pcre_{size}"],
                                              inputs[f"promoter_mask_{size}"],
                                              inputs[f"pcre_mask_{size}"])
    present = inputs[PCRE_PRESENT]
    valid = tf.concat([tf.ones_like(present[:, :1]), present], axis=1)
    if record is not None:
      record[f"embed/{size}/full"] = promoter_all
      record[f"embed/{size}/tss"] = promoter_centre
      for layer, value in enumerate(pairwise if self.config.pairwise_layers else []):
        record[f"pairwise/{size}/layer{layer}_tss"] = value
      record[f"pairwise/{size}/out"] = pairwise[-1]
    return tf.concat([promoter_centre[:, tf.newaxis], pairwise[-1]], axis=1), valid

  def embed(self, inputs, is_training: bool = False) -> tf.Tensor:
    """Promoter embeddings concatenated over resolutions [B, channels x resolutions]."""
    del is_training  # the reference uses no dropout
    # Static (Python) checks: inside a tf.function they run once, at trace time.
    self.check_inputs(inputs)
    return self._embed(inputs)

  def _embed(self, inputs, record: Optional[dict] = None) -> tf.Tensor:
    inputs = {k: tf.cast(v, tf.float32) for k, v in inputs.items()}
    regulated, pre_regulation = [], []
    for size in self.config.bin_sizes:
      tokens, valid = self._tokens(inputs, size, record)
      layers = self.regulation[self.resolution(size)].layer_outputs(tokens, valid,
                                                                   inputs[INTERACTION_FREQ])
      if record is not None:
        record[f"regulation/{size}/in"] = tokens
        for layer, value in enumerate(layers if self.config.regulation_layers else []):
          record[f"regulation/{size}/layer{layer}"] = value
        record[f"regulation/{size}/out"] = layers[-1]
      regulated.append(layers[-1][:, 0])
      pre_regulation.append(tokens[:, 0])
    # The reference adds the promoter tokens' pre-regulation embeddings back:
    # concat(regulation out[:, 0]) + concat(regulation in[:, 0]), resolutions in config order.
    return tf.concat(regulated, axis=-1) + tf.concat(pre_regulation, axis=-1)

  def _forward(self, inputs, record: Optional[dict] = None) -> dict[str, tf.Tensor]:
    head_in = self._embed(inputs, record)
    hidden = tf.nn.relu(self.head_hidden(head_in))
    output = self.head_output(hidden)
    if record is not None:
      record["head_in"] = head_in
      record["head_hidden"] = hidden
    if self.config.mode == "classification":
      return {LOGITS_HEAD: output}
    return {EXPRESSION_HEAD: output[:, 0]}

  def __call__(self, inputs, is_training: bool = False) -> dict[str, tf.Tensor]:
    self.check_inputs(inputs)  # once per call (trace), not again in embed
    return self._forward(inputs)

  def activations(self, inputs) -> dict[str, tf.Tensor]:
    """Every intermediate of one inference pass, named as the reference fixture's arrays:

        embed/{b}/full [B, L_b, C]; embed/{b}/tss [B, C] (centre bin L_b // 2)
        pairwise/{b}/layer{l}_tss, pairwise/{b}/out [B, I, C] (centre promoter bin per pCRE)
        regulation/{b}/in, regulation/{b}/layer{l}, regulation/{b}/out [B, 1 + I, C]
        head_in [B, C x resolutions]; head_hidden [B, head_hidden]
        plus the heads ("logits" [B, 2] or "expression" [B]).
    """
    self.check_inputs(inputs)
    inputs = {k: tf.convert_to_tensor(v, tf.float32) for k, v in inputs.items()}
    record: dict[str, tf.Tensor] = {}
    record.update(self._forward(inputs, record))
    return record

  def attention_weights(self, inputs) -> tf.Tensor:
    """Regulation-transformer attention at inference, [B, resolutions x layers, heads,
    1 + I, 1 + I] (resolution-major; token 0 is the promoter, token i the pCRE in slot i)."""
    if not self.config.regulation_layers:
      raise NoAttentionError("this Chromoformer has no regulation (attention) layers")
    self.check_inputs(inputs)
    weights = []
    for size in self.config.bin_sizes:
      for layer in range(self.config.regulation_layers):
        weights.append(regulation_attention(self, inputs, size, layer))
    return tf.stack(weights, axis=1)

  def expressed_probability(self, inputs) -> tf.Tensor:
    """Classification: P(expressed above the median) [B] (softmax of the logits, class 1).

    The reference's `demo/run_demo.py` reports sigmoid(logit 1) instead (the `probability` of
    `data.chromoformer.predict_reference_layout`)."""
    if self.config.mode != "classification":
      raise ValueError("expressed_probability needs a classification Chromoformer")
    return tf.nn.softmax(self.predict_on_batch(inputs)[LOGITS_HEAD], axis=-1)[:, 1]


def regulation_attention(model: Chromoformer, inputs, bin_size: int,
                         layer: int = 0) -> tf.Tensor:
  """Attention weights [B, H, 1 + I, 1 + I] of one regulation layer (for analysis and tests)."""
  inputs = {k: tf.convert_to_tensor(v, tf.float32) for k, v in inputs.items()}
  tokens, valid = model._tokens(inputs, bin_size)  # pylint: disable=protected-access
  transformer = model.regulation[model.resolution(bin_size)]
  x = tokens
  mask = pair_mask(valid, valid)
  for block in transformer.layers[:layer]:
    x = block(x, mask=mask, bias=inputs[INTERACTION_FREQ])
  weights, _ = transformer.layers[layer].attention.attention_weights(
      x, x, mask, inputs[INTERACTION_FREQ])
  return weights


__all__ = ["Chromoformer", "ChromoformerConfig", "demo_config", "input_shapes",
           "regulation_attention", "LOGITS_HEAD", "EXPRESSION_HEAD"]
