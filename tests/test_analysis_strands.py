"""Strand-paired reverse-complement averaging, head kinds, SavedModel analyses, run-directory
loading, gene-mode TSS index, DREAM pair padding and unique temporary files."""

import dataclasses
import os

import h5py
import numpy as np
import pytest
import tensorflow as tf

from analysis_toys import MOTIF, random_sequence, without_motif, write_genome
from tf_seqmodels.analysis.inference import AnalysisModel, BatchRunner, load_analysis_model
from tf_seqmodels.analysis.variants import (VariantScoringConfig, averaged_predictions,
                                            jensen_shannon_distance, one_hot_indices,
                                            score_sequence_pairs, score_variants, statistic)
from tf_seqmodels.config import Config, ConfigError
from tf_seqmodels.data.encoding import reverse_complement_indices, sequence_to_indices
from tf_seqmodels.data.strands import CopyAverage, check_track_permutation
from tf_seqmodels.data.vcf import Variant, write_vcf
from tf_seqmodels.models.base import SequenceModel

RC_MOTIF = "TGAGTCA"  # reverse complement of MOTIF (AP-1 is not a palindrome)
SITE = 100  # planted motif start: centre 103, bin 6 of 16-bp bins


@dataclasses.dataclass(frozen=True)
class StrandedConfig(Config):
  sequence_length: int = 256
  bin_size: int = 16
  flag: bool = False  # a 5th input channel: the is_reverse flag (as DREAM's encoding)


class StrandedMotifModel(SequenceModel):
  """Hand-set, exactly strand-equivariant model. Hits = ReLU(motif score - 5): 2 per exact site.

  Heads: "tracks" [B, L / bin, 2]: hits of MOTIF (track 0, '+' strand) and of its reverse
  complement (track 1, '-' strand) per bin; a reverse complement swaps the tracks and reverses
  the bins. "profile" [B, L] logits: hits per position (rank 2). "logcounts" [B, 1]:
  log(1 + all hits), plus 0.5 when the is_reverse flag is set (flag=True).
  """

  def __init__(self, config: StrandedConfig = StrandedConfig()):
    super().__init__(config, name="stranded_motif")
    weights = np.full((len(MOTIF), 4, 2), -1.0, np.float32)
    for track, motif in enumerate((MOTIF, RC_MOTIF)):
      for i, base in enumerate(motif):
        weights[i, "ACGT".index(base), track] = 1.0
    self.w = tf.Variable(weights, name="w")
    self.b = tf.Variable([-5.0, -5.0], name="b")

  @property
  def input_channels(self):
    return 5 if self.config.flag else 4

  @property
  def head_names(self):
    return ("tracks", "profile", "logcounts")

  @property
  def position_axes(self):
    return {"tracks": 1, "profile": 1, "logcounts": None}

  @property
  def head_kinds(self):
    return {"tracks": "tracks", "profile": "profile_logits", "logcounts": "log_counts"}

  def encode_dna(self, one_hot, is_reverse=False):
    one_hot = tf.convert_to_tensor(one_hot, tf.float32)
    if not self.config.flag:
      return one_hot
    return tf.concat([one_hot, tf.fill(tf.shape(one_hot[..., :1]), float(is_reverse))], -1)

  def embed(self, inputs, is_training):
    return tf.nn.relu(tf.nn.conv1d(inputs[..., :4], self.w, 1, "SAME") + self.b)

  def __call__(self, inputs, is_training):
    hits = self.embed(inputs, is_training)
    tracks = tf.reduce_sum(tf.reshape(hits, [tf.shape(inputs)[0], -1, self.config.bin_size, 2]), 2)
    logcounts = tf.math.log1p(tf.reduce_sum(hits, axis=[1, 2]))[:, None]
    if self.config.flag:
      logcounts += 0.5 * tf.reduce_mean(inputs[..., 4], axis=1, keepdims=True)
    return {"tracks": tracks, "profile": tf.reduce_sum(hits, -1), "logcounts": logcounts}


def _planted(seed=0, site=SITE, motif=MOTIF):
  sequence = without_motif(random_sequence(256, seed))
  return sequence[:site] + motif + sequence[site + len(motif):]


def _one_hot(*sequences):
  return np.stack([one_hot_indices(sequence_to_indices(s)) for s in sequences])


# --- finding 2 / 15: strand pairs in RC averaging, one RC implementation ----------------------

