"""Hand-set toy models and a tiny genome for the variant / contribution tests."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from tf_seqmodels.config import Config
from tf_seqmodels.models.base import SequenceModel

MOTIF = "TGACTCA"  # AP-1 (FOS::JUN) consensus; its reverse complement is TGAGTCA


@dataclasses.dataclass(frozen=True)
class MotifModelConfig(Config):
  motif: str = MOTIF
  sequence_length: int = 256
  bin_size: int = 16
  smooth: bool = False  # softplus instead of ReLU (for finite differences)


class MotifModel(SequenceModel):
  """A motif detector with hand-set weights: +1 per matching base, -1 otherwise, threshold
  at len - 2, so an exact match scores 2 and one mismatch 0 (ReLU).

  Heads: "signal" [B, L / bin_size, 1] (summed per bin, positional), "total" [B, 1].
  """

  def __init__(self, config: MotifModelConfig = MotifModelConfig()):
    super().__init__(config, name="motif_model")
    weights = np.full((len(config.motif), 4, 1), -1.0, np.float32)
    for i, base in enumerate(config.motif):
      weights[i, "ACGT".index(base), 0] = 1.0
    self.w = tf.Variable(weights, name="w")
    self.b = tf.Variable([-(len(config.motif) - 2.0)], name="b")

  @property
  def input_channels(self) -> int:
    return 4

  @property
  def head_names(self):
    return ("signal", "total")

  @property
  def position_axes(self):
    return {"signal": 1, "total": None}

  @property
  def head_kinds(self):
    return {"signal": "tracks", "total": "tracks"}  # both count motif hits (non-negative)

  def embed(self, inputs, is_training):
    activation = tf.nn.softplus if self.config.smooth else tf.nn.relu
    return activation(tf.nn.conv1d(inputs, self.w, 1, "SAME") + self.b)

  def __call__(self, inputs, is_training):
    hits = self.embed(inputs, is_training)
    binned = tf.reshape(hits, [tf.shape(inputs)[0], -1, self.config.bin_size, 1])
    return {"signal": tf.reduce_sum(binned, axis=2),
            "total": tf.reduce_sum(hits, axis=[1, 2])[:, None]}


def random_sequence(length: int, seed: int = 0) -> str:
  return "".join(np.random.default_rng(seed).choice(list("ACGT"), length))


def without_motif(sequence: str) -> str:
  """Breaks accidental motif matches (either strand) so only planted sites score."""
  for site in (MOTIF, "TGAGTCA"):
    while site in sequence:
      i = sequence.index(site)
      sequence = sequence[:i + 3] + ("C" if sequence[i + 3] != "C" else "G") + sequence[i + 4:]
  return sequence


def write_genome(directory: str, chromosomes: dict[str, str]) -> str:
  path = os.path.join(directory, "genome.fa")
  with open(path, "w") as f:
    for name, sequence in chromosomes.items():
      f.write(f">{name}\n")
      for i in range(0, len(sequence), 60):
        f.write(sequence[i:i + 60] + "\n")
  return path


def tiny_enformer_config():
  from tf_seqmodels.models.enformer import EnformerConfig
  return EnformerConfig(channels=24, num_transformer_layers=1, num_heads=2, pooling_type="max",
                        filters_divisible_by=4, sequence_length=1024, target_length=4,
                        heads={"tracks": 3}, num_conv_tower_blocks=3, key_size=8,
                        relative_position_symmetric=True)
