"""TF-Hub export: every model family at toy size, reloaded in a process without tf-seqmodels
or Sonnet; metadata, signatures, tarball and the built-in parity check."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tf_seqmodels.export.hub import HubExportConfig, ParityError, example_inputs, export_hub, read_metadata
from export_toys import ToyMultiConfig, ToyMultiInput
from tf_seqmodels.config import Config
from tf_seqmodels.models import EnformerConfig, build_model, get_entry
from tf_seqmodels.models.base import SequenceModel
from weight_perturbation import perturb_weights

TINY_ENFORMER = EnformerConfig(channels=48, num_transformer_layers=1, num_heads=2,
                               filters_divisible_by=8, heads={"human": 5, "mouse": 3},
                               sequence_length=1024, target_length=4)


CLEAN_LOADER = textwrap.dedent("""
    import importlib.abc, json, os, sys, threading, functools, http.server
    class Block(importlib.abc.MetaPathFinder):
      def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tf_seqmodels", "sonnet", "export"):
          raise ImportError(f"blocked import of {name}")
    sys.meta_path.insert(0, Block())
    import numpy as np, tensorflow as tf, tensorflow_hub as hub
    cases = json.load(open(sys.argv[1]))
    report = {}
    for name, case in cases.items():
      data = np.load(case["data"])
      inputs = {k[3:]: data[k] for k in data.files if k.startswith("in_")}
      x = inputs["x"] if list(inputs) == ["x"] else inputs
      m = hub.load(case["savedmodel"])
      out = {k: v.numpy() for k, v in m.model.predict_on_batch(x).items()}
      kwargs = inputs
      sig = {k: v.numpy() for k, v in m.signatures["serving_default"](**kwargs).items()}
      called = {k: v.numpy() for k, v in m(x, training=False).items()}
      r = {"diff": max(float(np.abs(out[k] - data["out_" + k]).max()) for k in out),
           "sig_diff": max(float(np.abs(sig[k] - out[k]).max()) for k in out),
           "call_diff": max(float(np.abs(called[k] - out[k]).max()) for k in out),
           "embed_shape": list(m.model.embed(x).shape),
           "metadata": json.loads(m.get_metadata().numpy()),
           "config_asset": open(m.config_asset.asset_path.numpy().decode()).read(),
           "n_trainable": len(m.trainable_variables)}
      if "long" in case:
        long_x = np.load(case["long"])
        r["long_diff"] = max(float(np.abs(v.numpy() - out[k]).max())
                             for k, v in m.model.predict_on_batch(long_x).items())
        r["dynamic_batch"] = list(m.model.predict_on_batch(x[:1])["human"].shape)
        r["dynamic_length"] = list(m.model.predict_on_batch(x[:1, 128:-128])["human"].shape)
      if "tarball" in case:
        # hub.load of a compressed module over HTTP (the TF-Hub / Kaggle download protocol).
        folder = os.path.dirname(case["tarball"])
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=folder)
        handler.log_message = lambda *a: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/{os.path.basename(case['tarball'])}"
        remote = hub.load(url)
        r["tarball_diff"] = max(float(np.abs(v.numpy() - out[k]).max())
                                for k, v in remote.model.predict_on_batch(x).items())
        server.shutdown()
        layer = hub.KerasLayer(case["savedmodel"], trainable=True)
        keras_out = layer(x)
        r["keras_diff"] = max(float(np.abs(keras_out[k].numpy() - out[k]).max()) for k in out)
        r["keras_trainable"] = len(layer.trainable_weights)
        with tf.GradientTape() as tape:  # fine-tuning: gradients reach the restored weights
          loss = tf.reduce_sum(layer(x, training=True)["expression"])
        grads = tape.gradient(loss, layer.trainable_weights)
        r["keras_gradients"] = sum(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0
                                   for g in grads)
      if "tfsm" in case:
        # Keras 3: the serving_default endpoint of a (multi-input) model as a layer.
        import keras
        layer = keras.layers.TFSMLayer(case["savedmodel"], call_endpoint="serving_default")
        r["tfsm_diff"] = max(float(np.abs(np.asarray(v) - out[k]).max())
                             for k, v in layer(inputs).items())
      report[name] = r
    print("REPORT" + json.dumps(report))
