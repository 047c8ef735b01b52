"""Gene-level CAGE evaluation (Enformer paper, "gene expression" metric).

For each gene, the observed and the predicted CAGE are summed over the bins overlapping the
gene's unique TSSs and their two neighbouring bins (the union of those bins, so a bin shared
by nearby TSSs counts once), giving [genes, experiments] matrices; both are log-transformed
(log(1 + x)) and standardised per experiment (z-score over genes). Then

    per experiment: Pearson r across genes of each CAGE track   [T]  (the paper's main metric)
    per gene:       Pearson r across experiments of each gene   [G]  (tissue specificity)

TSSs are given as (gene, example, bin): the evaluation example (window) holding the TSS and
the output bin it falls in; `map_tss_to_bins` finds them from genomic coordinates.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class TSSBins:
  """TSSs located in evaluation windows: gene names [M], example indices [M], bins [M]."""

  gene: np.ndarray
  example: np.ndarray
  bin: np.ndarray

  def __post_init__(self):
    sizes = {len(self.gene), len(self.example), len(self.bin)}
    if len(sizes) != 1:
      raise ValueError(f"TSSBins: gene, example and bin must have the same length, got {sizes}")

  def __len__(self) -> int:
    return len(self.gene)


@dataclasses.dataclass
class GeneLevelResult:
  genes: list[str]
  observed: np.ndarray     # [G, T] summed CAGE (before the log)
  predicted: np.ndarray    # [G, T]
  per_experiment: np.ndarray  # [T] Pearson r across genes
  per_gene: np.ndarray     # [G] Pearson r across experiments

  def summary(self) -> dict[str, float]:
    def mean(x):
      return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")
    return {"per_experiment_pearson": mean(self.per_experiment),
            "per_gene_pearson": mean(self.per_gene),
            "genes": float(len(self.genes)), "experiments": float(self.observed.shape[1])}


class GeneSums:
  """Streams [n, bins, T] batches and sums each gene's TSS bins ± `neighbours` -> [G, T].

  Genes are in order of first appearance in `tss`; bins outside the window are skipped.
  Only the TSS bins are kept, so whole Enformer test sets fit in memory.
  """

  def __init__(self, tss: TSSBins, bins: int, neighbours: int = 1):
    example = np.asarray(tss.example, np.int64)
    centre = np.asarray(tss.bin, np.int64)
    bad = (example < 0) | (centre < 0) | (centre >= bins)
    if bad.any():
      i = int(np.flatnonzero(bad)[0])
      raise ValueError(f"TSS of gene {tss.gene[i]!r} at example {example[i]}, bin {centre[i]} lies "
                       f"outside the windows of {bins} bins")
    self.genes: list[str] = []
    cells: dict[str, set] = {}
    for gene, ex, b in zip(tss.gene, example, centre):
      gene = str(gene)
      if gene not in cells:
        self.genes.append(gene)
        cells[gene] = set()
      cells[gene].update((int(ex), k) for k in range(b - neighbours, b + neighbours + 1)
                         if 0 <= k < bins)
    # example -> (gene indices, bins) of the cells it holds
    self._by_example: dict[int, tuple[list, list]] = {}
    for g, gene in enumerate(self.genes):
      for ex, k in sorted(cells[gene]):
        rows, columns = self._by_example.setdefault(ex, ([], []))
        rows.append(g)
        columns.append(k)
    self.max_example = max(self._by_example, default=-1)
    self.sums: Optional[np.ndarray] = None
    self.seen = 0

  def update(self, values: np.ndarray, offset: int) -> None:
    """Adds a batch `values` [n, bins, T] of examples offset .. offset + n - 1."""
    values = np.asarray(values, np.float64)
    if values.ndim != 3:
      raise ValueError(f"track values must be [examples, bins, tracks], got shape {values.shape}")
    if self.sums is None:
      self.sums = np.zeros((len(self.genes), values.shape[-1]), np.float64)
    for i in range(values.shape[0]):
      hit = self._by_example.get(offset + i)
      if hit is not None:
        np.add.at(self.sums, hit[0], values[i, hit[1]])
    self.seen = max(self.seen, offset + values.shape[0])

  def result(self) -> tuple[list[str], np.ndarray]:
    if self.sums is None or self.max_example >= self.seen:
      raise ValueError(f"TSSs name evaluation example {self.max_example} but only {self.seen} "
                       f"examples were evaluated")
    return list(self.genes), self.sums


def gene_sums(values: np.ndarray, tss: TSSBins, neighbours: int = 1) -> tuple[list[str], np.ndarray]:
  """Sum of `values` [N, bins, T] over each gene's TSS bins ± `neighbours` -> (genes, [G, T])."""
  values = np.asarray(values, np.float64)
  if values.ndim != 3:
    raise ValueError(f"track values must be [examples, bins, tracks], got shape {values.shape}")
  sums = GeneSums(tss, values.shape[1], neighbours)
  sums.update(values, 0)
  return sums.result()


