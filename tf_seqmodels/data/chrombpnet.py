"""ChromBPNet data: peaks and non-peaks from FASTA + an insertion-count bigWig.

Mirrors the reference pipeline (kundajelab/chrombpnet v1.0.1, `find_*_hyperparams.py`,
`data_generators/`):

- regions are 10-column narrowPeak lines centred at start + summit (column 10); the input
  window is `input_length` and the target window `output_length` around that centre;
- a chromosome fold JSON {"train": [...], "valid": [...], "test": [...]} splits them;
- regions whose window (plus jitter for training peaks) leaves the chromosome are dropped;
  regions on chromosomes absent from the FASTA or bigWig are an error;
- outliers: train+valid regions with totals outside the (1 - q, q) quantiles (q = 0.9999)
  are dropped (test regions never are);
- ChromBPNet: training peaks are jittered (random crop of a window `max_jitter` wider on
  each side, input and profile together), non-peaks are re-sampled every epoch at
  `negative_sampling_ratio` x #peaks, half of each epoch is reverse-complemented (profile
  reversed) and the epoch is shuffled; validation keeps a fixed non-peak subsample, no
  jitter, no reverse complement;
- bias model: non-peaks only, those with total counts below `bias_threshold_factor` x the
  1st percentile of peak totals, then the outlier filter;
- counts-loss weight: median total counts of the kept training regions / 10, at least 1.

Batches are `(one_hot [B, input_length, 4] float32, {"profile": [B, output_length] counts,
"logcounts": [B, 1] log(1 + total), "is_peak": [B] 1.0/0.0})`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.data.encoding import reverse_complement_indices  # noqa: F401  (re-exported)
from tf_seqmodels.data.genome import BigWigSignal, Genome, GenomeError, check_chromosomes
# Regions, narrowPeak I/O and folds live in data.intervals (shared with the track pipelines);
# they stay importable from here.
from tf_seqmodels.data.intervals import (DataSplits, Fold, Regions, check_regions,  # noqa: F401
                                         make_fold, read_fold, read_narrowpeak, window_bounds,
                                         write_narrowpeak)

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
N_INDEX = 4


# --- windows, totals, filters -------------------------------------------------------------------

def filter_edge_regions(regions: Regions, chrom_sizes: dict[str, int], width: int,
                        what: str = "regions") -> Regions:
  """Drops regions whose `width` window leaves its chromosome (as the reference does).

  Raises GenomeError if a region's chromosome is unknown: a naming mismatch must not
  silently drop every region.
  """
  check_chromosomes(set(regions.chrom), chrom_sizes, "the genome")
  start, end = window_bounds(regions.centre, width)
  sizes = np.array([chrom_sizes[c] for c in regions.chrom], np.int64)
  keep = (start >= 0) & (end <= sizes)
  if (~keep).any():
    log.warning("dropped %d of %d %s whose %d bp window leaves the chromosome",
                int((~keep).sum()), len(regions), what, width)
  return regions.subset(keep)


def load_windows(regions: Regions, genome: Genome, signal: BigWigSignal, input_length: int,
                 output_length: int, flank: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Sequence indices int8 [N, input_length + 2 flank] and counts float32 [N, output_length +
  2 flank] centred on each region (the flank is room for jitter)."""
  n = len(regions)
  seqs = np.empty((n, input_length + 2 * flank), np.int8)
  counts = np.empty((n, output_length + 2 * flank), np.float32)
  in_start, in_end = window_bounds(regions.centre, input_length + 2 * flank)
  out_start, out_end = window_bounds(regions.centre, output_length + 2 * flank)
  for i in range(n):
    chrom = regions.chrom[i]
    seqs[i] = genome.fetch_indices(chrom, int(in_start[i]), int(in_end[i]))
    counts[i] = signal.values(chrom, int(out_start[i]), int(out_end[i]))
  return seqs, counts


def total_counts(regions: Regions, signal: BigWigSignal, output_length: int) -> np.ndarray:
  """Sum of the signal over each region's `output_length` target window -> float64 [N]."""
  start, end = window_bounds(regions.centre, output_length)
  return np.array([signal.values(regions.chrom[i], int(start[i]), int(end[i])).sum(dtype=np.float64)
                   for i in range(len(regions))], np.float64)


