"""Rightsizing's store queries: the recommendations and the experiment comparison, from the SQL the dashboard
embeds, and their rows for the CLI (table, JSON, CSV).

`store/sql/rightsizing.sql` and `store/sql/experiment_comparison.sql` are the one implementation; the dashboard
panel runs them in Grafana with its template variables, `recommendations` / `compare_experiment` run the same
text with the same variables bound as psycopg parameters (`dashgen.store.sqlvars`). The rule's facts (`RULE`, the
columns) live in `rule.py`; what sync collects for it in `collect.py`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from dashgen.config import Config
from dashgen.errors import ConfigError, DashgenError
from dashgen.rightsizing.rule import EXPERIMENT_COLUMNS, RISK_NAMES, dashboard_values
from dashgen.store.sqlvars import (
    ALL,  # the CLI's "no filter" (bound as the dashboard variables' All value)
    Value,
    bind,
    load_sql,
)


def parse_tags(tags: str | Sequence[str] | None) -> tuple[str | None, list[str]]:
    """'key=value' (or several with one key, as the dashboard's Tag and Tag value filters) -> (key, values);
    None or () -> (None, [])."""
    texts = [tags] if isinstance(tags, str) else list(tags or ())
    pairs = []
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key or not value:
            raise ConfigError(f"--tag: expected KEY=VALUE, got {text!r}")
        pairs.append((key, value))
    keys = list(dict.fromkeys(key for key, _ in pairs))
    if len(keys) > 1:
        raise ConfigError(f"--tag: expected one tag key (its values are alternatives, as in the dashboard's Tag "
                          f"filter), got {keys[0]!r} and {keys[1]!r}")
    return (keys[0] if keys else None), list(dict.fromkeys(value for _, value in pairs))


def rightsizing_values(config: Config, *, tag: str | Sequence[str] | None = None,
                       names: Sequence[str] = (), accounts: Sequence[str] = ()) -> dict[str, Value]:
    key, values = parse_tags(tag)
    return {
        **dashboard_values(config),
        "account": list(accounts) or [ALL],
        "tag_key": key or config.instance_tags[0],
        "tag_value": values or [ALL],
        "name": list(names) or [ALL],
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return value


def run_sql(conn: Any, name: str, values: Mapping[str, Value]) -> list[dict[str, Any]]:
    """Rows of `sql/<name>.sql` with `values` bound, as dicts of plain JSON-able values."""
    from dashgen.store.db import db_errors

    query, params = bind(load_sql(name), values, source=f"sql/{name}.sql")
    with db_errors(f"rightsize: sql/{name}.sql"), conn.cursor() as cur:
        cur.execute(query.encode("utf-8"), params)
        cols = [d.name for d in cur.description or []]
        return [{c: _plain(v) for c, v in zip(cols, row, strict=True)} for row in cur.fetchall()]


def recommendations(conn: Any, config: Config, *, tag: str | Sequence[str] | None = None,
                    names: Sequence[str] = (), accounts: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The rightsizing table (sorted by monthly saving), filtered by tag KEY=VALUE (several values of one key:
    any of them), Names and/or AWS account ids."""
    return run_sql(conn, "rightsizing", rightsizing_values(config, tag=tag, names=names, accounts=accounts))


def compare_experiment(conn: Any, name: str, accounts: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The instances of experiment `name` (in `accounts`, default all) side by side, cheapest on-time run first."""
    from dashgen.store.db import db_errors

    with db_errors("rightsize: read experiments"):
        known = {r[0]: r[1] for r in conn.execute("SELECT name, removed_from_config_at IS NOT NULL "
                                                  "FROM dashgen.experiments ORDER BY name")}
    if name not in known:
        listed = ", ".join(f"{n} (no longer in the config)" if gone else n for n, gone in known.items()) or (
            "none: add [[experiments]] to dashgen.toml and run `dashgen sync`")
        raise DashgenError(f"--experiment: no experiment {name!r} in the store (known: {listed})")
    return run_sql(conn, "experiment_comparison", {"experiment": name, "account": list(accounts) or [ALL]})


def rightsize(config: Config, *, dsn: str | None = None, experiment: str | None = None,
              tag: str | Sequence[str] | None = None, names: Sequence[str] = (),
              accounts: Sequence[str] = ()) -> list[dict[str, Any]]:
    """`dashgen rightsize`: connect, and return the recommendations or one experiment's comparison."""
    from dashgen.store.db import connect, resolve_dsn

    with connect(resolve_dsn(dsn, config)) as conn:
        if experiment is not None:
            return compare_experiment(conn, experiment, accounts)
        return recommendations(conn, config, tag=tag, names=names, accounts=accounts)


# ---------------------------------------------------------------- output formats (pure: strings)

def to_json(rows: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(list(rows), indent=2, sort_keys=False) + "\n"


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Iterable[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def cell(value: Any, kind: str) -> str:
    """One value as the terminal table shows it."""
    if value is None:
        return "-"
    formats = {
        "usd": lambda v: f"{'-' if v < 0 else ''}${abs(v):,.2f}",
        "usd4": lambda v: f"${v:.4f}",
        "pct": lambda v: f"{v:.1f}%",
        "num": lambda v: f"{v:g}",
        "int": lambda v: f"{v:d}",
        "mib": lambda v: f"{v / 1024:g} GiB",
        "time": lambda v: str(v)[:16].replace("T", " "),
    }
    return formats.get(kind, str)(value)


def _cpu(row: Mapping[str, Any]) -> str:
    values = [row.get(k) for k in ("cpu_avg", "cpu_peak", "cpu_max")]
    return "-" if values[1] is None else " / ".join(cell(v, "num") for v in values) + " %"


def _risk(risk: int | None, limited_by: str | None) -> str:
    if risk is None:
        return "-"
    return f"{risk} {RISK_NAMES[risk]}" + (f" ({limited_by})" if limited_by else "")


def _typed(row: Mapping[str, Any], type_col: str, price_col: str) -> str:
    if row.get(type_col) is None:
        return "-"
    return f"{row[type_col]} ({cell(row.get(price_col), 'usd4')})"


# the terminal's narrower view: (header, cell text from a row); json and csv keep every column
def _option(row: Mapping[str, Any], prefix: str) -> str:
    """'t4g.xlarge ($0.1344), $98.11/month, risk 1 low (CPU)' for the recommended or the cheaper type."""
    type_col = "recommended_type" if prefix == "recommended" else "cheaper_type"
    saving = "monthly_saving_usd" if prefix == "recommended" else "cheaper_monthly_saving_usd"
    risk, limited = (row.get("risk"), row.get("limited_by")) if prefix == "recommended" else (
        row.get("cheaper_risk"), None)
    if row.get(type_col) is None:
        return "-"
    parts = [_typed(row, type_col, f"{prefix}_usd_per_hour"), f"{cell(row.get(saving), 'usd')}/month",
             f"risk {_risk(risk, limited)}"]
    if prefix == "cheaper" and row.get("cheaper_migration"):
        parts.append(str(row["cheaper_migration"]))
    return ", ".join(parts)


# the terminal's narrower view: (header, cell text from a row); json and csv keep every column, and the terminal
# prints each row's reasons under the table (`terminal_notes`)
TERMINAL_RIGHTSIZING = (
    ("Instance", lambda r: cell(r["instance_id"], "text")),
    ("Name", lambda r: cell(r["name"], "text")),
    ("Tags", lambda r: cell(r["tags"], "text")),
    ("Type", lambda r: _typed(r, "instance_type", "usd_per_hour") + (
        f" + {cell(r['credit_usd_per_hour'], 'usd4')} credits" if r.get("credit_usd_per_hour") else "")),
    ("Hours (coverage)", lambda r: f"{r['hours']} ({cell(r['coverage_pct'], 'pct')})"),
    ("CPU avg / peak / max", _cpu),
    ("Verdict", lambda r: cell(r["verdict"], "text")),
    ("Recommended (family)", lambda r: _option(r, "recommended")),
    ("Cheaper family", lambda r: _option(r, "cheaper")),
    ("Cheaper one size up", lambda r: "-" if r.get("size_up_type") is None else
     f"{_typed(r, 'size_up_type', 'size_up_usd_per_hour')}, {cell(r.get('size_up_monthly_saving_usd'), 'usd')}/month"),
)
WRAPPED = ("Name", "Tags", "Recommended (family)", "Cheaper family", "Cheaper one size up")


def terminal_notes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per row with reasons: 'i-0abc (web-1): limited by CPU (47% of m7i.xlarge); ...'."""
    return [f"{r['instance_id']} ({r.get('name') or '-'}): {r['reasons']}" for r in rows if r.get("reasons")]


TERMINAL_EXPERIMENT = (
    *((label, lambda r, c=col, k=kind: cell(r[c], k)) for col, (label, kind) in EXPERIMENT_COLUMNS.items()
      if col in ("instance_id", "name")),
    ("Type", lambda r: _typed(r, "instance_type", "usd_per_hour")),
    *((label, lambda r, c=col, k=kind: cell(r[c], k)) for col, (label, kind) in EXPERIMENT_COLUMNS.items()
      if col not in ("experiment", "instance_id", "name", "instance_type", "vcpu", "usd_per_hour", "budget_usd")),
)


def terminal_table(rows: Sequence[Mapping[str, Any]], *, experiment: bool) -> tuple[list[str], list[list[str]]]:
    """Headers and cell texts of the terminal table (the "Cheaper one size up" column only when a row has one)."""
    view = TERMINAL_EXPERIMENT if experiment else TERMINAL_RIGHTSIZING
    if not experiment and not any(row.get("size_up_type") for row in rows):
        view = tuple(v for v in view if v[0] != "Cheaper one size up")
    return [label for label, _ in view], [[render(row) for _, render in view] for row in rows]
