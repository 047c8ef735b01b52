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

  # Regions: the 1024-bp window centred on each region (the narrowPeak's summit; the midpoint
  # of a BED interval), cut from the genome; past the chromosome start it reads N.
  chrom = "".join(rng.choice(list("ACGT"), 3000))
  (tmp_path / "genome.fa").write_text(">chr1\n" + chrom + "\n")
  (tmp_path / "peaks.narrowPeak").write_text("chr1\t1500\t2000\t.\t0\t.\t1\t1\t1\t100\n"
                                             "chr1\t100\t200\t.\t0\t.\t1\t1\t1\t-1\n")
  windows = [chrom[1600 - 512:1600 + 512], "N" * 362 + chrom[:662]]
  expected = model.predict_on_batch(one_hot_encode(windows))["human"].numpy()
  assert cli.main(["predict", "--model", "enformer", "--config", str(config), "--weights", ckpt,
                   "--regions", str(tmp_path / "peaks.narrowPeak"), "--genome",
                   str(tmp_path / "genome.fa"), "--output", str(out), "--quiet"]) == 0
  with h5py.File(out) as f:
    np.testing.assert_allclose(f["predictions/human"][()], expected, rtol=1e-5, atol=1e-6)
    assert [n.decode() for n in f["names"][()]] == ["chr1:1088-2112", "chr1:-362-662"]
    assert f["windows/start"][()].tolist() == [1088, -362]
  assert cli.main(["predict", "--model", "enformer", "--config", str(config), "--regions",
                   str(tmp_path / "peaks.narrowPeak"), "--output", str(out)]) == 2


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


def test_predict_dream_from_a_sequence_table_with_plasmid_padding(tmp_path):
  """DREAM promoters (110 nt with the left adapter) from a table: padded with the plasmid as
  the reference does, forward and reverse-complement predictions averaged."""
  from tf_seqmodels.data.dream import LEFT_ADAPTER, pad_with_plasmid
  from tf_seqmodels.data.encoding import one_hot_encode
  from tf_seqmodels.models import build_model, get_entry
  rng = np.random.default_rng(3)
  def random(n):
    return "".join(rng.choice(list("ACGT"), n))
  model = build_model("dream_cnn", get_entry("dream_cnn").demo_config())
  model.ensure_built()
  ckpt = save_checkpoint(model, str(tmp_path / "ckpt"))
  get_entry("dream_cnn").demo_config().save(tmp_path / "dream.yaml")
  plasmid = random(300) + "N" * 80 + random(40)
  (tmp_path / "plasmid.json").write_text(json.dumps(plasmid))
  seqs = [LEFT_ADAPTER + random(93) for _ in range(3)]
  (tmp_path / "promoters.tsv").write_text("id\tsequence\n" + "".join(
      f"p{i}\t{s}\n" for i, s in enumerate(seqs)))
  out = tmp_path / "expression.tsv"
  assert cli.main(["predict", "--model", ckpt, "--config", str(tmp_path / "dream.yaml"),
                   "--model-name", "dream_cnn", "--sequences", str(tmp_path / "promoters.tsv"),
                   "--plasmid", str(tmp_path / "plasmid.json"), "--output", str(out),
                   "--quiet"]) == 0
  x = one_hot_encode(pad_with_plasmid(seqs, plasmid, 150))
  forward = model(model.encode_dna(x, False), is_training=False)["expression"].numpy()
  reverse = model(model.encode_dna(x[:, ::-1, ::-1].copy(), True),
                  is_training=False)["expression"].numpy()
  lines = out.read_text().splitlines()
  assert lines[0].split("\t")[:2] == ["name", "expression"] or lines[0].startswith("name\texpr")
  got = np.array([[float(v) for v in line.split("\t")[1:2]] for line in lines[1:]])
  assert [line.split("\t")[0] for line in lines[1:]] == ["p0", "p1", "p2"]
  expected = ((forward + reverse) / 2).reshape(3, -1)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
  assert not np.allclose(forward, reverse)  # the average is not the forward pass alone


def test_predict_chromoformer_from_the_reference_layout(tmp_path, shared):
  """Chromoformer genes from the reference's metadata.csv + per-region .npy arrays (real H1
  data of the reference fixture), one row per gene, through data.chromoformer's one
  reference-layout path: probability = sigmoid(logit 1) as the reference's run_demo.py."""
  from tf_seqmodels.data.chromoformer import predict_reference_layout
  from tf_seqmodels.models import build_model, get_entry
  data = shared("fixtures", "chromoformer", "data")
  config = get_entry("chromoformer").config_class()  # the reference's windows (40 kb, pCREs)
  model = build_model("chromoformer", config)
  model.ensure_built()
  ckpt = save_checkpoint(model, str(tmp_path / "ckpt"))
  config.save(tmp_path / "chromoformer.yaml")
  out = tmp_path / "genes.tsv"
  assert cli.main(["predict", "--model", ckpt, "--config", str(tmp_path / "chromoformer.yaml"),
                   "--chromoformer-metadata", str(data / "meta.csv"), "--chromoformer-npy",
                   str(data / "npy"), "--output", str(out), "--quiet"]) == 0
  rows = predict_reference_layout(model, data / "meta.csv", data / "npy", progress=False)
  lines = out.read_text().splitlines()
  assert lines[0].split("\t") == ["name", "probability", "probability_softmax", "logit_0",
                                  "logit_1"]
  assert [line.split("\t")[0] for line in lines[1:]] == [row["gene_id"] for row in rows]
  got = np.array([[float(v) for v in line.split("\t")[1:]] for line in lines[1:]])
  expected = np.array([[row[k] for k in ("probability", "probability_softmax", "logit_0",
                                         "logit_1")] for row in rows])
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
  assert np.all((got[:, 0] > 0) & (got[:, 0] < 1))
