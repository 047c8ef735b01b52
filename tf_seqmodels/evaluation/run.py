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
  from tf_seqmodels.training.run_config import assemble_run

  entry = get_evaluator(config.task.type)
  typed_options = evaluator_options(config.task.type, options)
  run = assemble_run(config, weights=weights or config.run_dir, which=which)
  info, model, sources, read = run.info, run.model, run.data, run.weights
  # Strand pairs of the run's stranded track heads (CAGE +/-): test-time augmentation swaps
  # them on reverse-complement copies.
  track_permutations = data_track_permutations(config.data)
  report = Report(f"{config.model.name} ({config.task.type}, {split})", metadata={
      "model": config.model.name, "task": config.task.type, "split": split, "weights": read,
      "strategy": config.strategy.kind, "replicas": info.num_replicas,
      # What the task declares for its metrics (the trainer's selection reads the same).
      "higher_is_better": {name: "higher" if higher else "lower"
                           for name, higher in run.metric_directions().items()}})
  for name, source in sources.items():
    eval_context = EvaluationContext(
        model=model, task=run.tasks[name],
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
