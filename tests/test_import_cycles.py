"""Import cycles: the modules of trader/, services/ and pycron/ import each other without a cycle.

Every module is parsed (not imported) with ``ast``. Every import of a project
module counts, wherever it sits: at module level, under ``if TYPE_CHECKING:``
and inside a function. The cycles issue 15 found were all hidden that way
(``strategy/base.py`` imported ``bars`` inside a validator, the simulator's
modules import each other for type hints only): Python runs them, but the two
modules still cannot be understood, tested or moved one without the other.
Relative imports are resolved against the module's package; ``from package
import name`` is an edge to ``package.name`` when that is a module, else to
the package. Importing a module also runs its parent packages' ``__init__``,
but an edge to them would make every package whose ``__init__`` re-exports a
submodule a cycle, so parents are not edges.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("trader", "services", "pycron")

def _modules() -> dict[str, Path]:
    """Return every module of ``PACKAGES`` by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Return every import statement in ``tree``, wherever it sits."""
    return [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


def _targets(name: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """Return the project modules ``node`` (in module ``name`` at ``path``) imports."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in modules}
    if node.level:
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    out: set[str] = set()
    for alias in node.names:
        if f"{base}.{alias.name}" in modules:
            out.add(f"{base}.{alias.name}")
        elif base in modules:
            out.add(base)
    return out


def import_graph() -> dict[str, set[str]]:
    """Return each project module's runtime imports of other project modules."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for node in _imports(tree):
            edges |= _targets(name, path, node, modules)
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Return the strongly connected components of ``graph`` with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_project() -> None:
    graph = import_graph()
    assert {"trader.messaging.codec", "services.trader_service", "pycron"} <= graph.keys()
    assert "trader.messaging.codec_pandas" in graph["trader.messaging.codec"]  # absolute `from pkg import mod`
    assert "trader.strategy.bars" in graph["trader.strategy.base"]


def test_relative_deferred_and_type_checking_imports_all_count(tmp_path: Path) -> None:
    source = ("from typing import TYPE_CHECKING\nfrom . import b\nfrom .c import x\nfrom ..d import e\n"
              "if TYPE_CHECKING:\n    from . import f\ndef g():\n    from . import h\n")
    modules = {n: tmp_path for n in ("p.q.a", "p.q.b", "p.q.c", "p.d", "p.q.f", "p.q.h")}
    tree = ast.parse(source)
    found = set().union(*(_targets("p.q.a", tmp_path / "a.py", n, modules) for n in _imports(tree)))
    assert found == {"p.q.b", "p.q.c", "p.d", "p.q.f", "p.q.h"}


def test_cycles_are_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in found)
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError on any cycle
