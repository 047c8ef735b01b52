"""The synthetic JASPAR-motif dataset: determinism, the ground-truth grammar, file formats that
the other pipelines read, and a small Enformer trained on it beating a trivial baseline."""

import numpy as np
import pyBigWig
import pytest

from tf_seqmodels.data.genome import Genome
from tf_seqmodels.data.intervals import read_bed, read_fold, read_narrowpeak, table_splits, tile_regions
from tf_seqmodels.data.synthetic import (TRACKS, GroundTruth, SyntheticConfig,
                                         generate_synthetic_dataset, load_motifs, pearson_per_track,
                                         track_accuracy)


SMALL = SyntheticConfig(seed=5, num_chromosomes=4, chromosome_length=100_000, dream_sequences=300)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  return generate_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), SMALL)


@pytest.fixture(scope="module")
def truth():
  return GroundTruth(load_motifs(SMALL.jaspar_release), SMALL.grammar)


def _bigwig(path, chrom):
  bw = pyBigWig.open(str(path))
  values = np.nan_to_num(np.asarray(bw.values(chrom, 0, bw.chroms(chrom), numpy=True)))
  bw.close()
  return values


def test_same_seed_same_dataset_other_seed_other_genome(dataset, tmp_path):
  again = generate_synthetic_dataset(tmp_path / "again", SMALL)
  for name in ("genome.fa", "peaks.narrowPeak", "genes.bed", "planted.bed", "dream/train.txt",
               "dream/plasmid.json", "fold.json"):
    assert open(dataset.path(name), "rb").read() == open(again.path(name), "rb").read(), name
  for track in TRACKS:
    for folder in ("tracks", "truth"):
      np.testing.assert_array_equal(_bigwig(dataset.path(folder, f"{track}.bw"), "chr2"),
                                    _bigwig(again.path(folder, f"{track}.bw"), "chr2"))
  other = generate_synthetic_dataset(tmp_path / "other", SMALL.replace(seed=6))
  assert open(other.fasta).read() != open(dataset.fasta).read()
  # A complete dataset is reused; a different config in the same place is refused.
  assert generate_synthetic_dataset(dataset.root, SMALL).root == dataset.root
  with pytest.raises(FileExistsError, match="different config"):
    generate_synthetic_dataset(dataset.root, SMALL.replace(seed=9))


def test_truth_tracks_are_the_generating_function_and_observations_its_poisson_draws(dataset, truth):
  with Genome(dataset.fasta) as genome:
    indices = genome.fetch_indices("chr3", 0, SMALL.chromosome_length)
  rates = truth.expected_tracks(indices)
  for k, track in enumerate(TRACKS):
    stored = _bigwig(dataset.path("truth", f"{track}.bw"), "chr3")
    np.testing.assert_allclose(stored, rates[:, k], rtol=1e-6, atol=1e-7)
    observed = _bigwig(dataset.path("tracks", f"{track}.bw"), "chr3")
    assert np.array_equal(observed, np.round(observed)) and observed.min() >= 0
    total = rates[:, k].sum()
    assert abs(observed.sum() - total) < 4 * np.sqrt(total)  # a Poisson total within 4 sd
  assert rates[indices == 4].sum() == 0  # nothing maps to N gaps
  # The peaks sit on accessible sequence: summits have far more DNase than the background.
  peaks = read_narrowpeak(dataset.peaks).on_chromosomes(["chr3"])
  assert len(peaks) > 10
  assert rates[peaks.centre, 0].min() > 10 * SMALL.grammar.background["dnase"]


def _consensus(truth, name):
  return truth.motifs[name].probs.argmax(1).astype(np.int8)


def _background(length, seed=0):
  return np.random.default_rng(seed).integers(0, 4, length).astype(np.int8)


def _put(seq, at, motif, strand=1):
  seq[at:at + len(motif)] = motif if strand > 0 else (3 - motif)[::-1]


