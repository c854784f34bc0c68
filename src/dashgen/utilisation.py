"""Utilisation in the store: per instance and hour, what CloudWatch says, for rightsizing and experiments.

`read_utilisation` is what `dashgen sync` calls once per region BEFORE its write transaction (no AWS call
ever runs while that transaction is open): it picks the instances sync saw in the lookback window
(`config.lookback_days`) — those in the store and those this sync is about to write — and asks CloudWatch
`GetMetricData` (through the boto3 paginator, up to 500 queries a call) for CPU average, maximum and p95,
NetworkIn and NetworkOut (sums), the minimum CPUCreditBalance of burstable types and, for instances of an
experiment with a progress metric, that metric's maximum, and the surplus credits charged (CPUSurplusCreditsCharged,
Sum) of burstable types, which the cost functions price (dashgen.credits) (hourly periods); and, at 5-minute
resolution as Compute Optimizer (`FIVE_MINUTE_SERIES`), what rightsizing sizes on: the twelve 5-minute CPU maxima
of each hour, the busiest 5 minutes of network bytes (in, out) and packets, of EBS operations and bytes, and the
CloudWatch agent's `mem_used_percent` (namespace CWAgent, dimension InstanceId) when it is published.
Each row carries the instance type it ran on (`row_type`): a resize starts a new rightsizing window.
Sync then upserts the rows (`store_hourly`, into `dashgen.instance_utilisation_hourly`, migrations 010 and 050)
inside its one transaction.
Only the hours not stored yet (plus the last stored one, which may have been partial) are fetched again.
`collect_utilisation` reads and stores in one go, outside sync.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dashgen.errors import AwsError

HOUR = 3600
MAX_QUERIES = 500  # GetMetricData's limit per call
NAMESPACE = "AWS/EC2"
COLUMNS = ("cpu_avg", "cpu_max", "cpu_p95", "network_in_bytes", "network_out_bytes", "cpu_credit_balance_min",
           "progress_pct", "cpu_surplus_credits_charged", "cpu_max_5m", "cpu_peak_5m", "cpu_count_5m",
           "mem_used_max", "network_in_max_5m", "network_out_max_5m", "packets_max_5m", "ebs_ops_max_5m",
           "ebs_bytes_max_5m")
FIVE_MINUTES = 300
SLOTS = HOUR // FIVE_MINUTES  # twelve 5-minute values an hour
# column -> (AWS/EC2 metric, statistic); the credit balance only for burstable types
EC2_SERIES = {
    "cpu_avg": ("CPUUtilization", "Average"),
    "cpu_max": ("CPUUtilization", "Maximum"),
    "cpu_p95": ("CPUUtilization", "p95"),
    "network_in_bytes": ("NetworkIn", "Sum"),
    "network_out_bytes": ("NetworkOut", "Sum"),
    "cpu_credit_balance_min": ("CPUCreditBalance", "Minimum"),
    # surplus credits AWS charged (unlimited mode), summed over the hour: priced by dashgen.credits (issue 12)
    "cpu_surplus_credits_charged": ("CPUSurplusCreditsCharged", "Sum"),
}
BURSTABLE_ONLY = {"cpu_credit_balance_min", "cpu_surplus_credits_charged"}
# series read at 5-minute periods: name -> (namespace, metric, statistic)
FIVE_MINUTE_SERIES = {
    "cpu_5m": (NAMESPACE, "CPUUtilization", "Maximum"),
    "net_in_5m": (NAMESPACE, "NetworkIn", "Sum"),
    "net_out_5m": (NAMESPACE, "NetworkOut", "Sum"),
    "packets_in_5m": (NAMESPACE, "NetworkPacketsIn", "Sum"),
    "packets_out_5m": (NAMESPACE, "NetworkPacketsOut", "Sum"),
    "ebs_read_ops_5m": (NAMESPACE, "EBSReadOps", "Sum"),
    "ebs_write_ops_5m": (NAMESPACE, "EBSWriteOps", "Sum"),
    "ebs_read_bytes_5m": (NAMESPACE, "EBSReadBytes", "Sum"),
    "ebs_write_bytes_5m": (NAMESPACE, "EBSWriteBytes", "Sum"),
    "mem_5m": ("CWAgent", "mem_used_percent", "Maximum"),
}
# hourly column <- the 5-minute series added up per 5 minutes, then the hour's maximum
BUSIEST_5M = {
    "network_in_max_5m": ("net_in_5m",),
    "network_out_max_5m": ("net_out_5m",),
    "packets_max_5m": ("packets_in_5m", "packets_out_5m"),
    "ebs_ops_max_5m": ("ebs_read_ops_5m", "ebs_write_ops_5m"),
    "ebs_bytes_max_5m": ("ebs_read_bytes_5m", "ebs_write_bytes_5m"),
    "mem_used_max": ("mem_5m",),
}


@dataclass(frozen=True)
class Progress:
    """An experiment's progress metric (0-100); read per instance with the extra dimension InstanceId."""

    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Target:
    """One instance to measure."""

    instance_id: str
    burstable: bool = False
    progress: Progress | None = None
    instance_type: str | None = None  # the type it runs on now
    launch_time: dt.datetime | None = None  # its current LaunchTime: the type is certain from then on
    stored_type: str | None = None  # the type the store knew before this sync (None: new to the store)


