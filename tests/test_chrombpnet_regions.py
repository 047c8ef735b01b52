"""Peaks, GC-matched non-peaks and fold JSON of the ChromBPNet pipeline."""

import json

import numpy as np
import pytest

from tf_seqmodels.chrombpnet.regions import (IntervalIndex, default_fold, filter_regions, gc_match,
                                             gc_matched_nonpeaks, prepare_regions, window_gc)
from tf_seqmodels.data.genome import Genome, GenomeError
from tf_seqmodels.data.intervals import Fold, Regions, read_bed, read_narrowpeak


def test_gc_match_by_hand():
  rng = np.random.default_rng(0)
  candidates = np.array([0.40, 0.40, 0.41, 0.50, 0.52, 0.30])
  picks = gc_match(np.array([0.404, 0.50]), candidates, 2, rng)
  # 0.404 -> bin 40: both 0.40 tiles; 0.50 -> bin 50, then +-1 (none), then nearest (0.52).
  assert sorted(picks[:2]) == [0, 1] and list(picks[2:]) == [3, 4]
  # Each candidate is used once; when none is left the matching stops.
  assert len(gc_match(np.array([0.3] * 10), candidates, 1, rng)) == 6


def test_interval_index_and_filters():
  index = IntervalIndex(Regions.from_intervals(["chr1", "chr1", "chr1"], [100, 150, 500],
                                               [200, 300, 600]), pad=10)
  # merged: [90, 310), [490, 610)
  hits = index.overlaps("chr1", np.array([0, 80, 310, 480, 610]), np.array([90, 91, 490, 491, 700]))
  assert list(hits) == [False, True, False, True, False]
  assert not index.overlaps("chr2", np.array([0]), np.array([10**6]))[0]
  regions = Regions.from_centres(["chr1"] * 4 + ["chr2"], [40, 400, 900, 2010, 300], 10)
  black = Regions.from_intervals(["chr1"], [880], [890])
  kept = filter_regions(regions, {"chr1": 2050, "chr2": 1000}, 100, black)
  # 40: off the start; 900: window [850, 950) hits the blacklist; 2010: past the end.
  assert list(zip(kept.chrom, kept.centre)) == [("chr1", 400), ("chr2", 300)]
  with pytest.raises(GenomeError, match="chrX"):
    filter_regions(Regions.from_centres(["chrX"], [500]), {"chr1": 2050}, 100)


def test_default_fold():
  sizes = {f"chr{i}": 1000 for i in list(range(1, 23)) + ["X", "Y", "M"]}
  fold = default_fold(sizes)
  assert fold.test == ("chr1", "chr3", "chr6") and fold.valid == ("chr8", "chr20")
  assert "chrM" not in fold.train and "chrY" not in fold.train and "chrX" in fold.train
  assert default_fold({"a": 1, "b": 1, "c": 1}, ["c"], ["b"]) == Fold(("a",), ("b",), ("c",))
  with pytest.raises(GenomeError, match="--fold"):
    default_fold({"a": 1, "b": 1})
  with pytest.raises(ValueError, match="both the test and the valid"):
    default_fold({"a": 1, "b": 1}, ["a"], None)


def test_gc_matched_nonpeaks(tmp_path):
  rng = np.random.default_rng(1)
  # GC content varies along the chromosomes, so matching has something to do.
  chroms = {}
  for name in ("chr1", "chr2", "chr3"):
    gc = np.repeat(rng.uniform(0.3, 0.6, 40), 1000)
    draw = rng.random(len(gc))
    bases = np.where(draw < gc, rng.choice(list("GC"), len(gc)), rng.choice(list("AT"), len(gc)))
    chroms[name] = "".join(bases)
  (tmp_path / "g.fa").write_text("".join(f">{c}\n{s}\n" for c, s in chroms.items()))
  centres = {c: np.arange(3000, 40000, 4000) for c in chroms}
  lines = [f"{c}\t{p - 100}\t{p + 100}\t.\t0\t.\t1\t1\t1\t100\n" for c in chroms for p in centres[c]]
  (tmp_path / "peaks.narrowPeak").write_text("".join(lines))
  (tmp_path / "black.bed").write_text("chr1\t20000\t24000\n")
  fold = Fold(train=("chr1",), valid=("chr2",), test=("chr3",))
  summary = prepare_regions(tmp_path / "g.fa", tmp_path / "peaks.narrowPeak", fold,
                            tmp_path / "aux", 500, tmp_path / "black.bed", stride=50, ratio=2)
  peaks = read_narrowpeak(tmp_path / "aux" / "filtered.peaks.narrowPeak")
  nonpeaks = read_narrowpeak(tmp_path / "aux" / "filtered.nonpeaks.narrowPeak")
  assert summary["peaks"] == len(peaks) == 29  # of 30: chr1:23000 overlaps the blacklist
  # 2 per train/valid peak, 1 per test peak; windows of 500 with summit 250.
  assert [int((nonpeaks.chrom == c).sum()) for c in chroms] == [18, 20, 10]
  assert set(nonpeaks.end - nonpeaks.start) == {500} and set(nonpeaks.summit) == {250}
  # No non-peak within 250 bp (width / 2) of a peak interval or the blacklist.
  exclude = IntervalIndex(Regions.concatenate([read_bed(tmp_path / "peaks.narrowPeak"),
                                               read_bed(tmp_path / "black.bed")]), pad=250)
  for c in chroms:
    rows = nonpeaks.chrom == c
    assert not exclude.overlaps(c, nonpeaks.start[rows], nonpeaks.end[rows]).any()
  with Genome(tmp_path / "g.fa") as genome:
    peak_gc = np.sort(window_gc(genome, peaks.on_chromosomes(["chr3"]), 500))
    background_gc = np.sort(window_gc(genome, nonpeaks.on_chromosomes(["chr3"]), 500))
    random_gc = window_gc(genome, Regions.from_centres(["chr3"] * 200, rng.integers(300, 39700, 200)),
                          500)
  # Test peaks and their 1:1 non-peaks: GC distributions matched to ~0.01.
  assert np.abs(peak_gc - background_gc).max() <= 0.02
  assert np.abs(peak_gc - background_gc).mean() < 0.3 * np.abs(peak_gc - np.median(random_gc)).mean()
  # The fold JSON is the reference's: lists under train / valid / test.
  assert json.loads((tmp_path / "aux" / "fold.json").read_text()) == {
      "train": ["chr1"], "valid": ["chr2"], "test": ["chr3"]}
  with Genome(tmp_path / "g.fa") as genome:
    with pytest.raises(ValueError, match="no peaks to match"):
      gc_matched_nonpeaks(genome, peaks.subset(np.zeros(len(peaks), bool)), fold, 500)