def test_grammar_binding_cooperativity_spacing_and_orientation(truth):
  seq = _background(1000)
  base = truth.expected_tracks(seq)
  _put(seq, 500, _consensus(truth, "CEBPB"))
  bound = truth.expected_tracks(seq)
  assert bound[505, 0] - base[505, 0] > 0.15  # an accessible site around the motif
  foxa, hnf = _consensus(truth, "FOXA2"), _consensus(truth, "HNF4A")

  def pair_bonus(spacing, second_strand):
    s = _background(600, seed=1)
    _put(s, 200, foxa)
    _put(s, 200 + spacing, hnf, second_strand)
    return truth.cooperative_sites(truth.scan_all(s)).occupancy.sum()

  in_phase, out_of_phase, opposite = pair_bonus(21, 1), pair_bonus(26, 1), pair_bonus(21, -1)
  assert in_phase > 1.5 and out_of_phase < 0.2 * in_phase and opposite == 0


def test_distal_enhancers_drive_promoters_unless_insulated(truth):
  tata, sp1 = _consensus(truth, "TBP"), _consensus(truth, "SP1")
  enhancer = [_consensus(truth, n) for n in ("FOS::JUN", "CEBPB", "HNF4A")]

  def cage(strand=1, with_enhancer=False, with_ctcf=False):
    seq = _background(5000, seed=2)
    tss = 2500
    _put(seq, tss - 30 * strand - len(tata) // 2, tata, strand)
    _put(seq, tss - 100 * strand, sp1, strand)
    if with_enhancer:
      for i, motif in enumerate(enhancer):
        _put(seq, tss + 1200 + 40 * i, motif)
    if with_ctcf:
      _put(seq, tss + 600, _consensus(truth, "CTCF"))
    rates = truth.expected_tracks(seq)
    return rates[tss - 20:tss + 20, 2].sum(), rates[tss - 20:tss + 20, 3].sum()

  plain, boosted, insulated = cage()[0], cage(with_enhancer=True)[0], cage(True, True, True)[0]
  assert boosted > 1.5 * plain and insulated < plain + 0.3 * (boosted - plain)
  minus_plus, minus_minus = cage(strand=-1)
  assert minus_minus > 10 * minus_plus  # a reversed promoter transcribes the other strand


def test_files_plug_into_the_other_pipelines(dataset):
  from tf_seqmodels.data.dream import (dream_dataset, load_plasmid, pad_with_plasmid,
                                      read_dream_table)
  from tf_seqmodels.data.tracks import read_targets_table
  tracks = read_targets_table(dataset.tracks)
  assert [t.name for t in tracks] == list(TRACKS)
  assert tracks[2].strand_pair == "cage_minus" and tracks[0].strand_pair is None
  assert read_fold(dataset.fold).test == ("chr4",)
  assert len(read_bed(dataset.genes)) > 10 and len(read_narrowpeak(dataset.nonpeaks)) > 10
  table = read_dream_table(dataset.dream_table)
  plasmid = load_plasmid(dataset.dream_plasmid)
  assert len(table) == 300 and set(np.unique(table.fold)) == set(range(10))
  assert {len(s) for s in pad_with_plasmid(table.sequences[:5], plasmid)} == {150}
  expected = np.loadtxt(dataset.dream_expected)
  r = pearson_per_track(expected[:, None], table.targets["expression"][:, None])[0]
  assert 0.8 < r < 1.0  # measurements are noisy draws around the truth
  splits = table_splits(table, dream_dataset, valid_folds=[0], test_folds=[1],
                        sequence_length=150, channels=6, targets=["expression", "bin_probs"],
                        plasmid=plasmid, batch_size=32)
  x, y = next(iter(splits.test))
  assert x.shape[1:] == (150, 6) and y["bin_probs"].shape[1:] == (18,)


def test_chrombpnet_peaks_plug_into_the_common_interface(dataset):
  from tf_seqmodels.data.chrombpnet import ChromBPNetDataConfig, prepare_chrombpnet_data
  config = ChromBPNetDataConfig(input_length=512, output_length=128, max_jitter=16,
                                negative_sampling_ratio=0.5)
  data = prepare_chrombpnet_data(dataset.peaks, dataset.nonpeaks, dataset.fasta,
                                 dataset.path("tracks", "dnase.bw"), read_fold(dataset.fold), config)
  splits = data.splits(batch_size=16)
  assert splits.sequence_length == 512 and splits.sizes["train"] == len(data.train)
  x, y = next(iter(splits.train))
  assert x.shape[1:] == (512, 4) and y["profile"].shape[1:] == (128,)


def test_small_enformer_beats_the_trivial_baseline(dataset):
  import tensorflow as tf
  from tf_seqmodels.data.genome import read_chrom_sizes
  from tf_seqmodels.data.tracks import TrackDataConfig, TrackSource, load_windows, track_splits
  from tf_seqmodels.models import Enformer, EnformerConfig
  from tf_seqmodels.tasks.tracks import TrackTask
  from tf_seqmodels.training import Adam, fit

  config = TrackDataConfig(sequence_length=1024, target_length=6, jitter_bins=2, max_shift=3,
                           reverse_complement=True)
  windows = tile_regions(read_chrom_sizes(dataset.chrom_sizes), 1024, stride=6 * 128)
  splits = track_splits(dataset.fasta, dataset.tracks, windows, read_fold(dataset.fold), config,
                        batch_size=16, seed=0, drop_remainder=True)
  model = Enformer(EnformerConfig(channels=48, num_transformer_layers=1, num_heads=2,
                                  pooling_type="max", filters_divisible_by=8, sequence_length=1024,
                                  target_length=6, dropout_rate=0.1, heads={"tracks": 4}))
  # 300 steps with a 30-step linear warm-up (as the demo). The trainer takes the same steps
  # as the former single-device loop (without dropout their losses agree to 4 decimals over
  # the first updates); what differs is the random stream (the trainer seeds TensorFlow with
  # TrainerConfig.seed). At 200 steps of a constant 8e-3 from the first update the outcome
  # depended on that seed (initial weights and dropout)
  # (seeds 0/1/2: loss - baseline -0.04/-2.03/-0.95, r vs truth 0.06/0.34/0.25); with the
  # warm-up and 300 steps every seed cleared the bars below (-0.50/-1.36/-1.00; r 0.26/0.36/0.29)
  # on one CPU, but on an AVX-512 one (Zen 4) seeds 0 and 2 collapsed to the mean (+0.01/+0.09,
  # r 0.02): without clipping the outcome hinged on rounding. Clipping the global norm at 1
  # (Enformer's own recipe clips at 0.2) made it robust there: seeds 0-6 at -1.3 to -4.1,
  # r 0.36-0.60.
  peak, warmup = 8e-3, 30.0
  optimizer = Adam(learning_rate=lambda step: peak * tf.minimum(
      1.0, tf.cast(step + 1, tf.float32) / warmup))
  fit(model, TrackTask(), splits.train, optimizer=optimizer, steps_per_epoch=300, seed=0,
      clip_global_norm=1.0, progress=False)
  test = splits.info["windows"]["test"]
  with TrackSource(dataset.fasta, dataset.truth_tracks) as source:
    expected = load_windows(source, test.regions, config).targets
  predicted = np.concatenate([model.predict_on_batch(x)["tracks"].numpy() for x, _ in test.dataset(16)])
  train_mean = splits.info["windows"]["train"].targets.mean(axis=(0, 1))
  accuracy = track_accuracy(predicted, test.targets, expected, train_mean, TRACKS)
  print("\n".join(accuracy.lines()))
  # 300 steps are the start of learning (the demo trains 800 on more data to r ~ 0.8), yet
  # the model already beats predicting each track's mean, in loss and in correlation.
  assert accuracy.loss.mean() < accuracy.baseline_loss.mean() - 0.3
  assert np.mean(accuracy.versus_truth) > 0.1 and np.mean(accuracy.versus_observed) > 0.1
  assert np.all(accuracy.noise_ceiling > 0.8)
  assert np.isfinite(tf.reduce_sum(predicted).numpy())
