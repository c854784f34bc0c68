"""The shape of the package: no import cycles between dashgen's modules (imports inside functions count too),
and the light commands stay light."""

from __future__ import annotations

import ast
from pathlib import Path

import dashgen

PACKAGE = Path(dashgen.__file__).parent


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the dashgen modules it imports anywhere in its body."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base]) if base else ".".join(anchor)
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_between_dashgen_modules() -> None:
    graph = import_graph()
    assert len(graph) > 20
    assert cycles(graph) == []


def test_built_in_dashboards_use_only_the_public_definitions_api() -> None:
    """The built-ins are the examples a user's definitions follow: they import dashboard helpers from
    `dashgen.api` only (grafanalib for types, and the rightsizing rule's own facts from
    `dashgen.rightsizing.queries`)."""
    graph = import_graph()
    allowed = {"dashgen.api", "dashgen.rightsizing.queries", "dashgen.dashboards"}
    for module in sorted(m for m in graph if m.startswith("dashgen.dashboards.")):
        assert graph[module] <= allowed, (module, sorted(graph[module] - allowed))
        assert "dashgen.api" in graph[module], module
