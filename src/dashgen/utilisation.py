"""Utilisation in the store: per instance and hour, what CloudWatch says, for rightsizing and experiments.

`read_utilisation` is what `dashgen sync` calls once per region BEFORE its write transaction (no AWS call
ever runs while that transaction is open): it picks the instances sync saw in the lookback window
(`config.lookback_days`) — those in the store and those this sync is about to write — and asks CloudWatch
`GetMetricData` (through the boto3 paginator, up to 500 queries a call, hourly periods) for CPU average, maximum
and p95, NetworkIn and NetworkOut (sums), the minimum CPUCreditBalance of burstable types and, for instances of
an experiment with a progress metric, that metric's maximum, and the surplus credits charged (CPUSurplusCreditsCharged,
Sum) of burstable types, which the cost functions price (dashgen.credits). Sync then upserts the rows
(`store_hourly`, into `dashgen.instance_utilisation_hourly`, migration 010) inside its one transaction.
Only the hours not stored yet (plus the last stored one, which may have been partial) are fetched again.
`collect_utilisation` reads and stores in one go, outside sync.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dashgen.errors import AwsError

HOUR = 3600
MAX_QUERIES = 500  # GetMetricData's limit per call
NAMESPACE = "AWS/EC2"
COLUMNS = ("cpu_avg", "cpu_max", "cpu_p95", "network_in_bytes", "network_out_bytes", "cpu_credit_balance_min",
           "progress_pct", "cpu_surplus_credits_charged")
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


@dataclass
class HourlyRow:
    instance_id: str
    hour: dt.datetime
    values: dict[str, float] = field(default_factory=dict)


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
    """(GetMetricData query, instance id, column) for every series of every target, hourly."""
    out: list[tuple[dict[str, Any], str, str]] = []
    for target in targets:
        series: list[tuple[str, str, str, str, list[dict[str, str]]]] = []
        instance_dim = [{"Name": "InstanceId", "Value": target.instance_id}]
        for column, (metric, stat) in EC2_SERIES.items():
            if column not in BURSTABLE_ONLY or target.burstable:
                series.append((column, NAMESPACE, metric, stat, instance_dim))
        if target.progress is not None:
            dims = [{"Name": k, "Value": v} for k, v in target.progress.dimensions if k != "InstanceId"]
            series.append(("progress_pct", target.progress.namespace, target.progress.metric, "Maximum",
                           dims + instance_dim))
        for column, namespace, metric, stat, dims in series:
            query = {
                "Id": f"q{len(out)}",
                "MetricStat": {
                    "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dims},
                    "Period": HOUR,
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
                        row.values[column] = float(value)
    except aws_errors() as exc:  # one line: an HTML error page's body is never printed
        raise AwsError(f"cloudwatch GetMetricData ({region or 'region?'}): {describe(exc, operation=False)}") from None
    return [rows[k] for k in sorted(rows)]


_UPSERT = (
    f"INSERT INTO dashgen.instance_utilisation_hourly AS u (instance_id, hour, {', '.join(COLUMNS)}) "
    f"VALUES (%s, %s, {', '.join(['%s'] * len(COLUMNS))}) "
    "ON CONFLICT (instance_id, hour) DO UPDATE SET "
    + ", ".join(f"{c} = coalesce(excluded.{c}, u.{c})" for c in COLUMNS)
    + f" WHERE ({', '.join(f'u.{c}' for c in COLUMNS)}) IS DISTINCT FROM "
    f"({', '.join(f'coalesce(excluded.{c}, u.{c})' for c in COLUMNS)})"  # unchanged rows are not rewritten
)


def store_hourly(conn: Any, rows: Sequence[HourlyRow]) -> int:
    """Upsert `rows` (a statistic CloudWatch did not return this time keeps its stored value); the count."""
    with conn.cursor() as cur:
        cur.executemany(_UPSERT, [(r.instance_id, r.hour, *(r.values.get(c) for c in COLUMNS)) for r in rows])
    return len(rows)


_TARGETS = """
SELECT DISTINCT ON (i.instance_id) i.instance_id, coalesce(t.burstable, false),
       e.progress_namespace, e.progress_metric, e.progress_dimensions
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
    for iid, burstable, namespace, metric, dims in conn.execute(_TARGETS, (region, since)):
        progress = None
        if namespace and metric:
            progress = Progress(namespace, metric, tuple(sorted((str(k), str(v)) for k, v in (dims or {}).items())))
        out.append(Target(iid, bool(burstable), progress))
    return out


def fetch_start(conn: Any, targets: Sequence[Target], window_start: dt.datetime) -> dt.datetime:
    """The window start, or the oldest "latest stored hour" of the targets when every one has data."""
    latest = conn.execute(
        "SELECT bool_and(last IS NOT NULL), min(last) FROM unnest(%s::text[]) AS t(instance_id) "
        "LEFT JOIN LATERAL (SELECT max(hour) AS last FROM dashgen.instance_utilisation_hourly u "
        "WHERE u.instance_id = t.instance_id) m ON true",
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
        by_id.update((t.instance_id, t) for t in seen)
        targets = [by_id[k] for k in sorted(by_id)]
        if not targets:
            return CollectResult(region, 0, 0, None, None), []
        start = fetch_start(conn, targets, window_start)
    if budget is not None:
        rows = budget.run(lambda: fetch_hourly(client, targets, start, end, region=region))
    else:
        rows = fetch_hourly(client, targets, start, end, region=region)
    return CollectResult(region, len(targets), len(rows), start, end), rows


def collect_utilisation(conn: Any, client: Any, region: str, *, lookback_days: int = 14,
                        now: dt.datetime | None = None) -> CollectResult:
    """Read `region`'s hourly utilisation and upsert it (outside sync, which stores inside its transaction)."""
    result, rows = read_utilisation(conn, client, region, lookback_days=lookback_days, now=now)
    store_hourly(conn, rows)
    return result
