"""The installed package layout: export/ and tuning/ install under the tf_seqmodels namespace."""

import importlib
import importlib.metadata
import subprocess
import sys


def test_export_and_tuning_import_under_the_package_namespace():
  hub = importlib.import_module("tf_seqmodels.export.hub")
  tuner = importlib.import_module("tf_seqmodels.tuning.tuner")
  assert callable(hub.export_hub) and callable(tuner.run_search)


def test_no_generic_top_level_names_are_installed(tmp_path):
  # Read from outside the repository (the cwd would otherwise put export/ on sys.path).
  distribution = importlib.metadata.distribution("tf-seqmodels")
  code = ("import importlib.util, sys; "
          "print(importlib.util.find_spec('export') is None, importlib.util.find_spec('tuning') is None)")
  out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       check=True).stdout.split()
  assert out == ["True", "True"], f"{distribution.metadata['Name']} installs a top-level export/tuning"
  top_level = (distribution.read_text("top_level.txt") or "").split()
  assert set(top_level) <= {"tf_seqmodels"}, top_level
