"""Contribution-score and variant-scoring throughput (regions/s, variants/s).

Builds a registered model at its demo size (random weights: speed does not depend on them),
cuts windows of its input length from a random genome and times each method after one
warm-up batch. Prints one line per method and writes JSON with --output.

    python bench/contributions.py                                   # chrombpnet (no bias), CPU
    python bench/contributions.py --model enformer --regions 32 --methods gradient_x_input
    python bench/contributions.py --strategy mirrored --cpu-devices 2

ISM is timed on `--ism-positions` central positions (3 mutants each); its regions/s is per
that window, so full-length ISM costs length / ism-positions times more.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

METHODS = ("gradient_x_input", "deepshap", "deeplift", "ism", "variants")


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="chrombpnet")
  parser.add_argument("--config", help="model config file (default: the demo config); e.g. "
                      "`tf-seqmodels config chrombpnet -o full.yaml` for the published size")
  parser.add_argument("--head", default=None, help="target head (default: logcounts or first)")
  parser.add_argument("--regions", type=int, default=64)
  parser.add_argument("--batch-size", type=int, default=16)
  parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
  parser.add_argument("--references", type=int, default=4, help="deepshap / deeplift references")
  parser.add_argument("--steps", type=int, default=4, help="deepshap path steps")
  parser.add_argument("--ism-positions", type=int, default=32)
  parser.add_argument("--strategy", default="default", choices=("default", "mirrored"))
  parser.add_argument("--cpu-devices", type=int, default=0)
  parser.add_argument("--output", help="JSON results")
  args = parser.parse_args()

  import numpy as np
  import tensorflow as tf
  from tf_seqmodels.analysis import contributions as C
  from tf_seqmodels.analysis.deeplift import deeplift
  from tf_seqmodels.analysis.inference import AnalysisModel, BatchRunner
  from tf_seqmodels.analysis.variants import (VariantScoringConfig, averaged_predictions)
  from tf_seqmodels.models import build_model, get_entry
  from tf_seqmodels.training.strategy import make_strategy

  options = {"cpu_devices": args.cpu_devices} if args.cpu_devices else {}
  info = make_strategy(args.strategy, **options)
  runner = BatchRunner(info)
  with info.strategy.scope():
    entry = get_entry(args.model)
    config = entry.config_class.load(args.config) if args.config else entry.demo_config()
    model = build_model(args.model, config)
    if hasattr(model, "without_bias"):
      model = model.without_bias()
    analysis = AnalysisModel(model)
  length = analysis.sequence_length
  heads = list(model.head_names)
  head = args.head or ("logcounts" if "logcounts" in heads else heads[0])
  target = C.Target(head)
  rng = np.random.default_rng(0)
  x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (args.regions, length))]
  centre = length // 2
  positions = range(centre - args.ism_positions // 2, centre + args.ism_positions // 2)
  runs = {
      "gradient_x_input": lambda xs: C.gradient_x_input(analysis, xs, target, runner, args.batch_size),
      "deepshap": lambda xs: C.deepshap(analysis, xs, target, runner, args.references, args.steps,
                                        batch_size=args.batch_size * 4),
      "deeplift": lambda xs: deeplift(analysis, xs, target, runner, args.references,
                                      batch_size=args.batch_size * 4),
      "ism": lambda xs: C.ism(analysis, xs, target, runner, positions=positions,
                              batch_size=args.batch_size * 4),
      "variants": lambda xs: averaged_predictions(
          analysis, runner, np.argmax(xs, -1).astype(np.int8)[:, None],
          VariantScoringConfig(), [head]),
  }
  results = {"model": args.model, "length": length, "strategy": info.kind,
             "replicas": info.num_replicas, "devices": [d.name for d in tf.config.list_logical_devices()],
             "methods": {}}
  for method in args.methods:
    runs[method](x[:args.batch_size])  # warm-up: tracing
    start = time.perf_counter()
    for i in range(0, args.regions, args.batch_size):
      runs[method](x[i:i + args.batch_size])
    seconds = time.perf_counter() - start
    rate = args.regions / seconds
    unit = "sequences/s (ref or alt, RC-averaged)" if method == "variants" else "regions/s"
    results["methods"][method] = {"seconds": seconds, "per_second": rate}
    print(f"{args.model} L={length} {info.kind} x{info.num_replicas}: {method:17s} "
          f"{rate:9.2f} {unit}")
  if args.output:
    tmp = args.output + ".tmp"
    with open(tmp, "w") as f:
      json.dump(results, f, indent=2)
    os.replace(tmp, args.output)
  return 0


if __name__ == "__main__":
  sys.exit(main())
