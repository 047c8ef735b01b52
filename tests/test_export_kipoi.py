"""Kipoi export: `kipoi test` and `kipoi predict` (HDF5 + TSV) offline in subprocesses, and
predictions equal to the live model's; a multi-input model gets the array dataloader."""

import os

import h5py
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import yaml

from tf_seqmodels.export.hub import ExportError, HubExportConfig
from tf_seqmodels.export.kipoi import KipoiExportConfig, export_kipoi, run_kipoi
from export_toys import ToyMultiInput
from tf_seqmodels.data.encoding import one_hot_encode
from tf_seqmodels.models import build_model, get_entry


def _windows(folder, length):
  """Each example BED interval's centred window, read independently of the dataloader."""
  genome, name = {}, None
  for line in open(os.path.join(folder, "example_files", "genome.fa")):
    line = line.strip()
    if line.startswith(">"):
      name = line[1:]
      genome[name] = ""
    else:
      genome[name] += line
  windows = []
  for line in open(os.path.join(folder, "example_files", "intervals.bed")):
    chrom, start, end = line.split("\t")[:3]
    begin = (int(start) + int(end)) // 2 - length // 2
    seq = genome[chrom]
    windows.append("N" * max(0, -begin) + seq[max(0, begin):begin + length]
                   + "N" * max(0, begin + length - len(seq)))
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

  # The documented commands, offline, from outside the folder.
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


def test_multi_input_model_array_dataloader(tmp_path):
  model = ToyMultiInput()
  folder = str(tmp_path / "Toy")
  result = export_kipoi(model, folder, KipoiExportConfig(run_kipoi_test=False,
                                                         example_intervals=5))
  assert set(result.parity["kipoi"]) == {"score", "profile"}
  assert max(result.parity["kipoi"].values()) < 1e-5
  assert result.parity["kipoi_inputs"]["mask"] == 0.0
  spec = yaml.safe_load(open(os.path.join(folder, "model.yaml")))
  assert spec["schema"]["inputs"]["mask"]["shape"] == "(6,)"
  with h5py.File(os.path.join(folder, "example_files", "expect.h5")) as f:
    assert f["preds/score"].shape == (5, 2)


def test_kipoi_failure_leaves_nothing(tmp_path, monkeypatch):
  def failing(args, cwd, timeout_s):
    raise ExportError("`kipoi test` failed (exit 1)")
  monkeypatch.setattr("tf_seqmodels.export.kipoi.run_kipoi", failing)
  with pytest.raises(ExportError, match="kipoi test"):
    export_kipoi(ToyMultiInput(), str(tmp_path / "Toy"))
  assert os.listdir(tmp_path) == []
