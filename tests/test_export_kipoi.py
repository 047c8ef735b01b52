"""Kipoi export: `kipoi test` and `kipoi predict` (HDF5 + TSV) offline in subprocesses, and
predictions equal to the live model's; a multi-input model gets the array dataloader."""

import os

import h5py
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import yaml

from tf_seqmodels.export.hub import ExportError, HubExportConfig, ParityError
from tf_seqmodels.export.kipoi import (KipoiExportConfig, export_kipoi, run_kipoi,
                                       verify_expect)
from export_toys import ToyMultiInput
from tf_seqmodels.data.encoding import one_hot_encode
from tf_seqmodels.models import build_model, get_entry


def _windows(folder, length):
  """Each example BED interval's centred window ('-' strand: reverse-complemented), read
  independently of the dataloader."""
  genome, name = {}, None
  for line in open(os.path.join(folder, "example_files", "genome.fa")):
    line = line.strip()
    if line.startswith(">"):
      name = line[1:]
      genome[name] = ""
    else:
      genome[name] += line
  windows, minus = [], []
  for line in open(os.path.join(folder, "example_files", "intervals.bed")):
    chrom, start, end, _, _, strand = line.rstrip("\n").split("\t")
    begin = (int(start) + int(end)) // 2 - length // 2
    seq = genome[chrom]
    window = (seq[max(0, begin):begin + length]).join(
        ["N" * max(0, -begin), "N" * max(0, begin + length - len(seq))])
    if strand == "-":
      window = window[::-1].translate(str.maketrans("ACGTN", "TGCAN"))
    windows.append(window)
    minus.append(strand == "-")
  assert 0 < sum(minus) < len(minus)
  return one_hot_encode(windows)


def test_dna_model_kipoi_test_and_predict(tmp_path):
  model = build_model("dream_cnn", get_entry("dream_cnn").demo_config())
  folder = str(tmp_path / "DreamCNN")
  result = export_kipoi(model, folder, KipoiExportConfig(
      doc="DREAM-CNN demo", hub=HubExportConfig(training_data="none (random weights)"),
      run_kipoi_test=False))
  assert result.parity["kipoi"]["expression"] < 1e-5
  assert result.parity["kipoi_inputs"]["inputs"] == 0.0
  spec = yaml.safe_load(open(os.path.join(folder, "model.yaml")))
  assert spec["schema"]["inputs"]["shape"] == f"({model.sequence_length}, 4)"
  assert set(spec["schema"]["targets"]) == set(model.head_names)
  assert spec["info"]["trained_on"] == "none (random weights)"
  assert spec["info"]["cite_as"] == "https://doi.org/10.1038/s41587-024-02414-w"
  assert spec["schema"]["targets"]["bin_logits"]["column_labels"][17] == "bin_logits_17"
  assert "column_labels" not in spec["schema"]["targets"]["expression"]  # one value each
  assert set(result.parity["expect"]) == set(model.head_names)

  # The documented commands (the README's kipoi predict names --source dir), offline, from
  # outside the folder.
  readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
  predict_lines = [line for line in readme.splitlines() if "kipoi predict" in line]
  assert predict_lines and all("--source dir" in line for line in predict_lines)
  run_kipoi(["test", folder, "--source", "dir", "-e",
             os.path.join(folder, "example_files", "expect.h5")], str(tmp_path), 600)
  out_h5, out_tsv = tmp_path / "preds.h5", tmp_path / "preds.tsv"
  args = ('{"intervals_file": "%s", "fasta_file": "%s"}'
          % (os.path.join(folder, "example_files", "intervals.bed"),
             os.path.join(folder, "example_files", "genome.fa")))
  run_kipoi(["predict", folder, "--source", "dir", "--dataloader_args", args, "--batch_size", "4",
             "-m", "-o", str(out_h5), str(out_tsv)], str(tmp_path), 600)

  one_hot = _windows(folder, model.sequence_length)
  live = {k: v.numpy() for k, v in model(model.encode_dna(tf.constant(one_hot)),
                                         is_training=False).items()}
  with h5py.File(out_h5) as f:
    for head in model.head_names:
      np.testing.assert_allclose(f["preds"][head][()], live[head], rtol=1e-5, atol=1e-5)
    ids = [v.decode() for v in f["metadata/ranges/id"][()]]
  assert ids == [f"region{i}" for i in range(6)]
  table = pd.read_csv(out_tsv, sep="\t")
  assert len(table) == 6
  np.testing.assert_allclose(table["preds/expression"].to_numpy(), live["expression"],
                             rtol=1e-5, atol=1e-5)
  assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]

  # A corrupted second head of expect.h5 (`kipoi test` compares only the first head the model
  # returns, so one of the two passes it): our per-head check names it.
  expect = os.path.join(folder, "example_files", "expect.h5")
  second = model.head_names[1]
  with h5py.File(expect, "r+") as f:
    f["preds"][second][...] = f["preds"][second][()] + 1.0
  with pytest.raises(ParityError, match=f"{second} .max .diff. 1"):
    verify_expect(folder)
  from tf_seqmodels.export.kipoi import main
  assert main(["verify", folder]) == 2


