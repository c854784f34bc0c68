"""The shape of the package: no import cycles between dashgen's modules (imports inside functions count too),
and the light commands stay light."""

from __future__ import annotations

import ast
import re
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
    `dashgen.rightsizing.rule`)."""
    graph = import_graph()
    allowed = {"dashgen.api", "dashgen.rightsizing.rule", "dashgen.dashboards"}
    for module in sorted(m for m in graph if m.startswith("dashgen.dashboards.")):
        assert graph[module] <= allowed, (module, sorted(graph[module] - allowed))
        assert "dashgen.api" in graph[module], module


def test_the_rightsizing_rule_is_pure() -> None:
    """`rightsizing/rule.py` holds the rule's facts the dashboard, the CLI and sync share: it reads nothing (no
    store, no AWS, no files), so the built-in dashboard can import it without pulling the store or sync in."""
    graph = import_graph()
    assert graph["dashgen.rightsizing.rule"] <= {"dashgen.config"}, sorted(graph["dashgen.rightsizing.rule"])
    source = (PACKAGE / "rightsizing" / "rule.py").read_text()
    for io in ("open(", "resources", "psycopg", "boto3", "connect("):
        assert io not in source, io


# CONTRIBUTING.md "Where SQL lives": the only modules that may hold SQL in Python strings, and why. Every query
# whose rows a person reads (a panel, a CLI report) is a file in store/sql/; functions and views are in
# store/functions/, tables in store/migrations/.
SQL_IN_PYTHON = {
    "dashgen.store.db": "store administration: migrate's bookkeeping, locks, grants, reader settings",
    "dashgen.sync": "sync's write transaction (COPY into temp tables, upserts) and its bookkeeping reads",
    "dashgen.sync.cloudwatch": "the utilisation write and what to read next (each instance's last stored hour)",
    "dashgen.sync.instance_facts": "the instance facts write and their age",
    "dashgen.sync.cur": "the billed-cost write",
    "dashgen.rightsizing.collect": "which candidate prices are fresh (sync reads only the others); the upsert of "
                                   "the per-instance aggregates in sync's write (refresh_usage)",
    "dashgen.rightsizing.queries": "whether an experiment exists (its error line); its rows come from store/sql/",
    "dashgen.grafana.provision": "the PostgreSQL init script, a generated file",
    "dashgen.definitions.panels": "a variable's query assembled from config values (hex literals)",
    "dashgen.reference": "PostgreSQL's catalog, read for the generated docs/store-schema.md",
}
# (upper case, as every SQL statement in this code base is written)
_SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+dashgen\.|DELETE\s+FROM|CREATE\s+TEMP)\b", re.DOTALL)


def sql_strings(path: Path) -> list[str]:
    """The string constants (and f-string parts) of a module that read like SQL statements."""
    tree = ast.parse(path.read_text(), str(path))
    texts = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    docstrings = {ast.get_docstring(n, clean=False) for n in ast.walk(tree)
                  if isinstance(n, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)}
    return [t for t in texts if t not in docstrings and _SQL.search(t)]


def test_sql_in_python_only_where_the_rule_allows_it() -> None:
    found = {name for name, path in ((_module(p), p) for p in PACKAGE.rglob("*.py")) if sql_strings(path)}
    assert found <= set(SQL_IN_PYTHON), (
        f"SQL in {sorted(found - set(SQL_IN_PYTHON))}: a query whose rows a panel or a command shows goes in "
        "src/dashgen/store/sql/<name>.sql (CONTRIBUTING.md, 'Where SQL lives')")
    assert found == set(SQL_IN_PYTHON), sorted(set(SQL_IN_PYTHON) - found)  # no stale exemption


def test_the_sql_rule_finds_sql() -> None:
    assert _SQL.search("SELECT name FROM dashgen.experiments")
    assert _SQL.search("INSERT INTO dashgen.instances (a) VALUES (1)")
    assert not _SQL.search("Select the instances from the list")


def test_the_all_sentinel_is_defined_once_and_the_sql_holds_that_value() -> None:
    """The All value of the store's filter variables is `sqlvars.STORE_ALL`; Python code uses the name, and the SQL
    that must hold it literally (function bodies, panel files) holds exactly that value."""
    from dashgen.store.sqlvars import STORE_ALL

    literals = []
    for path in sorted((PACKAGE / "store").glob("[fs][uq]*/*.sql")):  # functions/ and sql/
        literals += [(path.name, m) for m in re.findall(r"'(__[a-z]+__)'", path.read_text())]
    assert literals and {m for _, m in literals} == {STORE_ALL}, literals
    python = [p.relative_to(PACKAGE) for p in PACKAGE.rglob("*.py")
              if re.search(r"""["']__all__["']""", p.read_text()) and p.name != "sqlvars.py"]
    assert python == [], python


def test_package_data_ships_every_data_file() -> None:
    """Every non-Python file of the package is matched by `[tool.setuptools.package-data]` (an installed dashgen
    reads its SQL, schemas, templates and data from the package: a file left out works in a checkout only; the
    `templates/new/` files of `dashgen new` were)."""
    import tomllib

    patterns = tomllib.loads((PACKAGE.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["dashgen"]
    shipped = {p for pattern in patterns for p in PACKAGE.glob(pattern) if p.is_file()}
    data = {p for p in PACKAGE.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")
            and "__pycache__" not in p.parts}
    assert sorted(str(p.relative_to(PACKAGE)) for p in data - shipped) == []
