"""FASTA + BED + bigWig -> tf.data for track models, on a hand-made tiny genome.

Checks the windows against direct numpy reads (one-hot, binned and transformed targets),
edge padding and strands, that every augmentation keeps inputs and targets aligned,
seeded determinism, sharding, the track task's loss and metric, and every documented error.
"""

import json

import numpy as np
import pyBigWig
import pytest
import tensorflow as tf

from tf_seqmodels.config import ConfigError
from tf_seqmodels.data.encoding import one_hot_encode, reverse_complement
from tf_seqmodels.data.genome import GenomeError
from tf_seqmodels.data.intervals import (DataSplits, Fold, Regions, read_bed, read_fold,
                                         split_regions, table_splits, tile_regions)
from tf_seqmodels.data.tracks import (TrackDataConfig, TrackSource, TrackSpec, load_windows,
                                      pool_bins, read_targets_table, track_splits, transform_bins,
                                      window_coordinates, write_targets_table)
from tf_seqmodels.tasks.tracks import StreamingTrackPearson, TrackTask, poisson_loss

SIZES = {"chr1": 1200, "chr2": 800, "chr3": 640}
BIN = 16
CONFIG = TrackDataConfig(sequence_length=128, bin_size=BIN, target_length=4, head="tracks")


def _write_bigwig(path, values_by_chrom):
  bw = pyBigWig.open(str(path), "w")
  bw.addHeader([(c, len(v)) for c, v in values_by_chrom.items()], maxZooms=0)
  for chrom, values in values_by_chrom.items():
    bw.addEntries(chrom, 0, values=[float(v) for v in values], span=1, step=1)
  bw.close()


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
  """chr1..chr3 of seeded random bases (N runs at chr1's start), four tracks: 'ramp' (value =
  position / 10), 'wave' (NaN every 7th base), and a strand pair 'plus' / 'minus'."""
  root = tmp_path_factory.mktemp("genome")
  rng = np.random.default_rng(7)
  seqs = {c: "".join(rng.choice(list("ACGT"), n)) for c, n in SIZES.items()}
  seqs["chr1"] = "N" * 20 + seqs["chr1"][20:]
  with open(root / "genome.fa", "w") as f:
    for chrom, seq in seqs.items():
      f.write(f">{chrom}\n" + "\n".join(seq[i:i + 60] for i in range(0, len(seq), 60)) + "\n")
  values = {
      "ramp": {c: np.arange(n) / 10.0 for c, n in SIZES.items()},
      "wave": {c: np.where(np.arange(n) % 7 == 0, np.nan, 1.0 + np.sin(np.arange(n) / 5.0))
               for c, n in SIZES.items()},
      "plus": {c: rng.poisson(2.0, n).astype(float) for c, n in SIZES.items()},
      "minus": {c: rng.poisson(0.5, n).astype(float) for c, n in SIZES.items()},
  }
  for name, per_chrom in values.items():
    _write_bigwig(root / f"{name}.bw", per_chrom)
  tracks = [TrackSpec(name="ramp", path=str(root / "ramp.bw")),
            TrackSpec(name="wave", path=str(root / "wave.bw"), sum_stat="mean"),
            TrackSpec(name="plus", path=str(root / "plus.bw"), strand_pair="minus"),
            TrackSpec(name="minus", path=str(root / "minus.bw"), strand_pair="plus")]
  clean = {k: {c: np.nan_to_num(v) for c, v in d.items()} for k, d in values.items()}
  return {"root": root, "fasta": str(root / "genome.fa"), "seqs": seqs, "values": clean,
          "tracks": tracks}


