"""Utilisation in the store: per instance and hour, what CloudWatch says, for rightsizing and experiments.

`read_utilisation` is what `dashgen sync` calls once per region BEFORE its write transaction (no AWS call
ever runs while that transaction is open): it picks the instances sync saw in the lookback window
(`config.lookback_days`) — those in the store and those this sync is about to write — and asks CloudWatch
`GetMetricData` (through the boto3 paginator, up to 500 queries a call, hourly periods) for CPU average, maximum
and p95, NetworkIn and NetworkOut (sums), the minimum CPUCreditBalance of burstable types and, for instances of
an experiment with a progress metric, that metric's maximum, and the surplus credits charged (CPUSurplusCreditsCharged,
Sum) of burstable types, which the cost functions price (dashgen.sync.credits); and, at 5-minute
resolution as Compute Optimizer (`FIVE_MINUTE_SERIES`), what rightsizing sizes on: the twelve 5-minute CPU maxima
of each hour, the busiest 5 minutes of network bytes (in, out) and packets, of EBS operations and bytes, and the
CloudWatch agent's `mem_used_percent` (namespace CWAgent, dimension InstanceId) when it is published.
Each row carries the instance type it ran on (`row_type`): a resize starts a new rightsizing window.
Sync then upserts the rows (`store_hourly`, into `dashgen.instance_utilisation_hourly`, migrations 010 and 050)
inside its one transaction (rows written before migration 050, without a type, are read again).
Each instance is fetched from its OWN last stored hour (`fetch_spans`): an hour stored once it was complete (the
previous sync ran at least `SETTLED` after its end) is never fetched again, the last one stored while still
partial is; and only over the hours it ran (from its first run in the window to its stop, from the store's
running intervals and what this sync saw): a stopped instance whose hours are stored is not queried at all.
Instances with the same span share GetMetricData calls (up to 500 queries each, an instance's queries never
split across two calls). The rows are streamed: each call's rows go to a `RowSpool` on disk (binary COPY rows,
formatted during the read), so a fleet's 14 days never sit in memory; `store_hourly` COPYs the rows after each
instance's last stored hour straight into the table, and the others (the hour stored partial, read again) into a
temporary table upserted with one statement. `CloudWatchMeter` counts what a sync asked CloudWatch (calls,
metrics requested, datapoints returned).
`collect_utilisation` reads and stores in one go, outside sync.
"""

from __future__ import annotations

import datetime as dt
import struct
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, Any

from dashgen.catalogue import NAMESPACE
from dashgen.errors import AwsError
from dashgen.sync.experiments import ProgressMetric

HOUR = 3600
MAX_QUERIES = 500  # GetMetricData's limit per call
# An hour stored by a sync that ran at least this long after the hour's end is complete: never fetched again
# (EC2 basic monitoring publishes 5-minute data within minutes; the margin covers the delay).
SETTLED = dt.timedelta(minutes=15)
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
    # surplus credits AWS charged (unlimited mode), summed over the hour: priced by dashgen.sync.credits (issue 12)
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
class Target:
    """One instance to measure."""

    instance_id: str
    burstable: bool = False
    progress: ProgressMetric | None = None  # of the experiment it belongs to, read per instance
    instance_type: str | None = None  # the type it runs on now
    launch_time: dt.datetime | None = None  # its current LaunchTime: the type is certain from then on
    stored_type: str | None = None  # the type the store knew before this sync (None: new to the store)
    # what this sync saw (None: not seen, the store's running intervals decide): running now, its current
    # LaunchTime, and when it stopped (StateTransitionReason)
    running: bool | None = None
    launched_at: dt.datetime | None = None
    stopped_at: dt.datetime | None = None


@dataclass
class HourlyRow:
    instance_id: str
    hour: dt.datetime
    values: dict[str, Any] = field(default_factory=dict)
    instance_type: str | None = None  # the type this hour ran on (None: not known)


@dataclass(frozen=True)
class CollectResult:
    region: str
    instances: int  # the instances considered (seen in the window)
    rows: int
    start: dt.datetime | None  # the earliest hour asked for (None: nothing asked)
    end: dt.datetime | None
    queried: int = 0  # the instances actually asked about (the others had nothing new to fetch)


