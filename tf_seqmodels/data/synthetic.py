"""A realistic, self-contained genomics dataset built from real transcription-factor motifs.

    data = generate_synthetic_dataset("demo_data", SyntheticConfig(seed=0))
    data.fasta, data.tracks (targets.txt), data.truth_tracks, data.peaks, data.fold, data.dream_table

Motifs are JASPAR CORE matrices shipped with the `pyjaspar` package (release and matrix IDs
pinned in `SyntheticConfig`, so no network is needed). The generator writes

    genome.fa (+ .fai), chrom.sizes     a synthetic genome: GC-varying background, N gaps, genes
    tracks/*.bw, targets.txt            observed per-base counts: dnase, ctcf (ChIP), cage_plus,
                                        cage_minus (stranded; strand pairs in targets.txt)
    truth/*.bw, truth/targets.txt       the expected counts (Poisson rates) the observations
                                        were drawn from: the noise-free ground truth
    peaks.narrowPeak, nonpeaks.narrowPeak   accessible regions (summits) and background regions
    genes.bed, planted.bed              planted TSSs (score 1 = with a TATA box) and motif
                                        instances (name = motif:role), BED6
    fold.json                           chromosome split: last two chromosomes valid / test
    dream/train.txt, dream/plasmid.json, dream/expected.txt
                                        DREAM-challenge-format promoter table (sequence,
                                        expression bin 0-17, fold) and its noise-free values
    motifs.json                         the motifs (probabilities) and the grammar parameters
    manifest.json                       config + files; written last (marks a complete dataset)

The generating function is a deterministic function of sequence (`GroundTruth`), so accuracy
can be measured against the truth and against the noise ceiling (Pearson r between the truth
and the observations). Its grammar (`Grammar` holds every constant):

- binding: each motif is scanned on both strands; occupancy = sigmoid((score - threshold) /
  temperature) with log-odds scores in bits and a per-motif threshold that a random
  background position exceeds with probability ~1e-5 (capped at 2 bits below the best
  score), so spurious weak sites exist, as in real genomes;
- accessibility (dnase): every bound site opens a ~100-bp region in proportion to its
  occupancy and motif weight; active promoters are accessible too;
- cooperativity, spacing and orientation: a FOXA2 and an HNF4A site on the same strand
  8-40 bp apart add a bonus that follows the 10.5-bp helical period (strongest at 21 bp);
- promoters (cage): a TATA box (TBP) on strand s starts transcription 30 bp downstream on s;
  SP1 / NFY sites up to 200 bp upstream raise the promoter's strength;
- distal enhancers: activator sites (AP-1, CEBPB, FOXA2, HNF4A, cooperative pairs) 200-2,500 bp
  from a TSS multiply its output by (1 + sum of activity x exp(-distance / 1 kb)), each
  term damped by every bound CTCF site in between (insulation);
- ctcf: ChIP signal at bound CTCF sites;
- observations: per-base Poisson counts around the rates, plus a uniform background.

Everything is seeded: the same config gives byte-identical sequence and identical tracks.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional, Sequence, Union

import numpy as np

from tf_seqmodels.config import Config, ConfigError, atomic_write_text
# The DREAM challenge's adapters around its 80-nt random inserts.
from tf_seqmodels.data.dream import LEFT_ADAPTER, RIGHT_ADAPTER
from tf_seqmodels.data.intervals import Fold, Regions, write_bed, write_narrowpeak
from tf_seqmodels.data.tracks import TrackSpec, write_targets_table

PathLike = Union[str, os.PathLike]
TRACKS = ("dnase", "ctcf", "cage_plus", "cage_minus")
FORMAT_VERSION = 1

# name -> (JASPAR matrix ID in the pinned release, role)
MOTIFS = {
    "CTCF": ("MA0139.2", "insulator"),
    "TBP": ("MA0108.3", "core_promoter"),
    "SP1": ("MA0079.5", "proximal"),
    "NFYA": ("MA0060.4", "proximal"),
    "FOS::JUN": ("MA0099.4", "activator"),
    "CEBPB": ("MA0466.4", "activator"),
    "FOXA2": ("MA0047.4", "activator"),
    "HNF4A": ("MA0114.5", "activator"),
}


# --- configuration -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Grammar(Config):
  """Every constant of the generating function (rates are expected counts per base)."""

  background_tail: float = 1e-5  # P(random position scores above a motif's threshold)
  max_threshold_gap: float = 2.0  # threshold at most this many bits below the best score
  temperature: float = 0.5  # bits
  min_occupancy: float = 0.05  # weaker sites are ignored
  weights: dict[str, float] = dataclasses.field(default_factory=lambda: {
      "CTCF": 0.8, "TBP": 0.1, "SP1": 0.6, "NFYA": 0.5, "FOS::JUN": 1.0, "CEBPB": 0.8,
      "FOXA2": 0.7, "HNF4A": 0.7})
  cooperative_pair: tuple[str, ...] = ("FOXA2", "HNF4A")
  cooperative_spacing: tuple[int, ...] = (8, 40)
  cooperative_optimum: float = 21.0
  cooperative_weight: float = 2.0
  helical_period: float = 10.5
  tss_offset: int = 30  # TSS this far downstream of the TATA box centre
  proximal_window: tuple[int, ...] = (20, 200)  # upstream of the TSS
  basal_promoter: float = 0.03
  enhancer_window: tuple[int, ...] = (200, 2500)
  enhancer_decay: float = 1000.0
  insulation: float = 0.9  # a bound CTCF site between enhancer and TSS removes this fraction
  dnase_width: float = 50.0  # Gaussian sigma, bp
  ctcf_width: float = 70.0
  cage_width: float = 3.0
  dnase_amplitude: float = 0.25  # peak rate of a fully bound weight-1 site
  ctcf_amplitude: float = 0.3
  cage_amplitude: float = 2.0
  promoter_accessibility: float = 0.5
  background: dict[str, float] = dataclasses.field(default_factory=lambda: {
      "dnase": 0.004, "ctcf": 0.002, "cage_plus": 0.0005, "cage_minus": 0.0005})
  dream_half_saturation: float = 1.5  # expression bin = 17 A / (A + this)
  dream_noise: float = 1.0  # sd of measured bins around the truth

  def validate(self) -> None:
    def fail(msg):
      raise ConfigError(f"Grammar: {msg}")

    for field in ("cooperative_pair", "cooperative_spacing", "proximal_window", "enhancer_window"):
      if len(getattr(self, field)) != 2:
        fail(f"{field} must have 2 entries, got {getattr(self, field)}")
    if set(self.weights) != set(MOTIFS):
      fail(f"weights must name exactly the motifs {sorted(MOTIFS)}, got {sorted(self.weights)}")
    if not set(self.cooperative_pair) <= set(MOTIFS):
      fail(f"cooperative_pair must name motifs of {sorted(MOTIFS)}, got {self.cooperative_pair}")
    if set(self.background) != set(TRACKS):
      fail(f"background must name exactly the tracks {list(TRACKS)}")
    if not 0 < self.background_tail < 1 or self.temperature <= 0:
      fail("background_tail must be in (0, 1) and temperature positive")


@dataclasses.dataclass(frozen=True)
class SyntheticConfig(Config):
  """Size and layout of a synthetic dataset (defaults: 6 x 300 kb, seconds to generate)."""

  seed: int = 0
  num_chromosomes: int = 6
  chromosome_length: int = 300_000
  gene_spacing: tuple[int, ...] = (2_000, 5_000)
  enhancers_per_gene: float = 2.0
  orphan_enhancers_per_100kb: float = 10.0
  ctcf_spacing: int = 3_000  # mean distance between scattered CTCF sites
  insulated_fraction: float = 0.25  # enhancer-promoter pairs with a CTCF site between
  telomere_n: int = 200  # N at each chromosome end
  gap_n: int = 300  # one internal N gap per chromosome
  dream_sequences: int = 2_000
  jaspar_release: str = "JASPAR2024"
  grammar: Grammar = dataclasses.field(default_factory=Grammar)

  def validate(self) -> None:
    def fail(msg):
      raise ConfigError(f"SyntheticConfig: {msg}")

    if self.num_chromosomes < 3:
      fail(f"num_chromosomes must be >= 3 (train, valid and test), got {self.num_chromosomes}")
    if self.chromosome_length < 20_000:
      fail(f"chromosome_length must be >= 20,000 bp, got {self.chromosome_length}")
    if len(self.gene_spacing) != 2 or not 0 < self.gene_spacing[0] <= self.gene_spacing[1]:
      fail(f"gene_spacing must be (min, max) with 0 < min <= max, got {self.gene_spacing}")
    if self.dream_sequences < 10:
      fail(f"dream_sequences must be >= 10, got {self.dream_sequences}")

  @property
  def chromosomes(self) -> list[str]:
    return [f"chr{i + 1}" for i in range(self.num_chromosomes)]

  @property
  def fold(self) -> Fold:
    names = self.chromosomes
    return Fold(train=tuple(names[:-2]), valid=(names[-2],), test=(names[-1],))


# --- motifs ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Motif:
  """A position probability matrix and its log-odds scoring (background 0.25 per base)."""

  name: str
  matrix_id: str
  role: str
  probs: np.ndarray  # [K, 4] A, C, G, T

  @property
  def length(self) -> int:
    return len(self.probs)

  @property
  def log_odds(self) -> np.ndarray:
    return np.log2(self.probs / 0.25)

  @property
  def max_score(self) -> float:
    return float(self.log_odds.max(1).sum())

  def threshold(self, tail: float, max_gap: float, resolution: float = 0.05) -> float:
    """Score exceeded by a uniform random k-mer with probability ~`tail` (exact distribution by
    convolution at `resolution` bits), but at most `max_gap` below the best score."""
    dist, low = np.ones(1), 0
    for row in np.round(self.log_odds / resolution).astype(np.int64):
      offset = row.min()
      step = np.zeros(row.max() - offset + 1)
      np.add.at(step, row - offset, 0.25)
      dist, low = np.convolve(dist, step), low + offset
    upper_tail = np.cumsum(dist[::-1])[::-1]
    # Short motifs may never be that rare (a 7-mer has probability 4^-7): then the cap decides.
    rare = np.flatnonzero(upper_tail <= tail)
    at_tail = (low + rare[0]) * resolution if rare.size else self.max_score
    return float(min(at_tail, self.max_score - max_gap))


def load_motifs(release: str = "JASPAR2024") -> list[Motif]:
  """The `MOTIFS` matrices from the JASPAR SQLite database shipped in `pyjaspar` (offline).

  Probabilities are counts + 0.2 pseudocounts per base, normalised per position.
  """
  try:
    from pyjaspar import jaspardb
  except ImportError:
    raise ImportError("the synthetic data generator needs the JASPAR matrices of the 'pyjaspar' "
                      "package: pip install pyjaspar") from None
  db = jaspardb(release=release)
  motifs = []
  for name, (matrix_id, role) in MOTIFS.items():
    record = db.fetch_motif_by_id(matrix_id)
    if record is None:
      raise ValueError(f"JASPAR matrix {matrix_id} ({name}) is not in release {release}")
    counts = np.array([record.counts[b] for b in "ACGT"], np.float64).T
    probs = (counts + 0.2) / (counts + 0.2).sum(1, keepdims=True)
    motifs.append(Motif(name, matrix_id, role, probs))
  return motifs


# --- the generating function -------------------------------------------------------------------

@dataclasses.dataclass
class Sites:
  """Bound sites of one motif: centre position [S] int64, strand [S] (+1 / -1), occupancy [S]."""

  centre: np.ndarray
  strand: np.ndarray
  occupancy: np.ndarray


def _gaussian(width: float) -> np.ndarray:
  half = int(np.ceil(4 * width))
  x = np.arange(-half, half + 1)
  return np.exp(-0.5 * (x / width) ** 2)


def _render(length: int, positions: np.ndarray, weights: np.ndarray, width: float) -> np.ndarray:
  """Sum of peak-normalised Gaussians of `width` at `positions` with `weights` -> [length]."""
  kernel = _gaussian(width)
  half = len(kernel) // 2
  index = np.asarray(positions, np.int64)[:, None] + np.arange(-half, half + 1)[None, :]
  values = np.asarray(weights, np.float64)[:, None] * kernel[None, :]
  inside = (index >= 0) & (index < length)
  return np.bincount(index[inside], values[inside], minlength=length)


class GroundTruth:
  """The deterministic sequence -> expected tracks function of the synthetic data.

      truth = GroundTruth(load_motifs(), Grammar())
      rates = truth.expected_tracks(indices)        # [L, 4] expected counts per base
      bins = truth.expected_expression([promoter])  # DREAM-style expression of promoters
  """

  def __init__(self, motifs: Sequence[Motif], grammar: Grammar):
    self.motifs = {m.name: m for m in motifs}
    self.grammar = grammar
    self.thresholds = {m.name: m.threshold(grammar.background_tail, grammar.max_threshold_gap)
                       for m in motifs}

  def scan(self, indices: np.ndarray, name: str) -> Sites:
    """Bound sites of motif `name` on both strands of base indices [L] (N = 4 never binds)."""
    motif, g = self.motifs[name], self.grammar
    k, length = motif.length, len(indices)
    if length < k:
      return Sites(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    sites = []
    forward = np.concatenate([motif.log_odds, np.full((k, 1), -1e3)], axis=1)  # column 4 = N
    reverse = np.concatenate([motif.log_odds[::-1, ::-1], np.full((k, 1), -1e3)], axis=1)
    for strand, table in ((1, forward), (-1, reverse)):
      score = np.zeros(length - k + 1)
      for j in range(k):
        score += table[j][indices[j:length - k + 1 + j]]
      occupancy = 0.5 * (1.0 + np.tanh(0.5 * (score - self.thresholds[name]) / g.temperature))
      start = np.flatnonzero(occupancy >= g.min_occupancy)
      sites.append((start + k // 2, np.full(len(start), strand), occupancy[start]))
    centre, strand, occupancy = (np.concatenate(parts) for parts in zip(*sites))
    order = np.argsort(centre, kind="stable")
    return Sites(centre[order].astype(np.int64), strand[order], occupancy[order])

  def scan_all(self, indices: np.ndarray) -> dict[str, Sites]:
    return {name: self.scan(indices, name) for name in self.motifs}

  def cooperative_sites(self, sites: dict[str, Sites]) -> Sites:
    """Pseudo-sites at the midpoint of each cooperative pair, occupancy = the pair's bonus."""
    g = self.grammar
    first, second = (sites[n] for n in g.cooperative_pair)
    lo, hi = g.cooperative_spacing
    centres, strands, bonus = [], [], []
    for i in range(len(first.centre)):
      a = np.searchsorted(second.centre, first.centre[i] - hi)
      b = np.searchsorted(second.centre, first.centre[i] + hi, side="right")
      for j in range(a, b):
        spacing = abs(int(second.centre[j]) - int(first.centre[i]))
        if lo <= spacing <= hi and second.strand[j] == first.strand[i]:
          phase = 0.5 + 0.5 * np.cos(2 * np.pi * (spacing - g.cooperative_optimum) / g.helical_period)
          centres.append((int(first.centre[i]) + int(second.centre[j])) // 2)
          strands.append(int(first.strand[i]))
          bonus.append(g.cooperative_weight * first.occupancy[i] * second.occupancy[j] * phase)
    return Sites(np.array(centres, np.int64), np.array(strands, np.int64), np.array(bonus))

  def promoters(self, sites: dict[str, Sites], coop: Sites) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(TSS position [P], strand [P] (+1/-1), promoter output [P]) of every TATA box."""
    g = self.grammar
    tbp = sites["TBP"]
    tss = tbp.centre + g.tss_offset * tbp.strand
    near, far = g.proximal_window
    strength = np.full(len(tss), g.basal_promoter)
    for name in ("SP1", "NFYA"):
      s = sites[name]
      for p in range(len(tss)):
        upstream = (tss[p] - s.centre) * tbp.strand[p]  # > 0 upstream of the TSS
        mask = (upstream >= near) & (upstream <= far)
        strength[p] += g.weights[name] * s.occupancy[mask].sum()
    # Distal activators, each damped by the bound CTCF sites between it and the TSS.
    act_centre = np.concatenate([sites[n].centre for n in MOTIFS if MOTIFS[n][1] == "activator"]
                                + [coop.centre])
    act_value = np.concatenate([g.weights[n] * sites[n].occupancy for n in MOTIFS
                                if MOTIFS[n][1] == "activator"] + [coop.occupancy])
    ctcf = sites["CTCF"]
    log_keep = np.concatenate([[0.0], np.cumsum(np.log1p(-g.insulation * ctcf.occupancy))])
    lo, hi = g.enhancer_window
    enhancer = np.zeros(len(tss))
    for p in range(len(tss)):
      distance = np.abs(act_centre - tss[p])
      mask = (distance > lo) & (distance <= hi)
      if not mask.any():
        continue
      a, b = np.minimum(act_centre[mask], tss[p]), np.maximum(act_centre[mask], tss[p])
      between = (log_keep[np.searchsorted(ctcf.centre, b)] - log_keep[np.searchsorted(ctcf.centre, a,
                                                                                      side="right")])
      enhancer[p] = np.sum(act_value[mask] * np.exp(-distance[mask] / g.enhancer_decay)
                           * np.exp(between))
    return tss, tbp.strand, tbp.occupancy * strength * (1.0 + enhancer)

  def expected_tracks(self, indices: np.ndarray) -> np.ndarray:
    """Expected counts per base [L, 4] (dnase, ctcf, cage_plus, cage_minus) of base indices [L]."""
    g = self.grammar
    indices = np.asarray(indices)
    length = len(indices)
    sites = self.scan_all(indices)
    coop = self.cooperative_sites(sites)
    tss, strand, output = self.promoters(sites, coop)
    positions = np.concatenate([s.centre for s in sites.values()] + [coop.centre, tss])
    weights = np.concatenate([g.weights[n] * s.occupancy for n, s in sites.items()]
                             + [coop.occupancy,
                                g.promoter_accessibility * np.minimum(output, 3.0)])
    dnase = g.dnase_amplitude * _render(length, positions, weights, g.dnase_width)
    ctcf = g.ctcf_amplitude * _render(length, sites["CTCF"].centre, sites["CTCF"].occupancy,
                                      g.ctcf_width)
    cage = [g.cage_amplitude * _render(length, tss[strand == s], output[strand == s], g.cage_width)
            for s in (1, -1)]
    rates = np.stack([dnase, ctcf, *cage], axis=-1)
    rates = np.where(rates < 1e-4, 0.0, rates)  # exact zeros outside kernels: compact bigWigs
    rates += np.array([g.background[t] for t in TRACKS])
    rates[indices == 4] = 0.0  # nothing maps to N
    return rates.astype(np.float32)

  def promoter_activities(self, promoters: Sequence[np.ndarray]) -> np.ndarray:
    """Activity [N] of short promoters (base indices each; every site in a sequence counts,
    no distance rules): (basal + proximal + activators + cooperative bonus) x (0.3 + best
    TATA occupancy)."""
    g = self.grammar
    # One scan over all sequences joined by N spacers wider than any motif and any
    # cooperative spacing, so no site or pair spans two sequences.
    spacer = np.full(64, 4, np.int8)
    pieces, owner_start = [], []
    position = 0
    for indices in promoters:
      owner_start.append(position)
      pieces += [np.asarray(indices, np.int8), spacer]
      position += len(indices) + len(spacer)
    if not pieces:
      return np.zeros(0)
    joined = np.concatenate(pieces)
    owner_start = np.asarray(owner_start)
    owner = lambda centre: np.searchsorted(owner_start, centre, side="right") - 1  # noqa: E731
    n = len(owner_start)
    sites = self.scan_all(joined)
    coop = self.cooperative_sites(sites)
    drive = g.basal_promoter + np.bincount(owner(coop.centre), coop.occupancy, minlength=n)
    for name in MOTIFS:
      if MOTIFS[name][1] in ("proximal", "activator"):
        drive += g.weights[name] * np.bincount(owner(sites[name].centre), sites[name].occupancy,
                                               minlength=n)
    tata = np.zeros(n)
    np.maximum.at(tata, owner(sites["TBP"].centre), sites["TBP"].occupancy)
    return drive * (0.3 + tata)

  def expected_expression(self, promoters: Sequence[np.ndarray]) -> np.ndarray:
    """DREAM-style expression bins [N] in [0, 17]: 17 A / (A + half saturation)."""
    activity = self.promoter_activities(promoters)
    return 17.0 * activity / (activity + self.grammar.dream_half_saturation)


# --- generation --------------------------------------------------------------------------------

def sample_motif_instance(motif: Motif, rng: np.random.Generator, strand: int) -> np.ndarray:
  # Sharpened probabilities (p^2): planted sites are mostly strong, with natural variation.
  probs = motif.probs ** 2
  probs /= probs.sum(1, keepdims=True)
  cumulative = probs.cumsum(1)
  draw = rng.random(len(probs))[:, None]
  bases = np.minimum((draw > cumulative).sum(1), 3).astype(np.int8)
  return bases if strand > 0 else (3 - bases)[::-1]


class _Planter:
  """Writes motif instances into a chromosome without overlaps; records them."""

  def __init__(self, indices: np.ndarray, chrom: str, motifs: dict[str, Motif],
               rng: np.random.Generator):
    self.indices, self.chrom, self.motifs, self.rng = indices, chrom, motifs, rng
    self.used = indices == 4
    self.records: list[tuple] = []

  def plant(self, name: str, centre: int, strand: int, role: str) -> bool:
    motif = self.motifs[name]
    start = int(centre) - motif.length // 2
    end = start + motif.length
    if start < 0 or end > len(self.indices) or self.used[start:end].any():
      return False
    self.indices[start:end] = sample_motif_instance(motif, self.rng, strand)
    self.used[start:end] = True
    self.records.append((self.chrom, start, end, name, role, "+" if strand > 0 else "-"))
    return True

  def plant_near(self, name: str, centre: int, spread: int, strand: Optional[int], role: str,
                 tries: int = 8) -> bool:
    for _ in range(tries):
      s = strand if strand is not None else int(self.rng.choice([1, -1]))
      if self.plant(name, centre + int(self.rng.integers(-spread, spread + 1)), s, role):
        return True
    return False


def background_indices(length: int, rng: np.random.Generator) -> np.ndarray:
  """Random bases with GC content varying in 5-kb blocks (isochore-like), int8 [length]."""
  blocks = -(-length // 5000)
  gc = np.clip(rng.normal(0.41, 0.04, blocks), 0.3, 0.55).repeat(5000)[:length]
  at = (1 - gc) / 2
  draw = rng.random(length)
  return ((draw > at).astype(np.int8) + (draw > at + gc / 2) + (draw > at + gc)).astype(np.int8)


def _enhancer(planter: _Planter, centre: int, rng: np.random.Generator,
              pair: Sequence[str]) -> None:
  activators = [n for n in MOTIFS if MOTIFS[n][1] == "activator"]
  for _ in range(int(rng.integers(2, 5))):
    planter.plant_near(str(rng.choice(activators)), centre, 70, None, "enhancer")
  if rng.random() < 0.4:  # a cooperative pair at a chosen spacing and orientation
    first, second = (planter.motifs[n] for n in pair)
    spacing = int(rng.choice([10, 15, 21, 26, 31, 36]))
    strand = int(rng.choice([1, -1]))
    other = strand if rng.random() < 0.7 else -strand
    at = centre + int(rng.integers(-40, 41))
    if not planter.used[at - 30:at + spacing + 30].any():
      planter.plant(first.name, at, strand, "cooperative")
      planter.plant(second.name, at + spacing, other, "cooperative")


def _build_chromosome(chrom: str, config: SyntheticConfig, motifs: dict[str, Motif],
                      rng: np.random.Generator):
  length = config.chromosome_length
  indices = background_indices(length, rng)
  indices[:config.telomere_n] = 4
  indices[length - config.telomere_n:] = 4
  gap = int(rng.integers(length // 4, 3 * length // 4))
  indices[gap:gap + config.gap_n] = 4
  planter = _Planter(indices, chrom, motifs, rng)
  genes = []
  position = config.telomere_n + 3000
  lo, hi = config.gene_spacing
  while position < length - config.telomere_n - 3000:
    strand = int(rng.choice([1, -1]))
    tss = position
    if not np.any(indices[tss - 2600:tss + 2600] == 4):
      tata = rng.random() < 0.85 and planter.plant("TBP", tss - 30 * strand, strand, "promoter")
      for _ in range(int(rng.integers(0, 4))):
        planter.plant_near("SP1", tss - 110 * strand, 60, None, "promoter")
      if rng.random() < 0.5:
        planter.plant_near("NFYA", tss - 80 * strand, 15, None, "promoter")
      genes.append((chrom, tss, tss + 1, f"gene_{chrom}_{len(genes)}",
                    "1" if tata else "0", "+" if strand > 0 else "-"))
      for _ in range(int(rng.poisson(config.enhancers_per_gene))):
        distance = int(rng.integers(350, 2000)) * int(rng.choice([1, -1]))
        _enhancer(planter, tss + distance, rng, config.grammar.cooperative_pair)
        if rng.random() < config.insulated_fraction:
          planter.plant_near("CTCF", tss + distance // 2, 60, None, "insulator")
    position += int(rng.integers(lo, hi + 1))
  for _ in range(int(rng.poisson(config.orphan_enhancers_per_100kb * length / 100_000))):
    centre = int(rng.integers(config.telomere_n + 500, length - config.telomere_n - 500))
    _enhancer(planter, centre, rng, config.grammar.cooperative_pair)
  for _ in range(int(length / config.ctcf_spacing)):
    planter.plant_near("CTCF", int(rng.integers(0, length)), 0, None, "ctcf", tries=3)
  return indices, genes, planter.records


def _call_peaks(chrom: str, dnase: np.ndarray, background: float, threshold: float = 10.0):
  """Regions where the expected DNase rate exceeds `threshold` x background; summit = maximum."""
  above = np.concatenate([[False], dnase > threshold * background, [False]])
  edges = np.flatnonzero(np.diff(above.astype(np.int8)))
  rows = []
  for start, end in zip(edges[::2], edges[1::2]):
    summit = int(np.argmax(dnase[start:end]))
    peak = float(dnase[start + summit])
    rows.append((chrom, int(start), int(end), summit, peak))
  return rows


def _runs(values: np.ndarray):
  """Run-length encoding (starts, ends, values) of the non-zero runs of `values`."""
  change = np.flatnonzero(np.diff(values)) + 1
  starts = np.concatenate([[0], change])
  ends = np.concatenate([change, [len(values)]])
  keep = values[starts] != 0
  return starts[keep], ends[keep], values[starts[keep]]


def _write_bigwig(path: str, chrom_sizes: dict[str, int], tracks: dict[str, np.ndarray],
                  dense: bool = False) -> None:
  """Per-base values per chromosome -> bigWig, written atomically: runs of equal non-zero
  values (sparse counts), or every base at a fixed step (`dense`, smooth rates)."""
  import pyBigWig

  tmp = path + ".tmp"
  bw = pyBigWig.open(tmp, "w")
  if bw is None:
    raise OSError(f"cannot write {tmp}")
  try:
    bw.addHeader(list(chrom_sizes.items()), maxZooms=0)
    for chrom in chrom_sizes:
      values = tracks[chrom].astype(np.float32)
      if dense:
        bw.addEntries(chrom, 0, values=values.astype(np.float64), span=1, step=1)
        continue
      starts, ends, run_values = _runs(values)
      if len(starts):
        bw.addEntries([chrom] * len(starts), starts.tolist(), ends=ends.tolist(),
                      values=run_values.astype(np.float64).tolist())
  finally:
    bw.close()
  os.replace(tmp, path)


def write_fasta_indices(path: str, sequences: dict[str, np.ndarray], width: int = 80) -> None:
  letters = np.frombuffer(b"ACGTN", np.uint8)
  parts = []
  for chrom, indices in sequences.items():
    text = letters[indices].tobytes().decode()
    parts.append(f">{chrom}\n" + "\n".join(text[i:i + width] for i in range(0, len(text), width)) + "\n")
  atomic_write_text(path, "".join(parts))


def _dream_rows(config: SyntheticConfig, truth: GroundTruth, rng: np.random.Generator):
  """Random 80-nt promoters with planted motifs, in the DREAM challenge's adapter frame."""
  motifs = truth.motifs
  left = np.frombuffer(LEFT_ADAPTER.encode(), np.uint8)
  right = np.frombuffer(RIGHT_ADAPTER.encode(), np.uint8)
  table = np.full(256, 4, np.int8)
  for i, b in enumerate(b"ACGT"):
    table[b] = i
  sequences, promoters = [], []
  for _ in range(config.dream_sequences):
    insert = background_indices(80, rng)
    planter = _Planter(insert, "dream", motifs, rng)
    if rng.random() < 0.6:
      planter.plant_near("TBP", 55, 15, 1, "promoter")
    for _ in range(int(rng.poisson(0.8))):
      planter.plant_near("SP1", 25, 20, None, "promoter")
    if rng.random() < 0.3:
      planter.plant_near("NFYA", 30, 20, None, "promoter")
    for _ in range(int(rng.poisson(0.8))):
      name = str(rng.choice([n for n in MOTIFS if MOTIFS[n][1] == "activator"]))
      planter.plant_near(name, 40, 30, None, "activator")
    full = np.concatenate([table[left], insert, table[right]])
    sequences.append(np.frombuffer(b"ACGTN", np.uint8)[full].tobytes().decode())
    promoters.append(full)
  expected = truth.expected_expression(promoters)
  measured = np.clip(expected + rng.normal(0, truth.grammar.dream_noise, len(expected)), 0, 17)
  singleton = rng.random(len(measured)) < 0.2  # single-cell measurements land on a bin
  measured = np.where(singleton, np.round(measured), np.round(measured, 4))
  folds = rng.permutation(np.arange(len(measured)) % 10)
  return sequences, expected, measured, folds


def _synthetic_plasmid(rng: np.random.Generator) -> str:
  """A plasmid with the DREAM insert site: random flanks around adapters and 80 N."""
  flank = lambda n: "".join(rng.choice(list("ACGT"), n))  # noqa: E731
  return flank(250) + LEFT_ADAPTER + "N" * 80 + RIGHT_ADAPTER + flank(250)


@dataclasses.dataclass(frozen=True)
class SyntheticDataset:
  """Paths of a generated dataset (see the module docstring for the contents)."""

  root: str
  config: SyntheticConfig

  def path(self, *parts: str) -> str:
    return os.path.join(self.root, *parts)

  fasta = property(lambda self: self.path("genome.fa"))
  chrom_sizes = property(lambda self: self.path("chrom.sizes"))
  tracks = property(lambda self: self.path("targets.txt"))
  truth_tracks = property(lambda self: self.path("truth", "targets.txt"))
  peaks = property(lambda self: self.path("peaks.narrowPeak"))
  nonpeaks = property(lambda self: self.path("nonpeaks.narrowPeak"))
  genes = property(lambda self: self.path("genes.bed"))
  planted = property(lambda self: self.path("planted.bed"))
  fold = property(lambda self: self.path("fold.json"))
  dream_table = property(lambda self: self.path("dream", "train.txt"))
  dream_expected = property(lambda self: self.path("dream", "expected.txt"))
  dream_plasmid = property(lambda self: self.path("dream", "plasmid.json"))
  manifest = property(lambda self: self.path("manifest.json"))

  def ground_truth(self) -> GroundTruth:
    return GroundTruth(load_motifs(self.config.jaspar_release), self.config.grammar)


def track_specs(folder: str = "tracks") -> list[TrackSpec]:
  """The four tracks (cage_plus / cage_minus are a strand pair) as `folder/<name>.bw`."""
  pairs = {"cage_plus": "cage_minus", "cage_minus": "cage_plus"}
  return [TrackSpec(name=t, path=os.path.join(folder, f"{t}.bw") if folder else f"{t}.bw",
                    strand_pair=pairs.get(t), description=f"synthetic {t.replace('_', ' ')} counts")
          for t in TRACKS]


def generate_synthetic_dataset(out_dir: PathLike, config: Optional[SyntheticConfig] = None, *,
                               overwrite: bool = False, progress: bool = False) -> SyntheticDataset:
  """Generates the dataset into `out_dir` (see the module docstring); returns its paths.

  An existing complete dataset (manifest.json) with the same config is reused unless
  `overwrite`; one with a different config is an error unless `overwrite`.
  """
  config = config or SyntheticConfig()
  root = os.path.abspath(os.fspath(out_dir))
  data = SyntheticDataset(root, config)
  if os.path.exists(data.manifest) and not overwrite:
    with open(data.manifest) as f:
      existing = json.load(f)
    if existing.get("config") == config.to_dict() and existing.get("version") == FORMAT_VERSION:
      return data
    raise FileExistsError(f"{root} holds a synthetic dataset with a different config; pass "
                          f"overwrite=True (--overwrite) or choose another directory")
  os.makedirs(root, exist_ok=True)
  if os.path.exists(data.manifest):
    os.unlink(data.manifest)  # incomplete until the new manifest is written
  for folder in ("tracks", "truth", "dream"):
    os.makedirs(os.path.join(root, folder), exist_ok=True)

  motifs = load_motifs(config.jaspar_release)
  truth = GroundTruth(motifs, config.grammar)
  by_name = {m.name: m for m in motifs}
  chroms = config.chromosomes
  sequences, rates, counts = {}, {}, {}
  genes, planted, peaks, nonpeaks = [], [], [], []
  iterator = enumerate(chroms)
  if progress:
    import tqdm
    iterator = tqdm.tqdm(iterator, total=len(chroms), desc="synthetic genome", unit="chrom",
                         leave=False)
  for number, chrom in iterator:
    rng = np.random.default_rng([config.seed, number])
    indices, chrom_genes, records = _build_chromosome(chrom, config, by_name, rng)
    sequences[chrom] = indices
    genes += chrom_genes
    planted += records
    rates[chrom] = truth.expected_tracks(indices)
    counts[chrom] = rng.poisson(rates[chrom]).astype(np.float32)
    bg = config.grammar.background["dnase"]
    chrom_peaks = _call_peaks(chrom, rates[chrom][:, 0], bg)
    peaks += chrom_peaks
    nonpeaks += _sample_nonpeaks(chrom, rates[chrom][:, 0], indices, bg, len(chrom_peaks), rng)

  sizes = {c: config.chromosome_length for c in chroms}
  write_fasta_indices(data.fasta, sequences)
  atomic_write_text(data.chrom_sizes, "".join(f"{c}\t{s}\n" for c, s in sizes.items()))
  for i, name in enumerate(TRACKS):
    _write_bigwig(data.path("tracks", f"{name}.bw"), sizes, {c: counts[c][:, i] for c in chroms})
    _write_bigwig(data.path("truth", f"{name}.bw"), sizes, {c: rates[c][:, i] for c in chroms},
                  dense=True)
  # Paths relative to each table's folder, so the dataset can be moved as a whole.
  write_targets_table(data.tracks, track_specs("tracks"))
  write_targets_table(data.truth_tracks, track_specs(""))
  write_narrowpeak(data.peaks, _peak_regions(peaks))
  write_narrowpeak(data.nonpeaks, Regions.from_centres([r[0] for r in nonpeaks],
                                                       [r[1] for r in nonpeaks], 1000))
  write_bed(data.genes, _bed6(genes))
  write_bed(data.planted, _bed6([(c, s, e, f"{n}:{role}", "0", st) for c, s, e, n, role, st in planted]))
  config.fold.save(data.fold)

  rng = np.random.default_rng([config.seed, 1_000_003])
  dream_seqs, expected, measured, folds = _dream_rows(config, truth, rng)
  atomic_write_text(data.dream_table, "".join(f"{s}\t{m:g}\t{f}\n" for s, m, f in
                                              zip(dream_seqs, measured, folds)))
  atomic_write_text(data.dream_expected, "".join(f"{e:.6f}\n" for e in expected))
  atomic_write_text(data.dream_plasmid, json.dumps(_synthetic_plasmid(rng)))
  atomic_write_text(data.path("motifs.json"), json.dumps({
      "release": config.jaspar_release,
      "motifs": [{"name": m.name, "matrix_id": m.matrix_id, "role": m.role,
                  "threshold_bits": truth.thresholds[m.name], "probs": m.probs.round(6).tolist()}
                 for m in motifs],
      "grammar": config.grammar.to_dict()}, indent=1))
  import pyfaidx
  pyfaidx.Fasta(data.fasta, rebuild=True).close()  # writes genome.fa.fai
  manifest = {"version": FORMAT_VERSION, "config": config.to_dict(),
              "genes": len(genes), "planted_sites": len(planted), "peaks": len(peaks),
              "nonpeaks": len(nonpeaks), "dream_rows": len(dream_seqs),
              "dream_noise_ceiling_pearson": float(np.corrcoef(expected, measured)[0, 1])}
  atomic_write_text(data.manifest, json.dumps(manifest, indent=2) + "\n")
  return data


def pearson_per_track(first: np.ndarray, second: np.ndarray) -> np.ndarray:
  """Pearson r per track (last axis) over every other axis -> [T] (NaN without variance)."""
  a = np.asarray(first, np.float64).reshape(-1, np.shape(first)[-1])
  b = np.asarray(second, np.float64).reshape(-1, np.shape(second)[-1])
  a, b = a - a.mean(0), b - b.mean(0)
  with np.errstate(invalid="ignore", divide="ignore"):
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


@dataclasses.dataclass(frozen=True)
class TrackAccuracy:
  """Accuracy of predicted tracks against the observations and the synthetic ground truth.

  Attributes (per track, [T]):
    versus_observed: Pearson r(prediction, observed counts), what real data allows.
    versus_truth: Pearson r(prediction, expected counts).
    noise_ceiling: Pearson r(expected, observed): the best any model can reach against the
      observations (Poisson noise is all that separates them).
    loss, baseline_loss: Poisson loss (as `tasks.tracks.poisson_loss`) of the model and of
      the trivial baseline predicting each track's training mean everywhere.
  """

  tracks: tuple[str, ...]
  versus_observed: np.ndarray
  versus_truth: np.ndarray
  noise_ceiling: np.ndarray
  loss: np.ndarray
  baseline_loss: np.ndarray

  def lines(self) -> list[str]:
    header = f"  {'track':12s} {'r(pred, obs)':>13s} {'ceiling':>8s} {'r(pred, truth)':>15s} " \
             f"{'poisson':>8s} {'baseline':>9s}"
    rows = [f"  {t:12s} {o:13.3f} {c:8.3f} {r:15.3f} {l:8.3f} {b:9.3f}" for t, o, c, r, l, b in
            zip(self.tracks, self.versus_observed, self.noise_ceiling, self.versus_truth,
                self.loss, self.baseline_loss)]
    mean = (f"  {'mean':12s} {np.nanmean(self.versus_observed):13.3f} "
            f"{np.nanmean(self.noise_ceiling):8.3f} {np.nanmean(self.versus_truth):15.3f} "
            f"{self.loss.mean():8.3f} {self.baseline_loss.mean():9.3f}")
    return [header, *rows, mean]

  def to_dict(self) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else list(v))
            for k, v in dataclasses.asdict(self).items()}


