"""`--runner beam`: score-variants, predict and contributions as Apache Beam pipelines give the
single-process command's outputs; workers import no tf-seqmodels / Sonnet code; a missing Beam
fails in one line."""

import os
import pickle
import subprocess
import sys

import h5py
import numpy as np
import pytest

from analysis_toys import MOTIF, MotifModel, random_sequence, without_motif, write_genome
from tf_seqmodels.cli import main
from tf_seqmodels.data.vcf import Variant, write_vcf

pytest.importorskip("apache_beam")

MULTI_PROCESS = ("--runner DirectRunner --direct_num_workers 2 "
                 "--direct_running_mode multi_processing")
SITE = 1000


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """A two-chromosome genome with a planted motif, a VCF (3 of 9 records not scorable) and a
  demo BPNet checkpoint (profile logits + log counts heads, 512 bp)."""
  from tf_seqmodels.convert.weights import save_checkpoint
  from tf_seqmodels.models import build_model, get_entry
  d = tmp_path_factory.mktemp("beam")
  chr1 = without_motif(random_sequence(2400, seed=1))
  chr1 = chr1[:SITE] + MOTIF + chr1[SITE + len(MOTIF):]
  write_genome(str(d), {"chr1": chr1, "chr2": without_motif(random_sequence(900, 2))})
  other = lambda base: "A" if base != "A" else "C"  # noqa: E731
  write_vcf(str(d / "v.vcf"), [
      Variant("chr1", SITE + 2, "motif_snv", "G", "T"),
      Variant("chr1", 400, "bg1", chr1[399], other(chr1[399])),
      Variant("chr9", 10, "no_chrom", "A", "C"),
      Variant("chr1", 1700, "bg2", chr1[1699], other(chr1[1699])),
      Variant("chr1", 600, "mismatch", other(chr1[599]), "G"),
      Variant("chr1", SITE + 3, "motif_del", chr1[SITE + 2:SITE + 5], chr1[SITE + 2]),
      Variant("chr1", 1300, "far_ins", chr1[1299], chr1[1299] + "GG"),
      Variant("chr1", 800, "symbolic", chr1[799], "<DEL>"),
      Variant("chr2", 450, "chr2_snv", "N", "N"),
  ])
  config = get_entry("bpnet").demo_config()
  model = build_model("bpnet", config)
  model.ensure_built()
  save_checkpoint(model, str(d / "ckpt"))
  config.save(str(d / "model.yaml"))
  return d, chr1


def _model_args(d):
  return ["--model", str(d / "ckpt"), "--model-name", "bpnet", "--model-config",
          str(d / "model.yaml")]


def _datasets(path):
  out = {}
  with h5py.File(path) as f:
    f.visititems(lambda name, obj: out.__setitem__(name, obj[:])
                 if isinstance(obj, h5py.Dataset) else None)
    attrs = dict(f.attrs)
  return out, attrs


def _assert_same_h5(local, beam, rtol=1e-6, atol=1e-7):
  a, a_attrs = _datasets(local)
  b, b_attrs = _datasets(beam)
  assert sorted(a) == sorted(b)
  for name in a:
    if a[name].dtype.kind == "f":
      np.testing.assert_allclose(b[name], a[name], rtol=rtol, atol=atol, err_msg=name)
    else:
      np.testing.assert_array_equal(b[name], a[name], err_msg=name)
  assert a_attrs == b_attrs