def test_reverse_complement_averaging_swaps_strand_pairs():
  from tf_seqmodels.evaluation.augmentation import TestTimeAugmentation, augmented_predict
  from tf_seqmodels.evaluation.context import EvaluationContext
  model = StrandedMotifModel()
  x = _one_hot(_planted())
  plain = model(tf.constant(x), is_training=False)["tracks"].numpy()
  np.testing.assert_allclose(plain[0, 6], [2.0, 0.0])  # '+'-strand site only
  assert plain.sum() == 2.0
  rc_only = TestTimeAugmentation(shifts=(0,))
  paired = augmented_predict(model, tf.constant(x), rc_only, {}, {"tracks": [1, 0]})["tracks"]
  np.testing.assert_allclose(paired.numpy(), plain, atol=1e-6)  # equivariant: exact
  unpaired = augmented_predict(model, tf.constant(x), rc_only, {})["tracks"].numpy()
  np.testing.assert_allclose(unpaired[0, 6], [1.0, 1.0])  # the strands were mixed
  # The evaluator's path: the permutation comes with the data (data_info).
  dataset = tf.data.Dataset.from_tensor_slices((x, {"tracks": plain})).batch(1)
  context = EvaluationContext(model=model, task=None, dataset=dataset, progress=False,
                              data_info={"track_permutations": {"tracks": np.array([1, 0])}})
  np.testing.assert_allclose(context.predict(rc_only).outputs["tracks"], plain, atol=1e-6)
  # Variant scoring's averaging, with the permutation on the analysis model.
  windows = sequence_to_indices(_planted())[None, None]
  config = VariantScoringConfig(window_bins=1)
  runner = BatchRunner()
  stranded = AnalysisModel(model, track_permutations={"tracks": [1, 0]})
  assert averaged_predictions(stranded, runner, windows, config, ["tracks"])["tracks"].tolist() \
      == [[0.0, 0.0]]  # the centre bin (8) holds no site
  whole = averaged_predictions(stranded, runner, windows, config.replace(window_bins=None),
                               ["tracks", "profile"])
  np.testing.assert_allclose(whole["tracks"], [[2.0, 0.0]], atol=1e-6)
  mixed = averaged_predictions(AnalysisModel(model), runner, windows,
                               config.replace(window_bins=None), ["tracks"])
  np.testing.assert_allclose(mixed["tracks"], [[1.0, 1.0]], atol=1e-6)
  # The profile head ([B, L], rank 2) is flipped back too: all mass at the site's centre.
  assert whole["profile"].shape == (1, 256, 1) and whole["profile"][0, SITE + 3, 0] > 0.02


def test_permutation_checks_and_single_reverse_complement():
  with pytest.raises(ConfigError, match="mutual"):
    check_track_permutation([1, 2, 0])
  with pytest.raises(ConfigError, match="not a permutation"):
    check_track_permutation([0, 0])
  average = CopyAverage({"t": 1}, {"t": [1, 0, 2]})
  average.add({"t": np.arange(12.0).reshape(1, 2, 6)[..., :3]}, is_reverse=True)
  # [[0, 1, 2], [6, 7, 8]]: bins reversed, then tracks 0 and 1 swapped.
  np.testing.assert_array_equal(average.result()["t"], [[[7, 6, 8], [1, 0, 2]]])
  with pytest.raises(ConfigError, match="has 2 tracks"):
    CopyAverage({"t": None}, {"t": [1, 0, 2]}).add({"t": np.zeros((1, 2))}, is_reverse=True)
  # One implementation serves ACGT (genome, ChromBPNet, variants) and AGCT (DREAM) indices.
  from tf_seqmodels.analysis import variants
  from tf_seqmodels.data import chrombpnet, dream, genome
  for module in (genome, dream, chrombpnet, variants):
    assert module.reverse_complement_indices is reverse_complement_indices
  np.testing.assert_array_equal(reverse_complement_indices(sequence_to_indices("AACGTN")),
                                sequence_to_indices("NACGTT"))
  np.testing.assert_array_equal(dream.reverse_complement_indices(dream.encode_indices(["AGCTN"])),
                                dream.encode_indices(["NAGCT"]))