def test_multi_input_model_array_dataloader(tmp_path):
  model = ToyMultiInput()
  folder = str(tmp_path / "Toy")
  # The pipeline in this process (what `kipoi test -o` runs, without a second TensorFlow).
  result = export_kipoi(model, folder, KipoiExportConfig(run_kipoi_test=False, in_process=True,
                                                         example_intervals=5))
  assert set(result.parity["kipoi"]) == {"score", "profile"}
  assert max(result.parity["kipoi"].values()) < 1e-5
  assert result.parity["kipoi_inputs"]["mask"] == 0.0
  spec = yaml.safe_load(open(os.path.join(folder, "model.yaml")))
  assert spec["schema"]["inputs"]["mask"]["shape"] == "(6,)"
  with h5py.File(os.path.join(folder, "example_files", "expect.h5")) as f:
    assert f["preds/score"].shape == (5, 2)
  assert spec["schema"]["targets"]["score"]["column_labels"] == ["score_0", "score_1"]
  assert "cite_as" not in spec["info"]  # a toy model cites nothing
  assert set(result.parity["expect"]) == {"score", "profile"}


def test_kipoi_failure_leaves_nothing(tmp_path, monkeypatch):
  def failing(args, cwd, timeout_s, module="kipoi"):
    raise ExportError("`kipoi test` failed (exit 1)")
  monkeypatch.setattr("tf_seqmodels.export.kipoi.run_kipoi", failing)
  with pytest.raises(ExportError, match="kipoi test"):
    export_kipoi(ToyMultiInput(), str(tmp_path / "Toy"))
  assert os.listdir(tmp_path) == []


def test_dataloader_reads_strands_and_refuses_bad_intervals(tmp_path):
  """The exported DNA dataloader (run here without Kipoi's CLI): '-' intervals are the
  reverse complement of the same '+' interval; bad BED lines name file and line."""
  import importlib.util
  from tf_seqmodels.export import kipoi_templates
  from tf_seqmodels.export.kipoi import _import_kipoi
  _import_kipoi()
  source = tmp_path / "dataloader.py"
  source.write_text(kipoi_templates.render(kipoi_templates.DNA_DATALOADER_PY,
                                           sequence_length="8"))
  spec = importlib.util.spec_from_file_location("strand_dataloader", source)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  (tmp_path / "g.fa").write_text(">c\nAACCGGTTACGT\n")
  (tmp_path / "ok.bed").write_text("c\t2\t10\tf\t0\t+\nc\t2\t10\tr\t0\t-\nc\t2\t10\n")
  data = module.IntervalSequenceDataset(str(tmp_path / "ok.bed"), str(tmp_path / "g.fa"))
  forward, reverse, unstranded = (data[i]["inputs"] for i in range(3))
  np.testing.assert_array_equal(forward, one_hot_encode(["CCGGTTAC"])[0])
  np.testing.assert_array_equal(reverse, one_hot_encode(["GTAACCGG"])[0])
  np.testing.assert_array_equal(unstranded, forward)
  assert data[1]["metadata"]["ranges"]["strand"] == "-"
  for line, message in (("c\t-1\t5\n", "negative, empty or inverted"),
                        ("c\t6\t5\n", "negative, empty or inverted"),
                        ("c\tx\t5\n", "must be integers"),
                        ("c\t1\t5\tn\t0\t?\n", "strand must be")):
    (tmp_path / "bad.bed").write_text("c\t2\t10\n" + line)
    with pytest.raises(ValueError, match=f"bad.bed:2: .*{message}"):
      module.read_bed(str(tmp_path / "bad.bed"))
