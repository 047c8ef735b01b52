"""model_source: what --model names, and run directories that work from anywhere."""

import json
import os
import shutil

import pytest

from tf_seqmodels.model_source import (CHECKPOINT, REGISTRY, RUN, SAVED_MODEL, ModelSource,
                                       ModelSourceError, load_train_config,
                                       resolve_recorded_path)


def _recorded_run(project, run_rel="runs/r"):
  """A run directory as `tf-seqmodels train` leaves it, trained from `project` with paths
  relative to it."""
  from tf_seqmodels.training.run_config import TrainConfig
  (project / "data").mkdir(parents=True)
  (project / "data" / "targets.txt").write_text("index\tidentifier\n")
  (project / "data" / "genome.fa").write_text(">c\nACGT\n")
  (project / "model.yaml").write_text("channels: 24\n")
  config = TrainConfig.from_dict({
      "model": {"name": "enformer", "config_file": "model.yaml"},
      "data": {"type": "tracks", "options": {"targets": "data/targets.txt",
                                             "fasta": "data/genome.fa", "data": {"head": "x"}}},
      "run_dir": run_rel})
  run = project / run_rel
  run.mkdir(parents=True)
  (run / "run.json").write_text(json.dumps({"config": {"train_config": config.to_dict()}}))
  return run


def test_a_moved_run_finds_what_it_recorded_from_any_folder(tmp_path, monkeypatch):
  run = _recorded_run(tmp_path / "a" / "project")
  shutil.move(str(tmp_path / "a" / "project"), str(tmp_path / "b"))
  moved = tmp_path / "b" / "runs" / "r"
  monkeypatch.chdir(tmp_path)  # neither the training folder nor the run
  config = load_train_config(str(moved))
  assert config.data.options["targets"] == str(tmp_path / "b" / "data" / "targets.txt")
  assert config.data.options["fasta"] == str(tmp_path / "b" / "data" / "genome.fa")
  assert config.data.options["data"] == {"head": "x"}  # not paths: unchanged
  assert config.model.config_file == str(tmp_path / "b" / "model.yaml")
  assert config.run_dir == str(moved)
  assert not run.exists()
  # Moved alone: the recorded relative path stays as recorded (the reader then names it).
  alone = tmp_path / "alone"
  shutil.copytree(moved, alone)
  assert load_train_config(str(alone)).data.options["targets"] == "data/targets.txt"
  assert resolve_recorded_path("/abs/x", str(alone)) == "/abs/x"


def test_model_source_kinds_and_flags_that_do_not_apply(tmp_path):
  run = _recorded_run(tmp_path / "p")
  saved = tmp_path / "export"
  saved.mkdir()
  (saved / "saved_model.pb").write_bytes(b"")
  (tmp_path / "ckpt.index").write_bytes(b"")
  assert ModelSource(str(run)).kind == RUN
  assert ModelSource(str(saved)).kind == SAVED_MODEL
  assert ModelSource(str(tmp_path / "ckpt")).kind == CHECKPOINT
  assert ModelSource("dream_cnn").kind == REGISTRY
  with pytest.raises(ModelSourceError, match="not a registered model name.*dream_cnn"):
    ModelSource("dream_cn").check()
  (tmp_path / "plain").mkdir()
  with pytest.raises(ModelSourceError, match="not a training run directory .*no run.json"):
    ModelSource(str(tmp_path / "plain")).check()
  with pytest.raises(ModelSourceError, match="no such run directory"):
    ModelSource(str(tmp_path / "missing")).check()
  with pytest.raises(ModelSourceError, match="--weights does not apply"):
    ModelSource(str(run), weights="x").check()
  with pytest.raises(ModelSourceError, match="--config does not apply"):
    ModelSource(str(saved), config="x.yaml").check()
  with pytest.raises(ModelSourceError, match="--demo does not apply"):
    ModelSource(str(tmp_path / "ckpt"), demo=True).check()
  with pytest.raises(ModelSourceError, match="--model-name contradicts"):
    ModelSource("enformer", model_name="bpnet").check()
  assert os.path.exists(run / "run.json")
