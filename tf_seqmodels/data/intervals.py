"""Genomic intervals (BED, narrowPeak), chromosome folds, and the split datasets every data
source hands to the trainer.

Coordinates are 0-based, half-open, as in BED. A set of intervals is a `Regions` object:
parallel arrays of chromosome, start, end and summit offset (the centre that input windows
are built around), plus columns 4-9 of BED6 / narrowPeak kept verbatim (`strand` is column 6).

    regions = read_bed("peaks.narrowPeak")          # BED3, BED6 or narrowPeak (summit col 10)
    fold = read_fold("fold.json")                   # {"train": [...], "valid": [...], "test": [...]}
    parts = split_regions(regions, fold)            # {"train": Regions, "valid": ..., "test": ...}
    windows = tile_regions(chrom_sizes, 4096, stride=2048, chroms=fold.train)

Every data source of the package (tracks from FASTA + bigWig, Basenji TFRecords, DREAM /
DeepSTARR / lentiMPRA tables, ChromBPNet peaks and non-peaks) returns its datasets as
`DataSplits`: `train` / `valid` / `test` tf.data.Datasets of `(inputs [B, L, C], {target:
tensor})`, the element structure `training.fit` and `training.evaluate` consume.

Errors (all raised before any TensorFlow work):
  FileNotFoundError   a file does not exist
  IntervalError       (a GenomeError, a ValueError) a malformed line or interval, an unknown
                      chromosome (with a 'chr'-prefix hint), an interval off the chromosome end
                      or a summit outside its interval: the message names file:line
  ValueError          an empty set of intervals
  ConfigError         fold JSON naming a chromosome twice
"""

from __future__ import annotations

import dataclasses
import gzip
import inspect
import logging
import os
from typing import Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from tf_seqmodels.config import Config, ConfigError, atomic_write_text
from tf_seqmodels.data.genome import (GenomeError, check_chromosomes, chromosome_hint,
                                      name_examples)
from tf_seqmodels.errors import require_file

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
SPLITS = ("train", "valid", "test")
_EMPTY_EXTRA = (".", "0", ".", "-1", "-1", "-1")


# --- regions -----------------------------------------------------------------------------------

