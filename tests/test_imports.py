"""Imports run downward: no cycles, and none hidden inside functions.

Static checks on the source (an AST walk, no import): every `jdlayers` import
is at module level (the one exception is the lazy `jdlayers.keras` in the
package's `__getattr__`, which keeps Keras optional and slow imports away),
the module import graph is acyclic, and the floors below `io` (ops, the
registry, layers, priors, compose, models) never reach `jdlayers.io`.
"""

import ast
import pathlib
from typing import Dict, List, Set, Tuple

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jdlayers"
# (module, imported module) pairs allowed inside a function.
ALLOWED_LAZY = {("jdlayers", "jdlayers.keras")}
BELOW_IO = ("jdlayers.ops", "jdlayers._registry", "jdlayers.layers",
            "jdlayers.priors", "jdlayers.compose", "jdlayers.models")


def _module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(ROOT).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts.pop()
  return ".".join(parts)


def _modules() -> Dict[str, Tuple[pathlib.Path, ast.Module]]:
  return {_module_name(p): (p, ast.parse(p.read_text(), str(p)))
          for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _targets(module: str, node, is_package: bool) -> List[str]:
  """The jdlayers modules an import statement loads."""
  if isinstance(node, ast.Import):
    return [a.name for a in node.names if a.name.split(".")[0] == "jdlayers"]
  base = node.module or ""
  if node.level:
    anchor = module.split(".")
    anchor = anchor if is_package else anchor[:-1]
    anchor = anchor[:len(anchor) - node.level + 1]
    base = ".".join(anchor + ([base] if base else []))
  if base.split(".")[0] != "jdlayers":
    return []
  # `from pkg import sub` loads the submodule; `from mod import name`, mod.
  return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
          for a in node.names]


def _imports(module: str) -> List[Tuple[str, bool, int]]:
  """`(target, inside a function, line)` of every jdlayers import."""
  path, tree = MODULES[module]
  is_package = path.name == "__init__.py"
  out = []

  def visit(node, in_function: bool):
    for child in ast.iter_child_nodes(node):
      if isinstance(child, (ast.Import, ast.ImportFrom)):
        out.extend((t, in_function, child.lineno)
                   for t in _targets(module, child, is_package))
      visit(child, in_function or isinstance(
          child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

  visit(tree, False)
  return out


def _graph() -> Dict[str, Set[str]]:
  return {m: {t for t, _, _ in _imports(m) if t != m} for m in MODULES}


def _find_cycle(graph: Dict[str, Set[str]]) -> List[str]:
  """One import cycle as a list of modules (empty if the graph is acyclic)."""
  state: Dict[str, int] = {}  # 1: on the current path, 2: done.
  stack: List[str] = []

  def dfs(m: str) -> List[str]:
    state[m] = 1
    stack.append(m)
    for t in sorted(graph.get(m, ())):
      if state.get(t) == 1:
        return stack[stack.index(t):] + [t]
      if t not in state:
        cycle = dfs(t)
        if cycle:
          return cycle
    stack.pop()
    state[m] = 2
    return []

  for m in sorted(graph):
    if m not in state:
      cycle = dfs(m)
      if cycle:
        return cycle
  return []


def _reachable(graph: Dict[str, Set[str]], start: str) -> Set[str]:
  seen, todo = set(), [start]
  while todo:
    m = todo.pop()
    for t in graph.get(m, ()):
      if t not in seen:
        seen.add(t)
        todo.append(t)
  return seen


def test_the_walk_sees_the_package():
  # Guards the checks below against silently walking nothing.
  assert {"jdlayers", "jdlayers._registry", "jdlayers.io._config",
          "jdlayers.layers._base", "jdlayers.inference.vi._surrogate"} <= set(
              MODULES)
  graph = _graph()
  assert "jdlayers._registry" in graph["jdlayers.layers._base"]
  assert "jdlayers.layers._base" in graph["jdlayers.compose._base"]


def test_no_function_level_jdlayers_imports():
  lazy = [f"{MODULES[m][0].relative_to(ROOT)}:{line} imports {t}"
          for m in MODULES for t, in_function, line in _imports(m)
          if in_function and (m, t) not in ALLOWED_LAZY]
  assert not lazy, ("jdlayers imports inside functions (move them to the top; "
                    "if that makes a cycle, move code down a floor):\n"
                    + "\n".join(lazy))


def test_module_import_graph_is_acyclic():
  cycle = _find_cycle(_graph())
  assert not cycle, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("floor", BELOW_IO)
def test_floors_below_io_never_reach_io(floor):
  graph = _graph()
  starts = [m for m in MODULES if m == floor or m.startswith(floor + ".")]
  assert starts, floor
  bad = sorted({f"{s} -> {t}" for s in starts for t in _reachable(graph, s)
                if t == "jdlayers.io" or t.startswith("jdlayers.io.")})
  assert not bad, f"{floor} reaches jdlayers.io:\n" + "\n".join(bad)


def test_registry_is_the_ground_floor():
  reach = _reachable(_graph(), "jdlayers._registry")
  assert reach <= {"jdlayers.ops._args"}, sorted(reach)


def test_cycle_finder_finds_a_cycle():
  # The acyclicity test can fail: a planted cycle is reported with its path.
  assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [
      "a", "b", "c", "a"]
  assert _find_cycle({"a": {"b"}, "b": set()}) == []
