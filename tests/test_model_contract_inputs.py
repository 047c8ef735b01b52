"""Model contract: `example_inputs` (valid seeded inputs per model), Chromoformer's static
input checks on every entry point, and Enformer's one-pass attention extraction."""

import numpy as np
import pytest
import tensorflow as tf

from tf_seqmodels.data.encoding import SequenceError
from tf_seqmodels.models import build_model, get_entry
from tf_seqmodels.models.base import SequenceModel
from tf_seqmodels.models.chromoformer import Chromoformer, ChromoformerConfig, input_shapes
from tf_seqmodels.models.enformer import EnformerConfig
from weight_perturbation import perturb_weights

TINY_CHROMOFORMER = ChromoformerConfig(
    num_marks=3, bin_sizes=(400, 100), window_size=800, max_pcres=3, channels=8,
    embedding_hidden=8, pairwise_layers=1, pairwise_hidden=8, regulation_layers=1,
    regulation_heads=2, regulation_attention_size=8, regulation_hidden=8, head_hidden=8)
TINY_ENFORMER = EnformerConfig(channels=24, num_transformer_layers=2, num_heads=2,
                               pooling_type="max", filters_divisible_by=4, sequence_length=256,
                               target_length=4, heads={"tracks": 3}, num_conv_tower_blocks=3,
                               key_size=8)


@pytest.fixture(scope="module")
def chromoformer():
  tf.random.set_seed(1)
  model = Chromoformer(TINY_CHROMOFORMER)
  model.build()
  return model


def test_dna_example_inputs_are_one_hot_in_the_models_encoding():
  enformer = build_model("enformer", TINY_ENFORMER)
  x = enformer.example_inputs(3, seed=4)
  assert x.shape == (3, 256, 4) and x.dtype == np.float32
  np.testing.assert_array_equal(x.sum(-1), 1.0)
  np.testing.assert_array_equal(x, enformer.example_inputs(3, seed=4))
  assert not np.array_equal(x, enformer.example_inputs(3, seed=5))
  # DREAM's own encoding: AGCT order plus flag channels (0: forward strand, not singleton).
  dream = build_model("dream_cnn", get_entry("dream_cnn").demo_config())
  y = dream.example_inputs(2, seed=4, length=dream.sequence_length)
  assert y.shape == (2, dream.sequence_length, dream.input_channels)
  np.testing.assert_array_equal(y[..., :4].sum(-1), 1.0)
  np.testing.assert_array_equal(y[..., 4:], 0.0)
  dna = np.asarray(y[..., [0, 2, 1, 3]])  # back to ACGT
  np.testing.assert_array_equal(dream.encode_dna(tf.constant(dna)).numpy(), y)

  class NoLength:  # a duck-typed model of unknown length gets the contract's default
    sequence_length = None
    input_spec = staticmethod(lambda batch_size=None: tf.TensorSpec([batch_size, None, 4]))

  with pytest.raises(SequenceError, match="unknown dimensions"):
    SequenceModel.example_inputs(NoLength(), 2)
  assert SequenceModel.example_inputs(NoLength(), 2, length=7).shape == (2, 7, 4)


def test_chromoformer_example_inputs_are_valid(chromoformer):
  x = chromoformer.example_inputs(5, seed=3)
  shapes = input_shapes(TINY_CHROMOFORMER)
  assert {k: v.shape[1:] for k, v in x.items()} == shapes
  assert all(v.shape[0] == 5 and v.dtype == np.float32 for v in x.values())
  chromoformer.check_inputs(x)
  present = x["pcre_present"]
  assert set(np.unique(present)) <= {0.0, 1.0}
  np.testing.assert_array_equal(present[0], 1.0)  # example 0 fills every slot, example 1 none
  np.testing.assert_array_equal(present[1], 0.0)
  counts = present.sum(1).astype(int)
  np.testing.assert_array_equal(present, np.arange(3)[None] < counts[:, None])  # slots in order
  for size in TINY_CHROMOFORMER.bin_sizes:
    np.testing.assert_array_equal(x[f"promoter_mask_{size}"], 1.0)  # the full window
    masks = x[f"pcre_mask_{size}"]
    assert set(np.unique(masks)) <= {0.0, 1.0}
    np.testing.assert_array_equal(masks.max(-1), present)  # a present pCRE has real bins
    assert np.all(x[f"pcre_{size}"][masks == 0] == 0) and np.all(x[f"promoter_{size}"] >= 0)
  freq = x["interaction_freq"]
  scores = freq[:, 0, 1:]
  assert np.all(scores[present == 1] > 1.5) and np.all(scores[present == 0] == 0)
  assert not freq[:, 1:].any() and not freq[:, 0, 0].any()  # row 0 only, as the reference
  np.testing.assert_array_equal(chromoformer.example_inputs(5, seed=3)["pcre_100"], x["pcre_100"])
  assert np.isfinite(chromoformer(x)["logits"].numpy()).all()


