"""Outputs that never destroy what the user did not ask to replace.

- `check_not_an_input`: an output path that is one of the command's inputs is refused (it
  would be overwritten by the results read from it).
- Folders this package writes (exports, demo outputs) carry a marker file,
  `.tf-seqmodels-output`; `check_replaceable` lets `--overwrite` replace only such a folder
  (or an empty one), never an arbitrary folder it is pointed at.
- `clean_stale_staging`: hidden staging folders (`.tmp-<name>-*`, `.old-<name>-*`) that a
  killed export left beside its destination are removed once their writer is gone.

No TensorFlow here: the CLI checks outputs before it loads any model.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import time
from typing import Mapping, Optional

from tf_seqmodels.config import atomic_write_text

MARKER = ".tf-seqmodels-output"
STALE_AFTER_S = 24 * 3600  # staging folders without a readable marker: removed after a day


def _same_file(a: str, b: str) -> bool:
  if os.path.exists(a) and os.path.exists(b):
    return os.path.samefile(a, b)
  return os.path.realpath(a) == os.path.realpath(b)


def check_not_an_input(output: str, inputs: Mapping[str, Optional[str]],
                       output_flag: str = "--output") -> None:
  """Refuses an `output` that is one of `inputs` ({flag: path}) or a directory.

  Raises:
    FileExistsError: naming both flags.
  """
  for flag, path in inputs.items():
    if path and _same_file(output, path):
      raise FileExistsError(f"{output_flag} {output} is the {flag} input; writing it would "
                            f"destroy the input: choose another output file")
  if os.path.isdir(output):
    raise IsADirectoryError(f"{output_flag} {output} is a directory; give a file path")


def write_output_marker(folder: str, kind: str = "export") -> str:
  """Marks `folder` as written by tf-seqmodels (what `check_replaceable` looks for); the
  writer's process and host let `clean_stale_staging` tell a live staging folder from a
  dead one."""
  path = os.path.join(folder, MARKER)
  atomic_write_text(path, json.dumps({"writer": "tf-seqmodels", "kind": kind, "pid": os.getpid(),
                                      "host": socket.gethostname(), "time": time.time()}) + "\n")
  return path


def is_package_output(folder: str) -> bool:
  return os.path.isfile(os.path.join(folder, MARKER))


def check_replaceable(folder: str, overwrite: bool, flag: str = "--output") -> None:
  """Whether `folder` may be written: absent, or (with `overwrite`) empty or written by this
  package (its marker file). Raises FileExistsError otherwise, before any work."""
  if not os.path.lexists(folder):
    return
  if not os.path.isdir(folder):
    raise FileExistsError(f"{flag} {folder} exists and is not a folder; choose another path")
  if not overwrite:
    raise FileExistsError(f"{flag} {folder} already exists; choose another path or give "
                          f"--overwrite to replace it")
  if os.listdir(folder) and not is_package_output(folder):
    raise FileExistsError(f"{flag} {folder} was not written by tf-seqmodels (no {MARKER} "
                          f"marker); --overwrite replaces only folders this package wrote: "
                          f"remove it yourself or choose another path")


def _writer_alive(marker: str) -> Optional[bool]:
  """True/False for a marker of this host's live/dead process; None when unknown."""
  try:
    with open(marker) as f:
      info = json.load(f)
  except (OSError, ValueError):
    return None
  if info.get("host") != socket.gethostname() or not isinstance(info.get("pid"), int):
    return None
  try:
    os.kill(info["pid"], 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def clean_stale_staging(destination: str) -> list[str]:
  """Removes the staging folders of `destination` whose writer is dead (or, unmarked, older
  than a day): what a killed export leaves. Returns the removed paths."""
  destination = os.path.abspath(destination)
  parent, name = os.path.dirname(destination), os.path.basename(destination)
  removed = []
  for prefix in (".tmp-", ".old-"):
    for folder in glob.glob(os.path.join(parent, glob.escape(f"{prefix}{name}-")) + "*"):
      if not os.path.isdir(folder):
        continue
      alive = _writer_alive(os.path.join(folder, MARKER))
      if alive is None:
        alive = time.time() - os.path.getmtime(folder) < STALE_AFTER_S
      if not alive:
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
  return removed
