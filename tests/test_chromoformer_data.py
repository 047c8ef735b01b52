"""Chromoformer inputs: binning, strand flips, pCRE selection, bigWig / reference readers."""

import math

import numpy as np
import pytest

from tf_seqmodels.data.chromoformer import (BigWigSource, ChromoformerBuilderOptions,
                                            ChromoformerDataConfig,
                                            ChromoformerDataError, Gene, Pcre, ReferenceNpySource,
                                            bin_region, build_examples, builder_examples,
                                            example_arrays,
                                            read_gene_table, read_interactions,
                                            read_reference_metadata, select_pcres,
                                            synthetic_examples)
from tf_seqmodels.models.chromoformer import ChromoformerConfig, input_shapes

CONFIG = ChromoformerDataConfig(bin_sizes=(1000, 250), window_size=2000, max_pcres=2,
                                num_marks=2)


def test_bin_region_means_logs_and_centre_pads():
  binned, valid = bin_region(np.array([[0.0, 1, 2, 3, 4]]), 2, 4)
  # bins (0, 1), (2, 3), (4,) -> means .5, 2.5, 4; ceil((4 - 3) / 2) = 1 padding bin on the left
  np.testing.assert_allclose(binned[:, 0], [0, math.log(1.5), math.log(3.5), math.log(5)],
                             rtol=1e-6)
  np.testing.assert_array_equal(valid, [0, 1, 1, 1])
  with pytest.raises(ChromoformerDataError, match="more than"):
    bin_region(np.zeros((1, 9)), 2, 4)


def test_example_arrays_flip_minus_strand_and_fill_slots():
  ramp = np.tile(np.arange(2000, dtype=np.float32), (2, 1))
  pcre = np.ones((2, 600), np.float32)
  plus = example_arrays(ramp, "+", [pcre], [3.0], CONFIG)
  minus = example_arrays(ramp, "-", [pcre], [3.0], CONFIG)
  np.testing.assert_allclose(minus["promoter_250"], plus["promoter_250"][::-1])
  assert plus["promoter_1000"][0, 0] == pytest.approx(math.log(499.5 + 1))
  np.testing.assert_array_equal(plus["pcre_present"], [1, 0])
  np.testing.assert_array_equal(plus["pcre_mask_250"][0], [0, 0, 0, 1, 1, 1, 0, 0])
  assert not plus["pcre_mask_250"][1].any() and not plus["pcre_250"][1].any()
  np.testing.assert_array_equal(plus["interaction_freq"], [[0, 3, 0], [0, 0, 0], [0, 0, 0]])
  model_shapes = input_shapes(ChromoformerConfig(num_marks=2, bin_sizes=(1000, 250),
                                                 window_size=2000, max_pcres=2))
  assert {k: v.shape for k, v in plus.items()} == model_shapes


def test_select_pcres_filters_sorts_and_keeps_top_k():
  found = [Pcre("chr1", 0, 100, 1.5), Pcre("chr1", 0, 5000, 9.0), Pcre("chr1", 10, 20, 2.0),
           Pcre("chr1", 30, 40, 4.0), Pcre("chr1", 50, 60, 3.0), Pcre("chr1", 30, 40, 4.0)]
  chosen = select_pcres(found, CONFIG)
  # score 1.5 is not > 1.5, 5 kb exceeds the window, duplicates collapse, top 2 by score.
  assert [(p.start, p.score) for p in chosen] == [(30, 4.0), (50, 3.0)]


def _write_bigwig(path, values):
  import pyBigWig
  bw = pyBigWig.open(str(path), "w")
  bw.addHeader([("chr1", len(values))])
  bw.addEntries("chr1", 0, values=values.astype(np.float64).tolist(), span=1, step=1)
  bw.close()


