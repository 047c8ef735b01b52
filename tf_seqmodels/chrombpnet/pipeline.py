"""ChromBPNet from reads to a QC report, resumable step by step (`chrombpnet pipeline`).

    run_pipeline(PipelineConfig(reads="fragments.tsv.gz", reads_format="fragments",
                                genome="hg38.fa", peaks="peaks.narrowPeak", output_dir="out"))

Steps and outputs (under `output_dir`, close to the reference's layout):

    reads          auxiliary/data_unstranded.bw, auxiliary/reads.json (shift, compositions)
    regions        auxiliary/filtered.{peaks,nonpeaks}.narrowPeak, auxiliary/fold.json
    bias           models/bias/ (a training run: checkpoints, best.json, metrics.jsonl),
                   or the given bias model (run directory, or a reference Keras .h5
                   imported to models/bias_imported/)
    bias_qc        evaluation/bias_qc.json (metrics on test peaks / non-peaks, footprints of
                   the enzyme and TF motifs, flags); a failed Pearson gate stops here
    chrombpnet     models/chrombpnet/ (the bias frozen and recalibrated on the non-peaks)
    evaluate       evaluation/test_metrics.json, evaluation/test_predictions.npz
    tracks         tracks/{chrombpnet,chrombpnet_nobias,bias}.bw on the filtered peaks
    contributions  contributions/{counts,profile}_scores.h5 (modisco layout),
                   contributions/{counts,profile}.bw, contributions/regions.bed
    modisco        modisco/<target>/modisco.h5, patterns.json, motifs.meme
    footprints     footprints/footprints.json, footprints/profiles.npz
    report         report/index.html + PNGs
    export         export/chrombpnet_nobias/, export/chrombpnet/ (SavedModels, `export.hub`)

Resumability: a step records what it was run with in `steps/<step>.json` (written
atomically after its outputs). A rerun skips a step whose record matches the current
options and whose outputs exist; a step whose options changed is rerun and the records of
every later step are dropped. A training step interrupted by a kill resumes from its last
checkpoint when its options are unchanged.

Training goes through `training.run_training` (the run-config machinery and the Trainer):
Adam 1e-3, batch 64, up to 50 epochs, early stopping with patience 5, the best checkpoint
selected by the validation `loss` (minimised; the reference's `val_loss`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np

from tf_seqmodels.config import Config, ConfigError, atomic_write_text

log = logging.getLogger(__name__)

STEPS = ("reads", "regions", "bias", "bias_qc", "chrombpnet", "evaluate", "tracks",
         "contributions", "modisco", "footprints", "report", "export")
CONTRIB_METHODS = ("deeplift", "gradient")
CONTRIB_TARGETS = ("counts", "profile")


@dataclasses.dataclass(frozen=True)
class PipelineConfig(Config):
  """Everything `chrombpnet pipeline` runs with; defaults are the reference's.

  Attributes (the less obvious ones):
    reads / reads_format: the reads file and "fragments", "tagalign" or "bam"; or `bigwig`:
      an existing insertion-count bigWig (the reads step is then skipped).
    shift: the (plus, minus) shift the reads already carry; None = detected.
    fold: fold JSON; else `test_chroms` + `valid_chroms`; else the reference's human fold_0.
    nonpeaks: a non-peak file instead of GC-matched sampling.
    bias_model: a tf-seqmodels bias run directory or a reference Keras bias .h5; None =
      train one with `bias_threshold_factor` (0.5 ATAC, 0.8 DNase).
    steps_per_epoch: None = one pass over the training data.
    contrib_method: "deeplift" (DeepSHAP rescale rule, `contrib_references` dinucleotide
      shuffles; the reference uses DeepSHAP with 20) or "gradient" (hypothetical scores =
      gradients mean-centred across the four bases).
    modisco_window: None = min(500, input_length).
    tf_motifs / enzyme_motifs: `name<TAB>sequence` files (the reference's motif_to_pwm.tsv);
      enzyme motifs default to the k-mer enriched at the insertion sites of the reads.
    motif_db: a MEME file the discovered motifs are matched against.
  """

  genome: str = ""
  peaks: str = ""
  output_dir: str = ""
  reads: Optional[str] = None
  reads_format: Optional[str] = None
  bigwig: Optional[str] = None
  assay: str = "ATAC"
  shift: Optional[tuple[int, ...]] = None
  skip_unknown_chromosomes: bool = False
  nonpeaks: Optional[str] = None
  blacklist: Optional[str] = None
  fold: Optional[str] = None
  test_chroms: tuple[str, ...] = ()
  valid_chroms: tuple[str, ...] = ()
  nonpeak_ratio: int = 2
  nonpeak_stride: int = 1000
  bias_model: Optional[str] = None
  input_length: int = 2114
  output_length: int = 1000
  bias_filters: int = 128
  bias_layers: int = 4
  filters: int = 512
  layers: int = 8
  max_jitter: int = 500
  bias_threshold_factor: Optional[float] = None  # None: 0.5 ATAC, 0.8 DNase
  negative_sampling_ratio: float = 0.1
  batch_size: int = 64
  epochs: int = 50
  bias_epochs: Optional[int] = None  # None: epochs
  steps_per_epoch: Optional[int] = None
  patience: int = 5
  learning_rate: float = 1e-3
  seed: int = 1234
  contrib_method: str = "deeplift"
  contrib_references: int = 20
  contrib_max_regions: int = 30_000
  modisco_targets: tuple[str, ...] = ("profile",)
  modisco_window: Optional[int] = None
  modisco_max_seqlets: int = 50_000
  modisco_leiden: int = 2
  footprint_regions: int = 1000
  tf_motifs: Optional[str] = None
  enzyme_motifs: Optional[str] = None
  motif_db: Optional[str] = None
  export: bool = True
  progress: bool = True

  def validate(self) -> None:
    def fail(msg):
      raise ConfigError(f"chrombpnet pipeline: {msg}")

    for name in ("genome", "peaks", "output_dir"):
      if not getattr(self, name):
        fail(f"{name} is required")
    if (self.reads is None) == (self.bigwig is None):
      fail("give exactly one of the reads (fragments, tagAlign or BAM) or an insertion bigWig")
    if self.reads is not None and self.reads_format not in ("fragments", "tagalign", "bam"):
      fail(f"reads_format must be fragments, tagalign or bam, got {self.reads_format!r}")
    if self.assay.upper() not in ("ATAC", "DNASE"):
      fail(f"assay must be ATAC or DNASE, got {self.assay!r}")
    if self.shift is not None and len(self.shift) != 2:
      fail(f"shift must be (plus, minus), got {self.shift}")
    if self.contrib_method not in CONTRIB_METHODS:
      fail(f"contrib_method must be one of {CONTRIB_METHODS}, got {self.contrib_method!r}")
    if not set(self.modisco_targets) <= set(CONTRIB_TARGETS):
      fail(f"modisco_targets must be among {CONTRIB_TARGETS}, got {self.modisco_targets}")
    for name in ("input_length", "output_length", "batch_size", "epochs", "patience",
                 "contrib_references", "contrib_max_regions", "footprint_regions",
                 "nonpeak_ratio", "nonpeak_stride"):
      if getattr(self, name) < 1:
        fail(f"{name} must be >= 1, got {getattr(self, name)}")
    if self.bias_threshold_factor is not None and self.bias_threshold_factor <= 0:
      fail(f"bias_threshold_factor must be positive, got {self.bias_threshold_factor}")

  @property
  def threshold_factor(self) -> float:
    if self.bias_threshold_factor is not None:
      return self.bias_threshold_factor
    return 0.5 if self.assay.upper() == "ATAC" else 0.8


# --- step bookkeeping -------------------------------------------------------------------------

@dataclasses.dataclass
class Step:
  name: str
  keys: tuple[str, ...]  # PipelineConfig fields the step's result depends on (besides earlier steps)
  outputs: Callable[["Pipeline"], Sequence[str]]
  run: Callable[["Pipeline"], dict]
  directories: Callable[["Pipeline"], Sequence[str]] = lambda p: ()  # wiped on a changed rerun
  resumable: bool = False


class Pipeline:
  """Paths and step runner of one output directory (see the module docstring)."""

  def __init__(self, config: PipelineConfig):
    self.config = config
    self.root = os.path.abspath(config.output_dir)
    self.records: dict[str, dict] = {}

  def path(self, *parts: str) -> str:
    return os.path.join(self.root, *parts)

  # -- paths
  @property
  def bigwig(self) -> str:
    return os.path.abspath(self.config.bigwig) if self.config.bigwig else self.path(
        "auxiliary", "data_unstranded.bw")

  peaks = property(lambda self: self.path("auxiliary", "filtered.peaks.narrowPeak"))
  nonpeaks = property(lambda self: self.path("auxiliary", "filtered.nonpeaks.narrowPeak"))
  fold = property(lambda self: self.path("auxiliary", "fold.json"))
  bias_dir = property(lambda self: self.path("models", "bias"))
  chrombpnet_dir = property(lambda self: self.path("models", "chrombpnet"))

  def _record_path(self, name: str) -> str:
    return self.path("steps", f"{name}.json")

  def _key(self, step: Step, upstream: str) -> str:
    values = {k: getattr(self.config, k) for k in step.keys}
    text = json.dumps({"values": values, "upstream": upstream}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]

  def _read_record(self, name: str) -> Optional[dict]:
    try:
      with open(self._record_path(name)) as f:
        return json.load(f)
    except (OSError, json.JSONDecodeError):
      return None

  def run(self, steps: Optional[Sequence[str]] = None, force: Sequence[str] = ()) -> dict:
    """Runs (or skips) every step in order; `steps` limits which run (later ones are left
    as they are); `force` reruns the named steps. Returns {step: record}."""
    unknown = sorted((set(steps or ()) | set(force)) - set(STEPS))
    if unknown:
      raise ValueError(f"unknown step(s) {unknown}; steps: {list(STEPS)}")
    os.makedirs(self.path("steps"), exist_ok=True)
    self.config.save(self.path("pipeline.json"))
    upstream = ""
    invalidated = False
    for step in STEP_TABLE:
      if step.name == "reads" and self.config.bigwig:
        continue
      if step.name == "export" and not self.config.export:
        continue
      key = self._key(step, upstream)
      record = self._read_record(step.name)
      complete = (record is not None and record.get("key") == key and not invalidated
                  and step.name not in force
                  and all(os.path.exists(p) for p in step.outputs(self)))
      if steps is not None and step.name not in steps:
        if not complete:
          break  # later steps need this one
        self.records[step.name] = record
        upstream = key
        continue
      if complete:
        log.info("step %s: done earlier, skipped", step.name)
        self._say(f"[{step.name}] done earlier, skipped")
        self.records[step.name] = record
        upstream = key
        continue
      started = self._read_record(step.name + ".started")
      resume = step.resumable and started is not None and started.get("key") == key and \
          step.name not in force
      if not resume:
        for directory in step.directories(self):
          if os.path.isdir(directory):
            shutil.rmtree(directory)
      atomic_write_text(self._record_path(step.name + ".started"), json.dumps({"key": key}))
      if os.path.exists(self._record_path(step.name)):
        os.unlink(self._record_path(step.name))
      invalidated = True  # everything after a rerun step reruns: drop its records
      for later in STEPS[STEPS.index(step.name) + 1:]:
        if os.path.exists(self._record_path(later)):
          os.unlink(self._record_path(later))
      self._say(f"[{step.name}] running")
      for output in step.outputs(self):
        os.makedirs(os.path.dirname(output), exist_ok=True)
      self._resume = resume
      began = time.time()
      result = step.run(self) or {}
      record = {"step": step.name, "key": key, "outputs": list(step.outputs(self)),
                "seconds": round(time.time() - began, 1), "result": result}
      atomic_write_text(self._record_path(step.name), json.dumps(record, indent=1, default=str))
      os.unlink(self._record_path(step.name + ".started"))
      self.records[step.name] = record
      upstream = key
    return self.records

  def _say(self, text: str) -> None:
    if self.config.progress:
      print(text, flush=True)

  def result(self, name: str) -> dict:
    record = self.records.get(name) or self._read_record(name)
    if record is None:
      raise FileNotFoundError(f"step {name} has not run in {self.root}")
    return record["result"]


# --- steps --------------------------------------------------------------------------------------

def _run_reads(p: Pipeline) -> dict:
  from tf_seqmodels.chrombpnet.reads import reads_to_bigwig
  c = p.config
  summary = reads_to_bigwig(c.reads, c.reads_format, c.genome, p.bigwig, c.assay,
                            c.shift, skip_unknown=c.skip_unknown_chromosomes,
                            progress=c.progress, seed=c.seed)
  atomic_write_text(p.path("auxiliary", "reads.json"), json.dumps(summary, indent=1))
  return {k: v for k, v in summary.items() if "composition" not in k}


def _fold(p: Pipeline):
  from tf_seqmodels.chrombpnet.regions import default_fold
  from tf_seqmodels.data.genome import Genome
  from tf_seqmodels.data.intervals import read_fold
  c = p.config
  if c.fold:
    return read_fold(c.fold)
  with Genome(c.genome) as genome:
    return default_fold(genome.chrom_sizes, c.test_chroms or None, c.valid_chroms or None)


def _run_regions(p: Pipeline) -> dict:
  from tf_seqmodels.chrombpnet.regions import prepare_regions
  c = p.config
  return prepare_regions(c.genome, c.peaks, _fold(p), p.path("auxiliary"), c.input_length,
                         c.blacklist, c.nonpeaks, c.nonpeak_ratio, c.nonpeak_stride,
                         c.max_jitter, c.seed)


def _bias_config(c: PipelineConfig) -> dict:
  return {"filters": c.bias_filters, "num_dilated_layers": c.bias_layers,
          "sequence_length": c.input_length, "output_length": c.output_length}


def _train_config(p: Pipeline, mode: str, run_dir: str, model_name: str, model_config: dict,
                  epochs: int, init_from: Optional[str] = None):
  from tf_seqmodels.training.data_builders import DataSection
  from tf_seqmodels.training.run_config import (ModelSection, OptimizerSection, TaskSection,
                                                TrainConfig)
  from tf_seqmodels.training.trainer import TrainerConfig
  c = p.config
  data = {"input_length": c.input_length, "output_length": c.output_length,
          "bias_threshold_factor": c.threshold_factor, "seed": c.seed,
          "negative_sampling_ratio": c.negative_sampling_ratio,
          "max_jitter": 0 if mode == "bias" else c.max_jitter}
  return TrainConfig(
      model=ModelSection(name=model_name, config=model_config, init_from=init_from,
                         init_component="bias_model" if init_from else None),
      task=TaskSection(type="chrombpnet"),
      data=DataSection(type="chrombpnet", batch_size=c.batch_size, options={
          "mode": mode, "peaks": p.peaks, "nonpeaks": p.nonpeaks, "genome": os.path.abspath(c.genome),
          "bigwig": p.bigwig, "fold": p.fold, "data": data}),
      optimizer=OptimizerSection(name="adam", learning_rate=c.learning_rate),
      # The best checkpoint and early stopping follow the validation loss, minimised (the
      # reference's EarlyStopping / ModelCheckpoint on val_loss).
      trainer=TrainerConfig(epochs=epochs, steps_per_epoch=c.steps_per_epoch,
                            select_best_by="loss", patience=c.patience, seed=c.seed,
                            progress=c.progress),
      run_dir=run_dir)


def _train(p: Pipeline, config) -> dict:
  from tf_seqmodels.training.run_config import run_training
  history = run_training(config, resume=p._resume)
  keep = ("steps", "best_step", "best_epoch", "best_value", "best_checkpoint", "stopped")
  return {k: history.get(k) for k in keep}


def _import_keras_bias(p: Pipeline, h5: str) -> str:
  """A reference bias model (`bias_model_scaled.h5`, or the bias inside a `chrombpnet.h5`)
  -> a tf-seqmodels checkpoint prefix; filters and layers are read from the weights."""
  import re
  from tf_seqmodels.convert.keras_h5 import load_bpnet_keras, load_keras_arrays
  from tf_seqmodels.convert.weights import save_checkpoint
  from tf_seqmodels.models.bpnet import BiasBPNetConfig, ChromBPNetBias
  arrays = load_keras_arrays(h5)
  layer = lambda key: key.split("/")[-2] if "/" in key else ""  # noqa: E731
  first = [v for k, v in arrays.items() if layer(k) == "bpnet_1st_conv" and k.endswith("kernel")]
  dilated = {layer(k) for k in arrays if re.fullmatch(r"bpnet_\d+conv", layer(k))}
  if len(first) != 1:
    raise ValueError(f"{h5}: expected one bias-model 'bpnet_1st_conv' kernel, found {len(first)}: "
                     f"not a ChromBPNet bias model")
  c = p.config
  config = BiasBPNetConfig(filters=int(first[0].shape[-1]), num_dilated_layers=len(dilated),
                           sequence_length=c.input_length, output_length=c.output_length)
  model = ChromBPNetBias(config)
  load_bpnet_keras(model, h5, scheme="bpnet")
  directory = p.path("models", "bias_imported")
  prefix = save_checkpoint(model, directory)
  config.save(os.path.join(directory, "config.json"))
  return prefix


def _bias_source(p: Pipeline) -> tuple[str, dict]:
  """(init_from path, bias model config dict) of the bias model in use."""
  c = p.config
  if c.bias_model is None:
    return p.bias_dir, _bias_config(c)
  if os.path.isdir(c.bias_model):
    from tf_seqmodels.model_source import ModelSource, model_config_of
    name, model_config, _ = model_config_of(ModelSource(c.bias_model))
    if name != "chrombpnet_bias":
      raise ValueError(f"{c.bias_model} is a {name!r} run, not a chrombpnet_bias run")
    config = model_config.to_dict()
    if (config["sequence_length"], config["output_length"]) != (c.input_length, c.output_length):
      raise ValueError(f"the bias model {c.bias_model} takes {config['sequence_length']} -> "
                       f"{config['output_length']} bp, the pipeline {c.input_length} -> "
                       f"{c.output_length}")
    return os.path.abspath(c.bias_model), config
  directory = p.path("models", "bias_imported")
  with open(os.path.join(directory, "config.json")) as f:
    return os.path.join(directory, "model"), json.load(f)


def _run_bias(p: Pipeline) -> dict:
  c = p.config
  if c.bias_model is not None:
    if not os.path.exists(c.bias_model):
      raise FileNotFoundError(f"bias model not found: {c.bias_model}")
    if os.path.isdir(c.bias_model):
      _bias_source(p)  # validates the run
      return {"bias_model": os.path.abspath(c.bias_model), "trained": False}
    return {"bias_model": _import_keras_bias(p, c.bias_model), "trained": False}
  config = _train_config(p, "bias", p.bias_dir, "chrombpnet_bias", _bias_config(c),
                         c.bias_epochs or c.epochs)
  return {"trained": True, **_train(p, config)}


def _bias_outputs(p: Pipeline) -> list[str]:
  c = p.config
  if c.bias_model is None:
    return [os.path.join(p.bias_dir, "best.json")]
  if os.path.isdir(c.bias_model):
    return []
  return [p.path("models", "bias_imported", "config.json")]


def _load_bias(p: Pipeline):
  from tf_seqmodels.models.bpnet import BiasBPNetConfig, ChromBPNetBias
  from tf_seqmodels.training.checkpointing import restore_model
  init_from, config = _bias_source(p)
  model = ChromBPNetBias(BiasBPNetConfig.from_dict(config))
  model.ensure_built()
  restore_model(model, init_from, "best")
  return model


def _load_chrombpnet(p: Pipeline):
  from tf_seqmodels.model_source import ModelSource, load_model  # the one model loader
  return load_model(ModelSource(p.chrombpnet_dir)).model


def _test_set(p: Pipeline):
  from tf_seqmodels.chrombpnet.evaluation import test_regions
  from tf_seqmodels.data.intervals import read_fold
  c = p.config
  return test_regions(p.peaks, p.nonpeaks, c.genome, p.bigwig, read_fold(p.fold), c.input_length,
                      c.output_length)


def _backgrounds(p: Pipeline, test) -> np.ndarray:
  """One-hot test non-peaks (at most footprint_regions, seeded) for marginal footprints."""
  rng = np.random.default_rng(p.config.seed)
  rows = np.flatnonzero(~test.is_peak)
  if not rows.size:
    raise ValueError("no test non-peaks to insert footprint motifs into")
  rows = np.sort(rng.choice(rows, min(len(rows), p.config.footprint_regions), replace=False))
  return np.asarray(test.one_hot()[rows], np.float32)


def _enzyme_motifs(p: Pipeline) -> dict[str, str]:
  from tf_seqmodels.chrombpnet.footprints import enzyme_consensus
  from tf_seqmodels.chrombpnet.motifs import read_motif_strings
  from tf_seqmodels.chrombpnet.reads import _FLANK
  c = p.config
  if c.enzyme_motifs:
    return read_motif_strings(c.enzyme_motifs)
  summary_path = p.path("auxiliary", "reads.json")
  if not os.path.exists(summary_path):
    raise ValueError("no enzyme motifs: give enzyme_motifs (--enzyme-motifs name<TAB>sequence); "
                     "they are derived from the reads only when the reads step detects the shift")
  with open(summary_path) as f:
    summary = json.load(f)
  if "plus_composition" not in summary:
    raise ValueError("the reads' shift was given, not detected, so no insertion-site composition "
                     "was measured: give enzyme_motifs (--enzyme-motifs name<TAB>sequence)")
  # The insertion base of a '+' tag sits at its 5' end + applied delta.
  centre = _FLANK + summary["applied_deltas"][0]
  consensus = enzyme_consensus(np.array(summary["plus_composition"]), centre)
  name = "tn5" if c.assay.upper() == "ATAC" else "dnase"
  return {f"{name}_insertion_kmer": consensus}


def _tf_motifs(p: Pipeline) -> dict[str, str]:
  from tf_seqmodels.chrombpnet.motifs import read_motif_strings
  return read_motif_strings(p.config.tf_motifs) if p.config.tf_motifs else {}


def _run_bias_qc(p: Pipeline) -> dict:
  from tf_seqmodels.chrombpnet.bias_qc import bias_qc, check_gate
  test = _test_set(p)
  result = bias_qc(_load_bias(p), test, _backgrounds(p, test), _enzyme_motifs(p), _tf_motifs(p),
                   p.config.batch_size)
  atomic_write_text(p.path("evaluation", "bias_qc.json"), json.dumps(result, indent=1))
  for flag in result["flags"]:
    log.warning(flag)
    p._say(f"WARNING: {flag}")
  check_gate(result)
  return {"flags": result["flags"], "peak_pearson": result["peak_pearson_gate"]["value"]}


def _run_chrombpnet(p: Pipeline) -> dict:
  c = p.config
  init_from, bias_config = _bias_source(p)
  model_config = {"model": "bpnet", "model_config": {
      "filters": c.filters, "num_dilated_layers": c.layers, "sequence_length": c.input_length,
      "output_length": c.output_length}, "bias_model": "chrombpnet_bias",
      "bias_model_config": bias_config}
  config = _train_config(p, "accessibility", p.chrombpnet_dir, "chrombpnet", model_config,
                         c.epochs, init_from=init_from)
  return _train(p, config)


def _run_evaluate(p: Pipeline) -> dict:
  from tf_seqmodels.chrombpnet import evaluation as E
  from tf_seqmodels.models.bpnet import COUNTS_HEAD, PROFILE_HEAD
  model = _load_chrombpnet(p)
  test = _test_set(p)
  x = test.one_hot()
  out, metrics = {}, {}
  for name, m in (("chrombpnet", model), ("chrombpnet_nobias", model.without_bias()),
                  ("bias", model.bias_model)):
    out[name] = E.predict(m, x, p.config.batch_size)
    metrics[name] = E.metrics(test.counts, out[name], test.is_peak)
  peaks = test.is_peak
  baselines = {}
  if peaks.any():
    baselines = E.summarise_baselines(E.jsd_baselines(test.counts[peaks],
                                                      out["chrombpnet"][PROFILE_HEAD][peaks],
                                                      p.config.seed))
  result = {"metrics": metrics, "jsd_baselines_peaks": baselines}
  atomic_write_text(p.path("evaluation", "test_metrics.json"), json.dumps(result, indent=1))
  from tf_seqmodels.config import atomic_output
  with atomic_output(p.path("evaluation", "test_predictions.npz")) as tmp, open(tmp, "wb") as f:
    np.savez_compressed(f, observed=test.counts, is_peak=test.is_peak,
                        chrom=test.regions.chrom.astype(str), centre=test.regions.centre,
                        **{f"{n}_{h}": v[h] for n, v in out.items()
                           for h in (PROFILE_HEAD, COUNTS_HEAD)})
  return {"peaks": metrics["chrombpnet"].get("peaks", {})}


def _run_tracks(p: Pipeline) -> dict:
  from tf_seqmodels.analysis.tracks import write_prediction_bigwig
  from tf_seqmodels.data.genome import Genome
  from tf_seqmodels.data.intervals import read_narrowpeak
  model = _load_chrombpnet(p)
  regions = read_narrowpeak(p.peaks)
  written = {}
  with Genome(p.config.genome) as genome:
    for name, m in (("chrombpnet", model), ("chrombpnet_nobias", model.without_bias()),
                    ("bias", model.bias_model)):
      kept = write_prediction_bigwig(m, genome, regions, p.path("tracks", f"{name}.bw"),
                                     p.config.batch_size)
      written[name] = len(kept)
  return {"regions": written}


def _contribution_regions(p: Pipeline):
  from tf_seqmodels.data.intervals import read_narrowpeak
  regions = read_narrowpeak(p.peaks)
  rng = np.random.default_rng(p.config.seed)
  if len(regions) > p.config.contrib_max_regions:  # the reference: a 30K random subsample
    regions = regions.subset(np.sort(rng.choice(len(regions), p.config.contrib_max_regions,
                                                replace=False)))
  return regions


def hypothetical_scores(model, one_hot: np.ndarray, target: str, method: str,
                        references: int = 20, seed: int = 0, batch_size: int = 64,
                        progress: bool = False) -> np.ndarray:
  """Hypothetical contributions [N, L, 4] of the counts or profile target of a
  profile/counts model: DeepLIFT (DeepSHAP rescale rule against dinucleotide shuffles) or
  gradients mean-centred across the four bases (what TF-MoDISco expects of gradients)."""
  from tf_seqmodels.analysis import contributions as C
  from tf_seqmodels.analysis.hypothetical import hypothetical_contributions
  from tf_seqmodels.analysis.inference import AnalysisModel, BatchRunner
  from tf_seqmodels.models.bpnet import COUNTS_HEAD, PROFILE_HEAD
  analysis = AnalysisModel(model)
  runner = BatchRunner()
  spec = C.Target(head=COUNTS_HEAD, kind="sum") if target == "counts" else \
      C.Target(head=PROFILE_HEAD, kind="profile")
  return hypothetical_contributions(
      analysis, one_hot, spec, "gradient_x_input" if method == "gradient" else "deeplift",
      runner, num_references=references, seed=seed, batch_size=batch_size, progress=progress)


def _run_contributions(p: Pipeline) -> dict:
  from tf_seqmodels.analysis.contribution_outputs import (write_contribution_bigwig,
                                                          write_modisco_h5)
  from tf_seqmodels.data.chrombpnet import filter_edge_regions, one_hot_indices
  from tf_seqmodels.data.genome import Genome
  from tf_seqmodels.data.intervals import window_bounds
  c = p.config
  nobias = _load_chrombpnet(p).without_bias()
  with Genome(c.genome) as genome:
    regions = filter_edge_regions(_contribution_regions(p), genome.chrom_sizes, c.input_length)
    starts, _ = window_bounds(regions.centre, c.input_length)
    seqs = np.stack([genome.fetch_indices(regions.chrom[i], int(starts[i]),
                                          int(starts[i]) + c.input_length)
                     for i in range(len(regions))])
    sizes = dict(genome.chrom_sizes)
  one_hot = np.asarray(one_hot_indices(seqs), np.float32)
  chroms = [str(x) for x in regions.chrom]
  for target in CONTRIB_TARGETS:
    hyp = hypothetical_scores(nobias, one_hot, target, c.contrib_method, c.contrib_references,
                              c.seed, c.batch_size, c.progress)
    write_modisco_h5(p.path("contributions", f"{target}_scores.h5"), one_hot, hyp, chroms,
                     starts, {"method": c.contrib_method, "target": target,
                              "model": "chrombpnet_nobias"})
    write_contribution_bigwig(p.path("contributions", f"{target}.bw"), sizes, chroms, starts,
                              (hyp * one_hot).sum(-1))
  atomic_write_text(p.path("contributions", "regions.bed"), "".join(
      f"{ch}\t{s}\t{s + c.input_length}\n" for ch, s in zip(chroms, starts)))
  return {"regions": len(regions), "method": c.contrib_method}


def _motif_database(p: Pipeline) -> dict[str, np.ndarray]:
  from tf_seqmodels.chrombpnet.motifs import consensus_ppm, read_meme
  db = read_meme(p.config.motif_db) if p.config.motif_db else {}
  db.update({name: consensus_ppm(s) for name, s in {**_tf_motifs(p), **_enzyme_motifs(p)}.items()})
  return db


def _run_modisco(p: Pipeline) -> dict:
  from tf_seqmodels.chrombpnet.motifs import (match_patterns, read_patterns, run_modisco,
                                              write_meme)
  c = p.config
  out = {}
  db = _motif_database(p)
  for target in c.modisco_targets:
    directory = p.path("modisco", target)
    os.makedirs(directory, exist_ok=True)
    h5 = os.path.join(directory, "modisco.h5")
    try:
      count = run_modisco(p.path("contributions", f"{target}_scores.h5"), h5, c.modisco_window,
                          c.modisco_max_seqlets, c.modisco_leiden)
    except ValueError as e:  # modisco-lite gives up on too few seqlets: report it, go on
      p._say(f"WARNING: {e}")
      atomic_write_text(os.path.join(directory, "patterns.json"), "[]\n")
      out[target] = {"patterns": 0, "matches": [], "error": str(e)}
      continue
    patterns = read_patterns(h5)
    rows = match_patterns(patterns, db)
    write_meme(os.path.join(directory, "motifs.meme"), patterns)
    atomic_write_text(os.path.join(directory, "patterns.json"), json.dumps(
        [{**r, "ppm": pat.ppm.round(4).tolist(), "cwm": pat.cwm.round(5).tolist()}
         for r, pat in zip(rows, patterns)], indent=1))
    out[target] = {"patterns": count, "matches": [r["match"] for r in rows]}
  return out


def _discovered_motifs(p: Pipeline, enzyme: dict[str, str]) -> dict[str, str]:
  """Consensus of the positive patterns not resembling an enzyme motif."""
  from tf_seqmodels.chrombpnet.motifs import MATCH_THRESHOLD, consensus_ppm, similarity
  out = {}
  for target in p.config.modisco_targets:
    with open(p.path("modisco", target, "patterns.json")) as f:
      for row in json.load(f):
        if not row["pattern"].startswith("pos_"):
          continue
        ppm = np.array(row["ppm"])
        if any(similarity(ppm, consensus_ppm(s))[0] >= MATCH_THRESHOLD for s in enzyme.values()):
          continue
        out[f"{target}.{row['pattern']}"] = row["consensus"]
  return out


def _run_footprints(p: Pipeline) -> dict:
  from tf_seqmodels.chrombpnet.bias_qc import tf_motif_flags
  from tf_seqmodels.chrombpnet.footprints import CORRECTED_MAX_RATIO, footprints
  model = _load_chrombpnet(p)
  test = _test_set(p)
  backgrounds = _backgrounds(p, test)
  enzyme = _enzyme_motifs(p)
  tf = {**_tf_motifs(p), **_discovered_motifs(p, enzyme)}
  motifs = {**enzyme, **tf}
  result, profiles = {}, {}
  for name, m in (("chrombpnet", model), ("chrombpnet_nobias", model.without_bias()),
                  ("bias", model.bias_model)):
    prints = footprints(m, backgrounds, motifs, p.config.batch_size)
    result[name] = {k: v.to_dict() for k, v in prints.items()}
    profiles.update({f"{name}/{k}": v.profile for k, v in prints.items()})
  responses = [result["chrombpnet_nobias"][k]["max_ratio"] for k in enzyme]
  corrected = bool(np.mean(responses) < CORRECTED_MAX_RATIO) if responses else None
  summary = {"footprints": result, "enzyme_motifs": enzyme, "tf_motifs": tf,
             "bias_correction": {"corrected": corrected, "nobias_enzyme_max_ratio": responses,
                                 "threshold": CORRECTED_MAX_RATIO},
             "bias_tf_flags": tf_motif_flags(result["bias"], tf)}
  atomic_write_text(p.path("footprints", "footprints.json"), json.dumps(summary, indent=1))
  from tf_seqmodels.config import atomic_output
  with atomic_output(p.path("footprints", "profiles.npz")) as tmp, open(tmp, "wb") as f:
    np.savez_compressed(f, **{k.replace("/", "__"): v for k, v in profiles.items()})
  for flag in summary["bias_tf_flags"]:
    p._say(f"WARNING: {flag}")
  return {"corrected": corrected, "bias_tf_flags": summary["bias_tf_flags"]}


def _run_report(p: Pipeline) -> dict:
  from tf_seqmodels.chrombpnet.report import write_report
  return {"html": write_report(p)}


def _run_export(p: Pipeline) -> dict:
  from tf_seqmodels.export.hub import HubExportConfig, export_hub
  model = _load_chrombpnet(p)
  out = {}
  for name, m in (("chrombpnet_nobias", model.without_bias()), ("chrombpnet", model)):
    directory = p.path("export", name)
    export_hub(m, directory, HubExportConfig(overwrite=True, tarball=False))
    out[name] = directory
  return out


STEP_TABLE = (
    Step("reads", ("reads", "reads_format", "genome", "assay", "shift", "skip_unknown_chromosomes"),
         lambda p: [p.bigwig, p.path("auxiliary", "reads.json")], _run_reads),
    Step("regions", ("genome", "peaks", "nonpeaks", "blacklist", "fold", "test_chroms",
                     "valid_chroms", "input_length", "nonpeak_ratio", "nonpeak_stride",
                     "max_jitter", "seed", "bigwig"),
         lambda p: [p.peaks, p.nonpeaks, p.fold], _run_regions),
    Step("bias", ("bias_model", "bias_filters", "bias_layers", "output_length",
                  "bias_threshold_factor", "assay", "batch_size", "epochs", "bias_epochs",
                  "steps_per_epoch", "patience", "learning_rate"),
         _bias_outputs, _run_bias,
         lambda p: [p.bias_dir, p.path("models", "bias_imported")], resumable=True),
    Step("bias_qc", ("tf_motifs", "enzyme_motifs", "footprint_regions"),
         lambda p: [p.path("evaluation", "bias_qc.json")], _run_bias_qc),
    Step("chrombpnet", ("filters", "layers", "negative_sampling_ratio"),
         lambda p: [os.path.join(p.chrombpnet_dir, "best.json")], _run_chrombpnet,
         lambda p: [p.chrombpnet_dir], resumable=True),
    Step("evaluate", (), lambda p: [p.path("evaluation", "test_metrics.json"),
                                    p.path("evaluation", "test_predictions.npz")], _run_evaluate),
    Step("tracks", (), lambda p: [p.path("tracks", f"{n}.bw") for n in
                                  ("chrombpnet", "chrombpnet_nobias", "bias")], _run_tracks),
    Step("contributions", ("contrib_method", "contrib_references", "contrib_max_regions"),
         lambda p: [p.path("contributions", f"{t}_scores.h5") for t in CONTRIB_TARGETS]
         + [p.path("contributions", f"{t}.bw") for t in CONTRIB_TARGETS], _run_contributions),
    Step("modisco", ("modisco_targets", "modisco_window", "modisco_max_seqlets",
                     "modisco_leiden", "motif_db"),
         lambda p: [p.path("modisco", t, "patterns.json") for t in p.config.modisco_targets],
         _run_modisco, lambda p: [p.path("modisco")]),
    Step("footprints", (), lambda p: [p.path("footprints", "footprints.json")], _run_footprints),
    Step("report", (), lambda p: [p.path("report", "index.html")], _run_report),
    Step("export", (), lambda p: [p.path("export", n, "savedmodel") for n in
                                  ("chrombpnet_nobias", "chrombpnet")], _run_export),
)
assert tuple(s.name for s in STEP_TABLE) == STEPS


def run_pipeline(config: PipelineConfig, steps: Optional[Sequence[str]] = None,
                 force: Sequence[str] = ()) -> dict[str, Any]:
  """Runs the pipeline (see the module docstring); returns {step: record}."""
  return Pipeline(config).run(steps, force)


__all__ = ["CONTRIB_METHODS", "Pipeline", "PipelineConfig", "STEPS", "hypothetical_scores",
           "run_pipeline"]
