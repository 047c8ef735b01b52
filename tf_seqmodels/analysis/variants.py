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

Every head is reduced to one value per track: its positional axis (`position_axes` of the
contract) is summed over all bins or over `window_bins` bins centred on the anchor (the
Enformer gene recipe: the TSS bin and its two neighbours = `window_bins=3`), and a
`tracks` subset may be kept. Predictions are averaged over the reverse complement (outputs
flipped back along the positional axis) and the shifts of the window (the Enformer recipe),
for ref and alt separately; then per statistic:

    diff      alt - ref                                (Enformer's SAD)
    log_fc    log2(alt + c) - log2(ref + c)            (SAR with pseudo-count c = 1)
    abs_diff  |alt - ref|

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
from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.data.encoding import SequenceError
from tf_seqmodels.data.genome import Genome
from tf_seqmodels.data.vcf import Variant, read_vcf

STATISTICS = ("diff", "log_fc", "abs_diff")
_COMPLEMENT_INDEX = np.array([3, 2, 1, 0, 4], np.int8)  # A<->T, C<->G, N
_BASE_INDEX = {b: i for i, b in enumerate("ACGTN")}


@dataclasses.dataclass(frozen=True)
class VariantScoringConfig(Config):
  """How variants are scored.

  Attributes:
    heads: heads to score (empty: all).
    tracks: per head, the track indices (last axis) to keep; absent heads keep all.
    window_bins: positional bins summed around the anchor (None: all bins).
    statistics: subset of STATISTICS.
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
  return np.array([_BASE_INDEX.get(b, 4) for b in allele.upper()], np.int8)


def one_hot_indices(indices: np.ndarray) -> np.ndarray:
  """int8 indices [..., L] (N = 4) -> float32 one-hot [..., L, 4] (N = zeros)."""
  return np.eye(5, dtype=np.float32)[indices][..., :4]


def check_reference(genome: Genome, variant: Variant) -> Optional[str]:
  """Why `variant` cannot be scored against `genome`, or None if it can."""
  if variant.symbolic:
    return f"symbolic or non-ACGTN allele {variant.ref}>{variant.alt}"
  if variant.chrom not in genome.chrom_sizes:
    return f"chromosome {variant.chrom} not in the FASTA"
  end = variant.start + len(variant.ref)
  if end > genome.chrom_sizes[variant.chrom]:
    return f"REF allele ends at {end}, past the end of {variant.chrom}"
  found = genome.fetch(variant.chrom, variant.start, end)
  if found != variant.ref:
    return f"reference mismatch: VCF REF {variant.ref}, FASTA {found}"
  return None


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


def reverse_complement_indices(indices: np.ndarray) -> np.ndarray:
  return _COMPLEMENT_INDEX[indices[..., ::-1]]


# --- reductions and statistics ----------------------------------------------------------------

def reduce_head(values: np.ndarray, position_axis: Optional[int], window_bins: Optional[int],
                tracks: Optional[Sequence[int]]) -> np.ndarray:
  """One head's outputs [B, ...] -> [B, tracks]: positional axis summed (all bins, or
  `window_bins` centred on the middle bin), then the `tracks` subset of the last axis."""
  values = np.asarray(values, np.float64)
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


def statistic(name: str, ref: np.ndarray, alt: np.ndarray, pseudo_count: float = 1.0) -> np.ndarray:
  if name == "diff":
    return alt - ref
  if name == "abs_diff":
    return np.abs(alt - ref)
  if name == "log_fc":
    # Counts-like outputs are non-negative; clip so a log-space head (logcounts) gives a
    # finite number rather than NaN (use `diff` for those: it is already a log fold change).
    return (np.log2(np.maximum(alt, 0) + pseudo_count) - np.log2(np.maximum(ref, 0) + pseudo_count))
  raise ValueError(f"unknown statistic {name!r}; available: {STATISTICS}")


def averaged_predictions(model: AnalysisModel, runner: BatchRunner, windows: np.ndarray,
                         config: VariantScoringConfig, heads: Sequence[str]) -> dict[str, np.ndarray]:
  """Reduced predictions [N, tracks] per head for index windows [N, S, L], averaged over the
  S shifted copies and (if configured) their reverse complements."""
  n, num_shifts, length = windows.shape
  flat = windows.reshape(n * num_shifts, length)
  passes = [(flat, False)]
  if config.reverse_complement:
    passes.append((reverse_complement_indices(flat), True))
  totals: dict[str, np.ndarray] = {}
  for indices, is_reverse in passes:
    outputs = runner.predict(model, one_hot_indices(indices), is_reverse=is_reverse)
    for head in heads:
      if head not in outputs:
        raise ValueError(f"the model has no head {head!r}; heads: {sorted(outputs)}")
      axis = model.position_axis(head, outputs[head])
      values = np.asarray(outputs[head])
      if is_reverse and axis is not None:
        values = np.flip(values, axis=axis)
      reduced = reduce_head(values, axis, config.window_bins, config.tracks.get(head))
      reduced = reduced.reshape(n, num_shifts, -1).mean(axis=1)
      totals[head] = totals.get(head, 0.0) + reduced / len(passes)
  return totals


# --- scoring ----------------------------------------------------------------------------------

@dataclasses.dataclass
class ScoredBatch:
  variants: list[Variant]
  anchors: list[int]
  genes: list[str]
  ref: dict[str, np.ndarray]  # head -> [n, tracks]
  alt: dict[str, np.ndarray]
  scores: dict[str, dict[str, np.ndarray]]  # head -> statistic -> [n, tracks]


@dataclasses.dataclass
class Skipped:
  variant: Variant
  reason: str


def _targets(variants: Iterable[Variant], genome: Genome, genes: Optional[Sequence[tuple]],
             length: int, skipped: list) -> Iterator[tuple[Variant, int, str]]:
  """(variant, anchor, gene) to score; invalid variants go to `skipped`."""
  for variant in variants:
    reason = check_reference(genome, variant)
    if not reason and max(len(variant.ref), len(variant.alt)) > length // 4:
      reason = f"allele longer than a quarter of the {length}-bp window"
    if reason:
      skipped.append(Skipped(variant, reason))
      continue
    if genes is None:
      yield variant, variant.start, ""
      continue
    half = length // 2
    hits = [(name, tss) for chrom, tss, name in genes
            if chrom == variant.chrom and tss - half <= variant.start and
            variant.start + len(variant.ref) <= tss - half + length]
    if not hits:
      skipped.append(Skipped(variant, "no TSS within the model's input window"))
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
  for batch in _batched(_targets(variants, genome, genes, length, skipped), config.batch_size):
    ref = np.stack([np.stack([variant_windows(genome, v, a + s, length)[0] for s in config.shifts])
                    for v, a, _ in batch])
    alt = np.stack([np.stack([variant_windows(genome, v, a + s, length)[1] for s in config.shifts])
                    for v, a, _ in batch])
    if heads is None:
      probe = runner.predict(model, one_hot_indices(ref[:1, 0]))
      heads = list(config.heads) or sorted(probe)
    both = averaged_predictions(model, runner, np.concatenate([ref, alt]), config, heads)
    n = len(batch)
    ref_pred = {h: v[:n] for h, v in both.items()}
    alt_pred = {h: v[n:] for h, v in both.items()}
    scores = {h: {s: statistic(s, ref_pred[h], alt_pred[h], config.pseudo_count)
                  for s in config.statistics} for h in heads}
    yield ScoredBatch([b[0] for b in batch], [b[1] for b in batch], [b[2] for b in batch],
                      ref_pred, alt_pred, scores)


def score_sequence_pairs(model: AnalysisModel, ref_sequences: Sequence[str],
                         alt_sequences: Sequence[str],
                         config: VariantScoringConfig = VariantScoringConfig(), *,
                         runner: Optional[BatchRunner] = None) -> dict[str, dict[str, np.ndarray]]:
  """Scores (ref, alt) sequence pairs of the model's length (e.g. the DREAM challenge's SNV
  pairs): {head: {statistic: [N, tracks]}}. Shifts do not apply (no genome context)."""
  if len(ref_sequences) != len(alt_sequences):
    raise ValueError(f"{len(ref_sequences)} ref but {len(alt_sequences)} alt sequences")
  runner = runner or BatchRunner()
  ref = np.stack([allele_indices(s) for s in ref_sequences])
  alt = np.stack([allele_indices(s) for s in alt_sequences])
  if ref.shape != alt.shape:
    raise SequenceError(f"ref and alt sequences must share one length, got {ref.shape[1]} and "
                        f"{alt.shape[1]}")
  model.check_length(ref.shape[1])
  config = config.replace(shifts=(0,))
  heads = list(config.heads) or sorted(runner.predict(model, one_hot_indices(ref[:1])))
  out: dict[str, dict[str, list]] = {h: {s: [] for s in config.statistics} for h in heads}
  for start in range(0, len(ref), config.batch_size):
    pair = np.concatenate([ref[start:start + config.batch_size],
                           alt[start:start + config.batch_size]])[:, None]
    pred = averaged_predictions(model, runner, pair, config, heads)
    n = len(pair) // 2
    for h in heads:
      for s in config.statistics:
        out[h][s].append(statistic(s, pred[h][:n], pred[h][n:], config.pseudo_count))
  return {h: {s: np.concatenate(v) for s, v in stats.items()} for h, stats in out.items()}


# --- gene TSSs and PCA ------------------------------------------------------------------------

def read_tss_bed(path: str) -> list[tuple[str, int, str]]:
  """(chrom, 0-based TSS, name) from a BED (>= 3 columns; strand in column 6: '-' genes start
  at end - 1)."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"genes BED not found: {path}")
  out = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip() or line.startswith(("#", "track", "browser")):
        continue
      fields = line.rstrip("\n").split("\t")
      try:
        start, end = int(fields[1]), int(fields[2])
      except (IndexError, ValueError):
        raise ValueError(f"{path}:{number}: expected chrom, start, end columns") from None
      strand = fields[5] if len(fields) > 5 else "+"
      name = fields[3] if len(fields) > 3 else f"{fields[0]}:{start}"
      out.append((fields[0], end - 1 if strand == "-" else start, name))
  return out


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

