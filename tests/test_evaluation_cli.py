"""`tf-seqmodels evaluate` on a trained run: the train config + weights -> report files."""

import json

import numpy as np
import pytest

from tf_seqmodels import cli
from tf_seqmodels.training.run_config import TrainConfig, run_training


def test_evaluate_a_trained_run_from_its_config(tmp_path, capsys):
  config = TrainConfig.from_dict({
      "model": {"name": "enformer", "config": {
          "channels": 48, "num_transformer_layers": 1, "num_heads": 2, "filters_divisible_by": 8,
          "heads": {"tracks": 3}, "sequence_length": 1024, "target_length": 4}},
      "task": {"type": "tracks"},
      "data": {"type": "teacher", "batch_size": 8,
               "options": {"examples": 8, "valid_examples": 6}},
      "trainer": {"epochs": 1, "select_best_by": "pearson", "progress": False},
      "run_dir": str(tmp_path / "run")})
  run_training(config)
  path = tmp_path / "run.yaml"
  config.save(path)
  options = tmp_path / "eval.yaml"
  options.write_text("augmentation: {shifts: [0], reverse_complement: true}\nplot_examples: [1]\n")
  out = tmp_path / "evaluation"
  assert cli.main(["evaluate", "--config", str(path), "--options", str(options), "--out", str(out),
                   "--quiet"]) == 0
  printed = capsys.readouterr().out
  assert "tracks/pearson " in printed and "report.md" in printed
  report = json.loads((out / "report.json").read_text())
  assert report["metadata"]["split"] == "valid" and "best-step000000001" in report["metadata"]["weights"]
  assert [s["name"] for s in report["sections"]] == ["tracks", "browser"]
  assert np.isfinite(report["sections"][0]["metrics"]["pearson"])
  assert (out / "browser_example_1.png").stat().st_size > 0

  # The trainer's validation Pearson is the plain-prediction metric of the same weights.
  plain = tmp_path / "plain"
  assert cli.main(["evaluate", "--config", str(path), "--out", str(plain), "--quiet"]) == 0
  metrics = json.loads((plain / "report.json").read_text())["sections"][0]["metrics"]
  from tf_seqmodels.training.logging import MetricsLog
  valid = [r for r in MetricsLog(config.run_dir).records if r["split"] == "valid"][-1]
  assert metrics["pearson"] == pytest.approx(valid["pearson"], abs=1e-4)

  capsys.readouterr()
  assert cli.main(["evaluate", "--config", str(path), "--split", "test", "--quiet"]) == 2
  assert "no 'test' split" in capsys.readouterr().err
  assert cli.main(["evaluate", "--list"]) == 0
  assert "dream_soft_bin" in capsys.readouterr().out