def outlier_bounds(totals: np.ndarray, threshold: float = 0.9999) -> tuple[float, float]:
  """(lower, upper) = quantiles (1 - threshold, threshold) of the totals."""
  totals = np.asarray(totals, np.float64)
  if totals.size == 0:
    raise ValueError("no regions to compute outlier bounds on")
  if not 0.5 < threshold <= 1.0:
    raise ValueError(f"outlier threshold must be in (0.5, 1], got {threshold}")
  return float(np.quantile(totals, 1.0 - threshold)), float(np.quantile(totals, threshold))


def inside_bounds(totals: np.ndarray, lower: float, upper: float) -> np.ndarray:
  """Strictly inside (lower, upper): the reference's outlier filter."""
  totals = np.asarray(totals)
  return (totals > lower) & (totals < upper)


def counts_loss_weight(totals: np.ndarray) -> float:
  """Median total counts / 10, floored at 1 (low-depth data) -> the counts-loss weight."""
  totals = np.asarray(totals, np.float64)
  if totals.size == 0:
    raise ValueError("no regions to compute the counts-loss weight from")
  weight = float(np.median(totals)) / 10.0
  if weight < 1.0:
    log.warning("counts-loss weight %.3g < 1 (low read depth): using 1", weight)
    weight = 1.0
  return weight


def bias_counts_threshold(peak_totals: np.ndarray, factor: float) -> float:
  """Upper bound on non-peak totals for bias training: factor x 1st percentile of peaks."""
  peak_totals = np.asarray(peak_totals, np.float64)
  if peak_totals.size == 0:
    raise ValueError("no peaks to derive the bias-model counts threshold from")
  threshold = float(np.quantile(peak_totals, 0.01)) * factor
  if threshold <= 0:
    raise ValueError(f"bias counts threshold is {threshold} (factor {factor} x 1st percentile of "
                     f"peak totals): every non-peak would be excluded; check the bigWig and "
                     f"peaks, or raise the factor")
  return threshold


# --- sequence arrays ---------------------------------------------------------------------------

def one_hot_indices(seqs: tf.Tensor) -> tf.Tensor:
  """int base indices [..., L] -> one-hot float32 [..., L, 4]; index 4 (N) -> all zeros."""
  return tf.one_hot(tf.cast(seqs, tf.int32), 4, dtype=tf.float32)


def _batches(seqs: np.ndarray, counts: np.ndarray, is_peak: np.ndarray,
             batch_size: int) -> Iterator[tuple]:
  for i in range(0, len(seqs), batch_size):
    yield seqs[i:i + batch_size], counts[i:i + batch_size], is_peak[i:i + batch_size]


def _to_example(seqs, counts, is_peak):
  counts = tf.cast(counts, tf.float32)
  return one_hot_indices(seqs), {
      "profile": counts,
      "logcounts": tf.math.log1p(tf.reduce_sum(counts, axis=-1, keepdims=True)),
      "is_peak": tf.cast(is_peak, tf.float32),
  }


