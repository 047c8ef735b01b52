"""Evaluate a trained run: the training config's model + task + data, the trained weights,
one split, the evaluator of the task type -> report files.

    report, paths = evaluate_run(TrainConfig.load("run.yaml"), weights="runs/x", split="test",
                                 out_dir="runs/x/eval_test", options={...})
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional

from tf_seqmodels.config import ConfigError
from tf_seqmodels.evaluation.context import EvaluationContext
from tf_seqmodels.evaluation.registry import evaluator_options, get_evaluator
from tf_seqmodels.evaluation.report import Report


def restore_weights(model, path: str, which: str = "best", name: str = "the model") -> str:
  """Loads a run directory's best / latest checkpoint, or a checkpoint prefix / directory
  written by `save_checkpoint`, into `model`; returns the prefix read (the one model loader's
  `model_source.restore_into`: a checkpoint of another config is a short error)."""
  from tf_seqmodels.model_source import restore_into
  return restore_into(model, name, path, which)


def _split_dataset(source, split: str, name: str):
  if split == "valid":
    dataset = source.valid
  elif split == "train":
    dataset = source.train
  else:
    dataset = source.eval_splits.get(split)
  if dataset is None:
    available = ["train"] + (["valid"] if source.valid is not None else []) + sorted(source.eval_splits)
    raise ConfigError(f"data source {name!r} has no {split!r} split; available: {available}")
  return dataset


def evaluate_run(config, *, weights: Optional[str] = None, which: str = "best",
                 split: str = "valid", options: Optional[Mapping[str, Any]] = None,
                 out_dir: Optional[str] = None, progress: bool = True) -> tuple[Report, dict]:
  """Builds the run's model, data and task, restores `weights` (default: the run directory),
  evaluates `split` with the task type's evaluator and writes the report to `out_dir`
  (default: <run_dir>/evaluation_<split>).

  Returns:
    (report, {kind: path} of the written files).
  """
  from tf_seqmodels.data.strands import data_track_permutations
  from tf_seqmodels.models.registry import build_model
  from tf_seqmodels.training.data_builders import BuildContext, build_data
  from tf_seqmodels.training.run_config import _model_config, build_task
  from tf_seqmodels.training.strategy import make_strategy
  from tf_seqmodels.training.trainer import set_determinism

  entry = get_evaluator(config.task.type)
  typed_options = evaluator_options(config.task.type, options)
  info = make_strategy(config.strategy)
  set_determinism(config.trainer.seed, config.trainer.deterministic)
  model_config = _model_config(config.model)
  with info.strategy.scope():
    model = build_model(config.model.name, model_config)
    read = restore_weights(model, weights or config.run_dir, which, config.model.name)
  context = BuildContext(model, config.model.name, model_config, config.task.type,
                         config.task.options, config.trainer.seed)
  sources = build_data(config.data, context)
  # Strand pairs of the run's stranded track heads (CAGE +/-): test-time augmentation swaps
  # them on reverse-complement copies.
  track_permutations = data_track_permutations(config.data)
  report = Report(f"{config.model.name} ({config.task.type}, {split})", metadata={
      "model": config.model.name, "task": config.task.type, "split": split, "weights": read,
      "strategy": config.strategy.kind, "replicas": info.num_replicas})
  for name, source in sources.items():
    eval_context = EvaluationContext(
        model=model, task=build_task(config.task, source),
        dataset=_split_dataset(source, split, name), split=split, strategy=info,
        data_info={"track_permutations": track_permutations, **source.info,
                   "data_options": dict(config.data.options),
                   "eval_batch_size": config.data.eval_batch},
        title=config.model.name, progress=progress)
    part = entry.evaluate(eval_context, typed_options)
    for section in part.sections:
      if len(sources) > 1:
        section.name = f"{name}/{section.name}"
      report.add_section(section)
  paths = report.write(out_dir or os.path.join(config.run_dir, f"evaluation_{split}"))
  return report, paths
