"""Input-pipeline throughput against the models' consumption rate.

    python bench/data_pipeline.py [--json results.json] [--enformer-records 16]

Measures, on this machine, sequences/s and MB/s (of model-ready tensors: one-hot float32
inputs + float32 targets) for

  fasta+bigwig load    reading windows from FASTA + bigWigs into memory (`tracks.load_windows`)
  tracks tf.data       the in-memory pipeline with shifts / jitter / reverse complement
  tfrecord write       Basenji TFRecords written from FASTA + bigWigs
  tfrecord read        streaming them back with augmentation (parallel decode)
  enformer-shape read  TFRecords of Enformer's human data shape (131,072 bp one-hot,
                       896 x 5,313 float16 targets)

on the synthetic demo genome (6 x 300 kb, 4 tracks), and the training consumption rate of the
demo Enformer (96 channels, 4,096 bp, batch 8) on the same CPU, so the ratio says whether the
pipeline could ever be the bottleneck. Everything runs in one process; the first pass of each
tf.data pipeline is a warm-up and not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_seqmodels.data.genome import read_chrom_sizes  # noqa: E402
from tf_seqmodels.data.intervals import read_fold, tile_regions  # noqa: E402
from tf_seqmodels.data.synthetic import SyntheticConfig, generate_synthetic_dataset  # noqa: E402
from tf_seqmodels.data.tfrecords import (basenji_dataset, encode_example,  # noqa: E402
                                         write_basenji_tfrecords)
from tf_seqmodels.data.tracks import TrackDataConfig, TrackSource, load_windows  # noqa: E402

MB = 1e6


def tensor_bytes(length: int, bins: int, tracks: int) -> int:
  """Bytes of one model-ready example: one-hot float32 [L, 4] + float32 targets [bins, T]."""
  return 4 * (4 * length + bins * tracks)


def rate(n: int, seconds: float, per_example: int) -> dict:
  return {"sequences_per_s": n / seconds, "mb_per_s": n * per_example / seconds / MB,
          "sequences": n, "seconds": seconds}


def drain(dataset: tf.data.Dataset, batches: int) -> tuple[int, float]:
  """Examples and seconds for `batches` batches, after one warm-up batch."""
  it = iter(dataset.repeat())
  next(it)
  start, count = time.perf_counter(), 0
  for _ in range(batches):
    x, _ = next(it)
    count += int(x.shape[0])
  return count, time.perf_counter() - start


def enformer_shape_records(directory: str, count: int) -> int:
  """Writes `count` records shaped like Enformer's human TFRecords; returns bytes on disk."""
  rng = np.random.default_rng(0)
  length, bins, tracks = 131_072, 896, 5_313
  os.makedirs(os.path.join(directory, "tfrecords"), exist_ok=True)
  path = os.path.join(directory, "tfrecords", "train-0.tfr")
  # Coverage-like targets: mostly small values, heavy right tail (compresses like real data
  # only roughly; the decode cost is what matters here).
  targets = np.round(rng.gamma(0.6, 1.5, (bins, tracks)), 1).astype(np.float32)
  with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="ZLIB")) as writer:
    for _ in range(count):
      writer.write(encode_example(rng.integers(0, 4, length).astype(np.int8), targets))
  with open(os.path.join(directory, "statistics.json"), "w") as f:
    json.dump({"seq_length": length, "pool_width": 128, "crop_bp": 8192, "target_length": bins,
               "num_targets": tracks, "train_seqs": count, "valid_seqs": 0, "test_seqs": 0}, f)
  return os.path.getsize(path)


