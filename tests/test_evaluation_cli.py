"""`tf-seqmodels evaluate` on a trained run: the train config + weights -> report files."""

import json

import numpy as np
import pytest

from tf_seqmodels import cli
from tf_seqmodels.training.logging import MetricsLog
from tf_seqmodels.training.run_config import TrainConfig, run_training


def test_evaluate_a_trained_track_run_on_its_valid_and_test_splits(tmp_path, capsys):
  """Tiny Enformer on FASTA + bigWig windows (the `tracks` builder, test_trainer's inputs):
  the valid split reproduces the trainer's validation Pearson; the test split gets test-time
  augmentation, gene-level CAGE from genomic TSS positions and browser plots."""
  from test_trainer import write_track_inputs
  write_track_inputs(tmp_path)
  config = TrainConfig.from_dict({
      "model": {"name": "enformer", "config": {
          "channels": 48, "num_transformer_layers": 1, "num_heads": 2, "filters_divisible_by": 8,
          "heads": {"tracks": 2}, "sequence_length": 256, "target_length": 4,
          "num_conv_tower_blocks": 3}},
      "task": {"type": "tracks"},
      "data": {"type": "tracks", "batch_size": 8, "options": {
          "fasta": str(tmp_path / "genome.fa"), "targets": str(tmp_path / "targets.txt"),
          "regions": str(tmp_path / "regions.bed"), "fold": str(tmp_path / "fold.json"),
          "data": {"sequence_length": 256, "bin_size": 16, "target_length": 4}}},
      "optimizer": {"learning_rate": 0.005},
      "trainer": {"epochs": 1, "select_best_by": "pearson", "progress": False},
      "run_dir": str(tmp_path / "run")})
  run_training(config)
  path = tmp_path / "run.yaml"
  config.save(path)

  plain = tmp_path / "plain"
  assert cli.main(["evaluate", "--config", str(path), "--out", str(plain), "--quiet"]) == 0
  assert "tracks/pearson " in capsys.readouterr().out
  report = json.loads((plain / "report.json").read_text())
  assert report["metadata"]["split"] == "valid"
  assert "best-step" in report["metadata"]["weights"]
  valid = [r for r in MetricsLog(config.run_dir).records if r["split"] == "valid"][-1]
  assert report["sections"][0]["metrics"]["pearson"] == pytest.approx(valid["pearson"], abs=1e-4)

  # chr3 (test) windows are centred at 300, 700, ..., 2300; outputs cover centre -32 .. +32.
  (tmp_path / "tss.tsv").write_text("gene\tchrom\tposition\nG1\tchr3\t300\nG2\tchr3\t705\n"
                                    "G2\tchr3\t720\nG3\tchr3\t1490\nG4\tchr1\t5000\n")
  (tmp_path / "eval.yaml").write_text(
      f"augmentation: {{shifts: [-1, 0, 1, 2]}}\ntss: {tmp_path / 'tss.tsv'}\n"
      "cage_tracks: [0, 1]\nplot_examples: [1]\n")
  out = tmp_path / "test"
  assert cli.main(["evaluate", "--config", str(path), "--split", "test", "--options",
                   str(tmp_path / "eval.yaml"), "--out", str(out), "--quiet"]) == 0
  report = json.loads((out / "report.json").read_text())
  assert [s["name"] for s in report["sections"]] == ["tracks", "gene_cage", "browser"]
  tracks, genes = report["sections"][0], report["sections"][1]
  assert tracks["metrics"]["examples"] == 6 and "8 copies" in tracks["notes"]
  assert [r["gene"] for r in genes["tables"]["per_gene"]] == ["G1", "G2", "G3"]  # G4: not in test
  assert genes["metrics"]["experiments"] == 2
  assert all(np.isfinite(v) for v in (tracks["metrics"]["pearson"],))
  for name in ("report.md", "tracks_per_track_pearson.png", "gene_cage_genes_first_experiment.png",
               "browser_example_1.png"):
    assert (out / name).stat().st_size > 0, name

  # The run directory alone (config recorded in run.json), with the data section given apart.
  import yaml
  (tmp_path / "data.yaml").write_text(yaml.safe_dump(config.data.to_dict()))
  recorded = tmp_path / "recorded"
  assert cli.main(["evaluate", "--model", config.run_dir, "--data", str(tmp_path / "data.yaml"),
                   "--out", str(recorded), "--quiet"]) == 0
  again = json.loads((recorded / "report.json").read_text())
  assert again["sections"][0]["metrics"]["pearson"] == pytest.approx(
      valid["pearson"], abs=1e-4)

  capsys.readouterr()
  assert cli.main(["evaluate", "--model", str(tmp_path), "--quiet"]) == 2
  assert "not a training run directory" in capsys.readouterr().err
  assert cli.main(["evaluate", "--config", str(path), "--split", "holdout", "--quiet"]) == 2
  assert "no 'holdout' split" in capsys.readouterr().err
  assert cli.main(["evaluate", "--list"]) == 0
  assert "dream_soft_bin" in capsys.readouterr().out
