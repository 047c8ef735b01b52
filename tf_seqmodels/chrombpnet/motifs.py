"""TF-MoDISco (the real `modisco-lite`) on our contribution scores, and motif matching.

`run_modisco` reads a `scores.h5` in the layout `analysis.contribution_outputs` writes
(channels first, the layout `modisco motifs -i` reads), takes the central `window` bases
(default: min(500, input length), the reference's `-w 500` when it fits — modisco-lite's
own default 400 fails on shorter inputs), runs `modiscolite.tfmodisco.TFMoDISco` and writes
`modisco.h5` with `modiscolite.io.save_hdf5`: the same file `modisco motifs` writes, so
`modisco report -i modisco.h5 -o report/ -m motifs.meme` works on it.

Matching: each pattern's PPM is trimmed to the positions whose contribution weight is at
least 30% of its maximum (modisco report's `trim_threshold`), then compared with every
database motif at every offset (overlap >= min(5, shorter length)) on both strands;
similarity = mean Pearson correlation of the overlapping columns, weighted by the overlap
fraction of the shorter motif. A match needs similarity >= 0.75.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Optional, Union

import numpy as np

from tf_seqmodels.config import atomic_output

PathLike = Union[str, os.PathLike]
MATCH_THRESHOLD = 0.75


@dataclasses.dataclass
class Pattern:
  name: str  # "pos_patterns.pattern_0"
  ppm: np.ndarray  # [K, 4] trimmed
  cwm: np.ndarray  # [K, 4] trimmed contribution weights
  num_seqlets: int

  @property
  def consensus(self) -> str:
    return "".join("ACGT"[i] for i in self.ppm.argmax(1))

  @property
  def positive(self) -> bool:
    return self.name.startswith("pos_")


def read_scores(path: PathLike, window: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
  """(one_hot, hypothetical) [N, W, 4] float32 of the central `window` of a scores.h5."""
  import h5py
  with h5py.File(os.fspath(path), "r") as f:
    length = f["shap/seq"].shape[2]
    window = window or length
    if window > length:
      raise ValueError(f"modisco window {window} exceeds the {length}-bp contribution windows of "
                       f"{path}")
    start = length // 2 - window // 2
    hyp = f["shap/seq"][:, :, start:start + window].transpose(0, 2, 1)
    seq = f["raw/seq"][:, :, start:start + window].transpose(0, 2, 1)
  return seq.astype(np.float32), hyp.astype(np.float32)


def default_window(input_length: int) -> int:
  return min(500, input_length)


def run_modisco(scores_h5: PathLike, output_h5: PathLike, window: Optional[int] = None,
                max_seqlets: int = 50_000, n_leiden: int = 2) -> int:
  """modisco-lite on `scores_h5` -> `output_h5`; returns the number of patterns found."""
  import modiscolite
  seq, hyp = read_scores(scores_h5)
  window = window or default_window(seq.shape[1])
  seq, hyp = read_scores(scores_h5, window)
  try:  # modisco motifs' defaults (-z 20 -f 5 -t 30 -g 10 -j 0), FDR 0.05 as its CLI
    pos, neg = modiscolite.tfmodisco.TFMoDISco(
        one_hot=seq, hypothetical_contribs=hyp, max_seqlets_per_metacluster=max_seqlets,
        sliding_window_size=20, flank_size=5, trim_to_window_size=30, initial_flank_to_add=10,
        final_flank_to_add=0, target_seqlet_fdr=0.05, n_leiden_runs=n_leiden, verbose=False)
  except (ValueError, ZeroDivisionError) as e:
    # modisco-lite gives up on too few seqlets: a ValueError from its clustering, or a
    # ZeroDivisionError from its FDR threshold when one sign has no null seqlets at all.
    reason = str(e) if isinstance(e, ValueError) else \
        f"no null seqlets of one sign to set its FDR threshold ({type(e).__name__}: {e})"
    raise ValueError(f"modisco-lite failed on {os.fspath(scores_h5)} ({len(seq)} regions, window "
                     f"{window}): {reason} (too few regions or seqlets?)") from None
  with atomic_output(os.fspath(output_h5)) as tmp:
    modiscolite.io.save_hdf5(tmp, pos, neg, window)
  return len(pos or []) + len(neg or [])


def _trim(ppm: np.ndarray, cwm: np.ndarray, threshold: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
  score = np.abs(cwm).sum(axis=1)
  keep = np.flatnonzero(score >= threshold * score.max())
  if not keep.size:
    return ppm, cwm
  return ppm[keep[0]:keep[-1] + 1], cwm[keep[0]:keep[-1] + 1]


def read_patterns(modisco_h5: PathLike) -> list[Pattern]:
  """The patterns of a modisco-lite results file, trimmed, most seqlets first per sign."""
  import h5py
  patterns = []
  with h5py.File(os.fspath(modisco_h5), "r") as f:
    for group in ("pos_patterns", "neg_patterns"):
      if group not in f:
        continue
      names = sorted(f[group], key=lambda n: int(n.split("_")[-1]))
      for name in names:
        g = f[group][name]
        ppm, cwm = _trim(np.asarray(g["sequence"]), np.asarray(g["contrib_scores"]))
        patterns.append(Pattern(f"{group}.{name}", ppm, cwm, int(g["seqlets"]["n_seqlets"][0])))
  return patterns


def consensus_ppm(consensus: str) -> np.ndarray:
  """A PPM [K, 4] of a consensus string (N = uniform)."""
  out = np.full((len(consensus), 4), 0.25)
  for k, base in enumerate(consensus.upper()):
    if base in "ACGT":
      out[k] = 0.0
      out[k, "ACGT".index(base)] = 1.0
  return out


def similarity(query: np.ndarray, target: np.ndarray, min_overlap: int = 5) -> tuple[float, int, str]:
  """(similarity, offset of target start relative to query start, strand '+'/'-')."""
  best = (-1.0, 0, "+")
  for strand, t in (("+", target), ("-", target[::-1, ::-1])):
    need = min(min_overlap, len(query), len(t))
    for offset in range(-(len(t) - need), len(query) - need + 1):
      q_lo, q_hi = max(0, offset), min(len(query), offset + len(t))
      if q_hi - q_lo < need:
        continue
      qs, ts = query[q_lo:q_hi], t[q_lo - offset:q_hi - offset]
      qc, tc = qs - qs.mean(1, keepdims=True), ts - ts.mean(1, keepdims=True)
      denom = np.sqrt((qc**2).sum(1) * (tc**2).sum(1))
      r = np.where(denom > 0, (qc * tc).sum(1) / np.where(denom > 0, denom, 1), 0.0)
      score = float(r.mean()) * (q_hi - q_lo) / min(len(query), len(t))
      if score > best[0]:
        best = (score, offset, strand)
  return best


def match_patterns(patterns: list[Pattern], database: Mapping[str, np.ndarray],
                   threshold: float = MATCH_THRESHOLD) -> list[dict]:
  """Per pattern: its best database match (name, similarity, strand) or none."""
  rows = []
  for p in patterns:
    scored = sorted(((similarity(p.ppm, np.asarray(ppm, np.float64))[0], name)
                     for name, ppm in database.items()), reverse=True)
    best = scored[0] if scored else (float("nan"), None)
    rows.append({"pattern": p.name, "seqlets": p.num_seqlets, "consensus": p.consensus,
                 "match": best[1] if best[0] >= threshold else None,
                 "best_target": best[1], "similarity": float(best[0])})
  return rows


def read_meme(path: PathLike) -> dict[str, np.ndarray]:
  """Motifs of a MEME text file: {name: PPM [K, 4]} ("MOTIF name" + letter-probability
  matrix lines). Malformed rows raise ValueError naming file:line."""
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"motif database not found: {path}")
  motifs: dict[str, np.ndarray] = {}
  name, rows, reading = None, [], False
  with open(path) as f:
    for number, line in enumerate(f, 1):
      text = line.strip()
      if text.startswith("MOTIF"):
        if name and rows:
          motifs[name] = np.array(rows)
        parts = text.split()
        if len(parts) < 2:
          raise ValueError(f"{path}:{number}: MOTIF line without a name")
        name, rows, reading = parts[1] if len(parts) == 2 else f"{parts[1]}_{parts[2]}", [], False
      elif text.startswith("letter-probability"):
        reading = True
      elif reading and text and not text.startswith("URL"):
        try:
          values = [float(v) for v in text.split()]
        except ValueError:
          reading = False
          continue
        if len(values) != 4:
          raise ValueError(f"{path}:{number}: expected 4 probabilities (A C G T), got "
                           f"{len(values)}")
        rows.append(values)
      elif reading and not text:
        reading = False
  if name and rows:
    motifs[name] = np.array(rows)
  if not motifs:
    raise ValueError(f"{path}: no motifs (expected MEME format: 'MOTIF name' and "
                     f"'letter-probability matrix' blocks)")
  return motifs


def read_motif_strings(path: PathLike) -> dict[str, str]:
  """`name<TAB>sequence` lines (the reference's motif_to_pwm.tsv) -> {name: sequence}."""
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"motif list not found: {path}")
  out = {}
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip() or line.startswith("#"):
        continue
      fields = line.split()
      if len(fields) != 2 or set(fields[1].upper()) - set("ACGTN"):
        raise ValueError(f"{path}:{number}: expected 'name<TAB>sequence over ACGTN', got "
                         f"{line.strip()!r}")
      out[fields[0]] = fields[1].upper()
  return out


def write_meme(path: PathLike, patterns: list[Pattern]) -> None:
  """The patterns' PPMs as a MEME file (for TOMTOM / other tools)."""
  from tf_seqmodels.config import atomic_write_text
  parts = ["MEME version 5\n\nALPHABET= ACGT\n\nstrands: + -\n\n"
           "Background letter frequencies\nA 0.25 C 0.25 G 0.25 T 0.25\n\n"]
  for p in patterns:
    parts.append(f"MOTIF {p.name}\nletter-probability matrix: alength= 4 w= {len(p.ppm)} "
                 f"nsites= {p.num_seqlets}\n")
    parts.extend(" ".join(f"{v:.4f}" for v in row) + "\n" for row in p.ppm)
    parts.append("\n")
  atomic_write_text(os.fspath(path), "".join(parts))


__all__ = ["MATCH_THRESHOLD", "Pattern", "consensus_ppm", "default_window", "match_patterns",
           "read_meme", "read_motif_strings", "read_patterns", "read_scores", "run_modisco",
           "similarity", "write_meme"]
