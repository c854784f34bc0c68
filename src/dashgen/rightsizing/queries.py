"""Rightsizing: the recommendations and the experiment comparison, from the SQL the dashboard embeds.

`sql/rightsizing.sql` and `sql/experiment_comparison.sql` are the one implementation; the dashboard panel
runs them in Grafana with its template variables, `recommendations` / `compare_experiment` run the same text
with the same variables bound as psycopg parameters (`dashgen.store.sqlvars`). `RULE` is the documented rule
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
from dashgen.store.sqlvars import (
    ALL,  # the CLI's "no filter" (bound as the dashboard variables' All value)
    Value,
    bind,
    load_sql,
)

HOURS_PER_MONTH = 730

RULE = (
    "Rule (docs/rightsizing.md, point by point beside Compute Optimizer): instance facts from EC2 "
    "DescribeInstanceTypes (refreshed daily by sync; the bundled snapshot offline); a type without facts is not "
    "analysed. Terminated instances are left out. Window: the last lookback_days days (default 14), only the "
    "hours on the current type (a resize starts a new window), at least 30 hours (coverage shown). Peak: the "
    "CPU percentile (default P99.5) of the 5-minute CPU maxima, and of the hourly busiest 5 minutes of network, "
    "EBS and memory. Target = CPU threshold x (1 - headroom) (80 % x (1 - 20 %) = 64 %); needed = peak / target "
    "for vCPUs, memory (CloudWatch agent mem_used_percent; when not measured memory never shrinks), network "
    "against the baseline bandwidth, EBS IOPS and MB/s against the EBS baseline, and for burstable types the "
    "busiest day's average CPU at most their baseline. GPUs, Neuron devices and other accelerators (count, model, "
    "memory) and the instance-store size are kept. Recommended (same family): the smallest type of the family "
    "and architecture meeting all of it; verdict under-provisioned when the current type does not, "
    "over-provisioned when a smaller one does, else right-sized. Cheaper family: the cheapest such type of "
    "another family of the class with up to twice the vCPUs (a burstable one may move to an m type of its "
    "architecture), flagged when the architecture changes. Risk "
    "0-4: the worst resource's peak / capacity (<= 50 % 0, <= target 1, <= threshold 2, <= 100 % 3, above 4), "
    "limited_by names it. Monthly saving = ($/hour now - $/hour recommended) x 730 h."
)

# column -> (label, kind); kind picks the Grafana unit and the terminal format
RIGHTSIZING_COLUMNS: dict[str, tuple[str, str]] = {
    "instance_id": ("Instance", "text"),
    "name": ("Name", "text"),
    "tags": ("Tags", "text"),
    "instance_type": ("Type", "text"),
    "vcpu": ("vCPU", "int"),
    "memory_mib": ("Memory", "mib"),
    "facts_source": ("Facts from", "text"),  # aws-describe-instance-types, or bundled-snapshot (offline fallback)
    "usd_per_hour": ("$/hour", "usd4"),
    "hours": ("Hours", "int"),
    "coverage_pct": ("Coverage", "pct"),
    "cpu_avg": ("CPU avg", "pct"),
    "cpu_peak": ("CPU peak (percentile of 5-min maxima)", "pct"),
    "cpu_max": ("CPU max", "pct"),
    "memory_peak": ("Memory used peak", "pct"),
    "network_gbps": ("Network peak Gbit/s", "num"),
    "ebs_iops": ("EBS IOPS peak", "num"),
    "ebs_mbps": ("EBS MB/s peak", "num"),
    "needed_vcpu": ("vCPU needed", "num"),
    "verdict": ("Verdict", "text"),
    "current_risk": ("Risk now", "int"),
    "recommended_type": ("Recommended (family)", "text"),
    "recommended_usd_per_hour": ("Recommended $/hour", "usd4"),
    "monthly_saving_usd": ("Saving $/month", "usd"),
    "risk": ("Risk", "int"),
    "limited_by": ("Limited by", "text"),
    "reasons": ("Reasons", "text"),
    "cheaper_type": ("Cheaper family", "text"),
    "cheaper_usd_per_hour": ("Cheaper $/hour", "usd4"),
    "cheaper_monthly_saving_usd": ("Cheaper saving $/month", "usd"),
    "cheaper_risk": ("Cheaper risk", "int"),
    "cheaper_migration": ("Migration", "text"),
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
        "cpu_percentile": f"{config.cpu_percentile:g}",
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
    from dashgen.store.db import db_errors

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
    from dashgen.store.db import db_errors

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
    from dashgen.store.db import connect, resolve_dsn

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
    values = [row.get(k) for k in ("cpu_avg", "cpu_peak", "cpu_max")]
    return "-" if values[1] is None else " / ".join(cell(v, "num") for v in values) + " %"


RISK_NAMES = ("very low", "low", "medium", "high", "very high")  # Compute Optimizer's performance risk words


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
    ("Type", lambda r: _typed(r, "instance_type", "usd_per_hour")),
    ("Hours (coverage)", lambda r: f"{r['hours']} ({cell(r['coverage_pct'], 'pct')})"),
    ("CPU avg / peak / max", _cpu),
    ("Verdict", lambda r: cell(r["verdict"], "text")),
    ("Recommended (family)", lambda r: _option(r, "recommended")),
    ("Cheaper family", lambda r: _option(r, "cheaper")),
)
WRAPPED = ("Name", "Tags", "Recommended (family)", "Cheaper family")


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
    their vCPUs (for a burstable type also the non-burstable m types of its architecture with half to twice its
    vCPUs: a way out of its credit baseline), so that the recommended and the cheaper type have a price (sync
    stores them too). sql/rightsizing.sql's `pool` draws its candidates from the same sets."""
    from dashgen.store.db import instance_type_rows
    from dashgen.sync.pricing import PriceKey

    specs = {row[0]: row for row in instance_type_rows()}  # type, family, vcpu, memory_mib, arch, ...
    out: set[Any] = set()
    for key in keys:
        spec = specs.get(key.instance_type)
        if spec is None or spec[1] is None or spec[2] is None:
            continue
        family, vcpu, arch, burstable = spec[1], spec[2], spec[4], spec[5]
        for other, (_, ofam, ovcpu, _mem, oarch, oburst, *_rest) in specs.items():
            if not ofam or not ovcpu:
                continue
            same_class = type_class(ofam) == type_class(family) and ovcpu <= 2 * vcpu
            way_out = (burstable and not oburst and type_class(ofam) == "m" and oarch == arch
                       and vcpu <= 2 * ovcpu and ovcpu <= 2 * vcpu)
            if ofam == family or same_class or way_out:
                out.add(PriceKey(key.region, other, key.operating_system, key.tenancy))
    return out


