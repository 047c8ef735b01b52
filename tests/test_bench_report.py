"""The README's performance tables are the benches' own rendering of their raw results."""

import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")


def _report():
  spec = importlib.util.spec_from_file_location("bench_report", os.path.join(BENCH, "report.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_readme_performance_tables_are_rendered_from_bench_results():
  report = _report()
  with open(os.path.join(ROOT, "README.md")) as f:
    text = f.read()
  blocks = list(report._BLOCK.finditer(text))
  assert len(blocks) >= 6
  for block in blocks:
    path = os.path.join(BENCH, block.group("path"))
    assert os.path.exists(path), f"README names {block.group('path')}, missing from bench/"
    assert block.group("body") == report.render(path) + "\n", (
        f"README's table of {block.group('path')} differs from its rendering: run "
        f"`python bench/report.py --readme README.md`")


def test_results_name_no_local_folders():
  report = _report()
  assert report.portable("/somewhere/else/enformer") == "/path/to/enformer"
  assert report.portable(os.path.join(ROOT, "bench", "x.json")) == os.path.join("bench", "x.json")
  assert (report.portable("python bench/x.py --reference-dir /opt/ref/enformer --n 2")
          == "python bench/x.py --reference-dir /path/to/enformer --n 2")
  for name in os.listdir(os.path.join(BENCH, "results")):
    with open(os.path.join(BENCH, "results", name)) as f:
      text = f.read()
    json.loads(text)
    for local in ("/work/", "/home/", "/tmp/", "/root/"):
      assert local not in text, f"{name} names a local folder ({local})"