class CloudWatchMeter:
    """Counts GetMetricData calls, metrics requested (what CloudWatch bills, per 1,000; every call of a paginated
    request sends its queries again and counts them again) and datapoints returned, from botocore's
    `after-call` event of every client it is attached to (each page of a paginator is one call)."""

    EVENT = "after-call.cloudwatch.GetMetricData"

    def __init__(self) -> None:
        self.calls = 0
        self.metrics = 0
        self.datapoints = 0
        self._lock = threading.Lock()

    def _attach(self, emitter: Any) -> None:
        emitter.register(self.EVENT, self._after_call, unique_id=f"dashgen-meter-{id(self)}")

    def _after_call(self, *, parsed: Mapping[str, Any], context: Mapping[str, Any] | None = None,
                    **_: Any) -> None:
        if "Error" in parsed:
            return
        points = sum(len(r.get("Values") or ()) for r in parsed.get("MetricDataResults") or ())
        with self._lock:  # (the (account, region) pairs are read at once)
            self.calls += 1
            self.metrics += int((context or {}).get("dashgen_metrics", 0))
            self.datapoints += points

    @staticmethod
    def _before_call(*, params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["dashgen_metrics"] = len(params.get("MetricDataQueries") or ())

    def attach_client(self, client: Any) -> None:
        """Count the calls of one client; attaching twice counts once."""
        events = client.meta.events
        events.register("before-parameter-build.cloudwatch.GetMetricData", self._before_call,
                        unique_id=f"dashgen-meter-q-{id(self)}")
        self._attach(events)

    def attach_session(self, session: Any) -> None:
        """Attach to every client `session` (a boto3 Session) creates from now on (until `detach_session`)."""
        events = getattr(session, "events", None)
        if events is None:
            return
        events.register("before-parameter-build.cloudwatch.GetMetricData", self._before_call,
                        unique_id=f"dashgen-meter-q-{id(self)}")
        self._attach(events)

    def detach(self, session: Any = None, client: Any = None) -> None:
        """Stop counting: a caller's session (for the clients it creates from now on) and client are left as
        they were before `attach_session` / `attach_client`."""
        for events in (getattr(session, "events", None), getattr(getattr(client, "meta", None), "events", None)):
            if events is not None:
                events.unregister("before-parameter-build.cloudwatch.GetMetricData",
                                  unique_id=f"dashgen-meter-q-{id(self)}")
                events.unregister(self.EVENT, unique_id=f"dashgen-meter-{id(self)}")


# The spool holds PostgreSQL's binary COPY format (PostgreSQL docs, "COPY", "Binary Format"): the server only
# copies bytes in, where the text format's number parsing cost about half the write of a first sync (bench/).
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)  # signature, flags, header extension
_COPY_TRAILER = struct.pack("!h", -1)
_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # timestamptz: microseconds since then (int64)
_FLOAT4_OID = 700
_FLOAT4_MAX = 3.4028234663852886e38
_NULL = struct.pack("!i", -1)
_DOUBLE = struct.Struct("!id")
_REAL = struct.Struct("!if")
_SMALLINT = struct.Struct("!ih")
_BIGINT = struct.Struct("!iq")
_ARRAY_HEAD = struct.Struct("!iiiiii")  # byte length, ndim 1, has nulls, element type, size, lower bound 1
_FIELDS = struct.pack("!h", 2 + 17 + 1)  # instance_id, hour, COLUMNS, instance_type
# the table's type of each column (the temporary table of store_hourly has the same: binary COPY needs them)
COLUMN_TYPES = {c: "double precision" for c in COLUMNS} | {
    "cpu_max_5m": "real[]", "cpu_peak_5m": "real", "cpu_count_5m": "smallint"}


def _real(value: float, what: str) -> float:
    if value != value or abs(value) <= _FLOAT4_MAX or value in (float("inf"), float("-inf")):
        return value
    raise AwsError(f"cloudwatch: {what} = {value!r} is out of range for the stored type real (4 bytes)")


def _binary_value(column: str, value: Any, iid: str) -> bytes:
    """One field of a binary COPY row: its length and bytes (-1 for NULL)."""
    if value is None:
        return _NULL
    if column == "cpu_max_5m":
        body = b"".join(_NULL if v is None else _REAL.pack(4, _real(float(v), f"{column} of {iid}")) for v in value)
        if not value:  # an empty array: no dimension
            return struct.pack("!iiii", 12, 0, 0, _FLOAT4_OID)
        return _ARRAY_HEAD.pack(20 + len(body), 1, int(any(v is None for v in value)), _FLOAT4_OID, len(value),
                                1) + body
    if column == "cpu_peak_5m":
        return _REAL.pack(4, _real(float(value), f"{column} of {iid}"))
    if column == "cpu_count_5m":
        return _SMALLINT.pack(2, int(value))
    return _DOUBLE.pack(8, float(value))


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode("utf-8")
    return struct.pack("!i", len(data)) + data


