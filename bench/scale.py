"""Bench: dashgen at fleet scale (run: .venv/bin/python bench/scale.py --instances N [--json]).

Builds a pricing store with the project's own code paths, then measures what issue 13 names:

1. First sync: `dashgen.sync.sync` end to end (`prices="bundled"`) against stubbed AWS: DescribeInstances and
   DescribeVolumes pages through botocore's Stubber (shape-checked replies, 1,000 instances a page), and a
   CloudWatch client whose GetMetricData replies are generated from the request (a `before-call` handler, as
   the Stubber answers: the queries' InstanceId, Period and the window pick the datapoints; an instance has
   datapoints only for the hours it ran; at most 100,800 datapoints a reply, then NextToken, as the GetMetricData
   API reference says). N instances launched 15 days ago (one in ten stopped a day ago), in 20 experiments
   with a progress metric, one EBS volume each; issue 12's charges beside On-Demand: one instance in five is Spot
   (two AZs; DescribeSpotPriceHistory through the Stubber: a price change every 6 hours per AZ and type), the
   burstable ones (t4g.large, t4g.xlarge: a quarter of the fleet) are unlimited
   (DescribeInstanceCreditSpecifications) and those whose CPU level is above their baseline are charged surplus
   credits every hour they run (CPUSurplusCreditsCharged = (level - baseline) x vCPUs x 60 a hour): sync's real
   write with 14 days of hourly utilisation, candidate prices, volumes and experiment progress. Timed (whole sync
   and its write transaction) in a child process, whose peak RSS is the sync's peak memory (and the write's CPU
   time, this process's and the server backend's, with the load average: on a shared machine wall time moves with
   the load); CloudWatch calls,
   metrics requested and datapoints returned are what the sync reports (`SyncResult.cloudwatch_*`).
2. Steady-state sync two hours later (same fleet): the same figures.
3. History: 15 earlier daily runs of each instance over the 30 days before (bulk SQL load, billing rollups
   rebuilt with the statements the sync's triggers use, as bench/sync.py), and the Spot prices of those 30 days
   (what earlier syncs would have stored).
4. Every panel's SQL of every built dashboard (`render_dashboards`), with Grafana's variable expansion
   (tests/grafana_sql.py): All, and a 1-value selection (the first value of each variable's own query), over
   the dashboard's default range and the last 30 days; timed at the client (execute and fetch every row),
   best of 3 after a warm-up; the figure is the worst of the four.
5. `dashgen rightsize --format table|json|csv` end to end (a fresh process each, output read through a pipe).
6. `dashgen build` / `python -c "import grafanalib.core"` (interleaved, best of 5 each): the build ratio.

Targets (issue 13): panels < 100 ms at 10k (< 500 ms at 50k); rightsize < 2 s at 10k; first sync write < 10 s
with < 500 MB peak; steady state < 2 s at 10k; build ratio <= 2. The data folder is removed at the end, unless
`--keep DIR` (the store is built in DIR and kept); `--reuse DIR` times the panels of a store kept so, and
`--panels REGEX` only the panels whose "dashboard/title" matches, without rightsize and build (both for working
on a panel's SQL). `--bulk` builds the store without the syncs (sync's write of the inventory, then CloudWatch's
rows bulk-loaded by SQL: `bulk_store`) and times only the panels: for 10k+ on a loaded machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the Grafana variable expander the tests use

import boto3  # noqa: E402
import pgserver  # noqa: E402
from botocore.awsrequest import AWSResponse  # noqa: E402
from botocore.stub import Stubber  # noqa: E402

from dashgen.build import render_dashboards  # noqa: E402
from dashgen.config import Config, Experiment  # noqa: E402
from dashgen.grafana.validate import all_panels  # noqa: E402
from dashgen.store.db import connect, migrate  # noqa: E402
from grafana_sql import ALL, expand  # noqa: E402

TYPES = ["t4g.large", "t4g.xlarge", "m5.large", "m5.xlarge", "m6i.xlarge", "c6g.large", "r6g.large", "c5.2xlarge"]
REGION = "us-east-1"
PAGE = 1000
EXPERIMENTS = 20
MAX_DATAPOINTS = 100_800  # GetMetricData: "a total of as many as 100,800 data points" a call (API reference)
HOUR = dt.timedelta(hours=1)
AZS = ("us-east-1a", "us-east-1b")
BURSTABLE = {"t4g.large": (30.0, 2), "t4g.xlarge": (40.0, 4)}  # baseline % a vCPU, vCPUs (EC2 burstable docs)
SPOT_EVERY = dt.timedelta(hours=6)
NOW = dt.datetime.now(dt.UTC).replace(minute=20, second=0, microsecond=0)
LAUNCHED = NOW - dt.timedelta(days=15)
STOPPED_AT = NOW - dt.timedelta(days=1, minutes=7)


def floor_hour(t: dt.datetime) -> dt.datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def spot_times(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """The Spot price changes in [start, end]: every 6 hours (UTC 00, 06, 12, 18)."""
    at = floor_hour(start).replace(hour=start.hour // 6 * 6)
    out = []
    while at <= end:
        out.append(at)
        at += SPOT_EVERY
    return out


def spot_price(instance_type: str, az: str, at: dt.datetime) -> float:
    """USD an hour: a type's level (about a third of its On-Demand rate) moving by up to 12 % with each change."""
    step = int(at.timestamp()) // 21600
    return round((0.012 + 0.011 * TYPES.index(instance_type)) * (1 + 0.02 * ((step + AZS.index(az)) % 7)), 6)


