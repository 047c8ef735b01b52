"""Region centres from BED / narrowPeak files for per-region analyses."""

from __future__ import annotations

import os


def bed_rows(path: str, what: str = "regions file"):
  """Yields (fields, start, end) per data line of a BED-like file (header, track, browser
  and comment lines skipped); a missing file or malformed line raises naming path:line."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"{what} not found: {path}")
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip() or line.startswith(("#", "track", "browser")):
        continue
      fields = line.rstrip("\n").split("\t")
      try:
        start, end = int(fields[1]), int(fields[2])
      except (IndexError, ValueError):
        raise ValueError(f"{path}:{number}: expected chrom, start, end (BED) columns") from None
      yield fields, start, end


def read_region_centres(path: str) -> list[tuple[str, int]]:
  """(chrom, 0-based centre) per line: start + summit for a narrowPeak (column 10 >= 0),
  else the midpoint of [start, end)."""
  out = []
  for fields, start, end in bed_rows(path):
    try:
      summit = int(fields[9]) if len(fields) >= 10 else -1
    except ValueError:
      raise ValueError(f"{path}: narrowPeak summit (column 10) must be an integer, got "
                       f"{fields[9]!r}") from None
    out.append((fields[0], start + summit if summit >= 0 else (start + end) // 2))
  return out
