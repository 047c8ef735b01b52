"""Basenji TFRecords: write from FASTA + BED + bigWigs, read back identical tensors."""

import json

import numpy as np
import pyBigWig
import pytest
import tensorflow as tf

from tf_seqmodels.data.intervals import Fold, Regions, read_bed
from tf_seqmodels.data.tfrecords import (basenji_dataset, basenji_splits, encode_example,
                                         read_statistics, tfrecord_files, write_basenji_tfrecords)
from tf_seqmodels.data.tracks import (TrackDataConfig, TrackSource, TrackSpec, load_windows,
                                      read_targets_table)

SIZES = {"chr1": 2000, "chr2": 900, "chr3": 900}
CONFIG = TrackDataConfig(sequence_length=256, bin_size=32, target_length=4)
FOLD = Fold(train=("chr1",), valid=("chr2",), test=("chr3",))


@pytest.fixture(scope="module")
def source_files(tmp_path_factory):
  root = tmp_path_factory.mktemp("tfr")
  rng = np.random.default_rng(3)
  with open(root / "genome.fa", "w") as f:
    for chrom, n in SIZES.items():
      seq = "".join(rng.choice(list("ACGTN"), n, p=[0.24, 0.24, 0.24, 0.24, 0.04]))
      f.write(f">{chrom}\n{seq}\n")
  tracks = []
  for name, pair in (("fwd", "rev"), ("rev", "fwd"), ("atac", None)):
    bw = pyBigWig.open(str(root / f"{name}.bw"), "w")
    bw.addHeader(list(SIZES.items()), maxZooms=0)
    for chrom, n in SIZES.items():
      # Values with a fractional part float16 cannot hold exactly, and one huge value
      # that must be clipped to the float16 range rather than overflow to inf.
      values = rng.gamma(0.5, 40.0, n) + 0.123
      values[[150, 400]] = 1e6
      bw.addEntries(chrom, 0, values=values.tolist(), span=1, step=1)
    bw.close()
    tracks.append(TrackSpec(name=name, path=str(root / f"{name}.bw"), strand_pair=pair,
                            clip_soft=200.0 if name == "atac" else None))
  regions = Regions.from_intervals(
      ["chr1"] * 6 + ["chr2", "chr2", "chr3"], [100, 400, 700, 1000, 1300, 1700, 100, 500, 300],
      [300, 600, 900, 1200, 1500, 1990, 300, 700, 500], ["+", "-", "+", ".", "+", "-", "+", "+", "-"])
  return {"root": root, "fasta": str(root / "genome.fa"), "tracks": tracks, "regions": regions}


def _in_memory(files, split):
  part = files["regions"].on_chromosomes(getattr(FOLD, split))
  with TrackSource(files["fasta"], files["tracks"]) as source:
    windows = load_windows(source, part, CONFIG)
  x, y = zip(*[(a.numpy(), b["tracks"].numpy()) for a, b in windows.dataset(16)])
  return np.concatenate(x), np.concatenate(y)


@pytest.mark.parametrize("encoding", ["one_hot", "index"])
def test_write_then_read_gives_identical_tensors(source_files, tmp_path, encoding):
  stats = write_basenji_tfrecords(tmp_path, source_files["fasta"], source_files["tracks"],
                                  source_files["regions"], FOLD, CONFIG, seqs_per_tfr=4,
                                  sequence_encoding=encoding)
  assert stats.split_sizes == {"train": 6, "valid": 2, "test": 1}
  assert [f.rsplit("/", 1)[1] for f in tfrecord_files(tmp_path, "train")] == ["train-0.tfr",
                                                                               "train-1.tfr"]
  for split in ("train", "valid", "test"):
    x, y = _in_memory(source_files, split)
    ds = basenji_dataset(tmp_path, split, batch_size=4, training=False)
    rx, ry = zip(*[(a.numpy(), b["tracks"].numpy()) for a, b in ds])
    np.testing.assert_array_equal(np.concatenate(rx), x)  # N rows stay all-zero
    expected = np.clip(y, -65504, 65504).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(np.concatenate(ry), expected)
    assert np.isfinite(expected).all() and expected.max() == 65504  # clipped, never inf


