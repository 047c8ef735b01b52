"""What runs inside the Beam workers: windows from an indexed FASTA, the SavedModel, reductions.

The transforms here call the single-process pieces record by record (`analysis.variants`:
`variant_targets`, `variant_windows`, `reduce_copies`, `statistic`; `data.genome.Genome` over
pyfaidx; `data.encoding`), so both paths compute the same numbers. The model is the
parity-checked TF-Hub export (`export.hub`), loaded with `tf.saved_model.load` by Beam's
`RunInference` through `SavedModelHandler`.

Workers need neither Sonnet nor the training code: `shipped_by_value()` makes Beam's pickler
carry these classes and the functions they call inside the pickled pipeline (cloudpickle "by
value"), so a worker imports only numpy, TensorFlow, pyfaidx and Apache Beam (tested by
unpickling the transforms in a process where `tf_seqmodels` and `sonnet` cannot be imported).
Elements between transforms are plain tuples, strings and numpy arrays for the same reason.
(With Beam's other pickler, `--pickle_library dill`, the workers import tf-seqmodels instead.)
"""

from __future__ import annotations

import contextlib
import os
import pickle
import uuid
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np
from apache_beam import DoFn, pvalue
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from tf_seqmodels.analysis.contributions import hypothetical_from_gradients, target_value
from tf_seqmodels.analysis.variants import (VariantScoringConfig, reduce_copies, statistic,
                                            variant_targets, variant_windows, TSSIndex)
from tf_seqmodels.data.encoding import (indices_to_one_hot, one_hot_encode,
                                        reverse_complement_indices)
from tf_seqmodels.data.genome import Genome
from tf_seqmodels.data.strands import CopyAverage
from tf_seqmodels.data.vcf import Variant

# The modules whose code the transforms run on the workers; `shipped_by_value` pickles them by
# value. Each imports only numpy / tensorflow / pyfaidx / the others at module level (the
# isolation test fails when one starts importing anything else that a worker would need).
SHIPPED_MODULES = ("tf_seqmodels.beam.worker", "tf_seqmodels.analysis.variants",
                   "tf_seqmodels.data.genome", "tf_seqmodels.data.encoding",
                   "tf_seqmodels.data.strands", "tf_seqmodels.data.vcf",
                   "tf_seqmodels.tasks.metrics", "tf_seqmodels.config",
                   "tf_seqmodels.analysis.contributions", "tf_seqmodels.errors")


@contextlib.contextmanager
def shipped_by_value(needed: bool = True) -> Iterator[None]:
  """Within the block, Beam's pickler (cloudpickle) pickles SHIPPED_MODULES by value.

  Unpickling a class pickled by value in the process that pickled it re-applies the pickled
  methods to the live class, as copies bound to a copy of the module's globals (Beam
  round-trips every DoFn through pickle when the pipeline is built). Left so, `Genome.__init__`
  and the rest would stop seeing their module (a later patch of the module, or state it keeps,
  no longer reaches them); so the classes' attributes are put back when the block ends.
  `needed=False` (a runner that runs the transforms in this process) ships nothing.
  """
  if not needed:
    yield
    return
  import importlib
  from apache_beam.internal.cloudpickle import cloudpickle
  modules = [importlib.import_module(name) for name in SHIPPED_MODULES]
  classes = {cls: dict(vars(cls)) for module in modules for cls in vars(module).values()
             if isinstance(cls, type) and cls.__module__ == module.__name__}
  already = cloudpickle.list_registry_pickle_by_value()
  registered = [m for m in modules if m.__name__ not in already]
  for module in registered:
    cloudpickle.register_pickle_by_value(module)
  try:
    yield
  finally:
    for module in registered:
      cloudpickle.unregister_pickle_by_value(module)
    for cls, attributes in classes.items():
      for name, value in attributes.items():
        if name not in ("__dict__", "__weakref__") and vars(cls).get(name) is not value:
          setattr(cls, name, value)


# --- the model -----------------------------------------------------------------------------------