def test_score_variants_multi_process_equals_single_process(setup, tmp_path, capsys):
  d, _ = setup
  common = ["score-variants", *_model_args(d), "--vcf", str(d / "v.vcf"), "--fasta",
            str(d / "genome.fa"), "--shifts", "-1", "0", "1", "--batch-size", "2", "--quiet"]
  assert main(common + ["--output", str(tmp_path / "local.h5")]) == 0
  # The checkpoint is exported to a temporary SavedModel; two worker processes score it.
  assert main(common + ["--output", str(tmp_path / "beam.h5"), "--runner", "beam",
                        "--beam-options", MULTI_PROCESS,
                        "--beam-work-dir", str(tmp_path / "work")]) == 0
  assert "scored 5 variants" in capsys.readouterr().out
  _assert_same_h5(tmp_path / "local.h5", tmp_path / "beam.h5")
  with h5py.File(tmp_path / "beam.h5") as f:  # VCF order after the merge
    assert [x.decode() for x in f["variants/id"][:]] == ["motif_snv", "bg1", "bg2", "motif_del",
                                                          "far_ins"]
    assert f["scores/profile/jsd"].shape == (5, 1)
  skipped = (tmp_path / "beam.h5.skipped.tsv").read_text()
  assert skipped == (tmp_path / "local.h5.skipped.tsv").read_text()
  assert [line.split("\t")[0] for line in skipped.splitlines()[1:]] == [
      "no_chrom", "mismatch", "symbolic", "chr2_snv"]
  assert os.listdir(tmp_path / "work") == []  # shards and the export are cleaned up
  _assert_package_classes_untouched()


def _assert_package_classes_untouched():
  """The worker modules went to the workers by value; this process's classes still run their
  own module's code (cloudpickle, unpickling a by-value class where it was pickled, rebinds the
  live class's methods to a copy of the module's globals: `shipped_by_value` puts them back)."""
  from tf_seqmodels.analysis import variants
  from tf_seqmodels.beam import worker
  from tf_seqmodels.data import genome
  from apache_beam.internal.cloudpickle import cloudpickle
  for module, cls in ((genome, genome.Genome), (worker, worker.VariantWindows),
                      (variants, variants.TSSIndex)):
    for name, value in vars(cls).items():
      if callable(value) and hasattr(value, "__globals__"):
        assert value.__globals__ is module.__dict__, f"{cls.__name__}.{name}"
  assert not {m for m in cloudpickle.list_registry_pickle_by_value()
              if m.startswith("tf_seqmodels")}


def test_score_variants_tsv_from_saved_model(setup, tmp_path):
  """A SavedModel is used as is (no export); TSV output, gene mode, in-process DirectRunner."""
  import tensorflow as tf
  d, _ = setup
  toy = MotifModel()
  module = tf.Module()
  module.toy = toy
  module.predict_on_batch = tf.function(lambda x: toy(x, is_training=False),
                                        input_signature=[tf.TensorSpec([None, 256, 4], tf.float32)])
  tf.saved_model.save(module, str(tmp_path / "saved"))
  (tmp_path / "genes.bed").write_text(f"chr1\t{SITE + 20}\t{SITE + 900}\tgeneA\t0\t+\n"
                                      f"chr1\t300\t{SITE - 30}\tgeneB\t0\t-\n")
  common = ["score-variants", "--model", str(tmp_path / "saved"), "--position-axes",
            "signal:1", "total:none", "--vcf", str(d / "v.vcf"), "--fasta", str(d / "genome.fa"),
            "--genes", str(tmp_path / "genes.bed"), "--quiet"]
  assert main(common + ["--output", str(tmp_path / "local.tsv")]) == 0
  assert main(common + ["--output", str(tmp_path / "beam.tsv"), "--runner", "beam"]) == 0
  local = (tmp_path / "local.tsv").read_text()
  assert (tmp_path / "beam.tsv").read_text() == local
  assert "geneA" in local and "geneB" in local
  assert ((tmp_path / "beam.tsv.skipped.tsv").read_text()
          == (tmp_path / "local.tsv.skipped.tsv").read_text())


