"""Prediction tracks of profile + counts models (ChromBPNet `pred_bw`).

    track = softmax(profile logits) x exp(log counts)      [N, output_length] per base

written as a bigWig over the `output_length` bases centred on each region's summit. Where
regions overlap, each base takes the value of the region whose summit is nearer (the
boundary is the midpoint between consecutive summits), as the reference does.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional, Union

import numpy as np
import tensorflow as tf

from tf_seqmodels.data.chrombpnet import Regions, read_narrowpeak, window_bounds
from tf_seqmodels.data.genome import Genome, GenomeError, check_chromosomes
from tf_seqmodels.models.bpnet import COUNTS_HEAD, PROFILE_HEAD

PathLike = Union[str, os.PathLike]


def predicted_track(outputs: Mapping[str, tf.Tensor]) -> np.ndarray:
  """softmax(profile [N, T]) x exp(logcounts [N, 1]) -> float32 [N, T] expected counts."""
  logits = np.asarray(outputs[PROFILE_HEAD], np.float64)
  logcounts = np.asarray(outputs[COUNTS_HEAD], np.float64).reshape(-1, 1)
  probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
  probs /= probs.sum(axis=-1, keepdims=True)
  return (probs * np.exp(logcounts)).astype(np.float32)


def predict_tracks(model, genome: Union[Genome, PathLike], regions: Union[Regions, PathLike],
                   batch_size: int = 64) -> tuple[np.ndarray, Regions]:
  """Predicted tracks [N', T] for the regions whose input window fits on the chromosome.

  Regions whose `model.sequence_length` window leaves the chromosome are skipped (the
  reference drops them too); the kept regions are returned alongside.
  """
  own = not isinstance(genome, Genome)
  genome = Genome(genome) if own else genome
  regions = regions if isinstance(regions, Regions) else read_narrowpeak(regions)
  try:
    length = model.sequence_length
    if length is None:
      raise ValueError("the model has no fixed sequence_length: cannot choose the input window")
    check_chromosomes(set(regions.chrom), genome.chrom_sizes, f"the FASTA {genome.path}")
    start, end = window_bounds(regions.centre, length)
    sizes = np.array([genome.chrom_sizes[c] for c in regions.chrom], np.int64)
    regions = regions.subset((start >= 0) & (end <= sizes))
    start, end = window_bounds(regions.centre, length)
    tracks = []
    for i in range(0, len(regions), batch_size):
      seqs = np.stack([genome.fetch_indices(regions.chrom[j], int(start[j]), int(end[j]))
                       for j in range(i, min(i + batch_size, len(regions)))])
      one_hot = tf.one_hot(tf.cast(seqs, tf.int32), 4, dtype=tf.float32)
      tracks.append(predicted_track(model.predict_on_batch(one_hot)))
  finally:
    if own:
      genome.close()
  width = getattr(model, "output_length", None)
  empty = np.zeros((0, width if width is not None else 0), np.float32)
  return (np.concatenate(tracks) if tracks else empty), regions


def write_track_bigwig(path: PathLike, tracks: np.ndarray, regions: Regions,
                       chrom_sizes: Mapping[str, int]) -> None:
  """Writes per-base `tracks` [N, T] centred on the regions' summits to a bigWig.

  `chrom_sizes` (e.g. `Genome.chrom_sizes`) fixes the header's chromosome order. Windows
  must lie on their chromosome; overlapping windows are split at the midpoint between
  summits.
  """
  import pyBigWig

  tracks = np.asarray(tracks, np.float64)
  if tracks.ndim != 2 or tracks.shape[0] != len(regions):
    raise ValueError(f"tracks must be [{len(regions)}, width], got shape {tracks.shape}")
  check_chromosomes(set(regions.chrom), chrom_sizes, "chrom_sizes")
  width = tracks.shape[1]
  centre = regions.centre
  start, end = window_bounds(centre, width)
  outside = np.flatnonzero((start < 0) | (end > np.array([chrom_sizes[c] for c in regions.chrom])))
  if outside.size:
    i = outside[0]
    raise GenomeError(f"track window {regions.chrom[i]}:{start[i]}-{end[i]} is outside the "
                      f"chromosome (length {chrom_sizes[regions.chrom[i]]})")
  rank = {c: i for i, c in enumerate(chrom_sizes)}
  order = sorted(range(len(regions)), key=lambda i: (rank[regions.chrom[i]], start[i], centre[i]))
  bw = pyBigWig.open(os.fspath(path), "w")
  if bw is None:
    raise OSError(f"cannot open {path} for writing")
  try:
    bw.addHeader([(c, int(s)) for c, s in chrom_sizes.items()])
    written_to = {}
    for k, i in enumerate(order):
      chrom = regions.chrom[i]
      first = max(int(start[i]), written_to.get(chrom, 0))
      last = int(end[i])
      if k + 1 < len(order):
        n = order[k + 1]
        if regions.chrom[n] == chrom and start[n] < end[i]:
          last = min(last, int((centre[i] + centre[n]) // 2))
      if last <= first:
        continue
      values = tracks[i, first - int(start[i]):last - int(start[i])]
      bw.addEntries(str(chrom), first, values=[float(v) for v in values], span=1, step=1)
      written_to[chrom] = last
  finally:
    bw.close()


def write_prediction_bigwig(model, genome: Union[Genome, PathLike],
                            regions: Union[Regions, PathLike], path: PathLike, batch_size: int = 64,
                            chrom_sizes: Optional[Mapping[str, int]] = None) -> Regions:
  """Predicts `model` on `regions` and writes softmax(profile) x exp(logcounts) as bigWig.

  For a ChromBPNet write `model` (bias included), `model.without_bias()` (bias-corrected)
  and `model.bias_model` to three files. Returns the regions that were written.
  """
  own = not isinstance(genome, Genome)
  genome = Genome(genome) if own else genome
  try:
    tracks, kept = predict_tracks(model, genome, regions, batch_size)
    write_track_bigwig(path, tracks, kept, chrom_sizes or genome.chrom_sizes)
  finally:
    if own:
      genome.close()
  return kept
