"""DREAM-challenge data: yeast random promoters, DeepSTARR and lentiMPRA tables, tf.data builders.

Encoding follows the Prix Fixe reference (de-Boer-Lab/random-promoter-dream-challenge-2022,
`prixfixe/autosome`), not `data.encoding`'s ACGT order:

    channel 0..3   one-hot in **A, G, C, T** order (complement = reversed channel order)
    channel 4      is_reverse   (1 for the reverse-complement strand)
    channel 5      is_singleton (yeast only: 1 when the measured bin is an integer)

N encodes as all zeros for training (the reference predictor uses 0.25 at test time, see
`dream_test_inputs`). Yeast sequences are brought to 150 nt by cutting the 17-nt left adapter
and left-padding with the plasmid sequence upstream of the insert; training targets are the
measured bin (`"expression"`, [B]) and its 18-bin soft label (`"bin_probs"`, [B, 18]).

Shapes: a dataset element is `(inputs [B, L, C] float32, {target name: [B] or [B, K] float32})`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Iterator, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
import tensorflow as tf

from tf_seqmodels.data.encoding import SequenceError
# AGCT indices complement as 3 - i too (A <-> T, G <-> C): one implementation serves both orders.
from tf_seqmodels.data.encoding import reverse_complement_indices  # noqa: F401  (re-exported)

DREAM_ALPHABET = "AGCT"
LEFT_ADAPTER = "TGCATTTTTTTCACATC"
RIGHT_ADAPTER = "GGTTACGGCTGTT"
DREAM_SEQUENCE_LENGTH = 150
NUM_BINS = 18
DEEPSTARR_SEQUENCE_LENGTH = 249
LENTIMPRA_SEQUENCE_LENGTH = 230
DEEPSTARR_TARGETS = {"dev": "Dev_log2_enrichment", "hk": "Hk_log2_enrichment"}
RC_MODES = ("none", "double", "random")

PathLike = Union[str, os.PathLike]


class DataFormatError(ValueError):
  """A data file is malformed: missing columns, bad numbers, ragged rows."""


# --- encoding ---------------------------------------------------------------------------------
def _agct_table() -> np.ndarray:
  # Byte -> channel index; 4 = N (encoded as `n_value` everywhere), -1 = invalid character.
  table = np.full(256, -1, dtype=np.int8)
  for i, base in enumerate(DREAM_ALPHABET):
    table[ord(base)] = table[ord(base.lower())] = i
  table[ord("N")] = table[ord("n")] = 4
  return table


_AGCT_TABLE = _agct_table()


def _raise_bad_character(sequences: Sequence[str], lengths: np.ndarray, offset: int, where: str,
                         first_line: int) -> None:
  """Raises for the character at `offset` of the concatenated sequences."""
  ends = np.cumsum(lengths)
  row = int(np.searchsorted(ends, offset, side="right"))
  pos = offset - int(ends[row] - lengths[row])
  raise SequenceError(f"{where}: invalid character {sequences[row][pos]!r} at position {pos} of the "
                      f"sequence on line {row + first_line}; allowed: A, C, G, T and N (either case)")


def validate_sequences(sequences: Sequence[str], where: str = "sequences", first_line: int = 0) -> None:
  """Raises SequenceError naming the first row/position holding a character outside ACGTN.

  Vectorised over the whole list (one lookup over the concatenated bytes). `first_line` is
  added to the row index in messages (1 for a header-less file, 2 with a header line).
  """
  if not sequences:
    return
  lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
  empty = np.flatnonzero(lengths == 0)
  if empty.size:
    raise SequenceError(f"{where}: empty sequence on line {int(empty[0]) + first_line}")
  joined = "".join(sequences)
  try:
    raw = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
  except UnicodeEncodeError as e:
    _raise_bad_character(sequences, lengths, e.start, where, first_line)
  bad = np.flatnonzero(_AGCT_TABLE[raw] < 0)
  if bad.size:
    _raise_bad_character(sequences, lengths, int(bad[0]), where, first_line)


def encode_indices(sequences: Sequence[str], where: str = "sequences", first_line: int = 0) -> np.ndarray:
  """Equal-length DNA strings -> int8 indices [N, L] in A, G, C, T order (N = 4).

  Raises SequenceError on an invalid character or unequal lengths (naming the row).
  """
  sequences = list(sequences)
  if not sequences:
    raise SequenceError(f"{where}: no sequences")
  validate_sequences(sequences, where, first_line)
  length = len(sequences[0])
  for row, seq in enumerate(sequences):
    if len(seq) != length:
      raise SequenceError(f"{where}: sequence on line {row + first_line} has length {len(seq)}, "
                          f"expected {length} like the first one")
  raw = np.frombuffer("".join(sequences).encode("ascii"), dtype=np.uint8)
  return _AGCT_TABLE[raw].reshape(len(sequences), length)


def indices_to_one_hot(indices, n_value: float = 0.0) -> tf.Tensor:
  """AGCT indices [..., L] (N = 4) -> float32 one-hot [..., L, 4]; N rows filled with `n_value`."""
  indices = tf.cast(indices, tf.int32)
  one_hot = tf.one_hot(indices, 4, dtype=tf.float32)  # index 4 (N) -> all zeros
  if n_value:
    one_hot = tf.where(tf.equal(indices, 4)[..., None], tf.cast(n_value, tf.float32), one_hot)
  return one_hot


def dream_one_hot(sequences: Sequence[str], is_reverse=0.0, is_singleton=0.0,
                  n_value: float = 0.0) -> np.ndarray:
  """Equal-length strings -> model inputs [N, L, 6] float32 (A, G, C, T, rev, singleton).

  `is_reverse` / `is_singleton`: scalar or [N] values broadcast along the length; pass
  `is_singleton=None` for the 5-channel benchmark encoding (one-hot + is_reverse), and
  `is_reverse=None` as well for a plain 4-channel one-hot.
  """
  idx = encode_indices(sequences)
  return _assemble(idx, is_reverse, is_singleton, n_value).numpy()


def _assemble(indices, is_reverse, is_singleton, n_value: float) -> tf.Tensor:
  """indices [B, L] -> [B, L, C]: one-hot then constant flag channels (rev, singleton)."""
  one_hot = indices_to_one_hot(indices, n_value)
  parts = [one_hot]
  batch_length = tf.shape(one_hot)[:2]
  for flag in (is_reverse, is_singleton):
    if flag is None:
      continue
    flag = tf.cast(tf.convert_to_tensor(flag), tf.float32)
    flag = tf.broadcast_to(tf.reshape(flag, [-1, 1]) if flag.shape.rank else flag, batch_length)
    parts.append(flag[..., None])
  return tf.concat(parts, axis=-1) if len(parts) > 1 else one_hot


# --- soft labels --------------------------------------------------------------------------------
def soft_labels(expression, num_bins: int = NUM_BINS, shift: float = 0.5, scale: float = 0.5):
  """Soft class labels of measured bins (Prix Fixe `SeqDatasetProb`).

  The true expression is taken as Normal(mean = y + shift, sd = scale); class k gets the
  probability mass between edges e_k and e_{k+1}, with e = [-inf, 1, 2, ..., num_bins - 1, +inf]:

      P(k) = Phi((e_{k+1} - (y + shift)) / scale) - Phi((e_k - (y + shift)) / scale)

  so the expected class index is ~y. Computed in float64, returned as float32.

  Args:
    expression: measured bins, shape [N] (numpy, list or tf.Tensor).
  Returns:
    [N, num_bins] float32 probabilities, numpy when given numpy/list, else a tf.Tensor.
  """
  if num_bins < 2:
    raise ValueError(f"num_bins must be at least 2, got {num_bins}")
  if scale <= 0:
    raise ValueError(f"scale must be positive, got {scale}")
  as_numpy = not tf.is_tensor(expression)
  y = tf.cast(tf.convert_to_tensor(expression), tf.float64)
  inner = tf.range(1, num_bins, dtype=tf.float64)
  z = (inner - (y[..., None] + shift)) / scale
  cdf = 0.5 * tf.math.erfc(-z / math.sqrt(2.0))  # Phi(z); erfc keeps the lower tail accurate
  shape = tf.concat([tf.shape(cdf)[:-1], [1]], axis=0)
  cdf = tf.concat([tf.zeros(shape, tf.float64), cdf, tf.ones(shape, tf.float64)], axis=-1)
  probs = tf.cast(cdf[..., 1:] - cdf[..., :-1], tf.float32)
  return probs.numpy() if as_numpy else probs


def is_singleton(expression) -> np.ndarray:
  """[N] bool: the measured bin is an integer (a single-observation measurement)."""
  expression = np.asarray(expression, np.float64)
  return np.equal(np.floor(expression), expression)


# --- tables -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SequenceTable:
  """Sequences with per-sequence regression targets, as read from a data file.

  Attributes:
    sequences: N DNA strings, as in the file (yeast ones are not yet padded).
    targets: {name: [N] float32}.
    ids: N identifiers, or None when the file has none.
    is_reverse: [N] bool orientation flags (DeepSTARR '-' strand, lentiMPRA `_Reversed:`),
      or None when the data has no orientation (yeast: all forward before augmentation).
    fold: [N] int cross-validation fold, or None.
  """

  sequences: tuple[str, ...]
  targets: Mapping[str, np.ndarray]
  ids: Optional[tuple[str, ...]] = None
  is_reverse: Optional[np.ndarray] = None
  fold: Optional[np.ndarray] = None

  def __post_init__(self):
    n = len(self.sequences)
    for name, values in self.targets.items():
      if np.shape(values) != (n,):
        raise DataFormatError(f"target {name!r} has shape {np.shape(values)}, expected ({n},)")
    for name in ("ids", "is_reverse", "fold"):
      value = getattr(self, name)
      if value is not None and len(value) != n:
        raise DataFormatError(f"{name} has {len(value)} entries for {n} sequences")

  def __len__(self) -> int:
    return len(self.sequences)

  def select(self, rows) -> "SequenceTable":
    """The rows given by an index array or a boolean mask [N]."""
    rows = np.asarray(rows)
    if rows.dtype == bool:
      if rows.shape != (len(self),):
        raise ValueError(f"mask has shape {rows.shape}, expected ({len(self)},)")
      rows = np.flatnonzero(rows)
    pick = lambda seq: tuple(seq[i] for i in rows)  # noqa: E731
    return SequenceTable(
        sequences=pick(self.sequences),
        targets={k: v[rows] for k, v in self.targets.items()},
        ids=None if self.ids is None else pick(self.ids),
        is_reverse=None if self.is_reverse is None else self.is_reverse[rows],
        fold=None if self.fold is None else self.fold[rows])


def _check_file(path: PathLike) -> str:
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"data file not found: {path}")
  if os.path.isdir(path):
    raise DataFormatError(f"{path} is a directory, expected a data file")
  return path


def _read_tsv(path: str, header: bool) -> pd.DataFrame:
  try:
    return pd.read_csv(path, sep="\t", header=0 if header else None, dtype=str, na_filter=False,
                       quoting=3, skip_blank_lines=True)  # quoting=3: csv.QUOTE_NONE
  except pd.errors.EmptyDataError:
    raise DataFormatError(f"{path}: the file is empty") from None
  except pd.errors.ParserError as e:
    raise DataFormatError(f"{path}: malformed table ({e})".strip()) from None
  except UnicodeDecodeError as e:
    raise DataFormatError(f"{path}: not a text file ({e})") from None


def _parse_numbers(values: pd.Series, path: str, column: str, first_line: int,
                   integer: bool = False) -> np.ndarray:
  """Column of strings -> float64 (or int64) array; errors name the first bad line."""
  numbers = pd.to_numeric(values.str.strip(), errors="coerce").to_numpy(np.float64)
  bad = np.flatnonzero(~np.isfinite(numbers))
  if bad.size:
    row = int(bad[0])
    raise DataFormatError(f"{path}: line {row + first_line}: column {column!r} must be a finite "
                          f"number, got {values.iloc[row]!r} ({bad.size} bad value(s) in total)")
  if integer:
    if np.any(numbers != np.round(numbers)):
      row = int(np.flatnonzero(numbers != np.round(numbers))[0])
      raise DataFormatError(f"{path}: line {row + first_line}: column {column!r} must be an integer, "
                            f"got {values.iloc[row]!r}")
    return numbers.astype(np.int64)
  return numbers


def read_dream_table(path: PathLike) -> SequenceTable:
  """Reads a yeast random-promoter file: `sequence<TAB>expression[<TAB>fold]`, no header.

  Returns a table with target `"expression"` (the measured mean bin) and `fold` when a
  third column is present. Sequences are validated (ACGTN) but not yet padded.

  Raises:
    FileNotFoundError, DataFormatError (wrong column count, empty/non-numeric fields),
    SequenceError (invalid characters), each naming the line.
  """
  path = _check_file(path)
  frame = _read_tsv(path, header=False)
  if frame.shape[1] not in (2, 3):
    raise DataFormatError(f"{path}: expected 2 or 3 tab-separated columns (sequence, expression"
                          f"[, fold]), found {frame.shape[1]} on line 1")
  for column in frame.columns:
    empty = np.flatnonzero(frame[column].to_numpy() == "")
    if empty.size:
      raise DataFormatError(f"{path}: line {int(empty[0]) + 1}: column {column + 1} is empty "
                            f"(expected {frame.shape[1]} tab-separated fields)")
  sequences = tuple(frame[0].str.strip())
  validate_sequences(sequences, path, first_line=1)
  expression = _parse_numbers(frame[1], path, "expression", 1).astype(np.float32)
  fold = _parse_numbers(frame[2], path, "fold", 1, integer=True) if frame.shape[1] == 3 else None
  return SequenceTable(sequences=sequences, targets={"expression": expression}, fold=fold)


def _require_columns(frame: pd.DataFrame, path: str, columns: Sequence[str]) -> None:
  missing = [c for c in columns if c not in frame.columns]
  if missing:
    raise DataFormatError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")


def _check_length(sequences: Sequence[str], length: Optional[int], path: str, first_line: int) -> None:
  if length is None:
    return
  for row, seq in enumerate(sequences):
    if len(seq) != length:
      raise SequenceError(f"{path}: line {row + first_line}: sequence has length {len(seq)}, "
                          f"expected {length}")


def read_deepstarr_table(path: PathLike,
                         sequence_length: Optional[int] = DEEPSTARR_SEQUENCE_LENGTH) -> SequenceTable:
  """Reads a DeepSTARR table (tab-separated with header; `ID`, `Sequence`, `Dev_log2_enrichment`,
  `Hk_log2_enrichment`).

  Targets: `"dev"`, `"hk"` (log2 enrichment). `is_reverse` marks IDs of '-' strand regions
  (the reference's test: the ID contains "-_", e.g. `chrX_..._-_negative`).
  """
  path = _check_file(path)
  frame = _read_tsv(path, header=True)
  _require_columns(frame, path, ["ID", "Sequence", *DEEPSTARR_TARGETS.values()])
  sequences = tuple(frame["Sequence"].str.strip())
  validate_sequences(sequences, path, first_line=2)
  _check_length(sequences, sequence_length, path, first_line=2)
  targets = {name: _parse_numbers(frame[col], path, col, 2).astype(np.float32)
             for name, col in DEEPSTARR_TARGETS.items()}
  ids = tuple(frame["ID"])
  is_reverse = np.array(["-_" in i for i in ids], dtype=bool)
  return SequenceTable(sequences=sequences, targets=targets, ids=ids, is_reverse=is_reverse)


def read_lentimpra_table(path: PathLike,
                         sequence_length: Optional[int] = LENTIMPRA_SEQUENCE_LENGTH) -> SequenceTable:
  """Reads a lentiMPRA table (tab-separated with header; `seq_id`, `seq`, `mean_value`[, `fold`]).

  Target: `"activity"` (= `mean_value`; the name of the DREAM models' lentiMPRA head).
  `is_reverse` marks IDs containing `_Reversed:`.
  """
  path = _check_file(path)
  frame = _read_tsv(path, header=True)
  _require_columns(frame, path, ["seq_id", "seq", "mean_value"])
  sequences = tuple(frame["seq"].str.strip())
  validate_sequences(sequences, path, first_line=2)
  _check_length(sequences, sequence_length, path, first_line=2)
  expression = _parse_numbers(frame["mean_value"], path, "mean_value", 2).astype(np.float32)
  fold = _parse_numbers(frame["fold"], path, "fold", 2, integer=True) if "fold" in frame else None
  ids = tuple(frame["seq_id"])
  is_reverse = np.array(["_Reversed:" in i for i in ids], dtype=bool)
  return SequenceTable(sequences=sequences, targets={"activity": expression}, ids=ids,
                       is_reverse=is_reverse, fold=fold)


# --- plasmid padding ----------------------------------------------------------------------------
def load_plasmid(path: PathLike) -> str:
  """Reads `plasmid.json` (a JSON string) and checks it holds the 80-N insert site."""
  path = _check_file(path)
  with open(path) as f:
    try:
      plasmid = json.load(f)
    except json.JSONDecodeError as e:
      raise DataFormatError(f"{path}: not valid JSON ({e})") from None
  if not isinstance(plasmid, str):
    raise DataFormatError(f"{path}: expected a JSON string with the plasmid sequence, "
                          f"got {type(plasmid).__name__}")
  plasmid_flank(plasmid, DREAM_SEQUENCE_LENGTH)  # validates the insert site and flank
  return plasmid


def plasmid_flank(plasmid: str, length: int = DREAM_SEQUENCE_LENGTH) -> str:
  """The `length` nt of plasmid immediately upstream of the 80-N insert."""
  insert = plasmid.find("N" * 80)
  if insert < 0:
    raise DataFormatError("the plasmid has no 80-N insert site")
  if insert < length:
    raise DataFormatError(f"the plasmid has only {insert} nt upstream of the insert, need {length}")
  flank = plasmid[insert - length:insert]
  validate_sequences([flank], "plasmid flank")
  if "N" in flank.upper():
    raise DataFormatError("the plasmid flank upstream of the insert contains N")
  return flank


def pad_with_plasmid(sequences: Sequence[str], plasmid: str,
                     length: int = DREAM_SEQUENCE_LENGTH,
                     adapter_length: int = len(LEFT_ADAPTER)) -> list[str]:
  """Brings yeast sequences to `length` nt as the reference does: drop the left adapter,
  prepend the plasmid upstream of the insert, keep the last `length` nt.

  The plasmid's bases just before the insert are the adapter itself, so a 110-nt sequence
  becomes 40 nt of upstream plasmid + the original 110 nt; longer sequences lose bases at
  their 5' end.
  """
  flank = plasmid_flank(plasmid, length)
  out = []
  for row, seq in enumerate(sequences):
    if len(seq) <= adapter_length:
      raise SequenceError(f"sequence {row} has {len(seq)} nt, not more than the {adapter_length}-nt "
                          f"left adapter")
    out.append((flank + seq[adapter_length:])[-length:])
  return out


# --- tf.data builders ---------------------------------------------------------------------------
def _check_rc_mode(mode: str) -> None:
  if mode not in RC_MODES:
    raise ValueError(f"reverse_complement must be one of {RC_MODES}, got {mode!r}")


def _batches(indices: np.ndarray, flags: np.ndarray, arrays: Mapping[str, np.ndarray],
             batch_size: int, shuffle: bool, rng: np.random.Generator, rc_mode: str,
             drop_remainder: bool) -> Iterator[tuple]:
  """One epoch of numpy batches: (indices [B, L] int8, is_reverse [B], {name: [B, ...]})."""
  n = len(indices)
  # "double" = the reference's add_rev: every row appears once per strand in each epoch.
  order = np.arange(2 * n if rc_mode == "double" else n)
  if shuffle:
    rng.shuffle(order)
  stop = len(order) - len(order) % batch_size if drop_remainder else len(order)
  for start in range(0, stop, batch_size):
    picks = order[start:start + batch_size]
    rows = picks % n
    flip = picks >= n if rc_mode == "double" else (
        rng.random(len(rows)) < 0.5 if rc_mode == "random" else np.zeros(len(rows), bool))
    idx = indices[rows]
    if flip.any():
      idx = idx.copy()
      idx[flip] = reverse_complement_indices(idx[flip])
    # A flipped copy of a reverse-orientation sequence is forward again.
    rev = np.logical_xor(flags[rows], flip).astype(np.float32)
    yield idx, rev, {k: v[rows] for k, v in arrays.items()}


def _make_dataset(indices: np.ndarray, flags: np.ndarray, arrays: Mapping[str, np.ndarray],
                  batch_size: int, shuffle: bool, seed: Optional[int], rc_mode: str,
                  drop_remainder: bool, finish) -> tf.data.Dataset:
  if batch_size < 1:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  _check_rc_mode(rc_mode)
  length = indices.shape[1]
  # One Generator per dataset: each pass (epoch) draws a fresh permutation, reproducibly
  # for a given seed. Batching happens in numpy, so memory stays at the int8 index array
  # (no 2 GB graph constant, no reverse-complement copy of the table).
  rng = np.random.default_rng(seed)
  signature = (tf.TensorSpec([None, length], tf.int8), tf.TensorSpec([None], tf.float32),
               {k: tf.TensorSpec([None, *v.shape[1:]], tf.float32) for k, v in arrays.items()})
  arrays = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
  dataset = tf.data.Dataset.from_generator(
      lambda: _batches(indices, flags, arrays, batch_size, shuffle, rng, rc_mode, drop_remainder),
      output_signature=signature)
  return dataset.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def dream_dataset(table: SequenceTable, plasmid: str, batch_size: int = 1024, *,
                  shuffle: bool = True, seed: Optional[int] = 0, reverse_complement: str = "double",
                  singleton_channel: bool = True, soft_label_targets: bool = True,
                  sequence_length: int = DREAM_SEQUENCE_LENGTH, n_value: float = 0.0,
                  drop_remainder: bool = False) -> tf.data.Dataset:
  """Yeast training/validation batches as the reference DataProcessor builds them.

  Args:
    table: from `read_dream_table` (target "expression" = measured bin).
    plasmid: the plasmid sequence (`load_plasmid`), used to pad to `sequence_length`.
    batch_size: examples per batch (reference: 1024 train, 4096 validation).
    shuffle: reshuffle every epoch (train) or keep file order (validation).
    seed: seed of the shuffle / random reverse complement (None = nondeterministic).
    reverse_complement: "double" (reference: each epoch holds every sequence and its reverse
      complement with is_reverse = 1, so an epoch has 2N examples), "random" (one strand per
      sequence and epoch, chosen at random), or "none".
    singleton_channel: add channel 5 (is_singleton); False gives 5 channels.
    soft_label_targets: add the "bin_probs" target (for the KL loss).
    n_value: value of N positions in the one-hot channels (0 in reference training).

  Returns:
    Dataset of (inputs [B, L, 6] float32, {"expression": [B], "bin_probs": [B, 18]}).
  """
  if "expression" not in table.targets:
    raise DataFormatError(f"the table has no 'expression' target (targets: {sorted(table.targets)})")
  expression = np.asarray(table.targets["expression"], np.float32)
  indices = encode_indices(pad_with_plasmid(table.sequences, plasmid, sequence_length))
  singleton = is_singleton(expression).astype(np.float32)
  arrays = {"expression": expression, "singleton": singleton}
  flags = np.zeros(len(table), bool)

  def finish(idx, rev, values):
    inputs = _assemble(idx, rev, values["singleton"] if singleton_channel else None, n_value)
    targets = {"expression": values["expression"]}
    if soft_label_targets:
      targets["bin_probs"] = soft_labels(values["expression"])
    return inputs, targets

  return _make_dataset(indices, flags, arrays, batch_size, shuffle, seed, reverse_complement,
                       drop_remainder, finish)


def regression_dataset(table: SequenceTable, batch_size: int = 32, *, shuffle: bool = True,
                       seed: Optional[int] = 0, reverse_complement: str = "none",
                       reverse_channel: bool = True, n_value: float = 0.0,
                       drop_remainder: bool = False) -> tf.data.Dataset:
  """DeepSTARR / lentiMPRA batches as the reference benchmark notebooks build them.

  Inputs are the sequences as given (the files already hold both orientations), AGCT one-hot
  plus the is_reverse channel from the table (5 channels; 4 with `reverse_channel=False`).
  `reverse_complement` ("none" in the reference) can add strand augmentation; a flipped
  copy gets the opposite is_reverse flag.

  Returns:
    Dataset of (inputs [B, L, 5] float32, {target name: [B] float32}) with the table's targets
    (DeepSTARR: "dev", "hk"; lentiMPRA: "activity").
  """
  indices = encode_indices(table.sequences)
  flags = np.zeros(len(table), bool) if table.is_reverse is None else np.asarray(table.is_reverse, bool)

  def finish(idx, rev, values):
    return _assemble(idx, rev if reverse_channel else None, None, n_value), dict(values)

  return _make_dataset(indices, flags, dict(table.targets), batch_size, shuffle, seed,
                       reverse_complement, drop_remainder, finish)


def dream_test_inputs(sequences: Sequence[str], plasmid: Optional[str] = None, *,
                      sequence_length: int = DREAM_SEQUENCE_LENGTH, n_value: float = 0.25,
                      singleton_channel: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """Forward and reverse-complement inputs for test-time averaging (reference Predictor).

  Each sequence is padded with the plasmid (when `plasmid` is given; pass None for
  sequences already at `sequence_length`), then encoded twice: forward with is_reverse = 0
  and reverse complement with is_reverse = 1; is_singleton = 0 for both and N = `n_value`
  (0.25 in the reference predictor). The prediction is the mean of the model's outputs on
  the two arrays (`predict_rc_average`).

  Returns:
    (forward, reverse), each [N, L, 6] float32 ([N, L, 5] with singleton_channel=False).
  """
  sequences = list(sequences)
  if plasmid is not None:
    sequences = pad_with_plasmid(sequences, plasmid, sequence_length)
  idx = encode_indices(sequences)
  singleton = 0.0 if singleton_channel else None
  forward = _assemble(idx, 0.0, singleton, n_value).numpy()
  reverse = _assemble(reverse_complement_indices(idx), 1.0, singleton, n_value).numpy()
  return forward, reverse


def predict_rc_average(model, forward: np.ndarray, reverse: np.ndarray, head: str = "expression",
                       batch_size: int = 1024) -> np.ndarray:
  """Mean of `model(x, is_training=False)[head]` over the forward and reverse inputs.

  Args:
    model: any model honouring the contract (inputs [B, L, C] -> {head: [B] or [B, ...]}).
    forward, reverse: [N, L, C] from `dream_test_inputs`.
  Returns:
    [N] (or [N, ...]) float32 averaged predictions.
  """
  if forward.shape != reverse.shape:
    raise ValueError(f"forward and reverse inputs differ in shape: {forward.shape} vs {reverse.shape}")
  call = tf.function(lambda x: model(x, is_training=False)[head], reduce_retracing=True)
  outputs = []
  for start in range(0, len(forward), batch_size):
    both = np.concatenate([forward[start:start + batch_size], reverse[start:start + batch_size]])
    pred = call(tf.constant(both, tf.float32)).numpy()
    half = len(both) // 2
    outputs.append((pred[:half] + pred[half:]) / 2)
  if not outputs:
    raise ValueError("no sequences to predict")
  return np.concatenate(outputs)


# --- challenge test subsets ---------------------------------------------------------------------
# File stem in `data/test_subset_ids/` -> subset name used in scores.
SINGLE_SUBSET_FILES = {"high": "high_exp_seqs", "low": "low_exp_seqs", "native": "yeast_seqs",
                       "random": "all_random_seqs", "challenging": "challenging_seqs"}
PAIR_SUBSET_FILES = {"snv": "all_SNVs_seqs", "motif_perturbation": "motif_perturbation_seqs",
                     "motif_tiling": "motif_tiling_seqs"}


@dataclasses.dataclass(frozen=True)
class ChallengeSubsets:
  """Test-set indices of the DREAM challenge subsets (`prixfixe/evaluation.py` semantics).

  Attributes:
    single: {name: sorted unique test indices [n]} for high, low, native, random, challenging.
    pairs: {name: unique (alt, ref) index pairs [n, 2]} for snv, motif_perturbation,
      motif_tiling; scored on alt - ref differences.
    sequences: {test index: 110-nt sequence} for every index the CSVs name.
  """

  single: Mapping[str, np.ndarray]
  pairs: Mapping[str, np.ndarray]
  sequences: Mapping[int, str] = dataclasses.field(default_factory=dict)


def load_challenge_subsets(directory: PathLike) -> ChallengeSubsets:
  """Reads the subset CSVs in `directory` (`test_subset_ids/` of the challenge repository).

  Missing files are left out (the SNV file is large and often absent); duplicated rows are
  dropped, as the reference does (`np.unique` of `pos`, set of (alt_pos, ref_pos) pairs).
  """
  directory = os.fspath(directory)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"challenge subset directory not found: {directory}")
  single, pairs, sequences = {}, {}, {}
  for name, stem in SINGLE_SUBSET_FILES.items():
    path = os.path.join(directory, stem + ".csv")
    if os.path.exists(path):
      frame = pd.read_csv(path)
      _require_columns(frame, path, ["pos", "sequence"])
      single[name] = np.unique(frame["pos"].to_numpy(np.int64))
      sequences.update(zip(frame["pos"].astype(int), frame["sequence"]))
  for name, stem in PAIR_SUBSET_FILES.items():
    path = os.path.join(directory, stem + ".csv")
    if os.path.exists(path):
      frame = pd.read_csv(path)
      _require_columns(frame, path, ["alt_pos", "ref_pos"])
      pair = frame[["alt_pos", "ref_pos"]].to_numpy(np.int64)
      pairs[name] = np.unique(pair, axis=0) if len(pair) else pair.reshape(0, 2)
      for prefix in ("alt", "ref"):
        if f"{prefix}_sequence" in frame:
          sequences.update(zip(frame[f"{prefix}_pos"].astype(int), frame[f"{prefix}_sequence"]))
  if not single and not pairs:
    raise DataFormatError(f"{directory}: none of the challenge subset CSVs "
                          f"({sorted({**SINGLE_SUBSET_FILES, **PAIR_SUBSET_FILES}.values())}) found")
  return ChallengeSubsets(single=single, pairs=pairs, sequences=sequences)


def load_public_leaderboard_ids(directory: PathLike) -> tuple[set[int], set[tuple[int, int]]]:
  """Reads `public_leaderboard_ids/*_indices.json`: (single indices, (alt, ref) pairs).

  The final evaluation drops these (see `tasks.dream.challenge_scores(exclude=...)`).
  """
  directory = os.fspath(directory)
  singles, pairs = set(), set()
  for stem in ("high_exp_indices", "low_exp_indices", "yeast_exp_indices", "random_exp_indices",
               "challenging_exp_indices"):
    path = os.path.join(directory, stem + ".json")
    if os.path.exists(path):
      with open(path) as f:
        singles.update(int(k) for k in json.load(f))
  for stem in ("SNVs_exp_indices", "motif_perturbation_exp_indices", "motif_tiling_exp_indices"):
    path = os.path.join(directory, stem + ".json")
    if os.path.exists(path):
      with open(path) as f:
        for key in json.load(f):
          alt, ref = key.split(",")
          pairs.add((int(alt), int(ref)))
  if not singles and not pairs:
    raise DataFormatError(f"{directory}: no public-leaderboard index files found")
  return singles, pairs