@dataclasses.dataclass
class Regions:
  """A set of intervals: arrays of equal length N.

  `centre` = start + summit is where input and target windows are centred. `extra` keeps
  columns 4-9 (name, score, strand, signalValue, pValue, qValue) verbatim so regions can be
  written back; `strand` reads column 6.
  """

  chrom: np.ndarray  # [N] str
  start: np.ndarray  # [N] int64
  end: np.ndarray  # [N] int64
  summit: np.ndarray  # [N] int64, offset from start
  extra: np.ndarray  # [N, 6] str
  line: Optional[np.ndarray] = None  # [N] int64 line numbers in `source` (read from a file)
  source: Optional[str] = None  # the file the regions were read from

  def __post_init__(self):
    self.chrom = np.asarray(self.chrom, dtype=object)
    self.start = np.asarray(self.start, np.int64)
    self.end = np.asarray(self.end, np.int64)
    self.summit = np.asarray(self.summit, np.int64)
    self.extra = np.asarray(self.extra, dtype=object).reshape(len(self.chrom), 6)
    if self.line is not None:
      self.line = np.asarray(self.line, np.int64)

  def where(self, i: int) -> str:
    """'file:line: ' of region `i` when the regions were read from a file, else ''."""
    return f"{self.source}:{self.line[i]}: " if self.line is not None else ""

  @classmethod
  def from_centres(cls, chrom: Sequence[str], centre: Sequence[int], width: int = 1) -> "Regions":
    """Regions of `width` around each centre (summit = width // 2)."""
    centre = np.asarray(centre, np.int64)
    start = centre - width // 2
    extra = np.array([_EMPTY_EXTRA] * len(centre), dtype=object).reshape(-1, 6)
    return cls(np.asarray(chrom, object), start, start + width, centre - start, extra)

  @classmethod
  def from_intervals(cls, chrom: Sequence[str], start: Sequence[int], end: Sequence[int],
                     strand: Optional[Sequence[str]] = None) -> "Regions":
    """Intervals with their midpoints as summits and an optional strand ('+', '-' or '.')."""
    start, end = np.asarray(start, np.int64), np.asarray(end, np.int64)
    extra = np.array([_EMPTY_EXTRA] * len(start), dtype=object).reshape(-1, 6)
    if strand is not None:
      extra[:, 2] = np.asarray(strand, dtype=object)
    return cls(np.asarray(chrom, object), start, end, (end - start) // 2, extra)

  def __len__(self) -> int:
    return len(self.chrom)

  @property
  def centre(self) -> np.ndarray:
    return self.start + self.summit

  @property
  def strand(self) -> np.ndarray:
    """[N] str: '+', '-' or '.' (unstranded) from column 6."""
    return self.extra[:, 2]

  @property
  def is_minus(self) -> np.ndarray:
    """[N] bool: the interval is on the minus strand (its sequence is read reverse-complemented)."""
    return self.strand.astype(str) == "-"

  def subset(self, index) -> "Regions":
    return Regions(self.chrom[index], self.start[index], self.end[index], self.summit[index],
                   self.extra[index], None if self.line is None else self.line[index], self.source)

  def on_chromosomes(self, chroms: Iterable[str]) -> "Regions":
    return self.subset(np.isin(self.chrom.astype(str), np.asarray(list(chroms), dtype=str)))

  def resized(self, width: int) -> "Regions":
    """Windows of `width` centred on each region's centre (summit = width // 2), strand kept."""
    start, end = window_bounds(self.centre, width)
    return Regions(self.chrom, start, end, np.full(len(self), width // 2), self.extra, self.line,
                   self.source)

  @staticmethod
  def concatenate(parts: Sequence["Regions"]) -> "Regions":
    one_file = len({p.source for p in parts}) == 1 and all(p.line is not None for p in parts)
    return Regions(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                     ("chrom", "start", "end", "summit", "extra")),
                   np.concatenate([p.line for p in parts]) if one_file else None,
                   parts[0].source if one_file else None)


def window_bounds(centre: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
  """[start, end) of `width` positions around `centre` (start = centre - width // 2)."""
  start = np.asarray(centre, np.int64) - width // 2
  return start, start + width


class IntervalError(GenomeError):
  """A BED / narrowPeak line is malformed or its interval is not on the genome (the message
  names file and line)."""


def _open_text(path: str):
  with open(path, "rb") as f:
    gzipped = f.read(2) == b"\x1f\x8b"  # gzip or bgzip, whatever the name
  # latin-1 never fails to decode: a binary file given by mistake fails on its columns instead.
  return gzip.open(path, "rt", encoding="latin-1") if gzipped else open(path, encoding="latin-1")


def _read_intervals(path: PathLike, what: str, narrowpeak: bool,
                    chrom_sizes: Optional[Mapping[str, int]], genome: str) -> Regions:
  """The one BED / narrowPeak reader behind `read_bed` and `read_narrowpeak` (see there)."""
  path = require_file(path, what)
  chrom, start, end, summit, extra, lines = [], [], [], [], [], []
  unknown: dict[str, int] = {}  # chromosome -> first line
  try:
    with _open_text(path) as f:
      for number, line in enumerate(f, 1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
          continue
        fields = line.rstrip("\r\n").split("\t") if "\t" in line else line.split()
        where = f"{path}:{number}:"
        if narrowpeak and len(fields) < 10:
          raise IntervalError(f"{where} expected 10 tab-separated narrowPeak columns (summit "
                              f"offset in column 10), got {len(fields)}")
        if len(fields) < 3:
          raise IntervalError(f"{where} expected at least 3 columns (chrom, start, end), got "
                              f"{len(fields)}: {line.strip()[:80]!r}")
        try:
          s, e = int(fields[1]), int(fields[2])
        except ValueError:
          raise IntervalError(f"{where} start and end (columns 2, 3) must be integers, got "
                              f"{fields[1]!r}, {fields[2]!r}") from None
        try:
          m = int(fields[9]) if len(fields) >= 10 else -1
        except ValueError:
          raise IntervalError(f"{where} the narrowPeak summit (column 10) must be an integer, "
                              f"got {fields[9]!r}") from None
        name = f"{fields[0]}:{s}-{e}"
        if s < 0:
          raise IntervalError(f"{where} invalid interval {name}: negative start")
        if e <= s:
          raise IntervalError(f"{where} invalid interval {name}: "
                              f"{'empty' if e == s else 'end before start'} (need 0 <= start "
                              f"< end)")
        if len(fields) >= 6 and fields[5] not in ("+", "-", "."):
          raise IntervalError(f"{where} strand (column 6) must be '+', '-' or '.', got "
                              f"{fields[5]!r}")
        if m < -1 or m >= e - s:  # -1: no summit (narrowPeak convention), use the midpoint
          raise IntervalError(f"{where} summit offset {m} (column 10) is outside the {e - s}-bp "
                              f"interval {name}")
        if chrom_sizes is not None:
          if fields[0] not in chrom_sizes:
            unknown.setdefault(fields[0], number)
          elif e > chrom_sizes[fields[0]]:
            raise IntervalError(f"{where} interval {name} ends past the end of {fields[0]} "
                                f"({chrom_sizes[fields[0]]:,} bp in {genome})")
        row = list(_EMPTY_EXTRA)
        row[:min(6, len(fields) - 3)] = fields[3:9]
        chrom.append(fields[0])
        start.append(s)
        end.append(e)
        summit.append(m if m >= 0 else (e - s) // 2)
        extra.append(row)
        lines.append(number)
  except (OSError, EOFError) as e:  # a corrupt gzip stream
    raise IntervalError(f"{path}: cannot read the {what}: {e}") from None
  if unknown:
    names = sorted(unknown, key=unknown.get)
    hint = chromosome_hint(names, list(chrom_sizes), genome)
    more = f" (and {len(names) - 1} more unknown: {', '.join(names[1:6])}" \
           f"{', ...' if len(names) > 6 else ''})" if len(names) > 1 else ""
    raise IntervalError(f"{path}:{unknown[names[0]]}: chromosome {names[0]} not in {genome}{more}"
                        f"{hint or f'; it has {name_examples(list(chrom_sizes), 5)}'}")
  if not chrom and not narrowpeak:
    raise IntervalError(f"{path}: no intervals (the file is empty or only has comment lines)")
  return Regions(np.array(chrom, object), np.array(start, np.int64), np.array(end, np.int64),
                 np.array(summit, np.int64), np.array(extra, dtype=object).reshape(-1, 6),
                 np.array(lines, np.int64), path)


def read_narrowpeak(path: PathLike, chrom_sizes: Optional[Mapping[str, int]] = None,
                    genome: str = "the genome") -> Regions:
  """Reads a 10-column narrowPeak (BED6+4) file; column 10 is the summit offset (-1: none,
  the midpoint is used). Validation as `read_bed`; a file without peaks gives no regions."""
  return _read_intervals(path, "regions file", True, chrom_sizes, genome)


def read_bed(path: PathLike, chrom_sizes: Optional[Mapping[str, int]] = None,
             genome: str = "the genome") -> Regions:
  """Reads BED3, BED6 (strand in column 6) or narrowPeak (summit offset in column 10).

  Columns are tab-separated (or whitespace-separated when a line has no tab); `#`, `track`
  and `browser` lines are skipped; gzip / bgzip files are read transparently. The summit is
  column 10 when present and >= 0 (narrowPeak writes -1 for "no summit"), otherwise the
  midpoint. The regions remember their file and line numbers, so later checks
  (`check_regions`) name them too.

  Args:
    chrom_sizes: when given (e.g. `Genome.chrom_sizes`), every interval must lie on a
      chromosome of it; `genome` names it in messages.

  Raises:
    FileNotFoundError: no such file.
    IntervalError (a ValueError), naming file:line: a malformed line, a negative start, an
      empty or inverted interval, a strand other than + - ., a summit outside its interval,
      an unknown chromosome (with a 'chr'-prefix hint) or an interval past the chromosome
      end; or a file without intervals.
  """
  return _read_intervals(path, "BED file", False, chrom_sizes, genome)


def write_narrowpeak(path: PathLike, regions: Regions) -> None:
  """Writes 10-column narrowPeak lines (atomically)."""
  lines = ["\t".join([str(regions.chrom[i]), str(regions.start[i]), str(regions.end[i]),
                      *map(str, regions.extra[i]), str(regions.summit[i])]) + "\n"
           for i in range(len(regions))]
  atomic_write_text(os.fspath(path), "".join(lines))


def write_bed(path: PathLike, regions: Regions, labels: Optional[Sequence[str]] = None) -> None:
  """Writes BED6 lines (chrom, start, end, name, score, strand), or BED3 + a label column
  (e.g. the split, as Basenji's `sequences.bed`) when `labels` is given; atomically."""
  if labels is not None and len(labels) != len(regions):
    raise ValueError(f"{len(labels)} labels for {len(regions)} regions")
  lines = []
  for i in range(len(regions)):
    head = f"{regions.chrom[i]}\t{regions.start[i]}\t{regions.end[i]}"
    tail = labels[i] if labels is not None else "\t".join(map(str, regions.extra[i, :3]))
    lines.append(f"{head}\t{tail}\n")
  atomic_write_text(os.fspath(path), "".join(lines))


def check_regions(regions: Regions, chrom_sizes: Mapping[str, int], source: str) -> None:
  """Raises GenomeError unless every region's chromosome is in `chrom_sizes` and the region
  lies on it (0 <= start < end <= size); the message names the first offender (with its
  file:line when the regions were read from a file)."""
  if not len(regions):
    raise ValueError("no intervals to check (the region set is empty)")
  missing = set(regions.chrom) - set(chrom_sizes)
  if missing:
    first = int(np.flatnonzero(np.isin(regions.chrom.astype(str), list(missing)))[0])
    try:
      check_chromosomes(missing, chrom_sizes, source)
    except GenomeError as e:
      raise IntervalError(f"{regions.where(first)}{e}") from None
  sizes = np.array([chrom_sizes[c] for c in regions.chrom], np.int64)
  bad = np.flatnonzero((regions.start < 0) | (regions.end > sizes) | (regions.start >= regions.end))
  if bad.size:
    i = int(bad[0])
    name = f"{regions.chrom[i]}:{regions.start[i]}-{regions.end[i]}"
    problem = ("starts before 0" if regions.start[i] < 0 else "is empty or inverted"
               if regions.start[i] >= regions.end[i] else
               f"is off the end of {regions.chrom[i]} (length {sizes[i]})")
    raise IntervalError(f"{regions.where(i)}interval {name} {problem} in {source}"
                        f"{f'; {bad.size} such intervals in total' if bad.size > 1 else ''}")


def tile_regions(chrom_sizes: Mapping[str, int], width: int, stride: Optional[int] = None,
                 chroms: Optional[Iterable[str]] = None) -> Regions:
  """Windows of `width` every `stride` bp (default: width) along each chromosome, the last
  one ending at most at the chromosome end (Basenji-style `sequences.bed` for whole genomes).

  Chromosomes shorter than `width` give no window.
  """
  if width <= 0 or (stride is not None and stride <= 0):
    raise ValueError(f"width and stride must be positive, got {width}, {stride}")
  stride = stride or width
  names = list(chrom_sizes) if chroms is None else list(chroms)
  check_chromosomes(names, chrom_sizes, "the chromosome sizes")
  chrom, start = [], []
  for name in names:
    starts = np.arange(0, chrom_sizes[name] - width + 1, stride, dtype=np.int64)
    chrom.extend([name] * len(starts))
    start.append(starts)
  start = np.concatenate(start) if start else np.zeros(0, np.int64)
  return Regions.from_intervals(np.array(chrom, object), start, start + width)


# --- folds -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Fold(Config):
  """Chromosome split, as the reference's fold JSON (`chrombpnet prep splits`)."""

  train: tuple[str, ...] = ()
  valid: tuple[str, ...] = ()
  test: tuple[str, ...] = ()

  def validate(self) -> None:
    seen: dict[str, str] = {}
    for split in SPLITS:
      for chrom in getattr(self, split):
        if chrom in seen:
          raise ConfigError(f"Fold: chromosome {chrom!r} is in both {seen[chrom]} and {split}")
        seen[chrom] = split

  @property
  def train_valid(self) -> tuple[str, ...]:
    return self.train + self.valid

  @property
  def chromosomes(self) -> tuple[str, ...]:
    return self.train + self.valid + self.test

  def split_of(self, chrom: str) -> Optional[str]:
    """'train', 'valid', 'test', or None for a chromosome the fold does not name."""
    for split in SPLITS:
      if chrom in getattr(self, split):
        return split
    return None


def read_fold(path: PathLike) -> Fold:
  """Reads a fold JSON with keys train / valid / test (lists of chromosome names)."""
  return Fold.load(path)


def make_fold(chrom_sizes: Mapping[str, int], test: Sequence[str], valid: Sequence[str]) -> Fold:
  """Test and valid chromosomes as given, all other chromosomes of `chrom_sizes` train."""
  check_chromosomes(list(test) + list(valid), chrom_sizes, "the chromosome sizes")
  held_out = set(test) | set(valid)
  return Fold(train=tuple(c for c in chrom_sizes if c not in held_out), valid=tuple(valid),
              test=tuple(test))


def split_regions(regions: Regions, fold: Fold) -> dict[str, Regions]:
  """{split: regions on that split's chromosomes}; regions on chromosomes the fold does not
  name are left out (logged).

  Raises:
    GenomeError: no region lies on any fold chromosome (a naming mismatch, e.g. 'chr1' vs '1').
  """
  named = set(fold.chromosomes)
  used = set(regions.chrom)
  if used and not used & named:
    hint = ""
    if any(c.startswith("chr") for c in used) != any(c.startswith("chr") for c in named):
      hint = " (one uses 'chr' prefixes, the other does not)"
    raise GenomeError(f"no interval lies on a fold chromosome{hint}: intervals use "
                      f"{sorted(used)[:10]}, the fold names {sorted(named)[:10]}")
  left_out = sorted(used - named)
  if left_out:
    log.info("%d intervals on chromosomes outside the fold (%s) are not used",
             int(np.isin(regions.chrom.astype(str), left_out).sum()), left_out[:10])
  return {split: regions.on_chromosomes(getattr(fold, split)) for split in SPLITS}


# --- the datasets every data source produces --------------------------------------------------

@dataclasses.dataclass
class DataSplits:
  """Train / valid / test datasets of one data source, plus what a model needs to match it.

  Each dataset yields `(inputs [B, L, C] float32, {target name: tensor})`; `train` is
  shuffled and augmented and, unless stated otherwise, one pass is one epoch; `valid` and
  `test` are fixed. A split with no examples is None.

  Attributes:
    sequence_length: L.   channels: C.   targets: target names (= the model heads read).
    sizes: examples per split.    info: source-specific extras (e.g. track names, bin size).
  """

  train: Optional["tf.data.Dataset"]  # noqa: F821 (tensorflow imported by the producers)
  valid: Optional["tf.data.Dataset"]  # noqa: F821
  test: Optional["tf.data.Dataset"]  # noqa: F821
  sequence_length: int
  channels: int
  targets: tuple[str, ...]
  sizes: Mapping[str, int] = dataclasses.field(default_factory=dict)
  info: Mapping[str, object] = dataclasses.field(default_factory=dict)

  def __getitem__(self, split: str):
    if split not in SPLITS:
      raise KeyError(f"unknown split {split!r}; splits are {SPLITS}")
    return getattr(self, split)


def table_splits(table, make_dataset: Callable, *, valid_folds: Sequence[int] = (),
                 test_folds: Sequence[int] = (), sequence_length: int, channels: int,
                 targets: Sequence[str], **kwargs) -> DataSplits:
  """DataSplits of sequence tables (DREAM yeast, DeepSTARR, lentiMPRA).

  Args:
    table: either one `data.dream.SequenceTable` with a `fold` column (e.g. a 3-column DREAM
      file or a lentiMPRA table): rows whose fold is in `valid_folds` / `test_folds` form
      those splits, all others train; or a mapping {"train": table, "valid": table, "test":
      table} of tables already split (DeepSTARR's three files); "valid" / "test" may be absent.
    make_dataset: `dream_dataset` / `regression_dataset`, or any function
      `(table, shuffle=..., **kwargs) -> tf.data.Dataset`.
    sequence_length, channels, targets: the element layout `make_dataset` produces.
    kwargs: passed to `make_dataset` (e.g. plasmid, batch_size); evaluation splits get
      `shuffle=False` and, if `make_dataset` takes it, `reverse_complement="none"`.
  """
  if isinstance(table, Mapping):
    unknown = sorted(set(table) - set(SPLITS))
    if unknown:
      raise ValueError(f"unknown split name(s) {unknown}; splits are {SPLITS}")
    parts = {split: table.get(split) for split in SPLITS}
    if parts["train"] is None:
      raise ValueError("no 'train' table given")
  else:
    if table.fold is None:
      raise ValueError("the table has no fold column: pass a table read from a file with folds, "
                       "or a {'train': ..., 'valid': ..., 'test': ...} mapping of tables")
    fold = np.asarray(table.fold)
    masks = {"valid": np.isin(fold, list(valid_folds)), "test": np.isin(fold, list(test_folds))}
    if (masks["valid"] & masks["test"]).any():
      raise ValueError(f"folds {sorted(set(valid_folds) & set(test_folds))} are both valid and test")
    masks["train"] = ~(masks["valid"] | masks["test"])
    parts = {split: table.select(masks[split]) for split in SPLITS}
  datasets, sizes = {}, {}
  for split in SPLITS:
    part = parts[split]
    sizes[split] = 0 if part is None else len(part)
    if not sizes[split]:
      datasets[split] = None
      continue
    extra = dict(kwargs)
    if split != "train":
      extra["shuffle"] = False
      if "reverse_complement" in inspect.signature(make_dataset).parameters:
        extra["reverse_complement"] = "none"
    datasets[split] = make_dataset(part, **extra)
  if not sizes["train"]:
    raise ValueError("no training rows: the train table is empty, or every fold is valid or test")
  return DataSplits(datasets["train"], datasets["valid"], datasets["test"], sequence_length,
                    channels, tuple(targets), sizes)
