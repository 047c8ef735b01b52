"""Synthetic long-range regulation: promoters whose output depends on a distal enhancer.

A benchmark for Enformer's ablations (attention vs dilated convolutions): in each random
sequence a promoter motif is planted at a random bin and, in half of the sequences, an
enhancer motif `min_distance`..`max_distance` bins away (either side). Two tracks per 128-bp
bin (targets [N, bins, 2]):

    track 0 "CAGE:synthetic"  at the promoter bin: promoter_level x (1 + enhancer_gain if the
                              enhancer is present), 0 elsewhere — needs the distal element;
    track 1 "DNASE:synthetic" at both motifs' bins: accessibility_level — purely local.

With `min_distance` beyond the receptive field of the dilated trunk (and of local attention),
only a model seeing that far can tell the two promoter levels apart: its CAGE Pearson r at
promoters approaches 1, a short-sighted model's stays near 0 (it predicts the mean level).
All draws come from `numpy.random.default_rng(seed)`: the data are deterministic.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from tf_seqmodels.config import Config, ConfigError

PROMOTER_MOTIF = "TATAAAAGGCGCCGCG"
ENHANCER_MOTIF = "TGACTCATGAGTCAGC"
TRACK_NAMES = ("CAGE:synthetic", "DNASE:synthetic")


@dataclasses.dataclass(frozen=True)
class LongRangeConfig(Config):
  """Geometry and signal levels of the long-range data (distances in bins)."""

  sequence_length: int = 4096
  bin_size: int = 128
  min_distance: int = 8
  max_distance: int = 13
  enhancer_fraction: float = 0.5
  promoter_level: float = 2.0
  enhancer_gain: float = 4.0
  accessibility_level: float = 3.0

  @property
  def bins(self) -> int:
    return self.sequence_length // self.bin_size

  def validate(self) -> None:
    if self.sequence_length % self.bin_size:
      raise ConfigError(f"sequence_length {self.sequence_length} must be a multiple of bin_size "
                        f"{self.bin_size}")
    if not 0 < self.min_distance <= self.max_distance < self.bins:
      raise ConfigError(f"need 0 < min_distance <= max_distance < bins ({self.bins}), got "
                        f"{self.min_distance}..{self.max_distance}")
    if max(len(PROMOTER_MOTIF), len(ENHANCER_MOTIF)) > self.bin_size:
      raise ConfigError(f"bin_size {self.bin_size} is shorter than the motifs")


@dataclasses.dataclass
class LongRangeData:
  """One-hot sequences [N, L, 4], targets [N, bins, 2] and the planted elements."""

  sequences: np.ndarray
  targets: np.ndarray
  promoter_bin: np.ndarray   # [N]
  enhancer_bin: np.ndarray   # [N], -1 where no enhancer was planted
  track_names: tuple[str, ...] = TRACK_NAMES

  def __len__(self) -> int:
    return len(self.sequences)

  def dataset(self, batch_size: int, head: str = "tracks", shuffle_seed=None) -> tf.data.Dataset:
    """Batches of (one-hot [B, L, 4], {head: [B, bins, 2]}); shuffled when a seed is given."""
    ds = tf.data.Dataset.from_tensor_slices((self.sequences, {head: self.targets}))
    if shuffle_seed is not None:
      ds = ds.shuffle(len(self), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size)


def _plant(indices: np.ndarray, motif: str, bin_index: int, bin_size: int,
           rng: np.random.Generator) -> None:
  offset = bin_index * bin_size + int(rng.integers(0, bin_size - len(motif) + 1))
  indices[offset:offset + len(motif)] = ["ACGT".index(c) for c in motif]


def generate_long_range(num_examples: int, config: LongRangeConfig = LongRangeConfig(),
                        seed: int = 0) -> LongRangeData:
  """`num_examples` sequences with their tracks (see the module docstring)."""
  if num_examples < 1:
    raise ValueError(f"num_examples must be >= 1, got {num_examples}")
  rng = np.random.default_rng(seed)
  bins = config.bins
  indices = rng.integers(0, 4, (num_examples, config.sequence_length))
  targets = np.zeros((num_examples, bins, 2), np.float32)
  promoter = np.zeros(num_examples, np.int64)
  enhancer = np.full(num_examples, -1, np.int64)
  for i in range(num_examples):
    has_enhancer = rng.random() < config.enhancer_fraction
    while True:
      p = int(rng.integers(0, bins))
      d = int(rng.integers(config.min_distance, config.max_distance + 1))
      e = p + d if rng.random() < 0.5 else p - d
      if 0 <= e < bins:
        break
    promoter[i] = p
    _plant(indices[i], PROMOTER_MOTIF, p, config.bin_size, rng)
    targets[i, p, 1] = config.accessibility_level
    level = config.promoter_level
    if has_enhancer:
      enhancer[i] = e
      _plant(indices[i], ENHANCER_MOTIF, e, config.bin_size, rng)
      targets[i, e, 1] = config.accessibility_level
      level *= 1.0 + config.enhancer_gain
    targets[i, p, 0] = level
  sequences = np.eye(4, dtype=np.float32)[indices]
  return LongRangeData(sequences, targets, promoter, enhancer)


def promoter_pearson(data: LongRangeData, predicted: np.ndarray, track: int = 0) -> float:
  """Pearson r across examples between observed and predicted CAGE at the promoter bins:
  the long-range part of the task (the local part only says where the promoter is)."""
  rows = np.arange(len(data))
  observed = data.targets[rows, data.promoter_bin, track].astype(np.float64)
  predicted = np.asarray(predicted, np.float64)[rows, data.promoter_bin, track]
  observed, predicted = observed - observed.mean(), predicted - predicted.mean()
  denominator = np.sqrt((observed**2).sum() * (predicted**2).sum())
  return float((observed * predicted).sum() / denominator) if denominator > 0 else float("nan")
