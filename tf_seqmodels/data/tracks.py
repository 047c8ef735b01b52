"""Track data for Enformer-style models: FASTA + bigWig -> tf.data of (one-hot, binned targets).

    tracks = read_targets_table("targets.txt")        # Basenji table, or [TrackSpec(...), ...]
    config = TrackDataConfig(sequence_length=131_072, target_length=896, max_shift=3,
                             reverse_complement=True, head="human")
    splits = track_splits("genome.fa", tracks, read_bed("sequences.bed"), read_fold("fold.json"),
                          config, batch_size=2)
    fit(model, TrackTask(["human"]), splits.train, validation_data=splits.valid, ...)

Windows. Each interval gives a window of `sequence_length` bp centred on its centre (summit
for narrowPeak, midpoint otherwise), read on its strand: a '-' interval is reverse-complemented
with its targets reversed and strand-paired tracks swapped. The target window is the central
`target_length x bin_size` bp. Parts of a window past a chromosome end read as N (all-zero
one-hot) with zero coverage, as Basenji pads; the interval itself must lie on its chromosome.

Targets. Per track, per-base bigWig values (missing data and NaN = 0) are pooled into bins
(`sum_stat` sum / mean / max) and transformed, in one of two published conventions:
  basenji (Basenji2 / Enformer data):  pool -> soft clip x > c: c + sqrt(x - c) -> clip to
                                       [-clip, clip] -> x scale
  borzoi  (Borzoi / baskerville):      x scale -> pool -> soft clip x > c: c - 1 + sqrt(x - c + 1)
                                       -> clip to [-clip, clip]
(Scaling commutes with the pools, so it is applied to the pooled values in both.)

Augmentation (training only), identical for inputs and targets. The window moves by
d = k x bin_size + s bp, k uniform in [-jitter_bins, jitter_bins], s uniform in
[-max_shift, max_shift]: the sequence is read d bp further along the genome and the target
bins k + round(s / bin_size) bins further (exact for whole-bin jitter; with Enformer's
max_shift = 3 the targets stay put, as in the reference). Reverse complement (probability
1/2) reverses and complements the sequence, reverses the bins and swaps strand pairs.
Windows are preloaded with room for the largest move, so moved windows read real sequence.

Element structure: `(one_hot [B, sequence_length, 4] float32, {head: [B, target_bins, T]
float32})`. Shuffling and augmentation are seeded (`seed`): the same seed gives the same
epochs. `num_shards` / `shard_index` split the examples between input pipelines (e.g.
`tf.distribute.InputContext.num_input_pipelines` / `.input_pipeline_id`); without them the
dataset carries a DATA auto-shard policy for `strategy.experimental_distribute_dataset`.

Preloaded windows hold int8 sequences and float32 binned targets in memory; for data larger
than memory write Basenji TFRecords (`data.tfrecords`) and stream them.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tf_seqmodels.config import Config, ConfigError, atomic_write_text
from tf_seqmodels.data.genome import (BigWigSignal, Genome, check_chromosomes, check_same_assembly,
                                      reverse_complement_indices)
from tf_seqmodels.data.intervals import (SPLITS, DataSplits, Fold, Regions, check_regions,
                                         split_regions)

PathLike = Union[str, os.PathLike]
SUM_STATS = ("sum", "mean", "max")
TRANSFORMS = ("basenji", "borzoi")
_NAME = re.compile(r"^[A-Za-z0-9_.:+-]+$")
_HEAD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --- track specifications ----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TrackSpec(Config):
  """One target track: a bigWig and how its per-base values become binned targets.

  Attributes:
    name: identifier (Basenji `identifier`).
    path: the bigWig file.
    sum_stat: pooling within a bin: "sum" (Enformer / Basenji coverage), "mean" or "max".
    scale: multiplies the pooled values.
    clip_soft: soft-clip threshold (None = off); see the module docstring for the formula.
    clip: hard clip to [-clip, clip] (None = off).
    strand_pair: name of the track holding the opposite strand (stranded assays such as
      CAGE); a reverse complement swaps the two. None = unstranded.
    transform: "basenji" or "borzoi" order and soft-clip formula.
    description: free text (Basenji `description`).
  """

  name: str
  path: str
  sum_stat: str = "sum"
  scale: float = 1.0
  clip_soft: Optional[float] = None
  clip: Optional[float] = None
  strand_pair: Optional[str] = None
  transform: str = "basenji"
  description: str = ""

  def validate(self) -> None:
    def fail(msg):
      raise ConfigError(f"TrackSpec {self.name!r}: {msg}")

    if not _NAME.match(self.name):
      fail("name must be non-empty and use letters, digits and _ . : + - only")
    if self.sum_stat not in SUM_STATS:
      fail(f"sum_stat must be one of {SUM_STATS}, got {self.sum_stat!r}")
    if self.transform not in TRANSFORMS:
      fail(f"transform must be one of {TRANSFORMS}, got {self.transform!r}")
    if not self.scale > 0:
      fail(f"scale must be positive, got {self.scale}")
    for field in ("clip", "clip_soft"):
      value = getattr(self, field)
      if value is not None and not value > 0:
        fail(f"{field} must be positive or null, got {value}")


def pool_bins(values: np.ndarray, bin_size: int, sum_stat: str = "sum") -> np.ndarray:
  """Per-base values [..., L] -> pooled bins [..., L / bin_size] (float32)."""
  values = np.asarray(values, np.float32)
  length = values.shape[-1]
  if length % bin_size:
    raise ValueError(f"length {length} is not a multiple of the bin size {bin_size}")
  shaped = values.reshape(values.shape[:-1] + (length // bin_size, bin_size))
  if sum_stat == "sum":
    return shaped.sum(-1, dtype=np.float32)
  if sum_stat == "mean":
    return shaped.mean(-1, dtype=np.float32)
  if sum_stat == "max":
    return shaped.max(-1)
  raise ValueError(f"sum_stat must be one of {SUM_STATS}, got {sum_stat!r}")


def transform_bins(pooled: np.ndarray, spec: TrackSpec) -> np.ndarray:
  """Applies `spec`'s scale / soft clip / clip to pooled values (any shape), float32."""
  x = np.asarray(pooled, np.float32).copy()
  if spec.transform == "borzoi":
    x *= spec.scale
  if spec.clip_soft is not None:
    c = np.float32(spec.clip_soft)
    over = x > c
    if spec.transform == "basenji":
      x[over] = c + np.sqrt(x[over] - c)
    else:
      x[over] = c - 1 + np.sqrt(x[over] - c + 1)
  if spec.clip is not None:
    x = np.clip(x, -spec.clip, spec.clip)
  if spec.transform == "basenji":
    x *= spec.scale
  return x