class HDF5ScoreWriter:
  """Appends ScoredBatch results to an HDF5 file (temporary name, renamed on close).

  Layout: `variants/{id,chrom,pos,ref,alt,gene,anchor}` [N]; `scores/<head>/<statistic>`,
  `ref/<head>`, `alt/<head>` [N, tracks]; optional `pca/<head>/<statistic>/...`.
  """

  def __init__(self, path: str, attrs: Optional[Mapping[str, Any]] = None):
    import h5py
    self.path = path
    self.tmp = path + ".tmp"
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

  def close(self) -> None:
    self.file.close()
    os.replace(self.tmp, self.path)

  def abort(self) -> None:
    self.file.close()
    if os.path.exists(self.tmp):
      os.remove(self.tmp)


class TSVScoreWriter:
  """One row per scored variant: id, chrom, pos, ref, alt, gene, then one column per
  head/statistic/track ("<head>/<statistic>/<track>")."""

  def __init__(self, path: str, attrs: Optional[Mapping[str, Any]] = None):
    del attrs
    self.path = path
    self.tmp = path + ".tmp"
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

  def close(self) -> None:
    self.file.close()
    os.replace(self.tmp, self.path)

  def abort(self) -> None:
    self.file.close()
    if os.path.exists(self.tmp):
      os.remove(self.tmp)