class Fleet:
    """N instances: i-<hex>, launched 15 days ago (one in ten stopped a day ago), 20 experiments."""

    def __init__(self, n: int) -> None:
        self.n = n

    @staticmethod
    def iid(i: int) -> str:
        return f"i-{i:017x}"

    @staticmethod
    def stopped(i: int) -> bool:
        return i % 10 == 0

    @staticmethod
    def spot(i: int) -> bool:
        return i % 5 == 1

    @staticmethod
    def cpu_level(i: int) -> float:
        return 3.0 + (i * 37) % 90

    def surplus_credits_an_hour(self, iid: str) -> float:
        """CPUSurplusCreditsCharged a running hour: an unlimited burstable instance above its baseline (its
        earned balance long spent) is charged the credits over the baseline, 60 a vCPU at 100 % for an hour."""
        i = int(iid[2:], 16)
        baseline, vcpu = BURSTABLE.get(TYPES[i % len(TYPES)], (100.0, 0))
        return max(0.0, (self.cpu_level(i) - baseline) / 100 * vcpu * 60)

    def credit_pages(self) -> list[dict[str, Any]]:
        """DescribeInstanceCreditSpecifications replies as dashgen.credits asks: the burstable ids sorted, 1,000 a
        call; every one unlimited."""
        ids = sorted(self.iid(i) for i in range(self.n) if TYPES[i % len(TYPES)] in BURSTABLE)
        return [{"InstanceCreditSpecifications": [{"InstanceId": iid, "CpuCredits": "unlimited"}
                                                  for iid in ids[k:k + 1000]]} for k in range(0, len(ids), 1000)]

    def spot_pages(self, now: dt.datetime) -> list[dict[str, Any]]:
        """DescribeSpotPriceHistory replies, one page per AZ (dashgen.spot asks per AZ, sorted): the price changes
        from the last one before the earliest launch to `now`, of every type the Spot instances there use."""
        pages = []
        for az in AZS:
            types = sorted({TYPES[i % len(TYPES)] for i in range(self.n) if self.spot(i) and AZS[i % 2] == az})
            if not types:
                continue
            history = [{"AvailabilityZone": az, "InstanceType": t, "ProductDescription": "Linux/UNIX",
                        "SpotPrice": f"{spot_price(t, az, at):.6f}", "Timestamp": at}
                       for t in types for at in spot_times(LAUNCHED - SPOT_EVERY, now)]
            pages.append({"SpotPriceHistory": history})
        return pages

    def span(self, iid: str) -> tuple[dt.datetime, dt.datetime | None]:
        i = int(iid[2:], 16)
        return LAUNCHED + dt.timedelta(seconds=i % 3600), STOPPED_AT if self.stopped(i) else None

    def instance_pages(self) -> list[dict[str, Any]]:
        pages = []
        for start in range(0, self.n, PAGE):
            instances = []
            for i in range(start, min(self.n, start + PAGE)):
                stopped = self.stopped(i)
                instances.append({
                    "InstanceId": self.iid(i), "InstanceType": TYPES[i % len(TYPES)],
                    "State": {"Code": 80 if stopped else 16, "Name": "stopped" if stopped else "running"},
                    "LaunchTime": self.span(self.iid(i))[0],
                    "StateTransitionReason": STOPPED_AT.strftime("User initiated (%Y-%m-%d %H:%M:%S GMT)")
                    if stopped else "",
                    "PlatformDetails": "Linux/UNIX",
                    "Placement": {"Tenancy": "default", "AvailabilityZone": AZS[i % 2]},
                    **({"InstanceLifecycle": "spot"} if self.spot(i) else {}),
                    "Tags": [{"Key": "Name", "Value": f"node-{i}"}, {"Key": "experiment",
                                                                     "Value": f"exp-{i % EXPERIMENTS}"},
                             {"Key": "team", "Value": f"team-{i % 7}"}],
                })
            page: dict[str, Any] = {"Reservations": [{"ReservationId": f"r-{start:017x}", "Instances": instances}]}
            if start + PAGE < self.n:
                page["NextToken"] = f"t{start + PAGE}"
            pages.append(page)
        return pages

    def volume_pages(self) -> list[dict[str, Any]]:
        pages = []
        for start in range(0, self.n, PAGE):
            volumes = [{"VolumeId": f"vol-{i:017x}", "VolumeType": "gp3", "Size": 50, "CreateTime": LAUNCHED,
                        "State": "in-use", "Attachments": [{"InstanceId": self.iid(i), "State": "attached"}]}
                       for i in range(start, min(self.n, start + PAGE))]
            page: dict[str, Any] = {"Volumes": volumes}
            if start + PAGE < self.n:
                page["NextToken"] = f"v{start + PAGE}"
            pages.append(page)
        return pages


