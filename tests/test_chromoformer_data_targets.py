"""Chromoformer data: missing targets are dropped (never made up), malformed gene tables name
their row, and the BEDPE reader scales to genome-wide files (chromosome index + bisection)."""

import math
import time

import numpy as np
import pytest

from tf_seqmodels.data.chromoformer import (BigWigSource, ChromoformerBuilderOptions,
                                            ChromoformerDataConfig, ChromoformerDataError, Gene,
                                            build_examples, builder_examples, genes_with_targets,
                                            read_gene_table, read_interactions,
                                            read_reference_metadata)
from tf_seqmodels.models.chromoformer import ChromoformerConfig

CONFIG = ChromoformerDataConfig(bin_sizes=(1000, 250), window_size=2000, max_pcres=2,
                                num_marks=2, min_score=1.5)

# g2 has neither label nor expression; g4 a label but no expression. Split 2 = fold 2's valid.
GENES = ("gene_id\tchrom\ttss\tstrand\texpression\tlabel\tsplit\n"
         "g1\tchr1\t5000\t+\t10\t\t1\n"
         "g2\tchr1\t8000\t-\t\t\t2\n"
         "g3\tchr1\t12000\t+\t1\t\t2\n"
         "g4\tchr1\t15000\t-\t\t1\t1\n")


def _write_bigwig(path, values):
  import pyBigWig
  bw = pyBigWig.open(str(path), "w")
  bw.addHeader([("chr1", len(values))])
  bw.addEntries("chr1", 0, values=values.astype(np.float64).tolist(), span=1, step=1)
  bw.close()


@pytest.fixture
def bigwig_inputs(tmp_path):
  _write_bigwig(tmp_path / "a.bw", np.arange(20000, dtype=np.float64) / 1000)
  _write_bigwig(tmp_path / "b.bw", np.ones(20000))
  (tmp_path / "genes.tsv").write_text(GENES)
  return tmp_path


def _builder(tmp_path, mode):
  options = ChromoformerBuilderOptions(
      source="bigwig", genes=str(tmp_path / "genes.tsv"),
      bigwigs=(str(tmp_path / "a.bw"), str(tmp_path / "b.bw")), fold=2)
  model_config = ChromoformerConfig(mode=mode, num_marks=2, bin_sizes=(1000, 250),
                                    window_size=2000, max_pcres=2)
  return builder_examples(options, model_config)


def test_missing_targets_are_left_out_of_both_splits_with_a_warning(bigwig_inputs):
  with pytest.warns(UserWarning, match=r"1 of 4 genes have no label.*: g2$"):
    train, valid = _builder(bigwig_inputs, "classification")
  # g2 (split 2) would have been a validation example with label -1.
  assert train.gene_ids == ["g1", "g4"] and valid.gene_ids == ["g3"]
  np.testing.assert_array_equal(train.targets["label"], [1, 1])  # median of 10, 1 is 5.5
  np.testing.assert_array_equal(valid.targets["label"], [0])
  with pytest.warns(UserWarning, match=r"2 of 4 genes have no expression.*: g2, g4$"):
    train, valid = _builder(bigwig_inputs, "regression")
  # g4's expression would have been a made-up log2(0 + 1) = 0 regression target.
  assert train.gene_ids == ["g1"] and valid.gene_ids == ["g3"]
  np.testing.assert_allclose(train.targets["expression"], [math.log2(11.0)], rtol=1e-6)
  np.testing.assert_allclose(valid.targets["expression"], [1.0], rtol=1e-6)


def test_build_examples_keeps_missing_expression_visible(bigwig_inputs):
  genes = read_gene_table(bigwig_inputs / "genes.tsv")
  assert [g.label for g in genes] == [1, None, 0, 1]
  with BigWigSource([bigwig_inputs / "a.bw", bigwig_inputs / "b.bw"]) as source:
    data = build_examples(genes, {}, source, CONFIG, progress=False)
  np.testing.assert_array_equal(data.targets["label"], [1, -1, 0, 1])
  expression = data.targets["expression"]
  assert np.isnan(expression[[1, 3]]).all()
  np.testing.assert_allclose(expression[[0, 2]], np.log2([11.0, 2.0]), rtol=1e-6)
  with pytest.raises(ChromoformerDataError, match="none of the 1 genes has the expression"):
    genes_with_targets([Gene("x", "chr1", 5, "+")], "regression", "t.tsv")


