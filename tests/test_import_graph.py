"""No import cycles in the package: every module of tf_seqmodels (and tf_seqmodels.export /
tf_seqmodels.tuning, installed from the top-level export/ and tuning/ folders) is parsed, and
its imports of other package modules form a graph that must have no cycle.

Two graphs: module-level imports (what runs at import time), and all imports, including
those inside functions (deferred imports hide a cycle from the interpreter, not from the
design: `a` needing `b` needing `a` is one job split over two modules)."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = {"tf_seqmodels": "tf_seqmodels", "tf_seqmodels.export": "export",
            "tf_seqmodels.tuning": "tuning"}


def _modules() -> dict[str, str]:
  modules = {}
  for package, folder in PACKAGES.items():
    base = os.path.join(ROOT, folder)
    for directory, subdirs, files in os.walk(base):
      subdirs[:] = [d for d in subdirs if not d.startswith((".", "__"))]
      for file in files:
        if file.endswith(".py"):
          parts = os.path.relpath(os.path.join(directory, file), base)[:-3].split(os.sep)
          if parts[-1] == "__init__":
            parts = parts[:-1]
          modules[".".join([package, *parts])] = os.path.join(directory, file)
  return modules


def _imports(name: str, path: str, modules, module_level: bool) -> set[str]:
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  nodes = tree.body if module_level else ast.walk(tree)
  package = name.split(".") if path.endswith("__init__.py") else name.split(".")[:-1]
  found = set()
  for node in nodes:
    if isinstance(node, ast.Import):
      found.update(a.name for a in node.names if a.name in modules)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
      for alias in node.names:
        # `from pkg import module` imports the module; `from module import name` the module.
        target = f"{base}.{alias.name}"
        found.add(target if target in modules else base)
  found.discard(name)
  return {m for m in found if m in modules}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components with more than one module (Tarjan, iterative)."""
  index, low, on_stack, stack, result = {}, {}, set(), [], []
  counter = 0
  for root in sorted(graph):
    if root in index:
      continue
    work = [(root, iter(sorted(graph[root])))]
    index[root] = low[root] = counter
    counter += 1
    stack.append(root)
    on_stack.add(root)
    while work:
      node, children = work[-1]
      child = next(children, None)
      if child is not None:
        if child not in index:
          index[child] = low[child] = counter
          counter += 1
          stack.append(child)
          on_stack.add(child)
          work.append((child, iter(sorted(graph[child]))))
        elif child in on_stack:
          low[node] = min(low[node], index[child])
        continue
      work.pop()
      if work:
        low[work[-1][0]] = min(low[work[-1][0]], low[node])
      if low[node] == index[node]:
        component = []
        while True:
          member = stack.pop()
          on_stack.discard(member)
          component.append(member)
          if member == node:
            break
        if len(component) > 1:
          result.append(sorted(component))
  return result


def test_the_walk_finds_every_package():
  modules = _modules()
  for name in ("tf_seqmodels.training.trainer", "tf_seqmodels.tasks.registry",
               "tf_seqmodels.export.hub", "tf_seqmodels.tuning.tuner", "tf_seqmodels.cli"):
    assert name in modules
  graph = {m: _imports(m, p, modules, module_level=False) for m, p in modules.items()}
  assert "tf_seqmodels.training.trainer" in graph["tf_seqmodels.training.run_config"]
  assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module_level", [True, False], ids=["module-level", "all-imports"])
def test_no_import_cycles(module_level):
  modules = _modules()
  graph = {m: _imports(m, p, modules, module_level) for m, p in modules.items()}
  cycles = _cycles(graph)
  assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)