def strand_permutation(tracks: Sequence[TrackSpec]) -> np.ndarray:
  """int32 [T]: track order after a reverse complement (strand pairs swapped).

  Raises:
    ConfigError: a strand pair names an unknown track or is not mutual.
  """
  index = {t.name: i for i, t in enumerate(tracks)}
  perm = np.arange(len(tracks), dtype=np.int32)
  for i, track in enumerate(tracks):
    if track.strand_pair is None:
      continue
    j = index.get(track.strand_pair)
    if j is None:
      raise ConfigError(f"track {track.name!r}: strand_pair {track.strand_pair!r} is not a track "
                        f"name; tracks are {list(index)}")
    if tracks[j].strand_pair != track.name:
      raise ConfigError(f"strand pairs must be mutual: {track.name!r} -> {track.strand_pair!r} but "
                        f"{tracks[j].name!r} -> {tracks[j].strand_pair!r}")
    perm[i] = j
  return perm


def _check_tracks(tracks: Sequence[TrackSpec]) -> None:
  if not tracks:
    raise ValueError("no tracks given")
  names = [t.name for t in tracks]
  duplicates = sorted({n for n in names if names.count(n) > 1})
  if duplicates:
    raise ConfigError(f"duplicate track names {duplicates}")
  strand_permutation(tracks)