""")


def _save_case(tmp_path, name, model, result, inputs):
  live = model(tf.nest.map_structure(tf.constant, inputs), is_training=False)
  arrays = {f"out_{k}": v.numpy() for k, v in live.items()}
  named = inputs if isinstance(inputs, dict) else {"x": inputs}
  arrays.update({f"in_{k}": v for k, v in named.items()})
  path = tmp_path / f"{name}.npz"
  np.savez(path, **arrays)
  return {"savedmodel": result.savedmodel, "data": str(path)}


def results_long_checked(directory):
  report = json.loads((directory / "export_report.json").read_text())
  return report["parity"]["published_length"]["human"] < 1e-5


@pytest.fixture(scope="module")
def families(tmp_path_factory):
  """Every model family at toy size, exported once: (models, {name: HubExport}, folder)."""
  tmp_path = tmp_path_factory.mktemp("families")
  models = {
      "enformer": build_model("enformer", TINY_ENFORMER),
      "dream_cnn": build_model("dream_cnn", get_entry("dream_cnn").demo_config()),
      "chrombpnet": build_model("chrombpnet", get_entry("chrombpnet").demo_config()),
      "chromoformer": build_model("chromoformer", get_entry("chromoformer").demo_config()),
      "toy_multi": ToyMultiInput(),
  }
  # A fresh Enformer's attention is an identity (zero-initialised output projection): move
  # its weights so that parity exercises attention and relative positions.
  enformer = models["enformer"]
  enformer.ensure_built()
  perturb_weights(enformer, seed=0)
  attention = enformer.attention_weights(tf.constant(example_inputs(enformer, 1))).numpy()
  assert attention.std(-1).mean() > 1e-3
  assert np.abs(enformer.transformer[0].attention.embedding_layer.w.numpy()).max() > 0
  results = {}
  for name, model in models.items():
    config = HubExportConfig(model_name=name, training_data="toy weights (untrained)",
                             track_names={"human": [f"t{i}" for i in range(5)]}
                             if name == "enformer" else {},
                             tarball=name == "dream_cnn")
    results[name] = export_hub(model, str(tmp_path / name), config)
  return models, results, tmp_path


def test_export_every_family_and_reload_without_the_package(families):
  models, results, tmp_path = families
  cases = {}
  for name, model in models.items():
    result = results[name]
    # Parity in-process: heads, embedding, the signature, Enformer's published length.
    assert max(result.parity["savedmodel"].values()) < 1e-5
    assert set(result.parity["savedmodel"]) == set(model.head_names)
    # Every entry point of the reloaded object was compared: __call__ and, for DNA models,
    # one-hot ACGT through predict_dna_on_batch.
    assert set(result.parity["call"]) == set(model.head_names)
    assert ("predict_dna_on_batch" in result.parity) == model.takes_dna_sequence, name
    inputs = example_inputs(model, 3, seed=7)
    cases[name] = _save_case(tmp_path, name, model, result, inputs)
    meta = read_metadata(result.savedmodel)
    assert meta["model_name"] == name and meta["heads"] == list(model.head_names)
    assert json.loads((tmp_path / name / "export_report.json").read_text())["parity"]
    assert (tmp_path / name / "model-instance-metadata.json").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]
  assert results_long_checked(tmp_path / "enformer")
  # Enformer also takes the published 2x length, centre-cropped (as the TF-Hub Enformer).
  x = np.load(cases["enformer"]["data"])["in_x"]
  rng = np.random.default_rng(3)
  flank = lambda n: np.eye(4, dtype=np.float32)[rng.integers(0, 4, (3, n))]  # noqa: E731
  long_path = tmp_path / "long.npy"
  np.save(long_path, np.concatenate([flank(512), x, flank(512)], axis=1))
  cases["enformer"]["long"] = str(long_path)
  cases["dream_cnn"]["tarball"] = str(tmp_path / "dream_cnn" / "model.tar.gz")
  for name in ("chromoformer", "toy_multi"):
    cases[name]["tfsm"] = True
  (tmp_path / "cases.json").write_text(json.dumps(cases))
  script = tmp_path / "clean_load.py"
  script.write_text(CLEAN_LOADER)
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TFHUB_CACHE_DIR": str(tmp_path / "hub_cache"),
         "PYTHONPATH": ""}
  done = subprocess.run([sys.executable, str(script), str(tmp_path / "cases.json")],
                        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stderr[-3000:]
  report = json.loads(done.stdout.split("REPORT", 1)[1])
  for name, r in report.items():
    assert r["diff"] < 1e-5 and r["sig_diff"] < 1e-6 and r["call_diff"] < 1e-6, (name, r)
    assert r["metadata"]["model_name"] == name
    assert r["metadata"]["config"] == models[name].config.to_dict()
    assert json.loads(r["config_asset"])["config"] == models[name].config.to_dict()
    assert r["n_trainable"] == len(models[name].trainable_variables)
  assert report["enformer"]["embed_shape"] == [3, 4, 96]
  assert report["enformer"]["long_diff"] < 1e-5
  assert report["enformer"]["dynamic_batch"] == [1, 4, 5]
  assert report["enformer"]["dynamic_length"] == [1, 4, 5]  # 768 bp in
  assert report["chrombpnet"]["metadata"]["input_spec"]["shape"] == [None, 512, 4]  # fixed
  assert report["enformer"]["metadata"]["track_names"]["human"][4] == "t4"
  assert report["toy_multi"]["metadata"]["input_spec"]["mask"]["shape"] == [None, 6]
  assert "interaction_freq" in report["chromoformer"]["metadata"]["input_spec"]
  assert report["chromoformer"]["tfsm_diff"] < 1e-5 and report["toy_multi"]["tfsm_diff"] < 1e-5
  assert report["dream_cnn"]["tarball_diff"] < 1e-5
  assert report["dream_cnn"]["keras_diff"] < 1e-5
  assert report["dream_cnn"]["keras_trainable"] == len(models["dream_cnn"].trainable_variables)
  assert report["dream_cnn"]["keras_gradients"] >= 0.9 * report["dream_cnn"]["keras_trainable"]


def _dna(length, channels=4, batch=1, seed=0):
  rng = np.random.default_rng(seed)
  return np.eye(4, channels, dtype=np.float32)[rng.integers(0, 4, (batch, length))]


def _refused(function, *args, **kwargs):
  """The in-graph error message of a call that must fail."""
  constant = lambda v: tf.nest.map_structure(tf.constant, v)  # noqa: E731
  with pytest.raises(tf.errors.InvalidArgumentError) as info:
    function(*map(constant, args), **{k: constant(v) for k, v in kwargs.items()})
  return info.value.message


def test_signatures_refuse_bad_shapes_in_the_graph(families):
  models, results, _ = families
  chrombpnet = tf.saved_model.load(results["chrombpnet"].savedmodel)
  serve = chrombpnet.signatures["serving_default"]
  # Signatures run without checking their declared [None, 512, 4]: 128 bp used to give an
  # empty profile and 1,024 bp a wrong one, without an error.
  for length in (128, 1024):
    assert (f"chrombpnet: input x must be [batch, length, 4] with length 512; its length:] "
            f"[{length}]") in _refused(serve, x=_dna(length))
  assert "with channels (A, C, G, T); its channels:] [5]" in _refused(serve, x=_dna(512, 5))
  assert "one-hot DNA input dna must be" in _refused(chrombpnet.signatures["predict_dna"], dna=_dna(1024))
  assert read_metadata(results["chrombpnet"].savedmodel)["accepted_lengths"] == {"exactly": [512]}

  # Enformer keeps its dynamic length: multiples of 128 bp with at least target_length bins.
  enformer = tf.saved_model.load(results["enformer"].savedmodel)
  assert enformer.signatures["serving_default"](x=_dna(768))["human"].shape == [1, 4, 5]
  assert enformer.model.predict_on_batch(_dna(1024))["mouse"].shape == [1, 4, 3]
  for length in (700, 384):
    assert (f"with length a multiple of 128 and at least 512; its length:] [{length}]"
            in _refused(enformer.model.predict_on_batch, _dna(length)))
  assert read_metadata(results["enformer"].savedmodel)["accepted_lengths"] == {
      "exactly": [], "at_least": 512, "multiple_of": 128}

  # DREAM's 6-channel encoding given plain ACGT.
  dream = tf.saved_model.load(results["dream_cnn"].savedmodel)
  assert "channels (A, G, C, T, is_reverse, channel_5); its channels:] [4]" in _refused(
      dream.signatures["serving_default"], x=_dna(150))

  # Multi-input: every input's shape, and one batch size.
  chromoformer = tf.saved_model.load(results["chromoformer"].savedmodel)
  inputs = example_inputs(models["chromoformer"], 2)
  bad = {**inputs, "pcre_present": np.zeros([2, 3], np.float32)}
  assert "input pcre_present must be [batch, 2]; its shape:] [2 3]" in _refused(
      chromoformer.signatures["serving_default"], **bad)
  uneven = {**inputs, "interaction_freq": inputs["interaction_freq"][:1]}
  assert "inputs disagree on the batch size" in _refused(chromoformer.model.predict_on_batch,
                                                          uneven)
  # Every export tried such inputs itself and recorded the errors.
  for name, result in results.items():
    assert result.refusals and all("assertion failed" in m for m in result.refusals.values()), name


def test_dream_takes_one_hot_acgt_and_names_its_channels(families):
  models, results, _ = families
  model = models["dream_cnn"]
  meta = read_metadata(results["dream_cnn"].savedmodel)
  assert meta["input_channels"] == {"x": ["A", "G", "C", "T", "is_reverse", "channel_5"],
                                    "dna": ["A", "C", "G", "T"]}
  assert meta["signatures"] == {"serving_default": ["x"], "predict_dna": ["dna"],
                                "predict_reverse_dna": ["dna"]}
  assert meta["citation"] == "https://doi.org/10.1038/s41587-024-02414-w"
  loaded = tf.saved_model.load(results["dream_cnn"].savedmodel)
  acgt = _dna(150, batch=3, seed=4)
  for signature, is_reverse in (("predict_dna", False), ("predict_reverse_dna", True)):
    want = model(model.encode_dna(tf.constant(acgt), is_reverse=is_reverse), is_training=False)
    got = loaded.signatures[signature](dna=tf.constant(acgt))
    for head in model.head_names:
      np.testing.assert_allclose(got[head].numpy(), want[head].numpy(), atol=1e-5, rtol=1e-5)
  # ACGT padded with two zero channels has the right shape but the wrong channel order (the
  # model reads A, G, C, T): the reason for the predict_dna signature.
  padded = np.concatenate([acgt, np.zeros([3, 150, 2], np.float32)], -1)
  wrong = loaded.signatures["serving_default"](x=tf.constant(padded))["expression"].numpy()
  right = loaded.signatures["predict_dna"](dna=tf.constant(acgt))["expression"].numpy()
  assert np.abs(wrong - right).max() > 1e-3


def test_parity_failure_is_loud_and_leaves_nothing(tmp_path):
  destination = tmp_path / "noisy"
  with pytest.raises(ParityError, match="disagree"):
    export_hub(ToyMultiInput(ToyMultiConfig(noisy=True)), str(destination))
  assert not destination.exists()
  assert os.listdir(tmp_path) == []


@dataclasses.dataclass(frozen=True)
class DriftConfig(Config):
  sequence_length: int = 16


class DriftingEncoding(SequenceModel):
  """A DNA model whose encode_dna changes with every call: the export traces one encoding,
  the live model uses another, and only the predict_dna_on_batch comparison can see it."""

  def __init__(self):
    super().__init__(DriftConfig(), name="drifting")
    self.w = tf.Variable(tf.reshape(tf.range(8, dtype=tf.float32), [4, 2]), name="w")
    self.calls = 0

  input_channels = 4
  head_names = ("out",)

  def encode_dna(self, one_hot, is_reverse=False):
    self.calls += 1
    return one_hot * float(self.calls)

  def embed(self, inputs, is_training):
    return tf.einsum("blc,ch->blh", inputs, self.w)

  def __call__(self, inputs, is_training):
    return {"out": tf.reduce_sum(self.embed(inputs, is_training), axis=1)}


def test_parity_checks_the_dna_entry_point(tmp_path):
  with pytest.raises(ParityError, match="predict_dna_on_batch"):
    export_hub(DriftingEncoding(), str(tmp_path / "drift"), HubExportConfig(tarball=False))
  assert os.listdir(tmp_path) == []


def test_existing_destination_needs_overwrite(tmp_path):
  model = ToyMultiInput()
  first = export_hub(model, str(tmp_path / "m"), HubExportConfig(tarball=False))
  with pytest.raises(FileExistsError, match="already exists"):
    export_hub(model, str(tmp_path / "m"))
  again = export_hub(model, str(tmp_path / "m"), HubExportConfig(overwrite=True, tarball=False))
  assert again.savedmodel == first.savedmodel and os.path.exists(again.savedmodel)
  assert sorted(os.listdir(tmp_path)) == ["m"]


def test_cli_export_hub(tmp_path, capsys):
  from tf_seqmodels import cli
  out = tmp_path / "cli_export"
  assert cli.main(["export", "hub", "--model", "bpnet", "--demo", "--output", str(out),
                   "--no-tarball", "--training-data", "nothing"]) == 0
  assert ("parity: savedmodel, embedding, serving_default, call, predict_dna_on_batch"
          in capsys.readouterr().out)
  assert read_metadata(str(out / "savedmodel"))["training_data"] == "nothing"
  assert not (out / "model.tar.gz").exists()
  assert cli.main(["export", "hub", "--model", "bpnet", "--demo", "--output", str(out)]) == 2
  assert "already exists" in capsys.readouterr().err