def score_vcf(model: AnalysisModel, vcf: str, fasta: str, output: str,
              config: VariantScoringConfig = VariantScoringConfig(), *,
              runner: Optional[BatchRunner] = None, genes_bed: Optional[str] = None,
              pca_components: int = 0, progress: bool = True) -> dict[str, Any]:
  """Scores a VCF against a FASTA into `output` (.h5/.hdf5 or .tsv) with a progress bar.

  Skipped variants (reference mismatches, symbolic alleles, unknown chromosomes, no TSS in
  reach) are listed in `<output>.skipped.tsv`. Returns {"scored", "skipped", "output",
  "skipped_file"}.
  """
  from tqdm import tqdm
  from tf_seqmodels.config import atomic_write_text
  variants = list(read_vcf(vcf))
  genes = read_tss_bed(genes_bed) if genes_bed else None
  writer_class = TSVScoreWriter if output.endswith((".tsv", ".txt")) else HDF5ScoreWriter
  writer = writer_class(output, {"model": model.name, "config": config.to_json(), "vcf": vcf,
                                 "fasta": fasta})
  skipped: list[Skipped] = []
  try:
    with Genome(fasta) as genome, tqdm(total=len(variants), desc="score-variants", unit="variant",
                                       disable=not progress) as bar:
      for batch in score_variants(model, variants, genome, config, runner=runner, genes=genes,
                                  skipped=skipped):
        writer.write(batch)
        # Variants read so far: the last one scored plus everything before it (skipped ones
        # included); in gene mode a variant may fill several rows.
        bar.update(variants.index(batch.variants[-1], max(bar.n - 1, 0)) + 1 - bar.n)
      bar.update(len(variants) - bar.n)
    if pca_components:
      writer.add_pca(pca_components)
  except BaseException:
    writer.abort()
    raise
  writer.close()
  skipped_file = output + ".skipped.tsv"
  atomic_write_text(skipped_file, "".join(
      ["id\tchrom\tpos\tref\talt\treason\n"] +
      [f"{s.variant.name}\t{s.variant.chrom}\t{s.variant.pos}\t{s.variant.ref}\t{s.variant.alt}\t"
       f"{s.reason}\n" for s in skipped]))
  return {"scored": writer.count, "skipped": len(skipped), "output": output,
          "skipped_file": skipped_file, "skipped_reasons": [s.reason for s in skipped]}


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
                     runner: Optional[BatchRunner] = None) -> int:
  """Scores a pairs TSV (`read_sequence_pairs`) into `output` (.tsv, or HDF5 with `ids` and
  `scores/<head>/<statistic>` [N, tracks]); returns the number of pairs."""
  from tf_seqmodels.config import atomic_write_text
  ids, refs, alts = read_sequence_pairs(pairs)
  scores = score_sequence_pairs(model, refs, alts, config, runner=runner)
  if output.endswith((".tsv", ".txt")):
    columns = [(h, s, t) for h, stats in scores.items() for s, v in stats.items()
               for t in range(v.shape[1])]
    lines = ["\t".join(["id"] + [f"{h}/{s}/{t}" for h, s, t in columns])]
    lines += ["\t".join([name] + [f"{scores[h][s][i, t]:.6g}" for h, s, t in columns])
              for i, name in enumerate(ids)]
    atomic_write_text(output, "\n".join(lines) + "\n")
  else:
    import h5py
    with h5py.File(output + ".tmp", "w") as f:
      f.create_dataset("ids", data=np.array(ids, dtype=h5py.string_dtype()))
      for head, stats in scores.items():
        for stat, values in stats.items():
          f.create_dataset(f"scores/{head}/{stat}", data=values.astype(np.float32))
    os.replace(output + ".tmp", output)
  return len(ids)