def _dataset_from(generator, input_length: int, output_length: int) -> tf.data.Dataset:
  signature = (tf.TensorSpec([None, input_length], tf.int8),
               tf.TensorSpec([None, output_length], tf.float32),
               tf.TensorSpec([None], tf.bool))
  dataset = tf.data.Dataset.from_generator(generator, output_signature=signature)
  return dataset.map(_to_example, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


@dataclasses.dataclass
class RegionSet:
  """Fixed regions with their windows (validation / test / recalibration data)."""

  regions: Regions
  seqs: np.ndarray  # int8 [N, input_length]
  counts: np.ndarray  # float32 [N, output_length]
  is_peak: np.ndarray  # bool [N]

  def __len__(self) -> int:
    return len(self.seqs)

  @property
  def total_counts(self) -> np.ndarray:
    return self.counts.sum(axis=-1, dtype=np.float64)

  def one_hot(self) -> np.ndarray:
    return np.asarray(one_hot_indices(self.seqs))

  def dataset(self, batch_size: int = 64) -> tf.data.Dataset:
    """Batches in file order, no augmentation."""
    return _dataset_from(lambda: _batches(self.seqs, self.counts, self.is_peak, batch_size),
                         self.seqs.shape[1], self.counts.shape[1])

  @staticmethod
  def concatenate(parts: Sequence["RegionSet"]) -> "RegionSet":
    return RegionSet(Regions.concatenate([p.regions for p in parts]),
                     np.concatenate([p.seqs for p in parts]),
                     np.concatenate([p.counts for p in parts]),
                     np.concatenate([p.is_peak for p in parts]))


class TrainingSampler:
  """Training examples re-drawn every epoch: peak jitter, non-peak sampling, RC, shuffle.

  Args:
    peak_seqs / peak_counts: int8 [P, input_length + 2 max_jitter] / float32
      [P, output_length + 2 max_jitter] windows centred on the peaks (P may be 0).
    nonpeak_seqs / nonpeak_counts: [Q, input_length] / [Q, output_length].
    negative_sampling_ratio: non-peaks per peak drawn (without replacement) each epoch when
      < 1 and peaks exist; otherwise every non-peak is used.
    reverse_complement: reverse-complement a random half of each epoch.
    seed: epoch e uses the generator seeded with (seed, e): runs are reproducible.
  """

  def __init__(self, peak_seqs: np.ndarray, peak_counts: np.ndarray, nonpeak_seqs: np.ndarray,
               nonpeak_counts: np.ndarray, input_length: int, output_length: int,
               max_jitter: int = 0, negative_sampling_ratio: float = 1.0,
               reverse_complement: bool = True, seed: int = 1234):
    wide_in, wide_out = input_length + 2 * max_jitter, output_length + 2 * max_jitter
    if peak_seqs.shape[1] != wide_in or peak_counts.shape[1] != wide_out:
      raise ValueError(f"peak windows {peak_seqs.shape[1]} / {peak_counts.shape[1]} must be "
                       f"input / output length + 2 x jitter ({wide_in} / {wide_out})")
    if nonpeak_seqs.shape[1] != input_length or nonpeak_counts.shape[1] != output_length:
      raise ValueError(f"non-peak windows must be {input_length} / {output_length} long, got "
                       f"{nonpeak_seqs.shape[1]} / {nonpeak_counts.shape[1]}")
    if len(peak_seqs) + len(nonpeak_seqs) == 0:
      raise ValueError("no training regions")
    self.peak_seqs, self.peak_counts = peak_seqs, peak_counts
    self.nonpeak_seqs, self.nonpeak_counts = nonpeak_seqs, nonpeak_counts
    self.input_length, self.output_length = input_length, output_length
    self.max_jitter = max_jitter
    self.negative_sampling_ratio = negative_sampling_ratio
    self.reverse_complement = reverse_complement
    self.seed = seed
    self.epoch = 0

  @property
  def num_nonpeaks_per_epoch(self) -> int:
    if len(self.peak_seqs) and self.negative_sampling_ratio < 1.0:
      return min(int(self.negative_sampling_ratio * len(self.peak_seqs)), len(self.nonpeak_seqs))
    return len(self.nonpeak_seqs)

  def __len__(self) -> int:
    """Examples per epoch."""
    return len(self.peak_seqs) + self.num_nonpeaks_per_epoch

  def sample_epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seqs int8 [N, input_length], counts float32 [N, output_length], is_peak bool [N])."""
    rng = np.random.default_rng([self.seed, epoch])
    p = len(self.peak_seqs)
    # Jitter: one random offset per peak, shared by the sequence and the profile.
    offsets = rng.integers(0, 2 * self.max_jitter + 1, size=p)
    seq_idx = offsets[:, None] + np.arange(self.input_length)
    cnt_idx = offsets[:, None] + np.arange(self.output_length)
    peak_seqs = np.take_along_axis(self.peak_seqs, seq_idx, axis=1)
    peak_counts = np.take_along_axis(self.peak_counts, cnt_idx, axis=1)
    chosen = np.sort(rng.choice(len(self.nonpeak_seqs), self.num_nonpeaks_per_epoch, replace=False))
    seqs = np.concatenate([peak_seqs, self.nonpeak_seqs[chosen]])
    counts = np.concatenate([peak_counts, self.nonpeak_counts[chosen]])
    is_peak = np.concatenate([np.ones(p, bool), np.zeros(len(chosen), bool)])
    if self.reverse_complement:
      flip = rng.choice(len(seqs), int(len(seqs) * 0.5), replace=False)
      seqs[flip] = reverse_complement_indices(seqs[flip])
      counts[flip] = counts[flip, ::-1]
    order = rng.permutation(len(seqs))
    return seqs[order], counts[order], is_peak[order]

  def dataset(self, batch_size: int = 64) -> tf.data.Dataset:
    """Each iteration over the dataset is a freshly sampled epoch (epochs 0, 1, 2, ...)."""

    def generate():
      epoch = self.epoch
      self.epoch += 1
      yield from _batches(*self.sample_epoch(epoch), batch_size)

    return _dataset_from(generate, self.input_length, self.output_length)


# --- preparation (the reference's hyper-parameter + filtering step) ----------------------------

@dataclasses.dataclass(frozen=True)
class ChromBPNetDataConfig(Config):
  """Data settings; defaults are the reference's ChromBPNet ones (bias CLI: max_jitter 0)."""

  input_length: int = 2114
  output_length: int = 1000
  max_jitter: int = 500
  negative_sampling_ratio: float = 0.1
  outlier_threshold: float = 0.9999
  bias_threshold_factor: float = 0.5  # 0.5 ATAC, 0.8 DNase
  reverse_complement: bool = True
  seed: int = 1234

  def validate(self) -> None:
    def fail(msg):
      raise ConfigError(f"ChromBPNetDataConfig: {msg}")

    if self.input_length <= 0 or self.output_length <= 0:
      fail("input_length and output_length must be positive")
    if self.input_length % 2 or self.output_length % 2:
      fail(f"input_length and output_length must be even (windows are centred on the summit), "
           f"got {self.input_length}, {self.output_length}")
    if self.output_length > self.input_length:
      fail(f"output_length {self.output_length} exceeds input_length {self.input_length}")
    if self.max_jitter < 0:
      fail(f"max_jitter must be >= 0, got {self.max_jitter}")
    if self.negative_sampling_ratio < 0:
      fail(f"negative_sampling_ratio must be >= 0, got {self.negative_sampling_ratio}")
    if not 0.5 < self.outlier_threshold <= 1.0:
      fail(f"outlier_threshold must be in (0.5, 1], got {self.outlier_threshold}")
    if self.bias_threshold_factor <= 0:
      fail(f"bias_threshold_factor must be positive, got {self.bias_threshold_factor}")