def model_consumption(batch: int, steps: int) -> float:
  """Training examples per second of the demo Enformer (the `tf-seqmodels demo` architecture:
  96 channels, one transformer layer, 4,096 bp) on this machine, trained by the Trainer."""
  from tf_seqmodels.models import Enformer, EnformerConfig
  from tf_seqmodels.tasks.tracks import TrackTask
  from tf_seqmodels.training import Adam, Trainer, TrainerConfig
  config = EnformerConfig(channels=96, num_transformer_layers=1, num_heads=4, pooling_type="max",
                          filters_divisible_by=16, sequence_length=4096, target_length=24,
                          dropout_rate=0.1, heads={"tracks": 4})
  x = tf.one_hot(np.random.default_rng(0).integers(0, 4, (batch, config.sequence_length)), 4)
  y = {"tracks": tf.random.uniform((batch, config.target_length, 4))}
  data = tf.data.Dataset.from_tensors((x, y)).repeat(steps)
  trainer = Trainer(Enformer(config), TrackTask(), Adam(learning_rate=1e-3),
                    config=TrainerConfig(epochs=2, steps_per_epoch=steps, log_every=steps,
                                         progress=False, tensorboard=False))
  # The first epoch includes tracing the step; the second is the steady state.
  history = trainer.fit(data)
  return batch * steps / history["epoch_time"][1]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data-dir", help="synthetic dataset directory (default: a temporary one)")
  parser.add_argument("--batch-size", type=int, default=8)
  parser.add_argument("--batches", type=int, default=60, help="timed batches per tf.data pipeline")
  parser.add_argument("--enformer-records", type=int, default=16)
  parser.add_argument("--model-steps", type=int, default=20)
  parser.add_argument("--json", help="also write the results here")
  args = parser.parse_args(argv)

  results: dict = {"machine": {"cpus": os.cpu_count(), "tensorflow": tf.__version__}}
  with tempfile.TemporaryDirectory() as tmp:
    data = generate_synthetic_dataset(args.data_dir or os.path.join(tmp, "data"), SyntheticConfig())
    sizes, fold = read_chrom_sizes(data.chrom_sizes), read_fold(data.fold)
    demo = TrackDataConfig(sequence_length=4096, target_length=24, max_shift=3, jitter_bins=4,
                           reverse_complement=True)
    per_demo = tensor_bytes(4096, 24, 4)
    windows = tile_regions(sizes, 4096, stride=24 * 128, chroms=fold.train)

    start = time.perf_counter()
    with TrackSource(data.fasta, data.tracks) as source:
      loaded = load_windows(source, windows, demo, training=True)
    results["fasta+bigwig load (4,096 bp)"] = rate(len(windows), time.perf_counter() - start, per_demo)

    long_config = TrackDataConfig(sequence_length=131_072, target_length=896)
    long_windows = tile_regions(sizes, 131_072, stride=65_536, chroms=fold.train)
    start = time.perf_counter()
    with TrackSource(data.fasta, data.tracks) as source:
      load_windows(source, long_windows, long_config)
    results["fasta+bigwig load (131,072 bp)"] = rate(len(long_windows), time.perf_counter() - start,
                                                     tensor_bytes(131_072, 896, 4))

    n, seconds = drain(loaded.dataset(args.batch_size, training=True, seed=0), args.batches)
    results["tracks tf.data, augmented (4,096 bp)"] = rate(n, seconds, per_demo)

    tfr_dir = os.path.join(tmp, "tfr")
    start = time.perf_counter()
    write_basenji_tfrecords(tfr_dir, data.fasta, data.tracks, windows, fold, demo, seqs_per_tfr=64)
    results["tfrecord write (4,096 bp)"] = rate(len(windows), time.perf_counter() - start, per_demo)
    ds = basenji_dataset(tfr_dir, "train", args.batch_size, max_shift=3, reverse_complement=True)
    n, seconds = drain(ds, args.batches)
    results["tfrecord read, augmented (4,096 bp)"] = rate(n, seconds, per_demo)

    big_dir = os.path.join(tmp, "enformer")
    on_disk = enformer_shape_records(big_dir, args.enformer_records)
    ds = basenji_dataset(big_dir, "train", 2, max_shift=3, reverse_complement=True,
                         shuffle_buffer=4)
    n, seconds = drain(ds, max(1, args.enformer_records // 2 - 1))
    results["tfrecord read, Enformer shape (131,072 bp, 5,313 tracks)"] = {
        **rate(n, seconds, tensor_bytes(131_072, 896, 5_313)),
        "compressed_mb_per_record": on_disk / args.enformer_records / MB}

  consumption = model_consumption(args.batch_size, args.model_steps)
  results["demo Enformer training consumption (4,096 bp)"] = rate(
      int(consumption * 1000), 1000.0, per_demo)

  width = max(len(k) for k in results if k != "machine")
  print(f"{'':{width}s}  {'seq/s':>9s}  {'MB/s':>8s}  {'x model':>8s}")
  for name, r in results.items():
    if name == "machine":
      continue
    ratio = r["sequences_per_s"] / consumption if "4,096" in name else float("nan")
    print(f"{name:{width}s}  {r['sequences_per_s']:9.1f}  {r['mb_per_s']:8.1f}  "
          f"{'' if np.isnan(ratio) else f'{ratio:8.1f}'}")
  print(f"(x model: pipeline rate / demo-model training rate on the same {os.cpu_count()}-CPU machine)")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(results, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