def _expected(genome, chrom, centre, strand="+", move=0):
  """One-hot [128, 4] and targets [4, 4] of a window read directly from the strings / arrays."""
  start = centre - 64 + move
  seq = "".join(genome["seqs"][chrom][p] if 0 <= p < SIZES[chrom] else "N"
                for p in range(start, start + 128))
  t0 = start + 32
  columns = []
  for name, stat in (("ramp", "sum"), ("wave", "mean"), ("plus", "sum"), ("minus", "sum")):
    v = genome["values"][name][chrom]
    window = np.array([v[p] if 0 <= p < SIZES[chrom] else 0.0 for p in range(t0, t0 + 64)])
    binned = window.reshape(4, BIN)
    columns.append(binned.sum(1) if stat == "sum" else binned.mean(1))
  targets = np.stack(columns, -1)
  if strand == "-":
    return one_hot_encode(reverse_complement(seq)), targets[::-1][:, [0, 1, 3, 2]]
  return one_hot_encode(seq), targets


def _first(dataset):
  x, y = next(iter(dataset))
  return x.numpy(), y["tracks"].numpy()


def test_windows_match_direct_reads_with_edges_and_strands(genome):
  regions = Regions.from_intervals(["chr1", "chr1", "chr2", "chr3"], [10, 500, 300, 600],
                                   [30, 700, 400, 640], ["+", "-", ".", "+"])
  with TrackSource(genome["fasta"], genome["tracks"]) as source:
    windows = load_windows(source, regions, CONFIG)
  x, y = _first(windows.dataset(8))
  assert x.shape == (4, 128, 4) and y.shape == (4, 4, 4)
  for i, (chrom, centre, strand) in enumerate([("chr1", 20, "+"), ("chr1", 600, "-"),
                                               ("chr2", 350, "."), ("chr3", 620, "+")]):
    one_hot, targets = _expected(genome, chrom, centre, strand)
    np.testing.assert_array_equal(x[i], one_hot)
    np.testing.assert_allclose(y[i], targets, rtol=1e-5, atol=1e-5)
  # The chr1 window starts 44 bp before the chromosome: N rows (all zero), zero coverage.
  assert x[0, :44].sum() == 0 and x[0, 44:64].sum() == 0 and x[0, 64:].sum() == 64


def test_transforms_follow_basenji_and_borzoi():
  pooled = np.array([1.0, 10.0, 50.0, -300.0], np.float32)
  basenji = TrackSpec(name="a", path="a.bw", clip_soft=8, clip=20, scale=0.5)
  np.testing.assert_allclose(transform_bins(pooled, basenji),
                             0.5 * np.array([1, 8 + np.sqrt(2), 8 + np.sqrt(42), -20]), rtol=1e-6)
  borzoi = TrackSpec(name="b", path="b.bw", clip_soft=8, clip=20, scale=0.5, transform="borzoi")
  np.testing.assert_allclose(transform_bins(pooled, borzoi),
                             [0.5, 5, 7 + np.sqrt(25 - 8 + 1), -20], rtol=1e-6)
  np.testing.assert_array_equal(pool_bins(np.arange(8), 4, "max"), [3, 7])
  with pytest.raises(ConfigError, match="sum_stat"):
    TrackSpec(name="c", path="c.bw", sum_stat="median")


def test_targets_table_round_trip_resolves_paths_and_strand_pairs(genome, tmp_path):
  tracks = [t.replace(path=f"{t.name}.bw") for t in genome["tracks"]]
  write_targets_table(tmp_path / "targets.txt", tracks)
  read = read_targets_table(tmp_path / "targets.txt")
  assert [t.name for t in read] == ["ramp", "wave", "plus", "minus"]
  assert read[2].strand_pair == "minus" and read[0].strand_pair is None
  assert read[1].sum_stat == "mean" and read[0].path == str(tmp_path / "ramp.bw")


