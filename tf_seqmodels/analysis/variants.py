"""Variant effect prediction: alt - ref of any DNA model's heads, at genome scale.

    model = load_analysis_model("runs/enformer")
    summary = score_vcf(model, "variants.vcf.gz", "genome.fa", "scores.h5",
                        VariantScoringConfig(window_bins=3, shifts=(-1, 0, 1)))

For each variant (one per ALT allele) the reference allele is checked against the FASTA
(mismatches, symbolic alleles and chromosomes missing from the FASTA are reported, never
scored), then a window of the model's input length is cut around an anchor: the variant
itself, or, in gene mode, each TSS whose window contains the variant. The alt window keeps
the length: sequence on the anchor's side of the variant stays in place and the far side
is filled from (deletions) or truncated to (insertions) the genome, so the output bins
stay aligned with the anchor.

Predictions are averaged over the reverse complement (outputs flipped back along the
positional axis, strand-paired tracks such as CAGE +/- swapped back: `track_permutations`)
and the shifts of the window (the Enformer recipe), for ref and alt separately. Each head is
then compared according to its kind (`head_kinds` of the contract):

  tracks, log_counts, scalar: one value per track. The positional axis (`position_axes`) is
    summed over all bins or over `window_bins` bins centred on the anchor (the Enformer gene
    recipe: the TSS bin and its two neighbours = `window_bins=3`); a `tracks` subset may be
    kept. Statistics:

      diff      alt - ref                                (Enformer's SAD; for log counts the
                                                          natural-log fold change)
      log_fc    tracks: log2(alt + c) - log2(ref + c)    (SAR with pseudo-count c = 1)
                log_counts (log(1 + counts)): (alt - ref) / ln 2, the same log2 fold change
                with c = 1 (scalar heads have no log_fc)
      abs_diff  |alt - ref|

  profile_logits (BPNet / ChromBPNet profile): logits are shift-invariant, so they are never
    summed: softmax over all positions per track, then

      jsd       Jensen-Shannon distance between the ref and alt profiles (natural log,
                as scipy.spatial.distance.jensenshannon), ChromBPNet's profile score

Each head gets the requested statistics its kind supports (ChromBPNet: logcounts diff /
log_fc, profile jsd).

Scores stream to HDF5 (`scores/<head>/<statistic>` [N, tracks] plus the variant table) or
TSV as batches finish; files are written under a temporary name and renamed at the end.
`pca_summary` adds the release format of the Enformer paper (standardised scores projected
on their first 20 principal components).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np

from tf_seqmodels.analysis.inference import AnalysisModel, BatchRunner
from tf_seqmodels.config import (Config, ConfigError, apply_default_permissions, atomic_output,
                                 temporary_path)
from tf_seqmodels.data.encoding import (SequenceError, indices_to_one_hot,
                                        reverse_complement_indices, sequence_to_indices)
from tf_seqmodels.data.genome import Genome
from tf_seqmodels.data.intervals import read_bed
from tf_seqmodels.data.strands import CopyAverage
from tf_seqmodels.data.vcf import Variant, read_vcf
from tf_seqmodels.errors import DataError
from tf_seqmodels.tasks import metrics


class VariantInputError(DataError):
  """A VCF run that cannot score any variant (the reasons are counted in the message)."""


STATISTICS = ("diff", "log_fc", "abs_diff", "jsd")
# The statistics that mean something for each head kind (models.base.HEAD_KINDS).
KIND_STATISTICS = {
    "tracks": ("diff", "log_fc", "abs_diff"),
    "log_counts": ("diff", "log_fc", "abs_diff"),
    "scalar": ("diff", "abs_diff"),
    "profile_logits": ("jsd",),
}


@dataclasses.dataclass(frozen=True)
class VariantScoringConfig(Config):
  """How variants are scored.

  Attributes:
    heads: heads to score (empty: all heads that support one of `statistics`).
    tracks: per head, the track indices (last axis) to keep; absent heads keep all.
    window_bins: positional bins summed around the anchor (None: all bins).
    statistics: subset of STATISTICS; each head gets those its kind supports.
    pseudo_count: c of log_fc.
    reverse_complement: average over the reverse complement as well.
    shifts: window offsets (bp) averaged over, e.g. (-1, 0, 1).
    sequence_length: input length; None = the model's.
    batch_size: variants per batch (each costs 2 x |shifts| x (1 + rc) sequences).
  """

  heads: tuple[str, ...] = ()
  tracks: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
  window_bins: Optional[int] = None
  statistics: tuple[str, ...] = STATISTICS
  pseudo_count: float = 1.0
  reverse_complement: bool = True
  shifts: tuple[int, ...] = (0,)
  sequence_length: Optional[int] = None
  batch_size: int = 8

  def validate(self) -> None:
    unknown = set(self.statistics) - set(STATISTICS)
    if unknown or not self.statistics:
      raise ConfigError(f"VariantScoringConfig: statistics must be a non-empty subset of "
                        f"{STATISTICS}, got {self.statistics}")
    if self.window_bins is not None and self.window_bins <= 0:
      raise ConfigError(f"VariantScoringConfig: window_bins must be positive, got {self.window_bins}")
    if self.batch_size <= 0:
      raise ConfigError(f"VariantScoringConfig: batch_size must be positive, got {self.batch_size}")
    if not self.shifts:
      raise ConfigError("VariantScoringConfig: shifts must hold at least one offset (0)")
    if self.pseudo_count <= 0:
      raise ConfigError(f"VariantScoringConfig: pseudo_count must be positive, got {self.pseudo_count}")


# --- sequences --------------------------------------------------------------------------------

def allele_indices(allele: str) -> np.ndarray:
  """int8 ACGTN indices [L] of a DNA string (SequenceError naming any other character)."""
  return sequence_to_indices(allele)


def one_hot_indices(indices: np.ndarray) -> np.ndarray:
  """int8 indices [..., L] (N = 4) -> float32 one-hot [..., L, 4] (N = zeros)."""
  return indices_to_one_hot(indices)


def check_reference(genome: Genome, variant: Variant) -> Optional[str]:
  """Why `variant` cannot be scored against `genome` ('<kind>: <details>'), or None if it can."""
  if variant.unscorable:
    return variant.unscorable
  if variant.chrom not in genome.chrom_sizes:
    return f"unknown chromosome: {genome.missing_chromosome(variant.chrom)}"
  end = variant.start + len(variant.ref)
  if end > genome.chrom_sizes[variant.chrom]:
    return (f"past the chromosome end: REF allele ends at {end}, {variant.chrom} has "
            f"{genome.chrom_sizes[variant.chrom]} bp")
  found = genome.fetch(variant.chrom, variant.start, end)
  if found != variant.ref:
    return f"reference mismatch: VCF REF {variant.ref}, FASTA {found}"
  return None


def summarise_skipped(skipped: Sequence["Skipped"]) -> str:
  """'3 unknown chromosome (e.g. ...), 1 reference mismatch (e.g. ...)': counts per kind."""
  kinds: dict[str, list] = {}
  for s in skipped:
    kind, _, detail = s.reason.partition(": ")
    kinds.setdefault(kind, [0, detail or kind])[0] += 1
  return ", ".join(f"{n} {kind} (e.g. {example})" for kind, (n, example) in
                   sorted(kinds.items(), key=lambda item: -item[1][0]))


def variant_windows(genome: Genome, variant: Variant, anchor: int,
                    length: int) -> tuple[np.ndarray, np.ndarray]:
  """(ref, alt) int8 index windows [length] with position `anchor` at index length // 2.

  The side of the variant that holds the anchor keeps its place; the other side absorbs the
  length change of an indel (filled from the genome, N past the chromosome ends).
  """
  start = anchor - length // 2
  ref = genome.fetch_window(variant.chrom, start, start + length)
  alt_allele = allele_indices(variant.alt)
  v_start, v_end = variant.start, variant.start + len(variant.ref)
  empty = np.zeros(0, np.int8)
  if v_start < start or v_end > start + length:
    raise SequenceError(f"{variant.name}: REF allele outside the window {start}-{start + length}")
  if v_start >= anchor or v_end > anchor:  # anchor at or left of the variant: keep the left
    left = genome.fetch_window(variant.chrom, start, v_start) if v_start > start else empty
    need = max(0, length - len(left) - len(alt_allele))
    right = genome.fetch_window(variant.chrom, v_end, v_end + need) if need else empty
    alt = np.concatenate([left, alt_allele, right])[:length]
  else:  # variant entirely left of the anchor: keep the right side in place
    end = start + length
    right = genome.fetch_window(variant.chrom, v_end, end)
    need = max(0, length - len(right) - len(alt_allele))
    left = genome.fetch_window(variant.chrom, v_start - need, v_start) if need else empty
    alt = np.concatenate([left, alt_allele, right])[-length:]
  if len(alt) != length:
    raise SequenceError(f"{variant.name}: alt window of {len(alt)} bp, expected {length}")
  return ref, alt


# --- reductions and statistics ----------------------------------------------------------------

def reduce_head(values: np.ndarray, position_axis: Optional[int], window_bins: Optional[int],
                tracks: Optional[Sequence[int]], kind: str = "tracks") -> np.ndarray:
  """One head's outputs [B, ...] -> [B, tracks]: positional axis summed (all bins, or
  `window_bins` centred on the middle bin), then the `tracks` subset of the last axis.

  A "profile_logits" head instead becomes probabilities [B, positions, tracks]: the softmax
  over all positions of each track (`window_bins` does not apply)."""
  values = np.asarray(values, np.float64)
  if kind == "profile_logits":
    return _profile_probabilities(values, position_axis, tracks)
  if position_axis is not None:
    if window_bins is not None:
      bins = values.shape[position_axis]
      if window_bins > bins:
        raise ValueError(f"window_bins {window_bins} exceeds the {bins} output bins")
      first = bins // 2 - window_bins // 2
      values = np.take(values, np.arange(first, first + window_bins), axis=position_axis)
    values = values.sum(axis=position_axis)
  values = values.reshape(values.shape[0], -1)
  if tracks is not None:
    tracks = list(tracks)
    if max(tracks, default=0) >= values.shape[1] or min(tracks, default=0) < 0:
      raise ValueError(f"track indices {tracks} out of range for {values.shape[1]} tracks")
    values = values[:, tracks]
  return values


def _profile_probabilities(values: np.ndarray, position_axis: Optional[int],
                           tracks: Optional[Sequence[int]]) -> np.ndarray:
  if position_axis is None:
    raise ValueError("a profile_logits head needs a positional axis")
  values = np.moveaxis(values, position_axis, 1)
  values = values.reshape(values.shape[0], values.shape[1], -1)  # [B, P, T]
  if tracks is not None:
    tracks = list(tracks)
    if max(tracks, default=0) >= values.shape[2] or min(tracks, default=0) < 0:
      raise ValueError(f"track indices {tracks} out of range for {values.shape[2]} tracks")
    values = values[..., tracks]
  values = values - values.max(axis=1, keepdims=True)
  exp = np.exp(values)
  return exp / exp.sum(axis=1, keepdims=True)


def jensen_shannon_distance(p: np.ndarray, q: np.ndarray) -> np.ndarray:
  """Jensen-Shannon distance (natural log) between distributions over axis 1: [B, P, T] ->
  [B, T]; 0 for equal profiles, at most sqrt(ln 2) (ChromBPNet's metric, axis moved)."""
  return metrics.jensen_shannon_distance(np.moveaxis(p, 1, -1), np.moveaxis(q, 1, -1))


def head_statistics(kind: str, requested: Sequence[str]) -> tuple[str, ...]:
  """The requested statistics that apply to a head of `kind`."""
  if kind not in KIND_STATISTICS:
    raise ValueError(f"unknown head kind {kind!r}; known: {sorted(KIND_STATISTICS)}")
  return tuple(s for s in requested if s in KIND_STATISTICS[kind])


def statistic(name: str, ref: np.ndarray, alt: np.ndarray, pseudo_count: float = 1.0,
              kind: str = "tracks") -> np.ndarray:
  """Statistic `name` of reduced predictions (`reduce_head`) of a head of `kind`."""
  if name not in STATISTICS:
    raise ValueError(f"unknown statistic {name!r}; available: {STATISTICS}")
  if name not in KIND_STATISTICS.get(kind, ()):
    raise ValueError(f"statistic {name!r} does not apply to a {kind!r} head (it supports "
                     f"{KIND_STATISTICS.get(kind)})")
  if name == "diff":
    return alt - ref
  if name == "abs_diff":
    return np.abs(alt - ref)
  if name == "jsd":
    return jensen_shannon_distance(ref, alt)
  if kind == "log_counts":  # log(1 + counts): the log2 fold change with pseudo-count 1
    return (alt - ref) / np.log(2.0)
  # Track signals are non-negative (softplus / counts); the clip only absorbs rounding.
  return np.log2(np.maximum(alt, 0) + pseudo_count) - np.log2(np.maximum(ref, 0) + pseudo_count)


def averaged_predictions(model: AnalysisModel, runner: BatchRunner, windows: np.ndarray,
                         config: VariantScoringConfig, heads: Sequence[str]) -> dict[str, np.ndarray]:
  """Reduced predictions (`reduce_head`: [N, tracks], profiles [N, positions, tracks]) per
  head for index windows [N, S, L], averaged over the S shifted copies and (if configured)
  their reverse complements (mapped back to the forward strand by `data.strands`)."""
  n, num_shifts, length = windows.shape
  flat = windows.reshape(n * num_shifts, length)
  passes = [(flat, False)]
  if config.reverse_complement:
    passes.append((reverse_complement_indices(flat), True))
  if len(passes) == 2 and model.strand_blind:
    # Without a strand flag both strands are the same computation: one batch, one call.
    passes = [(np.concatenate([flat, passes[1][0]]), None)]
  copies = []
  for indices, is_reverse in passes:
    outputs = runner.predict(model, one_hot_indices(indices), is_reverse=bool(is_reverse))
    missing = [h for h in heads if h not in outputs]
    if missing:
      raise ValueError(f"the model has no head(s) {missing}; heads: {sorted(outputs)}")
    if is_reverse is None:  # the two strands of one call: split them again
      copies += [({h: outputs[h][:len(flat)] for h in heads}, False),
                 ({h: outputs[h][len(flat):] for h in heads}, True)]
    else:
      copies.append(({h: outputs[h] for h in heads}, is_reverse))
  first = copies[0][0]
  return reduce_copies(copies, num_shifts, config,
                       {h: model.position_axis(h, v) for h, v in first.items()},
                       {h: model.head_kind(h, v) for h, v in first.items()},
                       {h: p for h, p in model.track_permutations.items() if h in first})


def reduce_copies(copies: Sequence[tuple[Mapping[str, Any], bool]], num_shifts: int,
                  config: VariantScoringConfig, position_axes: Mapping[str, Optional[int]],
                  head_kinds: Mapping[str, str],
                  track_permutations: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """The reduction half of `averaged_predictions`, a pure function of the outputs: `copies`
  are ({head: [N * S, ...]}, is_reverse) passes over the same N x S windows (shift-major
  within each window, as `averaged_predictions` flattens them) -> {head: [N, tracks]}."""
  average = CopyAverage(position_axes, track_permutations)
  for outputs, is_reverse in copies:
    average.add({h: np.asarray(v, np.float64) for h, v in outputs.items()}, is_reverse)
  totals = {}
  for head, values in average.result().items():
    reduced = reduce_head(values, position_axes[head], config.window_bins,
                          config.tracks.get(head), head_kinds[head])
    totals[head] = reduced.reshape((-1, num_shifts) + reduced.shape[1:]).mean(axis=1)
  return totals


# --- scoring ----------------------------------------------------------------------------------

@dataclasses.dataclass
class ScoredBatch:
  variants: list[Variant]
  anchors: list[int]
  genes: list[str]
  ref: dict[str, np.ndarray]  # head -> [n, tracks] (profile heads: [n, positions, tracks])
  alt: dict[str, np.ndarray]
  scores: dict[str, dict[str, np.ndarray]]  # head -> statistic -> [n, tracks]


@dataclasses.dataclass
class Skipped:
  variant: Variant
  reason: str


class TSSIndex:
  """TSSs per chromosome, sorted, so the TSSs within reach of a variant are found by binary
  search (genome-wide VCFs x all genes stay O(N log G))."""

  def __init__(self, genes: Sequence[tuple[str, int, str]]):
    by_chrom: dict[str, list[tuple[int, str]]] = {}
    for chrom, tss, name in genes:
      by_chrom.setdefault(chrom, []).append((int(tss), name))
    self._positions = {}
    self._names = {}
    for chrom, entries in by_chrom.items():
      entries.sort()
      self._positions[chrom] = np.array([t for t, _ in entries], np.int64)
      self._names[chrom] = [n for _, n in entries]

  def within(self, chrom: str, low: int, high: int) -> list[tuple[str, int]]:
    """(name, tss) of the TSSs on `chrom` with low <= tss <= high, in position order."""
    positions = self._positions.get(chrom)
    if positions is None:
      return []
    first = int(np.searchsorted(positions, low, side="left"))
    last = int(np.searchsorted(positions, high, side="right"))
    return [(self._names[chrom][i], int(positions[i])) for i in range(first, last)]


def variant_targets(variants: Iterable[Variant], genome: Genome,
                    genes: Optional[Sequence[tuple] | TSSIndex], length: int,
                    skipped: list) -> Iterator[tuple[Variant, int, str]]:
  """(variant, anchor, gene) to score; invalid variants go to `skipped`. `genes`: (chrom,
  TSS, name) triples or their `TSSIndex` (built once by callers that score record by record)."""
  index = TSSIndex(genes) if genes is not None and not isinstance(genes, TSSIndex) else genes
  half = length // 2
  for variant in variants:
    reason = check_reference(genome, variant)
    if not reason and max(len(variant.ref), len(variant.alt)) > length // 4:
      reason = f"allele too long: longer than a quarter of the {length}-bp window"
    if reason:
      skipped.append(Skipped(variant, reason))
      continue
    if index is None:
      yield variant, variant.start, ""
      continue
    # The window [tss - half, tss - half + length) must hold the whole REF allele.
    v_start, v_end = variant.start, variant.start + len(variant.ref)
    hits = index.within(variant.chrom, v_end + half - length, v_start + half)
    if not hits:
      skipped.append(Skipped(variant, "no TSS in reach: no TSS within the model's input "
                                      "window"))
    for name, tss in hits:
      yield variant, tss, name


def _batched(iterator: Iterator, size: int) -> Iterator[list]:
  batch = []
  for item in iterator:
    batch.append(item)
    if len(batch) == size:
      yield batch
      batch = []
  if batch:
    yield batch


def scored_heads(model: AnalysisModel, outputs: Mapping[str, Any],
                 config: VariantScoringConfig) -> dict[str, tuple[str, ...]]:
  """{head: statistics} to compute: each head (config.heads, else all) with the requested
  statistics its kind supports. A named head that supports none is an error; unnamed ones are
  left out."""
  names = list(config.heads) or sorted(outputs)
  unknown = [h for h in names if h not in outputs]
  if unknown:
    raise ValueError(f"the model has no head(s) {unknown}; heads: {sorted(outputs)}")
  out = {}
  for head in names:
    kind = model.head_kind(head, outputs[head])
    stats = head_statistics(kind, config.statistics)
    if stats:
      out[head] = stats
    elif config.heads:
      raise ValueError(f"head {head!r} ({kind}) supports the statistics "
                       f"{KIND_STATISTICS[kind]}, none of the requested {config.statistics}")
  if not out:
    raise ValueError(f"no head supports the statistics {config.statistics}; kinds: "
                     f"{ {h: model.head_kind(h, v) for h, v in outputs.items()} }")
  return out


def _score(model: AnalysisModel, heads: Mapping[str, Sequence[str]], ref: Mapping[str, Any],
           alt: Mapping[str, Any], config: VariantScoringConfig) -> dict[str, dict[str, np.ndarray]]:
  return {h: {s: statistic(s, ref[h], alt[h], config.pseudo_count, model.head_kind(h))
              for s in stats} for h, stats in heads.items()}


def score_variants(model: AnalysisModel, variants: Iterable[Variant], genome: Genome,
                   config: VariantScoringConfig = VariantScoringConfig(), *,
                   runner: Optional[BatchRunner] = None,
                   genes: Optional[Sequence[tuple[str, int, str]]] = None,
                   skipped: Optional[list] = None) -> Iterator[ScoredBatch]:
  """Scores `variants` batch by batch (a generator: results stream as they are computed).

  Args:
    genes: gene mode: (chrom, 0-based TSS, name) triples; each variant is scored once per
      TSS whose input window contains it, with the window centred on the TSS.
    skipped: a list that receives a `Skipped` record for every variant not scored.
  """
  runner = runner or BatchRunner()
  length = config.sequence_length or model.sequence_length
  if length is None:
    raise ValueError("the model has no fixed input length: set sequence_length")
  model.check_length(length)
  skipped = skipped if skipped is not None else []
  heads = None
  for batch in _batched(variant_targets(variants, genome, genes, length, skipped), config.batch_size):
    pairs = [[variant_windows(genome, v, a + s, length) for s in config.shifts] for v, a, _ in batch]
    ref = np.stack([np.stack([r for r, _ in row]) for row in pairs])
    alt = np.stack([np.stack([a for _, a in row]) for row in pairs])
    if heads is None:
      heads = scored_heads(model, runner.predict(model, one_hot_indices(ref[:1, 0])), config)
    # Variants whose reference windows are the same (the alleles of one site; in gene mode,
    # every SNV scored in one TSS's window) share one reference prediction.
    shared, which = np.unique(ref.reshape(len(ref), -1), axis=0, return_inverse=True)
    shared = shared.reshape((-1,) + ref.shape[1:])
    both = averaged_predictions(model, runner, np.concatenate([shared, alt]), config, list(heads))
    which = which.reshape(-1)
    ref_pred = {h: v[:len(shared)][which] for h, v in both.items()}
    alt_pred = {h: v[len(shared):] for h, v in both.items()}
    yield ScoredBatch([b[0] for b in batch], [b[1] for b in batch], [b[2] for b in batch],
                      ref_pred, alt_pred, _score(model, heads, ref_pred, alt_pred, config))


def score_sequence_pairs(model: AnalysisModel, ref_sequences: Sequence[str],
                         alt_sequences: Sequence[str],
                         config: VariantScoringConfig = VariantScoringConfig(), *,
                         runner: Optional[BatchRunner] = None,
                         plasmid: Optional[str] = None) -> dict[str, dict[str, np.ndarray]]:
  """Scores (ref, alt) sequence pairs (e.g. the DREAM challenge's SNV pairs):
  {head: {statistic: [N, tracks]}}. Shifts do not apply (no genome context).

  Sequences must have the model's length unless `plasmid` (a DREAM plasmid sequence,
  `data.dream.load_plasmid`) is given: then each is padded as the DREAM reference does
  (`data.dream.pad_with_plasmid`: left adapter replaced by the plasmid upstream of the insert).
  """
  if len(ref_sequences) != len(alt_sequences):
    raise ValueError(f"{len(ref_sequences)} ref but {len(alt_sequences)} alt sequences")
  runner = runner or BatchRunner()
  if plasmid is not None:
    from tf_seqmodels.data.dream import pad_with_plasmid
    length = config.sequence_length or model.sequence_length
    if length is None:
      raise ValueError("the model has no fixed input length to pad to: set sequence_length")
    ref_sequences = pad_with_plasmid(ref_sequences, plasmid, length)
    alt_sequences = pad_with_plasmid(alt_sequences, plasmid, length)
  lengths = sorted({len(s) for s in list(ref_sequences) + list(alt_sequences)})
  if len(lengths) != 1:
    raise SequenceError(f"ref and alt sequences must share one length, got lengths {lengths} "
                        f"(pad them, e.g. with the DREAM plasmid: --plasmid plasmid.json)")
  # A model trained at one length (DREAM: 150 nt after plasmid padding) scores pairs at that
  # length, even when its layers would take others; `sequence_length` overrides it.
  expected = config.sequence_length or model.sequence_length
  if expected is not None and lengths[0] != expected:
    raise SequenceError(f"{model.name} expects {expected}-nt inputs, the pairs have {lengths[0]} "
                        f"nt: pad them (DREAM: --plasmid plasmid.json) or set sequence_length")
  model.check_length(lengths[0])
  ref = np.stack([allele_indices(s) for s in ref_sequences])
  alt = np.stack([allele_indices(s) for s in alt_sequences])
  config = config.replace(shifts=(0,))
  heads = scored_heads(model, runner.predict(model, one_hot_indices(ref[:1])), config)
  out: dict[str, dict[str, list]] = {h: {s: [] for s in stats} for h, stats in heads.items()}
  for start in range(0, len(ref), config.batch_size):
    pair = np.concatenate([ref[start:start + config.batch_size],
                           alt[start:start + config.batch_size]])[:, None]
    pred = averaged_predictions(model, runner, pair, config, list(heads))
    n = len(pair) // 2
    scores = _score(model, heads, {h: v[:n] for h, v in pred.items()},
                    {h: v[n:] for h, v in pred.items()}, config)
    for h, stats in scores.items():
      for s, values in stats.items():
        out[h][s].append(values)
  return {h: {s: np.concatenate(v) for s, v in stats.items()} for h, stats in out.items()}


# --- gene TSSs and PCA ------------------------------------------------------------------------

def read_tss_bed(path: str) -> list[tuple[str, int, str]]:
  """(chrom, 0-based TSS, name) from a BED (>= 3 columns; strand in column 6: '-' genes start
  at end - 1)."""
  genes = read_bed(path)
  names = [n if n != "." else f"{c}:{s}" for c, s, n in zip(genes.chrom, genes.start,
                                                           genes.extra[:, 0])]
  tss = np.where(genes.is_minus, genes.end - 1, genes.start)
  return [(str(c), int(t), str(n)) for c, t, n in zip(genes.chrom, tss, names)]


def pca_summary(scores: np.ndarray, num_components: int = 20) -> dict[str, np.ndarray]:
  """Standardised per-track scores [N, T] projected on their first principal components.

  Returns {"projection" [N, k], "components" [k, T], "mean" [T], "scale" [T],
  "explained_variance_ratio" [k]} with k = min(num_components, N, T).
  """
  scores = np.asarray(scores, np.float64)
  mean = scores.mean(axis=0)
  scale = scores.std(axis=0)
  scale[scale == 0] = 1.0
  z = (scores - mean) / scale
  _, singular, vt = np.linalg.svd(z, full_matrices=False)
  k = min(num_components, *z.shape)
  variance = singular**2
  return {"projection": z @ vt[:k].T, "components": vt[:k], "mean": mean, "scale": scale,
          "explained_variance_ratio": variance[:k] / max(variance.sum(), 1e-300)}


# --- writers ----------------------------------------------------------------------------------

class _ScoreFile:
  """A score output written to a unique temporary file beside `path` (concurrent runs never
  share one): `close()` renames it into place, `abort()` deletes it."""

  path: str
  tmp: str
  file: Any

  def close(self) -> None:
    self.file.close()
    apply_default_permissions(self.tmp)
    os.replace(self.tmp, self.path)

  def abort(self) -> None:
    self.file.close()
    if os.path.exists(self.tmp):
      os.remove(self.tmp)


class HDF5ScoreWriter(_ScoreFile):
  """Appends ScoredBatch results to an HDF5 file (temporary name, renamed on close).

  Layout: `variants/{id,chrom,pos,ref,alt,gene,anchor}` [N]; `scores/<head>/<statistic>`,
  `ref/<head>`, `alt/<head>` [N, tracks]; optional `pca/<head>/<statistic>/...`.
  """

  def __init__(self, path: str, attrs: Optional[Mapping[str, Any]] = None):
    import h5py
    self.path = path
    self.tmp = temporary_path(path)  # unique: concurrent runs never share a temporary file
    self.file = h5py.File(self.tmp, "w")
    self.count = 0
    for key, value in (attrs or {}).items():
      self.file.attrs[key] = value

  def _append(self, name: str, values: np.ndarray) -> None:
    import h5py
    values = np.asarray(values)
    if name not in self.file:
      dtype = h5py.string_dtype() if values.dtype.kind in "UO" else values.dtype
      self.file.create_dataset(name, shape=(0,) + values.shape[1:], maxshape=(None,) + values.shape[1:],
                               dtype=dtype, chunks=True,
                               compression="gzip" if values.dtype.kind not in "UO" else None)
    data = self.file[name]
    data.resize(self.count + len(values), axis=0)
    data[self.count:] = values.astype(object) if values.dtype.kind == "U" else values

  def write(self, batch: ScoredBatch) -> None:
    v = batch.variants
    columns = {"id": [x.name for x in v], "chrom": [x.chrom for x in v],
               "ref": [x.ref for x in v], "alt": [x.alt for x in v], "gene": batch.genes}
    for key, values in columns.items():
      self._append(f"variants/{key}", np.array(values, dtype=object))
    self._append("variants/pos", np.array([x.pos for x in v], np.int64))
    self._append("variants/anchor", np.array(batch.anchors, np.int64))
    for head, stats in batch.scores.items():
      for stat, values in stats.items():
        self._append(f"scores/{head}/{stat}", values.astype(np.float32))
      self._append(f"ref/{head}", batch.ref[head].astype(np.float32))
      self._append(f"alt/{head}", batch.alt[head].astype(np.float32))
    self.count += len(v)

  def add_pca(self, num_components: int) -> None:
    if self.count < 2 or "scores" not in self.file:
      return
    for head in self.file["scores"]:
      for stat in self.file["scores"][head]:
        summary = pca_summary(self.file[f"scores/{head}/{stat}"][:], num_components)
        for key, value in summary.items():
          self.file.create_dataset(f"pca/{head}/{stat}/{key}", data=value.astype(np.float32))


class TSVScoreWriter(_ScoreFile):
  """One row per scored variant: id, chrom, pos, ref, alt, gene, then one column per
  head/statistic/track ("<head>/<statistic>/<track>")."""

  def __init__(self, path: str, attrs: Optional[Mapping[str, Any]] = None):
    del attrs
    self.path = path
    self.tmp = temporary_path(path)  # unique: concurrent runs never share a temporary file
    self.file = open(self.tmp, "w")
    self.count = 0
    self.header = None

  def write(self, batch: ScoredBatch) -> None:
    columns = [(h, s, t) for h, stats in batch.scores.items() for s, values in stats.items()
               for t in range(values.shape[1])]
    if self.header is None:
      self.header = columns
      self.file.write("\t".join(["id", "chrom", "pos", "ref", "alt", "gene"] +
                                [f"{h}/{s}/{t}" for h, s, t in columns]) + "\n")
    for i, v in enumerate(batch.variants):
      values = [f"{batch.scores[h][s][i, t]:.6g}" for h, s, t in self.header]
      self.file.write("\t".join([v.name, v.chrom, str(v.pos), v.ref, v.alt,
                                 batch.genes[i] or "."] + values) + "\n")
    self.count += len(batch.variants)

  def add_pca(self, num_components: int) -> None:
    raise ValueError("the PCA summary is written to HDF5 outputs only (use a .h5 output)")


def score_vcf(model: AnalysisModel, vcf: str, fasta: str, output: str,
              config: VariantScoringConfig = VariantScoringConfig(), *,
              runner: Optional[BatchRunner] = None, genes_bed: Optional[str] = None,
              pca_components: int = 0, progress: bool = True) -> dict[str, Any]:
  """Scores a VCF against a FASTA into `output` (.h5/.hdf5 or .tsv) with a progress bar.

  Skipped variants (reference mismatches, symbolic alleles, unknown chromosomes, no TSS in
  reach) are listed in `<output>.skipped.tsv`. Returns {"scored", "skipped", "output",
  "skipped_file", "skipped_reasons", "skipped_summary" (counts per kind)}.

  Raises:
    VariantInputError: no variant could be scored (the message counts the reasons, with a
      'chr'-prefix hint for a chromosome naming mismatch); nothing is written then.
  """
  from tqdm import tqdm
  genes = read_tss_bed(genes_bed) if genes_bed else None
  skipped: list[Skipped] = []
  # The VCF is read twice, never held: a first pass finds malformed records before any work
  # and sizes the progress bar (VCF lines, so it has an ETA); scoring then streams it batch by
  # batch, so memory does not grow with the number of variants.
  lines = 0
  for variant in read_vcf(vcf):
    lines = variant.line

  def batches() -> Iterator[ScoredBatch]:
    with Genome(fasta) as genome, tqdm(total=lines, desc="score-variants", unit=" lines",
                                       unit_scale=True, disable=not progress) as bar:
      for batch in score_variants(model, read_vcf(vcf), genome, config, runner=runner,
                                  genes=genes, skipped=skipped):
        yield batch
        bar.update(max(batch.variants[-1].line - bar.n, 0))
      bar.update(max(lines - bar.n, 0))

  return write_scores(output, {"model": model.name, "config": config.to_json(), "vcf": vcf,
                               "fasta": fasta}, batches(), skipped, vcf=vcf,
                      pca_components=pca_components)


def write_scores(output: str, attrs: Mapping[str, Any], batches: Iterable[ScoredBatch],
                 skipped: Sequence[Skipped], *, vcf: str, pca_components: int = 0
                 ) -> dict[str, Any]:
  """Writes scored batches to `output` (.h5/.hdf5 or .tsv, atomically) and the skipped list
  beside it; `skipped` is complete once `batches` is exhausted. Shared by the single-process
  scorer and its Beam pipeline, so both write, refuse and summarise the same way."""
  writer_class = TSVScoreWriter if output.endswith((".tsv", ".txt")) else HDF5ScoreWriter
  writer = writer_class(output, attrs)
  try:
    for batch in batches:
      writer.write(batch)
    if not writer.count:  # nothing to write: no output, and the reason, not an empty file
      raise VariantInputError(f"no variant of {vcf} was scored: all {len(skipped)} were skipped: "
                              f"{summarise_skipped(skipped)}")
    if pca_components:
      writer.add_pca(pca_components)
  except BaseException:
    writer.abort()
    raise
  writer.close()
  skipped_file = write_skipped(output, skipped)
  return {"scored": writer.count, "skipped": len(skipped), "output": output,
          "skipped_file": skipped_file, "skipped_reasons": [s.reason for s in skipped],
          "skipped_summary": summarise_skipped(skipped)}


def write_skipped(output: str, skipped: Sequence[Skipped]) -> str:
  """Lists the variants not scored in `<output>.skipped.tsv` (atomically); returns its path."""
  from tf_seqmodels.config import atomic_write_text
  skipped_file = output + ".skipped.tsv"
  atomic_write_text(skipped_file, "".join(
      ["id\tchrom\tpos\tref\talt\treason\n"] +
      [f"{s.variant.name}\t{s.variant.chrom}\t{s.variant.pos}\t{s.variant.ref}\t{s.variant.alt}\t"
       f"{s.reason}\n" for s in skipped]))
  return skipped_file


def read_sequence_pairs(path: str) -> tuple[list[str], list[str], list[str]]:
  """(ids, ref sequences, alt sequences) from a TSV: id, ref_sequence, alt_sequence (a header
  line naming ref_sequence is skipped)."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"sequence pairs file not found: {path}")
  ids, refs, alts = [], [], []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      fields = line.rstrip("\n").split("\t")
      if not line.strip() or (number == 1 and "ref_sequence" in fields):
        continue
      if len(fields) < 3:
        raise ValueError(f"{path}:{number}: expected id, ref_sequence, alt_sequence columns")
      ids.append(fields[0])
      refs.append(fields[1].upper())
      alts.append(fields[2].upper())
  if not ids:
    raise ValueError(f"{path}: no sequence pairs")
  return ids, refs, alts


def score_pairs_file(model: AnalysisModel, pairs: str, output: str,
                     config: VariantScoringConfig = VariantScoringConfig(), *,
                     runner: Optional[BatchRunner] = None, plasmid: Optional[str] = None) -> int:
  """Scores a pairs TSV (`read_sequence_pairs`) into `output` (.tsv, or HDF5 with `ids` and
  `scores/<head>/<statistic>` [N, tracks]); returns the number of pairs. `plasmid`: pad the
  sequences to the model's length as DREAM does (`score_sequence_pairs`)."""
  from tf_seqmodels.config import atomic_write_text
  ids, refs, alts = read_sequence_pairs(pairs)
  scores = score_sequence_pairs(model, refs, alts, config, runner=runner, plasmid=plasmid)
  if output.endswith((".tsv", ".txt")):
    columns = [(h, s, t) for h, stats in scores.items() for s, v in stats.items()
               for t in range(v.shape[1])]
    lines = ["\t".join(["id"] + [f"{h}/{s}/{t}" for h, s, t in columns])]
    lines += ["\t".join([name] + [f"{scores[h][s][i, t]:.6g}" for h, s, t in columns])
              for i, name in enumerate(ids)]
    atomic_write_text(output, "\n".join(lines) + "\n")
  else:
    import h5py
    with atomic_output(output) as tmp, h5py.File(tmp, "w") as f:
      f.create_dataset("ids", data=np.array(ids, dtype=h5py.string_dtype()))
      for head, stats in scores.items():
        for stat, values in stats.items():
          f.create_dataset(f"scores/{head}/{stat}", data=values.astype(np.float32))
  return len(ids)
