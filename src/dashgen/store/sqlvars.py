"""SQL files shared by a dashboard panel and the CLI: loading them and binding their Grafana variables.

A panel's SQL lives once, in `src/dashgen/store/sql/<name>.sql`, written with Grafana's quoting `${var:sqlstring}`.
The dashboard embeds the file verbatim; the CLI runs the same text with every `${var:sqlstring}` turned into
psycopg placeholders (one per value), so the two views cannot drift and neither can be injected.
Any other `$var` or `$__macro` is refused, so the file stays runnable outside Grafana.

Values Grafana would rewrite (issue 15). Grafana's `sqlstring` format doubles `'` but turns `"` into `\\"`
(grafana/scenes packages/scenes/src/variables/interpolation/formatRegistry.ts, `sqlStringFormatter`), and the
PostgreSQL backend runs its macro pass over the interpolated text, values included: any `$name(...)` is a macro
and an unknown one fails the whole query; `$__interval`, `$__interval_ms`, `$__unixEpochFrom()`,
`$__unixEpochTo()` are replaced anywhere (grafana/grafana pkg/tsdb/grafana-postgresql-datasource/macros.go and
sqleng/sql_engine.go `Interpolate`). An EC2 tag is written by anyone who may tag an instance, so the variables
named in `ENCODED` never carry a tag or name as it is: their options come from a query giving `__text` (the real
value, shown in the picker) and `__value` = `encode(text)` (lowercase hex of its UTF-8 bytes; migration 045's
`dashgen.hex`), which both passes leave alone. The SQL compares `dashgen.hex(column)` with them
(`dashgen.chosen`) or decodes one with `dashgen.unhex` (NULL, i.e. no match, for a value that is not hex).
The All value of these variables is `STORE_ALL`, inserted by Grafana as the custom all value `'__all__'`: no
hex string can equal it, so a real tag value `__all__` selects only itself. `bind` applies the same encoding:
a CLI value is encoded, the `ALL` marker becomes `STORE_ALL`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Final

from dashgen.errors import DashgenError

STORE_ALL: Final = "__all__"  # the All value of the store's filter variables (dashgen.chosen, migration 045)
ALL_VALUE: Final = f"'{STORE_ALL}'"  # their custom All value: Grafana inserts it as is, unformatted
ENCODED: Final = frozenset({"account", "tag_key", "tag_value", "name", "experiment"})  # variables whose values are hex


class _All:
    """The CLI's "no filter" for an encoded variable (a real value "__all__" is just a value)."""

    def __repr__(self) -> str:
        return "ALL"


ALL: Final = _All()

_VAR_RE = re.compile(r"\$\{(\w+):sqlstring\}")
_OTHER_RE = re.compile(r"\$\{?\w")

Value = str | int | float | _All | Sequence[str | _All]


def encode(value: str) -> str:
    """The value a store variable holds for `value`: its UTF-8 bytes as lowercase hex (SQL `dashgen.hex`)."""
    return value.encode("utf-8").hex()


def decode(value: str) -> str | None:
    """The text behind a variable value; None when it is not `encode` of a text (SQL `dashgen.unhex`)."""
    try:
        return bytes.fromhex(value).decode("utf-8") if re.fullmatch(r"(?:[0-9a-fA-F]{2})*", value) else None
    except UnicodeDecodeError:
        return None


def load_sql(name: str) -> str:
    """The text of the packaged `sql/<name>.sql`."""
    return resources.files("dashgen.store").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


def variables(sql: str) -> list[str]:
    """The names of the `${var:sqlstring}` variables in `sql`, in first-use order."""
    return list(dict.fromkeys(_VAR_RE.findall(sql)))


def bind(sql: str, values: Mapping[str, Value], *, source: str = "SQL") -> tuple[str, list[str]]:
    """`sql` as a psycopg query and its parameters: each `${var:sqlstring}` becomes `%s` per value.

    Values of the `ENCODED` variables are given as text (or `ALL`) and bound as Grafana would hold them.
    """
    missing = [name for name in variables(sql) if name not in values]
    if missing:
        raise DashgenError(f"{source}: no value for variable {missing[0]!r}")
    rest = _OTHER_RE.search(_VAR_RE.sub("", sql))
    if rest:
        raise DashgenError(f"{source}: unsupported variable or macro at {sql[rest.start():rest.start() + 30]!r} "
                           "(only ${var:sqlstring} is allowed)")
    params: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        name = match.group(1)
        value = values[name]
        items = [value] if isinstance(value, str | int | float | _All) else list(value)
        if not items:
            raise DashgenError(f"{source}: variable {name!r} has no value")
        for item in items:
            if isinstance(item, _All):
                if name not in ENCODED:
                    raise DashgenError(f"{source}: variable {name!r} has no All value")
                params.append(STORE_ALL)
            else:
                params.append(encode(str(item)) if name in ENCODED else str(item))
        return ", ".join(["%s"] * len(items))

    return _VAR_RE.sub(placeholder, sql.replace("%", "%%")), params
