"""Marginal footprints (`chrombpnet footprints`): a motif inserted at the centre of background
sequences, the model's predicted profile averaged over them.

As the reference (`evaluation/marginal_footprints/marginal_footprinting.py`): for each
background sequence the motif replaces the bases centred on the input midpoint; the model
predicts the sequence and its reverse complement; per region the footprint is
softmax(logits) x (exp(logcounts) - 1) of the forward plus the flipped reverse prediction,
normalised to sum 1; the footprint is the mean over regions. Its maximum is the response
the reference gates on (bias motifs in the bias-corrected model: max < 0.003 for a 1000-bp
output, i.e. 3 x uniform; here `max_ratio` = max x output length so any length compares
to 3). Also recorded: the mean predicted counts with the motif and without it
(`counts_log2fc`), which shows accessibility a motif creates.

Motifs are strings over ACGTN (N keeps the background base).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional

import numpy as np
import tensorflow as tf

from tf_seqmodels.models.bpnet import COUNTS_HEAD, PROFILE_HEAD

CORRECTED_MAX_RATIO = 3.0  # the reference's 0.003 at 1000 bp


@dataclasses.dataclass
class Footprint:
  motif: str
  profile: np.ndarray  # [T] mean normalised footprint
  counts: float  # mean predicted counts with the motif
  baseline_counts: float  # ... without it

  @property
  def max_ratio(self) -> float:
    return float(self.profile.max() * len(self.profile))

  @property
  def counts_log2fc(self) -> float:
    return float(np.log2((self.counts + 1.0) / (self.baseline_counts + 1.0)))

  def to_dict(self) -> dict:
    return {"motif": self.motif, "max": float(self.profile.max()), "max_ratio": self.max_ratio,
            "counts": self.counts, "baseline_counts": self.baseline_counts,
            "counts_log2fc": self.counts_log2fc}


def insert_motif(one_hot: np.ndarray, motif: str) -> np.ndarray:
  """Copies of one-hot [N, L, 4] with `motif` centred on L // 2 (N positions untouched)."""
  motif = motif.upper()
  if not motif or set(motif) - set("ACGTN"):
    raise ValueError(f"motif {motif!r} must be a non-empty string over A, C, G, T, N")
  length = one_hot.shape[1]
  if len(motif) > length:
    raise ValueError(f"motif {motif!r} is longer than the {length}-bp input")
  out = np.array(one_hot, np.float32, copy=True)
  start = length // 2 - len(motif) // 2
  for k, base in enumerate(motif):
    if base != "N":
      out[:, start + k] = np.eye(4, dtype=np.float32)["ACGT".index(base)]
  return out


def _predict(model, one_hot: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  profiles, counts = [], []
  for i in range(0, len(one_hot), batch_size):
    out = model(tf.constant(one_hot[i:i + batch_size]), is_training=False)
    profiles.append(np.asarray(out[PROFILE_HEAD], np.float64))
    counts.append(np.asarray(out[COUNTS_HEAD], np.float64).reshape(-1))
  return np.concatenate(profiles), np.concatenate(counts)


def _expected(logits: np.ndarray, logcounts: np.ndarray) -> np.ndarray:
  z = logits - logits.mean(axis=1, keepdims=True)  # the reference's softmax centres on the mean
  probs = np.exp(z - z.max(axis=1, keepdims=True))
  probs /= probs.sum(axis=1, keepdims=True)
  return probs * (np.exp(logcounts) - 1.0)[:, None]


def marginal_footprint(model, backgrounds: np.ndarray, motif: str, batch_size: int = 64,
                       baseline_counts: Optional[float] = None) -> Footprint:
  """The footprint of `motif` under `model` (a contract model: profile + logcounts heads)."""
  with_motif = insert_motif(backgrounds, motif)
  fwd_logits, fwd_counts = _predict(model, with_motif, batch_size)
  rev_logits, rev_counts = _predict(model, np.ascontiguousarray(with_motif[:, ::-1, ::-1]),
                                    batch_size)
  total = _expected(fwd_logits, fwd_counts) + _expected(rev_logits, rev_counts)[:, ::-1]
  sums = total.sum(axis=1, keepdims=True)
  profile = (total / np.where(sums > 0, sums, 1.0)).mean(axis=0)
  counts = float(np.mean((np.exp(fwd_counts) - 1.0 + np.exp(rev_counts) - 1.0) / 2.0))
  if baseline_counts is None:
    _, base = _predict(model, np.asarray(backgrounds, np.float32), batch_size)
    baseline_counts = float(np.mean(np.exp(base) - 1.0))
  return Footprint(motif, profile, counts, baseline_counts)


def footprints(model, backgrounds: np.ndarray, motifs: Mapping[str, str],
               batch_size: int = 64) -> dict[str, Footprint]:
  """{name: Footprint} for every motif (the baseline predicted once)."""
  _, base = _predict(model, np.asarray(backgrounds, np.float32), batch_size)
  baseline = float(np.mean(np.exp(base) - 1.0))
  return {name: marginal_footprint(model, backgrounds, motif, batch_size, baseline)
          for name, motif in motifs.items()}


def enzyme_consensus(composition: np.ndarray, centre: int, half: int = 4,
                     min_enrichment: float = 1.25) -> str:
  """The enzyme's preferred k-mer from the base composition [2F, 4] around insertion sites
  (`reads.composition`), `centre` = the insertion base's row: per position the most
  enriched base (frequency / mean frequency of that base over the window) if enriched by
  `min_enrichment`, else N; N ends are trimmed."""
  composition = np.asarray(composition, np.float64)
  background = composition.mean(axis=0)
  letters = []
  for row in composition[centre - half:centre + half + 1]:
    ratio = row / background
    letters.append("ACGT"[int(ratio.argmax())] if ratio.max() >= min_enrichment else "N")
  return "".join(letters).strip("N") or "N"


__all__ = ["CORRECTED_MAX_RATIO", "Footprint", "enzyme_consensus", "footprints", "insert_motif",
           "marginal_footprint"]