def saved_model_functions(loaded, signature: str):
  """(forward, reverse-complement) functions of a restored SavedModel: "dna" = the export's
  predict_dna_on_batch / predict_reverse_dna_on_batch on one-hot ACGT (as
  `analysis.inference.AnalysisModel` calls them), "predict" = predict_on_batch on encoded inputs
  (as `tf-seqmodels predict`)."""
  inner = getattr(loaded, "model", None)
  obj = inner if inner is not None and hasattr(inner, "predict_on_batch") else loaded
  if signature == "dna" and hasattr(obj, "predict_dna_on_batch"):
    forward = obj.predict_dna_on_batch
    return forward, getattr(obj, "predict_reverse_dna_on_batch", None) or forward
  return obj.predict_on_batch, obj.predict_on_batch


class SavedModelHandler(ModelHandler):
  """RunInference handler of a SavedModel: each element is an array of copies of one record
  (int8 base indices [C, L], N = 4, or float32 one-hot [C, L, 4]); the result of an element is
  a list of passes [{head: [C, ...]}]: the forward pass, then (with `reverse_complement`) the
  pass over the reverse complements, in the element's copy order.

  The copies of a Beam batch run through TensorFlow together, `max_sequences` at a time.
  """

  def __init__(self, path: str, *, signature: str = "dna", heads: Optional[Sequence[str]] = None,
               reverse_complement: bool = False, max_batch_size: int = 8,
               max_sequences: Optional[int] = None):
    super().__init__()
    self._path = path
    self._signature = signature
    self._heads = list(heads) if heads is not None else None
    self._reverse_complement = reverse_complement
    self._max_batch_size = max_batch_size
    self._max_sequences = max_sequences

  def load_model(self):
    import tensorflow as tf
    return tf.saved_model.load(self._path)

  def batch_elements_kwargs(self) -> Mapping[str, Any]:
    return {"min_batch_size": 1, "max_batch_size": self._max_batch_size}

  def _predict(self, fn, copies: np.ndarray) -> dict[str, np.ndarray]:
    import tensorflow as tf
    step = self._max_sequences or len(copies)
    chunks: dict[str, list] = {}
    for start in range(0, len(copies), step):
      x = copies[start:start + step]
      x = indices_to_one_hot(x) if np.issubdtype(x.dtype, np.integer) else x
      outputs = fn(tf.constant(np.asarray(x, np.float32)))
      if not isinstance(outputs, Mapping):
        outputs = {"output": outputs}
      missing = [h for h in self._heads or () if h not in outputs]
      if missing:
        raise ValueError(f"the SavedModel has no head(s) {missing}; heads: {sorted(outputs)}")
      for head in self._heads or sorted(outputs):
        chunks.setdefault(head, []).append(np.asarray(outputs[head]))
    return {h: np.concatenate(v) for h, v in chunks.items()}

  def run_inference(self, batch: Sequence[np.ndarray], model,
                    inference_args: Optional[dict] = None) -> Iterable[PredictionResult]:
    forward, reverse = saved_model_functions(model, self._signature)
    sizes = [len(x) for x in batch]
    copies = np.concatenate([np.asarray(x) for x in batch])
    passes = [self._predict(forward, copies)]
    if self._reverse_complement:
      passes.append(self._predict(reverse, reverse_complement_indices(copies)))
    offsets = np.cumsum([0] + sizes)
    for k, example in enumerate(batch):
      lo, hi = offsets[k], offsets[k + 1]
      yield PredictionResult(example, [{h: v[lo:hi] for h, v in p.items()} for p in passes])

  def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
    return sum(np.asarray(x).nbytes for x in batch)


# --- score-variants --------------------------------------------------------------------------

