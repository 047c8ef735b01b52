"""Test set-up: quiet TensorFlow, seeded runs, and access to ../shared reference fixtures."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Forward passes run in graph mode in the suite: XLA compiles each function once per input
# shape (seconds each), and the suite exports every model several times. The XLA path itself
# (the users' default) is tested against graph mode, and through an export, in
# tests/test_compiled_inference.py, which switches it back on.
os.environ.setdefault("TF_SEQMODELS_XLA", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


def _in_ci() -> bool:
  return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def shared_path(*parts: str) -> Path:
  """Path under ../shared; skips the test when absent, but fails under CI (CI=true)."""
  path = SHARED_DIR.joinpath(*parts)
  if not path.exists():
    message = (f"reference data not found at {path}: these tests need the tf-seqmodels shared "
               f"fixtures checked out as ../shared beside the repository")
    if _in_ci():
      pytest.fail(message + " (CI=true: missing fixtures are an error, not a skip)")
    pytest.skip(message)
  return path


@pytest.fixture
def shared():
  """`shared('fixtures', 'enformer', ...)` -> Path, with the skip/fail policy above."""
  return shared_path


@pytest.fixture(autouse=True)
def _seed():
  import tensorflow as tf
  tf.random.set_seed(0)
  np.random.seed(0)
  yield