def _hour(value: dt.datetime) -> bytes:
    delta = value - _PG_EPOCH
    return _BIGINT.pack(8, (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds)


def copy_row(row: HourlyRow) -> bytes:
    """`row` as one row of `COPY ... (instance_id, hour, <COLUMNS>, instance_type) FROM STDIN (FORMAT binary)`,
    with the peak and count derived from the 5-minute CPU maxima (`_stored_values`)."""
    values = _stored_values(row)
    return b"".join((_FIELDS, _text(row.instance_id), _hour(row.hour),
                     *(_binary_value(c, values.get(c), row.instance_id) for c in COLUMNS), _text(row.instance_type)))


def _parse_row(data: bytes, at: int) -> tuple[HourlyRow, int]:
    """The row of binary COPY `data` starting at `at` (the inverse of `copy_row`), and where the next starts."""
    (count,) = struct.unpack_from("!h", data, at)
    at += 2
    fields: list[bytes | None] = []
    for _ in range(count):
        (size,) = struct.unpack_from("!i", data, at)
        at += 4
        fields.append(None if size < 0 else data[at:at + size])
        at += max(size, 0)
    iid, hour, *values, itype = fields
    out: dict[str, Any] = {}
    for column, raw in zip(COLUMNS, values, strict=True):
        if raw is None:
            continue
        if column == "cpu_max_5m":
            ndim = struct.unpack_from("!i", raw)[0]
            n = struct.unpack_from("!i", raw, 12)[0] if ndim else 0
            items, pos = [], 20
            for _ in range(n):
                (size,) = struct.unpack_from("!i", raw, pos)
                pos += 4
                items.append(None if size < 0 else struct.unpack_from("!f", raw, pos)[0])
                pos += max(size, 0)
            out[column] = items
        elif column == "cpu_peak_5m":
            out[column] = struct.unpack("!f", raw)[0]
        elif column == "cpu_count_5m":
            out[column] = struct.unpack("!h", raw)[0]
        else:
            out[column] = struct.unpack("!d", raw)[0]
    micros = struct.unpack("!q", hour)[0]  # type: ignore[arg-type]
    return HourlyRow(iid.decode("utf-8"), _PG_EPOCH + dt.timedelta(microseconds=micros), out,  # type: ignore[union-attr]
                     None if itype is None else itype.decode("utf-8")), at


class RowSpool:
    """Hourly rows between the read (before sync's transaction) and the write: each call's rows appended to a
    temporary file as binary COPY rows (formatted outside the write transaction), streamed back in large chunks
    by `store_hourly`; no more than one call's rows are in memory at once. The spool knows where each instance's
    rows are, the hour of the first and the earliest of the others (`split`): `store_hourly` COPYs the rows after
    an instance's last stored hour straight into the table."""

    CHUNK = 1 << 20

    def __init__(self, rows: Iterable[HourlyRow] = ()) -> None:
        self._file: IO[bytes] | None = None
        self._count = 0
        self._size = 0
        # instance id -> a run of its consecutive rows each: (offset, length, the first row's hour and length, the
        # earliest hour of the others or None)
        self._segments: dict[str, list[tuple[int, int, dt.datetime, int, dt.datetime | None]]] = {}
        self._lock = threading.Lock()
        self._sealed = False
        self.instance_ids: set[str] = set()  # whose rows it holds (rightsizing refreshes their aggregates)
        self.extend(rows)

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="dashgen-utilisation-")  # noqa: SIM115 - see close()
        return self._file

    def extend(self, rows: Iterable[HourlyRow]) -> None:
        """Append one call's rows, whole (a sealed spool refuses: `RuntimeError`)."""
        parts: list[bytes] = []
        runs: list[list[Any]] = []  # [instance, offset in parts' bytes, length, first hour, first length, rest]
        size = 0
        for row in rows:
            data = copy_row(row)
            if runs and runs[-1][0] == row.instance_id:
                run = runs[-1]
                run[2] += len(data)
                run[5] = row.hour if run[5] is None else min(run[5], row.hour)
            else:
                runs.append([row.instance_id, size, len(data), row.hour, len(data), None])
            parts.append(data)
            size += len(data)
        with self._lock:
            if self._sealed:
                raise RuntimeError("utilisation spool sealed: this read was abandoned")
            if not parts:
                return
            self._append(b"".join(parts), len(parts), runs)

    def _append(self, data: bytes, count: int, runs: Iterable[list[Any]]) -> None:
        file = self._open()
        file.seek(0, 2)
        file.write(data)
        for iid, start, length, first, first_length, rest in runs:
            self._segments.setdefault(iid, []).append((self._size + start, length, first, first_length, rest))
            self.instance_ids.add(iid)
        self._size += len(data)
        self._count += count

    def seal(self) -> None:
        """Refuse any later `extend` (an abandoned reader thread can add nothing after this)."""
        with self._lock:
            self._sealed = True

    def absorb(self, other: RowSpool) -> None:
        """Append `other`'s rows (file to file, in chunks; `other` sealed first if it may still be written)."""
        with self._lock:
            base = self._size
            for chunk in other._chunks():
                file = self._open()
                file.seek(0, 2)
                file.write(chunk)
                self._size += len(chunk)
            for iid, segments in other._segments.items():
                self._segments.setdefault(iid, []).extend((base + o, *more) for o, *more in segments)
            self._count += len(other)
            self.instance_ids |= other.instance_ids

    def __iadd__(self, rows: Iterable[HourlyRow]) -> RowSpool:
        self.extend(rows)
        return self

    def __len__(self) -> int:
        return self._count

    def instances(self) -> list[str]:
        """The spooled instances, sorted."""
        return sorted(self._segments)

    def split(self, last: Mapping[str, dt.datetime | None]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(offset, length) of the rows after each instance's `last` stored hour (None or absent: all of its
        rows), and of the others: where an instance's first row is its only hour not after it (the hour stored
        while in progress, read again), only that row is in the second list."""
        new: list[tuple[int, int]] = []
        old: list[tuple[int, int]] = []
        for iid, segments in self._segments.items():
            stored = last.get(iid)
            for offset, length, first, first_length, rest in segments:
                rest_new = stored is None or rest is None or rest > stored
                if rest_new and (stored is None or first > stored):
                    new.append((offset, length))
                elif rest_new:
                    old.append((offset, first_length))
                    if length > first_length:
                        new.append((offset + first_length, length - first_length))
                else:
                    old.append((offset, length))
        return new, old

    def _chunks(self, ranges: Iterable[tuple[int, int]] | None = None) -> Iterator[bytes]:
        """The spooled rows (or those in `ranges`, (offset, length) in file order), in chunks of at most `CHUNK`."""
        if self._file is None:
            return
        for offset, length in [(0, self._size)] if ranges is None else ranges:
            self._file.seek(offset)
            while length > 0 and (chunk := self._file.read(min(self.CHUNK, length))):
                length -= len(chunk)
                yield chunk

    def copy_data(self, ranges: Iterable[tuple[int, int]] | None = None) -> Iterator[bytes]:
        """Binary COPY data (signature, rows, trailer) of every spooled row, or of the rows in `ranges` (`split`)."""
        if ranges is not None:
            spans, ranges = sorted(ranges), []
            for offset, length in spans:  # adjacent runs read as one
                if ranges and ranges[-1][0] + ranges[-1][1] == offset:
                    ranges[-1] = (ranges[-1][0], ranges[-1][1] + length)
                else:
                    ranges.append((offset, length))
        yield _COPY_SIGNATURE
        yield from self._chunks(ranges)
        yield _COPY_TRAILER

    def __iter__(self) -> Iterator[HourlyRow]:
        """The rows back (parsed from the binary COPY data)."""
        pending = b""
        for chunk in self._chunks():
            data, at = pending + chunk, 0
            while True:
                try:
                    row, end = _parse_row(data, at)
                except (struct.error, ValueError):  # a row cut by the chunk's end: with the next chunk
                    break
                if end > len(data):
                    break
                yield row
                at = end
            pending = data[at:]

    @staticmethod
    def _read(data: bytes) -> Iterator[HourlyRow]:
        """The rows of whole binary COPY data (signature, rows, trailer), as `copy_data` gives it."""
        at = len(_COPY_SIGNATURE)
        while data[at:at + 2] != _COPY_TRAILER:
            row, at = _parse_row(data, at)
            yield row

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def floor_hour(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def cloudwatch_client(session: Any, region: str, budget: Any = None) -> Any:
    """A CloudWatch client with bounded timeouts and botocore's standard retry mode (throttling is retried with
    backoff, a limited number of times: `dashgen.sync.aws.client`), watched by `budget`."""
    from dashgen.sync.aws import client

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
            metric = target.progress.cloudwatch(target.instance_id)
            series.append(("progress_pct", metric["Namespace"], metric["MetricName"], "Maximum",
                           metric["Dimensions"], HOUR))
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


def _batches(queries: Sequence[tuple[dict[str, Any], str, str]], size: int) -> Iterator[Sequence[Any]]:
    """`queries` in calls of at most `size`, the queries of one instance never split across two calls (its rows
    are then complete in the call that returns them)."""
    batch: list[Any] = []
    i = 0
    while i < len(queries):
        j = i + 1
        while j < len(queries) and queries[j][1] == queries[i][1]:
            j += 1
        if batch and len(batch) + (j - i) > size:
            yield batch
            batch = []
        batch.extend(queries[i:j])
        while len(batch) > size:  # one instance with more queries than a call holds (not with these series)
            yield batch[:size]
            batch = batch[size:]
        i = j
    if batch:
        yield batch


def iter_hourly(client: Any, targets: Sequence[Target], start: dt.datetime, end: dt.datetime,
                *, region: str = "") -> Iterator[list[HourlyRow]]:
    """Hourly rows for `targets` between `start` and `end` (whole hours): one list per GetMetricData request
    (up to 500 queries, its pages followed), holding every row of the instances it asked about."""
    from dashgen.sync.aws import aws_errors, describe

    queries = metric_queries(targets)
    paginator = client.get_paginator("get_metric_data")
    hours: dict[dt.datetime, dt.datetime] = {}  # timestamp -> its hour (the same few hundred for every query)
    try:
        for batch in _batches(queries, MAX_QUERIES):
            rows: dict[tuple[str, dt.datetime], HourlyRow] = {}
            fine: dict[tuple[str, dt.datetime], dict[str, dict[int, float]]] = {}  # 5-minute values by slot
            by_id = {q["Id"]: (iid, column) for q, iid, column in batch}
            pages = paginator.paginate(MetricDataQueries=[q for q, _, _ in batch], StartTime=start, EndTime=end,
                                       ScanBy="TimestampAscending")
            for page in pages:
                for result in page.get("MetricDataResults", []):
                    iid, column = by_id[result["Id"]]
                    for ts, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                        hour = hours.get(ts)
                        if hour is None:
                            hour = hours[ts] = floor_hour(ts)
                        row = rows.get((iid, hour))
                        if row is None:
                            row = rows[(iid, hour)] = HourlyRow(iid, hour)
                        if column in FIVE_MINUTE_SERIES:
                            slot = int((ts.astimezone(dt.UTC) - hour).total_seconds()) // FIVE_MINUTES
                            fine.setdefault((iid, hour), {}).setdefault(column, {})[slot] = float(value)
                        else:
                            row.values[column] = float(value)
            # an instance's queries never split across calls: its 5-minute slots are all in this batch
            for key, series in fine.items():
                rows[key].values.update(hour_peaks(series))
            yield [rows[k] for k in sorted(rows)]
    except aws_errors() as exc:  # one line: an HTML error page's body is never printed
        raise AwsError(f"cloudwatch GetMetricData ({region or 'region?'}): {describe(exc, operation=False)}") from None


def fetch_hourly(client: Any, targets: Sequence[Target], start: dt.datetime, end: dt.datetime,
                 *, region: str = "") -> list[HourlyRow]:
    """Hourly rows for `targets` between `start` and `end` (whole hours), sorted by instance and hour."""
    rows = [row for batch in iter_hourly(client, targets, start, end, region=region) for row in batch]
    return sorted(rows, key=lambda r: (r.instance_id, r.hour))


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
_COLS = ", ".join(_ALL)
_MERGE = (  # one statement for every row COPYed into _utilisation (each (instance, hour) once)
    f"INSERT INTO dashgen.instance_utilisation_hourly AS u (instance_id, hour, {_COLS}) "
    f"SELECT instance_id, hour, {_COLS} FROM _utilisation "
    "ON CONFLICT (instance_id, hour) DO UPDATE SET "
    + ", ".join(f"{c} = {_KEEP[c]}" for c in _ALL)
    + f" WHERE ({', '.join(f'u.{c}' for c in _ALL)}) IS DISTINCT FROM "
    f"({', '.join(_KEEP[c] for c in _ALL)})"  # unchanged rows are not rewritten
)
# each instance's last stored hour (the primary key, read backwards: one probe an instance)
_LAST_STORED = """
SELECT t.instance_id, (SELECT u.hour FROM dashgen.instance_utilisation_hourly u
                       WHERE u.instance_id = t.instance_id ORDER BY u.hour DESC LIMIT 1)