@dataclasses.dataclass
class ChromBPNetData:
  """Prepared splits plus the statistics the reference records in its params TSVs."""

  train: TrainingSampler
  valid: RegionSet
  test: RegionSet
  recalibration: RegionSet  # train+valid non-peaks after filtering (bias recalibration)
  counts_loss_weight: float
  counts_lower: float  # outlier bounds on total counts
  counts_upper: float
  bias_counts_threshold: Optional[float] = None

  def splits(self, batch_size: int = 64) -> DataSplits:
    """The package's common dataset interface (`data.intervals.DataSplits`): `train` draws a
    fresh epoch on every pass; a split without regions is None."""
    fixed = {"valid": self.valid, "test": self.test}
    return DataSplits(
        train=self.train.dataset(batch_size),
        **{k: v.dataset(batch_size) if len(v) else None for k, v in fixed.items()},
        sequence_length=self.train.input_length, channels=4,
        targets=("profile", "logcounts", "is_peak"),
        sizes={"train": len(self.train), **{k: len(v) for k, v in fixed.items()}},
        info={"output_length": self.train.output_length,
              "counts_loss_weight": self.counts_loss_weight})


def _open_inputs(genome_fasta, bigwig, fold: Fold, regions: Sequence[Regions]):
  """Opens FASTA and bigWig after checking that every region on a fold chromosome exists
  in both and that the two agree on chromosome lengths."""
  genome = Genome(genome_fasta)
  try:
    signal = BigWigSignal(bigwig)
  except BaseException:
    genome.close()
    raise
  try:
    fold_chroms = fold.train + fold.valid + fold.test
    for r in regions:
      used = r.on_chromosomes(fold_chroms)
      if len(used):  # file:line of an unknown chromosome or an interval off its chromosome
        check_regions(used, genome.chrom_sizes, f"the FASTA {genome.path}")
      check_chromosomes(set(used.chrom), signal.chrom_sizes, f"the bigWig {signal.path}")
    for chrom in set(genome.chrom_sizes) & set(signal.chrom_sizes):
      if genome.chrom_sizes[chrom] != signal.chrom_sizes[chrom]:
        raise GenomeError(f"{chrom} is {genome.chrom_sizes[chrom]} bp in the FASTA but "
                          f"{signal.chrom_sizes[chrom]} bp in the bigWig: different assemblies?")
  except BaseException:
    genome.close()
    signal.close()
    raise
  return genome, signal


def _as_regions(regions: Union[PathLike, Regions]) -> Regions:
  return regions if isinstance(regions, Regions) else read_narrowpeak(regions)


def _region_set(regions: Regions, genome, signal, cfg: ChromBPNetDataConfig,
                is_peak: bool) -> RegionSet:
  seqs, counts = load_windows(regions, genome, signal, cfg.input_length, cfg.output_length)
  return RegionSet(regions, seqs, counts, np.full(len(regions), is_peak))


