"""Peaks, GC-matched non-peaks and chromosome folds (`chrombpnet prep nonpeaks|splits`).

- `filter_regions`: summit-centred windows that stay on their chromosome and miss the
  blacklist (the reference drops edge regions; blacklist-filtered peaks are its input);
- `gc_matched_nonpeaks`: the genome tiled at `width` with `stride` 1000, tiles with N or
  within `width / 2` of a peak interval (as given) or blacklist interval excluded (the reference slops both by
  inputlen / 2 with bedtools), GC fraction per tile rounded to 0.01; for each peak window
  `ratio` tiles (2 on train/valid chromosomes, 1 on test) with the same rounded GC are drawn
  without replacement, falling back to GC +-0.01 then to the nearest GC left (the reference
  stops at +-0.01). Written as narrowPeak with summit = width / 2;
- folds: the reference's JSON {"train": [...], "valid": [...], "test": [...]}
  (`data.intervals.Fold`), by default its human fold_0 when the genome has those names.
"""

from __future__ import annotations

import logging
import os
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from tf_seqmodels.data.genome import Genome, GenomeError, check_chromosomes
from tf_seqmodels.data.intervals import (Fold, Regions, make_fold, read_bed, window_bounds,
                                         write_narrowpeak)

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
# The reference's fold_0 for hg38 (Zenodo 7443683).
HUMAN_FOLD_0 = {"test": ("chr1", "chr3", "chr6"), "valid": ("chr8", "chr20")}
_CHUNK = 5_000_000


