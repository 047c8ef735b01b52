"""The Beam pipelines of `score-variants` and `predict`, and the driver around them.

Each pipeline: the driver writes the records (read and validated by the single-process
readers) to `<work>/inputs.jsonl` -> `ReadFromText` + `Reshuffle` (shards them over the
workers) -> windows from the indexed FASTA (`worker`) -> `RunInference` on the SavedModel ->
per-record reduction -> sorted shards `<work>/shards/*.pkl`. After the pipeline, the driver
merges the shards in record order (a streaming k-way merge: one row per shard in memory) into
the writers of the single-process command.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import pickle
import shlex
import shutil
import tempfile
from typing import Any, Iterator, Optional

import numpy as np

from tf_seqmodels.beam import BeamRun


# --- driver helpers ----------------------------------------------------------------------------

@contextlib.contextmanager
def work_directory(run: BeamRun, output: str) -> Iterator[str]:
  """A new folder (in `run.work_dir`, else beside `output`) removed when the block ends."""
  parent = run.work_dir or os.path.dirname(os.path.abspath(output))
  os.makedirs(parent, exist_ok=True)
  path = tempfile.mkdtemp(dir=parent, prefix=f".beam-{os.path.basename(output)}-")
  try:
    os.makedirs(os.path.join(path, "shards"))
    yield path
  finally:
    shutil.rmtree(path, ignore_errors=True)


def saved_model_path(model, source: Optional[str], work: str) -> str:
  """The SavedModel the workers load: `source` itself when the analysis model is one, else the
  contract model exported (`export.hub`, parity-checked) into `work`."""
  if model.model is None:
    return os.path.abspath(source)
  return export_model(model.model, work, {h: np.asarray(p).tolist()
                                          for h, p in model.track_permutations.items()})


def export_model(module, work: str, track_permutations: Optional[dict] = None) -> str:
  from tf_seqmodels.export.hub import HubExportConfig, export_hub
  config = HubExportConfig(tarball=False, track_permutations=dict(track_permutations or {}))
  return export_hub(module, os.path.join(work, "model"), config).savedmodel


def write_inputs(work: str, records: Iterator) -> int:
  """One JSON record per line in `<work>/inputs.jsonl` (a text source Beam splits); returns
  the count."""
  count = 0
  with open(os.path.join(work, "inputs.jsonl"), "w") as f:
    for record in records:
      f.write(json.dumps(record) + "\n")
      count += 1
  return count


def pipeline_options(run: BeamRun):
  from apache_beam.options.pipeline_options import PipelineOptions
  try:
    argv = shlex.split(run.options)
  except ValueError as e:
    raise ValueError(f"--beam-options {run.options!r}: {e}") from None
  if not any(a.startswith("--default_sdk_harness_log_level") for a in argv):
    argv.append("--default_sdk_harness_log_level=WARNING")  # workers: no per-bundle INFO lines
  return PipelineOptions(argv)


class PipelineError(ValueError):
  """A Beam job failed; the message ends with the failing worker's error line."""


def runs_in_this_process(options) -> bool:
  """Whether the runner runs the transforms in this process (the DirectRunner's in_memory and
  multi_threading modes), where the package is imported already and nothing is shipped."""
  from apache_beam.options.pipeline_options import DirectOptions, StandardOptions
  runner = options.view_as(StandardOptions).runner
  return (runner in (None, "DirectRunner", "direct") and
          options.view_as(DirectOptions).direct_running_mode != "multi_processing")


@contextlib.contextmanager
def pipeline(run: BeamRun):
  """A Beam pipeline that runs when the block ends, with the worker modules shipped by value
  to out-of-process workers; a failed job raises PipelineError with the worker's own error
  line (e.g. a SequenceError naming the record), not the runner's multi-page traceback."""
  import apache_beam as beam
  from tf_seqmodels.beam import worker
  options = pipeline_options(run)
  try:
    with worker.shipped_by_value(not runs_in_this_process(options)), \
        beam.Pipeline(options=options) as p:
      yield p
  except (KeyboardInterrupt, PipelineError):
    raise
  except Exception as e:  # the runners wrap worker errors in their own types
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    errors = [line for line in lines if line.split(":")[0].endswith(("Error", "Exception"))]
    raise PipelineError(f"the Beam pipeline failed: {(errors or lines or [repr(e)])[-1]}") from e


def read_inputs(p, work: str):
  import apache_beam as beam
  return (p
          | "read inputs" >> beam.io.ReadFromText(os.path.join(work, "inputs.jsonl"))
          | "parse" >> beam.Map(json.loads)
          | "shard" >> beam.Reshuffle())


def _rows(path: str) -> Iterator:
  with open(path, "rb") as f:
    while True:
      try:
        yield pickle.load(f)
      except EOFError:
        return


def merged_rows(work: str, prefix: str) -> Iterator:
  """The rows of all `<prefix>-*.pkl` shards in key order (row[0]), one row per key."""
  shards = sorted(os.path.join(work, "shards", name)
                  for name in os.listdir(os.path.join(work, "shards"))
                  if name.startswith(prefix + "-") and name.endswith(".pkl"))
  last = None
  for row in heapq.merge(*[_rows(path) for path in shards], key=lambda row: row[0]):
    if row[0] != last:
      yield row
    last = row[0]


