"""Test-fold predictions and metrics of the pipeline's models (the reference's `*_metrics.json`).

The numbers are `tasks.chrombpnet`'s metrics (the ones training reports): counts Pearson /
Spearman / MSE of log(1 + total) and profile median JSD / normalised JSD, per subset (peaks,
non-peaks, all). `jsd_baselines` adds the reference's profile baselines on peaks: a uniform
profile, the average observed profile, and the model's own profiles with the labels shuffled
across regions.
"""

from __future__ import annotations

import os
from typing import Union

import numpy as np
import tensorflow as tf

from tf_seqmodels.data.chrombpnet import RegionSet, filter_edge_regions, load_windows
from tf_seqmodels.data.genome import BigWigSignal, Genome
from tf_seqmodels.data.intervals import Fold, read_narrowpeak
from tf_seqmodels.models.bpnet import COUNTS_HEAD, PROFILE_HEAD
from tf_seqmodels.tasks.chrombpnet import (SUBSETS, CountsMetric, ProfileJSDMetric, profile_jsd,
                                           softmax_np)

PathLike = Union[str, os.PathLike]


def test_regions(peaks: PathLike, nonpeaks: PathLike, genome_fasta: PathLike, bigwig: PathLike,
                 fold: Fold, input_length: int, output_length: int) -> RegionSet:
  """Test-chromosome peaks and non-peaks with their windows (no jitter, no filtering but the
  chromosome ends, as the reference's test split)."""
  parts = []
  with Genome(genome_fasta) as genome, BigWigSignal(bigwig) as signal:
    for path, is_peak in ((peaks, True), (nonpeaks, False)):
      regions = filter_edge_regions(read_narrowpeak(path).on_chromosomes(fold.test),
                                    genome.chrom_sizes, input_length)
      seqs, counts = load_windows(regions, genome, signal, input_length, output_length)
      parts.append(RegionSet(regions, seqs, counts, np.full(len(regions), is_peak)))
  test = RegionSet.concatenate(parts)
  if not len(test):
    raise ValueError(f"no peaks or non-peaks on the test chromosomes {list(fold.test)}")
  return test


def predict(model, one_hot: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
  """{"profile": logits [N, T], "logcounts": [N]} of a contract model, in batches."""
  profiles, counts = [], []
  for i in range(0, len(one_hot), batch_size):
    out = model(tf.constant(one_hot[i:i + batch_size], tf.float32), is_training=False)
    profiles.append(np.asarray(out[PROFILE_HEAD], np.float64))
    counts.append(np.asarray(out[COUNTS_HEAD], np.float64).reshape(-1))
  return {PROFILE_HEAD: np.concatenate(profiles), COUNTS_HEAD: np.concatenate(counts)}


def metrics(observed: np.ndarray, predicted: dict[str, np.ndarray], is_peak: np.ndarray) -> dict:
  """{subset: {pearsonr, spearmanr, mse, median_jsd, median_norm_jsd, n}}."""
  targets = {PROFILE_HEAD: observed, "is_peak": is_peak.astype(np.float32)}
  outputs = {PROFILE_HEAD: predicted[PROFILE_HEAD],
             COUNTS_HEAD: predicted[COUNTS_HEAD].reshape(-1, 1)}
  out = {}
  for subset in SUBSETS:
    n = int({"peaks": is_peak.sum(), "nonpeaks": (~is_peak).sum(), "all": len(is_peak)}[subset])
    if not n:
      continue
    row = {"n": n}
    for stat in ("pearsonr", "spearmanr", "mse"):
      metric = CountsMetric(stat, subset)
      metric.update(targets, outputs)
      row[stat] = float(metric.result())
    for name, normalised in (("median_jsd", False), ("median_norm_jsd", True)):
      metric = ProfileJSDMetric(normalised, subset)
      metric.update(targets, outputs)
      row[name] = float(metric.result())
    out[subset] = row
  return out


def jsd_baselines(observed: np.ndarray, logits: np.ndarray, seed: int = 1234) -> dict:
  """Per-region JSD arrays on the given regions: model, uniform, average profile, shuffled."""
  rng = np.random.default_rng(seed)
  probs = softmax_np(logits)
  observed = np.asarray(observed, np.float64)
  model, _ = profile_jsd(observed, probs)
  uniform, _ = profile_jsd(observed, np.full_like(probs, 1.0 / probs.shape[1]))
  norm = observed / np.maximum(observed.sum(axis=1, keepdims=True), 1e-12)
  average = norm.mean(axis=0, keepdims=True)
  average = np.broadcast_to(average / average.sum(), probs.shape)
  avg, _ = profile_jsd(observed, average)
  shuffled, _ = profile_jsd(observed[rng.permutation(len(observed))], probs)
  return {"model": model, "uniform": uniform, "average_profile": avg, "shuffled_labels": shuffled}


def summarise_baselines(baselines: dict) -> dict:
  return {k: float(np.nanmedian(v)) if np.isfinite(v).any() else float("nan")
          for k, v in baselines.items()}


__all__ = ["jsd_baselines", "metrics", "predict", "summarise_baselines", "test_regions"]
