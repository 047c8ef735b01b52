"""Kipoi export: a complete, offline-testable Kipoi model folder for any contract model.

    from tf_seqmodels.export.kipoi import KipoiExportConfig, export_kipoi
    export_kipoi(model, "kipoi/dream_cnn", KipoiExportConfig(doc="DREAM-CNN, yeast promoters"))

writes (atomically, after the parity checks below pass)

    kipoi/dream_cnn/
      model.yaml           info, schema (inputs; every head as a target), dependencies,
                           default dataloader (the local one below), test.expect
      model.py             SavedModelModel(kipoi.model.BaseModel): SavedModel -> numpy per head
      dataloader.yaml/.py  DNA models: FASTA + BED -> fixed-length one-hot ACGT windows centred
                           on each interval, reverse-complemented for '-' strand intervals
                           (GenomicRanges metadata); multi-input models: an .npz/.h5 of arrays
                           keyed like input_spec() (row index metadata)
      savedmodel/          the TF-Hub SavedModel (export.hub), metadata in assets/
      example_files/       genome.fa + intervals.bed (or inputs.npz), expect.h5

Then, offline, on Python 3.11 / NumPy 2 (the np.string_ shim sits in model.py/dataloader.py):

    cd kipoi/dream_cnn && kipoi test .          # test.expect is resolved against the cwd
    kipoi test kipoi/dream_cnn -e kipoi/dream_cnn/example_files/expect.h5    # same, elsewhere
    kipoi predict kipoi/dream_cnn --source dir --dataloader_args='{"intervals_file": "x.bed",
        "fasta_file": "hg38.fa"}' -o preds.h5      # or .tsv; the file must not exist yet
    python -m tf_seqmodels.export.kipoi verify kipoi/dream_cnn   # every head vs expect.h5

(`kipoi test` reads local folders by default; `kipoi predict` needs `--source dir`.)

Parity (fails loudly with ParityError; nothing is written): (1) live model vs reloaded
SavedModel (export.hub), and its signatures refuse wrongly shaped inputs; (2) the Kipoi
pipeline (what `kipoi test -o` runs: by default in a subprocess with a temporary HOME, so
~/.kipoi is untouched; `in_process=True` runs it here) on the example files vs the live model
on the same inputs, |kipoi - live| <= atol + rtol * |live| (defaults 1e-5 / 1e-5), and the
dataloader's one-hot windows equal tf-seqmodels' own encoding; (3) `verify_expect`: the
SavedModel on expect.h5's inputs vs every head of expect.h5 at `precision_decimal` (default
5: |diff| < 1.5e-5) -- `kipoi test` itself compares only the first head of a multi-head
model; (4) optionally `kipoi test` on the finished folder.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import json
import os
import shutil
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
                                     compare_outputs, example_inputs, to_tensors,
                                     verify_savedmodel, write_savedmodel)
from tf_seqmodels.export.staging import staged_directory
from tf_seqmodels.config import Config, ConfigError, atomic_write_text
from tf_seqmodels.data.encoding import one_hot_encode

EXPECT_FILE = "example_files/expect.h5"


@dataclasses.dataclass(frozen=True)
class KipoiExportConfig(Config):
  """Kipoi model-folder options.

  Attributes:
    hub: SavedModel metadata and parity tolerance (its tarball option is ignored).
    doc, version, authors, license, cite_as, tags: model.yaml `info` (cite_as default: the
      model's `citation`, the DOI of its architecture's paper).
    sequence_length: DNA window of the dataloader (default: the model's sequence_length).
    example_intervals: intervals (or rows) in the example files.
    batch_size: batch size of the Kipoi checks.
    precision_decimal: model.yaml test precision (decimal places).
    column_labels: {head: labels of its last axis} for model.yaml (default: the hub
      config's track_names, else "<head>_<i>"); written for heads of one axis per example.
    run_kipoi_test: also run `kipoi test` on the finished folder (a second subprocess).
    in_process: run the Kipoi pipeline in this process (imports kipoi here, its ~/.kipoi
      pointed at a scratch folder; the folder's model.py restores NumPy 2's removed
      np.string_ aliases) instead of a subprocess: no second TensorFlow start.
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
  column_labels: dict[str, list[str]] = dataclasses.field(default_factory=dict)
  sequence_length: Optional[int] = None
  example_intervals: int = 6
  batch_size: int = 4
  precision_decimal: int = 5
  run_kipoi_test: bool = True
  in_process: bool = False
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
  """The folder written, the parity results ({check: {head: max |diff|}}) and the wrongly
  shaped inputs its SavedModel's signatures refused ({case: error})."""

  directory: str
  parity: dict[str, dict[str, float]]
  refusals: dict[str, str] = dataclasses.field(default_factory=dict)


# --- example files ---------------------------------------------------------------------------

STRANDS = ("+", "-", ".")


def _write_dna_examples(folder: str, length: int, count: int, seed: int) -> dict:
  """A random two-chromosome genome and `count` BED intervals of varied widths on '+', '-'
  and '.' strands in turn (one reaching past a chromosome end, to exercise the N padding).
  Returns the expected one-hot windows ('-': reverse-complemented)."""
  rng = np.random.default_rng(seed)
  chroms = {f"chr{i + 1}": "".join(rng.choice(list("ACGT"), 2 * length + 64 + 37 * i))
            for i in range(2)}
  rows, windows, strands = [], [], []
  for i in range(count):
    chrom = f"chr{i % 2 + 1}"
    size = len(chroms[chrom])
    width = int(rng.integers(1, length + 1))
    centre = 8 if i == count - 1 else int(rng.integers(length // 2, size - length // 2))
    start = max(0, centre - width // 2)
    strand = STRANDS[i % len(STRANDS)]
    rows.append(f"{chrom}\t{start}\t{start + width}\tregion{i}\t0\t{strand}\n")
    middle = (start + start + width) // 2
    w_start = middle - length // 2
    padded = ("N" * max(0, -w_start) + chroms[chrom][max(0, w_start):min(size, w_start + length)]
              + "N" * max(0, w_start + length - size))
    windows.append(padded)
    strands.append(strand)
  os.makedirs(os.path.join(folder, "example_files"), exist_ok=True)
  fasta = "".join(f">{name}\n" + "\n".join(seq[i:i + 60] for i in range(0, len(seq), 60)) + "\n"
                  for name, seq in chroms.items())
  atomic_write_text(os.path.join(folder, "example_files", "genome.fa"), fasta)
  atomic_write_text(os.path.join(folder, "example_files", "intervals.bed"), "".join(rows))
  one_hot = one_hot_encode(windows)
  minus = np.array([s == "-" for s in strands])
  one_hot[minus] = one_hot[minus, ::-1, ::-1]  # reverse complement (ACGT: complement = reversed)
  return {"inputs": one_hot}


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


def column_labels(config: KipoiExportConfig, metadata: dict) -> dict[str, list[str]]:
  """{head: labels} for model.yaml: Kipoi labels the first (here: only) axis of an output, so
  heads with one non-positional axis per example get them (config.column_labels, else the
  track names, else "<head>_<i>"; a single column is named after its head)."""
  shapes = metadata["head_shapes"]
  for head, labels in config.column_labels.items():
    if head not in shapes:
      raise ConfigError(f"column_labels names unknown head {head!r}; heads: {list(shapes)}")
    if len(shapes[head]) != 1 or len(labels) != shapes[head][0]:
      raise ConfigError(f"column_labels[{head!r}] has {len(labels)} labels for a head of shape "
                        f"{shapes[head]} per example (one axis of that many columns needed)")
  out = {}
  for head, shape in shapes.items():
    if head in config.column_labels:
      out[head] = list(config.column_labels[head])
    elif len(shape) == 1 and metadata["position_axes"].get(head) is None:
      names = metadata["track_names"].get(head)
      out[head] = (list(names) if names else [head] if shape[0] == 1
                   else [f"{head}_{i}" for i in range(shape[0])])
  return out


def _model_yaml(model, config: KipoiExportConfig, metadata: dict, length: Optional[int]) -> dict:
  labels = column_labels(config, metadata)
  targets = {head: {"shape": _shape(shape), "doc": f"head {head}"
                    + (f"; tracks: {', '.join(metadata['track_names'][head][:20])}"
                       if head in metadata["track_names"] else "")}
             for head, shape in metadata["head_shapes"].items()}
  for head, names in labels.items():
    targets[head]["column_labels"] = names
  info = {"doc": config.doc or f"{metadata['model_class']} ({metadata['model_name']}) exported by "
                               f"tf-seqmodels {metadata['package_version']}",
          "version": config.version, "license": config.license,
          "authors": [{"name": a} for a in config.authors] or [{"name": "tf-seqmodels"}],
          "trained_on": metadata["training_data"] or "unspecified",
          "tags": list(config.tags)}
  cite_as = config.cite_as or metadata.get("citation")
  if cite_as:
    info["cite_as"] = cite_as
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
                        f"(N = zeros); '-' strand intervals reverse-complemented"},
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

def run_kipoi(args: list[str], cwd: str, timeout_s: int,
              module: str = "kipoi") -> subprocess.CompletedProcess:
  """`python -m MODULE ARGS` (Kipoi's CLI by default) in `cwd` with a temporary HOME (Kipoi
  writes ~/.kipoi on import)."""
  with tempfile.TemporaryDirectory(prefix="kipoi-home-") as home:
    env = {**os.environ, "HOME": home, "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
      done = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
      raise ExportError(f"`kipoi {' '.join(args)}` took longer than {timeout_s}s") from e
  if done.returncode != 0:
    raise ExportError(f"`kipoi {' '.join(args)}` failed (exit {done.returncode}):\n"
                      f"{(done.stdout + done.stderr)[-4000:]}")
  return done


_KIPOI_HOME: list[str] = []


def _import_kipoi():
  """Kipoi, imported in this process. Importing it writes ~/.kipoi/config.yaml, so unless it
  is already imported, HOME points at a scratch folder (removed at exit) meanwhile."""
  if "kipoi" not in sys.modules:
    home = tempfile.mkdtemp(prefix="kipoi-home-")
    atexit.register(shutil.rmtree, home, True)
    _KIPOI_HOME.append(home)
    previous = os.environ.get("HOME")
    os.environ["HOME"] = home
    try:
      import kipoi  # noqa: F401
    finally:
      if previous is None:
        os.environ.pop("HOME", None)
      else:
        os.environ["HOME"] = previous
  return sys.modules["kipoi"]


def _chunk_rows(folder: str) -> int:
  """Rows per HDF5 chunk for Kipoi's writer: its default (10,000 rows) exceeds HDF5's 4 GB
  chunk limit for large heads (Enformer's 896 bins x 5,313 tracks)."""
  with open(os.path.join(folder, "model.yaml")) as f:
    targets = yaml.safe_load(f)["schema"]["targets"]
  largest = max(int(np.prod(yaml.safe_load(t["shape"].replace("(", "[").replace(",)", "]")
                                           .replace(")", "]")) or [1]))
                for t in targets.values())
  return int(max(1, min(10_000, 2 ** 24 // max(1, largest))))  # <= 64 MB of float32


def run_pipeline_in_process(folder: str, batch_size: int, output: str) -> None:
  """What `kipoi test FOLDER --source dir -o OUTPUT` runs (Kipoi's pipeline.predict_example),
  in this process, with HDF5 chunks that fit any head: Kipoi reads model.yaml and
  dataloader.yaml, runs the folder's dataloader on its example files and the folder's model,
  and writes inputs, predictions and metadata to OUTPUT."""
  kipoi = _import_kipoi()
  # Kipoi imports a folder's model.py / dataloader.py as modules "model" / "dataloader" and
  # may find them cached from another folder: forget them before and after.
  for name in ("model", "dataloader"):
    sys.modules.pop(name, None)
  try:
    described = kipoi.get_model(os.path.abspath(folder), source="dir")
    described.pipeline.predict_example(batch_size=batch_size, output_file=os.path.abspath(output),
                                       hdf5_chunk_size=_chunk_rows(folder))
  except Exception as e:  # Kipoi raises whatever its steps raise; name the folder and step
    raise ExportError(f"the Kipoi pipeline on {folder} failed: {type(e).__name__}: {e}") from e
  finally:
    for name in ("model", "dataloader"):
      sys.modules.pop(name, None)


def _read_expect(path: str) -> tuple[object, dict]:
  import h5py
  with h5py.File(path, "r") as f:
    if "inputs" not in f or "preds" not in f:
      raise ExportError(f"{path}: Kipoi wrote no inputs/preds ({list(f)})")
    node = f["inputs"]
    inputs = node[()] if isinstance(node, h5py.Dataset) else {k: node[k][()] for k in node}
    preds = {k: f["preds"][k][()] for k in f["preds"]}
  return inputs, preds


def verify_expect(folder: str, precision_decimal: Optional[int] = None) -> dict[str, float]:
  """Every head of the folder's expect.h5 vs its SavedModel on expect.h5's inputs (through
  the same entry points as model.py), |diff| < 1.5 * 10**-precision_decimal (model.yaml's
  test precision by default). `kipoi test` compares only the first head of a multi-head model;
  this compares all of them. Returns {head: max |diff|}; raises ParityError naming the heads
  that differ."""
  with open(os.path.join(folder, "model.yaml")) as f:
    spec = yaml.safe_load(f)
  decimal = precision_decimal or spec.get("test", {}).get("precision_decimal", 5)
  expect_path = os.path.join(folder, spec.get("test", {}).get("expect", EXPECT_FILE))
  inputs, expected = _read_expect(expect_path)
  loaded = tf.saved_model.load(os.path.join(folder, spec["args"]["savedmodel_dir"]))
  if isinstance(inputs, dict):
    specs = json.loads(loaded.get_metadata().numpy())["input_spec"]
    out = loaded.model.predict_on_batch({k: tf.convert_to_tensor(inputs[k], specs[k]["dtype"])
                                         for k in specs})
  else:
    out = loaded.model.predict_dna_on_batch(tf.convert_to_tensor(inputs, tf.float32))
  tolerance = 1.5 * 10.0 ** -decimal
  return compare_outputs(expected, {k: v.numpy() for k, v in out.items()}, tolerance, 0.0,
                         f"{expect_path} vs the folder's SavedModel at {decimal} decimals")


def _live_predictions(model, inputs, dna: bool) -> dict:
  if dna:
    x = tf.convert_to_tensor(inputs, tf.float32)
    encode = getattr(model, "encode_dna", None)
    x = encode(x) if encode is not None else x
  else:
    x = to_tensors(model, inputs)
  return {k: v.numpy() for k, v in model(x, is_training=False).items()}


def export_kipoi(model, output_dir: str, config: Optional[KipoiExportConfig] = None,
                 inputs: Optional[dict] = None, savedmodel: Optional[str] = None) -> KipoiExport:
  """Writes the Kipoi model folder of `model` (see the module docstring); parity-checked.

  Args:
    model: a model honouring the `SequenceModel` contract.
    output_dir: destination folder (must not exist unless `config.overwrite`).
    config: export options.
    inputs: multi-input models only: example arrays {key: [N, ...]} for example_files
      (default: seeded random arrays of the specs' shapes).
    savedmodel: the `savedmodel/` folder of an `export_hub` export of this model to copy
      instead of tracing and saving the model again (it must record the same config; the
      parity and refusal checks run on the copy).

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
    target = os.path.join(staging, "savedmodel")
    if savedmodel is not None:
      shutil.copytree(savedmodel, target)
      written = verify_savedmodel(model, target, hub_config)
    else:
      written = write_savedmodel(model, target, hub_config)
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
    if config.in_process:
      run_pipeline_in_process(staging, config.batch_size, os.path.join(staging, EXPECT_FILE))
    else:
      # Kipoi's pipeline in a fresh process (`kipoi test -o`, with chunks that fit large heads).
      run_kipoi(["pipeline", ".", EXPECT_FILE, "--batch-size", str(config.batch_size)], staging,
                config.timeout_s, module="tf_seqmodels.export.kipoi")
    kipoi_inputs, kipoi_preds = _read_expect(os.path.join(staging, EXPECT_FILE))
    # ... whose inputs must be tf-seqmodels' own encoding and whose predictions the live model's.
    parity["kipoi_inputs"] = compare_outputs(
        _as_dict(expected["inputs"]), _as_dict(kipoi_inputs), 0.0, 0.0, "Kipoi dataloader inputs")
    live = _live_predictions(model, kipoi_inputs, dna)
    parity["kipoi"] = compare_outputs(live, kipoi_preds, hub_config.atol, hub_config.rtol,
                                      "Kipoi pipeline")
    # ... and every head of the written expect.h5 is what the folder's SavedModel predicts.
    parity["expect"] = verify_expect(staging, config.precision_decimal)
    progress.update()
    if config.run_kipoi_test:
      run_kipoi(["test", ".", "--source", "dir", "--batch_size", str(config.batch_size)], staging,
                config.timeout_s)
      progress.update()
    atomic_write_text(os.path.join(staging, "export_report.json"), json.dumps(
        {"parity": parity, "tolerance": {"atol": hub_config.atol, "rtol": hub_config.rtol,
                                         "precision_decimal": config.precision_decimal},
         "refused_inputs": written["refusals"]}, indent=2))
  progress.close()
  return KipoiExport(os.path.abspath(output_dir), parity, written["refusals"])


def _as_dict(inputs) -> dict:
  return dict(inputs) if isinstance(inputs, dict) else {"inputs": inputs}


def main(argv: Optional[list[str]] = None) -> int:
  """`python -m tf_seqmodels.export.kipoi verify FOLDER`: verify_expect on a written folder."""
  parser = argparse.ArgumentParser(prog="python -m tf_seqmodels.export.kipoi",
                                   description="Checks a Kipoi folder written by tf-seqmodels.")
  commands = parser.add_subparsers(dest="command", required=True)
  verify = commands.add_parser("verify", help="every head of example_files/expect.h5 vs the "
                               "folder's SavedModel (kipoi test compares only the first head)")
  verify.add_argument("folder")
  verify.add_argument("--precision-decimal", type=int, help="default: model.yaml's test precision")
  pipeline = commands.add_parser("pipeline", help="Kipoi's pipeline on the folder's example "
                                 "files, written to OUTPUT (as `kipoi test -o OUTPUT`)")
  pipeline.add_argument("folder")
  pipeline.add_argument("output")
  pipeline.add_argument("--batch-size", type=int, default=4)
  args = parser.parse_args(argv)
  if args.command == "pipeline":
    run_pipeline_in_process(args.folder, args.batch_size, args.output)
    return 0
  try:
    diffs = verify_expect(args.folder, args.precision_decimal)
  except (ExportError, OSError, KeyError, yaml.YAMLError) as e:
    print(f"{parser.prog} verify: error: {e}", file=sys.stderr)
    return 2
  print(f"{args.folder}: every head of expect.h5 matches ("
        + ", ".join(f"{head} max |diff| {diff:.2g}" for head, diff in diffs.items()) + ")")
  return 0


if __name__ == "__main__":
  sys.exit(main())