_TABLE_COLUMNS = ("identifier", "file", "clip", "clip_soft", "scale", "sum_stat", "strand_pair",
                  "description")


def read_targets_table(path: PathLike) -> list[TrackSpec]:
  """Reads a Basenji `targets.txt` (tab-separated, header; index column first).

  Columns used: identifier, file (relative paths resolve against the table's folder), and
  when present clip, clip_soft, scale, sum_stat, strand_pair (the paired track's index) and
  description. Empty or 'nan' values mean "not set".
  """
  import pandas as pd

  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"targets table not found: {path}")
  try:
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
  except pd.errors.EmptyDataError:
    raise ValueError(f"{path}: the targets table is empty") from None
  missing = [c for c in ("identifier", "file") if c not in frame.columns]
  if missing:
    raise ValueError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
  if not len(frame):
    raise ValueError(f"{path}: the targets table has no rows")
  first = frame.columns[0]
  index = (frame[first].astype(int).tolist() if first in ("", "index") or first.startswith("Unnamed")
           else list(range(len(frame))))
  by_index = dict(zip(index, frame["identifier"]))
  folder = os.path.dirname(os.path.abspath(path))

  def value(row, column, convert):
    text = str(row.get(column, "")).strip()
    if text in ("", "nan", "NaN", "None", "."):
      return None
    try:
      return convert(text)
    except ValueError:
      raise ValueError(f"{path}: track {row['identifier']!r}: bad {column} {text!r}") from None

  specs = []
  for _, row in frame.iterrows():
    file = row["file"]
    pair = value(row, "strand_pair", int)
    paired = by_index.get(pair) if pair is not None else None
    if paired == row["identifier"]:
      paired = None  # Basenji writes an unstranded track as its own pair
    specs.append(TrackSpec(
        name=row["identifier"], path=file if os.path.isabs(file) else os.path.join(folder, file),
        sum_stat=value(row, "sum_stat", str) or "sum", scale=value(row, "scale", float) or 1.0,
        clip=value(row, "clip", float), clip_soft=value(row, "clip_soft", float),
        strand_pair=paired, description=value(row, "description", str) or ""))
  _check_tracks(specs)
  return specs


def write_targets_table(path: PathLike, tracks: Sequence[TrackSpec]) -> None:
  """Writes a Basenji `targets.txt` (atomically); unset clips are written empty."""
  index = {t.name: i for i, t in enumerate(tracks)}
  lines = ["\t" + "\t".join(_TABLE_COLUMNS)]
  for i, t in enumerate(tracks):
    fmt = lambda v: "" if v is None else f"{v:g}"  # noqa: E731
    pair = index[t.strand_pair] if t.strand_pair is not None else i
    lines.append("\t".join([str(i), t.name, t.path, fmt(t.clip), fmt(t.clip_soft), f"{t.scale:g}",
                            t.sum_stat, str(pair), t.description]))
  atomic_write_text(os.fspath(path), "\n".join(lines) + "\n")