def _locate(source, regions, x, y, jitter, shifts):
  """(region, move, strand) pairs whose direct read equals example (x, y)."""
  idx = np.where(x.sum(-1) > 0, x.argmax(-1), 4)
  s0, e0, t0, te0 = window_coordinates(regions, CONFIG)
  hits = []
  for i in range(len(regions)):
    for k in range(-jitter, jitter + 1):
      for s in shifts:
        move = k * BIN + s
        for strand in "+-":
          seq, tgt = source.read(regions.chrom[i], int(s0[i]) + move, int(e0[i]) + move,
                                 int(t0[i]) + k * BIN, int(te0[i]) + k * BIN, BIN, strand)
          if np.array_equal(seq, idx) and np.allclose(tgt, y, atol=1e-5):
            hits.append((i, move, strand))
  return hits


def test_augmentations_keep_inputs_and_targets_aligned(genome):
  config = CONFIG.replace(jitter_bins=2, max_shift=3, reverse_complement=True)
  regions = tile_regions({"chr2": 800}, 128, stride=128).subset(slice(1, 5))
  with TrackSource(genome["fasta"], genome["tracks"]) as source:
    windows = load_windows(source, regions, config, training=True)
    strands, moves = set(), set()
    for x, y in windows.dataset(4, training=True, seed=3).repeat(3):
      for b in range(4):
        hits = _locate(source, regions, x.numpy()[b], y["tracks"].numpy()[b], 2, range(-3, 4))
        assert len(hits) == 1, hits
        strands.add(hits[0][2])
        moves.add(hits[0][1])
  assert strands == {"+", "-"} and len(moves) > 3, moves  # both strands, several moves drawn


def test_shuffling_and_augmentation_are_seeded(genome):
  config = CONFIG.replace(jitter_bins=1, reverse_complement=True)
  regions = tile_regions(SIZES, 128, stride=64, chroms=["chr2", "chr3"])
  with TrackSource(genome["fasta"], genome["tracks"]) as source:
    windows = load_windows(source, regions, config, training=True)

  def two_epochs(seed):
    ds = windows.dataset(5, training=True, seed=seed)
    return [np.concatenate([x.numpy().ravel() for x, _ in ds]) for _ in range(2)]

  first, again, other = two_epochs(11), two_epochs(11), two_epochs(12)
  np.testing.assert_array_equal(first[0], again[0])
  np.testing.assert_array_equal(first[1], again[1])
  assert not np.array_equal(first[0], first[1])  # a new epoch is a new shuffle
  assert not np.array_equal(first[0], other[0])


def test_shards_partition_the_examples(genome):
  regions = tile_regions(SIZES, 128, stride=128, chroms=["chr2"])
  with TrackSource(genome["fasta"], genome["tracks"]) as source:
    windows = load_windows(source, regions, CONFIG)
  whole = np.concatenate([y["tracks"].numpy() for _, y in windows.dataset(2)])
  parts = [np.concatenate([y["tracks"].numpy() for _, y in windows.dataset(2, num_shards=2,
                                                                             shard_index=i)])
           for i in range(2)]
  np.testing.assert_array_equal(parts[0], whole[0::2])
  np.testing.assert_array_equal(parts[1], whole[1::2])
  options = windows.dataset(2, num_shards=2, shard_index=1).options()
  assert options.experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.OFF


def test_track_splits_follow_the_fold_json(genome, tmp_path):
  fold_path = tmp_path / "fold.json"
  fold_path.write_text(json.dumps({"train": ["chr1"], "valid": ["chr2"], "test": ["chr3"]}))
  bed = tmp_path / "windows.bed"
  bed.write_text("".join(f"{r}\n" for r in ["chr1\t100\t228", "chr1\t400\t528", "chr2\t0\t128",
                                             "chr3\t300\t428", "chrUn\t0\t128"]))
  splits = track_splits(genome["fasta"], genome["tracks"], read_bed(bed), read_fold(fold_path),
                        CONFIG, batch_size=4, seed=0)
  assert isinstance(splits, DataSplits)
  assert splits.sizes == {"train": 2, "valid": 1, "test": 1}  # chrUn is outside the fold
  assert splits.info["tracks"] == ("ramp", "wave", "plus", "minus")
  x, y = _first(splits.test)
  np.testing.assert_array_equal(x[0], _expected(genome, "chr3", 364)[0])