def test_strand_pairs_from_a_training_data_section(tmp_path):
  from tf_seqmodels.data.strands import data_track_permutations
  from tf_seqmodels.data.tracks import TrackSpec, write_targets_table
  from tf_seqmodels.training.data_builders import DataSection
  write_targets_table(tmp_path / "targets.txt", [
      TrackSpec("dnase", "a.bw"), TrackSpec("cage_plus", "b.bw", strand_pair="cage_minus"),
      TrackSpec("cage_minus", "c.bw", strand_pair="cage_plus")])
  tracks = {"type": "tracks", "options": {"fasta": "g.fa", "targets": str(tmp_path / "targets.txt"),
                                          "regions": "r.bed", "fold": "f.json",
                                          "data": {"head": "human"}}}
  perms = data_track_permutations(DataSection.from_dict(tracks))
  assert {h: p.tolist() for h, p in perms.items()} == {"human": [0, 2, 1]}
  os.makedirs(tmp_path / "tfr")
  os.replace(tmp_path / "targets.txt", tmp_path / "tfr" / "targets.txt")
  multi = DataSection.from_dict({"type": "multi", "options": {"sources": {
      "mouse": {"type": "basenji", "options": {"data_dir": str(tmp_path / "tfr"), "head": "mouse"}},
      "other": {"type": "basenji", "options": {"data_dir": str(tmp_path / "none")}}}}})
  assert {h: p.tolist() for h, p in data_track_permutations(multi).items()} == {"mouse": [0, 2, 1]}
  # `export hub --targets`: the strand pairs of the model's track head go into the metadata.
  from analysis_toys import tiny_enformer_config
  from tf_seqmodels.cli_export import _strand_pairs
  from tf_seqmodels.models import build_model
  table = str(tmp_path / "tfr" / "targets.txt")
  enformer = build_model("enformer", tiny_enformer_config())
  assert _strand_pairs(enformer, [table]) == {"tracks": [0, 2, 1]}
  two = build_model("enformer", tiny_enformer_config().replace(heads={"human": 3, "mouse": 3}))
  assert _strand_pairs(two, [f"mouse={table}"]) == {"mouse": [0, 2, 1]}
  with pytest.raises(ValueError, match="name the head"):
    _strand_pairs(two, [table])


# --- finding 4: SavedModel analyses through the export's metadata ------------------------------

def test_saved_model_analysis_uses_metadata_encoding_and_strand_flag(tmp_path):
  from tf_seqmodels.export.hub import HubExportConfig, export_hub, read_metadata
  from tf_seqmodels.data.encoding import SequenceError
  live = StrandedMotifModel(StrandedConfig(flag=True))
  result = export_hub(live, str(tmp_path / "export"), HubExportConfig(
      tarball=False, track_permutations={"tracks": [1, 0]}))
  meta = read_metadata(result.savedmodel)
  assert meta["position_axes"] == {"tracks": 1, "profile": 1, "logcounts": None}
  assert meta["head_kinds"]["profile"] == "profile_logits"
  assert meta["track_permutations"] == {"tracks": [1, 0]}
  saved = load_analysis_model(result.savedmodel)
  assert saved.model is None and saved.sequence_length == 256
  assert saved.position_axis("profile") == 1 and saved.head_kind("logcounts") == "log_counts"
  windows = np.stack([sequence_to_indices(_planted(1)), sequence_to_indices(_planted(2, 60))])
  config = VariantScoringConfig()
  heads = ["tracks", "profile", "logcounts"]
  runner = BatchRunner()
  expected = averaged_predictions(AnalysisModel(live, track_permutations={"tracks": [1, 0]}),
                                  runner, windows[:, None], config, heads)
  got = averaged_predictions(saved, runner, windows[:, None], config, heads)
  for head in heads:
    np.testing.assert_allclose(got[head], expected[head], atol=1e-5, err_msg=head)
  # The reverse copy carried the strand flag: log(1 + 2 hits) + 0.5 / 2.
  np.testing.assert_allclose(got["logcounts"][:, 0], np.log(3.0) + 0.25, atol=1e-5)
  np.testing.assert_allclose(got["tracks"], [[2.0, 0.0], [2.0, 0.0]], atol=1e-5)
  # A 5-channel SavedModel without predict_dna_on_batch: a clear error, not a TF trace.
  module = tf.Module()
  module.live = live
  module.predict_on_batch = tf.function(lambda x: live(x, is_training=False),
                                        input_signature=[tf.TensorSpec([None, 256, 5])])
  tf.saved_model.save(module, str(tmp_path / "bare"))
  with pytest.raises(SequenceError, match="5 input channels, not one-hot ACGT"):
    load_analysis_model(str(tmp_path / "bare"))