class IntervalIndex:
  """Merged intervals per chromosome with a vectorised overlap query."""

  def __init__(self, regions: Optional[Regions], pad: int = 0):
    self._starts: dict[str, np.ndarray] = {}
    self._ends: dict[str, np.ndarray] = {}
    if regions is None or not len(regions):
      return
    for chrom in np.unique(regions.chrom.astype(str)):
      rows = regions.chrom.astype(str) == chrom
      order = np.argsort(regions.start[rows], kind="stable")
      starts, ends = regions.start[rows][order] - pad, regions.end[rows][order] + pad
      merged_s, merged_e = [int(starts[0])], [int(ends[0])]
      for s, e in zip(starts[1:], ends[1:]):
        if s <= merged_e[-1]:
          merged_e[-1] = max(merged_e[-1], int(e))
        else:
          merged_s.append(int(s))
          merged_e.append(int(e))
      self._starts[chrom], self._ends[chrom] = np.array(merged_s), np.array(merged_e)

  def overlaps(self, chrom: str, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """[n] bool: [start, end) intersects an interval of `chrom`."""
    start, end = np.asarray(start, np.int64), np.asarray(end, np.int64)
    if chrom not in self._starts:
      return np.zeros(start.shape, bool)
    # The last merged interval starting before `end` is the only candidate (merged = disjoint).
    k = np.searchsorted(self._starts[chrom], end, side="left") - 1
    ok = k >= 0
    hit = np.zeros(start.shape, bool)
    hit[ok] = self._ends[chrom][k[ok]] > start[ok]
    return hit


def filter_regions(regions: Regions, chrom_sizes: Mapping[str, int], width: int,
                   blacklist: Optional[Regions] = None, what: str = "regions") -> Regions:
  """Drops regions whose `width` window (around the summit) leaves the chromosome or
  overlaps the blacklist; unknown chromosomes are a GenomeError."""
  check_chromosomes(set(regions.chrom), chrom_sizes, "the genome FASTA")
  start, end = window_bounds(regions.centre, width)
  sizes = np.array([chrom_sizes[c] for c in regions.chrom], np.int64)
  keep = (start >= 0) & (end <= sizes)
  edge = int((~keep).sum())
  listed = 0
  if blacklist is not None and len(blacklist):
    index = IntervalIndex(blacklist)
    for chrom in np.unique(regions.chrom.astype(str)):
      rows = np.flatnonzero(regions.chrom.astype(str) == chrom)
      hit = index.overlaps(chrom, start[rows], end[rows])
      listed += int((hit & keep[rows]).sum())
      keep[rows[hit]] = False
  if edge or listed:
    log.info("%s: dropped %d near a chromosome end and %d overlapping the blacklist (of %d)",
             what, edge, listed, len(regions))
  return regions.subset(keep)


def window_gc(genome: Genome, regions: Regions, width: int) -> np.ndarray:
  """GC fraction of each region's `width` window (N counts as not GC) -> float64 [N]."""
  start, _ = window_bounds(regions.centre, width)
  out = np.empty(len(regions))
  for i in range(len(regions)):
    idx = genome.fetch_indices(regions.chrom[i], int(start[i]), int(start[i]) + width)
    out[i] = np.count_nonzero((idx == 1) | (idx == 2)) / width
  return out


def candidate_tiles(genome: Genome, width: int, stride: int, exclude: IntervalIndex,
                    chroms: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(chrom, start, gc) of the tiles without N that miss `exclude`, chunk by chunk."""
  out_chrom, out_start, out_gc = [], [], []
  for chrom in chroms:
    size = genome.chrom_sizes[chrom]
    starts = np.arange(0, size - width + 1, stride, dtype=np.int64)
    starts = starts[~exclude.overlaps(chrom, starts, starts + width)]
    for lo in range(0, size, _CHUNK):
      chunk = starts[(starts >= lo) & (starts < lo + _CHUNK)]
      if not chunk.size:
        continue
      hi = min(int(chunk[-1]) + width, size)
      idx = genome.fetch_indices(chrom, lo, hi)
      gc = np.concatenate([[0], np.cumsum((idx == 1) | (idx == 2), dtype=np.int64)])
      nn = np.concatenate([[0], np.cumsum(idx == 4, dtype=np.int64)])
      a, b = chunk - lo, chunk - lo + width
      clean = nn[b] - nn[a] == 0
      out_chrom.append(np.full(int(clean.sum()), chrom, object))
      out_start.append(chunk[clean])
      out_gc.append((gc[b] - gc[a])[clean] / width)
  if not out_start:
    return np.zeros(0, object), np.zeros(0, np.int64), np.zeros(0)
  return np.concatenate(out_chrom), np.concatenate(out_start), np.concatenate(out_gc)


def gc_match(foreground_gc: np.ndarray, candidate_gc: np.ndarray, ratio: int,
             rng: np.random.Generator) -> np.ndarray:
  """Indices into the candidates: `ratio` per foreground value with the same GC rounded to
  0.01, else +-0.01, else the nearest left; each candidate used at most once."""
  bins = np.round(np.asarray(candidate_gc) * 100).astype(np.int64)
  pools: dict[int, list[int]] = {}
  for i in rng.permutation(len(bins)):
    pools.setdefault(int(bins[i]), []).append(int(i))
  chosen = []
  for value in np.round(np.asarray(foreground_gc) * 100).astype(np.int64):
    for _ in range(ratio):
      for b in (int(value), int(value) - 1, int(value) + 1):
        if pools.get(b):
          chosen.append(pools[b].pop())
          break
      else:
        left = [b for b, pool in pools.items() if pool]
        if not left:
          return np.array(chosen, np.int64)
        nearest = min(left, key=lambda b: (abs(b - value), b))
        chosen.append(pools[nearest].pop())
  return np.array(chosen, np.int64)


def gc_matched_nonpeaks(genome: Genome, peaks: Regions, fold: Fold, width: int,
                        stride: int = 1000, ratio: int = 2,
                        blacklist: Optional[Regions] = None, seed: int = 1234) -> Regions:
  """GC-matched background windows (see the module docstring); summit = width // 2."""
  if not len(peaks):
    raise ValueError("no peaks to match non-peaks to")
  rng = np.random.default_rng(seed)
  # The reference slops the peak intervals (and the blacklist) by width / 2 with bedtools.
  exclude_regions = peaks if blacklist is None else Regions.concatenate([peaks, blacklist])
  exclude = IntervalIndex(exclude_regions, pad=width // 2)
  chroms = [c for c in fold.chromosomes if c in genome.chrom_sizes]
  check_chromosomes(fold.chromosomes, genome.chrom_sizes, "the genome FASTA (fold chromosomes)")
  c_chrom, c_start, c_gc = candidate_tiles(genome, width, stride, exclude, chroms)
  peak_gc = window_gc(genome, peaks, width)
  chosen_chrom, chosen_start = [], []
  for split, per_peak in (("train", ratio), ("valid", ratio), ("test", 1)):
    names = getattr(fold, split)
    fg = np.isin(peaks.chrom.astype(str), list(names))
    cand = np.flatnonzero(np.isin(c_chrom.astype(str), list(names)))
    if not fg.any() or not cand.size:
      continue
    picks = cand[gc_match(peak_gc[fg], c_gc[cand], per_peak, rng)]
    if len(picks) < per_peak * int(fg.sum()):
      log.warning("%s: only %d background tiles for %d requested non-peaks", split, len(picks),
                  per_peak * int(fg.sum()))
    chosen_chrom.append(c_chrom[picks])
    chosen_start.append(c_start[picks])
  if not chosen_start:
    raise ValueError("no background tiles left for non-peaks (genome too small for the window "
                     "and the peaks' exclusion zones?)")
  chrom, start = np.concatenate(chosen_chrom), np.concatenate(chosen_start)
  order = np.lexsort((start, [chroms.index(c) for c in chrom]))
  return Regions.from_intervals(chrom[order], start[order], start[order] + width)


def default_fold(chrom_sizes: Mapping[str, int], test: Optional[Sequence[str]] = None,
                 valid: Optional[Sequence[str]] = None) -> Fold:
  """The fold of the given test / valid chromosomes (others train), or the reference's
  human fold_0 when none are given and the genome names them."""
  if test or valid:
    if not test or not valid:
      raise ValueError("give both the test and the valid chromosomes (or a fold JSON)")
    return make_fold(chrom_sizes, list(test), list(valid))
  wanted = HUMAN_FOLD_0["test"] + HUMAN_FOLD_0["valid"]
  if not all(c in chrom_sizes for c in wanted):
    raise GenomeError(f"no fold given and the genome lacks the reference's fold_0 chromosomes "
                      f"{list(wanted)}: give --fold fold.json or --test-chroms / --valid-chroms")
  # Only the main chromosomes train (contigs, chrM, chrY stay out as in the reference folds).
  main = {f"chr{i}" for i in range(1, 23)} | {"chrX"}
  fold = make_fold({c: s for c, s in chrom_sizes.items() if c in main},
                   list(HUMAN_FOLD_0["test"]), list(HUMAN_FOLD_0["valid"]))
  return fold


def prepare_regions(genome_fasta: PathLike, peaks: Union[PathLike, Regions], fold: Fold,
                    out_dir: PathLike, width: int, blacklist: Optional[PathLike] = None,
                    nonpeaks: Optional[PathLike] = None, ratio: int = 2, stride: int = 1000,
                    max_jitter: int = 0, seed: int = 1234) -> dict:
  """Writes filtered.peaks.narrowPeak, filtered.nonpeaks.narrowPeak and fold.json under
  `out_dir`; returns counts for the pipeline record.

  Peaks keep their summits; those whose `width + 2 max_jitter` window leaves the chromosome
  or touches the blacklist are dropped. Non-peaks come from `nonpeaks` (filtered the same
  way) or are sampled GC-matched.
  """
  peaks = peaks if isinstance(peaks, Regions) else read_bed(peaks)
  black = read_bed(blacklist) if blacklist else None
  with Genome(genome_fasta) as genome:
    sizes = genome.chrom_sizes
    check_chromosomes(fold.chromosomes, sizes, "the genome FASTA (fold chromosomes)")
    on_fold = peaks.on_chromosomes(fold.chromosomes)
    if not len(on_fold):
      raise GenomeError(f"no peak lies on a fold chromosome: peaks use "
                        f"{sorted(set(peaks.chrom))[:10]}, the fold names {list(fold.chromosomes)[:10]}")
    kept = filter_regions(on_fold, sizes, width + 2 * max_jitter, black, "peaks")
    if not len(kept):
      raise ValueError("no peaks left after dropping chromosome-edge and blacklisted ones")
    if nonpeaks:
      background = filter_regions(read_bed(nonpeaks).on_chromosomes(fold.chromosomes), sizes,
                                  width, black, "non-peaks")
    else:
      background = gc_matched_nonpeaks(genome, kept, fold, width, stride, ratio, black, seed)
    peak_gc = window_gc(genome, kept, width)
    background_gc = window_gc(genome, background, width)
  out_dir = os.fspath(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  write_narrowpeak(os.path.join(out_dir, "filtered.peaks.narrowPeak"), kept)
  write_narrowpeak(os.path.join(out_dir, "filtered.nonpeaks.narrowPeak"), background)
  fold.save(os.path.join(out_dir, "fold.json"))
  return {"peaks_in": len(peaks), "peaks": len(kept), "nonpeaks": len(background),
          "nonpeaks_sampled": not nonpeaks, "peak_gc_mean": float(peak_gc.mean()),
          "nonpeak_gc_mean": float(background_gc.mean()) if len(background) else None}


__all__ = ["HUMAN_FOLD_0", "IntervalIndex", "candidate_tiles", "default_fold", "filter_regions",
           "gc_match", "gc_matched_nonpeaks", "prepare_regions", "window_gc"]