# ---------------------------------------------------------------- what `dashgen sync` reads for rightsizing

def fresh_price_keys(conn: Any, keys: set[Any], now: dt.datetime, max_age: dt.timedelta | None = None) -> set[Any]:
    """The `keys` whose stored price came from the Price List API less than `max_age` (default
    `dashgen.sync.pricing.PRICE_MAX_AGE`, 24 h) before `now` and is not stale."""
    from dashgen.store.db import db_errors
    from dashgen.sync.pricing import API_SOURCE, PRICE_MAX_AGE, PriceKey

    with db_errors("sync: read stored prices"):
        rows = conn.execute("SELECT region, instance_type, operating_system, tenancy FROM dashgen.instance_prices "
                            "WHERE source = %s AND fetched_at > %s AND stale_since IS NULL",
                            (API_SOURCE, now - (max_age or PRICE_MAX_AGE))).fetchall()
    return keys & {PriceKey(*row) for row in rows}


def utilisation_targets(config: Config, instances: Iterable[Any], region: str) -> list[Any]:
    """What CloudWatch is asked about for the instances sync saw in `region`: burstable (the bundled specs) and
    the progress metric of the first experiment (by name) whose tag they carry."""
    from dashgen.store.db import instance_type_rows
    from dashgen.sync.cloudwatch import Progress, Target

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
        stopped = inst.state_changed_at
        if inst.running or stopped is None or (inst.launch_time is not None and stopped < inst.launch_time):
            stopped = None  # as sync's write: a stop time before the current launch is no stop of this run
        out.append(Target(inst.instance_id, burstable.get(inst.instance_type, False), progress,
                          inst.instance_type, inst.launch_time,
                          running=inst.running, launched_at=inst.launch_time, stopped_at=stopped))
    return out