class CloudWatchReplies:
    """GetMetricData replies generated from the request, for a real botocore client (`before-call`)."""

    def __init__(self, fleet: Fleet, now: dt.datetime) -> None:
        self.fleet, self.now = fleet, now
        self._times: dict[tuple[dt.datetime, int], list[dt.datetime]] = {}

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-parameter-build.cloudwatch.GetMetricData", self._remember)
        client.meta.events.register("before-call.cloudwatch.GetMetricData", self._reply)
        return client

    @staticmethod
    def _remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_params"] = dict(params)

    def _timestamps(self, start: dt.datetime, period: int, count: int) -> list[dt.datetime]:
        key = (start, period)
        cached = self._times.get(key)
        if cached is None or len(cached) < count:
            cached = self._times[key] = [start + dt.timedelta(seconds=period * k) for k in range(max(count, 400))]
        return cached[:count]

    def _series(self, query: dict[str, Any], start: dt.datetime, end: dt.datetime) -> tuple[list, list]:
        stat = query["MetricStat"]
        period = int(stat["Period"])
        dims = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
        end = min(end, self.now)
        if "InstanceId" in dims:
            launched, stopped = self.fleet.span(dims["InstanceId"])
            first = max(start, floor_hour(launched))
            last = min(end, stopped) if stopped else end
            k = int(dims["InstanceId"][2:], 16)
        else:  # an experiment's progress: one point a period over the whole window
            first, last, k = start, end, 0
        count = max(0, -(-int((last - first).total_seconds()) // period))
        times = self._timestamps(first, period, count)
        metric = stat["Metric"]["MetricName"]
        if metric == "CPUSurplusCreditsCharged":  # a Sum: the hour's charge spread over the period
            return times, [self.fleet.surplus_credits_an_hour(dims["InstanceId"]) * period / 3600] * count
        level = {"CPUUtilization": Fleet.cpu_level(k), "NetworkIn": 1e6, "NetworkOut": 2e6,
                 "CPUCreditBalance": 100.0}.get(metric, 0.0)
        if metric == "CPUUtilization" and stat["Stat"] == "Maximum":
            level = min(100.0, level + 8)
        if "InstanceId" not in dims or metric not in ("CPUUtilization", "NetworkIn", "NetworkOut",
                                                      "CPUCreditBalance"):  # progress: rising to 100 %
            span = max(1.0, (self.now - LAUNCHED).total_seconds())
            return times, [min(100.0, 100.0 * (t - LAUNCHED).total_seconds() / span) for t in times]
        return times, [level] * count

    def _reply(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        params = context["bench_params"]
        queries = params["MetricDataQueries"]
        offset = int(params.get("NextToken") or 0)
        results, total = [], 0
        for index in range(offset, len(queries)):
            times, values = self._series(queries[index], params["StartTime"], params["EndTime"])
            if results and total + len(values) > MAX_DATAPOINTS:
                return self._response(results, next_token=str(index))
            total += len(values)
            results.append({"Id": queries[index]["Id"], "Label": queries[index]["Id"], "Timestamps": times,
                            "Values": values, "StatusCode": "Complete"})
        return self._response(results)

    @staticmethod
    def _response(results: list[dict[str, Any]], next_token: str | None = None) -> tuple[AWSResponse, dict]:
        parsed: dict[str, Any] = {"MetricDataResults": results, "Messages": [],
                                  "ResponseMetadata": {"HTTPStatusCode": 200, "RequestId": "bench"}}
        if next_token:
            parsed["NextToken"] = next_token
        return AWSResponse("https://monitoring.us-east-1.amazonaws.com/", 200, {}, None), parsed


class BenchSession(boto3.Session):
    """A boto3 Session whose EC2 clients answer from the fleet (Stubber) and CloudWatch from `CloudWatchReplies`."""

    def __init__(self, fleet: Fleet, now: dt.datetime) -> None:
        super().__init__(aws_access_key_id="bench", aws_secret_access_key="bench", region_name=REGION)
        self.fleet, self.replies = fleet, CloudWatchReplies(fleet, now)
        self.stubbers: list[Stubber] = []

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        client = super().client(service_name, *args, **kwargs)
        if service_name == "cloudwatch":
            return self.replies.attach(client)
        if service_name == "ec2":
            stub = Stubber(client)
            for page in self.fleet.instance_pages():
                stub.add_response("describe_instances", page)
            for page in self.fleet.volume_pages():
                stub.add_response("describe_volumes", page)
            for page in self.fleet.credit_pages():
                stub.add_response("describe_instance_credit_specifications", page)
            for page in self.fleet.spot_pages(self.replies.now):
                stub.add_response("describe_spot_price_history", page)
            stub.activate()
            self.stubbers.append(stub)
        return client


def bench_config() -> Config:
    deadline = NOW + dt.timedelta(days=7)
    # region_timeout: the bench measures the sync, not the time budget (a first sync of 50k instances reads for
    # longer than the default 5 minutes here; the calls that answered would land and the next sync go on)
    return Config(prices="bundled", region_timeout="1h", experiments=tuple(
        Experiment(f"exp-{k}", "experiment", f"exp-{k}", 5000.0, deadline, "Bench/Training", "Progress",
                   (("Experiment", f"exp-{k}"),)) for k in range(EXPERIMENTS)))


def _backend_cpu(conn: Any) -> float:
    """CPU seconds (user + system) the PostgreSQL backend serving `conn` has used (the server runs here)."""
    try:
        fields = Path(f"/proc/{conn.info.backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sync_child(dsn: str, n: int, now: dt.datetime, out: Any) -> None:
    from dashgen import sync as sync_mod

    spent = {"write": 0.0, "write_cpu": 0.0}
    real_write = sync_mod.write

    def timed_write(conn: Any, *args: Any, **kwargs: Any) -> Any:
        # wall time, and CPU time of this process and of the server's backend: on a shared machine the wall time
        # moves with the load, the CPU time much less
        t, cpu, server = time.perf_counter(), time.process_time(), _backend_cpu(conn)
        out = real_write(conn, *args, **kwargs)
        spent["write"] += time.perf_counter() - t
        spent["write_cpu"] += time.process_time() - cpu + _backend_cpu(conn) - server
        return out

    sync_mod.write = timed_write
    session = BenchSession(Fleet(n), now)
    t = time.perf_counter()
    result = sync_mod.sync(bench_config(), dsn=dsn, prices="bundled", session=session, now=now)
    total = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put({"s": total, "write_s": spent["write"], "write_cpu_s": spent["write_cpu"], "peak_mb": peak_mb,
             "load": os.getloadavg()[0],
             "calls": result.cloudwatch_calls, "metrics": result.cloudwatch_metrics,
             "datapoints": result.cloudwatch_datapoints, "rows": result.utilisation_rows,
             "instances": result.instances, "warnings": result.warnings, "ok": result.ok})


def run_sync(dsn: str, n: int, now: dt.datetime) -> dict[str, Any]:
    """One sync in a fresh child process (its peak RSS is the sync's)."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_sync_child, args=(dsn, n, now, queue))
    child.start()
    figures = queue.get()
    child.join()
    if child.exitcode:
        raise SystemExit(f"sync child failed with exit code {child.exitcode}")
    return figures


def bulk_store(dsn: str, n: int, now: dt.datetime) -> int:
    """--bulk: the store a first sync leaves, without its CloudWatch read (on a loaded machine the 10k first sync,
    5-minute series included, takes over an hour). Sync's own write of what AWS says without CloudWatch: the
    fleet's inventory and volumes (its Stubber pages), bundled prices, credit modes and prices, Spot prices (its
    DescribeSpotPriceHistory pages) and the experiments; then, bulk-loaded with SQL, what the CloudWatch read would
    store: every instance's hourly rows over the last 14 days of the hours it ran, at the levels the stubbed
    replies give (CPU, per-instance progress, surplus credits of the unlimited ones above their baseline), and each
    experiment's 5-minute progress points; the rollups built as sync builds them. The utilisation rows."""
    from dashgen.sync import Collected, write
    from dashgen.sync.credits import CreditKey, family_of, is_burstable, resolve_credit_prices
    from dashgen.sync.inventory import describe_region
    from dashgen.sync.pricing import PriceKey, resolve_prices
    from dashgen.sync.spot import parse_entry
    from dashgen.sync.volumes import describe_volumes

    fleet = Fleet(n)
    client = boto3.client("ec2", region_name=REGION, aws_access_key_id="bench", aws_secret_access_key="bench")
    with Stubber(client) as stub:
        for page in fleet.instance_pages():
            stub.add_response("describe_instances", page)
        for page in fleet.volume_pages():
            stub.add_response("describe_volumes", page)
        instances, volumes = describe_region(client, REGION), describe_volumes(client, REGION)
    prices, _ = resolve_prices({PriceKey(i.region, i.instance_type, i.operating_system, i.tenancy)
                                for i in instances}, "bundled")
    burstable = [i for i in instances if is_burstable(i.instance_type)]
    credit_prices, _ = resolve_credit_prices({CreditKey(i.region, family_of(i.instance_type), i.operating_system)
                                              for i in burstable}, "bundled", None)
    spot = [parse_entry(e, REGION) for page in fleet.spot_pages(now) for e in page["SpotPriceHistory"]]
    collected = Collected(instances, [REGION], prices, {}, volumes=volumes, volume_regions=[REGION],
                          credit_modes={i.instance_id: "unlimited" for i in burstable}, credit_prices=credit_prices,
                          spot_prices=spot)
    with connect(dsn) as conn:
        migrate(conn)
        write(conn, bench_config(), collected, now)
    with connect(dsn) as conn, conn.transaction():
        conn.execute("""
            INSERT INTO dashgen.instance_utilisation_hourly (instance_id, hour, cpu_avg, cpu_max, cpu_p95,
                                                             progress_pct, cpu_surplus_credits_charged)
            SELECT i.instance_id, h, l.level, least(100, l.level + 8), l.level,
                   least(100, 100 * date_part('epoch', h - %(launched)s) / date_part('epoch', %(now)s - %(launched)s)),
                   CASE i.instance_type WHEN 't4g.large' THEN greatest(0, (l.level - 30) / 100 * 2 * 60)
                                        WHEN 't4g.xlarge' THEN greatest(0, (l.level - 40) / 100 * 4 * 60) END
            FROM dashgen.instances i
            JOIN dashgen.instance_intervals iv ON iv.instance_id = i.instance_id,
            LATERAL (SELECT 3.0 + (('x' || lpad(right(i.instance_id, 15), 16, '0'))::bit(64)::bigint * 37) %% 90
                            AS level) l,
            generate_series(date_trunc('hour', greatest(iv.started_at, %(now)s - interval '14 days')),
                            coalesce(iv.ended_at, %(now)s) - interval '1 microsecond', interval '1 hour') h""",
                     {"now": now, "launched": LAUNCHED})
        conn.execute("""
            INSERT INTO dashgen.experiment_progress (experiment, at, percent)
            SELECT 'exp-' || k, t, least(100, 100 * date_part('epoch', t - %(launched)s)
                                               / date_part('epoch', %(now)s - %(launched)s))
            FROM generate_series(0, %(experiments)s - 1) k,
                 generate_series(date_trunc('hour', %(now)s) - interval '14 days', %(now)s, interval '5 minutes') t
            """, {"now": now, "launched": LAUNCHED, "experiments": EXPERIMENTS})
        rows = conn.execute("SELECT count(*) FROM dashgen.instance_utilisation_hourly").fetchone()[0]
        conn.execute("DELETE FROM dashgen.rollup_state")
        conn.execute("SELECT dashgen.roll_up_extra_charges(%s)", (now,))
    return rows


def load_history(dsn: str) -> int:
    """15 earlier daily runs (2-17 h) per instance over the 30 days before now, bulk-loaded; rollups rebuilt."""
    with connect(dsn) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute("""
            INSERT INTO dashgen.instance_intervals (instance_id, started_at, ended_at)
            SELECT i.instance_id, s.start,
                   s.start + make_interval(hours => 2 + (hashtext(i.instance_id || d) & 15))
            FROM dashgen.instances i, generate_series(16, 30) d,
                 LATERAL (SELECT date_trunc('day', %(now)s::timestamptz) - make_interval(days => d)
                                 + make_interval(mins => hashtext(i.instance_id) & 255) AS start) s
            ON CONFLICT DO NOTHING""", {"now": NOW})
        history = [(az, t, "Linux/UNIX", at, spot_price(t, az, at), REGION)
                   for az in AZS for t in TYPES for at in spot_times(NOW - dt.timedelta(days=32), LAUNCHED)]
        conn.cursor().executemany("INSERT INTO dashgen.spot_prices (availability_zone, instance_type, "
                                  "product_description, at, usd_per_hour, region) VALUES (%s, %s, %s, %s, %s, %s) "
                                  "ON CONFLICT DO NOTHING", history)
        conn.execute("SELECT dashgen.refresh_billing(array_agg(instance_id)) FROM dashgen.instances")
        conn.execute("SET LOCAL session_replication_role = origin")
        conn.execute("TRUNCATE dashgen.cost_events_hourly, dashgen.cost_events_daily")
        conn.execute(conn.execute("""SELECT dashgen.cost_events_sql(
            'SELECT iv.started_at, iv.ended_at, 1 AS weight, i.region, i.instance_type, i.operating_system,
                    i.tenancy, i.tags - ''Name'' AS tags, coalesce(i.account_id, '''') AS account_id
             FROM dashgen.instance_intervals iv JOIN dashgen.instances i USING (instance_id)')""").fetchone()[0])
        rows = conn.execute("SELECT count(*) FROM dashgen.instance_intervals").fetchone()[0]
        # the rollups of the charges beside On-Demand and of the fleet's CPU (their triggers were off): built again
        # from every stored row, as sync builds them the first time
        conn.execute("DELETE FROM dashgen.rollup_state")
        conn.execute("SELECT dashgen.roll_up_extra_charges(now())")
    with connect(dsn) as conn:  # what autovacuum does after a load this size
        conn.execute("VACUUM (ANALYZE)")
    return rows


def _range(text: str) -> dt.timedelta:
    amount, unit = int(text.removeprefix("now-")[:-1]), text[-1]
    return dt.timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: amount})


def _variable_choices(conn: Any, dash: dict[str, Any], frm: dt.datetime, to: dt.datetime) -> tuple[dict, dict, dict]:
    """(All values, 1-value selection, custom allValues) for every variable, in dashboard order (a query
    variable's values come from its own SQL, expanded with the variables before it)."""
    all_sel: dict[str, Any] = {}
    one_sel: dict[str, Any] = {}
    all_values: dict[str, str] = {}
    for var in dash.get("templating", {}).get("list", []):
        name = var["name"]
        if "allValue" in var and var.get("allValue") is not None:
            all_values[name] = var["allValue"]
        options = [o["value"] for o in var.get("options") or [] if o.get("value") not in (None, "$__all")]
        query = var.get("query")
        sql = query.get("rawSql") if isinstance(query, dict) else query if isinstance(query, str) else None
        if var["type"] == "query" and sql and "SELECT" in sql.upper() and "dashgen." in sql:
            values = []
            for sel in (one_sel, all_sel):
                try:
                    text = expand(sql, time_from=frm, time_to=to, variables=sel, all_values=all_values)
                    cur = conn.execute(text.encode())
                    names = [d.name for d in cur.description or []]
                    at = names.index("__value") if "__value" in names else 0  # (text, value) queries
                    values = [str(r[at]) for r in cur.fetchall() if r[at] is not None]
                except Exception:  # noqa: BLE001 - a variable query that cannot run here: no values
                    continue
                if values:
                    break
            options = values or options
        elif var["type"] == "custom" and not options:
            options = [v.strip() for v in str(query or "").split(",") if v.strip()]
        current = (var.get("current") or {}).get("value")
        current = current[0] if isinstance(current, list) and current else current
        first = options[0] if options else (current if current not in (None, "$__all") else "")
        if name == "region":
            first = REGION
        default = current if current not in (None, "", "$__all") else first
        one_sel[name] = [first] if var.get("includeAll") or var.get("multi") else first
        all_sel[name] = ALL if var.get("includeAll") else default
        if all_sel[name] == ALL and name not in all_values:  # All without a custom value: every option
            all_sel[name] = options
        if var["type"] == "custom" and not var.get("includeAll"):
            one_sel[name] = all_sel[name] = default
    return all_sel, one_sel, all_values


def _client_ms(conn: Any, sql: bytes, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        conn.execute(sql).fetchall()
        best = min(best, (time.perf_counter() - t) * 1000)
    return best


def calibration_ms(dsn: str) -> float:
    """The machine's speed now (shared: the load moves every figure): as bench/sync.py, about 139 ms idle here."""
    with connect(dsn) as conn:
        return min(_client_ms(conn, b"SELECT sum(i) FROM generate_series(1, 1000000) i") for _ in range(2))


def bench_panels(dsn: str, config: Config, log: Any, only: str | None = None) -> dict[str, float]:
    out: dict[str, float] = {}
    log(f"  (machine speed: SELECT sum(i) FROM generate_series(1, 1000000) takes {calibration_ms(dsn):.0f} ms now, "
        f"load average {os.getloadavg()[0]:.1f})")
    with connect(dsn) as conn:
        for file, dash in sorted(render_dashboards(config).items()):
            slug = file.removesuffix(".json")
            default_span = _range(dash.get("time", {}).get("from", "now-24h"))
            for span in dict.fromkeys((default_span, dt.timedelta(days=30))):
                frm, to = NOW - span, NOW
                all_sel, one_sel, all_values = _variable_choices(conn, dash, frm, to)
                for panel in all_panels(dash):
                    # a panel's relative time ("timeFrom") replaces the dashboard's range for its queries
                    # (grafana/grafana public/app/features/dashboard-scene/scene/PanelTimeRange.tsx): timed once
                    own = _range(f"now-{panel['timeFrom']}") if panel.get("timeFrom") else None
                    if own is not None and span != default_span:
                        continue
                    p_frm, p_span = (NOW - own, own) if own is not None else (frm, span)
                    p_interval = max(60_000, int(p_span.total_seconds() * 1000 / 1000) // 60_000 * 60_000)
                    for target in panel.get("targets") or []:
                        if not target.get("rawSql"):
                            continue
                        key = f"{slug}/{panel.get('title', '?')}" + (
                            f" ({target['refId']})" if len(panel["targets"]) > 1 else "")
                        if only and not re.search(only, key):
                            continue
                        for label, sel in (("All", all_sel), ("1 value", one_sel)):
                            sql = expand(target["rawSql"], time_from=p_frm, time_to=to, variables=sel,
                                         all_values=all_values, interval_ms=p_interval).encode()
                            t = time.perf_counter()
                            conn.execute(sql).fetchall()  # warm-up (and a first figure)
                            first = (time.perf_counter() - t) * 1000
                            ms = first if first > 2000 else min(first, _client_ms(conn, sql))
                            out[key] = max(out.get(key, 0.0), ms)
                            log(f"  {key[:60]:60s} {label:8s} {p_span.days or p_span.seconds // 3600:>3}"
                                f"{'d' if p_span.days else 'h'} {ms:9.1f} ms")
    return out


def bench_rightsize(dsn: str, log: Any) -> dict[str, float]:
    out = {}
    env = {**os.environ, "DASHGEN_DSN": dsn}
    exe = str(Path(sys.executable).with_name("dashgen"))
    with tempfile.TemporaryDirectory() as cwd:  # no dashgen.toml there: the defaults
        for fmt in ("table", "json", "csv"):
            t = time.perf_counter()
            done = subprocess.run([exe, "rightsize", "--format", fmt], env=env, cwd=cwd, capture_output=True,
                                  check=False)
            out[fmt] = time.perf_counter() - t
            if done.returncode:
                log(f"  rightsize --format {fmt}: exit {done.returncode}: {done.stderr.decode()[-300:]}")
            log(f"  dashgen rightsize --format {fmt:5s} {out[fmt]:7.2f} s  ({len(done.stdout):,} bytes)")
    return out


def build_ratio(log: Any) -> float:
    def once(cmd: list[str], cwd: str) -> float:
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
        return time.perf_counter() - t

    exe = str(Path(sys.executable).with_name("dashgen"))
    with tempfile.TemporaryDirectory() as cwd:  # interleaved, best of 5 each: a shared machine's load moves
        imports, builds = [], []
        for _ in range(5):
            imports.append(once([sys.executable, "-c", "import grafanalib.core"], cwd))
            builds.append(once([exe, "build", "--out", str(Path(cwd) / "out")], cwd))
        imp, build = min(imports), min(builds)
    log(f"  dashgen build {build:.2f} s / import grafanalib.core {imp:.2f} s = {build / imp:.2f}x")
    return build / imp


def _sync_figures(first: dict[str, Any], steady: dict[str, Any]) -> dict[str, Any]:
    return {
        "sync_first_s": round(first["s"], 2), "sync_first_write_s": round(first["write_s"], 2),
        "sync_first_write_cpu_s": round(first["write_cpu_s"], 2), "sync_first_load": round(first["load"], 1),
        "sync_first_peak_mb": round(first["peak_mb"]),
        "sync_steady_s": round(steady["s"], 2), "sync_steady_write_s": round(steady["write_s"], 2),
        "sync_steady_write_cpu_s": round(steady["write_cpu_s"], 2), "sync_steady_load": round(steady["load"], 1),
        "cloudwatch_calls_first": first["calls"], "cloudwatch_calls_steady": steady["calls"],
        "cloudwatch_metrics_first": first["metrics"], "cloudwatch_metrics_steady": steady["metrics"],
        "cloudwatch_datapoints_first": first["datapoints"], "cloudwatch_datapoints_steady": steady["datapoints"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object (the figures) instead")
    parser.add_argument("--sync-only", action="store_true",
                        help="only the first and steady-state syncs (e.g. at 50k, where the rest takes an hour)")
    parser.add_argument("--bulk", action="store_true",
                        help="no syncs: the store a first sync leaves, CloudWatch's rows bulk-loaded (panels only)")
    parser.add_argument("--keep", metavar="DIR", help="build the store in DIR (empty or absent) and keep it")
    parser.add_argument("--reuse", metavar="DIR", help="time the panels of the store kept in DIR (no sync)")
    parser.add_argument("--panels", metavar="REGEX", help="only the panels whose 'dashboard/title' matches")
    args = parser.parse_args()
    log = (lambda *_: None) if args.json else print
    if args.json:
        def log(text: str) -> None:
            print(text, file=sys.stderr)
    kept = args.keep or args.reuse
    folder = kept or tempfile.mkdtemp(prefix="dashgen-scale-")
    server = pgserver.get_server(folder, cleanup_mode="stop")
    try:
        dsn = server.get_uri()
        if args.reuse:  # the store as this code would have it: migrated, rolled up as the next sync would
            with connect(dsn) as conn:
                migrate(conn)
                conn.execute("SELECT dashgen.roll_up_extra_charges(now())")
                conn.execute("VACUUM (ANALYZE)")
            log(f"== panels of the store in {args.reuse} ==")
            panels = bench_panels(dsn, bench_config(), log, args.panels)
            print(json.dumps({"panel_ms": {k: round(v, 1) for k, v in sorted(panels.items())}}, indent=2)
                  if args.json else "")
            return
        with connect(dsn) as conn:
            conn.execute("DROP SCHEMA IF EXISTS dashgen CASCADE")
        n = args.instances
        if args.bulk:
            log(f"== bulk store: {n:,} instances (sync's write without CloudWatch, its rows loaded by SQL) ==")
            t = time.perf_counter()
            log(f"  {bulk_store(dsn, n, NOW):,} utilisation rows in {time.perf_counter() - t:.0f} s")
            rows = load_history(dsn)
            log(f"== panels: {n:,} instances, {rows:,} runs over 30 days, client time (execute + fetch), worst of "
                "All / 1 value, default range / 30 days ==")
            panels = bench_panels(dsn, bench_config(), log, args.panels)
            print(json.dumps({"instances": n, "panel_ms": {k: round(v, 1) for k, v in sorted(panels.items())}},
                             indent=2) if args.json else "")
            return
        log(f"== first sync: {n:,} instances, 14 days of hourly utilisation ==")
        first = run_sync(dsn, n, NOW)
        log(f"  {first['s']:.2f} s (write {first['write_s']:.2f} s, CPU {first['write_cpu_s']:.2f} s; load "
            f"{first['load']:.1f}), peak {first['peak_mb']:.0f} MB, "
            f"{first['rows']:,} utilisation rows; CloudWatch {first['calls']:,} calls, {first['metrics']:,} "
            f"metrics, {first['datapoints']:,} datapoints" + (f"; {first['warnings']}" if first["warnings"] else ""))
        log("== steady-state sync, 2 hours later ==")
        steady = run_sync(dsn, n, NOW + 2 * HOUR)
        log(f"  {steady['s']:.2f} s (write {steady['write_s']:.2f} s, CPU {steady['write_cpu_s']:.2f} s; load "
            f"{steady['load']:.1f}), peak {steady['peak_mb']:.0f} MB, "
            f"{steady['rows']:,} utilisation rows; CloudWatch {steady['calls']:,} calls, {steady['metrics']:,} "
            f"metrics, {steady['datapoints']:,} datapoints")
        if args.sync_only:
            figures = {"instances": n, **_sync_figures(first, steady)}
            print(json.dumps(figures, indent=2) if args.json else "")
            return
        rows = load_history(dsn)
        log(f"== panels: {n:,} instances, {rows:,} runs over 30 days, client time (execute + fetch), worst of "
            "All / 1 value, default range / 30 days ==")
        panels = bench_panels(dsn, bench_config(), log, args.panels)
        rightsize: dict[str, float] = {}
        ratio = float("nan")
        if not args.panels:  # (--panels: working on panels)
            log("== dashgen rightsize ==")
            rightsize = bench_rightsize(dsn, log)
            log("== dashgen build ==")
            ratio = build_ratio(log)
        figures = {
            "instances": n, "panel_ms": {k: round(v, 1) for k, v in sorted(panels.items())},
            "rightsize_s": {k: round(v, 2) for k, v in rightsize.items()},
            **_sync_figures(first, steady),
            "build_ratio": round(ratio, 2),
        }
        if args.json:
            print(json.dumps(figures, indent=2))
        else:
            slow = max(panels.items(), key=lambda kv: kv[1]) if panels else ("-", 0.0)
            print(f"\nslowest panel: {slow[0]} {slow[1]:.0f} ms; panels over 100 ms: "
                  f"{sum(v > 100 for v in panels.values())} of {len(panels)}")
    finally:
        server.cleanup()
        if not kept:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