def _check_fold(fold: Fold, *regions: Regions) -> None:
  named = set(fold.train) | set(fold.valid) | set(fold.test)
  used = set().union(*(set(r.chrom) for r in regions))
  if used and not used & named:
    raise GenomeError(f"no region lies on a fold chromosome: regions use {sorted(used)[:10]}, the "
                      f"fold names {sorted(named)[:10]}")


def _read_regions_and_fold(peaks, nonpeaks, fold):
  """Reads peaks, non-peaks and the fold; rejects empty inputs and fold/chromosome mismatches."""
  fold = fold if isinstance(fold, Fold) else read_fold(fold)
  peaks, nonpeaks = _as_regions(peaks), _as_regions(nonpeaks)
  if not len(peaks):
    raise ValueError("the peaks file is empty")
  if not len(nonpeaks):
    raise ValueError("the non-peaks file is empty")
  _check_fold(fold, peaks, nonpeaks)
  return fold, peaks, nonpeaks


def prepare_chrombpnet_data(peaks: Union[PathLike, Regions], nonpeaks: Union[PathLike, Regions],
                            genome_fasta: PathLike, bigwig: PathLike, fold: Union[Fold, PathLike],
                            config: Optional[ChromBPNetDataConfig] = None) -> ChromBPNetData:
  """Peaks + non-peaks for the ChromBPNet (accessibility) model, reference filtering."""
  cfg = config or ChromBPNetDataConfig()
  fold, peaks, nonpeaks = _read_regions_and_fold(peaks, nonpeaks, fold)
  rng = np.random.default_rng(cfg.seed)
  genome, signal = _open_inputs(genome_fasta, bigwig, fold, [peaks, nonpeaks])
  with genome, signal:
    sizes = genome.chrom_sizes
    tv_peaks = filter_edge_regions(peaks.on_chromosomes(fold.train_valid), sizes,
                                   cfg.input_length + 2 * cfg.max_jitter, "peaks")
    tv_nonpeaks = filter_edge_regions(nonpeaks.on_chromosomes(fold.train_valid), sizes,
                                      cfg.input_length, "non-peaks")
    test_peaks = filter_edge_regions(peaks.on_chromosomes(fold.test), sizes, cfg.input_length,
                                     "test peaks")
    test_nonpeaks = filter_edge_regions(nonpeaks.on_chromosomes(fold.test), sizes,
                                        cfg.input_length, "test non-peaks")
    if not len(tv_peaks):
      raise ValueError("no train/valid peaks left after dropping chromosome-edge regions")
    peak_totals = total_counts(tv_peaks, signal, cfg.output_length)
    nonpeak_totals = total_counts(tv_nonpeaks, signal, cfg.output_length)
    # Bounds and weight from the peaks plus a ratio-sized non-peak sample (reference).
    sample = min(int(cfg.negative_sampling_ratio * len(peak_totals)), len(nonpeak_totals))
    pooled = np.concatenate([peak_totals, rng.choice(nonpeak_totals, sample, replace=False)])
    lower, upper = outlier_bounds(pooled, cfg.outlier_threshold)
    tv_peaks = tv_peaks.subset(inside_bounds(peak_totals, lower, upper))
    kept_nonpeaks = inside_bounds(nonpeak_totals, lower, upper)
    tv_nonpeaks = tv_nonpeaks.subset(kept_nonpeaks)
    weight = counts_loss_weight(pooled[(pooled >= lower) & (pooled <= upper)])
    recalibration = _region_set(tv_nonpeaks, genome, signal, cfg, False)
    # The pipeline keeps at most as many non-peaks as peaks.
    if len(tv_nonpeaks) > len(tv_peaks):
      keep = np.sort(rng.choice(len(tv_nonpeaks), len(tv_peaks), replace=False))
      tv_nonpeaks = tv_nonpeaks.subset(keep)

    train_peaks = tv_peaks.on_chromosomes(fold.train)
    train_nonpeaks = tv_nonpeaks.on_chromosomes(fold.train)
    peak_seqs, peak_counts = load_windows(train_peaks, genome, signal, cfg.input_length,
                                          cfg.output_length, flank=cfg.max_jitter)
    nonpeak_set = _region_set(train_nonpeaks, genome, signal, cfg, False)
    train = TrainingSampler(peak_seqs, peak_counts, nonpeak_set.seqs, nonpeak_set.counts,
                            cfg.input_length, cfg.output_length, cfg.max_jitter,
                            cfg.negative_sampling_ratio, cfg.reverse_complement, cfg.seed)

    valid_peaks = tv_peaks.on_chromosomes(fold.valid)
    valid_nonpeaks = tv_nonpeaks.on_chromosomes(fold.valid)
    n_valid_neg = min(int(cfg.negative_sampling_ratio * len(valid_peaks)), len(valid_nonpeaks))
    valid_nonpeaks = valid_nonpeaks.subset(
        np.sort(rng.choice(len(valid_nonpeaks), n_valid_neg, replace=False)))
    valid = RegionSet.concatenate([_region_set(valid_peaks, genome, signal, cfg, True),
                                   _region_set(valid_nonpeaks, genome, signal, cfg, False)])
    test = RegionSet.concatenate([_region_set(test_peaks, genome, signal, cfg, True),
                                  _region_set(test_nonpeaks, genome, signal, cfg, False)])
  return ChromBPNetData(train, valid, test, recalibration, weight, lower, upper)


