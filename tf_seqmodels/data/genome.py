"""Reference genome (FASTA via pyfaidx) and per-base signal (bigWig via pyBigWig) readers.

These are the package's only FASTA and bigWig readers: training, evaluation, prediction,
variant scoring and contributions all read through them, so every command accepts and refuses
the same files:

  - a genome FASTA (plain or bgzip) is indexed with a `.fai` beside it; an index older than the
    FASTA, or one whose offsets / line lengths / record names do not match it, is rebuilt (or,
    when the folder is read-only, refused naming the file), never used to read wrong bases;
  - plain gzip (not bgzip), a directory, an empty or a non-FASTA file is one clear error;
  - bases: A, C, G, T, N in either case (lowercase = soft-masked, read as upper case); IUPAC
    ambiguity codes (R Y K M S W B D H V) read as N and are counted in a warning; any other
    character is an error naming the file, the record and the 1-based position;
  - unknown chromosome names get a hint when the mismatch is a 'chr' prefix.

Coordinates are 0-based, half-open, like BED.
"""

from __future__ import annotations

import collections
import gzip
import logging
import os
from typing import Iterable, Mapping, Optional, Union

import numpy as np

from tf_seqmodels.data.encoding import reverse_complement_indices  # noqa: F401  (re-exported)
from tf_seqmodels.errors import DataError, require_file

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

IUPAC_AMBIGUITY = "RYKMSWBDHV"
# Byte -> base index: A=0, C=1, G=2, T=3, N=4, IUPAC ambiguity code=5 (read as N), else -1.
_BASE_TABLE = np.full(256, -1, np.int8)
for _i, _base in enumerate("ACGTN"):
  _BASE_TABLE[ord(_base)] = _BASE_TABLE[ord(_base.lower())] = _i
for _base in IUPAC_AMBIGUITY:
  _BASE_TABLE[ord(_base)] = _BASE_TABLE[ord(_base.lower())] = 5


class GenomeError(DataError):
  """A chromosome name, an interval, a FASTA / bigWig file or its content is invalid."""


def name_examples(names: list[str], limit: int = 3) -> str:
  return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def chromosome_hint(missing: Iterable[str], known: Iterable[str], source: str) -> str:
  """'; <source> names chromosomes with(out) 'chr' (...)' when the unknown names differ from
  the known ones by a 'chr' prefix, else ''."""
  missing, known = list(missing), list(known)
  missing_chr = any(m.startswith("chr") for m in missing)
  known_chr = any(k.startswith("chr") for k in known)
  if missing_chr == known_chr:
    return ""
  counterparts = [m[3:] if missing_chr else "chr" + m for m in missing]
  matches = [c for c in counterparts if c in set(known)]
  return (f"; {source} names chromosomes {'without' if missing_chr else 'with'} 'chr' "
          f"({name_examples(matches or known)})")


def check_chromosomes(names: Iterable[str], sizes: Mapping[str, int], source: str) -> None:
  """Raises GenomeError naming the chromosomes absent from `sizes` (with a naming hint)."""
  missing = sorted(set(names) - set(sizes))
  if not missing:
    return
  known = list(sizes)
  hint = chromosome_hint(missing, known, source)
  raise GenomeError(f"chromosome(s) {missing[:10]}{' ...' if len(missing) > 10 else ''} not in "
                    f"{source}{hint or f'; it has {sorted(known)[:10]}'}"
                    f"{' ...' if not hint and len(known) > 10 else ''}")


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
  path = require_file(path, "chromosome sizes file")
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


# --- bases -------------------------------------------------------------------------------------

class AmbiguityCount:
  """Counts IUPAC ambiguity codes read as N (per code, and where the first was) for one
  warning per file."""

  def __init__(self, source: str):
    self.source = source
    self.codes: collections.Counter = collections.Counter()
    self.first: Optional[str] = None

  def add(self, codes: np.ndarray, where: str) -> None:
    if self.first is None:
      self.first = where
    self.codes.update(bytes(codes).decode("ascii").upper())

  def warn(self) -> None:
    if self.codes:
      total = sum(self.codes.values())
      log.warning("%s: IUPAC ambiguity codes read as N: %d in the bases read (%s), first at %s",
                  self.source, total,
                  ", ".join(f"{c} x{n}" for c, n in sorted(self.codes.items())), self.first)
      self.codes.clear()


