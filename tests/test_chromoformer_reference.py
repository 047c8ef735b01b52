"""Chromoformer against the official PyTorch code (../shared/fixtures/chromoformer).

The fixture holds 8 real H1 genes in the reference's layout (data/meta.csv + data/npy/), the
batch its Dataset + collate builds from them (inputs.npz), perturbed classifier / regressor
weights (state dicts as .npz) and every output and intermediate (outputs.npz). Tolerance, as
the fixture's README: per array max|ours - reference| <= 1e-4 * max|reference|; masks and
Hi-C scores exactly; binned features within 1e-6.
"""

import json

import numpy as np
import pytest

from tf_seqmodels.convert import import_reference_weights
from tf_seqmodels.convert.chromoformer_state_dict import (chromoformer_parameter_map,
                                                          export_chromoformer_state_dict,
                                                          load_chromoformer_state_dict)
from tf_seqmodels.convert.torch_state_dict import StateDictError, UnusedParameter
from tf_seqmodels.data.chromoformer import (ChromoformerDataConfig, ChromoformerDataError,
                                            ReferenceNpySource, build_examples,
                                            from_reference_batch, predict_reference_layout,
                                            read_reference_metadata, to_reference_batch)
from tf_seqmodels.models.base import num_trainable_parameters
from tf_seqmodels.models.chromoformer import Chromoformer, ChromoformerConfig

TOLERANCE = 1e-4
CONFIG = ChromoformerConfig()
DATA_CONFIG = ChromoformerDataConfig.from_model_config(CONFIG)


def scaled_error(ours, reference) -> float:
  reference = np.asarray(reference, np.float64)
  ours = np.asarray(ours, np.float64).reshape(reference.shape)
  return float(np.abs(ours - reference).max() / np.abs(reference).max())


@pytest.fixture(scope="module")
def fixture_dir():
  from conftest import shared_path
  return shared_path("fixtures", "chromoformer")


@pytest.fixture(scope="module")
def reference(fixture_dir):
  inputs = dict(np.load(fixture_dir / "inputs.npz"))
  outputs = dict(np.load(fixture_dir / "outputs.npz"))
  meta = json.loads((fixture_dir / "meta.json").read_text())
  return inputs, outputs, meta


@pytest.fixture(scope="module")
def regressor_state(fixture_dir):
  """The regressor's full state dict: the classifier's trunk + the regressor's head (as the
  fixture's README prescribes: both trunks are bitwise identical)."""
  with np.load(fixture_dir / "weights_classifier.npz") as trunk, \
      np.load(fixture_dir / "weights_regressor.npz") as head:
    state = {k: trunk[k] for k in trunk.files if not k.startswith("fc_head.")}
    state.update({k: head[k] for k in head.files})
  return state


@pytest.fixture(scope="module")
def classifier(fixture_dir):
  model = Chromoformer(CONFIG)
  report = import_reference_weights(model, str(fixture_dir / "weights_classifier.npz"))
  return model, report


@pytest.fixture(scope="module")
def regressor(regressor_state):
  model = Chromoformer(CONFIG.replace(mode="regression"))
  load_chromoformer_state_dict(model, regressor_state)
  return model


@pytest.mark.slow  # the full-size model (5.3 M parameters)
def test_import_loads_every_used_parameter_and_reports_the_unused(classifier, reference,
                                                                  fixture_dir):
  model, report = classifier
  _, _, meta = reference
  parameters = meta["parameters"]
  # The reference's unused parameters (grad None after backward) are exactly the ones
  # accepted without a variable; everything else is loaded.
  assert set(report.unused) == set(parameters["unused"])
  assert not report.missing and not report.unexpected
  with np.load(fixture_dir / "weights_classifier.npz") as state:
    assert len(report.loaded) + len(report.unused) == len(state.files)
    assert sum(state[k].size for k in report.loaded) == parameters["classifier_used_in_forward"]
    assert sum(state[k].size for k in report.unused) == parameters["unused_total"]
  assert num_trainable_parameters(model) == parameters["classifier_used_in_forward"] == 5341586
  assert "accepted unused reference parameters (36)" in report.summary()


