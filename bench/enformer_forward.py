"""Enformer forward throughput and peak memory: tf-seqmodels vs. the reference implementation.

Each measurement runs in a fresh subprocess (peak RSS / GPU peak memory are per process),
with identical config, length, batch and input. Prints one table and the ours/reference
ratios.

    python bench/enformer_forward.py                              # published config, 196,608 bp
    python bench/enformer_forward.py --channels 384 --layers 2 --length 131072 --xla
    python bench/enformer_forward.py --reference-dir /path/to/deepmind-research/enformer

`--reference-dir` points at a local copy of deepmind-research's `enformer/` folder
(enformer.py, attention_module.py); it is imported at run time and never vendored. The
reference needs one compatibility patch under Sonnet >= 2.0.1 (its `accepts_is_training`
sees only `*args, **kwargs`), applied here in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _patch_reference(enformer_module) -> None:
  import inspect

  def accepts_is_training(module):
    fn = module.__call__
    # Sonnet wraps __call__ in a closure over the original function `f`.
    while getattr(fn, "__closure__", None) and "f" in getattr(fn.__code__, "co_freevars", ()):
      fn = fn.__closure__[fn.__code__.co_freevars.index("f")].cell_contents
    return "is_training" in inspect.signature(fn).parameters

  enformer_module.accepts_is_training = accepts_is_training


def _build_model(impl: str, args):
  import tensorflow as tf
  if impl == "ours":
    from tf_seqmodels import Enformer, EnformerConfig
    config = EnformerConfig(channels=args.channels, num_transformer_layers=args.layers,
                            num_heads=args.heads, pooling_type=args.pooling,
                            sequence_length=args.length, target_length=args.target_length)
    model = Enformer(config)
    return lambda x: model(x, is_training=False)
  sys.path.insert(0, os.path.abspath(args.reference_dir))
  import enformer as reference  # pylint: disable=import-error
  _patch_reference(reference)
  reference.TARGET_LENGTH = args.target_length
  model = reference.Enformer(channels=args.channels, num_transformer_layers=args.layers,
                             num_heads=args.heads, pooling_type=args.pooling)
  return lambda x: model(x, is_training=False)


def measure(impl: str, args) -> dict:
  import numpy as np
  import tensorflow as tf
  tf.random.set_seed(0)
  forward = _build_model(impl, args)
  fn = tf.function(forward, jit_compile=args.xla)
  rng = np.random.default_rng(0)
  x = tf.constant(np.eye(4, dtype=np.float32)[rng.integers(0, 4, (args.batch, args.length))])
  t0 = time.perf_counter()
  out = fn(x)
  first = time.perf_counter() - t0
  times, cpu_times = [], []
  for _ in range(args.repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(x)
    _ = {k: v.numpy() for k, v in out.items()}  # wait for the result
    times.append(time.perf_counter() - t0)
    # CPU-seconds of all threads: unlike wall time, stable when the machine is shared.
    cpu_times.append(time.process_time() - c0)
  gpus = tf.config.list_physical_devices("GPU")
  peak = (tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**30 if gpus
          else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
  median = statistics.median(times)
  return {"impl": impl, "first_call_s": first, "median_s": median,
          "median_cpu_s": statistics.median(cpu_times),
          "sequences_per_s": args.batch / median, "peak_gib": peak,
          "memory": "GPU peak" if gpus else "peak RSS", "device": "GPU" if gpus else "CPU"}


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
  p.add_argument("--xla", action="store_true", help="tf.function(jit_compile=True)")
  p.add_argument("--reference-dir", help="local copy of deepmind-research/enformer to compare with")
  p.add_argument("--impl", choices=["ours", "reference"], help=argparse.SUPPRESS)
  p.add_argument("--json", help="also write the results to this file")
  args = p.parse_args(argv)

  if args.impl:  # child process: one measurement, JSON on the last stdout line
    print(json.dumps(measure(args.impl, args)))
    return 0

  impls = ["ours"] + (["reference"] if args.reference_dir else [])
  results = []
  for impl in impls:
    cmd = [sys.executable, os.path.abspath(__file__), "--impl", impl] + [
        a for a in (argv if argv is not None else sys.argv[1:])]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
      sys.stderr.write(proc.stderr[-4000:])
      raise SystemExit(f"{impl} run failed (exit {proc.returncode})")
    results.append(json.loads(proc.stdout.strip().splitlines()[-1]))

  print(f"Enformer forward: channels={args.channels} layers={args.layers} heads={args.heads} "
        f"pooling={args.pooling} length={args.length} batch={args.batch} "
        f"xla={args.xla} device={results[0]['device']}")
  print(f"{'impl':10s} {'first call s':>13s} {'median s':>9s} {'CPU s':>8s} {'seq/s':>8s} "
        f"{results[0]['memory'] + ' GiB':>14s}")
  for r in results:
    print(f"{r['impl']:10s} {r['first_call_s']:13.2f} {r['median_s']:9.3f} {r['median_cpu_s']:8.2f} "
          f"{r['sequences_per_s']:8.3f} {r['peak_gib']:14.2f}")
  if len(results) == 2:
    ours, ref = results
    print(f"ratio ours/reference: throughput {ours['sequences_per_s'] / ref['sequences_per_s']:.2f}x, "
          f"CPU-seconds {ours['median_cpu_s'] / ref['median_cpu_s']:.2f}x, "
          f"peak memory {ours['peak_gib'] / ref['peak_gib']:.2f}x")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"args": vars(args), "results": results}, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