# --- finding 5: statistics by head kind, default attribution target ---------------------------

def test_statistics_follow_head_kinds(tmp_path):
  from scipy.spatial.distance import jensenshannon
  from tf_seqmodels.analysis.contributions import default_target
  chrom = without_motif(random_sequence(600, 5))
  chrom = chrom[:300] + MOTIF + chrom[307:]
  fasta = write_genome(str(tmp_path), {"chr1": chrom})
  from tf_seqmodels.data.genome import Genome
  model = AnalysisModel(StrandedMotifModel(), track_permutations={"tracks": [1, 0]})
  variant = Variant("chr1", 300 + 3, "snv", "A", "C")  # TGACTCA -> TGCCTCA: the site is lost
  with Genome(fasta) as genome:
    batch = next(score_variants(model, [variant], genome, VariantScoringConfig()))
  assert set(batch.scores["profile"]) == {"jsd"}
  assert set(batch.scores["logcounts"]) == {"diff", "log_fc", "abs_diff"}
  diff = batch.scores["logcounts"]["diff"][0, 0]
  assert diff == pytest.approx(-np.log(3.0), abs=1e-5)  # 2 hits (averaged over strands) -> 0
  assert batch.scores["logcounts"]["log_fc"][0, 0] == pytest.approx(-np.log2(3.0), abs=1e-5)
  assert batch.scores["tracks"]["diff"][0].tolist() == pytest.approx([-2.0, 0.0], abs=1e-6)
  ref, alt = batch.ref["profile"][0, :, 0], batch.alt["profile"][0, :, 0]
  # The site's logit 2 over 255 zeros (ref) vs a flat profile (alt).
  assert ref.max() == pytest.approx(np.e**2 / (np.e**2 + 255), rel=1e-5)
  np.testing.assert_allclose(alt, 1 / 256, rtol=1e-6)
  assert batch.scores["profile"]["jsd"][0, 0] == pytest.approx(jensenshannon(ref, alt), abs=1e-6)
  assert batch.scores["profile"]["jsd"][0, 0] > 0.01
  p = np.random.default_rng(0).dirichlet(np.ones(8), size=(3, 2)).transpose(0, 2, 1)
  q = np.random.default_rng(1).dirichlet(np.ones(8), size=(3, 2)).transpose(0, 2, 1)
  np.testing.assert_allclose(jensen_shannon_distance(p, q),
                             jensenshannon(p, q, axis=1), atol=1e-10)
  with pytest.raises(ValueError, match="does not apply to a 'scalar' head"):
    statistic("log_fc", np.ones(1), np.ones(1), kind="scalar")
  with pytest.raises(ValueError, match="supports the statistics"):
    with Genome(fasta) as genome:
      next(score_variants(model, [variant], genome, VariantScoringConfig(heads=("profile",),
                                                                         statistics=("diff",))))
  assert default_target(model) == ("logcounts", "sum")
  assert default_target(model, "profile") == ("profile", "profile")
  from tf_seqmodels.models import build_model, get_entry
  chrombpnet = build_model("chrombpnet", get_entry("chrombpnet").demo_config())
  assert chrombpnet.head_kinds == {"profile": "profile_logits", "logcounts": "log_counts"}
  assert chrombpnet.without_bias().head_kinds == chrombpnet.head_kinds
  assert build_model("dream_cnn", get_entry("dream_cnn").demo_config()).head_kinds == {
      "expression": "scalar", "bin_logits": "scalar"}


# --- finding 8 / 12: gene mode through a sorted TSS index, '-' strand genes --------------------

