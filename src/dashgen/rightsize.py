"""Rightsizing: the recommendations and the experiment comparison, from the SQL the dashboard embeds.

`sql/rightsizing.sql` and `sql/experiment_comparison.sql` are the one implementation; the dashboard panel
runs them in Grafana with its template variables, `recommendations` / `compare_experiment` run the same text
with the same variables bound as psycopg parameters (`dashgen.sqlvars`). `RULE` is the documented rule
(panel description, README). `rightsizing_price_keys` names the prices the rule needs beside those in use;
`collect_rightsizing` reads them and the utilisation for `dashgen sync` before it writes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from dashgen.config import Config
from dashgen.errors import ConfigError, DashgenError
from dashgen.sqlvars import (
    ALL,  # the CLI's "no filter" (bound as the dashboard variables' All value)
    Value,
    bind,
    load_sql,
)

HOURS_PER_MONTH = 730

RULE = (
    "Rule: over the last lookback_days days (default 14), CPU p95 = the 95th percentile of the hourly p95 "
    "CPUUtilization. Target = CPU threshold x (1 - headroom) (80 % x (1 - 20 %) = 64 % by default). "
    "Needed vCPUs = vCPUs x CPU p95 / target. Recommended (same family): the smallest type of the same family "
    "and architecture with vCPUs >= needed and at least the current memory per vCPU (memory is not measured, "
    "so its ratio is kept); no bare metal, no fewer GPUs. Verdict: under-provisioned when needed > vCPUs, "
    "over-provisioned when the recommendation has fewer vCPUs, else right-sized (no data: no utilisation "
    "stored in the window). Cheaper family: the cheapest type of another family of the same class (t, m, c, "
    "r...; e.g. Graviton) with vCPUs >= needed, at least the recommendation's memory and a lower $/hour; "
    "burstable only if the current type is. Monthly saving = ($/hour now - $/hour recommended) x 730 h."
)

# column -> (label, kind); kind picks the Grafana unit and the terminal format
RIGHTSIZING_COLUMNS: dict[str, tuple[str, str]] = {
    "instance_id": ("Instance", "text"),
    "name": ("Name", "text"),
    "tags": ("Tags", "text"),
    "instance_type": ("Type", "text"),
    "vcpu": ("vCPU", "int"),
    "memory_mib": ("Memory", "mib"),
    "usd_per_hour": ("$/hour", "usd4"),
    "hours": ("Hours", "int"),
    "cpu_avg": ("CPU avg", "pct"),
    "cpu_p95": ("CPU p95", "pct"),
    "cpu_max": ("CPU max", "pct"),
    "needed_vcpu": ("vCPU needed", "num"),
    "verdict": ("Verdict", "text"),
    "recommended_type": ("Recommended (family)", "text"),
    "recommended_usd_per_hour": ("Recommended $/hour", "usd4"),
    "monthly_saving_usd": ("Saving $/month", "usd"),
    "cheaper_type": ("Cheaper family", "text"),
    "cheaper_usd_per_hour": ("Cheaper $/hour", "usd4"),
    "cheaper_monthly_saving_usd": ("Cheaper saving $/month", "usd"),
}
EXPERIMENT_COLUMNS: dict[str, tuple[str, str]] = {
    "experiment": ("Experiment", "text"),
    "instance_id": ("Instance", "text"),
    "name": ("Name", "text"),
    "instance_type": ("Type", "text"),
    "vcpu": ("vCPU", "int"),
    "usd_per_hour": ("$/hour", "usd4"),
    "running_hours": ("Running hours", "num"),
    "cost_usd": ("Cost so far", "usd"),
    "cpu_p95": ("CPU p95", "pct"),
    "progress_pct": ("Progress", "pct"),
    "hours_per_pct": ("Hours per %", "num"),
    "usd_per_pct": ("$ per %", "usd4"),
    "finish_at": ("Finish (projected)", "time"),
    "deadline": ("Deadline", "time"),
    "projected_cost_usd": ("Projected cost", "usd"),
    "budget_usd": ("Budget", "usd"),
    "outcome": ("Outcome", "text"),
}


def dashboard_values(config: Config) -> dict[str, str]:
    """The defaults of the dashboard's rule variables, from the config (the CLI uses the same)."""
    return {
        "cpu_threshold": f"{config.cpu_threshold:g}",
        "headroom_pct": f"{config.headroom_pct:g}",
        "lookback_days": str(config.lookback_days),
    }


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
                       names: Sequence[str] = ()) -> dict[str, Value]:
    key, values = parse_tags(tag)
    return {
        **dashboard_values(config),
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
    from dashgen.store import db_errors

    query, params = bind(load_sql(name), values, source=f"sql/{name}.sql")
    with db_errors(f"rightsize: sql/{name}.sql"), conn.cursor() as cur:
        cur.execute(query.encode("utf-8"), params)
        cols = [d.name for d in cur.description or []]
        return [{c: _plain(v) for c, v in zip(cols, row, strict=True)} for row in cur.fetchall()]


def recommendations(conn: Any, config: Config, *, tag: str | Sequence[str] | None = None,
                    names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The rightsizing table (sorted by monthly saving), filtered by tag KEY=VALUE (several values of one key:
    any of them) and/or Names."""
    return run_sql(conn, "rightsizing", rightsizing_values(config, tag=tag, names=names))


def compare_experiment(conn: Any, name: str) -> list[dict[str, Any]]:
    """The instances of experiment `name` side by side, cheapest on-time run first."""
    from dashgen.store import db_errors

    with db_errors("rightsize: read experiments"):
        known = {r[0]: r[1] for r in conn.execute("SELECT name, removed_from_config_at IS NOT NULL "
                                                  "FROM dashgen.experiments ORDER BY name")}
    if name not in known:
        listed = ", ".join(f"{n} (no longer in the config)" if gone else n for n, gone in known.items()) or (
            "none: add [[experiments]] to dashgen.toml and run `dashgen sync`")
        raise DashgenError(f"--experiment: no experiment {name!r} in the store (known: {listed})")
    return run_sql(conn, "experiment_comparison", {"experiment": name})


def rightsize(config: Config, *, dsn: str | None = None, experiment: str | None = None,
              tag: str | Sequence[str] | None = None, names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """`dashgen rightsize`: connect, and return the recommendations or one experiment's comparison."""
    from dashgen.store import connect, resolve_dsn

    with connect(resolve_dsn(dsn, config)) as conn:
        if experiment is not None:
            return compare_experiment(conn, experiment)
        return recommendations(conn, config, tag=tag, names=names)


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
    values = [row.get(k) for k in ("cpu_avg", "cpu_p95", "cpu_max")]
    return "-" if values[1] is None else " / ".join(cell(v, "num") for v in values) + " %"


def _typed(row: Mapping[str, Any], type_col: str, price_col: str) -> str:
    if row.get(type_col) is None:
        return "-"
    return f"{row[type_col]} ({cell(row.get(price_col), 'usd4')})"


# the terminal's narrower view: (header, cell text from a row); json and csv keep every column
TERMINAL_RIGHTSIZING = (
    ("Instance", lambda r: cell(r["instance_id"], "text")),
    ("Name", lambda r: cell(r["name"], "text")),
    ("Tags", lambda r: cell(r["tags"], "text")),
    ("Type", lambda r: _typed(r, "instance_type", "usd_per_hour")),
    ("vCPU", lambda r: cell(r["vcpu"], "int")),
    ("Memory", lambda r: cell(r["memory_mib"], "mib")),
    ("CPU avg / p95 / max", _cpu),
    ("Verdict", lambda r: cell(r["verdict"], "text")),
    ("Recommended (family)", lambda r: _typed(r, "recommended_type", "recommended_usd_per_hour")),
    ("Saving/month", lambda r: cell(r["monthly_saving_usd"], "usd")),
    ("Cheaper family", lambda r: _typed(r, "cheaper_type", "cheaper_usd_per_hour")),
    ("Its saving/month", lambda r: cell(r["cheaper_monthly_saving_usd"], "usd")),
)
TERMINAL_EXPERIMENT = (
    *((label, lambda r, c=col, k=kind: cell(r[c], k)) for col, (label, kind) in EXPERIMENT_COLUMNS.items()
      if col in ("instance_id", "name")),
    ("Type", lambda r: _typed(r, "instance_type", "usd_per_hour")),
    *((label, lambda r, c=col, k=kind: cell(r[c], k)) for col, (label, kind) in EXPERIMENT_COLUMNS.items()
      if col not in ("experiment", "instance_id", "name", "instance_type", "vcpu", "usd_per_hour", "budget_usd")),
)


def terminal_table(rows: Sequence[Mapping[str, Any]], *, experiment: bool) -> tuple[list[str], list[list[str]]]:
    """Headers and cell texts of the terminal table."""
    view = TERMINAL_EXPERIMENT if experiment else TERMINAL_RIGHTSIZING
    return [label for label, _ in view], [[render(row) for _, render in view] for row in rows]


# ---------------------------------------------------------------- prices the rule needs

def type_class(family: str) -> str:
    """'m7i' -> 'm', 't4g' -> 't', 'inf2' -> 'inf': the class a cheaper family must share."""
    match = re.match(r"[a-z]+", family)
    return match.group(0) if match else family


def rightsizing_price_keys(keys: Iterable[Any]) -> set[Any]:
    """Besides the `PriceKey`s in use: every size of their family and the same-class types of up to twice
    their vCPUs, so that the recommended and the cheaper type have a price (sync stores them too)."""
    from dashgen.pricing import PriceKey
    from dashgen.store import instance_type_rows

    specs = {row[0]: row for row in instance_type_rows()}  # type, family, vcpu, memory_mib, arch, ...
    out: set[Any] = set()
    for key in keys:
        spec = specs.get(key.instance_type)
        if spec is None or spec[1] is None or spec[2] is None:
            continue
        family, vcpu = spec[1], spec[2]
        for other, (_, ofam, ovcpu, *_rest) in specs.items():
            if ofam == family or (ofam and ovcpu and type_class(ofam) == type_class(family) and ovcpu <= 2 * vcpu):
                out.add(PriceKey(key.region, other, key.operating_system, key.tenancy))
    return out


# ---------------------------------------------------------------- what `dashgen sync` reads for rightsizing

def fresh_price_keys(conn: Any, keys: set[Any], now: dt.datetime, max_age: dt.timedelta | None = None) -> set[Any]:
    """The `keys` whose stored price came from the Price List API less than `max_age` (default
    `dashgen.pricing.PRICE_MAX_AGE`, 24 h) before `now` and is not stale."""
    from dashgen.pricing import API_SOURCE, PRICE_MAX_AGE, PriceKey
    from dashgen.store import db_errors

    with db_errors("sync: read stored prices"):
        rows = conn.execute("SELECT region, instance_type, operating_system, tenancy FROM dashgen.instance_prices "
                            "WHERE source = %s AND fetched_at > %s AND stale_since IS NULL",
                            (API_SOURCE, now - (max_age or PRICE_MAX_AGE))).fetchall()
    return keys & {PriceKey(*row) for row in rows}


def utilisation_targets(config: Config, instances: Iterable[Any], region: str) -> list[Any]:
    """What CloudWatch is asked about for the instances sync saw in `region`: burstable (the bundled specs) and
    the progress metric of the first experiment (by name) whose tag they carry."""
    from dashgen.store import instance_type_rows
    from dashgen.utilisation import Progress, Target

    burstable = {row[0]: bool(row[5]) for row in instance_type_rows()}
    experiments = sorted((e for e in config.experiments if e.progress_namespace and e.progress_metric),
                         key=lambda e: e.name)
    out = []
    for inst in instances:
        if inst.region != region:
            continue
        exp = next((e for e in experiments if inst.tags.get(e.tag_key) == e.tag_value), None)
        progress = None if exp is None else Progress(
            exp.progress_namespace, exp.progress_metric,
            tuple(sorted((str(k), str(v)) for k, v in exp.progress_dimensions)))
        out.append(Target(inst.instance_id, burstable.get(inst.instance_type, False), progress))
    return out


def collect_rightsizing(conn: Any, config: Config, collected: Any, prices_mode: str, session: Any, now: dt.datetime,
                        result: Any, *, pricing: Any = None, cloudwatch: Any = None) -> None:
    """Called by `dashgen.sync.sync` BEFORE its write transaction (the store is only read): into `collected`,
    the prices of the types the rule may recommend beside those in use (from the Price List API only when
    missing or older than 24 h), and per region the hourly utilisation (`dashgen.utilisation`), within the
    region's time budget (`collected.budgets`). A CloudWatch failure is one line; that region's utilisation is then
    not written (the sync is partial), the rest still lands. A store that fails here stops the sync."""
    from dashgen.aws import aws_errors, describe
    from dashgen.errors import AwsError
    from dashgen.pricing import PriceKey, resolve_prices
    from dashgen.utilisation import cloudwatch_client, read_utilisation

    in_use = {PriceKey(i.region, i.instance_type, i.operating_system, i.tenancy) for i in collected.instances}
    extra = rightsizing_price_keys(in_use) - in_use
    if prices_mode == "api":
        extra -= fresh_price_keys(conn, extra, now)
    if extra:
        prices, warnings = resolve_prices(extra, prices_mode, session, client=pricing,
                                          budget=collected.budgets.get("pricing"))
        for line in warnings:
            result.not_synced("rightsizing candidate prices", line)
        collected.extra_prices = prices
    for region in collected.regions:
        budget = collected.budgets.get(region)  # (None: no time limit, for a caller without budgets)
        try:
            client = cloudwatch or cloudwatch_client(session, region, budget)
            done, rows = read_utilisation(conn, client, region, lookback_days=config.lookback_days, now=now,
                                          seen=utilisation_targets(config, collected.instances, region),
                                          budget=budget)
        except (AwsError, *aws_errors()) as exc:
            result.not_synced(f"utilisation of {region}",
                              f"WARNING: utilisation not read from CloudWatch: {describe(exc)}")
            continue
        collected.utilisation += rows
        result.utilisation_rows += done.rows
