"""Basenji / Enformer TFRecords: write them from FASTA + intervals + bigWigs, stream them back.

The layout is Basenji's (calico/basenji `basenji_data.py`, the data Enformer was trained on):

    data_dir/
      statistics.json    {"seq_length", "pool_width", "crop_bp", "target_length",
                          "num_targets", "train_seqs", "valid_seqs", "test_seqs"}
      targets.txt        one row per track (identifier, file, clip, clip_soft, scale, ...)
      sequences.bed      chrom, start, end, split of every record, in file order
      tfrecords/{split}-{i}.tfr   ZLIB-compressed tf.train.Examples:
          "sequence"  bytes: one-hot [seq_length, 4] as bool/uint8 (Basenji2 / Enformer), or
                      base indices [seq_length] uint8 (A, C, G, T = 0..3, other = N; newer
                      Basenji); the reader tells them apart by size
          "target"    bytes: float16 [target_length, num_targets]

    stats = write_basenji_tfrecords("data", "genome.fa", tracks, windows, fold, config)
    splits = basenji_splits("data", batch_size=2, head="human", max_shift=3, reverse_complement=True)

Writing streams one window at a time (memory stays at one shard), writes each file through a
temporary name and writes statistics.json last: a directory with statistics.json is complete.
Targets are clipped to the float16 range before the cast (an overflow would store inf).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
from typing import Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tf_seqmodels.config import atomic_write_text
from tf_seqmodels.data.intervals import SPLITS, DataSplits, Fold, Regions, split_regions, write_bed
from tf_seqmodels.data.tracks import (TrackDataConfig, TrackSource, TrackSpec, read_targets_table,
                                      shift_and_flip, strand_permutation, window_coordinates,
                                      write_targets_table)

PathLike = Union[str, os.PathLike]
SEQUENCE_ENCODINGS = ("one_hot", "index")
_FLOAT16_MAX = float(np.finfo(np.float16).max)
_STATS_KEYS = ("seq_length", "pool_width", "crop_bp", "target_length", "num_targets")


@dataclasses.dataclass(frozen=True)
class BasenjiStatistics:
  """The contents of `statistics.json`."""

  seq_length: int
  pool_width: int
  crop_bp: int
  target_length: int
  num_targets: int
  split_sizes: dict

  def data_config(self, **augmentation) -> TrackDataConfig:
    """The matching TrackDataConfig (augmentation / head fields from `augmentation`)."""
    return TrackDataConfig(sequence_length=self.seq_length, bin_size=self.pool_width,
                           target_length=self.target_length, **augmentation)


def read_statistics(data_dir: PathLike) -> BasenjiStatistics:
  """Reads and checks `data_dir/statistics.json`."""
  path = os.path.join(os.fspath(data_dir), "statistics.json")
  if not os.path.isdir(os.fspath(data_dir)):
    raise FileNotFoundError(f"TFRecord data directory not found: {data_dir}")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: not a Basenji data directory, or its writing did "
                            f"not finish (statistics.json is written last)")
  with open(path) as f:
    try:
      stats = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}: not valid JSON ({e})") from None
  missing = [k for k in _STATS_KEYS if k not in stats]
  if missing:
    raise ValueError(f"{path}: missing key(s) {missing}")
  sizes = {s: int(stats.get(f"{s}_seqs", 0)) for s in SPLITS}
  out = BasenjiStatistics(*(int(stats[k]) for k in _STATS_KEYS), split_sizes=sizes)
  if out.seq_length - 2 * out.crop_bp != out.target_length * out.pool_width:
    raise ValueError(f"{path}: seq_length {out.seq_length} - 2 x crop_bp {out.crop_bp} != "
                     f"target_length {out.target_length} x pool_width {out.pool_width}")
  return out


def _bytes_feature(array: np.ndarray) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[np.ascontiguousarray(array).tobytes()]))


def encode_example(indices: np.ndarray, targets: np.ndarray, encoding: str = "one_hot") -> bytes:
  """One serialized tf.train.Example from base indices [L] (N = 4) and targets [bins, T]."""
  if encoding == "one_hot":
    sequence = np.zeros((len(indices), 4), np.bool_)
    known = indices < 4
    sequence[np.flatnonzero(known), indices[known]] = True
  elif encoding == "index":
    sequence = indices.astype(np.uint8)
  else:
    raise ValueError(f"sequence encoding must be one of {SEQUENCE_ENCODINGS}, got {encoding!r}")
  target = np.clip(np.nan_to_num(targets, nan=0.0), -_FLOAT16_MAX, _FLOAT16_MAX).astype(np.float16)
  example = tf.train.Example(features=tf.train.Features(feature={
      "sequence": _bytes_feature(sequence), "target": _bytes_feature(target)}))
  return example.SerializeToString()


def write_basenji_tfrecords(data_dir: PathLike, fasta: PathLike,
                            tracks: Union[Sequence[TrackSpec], PathLike], regions: Regions,
                            fold: Fold, config: TrackDataConfig, *, seqs_per_tfr: int = 256,
                            sequence_encoding: str = "one_hot",
                            progress: bool = False) -> BasenjiStatistics:
  """Writes a Basenji data directory (see the module docstring) from FASTA + bigWigs.

  Args:
    regions: the intervals; each becomes one record with the window `config` defines around
      its centre, on its strand. Regions on chromosomes outside `fold` are left out.
    fold: which chromosomes are train / valid / test.
    config: sequence_length, bin_size, target_length (augmentation fields are ignored: they
      apply when reading).
    seqs_per_tfr: records per file.
    sequence_encoding: "one_hot" (Basenji2 / Enformer records) or "index" (uint8 per base).

  Returns:
    The statistics written.
  """
  if seqs_per_tfr < 1:
    raise ValueError(f"seqs_per_tfr must be positive, got {seqs_per_tfr}")
  if sequence_encoding not in SEQUENCE_ENCODINGS:
    raise ValueError(f"sequence_encoding must be one of {SEQUENCE_ENCODINGS}, got "
                     f"{sequence_encoding!r}")
  data_dir = os.fspath(data_dir)
  parts = split_regions(regions, fold)
  if not sum(len(p) for p in parts.values()):
    raise ValueError("no intervals on the fold's chromosomes: nothing to write")
  tfr_dir = os.path.join(data_dir, "tfrecords")
  os.makedirs(tfr_dir, exist_ok=True)
  stats_path = os.path.join(data_dir, "statistics.json")
  if os.path.exists(stats_path):
    os.unlink(stats_path)  # the directory is incomplete until the new statistics are written
  for stale in glob.glob(os.path.join(tfr_dir, "*.tfr")):
    os.unlink(stale)
  options = tf.io.TFRecordOptions(compression_type="ZLIB")
  written, labels = [], []
  with TrackSource(fasta, tracks) as source:
    for split in SPLITS:
      if len(parts[split]):
        source.check_regions(parts[split])
    for split in SPLITS:
      part = parts[split]
      seq_start, seq_end, t_start, t_end = window_coordinates(part, config)
      strands = part.strand.astype(str)
      rows = range(len(part))
      if progress:
        import tqdm
        rows = tqdm.tqdm(rows, desc=f"writing {split} records", unit="record", leave=False)
      writer, shard_path = None, None
      for i in rows:
        if i % seqs_per_tfr == 0:
          if writer is not None:
            writer.close()
            os.replace(shard_path + ".tmp", shard_path)
          shard_path = os.path.join(tfr_dir, f"{split}-{i // seqs_per_tfr}.tfr")
          writer = tf.io.TFRecordWriter(shard_path + ".tmp", options)
        seq, tgt = source.read(str(part.chrom[i]), int(seq_start[i]), int(seq_end[i]),
                               int(t_start[i]), int(t_end[i]), config.bin_size, strands[i])
        writer.write(encode_example(seq, tgt, sequence_encoding))
      if writer is not None:
        writer.close()
        os.replace(shard_path + ".tmp", shard_path)
      written.append(Regions.from_intervals(part.chrom, seq_start, seq_end))
      labels += [split] * len(part)
    write_targets_table(os.path.join(data_dir, "targets.txt"), source.tracks)
  write_bed(os.path.join(data_dir, "sequences.bed"), Regions.concatenate(written), labels)
  stats = {"seq_length": config.sequence_length, "pool_width": config.bin_size,
           "crop_bp": config.crop_bp, "target_length": config.target_bins,
           "num_targets": len(source.tracks),
           **{f"{s}_seqs": len(parts[s]) for s in SPLITS}}
  atomic_write_text(stats_path, json.dumps(stats, indent=2) + "\n")
  return read_statistics(data_dir)


def tfrecord_files(data_dir: PathLike, split: str) -> list[str]:
  """`data_dir/tfrecords/{split}-*.tfr` in numeric order (train-2 before train-10)."""
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  files = glob.glob(os.path.join(os.fspath(data_dir), "tfrecords", f"{split}-*.tfr"))
  number = lambda f: int(m.group(1)) if (m := re.search(r"-(\d+)\.tfr$", f)) else -1  # noqa: E731
  return sorted(files, key=lambda f: (number(f), f))


def _sequence_decoder(first_record: bytes, seq_length: int, path: str):
  """Returns a function: batch of raw `sequence` bytes -> int32 indices [B, L], choosing the
  encoding from the size of the first record."""
  example = tf.train.Example.FromString(first_record)
  for key in ("sequence", "target"):
    if key not in example.features.feature:
      raise ValueError(f"{path}: records have no {key!r} feature (found "
                       f"{sorted(example.features.feature)}): not Basenji TFRecords")
  size = len(example.features.feature["sequence"].bytes_list.value[0])
  if size == 4 * seq_length:
    def decode(raw):
      one_hot = tf.reshape(tf.io.decode_raw(raw, tf.uint8), [-1, seq_length, 4])
      return tf.where(tf.reduce_sum(tf.cast(one_hot, tf.int32), -1) > 0,
                      tf.argmax(one_hot, -1, output_type=tf.int32), 4)
  elif size == seq_length:
    def decode(raw):
      index = tf.cast(tf.reshape(tf.io.decode_raw(raw, tf.uint8), [-1, seq_length]), tf.int32)
      return tf.where(index < 4, index, 4)
  else:
    raise ValueError(f"{path}: a 'sequence' of {size} bytes fits neither a one-hot [{seq_length}, 4] "
                     f"nor an index [{seq_length}] encoding of seq_length {seq_length} "
                     f"(statistics.json)")
  return decode


def basenji_dataset(data_dir: PathLike, split: str, batch_size: int, *, head: str = "tracks",
                    training: Optional[bool] = None, max_shift: int = 0, jitter_bins: int = 0,
                    reverse_complement: bool = False, seed: int = 0, shuffle_buffer: int = 1024,
                    num_shards: int = 1, shard_index: int = 0, drop_remainder: bool = False,
                    strand_pairs: Optional[Sequence[int]] = None) -> tf.data.Dataset:
  """Streams one split: `(one_hot [B, seq_length, 4] float32, {head: [B, target_length,
  num_targets] float32})`.

  When `training` (default: split == "train") files are reshuffled every pass and read in
  parallel (interleaved, deterministic for a seed) and records shuffled through a
  `shuffle_buffer`; otherwise records come in file order (the order of sequences.bed).
  Parsing and decoding run on whole batches in parallel. Augmentation as in
  `data.tracks` (moves pad with N and zero bins: records have no flanking sequence); the
  reverse complement swaps the strand pairs of targets.txt unless `strand_pairs` (indices
  [num_targets]) is given.

  num_shards / shard_index: this input pipeline's share, by file when there are at least as
  many files as shards, by record otherwise.
  """
  data_dir = os.fspath(data_dir)
  stats = read_statistics(data_dir)
  training = split == "train" if training is None else training
  config = stats.data_config(max_shift=max_shift, jitter_bins=jitter_bins,
                             reverse_complement=reverse_complement, head=head)
  files = tfrecord_files(data_dir, split)
  if not files:
    raise FileNotFoundError(f"no {split} TFRecords in {os.path.join(data_dir, 'tfrecords')} "
                            f"(statistics.json lists {stats.split_sizes.get(split, 0)} {split} "
                            f"sequences)")
  if batch_size < 1:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  if not 0 <= shard_index < num_shards:
    raise ValueError(f"shard_index must be in [0, {num_shards}), got {shard_index}")
  first = next(iter(tf.data.TFRecordDataset(files[0], compression_type="ZLIB").take(1)), None)
  if first is None:
    raise ValueError(f"{files[0]} holds no records")
  decode_sequence = _sequence_decoder(first.numpy(), stats.seq_length, files[0])
  if strand_pairs is None:
    targets_txt = os.path.join(data_dir, "targets.txt")
    strand_pairs = (strand_permutation(read_targets_table(targets_txt))
                    if os.path.exists(targets_txt) else np.arange(stats.num_targets))
  permutation = np.asarray(strand_pairs, np.int32)
  if permutation.shape != (stats.num_targets,):
    raise ValueError(f"strand_pairs must have {stats.num_targets} entries, got {permutation.shape}")

  by_file = num_shards > 1 and len(files) >= num_shards
  ds = tf.data.Dataset.from_tensor_slices(files)
  if by_file:
    ds = ds.shard(num_shards, shard_index)
  if training and len(files) > 1:
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
  if training:
    ds = ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="ZLIB"),
                       cycle_length=min(len(files), 4), num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=True)
  else:  # file order = sequences.bed order, so predictions map back to coordinates
    ds = ds.flat_map(lambda f: tf.data.TFRecordDataset(f, compression_type="ZLIB"))
  if num_shards > 1 and not by_file:
    ds = ds.shard(num_shards, shard_index)
  if training:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  augment = training and (config.max_move > 0 or config.reverse_complement)
  randoms = (tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True) if augment
             else tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).repeat())
  features = {"sequence": tf.io.FixedLenFeature([], tf.string),
              "target": tf.io.FixedLenFeature([], tf.string)}
  shape = [-1, stats.target_length, stats.num_targets]

  def parse(serialized, rand):
    parsed = tf.io.parse_example(serialized, features)
    indices = decode_sequence(parsed["sequence"])
    targets = tf.cast(tf.reshape(tf.io.decode_raw(parsed["target"], tf.float16), shape), tf.float32)
    seed_pair = tf.stack([rand, tf.constant(seed, tf.int64)]) if augment else None
    return shift_and_flip(indices, targets, config, permutation, seed=seed_pair)

  ds = tf.data.Dataset.zip((ds, randoms)).map(parse, num_parallel_calls=tf.data.AUTOTUNE,
                                                deterministic=True)
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.OFF if num_shards > 1
      else tf.data.experimental.AutoShardPolicy.AUTO)
  return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def basenji_splits(data_dir: PathLike, batch_size: int, *, head: str = "tracks", **kwargs) -> DataSplits:
  """`DataSplits` over a Basenji data directory; kwargs as `basenji_dataset` (augmentation
  settings apply to the train split only). Splits without records are None."""
  stats = read_statistics(data_dir)
  datasets = {}
  for split in SPLITS:
    datasets[split] = (basenji_dataset(data_dir, split, batch_size, head=head, **kwargs)
                       if tfrecord_files(data_dir, split) else None)
  if datasets["train"] is None:
    raise FileNotFoundError(f"no train TFRecords in {os.path.join(os.fspath(data_dir), 'tfrecords')}")
  return DataSplits(datasets["train"], datasets["valid"], datasets["test"], stats.seq_length, 4,
                    (head,), sizes=dict(stats.split_sizes),
                    info={"bin_size": stats.pool_width, "target_bins": stats.target_length,
                          "num_targets": stats.num_targets})
