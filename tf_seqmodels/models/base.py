"""The model contract every tf-seqmodels model honours.

    model(inputs [B, L, C] float32, is_training: bool) -> {head name: tf.Tensor}
    model.embed(inputs, is_training) -> trunk embedding tensor
    model.config -> the typed config that rebuilds the model

Trainers, exporters, tuners and analyses only use this interface (plus `config`,
`input_channels`, `head_names`, `input_spec` and `build`), never a model's internals.

Most models read one-hot DNA (`takes_dna_sequence` is True). Models whose input is
not a single sequence tensor (Chromoformer: binned histone marks, pCREs, Hi-C
frequencies, masks) override `input_spec` to return a dict of `tf.TensorSpec` and
`check_inputs`; they then receive that dict as `inputs`. Generic code handles both
through `tf.nest` over `input_spec()`; DNA-only analyses (variant effects,
contribution scores over nucleotides) check `takes_dna_sequence`.
"""

from __future__ import annotations

import abc
from typing import Mapping, Optional

import numpy as np
import sonnet as snt
import tensorflow as tf

from tf_seqmodels.config import Config
from tf_seqmodels.data.encoding import SequenceError, check_one_hot


HEAD_KINDS = ("tracks", "profile_logits", "log_counts", "scalar")


class NoAttentionError(ValueError):
  """The model (or this configuration of it) has no self-attention to extract weights from."""