def base_indices(sequence: Union[str, bytes], source: str, record: str, offset: int = 0,
                 ambiguity: Optional[AmbiguityCount] = None) -> np.ndarray:
  """int8 indices A=0, C=1, G=2, T=3, N=4 of a sequence read from `source` (either case; IUPAC
  ambiguity codes -> 4, counted in `ambiguity`).

  Raises GenomeError for any other character, naming `source`, `record` and the 1-based
  position (`offset` is the 0-based position of the sequence's first base in the record).
  """
  raw = sequence.encode("latin-1", "replace") if isinstance(sequence, str) else sequence
  raw = np.frombuffer(raw, np.uint8)
  idx = _BASE_TABLE[raw]
  bad = np.flatnonzero(idx < 0)
  if bad.size:
    i = int(bad[0])
    char = chr(raw[i]) if isinstance(sequence, bytes) else sequence[i]
    raise GenomeError(f"{source}: invalid character {char!r} in record {record} at position "
                      f"{offset + i + 1:,} ({bad.size} invalid in the bases read); a FASTA may "
                      f"hold A, C, G, T, N (either case) and IUPAC codes {IUPAC_AMBIGUITY} (read "
                      f"as N)")
  codes = np.flatnonzero(idx == 5)
  if codes.size:
    if ambiguity is not None:
      ambiguity.add(raw[codes], f"{record}:{offset + int(codes[0]) + 1:,}")
    idx[codes] = 4
  return idx


