"""Simulated ATAC-seq reads from a synthetic genome with a planted TF motif and a known
enzyme preference: the ground truth the pipeline's tests and benchmark check against.

    sim = simulate_atac(out_dir, SimulationConfig(num_chromosomes=4, chromosome_length=100_000))
    sim.fasta, sim.peaks, sim.fragments, sim.fold, sim.tf_consensus, sim.enzyme_consensus

The genome background, the JASPAR motifs and the instance sampler are `data.synthetic`'s.
Accessibility: a Gaussian bump (sigma `bump_width`) of `peak_rate` insertions per bp per
planted TF site (1-3 sites around each peak summit) on a uniform `background_rate`.
Enzyme preference: the insertion rate at a centre base x is multiplied by
exp(sum_k W[k, base at x + k]) for k = -3..3 with a reverse-complement-symmetric W (Tn5's
preference is symmetric about the centre of its 9-bp target duplication), strongest for
`enzyme_consensus` = "GCANTGC" (N: any base), normalised to mean 1 over random sequence.
Insertion counts are Poisson; nearby insertions on a chromosome pair into fragments,
written in the 10x convention (start = left insertion centre, end = right insertion centre,
i.e. reads shifted +4/-5) as `fragments.tsv.gz`, or as unshifted single-end reads
(`tagAlign` / BAM: '+' read starting 4 bp left of a centre, '-' read ending 5 bp right).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
from typing import Optional, Union

import numpy as np

from tf_seqmodels.config import Config, ConfigError, atomic_write_text
from tf_seqmodels.data.intervals import Fold, Regions, write_narrowpeak
from tf_seqmodels.data.synthetic import (background_indices, load_motifs, sample_motif_instance,
                                         write_fasta_indices)

PathLike = Union[str, os.PathLike]
# Log-multipliers of the enzyme preference at offsets -3..3 from the insertion centre:
# G C A . T G C  (reverse-complement symmetric: offset k base b <-> offset -k base comp(b)).
ENZYME_CONSENSUS = "GCANTGC"
_ENZYME_WEIGHTS = (1.2, 0.9, 0.6, 0.0, 0.6, 0.9, 1.2)


@dataclasses.dataclass(frozen=True)
class SimulationConfig(Config):
  seed: int = 0
  num_chromosomes: int = 4
  chromosome_length: int = 100_000
  tf_motif: str = "CTCF"  # a `data.synthetic.MOTIFS` name (JASPAR matrix)
  peak_spacing: int = 1000
  peak_rate: float = 1.5  # insertions / bp at a bump's top, per planted site
  bump_width: float = 25.0
  background_rate: float = 0.04
  enzyme_strength: float = 1.0  # scales the log-multipliers (0 = no enzyme bias)
  read_length: int = 50

  def validate(self) -> None:
    if self.num_chromosomes < 3:
      raise ConfigError("SimulationConfig: num_chromosomes must be >= 3 (train, valid, test)")
    if self.chromosome_length < 5 * self.peak_spacing:
      raise ConfigError("SimulationConfig: chromosome_length must hold at least 5 peaks")

  @property
  def chromosomes(self) -> list[str]:
    return [f"chr{i + 1}" for i in range(self.num_chromosomes)]

  @property
  def fold(self) -> Fold:
    names = self.chromosomes
    return Fold(train=tuple(names[:-2]), valid=(names[-2],), test=(names[-1],))


@dataclasses.dataclass(frozen=True)
class SimulatedATAC:
  root: str
  config: SimulationConfig
  tf_consensus: str
  tf_probs: np.ndarray  # [K, 4] the planted motif's JASPAR probabilities
  enzyme_consensus: str = ENZYME_CONSENSUS

  def path(self, name: str) -> str:
    return os.path.join(self.root, name)

  fasta = property(lambda self: self.path("genome.fa"))
  peaks = property(lambda self: self.path("peaks.narrowPeak"))
  fragments = property(lambda self: self.path("fragments.tsv.gz"))
  tagalign = property(lambda self: self.path("reads.tagAlign.gz"))
  fold = property(lambda self: self.path("fold.json"))
  truth = property(lambda self: self.path("truth.json"))


def enzyme_log_bias(indices: np.ndarray, strength: float = 1.0) -> np.ndarray:
  """Log-multiplier [L] of the insertion rate at each centre base of `indices` (0 at the
  7-bp context's edges), mean-normalised over uniform random sequence."""
  log_bias = np.zeros(len(indices))
  for k, weight in zip(range(-3, 4), _ENZYME_WEIGHTS):
    base = ENZYME_CONSENSUS[k + 3]
    if base == "N":
      continue
    target = "ACGT".index(base)
    lo, hi = max(0, -k), len(indices) - max(0, k)
    log_bias[lo:hi] += strength * weight * (indices[lo + k:hi + k] == target)
  # E[exp(w 1[match])] = (3 + e^w) / 4 per position, independent positions.
  log_norm = sum(np.log((3 + np.exp(strength * w)) / 4) for w in _ENZYME_WEIGHTS if w)
  return log_bias - log_norm


def simulate_atac(out_dir: PathLike, config: Optional[SimulationConfig] = None,
                  write_tagalign: bool = False) -> SimulatedATAC:
  """Writes genome.fa (+ .fai), peaks.narrowPeak, fragments.tsv.gz, fold.json, truth.json
  (and reads.tagAlign.gz) under `out_dir`."""
  import pyfaidx
  config = config or SimulationConfig()
  root = os.path.abspath(os.fspath(out_dir))
  os.makedirs(root, exist_ok=True)
  motif = {m.name: m for m in load_motifs()}[config.tf_motif]
  sequences, peak_rows, fragments = {}, [], []
  x = np.arange(config.chromosome_length)
  for number, chrom in enumerate(config.chromosomes):
    rng = np.random.default_rng([config.seed, number])
    indices = background_indices(config.chromosome_length, rng)
    grid = np.arange(config.peak_spacing, config.chromosome_length - config.peak_spacing,
                     config.peak_spacing)
    centres = grid + rng.integers(-config.peak_spacing // 10, config.peak_spacing // 10 + 1,
                                  len(grid))
    rate = np.full(config.chromosome_length, config.background_rate)
    for c in centres:
      for offset in (0, -45, 45)[:int(rng.integers(1, 4))]:
        site = int(c + offset)
        start = site - motif.length // 2
        indices[start:start + motif.length] = sample_motif_instance(motif, rng, int(rng.choice([1, -1])))
        lo, hi = site - 4 * int(config.bump_width), site + 4 * int(config.bump_width)
        rate[lo:hi] += config.peak_rate * np.exp(-0.5 * ((x[lo:hi] - site) / config.bump_width)**2)
      peak_rows.append((chrom, int(c) - 150, int(c) + 150))
    rate *= np.exp(enzyme_log_bias(indices, config.enzyme_strength))
    rate[:config.read_length] = rate[-config.read_length:] = 0.0  # reads stay on the chromosome
    counts = rng.poisson(rate)
    ends = np.repeat(x, counts)  # sorted insertion centres
    # Pair the first and second halves of consecutive blocks of 2 x 50 insertions: local
    # fragments (short in peaks, longer in the background), ends always distinct bases
    # unless 51+ insertions share one base (such pairs are dropped).
    block = 100
    usable = len(ends) // block * block
    blocks = ends[:usable].reshape(-1, 2, block // 2)
    pairs = np.stack([blocks[:, 0].ravel(), blocks[:, 1].ravel()], 1)
    pairs = pairs[pairs[:, 0] < pairs[:, 1]]
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
    sequences[chrom] = indices
    fragments.append((chrom, pairs))
  write_fasta_indices(os.path.join(root, "genome.fa"), sequences)
  pyfaidx.Fasta(os.path.join(root, "genome.fa"), rebuild=True).close()
  with gzip.open(os.path.join(root, "fragments.tsv.gz.tmp"), "wt") as f:
    f.write("# simulated 10x-style fragments: start/end = insertion centres\n")
    for chrom, pairs in fragments:
      f.write("".join(f"{chrom}\t{a}\t{b}\tcell\t1\n" for a, b in pairs))
  os.replace(os.path.join(root, "fragments.tsv.gz.tmp"), os.path.join(root, "fragments.tsv.gz"))
  if write_tagalign:
    length = config.read_length
    with gzip.open(os.path.join(root, "reads.tagAlign.gz.tmp"), "wt") as f:
      for chrom, pairs in fragments:
        for a, b in pairs:
          f.write(f"{chrom}\t{a - 4}\t{a - 4 + length}\tN\t1000\t+\n")
          f.write(f"{chrom}\t{b + 5 - length}\t{b + 5}\tN\t1000\t-\n")
    os.replace(os.path.join(root, "reads.tagAlign.gz.tmp"),
               os.path.join(root, "reads.tagAlign.gz"))
  peaks = Regions.from_intervals([r[0] for r in peak_rows], [r[1] for r in peak_rows],
                                 [r[2] for r in peak_rows])
  write_narrowpeak(os.path.join(root, "peaks.narrowPeak"), peaks)
  config.fold.save(os.path.join(root, "fold.json"))
  consensus = "".join("ACGT"[i] for i in motif.probs.argmax(1))
  atomic_write_text(os.path.join(root, "truth.json"), json.dumps({
      "config": config.to_dict(), "tf_motif": config.tf_motif, "tf_consensus": consensus,
      "enzyme_consensus": ENZYME_CONSENSUS, "fragments": int(sum(len(p) for _, p in fragments)),
      "peaks": len(peaks)}, indent=1))
  return SimulatedATAC(root, config, consensus, motif.probs)


__all__ = ["ENZYME_CONSENSUS", "SimulatedATAC", "SimulationConfig", "enzyme_log_bias",
           "simulate_atac"]
