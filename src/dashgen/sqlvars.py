"""SQL files shared by a dashboard panel and the CLI: loading them and binding their Grafana variables.

A panel's SQL lives once, in `src/dashgen/sql/<name>.sql`, written with Grafana's safe quoting,
`${var:sqlstring}` (Grafana quotes each value, doubling `'`; a multi-value becomes `'a','b'`).
The dashboard embeds the file verbatim; the CLI runs the same text with every `${var:sqlstring}` turned into
psycopg placeholders (one per value), so the two views cannot drift and neither can be injected.
Any other `$var` or `$__macro` is refused, so the file stays runnable outside Grafana.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from importlib import resources

from dashgen.errors import DashgenError

STORE_ALL = "__all__"  # the All value of the store's filter variables (read by dashgen.chosen, migration 001)

_VAR_RE = re.compile(r"\$\{(\w+):sqlstring\}")
_OTHER_RE = re.compile(r"\$\{?\w")

Value = str | int | float | Sequence[str]


def load_sql(name: str) -> str:
    """The text of the packaged `sql/<name>.sql`."""
    return resources.files("dashgen").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


def variables(sql: str) -> list[str]:
    """The names of the `${var:sqlstring}` variables in `sql`, in first-use order."""
    return list(dict.fromkeys(_VAR_RE.findall(sql)))


def bind(sql: str, values: Mapping[str, Value], *, source: str = "SQL") -> tuple[str, list[str]]:
    """`sql` as a psycopg query and its parameters: each `${var:sqlstring}` becomes `%s` per value."""
    missing = [name for name in variables(sql) if name not in values]
    if missing:
        raise DashgenError(f"{source}: no value for variable {missing[0]!r}")
    rest = _OTHER_RE.search(_VAR_RE.sub("", sql))
    if rest:
        raise DashgenError(f"{source}: unsupported variable or macro at {sql[rest.start():rest.start() + 30]!r} "
                           "(only ${var:sqlstring} is allowed)")
    params: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        items = [value] if isinstance(value, str | int | float) else list(value)
        if not items:
            raise DashgenError(f"{source}: variable {match.group(1)!r} has no value")
        params.extend(str(v) for v in items)
        return ", ".join(["%s"] * len(items))

    return _VAR_RE.sub(placeholder, sql.replace("%", "%%")), params