FROM unnest(%s::text[]) AS t(instance_id)
"""
_COPY = f"COPY {{}} (instance_id, hour, {_COLS}) FROM STDIN (FORMAT binary)"


def _stored_values(row: HourlyRow) -> dict[str, Any]:
    """The row's values with what is derived from the 5-minute CPU maxima: their largest and their number."""
    values = dict(row.values)
    five = [v for v in values.get("cpu_max_5m") or () if v is not None]
    if five:
        values["cpu_peak_5m"], values["cpu_count_5m"] = max(five), len(five)
    else:
        values.pop("cpu_max_5m", None)  # no 5-minute value: nothing to size on
    return values


def store_hourly(conn: Any, rows: Iterable[HourlyRow]) -> int:
    """Upsert `rows` (a statistic CloudWatch did not return this time keeps its stored value), each (instance,
    hour) at most once; the count. In the caller's transaction (else its own), holding the sync lock (what is
    stored cannot change meanwhile): the rows after an instance's last stored hour (all of a new instance's, a
    first sync's; the new hours of a steady-state sync) are COPYed straight into the table; the others (the hour
    stored while in progress, read again) stream through COPY into a temporary table and land with one
    INSERT ... ON CONFLICT that rewrites only the rows that change. Binary COPY, never a statement per row."""
    from dashgen.store.db import SYNC_LOCK

    spool = rows if isinstance(rows, RowSpool) else RowSpool(rows)
    try:
        count = len(spool)
        if not count:
            return 0
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SYNC_LOCK,))  # (held already by sync's write)
            last = dict(conn.execute(_LAST_STORED, (spool.instances(),)).fetchall())
            new, old = spool.split(last)
            if new:
                _copy(conn, "dashgen.instance_utilisation_hourly", spool.copy_data(new))
            if old:
                conn.execute("DROP TABLE IF EXISTS pg_temp._utilisation")
                conn.execute("CREATE TEMP TABLE _utilisation (instance_id text, hour timestamptz, "
                             + ", ".join(f"{c} {COLUMN_TYPES.get(c, 'text')}" for c in _ALL) + ") ON COMMIT DROP")
                _copy(conn, "_utilisation", spool.copy_data(old))
                conn.execute(_MERGE)
            if has_rollups(conn):
                _roll_up(conn, last, temp=bool(old))
            if old:
                conn.execute("DROP TABLE _utilisation")
        return count
    finally:
        if spool is not rows:
            spool.close()


