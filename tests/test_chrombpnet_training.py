"""ChromBPNet data, prediction tracks and training on a synthetic genome.

The synthetic genome (written per test session: FASTA, narrowPeak peaks and non-peaks,
an insertion-count bigWig and a fold JSON) has

- peaks: 1-3 copies of a TF motif around the summit, each copy adding a Gaussian
  accessibility bump (so peak depth follows the motif count);
- a strand-symmetric insertion bias: every occurrence of the palindrome GCTAGC multiplies
  the insertion rate at its two central bases by 8, in peaks and non-peaks alike.

A small bias model trained on the non-peaks learns the bias; a ChromBPNet trained with it
frozen reproduces the observed bias footprint through the bias model while its
bias-corrected part (`without_bias()`) does not carry it.
"""

import json

import numpy as np
import pyBigWig
import pytest
import tensorflow as tf

from tf_seqmodels.analysis.tracks import (predict_tracks, predicted_track, write_prediction_bigwig,
                                          write_track_bigwig)
from tf_seqmodels.data.chrombpnet import (ChromBPNetDataConfig, Fold, Regions, TrainingSampler,
                                          bias_counts_threshold, filter_edge_regions, inside_bounds,
                                          make_fold, outlier_bounds, prepare_bias_data,
                                          prepare_chrombpnet_data, read_fold, read_narrowpeak,
                                          reverse_complement_indices, write_narrowpeak)
from tf_seqmodels.data.genome import BigWigSignal, Genome, GenomeError, read_chrom_sizes
from tf_seqmodels.models import (BiasBPNetConfig, BiasFactorizedModel, BPNet, BPNetConfig,
                                 ChromBPNetBias, ProfileCountsConfig, build_model, recalibrate_bias)
from tf_seqmodels.tasks.chrombpnet import ChromBPNetTask
from tf_seqmodels.training import Adam, evaluate, fit

BIAS_MOTIF = "GCTAGC"  # a palindrome: the bias is the same on both strands
BIAS_OFFSETS = (2, 3)  # bases of the motif with the raised insertion rate
BIAS_STRENGTH = 7.0  # rate x (1 + 7) at those bases
TF_MOTIF = "TGAGTCAT"
CHROMS = {"chr1": 80_000, "chr2": 80_000, "chr3": 80_000, "chr4": 40_000, "chr5": 40_000}
FOLD = {"train": ["chr1", "chr2", "chr3"], "valid": ["chr4"], "test": ["chr5"]}
INPUT, OUTPUT = 300, 150


def reverse_complement(seq: str) -> str:
  return seq[::-1].translate(str.maketrans("ACGT", "TGCA"))


