"""The package's shape: no import cycle, small modules, and ``data/`` importing nothing above it.

The import graph is read from the source with ``ast`` (module-level and function-level imports
both count: a lazy import still ties two modules together)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "dpsynth"
MAX_LINES = 400
# what dpsynth/data may import from dpsynth: itself and leaf utilities that import no dpsynth module
DATA_MAY_IMPORT = ("dpsynth.data", "dpsynth.errors", "dpsynth.safe_io")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The dpsynth modules ``name`` imports (``from pkg import mod`` resolves to the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import dpsynth.a.b.c` where c is a name
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None. A package's own
    ``__init__`` importing its submodules is not a cycle with them (Python runs it first)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def edges(node: str) -> list[str]:
        return sorted(t for t in graph[node] if not (node.startswith(t + ".") and t != "dpsynth"))

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in edges(node):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_over_400_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    big = sorted((n, name) for name, n in sizes.items() if n > MAX_LINES)
    assert not big, f"modules over {MAX_LINES} lines: " + ", ".join(f"{name} ({n})" for n, name in big)


def test_data_imports_nothing_above_it():
    graph = _graph()
    upward = sorted(f"{name} -> {target}" for name, targets in graph.items()
                    if name == "dpsynth.data" or name.startswith("dpsynth.data.")
                    for target in targets
                    if not any(target == ok or target.startswith(ok + ".") for ok in DATA_MAY_IMPORT))
    assert not upward, "dpsynth/data imports above itself: " + ", ".join(upward)


def test_leaf_utilities_are_leaves():
    graph = _graph()
    for leaf in ("dpsynth.errors", "dpsynth.safe_io"):
        assert graph[leaf] <= {"dpsynth.errors"}, f"{leaf} imports {sorted(graph[leaf])}"