def test_directory_layout_matches_basenji(source_files, tmp_path):
  write_basenji_tfrecords(tmp_path, source_files["fasta"], source_files["tracks"],
                          source_files["regions"], FOLD, CONFIG, seqs_per_tfr=100)
  stats = json.loads((tmp_path / "statistics.json").read_text())
  assert stats == {"seq_length": 256, "pool_width": 32, "crop_bp": 64, "target_length": 4,
                   "num_targets": 3, "train_seqs": 6, "valid_seqs": 2, "test_seqs": 1}
  beds = read_bed(tmp_path / "sequences.bed")
  assert list(beds.extra[:, 0][:6]) == ["train"] * 6 and beds.end[0] - beds.start[0] == 256
  tracks = read_targets_table(tmp_path / "targets.txt")
  assert [(t.name, t.strand_pair, t.clip_soft) for t in tracks] == [
      ("fwd", "rev", None), ("rev", "fwd", None), ("atac", None, 200.0)]
  raw = next(iter(tf.data.TFRecordDataset(str(tmp_path / "tfrecords" / "valid-0.tfr"),
                                          compression_type="ZLIB")))
  features = tf.train.Example.FromString(raw.numpy()).features.feature
  assert len(features["sequence"].bytes_list.value[0]) == 256 * 4  # bool one-hot
  assert len(features["target"].bytes_list.value[0]) == 4 * 3 * 2  # float16 [4, 3]


def test_reverse_complement_on_read_swaps_strand_pairs(source_files, tmp_path):
  write_basenji_tfrecords(tmp_path, source_files["fasta"], source_files["tracks"],
                          source_files["regions"], FOLD, CONFIG, seqs_per_tfr=2)
  plain = [(a.numpy(), b["tracks"].numpy()) for a, b in
           basenji_dataset(tmp_path, "train", 1, training=False)]
  augmented = basenji_dataset(tmp_path, "train", 3, reverse_complement=True, seed=5, max_shift=0)
  flipped = 0
  for x, y in augmented.repeat(2):
    for xb, yb in zip(x.numpy(), y["tracks"].numpy()):
      match = [i for i, (px, py) in enumerate(plain) if np.array_equal(px[0], xb)]
      if match:
        np.testing.assert_array_equal(plain[match[0]][1][0], yb)
        continue
      rc = [i for i, (px, py) in enumerate(plain) if np.array_equal(px[0][::-1, ::-1], xb)]
      assert len(rc) == 1
      np.testing.assert_array_equal(plain[rc[0]][1][0][::-1][:, [1, 0, 2]], yb)
      flipped += 1
  assert 0 < flipped < 12


def test_shards_split_files_or_records(source_files, tmp_path):
  write_basenji_tfrecords(tmp_path, source_files["fasta"], source_files["tracks"],
                          source_files["regions"], FOLD, CONFIG, seqs_per_tfr=2)

  def sequences(**kwargs):
    ds = basenji_dataset(tmp_path, "train", 1, training=False, **kwargs)
    return sorted(x.numpy().tobytes() for x, _ in ds)

  everything = sequences()
  for shards in (2, 4):  # 3 files: by file for 2 shards, by record for 4
    parts = [sequences(num_shards=shards, shard_index=i) for i in range(shards)]
    assert sorted(sum(parts, [])) == everything and all(parts)
  splits = basenji_splits(tmp_path, batch_size=2, head="human")
  assert splits.targets == ("human",) and splits.sizes["valid"] == 2
  assert set(next(iter(splits.valid))[1]) == {"human"}


def test_reader_errors(source_files, tmp_path):
  with pytest.raises(FileNotFoundError, match="TFRecord data directory not found"):
    read_statistics(tmp_path / "missing")
  with pytest.raises(FileNotFoundError, match="statistics.json .*written last"):
    basenji_dataset(tmp_path, "train", 2)
  write_basenji_tfrecords(tmp_path, source_files["fasta"], source_files["tracks"],
                          source_files["regions"], Fold(train=("chr1",)), CONFIG)
  with pytest.raises(FileNotFoundError, match="no valid TFRecords"):
    basenji_dataset(tmp_path, "valid", 2)
  stats = json.loads((tmp_path / "statistics.json").read_text())
  (tmp_path / "statistics.json").write_text(json.dumps({**stats, "seq_length": 300}))
  with pytest.raises(ValueError, match="seq_length 300 - 2 x crop_bp"):
    basenji_dataset(tmp_path, "train", 2)
  (tmp_path / "statistics.json").write_text(json.dumps({**stats, "seq_length": 320, "crop_bp": 96}))
  with pytest.raises(ValueError, match="fits neither a one-hot"):
    basenji_dataset(tmp_path, "train", 2)
  with pytest.raises(ValueError, match="sequence encoding must be one of"):
    encode_example(np.zeros(4, np.int8), np.zeros((1, 1)), "bytes")
