"""Region centres from BED / narrowPeak files for per-region analyses (contributions).

The file is read by the package's one interval reader (`data.intervals.read_bed`), with the
same validation as training: file:line errors for malformed lines, negative, empty or inverted
intervals, summits outside their interval, unknown chromosomes (with a 'chr'-prefix hint) and
intervals past the chromosome end.
"""

from __future__ import annotations

import logging
from typing import Mapping, Optional

import numpy as np

from tf_seqmodels.data.intervals import read_bed, window_bounds

log = logging.getLogger(__name__)


def read_region_centres(path: str, chrom_sizes: Optional[Mapping[str, int]] = None,
                        genome: str = "the genome",
                        window: Optional[int] = None) -> list[tuple[str, int]]:
  """(chrom, 0-based centre) per region: start + summit for a narrowPeak (column 10 >= 0),
  else the midpoint of [start, end).

  Args:
    chrom_sizes: the genome's chromosome sizes; regions are checked against them.
    window: the analysis window centred on each region; windows reaching past a chromosome
      end are kept (their overhang reads as N) and counted in a warning.
  """
  regions = read_bed(path, chrom_sizes, genome)
  if chrom_sizes is not None and window:
    start, end = window_bounds(regions.centre, window)
    sizes = np.array([chrom_sizes[c] for c in regions.chrom], np.int64)
    over = int(((start < 0) | (end > sizes)).sum())
    if over:
      log.warning("%s: %d of %d windows of %d bp reach past a chromosome end; the overhang is "
                  "read as N", path, over, len(regions), window)
  return [(str(c), int(p)) for c, p in zip(regions.chrom, regions.centre)]