def collect_rightsizing(conn: Any, config: Config, collected: Any, prices_mode: str, session: Any, now: dt.datetime,
                        result: Any, *, pricing: Any = None, cloudwatch: Any = None, facts_client: Any = None) -> None:
    """Called by `dashgen.sync.sync` BEFORE its write transaction (the store is only read): into `collected`,
    the instance facts of the types in use and the candidates (`dashgen.sync.instance_facts`: each at most once a
    day, within a time budget of its own; a failure is one line, the stored facts, else the bundled snapshot,
    stay), the prices of the types the rule may recommend beside those in use (from the Price List API only when
    missing or older than 24 h), and per region the hourly utilisation (`dashgen.sync.cloudwatch`), within the
    region's time budget (`collected.budgets`). A CloudWatch failure (or the budget running out) is one line and the
    sync is partial; the rows of the calls that answered before it are kept (true data: the next sync goes on
    from there, each instance from its own last stored hour), the rest still lands. A store that fails here
    stops the sync."""
    from dashgen.errors import AwsError
    from dashgen.store.db import db_errors
    from dashgen.sync.aws import Budget, aws_errors, describe
    from dashgen.sync.aws import client as aws_client
    from dashgen.sync.cloudwatch import cloudwatch_client, read_utilisation_into
    from dashgen.sync.instance_facts import collect_facts
    from dashgen.sync.pricing import PriceKey, resolve_prices

    in_use = {PriceKey(i.region, i.instance_type, i.operating_system, i.tenancy) for i in collected.instances}
    extra = rightsizing_price_keys(in_use) - in_use
    wanted = {k.instance_type for k in in_use | extra}  # their facts: the types in use and every candidate
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
        before = len(collected.utilisation)
        try:
            client = cloudwatch or cloudwatch_client(session, region, budget)
            done = read_utilisation_into(conn, client, region, collected.utilisation,
                                         lookback_days=config.lookback_days, now=now,
                                         seen=utilisation_targets(config, collected.instances, region),
                                         budget=budget)
        except (AwsError, *aws_errors()) as exc:
            result.not_synced(f"utilisation of {region}",
                              f"WARNING: utilisation not read from CloudWatch: {describe(exc)}")
            result.utilisation_rows += len(collected.utilisation) - before  # the calls that answered are kept
            continue
        result.utilisation_rows += done.rows
    if collected.regions:  # instance facts (DescribeInstanceTypes) from the first region that answered
        region = collected.regions[0]
        seconds = collected.budgets[region].seconds if region in collected.budgets else None
        budget = Budget("DescribeInstanceTypes", seconds) if seconds else None  # its own: not the region's time
        try:
            client = facts_client or aws_client(session, "ec2", region, budget=budget)
            with db_errors("sync: read instance facts"):
                collected.facts = collect_facts(conn, client, wanted, now,
                                                run=budget.run if budget is not None else None)
        except (AwsError, *aws_errors()) as exc:
            result.not_synced("instance facts", f"WARNING: instance facts not read (DescribeInstanceTypes): "
                                                f"{describe(exc)}; rightsizing uses the stored ones, else the "
                                                "bundled snapshot")
