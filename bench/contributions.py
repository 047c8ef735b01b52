"""Contribution scores at genome scale: regions/s per model and method on the CPU.

    python bench/contributions.py                                   # the default table
    python bench/contributions.py --runs chrombpnet:published:32:16 --methods deeplift
    python bench/contributions.py --strategy mirrored --cpu-devices 2 --runs bpnet:demo:64:16

Each run MODEL:SIZE:REGIONS:BATCH[:METHOD+METHOD...] (SIZE published | demo | tiny; methods
default to --methods; random weights: speed does not depend on them) builds the model in its own
process (its peak RSS is its own; ChromBPNet without its bias model, as `contributions`
explains it) and times every method through the one path `tf-seqmodels contributions` runs,
`analysis.hypothetical.hypothetical_contributions`, with the command's defaults (10
references; DeepSHAP 8 path steps), after one warm-up batch. ISM is timed on `--ism-positions`
central positions (3 mutants each) and reported per region both for that window and
extrapolated to the whole input (length / positions times the cost).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import report  # noqa: E402  (bench/report.py)

METHODS = ("gradient_x_input", "deepshap", "deeplift", "ism")
DEFAULT_RUNS = ("chrombpnet:demo:32:16", "chrombpnet:published:2:2:gradient_x_input+deeplift+ism",
                "enformer:demo:4:2:gradient_x_input+ism", "dream_cnn:published:32:32")


def _child(args, spec: str) -> dict:
  name, size, regions, batch, *methods = spec.split(":")
  regions, batch = int(regions), int(batch)
  methods = methods[0].split("+") if methods else args.methods
  import numpy as np
  import tensorflow as tf
  from tf_seqmodels.analysis import contributions as C
  from tf_seqmodels.analysis.deeplift import UnsupportedOpsError
  from tf_seqmodels.analysis.hypothetical import hypothetical_contributions
  from tf_seqmodels.analysis.inference import AnalysisModel, BatchRunner
  from tf_seqmodels.models import build_model, get_entry, num_trainable_parameters
  from tf_seqmodels.training.strategy import make_strategy

  if args.threads:
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
  info = make_strategy(args.strategy, **({"cpu_devices": args.cpu_devices}
                                         if args.cpu_devices else {}))
  runner = BatchRunner(info)
  entry = get_entry(name)
  config = {"published": entry.config_class, "demo": entry.demo_config or entry.config_class,
            "tiny": entry.smallest_config}[size]()
  tf.random.set_seed(args.seed)
  with info.strategy.scope():
    model = build_model(name, config)
    if hasattr(model, "without_bias"):
      model = model.without_bias()
    analysis = AnalysisModel(model)
  length = analysis.sequence_length
  heads = list(model.head_names)
  head = "logcounts" if "logcounts" in heads else heads[0]
  target = C.Target(head)
  rng = np.random.default_rng(args.seed)
  x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (regions, length))]
  centre = length // 2
  positions = range(centre - args.ism_positions // 2, centre + args.ism_positions // 2)

  def run(method, xs):
    if method == "ism":
      return C.ism(analysis, xs, target, runner, positions=positions, batch_size=batch)
    return hypothetical_contributions(analysis, xs, target, method, runner,
                                      num_references=args.references, steps=args.steps,
                                      batch_size=batch)

  results = {"run": spec, "model": name, "size": size, "sequence_length": length,
             "params": num_trainable_parameters(model), "regions": regions, "batch": batch,
             "head": head, "strategy": info.kind, "replicas": info.num_replicas,
             "threads": args.threads or "default", "methods": {}}
  for method in methods:
    tick = time.perf_counter()
    try:
      run(method, x[:batch])  # warm-up: tracing (and compilation)
    except UnsupportedOpsError as e:  # e.g. DeepLIFT without a rule for an op of the model
      results["methods"][method] = {"unsupported": str(e).splitlines()[0]}
      continue
    warm = time.perf_counter() - tick
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(0, regions, batch):
      run(method, x[i:i + batch])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    entry = {"wall_s": wall, "cpu_s": cpu, "regions_per_s": regions / wall,
             "cpu_s_per_region": cpu / regions, "first_batch_s": warm}
    if method == "ism":
      entry["positions"] = len(positions)
      entry["regions_per_s_whole_input"] = entry["regions_per_s"] * len(positions) / length
    results["methods"][method] = entry
    print(f"  {spec} {method}: {entry['regions_per_s']:.3g} regions/s", file=sys.stderr,
          flush=True)
  results["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  return results


def table(payload: dict):
  """(title, columns, rows, notes) of one results file (printed, and rendered into the README)."""
  a = payload["args"]
  title = (f"contributions: regions/s ({a['references']} references, DeepSHAP {a['steps']} steps, "
           f"ISM on {a['ism_positions']} central positions)")
  rows = []
  for r in payload["results"]:
    for method, m in r["methods"].items():
      if "unsupported" in m:
        rows.append([r["model"], r["size"], f"{r['sequence_length']:,}", r["batch"], method,
                     "not run: ops without a rule (strict mode)", "-", "-", "-",
                     r["peak_rss_gib"]])
        continue
      rows.append([r["model"], r["size"], f"{r['sequence_length']:,}", r["batch"], method,
                   m["regions_per_s"], m["cpu_s_per_region"],
                   m.get("regions_per_s_whole_input", "-"), m["first_batch_s"],
                   r["peak_rss_gib"]])
  return title, ["model", "size", "input bp", "batch", "method", "regions/s", "CPU-s / region",
                 "ISM regions/s, whole input", "1st batch s", "peak RSS GiB"], rows, []


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS),
                      help="MODEL:SIZE:REGIONS:BATCH[:METHOD+...] (SIZE published|demo|tiny)")
  parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
  parser.add_argument("--references", type=int, default=10, help="deepshap / deeplift references")
  parser.add_argument("--steps", type=int, default=8, help="deepshap path steps")
  parser.add_argument("--ism-positions", type=int, default=16)
  parser.add_argument("--threads", type=int, default=0, help="TF threads (0 = TF default)")
  parser.add_argument("--strategy", default="default", choices=("default", "mirrored"))
  parser.add_argument("--cpu-devices", type=int, default=0)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--json", help="results file (default bench/results/contributions.json)")
  parser.add_argument("--one", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.one:
    print(json.dumps(_child(args, args.one)))
    return 0
  env = report.environment()
  results = []
  for spec in args.runs:
    cmd = [sys.executable, os.path.abspath(__file__)] + list(
        argv if argv is not None else sys.argv[1:]) + ["--one", spec]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if proc.returncode:
      raise SystemExit(f"run {spec} failed (exit {proc.returncode})")
    results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
  payload = {"args": {k: v for k, v in vars(args).items() if k != "one"},
             "environment": env, "results": results}
  report.save("contributions", payload, args.json)
  report.show(payload)
  return 0


if __name__ == "__main__":
  sys.exit(main())