def check_activations(model, inputs, outputs, rows, prefix):
  """Every trunk array of outputs.npz (rows `rows`) and the head of `prefix` (classifier /
  regressor) against model.activations(inputs)."""
  ours = {k: v.numpy() for k, v in model.activations(inputs).items()}
  errors = {}
  for key, value in outputs.items():
    if key.startswith(("classifier/", "regressor/")):
      continue
    errors[key] = scaled_error(ours[key], value[rows])
  if prefix == "classifier":
    logits = ours["logits"].astype(np.float64)
    errors["classifier/logits"] = scaled_error(logits, outputs["classifier/logits"][rows])
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    errors["classifier/probs_softmax"] = scaled_error(
        softmax, outputs["classifier/probs_softmax"][rows])
    errors["classifier/prob_sigmoid_demo"] = scaled_error(
        1 / (1 + np.exp(-logits[:, 1])), outputs["classifier/prob_sigmoid_demo"][rows])
  else:
    errors["regressor/output"] = scaled_error(ours["expression"][:, None],
                                              outputs["regressor/output"][rows])
  errors[f"{prefix}/head_hidden"] = scaled_error(ours["head_hidden"],
                                                 outputs[f"{prefix}/head_hidden"][rows])
  return errors


@pytest.mark.slow  # the full-size model (5.3 M parameters)
def test_classifier_reproduces_every_reference_array_batch_of_8(classifier, reference):
  model, _ = classifier
  inputs, outputs, _ = reference
  errors = check_activations(model, from_reference_batch(inputs, DATA_CONFIG), outputs,
                             slice(None), "classifier")
  # Every array of outputs.npz was compared (the regressor's in the regressor test).
  assert set(errors) == {k for k in outputs if not k.startswith("regressor/")}
  worst = max(errors, key=errors.get)
  assert errors[worst] < TOLERANCE, (worst, errors[worst])
  # Hi-C gamma in all six regulation layers is exercised: the scores are large (12.3).
  assert inputs["interaction_freq"].max() > 10


@pytest.mark.slow  # the full-size model (5.3 M parameters)
def test_classifier_and_regressor_batch_of_1(classifier, regressor, reference):
  model, _ = classifier
  inputs, outputs, _ = reference
  ours = from_reference_batch(inputs, DATA_CONFIG)
  # Genes 0 (no pCRE, - strand), 3 (1 pCRE, -), 7 (8 pCREs, one shorter than a 2-kb bin).
  for row in (0, 3, 7):
    single = {k: v[row:row + 1] for k, v in ours.items()}
    for model_, prefix in ((model, "classifier"), (regressor, "regressor")):
      errors = check_activations(model_, single, outputs, slice(row, row + 1), prefix)
      worst = max(errors, key=errors.get)
      assert errors[worst] < TOLERANCE, (row, prefix, worst, errors[worst])


@pytest.mark.slow  # the full-size model (5.3 M parameters)
def test_regressor_reproduces_the_reference_batch_of_8(regressor, reference):
  inputs, outputs, _ = reference
  errors = check_activations(regressor, from_reference_batch(inputs, DATA_CONFIG), outputs,
                             slice(None), "regressor")
  assert errors["regressor/output"] < TOLERANCE and errors["regressor/head_hidden"] < TOLERANCE
  assert max(errors.values()) < TOLERANCE


@pytest.mark.slow  # the full-size model (5.3 M parameters)
def test_legacy_key_names_load_the_same_weights(classifier, reference, fixture_dir):
  model, _ = classifier
  inputs, outputs, _ = reference
  renames = (("embed.", "embed"), ("pairwise_interaction.", "pw_int"), ("regulation.", "reg"))
  with np.load(fixture_dir / "weights_classifier.npz") as state:
    legacy = {}
    for key in state.files:
      for modern, old in renames:
        if key.startswith(modern):
          size, rest = key[len(modern):].split(".", 1)
          key_new = f"{old}{size}.{rest}"
          break
      else:
        key_new = key
      legacy[key_new] = state[key]
  assert "embed2000.lin_proj.weight" in legacy and "pw_int100.ln.bias" in legacy
  assert set(chromoformer_parameter_map(model, legacy=True)) == set(legacy)
  before = [v.numpy() for v in model.trainable_variables]
  for v in model.trainable_variables:
    v.assign(np.zeros(v.shape, v.dtype.as_numpy_dtype))
  report = load_chromoformer_state_dict(model, legacy)
  assert len(report.unused) == 36 and report.unused[0].startswith("embed2000.")
  for v, value in zip(model.trainable_variables, before):
    np.testing.assert_array_equal(v.numpy(), value)
  logits = model(from_reference_batch(inputs, DATA_CONFIG))["logits"]  # eager: no tracing
  assert scaled_error(logits, outputs["classifier/logits"]) < TOLERANCE


