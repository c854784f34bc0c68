"""What Grafana sends to PostgreSQL for a panel's rawSql: its two interpolation passes, as Grafana's source does them.

1. Frontend (the dashboard is a scene: grafana/scenes @ ac1dec6d5bb5607fadde0b5561dfad148ff70c4c).
   `packages/scenes/src/variables/interpolation/sceneInterpolator.ts`: ONE pass of `VARIABLE_REGEX`
   (`variables/constants.ts`) over the raw SQL; each `$var`, `[[var]]`, `${var}`, `${var:fmt}` that names a
   variable is replaced by its formatted value and never scanned again; a name that is no variable, scoped
   variable or macro (`$__timeFilter`, `$__timeFrom`...) stays as it is. Without `:fmt` the datasource's format
   function applies: `interpolateVariable` of grafana/grafana
   public/app/plugins/datasource/grafana-postgresql-datasource/datasource.ts @ 04282cd93150 (overriding
   packages/grafana-sql/src/datasource/SqlDatasource.ts): a string only has `'` doubled, a list is each value
   quoted by PostgresQueryModel.ts `quoteLiteral` and joined by `,`, a number is as is.
   `sqlstring` (`formatRegistry.ts`, `sqlStringFormatter`, `SQL_ESCAPE_MAP`): each value in `'...'` with `'`
   doubled and `"` turned into `\\"`, values joined by `,`. `text` gives the option texts (All -> "All").
   All: with a custom `allValue` the variable's value is `CustomAllValue` (`variants/MultiValueVariable.ts`),
   whose formatter returns the all value as is, and `formatValue` interpolates that text again; without one,
   All is the list of every option's value. `$__interval` / `$__interval_ms` are the query's scoped variables
   (`querying/SceneQueryRunner.ts`).
2. Backend (grafana/grafana pkg/tsdb/grafana-postgresql-datasource): `sqleng/sql_engine.go` @ 043dd88a4794,
   `Interpolate`: plain replacement, anywhere in the text, of `$__interval_ms`, `$__interval`
   (gtime.FormatInterval), `$__unixEpochFrom()`, `$__unixEpochTo()`; then `macros.go` @ 0577088076c3: every
   match of `\\$([_a-zA-Z0-9]+)\\(([^\\)]*)\\)`, inside string literals too, is a macro; an unknown name fails
   the whole query ("unknown macro"), `$__timeFrom()` -> `'<RFC 3339 nano, UTC>'` and so on.

The passes know nothing of SQL quoting: a value is rewritten wherever it lands. `expand` runs both.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

ALL = "$__all"  # scenes ALL_VARIABLE_VALUE
ALL_TEXT = "All"  # scenes ALL_VARIABLE_TEXT

# scenes variables/constants.ts VARIABLE_REGEX (groups: var1, var2, fmt2, var3, fieldPath, fmt3)
VARIABLE_REGEX = re.compile(
    r"""\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)((?:\.[^:^{}\[\]]+|\["[^"]*"\]|\['[^']*'\]|\[[^\]"']*\])*)"""
    r"""(?::([^}]+))?\}""")
# scenes variables/macros/index.ts: names the frontend would replace; the SQL here must not use them
SCENE_MACROS = {"__url_time_range", "__all_variables", "__value", "__data", "__series", "__field", "__url", "__from",
                "__to", "__timezone", "__user", "__org"}
MACRO_RE = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")  # macros.go sExpr


class MacroError(Exception):
    """The backend's macro pass failed: Grafana answers the query with an error (sql_engine.go
    "interpolation failed"), the panel shows it and no row."""


@dataclass
class Var:
    """A dashboard variable as the query sees it: its current value(s) and what the formatters read."""

    value: str | Sequence[str]
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None
    options: Sequence[tuple[str, str]] = field(default_factory=list)  # (text, value) from the variable query

    def text(self) -> str:
        if self.value == ALL or self.value == [ALL]:
            return ALL_TEXT
        values = [self.value] if isinstance(self.value, str) else list(self.value)
        texts = {v: t for t, v in self.options}
        return " + ".join(texts.get(v, v) for v in values)


def rfc3339nano(value: dt.datetime) -> str:
    """Go's time.RFC3339Nano of a UTC time: fractional seconds with trailing zeros removed."""
    value = value.astimezone(dt.UTC)
    frac = f"{value.microsecond:06d}".rstrip("0")
    return value.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def format_interval(ms: int) -> str:
    """grafana-plugin-sdk-go backend/gtime/gtime.go FormatInterval (truncates to the largest unit that fits)."""
    for unit, size in (("y", 365 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000),
                       ("ms", 1)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return "1ms"


def sqlstring(values: str | Sequence[str]) -> str:
    """scenes formatRegistry.ts sqlStringFormatter: `'` -> `''`, `"` -> `\\"`, each value quoted, joined by `,`."""
    items = [values] if isinstance(values, str) else list(values)
    return ",".join("'" + re.sub("['\"]", lambda m: {"'": "''", '"': '\\"'}[m.group()], v) + "'" for v in items)


def _quote_literal(value: str) -> str:  # PostgresQueryModel.quoteLiteral
    return "'" + value.replace("'", "''") + "'"


def _interpolate_variable(value: str | int | Sequence[str]) -> str:
    """PostgresDatasource.interpolateVariable: the format of `$var` / `${var}` on the PostgreSQL datasource."""
    if isinstance(value, str):
        return value.replace("'", "''")  # the quotes come from the query: WHERE x = '$var'
    if isinstance(value, int):
        return str(value)
    return ",".join(_quote_literal(v) for v in value)


def frontend(sql: str, variables: Mapping[str, Var], *, interval_ms: int = 60_000) -> str:
    """The rawSql as the browser sends it to /api/ds/query."""
    scoped: dict[str, str | int] = {"__interval": format_interval(interval_ms), "__interval_ms": interval_ms}

    def replace(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if m.group(5):
            raise NotImplementedError(f"field path in {m.group()!r}")
        if name in scoped:
            return _format(scoped[name], fmt)
        if name in SCENE_MACROS:
            raise NotImplementedError(f"scene macro {m.group()!r}")
        var = variables.get(name)
        if var is None:
            return m.group()  # not a variable: left for the backend ($__timeFilter...) or PostgreSQL
        if fmt == "text":
            return var.text()
        if var.value == ALL or var.value == [ALL]:
            if var.all_value is not None:  # CustomAllValue: as is, then interpolated again
                return frontend(var.all_value, variables, interval_ms=interval_ms)
            return _format([v for _, v in var.options], fmt)
        return _format(var.value, fmt)

    return VARIABLE_REGEX.sub(replace, sql)


def _format(value: str | int | Sequence[str], fmt: str | None) -> str:
    if fmt is None:
        return _interpolate_variable(value)
    if fmt == "sqlstring":
        return sqlstring(str(value) if isinstance(value, int) else value)
    if fmt == "raw":
        return str(value) if isinstance(value, str | int) else ",".join(value)
    raise NotImplementedError(f"format {fmt!r} not modelled")


def backend(sql: str, *, time_from: dt.datetime, time_to: dt.datetime, interval_ms: int = 60_000) -> str:
    """What Grafana's PostgreSQL backend runs for the rawSql it received (or MacroError)."""
    sql = sql.replace("$__interval_ms", str(interval_ms)).replace("$__interval", format_interval(interval_ms))
    sql = sql.replace("$__unixEpochFrom()", str(int(time_from.timestamp())))
    sql = sql.replace("$__unixEpochTo()", str(int(time_to.timestamp())))
    frm, to = rfc3339nano(time_from), rfc3339nano(time_to)
    errors: list[str] = []

    def macro(m: re.Match[str]) -> str:
        name, args = m.group(1), [a.strip(" ") for a in m.group(2).split(",")]
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {args[0]}) as "time"'
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{frm}' AND '{to}'"
        if name == "__timeFrom":
            return f"'{frm}'"
        if name == "__timeTo":
            return f"'{to}'"
        if name in ("__unixEpochFilter", "__unixEpochNanoFilter", "__unixEpochNanoFrom", "__unixEpochNanoTo",
                    "__timeGroup", "__timeGroupAlias", "__unixEpochGroup", "__unixEpochGroupAlias"):
            raise NotImplementedError(f"macro {name} not modelled")
        if not errors:
            errors.append(f'unknown macro "{name}"')
        return "macro_error()"

    sql = MACRO_RE.sub(macro, sql)
    if errors:
        raise MacroError(f"interpolation failed: {errors[0]}")
    return sql


def expand(sql: str, *, time_from: dt.datetime, time_to: dt.datetime, variables: Mapping[str, object],
           all_values: Mapping[str, str] | None = None, interval_ms: int = 60_000) -> str:
    """`sql` as PostgreSQL receives it from Grafana for this time range, these variable values and interval.

    `variables`: a `Var`, or the value(s) Grafana holds: a str is a single-value variable, a list a multi-value
    one, `ALL` the All option (with the custom all value from `all_values`, if any).
    """
    all_values = all_values or {}
    model: dict[str, Var] = {}
    for name, value in variables.items():
        if isinstance(value, Var):
            model[name] = value
        elif value == ALL or value == [ALL]:
            model[name] = Var(ALL, multi=True, include_all=True, all_value=all_values.get(name))
        elif isinstance(value, str):
            model[name] = Var(value)
        else:
            model[name] = Var(list(value), multi=True, include_all=True)  # type: ignore[call-overload]
    return backend(frontend(sql, model, interval_ms=interval_ms), time_from=time_from, time_to=time_to,
                   interval_ms=interval_ms)