def _sniff(path: str, what: str) -> str:
  """'plain' or 'bgzip' for a FASTA file; GenomeError for anything else (gzip, bz2, zip, binary,
  empty, text that does not start with a '>' header)."""
  with open(path, "rb") as f:
    head = f.read(18)
  kind = "plain"
  if head[:2] == b"\x1f\x8b":
    # BGZF: gzip with the FEXTRA flag and a 'BC' subfield (SAM/BAM specification, section 4.1).
    if not (len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC"):
      stem = path[:-3] if path.endswith(".gz") else path + ".unzipped"
      raise GenomeError(f"{path} is gzip-compressed, which cannot be read by position: decompress "
                        f"it (`gunzip {path}`), or recompress it as bgzip (`gunzip {path} && "
                        f"bgzip {stem}`)")
    kind = "bgzip"
  elif head[:3] == b"BZh" or head[:4] == b"PK\x03\x04" or head[:6] == b"\xfd7zXZ\x00":
    raise GenomeError(f"{path} is bzip2/zip/xz-compressed: decompress it, or compress it with "
                      f"bgzip, to use it as a {what}")
  try:
    if kind == "bgzip":
      with gzip.open(path, "rb") as f:
        start = f.read(4096)
    else:
      with open(path, "rb") as f:
        start = f.read(4096)
  except (OSError, EOFError) as e:
    raise GenomeError(f"{path}: cannot read the {what}: {e}") from None
  text = start.lstrip()
  if not text:
    raise GenomeError(f"{path} is empty: a {what} starts with a '>' header line")
  if not text.startswith(b">"):
    if b"\x00" in start or any(b > 127 for b in start[:512]):
      raise GenomeError(f"{path} is not a {what}: it is a binary file (a FASTA starts with a "
                        f"'>' header line)")
    first = text.split(b"\n", 1)[0][:60].decode("ascii", "replace")
    raise GenomeError(f"{path} is not a {what}: its first line is {first!r}, a FASTA starts "
                      f"with a '>' header line")
  return kind


# --- records FASTA (one input sequence per record) ---------------------------------------------

def read_fasta_records(path: PathLike, what: str = "FASTA file") -> tuple[list[str], list[str]]:
  """(names, upper-case sequences) of every record of a FASTA (plain, gzip or bgzip), validated
  as the genome reader does: IUPAC ambiguity codes become N (one counted warning), any other
  non-ACGTN character is a GenomeError naming record and position."""
  path = require_file(path, what)
  kind = _sniff_records(path, what)
  names: list[str] = []
  seqs: list[str] = []
  chunks: list[str] = []
  ambiguity = AmbiguityCount(path)

  def finish() -> None:
    sequence = "".join(chunks)
    if not sequence:
      raise GenomeError(f"{path}: record {names[-1]} has no sequence")
    idx = base_indices(sequence, path, names[-1], 0, ambiguity)
    seqs.append(np.frombuffer(b"ACGTN", np.uint8)[idx].tobytes().decode("ascii"))

  opener = gzip.open if kind == "gzip" else open
  try:
    with opener(path, "rt", encoding="latin-1") as f:
      for number, line in enumerate(f, 1):
        line = line.strip()
        if line.startswith(">"):
          if names:
            finish()
          names.append(line[1:].split()[0] if len(line) > 1 else f"record{len(names)}")
          chunks = []
        elif line:
          if not names:
            raise GenomeError(f"{path}:{number}: sequence data before the first '>' header")
          chunks.append(line)
  except (OSError, EOFError) as e:  # a truncated or corrupt gzip stream
    raise GenomeError(f"{path}: cannot read the {what}: {e}") from None
  if names:
    finish()
  ambiguity.warn()
  return names, seqs


def _sniff_records(path: str, what: str) -> str:
  with open(path, "rb") as f:
    gzipped = f.read(2) == b"\x1f\x8b"
  if not gzipped:
    return _sniff(path, what)
  try:
    with gzip.open(path, "rb") as f:
      start = f.read(4096).lstrip()
  except (OSError, EOFError) as e:
    raise GenomeError(f"{path}: cannot read the gzip-compressed {what}: {e}") from None
  if not start.startswith(b">"):
    raise GenomeError(f"{path} is not a {what}: the decompressed file does not start with a "
                      f"'>' header line")
  return "gzip"  # read sequentially: plain gzip and bgzip both work here


# --- the FASTA index (.fai) --------------------------------------------------------------------

def _writable(directory: str) -> bool:
  return os.access(directory or ".", os.W_OK)


def _build_index(path: str, bgzip: bool, reason: str) -> None:
  """Writes `path`.fai (and .gzi for bgzip) beside the FASTA; the .fai atomically."""
  import pyfaidx

  index = path + ".fai"
  directory = os.path.dirname(os.path.abspath(path))
  if not _writable(directory):
    raise GenomeError(f"{reason}, and it cannot be (re)built because {directory} is read-only: "
                      f"run `samtools faidx {path}` where it can be written, or copy the FASTA "
                      f"to a writable folder")
  tmp = f"{index}.tmp{os.getpid()}"
  try:
    faidx = pyfaidx.Faidx(path, indexname=tmp, rebuild=True, build_index=True)
    faidx.close()
    os.replace(tmp, index)
  except pyfaidx.FastaIndexingError as e:
    raise GenomeError(f"cannot index the FASTA {path}: {e}") from None
  except ValueError as e:  # pyfaidx: 'Duplicate key "name"'
    raise GenomeError(f"cannot index the FASTA {path}: {_duplicate(e)}") from None
  except OSError as e:
    raise GenomeError(f"{reason}, and rebuilding it failed: {e}") from None
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  if bgzip and os.path.exists(path + ".gzi") and os.path.getmtime(path + ".gzi") < \
      os.path.getmtime(path):
    os.remove(path + ".gzi")  # pyfaidx rebuilds a missing .gzi


def _duplicate(error: Exception) -> str:
  text = str(error)
  if text.startswith("Duplicate key"):
    return f"more than one record is named {text.split(' ', 2)[-1]}"
  return text


class _RawReader:
  """Bytes of the (uncompressed) FASTA by offset, for checking the .fai against the file."""

  def __init__(self, path: str, faidx, bgzip: bool):
    self._faidx = faidx if bgzip else None
    self._file = open(path, "rb") if not bgzip else None
    self._starts = [b.ustart for b in faidx.gzi_index] if bgzip else []

  def read(self, offset: int, size: int) -> bytes:
    offset = max(offset, 0)
    if self._file is not None:
      self._file.seek(offset)
      return self._file.read(size)
    import bisect
    from Bio.bgzf import make_virtual_offset
    block = self._faidx.gzi_index[max(bisect.bisect_right(self._starts, offset) - 1, 0)]
    self._faidx.file.seek(make_virtual_offset(block.cstart, offset - block.ustart))
    return self._faidx.file.read(size)

  def close(self) -> None:
    if self._file is not None:
      self._file.close()


def _index_mismatch(path: str, faidx, bgzip: bool) -> Optional[str]:
  """Why `path`.fai does not describe `path` (header, line layout or end of a record differ),
  or None. Reads a few bytes around each record's start and end, not the whole file."""
  reader = _RawReader(path, faidx, bgzip)
  newline = (b"\n", b"\r\n")
  try:
    last_end = 0
    for name, rec in faidx.index.items():
      length, offset, bases, width = rec.rlen, rec.offset, rec.lenc, rec.lenb
      head = reader.read(offset - 4096, min(offset, 4096))
      lines = head[:-1].rsplit(b"\n", 1)
      header = lines[-1].rstrip(b"\r")
      seen = len(lines) == 2 or offset <= 4096  # else: a header longer than what was read
      if not head.endswith(b"\n") or (seen and (not header.startswith(b">") or
                                               header[1:].split()[:1] != [name.encode()])):
        return f"record {name} does not start at byte {offset}"
      if not length:
        last_end = max(last_end, offset)
        continue
      ending = width - bases
      if bases <= 0 or ending not in (1, 2):
        return f"record {name} has an invalid line layout ({bases} bases in {width} bytes)"
      first = reader.read(offset, min(bases, length) + ending)
      if any(c in first[:min(bases, length)] for c in b"\r\n>") or \
          (length > bases and first[bases:] != newline[ending - 1]):
        return f"the lines of record {name} are not {bases} bases long"
      full = (length - 1) // bases
      tail_start = offset + full * width
      tail_length = length - full * bases
      tail = reader.read(tail_start, tail_length + 1)
      if len(tail) < tail_length or any(c in tail[:tail_length] for c in b"\r\n>") or \
          tail[tail_length:tail_length + 1] not in (b"", b"\n", b"\r"):
        return f"record {name} is not {length} bases long"
      last_end = max(last_end, tail_start + tail_length)
    if reader.read(last_end, 4096).strip():
      return "the FASTA holds records the index does not list"
  finally:
    reader.close()
  return None


def _open_indexed(path: str, bgzip: bool):
  """pyfaidx.Fasta of `path` with an index checked to match it (rebuilt otherwise)."""
  import pyfaidx

  index = path + ".fai"
  if not os.path.exists(index):
    _build_index(path, bgzip, f"the FASTA {path} has no index {index}")
  elif os.path.getmtime(index) < os.path.getmtime(path):
    log.warning("%s is older than %s: rebuilding it", index, path)
    _build_index(path, bgzip, f"the index {index} is older than the FASTA {path}")
  for attempt in range(2):
    try:
      fasta = pyfaidx.Fasta(path, as_raw=True, sequence_always_upper=True, rebuild=False)
    except pyfaidx.FastaIndexingError as e:
      raise GenomeError(f"cannot index the FASTA {path}: {e}") from None
    except (ValueError, IndexError) as e:  # duplicate names, a malformed .fai line
      if attempt or "Duplicate" in str(e):
        raise GenomeError(f"cannot read the FASTA {path} with its index {index}: "
                          f"{_duplicate(e)}") from None
      mismatch = f"the index is malformed ({e})"
    except OSError as e:
      raise GenomeError(f"cannot open the FASTA {path}: {e}") from None
    else:
      mismatch = _index_mismatch(path, fasta.faidx, bgzip)
      if mismatch is None:
        return fasta
      fasta.close()
      if attempt:
        raise GenomeError(f"cannot read the FASTA {path}: {mismatch} even after re-indexing")
    log.warning("%s does not match %s (%s): rebuilding it", index, path, mismatch)
    _build_index(path, bgzip, f"the index {index} does not match the FASTA {path} ({mismatch})")
  raise AssertionError("unreachable")


# --- readers -----------------------------------------------------------------------------------

class Genome:
  """FASTA reader: `fetch(chrom, start, end)` -> upper-case string, with bounds checks and
  base validation (see the module docstring)."""

  def __init__(self, fasta_path: PathLike):
    self.path = require_file(fasta_path, "genome FASTA")
    bgzip = _sniff(self.path, "genome FASTA") == "bgzip"
    self._fasta = _open_indexed(self.path, bgzip)
    self.chrom_sizes = {name: len(record) for name, record in self._fasta.items()}
    self.ambiguity = AmbiguityCount(self.path)
    self._missing: dict[str, str] = {}
    if not self.chrom_sizes:
      self._fasta.close()
      raise GenomeError(f"the FASTA {self.path} has no sequences")

  def _read(self, chrom: str, start: int, end: int) -> tuple[str, np.ndarray]:
    check_interval(chrom, start, end, self.chrom_sizes, self.path)
    sequence = self._fasta[chrom][start:end]
    if len(sequence) != end - start:
      raise GenomeError(f"{self.path}: read {len(sequence)} bases for {chrom}:{start}-{end}; the "
                        f"index {self.path}.fai does not match the FASTA (delete it to rebuild)")
    return sequence, base_indices(sequence, self.path, chrom, start, self.ambiguity)

  def fetch(self, chrom: str, start: int, end: int) -> str:
    """Upper-case bases of [start, end) (IUPAC codes kept as they are, counted)."""
    return self._read(chrom, start, end)[0]

  def fetch_indices(self, chrom: str, start: int, end: int) -> np.ndarray:
    """int8 base indices A=0, C=1, G=2, T=3 of the interval; N and IUPAC ambiguity codes = 4,
    i.e. an all-zero one-hot row as in the reference."""
    return self._read(chrom, start, end)[1]

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

  def missing_chromosome(self, chrom: str) -> str:
    """'chromosome X not in the FASTA' plus the 'chr'-prefix hint (cached per name)."""
    if chrom not in self._missing:
      hint = chromosome_hint([chrom], list(self.chrom_sizes), "the FASTA")
      self._missing[chrom] = f"chromosome {chrom} not in the FASTA{hint}"
    return self._missing[chrom]

  def close(self) -> None:
    self.ambiguity.warn()
    self._fasta.close()

  def __enter__(self) -> "Genome":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


_BIGWIG_MAGIC = (b"\x26\xfc\x8f\x88", b"\x88\x8f\xfc\x26")
_BIGBED_MAGIC = (b"\xeb\xf2\x89\x87", b"\x87\x89\xf2\xeb")


class BigWigSignal:
  """bigWig reader: `values(chrom, start, end)` -> float32 per base, missing data = 0."""

  def __init__(self, path: PathLike):
    import pyBigWig

    self.path = require_file(path, "bigWig")
    with open(self.path, "rb") as f:
      magic = f.read(4)
    if magic not in _BIGWIG_MAGIC:
      if magic in _BIGBED_MAGIC:
        kind = "a bigBed file"
      elif not magic:
        kind = "empty"
      elif all(32 <= b < 127 or b in (9, 10, 13) for b in magic):
        kind = "a text file (for a bedGraph: convert it with bedGraphToBigWig)"
      else:
        kind = "in another binary format"
      raise GenomeError(f"{self.path} is not a bigWig file: it is {kind}")
    try:
      self._bw = pyBigWig.open(self.path)
    except RuntimeError as e:
      raise GenomeError(f"{self.path}: cannot read the bigWig ({e})") from None
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
