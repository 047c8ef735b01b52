"""`tf-seqmodels chrombpnet pipeline` end to end on simulated ATAC-seq fragments.

The simulated genome (`chrombpnet.simulate`, JASPAR CTCF from `data.synthetic`) has peaks
opened by planted CTCF sites and an enzyme preference for GCANTGC at the insertion centre,
everywhere. The run (CI-sized models and epochs) must show:

- the shift of the 10x-style fragments (+4/-5) is detected;
- the bias model learnt the enzyme k-mer (a sharp footprint) and not CTCF (no counts
  response, no flag);
- TF-MoDISco on the bias-corrected model's contributions finds CTCF;
- the enzyme footprint is there with the bias and gone without it ("corrected").
"""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from tf_seqmodels import cli
from tf_seqmodels.chrombpnet.motifs import read_patterns, similarity
from tf_seqmodels.chrombpnet.pipeline import Pipeline, PipelineConfig, STEPS
from tf_seqmodels.chrombpnet.simulate import SimulationConfig, simulate_atac

SMALL = ["--input-length", "400", "--output-length", "200", "--bias-filters", "16",
         "--bias-layers", "2", "--filters", "32", "--layers", "3", "--max-jitter", "20",
         "--batch-size", "32", "--epochs", "3", "--steps-per-epoch", "40", "--learning-rate",
         "3e-3", "--nonpeak-stride", "50", "--contrib-references", "4", "--modisco-targets",
         "counts", "--modisco-leiden", "1", "--footprint-regions", "64", "--no-export",
         "--quiet"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
  root = tmp_path_factory.mktemp("chrombpnet_sim")
  data = simulate_atac(root, SimulationConfig(chromosome_length=150_000, peak_spacing=1500,
                                              background_rate=0.2))
  (root / "tf_motifs.tsv").write_text(f"CTCF\t{data.tf_consensus}\n")
  return data


def command(sim, out, *extra):
  return ["chrombpnet", "pipeline", "--fragments", sim.fragments, "--genome", sim.fasta,
          "--peaks", sim.peaks, "--fold", sim.fold, "--output-dir", str(out),
          "--tf-motifs", sim.path("tf_motifs.tsv"), *SMALL, *extra]


def load(path):
  with open(path) as f:
    return json.load(f)


@pytest.fixture(scope="module")
def run(sim, tmp_path_factory):
  out = tmp_path_factory.mktemp("pipeline_out")
  began = time.time()
  assert cli.main(command(sim, out)) == 0
  return out, time.time() - began


def test_pipeline_end_to_end(sim, run):
  out, seconds = run
  steps = {s: load(out / "steps" / f"{s}.json") for s in STEPS if s != "export"}
  print(f"pipeline: {seconds:.0f} s; " + ", ".join(f"{s} {r['seconds']} s" for s, r in steps.items()))
  assert steps["reads"]["result"]["input_shift"] == [4, -5]

  # The bias model: a sharp enzyme footprint, no response to CTCF, no flag.
  qc = load(out / "evaluation" / "bias_qc.json")
  enzyme = qc["footprints"]["tn5_insertion_kmer"]
  ctcf = qc["footprints"]["CTCF"]
  assert qc["enzyme_motifs"]["tn5_insertion_kmer"] in ("GCANTGC", "GCNNNGC", "GNANTNC", "GCANTGC")
  assert enzyme["max_ratio"] > 8 and enzyme["max_ratio"] > 3 * ctcf["max_ratio"]
  assert abs(ctcf["counts_log2fc"]) < 0.1 and qc["flags"] == []
  assert qc["peak_pearson_gate"]["passed"]

  # The bias-corrected model's contributions: modisco-lite finds the planted CTCF motif.
  with h5py.File(out / "contributions" / "counts_scores.h5") as f:
    assert f["shap/seq"].shape[1:] == (4, 400) and f["raw/seq"].dtype == np.int8
    assert f.attrs["method"] == "deeplift"
  with h5py.File(out / "modisco" / "counts" / "modisco.h5") as f:
    assert f.attrs["window_size"] == 400  # min(500, input length)
  patterns = [p for p in read_patterns(out / "modisco" / "counts" / "modisco.h5") if p.positive]
  best = max(similarity(p.ppm, sim.tf_probs)[0] for p in patterns)
  assert best > 0.8
  rows = load(out / "modisco" / "counts" / "patterns.json")
  assert rows[0]["match"] == "CTCF" and rows[0]["seqlets"] >= 50

  # Footprints: the enzyme's is in the full model and gone from the bias-corrected one.
  fps = load(out / "footprints" / "footprints.json")["footprints"]
  with_bias, without = fps["chrombpnet"]["tn5_insertion_kmer"], fps["chrombpnet_nobias"]["tn5_insertion_kmer"]
  assert with_bias["max_ratio"] > 8 and without["max_ratio"] < 3
  assert load(out / "footprints" / "footprints.json")["bias_correction"]["corrected"] is True
  assert fps["chrombpnet_nobias"]["CTCF"]["counts_log2fc"] > fps["bias"]["CTCF"]["counts_log2fc"] + 0.1

  # Test metrics and the JSD baselines.
  metrics = load(out / "evaluation" / "test_metrics.json")
  assert metrics["metrics"]["chrombpnet"]["peaks"]["pearsonr"] > 0.3
  jsd = metrics["jsd_baselines_peaks"]
  assert jsd["model"] < jsd["average_profile"] < jsd["uniform"] and jsd["model"] < jsd["shuffled_labels"]

  # Tracks and the report.
  for name in ("chrombpnet", "chrombpnet_nobias", "bias"):
    assert os.path.getsize(out / "tracks" / f"{name}.bw") > 0
  html = (out / "report" / "index.html").read_text()
  for heading in ("bias model QC", "test metrics", "footprints", "motifs", "training"):
    assert f"<h2>{heading}</h2>" in html
  images = [part.split("'")[0] for part in html.split("<img src='")[1:]]
  assert len(images) >= 8 and all((out / "report" / i).exists() for i in images)


def test_rerun_skips_every_step(sim, run, capsys):
  out, _ = run
  before = {s: os.path.getmtime(out / "steps" / f"{s}.json") for s in STEPS if s != "export"}
  assert cli.main(command(sim, out)) == 0
  after = {s: os.path.getmtime(out / "steps" / f"{s}.json") for s in before}
  assert before == after


def test_export_step_runs_last_and_alone(sim, run, capsys):
  """Without --no-export the finished run only exports: the accessibility model with and
  without its bias, as TF-Hub SavedModels equal to the trained model."""
  import tensorflow as tf
  from tf_seqmodels.model_source import ModelSource, load_model
  out, _ = run
  before = {s: os.path.getmtime(out / "steps" / f"{s}.json") for s in STEPS if s != "export"}
  assert cli.main([a for a in command(sim, out) if a != "--no-export"]) == 0
  assert before == {s: os.path.getmtime(out / "steps" / f"{s}.json") for s in before}
  assert (out / "steps" / "export.json").exists()
  model = load_model(ModelSource(str(out / "models" / "chrombpnet"))).model
  x = np.eye(4, dtype=np.float32)[np.random.default_rng(0).integers(0, 4, (2, 400))]
  for name, expected in (("chrombpnet", model), ("chrombpnet_nobias", model.without_bias())):
    loaded = tf.saved_model.load(str(out / "export" / name / "savedmodel"))
    got = loaded.model.predict_on_batch(tf.constant(x))
    want = expected(tf.constant(x), is_training=False)
    assert sorted(got) == sorted(want)
    for head in want:
      np.testing.assert_allclose(got[head].numpy(), want[head].numpy(), rtol=1e-4, atol=1e-5)


def test_killed_run_resumes_after_the_last_complete_step(sim, tmp_path):
  out = tmp_path / "out"
  process = subprocess.Popen([sys.executable, "-m", "tf_seqmodels.cli", *command(sim, out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 600
    while not (out / "steps" / "regions.json").exists():
      assert process.poll() is None and time.time() < deadline
      time.sleep(0.2)
  finally:
    process.send_signal(signal.SIGKILL)
    process.wait()
  regions_made = os.path.getmtime(out / "auxiliary" / "filtered.nonpeaks.narrowPeak")
  config = PipelineConfig.load(out / "pipeline.json")
  records = Pipeline(config).run(steps=["reads", "regions"])
  assert set(records) == {"reads", "regions"}
  assert os.path.getmtime(out / "auxiliary" / "filtered.nonpeaks.narrowPeak") == regions_made
  # A changed option reruns its step and drops every later record.
  Pipeline(config.replace(nonpeak_ratio=1)).run(steps=["reads", "regions"])
  assert os.path.getmtime(out / "auxiliary" / "filtered.nonpeaks.narrowPeak") > regions_made
  assert load(out / "steps" / "regions.json")["result"]["nonpeaks"] < records["regions"]["result"]["nonpeaks"]
  with pytest.raises(ValueError, match="unknown step"):
    Pipeline(config).run(steps=["train"])


def test_reference_bias_model_imported(shared, tmp_path):
  # --bias-model with the reference's Keras weights (here the fixture's arrays, bias and
  # accessibility together as in chrombpnet.h5): the bias part is found, sized from its
  # kernels, checkpointed, and reloads with the reference's outputs.
  from tf_seqmodels.chrombpnet.pipeline import _bias_source, _import_keras_bias, _load_bias
  fixtures = shared("fixtures", "chrombpnet")
  config = PipelineConfig(genome="g.fa", peaks="p.bed", output_dir=str(tmp_path), bigwig="x.bw",
                          bias_model=str(fixtures / "weights.npz"))
  pipeline = Pipeline(config)
  prefix = _import_keras_bias(pipeline, str(fixtures / "weights.npz"))
  path, bias_config = _bias_source(pipeline)
  assert path == prefix and (bias_config["filters"], bias_config["num_dilated_layers"]) == (128, 4)
  expected = np.load(fixtures / "outputs.npz")
  out = _load_bias(pipeline)(expected["x"].astype(np.float32), is_training=False)
  np.testing.assert_allclose(out["profile"], expected["bias_logits"], atol=2e-4)
  np.testing.assert_allclose(np.ravel(out["logcounts"]), np.ravel(expected["bias_logcounts"]),
                             atol=2e-4)


def test_gradient_hypothetical_scores_are_mean_centred():
  # modisco-lite expects hypothetical scores that sum to 0 over the four bases at each
  # position for gradient methods; DeepLIFT's come from its own multipliers.
  import tensorflow as tf
  from tf_seqmodels.chrombpnet.pipeline import hypothetical_scores
  from tf_seqmodels.models import BPNet, BPNetConfig
  model = BPNet(BPNetConfig(filters=4, num_dilated_layers=1, sequence_length=120,
                            output_length=20))
  x = np.eye(4, dtype=np.float32)[np.random.default_rng(0).integers(0, 4, (3, 120))]
  for target in ("counts", "profile"):
    hyp = hypothetical_scores(model, x, target, "gradient")
    np.testing.assert_allclose(hyp.sum(-1), 0.0, atol=1e-6)
    with tf.GradientTape() as tape:
      inputs = tf.constant(x)
      tape.watch(inputs)
      value = tf.reduce_sum(model(inputs, is_training=False)["logcounts"])
    if target == "counts":  # the centred gradient of the summed log counts
      grad = tape.gradient(value, inputs).numpy()
      np.testing.assert_allclose(hyp, grad - grad.mean(-1, keepdims=True), atol=1e-5)


def test_modisco_giving_up_is_a_reported_step_result_not_a_crash(tmp_path, monkeypatch):
  """modisco-lite stops with a ZeroDivisionError when one sign has no null seqlets (seen on a
  bench run): `run_modisco` turns it into its ValueError, which the pipeline records."""
  import modiscolite
  from tf_seqmodels.analysis.contribution_outputs import write_modisco_h5
  from tf_seqmodels.chrombpnet.motifs import run_modisco
  rng = np.random.default_rng(0)
  one_hot = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (6, 100))]
  write_modisco_h5(str(tmp_path / "scores.h5"), one_hot, one_hot * 0.1, ["chr1"] * 6,
                   list(range(0, 600, 100)))

  def gives_up(**kwargs):
    raise ZeroDivisionError("division by zero")
  monkeypatch.setattr(modiscolite.tfmodisco, "TFMoDISco", gives_up)
  with pytest.raises(ValueError, match=r"modisco-lite failed on .*scores.h5 \(6 regions, window "
                     r"100\): no null seqlets of one sign .* \(too few regions or seqlets\?\)"):
    run_modisco(tmp_path / "scores.h5", tmp_path / "modisco.h5")
  assert not (tmp_path / "modisco.h5").exists()


def test_verbose_reaches_the_pipeline_before_or_after_the_subcommand():
  from tf_seqmodels.cli import make_parser
  required = ["--fragments", "f.tsv", "--genome", "g.fa", "--peaks", "p.bed", "--output-dir", "o"]
  parse = make_parser().parse_args
  assert parse(["--verbose", "chrombpnet", "pipeline", *required]).verbose is True
  assert parse(["chrombpnet", "pipeline", *required, "--verbose"]).verbose is True
  assert getattr(parse(["chrombpnet", "pipeline", *required]), "verbose", False) is False
  assert parse(["--verbose", "predict", "--model", "m", "--fasta", "x.fa", "--output",
                "o.h5"]).verbose is True
