"""Evaluation reports: sections of metrics, tables and figures -> JSON + Markdown + PNG.

    report = Report("dream_cnn on test")
    section = report.add_section(Section("challenge", metrics={"pearson_score": 0.71}))
    section.add_table("subsets", rows=[{"subset": "all", "pearson": 0.9}, ...])
    section.add_figure("scatter", fig)          # a matplotlib Figure
    report.write("out/")  # out/report.json, out/report.md, out/<section>_<figure>.png

Every file is written atomically (temporary file + rename). Floats are stored as given
(NaN is written as null in JSON).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
from typing import Any, Mapping, Optional, Sequence

from tf_seqmodels.config import atomic_write_text

_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


def slug(text: str) -> str:
  """A file-name-safe version of `text`."""
  return _SLUG.sub("_", text).strip("_") or "x"


def _plain(value: Any) -> Any:
  """JSON-ready copy: numpy scalars -> Python, NaN/inf -> None."""
  if isinstance(value, Mapping):
    return {str(k): _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_plain(v) for v in value]
  if hasattr(value, "tolist"):
    return _plain(value.tolist())
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def _format(value: Any) -> str:
  if value is None:
    return "–"
  if isinstance(value, float):
    return "nan" if math.isnan(value) else f"{value:.4g}"
  if hasattr(value, "item"):
    return _format(value.item())
  return str(value)


@dataclasses.dataclass
class Section:
  """One part of a report (e.g. "tracks", "gene-level CAGE").

  Attributes:
    name: heading.
    metrics: flat {name: number} summary.
    tables: {table name: rows (dicts with the same keys)}.
    figures: {figure name: matplotlib Figure} (closed after writing).
    notes: free text under the heading (what is measured, how).
  """

  name: str
  metrics: dict[str, float] = dataclasses.field(default_factory=dict)
  tables: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
  figures: dict[str, Any] = dataclasses.field(default_factory=dict)
  notes: str = ""

  def add_table(self, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
    self.tables[name] = [dict(r) for r in rows]

  def add_figure(self, name: str, figure) -> None:
    self.figures[name] = figure

  def figure_file(self, name: str) -> str:
    return f"{slug(self.name)}_{slug(name)}.png"


class Report:
  """An evaluation report: a title, metadata and ordered sections."""

  def __init__(self, title: str, metadata: Optional[Mapping[str, Any]] = None):
    self.title = title
    self.metadata = dict(metadata or {})
    self.sections: list[Section] = []

  def add_section(self, section: Section) -> Section:
    if any(s.name == section.name for s in self.sections):
      raise ValueError(f"report already has a section {section.name!r}")
    self.sections.append(section)
    return section

  def section(self, name: str) -> Section:
    for s in self.sections:
      if s.name == name:
        return s
    raise KeyError(f"no section {name!r}; sections: {[s.name for s in self.sections]}")

  @property
  def metrics(self) -> dict[str, float]:
    """All sections' metrics as {"<section>/<metric>": value}."""
    return {f"{s.name}/{k}": v for s in self.sections for k, v in s.metrics.items()}

  def to_dict(self) -> dict[str, Any]:
    return _plain({
        "title": self.title,
        "metadata": self.metadata,
        "sections": [{"name": s.name, "notes": s.notes, "metrics": s.metrics, "tables": s.tables,
                      "figures": {n: s.figure_file(n) for n in s.figures}} for s in self.sections],
    })

  def to_markdown(self, max_rows: int = 50) -> str:
    lines = [f"# {self.title}", ""]
    for key, value in self.metadata.items():
      lines.append(f"- **{key}**: {_format(value)}")
    for s in self.sections:
      lines += ["", f"## {s.name}", ""]
      if s.notes:
        lines += [s.notes, ""]
      if s.metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_format(v)} |" for k, v in s.metrics.items()]
        lines.append("")
      for name, rows in s.tables.items():
        lines += [f"### {name}", ""]
        if not rows:
          lines += ["(empty)", ""]
          continue
        columns = list(rows[0])
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_format(r.get(c)) for c in columns) + " |"
                  for r in rows[:max_rows]]
        if len(rows) > max_rows:
          lines.append(f"\n({len(rows) - max_rows} more rows in report.json)")
        lines.append("")
      for name in s.figures:
        lines += [f"![{name}]({s.figure_file(name)})", ""]
    return "\n".join(lines).rstrip() + "\n"

  def write(self, out_dir: str) -> dict[str, str]:
    """Writes report.json, report.md and one PNG per figure; returns {kind/name: path}."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for s in self.sections:
      for name, figure in s.figures.items():
        path = os.path.join(out_dir, s.figure_file(name))
        save_figure(figure, path)
        paths[f"figure/{s.name}/{name}"] = path
    paths["json"] = os.path.join(out_dir, "report.json")
    atomic_write_text(paths["json"], json.dumps(self.to_dict(), indent=2) + "\n")
    paths["markdown"] = os.path.join(out_dir, "report.md")
    atomic_write_text(paths["markdown"], self.to_markdown())
    return paths


def save_figure(figure, path: str, dpi: int = 100) -> None:
  """Saves a matplotlib figure as PNG atomically and closes it."""
  import matplotlib.pyplot as plt
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".png")
  os.close(fd)
  try:
    figure.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  finally:
    plt.close(figure)


def new_figure(width: float = 5.0, height: float = 4.0, rows: int = 1, cols: int = 1, **kwargs):
  """A matplotlib (Agg, no display needed) figure and its axes."""
  import matplotlib
  matplotlib.use("Agg", force=False)
  import matplotlib.pyplot as plt
  return plt.subplots(rows, cols, figsize=(width, height), squeeze=False, **kwargs)
