"""Strand bookkeeping of model outputs: reverse-complement copies mapped back to the forward strand.

A model's output for the reverse complement of a sequence runs the other way: its positional
axis (bins) is reversed, and a stranded assay's tracks trade places (CAGE '+' of the reverse
complement is CAGE '-' of the forward strand). `to_forward_strand` undoes both; `CopyAverage`
averages outputs over augmented copies (forward / reverse-complement strands, shifts), as
test-time augmentation and variant scoring do:

    average = CopyAverage(position_axes={"tracks": 1}, track_permutations={"tracks": perm})
    average.add(model(x), is_reverse=False)
    average.add(model(reverse_complement(x)), is_reverse=True)
    mean = average.result()                      # {head: [B, bins, tracks]}

A track permutation `perm` [T] gives, for each track, the index of its strand pair (itself for
unstranded tracks): the data layer's `data.tracks.strand_permutation`. The outputs may be numpy
arrays or tf.Tensors (graph-safe: usable inside `strategy.run`).
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional

import numpy as np
import tensorflow as tf

from tf_seqmodels.config import ConfigError


def strand_flagged(model) -> bool:
  """Whether `model.encode_dna(x, is_reverse=True)` differs from the forward encoding (probed
  on one base): models with a strand-flag input channel (DREAM's is_reverse). For the others a
  reverse-complemented copy is just another sequence: exports save one function for both
  strands, and variant scoring runs both strands in one batch."""
  encode = getattr(model, "encode_dna", None)
  if encode is None:
    return False
  probe = tf.constant([[[1.0, 0.0, 0.0, 0.0]]])
  return not np.array_equal(np.asarray(encode(probe)), np.asarray(encode(probe, True)))


def check_track_permutation(perm: Any, where: str = "track permutation") -> np.ndarray:
  """`perm` as int32 [T]; ConfigError unless it is a permutation that is its own inverse
  (strand pairs are mutual)."""
  perm = np.asarray(perm)
  if perm.ndim != 1 or (perm.size and not np.issubdtype(perm.dtype, np.integer)):
    raise ConfigError(f"{where}: expected a list of track indices, got {perm.tolist()!r}")
  perm = perm.astype(np.int32)
  if sorted(perm.tolist()) != list(range(len(perm))):
    raise ConfigError(f"{where}: {perm.tolist()} is not a permutation of 0..{len(perm) - 1}")
  if not np.array_equal(perm[perm], np.arange(len(perm))):
    raise ConfigError(f"{where}: strand pairs must be mutual (perm[perm[i]] == i), got "
                      f"{perm.tolist()}")
  return perm


def to_forward_strand(value, position_axis: Optional[int], perm: Optional[np.ndarray] = None,
                      head: str = "output"):
  """A reverse-complement copy's output [B, ...] on the forward strand: the positional axis
  (None: none) reversed, then the last (track) axis permuted by `perm` (None: unstranded)."""
  is_tensor = tf.is_tensor(value)
  if position_axis is not None:
    value = tf.reverse(value, axis=[position_axis]) if is_tensor else np.flip(value, position_axis)
  if perm is not None:
    tracks = value.shape[-1]
    if tracks is not None and tracks != len(perm):
      raise ConfigError(f"head {head!r}: the track permutation has {len(perm)} entries but the "
                        f"head has {tracks} tracks")
    value = tf.gather(value, perm, axis=-1) if is_tensor else np.take(value, perm, axis=-1)
  return value


class CopyAverage:
  """Running mean of {head: output} over augmented copies of the same inputs."""

  def __init__(self, position_axes: Mapping[str, Optional[int]],
               track_permutations: Optional[Mapping[str, Any]] = None):
    self.position_axes = dict(position_axes)
    self.track_permutations = {h: check_track_permutation(p, f"track permutation of {h!r}")
                               for h, p in (track_permutations or {}).items()}
    self._total: dict[str, Any] = {}
    self._count = 0

  def add(self, outputs: Mapping[str, Any], is_reverse: bool) -> None:
    for head, value in outputs.items():
      if is_reverse:
        value = to_forward_strand(value, self.position_axes.get(head),
                                  self.track_permutations.get(head), head)
      self._total[head] = value if head not in self._total else self._total[head] + value
    self._count += 1

  def result(self) -> dict[str, Any]:
    if not self._count:
      raise ValueError("CopyAverage: no copies were added")
    return {head: value / float(self._count) for head, value in self._total.items()}


# --- where permutations come from ------------------------------------------------------------

def targets_permutation(targets_txt: str) -> np.ndarray:
  """The strand-pair permutation [T] of a Basenji targets table."""
  from tf_seqmodels.data.tracks import read_targets_table, strand_permutation
  return strand_permutation(read_targets_table(targets_txt))


def data_track_permutations(section) -> dict[str, np.ndarray]:
  """{head: permutation} of the stranded track heads a training config's `data` section
  (`training.data_builders.DataSection`) trains: the targets table of a `tracks` source, the
  targets.txt of a `basenji` directory, each source of a `multi` section. Heads without a
  table (or only unstranded tracks) are left out."""
  kind, options = section.type, dict(section.options)
  if kind == "multi":
    from tf_seqmodels.training.data_builders import DataSection
    out = {}
    for name, raw in (options.get("sources") or {}).items():
      sub = DataSection.from_dict({"batch_size": section.batch_size, **raw},
                                  where=f"data.options.sources.{name}")
      out.update(data_track_permutations(sub))
    return out
  if kind == "tracks" and options.get("targets"):
    from tf_seqmodels.data.tracks import TrackDataConfig
    head = TrackDataConfig.from_dict(options.get("data") or {}, where="data.options.data").head
    perm = targets_permutation(options["targets"])
  elif kind == "basenji" and options.get("data_dir"):
    table = os.path.join(options["data_dir"], "targets.txt")
    if not os.path.exists(table):
      return {}
    head, perm = options.get("head", "tracks"), targets_permutation(table)
  else:
    return {}
  return {head: perm} if not np.array_equal(perm, np.arange(len(perm))) else {}