def _copy(conn: Any, table: str, data: Iterable[bytes]) -> None:
    with conn.cursor().copy(_COPY.format(table)) as copy:
        for chunk in data:
            copy.write(chunk)


def has_rollups(conn: Any) -> bool:
    """Whether the store keeps the daily rollups (store/functions/47_charge_rollups.sql): a store migrated only
    up to an earlier version has none to keep."""
    return bool(conn.execute("SELECT to_regprocedure('dashgen.roll_up_extra_charges(timestamptz)') IS NOT NULL"
                             ).fetchone()[0])


# Rows written for hours the rollups already hold (store/functions/47_charge_rollups.sql): those instances' charge
# days again, from the day of their first such hour with surplus credits, and those hours of the fleet's CPU. The
# rows written are those COPYed straight in (after each instance's last stored hour before this write) and those
# merged from the temporary table (the hours stored already, read again).
_WRITTEN_NEW = """
SELECT u.instance_id, u.hour, u.cpu_surplus_credits_charged
FROM unnest(%(ids)s::text[], %(after)s::timestamptz[]) AS n(instance_id, after)
JOIN dashgen.instance_utilisation_hourly u
  ON u.instance_id = n.instance_id AND u.hour > coalesce(n.after, '-infinity')
 AND u.hour < (SELECT s.through FROM dashgen.rollup_state s)"""
