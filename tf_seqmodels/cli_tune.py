"""`tf-seqmodels tune --config search.yaml`: a keras-tuner search over a run config.

The search config is a run config (`run:`) plus a `search:` section (tuning.tuner); the best
configuration is written as `<directory>/<project_name>/best_run.yaml`, ready for
`tf-seqmodels train --config`. Rerunning resumes (finished trials are not redone).
"""

from __future__ import annotations

import sys

from tf_seqmodels.cli_common import positive_int


def add_parser(subparsers) -> None:
  parser = subparsers.add_parser("tune", help="hyper-parameter search (keras-tuner: random, "
                                 "bayesian, hyperband) training each trial with the trainer")
  parser.add_argument("--config", required=True, help="search config (.yaml/.json): run + search")
  parser.add_argument("--algorithm", choices=("random", "bayesian", "hyperband"),
                      help="override search.algorithm")
  parser.add_argument("--max-trials", type=positive_int, help="override search.max_trials")
  parser.add_argument("--directory", help="override search.directory")
  parser.add_argument("--overwrite", action="store_true",
                      help="start the search afresh instead of resuming it")
  parser.set_defaults(func=run)


def run(args) -> int:
  from tf_seqmodels.tuning.tuner import SearchConfig, SearchFailedError, run_search
  config = SearchConfig.load(args.config)
  changes = {k: v for k, v in (("algorithm", args.algorithm), ("max_trials", args.max_trials),
                               ("directory", args.directory)) if v is not None}
  if args.overwrite:
    changes["overwrite"] = True
  if changes:
    config = config.replace(search=config.search.replace(**changes))
  try:
    result = run_search(config)
  except SearchFailedError as e:
    print(f"tf-seqmodels tune: error: {e}", file=sys.stderr)
    return 3
  if not result.trials:  # a distributed-search worker: the chief reports
    print(f"worker finished; the chief writes {result.best_run_config}")
    return 0
  completed = sum(t["status"] == "COMPLETED" for t in result.trials)
  print(f"{completed} of {len(result.trials)} trials completed; best {config.objective()[0]} "
        f"{result.best_score:.4g} with {result.best_values}")
  print(f"next: tf-seqmodels train --config {result.best_run_config}")
  return 0