def test_predict_and_contributions_equal_single_process(setup, tmp_path):
  d, chr1 = setup
  records = "".join(f">r{i}\n{chr1[300 * i:300 * i + 512]}\n" for i in range(5))
  (tmp_path / "in.fa").write_text(records)
  common = ["predict", "--model", "bpnet", "--config", str(d / "model.yaml"), "--weights",
            str(d / "ckpt"), "--fasta", str(tmp_path / "in.fa"), "--batch-size", "2"]
  assert main(common + ["--output", str(tmp_path / "local.h5")]) == 0
  assert main(common + ["--output", str(tmp_path / "beam.h5"), "--runner", "beam"]) == 0
  _assert_same_h5(tmp_path / "local.h5", tmp_path / "beam.h5", rtol=1e-5, atol=1e-6)
  # Regions (a narrowPeak summit; a window past the chromosome start), both strands averaged,
  # in two worker processes.
  (tmp_path / "peaks.narrowPeak").write_text("chr1\t900\t1100\t.\t0\t.\t1\t1\t1\t50\n"
                                             "chr2\t10\t100\t.\t0\t.\t1\t1\t1\t-1\n")
  common = common[:-4] + ["--regions", str(tmp_path / "peaks.narrowPeak"), "--genome",
                          str(d / "genome.fa"), "--reverse-complement", "--batch-size", "2"]
  assert main(common + ["--output", str(tmp_path / "local_regions.h5")]) == 0
  assert main(common + ["--output", str(tmp_path / "beam_regions.h5"), "--runner", "beam",
                        "--beam-options", MULTI_PROCESS]) == 0
  _assert_same_h5(tmp_path / "local_regions.h5", tmp_path / "beam_regions.h5", rtol=1e-5,
                  atol=1e-6)
  with h5py.File(tmp_path / "beam_regions.h5") as f:
    assert [n.decode() for n in f["names"][()]] == ["chr1:694-1206", "chr2:-201-311"]

  (tmp_path / "peaks.bed").write_text("chr1\t900\t1100\nchr2\t300\t500\nchr1\t100\t200\n")
  common = ["contributions", *_model_args(d), "--fasta", str(d / "genome.fa"), "--regions",
            str(tmp_path / "peaks.bed"), "--head", "logcounts", "--logos", "0", "--quiet",
            "--batch-size", "2", "--references", "2", "--steps", "2"]
  for method in ("ism", "gradient_x_input", "deepshap"):
    out = tmp_path / method
    assert main(common + ["--method", method, "--output-dir", str(out / "local")]) == 0
    workers = ["--beam-options", MULTI_PROCESS] if method == "deepshap" else []
    assert main(common + ["--method", method, "--output-dir", str(out / "beam"),
                          "--runner", "beam", *workers]) == 0
    # The local run evaluates (and differentiates) the Sonnet model in a graph; the pipeline
    # its parity-checked export: equal to float32 rounding. Region 3 (past a batch of 2)
    # has the same DeepSHAP references in both: seeded by its index (DeepSHAP in two worker
    # processes).
    _assert_same_h5(out / "local" / "scores.h5", out / "beam" / "scores.h5", rtol=1e-4,
                    atol=1e-5)
    assert (out / "beam" / "regions.bed").read_text() == (out / "local" / "regions.bed").read_text()
    assert os.path.getsize(out / "beam" / "contributions.bw") > 0
  with h5py.File(tmp_path / "gradient_x_input" / "beam" / "scores.h5") as f:
    hypothetical = f["shap/seq"][()]  # [N, 4, L]: centred over the bases for TF-MoDISco
    np.testing.assert_allclose(hypothetical.sum(1), 0, atol=1e-6)
    assert np.abs(hypothetical).max() > 0
  _assert_package_classes_untouched()


def test_without_beam_one_line_naming_the_extra(setup, tmp_path, monkeypatch, capsys):
  d, _ = setup
  monkeypatch.setitem(sys.modules, "apache_beam", None)  # `import apache_beam` -> ImportError
  code = main(["score-variants", *_model_args(d), "--vcf", str(d / "v.vcf"), "--fasta",
               str(d / "genome.fa"), "--output", str(tmp_path / "x.h5"), "--runner", "beam"])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and len(err) == 1
  assert "pip install tf-seqmodels[beam]" in err[0]
  assert not (tmp_path / "x.h5").exists()


