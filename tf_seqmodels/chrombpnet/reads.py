"""Reads (fragments, tagAlign, BAM) -> per-base insertion-count bigWig, as `chrombpnet
reads_to_bigwig` does, without bedtools or UCSC tools.

Conventions (kundajelab/chrombpnet `helpers/preprocessing/reads_to_bigwig.py`):

- every read is a tag (chrom, start, end, strand); a fragment (chrom, start, end) is two tags,
  one '+' and one '-' over the same interval; a BAM alignment is its reference span and
  strand (unmapped, secondary and supplementary alignments are skipped);
- a shift (plus, minus) is the shift the input *already carries*; the reads are moved to the
  assay's final convention: ATAC +4/-4, DNase +0/+1, i.e. a '+' tag counts at
  `start + (4 - plus)` and a '-' tag at `end - 1 + (-4 - minus)` (ATAC) — both strands then
  count the centre base of Tn5's 9-bp target duplication. DNase: '+' at `start - plus`, '-'
  at `end + (1 - minus) - 1`;
- the shift is detected from the data when not given: the reference compares the base
  composition around sampled 5' ends with stored enzyme PWMs; here the same 10,000 sampled
  5' ends per strand are compared with *themselves*: Tn5's preference is reverse-complement
  symmetric about the insertion centre, so the centre of symmetry of each strand's
  composition gives its shift (ATAC); DNase I's is not, so the '-' composition mirrored onto
  the '+' one gives the '-' shift relative to '+' (assumed 0, as the reference accepts only
  +0). Detected shifts outside the reference's standard set are an error naming the fix
  (give the shift).

Memory is 4 bytes per read (5' positions kept per chromosome and strand; the shift is
applied after detection), time one pass over the file. Reads on chromosomes absent from
the FASTA are an error (the usual 'chr' prefix mismatch) unless `skip_unknown=True`.
"""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import json
import logging
import os
from typing import Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from tf_seqmodels.config import atomic_output
from tf_seqmodels.data.genome import Genome, GenomeError, check_chromosomes

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
ASSAYS = ("ATAC", "DNASE")
READ_FORMATS = ("fragments", "tagalign", "bam")
# The shift each assay's reads end up with (reference: ATAC +4/-4, DNase +0/+1).
FINAL_SHIFT = {"ATAC": (4, -4), "DNASE": (0, 1)}
# Shifts the reference accepts as detected (anything else is "non-standard").
STANDARD_SHIFTS = {"ATAC": [(0, 0)] + list(itertools.product([3, 4, 5], [-4, -5, -6])),
                   "DNASE": [(0, 0), (0, 1)]}
_FLANK = 20  # bp either side of a 5' end in the composition matrices (reference: 20)
_CHUNK = 1_000_000


@dataclasses.dataclass
class InsertionCounts:
  """5' ends per chromosome and strand (unshifted), plus bookkeeping."""

  plus: dict[str, list[np.ndarray]]
  minus: dict[str, list[np.ndarray]]
  reads: int = 0
  skipped_chroms: dict[str, int] = dataclasses.field(default_factory=dict)

  def strand_positions(self, strand: str) -> dict[str, np.ndarray]:
    source = self.plus if strand == "+" else self.minus
    return {c: np.concatenate(v) if v else np.zeros(0, np.int64) for c, v in source.items()}


def _is_gzip(path: str) -> bool:
  with open(path, "rb") as f:
    return f.read(2) == b"\x1f\x8b"


def _bad_line(path: str, columns: int, strand_column: Optional[int]) -> str:
  """The first malformed line of a text reads file, as 'file:line: why'."""
  opener = gzip.open if _is_gzip(path) else open
  with opener(path, "rt") as f:
    for number, line in enumerate(f, 1):
      if not line.strip() or line.startswith("#"):
        continue
      fields = line.rstrip("\n").split("\t")
      if len(fields) < columns:
        return f"{path}:{number}: expected at least {columns} tab-separated columns, got {len(fields)}"
      try:
        start, end = int(fields[1]), int(fields[2])
      except ValueError:
        return f"{path}:{number}: start and end must be integers, got {fields[1]!r}, {fields[2]!r}"
      if start < 0 or end <= start:
        return f"{path}:{number}: invalid interval {fields[0]}:{start}-{end}"
      if strand_column is not None and fields[strand_column] not in ("+", "-"):
        return f"{path}:{number}: strand (column 6) must be '+' or '-', got {fields[strand_column]!r}"
  return f"{path}: unreadable"


