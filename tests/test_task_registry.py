"""The task registry: a task type's options, task class, data builders and evaluator in one
registration, read by run configs, data builders, the teacher data and `evaluate`."""

import numpy as np
import pytest

from tf_seqmodels.config import ConfigError
from tf_seqmodels.tasks import available_tasks, get_task_type, register_task
from tf_seqmodels.tasks.dream import RegressionTask
from tf_seqmodels.training.data_builders import (BuildContext, DataSection, TrainingData,
                                                 build_data)
from tf_seqmodels.training.run_config import TaskSection, build_task


def test_the_built_in_task_types_are_registered_with_everything_they_need():
  assert available_tasks() == ["chrombpnet", "chromoformer", "dream_soft_bin", "regression",
                               "tracks"]
  from tf_seqmodels.evaluation.registry import available_evaluators, get_evaluator
  assert set(available_tasks()) <= set(available_evaluators())
  for name in available_tasks():
    entry = get_task_type(name)
    assert entry.data_builders and entry.evaluator
    # Teacher data is one-hot DNA: every DNA task makes targets from a teacher's outputs.
    assert (entry.teacher_targets is None) == (name == "chromoformer")
    assert get_evaluator(name).task_type == name


def test_task_sections_are_checked_against_the_registry():
  with pytest.raises(ConfigError, match=r"unknown task type 'trackz'; available: \['chrombpnet'"):
    TaskSection(type="trackz")
  with pytest.raises(ConfigError, match=r"task.options \(tracks\): unknown key\(s\) \['head'\]; "
                     r"valid keys are \['heads', 'weights'\]"):
    TaskSection.from_dict({"type": "tracks", "options": {"head": ["x"]}})
  with pytest.raises(ConfigError, match="'softmax' is not one of"):
    TaskSection.from_dict({"type": "dream_soft_bin", "options": {"loss": "softmax"}})
  data = TrainingData(None, None, 1, ("dev", "hk"), info={"counts_loss_weight": 4.0})
  task = build_task(TaskSection(type="regression"), data)
  assert isinstance(task, RegressionTask) and list(task.targets) == ["dev", "hk"]
  assert build_task(TaskSection(type="chrombpnet"), data).counts_loss_weight == 4.0
  assert build_task(TaskSection(type="chrombpnet", options={"counts_loss_weight": 2}),
                    data).counts_loss_weight == 2.0
  with pytest.raises(ConfigError, match="counts_loss_weight is neither given"):
    build_task(TaskSection(type="chrombpnet"), TrainingData(None, None, 1, ("profile",)))


def test_data_builders_feed_the_task_types_that_name_them():
  context = BuildContext(None, None, None, "tracks", {}, 0)
  with pytest.raises(ConfigError, match=r"data.type 'table' cannot feed task type 'tracks'; its "
                     r"data builders are \['multi', 'teacher', 'tracks', 'basenji'\]"):
    build_data(DataSection(type="table"), context)


def test_teacher_targets_come_from_the_task_registration():
  rng = np.random.default_rng(0)
  outputs = {"profile": rng.normal(size=(4, 16)), "logcounts": rng.normal(size=(4, 1))}
  targets = get_task_type("chrombpnet").teacher_targets(
      outputs, get_task_type("chrombpnet").parse_options({}), rng)
  assert set(targets) == {"profile", "logcounts", "is_peak"}
  np.testing.assert_allclose(targets["logcounts"][:, 0], np.log1p(targets["profile"].sum(-1)))


def test_a_task_type_is_registered_once():
  entry = get_task_type("tracks")
  with pytest.raises(ValueError, match="already registered"):
    register_task("tracks", entry.options, entry.task_class)(entry.factory)