def write_synthetic_genome(root, seed=0, peak_spacing=500, bias_spacing=70, background=0.2,
                           amplitude=3.0, sigma=20.0):
  """Writes genome.fa, peaks.narrowPeak, nonpeaks.bed, signal.bw, fold.json, chrom.sizes.

  Returns {chrom: positions of GCTAGC occurrences}.
  """
  rng = np.random.default_rng(seed)
  sequences, bias_sites = {}, {}
  peaks, nonpeaks = [], []
  bw = pyBigWig.open(str(root / "signal.bw"), "w")
  bw.addHeader(list(CHROMS.items()))
  for chrom, size in CHROMS.items():
    seq = np.array(list("ACGT"))[rng.integers(0, 4, size)]
    grid = np.arange(peak_spacing, size - peak_spacing, peak_spacing)
    centres = grid + rng.integers(-60, 61, len(grid))
    copies = rng.integers(1, 4, len(centres))
    for c, k in zip(centres, copies):
      for offset in (0, -30, 30)[:k]:
        motif = TF_MOTIF if rng.random() < 0.5 else reverse_complement(TF_MOTIF)
        seq[c + offset - 4:c + offset + 4] = list(motif)
    positions = rng.integers(10, size - 10, size // bias_spacing)
    clear = np.abs(positions[:, None] - centres[None, :]).min(axis=1) >= 45
    for p in positions[clear]:
      seq[p:p + 6] = list(BIAS_MOTIF)
    text = "".join(seq)
    sequences[chrom] = text
    sites = np.array([i for i in range(size - 5) if text.startswith(BIAS_MOTIF, i)])
    bias_sites[chrom] = sites
    bias = np.ones(size)
    for offset in BIAS_OFFSETS:
      bias[sites + offset] += BIAS_STRENGTH
    x = np.arange(size)
    accessibility = np.full(size, background)
    for c, k in zip(centres, copies):
      lo, hi = c - 100, c + 100
      accessibility[lo:hi] += amplitude * k * np.exp(-0.5 * ((x[lo:hi] - c) / sigma)**2)
    counts = rng.poisson(accessibility * bias).astype(np.float64)
    bw.addEntries(chrom, 0, values=counts.tolist(), span=1, step=1)
    peaks += [(chrom, c - 50, c + 50, 50) for c in centres]
    nonpeaks += [(chrom, c - 50, c + 50, 50) for c in (centres[:-1] + centres[1:]) // 2]
  bw.close()
  with open(root / "genome.fa", "w") as f:
    for chrom, text in sequences.items():
      f.write(f">{chrom}\n" + "\n".join(text[i:i + 60] for i in range(0, len(text), 60)) + "\n")
  for name, regions in (("peaks.narrowPeak", peaks), ("nonpeaks.bed", nonpeaks)):
    with open(root / name, "w") as f:
      for chrom, start, end, summit in regions:
        f.write(f"{chrom}\t{start}\t{end}\t.\t0\t.\t1\t1\t1\t{summit}\n")
  (root / "fold.json").write_text(json.dumps(FOLD))
  (root / "chrom.sizes").write_text("".join(f"{c}\t{s}\n" for c, s in CHROMS.items()))
  return bias_sites


@pytest.fixture(scope="module")
def genome_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("synthetic_genome")
  return root, write_synthetic_genome(root)


def paths(root):
  return (root / "peaks.narrowPeak", root / "nonpeaks.bed", root / "genome.fa", root / "signal.bw",
          root / "fold.json")


# --- regions, folds, genome access ----------------------------------------------------------------

def test_narrowpeak_and_fold_files(tmp_path):
  path = tmp_path / "peaks.narrowPeak"
  path.write_text("chr1\t100\t300\tp1\t5\t.\t2.0\t3.0\t4.0\t60\n"
                  "track name=x\n"
                  "chr2\t0\t50\tp2\t1\t+\t1\t1\t1\t25\n")
  regions = read_narrowpeak(path)
  assert list(regions.chrom) == ["chr1", "chr2"] and list(regions.centre) == [160, 25]
  write_narrowpeak(tmp_path / "copy.bed", regions)
  first_line = (tmp_path / "copy.bed").read_text().splitlines()[0]
  assert first_line == "chr1\t100\t300\tp1\t5\t.\t2.0\t3.0\t4.0\t60"
  (tmp_path / "bad.bed").write_text("chr1\t100\t300\n")
  with pytest.raises(ValueError, match="bad.bed:1: expected 10"):
    read_narrowpeak(tmp_path / "bad.bed")
  (tmp_path / "bad2.bed").write_text("chr1\t100\t300\t.\t0\t.\t1\t1\t1\tsummit\n")
  with pytest.raises(ValueError, match=r"bad2.bed:1: the narrowPeak summit \(column 10\) must be "
                     r"an integer"):
    read_narrowpeak(tmp_path / "bad2.bed")
  with pytest.raises(FileNotFoundError):
    read_narrowpeak(tmp_path / "absent.bed")

  fold_json = {"train": ["chr1"], "valid": ["chr2"], "test": ["chr3"]}
  (tmp_path / "fold.json").write_text(json.dumps(fold_json))
  fold = read_fold(tmp_path / "fold.json")
  assert fold.train_valid == ("chr1", "chr2")
  fold.save(tmp_path / "again.json")
  assert read_fold(tmp_path / "again.json") == fold
  with pytest.raises(ValueError, match="both train and test"):
    Fold(train=("chr1",), test=("chr1",))
  sizes = {"chr1": 10, "chr2": 10, "chr3": 10, "chrX": 5}
  assert make_fold(sizes, ["chr3"], ["chr2"]) == Fold(("chr1", "chrX"), ("chr2",), ("chr3",))
  with pytest.raises(GenomeError, match="chr9"):
    make_fold(sizes, ["chr9"], [])


def test_genome_and_signal_checks(genome_dir, tmp_path):
  root, _ = genome_dir
  with Genome(root / "genome.fa") as genome, BigWigSignal(root / "signal.bw") as signal:
    assert genome.chrom_sizes == CHROMS == read_chrom_sizes(root / "chrom.sizes")
    assert len(genome.fetch("chr1", 100, 400)) == 300
    with pytest.raises(GenomeError, match="outside chr5"):
      genome.fetch("chr5", 39_900, 40_100)
    with pytest.raises(GenomeError, match="names chromosomes with 'chr' \\(chr5\\)"):
      genome.fetch("5", 0, 10)
    with pytest.raises(GenomeError, match="outside"):
      signal.values("chr1", -5, 10)
    assert signal.values("chr1", 0, 1000).dtype == np.float32
    regions = Regions.from_centres(["chr5", "chr5", "chr1"], [100, 20_000, 79_950])
    kept = filter_edge_regions(regions, genome.chrom_sizes, 300)
    assert list(kept.centre) == [20_000]
    with pytest.raises(GenomeError, match=r"\['chrZ'\]"):
      filter_edge_regions(Regions.from_centres(["chrZ"], [500]), genome.chrom_sizes, 300)
  with pytest.raises(FileNotFoundError, match="genome FASTA not found"):
    Genome(tmp_path / "absent.fa")
  # A bigWig from another assembly (chromosome lengths differ) is refused.
  other = pyBigWig.open(str(tmp_path / "other.bw"), "w")
  other.addHeader([(c, s + 1) for c, s in CHROMS.items()])
  other.close()
  peaks, nonpeaks, fasta, _, fold = paths(root)
  with pytest.raises(GenomeError, match="different assemblies"):
    prepare_chrombpnet_data(peaks, nonpeaks, fasta, tmp_path / "other.bw", fold,
                            ChromBPNetDataConfig(input_length=INPUT, output_length=OUTPUT))
  # Regions and fold named "5" against a "chr5" genome: a naming mismatch, not a silent drop.
  (tmp_path / "ensembl.bed").write_text("5\t1000\t1100\t.\t0\t.\t1\t1\t1\t50\n")
  with pytest.raises(GenomeError, match=r"ensembl.bed:1: .*\['5'\] not in the FASTA.*names "
                     r"chromosomes with 'chr' \(chr5\)"):
    prepare_chrombpnet_data(tmp_path / "ensembl.bed", tmp_path / "ensembl.bed", fasta,
                            root / "signal.bw", Fold(train=("4",), test=("5",)),
                            ChromBPNetDataConfig(input_length=INPUT, output_length=OUTPUT))
  with pytest.raises(GenomeError, match="no region lies on a fold chromosome"):
    prepare_chrombpnet_data(peaks, nonpeaks, fasta, root / "signal.bw",
                            Fold(train=("1",), valid=("2",), test=("3",)),
                            ChromBPNetDataConfig(input_length=INPUT, output_length=OUTPUT))


def test_count_filters():
  totals = np.arange(1, 10001, dtype=np.float64)
  lower, upper = outlier_bounds(totals, 0.999)
  kept = inside_bounds(totals, lower, upper)
  assert kept.sum() == 9980 and not kept[0] and not kept[-1]
  peak_totals = np.arange(1, 101)
  expected = 0.5 * np.quantile(peak_totals, 0.01)
  assert bias_counts_threshold(peak_totals, 0.5) == pytest.approx(expected)
  with pytest.raises(ValueError, match="threshold is 0"):
    bias_counts_threshold(np.zeros(50), 0.5)


# --- the training sampler -------------------------------------------------------------------------

def test_training_sampler_jitter_rc_and_resampling():
  rng = np.random.default_rng(0)
  peaks, jitter, length, out = 20, 5, 40, 10
  peak_seqs = rng.integers(0, 5, (peaks, length + 2 * jitter)).astype(np.int8)  # 4 = N
  # Unique counts encode (row, position) so every example can be traced back.
  peak_counts = (1000 * np.arange(peaks)[:, None] + np.arange(out + 2 * jitter) + 1)
  peak_counts = peak_counts.astype(np.float32)
  nonpeak_seqs = rng.integers(0, 4, (100, length)).astype(np.int8)
  nonpeak_counts = (-1000 * (np.arange(100)[:, None] + 1) - np.arange(out)).astype(np.float32)
  sampler = TrainingSampler(peak_seqs, peak_counts, nonpeak_seqs, nonpeak_counts, length, out,
                            max_jitter=jitter, negative_sampling_ratio=0.5, seed=7)
  assert len(sampler) == 30
  seqs, counts, is_peak = sampler.sample_epoch(0)
  assert seqs.shape == (30, length) and counts.shape == (30, out) and is_peak.sum() == 20
  reversed_count, offsets = 0, set()
  for s, c, p in zip(seqs, counts, is_peak):
    flipped = c[0] > c[-1] if p else c[0] < c[-1]
    if flipped:
      reversed_count += 1
      s, c = reverse_complement_indices(s), c[::-1]
    if p:
      row, offset = int(c[0]) // 1000, int(c[0]) % 1000 - 1
      offsets.add(offset)
      assert 0 <= offset <= 2 * jitter
      np.testing.assert_array_equal(c, peak_counts[row, offset:offset + out])
      np.testing.assert_array_equal(s, peak_seqs[row, offset:offset + length])
    else:
      row = int(-c[0]) // 1000 - 1
      np.testing.assert_array_equal(s, nonpeak_seqs[row])
  assert reversed_count == 15 and len(offsets) > 3
  # Non-peaks are re-drawn every epoch; an epoch is reproducible from the seed.
  epoch1 = sampler.sample_epoch(1)
  chosen = lambda e: set((-e[1][~e[2]].max(axis=1) // 1000).astype(int))
  assert chosen((seqs, counts, is_peak)) != chosen(epoch1)
  for a, b in zip(sampler.sample_epoch(1), epoch1):
    np.testing.assert_array_equal(a, b)
  # Each pass over the dataset is a new epoch; targets are built from the profile.
  dataset = sampler.dataset(batch_size=8)
  first = [b for b in dataset]
  second = [b for b in dataset]
  assert [int(b[0].shape[0]) for b in first] == [8, 8, 8, 6]
  x, targets = first[0]
  assert x.shape == (8, length, 4) and x.dtype == tf.float32
  assert set(targets) == {"profile", "logcounts", "is_peak"}
  peak_rows = targets["is_peak"].numpy() == 1.0  # (non-peak counts here are negative codes)
  np.testing.assert_allclose(targets["logcounts"][:, 0][peak_rows],
                             np.log1p(targets["profile"].numpy()[peak_rows].sum(-1)), rtol=1e-6)
  assert not np.array_equal(first[0][1]["profile"], second[0][1]["profile"])
  n_rows = np.asarray(x).sum(-1) == 0  # N positions are all-zero rows
  assert n_rows.any() and np.all(np.asarray(x).sum(-1)[~n_rows] == 1)


# --- prediction tracks ----------------------------------------------------------------------------

def test_track_bigwig_overlaps_split_at_midpoint(tmp_path):
  sizes = {"chr1": 1000, "chr2": 500}
  regions = Regions.from_centres(["chr2", "chr1", "chr1"], [250, 100, 140])
  tracks = np.stack([np.full(100, 3.0), np.full(100, 1.0), np.full(100, 2.0)])
  write_track_bigwig(tmp_path / "t.bw", tracks, regions, sizes)
  bw = pyBigWig.open(str(tmp_path / "t.bw"))
  values = np.nan_to_num(np.array(bw.values("chr1", 0, 300)))
  # chr1 windows [50, 150) and [90, 190) overlap: split at (100 + 140) // 2 = 120.
  assert np.all(values[50:120] == 1.0) and np.all(values[120:190] == 2.0)
  assert np.all(values[:50] == 0) and np.all(values[190:] == 0)
  assert np.all(np.array(bw.values("chr2", 200, 300)) == 3.0)
  bw.close()
  with pytest.raises(GenomeError, match="outside"):
    write_track_bigwig(tmp_path / "u.bw", tracks[:1], Regions.from_centres(["chr2"], [480]), sizes)

  outputs = {"profile": np.log([[1.0, 3.0]]), "logcounts": np.log([[8.0]])}
  np.testing.assert_allclose(predicted_track(outputs), [[2.0, 6.0]], rtol=1e-6)


def test_prediction_bigwig_from_model(genome_dir, tmp_path):
  root, _ = genome_dir
  model = BPNet(BPNetConfig(filters=4, num_dilated_layers=2, sequence_length=INPUT,
                            output_length=OUTPUT))
  regions = Regions.from_centres(["chr5", "chr5", "chr4"], [1_000, 39_950, 2_000])
  tracks, kept = predict_tracks(model, root / "genome.fa", regions)
  assert tracks.shape == (2, OUTPUT) and list(kept.centre) == [1_000, 2_000]  # edge region dropped
  written = write_prediction_bigwig(model, root / "genome.fa", regions, tmp_path / "pred.bw")
  bw = pyBigWig.open(str(tmp_path / "pred.bw"))
  np.testing.assert_allclose(bw.values("chr5", 925, 1_075), tracks[0], rtol=1e-5)
  np.testing.assert_allclose(bw.values("chr4", 1_925, 2_075), tracks[1], rtol=1e-5)
  bw.close()
  assert len(written) == 2


# --- training -------------------------------------------------------------------------------------

def footprint(profile_logits, regions, bias_sites):
  """Mean log ratio of predicted probability at the bias bases vs their +-4..10 bp flanks."""
  logp = tf.nn.log_softmax(tf.constant(profile_logits, tf.float32)).numpy()
  scores = []
  for i in range(len(regions)):
    start = regions.centre[i] - OUTPUT // 2
    sites = bias_sites[regions.chrom[i]]
    for p in sites[(sites >= start + 12) & (sites + 6 <= start + OUTPUT - 12)] - start:
      site = np.exp(logp[i, p + 2:p + 4]).mean()
      flanks = np.r_[p + 2 - np.arange(4, 11), p + 3 + np.arange(4, 11)]
      scores.append(np.log(site / np.exp(logp[i, flanks]).mean()))
  return float(np.mean(scores)), len(scores)


def test_chrombpnet_trains_and_the_corrected_profile_loses_the_bias_footprint(genome_dir):
  root, bias_sites = genome_dir
  config = ChromBPNetDataConfig(input_length=INPUT, output_length=OUTPUT, max_jitter=20,
                                negative_sampling_ratio=0.1, seed=1)
  bias_data = prepare_bias_data(*paths(root), config.replace(max_jitter=0))
  assert len(bias_data.train) > 400 and not bias_data.valid.is_peak.any()
  assert bias_data.bias_counts_threshold > np.median(bias_data.train.nonpeak_counts.sum(-1))
  data = prepare_chrombpnet_data(*paths(root), config)
  assert data.counts_loss_weight > 10 and bias_data.counts_loss_weight >= 1.0
  assert data.test.is_peak.any() and (~data.test.is_peak).any()

  # 1. The bias model, on low-count non-peaks (learning rate 3e-3 so a few hundred steps do).
  bias = ChromBPNetBias(BiasBPNetConfig(filters=16, num_dilated_layers=2, sequence_length=INPUT,
                                        output_length=OUTPUT))
  fit(bias, ChromBPNetTask(bias_data.counts_loss_weight), bias_data.train.dataset(32),
      optimizer=Adam(3e-3, epsilon=1e-7), steps_per_epoch=250, progress=False)
  delta = recalibrate_bias(bias, data.recalibration.dataset(64))
  assert abs(delta) < 0.5  # same data set: the bias model's counts are already level
  frozen = [v.numpy().copy() for v in bias.variables]

  # 2. ChromBPNet with the bias frozen (variables= is the wrapper's trainable set).
  chrombpnet = BiasFactorizedModel(
      model=BPNet(BPNetConfig(filters=32, num_dilated_layers=3, sequence_length=INPUT,
                              output_length=OUTPUT)),
      bias_model=bias)
  chrombpnet.build()
  task = ChromBPNetTask(data.counts_loss_weight)
  history = fit(chrombpnet, task, data.train.dataset(32), optimizer=Adam(3e-3, epsilon=1e-7),
                epochs=5, steps_per_epoch=50, variables=chrombpnet.trainable_variables,
                validation_data=data.valid.dataset(64), progress=False)
  assert history["loss"][-1] < 0.8 * history["loss"][0]
  for old, v in zip(frozen, bias.variables):
    np.testing.assert_array_equal(old, v.numpy())

  results = evaluate(chrombpnet, task, data.test.dataset(64))
  assert results["counts_pearsonr_peaks"] > 0.4  # depth follows the motif count
  assert results["profile_median_norm_jsd_peaks"] > 0.1

  # 3. Bias footprints on the held-out chromosome (peaks and non-peaks).
  parts = chrombpnet.components(tf.constant(data.test.one_hot()), is_training=False)
  observed, n_sites = footprint(np.log(data.test.counts + 0.5), data.test.regions, bias_sites)
  combined, _ = footprint(parts["profile"], data.test.regions, bias_sites)
  bias_only, _ = footprint(parts["bias_profile"], data.test.regions, bias_sites)
  nobias = chrombpnet.without_bias()(tf.constant(data.test.one_hot()), is_training=False)
  corrected, _ = footprint(nobias["profile"], data.test.regions, bias_sites)
  print(f"footprints over {n_sites} bias sites: observed {observed:.3f}, combined {combined:.3f}, "
        f"bias {bias_only:.3f}, corrected {corrected:.3f}; test {results}")
  assert n_sites > 100
  assert observed > 0.8  # the planted bias is in the data (true log ratio: log 8 = 2.08)
  assert bias_only > 1.0 and combined > 1.0  # ... and in the uncorrected predictions
  assert abs(corrected) < 0.3 * combined  # ... but not in the bias-corrected profile


def _dream_trunk_config(trunk: str):
  from tf_seqmodels.models import dream
  first = dream.BHIFirstConfig(out_channels=16)
  if trunk == "dream_rnn":
    return dream.DreamRNNConfig(sequence_length=INPUT, input_channels=4, reverse_channel=None,
                                first=first,
                                core=dream.BHICoreConfig(lstm_hidden_size=8, out_channels=16))
  return dream.DreamCNNConfig(sequence_length=INPUT, input_channels=4, reverse_channel=None,
                              first=first, core=dream.AutosomeCoreConfig(block_sizes=(16, 8)))


@pytest.mark.parametrize("trunk,marker", [("dream_rnn", "lstm"), ("dream_cnn", "squeeze")])
def test_bias_wrapper_on_dream_trunks(trunk, marker):
  # The same wrapper and head serve DREAM trunks (the DREAM paper's ATAC benchmark): no
  # trunk-specific code anywhere in the wrapper.
  trunk_config = _dream_trunk_config(trunk)
  model = build_model("profile_counts", ProfileCountsConfig(
      trunk=trunk, trunk_config=trunk_config.to_dict(), output_length=OUTPUT))
  bias = ChromBPNetBias(BiasBPNetConfig(filters=4, num_dilated_layers=2, sequence_length=INPUT,
                                        output_length=OUTPUT))
  wrapper = BiasFactorizedModel(model=model, bias_model=bias)
  wrapper.build()
  assert wrapper.config.model == "profile_counts"
  trainable = {v.ref() for v in wrapper.trainable_variables}
  assert trainable == {v.ref() for v in model.trainable_variables}
  assert not {v.ref() for v in bias.variables} & {v.ref() for v in wrapper.trainable_variables}
  assert any(marker in v.name.lower() for v in wrapper.trainable_variables)

  rng = np.random.default_rng(0)
  x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (8, INPUT))]
  profile = rng.poisson(1.0, (8, OUTPUT)).astype(np.float32)
  data = tf.data.Dataset.from_tensor_slices((x, {"profile": profile})).batch(8)
  bias_before = [v.numpy().copy() for v in bias.variables]
  model_before = [v.numpy().copy() for v in model.trainable_variables]
  history = fit(wrapper, ChromBPNetTask(2.0), data, optimizer=Adam(1e-3), steps_per_epoch=1,
                progress=False)
  assert history["steps"] == 1 and np.isfinite(history["loss"][0])
  for old, v in zip(bias_before, bias.variables):
    np.testing.assert_array_equal(old, v.numpy())
  assert any(not np.array_equal(old, v.numpy())
             for old, v in zip(model_before, model.trainable_variables))
  out = wrapper(tf.constant(x), is_training=False)
  assert out["profile"].shape == (8, OUTPUT) and out["logcounts"].shape == (8, 1)
