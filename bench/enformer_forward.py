"""Enformer forward cost: tf-seqmodels vs the reference (deepmind-research `enformer/`).

    python bench/enformer_forward.py --reference-dir /tmp/enformer        # published config
    python bench/enformer_forward.py --channels 384 --layers 2 --length 65536 \\
        --reference-dir /tmp/enformer                                    # iteration size

Times, in a fresh subprocess each (peak RSS is per process), four ways of running the same
weights on the same input: ours and the reference, each in graph mode (`tf.function`, as the
reference's users run it: its `predict_on_batch`) and under XLA (`jit_compile=True`). Ours
runs through the package's inference path (`analysis.inference.compiled_predictor`, the one
`predict`, `score-variants`, `contributions` and `evaluate` use). The main figure is process
CPU-seconds per forward (all threads; steadier than wall time on a shared machine), median
over `--repeats`; the first call (tracing + XLA compilation) is reported separately.

The reference builds its model (seeded) and perturbs every variable as the fixtures do (a
fresh reference model is degenerate at inference: zero BatchNorm averages, zero attention
output); its variables are saved by module path and loaded into ours, so both compute the
same function and the table shows the largest output difference against the reference.

`--reference-dir` is a local copy of deepmind-research's `enformer/` folder (enformer.py,
attention_module.py), imported at run time, never vendored. The reference needs one patch
under Sonnet >= 2.0.1 (its `accepts_is_training` sees only `*args, **kwargs`), applied in
memory. Results go to bench/results/enformer_forward_<config>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import report  # noqa: E402  (bench/report.py)


def _patch_reference(enformer_module) -> None:
  import inspect

  def accepts_is_training(module):
    fn = module.__call__
    # Sonnet wraps __call__ in a closure over the original function `f`.
    while getattr(fn, "__closure__", None) and "f" in getattr(fn.__code__, "co_freevars", ()):
      fn = fn.__closure__[fn.__code__.co_freevars.index("f")].cell_contents
    return "is_training" in inspect.signature(fn).parameters

  enformer_module.accepts_is_training = accepts_is_training


def _perturb(named_variables, seed: int = 1) -> dict:
  """The fixtures' perturbation: BN averages mean ~ N(0, 0.1), variance ~ U(0.5, 1.5),
  everything else += N(0, max(0.02, 0.1 std)). Returns {name: array} of all variables."""
  import numpy as np
  import tensorflow as tf
  rng = np.random.default_rng(seed)
  values = {}
  for name, variable in named_variables:
    value = variable.numpy()
    if variable.dtype == tf.float32:
      if name.endswith("moving_variance.average"):
        value = rng.uniform(0.5, 1.5, value.shape)
      elif name.endswith("moving_mean.average"):
        value = rng.normal(0.0, 0.1, value.shape)
      elif not name.endswith("._hidden"):
        value = value + rng.normal(0.0, max(0.02, 0.1 * float(value.std())), value.shape)
      value = value.astype(np.float32)
      variable.assign(value)
    values[name] = value
  return values


def _module_paths(module):
  import tensorflow as tf
  for path, variable in module._flatten(  # pylint: disable=protected-access
      recursive=True, with_path=True, predicate=lambda v: isinstance(v, tf.Variable)):
    yield ".".join(str(p) for p in path), variable


def _reference_forward(args):
  import numpy as np
  import tensorflow as tf
  sys.path.insert(0, os.path.abspath(args.reference_dir))
  import enformer as reference  # pylint: disable=import-error
  _patch_reference(reference)
  reference.TARGET_LENGTH = args.target_length
  tf.random.set_seed(0)
  model = reference.Enformer(channels=args.channels, num_transformer_layers=args.layers,
                             num_heads=args.heads, pooling_type=args.pooling)
  spec = tf.TensorSpec([args.batch, args.length, 4], tf.float32)
  snt_build = __import__("sonnet").build
  snt_build(lambda x: model(x, is_training=False), spec)
  values = _perturb(_module_paths(model))
  if args.weights and not os.path.exists(args.weights):
    np.savez(args.weights, **values)
  fn = tf.function(lambda x: model(x, is_training=False), jit_compile=args.mode == "xla")
  return lambda x: {k: v.numpy() for k, v in fn(tf.constant(x)).items()}


def _our_forward(args):
  import numpy as np
  from tf_seqmodels import Enformer, EnformerConfig
  from tf_seqmodels.analysis.inference import compiled_predictor
  config = EnformerConfig(channels=args.channels, num_transformer_layers=args.layers,
                          num_heads=args.heads, pooling_type=args.pooling,
                          sequence_length=args.length, target_length=args.target_length)
  model = Enformer(config)
  model.ensure_built()
  if args.weights and os.path.exists(args.weights):
    from tf_seqmodels.convert import load_reference_weights
    with np.load(args.weights) as weights:
      load_reference_weights(model, dict(weights))
  else:
    _perturb(_module_paths(model))
  return compiled_predictor(model, jit_compile=args.mode == "xla")


def measure(args) -> dict:
  import numpy as np
  forward = (_our_forward if args.impl == "ours" else _reference_forward)(args)
  rng = np.random.default_rng(0)
  x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (args.batch, args.length))]
  t0, c0 = time.perf_counter(), time.process_time()
  out = forward(x)
  first_wall, first_cpu = time.perf_counter() - t0, time.process_time() - c0
  walls, cpus = [], []
  for _ in range(args.repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    out = forward(x)
    walls.append(time.perf_counter() - t0)
    cpus.append(time.process_time() - c0)
  if args.outputs:
    np.savez(args.outputs, **out)
  return {"impl": args.impl, "mode": args.mode, "first_call_cpu_s": first_cpu,
          "first_call_wall_s": first_wall, "median_cpu_s": statistics.median(cpus),
          "median_wall_s": statistics.median(walls), "cpu_s": cpus, "wall_s": walls,
          "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


DEFAULT_MODE = "xla"  # the package's default inference path for Enformer
SPEEDUPS = {"reference graph / ours (default: xla)": (("reference", "graph"), ("ours", DEFAULT_MODE)),
            "reference xla / ours xla": (("reference", "xla"), ("ours", "xla")),
            "reference graph / ours graph": (("reference", "graph"), ("ours", "graph"))}


def speedups(results: list) -> dict:
  """CPU-second ratios reference / ours for the pairs of SPEEDUPS that were measured."""
  by = {(r["impl"], r["mode"]): r for r in results}
  return {label: by[ref]["median_cpu_s"] / by[ours]["median_cpu_s"]
          for label, (ref, ours) in SPEEDUPS.items() if ref in by and ours in by}


def table(payload: dict):
  """(title, columns, rows, notes) of one results file (printed, and rendered into the README)."""
  a, results = payload["args"], payload["results"]
  title = (f"Enformer forward: {a['channels']} channels, {a['layers']} layers, {a['heads']} heads, "
           f"{a['pooling']} pooling, {a['length']:,} bp, batch {a['batch']}, fp32, median of "
           f"{a['repeats']}")
  first = f"{results[0]['impl']} {results[0]['mode']}"
  rows = [[r["impl"], r["mode"], r["median_cpu_s"], r["median_wall_s"], r["first_call_cpu_s"],
           r["first_call_wall_s"], r["peak_rss_gib"], f"{r['max_abs_diff_vs_first']:.2g}"]
          for r in results]
  notes = [f"Speed-up in CPU-seconds, {label}: **{ratio:.2f}x**"
           for label, ratio in payload["speedups_cpu_s"].items()]
  return title, ["implementation", "mode", "CPU-s / forward", "wall s / forward",
                 "first call CPU-s", "first call wall s", "peak RSS GiB",
                 f"max abs diff vs {first}"], rows, notes


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--channels", type=int, default=1536)
  p.add_argument("--layers", type=int, default=11)
  p.add_argument("--heads", type=int, default=8)
  p.add_argument("--pooling", default="attention", choices=["attention", "max"])
  p.add_argument("--length", type=int, default=196_608)
  p.add_argument("--target-length", type=int, default=896)
  p.add_argument("--batch", type=int, default=1)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--modes", nargs="+", default=["graph", "xla"], choices=["graph", "xla"])
  p.add_argument("--reference-dir", help="local copy of deepmind-research/enformer")
  p.add_argument("--json", help="results file (default bench/results/enformer_forward_<config>.json)")
  # One measurement per child process:
  p.add_argument("--impl", choices=["ours", "reference"], help=argparse.SUPPRESS)
  p.add_argument("--mode", choices=["graph", "xla"], help=argparse.SUPPRESS)
  p.add_argument("--weights", help=argparse.SUPPRESS)
  p.add_argument("--outputs", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.impl:
    print(json.dumps(measure(args)))
    return 0

  import numpy as np
  import sonnet  # noqa: F401  (its version goes into the report)
  env = report.environment()
  tag = f"c{args.channels}_l{args.layers}_{args.length}bp_b{args.batch}"
  runs = [(impl, mode) for impl in (["reference"] if args.reference_dir else []) + ["ours"]
          for mode in args.modes]
  results = []
  with tempfile.TemporaryDirectory() as tmp:
    weights = os.path.join(tmp, "weights.npz")
    for impl, mode in runs:
      outputs = os.path.join(tmp, f"{impl}_{mode}.npz")
      cmd = [sys.executable, os.path.abspath(__file__)] + (argv if argv is not None else sys.argv[1:])
      cmd += ["--impl", impl, "--mode", mode, "--weights", weights, "--outputs", outputs]
      proc = subprocess.run(cmd, capture_output=True, text=True)
      if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{impl} {mode} run failed (exit {proc.returncode})")
      result = json.loads(proc.stdout.strip().splitlines()[-1])
      with np.load(outputs) as out:
        result["outputs"] = {k: out[k] for k in out}
      results.append(result)
  base = results[0]["outputs"]
  for r in results:
    r["max_abs_diff_vs_first"] = max(float(np.abs(r["outputs"][k] - base[k]).max()) for k in base)
    del r["outputs"]
  payload = {"args": {k: v for k, v in vars(args).items()
                      if k not in ("impl", "mode", "weights", "outputs")},
             "environment": env, "results": results, "speedups_cpu_s": speedups(results)}
  report.save(f"enformer_forward_{tag}", payload, args.json)
  report.show(payload)
  return 0


if __name__ == "__main__":
  sys.exit(main())
