"""Error types shared by the input readers, so every command reports bad input the same way.

`DataError` is a ValueError: the command line turns it into one line
`tf-seqmodels <command>: error: <message>` and exit code 2. Readers name the file and the
line, record or field in the message.
"""

from __future__ import annotations

import os
import re
from typing import Union


class DataError(ValueError):
  """An input file is unusable: wrong format, or content that would give a wrong answer."""


def require_file(path: Union[str, os.PathLike], what: str) -> str:
  """`path` as a str if it is an existing regular file (or FIFO); FileNotFoundError if it does
  not exist, DataError if it is a directory."""
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{what} not found: {path}")
  if os.path.isdir(path):
    raise DataError(f"{path} is a directory, expected a {what}"
                    f"{'' if what.endswith('file') else ' file'}")
  return path


def summarise_error(error: BaseException, limit: int = 3) -> str:
  """A few lines of a (possibly very long) TensorFlow restore error: variable names and shapes
  instead of their values."""
  text = str(error)
  variables = re.findall(r"<tf\.Variable '([^']+)' shape=\(([^)]*)\)", text)
  if variables:
    first = text.split("<tf.Variable", 1)[0].strip().rstrip("[(,:").strip()
    found = re.search(r"Found (\d+) Python objects", text)
    count = found.group(1) if found else str(len(variables))
    names = ", ".join(f"{name.split(':')[0]} ({shape.rstrip(',')})"
                      for name, shape in variables[:3])
    return (f"{count} variable(s) of the model found no matching value in the checkpoint, "
            f"e.g. {names}\n  ({first[:200]})")
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  lines = [line if len(line) <= 240 else line[:237] + "..." for line in lines]
  more = len(lines) - limit
  return "\n  ".join(lines[:limit] + ([f"... ({more} more lines; --verbose shows all)"]
                                      if more > 0 else []))