@pytest.mark.parametrize("row, problem", [
    ("g2\tchr1\t\t+\t1", r"row 2 \(gene g2\): tss is missing"),
    ("g2\tchr1\t10.5\t+\t1", r"row 2 \(gene g2\): tss '?10.5'? is not an integer"),
    ("g2\tchr1\t10\t+\tlots", r"row 2 \(gene g2\): expression 'lots' is not a number"),
])
def test_malformed_gene_rows_are_named(tmp_path, row, problem):
  path = tmp_path / "genes.tsv"
  path.write_text("gene_id\tchrom\ttss\tstrand\texpression\ng1\tchr1\t5\t+\t1\n" + row + "\n")
  with pytest.raises(ChromoformerDataError, match=rf"genes.tsv: {problem}"):
    read_gene_table(path)


def test_malformed_labels_and_splits_are_named(tmp_path):
  path = tmp_path / "meta.csv"
  path.write_text("gene_id,label,expression,chrom,start,end,strand,split,neighbors,scores\n"
                  "g1,2,4.5,chr2,25000,25001,-,3,,\n"
                  "g2,0,0.0,chr2,25000,25001,+,1.5,,\n")
  with pytest.raises(ChromoformerDataError,
                     match=r"row 1 \(gene g1\): label 2 is not 0 or 1; "
                           r"row 2 \(gene g2\): split 1.5 is not an integer"):
    read_reference_metadata(path, CONFIG)


def _brute_force_interactions(rows, genes, config):
  """The reader's rule, gene by gene and row by row."""
  from tf_seqmodels.data.chromoformer import Pcre, select_pcres
  found = {g.gene_id: [] for g in genes}
  for c1, s1, e1, c2, s2, e2, score in rows:
    for g in genes:
      if c1 != c2 or g.chrom != c1:
        continue
      first, second = s1 <= g.tss < e1, s2 <= g.tss < e2
      if first and not second:
        found[g.gene_id].append(Pcre(c2, s2, e2, score))
      elif second and not first:
        found[g.gene_id].append(Pcre(c1, s1, e1, score))
  return {k: select_pcres(v, config) for k, v in found.items()}


def _write_bedpe(path, rows):
  path.write_text("".join(f"{c1}\t{s1}\t{e1}\t{c2}\t{s2}\t{e2}\tx\t{score}\n"
                          for c1, s1, e1, c2, s2, e2, score in rows))


def test_bedpe_reader_matches_the_rule_on_random_interactions(tmp_path):
  rng = np.random.default_rng(0)
  chroms = ["chr1", "chr2", "chrX"]
  # Shared TSSs and TSSs on anchor edges exercise the bisection bounds.
  genes = [Gene(f"g{i}", chroms[i % 3], int(rng.integers(0, 5000)) // 10 * 10,
                "+" if i % 2 else "-") for i in range(150)]
  rows = []
  for _ in range(1500):
    c1 = chroms[rng.integers(3)]
    c2 = c1 if rng.random() < 0.9 else chroms[rng.integers(3)]
    s1, s2 = (int(v) // 10 * 10 for v in rng.integers(0, 5000, 2))
    e1, e2 = s1 + int(rng.integers(1, 30)) * 10, s2 + int(rng.integers(1, 300)) * 10
    rows.append((c1, s1, e1, c2, s2, e2, round(float(rng.uniform(0.5, 5.0)), 3)))
  _write_bedpe(tmp_path / "loops.bedpe", rows)
  config = ChromoformerDataConfig(bin_sizes=(1000, 250), window_size=2000, max_pcres=3,
                                  num_marks=2)
  got = read_interactions(tmp_path / "loops.bedpe", genes, config)
  want = _brute_force_interactions(rows, genes, config)
  assert got == want
  assert sum(len(v) for v in got.values()) > 200  # the comparison is not vacuous


def test_bedpe_reader_scales_to_many_genes_and_rows(tmp_path):
  # 20,000 genes x 20,000 interactions on one chromosome: 4e8 gene-row checks for a scan of
  # every gene per row (minutes), a few bisections per row with the chromosome index.
  rng = np.random.default_rng(1)
  n = 20000
  tss = rng.integers(0, 10**8, n)
  genes = [Gene(f"g{i}", "chr1", int(t), "+") for i, t in enumerate(tss)]
  promoters = tss[rng.integers(0, n, n)]
  far = rng.integers(0, 10**8, n)
  lines = "".join(f"chr1\t{p - 500}\t{p + 500}\tchr1\t{f}\t{f + 5000}\tx\t3.0\n"
                  for p, f in zip(promoters.tolist(), far.tolist()))
  (tmp_path / "big.bedpe").write_text(lines)
  config = ChromoformerDataConfig(window_size=40000, max_pcres=8)
  start = time.perf_counter()
  found = read_interactions(tmp_path / "big.bedpe", genes, config)
  elapsed = time.perf_counter() - start
  assert elapsed < 15, f"read_interactions took {elapsed:.1f} s"
  first = int(np.flatnonzero(tss == promoters[0])[0])
  assert any(p.start == int(far[0]) for p in found[f"g{first}"])
  assert sum(len(v) for v in found.values()) >= n * 0.9
