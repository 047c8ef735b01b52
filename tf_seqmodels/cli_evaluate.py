"""`tf-seqmodels evaluate`: the paper's evaluation of a trained run -> JSON + Markdown + PNG.

    tf-seqmodels evaluate --config run.yaml [--weights RUN_DIR|CKPT] [--split test]
                          [--options eval.yaml] [--out DIR]
    tf-seqmodels evaluate --model RUN_DIR [--data data.yaml] [--split test] ...
    tf-seqmodels evaluate --model CHECKPOINT --config run.yaml ...

The config is the one `tf-seqmodels train` read (model + task + data), or, with `--model`,
the one recorded in the run directory's run.json; `--data` replaces its data section (a
YAML/JSON file of the `data:` mapping) to evaluate the model on other data. The evaluator is
chosen by task.type (`--list` shows them); `--options` is a YAML/JSON mapping of the
evaluator's options (e.g. tracks: {augmentation: {shifts: [-2, -1, 0, 1]}, tss: tss.tsv}).
"""

from __future__ import annotations

from tf_seqmodels.model_source import add_model_source_arguments


def add_parser(subparsers) -> None:
  p = subparsers.add_parser("evaluate", help="evaluate a trained run as in the model's paper "
                            "(report as JSON + Markdown + PNG plots)")
  # The shared model flags; --config is the run's training config (model + task + data), and
  # --weights defaults to its run_dir.
  add_model_source_arguments(p, demo=False, required=False)
  p.add_argument("--data", help="a data section (.yaml/.json) replacing the config's")
  p.add_argument("--split", default="valid", help="valid (default), test or train")
  p.add_argument("--options", help="evaluator options file (.yaml/.json)")
  p.add_argument("--out", help="report directory (default: <run_dir>/evaluation_<split>)")
  p.add_argument("--strategy", choices=("default", "mirrored", "multiworker", "tpu"),
                 help="override the config's strategy.kind")
  p.add_argument("--list", action="store_true", help="list the evaluators and exit")
  p.add_argument("--quiet", action="store_true", help="no progress bars")
  p.set_defaults(func=run)


def _read_options(path):
  from tf_seqmodels.config import read_mapping_file
  if not path:
    return {}
  return read_mapping_file(path, "evaluator options", allow_empty=True)


def _config_and_weights(args):
  """(training config, weights) of the model source flags (`model_source`)."""
  from tf_seqmodels.model_source import (CHECKPOINT, REGISTRY, RUN, SAVED_MODEL, ModelSource,
                                         ModelSourceError, load_train_config)
  from tf_seqmodels.training.run_config import TrainConfig
  if not args.model:
    if not args.config:
      raise ValueError("evaluate needs --model (a run directory, or a checkpoint with --config) "
                       "or --config (the run's training config)")
    return TrainConfig.load(args.config), args.weights
  source = ModelSource.from_args(args)
  kind = source.check()
  if kind == SAVED_MODEL:
    raise ModelSourceError(f"--model {args.model} is a SavedModel: evaluate needs the run's "
                           f"task and data (a run directory, or a checkpoint with --config "
                           f"TRAIN.yaml)")
  if kind == RUN:
    return load_train_config(args.model), args.model
  if not args.config:
    raise ModelSourceError(f"--model {args.model} is a {kind}: give the training config it was "
                           f"trained with (--config TRAIN.yaml: model, task and data)")
  config = TrainConfig.load(args.config)
  if kind == REGISTRY and config.model.name != args.model:
    raise ModelSourceError(f"--model {args.model} but {args.config} trains "
                           f"{config.model.name!r}")
  return config, args.model if kind == CHECKPOINT else args.weights


def run(args) -> int:
  from tf_seqmodels.evaluation.registry import available_evaluators, get_evaluator
  if args.list:
    for name in available_evaluators():
      print(f"{name:16s} {get_evaluator(name).description}")
    return 0
  from tf_seqmodels.evaluation.run import evaluate_run
  from tf_seqmodels.training.run_config import DataSection
  config, weights = _config_and_weights(args)
  if args.data:
    config = config.replace(data=DataSection.load(args.data))
  if args.strategy:
    config = config.replace(strategy=config.strategy.replace(kind=args.strategy))
  report, paths = evaluate_run(config, weights=weights, which=args.which, split=args.split,
                               options=_read_options(args.options), out_dir=args.out,
                               progress=not args.quiet)
  for key, value in report.metrics.items():
    print(f"{key:40s} {value:.4f}" if isinstance(value, float) else f"{key:40s} {value}")
  print(f"report: {paths['markdown']}")
  return 0
