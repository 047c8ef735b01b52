"""Reference genome (FASTA via pyfaidx) and per-base signal (bigWig via pyBigWig) readers.

Both check what the genomics tools leave silent: unknown chromosome names (the usual
"chr1" versus "1" mismatch is named in the error), intervals outside the chromosome, and
missing files. Coordinates are 0-based, half-open, like BED.
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping, Optional, Union

import numpy as np

from tf_seqmodels.data.encoding import reverse_complement_indices  # noqa: F401  (re-exported)

PathLike = Union[str, os.PathLike]

_LENIENT_TABLE = np.full(256, 4, np.int8)
for _i, _base in enumerate("ACGT"):
  _LENIENT_TABLE[ord(_base)] = _LENIENT_TABLE[ord(_base.lower())] = _i


class GenomeError(ValueError):
  """A chromosome name or interval does not exist in the genome / track."""


def _require_file(path: PathLike, what: str) -> str:
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{what} not found: {path}")
  return path


def check_chromosomes(names: Iterable[str], sizes: Mapping[str, int], source: str) -> None:
  """Raises GenomeError naming the chromosomes absent from `sizes` (with a naming hint)."""
  missing = sorted(set(names) - set(sizes))
  if not missing:
    return
  known = sorted(sizes)
  hint = ""
  if any(m.startswith("chr") for m in missing) and not any(k.startswith("chr") for k in known):
    hint = " (the regions use 'chr' prefixes, the file does not)"
  elif not any(m.startswith("chr") for m in missing) and any(k.startswith("chr") for k in known):
    hint = " (the file uses 'chr' prefixes, the regions do not)"
  raise GenomeError(f"chromosome(s) {missing[:10]}{' ...' if len(missing) > 10 else ''} not in "
                    f"{source}{hint}; it has {known[:10]}{' ...' if len(known) > 10 else ''}")


def check_interval(chrom: str, start: int, end: int, sizes: Mapping[str, int], source: str) -> None:
  """Raises GenomeError unless 0 <= start < end <= size of `chrom`."""
  if chrom not in sizes:
    check_chromosomes([chrom], sizes, source)
  if start < 0 or end > sizes[chrom] or start >= end:
    raise GenomeError(f"interval {chrom}:{start}-{end} is outside {chrom} (length {sizes[chrom]}) "
                      f"in {source}")


def check_same_assembly(first: Mapping[str, int], second: Mapping[str, int], first_name: str,
                        second_name: str, chroms: Optional[Iterable[str]] = None) -> None:
  """Raises GenomeError if a chromosome (of `chroms`, default: all shared) has different
  lengths in the two sources, or if `chroms` names one missing from either."""
  if chroms is not None:
    chroms = list(chroms)
    check_chromosomes(chroms, first, first_name)
    check_chromosomes(chroms, second, second_name)
  for chrom in (chroms if chroms is not None else set(first) & set(second)):
    if first[chrom] != second[chrom]:
      raise GenomeError(f"{chrom} is {first[chrom]} bp in {first_name} but {second[chrom]} bp in "
                        f"{second_name}: different assemblies?")


def read_chrom_sizes(path: PathLike) -> dict[str, int]:
  """Two-column `chrom<TAB>size` file -> {chrom: size} (file order kept)."""
  path = _require_file(path, "chromosome sizes file")
  sizes: dict[str, int] = {}
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip() or line.startswith("#"):
        continue
      fields = line.split()
      if len(fields) < 2 or not fields[1].isdigit():
        raise GenomeError(f"{path}:{number}: expected 'chrom<TAB>size', got {line.strip()!r}")
      sizes[fields[0]] = int(fields[1])
  return sizes


class Genome:
  """FASTA reader: `fetch(chrom, start, end)` -> upper-case string, with bounds checks."""

  def __init__(self, fasta_path: PathLike):
    import pyfaidx

    self.path = _require_file(fasta_path, "genome FASTA")
    try:
      self._fasta = pyfaidx.Fasta(self.path, as_raw=True, sequence_always_upper=True,
                                  rebuild=False)
    except pyfaidx.FastaIndexingError as e:
      raise GenomeError(f"cannot index the FASTA {self.path}: {e}") from None
    self.chrom_sizes = {name: len(record) for name, record in self._fasta.items()}
    if not self.chrom_sizes:
      self._fasta.close()
      raise GenomeError(f"the FASTA {self.path} has no sequences")

  def fetch(self, chrom: str, start: int, end: int) -> str:
    check_interval(chrom, start, end, self.chrom_sizes, self.path)
    return self._fasta[chrom][start:end]

  def fetch_indices(self, chrom: str, start: int, end: int) -> np.ndarray:
    """int8 base indices A=0, C=1, G=2, T=3 of the interval; N and any other IUPAC code
    (present in some assemblies) = 4, i.e. an all-zero one-hot row as in the reference."""
    raw = np.frombuffer(self.fetch(chrom, start, end).encode("ascii"), np.uint8)
    return _LENIENT_TABLE[raw]

  def fetch_window(self, chrom: str, start: int, end: int, strand: str = "+") -> np.ndarray:
    """int8 base indices [end - start] of a window that may reach past either end of the
    chromosome: the overhang is N (index 4), as Basenji pads. strand '-' gives the reverse
    complement. The chromosome must exist (GenomeError otherwise)."""
    if chrom not in self.chrom_sizes:
      check_chromosomes([chrom], self.chrom_sizes, self.path)
    if end <= start:
      raise GenomeError(f"empty window {chrom}:{start}-{end}")
    out = np.full(end - start, 4, np.int8)
    lo, hi = max(start, 0), min(end, self.chrom_sizes[chrom])
    if lo < hi:
      out[lo - start:hi - start] = self.fetch_indices(chrom, lo, hi)
    return reverse_complement_indices(out) if strand == "-" else out

  def close(self) -> None:
    self._fasta.close()

  def __enter__(self) -> "Genome":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


class BigWigSignal:
  """bigWig reader: `values(chrom, start, end)` -> float32 per base, missing data = 0."""

  def __init__(self, path: PathLike):
    import pyBigWig

    self.path = _require_file(path, "bigWig")
    self._bw = pyBigWig.open(self.path)
    if self._bw is None or not self._bw.isBigWig():
      raise GenomeError(f"{self.path} is not a bigWig file")
    self.chrom_sizes = dict(self._bw.chroms())
    self._numpy = bool(pyBigWig.numpy)  # pyBigWig may be built without numpy support

  def values(self, chrom: str, start: int, end: int) -> np.ndarray:
    check_interval(chrom, start, end, self.chrom_sizes, self.path)
    values = np.asarray(self._bw.values(chrom, start, end, numpy=self._numpy), np.float32)
    return np.nan_to_num(values, nan=0.0)

  def window_values(self, chrom: str, start: int, end: int) -> np.ndarray:
    """float32 per-base values [end - start] of a window that may reach past either end of
    the chromosome (the overhang reads 0, like missing data)."""
    if chrom not in self.chrom_sizes:
      check_chromosomes([chrom], self.chrom_sizes, self.path)
    out = np.zeros(end - start, np.float32)
    lo, hi = max(start, 0), min(end, self.chrom_sizes[chrom])
    if lo < hi:
      out[lo - start:hi - start] = self.values(chrom, lo, hi)
    return out

  def close(self) -> None:
    self._bw.close()

  def __enter__(self) -> "BigWigSignal":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