def test_gene_mode_index_matches_brute_force_and_minus_strand_genes(tmp_path):
  from tf_seqmodels.analysis.variants import TSSIndex, read_tss_bed, score_vcf
  rng = np.random.default_rng(0)
  genes = [(f"chr{rng.integers(1, 4)}", int(t), f"g{i}") for i, t in
           enumerate(rng.integers(0, 100_000, 5000))]
  index = TSSIndex(genes)
  for chrom, low in zip(rng.integers(1, 4, 200), rng.integers(0, 100_000, 200)):
    chrom, high = f"chr{chrom}", int(low) + 2000
    brute = sorted((t, n) for c, t, n in genes if c == chrom and low <= t <= high)
    assert [(t, n) for n, t in index.within(chrom, int(low), high)] == brute
  # A '-' strand gene: its TSS is end - 1; the motif SNV lies in its window and scores.
  chrom = without_motif(random_sequence(1200, 7))
  chrom = chrom[:500] + MOTIF + chrom[507:]
  fasta = write_genome(str(tmp_path), {"chr1": chrom})
  (tmp_path / "genes.bed").write_text("chr1\t100\t561\tminus_gene\t0\t-\n"
                                      "chr1\t1100\t1150\tfar_gene\t0\t+\n")
  assert read_tss_bed(str(tmp_path / "genes.bed"))[0] == ("chr1", 560, "minus_gene")
  write_vcf(str(tmp_path / "v.vcf"), [Variant("chr1", 500 + 3, "snv", "A", "C")])
  out = str(tmp_path / "genes.h5")
  result = score_vcf(AnalysisModel(StrandedMotifModel()), str(tmp_path / "v.vcf"), fasta, out,
                     VariantScoringConfig(heads=("tracks",), statistics=("diff",)),
                     genes_bed=str(tmp_path / "genes.bed"), progress=False)
  assert result["scored"] == 1
  with h5py.File(out) as f:
    assert [g.decode() for g in f["variants/gene"][:]] == ["minus_gene"]
    assert f["variants/anchor"][0] == 560
    np.testing.assert_allclose(f["scores/tracks/diff"][0], [-1.0, -1.0], atol=1e-6)


# --- finding 16: unique temporary files, nothing left on errors --------------------------------

def test_temporary_files_are_unique_and_removed_on_error(tmp_path, monkeypatch):
  from tf_seqmodels.analysis.variants import HDF5ScoreWriter, score_pairs_file
  first, second = (HDF5ScoreWriter(str(tmp_path / "s.h5")) for _ in range(2))
  assert first.tmp != second.tmp and os.path.dirname(first.tmp) == str(tmp_path)
  first.abort()
  second.abort()
  assert os.listdir(tmp_path) == []
  (tmp_path / "pairs.tsv").write_text(f"a\t{_planted(3)}\t{_planted(4)}\n")
  model = AnalysisModel(StrandedMotifModel())

  def fail(*args, **kwargs):
    raise OSError("disk full")

  monkeypatch.setattr(h5py.File, "create_dataset", fail)
  with pytest.raises(OSError, match="disk full"):
    score_pairs_file(model, str(tmp_path / "pairs.tsv"), str(tmp_path / "out.h5"))
  assert sorted(os.listdir(tmp_path)) == ["pairs.tsv"]


# --- finding 17: DREAM pairs padded with the plasmid ------------------------------------------

def test_pairs_are_padded_with_the_dream_plasmid(tmp_path):
  import json
  from tf_seqmodels.cli import main
  from tf_seqmodels.convert.weights import save_checkpoint
  from tf_seqmodels.data.dream import LEFT_ADAPTER, pad_with_plasmid
  from tf_seqmodels.data.encoding import SequenceError
  from tf_seqmodels.models import build_model, get_entry
  dream = AnalysisModel(build_model("dream_cnn", get_entry("dream_cnn").demo_config()))
  plasmid = random_sequence(300, 11) + "N" * 80 + random_sequence(40, 12)
  insert = random_sequence(93, 13)
  ref = LEFT_ADAPTER + insert  # 110 nt, as the challenge's sequences
  alt = ref[:60] + ("A" if ref[60] != "A" else "C") + ref[61:]
  with pytest.raises(SequenceError, match="--plasmid"):
    score_sequence_pairs(dream, [ref], [alt], VariantScoringConfig(heads=("expression",)))
  padded = score_sequence_pairs(dream, [ref], [alt], VariantScoringConfig(heads=("expression",)),
                                plasmid=plasmid)
  manual = score_sequence_pairs(dream, pad_with_plasmid([ref], plasmid, 150),
                                pad_with_plasmid([alt], plasmid, 150),
                                VariantScoringConfig(heads=("expression",)))
  assert padded["expression"]["diff"][0, 0] == pytest.approx(manual["expression"]["diff"][0, 0])
  assert padded["expression"]["diff"][0, 0] != 0.0
  save_checkpoint(dream.model, str(tmp_path / "ckpt"))
  get_entry("dream_cnn").demo_config().save(str(tmp_path / "dream.yaml"))
  (tmp_path / "plasmid.json").write_text(json.dumps(plasmid))
  (tmp_path / "pairs.tsv").write_text(f"snv\t{ref}\t{alt}\n")
  args = ["score-variants", "--model", str(tmp_path / "ckpt"), "--model-name", "dream_cnn",
          "--model-config", str(tmp_path / "dream.yaml"), "--pairs", str(tmp_path / "pairs.tsv"),
          "--heads", "expression", "--statistics", "diff", "--output", str(tmp_path / "o.tsv")]
  assert main(args) == 2  # unpadded: named error
  assert main(args + ["--plasmid", str(tmp_path / "plasmid.json")]) == 0
  row = (tmp_path / "o.tsv").read_text().splitlines()[1].split("\t")
  assert float(row[1]) == pytest.approx(padded["expression"]["diff"][0, 0], rel=1e-4)


