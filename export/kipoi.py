"""Kipoi export: a complete, offline-testable Kipoi model folder for any contract model.

    from tf_seqmodels.export.kipoi import KipoiExportConfig, export_kipoi
    export_kipoi(model, "kipoi/dream_cnn", KipoiExportConfig(doc="DREAM-CNN, yeast promoters"))

writes (atomically, after the parity checks below pass)

    kipoi/dream_cnn/
      model.yaml           info, schema (inputs; every head as a target), dependencies,
                           default dataloader (the local one below), test.expect
      model.py             SavedModelModel(kipoi.model.BaseModel): SavedModel -> numpy per head
      dataloader.yaml/.py  DNA models: FASTA + BED -> fixed-length one-hot ACGT windows centred
                           on each interval (GenomicRanges metadata); multi-input models: an
                           .npz/.h5 of arrays keyed like input_spec() (row index metadata)
      savedmodel/          the TF-Hub SavedModel (export.hub), metadata in assets/
      example_files/       genome.fa + intervals.bed (or inputs.npz), expect.h5

Then, offline, on Python 3.11 / NumPy 2 (the np.string_ shim sits in model.py/dataloader.py):

    cd kipoi/dream_cnn && kipoi test .          # test.expect is resolved against the cwd
    kipoi test kipoi/dream_cnn -e kipoi/dream_cnn/example_files/expect.h5    # same, elsewhere
    kipoi predict kipoi/dream_cnn --dataloader_args='{"intervals_file": "x.bed",
        "fasta_file": "hg38.fa"}' -o preds.h5      # or .tsv; the file must not exist yet

Parity (fails loudly with ParityError; nothing is written): (1) live model vs reloaded
SavedModel (export.hub); (2) the Kipoi pipeline (`kipoi test -o`, run in a subprocess with a
temporary HOME, so ~/.kipoi is untouched) on the example files vs the live model on the same
inputs, |kipoi - live| <= atol + rtol * |live| (defaults 1e-5 / 1e-5), and the dataloader's
one-hot windows equal tf-seqmodels' own encoding; (3) `kipoi test` against the written
expect.h5 at `precision_decimal` (default 5: |diff| < 1.5e-5).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from typing import Optional

import numpy as np
import tensorflow as tf
import yaml
from tqdm import tqdm

from tf_seqmodels.export import kipoi_templates as templates
from tf_seqmodels.export.hub import (ExportError, HubExportConfig, ParityError, check_contract,  # noqa: F401
                        compare_outputs, example_inputs, to_tensors, write_savedmodel)
from tf_seqmodels.export.staging import staged_directory
from tf_seqmodels.config import Config, ConfigError, atomic_write_text
from tf_seqmodels.data.encoding import one_hot_encode

EXPECT_FILE = "example_files/expect.h5"


@dataclasses.dataclass(frozen=True)
class KipoiExportConfig(Config):
  """Kipoi model-folder options.

  Attributes:
    hub: SavedModel metadata and parity tolerance (its tarball option is ignored).
    doc, version, authors, license, cite_as, tags: model.yaml `info`.
    sequence_length: DNA window of the dataloader (default: the model's sequence_length).
    example_intervals: intervals (or rows) in the example files.
    batch_size: batch size of the Kipoi checks.
    precision_decimal: model.yaml test precision (decimal places).
    run_kipoi_test: also run `kipoi test` on the finished folder (a second subprocess).
    timeout_s: limit for each Kipoi subprocess.
    overwrite: replace an existing folder (atomically).
    seed: seeds the example files.
  """

  hub: HubExportConfig = dataclasses.field(default_factory=HubExportConfig)
  doc: str = ""
  version: str = "0.1.0"
  authors: list[str] = dataclasses.field(default_factory=list)
  license: str = "Apache-2.0"
  cite_as: str = ""
  tags: list[str] = dataclasses.field(default_factory=list)
  sequence_length: Optional[int] = None
  example_intervals: int = 6
  batch_size: int = 4
  precision_decimal: int = 5
  run_kipoi_test: bool = True
  timeout_s: int = 600
  overwrite: bool = False
  seed: int = 0

  def validate(self) -> None:
    if self.example_intervals < 1 or self.batch_size < 1:
      raise ConfigError("example_intervals and batch_size must be >= 1")
    if not 1 <= self.precision_decimal <= 10:
      raise ConfigError(f"precision_decimal must be in 1..10, got {self.precision_decimal}")


@dataclasses.dataclass
class KipoiExport:
  directory: str
  parity: dict[str, dict[str, float]]


# --- example files ---------------------------------------------------------------------------

def _write_dna_examples(folder: str, length: int, count: int, seed: int) -> dict:
  """A random two-chromosome genome and `count` BED intervals of varied widths (one reaching
  past a chromosome end, to exercise the N padding). Returns the expected one-hot windows."""
  rng = np.random.default_rng(seed)
  chroms = {f"chr{i + 1}": "".join(rng.choice(list("ACGT"), 2 * length + 64 + 37 * i))
            for i in range(2)}
  rows, windows = [], []
  for i in range(count):
    chrom = f"chr{i % 2 + 1}"
    size = len(chroms[chrom])
    width = int(rng.integers(1, length + 1))
    centre = 8 if i == count - 1 else int(rng.integers(length // 2, size - length // 2))
    start = max(0, centre - width // 2)
    rows.append(f"{chrom}\t{start}\t{start + width}\tregion{i}\t0\t+\n")
    middle = (start + start + width) // 2
    w_start = middle - length // 2
    padded = ("N" * max(0, -w_start) + chroms[chrom][max(0, w_start):min(size, w_start + length)]
              + "N" * max(0, w_start + length - size))
    windows.append(padded)
  os.makedirs(os.path.join(folder, "example_files"), exist_ok=True)
  fasta = "".join(f">{name}\n" + "\n".join(seq[i:i + 60] for i in range(0, len(seq), 60)) + "\n"
                  for name, seq in chroms.items())
  atomic_write_text(os.path.join(folder, "example_files", "genome.fa"), fasta)
  atomic_write_text(os.path.join(folder, "example_files", "intervals.bed"), "".join(rows))
  return {"inputs": one_hot_encode(windows)}


def _write_array_examples(folder: str, inputs: dict) -> dict:
  os.makedirs(os.path.join(folder, "example_files"), exist_ok=True)
  path = os.path.join(folder, "example_files", "inputs.npz")
  tmp = path + ".tmp.npz"
  np.savez(tmp, **inputs)
  os.replace(tmp, path)
  return {"inputs": inputs}


# --- yaml ------------------------------------------------------------------------------------

def _shape(dims) -> str:
  dims = [int(d) for d in dims]
  return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def _model_yaml(model, config: KipoiExportConfig, metadata: dict, length: Optional[int]) -> dict:
  targets = {head: {"shape": _shape(shape), "doc": f"head {head}"
                    + (f"; tracks: {', '.join(metadata['track_names'][head][:20])}"
                       if head in metadata["track_names"] else "")}
             for head, shape in metadata["head_shapes"].items()}
  info = {"doc": config.doc or f"{metadata['model_class']} ({metadata['model_name']}) exported by "
                               f"tf-seqmodels {metadata['package_version']}",
          "version": config.version, "license": config.license,
          "authors": [{"name": a} for a in config.authors] or [{"name": "tf-seqmodels"}],
          "trained_on": metadata["training_data"] or "unspecified",
          "tags": list(config.tags)}
  if config.cite_as:
    info["cite_as"] = config.cite_as
  return {
      "defined_as": "model.SavedModelModel",
      "args": {"savedmodel_dir": "savedmodel"},
      "info": info,
      "default_dataloader": ".",
      "dependencies": {"conda": ["python=3.11"],
                       "pip": [f"tensorflow>={tf.__version__.rsplit('.', 1)[0]}", "h5py",
                               "pyfaidx"]},
      "schema": {"inputs": _input_schema(model, metadata, length), "targets": targets},
      "test": {"expect": EXPECT_FILE, "precision_decimal": config.precision_decimal},
  }


def _input_schema(model, metadata: dict, length: Optional[int]):
  if model.takes_dna_sequence:
    return {"name": "seq", "shape": _shape([length, 4]), "special_type": "DNASeq",
            "doc": f"one-hot ACGT, {length} bp", "associated_metadata": "ranges"}
  return {key: {"shape": _shape(spec["shape"][1:]), "doc": f"input {key} ({spec['dtype']})"}
          for key, spec in metadata["input_spec"].items()}


def _dataloader_yaml(model, metadata: dict, length: Optional[int]) -> dict:
  if model.takes_dna_sequence:
    return {
        "type": "Dataset", "defined_as": "dataloader.IntervalSequenceDataset",
        "args": {"intervals_file": {"doc": "BED file: chrom, start, end[, name, score, strand]",
                                    "example": "example_files/intervals.bed"},
                 "fasta_file": {"doc": "reference genome FASTA (indexed on first use)",
                                "example": "example_files/genome.fa"}},
        "info": {"doc": f"Each interval resized to {length} bp around its centre, one-hot ACGT "
                        f"(N = zeros)"},
        "dependencies": {"pip": ["pyfaidx"]},
        "output_schema": {"inputs": _input_schema(model, metadata, length),
                          "metadata": {"ranges": {"type": "GenomicRanges",
                                                  "doc": "the resized window"}}},
    }
  return {
      "type": "Dataset", "defined_as": "dataloader.ArrayDataset",
      "args": {"inputs_file": {"doc": f".npz or .h5 with arrays {list(metadata['input_spec'])} "
                                      f"(first axis: examples)",
                               "example": "example_files/inputs.npz"}},
      "info": {"doc": "one example per row of the input arrays"},
      "dependencies": {"pip": ["h5py"]},
      "output_schema": {"inputs": _input_schema(model, metadata, length),
                        "metadata": {"index": {"type": "int", "doc": "row of the input file"}}},
  }


# --- Kipoi subprocesses ----------------------------------------------------------------------

def run_kipoi(args: list[str], cwd: str, timeout_s: int) -> subprocess.CompletedProcess:
  """`python -m kipoi ARGS` in `cwd` with a temporary HOME (Kipoi writes ~/.kipoi on import)."""
  with tempfile.TemporaryDirectory(prefix="kipoi-home-") as home:
    env = {**os.environ, "HOME": home, "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
      done = subprocess.run([sys.executable, "-m", "kipoi", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
      raise ExportError(f"`kipoi {' '.join(args)}` took longer than {timeout_s}s") from e
  if done.returncode != 0:
    raise ExportError(f"`kipoi {' '.join(args)}` failed (exit {done.returncode}):\n"
                      f"{(done.stdout + done.stderr)[-4000:]}")
  return done


def _read_expect(path: str) -> tuple[object, dict]:
  import h5py
  with h5py.File(path, "r") as f:
    if "inputs" not in f or "preds" not in f:
      raise ExportError(f"{path}: Kipoi wrote no inputs/preds ({list(f)})")
    node = f["inputs"]
    inputs = node[()] if isinstance(node, h5py.Dataset) else {k: node[k][()] for k in node}
    preds = {k: f["preds"][k][()] for k in f["preds"]}
  return inputs, preds


def _live_predictions(model, inputs, dna: bool) -> dict:
  if dna:
    x = tf.convert_to_tensor(inputs, tf.float32)
    encode = getattr(model, "encode_dna", None)
    x = encode(x) if encode is not None else x
  else:
    x = to_tensors(model, inputs)
  return {k: v.numpy() for k, v in model(x, is_training=False).items()}


def export_kipoi(model, output_dir: str, config: Optional[KipoiExportConfig] = None,
                 inputs: Optional[dict] = None) -> KipoiExport:
  """Writes the Kipoi model folder of `model` (see the module docstring); parity-checked.

  Args:
    model: a model honouring the `SequenceModel` contract.
    output_dir: destination folder (must not exist unless `config.overwrite`).
    config: export options.
    inputs: multi-input models only: example arrays {key: [N, ...]} for example_files
      (default: seeded random arrays of the specs' shapes).

  Raises:
    ParityError, ExportError, FileExistsError: as `export.hub.export_hub`; ExportError also
      when a Kipoi command fails (its output is in the message).
  """
  config = config or KipoiExportConfig()
  check_contract(model)
  model.ensure_built()
  dna = bool(model.takes_dna_sequence)
  length = config.sequence_length or getattr(model, "sequence_length", None)
  if dna and not length:
    raise ConfigError("export_kipoi: the model has no sequence_length; set "
                      "KipoiExportConfig.sequence_length (the dataloader's window)")
  if dna:
    model.check_length(length)
  steps = ["savedmodel", "kipoi files", "kipoi pipeline", "kipoi test"]
  progress = tqdm(total=len(steps) - (not config.run_kipoi_test), desc="export kipoi",
                  unit="step")
  with staged_directory(output_dir, config.overwrite) as staging:
    hub_config = config.hub.replace(parity_length=config.hub.parity_length or length)
    written = write_savedmodel(model, os.path.join(staging, "savedmodel"), hub_config)
    parity = dict(written["parity"])
    metadata = written["metadata"]
    progress.update()

    if dna:
      expected = _write_dna_examples(staging, length, config.example_intervals, config.seed)
      source = templates.render(templates.DNA_DATALOADER_PY, sequence_length=str(length))
    else:
      arrays = inputs if inputs is not None else example_inputs(
          model, config.example_intervals, length, config.seed)
      expected = _write_array_examples(staging, {k: np.asarray(v) for k, v in arrays.items()})
      source = templates.render(templates.ARRAY_DATALOADER_PY,
                                input_keys=repr(list(metadata["input_spec"])))
    atomic_write_text(os.path.join(staging, "dataloader.py"), source)
    atomic_write_text(os.path.join(staging, "model.py"), templates.render(templates.MODEL_PY))
    atomic_write_text(os.path.join(staging, "dataloader.yaml"),
                      yaml.safe_dump(_dataloader_yaml(model, metadata, length), sort_keys=False))
    atomic_write_text(os.path.join(staging, "model.yaml"), yaml.safe_dump(
        _model_yaml(model, config, metadata, length), sort_keys=False))
    progress.update()

    # The Kipoi pipeline on the example files writes expect.h5 (inputs + preds) ...
    run_kipoi(["test", ".", "--source", "dir", "--batch_size", str(config.batch_size),
               "-o", EXPECT_FILE], staging, config.timeout_s)
    kipoi_inputs, kipoi_preds = _read_expect(os.path.join(staging, EXPECT_FILE))
    # ... whose inputs must be tf-seqmodels' own encoding and whose predictions the live model's.
    parity["kipoi_inputs"] = compare_outputs(
        _as_dict(expected["inputs"]), _as_dict(kipoi_inputs), 0.0, 0.0, "Kipoi dataloader inputs")
    live = _live_predictions(model, kipoi_inputs, dna)
    parity["kipoi"] = compare_outputs(live, kipoi_preds, hub_config.atol, hub_config.rtol,
                                      "Kipoi pipeline")
    progress.update()
    if config.run_kipoi_test:
      run_kipoi(["test", ".", "--source", "dir", "--batch_size", str(config.batch_size)], staging,
                config.timeout_s)
      progress.update()
    atomic_write_text(os.path.join(staging, "export_report.json"), json.dumps(
        {"parity": parity, "tolerance": {"atol": hub_config.atol, "rtol": hub_config.rtol,
                                         "precision_decimal": config.precision_decimal}},
        indent=2))
  progress.close()
  return KipoiExport(os.path.abspath(output_dir), parity)


def _as_dict(inputs) -> dict:
  return dict(inputs) if isinstance(inputs, dict) else {"inputs": inputs}