def track_accuracy(predicted: np.ndarray, observed: np.ndarray, truth: np.ndarray,
                   train_mean: np.ndarray, tracks: Sequence[str]) -> TrackAccuracy:
  """Scores predictions [N, bins, T] against observed and expected binned counts (same shape);
  `train_mean` [T] is the trivial baseline's constant prediction."""
  def poisson(pred, obs):
    pred = np.broadcast_to(pred, obs.shape).astype(np.float64)
    return (pred - obs * np.log(pred + 1e-7)).reshape(-1, obs.shape[-1]).mean(0)

  return TrackAccuracy(tuple(tracks), pearson_per_track(predicted, observed),
                       pearson_per_track(predicted, truth), pearson_per_track(truth, observed),
                       poisson(predicted, observed), poisson(np.asarray(train_mean), observed))


def _sample_nonpeaks(chrom: str, dnase: np.ndarray, indices: np.ndarray, background: float,
                     count: int, rng: np.random.Generator) -> list[tuple[str, int]]:
  """Centres of 1-kb regions without accessibility above 2 x background and without N."""
  quiet = (dnase <= 2 * background) & (indices != 4)
  # Prefix sums make "is the whole 1-kb window quiet" a subtraction.
  prefix = np.concatenate([[0], np.cumsum(~quiet)])
  centres = []
  for _ in range(20 * max(count, 1)):
    if len(centres) >= max(count, 1):
      break
    c = int(rng.integers(500, len(dnase) - 500))
    if prefix[c + 500] - prefix[c - 500] == 0:
      centres.append((chrom, c))
  return centres


def _peak_regions(peaks) -> Regions:
  if not peaks:
    return Regions.from_centres([], [], 1)
  extra = np.array([[f"peak_{i}", str(min(1000, int(10 * p[4]))), ".", f"{p[4]:.3f}", "-1", "-1"]
                    for i, p in enumerate(peaks)], dtype=object)
  return Regions(np.array([p[0] for p in peaks], object), [p[1] for p in peaks],
                 [p[2] for p in peaks], [p[3] for p in peaks], extra)


def _bed6(rows) -> Regions:
  if not rows:
    return Regions.from_intervals([], [], [])
  regions = Regions.from_intervals([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                                   [r[5] for r in rows])
  regions.extra[:, 0] = [r[3] for r in rows]
  regions.extra[:, 1] = [r[4] for r in rows]
  return regions


__all__ = ["FORMAT_VERSION", "Grammar", "GroundTruth", "MOTIFS", "Motif", "SyntheticConfig",
           "SyntheticDataset", "TRACKS", "TrackAccuracy", "generate_synthetic_dataset", "load_motifs",
           "pearson_per_track", "track_accuracy", "track_specs"]
