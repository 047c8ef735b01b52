"""Region centres from BED / narrowPeak files for per-region analyses."""

from __future__ import annotations

import os


def read_region_centres(path: str) -> list[tuple[str, int]]:
  """(chrom, 0-based centre) per line: start + summit for a narrowPeak (column 10 >= 0),
  else the midpoint of [start, end)."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"regions file not found: {path}")
  out = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip() or line.startswith(("#", "track", "browser")):
        continue
      fields = line.rstrip("\n").split("\t")
      try:
        start, end = int(fields[1]), int(fields[2])
        summit = int(fields[9]) if len(fields) >= 10 else -1
      except (IndexError, ValueError):
        raise ValueError(f"{path}:{number}: expected chrom, start, end (BED) columns") from None
      out.append((fields[0], start + summit if summit >= 0 else (start + end) // 2))
  return out