@dataclass
class HourlyRow:
    instance_id: str
    hour: dt.datetime
    values: dict[str, Any] = field(default_factory=dict)
    instance_type: str | None = None  # the type this hour ran on (None: not known)


@dataclass(frozen=True)
class CollectResult:
    region: str
    instances: int
    rows: int
    start: dt.datetime | None
    end: dt.datetime | None


def floor_hour(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def cloudwatch_client(session: Any, region: str, budget: Any = None) -> Any:
    """A CloudWatch client with bounded timeouts and botocore's standard retry mode (throttling is retried with
    backoff, a limited number of times: `dashgen.aws.client`), watched by `budget`."""
    from dashgen.aws import client

    return client(session, "cloudwatch", region, budget=budget)


def metric_queries(targets: Iterable[Target]) -> list[tuple[dict[str, Any], str, str]]:
    """(GetMetricData query, instance id, column or 5-minute series) for every series of every target."""
    out: list[tuple[dict[str, Any], str, str]] = []
    for target in targets:
        series: list[tuple[str, str, str, str, list[dict[str, str]], int]] = []
        instance_dim = [{"Name": "InstanceId", "Value": target.instance_id}]
        for column, (metric, stat) in EC2_SERIES.items():
            if column not in BURSTABLE_ONLY or target.burstable:
                series.append((column, NAMESPACE, metric, stat, instance_dim, HOUR))
        if target.progress is not None:
            dims = [{"Name": k, "Value": v} for k, v in target.progress.dimensions if k != "InstanceId"]
            series.append(("progress_pct", target.progress.namespace, target.progress.metric, "Maximum",
                           dims + instance_dim, HOUR))
        for name, (namespace, metric, stat) in FIVE_MINUTE_SERIES.items():
            series.append((name, namespace, metric, stat, instance_dim, FIVE_MINUTES))
        for column, namespace, metric, stat, dims, period in series:
            query = {
                "Id": f"q{len(out)}",
                "MetricStat": {
                    "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dims},
                    "Period": period,
                    "Stat": stat,
                },
                "ReturnData": True,
            }
            out.append((query, target.instance_id, column))
    return out


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def fetch_hourly(client: Any, targets: Sequence[Target], start: dt.datetime, end: dt.datetime,
                 *, region: str = "") -> list[HourlyRow]:
    """Hourly rows for `targets` between `start` and `end` (whole hours), sorted by instance and hour."""
    from dashgen.aws import aws_errors, describe

    queries = metric_queries(targets)
    rows: dict[tuple[str, dt.datetime], HourlyRow] = {}
    fine: dict[tuple[str, dt.datetime], dict[str, dict[int, float]]] = {}  # 5-minute values by slot
    paginator = client.get_paginator("get_metric_data")
    try:
        for batch in _batches(queries, MAX_QUERIES):
            by_id = {q["Id"]: (iid, column) for q, iid, column in batch}
            pages = paginator.paginate(MetricDataQueries=[q for q, _, _ in batch], StartTime=start, EndTime=end,
                                       ScanBy="TimestampAscending")
            for page in pages:
                for result in page.get("MetricDataResults", []):
                    iid, column = by_id[result["Id"]]
                    for ts, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                        hour = floor_hour(ts)
                        row = rows.setdefault((iid, hour), HourlyRow(iid, hour))
                        if column in FIVE_MINUTE_SERIES:
                            slot = int((ts.astimezone(dt.UTC) - hour).total_seconds()) // FIVE_MINUTES
                            fine.setdefault((iid, hour), {}).setdefault(column, {})[slot] = float(value)
                        else:
                            row.values[column] = float(value)
    except aws_errors() as exc:  # one line: an HTML error page's body is never printed
        raise AwsError(f"cloudwatch GetMetricData ({region or 'region?'}): {describe(exc, operation=False)}") from None
    for key, series in fine.items():
        rows[key].values.update(hour_peaks(series))
    return [rows[k] for k in sorted(rows)]


def hour_peaks(series: dict[str, dict[int, float]]) -> dict[str, Any]:
    """One hour's 5-minute values (series -> slot -> value) -> the stored columns: the twelve CPU maxima, and for
    each of BUSIEST_5M the largest 5-minute total of its series (a series without a value there adds 0)."""
    out: dict[str, Any] = {}
    cpu = series.get("cpu_5m")
    if cpu:
        out["cpu_max_5m"] = [cpu.get(slot) for slot in range(SLOTS)]
    for column, parts in BUSIEST_5M.items():
        slots = {slot for part in parts for slot in series.get(part, {})}
        if slots:
            out[column] = max(sum(series.get(part, {}).get(slot, 0.0) for part in parts) for slot in slots)
    return out


def row_type(target: Target, hour: dt.datetime) -> str | None:
    """The type an hour of `target` ran on, as far as dashgen knows: the current type from the hour of its
    current launch on (a resize needs a stop and a start), before that the type the store knew (None for an
    instance new to the store: those hours are not counted by rightsizing)."""
    if target.launch_time is None or hour >= floor_hour(target.launch_time):
        return target.instance_type
    return target.stored_type


_ALL = (*COLUMNS, "instance_type")
_KEEP = {c: f"coalesce(excluded.{c}, u.{c})" for c in COLUMNS} | {
    "instance_type": "coalesce(u.instance_type, excluded.instance_type)"}  # the first known type stays
_UPSERT = (
    f"INSERT INTO dashgen.instance_utilisation_hourly AS u (instance_id, hour, {', '.join(_ALL)}) "
    f"VALUES (%s, %s, {', '.join('%s::real[]' if c == 'cpu_max_5m' else '%s' for c in _ALL)}) "
    "ON CONFLICT (instance_id, hour) DO UPDATE SET "
    + ", ".join(f"{c} = {_KEEP[c]}" for c in _ALL)
    + f" WHERE ({', '.join(f'u.{c}' for c in _ALL)}) IS DISTINCT FROM "
    f"({', '.join(_KEEP[c] for c in _ALL)})"  # unchanged rows are not rewritten
)


def _stored_values(row: HourlyRow) -> dict[str, Any]:
    """The row's values with what is derived from the 5-minute CPU maxima: their largest and their number."""
    values = dict(row.values)
    five = [v for v in values.get("cpu_max_5m") or () if v is not None]
    if five:
        values["cpu_peak_5m"], values["cpu_count_5m"] = max(five), len(five)
    else:
        values.pop("cpu_max_5m", None)  # no 5-minute value: nothing to size on
    return values


def store_hourly(conn: Any, rows: Sequence[HourlyRow]) -> int:
    """Upsert `rows` (a statistic CloudWatch did not return this time keeps its stored value); the count."""
    with conn.cursor() as cur:
        cur.executemany(_UPSERT, [(r.instance_id, r.hour, *(v.get(c) for c in COLUMNS), r.instance_type)
                                  for r in rows for v in (_stored_values(r),)])
    return len(rows)


_TARGETS = """
SELECT DISTINCT ON (i.instance_id) i.instance_id, coalesce(t.burstable, false),
       e.progress_namespace, e.progress_metric, e.progress_dimensions, i.instance_type, i.launch_time
FROM dashgen.instances i
LEFT JOIN dashgen.instance_types t USING (instance_type)
LEFT JOIN dashgen.experiments e
       ON i.tags ->> e.tag_key = e.tag_value AND e.progress_namespace IS NOT NULL AND e.progress_metric IS NOT NULL
WHERE i.region = %s AND i.last_seen >= %s
ORDER BY i.instance_id, e.name
"""


def targets_in_store(conn: Any, region: str, since: dt.datetime) -> list[Target]:
    """The instances of `region` sync saw since `since`, with their burstability and progress metric."""
    out = []
    for iid, burstable, namespace, metric, dims, itype, launch in conn.execute(_TARGETS, (region, since)):
        progress = None
        if namespace and metric:
            progress = Progress(namespace, metric, tuple(sorted((str(k), str(v)) for k, v in (dims or {}).items())))
        out.append(Target(iid, bool(burstable), progress, itype, launch, itype))
    return out


def fetch_start(conn: Any, targets: Sequence[Target], window_start: dt.datetime) -> dt.datetime:
    """The window start, or the oldest "latest stored hour" of the targets when every one has data (rows written
    before migration 050, without an instance type, do not count: their 5-minute values are read again)."""
    latest = conn.execute(
        "SELECT bool_and(last IS NOT NULL), min(last) FROM unnest(%s::text[]) AS t(instance_id) "
        "LEFT JOIN LATERAL (SELECT max(hour) AS last FROM dashgen.instance_utilisation_hourly u "
        "WHERE u.instance_id = t.instance_id AND u.instance_type IS NOT NULL) m ON true",
        ([t.instance_id for t in targets],),
    ).fetchone()
    if latest and latest[0] and latest[1] is not None:
        return max(window_start, floor_hour(latest[1]))
    return window_start


def read_utilisation(conn: Any, client: Any, region: str, *, lookback_days: int = 14,
                     now: dt.datetime | None = None, seen: Sequence[Target] = (),
                     budget: Any = None) -> tuple[CollectResult, list[HourlyRow]]:
    """The hourly utilisation of `region`'s instances (those in the store seen in the window, and `seen`, the
    ones this sync saw), read from CloudWatch (within `budget`, a `dashgen.aws.Budget`); the store is only read
    (a store that fails here is one `DatabaseError` line)."""
    from dashgen.store import db_errors

    end = floor_hour(now or dt.datetime.now(dt.UTC)) + dt.timedelta(hours=1)  # the current hour, partial
    window_start = end - dt.timedelta(days=lookback_days, hours=1)
    with db_errors(f"sync: read the instances of {region} to measure"):
        by_id = {t.instance_id: t for t in targets_in_store(conn, region, window_start)}
        stored = {iid: t.stored_type for iid, t in by_id.items()}
        if seen:
            known = conn.execute("SELECT instance_id, instance_type FROM dashgen.instances "
                                 "WHERE instance_id = ANY (%s)", ([t.instance_id for t in seen],)).fetchall()
            stored.update(dict(known))
        by_id.update((t.instance_id, replace(t, stored_type=stored.get(t.instance_id))) for t in seen)
        targets = [by_id[k] for k in sorted(by_id)]
        if not targets:
            return CollectResult(region, 0, 0, None, None), []
        start = fetch_start(conn, targets, window_start)
    if budget is not None:
        rows = budget.run(lambda: fetch_hourly(client, targets, start, end, region=region))
    else:
        rows = fetch_hourly(client, targets, start, end, region=region)
    for row in rows:
        row.instance_type = row_type(by_id[row.instance_id], row.hour)
    return CollectResult(region, len(targets), len(rows), start, end), rows


def collect_utilisation(conn: Any, client: Any, region: str, *, lookback_days: int = 14,
                        now: dt.datetime | None = None) -> CollectResult:
    """Read `region`'s hourly utilisation and upsert it (outside sync, which stores inside its transaction)."""
    result, rows = read_utilisation(conn, client, region, lookback_days=lookback_days, now=now)
    store_hourly(conn, rows)
    return result