def prepare_bias_data(peaks: Union[PathLike, Regions], nonpeaks: Union[PathLike, Regions],
                      genome_fasta: PathLike, bigwig: PathLike, fold: Union[Fold, PathLike],
                      config: Optional[ChromBPNetDataConfig] = None) -> ChromBPNetData:
  """Low-count non-peaks for the bias model (peaks only set the counts threshold).

  Non-peaks are kept when their total is below `bias_threshold_factor` x the 1st
  percentile of train+valid peak totals and inside the outlier bounds of those retained.
  Every kept training non-peak is used each epoch (no jitter: the reference only jitters
  peaks); the test set holds test-chromosome peaks and non-peaks.
  """
  cfg = config or ChromBPNetDataConfig(max_jitter=0)
  fold, peaks, nonpeaks = _read_regions_and_fold(peaks, nonpeaks, fold)
  genome, signal = _open_inputs(genome_fasta, bigwig, fold, [peaks, nonpeaks])
  with genome, signal:
    sizes = genome.chrom_sizes
    tv_peaks = filter_edge_regions(peaks.on_chromosomes(fold.train_valid), sizes,
                                   cfg.input_length, "peaks")
    tv_nonpeaks = filter_edge_regions(nonpeaks.on_chromosomes(fold.train_valid), sizes,
                                      cfg.input_length, "non-peaks")
    test_peaks = filter_edge_regions(peaks.on_chromosomes(fold.test), sizes, cfg.input_length,
                                     "test peaks")
    test_nonpeaks = filter_edge_regions(nonpeaks.on_chromosomes(fold.test), sizes,
                                        cfg.input_length, "test non-peaks")
    threshold = bias_counts_threshold(total_counts(tv_peaks, signal, cfg.output_length),
                                      cfg.bias_threshold_factor)
    nonpeak_totals = total_counts(tv_nonpeaks, signal, cfg.output_length)
    below = nonpeak_totals[nonpeak_totals < threshold]
    if below.size == 0:
      raise ValueError(f"no non-peak has total counts below the bias threshold {threshold:.4g}; "
                       f"raise bias_threshold_factor")
    lower, upper = outlier_bounds(below, cfg.outlier_threshold)
    kept = tv_nonpeaks.subset(inside_bounds(nonpeak_totals, lower, upper))
    if not len(kept):
      raise ValueError("no non-peaks left for bias training after the outlier filter")
    inside = inside_bounds(below, lower, upper)
    # Tiny sets can leave nothing strictly inside the quantile bounds: fall back to all.
    weight = counts_loss_weight(below[inside] if inside.any() else below)
    train_set = _region_set(kept.on_chromosomes(fold.train), genome, signal, cfg, False)
    valid = _region_set(kept.on_chromosomes(fold.valid), genome, signal, cfg, False)
    no_seqs = np.zeros((0, cfg.input_length + 2 * cfg.max_jitter), np.int8)
    no_counts = np.zeros((0, cfg.output_length + 2 * cfg.max_jitter), np.float32)
    train = TrainingSampler(no_seqs, no_counts, train_set.seqs, train_set.counts,
                            cfg.input_length, cfg.output_length, cfg.max_jitter, 1.0,
                            cfg.reverse_complement, cfg.seed)
    test = RegionSet.concatenate([_region_set(test_peaks, genome, signal, cfg, True),
                                  _region_set(test_nonpeaks, genome, signal, cfg, False)])
    recalibration = RegionSet.concatenate([train_set, valid])
  return ChromBPNetData(train, valid, test, recalibration, weight, lower, upper, threshold)