def test_bigwig_tss_and_bedpe_pipeline(tmp_path):
  positions = np.arange(20000, dtype=np.float64)
  _write_bigwig(tmp_path / "ramp.bw", positions / 1000)
  enhancer = np.zeros(20000)
  enhancer[14000:14600] = 1.0
  _write_bigwig(tmp_path / "k27ac.bw", enhancer)
  (tmp_path / "genes.tsv").write_text(
      "gene_id\tchrom\ttss\tstrand\texpression\n"
      "g1\tchr1\t5000\t+\t10\n"
      "g2\tchr1\t12000\t-\t1\n")
  (tmp_path / "loops.bedpe").write_text("\n".join([
      "chr1\t4900\t5100\tchr1\t14000\t14600\ta\t3.0",    # g1: pCRE A
      "chr1\t8000\t8500\tchr1\t4990\t5010\tb\t2.0",      # g1 (second anchor): pCRE B
      "chr1\t4990\t5010\tchr1\t9000\t9100\tc\t1.0",      # score too low
      "chr1\t4990\t5010\tchr1\t100\t9000\td\t5.0",       # TSS in both anchors
      "chr1\t4990\t5010\tchr1\t6000\t9000\td\t5.0",      # longer than the window
      "chr1\t4990\t5010\tchr1\t1000\t1200\te\t1.8",      # third best: no slot left
      "chr1\t11990\t12010\tchr1\t16000\t16500\tf\t2.5",  # g2
  ]) + "\n")
  genes = read_gene_table(tmp_path / "genes.tsv")
  assert [(g.label, g.split) for g in genes] == [(1, 1), (0, 1)]  # median 5.5; chr1 -> group 1
  pcres = read_interactions(tmp_path / "loops.bedpe", genes, CONFIG)
  assert [(p.start, p.score) for p in pcres["g1"]] == [(14000, 3.0), (8000, 2.0)]
  assert [(p.start, p.score) for p in pcres["g2"]] == [(16000, 2.5)]
  with BigWigSource([tmp_path / "ramp.bw", tmp_path / "k27ac.bw"]) as source:
    data = build_examples(genes, pcres, source, CONFIG, progress=False)
  x = data.inputs
  # g1 promoter [4000, 6000): mean of 4.000..4.999 = 4.4995; g2 (minus strand) is flipped.
  np.testing.assert_allclose(x["promoter_1000"][0, :, 0], np.log1p([4.4995, 5.4995]), rtol=1e-5)
  np.testing.assert_allclose(x["promoter_1000"][1, :, 0], np.log1p([12.4995, 11.4995]), rtol=1e-5)
  # pCRE A: 600 bp -> bins of 250, 250, 100 bp at 3..5 of 8; H3K27ac = 1 -> log 2.
  np.testing.assert_array_equal(x["pcre_mask_250"][0, 0], [0, 0, 0, 1, 1, 1, 0, 0])
  np.testing.assert_allclose(x["pcre_250"][0, 0, 3:6, 1], math.log(2.0), rtol=1e-6)
  assert x["pcre_250"][0, 0, 5, 0] == pytest.approx(math.log1p(14.5495), rel=1e-5)
  np.testing.assert_allclose(x["interaction_freq"][:, 0], [[0, 3, 2], [0, 2.5, 0]])
  np.testing.assert_array_equal(x["pcre_present"], [[1, 1], [1, 0]])
  np.testing.assert_allclose(data.targets["expression"], np.log2([11.0, 2.0]))
  np.testing.assert_array_equal(data.targets["label"], [1, 0])
  # The training-config builder (`data.type: chromoformer`, source bigwig) reads the same.
  options = ChromoformerBuilderOptions(
      source="bigwig", genes=str(tmp_path / "genes.tsv"),
      interactions=str(tmp_path / "loops.bedpe"),
      bigwigs=(str(tmp_path / "ramp.bw"), str(tmp_path / "k27ac.bw")), fold=None)
  model_config = ChromoformerConfig(num_marks=2, bin_sizes=(1000, 250), window_size=2000,
                                    max_pcres=2)
  built, no_valid = builder_examples(options, model_config)
  assert no_valid is None
  for key, value in x.items():
    np.testing.assert_array_equal(built.inputs[key], value, err_msg=key)


def test_gene_table_errors_name_the_problem(tmp_path):
  (tmp_path / "bad.tsv").write_text("gene_id\tchrom\ttss\tstrand\ng1\tchr1\t10\t*\n")
  with pytest.raises(ChromoformerDataError, match="strand"):
    read_gene_table(tmp_path / "bad.tsv")
  (tmp_path / "short.tsv").write_text("gene_id\tchrom\n")
  with pytest.raises(ChromoformerDataError, match=r"missing column.*tss"):
    read_gene_table(tmp_path / "short.tsv")


def test_reference_metadata_and_npy_layout(tmp_path):
  rng = np.random.default_rng(0)
  npy = tmp_path / "npy"
  npy.mkdir()
  promoter = rng.random((2, 40000)).astype(np.float32) * 5
  np.save(npy / "chr2:5000-45000.npy", promoter)
  enhancer = rng.random((2, 600)).astype(np.float32)
  np.save(npy / "chr2:30000-30600.npy", enhancer)
  (tmp_path / "meta.csv").write_text(
      "gene_id,expression,eid,label,chrom,start,end,strand,split,neighbors,scores\n"
      "g1,4.5,E003,1,chr2,25000,25001,-,3,chr2:30000-30600,1.74\n"
      "g2,0.0,E003,0,chr2,25000,25001,+,1,,\n")
  genes, pcres = read_reference_metadata(tmp_path / "meta.csv", CONFIG)
  assert [(g.gene_id, g.strand, g.label, g.split) for g in genes] == [
      ("g1", "-", 1, 3), ("g2", "+", 0, 1)]
  assert pcres["g1"] == [Pcre("chr2", 30000, 30600, 1.74)] and pcres["g2"] == []
  data = build_examples(genes, pcres, ReferenceNpySource(npy), CONFIG, progress=False)
  # The promoter window is the central 2 kb of the stored TSS +- 20 kb.
  expected = example_arrays(promoter[:, 19000:21000], "-", [enhancer], [1.74], CONFIG)
  for key, value in expected.items():
    np.testing.assert_allclose(data.inputs[key][0], value, rtol=1e-6, err_msg=key)
  train, valid = data.fold(3)
  assert valid.gene_ids == ["g1"] and train.gene_ids == ["g2"]
  with pytest.raises(ChromoformerDataError, match="not found"):
    ReferenceNpySource(npy).region("chr9", 0, 10)


def test_synthetic_rule_and_structure():
  config = ChromoformerDataConfig(bin_sizes=(1000, 250), window_size=2000, max_pcres=2)
  data = synthetic_examples(64, config, seed=3)
  assert len(data) == 64 and data.targets["label"].mean() == pytest.approx(0.5)
  active = data.active_enhancer == 1
  # Active enhancers sit in slot 0 with the top score and raise expression by 1.5 on average.
  assert np.all(data.inputs["pcre_present"][active, 0] == 1)
  assert np.all(data.inputs["interaction_freq"][active, 0, 1] >= 3.0)
  gap = data.targets["expression"][active].mean() - data.targets["expression"][~active].mean()
  assert 0.8 < gap < 2.5
  again = synthetic_examples(64, config, seed=3)
  np.testing.assert_array_equal(again.inputs["pcre_250"], data.inputs["pcre_250"])
  assert Gene("g", "chr1", 1, "+").label is None