class SequenceModel(snt.Module, abc.ABC):
  """Base class: a sequence-to-function model returning a dict of named heads."""

  # The publication describing the architecture (a DOI URL): exports record it (Kipoi cite_as).
  citation: Optional[str] = None
  # Whether the published model's predictions average the forward and reverse-complement
  # strands (DREAM's test-time convention): `predict` does so by default, exports record it.
  strand_averaged_prediction: bool = False

  def __init__(self, config: Config, name: Optional[str] = None):
    super().__init__(name=name)
    self.config = config

  # --- what each model defines ------------------------------------------------------------
  @property
  @abc.abstractmethod
  def input_channels(self) -> int:
    """Channels of the input encoding (4 for one-hot DNA)."""

  @property
  @abc.abstractmethod
  def head_names(self) -> tuple[str, ...]:
    """Names of the output heads, in a fixed order."""

  @property
  def sequence_length(self) -> Optional[int]:
    """The length the published model is trained on; None if it has none."""
    return getattr(self.config, "sequence_length", None)

  @property
  def takes_dna_sequence(self) -> bool:
    """Whether `inputs` is one-hot DNA [B, L, 4] (False for multi-input models)."""
    return True

  @property
  def dynamic_length(self) -> bool:
    """Whether one module serves any valid input length (else only `sequence_length`)."""
    return False

  @property
  def min_length(self) -> int:
    """Dynamic-length models: the shortest valid input (exported graphs check it)."""
    return 1

  @property
  def length_multiple(self) -> int:
    """Dynamic-length models: valid input lengths are multiples of this (Enformer: its
    128-bp bins). `check_length` and the exported graphs' length checks read both."""
    return 1

  @property
  def published_input_length(self) -> Optional[int]:
    """A longer input length that exported models also accept, centre-cropping it to
    `sequence_length` first (Enformer's TF-Hub module: 393,216 bp -> 196,608); None if none."""
    return None

  @property
  def position_axes(self) -> dict[str, Optional[int]]:
    """Per head, the output axis that runs along the input sequence (None: one value per
    sequence). Reverse-complement averaging flips outputs back along this axis."""
    return {head: None for head in self.head_names}

  @property
  def head_kinds(self) -> dict[str, str]:
    """Per head, what its values mean (one of HEAD_KINDS), so analyses compare them soundly:

      "tracks"          non-negative signal per track, [B, bins, T] or [B, T] (Enformer):
                        differences and log fold changes of sums
      "profile_logits"  logits of a distribution over positions, [B, P] or [B, P, T]
                        (BPNet profile): softmax-invariant to shifts, compared as
                        distributions (Jensen-Shannon distance), never summed
      "log_counts"      log(1 + total counts) [B, 1]: differences are log fold changes
      "scalar"          any other value per sequence (expression, class logits)

    Default: "tracks" for positional heads (`position_axes`), "scalar" for the others.
    """
    axes = self.position_axes
    return {head: "tracks" if axes.get(head) is not None else "scalar" for head in self.head_names}

  def encode_dna(self, one_hot: tf.Tensor, is_reverse: bool = False) -> tf.Tensor:
    """Model inputs [B, L, input_channels] for one-hot ACGT DNA [B, L, 4] (differentiable).

    DNA analyses (variant effects, contribution scores) build one-hot ACGT and call this, so
    models with another channel order or extra flag channels override it. `is_reverse` says
    the sequence is a reverse-complemented copy (for models with a strand flag).
    """
    del is_reverse
    if self.input_channels != 4:
      raise SequenceError(f"{type(self).__name__} takes {self.input_channels} input channels "
                          f"and does not define encode_dna() for one-hot DNA")
    return one_hot

  def decode_dna(self, inputs: tf.Tensor) -> tf.Tensor:
    """One-hot ACGT DNA [B, L, 4] of model inputs [B, L, input_channels] (flag channels
    dropped): the inverse of `encode_dna`, so evaluations can augment dataset inputs
    (reverse complement, shifts) and re-encode the copies.

    The default reads the bases through `encode_dna` of the four unit vectors, which is exact
    whenever each base has its own channel (any channel order, plus flag channels that are 0
    on the forward strand), as for every model here; other encodings override this.
    """
    inputs = tf.convert_to_tensor(inputs, tf.float32)
    with tf.init_scope():  # a constant, computed eagerly even inside a tf.function
      basis = np.asarray(self.encode_dna(tf.eye(4, dtype=tf.float32)[None], is_reverse=False),
                         np.float32).reshape(4, -1)  # row b: the input vector of base b (ACGT)
    if not np.array_equal(basis @ basis.T, np.eye(4)):
      raise SequenceError(f"{type(self).__name__}.encode_dna() does not give each base its own "
                          f"channel; define decode_dna() to read DNA from its inputs")
    return tf.einsum("...c,bc->...b", inputs, tf.constant(basis))

  @snt.no_name_scope  # creates no variables; also callable on duck-typed contract models
  def example_inputs(self, batch_size: int, seed: int = 0, length: Optional[int] = None):
    """Seeded valid inputs of `batch_size` examples, as numpy (export parity checks, Kipoi
    example files): random one-hot ACGT DNA [B, L, 4] through `encode_dna` for DNA models;
    multi-input models override this (the default fills each spec with random values).

    Args:
      length: input length where the spec leaves it open (default: sequence_length).
    Raises:
      SequenceError: the length is unknown.
    """
    rng = np.random.default_rng(seed)
    spec = self.input_spec(batch_size)
    length = length or getattr(self, "sequence_length", None)

    def concrete(shape, what):
      dims = [length if d is None else d for d in shape]
      if any(d is None for d in dims):
        raise SequenceError(f"{what} of {type(self).__name__} has unknown dimensions {shape}: "
                            f"pass a length")
      return [int(d) for d in dims]

    if not isinstance(spec, tf.TensorSpec):
      def random(key, s):
        shape = concrete(s.shape.as_list(), f"input {key!r}")
        if s.dtype.is_floating:
          return rng.standard_normal(shape).astype(s.dtype.as_numpy_dtype)
        return rng.integers(0, 2, shape).astype(s.dtype.as_numpy_dtype)
      return {key: random(key, s) for key, s in spec.items()}
    batch, positions, channels = concrete(spec.shape.as_list(), "the input")
    dna = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (batch, positions))]
    encode = getattr(self, "encode_dna", None)  # duck-typed models may lack it
    if encode is not None:
      try:
        return np.asarray(encode(tf.constant(dna)), np.float32)
      except SequenceError:
        pass  # no encoding for its channels: ACGT first, other channels 0
    return np.concatenate([dna, np.zeros([batch, positions, channels - 4], np.float32)], -1)

  def attention_weights(self, inputs: tf.Tensor) -> tf.Tensor:
    """Attention weights [B, layers, heads, T, T] (query, key) at inference; models
    without self-attention raise NoAttentionError."""
    raise NoAttentionError(f"{type(self).__name__} has no attention weights to extract")

  def check_length(self, length: int) -> None:
    """Raises SequenceError if the model cannot process inputs of `length` positions."""
    if not self.dynamic_length:
      if self.sequence_length is not None and length != self.sequence_length:
        raise SequenceError(f"{type(self).__name__} expects sequences of length "
                            f"{self.sequence_length}, got {length}")
      return
    if length < self.min_length or length % self.length_multiple:
      raise SequenceError(f"{type(self).__name__} takes inputs of at least {self.min_length} "
                          f"positions, a multiple of {self.length_multiple}; got {length}")

  @abc.abstractmethod
  def embed(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Trunk embedding of `inputs` (the representation shared by all heads)."""

  @abc.abstractmethod
  def __call__(self, inputs: tf.Tensor, is_training: bool) -> dict[str, tf.Tensor]:
    """Head outputs of `inputs`."""

  # --- shared behaviour ---------------------------------------------------------------------
  def check_inputs(self, inputs) -> None:
    """Static validation of an input batch; raises SequenceError with a clear message."""
    check_one_hot(inputs, self.input_channels)
    length = inputs.shape[1]
    if length is not None:
      self.check_length(int(length))

  def input_spec(self, batch_size: Optional[int] = None):
    """Spec of `inputs`: a `tf.TensorSpec` [B, L, C], or a dict of them for multi-input models."""
    length = None if self.dynamic_length else self.sequence_length
    return tf.TensorSpec([batch_size, length, self.input_channels], tf.float32, name="x")

  def build(self, sequence_length: Optional[int] = None, batch_size: Optional[int] = 1) -> None:
    """Creates all variables by tracing the model symbolically (no FLOPs are spent).

    Variable shapes never depend on the length, so the default builds with an unknown
    length where the model allows it.
    """
    spec = self.input_spec(batch_size)
    if sequence_length is not None:
      if not isinstance(spec, tf.TensorSpec):
        raise ValueError(f"{type(self).__name__} takes several inputs; build() has no sequence_length")
      spec = tf.TensorSpec([batch_size, sequence_length, self.input_channels], tf.float32)
    snt.build(lambda x: self(x, is_training=False), spec)
    self._built = True

  def ensure_built(self) -> None:
    """Builds the model unless `build()` already ran (variables are created lazily)."""
    if not self.__dict__.get("_built", False):
      self.build()

  def predict_on_batch(self, inputs) -> dict[str, tf.Tensor]:
    """Inference on one batch (numpy or tensors; a dict for multi-input models) -> {head: tensor}."""
    def to_tensor(x, spec):
      return tf.convert_to_tensor(x if tf.is_tensor(x) else np.asarray(x, spec.dtype.as_numpy_dtype),
                                  spec.dtype)
    spec = self.input_spec()
    if isinstance(spec, tf.TensorSpec):
      inputs = to_tensor(inputs, spec)
    elif isinstance(inputs, Mapping):
      # Missing or unknown keys are left for check_inputs to name.
      inputs = {key: to_tensor(value, spec[key]) if key in spec else value
                for key, value in inputs.items()}
    self.check_inputs(inputs)
    return self._predict_fn(inputs)

  @property
  def _predict_fn(self):
    # One tf.function per module (created on first use) keeps graph-mode speed for repeated
    # calls; relaxed shapes avoid a retrace per batch size / length.
    if "_compiled_predict" not in self.__dict__:
      self._compiled_predict = tf.function(lambda x: self(x, is_training=False),
                                           reduce_retracing=True)
    return self._compiled_predict


def num_trainable_parameters(model: snt.Module) -> int:
  return int(sum(v.shape.num_elements() for v in model.trainable_variables))


def head_shapes(outputs: Mapping[str, tf.Tensor]) -> dict[str, tuple]:
  return {k: tuple(v.shape) for k, v in outputs.items()}