def _text_tags(path: str, fmt: str) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
  """(chrom [n] str, start, end, is_plus) chunks of a fragments / tagAlign file."""
  import pandas as pd
  strand_column = 5 if fmt == "tagalign" else None
  columns = [0, 1, 2] + ([5] if strand_column is not None else [])
  try:
    reader = pd.read_csv(path, sep="\t", header=None, comment="#", usecols=columns,
                         dtype={0: str, 1: np.int64, 2: np.int64, 5: str}, chunksize=_CHUNK,
                         compression="gzip" if _is_gzip(path) else None)
    for chunk in reader:
      chrom = chunk[0].to_numpy(object)
      start, end = chunk[1].to_numpy(np.int64), chunk[2].to_numpy(np.int64)
      if (start < 0).any() or (end <= start).any():
        raise ValueError("bad interval")
      if strand_column is None:  # a fragment = a '+' and a '-' tag over the same interval
        yield chrom, start, end, np.ones(len(chrom), bool)
        yield chrom, start, end, np.zeros(len(chrom), bool)
      else:
        strand = chunk[5].to_numpy(object)
        if not np.isin(strand, ("+", "-")).all():
          raise ValueError("bad strand")
        yield chrom, start, end, strand == "+"
  except (ValueError, pd.errors.ParserError) as e:
    if isinstance(e, pd.errors.EmptyDataError):
      raise ValueError(f"{path}: no reads (the file is empty)") from None
    raise ValueError(_bad_line(path, len(columns) if strand_column is None else 6,
                               strand_column)) from None


def _bam_tags(path: str) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
  import pysam
  bam = pysam.AlignmentFile(path, "rb")
  try:
    order = bam.header.get("HD", {}).get("SO")
    if order != "coordinate":
      raise ValueError(f"{path} is not coordinate-sorted (header SO:{order}): run "
                       f"'samtools sort -o sorted.bam {os.path.basename(path)}' and "
                       f"'samtools index sorted.bam'")
    if not bam.has_index():
      raise ValueError(f"{path} has no index (.bai/.csi): run 'samtools index {path}'")
    for chrom in bam.references:
      starts, ends, plus = [], [], []
      for read in bam.fetch(chrom):
        if read.is_unmapped or read.is_secondary or read.is_supplementary:
          continue
        starts.append(read.reference_start)
        ends.append(read.reference_end)
        plus.append(not read.is_reverse)
        if len(starts) >= _CHUNK:
          yield (np.full(len(starts), chrom, object), np.array(starts), np.array(ends),
                 np.array(plus))
          starts, ends, plus = [], [], []
      if starts:
        yield np.full(len(starts), chrom, object), np.array(starts), np.array(ends), np.array(plus)
  finally:
    bam.close()


def read_insertions(path: PathLike, fmt: str, chrom_sizes: Mapping[str, int],
                    skip_unknown: bool = False, progress: bool = True) -> InsertionCounts:
  """Streams a reads file into unshifted 5' ends ('+': start, '-': end - 1) per strand."""
  from tqdm import tqdm
  path = os.fspath(path)
  if fmt not in READ_FORMATS:
    raise ValueError(f"reads format must be one of {READ_FORMATS}, got {fmt!r}")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{fmt} file not found: {path}")
  counts = InsertionCounts({}, {})
  tags = _bam_tags(path) if fmt == "bam" else _text_tags(path, fmt)
  bar = tqdm(desc=f"reading {os.path.basename(path)}", unit=" tags", unit_scale=True,
             disable=not progress)
  for chrom, start, end, plus in tags:
    bar.update(len(chrom))
    counts.reads += len(chrom)
    names, index = np.unique(chrom, return_inverse=True)
    unknown = [str(n) for n in names if n not in chrom_sizes]
    if unknown and not skip_unknown:
      bar.close()
      check_chromosomes(unknown, chrom_sizes, "the genome FASTA (reads file "
                        f"{os.path.basename(path)}; pass skip_unknown / "
                        f"--skip-unknown-chromosomes to drop such reads)")
    for k, name in enumerate(names):
      rows = index == k
      if name not in chrom_sizes:
        counts.skipped_chroms[name] = counts.skipped_chroms.get(name, 0) + int(rows.sum())
        continue
      p, m = rows & plus, rows & ~plus
      counts.plus.setdefault(name, []).append(start[p].astype(np.int32))
      counts.minus.setdefault(name, []).append((end[m] - 1).astype(np.int32))
  bar.close()
  if counts.reads == 0:
    raise ValueError(f"{path}: no reads")
  if counts.skipped_chroms:
    log.warning("skipped %d reads on chromosomes not in the FASTA: %s",
                sum(counts.skipped_chroms.values()), sorted(counts.skipped_chroms)[:10])
  return counts