@pytest.mark.slow  # the full-size model (5.3 M parameters)
def test_import_errors_list_missing_misshaped_and_unknown_keys(classifier, fixture_dir,
                                                               regressor_state):
  model, _ = classifier
  with np.load(fixture_dir / "weights_classifier.npz") as state:
    good = {k: state[k] for k in state.files}
  before = model.head_output.w.numpy()
  broken = dict(good)
  del broken["regulation.100.transformer.layers.5.self_att.gamma_f"]
  broken["embed.500.lin_proj.weight"] = np.zeros((128, 6), np.float32)
  broken["pairwise_interaction.2000.ln.weight"] = np.zeros(7, np.float32)  # unused, mis-shaped
  broken["regulation.100.extra.weight"] = np.zeros(3, np.float32)
  with pytest.raises(StateDictError) as error:
    load_chromoformer_state_dict(model, broken)
  message = str(error.value)
  assert "missing keys (1): regulation.100.transformer.layers.5.self_att.gamma_f" in message
  assert "unexpected keys (1): regulation.100.extra.weight" in message
  assert "embed.500.lin_proj.weight: PyTorch shape (128, 6)" in message
  assert "pairwise_interaction.2000.ln.weight: PyTorch shape (7,), expected (128,)" in message
  # A regressor's state dict in a classification model: named as such.
  with pytest.raises(StateDictError, match="ChromoformerRegressor state dict.*regression"):
    load_chromoformer_state_dict(model, regressor_state)
  # Nothing was assigned by the failed loads.
  np.testing.assert_array_equal(model.head_output.w.numpy(), before)
  # The unused reference parameters may be absent (nothing of them is stored).
  unused = {n for n, e in chromoformer_parameter_map(model).items()
            if isinstance(e, UnusedParameter)}
  used_only = {k: v for k, v in good.items() if k not in unused}
  assert len(used_only) == len(good) - 36
  assert load_chromoformer_state_dict(model, used_only).unused == ()


def test_reference_layout_reader_builds_the_reference_batch(fixture_dir, reference):
  inputs, _, _ = reference
  genes, pcres = read_reference_metadata(fixture_dir / "data" / "meta.csv", DATA_CONFIG)
  data = build_examples(genes, pcres, ReferenceNpySource(fixture_dir / "data" / "npy"),
                        DATA_CONFIG, progress=False)
  assert data.gene_ids == inputs["gene_id"].tolist()
  ours = to_reference_batch(data.inputs, DATA_CONFIG)
  assert set(ours) == {k for k in inputs if k not in ("label", "label_regression", "gene_id")}
  for key, value in ours.items():
    if value.dtype == bool or key == "interaction_freq":
      assert value.dtype == inputs[key].dtype, key
      np.testing.assert_array_equal(value, inputs[key], err_msg=key)
    else:
      np.testing.assert_allclose(value, inputs[key], rtol=0, atol=1e-6, err_msg=key)
  np.testing.assert_array_equal(data.targets["label"], inputs["label"])
  np.testing.assert_allclose(data.targets["expression"], inputs["label_regression"], rtol=1e-6)
  # The reference batch converts back to exactly our inputs' masks.
  back = from_reference_batch(inputs, DATA_CONFIG)
  for key in back:
    if "mask" in key or key in ("pcre_present", "interaction_freq"):
      np.testing.assert_array_equal(back[key], data.inputs[key], err_msg=key)


@pytest.mark.slow  # the full-size model (5.3 M parameters)
def test_predict_reference_layout_end_to_end(classifier, regressor, fixture_dir, reference):
  model, _ = classifier
  _, outputs, _ = reference
  rows = predict_reference_layout(model, fixture_dir / "data", batch_size=4, progress=False)
  assert [r["gene_id"] for r in rows] == [
      "ENSG00000111863", "ENSG00000113141", "ENSG00000171711", "ENSG00000043514",
      "ENSG00000134644", "ENSG00000146090", "ENSG00000143499", "ENSG00000078269"]
  probability = np.array([r["probability"] for r in rows])
  assert scaled_error(probability, outputs["classifier/prob_sigmoid_demo"]) < TOLERANCE
  softmax = np.array([r["probability_softmax"] for r in rows])
  assert scaled_error(softmax, outputs["classifier/probs_softmax"][:, 1]) < TOLERANCE
  logits = np.array([[r["logit_0"], r["logit_1"]] for r in rows])
  assert scaled_error(logits, outputs["classifier/logits"]) < TOLERANCE
  rows = predict_reference_layout(regressor, fixture_dir / "data" / "meta.csv",
                                  fixture_dir / "data" / "npy", batch_size=8, progress=False)
  assert set(rows[0]) == {"gene_id", "expression"}
  expression = np.array([r["expression"] for r in rows])
  assert scaled_error(expression, outputs["regressor/output"][:, 0]) < TOLERANCE