def _batches(rows: Iterator, size: int) -> Iterator[list]:
  batch = []
  for row in rows:
    batch.append(row)
    if len(batch) == size:
      yield batch
      batch = []
  if batch:
    yield batch


# --- score-variants ------------------------------------------------------------------------------

def score_vcf_beam(model, vcf: str, fasta: str, output: str, config, *, run: BeamRun,
                   model_source: Optional[str] = None, genes_bed: Optional[str] = None,
                   pca_components: int = 0) -> dict[str, Any]:
  """`analysis.variants.score_vcf` as a Beam pipeline: the same output file, skipped list and
  summary. `model` is the driver's `AnalysisModel` (its metadata decides heads, positional axes,
  kinds and strand pairs); `model_source` the path it was loaded from (used as is when it is a
  SavedModel)."""
  import apache_beam as beam
  from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
  from tf_seqmodels.analysis.inference import BatchRunner
  from tf_seqmodels.analysis.variants import (ScoredBatch, Skipped, read_tss_bed, scored_heads,
                                              write_scores)
  from tf_seqmodels.beam import worker
  from tf_seqmodels.data.genome import Genome
  from tf_seqmodels.data.vcf import Variant, read_vcf

  length = config.sequence_length or model.sequence_length
  if length is None:
    raise ValueError("the model has no fixed input length: set sequence_length")
  model.check_length(length)
  genes = read_tss_bed(genes_bed) if genes_bed else None
  if pca_components and output.endswith((".tsv", ".txt")):  # before the job, not after it
    raise ValueError("the PCA summary is written to HDF5 outputs only (use a .h5 output)")
  with Genome(fasta):  # checks (and indexes) the FASTA once, before any worker opens it
    pass
  # Heads, kinds and positional axes: as the single-process scorer derives them from outputs.
  probe = BatchRunner().predict(model, np.zeros((1, length, 4), np.float32))
  heads = scored_heads(model, probe, config)
  axes = {h: model.position_axis(h, probe[h]) for h in heads}
  kinds = {h: model.head_kind(h, probe[h]) for h in heads}
  perms = {h: np.asarray(p) for h, p in model.track_permutations.items() if h in heads}
  with work_directory(run, output) as work:
    write_inputs(work, ((i, [v.chrom, v.pos, v.id, v.ref, v.alt, v.line])
                        for i, v in enumerate(read_vcf(vcf))))  # VCF errors before the export
    savedmodel = saved_model_path(model, model_source, work)
    shards = os.path.join(work, "shards")
    handler = worker.SavedModelHandler(savedmodel, heads=list(heads),
                                       reverse_complement=config.reverse_complement,
                                       max_batch_size=config.batch_size)
    with pipeline(run) as p:
      windows = (read_inputs(p, work)
                 | "windows" >> beam.ParDo(worker.VariantWindows(
                     os.path.abspath(fasta), length, config.shifts, genes)).with_outputs(
                         "skipped", main="windows"))
      (windows.windows
       | "model" >> RunInference(KeyedModelHandler(handler))
       | "score" >> beam.ParDo(worker.ScoreVariant(config, heads, axes, kinds, perms))
       | "write scores" >> beam.ParDo(worker.WriteShards(shards, "scores")))
      _ = windows.skipped | "write skipped" >> beam.ParDo(worker.WriteShards(shards, "skipped"))
    skipped = [Skipped(Variant(*fields), reason)
               for _, fields, reason in merged_rows(work, "skipped")]
    rows = _batches(merged_rows(work, "scores"), config.batch_size)
    batches = (ScoredBatch(
        [Variant(*row[1]) for row in batch], [row[2] for row in batch],
        [row[3] for row in batch],
        {h: np.concatenate([row[4][h] for row in batch]) for h in heads},
        {h: np.concatenate([row[5][h] for row in batch]) for h in heads},
        {h: {s: np.concatenate([row[6][h][s] for row in batch]) for s in stats}
         for h, stats in heads.items()}) for batch in rows)
    return write_scores(output, {"model": model.name, "config": config.to_json(), "vcf": vcf,
                                 "fasta": fasta}, batches, skipped, vcf=vcf,
                        pca_components=pca_components)


# --- predict -------------------------------------------------------------------------------------

