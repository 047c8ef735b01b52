"""Trainer throughput (steps/s, examples/s) under every strategy this machine offers.

    python bench/trainer_scaling.py                                   # DREAM-CNN demo, batch 64
    python bench/trainer_scaling.py --model enformer --demo --batch-size 4 --steps 40
    python bench/trainer_scaling.py --tpu local                       # also the TPU

Each configuration runs `training.run_training` (the `tf-seqmodels train` path: "teacher"
data from the model's own architecture, the model's task, AdamW) in a fresh process, since
a process can hold one strategy. Configurations:

    default              CPU, or one GPU when there is one, float32
    default+xla          the step XLA-compiled (jit_compile)              [GPU, or --all]
    default+bf16         Sonnet Linear/Conv layers in bfloat16            [GPU, or --all]
    default+xla+bf16                                                      [GPU, or --all]
    mirrored             snt.distribute.Replicator over all GPUs (>= 2), or over 2 logical
                         CPU devices without a GPU
    multiworker          MultiWorkerReplicator, 2 worker processes on 127.0.0.1 (CPU only;
                         on a GPU machine they would share devices)
    tpu                  snt.distribute.TpuReplicator (with --tpu)

Throughput is measured over the steps after the first `--warmup` (which include tracing and
compilation): steps / wall time of the training calls, examples = global batch x steps. The
global batch is the same in every configuration (split across replicas), so "x default"
is the speed-up from the extra devices. On a 2-core CPU, logical devices and local workers
share the same cores: expect no speed-up there, only the cost of the collectives.

Seen on the 2-core development machine (TF 2.21 CPU, DREAM-CNN demo config, batch 64, load
3-5 from other jobs, so +-30%): default 6.3 steps/s, bfloat16 7.7 (the CPU has
AVX512_BF16), mirrored over 2 logical CPUs 5.6, 2 local workers 3.4. XLA is left out on CPU
by default: XLA's CPU backend compiles this model's backward pass into a program taking
30-50 s per step (graph mode: ~0.2 s), independently of the trainer (a bare jit-compiled
tape.gradient shows the same).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.abspath(__file__)
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)

TASK_OF = {"enformer": "tracks", "dream_cnn": "dream_soft_bin", "dream_rnn": "dream_soft_bin",
           "dream_attn": "dream_soft_bin", "dream_prixfixe": "dream_soft_bin",
           "bpnet": "chrombpnet", "chrombpnet_bias": "chrombpnet", "chrombpnet": "chrombpnet"}


def _parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="dream_cnn", choices=sorted(TASK_OF))
  parser.add_argument("--demo", action="store_true", default=None,
                      help="the registry's small demo config (default for enformer)")
  parser.add_argument("--batch-size", type=int, default=64, help="global batch size")
  parser.add_argument("--steps", type=int, default=30, help="timed steps")
  parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (tracing)")
  parser.add_argument("--steps-per-call", type=int, default=1)
  parser.add_argument("--configs", nargs="+", default=None,
                      help="run only these configurations (default: all available)")
  parser.add_argument("--all", action="store_true",
                      help="also the XLA / bfloat16 variants on a CPU-only machine")
  parser.add_argument("--tpu", default=None, help="TPU name/address: adds the tpu configuration")
  parser.add_argument("--timeout", type=int, default=900, help="seconds per configuration")
  parser.add_argument("--json", default=None, help="write the results to this JSON file")
  parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  return parser.parse_args(argv)


def _train_config(args, config: dict, run_dir: str) -> dict:
  """The TrainConfig (as a dict) of one configuration."""
  demo = args.demo if args.demo is not None else args.model == "enformer"
  measured = args.warmup + args.steps
  examples = args.batch_size * args.warmup  # one epoch = the warm-up steps
  return {
      "model": {"name": args.model, "demo": demo},
      "task": {"type": TASK_OF[args.model],
               "options": {"counts_loss_weight": 1.0} if TASK_OF[args.model] == "chrombpnet" else {}},
      "data": {"type": "teacher", "batch_size": args.batch_size,
               "options": {"examples": examples, "valid_examples": 0}},
      "optimizer": {"name": "adamw", "learning_rate": 1e-4},
      "trainer": {"epochs": -(-measured // args.warmup), "log_every": args.warmup,
                  "steps_per_call": args.steps_per_call, "progress": False,
                  "tensorboard": False, "jit_compile": config.get("xla", False),
                  "mixed_precision": "bfloat16" if config.get("bf16") else "float32",
                  "keep_checkpoints": 1},
      "strategy": config["strategy"],
      "run_dir": run_dir,
  }


def _worker(spec: dict) -> None:
  """One configuration in this process: train, then print the measured throughput."""
  from tf_seqmodels.training.logging import MetricsLog
  from tf_seqmodels.training.run_config import TrainConfig, run_training
  config = TrainConfig.from_dict(spec["train_config"])
  start = time.perf_counter()
  history = run_training(config)
  wall = time.perf_counter() - start
  records = [r for r in MetricsLog(config.run_dir).records if r["split"] == "train"]
  steady = records[1:]  # the first window holds tracing / compilation
  steps = sum(spec["warmup"] for _ in steady)
  seconds = sum(spec["warmup"] / r["steps_per_sec"] for r in steady)
  examples = sum(r["examples_per_sec"] * spec["warmup"] / r["steps_per_sec"] for r in steady)
  import tensorflow as tf
  from tf_seqmodels.training.logging import package_versions
  print("RESULT " + json.dumps({
      "name": spec["name"], "steps": steps, "steps_per_sec": steps / seconds,
      "examples_per_sec": examples / seconds, "first_window_s": spec["warmup"] /
      records[0]["steps_per_sec"], "wall_s": wall, "final_loss": history["loss"][-1],
      "gpus": len(tf.config.list_physical_devices("GPU")), "versions": package_versions()}),
        flush=True)


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _run(args, name: str, config: dict, processes: int = 1) -> dict:
  run_root = tempfile.mkdtemp(prefix=f"trainer_scaling_{name}_")
  ports = _free_ports(processes) if processes > 1 else []
  children = []
  for index in range(processes):
    spec = {"name": name, "warmup": args.warmup,
            "train_config": _train_config(args, config, os.path.join(run_root, "run"))}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if processes > 1:
      env["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                     "task": {"type": "worker", "index": index}})
    children.append(subprocess.Popen(
        [sys.executable, HERE, "--worker", json.dumps(spec)], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True))
  outputs = []
  try:
    for child in children:
      out, _ = child.communicate(timeout=args.timeout)
      outputs.append(out.decode(errors="replace"))
  except subprocess.TimeoutExpired:
    outputs.append(f"timed out after {args.timeout} s")
  finally:
    for child in children:
      if child.poll() is None:
        os.killpg(child.pid, 9)
        child.wait()
  for line in outputs[0].splitlines():
    if line.startswith("RESULT "):
      return json.loads(line[len("RESULT "):])
  return {"name": name, "error": "\n".join(o[-1500:] for o in outputs)}


def _configurations(args) -> list[tuple[str, dict, int]]:
  import tensorflow as tf  # only to count devices in this (parent) process
  gpus = len(tf.config.list_physical_devices("GPU"))
  configs = [("default", {"strategy": {"kind": "default"}}, 1)]
  if gpus or args.all:
    configs += [("default+xla", {"strategy": {"kind": "default"}, "xla": True}, 1),
                ("default+bf16", {"strategy": {"kind": "default"}, "bf16": True}, 1),
                ("default+xla+bf16", {"strategy": {"kind": "default"}, "xla": True,
                                      "bf16": True}, 1)]
  if gpus >= 2:
    configs.append(("mirrored", {"strategy": {"kind": "mirrored"}}, 1))
  elif not gpus:
    configs.append(("mirrored", {"strategy": {"kind": "mirrored", "cpu_devices": 2}}, 1))
    configs.append(("multiworker", {"strategy": {"kind": "multiworker",
                                                 "collective_timeout_s": 300.0}}, 2))
  if args.tpu:
    configs.append(("tpu", {"strategy": {"kind": "tpu", "tpu": args.tpu}}, 1))
  if args.configs:
    configs = [c for c in configs if c[0] in args.configs]
  return configs


def main(argv=None) -> int:
  args = _parse_args(argv)
  if args.worker:
    _worker(json.loads(args.worker))
    return 0
  if args.warmup < 1 or args.steps < args.warmup or args.steps % args.warmup:
    raise SystemExit("--steps must be a positive multiple of --warmup")
  results = []
  print(f"model {args.model}, global batch {args.batch_size}, {args.steps} timed steps after "
        f"{args.warmup} warm-up steps")
  for name, config, processes in _configurations(args):
    result = _run(args, name, config, processes)
    results.append(result)
    if "error" in result:
      print(f"{name:18s} FAILED\n{result['error']}")
    else:
      print(f"{name:18s} {result['steps_per_sec']:8.2f} steps/s {result['examples_per_sec']:10.1f} "
            f"examples/s   (first {args.warmup} steps {result['first_window_s']:.1f} s)", flush=True)
  base = next((r for r in results if r["name"] == "default" and "error" not in r), None)
  if base:
    print("\nspeed relative to default:")
    for r in results:
      if "error" not in r:
        print(f"  {r['name']:18s} x{r['steps_per_sec'] / base['steps_per_sec']:.2f}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"args": {k: v for k, v in vars(args).items() if k != "worker"},
                 "results": results}, f, indent=2)
  return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
  sys.exit(main())
