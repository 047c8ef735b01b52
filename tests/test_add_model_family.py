"""The README's "Adding a model family" checklist, followed in a test: a toy family (config,
model, demo config, search space) is defined and registered here, in one place, and is then
trained, evaluated and given a tuning space through the run assembly, with no other file of
the package touched.

The family is registered inside the test (the registry is restored afterwards), the way a
model module registers itself when `tf_seqmodels.models` imports it."""

import dataclasses
import os

import pytest
import sonnet as snt
import tensorflow as tf

from tf_seqmodels.config import Config
from tf_seqmodels.models import registry
from tf_seqmodels.models.base import SequenceModel


# --- the family: what the checklist's model file holds --------------------------------------------
@dataclasses.dataclass(frozen=True)
class ToyConfig(Config):
  """A convolution, mean pooling and one scalar head per output."""

  sequence_length: int = 32
  channels: int = 8
  kernel_size: int = 5
  heads: tuple[str, ...] = ("activity",)


def toy_demo_config() -> ToyConfig:
  return ToyConfig(channels=4)


def register_toy_family():
  @registry.register_model(
      "toy_family", ToyConfig, "a toy family registered by a test", demo_config=toy_demo_config,
      search_space={"model.config.channels": {"type": "choice", "values": [4, 8]},
                    "optimizer.learning_rate": {"type": "float", "min": 1e-3, "max": 1e-2,
                                                "sampling": "log"}},
      recipe={"max_learning_rate": 0.01})
  class ToyModel(SequenceModel):
    def __init__(self, config: ToyConfig, name=None):
      super().__init__(config, name=name)
      self.conv = snt.Conv1D(config.channels, config.kernel_size, name="conv")
      self.heads = {h: snt.Linear(1, name=f"head_{h}") for h in config.heads}

    @property
    def input_channels(self) -> int:
      return 4

    @property
    def head_names(self):
      return tuple(self.config.heads)

    def embed(self, inputs, is_training):
      return tf.reduce_mean(tf.nn.relu(self.conv(inputs)), axis=1)

    def __call__(self, inputs, is_training):
      hidden = self.embed(inputs, is_training)
      return {h: head(hidden)[:, 0] for h, head in self.heads.items()}

  return ToyModel


@pytest.fixture
def toy_family(monkeypatch):
  # The registry is global: the toy registration is undone when the test ends.
  monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
  return register_toy_family()


def _run_config(tmp_path):
  from tf_seqmodels.training.run_config import TrainConfig
  return TrainConfig.from_dict({
      "model": {"name": "toy_family", "demo": True},
      "task": {"type": "regression"},
      "data": {"type": "teacher", "batch_size": 16,
               "options": {"examples": 64, "valid_examples": 32}},
      "optimizer": {"name": "adamw", "learning_rate": 0.01},
      "trainer": {"epochs": 3, "select_best_by": "pearson", "progress": False,
                  "tensorboard": False},
      "run_dir": str(tmp_path / "run"),
  })


def test_a_registered_family_trains_evaluates_and_tunes_through_the_run_assembly(
    toy_family, tmp_path):
  from tf_seqmodels.evaluation import evaluate_run
  from tf_seqmodels.models import available_models, get_entry
  from tf_seqmodels.model_source import ModelSource, load_model
  from tf_seqmodels.training import DreamTrainingConfig, assemble_run
  from tf_seqmodels.training.run_config import read_train_config, run_training
  from tf_seqmodels.tuning.spaces import search_space
  from tf_seqmodels.tuning.tuner import SearchConfig, trial_run_config

  assert "toy_family" in available_models()
  config = _run_config(tmp_path)
  run = assemble_run(config)
  assert isinstance(run.model, toy_family) and run.model_config == toy_demo_config()
  assert run.metric_directions()["pearson"] is True

  # Train (the `tf-seqmodels train` path) and read the run back from its directory.
  history = run_training(config)
  assert history["steps"] == 12 and history["best_value"] is not None
  assert read_train_config(config.run_dir) == config
  loaded = load_model(ModelSource(config.run_dir))  # the one model loader of every command
  assert loaded.name == "toy_family" and isinstance(loaded.model, toy_family)

  # Evaluate (the `tf-seqmodels evaluate` path): the task type's evaluator.
  report, paths = evaluate_run(config, split="valid", out_dir=str(tmp_path / "eval"),
                               progress=False)
  assert os.path.exists(paths["markdown"]) and os.path.exists(paths["json"])
  assert report.metadata["model"] == "toy_family"
  assert report.metadata["higher_is_better"]["pearson"] == "higher"
  assert report.metadata["higher_is_better"]["mse/activity"] == "lower"
  assert any("pearson" in key for key in report.metrics)

  # Tune (the `tf-seqmodels tune` path): the space the family registered.
  space = search_space("toy_family")
  assert set(space) == {"model.config.channels", "optimizer.learning_rate"}
  assert space == dict(get_entry("toy_family").search_space)
  search = SearchConfig.from_dict({"run": config.to_dict(), "search": {"max_trials": 1}})
  assert search.space() == space and search.objective() == ("val_pearson", "max")
  trial = trial_run_config(search, {"model.config.channels": 8, "optimizer.learning_rate": 0.005},
                           str(tmp_path / "trial"))
  assert trial.model.config["channels"] == 8 and trial.optimizer.learning_rate == 0.005
  # Recipe defaults registered with the family.
  assert DreamTrainingConfig.for_model("toy_family").max_learning_rate == 0.01