def test_bed_formats_and_intervals(tmp_path):
  bed = tmp_path / "mixed.bed"
  bed.write_text("track name=x\n# comment\nchr1\t10\t20\n"
                 "chr2\t5\t25\tpeak\t7\t-\n"
                 "chr3\t100\t200\tp\t0\t.\t1.5\t-1\t-1\t30\n")
  regions = read_bed(bed)
  np.testing.assert_array_equal(regions.centre, [15, 15, 130])
  assert list(regions.strand) == [".", "-", "."] and list(regions.is_minus) == [False, True, False]
  tiles = tile_regions({"a": 1000, "b": 300}, 400, stride=300)
  assert list(zip(tiles.chrom, tiles.start)) == [("a", 0), ("a", 300), ("a", 600)]
  fold = Fold(train=("chr1",), valid=("chr2",), test=("chr3",))
  assert {k: len(v) for k, v in split_regions(regions, fold).items()} == {"train": 1, "valid": 1,
                                                                           "test": 1}
  # The shared pieces moved out of data.chrombpnet stay importable from there.
  from tf_seqmodels.data import chrombpnet
  assert chrombpnet.Regions is Regions and chrombpnet.Fold is Fold


def test_table_splits_give_the_common_interface(shared):
  from tf_seqmodels.data.dream import read_lentimpra_table, regression_dataset
  table = read_lentimpra_table(shared("data", "lentimpra_sample", "sample_valid.txt"))
  splits = table_splits(table, regression_dataset, valid_folds=[1], test_folds=[2],
                        sequence_length=230, channels=5, targets=["activity"], batch_size=64)
  fold = np.asarray(table.fold)
  assert splits.sizes == {"train": int(np.sum(~np.isin(fold, [1, 2]))),
                          "valid": int(np.sum(fold == 1)), "test": int(np.sum(fold == 2))}
  x, y = next(iter(splits.valid))
  assert x.shape[1:] == (230, 5) and set(y) == {"activity"}
  from tf_seqmodels.data.dream import read_deepstarr_table
  files = {"train": "sample_train.txt", "valid": "sample_val.txt"}
  tables = {k: read_deepstarr_table(shared("data", "deepstarr_sample", v)) for k, v in files.items()}
  splits = table_splits(tables, regression_dataset, sequence_length=249, channels=5,
                        targets=["dev", "hk"], batch_size=100)
  assert splits.sizes == {"train": 1000, "valid": 1000, "test": 0} and splits.test is None
  x, y = next(iter(splits.train))
  assert x.shape == (100, 249, 5) and set(y) == {"dev", "hk"}


def test_poisson_loss_and_per_track_pearson():
  rng = np.random.default_rng(0)
  targets = rng.poisson(3.0, (3, 5, 2)).astype(np.float32)
  preds = rng.uniform(0.5, 5.0, (3, 5, 2)).astype(np.float32)
  np.testing.assert_allclose(poisson_loss(targets, preds), tf.keras.losses.poisson(targets, preds),
                             rtol=1e-6)
  task = TrackTask(["tracks"])
  np.testing.assert_allclose(float(task.loss({"tracks": targets}, {"tracks": preds})),
                             np.mean(preds - targets * np.log(preds + 1e-7)), rtol=1e-5)
  metric = StreamingTrackPearson("tracks")
  for b in range(3):  # streaming over batches equals the pooled computation
    metric.update({"tracks": targets[b:b + 1]}, {"tracks": preds[b:b + 1]})
  expected = [np.corrcoef(targets[..., k].ravel(), preds[..., k].ravel())[0, 1] for k in range(2)]
  np.testing.assert_allclose(metric.per_track(), expected, rtol=1e-10)
  assert metric.result() == pytest.approx(np.mean(expected))
  two = TrackTask(["human", "mouse"], weights={"mouse": 0.5}).make_metrics()
  assert set(two) == {"pearson", "pearson/human", "pearson/mouse", "pearson_log/human",
                      "pearson_log/mouse"}


