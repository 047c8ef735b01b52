"""`tf-seqmodels evaluate`: the paper's evaluation of a trained run -> JSON + Markdown + PNG.

    tf-seqmodels evaluate --config run.yaml [--weights RUN_DIR|CKPT] [--split test]
                          [--options eval.yaml] [--out DIR]
    tf-seqmodels evaluate --model RUN_DIR [--data data.yaml] [--split test] ...

The config is the one `tf-seqmodels train` read (model + task + data), or, with `--model`,
the one recorded in the run directory's run.json; `--data` replaces its data section (a
YAML/JSON file of the `data:` mapping) to evaluate the model on other data. The evaluator is
chosen by task.type (`--list` shows them); `--options` is a YAML/JSON mapping of the
evaluator's options (e.g. tracks: {augmentation: {shifts: [-2, -1, 0, 1]}, tss: tss.tsv}).
"""

from __future__ import annotations


def add_parser(subparsers) -> None:
  p = subparsers.add_parser("evaluate", help="evaluate a trained run as in the model's paper "
                            "(report as JSON + Markdown + PNG plots)")
  p.add_argument("--config", help="the training config (.yaml/.json) of the run")
  p.add_argument("--model", help="a training run directory: its recorded config and weights "
                 "(instead of --config)")
  p.add_argument("--data", help="a data section (.yaml/.json) replacing the config's")
  p.add_argument("--weights", help="run directory or checkpoint prefix (default: the config's "
                 "run_dir)")
  p.add_argument("--which", choices=("best", "latest"), default="best",
                 help="checkpoint of a run directory")
  p.add_argument("--split", default="valid", help="valid (default), test or train")
  p.add_argument("--options", help="evaluator options file (.yaml/.json)")
  p.add_argument("--out", help="report directory (default: <run_dir>/evaluation_<split>)")
  p.add_argument("--strategy", choices=("default", "mirrored", "multiworker", "tpu"),
                 help="override the config's strategy.kind")
  p.add_argument("--list", action="store_true", help="list the evaluators and exit")
  p.add_argument("--quiet", action="store_true", help="no progress bars")
  p.set_defaults(func=run)


def _read_options(path):
  import json
  import os

  import yaml
  if not path:
    return {}
  if not os.path.exists(path):
    raise FileNotFoundError(f"evaluator options file not found: {path}")
  with open(path) as f:
    data = json.load(f) if path.endswith(".json") else yaml.safe_load(f)
  if data is None:
    return {}
  if not isinstance(data, dict):
    raise ValueError(f"{path}: evaluator options must be a mapping, got {type(data).__name__}")
  return data


def _recorded_config(run_dir: str):
  """The training config recorded in `run_dir/run.json` by `tf-seqmodels train`."""
  from tf_seqmodels.training.run_config import read_train_config
  try:
    return read_train_config(run_dir)
  except FileNotFoundError as e:
    raise FileNotFoundError(f"{e}; give --config with --weights instead") from None
  except ValueError as e:  # no recorded config, or one that no longer parses
    raise ValueError(f"{e}; give --config with --weights instead") from None


def run(args) -> int:
  from tf_seqmodels.evaluation.registry import available_evaluators, get_evaluator
  if args.list:
    for name in available_evaluators():
      print(f"{name:16s} {get_evaluator(name).description}")
    return 0
  from tf_seqmodels.evaluation.run import evaluate_run
  from tf_seqmodels.training.run_config import DataSection, TrainConfig
  if bool(args.config) == bool(args.model):
    raise ValueError("evaluate needs either --config (the run's training config) or --model "
                     "(the run directory)")
  config = TrainConfig.load(args.config) if args.config else _recorded_config(args.model)
  if args.model and not args.weights:
    args.weights = args.model
  if args.data:
    config = config.replace(data=DataSection.load(args.data))
  if args.strategy:
    config = config.replace(strategy=config.strategy.replace(kind=args.strategy))
  report, paths = evaluate_run(config, weights=args.weights, which=args.which, split=args.split,
                               options=_read_options(args.options), out_dir=args.out,
                               progress=not args.quiet)
  for key, value in report.metrics.items():
    print(f"{key:40s} {value:.4f}" if isinstance(value, float) else f"{key:40s} {value}")
  print(f"report: {paths['markdown']}")
  return 0
