"""Contribution outputs: HDF5 for TF-MoDISco and bigWig tracks at genomic coordinates.

`write_modisco_h5` uses the layout ChromBPNet's `contribs_bw` writes and modisco-lite
reads (`modisco motifs -i scores.h5`), channels first:

    raw/seq              [N, 4, L] int8     one-hot inputs (A, C, G, T)
    shap/seq             [N, 4, L] float32  hypothetical contributions
    projected_shap/seq   [N, 4, L] float32  hypothetical x one-hot (the actual contributions)
    regions/{chrom,start,end}               the genomic window of each row (0-based, half-open)

`write_contribution_bigwig` writes one value per base (the projected contribution summed
over channels) for regions of one genome; overlapping regions are split at the midpoint
between their centres, as ChromBPNet's bigwig writer does.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from tf_seqmodels.config import atomic_output


def write_modisco_h5(path: str, one_hot: np.ndarray, hypothetical: np.ndarray,
                     chroms: Sequence[str], starts: Sequence[int], attrs: Mapping = None) -> None:
  """Writes the arrays above (inputs [N, L, 4] channels-last) atomically."""
  import h5py
  one_hot = np.asarray(one_hot, np.float32)
  hypothetical = np.asarray(hypothetical, np.float32)
  if one_hot.shape != hypothetical.shape or one_hot.ndim != 3:
    raise ValueError(f"one_hot {one_hot.shape} and hypothetical {hypothetical.shape} must both "
                     f"be [N, L, 4]")
  length = one_hot.shape[1]
  with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
    f.create_dataset("raw/seq", data=one_hot.transpose(0, 2, 1).astype(np.int8), compression="gzip")
    f.create_dataset("shap/seq", data=hypothetical.transpose(0, 2, 1), compression="gzip")
    f.create_dataset("projected_shap/seq", data=(hypothetical * one_hot).transpose(0, 2, 1),
                     compression="gzip")
    f.create_dataset("regions/chrom", data=np.array(list(chroms), dtype=h5py.string_dtype()))
    f.create_dataset("regions/start", data=np.asarray(starts, np.int64))
    f.create_dataset("regions/end", data=np.asarray(starts, np.int64) + length)
    for key, value in (attrs or {}).items():
      f.attrs[key] = value


def write_contribution_bigwig(path: str, chrom_sizes: Mapping[str, int], chroms: Sequence[str],
                              starts: Sequence[int], values: np.ndarray) -> None:
  """Per-base `values` [N, L] of windows (chroms[i], starts[i]) -> bigWig, atomically."""
  values = np.asarray(values, np.float64)
  length = values.shape[1]
  order = sorted(range(len(chroms)), key=lambda i: (list(chrom_sizes).index(chroms[i])
                                                   if chroms[i] in chrom_sizes else -1, starts[i]))
  for i in order:
    if chroms[i] not in chrom_sizes:
      raise ValueError(f"region chromosome {chroms[i]} is not in the genome")
  with atomic_output(path) as tmp:
    _write_bigwig(tmp, chrom_sizes, chroms, starts, values, order, length)


def _write_bigwig(tmp, chrom_sizes, chroms, starts, values, order, length) -> None:
  """Writes the entries of `write_contribution_bigwig` (regions in genome `order`) to `tmp`."""
  import pyBigWig
  bw = pyBigWig.open(tmp, "w")
  try:
    bw.addHeader(list(chrom_sizes.items()))
    for position, i in enumerate(order):
      chrom, start = chroms[i], int(starts[i])
      lo, hi = start, start + length
      if position > 0:  # split an overlap with the previous region at the midpoint
        j = order[position - 1]
        if chroms[j] == chrom and int(starts[j]) + length > lo:
          lo = max(lo, (int(starts[j]) + start) // 2 + length // 2)
      if position + 1 < len(order):
        j = order[position + 1]
        if chroms[j] == chrom and int(starts[j]) < hi:
          hi = min(hi, (int(starts[j]) + start) // 2 + length // 2)
      lo, hi = max(lo, 0), min(hi, chrom_sizes[chrom])
      if lo >= hi:
        continue
      bw.addEntries(chrom, lo, values=values[i, lo - start:hi - start].tolist(), span=1, step=1)
  finally:
    bw.close()
