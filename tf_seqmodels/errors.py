"""Error types shared by the input readers, so every command reports bad input the same way.

`DataError` is a ValueError: the command line turns it into one line
`tf-seqmodels <command>: error: <message>` and exit code 2. Readers name the file and the
line, record or field in the message.
"""

from __future__ import annotations

import os
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