class VariantWindows(DoFn):
  """(index, variant fields) -> ((index, hit, fields, anchor, gene), ref and alt windows
  [2 S, L] int8: the S shifted ref copies, then the alt copies); variants that cannot be
  scored -> "skipped" output (index, fields, reason), as `analysis.variants.score_variants`."""

  def __init__(self, fasta: str, length: int, shifts: Sequence[int],
               genes: Optional[Sequence[tuple[str, int, str]]] = None):
    self._fasta = fasta
    self._length = length
    self._shifts = tuple(shifts)
    self._genes = genes
    self._genome = None
    self._index = None

  def setup(self) -> None:
    self._genome = Genome(self._fasta)
    self._index = TSSIndex(self._genes) if self._genes is not None else None

  def process(self, element):
    index, fields = element
    fields = tuple(fields)
    skipped = []
    targets = variant_targets([Variant(*fields)], self._genome, self._index, self._length, skipped)
    for hit, (variant, anchor, gene) in enumerate(targets):
      pairs = [variant_windows(self._genome, variant, anchor + s, self._length)
               for s in self._shifts]
      windows = np.stack([r for r, _ in pairs] + [a for _, a in pairs])
      yield (index, hit, fields, anchor, gene), windows
    for record in skipped:
      yield pvalue.TaggedOutput("skipped", (index, fields, record.reason))

  def teardown(self) -> None:
    if self._genome is not None:
      self._genome.close()


class ScoreVariant(DoFn):
  """(key, PredictionResult) -> ((index, hit), fields, anchor, gene, ref, alt, scores): copies
  averaged (`reduce_copies`) and compared per head (`statistic`) as the single-process scorer
  does."""

  def __init__(self, config: VariantScoringConfig, heads: Mapping[str, Sequence[str]],
               position_axes: Mapping[str, Optional[int]], head_kinds: Mapping[str, str],
               track_permutations: Mapping[str, Any]):
    self._config = config
    self._heads = {h: tuple(s) for h, s in heads.items()}
    self._axes = dict(position_axes)
    self._kinds = dict(head_kinds)
    self._perms = {h: np.asarray(p) for h, p in track_permutations.items()}

  def process(self, element):
    key, result = element
    copies = list(zip(result.inference, (False, True)))
    both = reduce_copies(copies, len(self._config.shifts), self._config, self._axes, self._kinds,
                         self._perms)
    ref = {h: v[:1] for h, v in both.items()}
    alt = {h: v[1:] for h, v in both.items()}
    scores = {h: {s: statistic(s, ref[h], alt[h], self._config.pseudo_count, self._kinds[h])
                  for s in stats} for h, stats in self._heads.items()}
    index, hit, fields, anchor, gene = key
    yield (index, hit), fields, anchor, gene, ref, alt, scores


# --- predict ---------------------------------------------------------------------------------

class GenomeWindows(DoFn):
  """(index, chrom, start, end) -> ((index, chrom, start), indices [1, end - start]): a window
  of the indexed FASTA (`Genome.fetch_window`: N past the chromosome ends), as the
  single-process commands cut it; a whole record is the window (0, its length)."""

  def __init__(self, fasta: str):
    self._fasta = fasta
    self._genome = None

  def setup(self) -> None:
    self._genome = Genome(self._fasta)

  def process(self, element):
    index, chrom, start, end = element
    yield (index, chrom, start), self._genome.fetch_window(chrom, start, end)[None]

  def teardown(self) -> None:
    if self._genome is not None:
      self._genome.close()


class AverageStrands(DoFn):
  """((index, *rest), PredictionResult) -> (index, *rest, {head: float32 [C, ...]}): the
  forward pass, averaged with the reverse-complement pass (if the handler ran one) mapped back
  to the forward strand, in float64 as `tf-seqmodels predict` averages (`CopyAverage`)."""

  def __init__(self, position_axes: Mapping[str, Optional[int]],
               track_permutations: Mapping[str, Sequence[int]]):
    self._position_axes = dict(position_axes)
    self._track_permutations = dict(track_permutations)

  def process(self, element):
    key, result = element
    average = CopyAverage(self._position_axes, self._track_permutations)
    for k, outputs in enumerate(result.inference):
      average.add({h: np.asarray(v, np.float64) for h, v in outputs.items()}, k > 0)
    yield (*key, {h: v.astype(np.float32) for h, v in average.result().items()})


# --- contributions ---------------------------------------------------------------------------

class IsmCopies(DoFn):
  """(key, indices [1, L]) -> (key, [1 + M, L]): the window, then every single-base
  substitution in position order (the 3 other bases; all 4 at an N), as
  `analysis.contributions.ism` enumerates them."""

  def process(self, element):
    key, window = element
    window = np.asarray(window)[0]
    sites, bases = ism_substitutions(window)
    copies = np.repeat(window[None], 1 + len(sites), axis=0)
    copies[np.arange(1, 1 + len(sites)), sites] = bases
    yield key, copies


