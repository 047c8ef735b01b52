"""Bad input through the CLI's real entry point (`cli.main`, a few cases in a subprocess).

Each case asserts the exit code, the one-line message and that no file in the workspace
changed (every file hashed before and after): a refused command leaves no trace. The tiny
models and the training run are built once for the module.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from tf_seqmodels import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"channels": 24, "num_transformer_layers": 1, "num_heads": 2, "filters_divisible_by": 4,
        "heads": {"tracks": 2}, "sequence_length": 256, "target_length": 4,
        "num_conv_tower_blocks": 3, "key_size": 8}


def _seq(n, seed):
  return "".join(np.random.default_rng(seed).choice(list("ACGT"), n))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
  """A project folder: data/ (genome, bigWig, targets, regions), a training run recorded
  with paths relative to the project, a checkpoint + model config, inputs good and bad."""
  from test_trainer import write_track_inputs
  from tf_seqmodels.convert.weights import save_checkpoint
  from tf_seqmodels.models import build_model
  from tf_seqmodels.models.enformer import EnformerConfig
  from tf_seqmodels.training.run_config import TrainConfig, run_training
  root = tmp_path_factory.mktemp("bad_input")
  proj = root / "proj"
  (proj / "data").mkdir(parents=True)
  write_track_inputs(proj / "data")
  config = TrainConfig.from_dict({
      "model": {"name": "enformer", "config": TINY},
      "task": {"type": "tracks"},
      "data": {"type": "tracks", "batch_size": 8, "options": {
          "fasta": "data/genome.fa", "targets": "data/targets.txt",
          "regions": "data/regions.bed", "fold": "data/fold.json",
          "data": {"sequence_length": 256, "bin_size": 16, "target_length": 4}}},
      "optimizer": {"learning_rate": 0.01},
      "trainer": {"epochs": 1, "steps_per_epoch": 1, "progress": False},
      "run_dir": "runs/tiny"})
  cwd = os.getcwd()
  os.chdir(proj)  # the run records paths relative to the folder training ran in
  try:
    run_training(config)
  finally:
    os.chdir(cwd)
  p = {"root": root, "proj": proj, "run": str(proj / "runs" / "tiny"),
       "genome": str(proj / "data" / "genome.fa"), "targets": str(proj / "data" / "targets.txt")}
  tiny = EnformerConfig.from_dict(TINY)
  tiny.save(root / "tiny.yaml")
  p["model_yaml"] = str(root / "tiny.yaml")
  def built(config):
    model = build_model("enformer", config)
    model.ensure_built()
    return model
  p["ckpt"] = save_checkpoint(built(tiny), str(root / "ckpt"))
  p["other_ckpt"] = save_checkpoint(built(tiny.replace(channels=36)), str(root / "other_ckpt"))
  inputs = root / "in"
  inputs.mkdir()
  (inputs / "ok.fa").write_text(">a\n" + _seq(256, 1) + "\n>b\n" + _seq(256, 2) + "\n")
  (inputs / "short.fa").write_text(">a\n" + _seq(100, 1) + "\n")
  (inputs / "ragged.fa").write_text(">a\n" + _seq(256, 1) + "\n>b\n" + _seq(200, 2) + "\n")
  (inputs / "badchar.fa").write_text(">a\n" + _seq(250, 1) + "XX12AC\n")
  (inputs / "empty.fa").write_text("")
  (inputs / "headless.fa").write_text("ACGT\n>a\nACGT\n")
  import gzip
  with gzip.open(inputs / "torn.fa.gz", "wt") as f:
    f.write(">a\n" + "ACGT" * 2000 + "\n")
  torn = (inputs / "torn.fa.gz").read_bytes()
  (inputs / "torn.fa.gz").write_bytes(torn[:len(torn) // 2])  # a truncated gzip stream
  with gzip.open(inputs / "ok.fa.gz", "wt") as f:
    f.write(">a\n" + _seq(256, 1) + "\n")
  (inputs / "nocol.tsv").write_text("id\tseq\nx\tACGT\n")
  (inputs / "bad.yaml").write_text("channels: 24\nheads: {tracks: 2\n")
  (inputs / "dup.yaml").write_text("channels: 24\nchannels: 48\n")
  (inputs / "empty.yaml").write_text("# nothing\n")
  (inputs / "list.yaml").write_text("- channels\n- 24\n")
  (inputs / "typo.yaml").write_text("chanels: 24\n")
  (inputs / "binary.yaml").write_bytes(b"\xff\xfe\x00bad")
  (inputs / "regions.bed").write_text("chr1\t1000\t1300\nchr1\t3000\t3300\n")
  chr1 = open(p["genome"]).read().split(">chr1\n")[1].split("\n")[0]
  alt = "A" if chr1[1999] != "A" else "C"
  (inputs / "v.vcf").write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\t"
                                f"INFO\nchr1\t2000\tv1\t{chr1[1999]}\t{alt}\t.\t.\t.\n")
  fake_saved = root / "fake_saved"
  fake_saved.mkdir()
  (fake_saved / "saved_model.pb").write_bytes(b"not a protobuf")
  foreign = root / "foreign"
  foreign.mkdir()
  (foreign / "precious.txt").write_text("the user's work\n")
  (root / "existing_demo").mkdir()
  (root / "existing_demo" / "notes.txt").write_text("keep\n")
  (root / "a_file").write_text("x\n")
  (root / "dir.h5").mkdir()
  p.update({k: str(inputs / k) for k in os.listdir(inputs)})
  p.update(fake_saved=str(fake_saved), foreign=str(foreign), out=str(root / "out"),
           existing_demo=str(root / "existing_demo"), a_file=str(root / "a_file"),
           dir_h5=str(root / "dir.h5"))
  return p


def _snapshot(root):
  out = {}
  for folder, _, files in os.walk(root):
    for name in files:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, root)] = hashlib.sha1(f.read()).hexdigest()
  return out


def run_cli(argv, capsys):
  """(exit code, stderr) of `tf-seqmodels argv` in-process (argparse errors included)."""
  capsys.readouterr()
  try:
    code = cli.main([str(a) for a in argv])
  except SystemExit as e:
    code = e.code
  return code, capsys.readouterr().err


def _model(ws):
  return ["--model", "enformer", "--config", ws["model_yaml"], "--weights", ws["ckpt"]]


def _contrib(ws, *extra):
  return ["contributions", "--model", ws["run"], "--fasta", ws["genome"], "--regions",
          ws["regions.bed"], "--output-dir", ws["out"], "--quiet", *extra]


def _variants(ws, *extra):
  return ["score-variants", "--model", ws["run"], "--quiet", *extra]


# (case id, argv(ws), exit code, message regex)
CASES = [
    # numeric arguments
    ("batch-size-negative", lambda w: ["predict", *_model(w), "--fasta", w["ok.fa"], "--output",
                                       w["out"] + ".h5", "--batch-size", "-1"], 2,
     r"--batch-size: must be >= 1, got -1"),
    ("batch-size-zero", lambda w: ["predict", *_model(w), "--fasta", w["ok.fa"], "--output",
                                   w["out"] + ".h5", "--batch-size", "0"], 2, r"must be >= 1"),
    ("batch-size-text", lambda w: ["predict", *_model(w), "--fasta", w["ok.fa"], "--output",
                                   w["out"] + ".h5", "--batch-size", "four"], 2,
     r"expected an integer, got 'four'"),
    ("window-bins-zero", lambda w: _variants(w, "--vcf", w["v.vcf"], "--fasta", w["genome"],
                                             "--output", w["out"] + ".h5", "--window-bins", "0"),
     2, r"--window-bins: must be >= 1"),
    ("pca-negative", lambda w: _variants(w, "--vcf", w["v.vcf"], "--fasta", w["genome"],
                                         "--output", w["out"] + ".h5", "--pca", "-2"), 2,
     r"--pca: must be >= 0"),
    ("cpu-devices-negative", lambda w: _variants(w, "--vcf", w["v.vcf"], "--fasta", w["genome"],
                                                 "--output", w["out"] + ".h5", "--cpu-devices",
                                                 "-1"), 2, r"--cpu-devices: must be >= 0"),
    ("target-bins-negative", lambda w: _contrib(w, "--target-bins", "-1", "3"), 2,
     r"--target-bins: must be >= 0"),
    ("target-tracks-negative", lambda w: _contrib(w, "--target-tracks", "-1"), 2,
     r"--target-tracks: must be >= 0"),
    ("references-zero", lambda w: _contrib(w, "--method", "deepshap", "--references", "0"), 2,
     r"--references: must be >= 1"),
    ("demo-steps-zero", lambda w: ["demo", "--output-dir", w["out"], "--steps", "0"], 2,
     r"--steps: must be >= 1"),
    ("demo-lr-nan", lambda w: ["demo", "--output-dir", w["out"], "--learning-rate", "nan"], 2,
     r"--learning-rate: expected a number"),
    ("demo-lr-negative", lambda w: ["demo", "--output-dir", w["out"], "--learning-rate", "-1"],
     2, r"--learning-rate: must be > 0"),
    ("export-atol-negative", lambda w: ["export", "hub", *_model(w), "--output", w["out"],
                                        "--atol", "-1"], 2, r"--atol: must be >= 0"),
    ("predict-no-model", lambda w: ["predict", "--fasta", w["ok.fa"], "--output", "x.h5"], 2,
     r"the following arguments are required: --model"),
    ("unknown-command", lambda w: ["frobnicate"], 2, r"invalid choice: 'frobnicate'"),
    # model sources
    ("model-unknown-name", lambda w: ["predict", "--model", "enformr", "--fasta", w["ok.fa"],
                                      "--output", w["out"] + ".h5"], 2,
     r"--model enformr: not a registered model name \(available: .*enformer"),
    ("model-missing-path", lambda w: ["predict", "--model", "runs/nope", "--fasta", w["ok.fa"],
                                      "--output", w["out"] + ".h5"], 2,
     r"--model runs/nope: no such run directory, checkpoint or SavedModel"),
    ("model-plain-folder", lambda w: ["predict", "--model", w["foreign"], "--fasta", w["ok.fa"],
                                      "--output", w["out"] + ".h5"], 2,
     r"not a training run directory \(no run\.json\), a SavedModel"),
    ("checkpoint-without-config", lambda w: ["predict", "--model", w["ckpt"], "--fasta",
                                             w["ok.fa"], "--output", w["out"] + ".h5"], 2,
     r"is a checkpoint: give its --config"),
    ("run-dir-with-config", lambda w: ["predict", "--model", w["run"], "--config",
                                       w["model_yaml"], "--fasta", w["ok.fa"], "--output",
                                       w["out"] + ".h5"], 2,
     r"is a run directory: --config does not apply"),
    ("weights-config-mismatch", lambda w: ["predict", "--model", "enformer", "--config",
                                           w["model_yaml"], "--weights", w["other_ckpt"],
                                           "--fasta", w["ok.fa"], "--output", w["out"] + ".h5"],
     2, r"the weights .*other_ckpt.* do not fit enformer as configured(.|\n)*variable"),
    ("demo-and-config", lambda w: ["predict", "--model", "enformer", "--demo", "--config",
                                   w["model_yaml"], "--fasta", w["ok.fa"], "--output",
                                   w["out"] + ".h5"], 2, r"--demo and --config are alternatives"),
    ("saved-model-with-weights", lambda w: ["predict", "--model", w["fake_saved"], "--weights",
                                            w["ckpt"], "--fasta", w["ok.fa"], "--output",
                                            w["out"] + ".h5"], 2,
     r"is a SavedModel: --weights does not apply"),
    ("saved-model-corrupt", lambda w: ["predict", "--model", w["fake_saved"], "--fasta",
                                       w["ok.fa"], "--output", w["out"] + ".h5"], 2,
     r"not a readable SavedModel"),
    ("export-a-saved-model", lambda w: ["export", "hub", "--model", w["fake_saved"], "--output",
                                        w["out"]], 2, r"is already a SavedModel"),
    ("evaluate-saved-model", lambda w: ["evaluate", "--model", w["fake_saved"]], 2,
     r"evaluate needs the run's task and data"),
    ("evaluate-nothing", lambda w: ["evaluate"], 2, r"evaluate needs --model"),
    ("evaluate-name-without-config", lambda w: ["evaluate", "--model", "enformer"], 2,
     r"give the training config it was trained with"),
    ("evaluate-model-config-not-train", lambda w: ["evaluate", "--model", w["ckpt"], "--config",
                                                   w["model_yaml"]], 2,
     r"run\.yaml|unknown key\(s\) \[.*'channels'"),
    # config files
    ("yaml-syntax", lambda w: ["predict", "--model", "enformer", "--config", w["bad.yaml"],
                               "--fasta", w["ok.fa"], "--output", w["out"] + ".h5"], 2,
     r"bad\.yaml:3:1: invalid YAML"),
    ("yaml-duplicate-key", lambda w: ["predict", "--model", "enformer", "--config",
                                      w["dup.yaml"], "--fasta", w["ok.fa"], "--output",
                                      w["out"] + ".h5"], 2,
     r"dup\.yaml:2:1: invalid YAML: duplicate key 'channels' \(first on line 1\)"),
    ("yaml-empty", lambda w: ["predict", "--model", "enformer", "--config", w["empty.yaml"],
                              "--fasta", w["ok.fa"], "--output", w["out"] + ".h5"], 2,
     r"empty\.yaml: empty config file"),
    ("yaml-list", lambda w: ["predict", "--model", "enformer", "--config", w["list.yaml"],
                             "--fasta", w["ok.fa"], "--output", w["out"] + ".h5"], 2,
     r"must hold a mapping"),
    ("yaml-unknown-key", lambda w: ["predict", "--model", "enformer", "--config",
                                    w["typo.yaml"], "--fasta", w["ok.fa"], "--output",
                                    w["out"] + ".h5"], 2, r"unknown key\(s\) \['chanels'\]"),
    ("yaml-binary", lambda w: ["predict", "--model", "enformer", "--config", w["binary.yaml"],
                               "--fasta", w["ok.fa"], "--output", w["out"] + ".h5"], 2,
     r"binary\.yaml: not a text config file"),
    ("config-is-directory", lambda w: ["predict", "--model", "enformer", "--config",
                                       w["fake_saved"], "--fasta", w["ok.fa"], "--output",
                                       w["out"] + ".h5"], 2, r"is a directory"),
    ("config-missing", lambda w: ["predict", "--model", "enformer", "--config", "nope.yaml",
                                  "--fasta", w["ok.fa"], "--output", w["out"] + ".h5"], 2,
     r"config file not found: nope\.yaml"),
    ("train-yaml-syntax", lambda w: ["train", "--config", w["bad.yaml"]], 2,
     r"bad\.yaml:3:1: invalid YAML"),
    ("train-empty", lambda w: ["train", "--config", w["empty.yaml"]], 2, r"empty config file"),
    # predict inputs
    ("fasta-missing", lambda w: ["predict", *_model(w), "--fasta", "nope.fa", "--output",
                                 w["out"] + ".h5"], 2, r"FASTA file not found: nope\.fa"),
    ("fasta-directory", lambda w: ["predict", *_model(w), "--fasta", w["fake_saved"], "--output",
                                   w["out"] + ".h5"], 2, r"is a directory, expected a FASTA"),
    ("fasta-truncated-gzip", lambda w: ["predict", *_model(w), "--fasta", w["torn.fa.gz"],
                                        "--output", w["out"] + ".h5"], 2,
     r"torn\.fa\.gz: cannot read the"),
    ("fasta-empty", lambda w: ["predict", *_model(w), "--fasta", w["empty.fa"], "--output",
                               w["out"] + ".h5"], 2, r"empty\.fa is empty"),
    ("fasta-headless", lambda w: ["predict", *_model(w), "--fasta", w["headless.fa"], "--output",
                                  w["out"] + ".h5"], 2, r"headless\.fa is not a FASTA file"),
    ("fasta-bad-characters", lambda w: ["predict", *_model(w), "--fasta", w["badchar.fa"],
                                        "--output", w["out"] + ".h5"], 2,
     r"badchar\.fa: invalid character 'X' in record a at position 251"),
    ("fasta-wrong-length", lambda w: ["predict", *_model(w), "--fasta", w["short.fa"],
                                      "--output", w["out"] + ".h5"], 2,
     r"enformer expects 256-bp inputs, got 100-bp"),
    ("fasta-ragged", lambda w: ["predict", *_model(w), "--fasta", w["ragged.fa"], "--output",
                                w["out"] + ".h5"], 2, r"one length, got lengths \[200, 256\]"),
    ("table-no-sequence-column", lambda w: ["predict", *_model(w), "--sequences", w["nocol.tsv"],
                                            "--output", w["out"] + ".tsv"], 2,
     r"no 'sequence' column"),
    ("chromoformer-without-npy", lambda w: ["predict", *_model(w), "--chromoformer-metadata",
                                            w["nocol.tsv"], "--output", w["out"] + ".tsv"], 2,
     r"--chromoformer-metadata needs --chromoformer-npy"),
    ("two-inputs", lambda w: ["predict", *_model(w), "--fasta", w["ok.fa"], "--sequences",
                              w["nocol.tsv"], "--output", w["out"] + ".h5"], 2,
     r"not allowed with argument"),
    # outputs
    ("predict-output-is-input", lambda w: ["predict", *_model(w), "--fasta", w["ok.fa"],
                                           "--output", w["ok.fa"]], 2, r"give a \.h5 or \.tsv"),
    ("predict-output-is-table", lambda w: ["predict", *_model(w), "--sequences", w["nocol.tsv"],
                                           "--output", w["nocol.tsv"]], 2,
     r"is the --sequences input"),
    ("predict-output-is-directory", lambda w: ["predict", *_model(w), "--fasta", w["ok.fa"],
                                               "--output", w["dir_h5"]], 2, r"is a directory"),
    ("variants-output-is-vcf", lambda w: _variants(w, "--vcf", w["v.vcf"], "--fasta",
                                                   w["genome"], "--output", w["v.vcf"]), 2,
     r"give a \.h5 or \.tsv"),
    ("variants-output-is-pairs", lambda w: _variants(w, "--pairs", w["nocol.tsv"], "--output",
                                                     w["nocol.tsv"]), 2,
     r"is the --pairs input"),
    ("variants-no-input", lambda w: _variants(w, "--output", w["out"] + ".h5"), 2,
     r"give --vcf and --fasta, or --pairs"),
    ("variants-bad-tracks", lambda w: _variants(w, "--vcf", w["v.vcf"], "--fasta", w["genome"],
                                                "--output", w["out"] + ".h5", "--tracks",
                                                "tracks:a,b"), 2, r"must be integers"),
    ("contributions-output-is-file", lambda w: _contrib(w)[:-2] + [w["a_file"], "--quiet"], 2,
     r"--output-dir .*a_file is a file"),
    ("contributions-fasta-directory", lambda w: ["contributions", "--model", w["run"], "--fasta",
                                                 w["fake_saved"], "--regions", w["regions.bed"],
                                                 "--output-dir", w["out"]], 2,
     r"is a directory, expected a FASTA file"),
    ("export-overwrite-foreign", lambda w: ["export", "hub", *_model(w), "--output",
                                            w["foreign"], "--overwrite"], 2,
     r"was not written by tf-seqmodels .*--overwrite replaces only folders this package wrote"),
    ("export-existing", lambda w: ["export", "hub", *_model(w), "--output", w["foreign"]], 2,
     r"already exists; choose another path or give --overwrite"),
    ("demo-existing", lambda w: ["demo", "--output-dir", w["existing_demo"]], 2,
     r"--output-dir .* already exists; .* --overwrite"),
    ("demo-overwrite-foreign", lambda w: ["demo", "--output-dir", w["existing_demo"],
                                          "--overwrite"], 2, r"was not written by tf-seqmodels"),
    # contribution targets checked against the model's outputs
    ("target-tracks-out-of-range", lambda w: _contrib(w, "--target-tracks", "5"), 2,
     r"--target-tracks 5: head 'tracks' has 2 tracks \(indices 0..1\)"),
    ("target-bins-out-of-range", lambda w: _contrib(w, "--target-bins", "0", "99"), 2,
     r"--target-bins 0 99: head 'tracks' has 4 bins"),
    ("target-bins-inverted", lambda w: _contrib(w, "--target-bins", "3", "1"), 2,
     r"START must be < END"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(ws, capsys, case):
  _, argv, code, pattern = case
  before = _snapshot(ws["root"])
  got, err = run_cli(argv(ws), capsys)
  assert got == code, err
  assert re.search(pattern, err), err
  assert "Traceback" not in err
  lines = [line for line in err.splitlines() if line.strip()]
  if "usage:" in err:  # argparse: the usage, then the one error line
    lines = lines[-1:]
  assert lines and len(lines) <= 8 and lines[0].startswith("tf-seqmodels"), err
  assert _snapshot(ws["root"]) == before  # no input or earlier output changed, nothing added
  assert not os.path.exists(ws["out"] + ".h5") and not os.path.exists(ws["out"] + ".tsv")


def test_at_least_45_cases():
  assert len(CASES) >= 45


def test_interrupt_guard_and_internal_errors_map_to_exit_codes(ws, capsys, monkeypatch):
  from tf_seqmodels import cli_predict

  class NonFiniteLossError(FloatingPointError):
    pass

  argv = ["predict", *_model(ws), "--fasta", ws["ok.fa"], "--output", ws["out"] + ".h5"]
  for error, code, pattern in ((KeyboardInterrupt(), 130, r"predict: interrupted$"),
                               (NonFiniteLossError("loss is nan at step 3"), 3,
                                r"predict: stopped: loss is nan at step 3"),
                               (ZeroDivisionError("boom"), 1,
                                r"internal error \(ZeroDivisionError\): boom; rerun with "
                                r"--verbose")):
    def fail(*args, _error=error, **kwargs):
      raise _error
    monkeypatch.setattr(cli_predict, "read_fasta", fail)
    got, err = run_cli(argv, capsys)
    assert got == code and re.search(pattern, err.strip()) and "Traceback" not in err, err
    got, err = run_cli(argv + ["--verbose"], capsys)
    assert got == code and "Traceback" in err  # --verbose: the traceback, for debugging


def test_run_directory_works_moved_and_from_another_folder(ws, capsys, tmp_path, monkeypatch):
  """The run recorded data/targets.txt relative to the folder it trained in; moved with its
  project and run from elsewhere, it still finds it. Moved alone, the error names the file
  and --targets, which overrides it."""
  moved = tmp_path / "elsewhere" / "proj"
  shutil.copytree(ws["proj"], moved)
  monkeypatch.chdir(tmp_path)
  run = str(moved / "runs" / "tiny")
  out = tmp_path / "scores.h5"
  code, err = run_cli(["score-variants", "--model", run, "--vcf", ws["v.vcf"], "--fasta",
                       ws["genome"], "--output", out, "--quiet"], capsys)
  assert code == 0 and out.exists(), err
  alone = tmp_path / "alone"
  shutil.copytree(run, alone)
  before = _snapshot(tmp_path / "alone")
  code, err = run_cli(["contributions", "--model", alone, "--fasta", ws["genome"], "--regions",
                       ws["regions.bed"], "--output-dir", tmp_path / "c", "--quiet"], capsys)
  assert code == 2 and "targets table not found: data/targets.txt" in err and "--targets" in err
  assert _snapshot(tmp_path / "alone") == before
  code, err = run_cli(["contributions", "--model", alone, "--targets", ws["targets"], "--fasta",
                       ws["genome"], "--regions", ws["regions.bed"], "--output-dir",
                       tmp_path / "c", "--logos", "0", "--quiet"], capsys)
  assert code == 0 and (tmp_path / "c" / "scores.h5").exists(), err


def test_every_model_source_predicts_the_same(ws, capsys, tmp_path, monkeypatch):
  """A run directory, its checkpoint + recorded training config, and the registry name with
  --config/--weights are one loader: the same predictions."""
  monkeypatch.chdir(ws["proj"])  # a training config's paths are relative to where it runs
  import h5py
  from tf_seqmodels.training.checkpointing import latest_checkpoint
  config = tmp_path / "train.yaml"
  with open(os.path.join(ws["run"], "run.json")) as f:
    recorded = json.load(f)["config"]["train_config"]
  config.write_text(json.dumps(recorded))
  train_json = tmp_path / "train.json"
  os.replace(config, train_json)
  ckpt = latest_checkpoint(ws["run"])
  sources = {"run": ["--model", ws["run"], "--which", "latest"],
             "checkpoint": ["--model", ckpt, "--config", train_json],
             "name": ["--model", "enformer", "--config", ws["model_yaml"], "--weights", ckpt]}
  results = {}
  for name, flags in sources.items():
    out = tmp_path / f"{name}.h5"
    code, err = run_cli(["predict", *flags, "--fasta", ws["ok.fa"], "--output", out], capsys)
    assert code == 0, err
    with h5py.File(out) as f:
      results[name] = f["predictions/tracks"][()]
  np.testing.assert_allclose(results["checkpoint"], results["run"], rtol=1e-6)
  np.testing.assert_allclose(results["name"], results["run"], rtol=1e-6)


def test_help_is_fast_and_does_not_import_tensorflow():
  """`tf-seqmodels --help` and every `<command> --help` without TensorFlow, in well under a
  second on an idle 2-core machine (measured ~0.1-0.5 s; 3 s allows for a loaded CI box)."""
  code = ("import sys, time; t = time.perf_counter()\n"
          "from tf_seqmodels.cli import make_parser\n"
          "parser = make_parser()\n"
          "for argv in [['--help']] + [[c, '--help'] for c in parser._subparsers._group_actions[0]"
          ".choices]:\n"
          "  try: parser.parse_args(argv)\n"
          "  except SystemExit: pass\n"
          "print(time.perf_counter() - t, 'tensorflow' in sys.modules)\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       check=True).stdout.strip().splitlines()[-1].split()
  assert out[1] == "False"
  start = time.perf_counter()
  result = subprocess.run([sys.executable, "-m", "tf_seqmodels.cli", "--help"],
                          capture_output=True, text=True, cwd=REPO)
  elapsed = time.perf_counter() - start
  assert result.returncode == 0 and "predict" in result.stdout
  print(f"--help: {elapsed:.2f} s in a new interpreter; all help texts {float(out[0]):.2f} s")
  assert elapsed < 3.0


def test_a_failing_command_prints_one_line_without_tensorflow_noise(ws):
  """In a fresh process TensorFlow is imported (the command runs), but its C++ start-up
  logs are hidden: stderr is the one error line."""
  result = subprocess.run([sys.executable, "-m", "tf_seqmodels.cli", "predict", "--model",
                           "enformr", "--fasta", ws["ok.fa"], "--output", ws["out"] + ".h5"],
                          capture_output=True, text=True, cwd=REPO, env={
                              k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      result.stderr.strip()] and result.stderr.startswith("tf-seqmodels predict: error: --model "
                                                          "enformr: not a registered model")