def predict_beam(model, *, genome: str, run: BeamRun, output: str,
                 windows: Optional[list] = None, batch_size: int, reverse_complement: bool,
                 model_source: Optional[str] = None) -> dict[str, np.ndarray]:
  """`tf-seqmodels predict` as a Beam pipeline: {head: [N, ...]} predictions of the analysis
  `model` (its export, or the SavedModel `model_source` it was loaded from) for the records
  of the FASTA `genome` (`windows` None: every record, which must have one length) or for the
  `windows` [(chrom, start, end)] cut from it, in that order; with `reverse_complement`,
  averaged with the reverse-complement pass as the single-process command averages."""
  import apache_beam as beam
  from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
  from tf_seqmodels.analysis.inference import BatchRunner
  from tf_seqmodels.beam import worker
  from tf_seqmodels.data.encoding import SequenceError
  from tf_seqmodels.data.genome import Genome

  with Genome(genome) as fasta:  # checks (and indexes) the FASTA before any worker opens it
    if windows is None:
      windows = [(name, 0, size) for name, size in fasta.chrom_sizes.items()]
  lengths = sorted({end - start for _, start, end in windows})
  if len(lengths) != 1:
    raise SequenceError(f"{genome}: all records must have the same length, got {lengths[:5]}")
  model.check_length(lengths[0])
  probe = BatchRunner().predict(model, np.zeros((1, lengths[0], 4), np.float32))
  axes = {h: model.position_axis(h, v) for h, v in probe.items()}
  permutations = {h: np.asarray(p).tolist() for h, p in model.track_permutations.items()
                  if h in probe}
  with work_directory(run, output) as work:
    savedmodel = saved_model_path(model, model_source, work)
    write_inputs(work, ((i, *window) for i, window in enumerate(windows)))
    shards = os.path.join(work, "shards")
    handler = worker.SavedModelHandler(savedmodel, reverse_complement=reverse_complement,
                                       max_batch_size=batch_size)
    with pipeline(run) as p:
      (read_inputs(p, work)
       | "windows" >> beam.ParDo(worker.GenomeWindows(os.path.abspath(genome)))
       | "model" >> RunInference(KeyedModelHandler(handler))
       | "strands" >> beam.ParDo(worker.AverageStrands(axes, permutations))
       | "write" >> beam.ParDo(worker.WriteShards(shards, "predictions")))
    rows = list(merged_rows(work, "predictions"))
  if [(row[1], row[2]) for row in rows] != [(chrom, start) for chrom, start, _ in windows]:
    raise RuntimeError(f"the pipeline returned {len(rows)} of {len(windows)} records")
  return {h: np.concatenate([row[3][h] for row in rows]) for h in rows[0][3]}


# --- contributions -------------------------------------------------------------------------------

def contributions_beam(model, fasta: str, centres, target, method: str, *, run: BeamRun,
                       output_dir: str, model_source: Optional[str] = None, batch_size: int = 8,
                       num_references: int = 10, steps: int = 8) -> np.ndarray:
  """`tf-seqmodels contributions --method {ism,gradient_x_input,deepshap}` as a Beam pipeline:
  hypothetical contributions [N, L, 4] of the windows centred on `centres` ((chrom, centre)
  pairs), in their order, as the single-process command computes them
  (`analysis.hypothetical.hypothetical_contributions`). The windows are cut in the workers;
  ISM runs each region's substitutions through `RunInference`, `batch_size * 16` sequences at
  a time; the gradient methods differentiate the SavedModel's `predict_dna_on_batch` in the
  workers (`worker.GradientScores`; region k's DeepSHAP references seeded k, as locally)."""
  import apache_beam as beam
  from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
  from tf_seqmodels.analysis.contributions import GRADIENT_METHODS
  from tf_seqmodels.beam import worker
  from tf_seqmodels.data.genome import Genome

  length = model.sequence_length
  with Genome(fasta):  # checks (and indexes) the FASTA once, before any worker opens it
    pass
  from tf_seqmodels.analysis.inference import BatchRunner
  probe = BatchRunner().predict(model, np.zeros((1, length, 4), np.float32))
  if target.head not in probe:
    raise ValueError(f"target head {target.head!r} is not a model head; heads: {sorted(probe)}")
  axis = model.position_axis(target.head, probe[target.head])
  with work_directory(run, os.path.join(output_dir, "scores.h5")) as work:
    savedmodel = saved_model_path(model, model_source, work)
    write_inputs(work, ((i, chrom, int(centre) - length // 2, int(centre) - length // 2 + length)
                        for i, (chrom, centre) in enumerate(centres)))
    shards = os.path.join(work, "shards")
    with pipeline(run) as p:
      windows = (read_inputs(p, work)
                 | "windows" >> beam.ParDo(worker.GenomeWindows(os.path.abspath(fasta))))
      if method in GRADIENT_METHODS:
        scores = windows | method >> beam.ParDo(worker.GradientScores(
            savedmodel, target, axis, method, batch_size=batch_size * (4 if method == "deepshap"
                                                                        else 1),
            num_references=num_references, steps=steps))
      else:
        handler = worker.SavedModelHandler(savedmodel, heads=[target.head], max_batch_size=1,
                                           max_sequences=batch_size * 16)
        scores = (windows
                  | "substitutions" >> beam.ParDo(worker.IsmCopies())
                  | "model" >> RunInference(KeyedModelHandler(handler))
                  | "ism" >> beam.ParDo(worker.IsmScores(target, axis)))
      _ = scores | "write" >> beam.ParDo(worker.WriteShards(shards, "contributions"))
    rows = list(merged_rows(work, "contributions"))
  if len(rows) != len(centres):
    raise RuntimeError(f"the pipeline returned {len(rows)} of {len(centres)} regions")
  return np.stack([row[4] for row in rows])
