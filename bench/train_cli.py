"""A real `tf-seqmodels train` run: user against system CPU time, with and without the allocator.

    python bench/train_cli.py                          # DREAM-CNN demo widths, yeast sample
    python bench/train_cli.py --model dream_rnn --steps 40 --batch-size 256

Trains the DREAM recipe (`training.dream_train_config`) on the DREAM challenge sample in
../shared/data/dream_yeast through the command line, as a user runs it, once with the package's
default CPU allocator setting (TensorFlow's pooling BFC allocator, `TF_CPU_ALLOCATOR_USE_BFC`
set on import) and once with TensorFlow's own default (`TF_CPU_ALLOCATOR_USE_BFC=false`), and
reports each process's user and system CPU time, wall time and peak RSS (from the kernel's
accounting of the finished child). The system share is the figure to watch: the kernel's page
faults and wake-ups, not model work.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import report  # noqa: E402  (bench/report.py)

SETTINGS = {"package default (BFC pool)": None, "TensorFlow default": "false"}


def _train(config_path: str, allocator) -> dict:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("TF_CPU_ALLOCATOR_USE_BFC", None)
  if allocator is not None:
    env["TF_CPU_ALLOCATOR_USE_BFC"] = allocator
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  start = time.perf_counter()
  proc = subprocess.run([sys.executable, "-m", "tf_seqmodels.cli", "train", "--config",
                         config_path], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE, text=True)
  wall = time.perf_counter() - start
  if proc.returncode:
    raise SystemExit(f"tf-seqmodels train failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  return {"user_s": after.ru_utime - before.ru_utime, "system_s": after.ru_stime - before.ru_stime,
          "wall_s": wall, "peak_rss_gib": after.ru_maxrss / 2**20}


def table(payload: dict):
  """(title, columns, rows, notes) of one results file (printed, and rendered into the README)."""
  a = payload["args"]
  title = (f"`tf-seqmodels train`: {a['model']} ({a['size']} widths), DREAM recipe, batch "
           f"{a['batch_size']}, {a['steps']} steps on the DREAM yeast sample")
  rows = [[r["allocator"], r["user_s"], r["system_s"], f"{r['system_s'] / r['user_s']:.0%}",
           r["wall_s"], r["peak_rss_gib"]] for r in payload["results"]]
  return title, ["CPU allocator", "user CPU-s", "system CPU-s", "system / user", "wall s",
                 "peak RSS GiB"], rows, []


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="dream_cnn", choices=("dream_cnn", "dream_rnn", "dream_attn"))
  parser.add_argument("--size", default="demo", choices=("demo", "published"))
  parser.add_argument("--steps", type=int, default=60)
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "dream_yeast"))
  parser.add_argument("--json", help="results file (default bench/results/train_cli.json)")
  args = parser.parse_args(argv)
  import tensorflow  # noqa: F401  (its version goes into the report)
  from tf_seqmodels.models import get_entry
  from tf_seqmodels.training import dream_train_config

  entry = get_entry(args.model)
  model_config = (entry.demo_config() if args.size == "demo" else entry.config_class()).to_dict()
  env = report.environment()
  results = []
  with tempfile.TemporaryDirectory(prefix="train-cli-bench-") as work:
    for label, allocator in SETTINGS.items():
      config = dream_train_config(
          {"train": os.path.join(args.data, "demo_train.txt"),
           "plasmid": os.path.join(args.data, "plasmid.json")},
          model=args.model, model_config=model_config, epochs=1, steps_per_epoch=args.steps,
          batch_size=args.batch_size, select_best_by="",
          run_dir=os.path.join(work, label.split()[0]))
      path = os.path.join(work, f"{label.split()[0]}.yaml")
      config.save(path)
      results.append({"allocator": label, **_train(path, allocator)})
      print(f"  {label}: user {results[-1]['user_s']:.1f} s, system {results[-1]['system_s']:.1f} s",
            file=sys.stderr, flush=True)
  payload = {"args": vars(args), "environment": env, "results": results}
  report.save("train_cli", payload, args.json)
  report.show(payload)
  return 0


if __name__ == "__main__":
  sys.exit(main())
