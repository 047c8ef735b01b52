"""What every bench prints and saves: machine, versions, threads, the exact command, one
table with the ratio against the reference, and the raw JSON under bench/results/.

The README's performance tables are regenerated from that JSON, never typed by hand:

    python bench/report.py --readme README.md

replaces each block between `<!-- bench: results/NAME.json -->` and `<!-- /bench -->` with the
table the bench that wrote NAME.json renders from it (its `table(payload)`), under one line
saying where, when and how it was measured.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import re
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
    revision = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    changed = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return revision + ("+uncommitted changes" if changed else "")
  except (OSError, subprocess.CalledProcessError):
    return None


def portable(value: Any) -> Any:
  """`value` with this machine's absolute paths made shareable: inside the repository relative
  to it, elsewhere /path/to/<name> (results files and the README name no local folders)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  if isinstance(value, dict):
    return {k: portable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [portable(v) for v in value]
  if isinstance(value, str):
    if " " in value and "/" in value:  # a command line: each word on its own
      return " ".join(shlex.quote(portable(w)) for w in shlex.split(value))
    if os.path.isabs(value):
      if value == root or value.startswith(root + os.sep):
        return os.path.relpath(value, root)
      return "/path/to/" + os.path.basename(value.rstrip(os.sep))
  return value


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


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
  """A Markdown table: what benches print and what the README's blocks hold."""
  def cell(x):
    return f"{x:.3g}" if isinstance(x, float) else str(x)
  lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
  lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
  return "\n".join(lines)


def show(payload: dict) -> None:
  """Prints a bench's header, table and notes, as rendered from its JSON `payload`."""
  payload.setdefault("bench", _script_name())
  title, columns, rows, notes = _bench_module(payload).table(payload)
  print_header(title, payload["environment"])
  print(markdown_table(columns, rows))
  for note in notes:
    print(note)


def _script_name() -> str:
  """The running bench's module name (bench/NAME.py), whose `table(payload)` renders its JSON."""
  return os.path.splitext(os.path.basename(sys.argv[0]))[0]


def _bench_module(payload: dict):
  bench_dir = os.path.dirname(os.path.abspath(__file__))
  if bench_dir not in sys.path:
    sys.path.insert(0, bench_dir)
  return importlib.import_module(payload["bench"])


def render(path: str) -> str:
  """The README block for one results file: where and how it was measured, the table, notes."""
  with open(path) as f:
    payload = json.load(f)
  title, columns, rows, notes = _bench_module(payload).table(payload)
  env = payload["environment"]
  m, v = env["machine"], env["versions"]
  load = m.get("load_average") or ["?"]
  versions = ", ".join(f"{k} {val}" for k, val in v.items() if k != "tf_seqmodels")
  where = (f"*{title}.* Measured {env['date'][:10]} on {m['cpu']} ({m['cores']} cores, load "
           f"average {load[0]} at the start), {versions}, tf-seqmodels {v.get('tf_seqmodels')}; "
           f"`{portable(env['command'])}`; raw results `bench/{os.path.relpath(path, os.path.dirname(RESULTS_DIR))}`.")
  return "\n\n".join([where, markdown_table(columns, rows)] + ["\n".join(notes)] * bool(notes))


# A block: its opening line, the rendered text (empty before the first rendering), its closing
# line. The body may not contain another marker, so an empty block never swallows the next one.
_BLOCK = re.compile(r"(?P<open><!-- bench: (?P<path>\S+) -->\n)(?P<body>(?:(?!<!-- /?bench).)*?)"
                    r"(?P<close><!-- /bench -->)", re.S)


def update_readme(readme: str) -> list[str]:
  """Re-renders every bench block of `readme` (atomically); returns the results files used."""
  with open(readme) as f:
    text = f.read()
  used = []

  def replace(match):
    path = os.path.join(os.path.dirname(RESULTS_DIR), match.group("path"))
    used.append(path)
    return match.group("open") + render(path) + "\n" + match.group("close")

  text = _BLOCK.sub(replace, text)
  tmp = f"{readme}.tmp-{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, readme)
  return used


def save(name: str, payload: dict, path: Optional[str] = None) -> str:
  """Writes `payload` as JSON to `path` (default bench/results/<name>.json), atomically; it
  records which bench wrote it, whose `table(payload)` renders it."""
  payload.setdefault("bench", _script_name())
  path = path or os.path.join(RESULTS_DIR, f"{name}.json")
  payload = portable(payload)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(payload, f, indent=2, default=str)
    f.write("\n")
  os.replace(tmp, path)
  print(f"raw results: {os.path.relpath(path)}")
  return path


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description="Renders bench results (bench/results/*.json).")
  parser.add_argument("--readme", help="re-render the bench blocks of this README in place")
  parser.add_argument("results", nargs="*", help="results files to print")
  cli = parser.parse_args()
  if cli.readme:
    for used in update_readme(cli.readme):
      print(f"rendered {os.path.relpath(used)}")
  for result in cli.results:
    print(render(result) + "\n")
