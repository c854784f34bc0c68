"""Grafana's SQL-datasource interpolation, as Grafana documents it, so tests can run a panel's rawSql.

Macros (Grafana docs, PostgreSQL data source, "Macros"): `$__timeFilter(col)` -> `col BETWEEN '<from>' AND
'<to>'`, `$__timeFrom()` / `$__timeTo()` -> `'<RFC 3339 time>'`, `$__interval` (e.g. `5m`), `$__interval_ms`.
Variables ("Advanced variable format options"): `${var:sqlstring}` quotes each value, doubling `'`, and joins
several with `,`; the All value (`$__all`) with a custom `allValue` is inserted as is, unformatted;
`$var` / `${var}` insert the raw value.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence

ALL = "$__all"


def _ts(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sqlstring(values: Sequence[str]) -> str:
    return ",".join("'" + v.replace("'", "''") + "'" for v in values)


def _interval(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def expand(sql: str, *, time_from: dt.datetime, time_to: dt.datetime, variables: Mapping[str, object],
           all_values: Mapping[str, str] | None = None, interval_ms: int = 60_000) -> str:
    """`sql` as Grafana sends it to PostgreSQL for this time range, these variable values and interval."""
    all_values = all_values or {}
    frm, to = f"'{_ts(time_from)}'", f"'{_ts(time_to)}'"
    sql = re.sub(r"\$__timeFilter\(([^)]*)\)", lambda m: f"{m.group(1).strip()} BETWEEN {frm} AND {to}", sql)
    sql = sql.replace("$__timeFrom()", frm).replace("$__timeTo()", to)
    sql = sql.replace("$__interval_ms", str(interval_ms)).replace("$__interval", _interval(interval_ms))

    def var(m: re.Match[str]) -> str:
        name, fmt = m.group(1) or m.group(3), m.group(2)
        if name not in variables:
            raise KeyError(f"no value for template variable {name!r}")
        value = variables[name]
        values = [value] if isinstance(value, str) else list(value)  # type: ignore[arg-type]
        if values == [ALL] and name in all_values:
            return all_values[name]  # a custom All value: not formatted
        if fmt == "sqlstring":
            return sqlstring(values)
        if fmt is None:
            return ",".join(values)
        raise ValueError(f"format {fmt!r} not emulated")

    return re.sub(r"\$\{(\w+)(?::(\w+))?\}|\$(?!__)(\w+)", var, sql)