# --- data configuration ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TrackDataConfig(Config):
  """Window geometry and augmentation of a track dataset (Enformer human: 131,072 / 128 / 896)."""

  sequence_length: int = 131_072
  bin_size: int = 128
  target_length: Optional[int] = None  # central bins kept; None = sequence_length / bin_size
  max_shift: int = 0  # bp; Enformer / Basenji: 3
  jitter_bins: int = 0  # whole-bin window jitter (exact for the targets)
  reverse_complement: bool = False
  head: str = "tracks"  # the target key = the model head trained on it

  @property
  def target_bins(self) -> int:
    return self.sequence_length // self.bin_size if self.target_length is None else self.target_length

  @property
  def crop_bp(self) -> int:
    """bp on each side of the sequence outside the target window (Basenji `crop_bp`)."""
    return (self.sequence_length - self.target_bins * self.bin_size) // 2

  @property
  def max_move(self) -> int:
    """Largest window move in bp."""
    return self.jitter_bins * self.bin_size + self.max_shift

  @property
  def flank_bins(self) -> int:
    """Extra target bins preloaded on each side: the largest rounded move."""
    return (self.max_move + self.bin_size // 2) // self.bin_size

  def validate(self) -> None:
    def fail(msg):
      raise ConfigError(f"TrackDataConfig: {msg}")

    if self.sequence_length <= 0 or self.bin_size <= 0:
      fail("sequence_length and bin_size must be positive")
    if self.sequence_length % self.bin_size:
      fail(f"sequence_length {self.sequence_length} must be a multiple of bin_size {self.bin_size}")
    bins = self.sequence_length // self.bin_size
    if self.target_length is not None:
      if not 0 < self.target_length <= bins:
        fail(f"target_length must be in [1, {bins}] (sequence_length / bin_size), got "
             f"{self.target_length}")
      if (bins - self.target_length) % 2:
        fail(f"sequence bins {bins} minus target_length {self.target_length} must be even, so the "
             f"target window is centred (and a reverse complement keeps it in place)")
    if self.max_shift < 0 or self.jitter_bins < 0:
      fail("max_shift and jitter_bins must be >= 0")
    if self.max_shift >= self.bin_size:
      fail(f"max_shift {self.max_shift} must be smaller than bin_size {self.bin_size}; use "
           f"jitter_bins for larger moves")
    if not _HEAD.match(self.head):
      fail(f"head must be an identifier (the model head's name), got {self.head!r}")


# --- reading windows ---------------------------------------------------------------------------

class TrackSource:
  """A FASTA and the bigWigs of `tracks`, checked against each other.

  Opening checks that every chromosome both files have is the same length in both (one
  assembly); `check_regions` checks intervals against the FASTA and every bigWig.
  """

  def __init__(self, fasta: PathLike, tracks: Union[Sequence[TrackSpec], PathLike]):
    self.tracks = list(tracks) if not isinstance(tracks, (str, os.PathLike)) else \
        read_targets_table(tracks)
    _check_tracks(self.tracks)
    self.genome = Genome(fasta)
    self._signals: dict[str, BigWigSignal] = {}
    try:
      for track in self.tracks:
        if track.path not in self._signals:
          signal = BigWigSignal(track.path)
          self._signals[track.path] = signal
          check_same_assembly(self.genome.chrom_sizes, signal.chrom_sizes,
                              f"the FASTA {self.genome.path}", f"the bigWig {signal.path}")
    except BaseException:
      self.close()
      raise
    self.permutation = strand_permutation(self.tracks)

  @property
  def chrom_sizes(self) -> dict[str, int]:
    return self.genome.chrom_sizes

  @property
  def track_names(self) -> tuple[str, ...]:
    return tuple(t.name for t in self.tracks)

  def check_regions(self, regions: Regions) -> None:
    """GenomeError if an interval is on a chromosome missing from the FASTA or a bigWig, or
    leaves its chromosome; ValueError if there are none."""
    check_regions(regions, self.chrom_sizes, f"the FASTA {self.genome.path}")
    for signal in self._signals.values():
      check_chromosomes(set(regions.chrom), signal.chrom_sizes, f"the bigWig {signal.path}")

  def read(self, chrom: str, start: int, end: int, target_start: int, target_end: int,
           bin_size: int, strand: str = "+") -> tuple[np.ndarray, np.ndarray]:
    """Sequence of [start, end) and binned targets of [target_start, target_end).

    Returns:
      (int8 base indices [end - start] (N = 4), float32 targets [(target_end - target_start)
      / bin_size, T]), both on `strand` ('-': reverse complement, bins reversed, strand
      pairs swapped). Out-of-chromosome parts read as N / zero coverage.
    """
    seq = self.genome.fetch_window(chrom, start, end)
    per_base = {path: s.window_values(chrom, target_start, target_end)
                for path, s in self._signals.items()}
    targets = np.stack([transform_bins(pool_bins(per_base[t.path], bin_size, t.sum_stat), t)
                        for t in self.tracks], axis=-1)
    if strand == "-":
      seq = reverse_complement_indices(seq)
      targets = targets[::-1][:, self.permutation]
    return seq, np.ascontiguousarray(targets)

  def close(self) -> None:
    for signal in self._signals.values():
      signal.close()
    self._signals = {}
    if hasattr(self, "genome"):
      self.genome.close()

  def __enter__(self) -> "TrackSource":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def window_coordinates(regions: Regions, config: TrackDataConfig, flank: int = 0,
                       flank_bins: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(seq_start, seq_end, target_start, target_end) int64 [N] of each region's window, widened
  by `flank` bp (sequence) and `flank_bins` bins (targets) on each side."""
  start = regions.centre - config.sequence_length // 2
  t_start = start + config.crop_bp - flank_bins * config.bin_size
  t_end = start + config.sequence_length - config.crop_bp + flank_bins * config.bin_size
  return start - flank, start + config.sequence_length + flank, t_start, t_end


@dataclasses.dataclass
class TrackWindows:
  """Preloaded windows of one split and the tf.data pipeline over them.

  Attributes:
    regions: the intervals, in order.
    sequences: int8 [N, sequence_length + 2 x config.max_move] (N = index 4) when loaded for
      training, [N, sequence_length] otherwise.
    targets: float32 [N, target_bins + 2 x flank_bins, T].
    config, track_names, permutation: geometry, track names, strand-pair permutation [T].
    augmentable: loaded with room for the moves (training windows).
  """

  regions: Regions
  sequences: np.ndarray
  targets: np.ndarray
  config: TrackDataConfig
  track_names: tuple[str, ...]
  permutation: np.ndarray
  augmentable: bool

  def __len__(self) -> int:
    return len(self.sequences)

  @property
  def nbytes(self) -> int:
    return int(self.sequences.nbytes + self.targets.nbytes)

  def dataset(self, batch_size: int, *, training: bool = False, seed: int = 0,
              num_shards: int = 1, shard_index: int = 0,
              drop_remainder: bool = False) -> tf.data.Dataset:
    """Batches of `(one_hot [B, L, 4], {head: [B, target_bins, T]})`.

    training: shuffle every pass (seeded) and apply the configured moves / reverse
      complement; otherwise file order, no augmentation.
    num_shards, shard_index: keep every num_shards-th example starting at shard_index.
    """
    cfg = self.config
    if batch_size < 1:
      raise ValueError(f"batch_size must be positive, got {batch_size}")
    if not 0 <= shard_index < num_shards:
      raise ValueError(f"shard_index must be in [0, {num_shards}), got {shard_index}")
    augment = training and (cfg.max_move > 0 or cfg.reverse_complement)
    if augment and not self.augmentable and cfg.max_move > 0:
      raise ValueError("these windows were loaded without room for moves: load them with "
                       "training=True")
    n = len(self)
    if n == 0:
      raise ValueError("no windows to make a dataset from")
    flank = (self.sequences.shape[1] - cfg.sequence_length) // 2
    flank_bins = (self.targets.shape[1] - cfg.target_bins) // 2
    sequences, targets = self.sequences, self.targets
    num_tracks = targets.shape[-1]

    def gather(index):
      return sequences[index], targets[index]

    def load(index, rand):
      seqs, tgts = tf.numpy_function(gather, [index], [tf.int8, tf.float32], stateful=False)
      seqs.set_shape([None, sequences.shape[1]])
      tgts.set_shape([None, targets.shape[1], num_tracks])
      seed_pair = tf.stack([rand, tf.constant(seed, tf.int64)]) if augment else None
      return shift_and_flip(seqs, tgts, cfg, self.permutation, flank=flank,
                            flank_bins=flank_bins, seed=seed_pair)

    ds = tf.data.Dataset.range(n)
    if num_shards > 1:
      ds = ds.shard(num_shards, shard_index)
    if training:
      ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    randoms = (tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True) if augment
               else tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).repeat())
    ds = tf.data.Dataset.zip((ds, randoms))
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_shard_options(num_shards > 1))


def _shard_options(sharded: bool) -> tf.data.Options:
  options = tf.data.Options()
  # Explicitly sharded pipelines must not be sharded again by a distribution strategy; the
  # others have no files, so a strategy can only shard by element.
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.OFF if sharded
      else tf.data.experimental.AutoShardPolicy.DATA)
  return options


def shift_and_flip(sequences: tf.Tensor, targets: tf.Tensor, config: TrackDataConfig,
                   permutation: Optional[np.ndarray] = None, *, flank: int = 0,
                   flank_bins: int = 0, seed: Optional[tf.Tensor] = None):
  """Moves / reverse-complements a batch of windows consistently; -> model inputs.

  Args:
    sequences: int base indices [B, sequence_length + 2 flank] (N = 4).
    targets: [B, target_bins + 2 flank_bins, T].
    config: geometry and augmentation settings.
    permutation: int [T] track order after a reverse complement (default: identity).
    flank, flank_bins: room on each side (>= config.max_move bp and config.flank_bins bins
      for augmentation; windows without room are padded with N / zero bins here).
    seed: stateless seed [2] int64; None = no augmentation (the central window).

  Returns:
    (one_hot [B, sequence_length, 4] float32, {config.head: [B, target_bins, T] float32}).
  """
  cfg = config
  length, bins = cfg.sequence_length, cfg.target_bins
  sequences = tf.cast(sequences, tf.int32)
  targets = tf.cast(targets, tf.float32)
  batch = tf.shape(sequences)[0]
  if seed is not None and (flank < cfg.max_move or flank_bins < cfg.flank_bins):
    # No room (e.g. TFRecords): pad so moved windows read N / zero coverage.
    pad, pad_bins = cfg.max_move - min(flank, cfg.max_move), cfg.flank_bins - min(flank_bins,
                                                                                  cfg.flank_bins)
    sequences = tf.pad(sequences, [[0, 0], [pad, pad]], constant_values=4)
    targets = tf.pad(targets, [[0, 0], [pad_bins, pad_bins], [0, 0]])
    flank, flank_bins = flank + pad, flank_bins + pad_bins
  if seed is None:
    move = tf.zeros([batch], tf.int32)
    move_bins = tf.zeros([batch], tf.int32)
    flip = tf.zeros([batch], tf.bool)
  else:
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    jitter = tf.random.stateless_uniform([batch], seeds[0], -cfg.jitter_bins, cfg.jitter_bins + 1,
                                         dtype=tf.int32)
    shift = tf.random.stateless_uniform([batch], seeds[1], -cfg.max_shift, cfg.max_shift + 1,
                                        dtype=tf.int32)
    move = jitter * cfg.bin_size + shift
    # Round half away from zero, so a move and its mirror image move the bins symmetrically.
    half = cfg.bin_size // 2
    move_bins = tf.sign(move) * ((tf.abs(move) + half) // cfg.bin_size)
    flip = (tf.random.stateless_uniform([batch], seeds[2]) < 0.5) if cfg.reverse_complement \
        else tf.zeros([batch], tf.bool)
  seq_index = flank + move[:, None] + tf.range(length)[None, :]
  seqs = tf.gather(sequences, seq_index, batch_dims=1)
  bin_index = flank_bins + move_bins[:, None] + tf.range(bins)[None, :]
  tgts = tf.gather(targets, bin_index, batch_dims=1)
  if seed is not None and cfg.reverse_complement:
    rc_seqs = tf.reverse(tf.where(seqs < 4, 3 - seqs, seqs), axis=[1])
    perm = np.arange(targets.shape[-1]) if permutation is None else np.asarray(permutation)
    rc_tgts = tf.gather(tf.reverse(tgts, axis=[1]), perm, axis=2)
    seqs = tf.where(flip[:, None], rc_seqs, seqs)
    tgts = tf.where(flip[:, None, None], rc_tgts, tgts)
  one_hot = tf.one_hot(seqs, 4, dtype=tf.float32)  # index 4 (N) -> all zeros
  return one_hot, {cfg.head: tgts}


def load_windows(source: TrackSource, regions: Regions, config: TrackDataConfig, *,
                 training: bool = False, progress: bool = False) -> TrackWindows:
  """Reads every region's window (with room for the moves when `training`) into memory.

  Raises:
    GenomeError / ValueError: see `TrackSource.check_regions`.
  """
  source.check_regions(regions)
  flank = config.max_move if training else 0
  flank_bins = config.flank_bins if training else 0
  seq_start, seq_end, t_start, t_end = window_coordinates(regions, config, flank, flank_bins)
  n = len(regions)
  sequences = np.empty((n, config.sequence_length + 2 * flank), np.int8)
  targets = np.empty((n, config.target_bins + 2 * flank_bins, len(source.tracks)), np.float32)
  strands = regions.strand.astype(str)
  rows = range(n)
  if progress:
    import tqdm
    rows = tqdm.tqdm(rows, desc="reading windows", unit="window", leave=False)
  for i in rows:
    sequences[i], targets[i] = source.read(str(regions.chrom[i]), int(seq_start[i]),
                                           int(seq_end[i]), int(t_start[i]), int(t_end[i]),
                                           config.bin_size, strands[i])
  return TrackWindows(regions, sequences, targets, config, source.track_names, source.permutation,
                      augmentable=training)


def track_splits(fasta: PathLike, tracks: Union[Sequence[TrackSpec], PathLike],
                 regions: Regions, fold: Fold, config: TrackDataConfig, *, batch_size: int,
                 seed: int = 0, num_shards: int = 1, shard_index: int = 0,
                 drop_remainder: bool = False, progress: bool = False) -> DataSplits:
  """FASTA + bigWigs + intervals + chromosome fold -> `DataSplits` (train augmented).

  `info` holds "tracks" (names), "bin_size", "target_bins", "windows" ({split: TrackWindows},
  e.g. for plots) and "permutation".

  Raises:
    FileNotFoundError, GenomeError (chromosome names / lengths disagree between FASTA, bigWigs
    and intervals; intervals off the end), ValueError (no training intervals).
  """
  parts = split_regions(regions, fold)
  if not len(parts["train"]):
    raise ValueError(f"no interval lies on the training chromosomes {list(fold.train)[:10]}")
  windows, datasets = {}, {}
  with TrackSource(fasta, tracks) as source:
    for split in SPLITS:
      if not len(parts[split]):
        datasets[split] = None
        continue
      windows[split] = load_windows(source, parts[split], config, training=split == "train",
                                    progress=progress)
      datasets[split] = windows[split].dataset(
          batch_size, training=split == "train", seed=seed, num_shards=num_shards,
          shard_index=shard_index, drop_remainder=drop_remainder and split == "train")
    names, perm = source.track_names, source.permutation
  return DataSplits(datasets["train"], datasets["valid"], datasets["test"],
                    config.sequence_length, 4, (config.head,),
                    sizes={s: len(parts[s]) for s in SPLITS},
                    info={"tracks": names, "bin_size": config.bin_size,
                          "target_bins": config.target_bins, "windows": windows,
                          "permutation": perm})


def check_bins(config: TrackDataConfig, model_bins: int) -> None:
  """Raises ValueError when a model's output bins differ from the data's target bins."""
  if model_bins != config.target_bins:
    raise ValueError(f"the model predicts {model_bins} bins but the data has {config.target_bins} "
                     f"target bins (sequence_length {config.sequence_length} / bin_size "
                     f"{config.bin_size}, target_length {config.target_length})")