def test_chromoformer_call_and_embed_name_bad_inputs(chromoformer):
  x = chromoformer.example_inputs(2, seed=0)
  expected = chromoformer(x)["logits"].numpy()
  np.testing.assert_allclose(chromoformer.predict_on_batch(x)["logits"].numpy(), expected,
                             rtol=1e-5, atol=1e-6)
  missing = {k: v for k, v in x.items() if k != "pcre_present"}
  for entry in (chromoformer, chromoformer.embed, chromoformer.attention_weights):
    with pytest.raises(SequenceError, match=r"missing \['pcre_present'\]"):
      entry(missing)
  wrong = dict(x, pcre_mask_100=x["pcre_mask_100"][:, :, :5])
  with pytest.raises(SequenceError, match=r"'pcre_mask_100' must have shape \[batch, 3, 8\]"):
    chromoformer.embed(wrong)
  with pytest.raises(SequenceError, match="dict of inputs"):
    chromoformer(x["promoter_400"])


def test_chromoformer_checks_are_static_in_the_traced_step(chromoformer):
  spec = chromoformer.input_spec()
  graph = tf.function(lambda x: chromoformer(x)).get_concrete_function(spec).graph
  # The checks run in Python while tracing: the step has no runtime assertion ops.
  assert not [op.type for op in graph.get_operations() if op.type in ("Assert", "AssertV2")]


def _count_attention_passes(monkeypatch):
  from tf_seqmodels.blocks.attention import MultiheadAttention
  calls = []
  original = MultiheadAttention.__call__

  def counted(self, *args, **kwargs):
    calls.append(self.name)
    return original(self, *args, **kwargs)

  monkeypatch.setattr(MultiheadAttention, "__call__", counted)
  return calls


def test_enformer_attention_weights_take_one_pass_per_block(monkeypatch):
  enformer = build_model("enformer", TINY_ENFORMER)
  x = tf.constant(enformer.example_inputs(2, seed=1))
  enformer(x, is_training=False)  # creates the variables (an eager call is faster than build)
  perturb_weights(enformer, seed=2)
  # Reference: each block's attention recomputed by hand along the trunk.
  stream = enformer.trunk_stages(x, is_training=False)["conv_tower"]
  expected = []
  for block in enformer.transformer:
    expected.append(block.attention(block.attention_norm(stream), return_weights=True)[1])
    stream = block(stream, is_training=False)
  expected = tf.stack(expected, axis=1).numpy()
  calls = _count_attention_passes(monkeypatch)
  weights = enformer.attention_weights(x).numpy()
  assert len(calls) == 2  # one per block (it was two per block)
  assert weights.shape == (2, 2, 2, 16, 16)  # 256 bp / 16 bp per bin
  np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-7)
  assert weights.std(-1).mean() > 1e-3  # perturbed: attention is not uniform
  # The block's output with its weights is the plain output.
  block = enformer.transformer[1]
  out, w = block(stream, is_training=False, return_weights=True)
  np.testing.assert_allclose(out.numpy(), block(stream, is_training=False).numpy(), rtol=1e-6)
  assert w.shape == (2, 2, 16, 16)
