"""Contribution scores of DNA models: gradient x input, ISM, DeepSHAP-style, attention, window ISM.

    target = Target(head="logcounts")                     # or Target("tracks", tracks=(2, 3),
                                                          #   bins=(447, 450)), Target("profile",
                                                          #   kind="profile")
    hyp = gradients(model, one_hot, target)               # [B, L, 4] d target / d input
    contrib = hyp * one_hot                               # gradient x input
    delta = ism(model, one_hot, target)                   # [B, L, 4] f(mutant) - f(x)
    hyp = deepshap(model, one_hot, target)                # expected gradients vs dinuc shuffles
    hyp = hypothetical_from_gradients("gradient_x_input", one_hot, grad_fn)  # centred
                                                          #   (what `contributions` writes:
                                                          #   analysis.hypothetical)
    rows = attention_rows(model, one_hot)                 # [B, T] (Enformer: mean over layers
                                                          #   and heads, the centre query row)
    delta = window_ism(model, one_hot, target, [(s, e)])  # [B, W] window replaced by shuffles

A `Target` reduces a head's outputs [B, ...] to one number per sequence: the positional
bins `bins` = [start, end) (None: all) and the `tracks` subset of the last axis, summed
("sum") or averaged ("mean"); "profile" is ChromBPNet's profile target: with m = logits
minus their mean over positions, sum(softmax(stop_gradient(m)) * m).

Gradients need a tf-seqmodels model (the contract's `encode_dna` is differentiable, so they
are with respect to one-hot ACGT whatever the model's encoding); ISM and window ISM need
only predictions. Every method runs batched through a `BatchRunner` (strategy replicas).

The DeepSHAP-style method follows the "expected gradients" form of DeepSHAP: for each
dinucleotide-shuffled reference r, the multipliers are the gradients averaged along the
straight path r -> x (`steps` midpoints), and the hypothetical contribution of base b at
position i is mean_r (m_r[i, b] - sum_c r[i, c] m_r[i, c]) (the hypothetical-score formula
of the kundajelab DeepSHAP genomics code). Its projection on x sums to
f(x) - mean_r f(r) as `steps` grows (completeness), for any differentiable model, so it needs
no per-layer DeepLIFT rules. `analysis.deeplift.deeplift` is the exact DeepLIFT / DeepSHAP
(rescale rule) counterpart, for models built of ops it has rules for.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_seqmodels.analysis.inference import AnalysisModel, BatchRunner, _cached
from tf_seqmodels.config import Config, ConfigError

TARGET_KINDS = ("sum", "mean", "profile")


@dataclasses.dataclass(frozen=True)
class Target(Config):
  """What a contribution explains: one number per sequence from one head."""

  head: str = ""
  tracks: Optional[tuple[int, ...]] = None
  bins: Optional[tuple[int, int]] = None
  kind: str = "sum"

  def validate(self) -> None:
    if not self.head:
      raise ConfigError("Target: name the head to explain (e.g. Target(head=\"logcounts\"))")
    if self.kind not in TARGET_KINDS:
      raise ConfigError(f"Target: kind must be one of {TARGET_KINDS}, got {self.kind!r}")
    if self.bins is not None and not 0 <= self.bins[0] < self.bins[1]:
      raise ConfigError(f"Target: bins must be [start, end) with 0 <= start < end, got {self.bins}")


def default_target(model: AnalysisModel, head: Optional[str] = None,
                   kind: Optional[str] = None) -> tuple[str, str]:
  """(head, target kind) to explain when the user names neither or only one.

  Head: the model's only head, else its only "log_counts" head (ChromBPNet / BPNet counts,
  the reference's default contribution target), else its only "tracks" head; otherwise the
  head must be named. Kind: "profile" for a "profile_logits" head (summed logits mean
  nothing: softmax is shift-invariant), else "sum".
  """
  kinds = {h: model.head_kind(h) for h in (model.head_kinds or model.position_axes)}
  if head is None:
    if len(kinds) == 1:
      head = next(iter(kinds))
    else:
      for wanted in ("log_counts", "tracks"):
        matches = [h for h, k in kinds.items() if k == wanted]
        if len(matches) == 1:
          head = matches[0]
          break
    if head is None:
      raise ValueError(f"name the head to explain (--head); heads and kinds: {kinds}")
  if kind is None:
    kind = "profile" if kinds.get(head) == "profile_logits" else "sum"
  return head, kind


def target_value(target: Target, outputs: dict, position_axis: Optional[int]) -> tf.Tensor:
  """[B] target values from the model outputs (TF ops: differentiable, graph-safe)."""
  if target.head not in outputs:
    raise ValueError(f"target head {target.head!r} is not a model head; heads: {sorted(outputs)}")
  values = tf.convert_to_tensor(outputs[target.head])
  if target.bins is not None:
    if position_axis is None:
      raise ValueError(f"head {target.head!r} has no positional axis: a bins window does not apply")
    values = tf.gather(values, tf.range(target.bins[0], target.bins[1]), axis=position_axis)
  if target.tracks is not None:
    if values.shape.rank < 2:
      raise ValueError(f"head {target.head!r} has no track axis to select from")
    values = tf.gather(values, list(target.tracks), axis=-1)
  if target.kind == "profile":
    if position_axis is None:
      raise ValueError(f"the profile target needs a positional head, {target.head!r} has none")
    logits = tf.reshape(values, [tf.shape(values)[0], -1])  # [B, T] (one profile track)
    centred = logits - tf.reduce_mean(logits, axis=1, keepdims=True)
    weights = tf.stop_gradient(tf.nn.softmax(centred, axis=1))
    return tf.reduce_sum(weights * centred, axis=1)
  axes = list(range(1, values.shape.rank))
  if not axes:
    return values
  reduce = tf.reduce_sum if target.kind == "sum" else tf.reduce_mean
  return reduce(values, axis=axes)


def _target_fn(model: AnalysisModel, target: Target):
  def fn(one_hot):
    outputs = model(one_hot)
    return target_value(target, outputs, model.position_axes.get(target.head))
  return fn


def predict_target(model: AnalysisModel, one_hot: np.ndarray, target: Target,
                   runner: Optional[BatchRunner] = None, batch_size: int = 64) -> np.ndarray:
  """Target values [N] for one-hot ACGT [N, L, 4], in batches."""
  runner = runner or BatchRunner()
  if model.model is None:
    def fn(x):
      outputs = model(x)
      return target_value(target, outputs, model.position_axis(target.head, outputs[target.head]))
    return np.concatenate([np.asarray(fn(tf.constant(one_hot[i:i + batch_size], tf.float32)))
                           for i in range(0, len(one_hot), batch_size)])
  fn = _cached(model, ("target", target.to_json()), lambda: _target_fn(model, target))
  return np.concatenate([runner.forward(fn, one_hot[i:i + batch_size], model)
                         for i in range(0, len(one_hot), batch_size)])


def _require_gradients(model: AnalysisModel) -> None:
  if not model.differentiable:
    raise ValueError(f"{model.name}: gradient-based contributions need a tf-seqmodels model "
                     f"(checkpoint or run directory); use ism for a SavedModel")


def gradients(model: AnalysisModel, one_hot: np.ndarray, target: Target,
              runner: Optional[BatchRunner] = None, batch_size: int = 16) -> np.ndarray:
  """d target / d one-hot [N, L, 4] (hypothetical contributions; times `one_hot` gives
  gradient x input)."""
  _require_gradients(model)
  runner = runner or BatchRunner()

  def make():
    value = _target_fn(model, target)
    def fn(x):
      with tf.GradientTape() as tape:
        tape.watch(x)
        y = value(x)
      return tape.gradient(y, x)
    return fn
  fn = _cached(model, ("grad", target.to_json()), make)
  one_hot = np.asarray(one_hot, np.float32)
  return np.concatenate([runner.run(fn, one_hot[i:i + batch_size])
                         for i in range(0, len(one_hot), batch_size)])


def gradient_x_input(model: AnalysisModel, one_hot: np.ndarray, target: Target,
                     runner: Optional[BatchRunner] = None, batch_size: int = 16) -> np.ndarray:
  return gradients(model, one_hot, target, runner, batch_size) * np.asarray(one_hot, np.float32)


def ism(model: AnalysisModel, one_hot: np.ndarray, target: Target,
        runner: Optional[BatchRunner] = None, positions: Optional[Sequence[int]] = None,
        batch_size: int = 64, progress: bool = False) -> np.ndarray:
  """In-silico mutagenesis: f(x with base b at i) - f(x) [N, L, 4] for every single-nucleotide
  substitution at `positions` (None: all); the reference base (and unlisted positions) 0."""
  from tqdm import tqdm
  one_hot = np.asarray(one_hot, np.float32)
  n, length, _ = one_hot.shape
  positions = np.arange(length) if positions is None else np.asarray(positions)
  reference = predict_target(model, one_hot, target, runner, batch_size)
  out = np.zeros(one_hot.shape, np.float32)
  for k in tqdm(range(n), desc="ism", unit="seq", disable=not progress):
    ref_base = one_hot[k].argmax(-1)
    has_base = one_hot[k].sum(-1) > 0
    mutants = [(i, b) for i in positions for b in range(4) if not (has_base[i] and b == ref_base[i])]
    batch = np.repeat(one_hot[k:k + 1], len(mutants), axis=0)
    rows = np.arange(len(mutants))
    sites = np.array([i for i, _ in mutants])
    batch[rows, sites] = 0.0
    batch[rows, sites, [b for _, b in mutants]] = 1.0
    values = predict_target(model, batch, target, runner, batch_size)
    out[k, sites, [b for _, b in mutants]] = values - reference[k]
  return out


def dinucleotide_shuffle(indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """A random sequence [L] with the same first base and the same dinucleotide counts as
  `indices` (Altschul-Erickson: a random Eulerian walk over the dinucleotide graph, the
  last outgoing edge of each base kept last so the walk uses every edge)."""
  indices = np.asarray(indices)
  if len(indices) < 3:
    return indices.copy()
  successors = {}
  for base in np.unique(indices[:-1]):
    where = np.flatnonzero(indices[:-1] == base) + 1
    order = np.concatenate([rng.permutation(len(where) - 1), [len(where) - 1]])
    successors[base] = list(where[order])
  out = np.empty_like(indices)
  out[0] = indices[0]
  position = 0
  used = {base: 0 for base in successors}
  for j in range(1, len(indices)):
    base = indices[position]
    position = successors[base][used[base]]
    used[base] += 1
    out[j] = indices[position]
  return out


def dinucleotide_shuffles(one_hot: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
  """[count, L, 4] dinucleotide shuffles of one one-hot sequence [L, 4] (N rows stay N)."""
  rng = np.random.default_rng(seed)
  indices = np.where(one_hot.sum(-1) > 0, one_hot.argmax(-1), 4)
  eye = np.eye(5, dtype=np.float32)[:, :4]
  return np.stack([eye[dinucleotide_shuffle(indices, rng)] for _ in range(count)])


def deepshap(model: AnalysisModel, one_hot: np.ndarray, target: Target,
             runner: Optional[BatchRunner] = None, num_references: int = 10, steps: int = 8,
             seed: int = 0, batch_size: int = 32, progress: bool = False) -> np.ndarray:
  """DeepSHAP-style hypothetical contributions [N, L, 4] against dinucleotide-shuffled
  references (see the module docstring; sequence k seeded `seed + k`); multiply by `one_hot`
  for the actual ones."""
  _require_gradients(model)
  return hypothetical_from_gradients(
      "deepshap", one_hot, lambda x: gradients(model, x, target, runner, batch_size),
      num_references=num_references, steps=steps, seed=seed, progress=progress)


# The methods computed from input gradients alone, so from any differentiable forward function
# (the Sonnet model here, an exported SavedModel in the Beam workers).
GRADIENT_METHODS = ("gradient_x_input", "deepshap")


def centre_bases(scores: np.ndarray) -> np.ndarray:
  """Scores [..., 4] minus their mean over the four bases at each position: the hypothetical
  scores TF-MoDISco expects of gradients and ISM (a change of the input that keeps it one-hot
  moves along the mean-free directions only)."""
  return scores - scores.mean(-1, keepdims=True)


def hypothetical_from_gradients(method: str, one_hot: np.ndarray, gradient_fn,
                                num_references: int = 10, steps: int = 8, seed: int = 0,
                                progress: bool = False) -> np.ndarray:
  """Hypothetical contributions [N, L, 4] of a GRADIENT_METHODS `method`, given
  `gradient_fn`: one-hot [B, L, 4] -> d target / d one-hot [B, L, 4]. gradient_x_input: the
  gradients centred over the bases; deepshap: expected gradients against `num_references`
  dinucleotide shuffles of sequence k, seeded `seed + k`."""
  one_hot = np.asarray(one_hot, np.float32)
  if method == "gradient_x_input":
    return centre_bases(np.asarray(gradient_fn(one_hot), np.float32))
  if method != "deepshap":
    raise ValueError(f"{method!r} is not one of the gradient methods {GRADIENT_METHODS}")
  alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps
  out = np.zeros(one_hot.shape, np.float32)
  sequences = range(len(one_hot))
  if progress:  # (tqdm only here: Beam workers run this function without it)
    from tqdm import tqdm
    sequences = tqdm(sequences, desc="deepshap", unit="seq")
  for k in sequences:
    refs = dinucleotide_shuffles(one_hot[k], num_references, seed + k)  # [R, L, 4]
    paths = refs[:, None] + alphas[None, :, None, None] * (one_hot[k] - refs)[:, None]
    grads = np.asarray(gradient_fn(paths.reshape(-1, *one_hot.shape[1:])), np.float32)
    multipliers = grads.reshape(num_references, steps, *one_hot.shape[1:]).mean(axis=1)
    # hypothetical(b, i) = m[i, b] - sum_c r[i, c] m[i, c], averaged over references.
    baseline = (refs * multipliers).sum(-1, keepdims=True)
    out[k] = (multipliers - baseline).mean(axis=0)
  return out


def attention_rows(model: AnalysisModel, one_hot: np.ndarray, query_bin: Optional[int] = None,
                   runner: Optional[BatchRunner] = None, batch_size: int = 4) -> np.ndarray:
  """Attention of one query bin (default: the centre bin, the TSS of a TSS-centred window)
  over all key bins, averaged over layers and heads: [N, T]."""
  runner = runner or BatchRunner()

  def make():
    def fn(x):
      weights = model.attention_weights(x)  # [B, layers, heads, T, T]
      return tf.reduce_mean(weights, axis=[1, 2])
    return fn
  fn = _cached(model, ("attention",), make)
  one_hot = np.asarray(one_hot, np.float32)
  maps = np.concatenate([runner.run(fn, one_hot[i:i + batch_size])
                         for i in range(0, len(one_hot), batch_size)])  # [N, T, T]
  row = maps.shape[1] // 2 if query_bin is None else query_bin
  if not 0 <= row < maps.shape[1]:
    raise ValueError(f"query_bin {row} outside the {maps.shape[1]} attention bins")
  return maps[:, row, :]


def window_ism(model: AnalysisModel, one_hot: np.ndarray, target: Target,
               windows: Sequence[tuple[int, int]], runner: Optional[BatchRunner] = None,
               replacement: str = "shuffle", num_samples: int = 5, seed: int = 0,
               batch_size: int = 64) -> np.ndarray:
  """Enhancer-replacement ISM: f(x with window [s, e) replaced) - f(x), [N, W].

  `replacement`: "shuffle" (dinucleotide shuffles of the window, averaged over
  `num_samples`), "random" (uniform random bases) or "N" (all-zero rows, one sample).
  """
  if replacement not in ("shuffle", "random", "N"):
    raise ValueError(f"replacement must be 'shuffle', 'random' or 'N', got {replacement!r}")
  one_hot = np.asarray(one_hot, np.float32)
  length = one_hot.shape[1]
  for s, e in windows:
    if not 0 <= s < e <= length:
      raise ValueError(f"window [{s}, {e}) outside the {length}-bp input")
  samples = 1 if replacement == "N" else num_samples
  rng = np.random.default_rng(seed)
  reference = predict_target(model, one_hot, target, runner, batch_size)
  out = np.zeros((len(one_hot), len(windows)), np.float32)
  for k in range(len(one_hot)):
    variants = []
    for s, e in windows:
      for j in range(samples):
        x = one_hot[k].copy()
        if replacement == "N":
          x[s:e] = 0.0
        elif replacement == "random":
          x[s:e] = np.eye(4, dtype=np.float32)[rng.integers(0, 4, e - s)]
        else:
          x[s:e] = dinucleotide_shuffles(one_hot[k, s:e], 1, seed + 7919 * k + 31 * j + s)[0]
        variants.append(x)
    values = predict_target(model, np.stack(variants), target, runner, batch_size)
    out[k] = values.reshape(len(windows), samples).mean(axis=1) - reference[k]
  return out