def _standardise(x: np.ndarray, axis: int) -> np.ndarray:
  mean = x.mean(axis=axis, keepdims=True)
  std = x.std(axis=axis, keepdims=True)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(std > 0, (x - mean) / np.where(std > 0, std, 1.0), np.nan)


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Pearson r of each row of a with the same row of b ([R, K] -> [R]); NaN if constant."""
  a = a - a.mean(axis=1, keepdims=True)
  b = b - b.mean(axis=1, keepdims=True)
  denominator = np.sqrt((a * a).sum(1) * (b * b).sum(1))
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(denominator > 0, (a * b).sum(1) / np.where(denominator > 0, denominator, 1.0),
                    np.nan)


def gene_level_cage(observed: np.ndarray, predicted: np.ndarray, tss: TSSBins,
                    tracks: Optional[Sequence[int]] = None, neighbours: int = 1) -> GeneLevelResult:
  """The gene-level CAGE evaluation (see the module docstring).

  Args:
    observed, predicted: [N, bins, T] track values of the evaluation windows.
    tss: the TSSs (gene, example, bin).
    tracks: indices of the CAGE tracks among the T (default: all).
    neighbours: bins on each side of a TSS bin added (1 = the bin and its two neighbours).
  """
  observed = np.asarray(observed, np.float64)
  predicted = np.asarray(predicted, np.float64)
  if observed.shape != predicted.shape:
    raise ValueError(f"observed {observed.shape} and predicted {predicted.shape} differ")
  if tracks is not None:
    tracks = list(tracks)
    if not tracks:
      raise ValueError("gene-level CAGE needs at least one CAGE track")
    observed, predicted = observed[..., tracks], predicted[..., tracks]
  if not len(tss):
    raise ValueError("gene-level CAGE needs at least one TSS in the evaluation windows")
  genes, obs = gene_sums(observed, tss, neighbours)
  _, pred = gene_sums(predicted, tss, neighbours)
  return gene_level_from_sums(genes, obs, pred)


def gene_level_from_sums(genes: Sequence[str], observed: np.ndarray,
                         predicted: np.ndarray) -> GeneLevelResult:
  """The correlations of gene-level sums [G, T] (log1p, z-score per experiment, Pearson)."""
  obs, pred = np.asarray(observed, np.float64), np.asarray(predicted, np.float64)
  obs_z = _standardise(np.log1p(np.maximum(obs, 0.0)), axis=0)
  pred_z = _standardise(np.log1p(np.maximum(pred, 0.0)), axis=0)
  per_experiment = _rowwise_pearson(obs_z.T, pred_z.T)
  per_gene = (_rowwise_pearson(obs_z, pred_z) if obs.shape[1] > 1
              else np.full(len(genes), np.nan))
  return GeneLevelResult(list(genes), obs, pred, per_experiment, per_gene)


def map_tss_to_bins(gene: Sequence[str], chrom: Sequence[str], position: Sequence[int],
                    window_chrom: Sequence[str], window_start: Sequence[int], bins: int,
                    bin_size: int, window_strand: Optional[Sequence[str]] = None) -> TSSBins:
  """Locates genomic TSSs in evaluation windows whose output starts at `window_start`.

  A TSS inside several (overlapping) windows is assigned to the one where it is most
  central; TSSs in no window are dropped. A '-' window (`window_strand`, default all '+') is
  read reverse-complemented with its bins reversed (data.tracks), so genomic bin k of it is
  output bin `bins - 1 - k`.
  """
  window_chrom = np.asarray(window_chrom).astype(str)
  window_start = np.asarray(window_start, np.int64)
  minus = (np.zeros(len(window_start), bool) if window_strand is None
           else np.asarray(window_strand).astype(str) == "-")
  if minus.shape != window_start.shape:
    raise ValueError(f"map_tss_to_bins: {len(minus)} window strands for {len(window_start)} windows")
  span = bins * bin_size
  out_gene, out_example, out_bin = [], [], []
  for g, c, p in zip(gene, chrom, position):
    p = int(p)
    hits = np.flatnonzero((window_chrom == str(c)) & (window_start <= p) & (p < window_start + span))
    if not hits.size:
      continue
    best = hits[np.argmin(np.abs(window_start[hits] + span / 2 - p))]
    genomic_bin = int((p - window_start[best]) // bin_size)
    out_gene.append(str(g))
    out_example.append(int(best))
    out_bin.append(bins - 1 - genomic_bin if minus[best] else genomic_bin)
  return TSSBins(np.asarray(out_gene, object), np.asarray(out_example, np.int64),
                 np.asarray(out_bin, np.int64))


def read_tss_table(path: str) -> dict[str, np.ndarray]:
  """A TSS table (TSV with a header): columns gene and either chrom + position (0-based) or
  example + bin. Returns the columns as arrays."""
  import pandas as pd
  if not os.path.exists(path):
    raise FileNotFoundError(f"TSS table not found: {path}")
  frame = pd.read_csv(path, sep="\t", comment="#")
  columns = set(frame.columns)
  if "gene" not in columns or not ({"chrom", "position"} <= columns or {"example", "bin"} <= columns):
    raise ValueError(f"{path}: a TSS table needs the columns gene and either chrom + position or "
                     f"example + bin; found {sorted(columns)}")
  return {c: frame[c].to_numpy() for c in frame.columns}