_CHILD = r"""
import pickle, sys
for name in ("tf_seqmodels", "sonnet"):  # importing either now fails
  sys.modules[name] = None
from apache_beam.internal import pickler
(windows, handler, score, regions, copies, ism_handler, ism, gradients) = (
    pickler.loads(blob) for blob in pickle.load(open(sys.argv[1], "rb")))
windows.setup()
keyed = list(windows.process((0, ["chr1", 1002, "motif_snv", "G", "T", 1])))
model = handler.load_model()
results = list(handler.run_inference([w for _, w in keyed], model))
(_, _, _, _, _, _, scores), = score.process((keyed[0][0], results[0]))
print(repr(float(scores["total"]["diff"][0, 0])))
regions.setup()
(key, mutants), = copies.process(next(regions.process((0, "chr1", 1003 - 128, 1003 + 128))))
result, = ism_handler.run_inference([mutants], ism_handler.load_model())
(_, _, start, window, hypothetical), = ism.process((key, result))
print(repr(hypothetical[1000 - start + 1].tolist()))
gradients.setup()
(_, _, start, _, hypothetical), = gradients.process(next(regions.process((0, "chr1", 875, 1131))))
print(repr(hypothetical[1000 - start + 1].tolist()))
print(sorted(m for m in sys.modules if m.startswith(("tf_seqmodels", "sonnet")) and sys.modules[m]))
"""


def test_workers_need_no_tf_seqmodels_or_sonnet(setup, tmp_path):
  """The transforms, unpickled where neither tf_seqmodels nor sonnet can be imported, build
  windows from the FASTA, run the SavedModel and score a variant."""
  import tensorflow as tf
  from apache_beam.internal import pickler
  from tf_seqmodels.analysis.contributions import Target
  from tf_seqmodels.analysis.variants import VariantScoringConfig
  from tf_seqmodels.beam import worker
  d, _ = setup
  toy = MotifModel()
  module = tf.Module()
  module.toy = toy
  module.predict_on_batch = tf.function(lambda x: toy(x, is_training=False),
                                        input_signature=[tf.TensorSpec([None, 256, 4], tf.float32)])
  tf.saved_model.save(module, str(tmp_path / "saved"))
  config = VariantScoringConfig(shifts=(0, 1))
  transforms = [
      worker.VariantWindows(str(d / "genome.fa"), 256, config.shifts),
      worker.SavedModelHandler(str(tmp_path / "saved"), heads=["total"], reverse_complement=True),
      worker.ScoreVariant(config, {"total": ("diff",)}, {"total": None}, {"total": "tracks"}, {}),
      worker.GenomeWindows(str(d / "genome.fa")), worker.IsmCopies(),
      worker.SavedModelHandler(str(tmp_path / "saved"), heads=["total"], max_sequences=64),
      worker.IsmScores(Target(head="total"), None),
      worker.GradientScores(str(tmp_path / "saved"), Target(head="total"), None,
                            "gradient_x_input", batch_size=4, num_references=2, steps=2)]
  with worker.shipped_by_value(), open(tmp_path / "transforms.pkl", "wb") as f:
    pickle.dump([pickler.dumps(t) for t in transforms], f)
  _assert_package_classes_untouched()
  out = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path / "transforms.pkl")],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  assert out.returncode == 0, out.stderr[-3000:]
  value, ism, gradient, modules = out.stdout.strip().splitlines()[-4:]
  assert modules == "[]"
  # The SNV destroys the planted motif: 2 hits -> 0 on the forward strand, none on the
  # reverse complement; averaged over both strands, -1.
  assert float(value) == pytest.approx(-1.0)
  # ISM at the motif's G (forward strand only, as ISM runs): each other base breaks the motif
  # (delta -2), the G itself 0; centred over the 4 bases (mean -1.5): -0.5 and +1.5 at G.
  np.testing.assert_allclose(eval(ism), [-0.5, -0.5, 1.5, -0.5], atol=1e-6)
  # Its gradient there is the motif weight row (+1 at G, -1 elsewhere), centred: the same.
  np.testing.assert_allclose(eval(gradient), [-0.5, -0.5, 1.5, -0.5], atol=1e-6)


def test_failed_job_ends_in_the_workers_error_line():
  import apache_beam as beam
  from tf_seqmodels.beam import BeamRun
  from tf_seqmodels.beam.pipelines import PipelineError, pipeline
  from tf_seqmodels.data.encoding import SequenceError

  def fail(x):
    raise SequenceError(f"v{x}: REF allele outside the window 0-512")

  with pytest.raises(PipelineError, match=r"pipeline failed: v1: REF allele outside the "
                     r"window 0-512 \[while running 'Map\(fail\)'\]$"):
    with pipeline(BeamRun()) as p:
      _ = p | beam.Create([1]) | beam.Map(fail)
