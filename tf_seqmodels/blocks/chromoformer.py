"""Chromoformer's transformers (Lee et al. 2022; dohlee/chromoformer `modules.py`, `net.py`).

All layers are post-LayerNorm, as in the reference:

    attention    x <- LN(x + Linear(Attention(x)))
    feed-forward x <- LN(x + Linear(ReLU(Linear(x))))

Masks are validity vectors (1 = real bin / token, 0 = padding). The reference's 2-D boolean
masks are their outer products (query valid AND key valid); masked logits are *replaced* by
-1e9 (not added to), so a fully masked query row attends uniformly, exactly as the reference's
`masked_fill`. Rows of padded queries are never read by the model's outputs.

Linear layers start from PyTorch's default initialisation (weights and biases uniform in
+-1/sqrt(fan_in)), so a fresh model behaves like a fresh reference model.
"""

from __future__ import annotations

import math
from typing import Optional

import sonnet as snt
import tensorflow as tf

# The reference's `_pos_enc` (sin on even, cos on odd channels, float64 then rounded) is the
# package's one sinusoidal encoding.
from tf_seqmodels.blocks.absolute_positions import sinusoidal_position_encoding
from tf_seqmodels.blocks.core import shape_list

MASKED_LOGIT = -1e9


def torch_linear(output_size: int, input_size: int, with_bias: bool = True,
                 name: Optional[str] = None) -> snt.Linear:
  """snt.Linear initialised like torch.nn.Linear (uniform +-1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(input_size)
  return snt.Linear(output_size, with_bias=with_bias,
                    w_init=snt.initializers.RandomUniform(-bound, bound),
                    b_init=snt.initializers.RandomUniform(-bound, bound) if with_bias else None,
                    name=name)


def pair_mask(query_valid: tf.Tensor, key_valid: tf.Tensor) -> tf.Tensor:
  """[..., Q] and [..., K] validity -> [..., 1, Q, K] (1 where both are valid; the 1 is heads)."""
  mask = query_valid[..., :, tf.newaxis] * key_valid[..., tf.newaxis, :]
  return mask[..., tf.newaxis, :, :]


def _split_heads(x: tf.Tensor, num_heads: int) -> tf.Tensor:
  """[B, T, H * D] -> [B, H, T, D]."""
  batch, length, channels = shape_list(x)
  x = tf.reshape(x, [batch, length, num_heads, channels // num_heads])
  return tf.transpose(x, [0, 2, 1, 3])


def _merge_heads(x: tf.Tensor) -> tf.Tensor:
  """[B, H, T, D] -> [B, T, H * D]."""
  batch, heads, length, size = shape_list(x)
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [batch, length, heads * size])


class ChromoformerAttention(snt.Module):
  """Multi-head attention + output Linear + residual + LayerNorm (post-LN).

  Self-attention (`cross=False`): one bias-free projection of x gives Q, K, V (and, with
  `gated`, a gate G; the output per head is softmax(QK^T/sqrt(d) + gamma_h * bias) V * sigmoid(G)).
  Cross-attention (`cross=True`, the pairwise interaction transformer): Q from the query
  input, K and V from a second input; the residual is on the query input.

  Shapes: queries [B, Tq, C], keys [B, Tk, C] -> [B, Tq, C]; attention width
  `attention_size` = heads x head size.

  Attributes:
    gamma: [heads] learnable scale of the additive logit bias (init 1; the Hi-C term), in
      gated attention only.
  """

  def __init__(self, channels: int, num_heads: int, attention_size: int, gated: bool = False,
               cross: bool = False, name: Optional[str] = None):
    super().__init__(name=name)
    if attention_size % num_heads:
      raise ValueError(f"attention size {attention_size} must be divisible by {num_heads} heads")
    self.num_heads = num_heads
    self.head_size = attention_size // num_heads
    self.gated = gated
    self.cross = cross
    if cross:
      self.query_projection = torch_linear(attention_size, channels, with_bias=False,
                                           name="query_projection")
      self.key_value_projection = torch_linear(2 * attention_size, channels, with_bias=False,
                                               name="key_value_projection")
    else:
      parts = 4 if gated else 3
      self.projection = torch_linear(parts * attention_size, channels, with_bias=False,
                                     name="projection")
    self.output = torch_linear(channels, attention_size, name="output")
    self.norm = snt.LayerNorm(axis=-1, create_scale=True, create_offset=True, eps=1e-5,
                              name="norm")
    # Only the regulation transformer receives a bias; elsewhere gamma would get no gradient.
    self.gamma = tf.Variable(tf.ones([num_heads]), name="gamma") if gated else None

  def attention_weights(self, queries: tf.Tensor, keys: tf.Tensor,
                        mask: Optional[tf.Tensor] = None,
                        bias: Optional[tf.Tensor] = None) -> tuple[tf.Tensor, tuple]:
    """Softmax attention weights [B, H, Tq, Tk] and the projected (V, gate) they weigh.

    Args:
      queries: [B, Tq, C]; keys: [B, Tk, C] (the same tensor for self-attention).
      mask: [B, 1, Tq, Tk] (1 = attend) or None.
      bias: [B, Tq, Tk] added to the logits times gamma (per head) or None.
    """
    gate = None
    if self.cross:
      q = self.query_projection(queries)
      k, v = tf.split(self.key_value_projection(keys), 2, axis=-1)
    elif self.gated:
      q, k, v, gate = tf.split(self.projection(queries), 4, axis=-1)
    else:
      q, k, v = tf.split(self.projection(queries), 3, axis=-1)
    q, k, v = (_split_heads(t, self.num_heads) for t in (q, k, v))
    logits = tf.matmul(q, k, transpose_b=True) / math.sqrt(self.head_size)
    if bias is not None:
      if self.gamma is None:
        raise ValueError("only gated (regulation) attention takes an interaction bias")
      scaled = self.gamma[tf.newaxis, :, tf.newaxis, tf.newaxis] * bias[:, tf.newaxis]
      logits += tf.cast(scaled, logits.dtype)  # mixed precision: layers may run in bfloat16
    if mask is not None:
      logits = tf.where(mask > 0.5, logits, tf.cast(MASKED_LOGIT, logits.dtype))
    weights = tf.nn.softmax(logits, axis=-1)
    return weights, (v, None if gate is None else _split_heads(gate, self.num_heads))

  def __call__(self, queries: tf.Tensor, keys: Optional[tf.Tensor] = None,
               mask: Optional[tf.Tensor] = None, bias: Optional[tf.Tensor] = None) -> tf.Tensor:
    keys = queries if keys is None else keys
    weights, (v, gate) = self.attention_weights(queries, keys, mask, bias)
    attended = tf.matmul(weights, v)
    if gate is not None:
      attended *= tf.sigmoid(gate)
    return self.norm(queries + self.output(_merge_heads(attended)))


class PostNormFeedForward(snt.Module):
  """LN(x + Linear(ReLU(Linear_ff(x)))). Shapes: [B, T, C] -> [B, T, C]."""

  def __init__(self, channels: int, hidden_size: int, name: Optional[str] = None):
    super().__init__(name=name)
    self.hidden = torch_linear(hidden_size, channels, name="hidden")
    self.output = torch_linear(channels, hidden_size, name="output")
    self.norm = snt.LayerNorm(axis=-1, create_scale=True, create_offset=True, eps=1e-5,
                              name="norm")

  def __call__(self, x: tf.Tensor) -> tf.Tensor:
    return self.norm(x + self.output(tf.nn.relu(self.hidden(x))))


class ChromoformerLayer(snt.Module):
  """Attention then feed-forward (the reference's AttentionBlock / PairwiseAttentionBlock)."""

  def __init__(self, channels: int, num_heads: int, attention_size: int, hidden_size: int,
               gated: bool = False, cross: bool = False, name: Optional[str] = None):
    super().__init__(name=name)
    self.attention = ChromoformerAttention(channels, num_heads, attention_size, gated=gated,
                                           cross=cross, name="attention")
    self.feed_forward = PostNormFeedForward(channels, hidden_size, name="feed_forward")

  def __call__(self, queries: tf.Tensor, keys: Optional[tf.Tensor] = None,
               mask: Optional[tf.Tensor] = None, bias: Optional[tf.Tensor] = None) -> tf.Tensor:
    return self.feed_forward(self.attention(queries, keys, mask, bias))


class EmbeddingTransformer(snt.Module):
  """Embeds the promoter's bins: Linear(marks -> C, no bias) + sinusoidal positions + layers.

  Shapes: marks [B, L, F], valid [B, L] -> (all bins [B, L, C], centre bin L // 2 [B, C]).
  """

  def __init__(self, channels: int, num_layers: int, num_heads: int, hidden_size: int,
               num_marks: int, name: Optional[str] = None):
    super().__init__(name=name)
    self.channels = channels
    self.projection = torch_linear(channels, num_marks, with_bias=False, name="projection")
    self.layers = [ChromoformerLayer(channels, num_heads, channels, hidden_size, name=f"layer_{i}")
                   for i in range(num_layers)]

  def __call__(self, marks: tf.Tensor, valid: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    length = marks.shape[1]
    x = self.projection(marks)
    x += tf.cast(sinusoidal_position_encoding(length, self.channels), x.dtype)
    mask = pair_mask(valid, valid)
    for layer in self.layers:
      x = layer(x, mask=mask)
    return x, x[:, length // 2]


class PairwiseInteractionTransformer(snt.Module):
  """Links promoter bins (queries) to each pCRE's bins (keys/values).

  Promoter embeddings are projected (no bias); raw pCRE marks are projected (no bias) and get
  sinusoidal positions (the promoter queries get none). Each of the I pCREs is processed
  independently.

  Only the centre promoter bin L // 2 reaches the output, and every layer is row-wise in its
  queries (attention rows, the residual, the feed-forward and LayerNorm act per query; the
  keys/values are the pCRE bins in every layer), so the centre query is computed alone:
  the same numbers as the reference's [L, L] pass, at 1/L of its attention cost.

  Shapes: promoter [B, L, C], pCRE marks [B, I, L, F], promoter valid [B, L],
  pCRE valid [B, I, L] -> centre promoter bin per pCRE [B, I, C].
  """

  def __init__(self, channels: int, num_layers: int, num_heads: int, hidden_size: int,
               num_marks: int, name: Optional[str] = None):
    super().__init__(name=name)
    self.channels = channels
    self.promoter_projection = torch_linear(channels, channels, with_bias=False,
                                            name="promoter_projection")
    self.pcre_projection = torch_linear(channels, num_marks, with_bias=False,
                                        name="pcre_projection")
    self.layers = [ChromoformerLayer(channels, num_heads, channels, hidden_size, cross=True,
                                     name=f"layer_{i}") for i in range(num_layers)]

  def layer_outputs(self, promoter: tf.Tensor, pcre_marks: tf.Tensor, promoter_valid: tf.Tensor,
                    pcre_valid: tf.Tensor) -> list[tf.Tensor]:
    """The centre bin after each layer, [[B, I, C]] x layers (the projected query if none)."""
    batch, num_pcres, length, marks = shape_list(pcre_marks)
    centre = promoter.shape[1] // 2
    # One row per (gene, pCRE): the promoter's centre bin is repeated for each of its pCREs.
    queries = tf.repeat(self.promoter_projection(promoter[:, centre:centre + 1]), num_pcres,
                        axis=0)  # [B * I, 1, C]
    query_valid = tf.repeat(promoter_valid[:, centre:centre + 1], num_pcres, axis=0)
    keys = self.pcre_projection(tf.reshape(pcre_marks, [batch * num_pcres, length, marks]))
    keys += tf.cast(sinusoidal_position_encoding(length, self.channels), keys.dtype)
    mask = pair_mask(query_valid, tf.reshape(pcre_valid, [batch * num_pcres, length]))
    x = queries
    outputs = []
    for layer in self.layers:
      x = layer(x, keys, mask=mask)
      outputs.append(tf.reshape(x, [batch, num_pcres, self.channels]))
    return outputs or [tf.reshape(x, [batch, num_pcres, self.channels])]

  def __call__(self, promoter: tf.Tensor, pcre_marks: tf.Tensor, promoter_valid: tf.Tensor,
               pcre_valid: tf.Tensor) -> tf.Tensor:
    return self.layer_outputs(promoter, pcre_marks, promoter_valid, pcre_valid)[-1]


class RegulationTransformer(snt.Module):
  """Gated self-attention over [promoter, pCRE_1..I] tokens, logits biased by Hi-C scores.

  Shapes: tokens [B, 1 + I, C], token valid [B, 1 + I], interaction frequencies
  [B, 1 + I, 1 + I] -> [B, 1 + I, C].
  """

  def __init__(self, channels: int, num_layers: int, num_heads: int, attention_size: int,
               hidden_size: int, name: Optional[str] = None):
    super().__init__(name=name)
    self.layers = [ChromoformerLayer(channels, num_heads, attention_size, hidden_size, gated=True,
                                     name=f"layer_{i}") for i in range(num_layers)]

  def layer_outputs(self, tokens: tf.Tensor, valid: tf.Tensor,
                    frequencies: tf.Tensor) -> list[tf.Tensor]:
    """The tokens after each layer, [[B, 1 + I, C]] x layers (the input tokens if none).

    The Hi-C bias `frequencies` enters every layer (gamma per layer and head)."""
    mask = pair_mask(valid, valid)
    x = tokens
    outputs = []
    for layer in self.layers:
      x = layer(x, mask=mask, bias=frequencies)
      outputs.append(x)
    return outputs or [x]

  def __call__(self, tokens: tf.Tensor, valid: tf.Tensor, frequencies: tf.Tensor) -> tf.Tensor:
    return self.layer_outputs(tokens, valid, frequencies)[-1]