# --- errors ------------------------------------------------------------------------------------

def test_missing_files_are_named(genome, tmp_path):
  with pytest.raises(FileNotFoundError, match="genome FASTA not found"):
    TrackSource(tmp_path / "none.fa", genome["tracks"])
  with pytest.raises(FileNotFoundError, match="bigWig not found"):
    TrackSource(genome["fasta"], [TrackSpec(name="x", path=str(tmp_path / "none.bw"))])
  with pytest.raises(FileNotFoundError, match="BED file not found"):
    read_bed(tmp_path / "none.bed")
  with pytest.raises(FileNotFoundError, match="targets table not found"):
    read_targets_table(tmp_path / "targets.txt")


def test_chromosome_name_mismatches_are_explained(genome, tmp_path):
  with TrackSource(genome["fasta"], genome["tracks"]) as source:
    prefixed = Regions.from_intervals(["1"], [10], [50])
    with pytest.raises(GenomeError, match="names chromosomes with 'chr' \\(chr1\\)"):
      source.check_regions(prefixed)
  _write_bigwig(tmp_path / "short.bw", {"chr1": np.ones(1200)})
  with TrackSource(genome["fasta"], [TrackSpec(name="s", path=str(tmp_path / "short.bw"))]) as source:
    with pytest.raises(GenomeError, match=r"\['chr2'\] not in the bigWig"):
      source.check_regions(Regions.from_intervals(["chr2"], [10], [50]))
  _write_bigwig(tmp_path / "other.bw", {"chr1": np.ones(1000)})
  with pytest.raises(GenomeError, match="chr1 is 1200 bp in the FASTA .* but 1000 bp in the bigWig"):
    TrackSource(genome["fasta"], [TrackSpec(name="o", path=str(tmp_path / "other.bw"))])
  with pytest.raises(GenomeError, match="no interval lies on a fold chromosome"):
    split_regions(prefixed, Fold(train=("chr1",)))


def test_bad_intervals_and_empty_inputs(genome, tmp_path):
  with TrackSource(genome["fasta"], genome["tracks"]) as source:
    with pytest.raises(GenomeError, match=r"chr3:600-700 is off the end of chr3 \(length 640\)"):
      source.check_regions(Regions.from_intervals(["chr3", "chr3"], [0, 600], [10, 700]))
    with pytest.raises(ValueError, match="region set is empty"):
      load_windows(source, Regions.from_intervals([], [], []), CONFIG)
  empty = tmp_path / "empty.bed"
  empty.write_text("# nothing\n")
  with pytest.raises(ValueError, match="no intervals"):
    read_bed(empty)
  bad = tmp_path / "bad.bed"
  bad.write_text("chr1\t10\t20\nchr1\tx\t30\n")
  with pytest.raises(ValueError, match="bad.bed:2: start and end"):
    read_bed(bad)
  backwards = tmp_path / "backwards.bed"
  backwards.write_text("chr1\t50\t20\n")
  with pytest.raises(ValueError, match="backwards.bed:1: invalid interval"):
    read_bed(backwards)
  empty_fasta = tmp_path / "empty.fa"
  empty_fasta.write_text("")
  with pytest.raises(GenomeError, match="empty.fa is empty"):
    TrackSource(empty_fasta, genome["tracks"])
  with pytest.raises(ConfigError, match="must be even"):
    TrackDataConfig(sequence_length=128, bin_size=16, target_length=5)
  with pytest.raises(ConfigError, match="strand_pair 'nope' is not a track"):
    TrackSource(genome["fasta"], [TrackSpec(name="p", path="p.bw", strand_pair="nope")])
