"""Source files written into Kipoi model folders (they run without tf-seqmodels installed).

Placeholders `__NAME__` are substituted by `export.kipoi`; everything else is literal.
"""

# Kipoi 0.8.6 writes HDF5 through np.string_ / np.unicode_, removed in NumPy 2: restore the
# aliases before Kipoi writes (model.py and dataloader.py are imported before any writer).
NUMPY2_SHIM = '''\
import numpy as np

for _old, _new in (("string_", "bytes_"), ("unicode_", "str_")):
  if _old not in np.__dict__:
    setattr(np, _old, getattr(np, _new))
'''

MODEL_PY = '''\
"""Kipoi model class over a tf-seqmodels SavedModel (needs TensorFlow only)."""

import json
import os

__NUMPY2_SHIM__
from kipoi.model import BaseModel

HERE = os.path.dirname(os.path.abspath(__file__))


class SavedModelModel(BaseModel):
  """predict_on_batch(inputs) -> {head: numpy array [B, ...]}."""

  def __init__(self, savedmodel_dir="savedmodel"):
    import tensorflow as tf
    path = savedmodel_dir if os.path.isabs(savedmodel_dir) else os.path.join(HERE, savedmodel_dir)
    self._tf = tf
    self._model = tf.saved_model.load(path)
    with open(os.path.join(path, "assets", "metadata.json")) as f:
      self.metadata = json.load(f)

  def predict_on_batch(self, x):
    tf = self._tf
    if isinstance(x, dict):  # multi-input model: arrays keyed like its input_spec()
      spec = self.metadata["input_spec"]
      inputs = {k: tf.convert_to_tensor(np.asarray(x[k]), spec[k]["dtype"]) for k in spec}
      out = self._model.model.predict_on_batch(inputs)
    else:  # one-hot ACGT DNA [B, L, 4]
      out = self._model.model.predict_dna_on_batch(tf.convert_to_tensor(np.asarray(x, np.float32)))
    # numpy per head: Kipoi's collation and writers reject tensors.
    return {k: v.numpy() for k, v in out.items()}
'''

DNA_DATALOADER_PY = '''\
"""FASTA + BED -> fixed-length one-hot ACGT windows centred on each interval ('-' strand:
reverse-complemented, so the model reads the element 5' to 3' on its own strand)."""

__NUMPY2_SHIM__
from kipoi.data import Dataset
from kipoi.metadata import GenomicRanges

SEQUENCE_LENGTH = __SEQUENCE_LENGTH__
_CODES = np.full(256, -1, np.int64)
for _i, _base in enumerate("ACGT"):
  _CODES[ord(_base)] = _CODES[ord(_base.lower())] = _i


def read_bed(path):
  rows = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip() or line.startswith(("#", "track", "browser")):
        continue
      fields = line.rstrip("\\r\\n").split("\\t")
      if len(fields) < 3:
        raise ValueError(f"{path}:{number}: a BED line needs chrom, start and end "
                         f"(tab-separated), got {line.strip()!r}")
      try:
        start, end = int(fields[1]), int(fields[2])
      except ValueError:
        raise ValueError(f"{path}:{number}: start and end must be integers, got "
                         f"{fields[1]!r} and {fields[2]!r}") from None
      if start < 0 or end <= start:
        raise ValueError(f"{path}:{number}: interval {fields[0]}:{start}-{end} is negative, "
                         f"empty or inverted")
      strand = fields[5] if len(fields) > 5 else "."
      if strand not in ("+", "-", "."):
        raise ValueError(f"{path}:{number}: strand must be +, - or ., got {strand!r}")
      name = fields[3] if len(fields) > 3 else f"{fields[0]}:{start}-{end}"
      rows.append((fields[0], start, end, name, "*" if strand == "." else strand))
  return rows


def one_hot(sequence):
  """ACGT one-hot [L, 4] float32; N and other letters are all-zero rows."""
  codes = _CODES[np.frombuffer(sequence.encode("ascii"), np.uint8)]
  out = np.zeros((len(codes), 4), np.float32)
  known = codes >= 0
  out[np.nonzero(known)[0], codes[known]] = 1.0
  return out


class IntervalSequenceDataset(Dataset):
  """Each BED interval resized to SEQUENCE_LENGTH around its centre (as kipoiseq's
  auto_resize_len); positions outside the chromosome are N (all-zero rows); '-' strand
  intervals reverse-complemented (as kipoiseq's StringSeqIntervalDl)."""

  def __init__(self, intervals_file, fasta_file):
    import pyfaidx
    self.intervals = read_bed(intervals_file)
    self.fasta = pyfaidx.Fasta(fasta_file, as_raw=True, sequence_always_upper=True)

  def __len__(self):
    return len(self.intervals)

  def __getitem__(self, index):
    chrom, start, end, name, strand = self.intervals[index]
    if chrom not in self.fasta:
      raise ValueError(f"interval {name}: chromosome {chrom!r} is not in the FASTA file")
    centre = (start + end) // 2
    start = centre - SEQUENCE_LENGTH // 2
    end = start + SEQUENCE_LENGTH
    size = len(self.fasta[chrom])
    sequence = self.fasta[chrom][max(0, start):min(size, end)]
    sequence = "N" * max(0, -start) + sequence + "N" * max(0, end - size)
    encoded = one_hot(sequence)
    if strand == "-":
      encoded = encoded[::-1, ::-1].copy()  # reverse complement: ACGT reversed is TGCA
    return {"inputs": encoded,
            "metadata": {"ranges": GenomicRanges(chr=chrom, start=start, end=end, id=name,
                                                 strand=strand)}}
'''

ARRAY_DATALOADER_PY = '''\
"""A .npz / .h5 file of model inputs keyed like the model's input_spec() -> one example per row."""

__NUMPY2_SHIM__
from kipoi.data import Dataset

INPUT_KEYS = __INPUT_KEYS__


class ArrayDataset(Dataset):
  """Row i of every input array; metadata: the row index."""

  def __init__(self, inputs_file):
    if inputs_file.endswith((".h5", ".hdf5")):
      import h5py
      with h5py.File(inputs_file, "r") as f:
        self.arrays = {k: f[k][()] for k in INPUT_KEYS if k in f}
    else:
      with np.load(inputs_file) as data:
        self.arrays = {k: data[k] for k in INPUT_KEYS if k in data.files}
    missing = sorted(set(INPUT_KEYS) - set(self.arrays))
    if missing:
      raise ValueError(f"{inputs_file}: missing input array(s) {missing}; needs {INPUT_KEYS}")
    sizes = {len(v) for v in self.arrays.values()}
    if len(sizes) != 1:
      raise ValueError(f"{inputs_file}: input arrays have different numbers of rows {sizes}")
    self.size = sizes.pop()

  def __len__(self):
    return self.size

  def __getitem__(self, index):
    return {"inputs": {k: v[index] for k, v in self.arrays.items()},
            "metadata": {"index": np.asarray(index)}}
'''


def render(template: str, **values) -> str:
  text = template.replace("__NUMPY2_SHIM__", NUMPY2_SHIM)
  for key, value in values.items():
    text = text.replace(f"__{key.upper()}__", value)
  return text
