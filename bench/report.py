"""What every bench prints and saves: machine, versions, threads, the exact command, one
table with the ratio against the reference, and the raw JSON under bench/results/."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from typing import Any, Optional, Sequence

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def _git_revision() -> Optional[str]:
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    return subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return None


def environment(threads: Optional[dict] = None) -> dict[str, Any]:
  """Machine, library versions and thread settings of this process."""
  import numpy as np
  import tensorflow as tf
  versions = {"python": platform.python_version(), "tensorflow": tf.__version__,
              "numpy": np.__version__}
  for name in ("sonnet", "torch"):
    module = sys.modules.get(name)
    if module is not None:
      versions[name] = getattr(module, "__version__", "?")
  versions["tf_seqmodels"] = _git_revision()
  env_threads = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                                            "TF_NUM_INTEROP_THREADS", "TF_SEQMODELS_XLA")
                 if k in os.environ}
  return {
      "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
                  "load_average": [round(x, 2) for x in os.getloadavg()],
                  "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]},
      "versions": versions,
      "threads": {"tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                  "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                  **env_threads, **(threads or {})},
      "command": " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable)] + sys.argv),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }


def print_header(title: str, env: dict) -> None:
  m, v, t = env["machine"], env["versions"], env["threads"]
  print(f"# {title}")
  print(f"command:  {env['command']}")
  print(f"machine:  {m['cpu']}, {m['cores']} cores, load average {m['load_average']}"
        f"{', GPUs ' + ', '.join(m['gpus']) if m['gpus'] else ''}")
  print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
  print("threads:  " + ", ".join(f"{k}={val}" for k, val in t.items()) + " (0 = TF default)")


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
  """A Markdown table (pasted as is into the README's performance section)."""
  def cell(x):
    return f"{x:.3g}" if isinstance(x, float) else str(x)
  print("| " + " | ".join(columns) + " |")
  print("|" + "|".join("---" for _ in columns) + "|")
  for row in rows:
    print("| " + " | ".join(cell(x) for x in row) + " |")


def save(name: str, payload: dict, path: Optional[str] = None) -> str:
  """Writes `payload` as JSON to `path` (default bench/results/<name>.json), atomically."""
  path = path or os.path.join(RESULTS_DIR, f"{name}.json")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(payload, f, indent=2, default=str)
    f.write("\n")
  os.replace(tmp, path)
  print(f"raw results: {os.path.relpath(path)}")
  return path
