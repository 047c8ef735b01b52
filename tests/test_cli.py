"""The `tf-seqmodels` command line, run in-process on tiny configs."""

import json

import h5py
import numpy as np
import pytest

from tf_seqmodels import Enformer, EnformerConfig, cli
from tf_seqmodels.convert import save_checkpoint

TINY = EnformerConfig(channels=48, num_transformer_layers=1, num_heads=2, filters_divisible_by=8,
                      heads={"human": 5, "mouse": 3}, sequence_length=1024, target_length=4)


def test_models_and_config_round_trip(tmp_path, capsys):
  assert cli.main(["models"]) == 0
  assert "enformer" in capsys.readouterr().out
  path = tmp_path / "enformer.yaml"
  assert cli.main(["config", "enformer", "-o", str(path)]) == 0
  assert EnformerConfig.load(path) == EnformerConfig()
  assert cli.main(["config", "enformer", "--demo", "--json"]) == 0
  assert '"channels": 384' in capsys.readouterr().out


def test_demo_trains_evaluates_plots_and_predicts(tmp_path, capsys):
  """The README's first command end to end, at toy size (a few training steps)."""
  config = tmp_path / "tiny.yaml"
  TINY.replace(target_length=6).save(config)
  out = tmp_path / "demo"
  assert cli.main(["demo", "--config", str(config), "--output-dir", str(out), "--steps", "4",
                   "--epochs", "1", "--batch-size", "4", "--chromosomes", "3",
                   "--chromosome-length", "20000", "--quiet"]) == 0
  text = capsys.readouterr().out
  assert "planted JASPAR motif sites" in text and "trained 4 steps" in text
  assert "ceiling" in text and "cage_minus" in text and "wrote predictions for 16 sequences" in text
  metrics = json.loads((out / "metrics.json").read_text())
  assert set(metrics["accuracy"]["tracks"]) == {"dnase", "ctcf", "cage_plus", "cage_minus"}
  assert all(0.8 < c <= 1 for c in metrics["accuracy"]["noise_ceiling"])
  with h5py.File(out / "predictions.h5") as f:
    assert f["predictions/tracks"].shape == (16, 6, 4)
    assert np.all(np.isfinite(f["predictions/tracks"][()]))
  assert (out / "tracks.png").stat().st_size > 10_000
  assert EnformerConfig.load(out / "config.yaml") == TINY.replace(target_length=6,
                                                                  heads={"tracks": 4})
  assert (out / "data" / "manifest.json").exists()


def test_predict_from_fasta_with_checkpoint(tmp_path):
  config = tmp_path / "tiny.json"
  TINY.save(config)
  model = Enformer(TINY)
  rng = np.random.default_rng(0)
  seqs = ["".join(rng.choice(list("ACGT"), 1024)) for _ in range(3)]
  fasta = tmp_path / "seqs.fa"
  fasta.write_text("".join(f">seq{i} description\n{s[:500]}\n{s[500:]}\n" for i, s in enumerate(seqs)))
  from tf_seqmodels.data.encoding import one_hot_encode
  expected = model.predict_on_batch(one_hot_encode(seqs))["human"].numpy()
  ckpt = save_checkpoint(model, str(tmp_path / "ckpt"))
  out = tmp_path / "pred.h5"
  assert cli.main(["predict", "--model", "enformer", "--config", str(config), "--weights", ckpt,
                   "--fasta", str(fasta), "--output", str(out), "--batch-size", "2"]) == 0
  with h5py.File(out) as f:
    np.testing.assert_allclose(f["predictions/human"][()], expected, rtol=1e-5, atol=1e-6)
    assert [n.decode() for n in f["names"][()]] == ["seq0", "seq1", "seq2"]


def test_errors_are_reported_without_tracebacks(tmp_path, capsys):
  config = tmp_path / "tiny.yaml"
  TINY.save(config)
  assert cli.main(["predict", "--model", "enformer", "--config", str(config), "--fasta",
                   str(tmp_path / "none.fa"), "--output", str(tmp_path / "o.h5")]) == 2
  assert "FASTA file not found" in capsys.readouterr().err
  bad = tmp_path / "bad.fa"
  bad.write_text(">a\n" + "ACGT" * 100 + "\n")
  assert cli.main(["predict", "--model", "enformer", "--config", str(config), "--fasta", str(bad),
                   "--output", str(tmp_path / "o.h5")]) == 2
  assert "expects 1024-bp inputs, got 400-bp" in capsys.readouterr().err
  bad_config = tmp_path / "bad.yaml"
  bad_config.write_text("chanels: 3\n")
  assert cli.main(["demo", "--config", str(bad_config), "--output-dir",
                   str(tmp_path / "demo")]) == 2
  assert "unknown key" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    cli.main(["no-such-command"])
