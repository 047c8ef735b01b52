"""outputs.py: outputs never replace inputs or folders this package did not write; stale
export staging folders are removed once their writer is gone; config files fail by line."""

import json
import os
import subprocess
import sys
import time

import pytest

from tf_seqmodels.config import Config, ConfigError, read_mapping_file
from tf_seqmodels.outputs import (MARKER, check_not_an_input, check_replaceable,
                                  clean_stale_staging, write_output_marker)


def test_an_output_that_is_an_input_is_refused_under_any_spelling(tmp_path, monkeypatch):
  (tmp_path / "in.tsv").write_text("x\n")
  os.symlink(tmp_path / "in.tsv", tmp_path / "link.tsv")
  monkeypatch.chdir(tmp_path)
  for spelling in ("in.tsv", "./in.tsv", str(tmp_path / "in.tsv"), "link.tsv"):
    with pytest.raises(FileExistsError, match="is the --pairs input"):
      check_not_an_input(spelling, {"--vcf": None, "--pairs": "in.tsv"})
  check_not_an_input("out.tsv", {"--pairs": "in.tsv"})  # a new file is fine
  (tmp_path / "d").mkdir()
  with pytest.raises(IsADirectoryError):
    check_not_an_input("d", {"--pairs": "in.tsv"})
  assert (tmp_path / "in.tsv").read_text() == "x\n"


def test_overwrite_replaces_only_marked_or_empty_folders(tmp_path):
  check_replaceable(str(tmp_path / "new"), overwrite=False)
  (tmp_path / "empty").mkdir()
  check_replaceable(str(tmp_path / "empty"), overwrite=True)
  with pytest.raises(FileExistsError, match="already exists"):
    check_replaceable(str(tmp_path / "empty"), overwrite=False)
  (tmp_path / "user").mkdir()
  (tmp_path / "user" / "thesis.tex").write_text("years of work")
  with pytest.raises(FileExistsError, match="not written by tf-seqmodels"):
    check_replaceable(str(tmp_path / "user"), overwrite=True)
  (tmp_path / "ours").mkdir()
  write_output_marker(str(tmp_path / "ours"))
  check_replaceable(str(tmp_path / "ours"), overwrite=True)
  (tmp_path / "file").write_text("x")
  with pytest.raises(FileExistsError, match="not a folder"):
    check_replaceable(str(tmp_path / "file"), overwrite=True)


def test_stale_staging_folders_of_dead_writers_are_removed(tmp_path):
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True).stdout.strip()
  for name, pid in ((".tmp-model-dead", int(dead)), (".tmp-model-live", os.getpid())):
    (tmp_path / name).mkdir()
    write_output_marker(str(tmp_path / name))
    marker = tmp_path / name / MARKER
    info = json.loads(marker.read_text())
    marker.write_text(json.dumps({**info, "pid": pid}))
  (tmp_path / ".old-model-unmarked").mkdir()
  old = time.time() - 2 * 24 * 3600
  os.utime(tmp_path / ".old-model-unmarked", (old, old))
  (tmp_path / ".tmp-model-recent").mkdir()  # unmarked but recent: maybe still being written
  (tmp_path / ".tmp-other-dead").mkdir()  # another destination's: not touched
  removed = clean_stale_staging(str(tmp_path / "model"))
  assert sorted(os.path.basename(p) for p in removed) == [".old-model-unmarked",
                                                         ".tmp-model-dead"]
  assert sorted(os.listdir(tmp_path)) == [".tmp-model-live", ".tmp-model-recent",
                                          ".tmp-other-dead"]


def test_config_files_fail_with_file_and_line(tmp_path):
  cases = {"syntax.yaml": ("a: [1, 2\n", r"syntax\.yaml:2:1: invalid YAML"),
           "dup.yaml": ("a: 1\nb: 2\na: 3\n", r"dup\.yaml:3:1: .*duplicate key 'a' \(first on "
                        r"line 1\)"),
           "nested_dup.yaml": ("a:\n  x: 1\n  x: 2\n", r"nested_dup\.yaml:3:3: .*duplicate key"),
           "dup.json": ('{"a": 1, "a": 2}', r"dup\.json: duplicate key 'a'"),
           "syntax.json": ('{"a": 1,\n}', r"syntax\.json:2:1: invalid JSON"),
           "empty.yaml": ("\n# only a comment\n", r"empty\.yaml: empty config file"),
           "scalar.yaml": ("42\n", r"must hold a mapping")}
  for name, (text, pattern) in cases.items():
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=pattern):
      read_mapping_file(tmp_path / name)
  assert read_mapping_file(tmp_path / "empty.yaml", allow_empty=True) == {}
  with pytest.raises(ConfigError, match="duplicate key"):
    Config.from_yaml("a: 1\na: 2\n")