def test_reference_metadata_keeps_file_order_and_names_bad_rows(tmp_path):
  header = "gene_id,expression,eid,label,chrom,start,end,strand,split,neighbors,scores\n"
  (tmp_path / "meta.csv").write_text(
      header + "g1,4.5,E003,1,chr2,25000,25001,-,3,chr2:30000-30600;chr2:1000-1500,1.2;3.5\n")
  _, pcres = read_reference_metadata(tmp_path / "meta.csv", DATA_CONFIG)
  # The reference fills slots in the listed order, whatever the scores (none is dropped).
  assert [(p.start, p.score) for p in pcres["g1"]] == [(30000, 1.2), (1000, 3.5)]
  cases = {
      "chr2:30000-30600;chr2:1000-1500,1.2": "2 neighbors but 1 scores",
      "chr2:30000-30600,high": "score 'high' is not a number",
      "chr2:30000-80600,2.0": "spans 50600 bp",
      "chr2-30000,2.0": "is not chrom:start-end",
      ";".join(f"chr2:{i}-{i + 10}" for i in range(9)) + "," + ";".join(["2"] * 9):
          "9 neighbors, more than max_pcres 8",
  }
  for cells, message in cases.items():
    (tmp_path / "bad.csv").write_text(header + f"g1,4.5,E003,1,chr2,25000,25001,-,3,{cells}\n")
    with pytest.raises(ChromoformerDataError, match=rf"bad.csv: row 1 \(gene g1\): .*{message}"):
      read_reference_metadata(tmp_path / "bad.csv", DATA_CONFIG)


def test_from_reference_batch_rejects_masks_it_cannot_represent(reference):
  inputs, _, _ = reference
  odd = dict(inputs)
  mask = inputs["pcre_pad_masks/500"].copy()
  mask[6, 2, 0, 40, 3] = ~mask[6, 2, 0, 40, 3]  # one promoter row differs from the others
  odd["pcre_pad_masks/500"] = mask
  with pytest.raises(ChromoformerDataError, match="pcre_pad_masks/500: example 6"):
    from_reference_batch(odd, DATA_CONFIG)
  with pytest.raises(ChromoformerDataError, match="missing.*interaction_freq"):
    from_reference_batch({k: v for k, v in inputs.items() if k != "interaction_freq"},
                         DATA_CONFIG)


def test_imported_weights_round_trip_and_export_to_tf_hub(tmp_path):
  """Reference-format weights (legacy names) -> a fresh model -> TF-Hub with the parity
  check. A small model keeps the export fast; the full-size imported model exports the same
  way (its export is minutes of tracing on a CPU)."""
  from tf_seqmodels.export.hub import HubExportConfig, export_hub
  small = ChromoformerConfig(num_marks=3, bin_sizes=(400, 100), window_size=800, max_pcres=2,
                             channels=16, embedding_hidden=16, pairwise_layers=1,
                             pairwise_hidden=16, regulation_layers=1, regulation_heads=2,
                             regulation_attention_size=16, regulation_hidden=16, head_hidden=16)
  source = Chromoformer(small)
  source.ensure_built()
  state = export_chromoformer_state_dict(source, legacy=True)
  assert "pw_int400.ln.weight" in state and "reg100.transformer.layers.0.self_att.gamma_f" in state
  np.savez(tmp_path / "weights.npz", **state)
  model = Chromoformer(small)
  report = import_reference_weights(model, str(tmp_path / "weights.npz"))
  # Per resolution: embedding gamma_f + w_bias, pairwise ln (2) + gamma_f, regulation w_bias.
  assert len(report.unused) == 2 * (2 + 3 + 1)
  inputs = model.example_inputs(3, seed=4)
  np.testing.assert_array_equal(model.predict_on_batch(inputs)["logits"],
                                source.predict_on_batch(inputs)["logits"])
  result = export_hub(model, str(tmp_path / "hub"),
                      HubExportConfig(model_name="chromoformer", tarball=False), inputs=inputs)
  assert max(result.parity["savedmodel"].values()) < 1e-5
  assert max(result.parity["call"].values()) < 1e-5