# --- findings 1 / 14: a real run directory -----------------------------------------------------

def test_score_variants_and_load_weights_from_a_training_run_directory(tmp_path):
  from test_trainer import write_track_inputs
  from tf_seqmodels.cli import main
  from tf_seqmodels.data.tracks import TrackSpec, write_targets_table
  from tf_seqmodels.training.checkpointing import latest_checkpoint
  from tf_seqmodels.training.run_config import read_train_config
  from tf_seqmodels.training.run_config import TrainConfig, run_training
  write_track_inputs(tmp_path)
  signal = str(tmp_path / "signal.bw")
  write_targets_table(tmp_path / "targets.txt", [  # a stranded pair (CAGE-like)
      TrackSpec("plus", signal, strand_pair="minus"), TrackSpec("minus", signal, "max",
                                                                strand_pair="plus")])
  config = TrainConfig.from_dict({
      "model": {"name": "enformer", "config": {
          "channels": 24, "num_transformer_layers": 1, "num_heads": 2, "filters_divisible_by": 4,
          "heads": {"tracks": 2}, "sequence_length": 256, "target_length": 4,
          "num_conv_tower_blocks": 3, "key_size": 8}},
      "task": {"type": "tracks"},
      "data": {"type": "tracks", "batch_size": 8, "options": {
          "fasta": str(tmp_path / "genome.fa"), "targets": str(tmp_path / "targets.txt"),
          "regions": str(tmp_path / "regions.bed"), "fold": str(tmp_path / "fold.json"),
          "data": {"sequence_length": 256, "bin_size": 16, "target_length": 4}}},
      "optimizer": {"learning_rate": 0.01},
      "trainer": {"epochs": 1, "steps_per_epoch": 1, "progress": False},  # no best: latest
      "run_dir": str(tmp_path / "run")})
  run_training(config)
  run_dir = config.run_dir
  assert read_train_config(run_dir).model.to_dict() == config.model.to_dict()
  model = load_analysis_model(run_dir)
  assert model.name == "enformer" and model.model is not None
  assert {h: p.tolist() for h, p in model.track_permutations.items()} == {"tracks": [1, 0]}
  # The trained weights, not a fresh initialisation: every variable is in the checkpoint.
  reader = tf.train.load_checkpoint(latest_checkpoint(run_dir))
  saved = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
           if k.startswith("model/") and k.endswith("VARIABLE_VALUE")]
  for variable in model.model.trainable_variables[:5]:
    assert any(s.shape == tuple(variable.shape) and np.array_equal(s, variable.numpy())
               for s in saved), variable.name
  with open(tmp_path / "genome.fa") as f:
    chr2 = f.read().split(">chr2\n")[1].split("\n")[0]
  variants = [Variant("chr2", p + 1, f"v{p}", chr2[p], "A" if chr2[p] != "A" else "C")
              for p in (600, 1500)]
  write_vcf(str(tmp_path / "v.vcf"), variants)
  out = str(tmp_path / "scores.h5")
  assert main(["score-variants", "--model", run_dir, "--vcf", str(tmp_path / "v.vcf"),
               "--fasta", str(tmp_path / "genome.fa"), "--output", out, "--quiet"]) == 0
  from tf_seqmodels.data.genome import Genome
  with Genome(str(tmp_path / "genome.fa")) as genome:
    direct = next(score_variants(model, variants, genome, VariantScoringConfig()))
  with h5py.File(out) as f:
    assert f["scores/tracks/diff"].shape == (2, 2)
    np.testing.assert_allclose(f["scores/tracks/diff"][:], direct.scores["tracks"]["diff"],
                               rtol=1e-5, atol=1e-6)
    assert np.abs(f["scores/tracks/diff"][:]).max() > 0
