"""Atomic publication of export folders and TF-Hub-style tarballs.

An export is written into a hidden sibling directory and renamed onto its destination only
once everything (SavedModel, metadata, parity check) succeeded: an interrupted or failed
export leaves the destination untouched and no half-written model behind (a process killed
with SIGKILL may leave its hidden `.tmp-<name>-*` staging folder beside the destination, never
a partial destination).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
from typing import Iterator

from tf_seqmodels.config import apply_default_permissions
from tf_seqmodels.outputs import check_replaceable, clean_stale_staging, write_output_marker


@contextlib.contextmanager
def staged_directory(destination: str, overwrite: bool = False) -> Iterator[str]:
  """Yields an empty staging directory that replaces `destination` when the block succeeds.

  Raises:
    FileExistsError: `destination` exists and `overwrite` is False (checked before any work).
  """
  destination = os.path.abspath(destination)
  check_replaceable(destination, overwrite)  # --overwrite replaces only a folder we wrote
  parent = os.path.dirname(destination)
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(dir=parent, prefix=f".tmp-{os.path.basename(destination)}-")
  apply_default_permissions(staging)
  write_output_marker(staging)  # published with the export; also dates this staging folder
  clean_stale_staging(destination)  # what killed exports of `destination` left
  try:
    yield staging
    if os.path.exists(destination):
      # Two renames keep the window without any complete model as short as possible.
      trash = tempfile.mkdtemp(dir=parent, prefix=f".old-{os.path.basename(destination)}-")
      os.replace(destination, os.path.join(trash, "old"))
      os.replace(staging, destination)
      shutil.rmtree(trash, ignore_errors=True)
    else:
      os.replace(staging, destination)
  finally:
    if os.path.exists(staging):
      shutil.rmtree(staging, ignore_errors=True)


def make_tarball(source_dir: str, tarball: str) -> str:
  """Writes `source_dir`'s contents at the archive root (the TF-Hub compressed format:
  `hub.load` refuses a tarball whose members sit under a top-level directory)."""
  with tarfile.open(tarball, "w:gz") as tar:
    for name in sorted(os.listdir(source_dir)):
      tar.add(os.path.join(source_dir, name), arcname=name)
  apply_default_permissions(tarball)
  return tarball
