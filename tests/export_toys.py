"""A tiny multi-input model (Chromoformer-like contract) for the export and tuning tests."""

import dataclasses
from typing import Optional

import tensorflow as tf

from tf_seqmodels.config import Config
from tf_seqmodels.models.base import SequenceModel


@dataclasses.dataclass(frozen=True)
class ToyMultiConfig(Config):
  bins: int = 6
  marks: int = 3
  noisy: bool = False  # a non-deterministic inference path: the parity check must catch it


class ToyMultiInput(SequenceModel):
  """A multi-input model (Chromoformer-like): binned marks + a mask, no DNA."""

  def __init__(self, config: Optional[ToyMultiConfig] = None):
    super().__init__(config or ToyMultiConfig(), name="toy_multi")
    self.linear = tf.Variable(tf.random.normal([self.config.marks, 4]), name="w")
    self.out = tf.Variable(tf.random.normal([4, 2]), name="out")

  input_channels = 3
  head_names = ("score", "profile")
  takes_dna_sequence = False

  def input_spec(self, batch_size=None):
    return {"marks": tf.TensorSpec([batch_size, self.config.bins, self.config.marks], tf.float32),
            "mask": tf.TensorSpec([batch_size, self.config.bins], tf.float32)}

  def check_inputs(self, inputs):
    if set(inputs) != {"marks", "mask"}:
      raise ValueError(f"expected marks and mask, got {sorted(inputs)}")

  def embed(self, inputs, is_training):
    hidden = tf.nn.relu(tf.einsum("blm,mh->blh", inputs["marks"], self.linear))
    return hidden * inputs["mask"][..., None]

  def __call__(self, inputs, is_training):
    hidden = self.embed(inputs, is_training)
    if self.config.noisy:
      hidden += tf.random.uniform(tf.shape(hidden))
    return {"score": tf.reduce_sum(hidden @ self.out, axis=1), "profile": hidden[..., 0]}
