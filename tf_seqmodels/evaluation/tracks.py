"""Track models (Enformer / Basenji): per-track Pearson by assay, gene-level CAGE, browser plots.

Sections of the report:
  tracks       Pearson r of each track over all 128-bp bins of the split (raw and log1p), the
               mean, and the mean per assay type (CAGE, DNase/ATAC, histone ChIP, TF ChIP,
               other; from the Basenji targets-table descriptions, e.g. "CHIP:H3K27ac:...").
  gene_cage    (with a TSS table) the gene-level CAGE evaluation of `cage.py`.
  browser      observed (filled) vs predicted (line) tracks of chosen windows, given by
               index or by genomic region ("chr1:1,000-2,000", mapped to the window that
               overlaps it most and drawn in genomic orientation and coordinates).
Predictions may be test-time augmented (`augmentation`: 2 strands x 4 shifts by default).
Only per-track sums, the TSS bins and the plotted windows are kept: any split size fits.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional, Sequence

import numpy as np

from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.evaluation.augmentation import TestTimeAugmentation
from tf_seqmodels.evaluation.cage import (GeneSums, TSSBins, gene_level_from_sums,
                                          map_tss_to_bins, read_tss_table)
from tf_seqmodels.evaluation.context import EvaluationContext
from tf_seqmodels.evaluation.registry import register_evaluator
from tf_seqmodels.evaluation.report import Report, Section, new_figure
from tf_seqmodels.tasks.tracks import StreamingTrackPearson

ASSAY_TYPES = ("CAGE", "DNase/ATAC", "histone ChIP", "TF ChIP", "other")
_HISTONE = re.compile(r"(H2A|H2B|H3|H4)([KRST][0-9]+[A-Z0-9.]*|[.]?Z|FZ)?", re.IGNORECASE)
_WORD = re.compile(r"[^A-Za-z0-9.]+")


def assay_type(description: str) -> str:
  """Assay of a track from keywords anywhere in its description (case-insensitive words):
  CAGE; DNase / ATAC; a histone mark (H3K27ac, H3K4me3, H2A.Z, ...) = histone ChIP; other
  ChIP = TF ChIP; else "other". Basenji descriptions ("CAGE:...", "CHIP:H3K4me3:...",
  "CHIP:CTCF:...") and free text ("synthetic cage plus counts") both work."""
  words = [w.upper() for w in _WORD.split(str(description)) if w]
  if any(w.startswith("CAGE") for w in words):
    return "CAGE"
  if any(w.startswith("DNASE") or w.startswith("ATAC") for w in words):
    return "DNase/ATAC"
  if any(_HISTONE.fullmatch(w) for w in words):
    return "histone ChIP"
  if any(w.startswith("CHIP") for w in words):
    return "TF ChIP"
  return "other"


def parse_region(text: str) -> tuple[str, int, int]:
  """"chrom:start-end" (0-based start, end exclusive as BED; thousands commas allowed)."""
  match = re.fullmatch(r"\s*([^:\s]+):([0-9,]+)-([0-9,]+)\s*", str(text))
  if not match:
    raise ConfigError(f"region {text!r}: expected chrom:start-end, e.g. chr1:1,000,000-1,010,000")
  chrom, start, end = match.group(1), int(match.group(2).replace(",", "")), int(
      match.group(3).replace(",", ""))
  if end <= start:
    raise ConfigError(f"region {text!r}: end must be after start")
  return chrom, start, end


@dataclasses.dataclass(frozen=True)
class TrackEvaluationOptions(Config):
  """Options of the tracks evaluator (`evaluation.options`).

  Attributes:
    heads: heads evaluated (default: the task's).
    augmentation: test-time augmentation (null = plain predictions).
    targets_table: Basenji targets table whose descriptions give the assay types (default:
      the data's track names are read as descriptions).
    assays: {track name: assay type} overrides.
    tss: TSS table for the gene-level CAGE evaluation (columns gene + chrom + position, or
      gene + example + bin); chrom/position needs a data source with window coordinates.
    cage_tracks: indices of the CAGE tracks (default: the tracks whose assay is CAGE).
    plot_examples: evaluation windows plotted in the browser section.
    plot_regions: genomic regions "chrom:start-end" plotted in the browser section, each in
      the evaluation window overlapping it most (needs a data source with window
      coordinates); drawn in genomic coordinates with the region shaded.
    plot_tracks: track indices plotted (default: the first track of each assay, at most 6).
  """

  heads: tuple[str, ...] = ()
  augmentation: Optional[TestTimeAugmentation] = None
  targets_table: Optional[str] = None
  assays: dict[str, str] = dataclasses.field(default_factory=dict)
  tss: Optional[str] = None
  cage_tracks: tuple[int, ...] = ()
  plot_examples: tuple[int, ...] = (0,)
  plot_regions: tuple[str, ...] = ()
  plot_tracks: tuple[int, ...] = ()

  def validate(self) -> None:
    bad = sorted({v for v in self.assays.values()} - set(ASSAY_TYPES))
    if bad:
      raise ConfigError(f"evaluation.options.assays: unknown assay types {bad}; use {ASSAY_TYPES}")
    for region in self.plot_regions:
      parse_region(region)


def _track_descriptions(context: EvaluationContext, options: TrackEvaluationOptions,
                        num_tracks: int) -> tuple[list[str], list[str]]:
  """(names, assay types) of the T tracks."""
  names = [str(n) for n in context.data_info.get("tracks", ())]
  descriptions = list(names)
  if options.targets_table:
    from tf_seqmodels.data.tracks import read_targets_table
    specs = read_targets_table(options.targets_table)
    names = [s.name for s in specs]
    descriptions = [s.description or s.name for s in specs]
  if len(names) != num_tracks:
    names = [f"track_{i}" for i in range(num_tracks)]
    descriptions = list(names)
  assays = [options.assays.get(n) or assay_type(d) for n, d in zip(names, descriptions)]
  return names, assays


def _tss_bins(context: EvaluationContext, path: str, bins: int) -> TSSBins:
  table = read_tss_table(path)
  if "example" in table:
    return TSSBins(table["gene"].astype(str), table["example"].astype(np.int64),
                   table["bin"].astype(np.int64))
  windows = context.data_info.get("windows", {}).get(context.split)
  if windows is None:
    raise ConfigError(f"the TSS table {path} gives genomic positions, but the data source has no "
                      f"window coordinates for split {context.split!r}; give example + bin columns")
  from tf_seqmodels.data.tracks import window_coordinates
  _, _, target_start, _ = window_coordinates(windows.regions, windows.config)
  return map_tss_to_bins(table["gene"], table["chrom"], table["position"],
                         np.asarray(windows.regions.chrom), target_start, bins,
                         windows.config.bin_size, window_strand=windows.regions.strand)


@dataclasses.dataclass(frozen=True)
class RegionWindow:
  """A plotted genomic region and the evaluation window (example) showing it."""

  region: str
  chrom: str
  start: int
  end: int
  example: int
  window_start: int  # genomic start of the window's first output bin (lowest coordinate)
  minus: bool  # the window is read reverse-complemented (bins reversed, strand pairs swapped)

  @property
  def figure_name(self) -> str:
    return f"region_{self.chrom}_{self.start}_{self.end}"


def region_windows(context: EvaluationContext, regions: Sequence[str], bins: int) -> list[RegionWindow]:
  """Maps genomic regions to the split's windows: the window overlapping each most (ties:
  the one whose centre is nearest the region's)."""
  if not regions:
    return []
  windows = context.data_info.get("windows", {}).get(context.split)
  if windows is None:
    raise ConfigError(f"evaluation.options.plot_regions needs window coordinates, but the data "
                      f"source has none for split {context.split!r}; use plot_examples")
  from tf_seqmodels.data.tracks import window_coordinates
  _, _, start, _ = window_coordinates(windows.regions, windows.config)
  end = start + bins * windows.config.bin_size
  chroms = np.asarray(windows.regions.chrom).astype(str)
  minus = np.asarray(windows.regions.strand).astype(str) == "-"
  out = []
  for text in regions:
    chrom, region_start, region_end = parse_region(text)
    overlap = np.where(chroms == chrom,
                       np.minimum(end, region_end) - np.maximum(start, region_start), 0)
    if not overlap.size or overlap.max() <= 0:
      raise ConfigError(f"plot region {text!r} overlaps no window of split {context.split!r}")
    best = np.flatnonzero(overlap == overlap.max())
    centre = (region_start + region_end) / 2
    i = int(best[np.argmin(np.abs((start[best] + end[best]) / 2 - centre))])
    out.append(RegionWindow(text, chrom, region_start, region_end, i, int(start[i]),
                            bool(minus[i])))
  return out


def genomic_strand_tracks(values: np.ndarray, minus: Optional[np.ndarray],
                          permutation: Optional[Sequence[int]]) -> np.ndarray:
  """[B, bins, T] with the strand-paired tracks of '-' windows (`minus` [B] bool) swapped
  back, so a stranded CAGE column means the same genomic strand in every window (the bins
  are left in window order: TSS bins are mapped per window strand)."""
  if minus is None or permutation is None or not np.any(minus):
    return values
  values = np.array(values, copy=True)
  values[minus] = values[minus][..., np.asarray(permutation)]
  return values


def genomic_orientation(values: np.ndarray, minus: bool,
                        permutation: Optional[Sequence[int]] = None) -> np.ndarray:
  """[bins, T] of a window in genomic order: a '-' window's bins reversed back and its
  strand-paired tracks swapped back (`permutation`, an involution)."""
  if not minus:
    return values
  values = values[::-1]
  return values[:, np.asarray(permutation)] if permutation is not None else values


def browser_figure(observed: np.ndarray, predicted: np.ndarray, names: Sequence[str], title: str,
                   bin_size: Optional[int] = None, x_start: Optional[int] = None,
                   chrom: Optional[str] = None, highlight: Optional[tuple[int, int]] = None):
  """Genome-browser-style panel: one row per track, observed filled, predicted as a line.

  observed, predicted: [bins, k]. With `x_start` (genomic start of the first bin) the x axis
  is the genomic coordinate of each bin's start on `chrom`; `highlight` shades (start, end).
  """
  k = observed.shape[-1]
  fig, axes = new_figure(10.0, 1.2 * k + 0.6, k, 1, sharex=True)
  x = np.arange(observed.shape[0]) * (bin_size or 1) + (x_start or 0)
  for i in range(k):
    ax = axes[i, 0]
    if highlight is not None:
      ax.axvspan(highlight[0], highlight[1], color="C0", alpha=0.12, lw=0)
    ax.fill_between(x, observed[:, i], step="mid", color="0.6", label="observed")
    ax.plot(x, predicted[:, i], color="C3", lw=1.0, drawstyle="steps-mid", label="predicted")
    ax.set_ylabel(names[i], rotation=0, ha="right", fontsize=8)
    ax.tick_params(labelsize=7)
  axes[0, 0].set_title(title, fontsize=9)
  axes[0, 0].legend(fontsize=7, loc="upper right")
  if x_start is not None:
    axes[-1, 0].set_xlabel(f"{chrom or 'genomic'} position (bp)")
  else:
    axes[-1, 0].set_xlabel("position in the output window (bp)" if bin_size else "bin")
  return fig


def head_evaluation(context: EvaluationContext, options: TrackEvaluationOptions, head: str):
  """(on_batch, finish) of one head: `on_batch(targets, outputs, offset)` accumulates a
  batch of predictions, then `finish(report, prefix)` adds the head's sections."""
  pearson, pearson_log = StreamingTrackPearson(head), StreamingTrackPearson(head, log=True)
  plotted: dict[int, tuple[np.ndarray, np.ndarray]] = {}
  state: dict = {}

  def on_batch(targets, outputs, offset):
    if head not in targets or head not in outputs:
      raise ConfigError(f"head {head!r} is missing from the targets {sorted(targets)} or outputs "
                        f"{sorted(outputs)}")
    if np.asarray(outputs[head]).ndim != 3:
      raise ConfigError(f"the tracks evaluator needs [batch, bins, tracks] outputs; head {head!r} "
                        f"has shape {np.shape(outputs[head])}")
    pearson.update(targets, outputs)
    pearson_log.update(targets, outputs)
    observed, predicted = targets[head], outputs[head]
    if "sums" not in state:
      state["bins"], state["tracks"] = predicted.shape[1], predicted.shape[2]
      state["regions"] = region_windows(context, options.plot_regions, predicted.shape[1])
      state["plot"] = set(options.plot_examples) | {r.example for r in state["regions"]}
      if options.tss:
        names, assays = _track_descriptions(context, options, predicted.shape[2])
        cage = list(options.cage_tracks) or [i for i, a in enumerate(assays) if a == "CAGE"]
        if not cage:
          raise ConfigError("gene-level CAGE: no track is CAGE (set evaluation.options.cage_tracks "
                            "or targets_table)")
        tss = _tss_bins(context, options.tss, predicted.shape[1])
        windows = context.data_info.get("windows", {}).get(context.split)
        state["minus"] = (np.asarray(windows.regions.strand).astype(str) == "-"
                          if windows is not None else None)
        state["permutation"] = (context.data_info.get("track_permutations") or {}).get(
            head, context.data_info.get("permutation"))
        state["cage"] = cage
        state["sums"] = (GeneSums(tss, predicted.shape[1]), GeneSums(tss, predicted.shape[1]))
      else:
        state["sums"] = None
    if state["sums"] is not None:
      minus = (state["minus"][offset:offset + len(predicted)]
               if state["minus"] is not None else None)
      for sums, values in zip(state["sums"], (observed, predicted)):
        values = genomic_strand_tracks(np.asarray(values), minus, state["permutation"])
        sums.update(values[..., state["cage"]], offset)
    for example in state["plot"]:
      if offset <= example < offset + len(predicted):
        plotted[example] = (np.asarray(observed[example - offset], np.float32),
                            predicted[example - offset])

  def finish(report: Report, prefix: str = "") -> None:
    num_tracks = state["tracks"]
    names, assays = _track_descriptions(context, options, num_tracks)
    r, r_log = pearson.per_track(), pearson_log.per_track()

    def mean(values):
      values = np.asarray(values, np.float64)
      return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    section = report.add_section(Section(
        f"{prefix}tracks", notes=(
            "Pearson r of each track over all bins of all windows of the split (as Enformer's "
            "PearsonR(reduce_axis=(0, 1))), on raw values and on log(1 + x); the summary averages "
            "tracks, overall and per assay type." +
            (f" Test-time augmentation: {options.augmentation.copies} copies (shifts "
             f"{list(options.augmentation.shifts)}, reverse complement "
             f"{options.augmentation.reverse_complement})." if options.augmentation else ""))))
    section.metrics.update({"pearson": mean(r), "pearson_log": mean(r_log),
                            "tracks": float(num_tracks), "examples": float(pearson._n // state["bins"])})
    by_assay = []
    for assay in ASSAY_TYPES:
      chosen = [i for i, a in enumerate(assays) if a == assay]
      if chosen:
        section.metrics[f"pearson/{assay}"] = mean(r[chosen])
        by_assay.append({"assay": assay, "tracks": len(chosen), "pearson": mean(r[chosen]),
                         "pearson_log": mean(r_log[chosen])})
    section.add_table("by_assay", by_assay)
    section.add_table("per_track", [{"index": i, "track": names[i], "assay": assays[i],
                                     "pearson": float(r[i]), "pearson_log": float(r_log[i])}
                                    for i in range(num_tracks)])
    fig, axes = new_figure(6.0, 3.5)
    for assay in ASSAY_TYPES:
      values = [r[i] for i, a in enumerate(assays) if a == assay and np.isfinite(r[i])]
      if values:
        axes[0, 0].hist(values, bins=20, range=(-1, 1), alpha=0.6, label=f"{assay} ({len(values)})")
    axes[0, 0].set(xlabel="Pearson r per track", ylabel="tracks", title=f"{head}: per-track Pearson r")
    axes[0, 0].legend(fontsize=7)
    section.add_figure("per_track_pearson", fig)

    if state["sums"] is not None:
      genes, observed = state["sums"][0].result()
      _, predicted = state["sums"][1].result()
      result = gene_level_from_sums(genes, observed, predicted)
      cage_section = report.add_section(Section(f"{prefix}gene_cage", metrics=result.summary(), notes=(
          "Per gene, observed and predicted CAGE summed over the bins of its unique TSSs and their "
          "two neighbours, log(1 + x), standardised per experiment; Pearson across genes per "
          "experiment (main metric) and across experiments per gene.")))
      cage_section.add_table("per_experiment", [
          {"track": names[t], "pearson": float(result.per_experiment[j])}
          for j, t in enumerate(state["cage"])])
      cage_section.add_table("per_gene", [{"gene": g, "pearson": float(result.per_gene[i])}
                                          for i, g in enumerate(result.genes)])
      fig, axes = new_figure(4.5, 4.5)
      z = lambda x: (np.log1p(x) - np.log1p(x).mean(0)) / np.maximum(np.log1p(x).std(0), 1e-12)  # noqa: E731
      axes[0, 0].scatter(z(observed)[:, 0], z(predicted)[:, 0], s=6, alpha=0.5)
      axes[0, 0].set(xlabel="observed (standardised log)", ylabel="predicted (standardised log)",
                     title=f"gene-level CAGE, {names[state['cage'][0]]}: "
                           f"r = {result.per_experiment[0]:.3f}")
      cage_section.add_figure("genes_first_experiment", fig)

    if plotted:
      shown = list(options.plot_tracks)
      if not shown:
        seen_assays = []
        for i, a in enumerate(assays):
          if a not in seen_assays:
            seen_assays.append(a)
            shown.append(i)
        shown = (shown + [i for i in range(num_tracks) if i not in shown])[:min(6, num_tracks)]
      bad = [i for i in shown if not 0 <= i < num_tracks]
      if bad:
        raise ConfigError(f"evaluation.options.plot_tracks {bad} outside the {num_tracks} tracks")
      browser = report.add_section(Section(f"{prefix}browser", notes=(
          "Observed (grey) and predicted (red) tracks of the chosen evaluation windows.")))
      bin_size = context.data_info.get("bin_size")
      for example in sorted(set(options.plot_examples)):
        if example in plotted:
          observed, predicted = plotted[example]
          browser.add_figure(f"example_{example}", browser_figure(
              observed[:, shown], predicted[:, shown], [names[i] for i in shown],
              f"{head}: window {example}", bin_size))
      permutation = (context.data_info.get("track_permutations") or {}).get(
          head, context.data_info.get("permutation"))
      for region in state["regions"]:
        observed, predicted = (genomic_orientation(v, region.minus, permutation)
                               for v in plotted[region.example])
        window_bin = context.data_info["windows"][context.split].config.bin_size
        browser.add_figure(region.figure_name, browser_figure(
            observed[:, shown], predicted[:, shown], [names[i] for i in shown],
            f"{head}: {region.region} (window {region.example}, "
            f"{'-' if region.minus else '+'} strand)", window_bin, x_start=region.window_start,
            chrom=region.chrom, highlight=(region.start, region.end)))

  return on_batch, finish


@register_evaluator("tracks", TrackEvaluationOptions,
                    "per-track Pearson by assay, gene-level CAGE, test-time augmentation, browser plots")
def evaluate_tracks(context: EvaluationContext, options: TrackEvaluationOptions) -> Report:
  heads = options.heads or tuple(context.task.head_names if context.task is not None
                                 else context.model.head_names)
  report = Report(f"{context.title}: tracks ({context.split})")
  parts = [head_evaluation(context, options, head) for head in heads]

  def on_batch(targets, outputs, offset):
    for accumulate, _ in parts:
      accumulate(targets, outputs, offset)

  # One pass over the split (and its augmented copies) serves every head.
  context.predict(options.augmentation, positional_axes={head: 1 for head in heads},
                  collect=False, on_batch=on_batch)
  for head, (_, finish) in zip(heads, parts):
    finish(report, prefix="" if len(heads) == 1 else f"{head}/")
  return report