_WRITTEN_OLD = "SELECT instance_id, hour, cpu_surplus_credits_charged FROM _utilisation"
_ROLL_UP = ("""
SELECT dashgen.roll_up_extra_charges_of(array_agg(x.instance_id), array_agg(x.first))
FROM (SELECT u.instance_id, min(u.hour) AS first
      FROM dashgen.rollup_state s JOIN ({written}) u ON u.hour < s.through
      WHERE u.cpu_surplus_credits_charged IS NOT NULL GROUP BY u.instance_id) x""", """
SELECT dashgen.roll_up_cpu_hours('infinity', 'infinity', array_agg(DISTINCT u.hour))
FROM dashgen.rollup_state s JOIN ({written}) u ON u.hour < s.through
HAVING count(*) > 0""")


def _roll_up(conn: Any, last: Mapping[str, dt.datetime | None], *, temp: bool) -> None:
    """Redo the rollups the rows just written touch (`last`: each instance's last stored hour before the write;
    `temp`: whether rows went through the temporary table `_utilisation`)."""
    written = _WRITTEN_NEW + (f"\nUNION ALL\n{_WRITTEN_OLD}" if temp else "")
    params = {"ids": list(last), "after": list(last.values())}
    for stmt in _ROLL_UP:
        conn.execute(stmt.format(written=written), params)