def ism_substitutions(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(positions, bases) of every substitution of int8 indices [L] (N = 4 takes all 4 bases)."""
  pairs = [(i, b) for i, base in enumerate(window.tolist()) for b in range(4) if b != base]
  return np.array([i for i, _ in pairs], np.int64), np.array([b for _, b in pairs], np.int8)


class IsmScores(DoFn):
  """((index, chrom, start), PredictionResult) -> (index, chrom, start, window, hypothetical
  [L, 4]): target values (`contributions.target_value`) of the substitutions minus the
  window's, centred over the 4 bases at each position, as `tf-seqmodels contributions --method
  ism` writes them."""

  def __init__(self, target, position_axis: Optional[int]):
    self._target = target
    self._axis = position_axis

  def process(self, element):
    (index, chrom, start), result = element
    copies = np.asarray(result.example)
    values = np.asarray(target_value(self._target, result.inference[0], self._axis), np.float32)
    sites, bases = ism_substitutions(copies[0])
    delta = np.zeros((copies.shape[1], 4), np.float32)
    delta[sites, bases] = values[1:] - values[0]
    yield index, chrom, start, copies[0], delta - delta.mean(-1, keepdims=True)


class GradientScores(DoFn):
  """((index, chrom, start), indices [1, L]) -> (index, chrom, start, window, hypothetical
  [L, 4]) of a gradient method (`contributions.hypothetical_from_gradients`): d target /
  d one-hot of the SavedModel's `predict_dna_on_batch` (restored SavedModel functions are
  differentiable), `batch_size` sequences per pass; DeepSHAP references seeded by the index."""

  def __init__(self, path: str, target, position_axis: Optional[int], method: str, *,
               batch_size: int, num_references: int, steps: int):
    self._path = path
    self._target = target
    self._axis = position_axis
    self._method = method
    self._batch_size = batch_size
    self._num_references = num_references
    self._steps = steps
    self._loaded = self._forward = None

  def setup(self) -> None:
    import tensorflow as tf
    self._loaded = tf.saved_model.load(self._path)  # (kept: its functions use its variables)
    self._forward, _ = saved_model_functions(self._loaded, "dna")

  def _gradients(self, one_hot: np.ndarray) -> np.ndarray:
    import tensorflow as tf
    chunks = []
    for start in range(0, len(one_hot), self._batch_size):
      x = tf.constant(one_hot[start:start + self._batch_size], tf.float32)
      with tf.GradientTape() as tape:
        tape.watch(x)
        value = target_value(self._target, self._forward(x), self._axis)
      chunks.append(tape.gradient(value, x).numpy())
    return np.concatenate(chunks)

  def process(self, element):
    (index, chrom, start), window = element
    window = np.asarray(window)[0]
    hypothetical = hypothetical_from_gradients(
        self._method, indices_to_one_hot(window)[None], self._gradients,
        num_references=self._num_references, steps=self._steps, seed=index)
    yield index, chrom, start, window, hypothetical[0]


# --- sharded outputs -------------------------------------------------------------------------

class WriteShards(DoFn):
  """Writes each bundle's rows, sorted by their first field (the record index), to one new
  shard file `<directory>/<prefix>-<uuid>.pkl` (a sequence of pickled rows; temporary name,
  renamed when complete). A retried bundle may leave a second shard with the same rows: the
  merge keeps one row per key."""

  def __init__(self, directory: str, prefix: str):
    self._directory = directory
    self._prefix = prefix
    self._rows = []

  def start_bundle(self):
    self._rows = []

  def process(self, row):
    self._rows.append(row)

  def finish_bundle(self):
    if not self._rows:
      return
    self._rows.sort(key=lambda row: row[0])
    path = os.path.join(self._directory, f"{self._prefix}-{uuid.uuid4().hex}.pkl")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
      for row in self._rows:
        pickle.dump(row, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    self._rows = []
