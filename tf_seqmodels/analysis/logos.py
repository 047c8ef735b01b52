"""Sequence-logo plots of per-base contributions (PNG), drawn with matplotlib only.

    plot_contribution_logo("region.png", contributions [L, 4], title="chr1:100-200")

Each position stacks the letters A, C, G, T with heights equal to their contributions:
positive ones upwards from 0, negative ones downwards, largest nearest the axis last (the
usual DeepLIFT/ChromBPNet logo convention).
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

_COLOURS = {"A": "#109648", "C": "#255C99", "G": "#F7B32B", "T": "#D62839"}


def _letter_patch(letter: str, x: float, bottom: float, height: float):
  from matplotlib.font_manager import FontProperties
  from matplotlib.patches import PathPatch
  from matplotlib.textpath import TextPath
  from matplotlib.transforms import Affine2D
  path = TextPath((0, 0), letter, size=1, prop=FontProperties(family="DejaVu Sans", weight="bold"))
  extent = path.get_extents()
  transform = (Affine2D().translate(-extent.x0, -extent.y0)
               .scale(0.9 / extent.width, height / extent.height).translate(x + 0.05, bottom))
  return PathPatch(transform.transform_path(path), color=_COLOURS[letter], lw=0)


def plot_contribution_logo(path: str, contributions: np.ndarray, title: str = "",
                           start: int = 0, ax=None) -> Optional[str]:
  """Writes a logo of `contributions` [L, 4] (A, C, G, T) to `path` (PNG, atomically);
  `start` labels the x axis with genomic coordinates."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  contributions = np.asarray(contributions, np.float64)
  if contributions.ndim != 2 or contributions.shape[1] != 4:
    raise ValueError(f"contributions must be [L, 4], got shape {contributions.shape}")
  length = len(contributions)
  fig, ax = plt.subplots(figsize=(max(4.0, min(40.0, length / 8)), 2.2))
  for i, row in enumerate(contributions):
    up, down = 0.0, 0.0
    for b in np.argsort(np.abs(row)):
      value = row[b]
      if value > 0:
        ax.add_patch(_letter_patch("ACGT"[b], start + i, up, value))
        up += value
      elif value < 0:
        ax.add_patch(_letter_patch("ACGT"[b], start + i, down + value, -value))
        down += value
  low, high = min(contributions.clip(max=0).sum(1).min(), 0), max(contributions.clip(min=0).sum(1).max(), 0)
  pad = 0.05 * max(high - low, 1e-6)
  ax.set_xlim(start, start + length)
  ax.set_ylim(low - pad, high + pad)
  ax.axhline(0, color="0.5", lw=0.5)
  ax.set_ylabel("contribution")
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  from tf_seqmodels.config import atomic_output
  try:
    with atomic_output(path) as tmp:
      fig.savefig(tmp, dpi=100, format=os.path.splitext(path)[1][1:] or "png")
  finally:
    plt.close(fig)
  return path