_TARGETS = """
SELECT DISTINCT ON (i.instance_id) i.instance_id, coalesce(t.burstable, false),
       e.progress_namespace, e.progress_metric, e.progress_dimensions, i.instance_type, i.launch_time
FROM dashgen.instances i
LEFT JOIN dashgen.instance_types t USING (instance_type)
LEFT JOIN dashgen.experiments e
       ON i.tags ->> e.tag_key = e.tag_value AND e.progress_namespace IS NOT NULL AND e.progress_metric IS NOT NULL
WHERE i.region = %s AND i.last_seen >= %s AND (%s::text IS NULL OR i.account_id = %s::text)
ORDER BY i.instance_id, e.name
"""


def targets_in_store(conn: Any, region: str, since: dt.datetime, account_id: str | None = None) -> list[Target]:
    """The instances of `region` (of account `account_id`; None: of every account) sync saw since `since`, with
    their burstability and progress metric."""
    out = []
    for iid, burstable, namespace, metric, dims, itype, launch in conn.execute(
            _TARGETS, (region, since, account_id, account_id)):
        progress = ProgressMetric.of(namespace, metric, dims)
        out.append(Target(iid, bool(burstable), progress, itype, launch, itype))
    return out


_STORED = """
SELECT t.instance_id, u.last, i.last_seen, r.ran_from, r.still_running, r.ran_until
FROM unnest(%(ids)s::text[]) AS t(instance_id)
LEFT JOIN dashgen.instances i USING (instance_id)
LEFT JOIN LATERAL (SELECT max(hour) AS last FROM dashgen.instance_utilisation_hourly u
                   WHERE u.instance_id = t.instance_id AND u.instance_type IS NOT NULL) u ON true
LEFT JOIN LATERAL (SELECT min(started_at) AS ran_from, bool_or(ended_at IS NULL) AS still_running,
                          max(ended_at) AS ran_until
                   FROM dashgen.instance_intervals iv
                   WHERE iv.instance_id = t.instance_id AND (iv.ended_at IS NULL OR iv.ended_at > %(since)s)) r
       ON true
"""


def fetch_spans(conn: Any, targets: Sequence[Target], window_start: dt.datetime,
                end: dt.datetime) -> dict[str, tuple[dt.datetime, dt.datetime]]:
    """Per instance, the whole hours [start, end) to ask CloudWatch for; an instance with nothing to ask is
    left out. Start: the hour after its last stored one when that hour was complete when stored (the sync
    that stored it, the instance's `last_seen`, ran `SETTLED` after its end), else that hour (partial: asked
    again); never before its first run in the window (store intervals, this sync's LaunchTime) or the window.
    End: the current hour for a running instance, else the hour it stopped in (this sync's stop time, the
    store's last interval end)."""
    stored = {row[0]: row[1:] for row in conn.execute(
        _STORED, {"ids": [t.instance_id for t in targets], "since": window_start})}
    spans: dict[str, tuple[dt.datetime, dt.datetime]] = {}
    for target in targets:
        last, last_seen, ran_from, still_running, ran_until = stored.get(target.instance_id, (None,) * 5)
        starts = [t for t in (ran_from, target.launched_at) if t is not None]
        start = max(window_start, floor_hour(min(starts))) if starts else window_start
        if last is not None:
            done = last_seen is not None and last + dt.timedelta(hours=1) + SETTLED <= last_seen
            start = max(start, last + dt.timedelta(hours=1) if done else last)
        if target.running is None:  # not seen by this sync: the store's intervals (none: as if running)
            until = None if still_running is not False else ran_until
        elif target.running:
            until = None
        else:  # stopped: when AWS says, else when the store closed its run (an undated stop: up to now, once)
            ends = [t for t in (target.stopped_at, ran_until) if t is not None]
            until = max(ends) if ends else None
        stop = end if until is None else min(end, floor_hour(until) + dt.timedelta(hours=1))
        if start < stop:
            spans[target.instance_id] = (start, stop)
    return spans