# --- shift detection ---------------------------------------------------------------------------

def composition(genome: Genome, positions: Mapping[str, np.ndarray], num_samples: int,
                seed: int = 0) -> np.ndarray:
  """Base frequencies [2 FLANK, 4] at offsets -FLANK..FLANK-1 of up to `num_samples` sampled
  positions (index FLANK = the position itself)."""
  rng = np.random.default_rng(seed)
  chroms = sorted(positions)
  sizes = np.array([len(positions[c]) for c in chroms])
  total = int(sizes.sum())
  if total == 0:
    raise ValueError("no reads to detect the shift from")
  picks = np.sort(rng.choice(total, min(num_samples, total), replace=False))
  bounds = np.concatenate([[0], np.cumsum(sizes)])
  freq = np.zeros((2 * _FLANK, 5))
  for k, chrom in enumerate(chroms):
    local = picks[(picks >= bounds[k]) & (picks < bounds[k + 1])] - bounds[k]
    size = genome.chrom_sizes[chrom]
    for p in positions[chrom][local]:
      if _FLANK <= p < size - _FLANK:
        np.add.at(freq, (np.arange(2 * _FLANK), genome.fetch_indices(chrom, p - _FLANK, p + _FLANK)), 1)
  freq = freq[:, :4]
  if freq.sum() == 0:
    raise ValueError("no sampled read lies far enough from a chromosome end to detect the shift")
  return freq / freq.sum(axis=1, keepdims=True)


def _deviation(pwm: np.ndarray) -> np.ndarray:
  return pwm - pwm.mean(axis=0, keepdims=True)


def symmetry_centre(pwm: np.ndarray, search: int = 8, reach: int = 6) -> int:
  """Offset c (relative to index FLANK) maximising the reverse-complement symmetry
  sum_k sum_b d[c+k, b] d[c-k, comp(b)] of the composition deviations d."""
  d = _deviation(pwm)
  best, best_score = 0, -np.inf
  for c in range(-search, search + 1):
    i = _FLANK + c
    score = sum(float(d[i + k] @ d[i - k][::-1]) for k in range(1, reach + 1))
    if score > best_score:
      best, best_score = c, score
  return best


def mirror_offset(plus_pwm: np.ndarray, minus_pwm: np.ndarray, search: int = 8,
                  reach: int = 10) -> int:
  """d maximising the match of plus[i] with complement(minus[d - i]) (offsets from FLANK)."""
  dp, dm = _deviation(plus_pwm), _deviation(minus_pwm)
  best, best_score = 0, -np.inf
  for d in range(-search, search + 1):
    score = 0.0
    for i in range(-reach, reach + 1):
      j = d - i
      if -_FLANK <= j < _FLANK:
        score += float(dp[_FLANK + i] @ dm[_FLANK + j][::-1])
    if score > best_score:
      best, best_score = d, score
  return best


def detect_shift(genome: Genome, counts: InsertionCounts, assay: str,
                 num_samples: int = 10_000, seed: int = 0) -> tuple[tuple[int, int], dict]:
  """The (plus, minus) shift the reads already carry, and the compositions it came from."""
  assay = assay.upper()
  plus_pwm = composition(genome, counts.strand_positions("+"), num_samples, seed)
  minus_pwm = composition(genome, counts.strand_positions("-"), num_samples, seed + 1)
  if assay == "ATAC":
    # A '+' tag of unshifted reads starts 4 bp left of the insertion centre, a '-' tag ends
    # 4 bp right of it: the symmetry centres are +4 / -4 from the 5' ends.
    shift = (4 - symmetry_centre(plus_pwm), -4 - symmetry_centre(minus_pwm))
  else:
    # Unshifted DNase reads: plus[i] = complement(minus[-i]) (offset 0).
    shift = (0, -mirror_offset(plus_pwm, minus_pwm))
  if shift not in STANDARD_SHIFTS[assay]:
    raise ValueError(f"detected a non-standard {assay} shift {shift[0]:+d}/{shift[1]:+d} of the "
                     f"reads (standard: {STANDARD_SHIFTS[assay]}); check the assay type, or give "
                     f"the shift the file carries (--shift PLUS MINUS)")
  return shift, {"plus_composition": plus_pwm.round(4).tolist(),
                 "minus_composition": minus_pwm.round(4).tolist()}


