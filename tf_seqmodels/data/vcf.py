"""Minimal VCF reader (plain or gzip) for variant scoring: no dependency beyond the stdlib.

    for variant in read_vcf("variants.vcf.gz"):
      variant.chrom, variant.pos (1-based), variant.ref, variant.alt, variant.id

Multi-allelic records give one `Variant` per ALT allele. Symbolic alleles (<DEL>, *, breakends,
a missing ALT '.') cannot be turned into sequences: they are returned with `symbolic=True` and
`unscorable` saying why, so callers count and report them instead of silently dropping them.
A missing file, a directory, a corrupt gzip stream, a malformed record and a VCF without
records are errors (VCFError, a ValueError, naming file and line).
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
from typing import Iterator, Optional, Union

from tf_seqmodels.errors import DataError, require_file

_BASES = re.compile(r"^[ACGTNacgtn]+$")


class VCFError(DataError):
  """A malformed VCF line (file and line number in the message)."""


@dataclasses.dataclass(frozen=True)
class Variant:
  chrom: str
  pos: int  # 1-based position of the first REF base
  id: str
  ref: str
  alt: str
  line: int = 0

  @property
  def start(self) -> int:
    """0-based start of the REF allele."""
    return self.pos - 1

  @property
  def symbolic(self) -> bool:
    return not (_BASES.match(self.ref) and _BASES.match(self.alt))

  @property
  def unscorable(self) -> Optional[str]:
    """'<kind>: <allele>' when the alleles cannot be turned into sequences, else None."""
    alt = self.alt
    if alt == "*":
      return "symbolic allele: '*' (allele missing due to an overlapping deletion)"
    if alt.startswith("<"):
      return f"symbolic allele: {alt}"
    if "[" in alt or "]" in alt or (len(alt) > 1 and (alt.startswith(".") or alt.endswith("."))):
      return f"symbolic allele: breakend {alt}"
    if alt == ".":
      return "symbolic allele: no ALT allele ('.')"
    if self.symbolic:
      return f"non-ACGTN allele: {self.ref}>{alt}"
    return None

  @property
  def is_snv(self) -> bool:
    return len(self.ref) == 1 and len(self.alt) == 1 and not self.symbolic

  @property
  def name(self) -> str:
    return self.id if self.id not in ("", ".") else f"{self.chrom}:{self.pos}:{self.ref}>{self.alt}"


def _open(path: str):
  with open(path, "rb") as f:
    gzipped = f.read(2) == b"\x1f\x8b"  # also bgzip
  # latin-1 never fails to decode: a binary file given by mistake fails on its columns instead.
  return gzip.open(path, "rt", encoding="latin-1") if gzipped else open(path, encoding="latin-1")


def read_vcf(path: Union[str, os.PathLike]) -> Iterator[Variant]:
  """Yields the variants of a VCF (.vcf or .vcf.gz / bgzip), one per ALT allele."""
  path = require_file(path, "VCF")
  try:
    yield from _records(path)
  except (OSError, EOFError) as e:  # a truncated or corrupt gzip stream
    raise VCFError(f"{path}: cannot read the VCF: {e}") from None


def _records(path: str) -> Iterator[Variant]:
  records = 0
  with _open(path) as f:
    for number, line in enumerate(f, 1):
      if line.startswith("#") or not line.strip():
        continue
      fields = line.rstrip("\r\n").split("\t")
      if len(fields) < 5:
        raise VCFError(f"{path}:{number}: a VCF record needs at least 5 tab-separated columns "
                       f"(CHROM POS ID REF ALT), got {len(fields)}")
      chrom, pos, vid, ref, alts = fields[:5]
      try:
        position = int(pos)
      except ValueError:
        raise VCFError(f"{path}:{number}: POS {pos!r} is not an integer") from None
      if position < 1:
        raise VCFError(f"{path}:{number}: POS must be >= 1, got {position}")
      if not ref or ref == ".":
        raise VCFError(f"{path}:{number}: empty REF allele")
      records += 1
      for alt in alts.split(","):
        yield Variant(chrom, position, vid, ref.upper(), alt.upper(), number)
  if not records:
    raise VCFError(f"{path}: no variant records (only header or empty lines)")


def write_vcf(path: Union[str, os.PathLike], variants, compress: bool = False) -> None:
  """Writes `variants` as a minimal VCF 4.2 (tests, examples); atomically."""
  path = os.fspath(path)
  lines = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
  lines += [f"{v.chrom}\t{v.pos}\t{v.id or '.'}\t{v.ref}\t{v.alt}\t.\t.\t." for v in variants]
  text = "\n".join(lines) + "\n"
  tmp = path + ".tmp"
  if compress:
    with gzip.open(tmp, "wt") as f:
      f.write(text)
  else:
    with open(tmp, "w") as f:
      f.write(text)
  os.replace(tmp, path)