def read_utilisation_into(conn: Any, client: Any, region: str, into: RowSpool | list[HourlyRow], *,
                          lookback_days: int = 14, now: dt.datetime | None = None,
                          seen: Sequence[Target] = (), budget: Any = None,
                          account_id: str | None = None) -> CollectResult:
    """Read the hourly utilisation of `region`'s instances (those in the store seen in the window, and `seen`,
    the ones this sync saw; with `account_id`, only that account's: the client's) from CloudWatch into `into`,
    one GetMetricData request's rows at a time (within `budget`, a `dashgen.sync.aws.Budget`: into a spool of the
    region's own, added to `into` only when every read answered); the store is only read (a store that fails here
    is one `DatabaseError` line). Instances with the same span (`fetch_spans`) share requests."""
    from dashgen.store.db import db_errors

    end = floor_hour(now or dt.datetime.now(dt.UTC)) + dt.timedelta(hours=1)  # the current hour, partial
    window_start = end - dt.timedelta(days=lookback_days, hours=1)
    with db_errors(f"sync: read the instances of {region} to measure"):
        by_id = {t.instance_id: t for t in targets_in_store(conn, region, window_start, account_id)}
        stored = {iid: t.stored_type for iid, t in by_id.items()}
        if seen:
            known = conn.execute("SELECT instance_id, instance_type FROM dashgen.instances "
                                 "WHERE instance_id = ANY (%s)", ([t.instance_id for t in seen],)).fetchall()
            stored.update(dict(known))
        by_id.update((t.instance_id, replace(t, stored_type=stored.get(t.instance_id))) for t in seen)
        targets = [by_id[k] for k in sorted(by_id)]
        if not targets:
            return CollectResult(region, 0, 0, None, None)
        spans = fetch_spans(conn, targets, window_start, end)
    groups: dict[tuple[dt.datetime, dt.datetime], list[Target]] = {}
    for target in targets:
        if target.instance_id in spans:
            groups.setdefault(spans[target.instance_id], []).append(target)

    def fetch(sink: RowSpool | list[HourlyRow]) -> int:
        count = 0
        for (start, stop), members in sorted(groups.items(), key=lambda kv: kv[0]):
            for batch in iter_hourly(client, members, start, stop, region=region):
                for row in batch:
                    row.instance_type = row_type(by_id[row.instance_id], row.hour)
                sink += batch
                count += len(batch)
        return count

    if budget is None:
        count = fetch(into)
    else:  # the read runs in a worker thread, into a spool of its own (an abandoned read never writes `into`)
        local: RowSpool | list[HourlyRow] = [] if isinstance(into, list) else RowSpool()
        try:
            count = budget.run(lambda: fetch(local))
        finally:  # also when the budget ran out or a call failed: the calls that answered are true and kept,
            # so the next sync goes on from there (each instance from its own last stored hour)
            if isinstance(local, RowSpool):
                local.seal()
                into.absorb(local)  # type: ignore[union-attr]
                local.close()
            else:
                into += list(local)
    if not groups:
        return CollectResult(region, len(targets), 0, None, None)
    return CollectResult(region, len(targets), count, min(k[0] for k in groups), max(k[1] for k in groups),
                         queried=len(spans))


def read_utilisation(conn: Any, client: Any, region: str, *, lookback_days: int = 14,
                     now: dt.datetime | None = None,
                     seen: Sequence[Target] = ()) -> tuple[CollectResult, list[HourlyRow]]:
    """`read_utilisation_into` a list, sorted by instance and hour."""
    rows: list[HourlyRow] = []
    result = read_utilisation_into(conn, client, region, rows, lookback_days=lookback_days, now=now, seen=seen)
    return result, sorted(rows, key=lambda r: (r.instance_id, r.hour))


def collect_utilisation(conn: Any, client: Any, region: str, *, lookback_days: int = 14,
                        now: dt.datetime | None = None) -> CollectResult:
    """Read `region`'s hourly utilisation and upsert it (outside sync, which stores inside its transaction)."""
    spool = RowSpool()
    try:
        result = read_utilisation_into(conn, client, region, spool, lookback_days=lookback_days, now=now)
        store_hourly(conn, spool)
    finally:
        spool.close()
    return result