def shift_deltas(shift: Sequence[int], assay: str) -> tuple[int, int]:
  """What to add to '+' starts and '-' ends of reads carrying `shift` (reference formula)."""
  final = FINAL_SHIFT[assay.upper()]
  return final[0] - int(shift[0]), final[1] - int(shift[1])


# --- bigWig --------------------------------------------------------------------------------------

def write_insertion_bigwig(path: PathLike, counts: InsertionCounts, deltas: Sequence[int],
                           chrom_sizes: Mapping[str, int], progress: bool = True) -> dict:
  """Shifted insertions -> unstranded per-base counts bigWig (atomic). Insertions shifted off
  a chromosome are dropped (counted in the returned stats)."""
  import pyBigWig
  from tqdm import tqdm
  stats = {"insertions": 0, "dropped_off_chromosome": 0}
  with atomic_output(os.fspath(path)) as tmp:
    bw = pyBigWig.open(tmp, "w")
    if bw is None:
      raise OSError(f"cannot write {tmp}")
    try:
      bw.addHeader(list(chrom_sizes.items()), maxZooms=10)
      for chrom in tqdm(list(chrom_sizes), desc="writing bigWig", unit="chrom",
                        disable=not progress):
        parts = [np.concatenate(counts.plus[chrom]).astype(np.int64) + deltas[0]
                 if chrom in counts.plus and counts.plus[chrom] else np.zeros(0, np.int64),
                 np.concatenate(counts.minus[chrom]).astype(np.int64) + deltas[1]
                 if chrom in counts.minus and counts.minus[chrom] else np.zeros(0, np.int64)]
        positions = np.concatenate(parts)
        inside = (positions >= 0) & (positions < chrom_sizes[chrom])
        stats["dropped_off_chromosome"] += int((~inside).sum())
        positions, values = np.unique(positions[inside], return_counts=True)
        stats["insertions"] += int(values.sum())
        for i in range(0, len(positions), _CHUNK):
          bw.addEntries(chrom, positions[i:i + _CHUNK].tolist(),
                        values=values[i:i + _CHUNK].astype(np.float64).tolist(), span=1)
    finally:
      bw.close()
  return stats


def reads_to_bigwig(reads: PathLike, fmt: str, genome_fasta: PathLike, output: PathLike,
                    assay: str = "ATAC", shift: Optional[Sequence[int]] = None,
                    num_samples: int = 10_000, skip_unknown: bool = False,
                    progress: bool = True, seed: int = 0) -> dict:
  """Reads -> `output` insertion bigWig; returns a summary (also what the pipeline records).

  Args:
    reads / fmt: the reads file and its format ("fragments", "tagalign" or "bam").
    genome_fasta: chromosome sizes come from its index (built if absent).
    assay: "ATAC" (final +4/-4) or "DNASE" (final +0/+1).
    shift: the (plus, minus) shift the file already carries; None = detect it.
  """
  assay = assay.upper()
  if assay not in ASSAYS:
    raise ValueError(f"assay must be one of {ASSAYS}, got {assay!r}")
  with Genome(genome_fasta) as genome:
    sizes = dict(genome.chrom_sizes)
    counts = read_insertions(reads, fmt, sizes, skip_unknown, progress)
    compositions = {}
    if shift is None:
      shift, compositions = detect_shift(genome, counts, assay, num_samples, seed)
      log.info("detected %s shift %+d/%+d", assay, *shift)
    deltas = shift_deltas(shift, assay)
  stats = write_insertion_bigwig(output, counts, deltas, sizes, progress)
  return {"reads": os.fspath(reads), "format": fmt, "assay": assay, "tags": counts.reads,
          "input_shift": list(shift), "applied_deltas": list(deltas),
          "final_shift": list(FINAL_SHIFT[assay]), "detected": bool(compositions),
          "skipped_chromosomes": counts.skipped_chroms, **stats, **compositions}


def summary_json(summary: dict) -> str:
  return json.dumps(summary, indent=1)


__all__ = ["ASSAYS", "FINAL_SHIFT", "READ_FORMATS", "STANDARD_SHIFTS", "InsertionCounts",
           "composition", "detect_shift", "mirror_offset", "read_insertions", "reads_to_bigwig",
           "shift_deltas", "symmetry_centre", "write_insertion_bigwig", "GenomeError"]
