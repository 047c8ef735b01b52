"""Chromoformer inputs: histone-mark signal around TSSs + promoter-interacting pCREs.

    genes = read_gene_table("genes.tsv")                # gene_id chrom tss strand expression
    pcres = read_interactions("loops.bedpe", genes, config)   # or the reference's table
    with BigWigSource(["H3K4me1.bw", ...]) as source:
      data = build_examples(genes, pcres, source, config)    # {"inputs", "targets"}

    # users of the reference implementation: its metadata.csv + per-region .npy files
    genes, pcres = read_reference_metadata("train.csv", config)
    data = build_examples(genes, pcres, ReferenceNpySource("npy_dir"), config)
    rows = predict_reference_layout(model, "meta.csv", "npy_dir")   # per-gene predictions

Per gene and bin size b (the reference's `ChromoformerDataset`):

- the promoter window is `window_size` bp centred on the TSS; per mark the signal is averaged
  over b-bp bins, then log(x + 1); minus-strand promoters are flipped (the TSS stays at bin
  L // 2, upstream comes first);
- each pCRE region (<= window_size bp) is binned the same way (never flipped) and centre-padded
  to L = window_size // b bins with left padding ceil((L - n) / 2); masks mark real bins;
- pCREs: interactions with score > min_score whose region is at most window_size bp, the
  `max_pcres` highest-scoring first (the reference's metadata.csv: its neighbors as listed);
  empty slots are zeros with pcre_present = 0;
- interaction_freq[0, i + 1] = score of pCRE i (row 0 only, as the reference).

Targets: "label" (1 if expression >= the median of the table, unless given) and "expression"
= log2(expression + 1) (the regressor's target). Cross-validation: 4 chromosome groups
("split" 1..4); fold k validates on group k and trains on the other three, as the reference.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import os
import re
from typing import Iterable, Literal, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tf_seqmodels.config import Config, ConfigError

PathLike = Union[str, os.PathLike]
REFERENCE_MARKS = ("H3K4me1", "H3K4me3", "H3K9me3", "H3K27me3", "H3K36me3", "H3K27ac", "H3K9ac")
NUM_FOLDS = 4


class ChromoformerDataError(ValueError):
  """Malformed Chromoformer input files (named in the message)."""


@dataclasses.dataclass(frozen=True)
class ChromoformerDataConfig(Config):
  """How examples are cut (match the model's ChromoformerConfig: `from_model_config`)."""

  bin_sizes: tuple[int, ...] = (2000, 500, 100)
  window_size: int = 40000
  max_pcres: int = 8
  num_marks: int = 7
  min_score: float = 1.5

  def validate(self) -> None:
    for size in self.bin_sizes:
      if size < 1 or self.window_size % size:
        raise ConfigError(f"ChromoformerDataConfig: bin size {size} must divide window_size "
                          f"{self.window_size}")
    if self.max_pcres < 1 or self.num_marks < 1:
      raise ConfigError("ChromoformerDataConfig: max_pcres and num_marks must be >= 1")

  @classmethod
  def from_model_config(cls, model_config, **overrides) -> "ChromoformerDataConfig":
    return cls(bin_sizes=model_config.bin_sizes, window_size=model_config.window_size,
               max_pcres=model_config.max_pcres, num_marks=model_config.num_marks, **overrides)


@dataclasses.dataclass(frozen=True)
class Gene:
  gene_id: str
  chrom: str
  tss: int
  strand: str
  expression: float = math.nan  # RPKM
  label: Optional[int] = None
  split: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class Pcre:
  chrom: str
  start: int
  end: int
  score: float


# --- binning ----------------------------------------------------------------------------------

def bin_region(signal: np.ndarray, bin_size: int, num_bins: int) -> tuple[np.ndarray, np.ndarray]:
  """Mean over `bin_size`-bp bins, log(x + 1), centre-padded to `num_bins`.

  Args:
    signal: [F, N] per-bp signal (N <= bin_size x num_bins; the last bin may be partial and
      is averaged over its own length, as the reference).
  Returns:
    (binned [num_bins, F] float32, valid [num_bins] float32), with ceil((num_bins - n) / 2)
    padding bins on the left.
  """
  signal = np.asarray(signal, np.float64)
  marks, length = signal.shape
  n = math.ceil(length / bin_size)
  if n > num_bins:
    raise ChromoformerDataError(f"region of {length} bp needs {n} bins of {bin_size} bp, more "
                                f"than the {num_bins} of the window")
  binned = np.zeros([num_bins, marks], np.float32)
  valid = np.zeros([num_bins], np.float32)
  left = math.ceil((num_bins - n) / 2)
  if n:
    starts = np.arange(n) * bin_size
    widths = np.minimum(starts + bin_size, length) - starts
    means = np.add.reduceat(signal, starts, axis=1) / widths  # [F, n]
    binned[left:left + n] = np.log(means + 1.0).T
  valid[left:left + n] = 1.0
  return binned, valid


def example_arrays(promoter: np.ndarray, strand: str, pcres: Sequence[np.ndarray],
                   scores: Sequence[float],
                   config: ChromoformerDataConfig) -> dict[str, np.ndarray]:
  """One gene's model inputs (`models.chromoformer.input_shapes`, no batch dimension).

  Args:
    promoter: [F, window_size] signal centred on the TSS (genome orientation).
    strand: "+" or "-" ("-" flips the promoter).
    pcres: up to max_pcres [F, length] signals, in slot order; scores: their scores.
  """
  if strand not in ("+", "-"):
    raise ChromoformerDataError(f"strand must be '+' or '-', got {strand!r}")
  if len(pcres) > config.max_pcres or len(pcres) != len(scores):
    raise ChromoformerDataError(f"{len(pcres)} pCREs with {len(scores)} scores for "
                                f"{config.max_pcres} slots")
  if promoter.shape != (config.num_marks, config.window_size):
    raise ChromoformerDataError(f"promoter signal must be [{config.num_marks}, "
                                f"{config.window_size}], got {list(promoter.shape)}")
  out: dict[str, np.ndarray] = {}
  slots = config.max_pcres
  for size in config.bin_sizes:
    bins = config.window_size // size
    x, valid = bin_region(promoter, size, bins)
    if strand == "-":
      x, valid = x[::-1], valid[::-1]
    out[f"promoter_{size}"] = np.ascontiguousarray(x)
    out[f"promoter_mask_{size}"] = np.ascontiguousarray(valid)
    pcre_x = np.zeros([slots, bins, config.num_marks], np.float32)
    pcre_valid = np.zeros([slots, bins], np.float32)
    for i, signal in enumerate(pcres):
      if signal.shape[0] != config.num_marks:
        raise ChromoformerDataError(f"pCRE {i} has {signal.shape[0]} marks, expected "
                                    f"{config.num_marks}")
      pcre_x[i], pcre_valid[i] = bin_region(signal, size, bins)
    out[f"pcre_{size}"] = pcre_x
    out[f"pcre_mask_{size}"] = pcre_valid
  present = np.zeros([slots], np.float32)
  present[:len(pcres)] = 1.0
  freq = np.zeros([slots + 1, slots + 1], np.float32)
  freq[0, 1:len(scores) + 1] = scores
  out["pcre_present"] = present
  out["interaction_freq"] = freq
  return out


# --- tables -------------------------------------------------------------------------------------

def _read_table(path: PathLike):
  import pandas as pd
  path = os.fspath(path)
  if not os.path.exists(path):
    raise ChromoformerDataError(f"{path}: file not found")
  sep = "," if path.endswith(".csv") else "\t"
  return pd.read_csv(path, sep=sep)


def _require_columns(table, columns: Iterable[str], path) -> None:
  missing = [c for c in columns if c not in table.columns]
  if missing:
    raise ChromoformerDataError(f"{path}: missing column(s) {missing}; has {list(table.columns)}")


def _natural_key(chrom: str):
  return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", chrom)]


def assign_chromosome_splits(chroms: Iterable[str], num_folds: int = NUM_FOLDS) -> dict[str, int]:
  """Chromosome -> group 1..num_folds, round-robin in natural order (chr1 -> 1, chr2 -> 2, ...)."""
  ordered = sorted(set(chroms), key=_natural_key)
  return {c: i % num_folds + 1 for i, c in enumerate(ordered)}


def _with_labels_and_splits(genes: list[Gene]) -> list[Gene]:
  expressions = np.array([g.expression for g in genes], np.float64)
  finite = expressions[np.isfinite(expressions)]
  median = float(np.median(finite)) if finite.size else math.nan
  splits = assign_chromosome_splits(g.chrom for g in genes)
  result = []
  for g in genes:
    label = g.label
    if label is None and math.isfinite(g.expression):
      label = int(g.expression >= median)
    result.append(dataclasses.replace(g, label=label,
                                      split=g.split if g.split is not None else splits[g.chrom]))
  return result


def _genes_from_table(table, path, tss_column: str) -> list[Gene]:
  """One Gene per row (labels / splits not derived yet); every malformed value is named with
  its file, row (1 = the first data row) and gene id in one ChromoformerDataError."""
  import pandas as pd
  genes, problems = [], []
  for number, row in enumerate(table.to_dict("records"), start=1):
    where = f"row {number} (gene {row['gene_id']})"

    def value(column, kind, required=False):
      raw = row.get(column)
      if raw is None or (not isinstance(raw, str) and pd.isna(raw)):
        if required:
          problems.append(f"{where}: {column} is missing")
        return None
      try:
        number_value = float(raw)
      except (TypeError, ValueError):
        problems.append(f"{where}: {column} {raw!r} is not a number")
        return None
      if kind is int:
        if not math.isfinite(number_value) or number_value != int(number_value):
          problems.append(f"{where}: {column} {raw!r} is not an integer")
          return None
        return int(number_value)
      return number_value

    tss = value(tss_column, int, required=True)
    expression = value("expression", float)
    label = value("label", int)
    if label is not None and label not in (0, 1):
      problems.append(f"{where}: label {label} is not 0 or 1")
    split = value("split", int)
    if row["strand"] not in ("+", "-"):
      problems.append(f"{where}: strand must be '+' or '-', got {row['strand']!r}")
    genes.append(Gene(str(row["gene_id"]), str(row["chrom"]), tss if tss is not None else -1,
                      str(row["strand"]), math.nan if expression is None else expression,
                      label, split))
  if problems:
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    raise ChromoformerDataError(f"{path}: " + "; ".join(problems[:5]) + more)
  return genes


def read_gene_table(path: PathLike) -> list[Gene]:
  """TSS table (TSV, or CSV by extension): gene_id, chrom, tss, strand [, expression (RPKM),
  label, split]. Missing labels: expression >= median; missing splits: chromosome groups.
  Empty expression / label / split cells are missing values; a malformed value (a missing TSS,
  a non-integer split, a label other than 0/1) raises ChromoformerDataError naming its row."""
  table = _read_table(path)
  _require_columns(table, ("gene_id", "chrom", "tss", "strand"), path)
  return _with_labels_and_splits(_genes_from_table(table, path, "tss"))


def has_target(gene: Gene, mode: str) -> bool:
  """Whether `gene` has the training target of `mode`: classification a label (given, or
  derived from the expression), regression a finite expression."""
  if mode == "regression":
    return math.isfinite(gene.expression)
  return gene.label is not None


def genes_with_targets(genes: Sequence[Gene], mode: str, source: str = "genes") -> list[Gene]:
  """The genes that have the target of `mode`; the others are left out with a warning naming
  them (a missing target must never become a made-up 0 / -1 label).

  Raises:
    ChromoformerDataError: no gene has the target.
  """
  import warnings
  kept = [g for g in genes if has_target(g, mode)]
  dropped = [g.gene_id for g in genes if not has_target(g, mode)]
  target = "expression" if mode == "regression" else "label (or expression)"
  if not kept:
    raise ChromoformerDataError(f"{source}: none of the {len(dropped)} genes has the {target} "
                                f"that {mode} needs")
  if dropped:
    shown = ", ".join(dropped[:5]) + (f" and {len(dropped) - 5} more" if len(dropped) > 5 else "")
    warnings.warn(f"{source}: {len(dropped)} of {len(genes)} genes have no {target} and are "
                  f"left out of {mode} training and validation: {shown}", stacklevel=2)
  return kept


def parse_region(text: str) -> tuple[str, int, int]:
  """'chr1:100-200' -> ('chr1', 100, 200)."""
  match = re.fullmatch(r"\s*([^:\s]+):(\d+)-(\d+)\s*", text)
  if not match:
    raise ChromoformerDataError(f"region {text!r} is not chrom:start-end")
  return match.group(1), int(match.group(2)), int(match.group(3))


def select_pcres(candidates: Iterable[Pcre], config: ChromoformerDataConfig) -> list[Pcre]:
  """score > min_score, length <= window_size, the max_pcres highest scores (stable order)."""
  kept = [p for p in candidates
          if p.score > config.min_score and 0 < p.end - p.start <= config.window_size]
  kept.sort(key=lambda p: -p.score)
  unique, seen = [], set()
  for p in kept:
    if (p.chrom, p.start, p.end) not in seen:
      seen.add((p.chrom, p.start, p.end))
      unique.append(p)
  return unique[:config.max_pcres]


class _TssIndex:
  """Genes by chromosome, sorted by TSS: the genes whose TSS lies in an anchor by bisection
  (an interaction file has millions of rows and a gene table tens of thousands of genes)."""

  def __init__(self, genes: Sequence[Gene]):
    by_chrom: dict[str, list[Gene]] = {}
    for g in genes:
      by_chrom.setdefault(g.chrom, []).append(g)
    self._genes = {c: sorted(gs, key=lambda g: g.tss) for c, gs in by_chrom.items()}
    self._tss = {c: [g.tss for g in gs] for c, gs in self._genes.items()}

  def within(self, chrom: str, start: int, end: int) -> list[Gene]:
    """Genes on `chrom` with start <= TSS < end."""
    tss = self._tss.get(chrom)
    if not tss:
      return []
    return self._genes[chrom][bisect.bisect_left(tss, start):bisect.bisect_left(tss, end)]


def read_interactions(path: PathLike, genes: Sequence[Gene],
                      config: ChromoformerDataConfig) -> dict[str, list[Pcre]]:
  """gene_id -> selected pCREs, from a BEDPE file or a promoter-fragment table.

  BEDPE (no header): chrom1 start1 end1 chrom2 start2 end2 [name] score ...; the score is
  column 8 (column 7 when there are only 7). An anchor containing a gene's TSS is its
  promoter and the other anchor (same chromosome, not containing the TSS) its pCRE.
  Promoter-fragment table (header): gene_id, fragment ("chrom:start-end"), score — the
  reference's normalised promoter-capture scores.
  """
  import pandas as pd
  path = os.fspath(path)
  if not os.path.exists(path):
    raise ChromoformerDataError(f"{path}: file not found")
  candidates: dict[str, list[Pcre]] = {g.gene_id: [] for g in genes}
  with open(path) as handle:
    first = handle.readline()
  if "gene_id" in first:
    table = _read_table(path)
    _require_columns(table, ("gene_id", "fragment", "score"), path)
    for row in table.itertuples(index=False):
      if str(row.gene_id) in candidates:
        chrom, start, end = parse_region(str(row.fragment))
        candidates[str(row.gene_id)].append(Pcre(chrom, start, end, float(row.score)))
  else:
    table = pd.read_csv(path, sep="\t", header=None, comment="#")
    if table.shape[1] < 7:
      raise ChromoformerDataError(f"{path}: BEDPE needs >= 7 columns (anchors + score), got "
                                  f"{table.shape[1]}")
    score_column = 7 if table.shape[1] >= 8 else 6
    index = _TssIndex(genes)
    chroms1, chroms2 = table[0].astype(str).to_numpy(), table[3].astype(str).to_numpy()
    try:
      coords = table[[1, 2, 4, 5]].to_numpy(np.int64)
      scores = table[score_column].to_numpy(np.float64)
    except (TypeError, ValueError) as e:
      raise ChromoformerDataError(f"{path}: BEDPE anchors must be integers and the score "
                                  f"(column {score_column + 1}) a number: {e}") from e
    # Rows select_pcres would drop anyway (trans, score <= min_score) are skipped up front.
    rows = np.flatnonzero((chroms1 == chroms2) & (scores > config.min_score))
    for chrom, (s1, e1, s2, e2), score in zip(chroms1[rows].tolist(), coords[rows].tolist(),
                                              scores[rows].tolist()):
      # An interaction with the TSS in both anchors links the promoter to itself.
      for g in index.within(chrom, s1, e1):
        if not s2 <= g.tss < e2:
          candidates[g.gene_id].append(Pcre(chrom, s2, e2, score))
      for g in index.within(chrom, s2, e2):
        if not s1 <= g.tss < e1:
          candidates[g.gene_id].append(Pcre(chrom, s1, e1, score))
  return {gene: select_pcres(found, config) for gene, found in candidates.items()}


def read_reference_metadata(path: PathLike, config: ChromoformerDataConfig
                            ) -> tuple[list[Gene], dict[str, list[Pcre]]]:
  """The reference's metadata.csv: gene_id, label, expression, chrom, start (the TSS), end,
  strand, split, neighbors ("chr:s-e;..."), scores (";"-joined, same order).

  pCREs fill the slots in the file's order with their scores as given, as the reference's
  `ChromoformerDataset` does (its preprocessing has already selected them: no score filter,
  sorting or de-duplication here).

  Raises:
    ChromoformerDataError: naming the file, row and gene, when neighbors and scores differ in
      number, a score is not a number, a region is not chrom:start-end, is empty or longer
      than window_size, or a gene has more than max_pcres neighbors (the reference's Dataset
      cannot represent either).
  """
  table = _read_table(path)
  _require_columns(table, ("gene_id", "chrom", "start", "strand", "neighbors", "scores"), path)
  genes, pcres = _genes_from_table(table, path, "start"), {}
  for number, (gene, row) in enumerate(zip(genes, table.itertuples(index=False)), start=1):
    where = f"{os.fspath(path)}: row {number} (gene {gene.gene_id})"
    found = []
    if isinstance(row.neighbors, str) and row.neighbors:
      regions = row.neighbors.split(";")
      texts = str(row.scores).split(";")
      if len(texts) != len(regions):
        raise ChromoformerDataError(f"{where}: {len(regions)} neighbors but {len(texts)} scores")
      if len(regions) > config.max_pcres:
        raise ChromoformerDataError(f"{where}: {len(regions)} neighbors, more than max_pcres "
                                    f"{config.max_pcres}")
      for region, text in zip(regions, texts):
        try:
          score = float(text)
        except ValueError:
          raise ChromoformerDataError(f"{where}: score {text!r} is not a number") from None
        try:
          chrom, start, end = parse_region(region)
        except ChromoformerDataError as e:
          raise ChromoformerDataError(f"{where}: {e}") from None
        if not 0 < end - start <= config.window_size:
          raise ChromoformerDataError(f"{where}: neighbor {region} spans {end - start} bp; a "
                                      f"pCRE must span 1..{config.window_size} bp")
        found.append(Pcre(chrom, start, end, score))
    pcres[gene.gene_id] = found
  return _with_labels_and_splits(genes), pcres


# --- signal sources -----------------------------------------------------------------------------

class BigWigSource:
  """Per-bp marks [F, N] from one bigWig per mark (missing data and off-chromosome = 0)."""

  def __init__(self, paths: Sequence[PathLike]):
    from tf_seqmodels.data.genome import BigWigSignal
    if not paths:
      raise ChromoformerDataError("BigWigSource needs one bigWig per histone mark")
    self._tracks = [BigWigSignal(p) for p in paths]

  @property
  def num_marks(self) -> int:
    return len(self._tracks)

  def region(self, chrom: str, start: int, end: int) -> np.ndarray:
    return np.stack([t.window_values(chrom, start, end) for t in self._tracks])

  def promoter(self, gene: Gene, window_size: int) -> np.ndarray:
    return self.region(gene.chrom, gene.tss - window_size // 2, gene.tss + window_size // 2)

  def close(self) -> None:
    for t in self._tracks:
      t.close()

  def __enter__(self) -> "BigWigSource":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


class ReferenceNpySource:
  """The reference's per-region arrays: `{npy_dir}/{chrom}:{start}-{end}.npy`, [F, end - start];
  promoters are stored as TSS +- 20 kb and cropped to the window."""

  REFERENCE_HALF_WINDOW = 20000

  def __init__(self, npy_dir: PathLike):
    self.npy_dir = os.fspath(npy_dir)
    if not os.path.isdir(self.npy_dir):
      raise ChromoformerDataError(f"{self.npy_dir}: not a directory")

  def region(self, chrom: str, start: int, end: int) -> np.ndarray:
    path = os.path.join(self.npy_dir, f"{chrom}:{start}-{end}.npy")
    if not os.path.exists(path):
      raise ChromoformerDataError(f"{path}: region file not found")
    return np.asarray(np.load(path), np.float32)

  def promoter(self, gene: Gene, window_size: int) -> np.ndarray:
    half = self.REFERENCE_HALF_WINDOW
    if window_size > 2 * half:
      raise ChromoformerDataError(f"reference promoter files hold {2 * half} bp, window_size "
                                  f"is {window_size}")
    x = self.region(gene.chrom, gene.tss - half, gene.tss + half)
    return x[:, half - window_size // 2:half + window_size // 2]

  def close(self) -> None:
    pass

  def __enter__(self) -> "ReferenceNpySource":
    return self

  def __exit__(self, *exc) -> None:
    pass


# --- the reference's batch layout ---------------------------------------------------------------

REFERENCE_BATCH_KEYS = ("promoter_feats", "promoter_pad_masks", "pcre_feats", "pcre_pad_masks",
                        "interaction_masks")


def to_reference_batch(inputs: Mapping[str, np.ndarray],
                       config: ChromoformerDataConfig) -> dict[str, np.ndarray]:
  """Our inputs -> the batch of the reference's `ChromoformerDataset` + default collate.

  Keys are "<dataset key>/<bin size>" (`d[key][b]` in the reference) plus "interaction_freq";
  masks are boolean with True = blocked: promoter [B, 1, 1, L, L] (query bin x key bin),
  pCRE [B, I, 1, L, L] (promoter bin x pCRE bin), interaction [B, 1, 1 + I, 1 + I].
  """
  out: dict[str, np.ndarray] = {}
  present = np.asarray(inputs["pcre_present"]) > 0.5
  tokens = np.concatenate([np.ones_like(present[:, :1]), present], axis=1)
  for size in config.bin_sizes:
    promoter = np.asarray(inputs[f"promoter_mask_{size}"]) > 0.5  # [B, L]
    pcre = np.asarray(inputs[f"pcre_mask_{size}"]) > 0.5  # [B, I, L]
    out[f"promoter_feats/{size}"] = np.asarray(inputs[f"promoter_{size}"], np.float32)[:, None]
    out[f"promoter_pad_masks/{size}"] = ~(promoter[:, :, None] & promoter[:, None, :])[
        :, None, None]
    out[f"pcre_feats/{size}"] = np.asarray(inputs[f"pcre_{size}"], np.float32)
    out[f"pcre_pad_masks/{size}"] = ~(promoter[:, None, :, None] & pcre[:, :, None, :])[
        :, :, None]
    out[f"interaction_masks/{size}"] = ~(tokens[:, :, None] & tokens[:, None, :])[:, None]
  out["interaction_freq"] = np.asarray(inputs["interaction_freq"], np.float32)
  return out


def from_reference_batch(batch: Mapping[str, np.ndarray],
                         config: ChromoformerDataConfig) -> dict[str, np.ndarray]:
  """The reference's batch ("<key>/<bin size>" arrays, `to_reference_batch`) -> our inputs.

  Our model takes validity vectors; the reference's 2-D masks must be their outer products
  (as its Dataset builds them), which is checked.

  Raises:
    ChromoformerDataError: a key is missing, or a mask is not such an outer product (it
      names the key and the first example that differs).
  """
  needed = [f"{k}/{b}" for b in config.bin_sizes for k in REFERENCE_BATCH_KEYS]
  missing = [k for k in needed + ["interaction_freq"] if k not in batch]
  if missing:
    raise ChromoformerDataError(f"reference batch is missing {missing}")
  blocked = {k: np.asarray(batch[k]).astype(bool) for k in needed if "masks" in k}
  out: dict[str, np.ndarray] = {}
  present = None
  for size in config.bin_sizes:
    promoter_mask = blocked[f"promoter_pad_masks/{size}"][:, 0, 0]  # [B, L, L]
    promoter = ~np.diagonal(promoter_mask, axis1=1, axis2=2)  # [B, L]
    pcre_mask = blocked[f"pcre_pad_masks/{size}"][:, :, 0]  # [B, I, L, L]
    pcre = (~pcre_mask).any(axis=2)  # [B, I, L]
    token_mask = blocked[f"interaction_masks/{size}"][:, 0]  # [B, 1 + I, 1 + I]
    slots = ~token_mask[:, 0, 1:]
    if present is None:
      present = slots
    rebuilt = to_reference_batch(
        {f"promoter_{size}": np.zeros(promoter.shape + (1,), np.float32),
         f"pcre_{size}": np.zeros(pcre.shape + (1,), np.float32),
         f"promoter_mask_{size}": promoter, f"pcre_mask_{size}": pcre,
         "pcre_present": present, "interaction_freq": np.asarray(batch["interaction_freq"])},
        dataclasses.replace(config, bin_sizes=(size,)))
    for key in (f"promoter_pad_masks/{size}", f"pcre_pad_masks/{size}",
                f"interaction_masks/{size}"):
      differs = np.flatnonzero((rebuilt[key] != blocked[key]).reshape(len(promoter), -1).any(1))
      if differs.size:
        raise ChromoformerDataError(
            f"reference batch {key}: example {int(differs[0])} is not the outer product of "
            f"bin/token validities (True = blocked) that the reference's Dataset builds")
    out[f"promoter_{size}"] = np.asarray(batch[f"promoter_feats/{size}"], np.float32)[:, 0]
    out[f"promoter_mask_{size}"] = promoter.astype(np.float32)
    out[f"pcre_{size}"] = np.asarray(batch[f"pcre_feats/{size}"], np.float32)
    out[f"pcre_mask_{size}"] = pcre.astype(np.float32)
  out["pcre_present"] = present.astype(np.float32)
  out["interaction_freq"] = np.asarray(batch["interaction_freq"], np.float32)
  return out


# --- examples -----------------------------------------------------------------------------------

@dataclasses.dataclass
class ChromoformerExamples:
  """Stacked inputs {name: [N, ...]}, targets {"label" [N] int32, "expression" [N]} and the
  genes' ids / splits (`active_enhancer` [N]: synthetic data's interaction-driven part)."""

  inputs: dict[str, np.ndarray]
  targets: dict[str, np.ndarray]
  gene_ids: list[str]
  splits: np.ndarray
  active_enhancer: Optional[np.ndarray] = None

  def __len__(self) -> int:
    return len(self.gene_ids)

  def subset(self, rows) -> "ChromoformerExamples":
    rows = np.asarray(rows)
    return ChromoformerExamples({k: v[rows] for k, v in self.inputs.items()},
                                {k: v[rows] for k, v in self.targets.items()},
                                [self.gene_ids[i] for i in rows], self.splits[rows],
                                None if self.active_enhancer is None
                                else self.active_enhancer[rows])

  def fold(self, fold: int) -> tuple["ChromoformerExamples", "ChromoformerExamples"]:
    """(train, valid) of cross-validation fold 1..4: valid = split `fold`."""
    if not 1 <= fold <= NUM_FOLDS:
      raise ValueError(f"fold must be in 1..{NUM_FOLDS}, got {fold}")
    valid = self.splits == fold
    return self.subset(np.flatnonzero(~valid)), self.subset(np.flatnonzero(valid))

  def dataset(self, batch_size: int, shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
    """(inputs dict, targets dict) batches; seeded reshuffling each epoch when `shuffle`."""
    ds = tf.data.Dataset.from_tensor_slices((self.inputs, self.targets))
    if shuffle:
      ds = ds.shuffle(len(self), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size)


def build_examples(genes: Sequence[Gene], pcres: Mapping[str, Sequence[Pcre]], source,
                   config: ChromoformerDataConfig, progress: bool = True) -> ChromoformerExamples:
  """Reads every gene's promoter and pCREs from `source` (BigWigSource / ReferenceNpySource)."""
  from tqdm.auto import tqdm
  rows: list[dict[str, np.ndarray]] = []
  for gene in tqdm(genes, desc="chromoformer examples", unit="gene", disable=not progress):
    chosen = list(pcres.get(gene.gene_id, ()))[:config.max_pcres]
    promoter = source.promoter(gene, config.window_size)
    if promoter.shape[0] != config.num_marks:
      raise ChromoformerDataError(f"the signal source has {promoter.shape[0]} marks, the config "
                                  f"{config.num_marks}")
    signals = [source.region(p.chrom, p.start, p.end) for p in chosen]
    rows.append(example_arrays(promoter, gene.strand, signals, [p.score for p in chosen], config))
  if not rows:
    raise ChromoformerDataError("no genes to build examples from")
  inputs = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
  # Missing targets stay visible (label -1, expression NaN); `genes_with_targets` drops such
  # genes before training.
  expression = np.array([g.expression for g in genes], np.float64)
  targets = {"label": np.array([-1 if g.label is None else g.label for g in genes], np.int32),
             "expression": np.log2(expression + 1.0).astype(np.float32)}
  return ChromoformerExamples(inputs, targets, [g.gene_id for g in genes],
                              np.array([g.split or 0 for g in genes], np.int64))


# --- predictions on the reference's layout -----------------------------------------------------

def _reference_layout_paths(metadata: PathLike, npy_dir: Optional[PathLike]) -> tuple[str, str]:
  """(metadata.csv, npy folder) from a .csv path, or from a folder holding exactly one .csv
  (its .npy files in `npy/` beside it, or in the folder itself)."""
  metadata = os.fspath(metadata)
  if os.path.isdir(metadata):
    folder = metadata
    tables = sorted(f for f in os.listdir(folder) if f.endswith(".csv"))
    if len(tables) != 1:
      raise ChromoformerDataError(f"{folder}: expected one metadata .csv in the folder, found "
                                  f"{tables or 'none'}; pass the .csv path instead")
    metadata = os.path.join(folder, tables[0])
    if npy_dir is None:
      nested = os.path.join(folder, "npy")
      npy_dir = nested if os.path.isdir(nested) else folder
  elif not os.path.exists(metadata):
    raise ChromoformerDataError(f"{metadata}: file not found")
  if npy_dir is None:
    raise ChromoformerDataError(f"{metadata}: give the folder of its .npy region files (npy_dir)")
  return metadata, os.fspath(npy_dir)


def predict_reference_layout(model, metadata: PathLike, npy_dir: Optional[PathLike] = None,
                             batch_size: int = 32, progress: bool = True) -> list[dict]:
  """Predicts every gene of a reference-layout metadata.csv + .npy folder, in file order.

  The inputs are built as the reference's `ChromoformerDataset` builds them
  (`read_reference_metadata` + `ReferenceNpySource`); `model` is a Chromoformer (e.g. with
  weights from `convert.import_reference_weights`).

  Args:
    metadata: the metadata .csv, or a folder holding exactly one .csv (npy_dir then defaults
      to its `npy/` subfolder if present, else the folder itself).
    npy_dir: the folder of `chrom:start-end.npy` region files.

  Returns:
    One dict per gene. Classification: gene_id, probability = sigmoid(logit 1) (the
    `prediction` column of the reference's demo/run_demo.py), probability_softmax =
    softmax(logits)[1] (P(expressed) as our evaluator reports it), logit_0, logit_1.
    Regression: gene_id, expression (predicted log2(RPKM + 1), as run_demo_regression.py).
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  metadata, npy_dir = _reference_layout_paths(metadata, npy_dir)
  config = ChromoformerDataConfig.from_model_config(model.config)
  genes, pcres = read_reference_metadata(metadata, config)
  examples = build_examples(genes, pcres, ReferenceNpySource(npy_dir), config, progress=progress)
  heads: dict[str, list[np.ndarray]] = {}
  for start in range(0, len(examples), batch_size):
    batch = {k: v[start:start + batch_size] for k, v in examples.inputs.items()}
    for head, value in model.predict_on_batch(batch).items():
      heads.setdefault(head, []).append(np.asarray(value))
  outputs = {head: np.concatenate(values) for head, values in heads.items()}
  rows = []
  if model.config.mode == "classification":
    logits = outputs["logits"].astype(np.float64)
    sigmoid = 1.0 / (1.0 + np.exp(-logits[:, 1]))
    softmax = 1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1]))
    for i, gene_id in enumerate(examples.gene_ids):
      rows.append({"gene_id": gene_id, "probability": float(sigmoid[i]),
                   "probability_softmax": float(softmax[i]), "logit_0": float(logits[i, 0]),
                   "logit_1": float(logits[i, 1])})
  else:
    expression = outputs["expression"].astype(np.float64).reshape(-1)
    for gene_id, value in zip(examples.gene_ids, expression):
      rows.append({"gene_id": gene_id, "expression": float(value)})
  return rows


# --- synthetic data with a known rule -----------------------------------------------------------

PROMOTER_MARK = 1   # H3K4me3 in the reference's order
ENHANCER_MARK = 5   # H3K27ac
DECOY_MARK = 3      # H3K27me3


def synthetic_examples(num_genes: int, config: ChromoformerDataConfig, seed: int = 0,
                       enhancer_weight: float = 1.5) -> ChromoformerExamples:
  """Genes whose expression follows a known rule, through the real binning code.

      z = a + enhancer_weight * e * present_0
      expression (RPKM) = 2^(z + 3) - 1        (so log2(RPKM + 1) = z + 3)
      label = z >= median(z)

  a ~ N(0, 1) is promoter activity: mark PROMOTER_MARK over the promoter reads ~ max(0, 1 + a)
  after log(x + 1). The top-scoring pCRE (slot 0, present with probability 0.7, score in
  [3, 4]) is an enhancer with activity e ~ Bernoulli(0.5): mark ENHANCER_MARK reads ~ 2e.
  Further slots hold decoy pCREs (probability 0.5, score in [1.6, 2.5]) marked only by
  DECOY_MARK, which never affect expression. pCRE regions have random lengths (padded bins)
  and 30% of genes are on the minus strand. Splits: 4 groups, gene i -> i % 4 + 1.
  """
  if config.num_marks <= max(PROMOTER_MARK, ENHANCER_MARK, DECOY_MARK):
    raise ValueError(f"synthetic data needs >= {ENHANCER_MARK + 1} marks, got {config.num_marks}")
  rng = np.random.default_rng(seed)
  w, marks = config.window_size, config.num_marks
  smallest = min(config.bin_sizes)
  rows, z_values, activities = [], [], []
  for _ in range(num_genes):
    a = rng.normal()
    promoter = rng.gamma(1.0, 0.05, size=(marks, w))
    promoter[PROMOTER_MARK] += np.expm1(max(0.0, 1.0 + a))
    strand = "-" if rng.random() < 0.3 else "+"
    signals, scores = [], []
    e = float(rng.random() < 0.5)
    present0 = rng.random() < 0.7
    if present0:
      length = int(rng.integers(w // (4 * smallest), w // smallest + 1)) * smallest
      enhancer = rng.gamma(1.0, 0.05, size=(marks, length))
      enhancer[ENHANCER_MARK] += np.expm1(2.0 * e)
      signals.append(enhancer)
      scores.append(float(rng.uniform(3.0, 4.0)))
    for _ in range(config.max_pcres - len(signals)):
      if rng.random() < 0.5:
        length = int(rng.integers(w // (4 * smallest), w // smallest + 1)) * smallest
        decoy = rng.gamma(1.0, 0.05, size=(marks, length))
        decoy[DECOY_MARK] += np.expm1(2.0 * float(rng.random() < 0.5))
        signals.append(decoy)
        scores.append(float(rng.uniform(1.6, 2.5)))
    rows.append(example_arrays(promoter.astype(np.float32), strand, signals, scores, config))
    z_values.append(a + enhancer_weight * e * float(present0))
    activities.append(e * float(present0))
  z = np.array(z_values)
  inputs = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
  targets = {"label": (z >= np.median(z)).astype(np.int32),
             "expression": (z + 3.0).astype(np.float32)}
  return ChromoformerExamples(inputs, targets, [f"gene{i}" for i in range(num_genes)],
                              np.arange(num_genes) % NUM_FOLDS + 1,
                              np.array(activities, np.float32))


# --- training-config data builder (`data.type: chromoformer`) ----------------------------------

@dataclasses.dataclass(frozen=True)
class ChromoformerBuilderOptions(Config):
  """`data.options` of `data.type: chromoformer`; windows, bins and slots follow the model.

  source: "synthetic" (`synthetic_examples`), "bigwig" (genes TSS table + interactions
  BEDPE / promoter-fragment table + one bigWig per mark, in the model's mark order) or
  "reference" (the reference's metadata.csv + npy_dir). fold: cross-validation fold 1..4
  (validation = chromosome group `fold`, training = the other three); null trains on all.
  """

  source: Literal["synthetic", "bigwig", "reference"] = "synthetic"
  fold: Optional[int] = 1
  examples: int = 512  # synthetic
  genes: str = ""  # bigwig
  interactions: str = ""  # bigwig (optional: no pCREs without it)
  bigwigs: tuple[str, ...] = ()  # bigwig
  metadata: str = ""  # reference
  npy_dir: str = ""  # reference
  min_score: float = 1.5
  seed: int = 0

  def validate(self) -> None:
    def fail(msg):
      raise ConfigError(f"chromoformer data: {msg}")

    if self.fold is not None and not 1 <= self.fold <= NUM_FOLDS:
      fail(f"fold must be 1..{NUM_FOLDS} or null, got {self.fold}")
    if self.source == "synthetic" and self.examples < 2:
      fail("examples must be >= 2")
    if self.source == "bigwig" and (not self.genes or not self.bigwigs):
      fail("source 'bigwig' needs options.genes and options.bigwigs (one per mark)")
    if self.source == "reference" and (not self.metadata or not self.npy_dir):
      fail("source 'reference' needs options.metadata and options.npy_dir")


def builder_examples(options: ChromoformerBuilderOptions, model_config
                     ) -> tuple[ChromoformerExamples, Optional[ChromoformerExamples]]:
  """(train, valid or None) examples of a data-builder section for a Chromoformer config."""
  if not hasattr(model_config, "bin_sizes") or not hasattr(model_config, "max_pcres"):
    raise ConfigError("data.type chromoformer needs a Chromoformer model (model.name: "
                      "chromoformer)")
  config = ChromoformerDataConfig.from_model_config(model_config, min_score=options.min_score)
  mode = getattr(model_config, "mode", "classification")
  if options.source == "synthetic":
    examples = synthetic_examples(options.examples, config, seed=options.seed)
  elif options.source == "bigwig":
    if len(options.bigwigs) != config.num_marks:
      raise ConfigError(f"chromoformer data: {len(options.bigwigs)} bigWigs for a model of "
                        f"{config.num_marks} marks")
    # Genes without the mode's target are dropped before any signal is read (both splits).
    genes = genes_with_targets(read_gene_table(options.genes), mode, options.genes)
    pcres = read_interactions(options.interactions, genes, config) if options.interactions else {}
    with BigWigSource(options.bigwigs) as source:
      examples = build_examples(genes, pcres, source, config)
  else:
    genes, pcres = read_reference_metadata(options.metadata, config)
    genes = genes_with_targets(genes, mode, options.metadata)
    examples = build_examples(genes, pcres, ReferenceNpySource(options.npy_dir), config)
  if options.fold is None:
    return examples, None
  train, valid = examples.fold(options.fold)
  return train, (valid if len(valid) else None)
