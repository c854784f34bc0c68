"""Issue 16 acceptance: one test per row of the issue's table, on real API shapes.

Instance facts: moto's `DescribeInstanceTypes` (a dump of the real API) through `dashgen.sync.instance_facts`
(`describe_instance_types` + `store_facts`, what sync runs). Utilisation: CloudWatch `GetMetricData` replies at
5-minute resolution (and the hourly statistics) served by botocore's Stubber, which validates each reply against
botocore's CloudWatch model, through `dashgen.sync.cloudwatch.fetch_hourly`, `row_type` and `store_hourly` (what sync
runs). Prices: the bundled us-east-1 snapshot. Then `dashgen.rightsizing.queries.recommendations` runs
store/sql/rightsizing.sql (the dashboard's SQL, see the last test). None of the harmful recommendations of the issue
remains; the safe one (t4g.2xlarge at 30 % -> t4g.xlarge) still does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import statistics
from collections.abc import Callable
from functools import cache

import boto3
import psycopg
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from dashgen.build import render_dashboards
from dashgen.config import Config
from dashgen.rightsizing.queries import recommendations
from dashgen.sync.cloudwatch import Target, fetch_hourly, floor_hour, metric_queries, row_type, store_hourly
from dashgen.sync.instance_facts import describe_instance_types, store_facts

FIVE = dt.timedelta(minutes=5)
GBIT_5M = 1e9 / 8 * 300  # bytes in 5 minutes at 1 Gbit/s
MB_5M = 1e6 * 300  # bytes in 5 minutes at 1 MB/s


@cache
def _moto_facts() -> tuple[dict, ...]:
    with mock_aws():
        client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="test",
                              aws_secret_access_key="test")
        return tuple(describe_instance_types(client))


@dataclasses.dataclass
class Load:
    """What an instance does, per 5-minute step k (0 = the oldest): CPU % (5-minute maximum), network bytes out,
    EBS bytes and operations in those 5 minutes, memory used % (None: no CloudWatch agent)."""

    cpu: Callable[[int], float]
    net_out: Callable[[int], float] = lambda k: 2e6
    ebs_bytes: Callable[[int], float] = lambda k: 0.0
    ebs_ops: Callable[[int], float] = lambda k: 0.0
    mem: Callable[[int], float] | None = None


def _series(load: Load, start: dt.datetime, hours: int) -> dict[tuple[str, str, int], list[tuple[dt.datetime, float]]]:
    """(metric, statistic, period) -> datapoints, as CloudWatch would aggregate them."""
    steps = range(hours * 12)
    at = [start + k * FIVE for k in steps]
    out: dict[tuple[str, str, int], list[tuple[dt.datetime, float]]] = {
        ("CPUUtilization", "Maximum", 300): [(at[k], load.cpu(k)) for k in steps],
        ("NetworkIn", "Sum", 300): [(at[k], 1e6) for k in steps],
        ("NetworkOut", "Sum", 300): [(at[k], load.net_out(k)) for k in steps],
        ("NetworkPacketsIn", "Sum", 300): [(at[k], 1e3) for k in steps],
        ("NetworkPacketsOut", "Sum", 300): [(at[k], load.net_out(k) / 1500) for k in steps],
        ("EBSReadBytes", "Sum", 300): [(at[k], load.ebs_bytes(k) / 2) for k in steps],
        ("EBSWriteBytes", "Sum", 300): [(at[k], load.ebs_bytes(k) / 2) for k in steps],
        ("EBSReadOps", "Sum", 300): [(at[k], load.ebs_ops(k) / 2) for k in steps],
        ("EBSWriteOps", "Sum", 300): [(at[k], load.ebs_ops(k) / 2) for k in steps],
    }
    if load.mem is not None:
        out[("mem_used_percent", "Maximum", 300)] = [(at[k], load.mem(k)) for k in steps]
    hourly: dict[str, list[tuple[dt.datetime, float]]] = {"Average": [], "Maximum": [], "p95": []}
    for h in range(hours):
        cpu = [load.cpu(k) for k in range(h * 12, h * 12 + 12)]
        hourly["Average"].append((start + dt.timedelta(hours=h), statistics.fmean(cpu)))
        hourly["Maximum"].append((start + dt.timedelta(hours=h), max(cpu)))
        hourly["p95"].append((start + dt.timedelta(hours=h), sorted(cpu)[-1]))
    for stat, points in hourly.items():
        out[("CPUUtilization", stat, 3600)] = points
    for metric in ("NetworkIn", "NetworkOut"):
        five = out[(metric, "Sum", 300)]
        out[(metric, "Sum", 3600)] = [(five[h * 12][0], sum(v for _, v in five[h * 12:h * 12 + 12]))
                                      for h in range(hours)]
    return out


def _measure(conn, target: Target, load: Load, start: dt.datetime, hours: int) -> int:
    """GetMetricData (Stubber, validated shapes) -> fetch_hourly -> row_type -> store_hourly; the rows stored."""
    return store_series(conn, target, _series(load, start, hours), start, start + dt.timedelta(hours=hours))


def metric_results(target: Target, series: dict) -> list[dict]:
    """GetMetricData's MetricDataResults for `target`'s queries: each query's points from `series`
    ((metric, stat, period) -> [(time, value)]), none where it has none."""
    results = []
    for query, _, _ in metric_queries([target]):
        stat = query["MetricStat"]
        points = series.get((stat["Metric"]["MetricName"], stat["Stat"], stat["Period"]), [])
        results.append({"Id": query["Id"], "Label": query["Id"], "StatusCode": "Complete",
                        "Timestamps": [t for t, _ in points], "Values": [v for _, v in points]})
    return results


def store_series(conn, target: Target, series: dict, start: dt.datetime, end: dt.datetime) -> int:
    """`series` answered by a Stubbed GetMetricData, read by fetch_hourly and stored by store_hourly; the rows."""
    client = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
    with Stubber(client) as stub:
        stub.add_response("get_metric_data", {"MetricDataResults": metric_results(target, series)},
                          {"MetricDataQueries": ANY, "StartTime": start, "EndTime": end,
                           "ScanBy": "TimestampAscending"})
        rows = fetch_hourly(client, [target], start, end)
        stub.assert_no_pending_responses()
    for row in rows:
        row.instance_type = row_type(target, row.hour)
    with conn.transaction():
        return store_hourly(conn, rows)


@pytest.fixture
def store(migrated_db: str):
    from dashgen.store.db import instance_type_rows, migrate
    from dashgen.sync.pricing import PriceKey, bundled_price

    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        migrate(conn)
        with conn.transaction():
            store_facts(conn, _moto_facts(), now)
            prices = [bundled_price(PriceKey("us-east-1", r[0], "Linux", "Shared")) for r in instance_type_rows()]
            conn.cursor().executemany(
                "INSERT INTO dashgen.instance_prices (region, instance_type, operating_system, tenancy, usd_per_hour,"
                " vcpu, memory_mib, source, price_date, fetched_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                [(p.key.region, p.key.instance_type, p.key.operating_system, p.key.tenancy, p.usd_per_hour, p.vcpu,
                  p.memory_mib, p.source, p.price_date, now) for p in prices])
        yield conn


def _instance(conn, name: str, itype: str, load: Load | None, *, hours: int = 72, state: str = "running",
              resized_from: str | None = None, resized_hours_ago: int = 0) -> None:
    """An instance running `load` for the last `hours` hours (ending at the current hour); `resized_from`: it ran
    on that type until `resized_hours_ago` hours ago (a stop, a type change and a start). Every instance was seen
    by the same (last) sync, at the start of the current hour."""
    end = floor_hour(dt.datetime.now(dt.UTC))
    now = end
    start = end - dt.timedelta(hours=hours)
    launched = end - dt.timedelta(hours=resized_hours_ago) if resized_from else start
    iid = f"i-{name}"
    conn.execute(
        "INSERT INTO dashgen.instances (instance_id, region, instance_type, name, tags, state, launch_time, platform,"
        " first_seen, last_seen) VALUES (%s, 'us-east-1', %s, %s, %s, %s, %s, 'Linux/UNIX', %s, %s)",
        (iid, itype, name, json.dumps({"Name": name, "team": "ml"}), state, launched, start, now))
    if load is not None:
        _measure(conn, Target(iid, False, None, itype, launched, resized_from or itype), load, start, hours)


def _row(conn, name: str, config: Config | None = None) -> dict:
    rows = {r["name"]: r for r in recommendations(conn, config or Config())}
    return rows[name]


def _facts(conn, itype: str) -> dict:
    cur = conn.execute("SELECT * FROM dashgen.instance_types WHERE instance_type = %s", (itype,))
    return dict(zip([d.name for d in cur.description], cur.fetchone(), strict=True))


def steady(percent: float) -> Callable[[int], float]:
    return lambda k: percent


MEM_LOW = steady(20.0)  # the CloudWatch agent reports 20 % memory used


# ---------------------------------------------------------------- one test per row of the table

def test_trn1_32xlarge_keeps_its_16_trainium_chips(store) -> None:
    _instance(store, "trn", "trn1.32xlarge", Load(cpu=steady(3.0), mem=MEM_LOW))
    row = _row(store, "trn")
    assert row["facts_source"] == "aws-describe-instance-types"
    assert row["recommended_type"] == "trn1.32xlarge" and row["verdict"] == "right-sized"
    assert row["monthly_saving_usd"] == 0
    assert row["cheaper_type"] is None  # no cheaper type with 16 Trainium chips and 512 GiB of device memory
    assert "Neuron devices kept: 16 x Trainium" in row["reasons"]


def test_inf2_48xlarge_keeps_its_12_inferentia_chips(store) -> None:
    _instance(store, "inf", "inf2.48xlarge", Load(cpu=steady(10.0), mem=MEM_LOW))
    row = _row(store, "inf")
    assert row["recommended_type"] == "inf2.48xlarge" and row["verdict"] == "right-sized"
    assert "Neuron devices kept: 12 x Inferentia2" in row["reasons"]


def test_g5_2xlarge_keeps_its_a10g_never_a_t4(store) -> None:
    _instance(store, "g5", "g5.2xlarge", Load(cpu=steady(15.0), mem=MEM_LOW))
    row = _row(store, "g5")
    # 15 % of 8 vCPUs and 20 % of 32 GiB would fit a g5.xlarge (the same A10G), but its instance store is
    # 250 GB, not 450: it stays
    assert (row["verdict"], row["recommended_type"]) == ("right-sized", "g5.2xlarge")
    assert (_facts(store, "g5.xlarge")["instance_storage_gb"], _facts(store, "g5.2xlarge")["instance_storage_gb"]) == (
        250, 450)
    # the g4dn.xlarge of the old rule (T4, 16 GB) is not offered, nor any other GPU model
    assert row["cheaper_type"] is None
    assert "GPUs kept: 1 x A10G" in row["reasons"] and "instance store kept: 450 GB" in row["reasons"]
    # the same load on a GPU type without instance store is downsized, keeping its GPU: g5g.2xlarge -> g5g.xlarge
    _instance(store, "g5g", "g5g.2xlarge", Load(cpu=steady(15.0), mem=MEM_LOW))
    g5g = _row(store, "g5g")
    assert (g5g["verdict"], g5g["recommended_type"], g5g["cheaper_type"]) == ("over-provisioned", "g5g.xlarge", None)
    assert (_facts(store, "g5g.xlarge")["gpus"], _facts(store, "g5g.xlarge")["gpu_model"]) == (1, "T4g")


def test_p3_2xlarge_without_facts_is_not_analysed(store) -> None:
    _instance(store, "p3", "p3.2xlarge", Load(cpu=steady(10.0), mem=MEM_LOW))
    row = _row(store, "p3")
    assert row["verdict"] == "not analysed" and row["facts_source"] is None
    assert row["recommended_type"] is None and row["cheaper_type"] is None and row["monthly_saving_usd"] is None
    assert "no instance facts for p3.2xlarge" in row["reasons"]


def test_m7i_8xlarge_sending_8_gbit_keeps_its_12_5_gbit_baseline(store) -> None:
    _instance(store, "net", "m7i.8xlarge", Load(cpu=steady(10.0), net_out=lambda k: 8 * GBIT_5M, mem=steady(10.0)))
    row = _row(store, "net")
    assert row["network_gbps"] == pytest.approx(8.0)
    # 8 Gbit/s / 64 % target = 12.5 Gbit/s of BASELINE: m7i.2xlarge ("up to 12.5", baseline 3.125) is out
    assert (row["recommended_type"], row["limited_by"]) == ("m7i.8xlarge", "network")
    assert row["verdict"] == "right-sized" and row["risk"] == 1
    # with the network quiet, CPU and memory alone would allow a quarter of it
    _instance(store, "quiet", "m7i.8xlarge", Load(cpu=steady(10.0), mem=steady(10.0)))
    assert _row(store, "quiet")["recommended_type"] == "m7i.2xlarge"


def test_r7i_2xlarge_without_memory_metric_keeps_its_memory(store) -> None:
    _instance(store, "mem", "r7i.2xlarge", Load(cpu=steady(10.0)))
    row = _row(store, "mem")
    assert (row["verdict"], row["recommended_type"], row["memory_peak"]) == ("right-sized", "r7i.2xlarge", None)
    assert "memory not measured (kept at 64.0 GiB)" in row["reasons"]
    # with the CloudWatch agent's mem_used_percent at 20 % (12.8 GiB, 20 GiB with headroom): r7i.xlarge
    _instance(store, "mem-measured", "r7i.2xlarge", Load(cpu=steady(10.0), mem=MEM_LOW))
    measured = _row(store, "mem-measured")
    assert (measured["recommended_type"], measured["memory_peak"]) == ("r7i.xlarge", 20.0)
    assert "memory not measured" not in measured["reasons"]


def test_t4g_resized_last_week_counts_only_the_hours_on_its_new_type(store) -> None:
    # a week on t4g.xlarge at 90 % peaks, then resized to t4g.large, where it peaks at 40 %, averages 26 %
    # (above a t4g.medium's 20 % baseline, under the large's 30 %)
    week = 7 * 24
    _instance(store, "resized", "t4g.large",
              Load(cpu=lambda k: (90.0 if k % 12 == 0 else 20.0) if k < week * 12 else (40.0 if k % 12 == 0 else 25.0),
                   mem=MEM_LOW),
              hours=2 * week, resized_from="t4g.xlarge", resized_hours_ago=week)
    row = _row(store, "resized")
    assert row["hours"] == week  # the new window: only the hours on t4g.large
    assert row["cpu_peak"] == 40.0
    assert (row["verdict"], row["recommended_type"]) == ("right-sized", "t4g.large")
    stored = dict(store.execute("SELECT instance_type, count(*) FROM dashgen.instance_utilisation_hourly "
                                "GROUP BY 1").fetchall())
    assert stored == {"t4g.xlarge": week, "t4g.large": week}


def test_t4g_large_at_45_percent_is_above_its_baseline(store) -> None:
    _instance(store, "burst", "t4g.large", Load(cpu=steady(45.0)))
    row = _row(store, "burst")
    # 45 % of 2 vCPUs fits the vCPUs (1.4 needed) but not the 30 % baseline (0.9 vCPU used, 0.6 earned)
    assert row["needed_vcpu"] <= 2
    assert row["verdict"] == "under-provisioned" and row["current_risk"] == 4
    assert "credit baseline" in row["reasons"]
    # in the family: the t4g.xlarge whose 40 % baseline (1.6 vCPU) covers it; or a non-burstable type
    assert row["recommended_type"] == "t4g.xlarge" and row["limited_by"] == "CPU credits"
    assert not _facts(store, row["cheaper_type"])["burstable"]
    assert row["cheaper_usd_per_hour"] < row["recommended_usd_per_hour"]


def test_a_daily_one_hour_batch_at_100_percent_is_not_downsized(store) -> None:
    # 5 % all day, 100 % for one hour a day: 3 days, 36 of 864 five-minute maxima at 100 %
    _instance(store, "batch", "m7i.4xlarge",
              Load(cpu=lambda k: 100.0 if (k // 12) % 24 == 2 else 5.0, mem=MEM_LOW))
    row = _row(store, "batch")
    assert row["cpu_peak"] == 100.0 and row["cpu_avg"] < 10
    assert row["verdict"] == "under-provisioned"  # the batch saturates it: never "a quarter"
    assert _facts(store, row["recommended_type"])["vcpu"] >= 16


def test_one_hour_of_data_is_not_enough(store) -> None:
    _instance(store, "new", "m7i.2xlarge", Load(cpu=steady(5.0), mem=MEM_LOW), hours=1)
    row = _row(store, "new")
    assert (row["verdict"], row["hours"], row["recommended_type"]) == ("not enough data", 1, None)
    assert row["coverage_pct"] == pytest.approx(100 / 336, abs=0.1)
    assert "1 h of data on m7i.2xlarge in the window, 30 needed" in row["reasons"]
    _instance(store, "thirty", "m7i.2xlarge", Load(cpu=steady(5.0), mem=MEM_LOW), hours=30)
    assert _row(store, "thirty")["verdict"] == "over-provisioned"


def test_m6id_2xlarge_keeps_its_instance_store_and_ebs_baseline(store) -> None:
    _instance(store, "disk", "m6id.2xlarge",
              Load(cpu=steady(10.0), ebs_bytes=lambda k: 150 * MB_5M, ebs_ops=lambda k: 3000 * 300, mem=MEM_LOW))
    row = _row(store, "disk")
    assert row["ebs_mbps"] == pytest.approx(150.0) and row["ebs_iops"] == 3000
    # 150 MB/s / 64 % = 234 MB/s of EBS baseline: m6id.xlarge (156 MB/s, 237 GB) and m6id.large (118 GB) are out
    assert (row["verdict"], row["recommended_type"], row["limited_by"]) == (
        "right-sized", "m6id.2xlarge", "EBS throughput")
    assert "instance store kept: 474 GB" in row["reasons"]
    cheaper = _facts(store, row["cheaper_type"])
    assert cheaper["instance_storage_gb"] >= 474 and cheaper["ebs_baseline_mbps"] >= 234
    assert row["cheaper_type"] != "m6g.large"
    assert row["cheaper_migration"] == ("architecture x86_64 -> arm64 (rebuild for arm64)"
                                        if cheaper["arch"] == "arm64" else f"family m6id -> {cheaper['family']}")


def test_moving_x86_to_arm64_is_flagged_as_a_migration(store) -> None:
    _instance(store, "web", "m7i.2xlarge", Load(cpu=steady(30.0), mem=MEM_LOW))
    _instance(store, "t3", "t3.xlarge", Load(cpu=lambda k: 30.0 if k % 12 == 0 else 5.0, mem=MEM_LOW))
    web, t3 = _row(store, "web"), _row(store, "t3")
    assert (web["recommended_type"], web["cheaper_type"]) == ("m7i.xlarge", "m6g.xlarge")
    assert web["cheaper_migration"] == "architecture x86_64 -> arm64 (rebuild for arm64)"
    assert t3["cheaper_type"].startswith("t4g.")
    assert t3["cheaper_migration"] == "architecture x86_64 -> arm64 (rebuild for arm64)"
    assert t3["recommended_type"].startswith("t3.")  # in the family: never a migration


def test_terminated_instances_are_left_out(store) -> None:
    _instance(store, "gone", "m7i.8xlarge", Load(cpu=steady(5.0), mem=MEM_LOW), state="terminated")
    _instance(store, "kept", "m7i.8xlarge", Load(cpu=steady(5.0), mem=MEM_LOW), state="stopped")
    names = {r["name"] for r in recommendations(store, Config())}
    assert "gone" not in names and "kept" in names
    # an instance the last sync of its region did not see any more (terminated long ago) is left out too
    store.execute("UPDATE dashgen.instances SET last_seen = last_seen - interval '1 hour' WHERE name = 'kept'")
    _instance(store, "seen", "m7i.large", None)
    assert "kept" not in {r["name"] for r in recommendations(store, Config())}


def test_the_safe_recommendation_stays(store) -> None:
    # t4g.2xlarge peaking at 30 % (average 12 %), memory 25 % of 32 GiB -> t4g.xlarge
    _instance(store, "safe", "t4g.2xlarge",
              Load(cpu=lambda k: 30.0 if k % 12 == 0 else 10.4, mem=steady(25.0)))
    row = _row(store, "safe")
    assert (row["verdict"], row["recommended_type"]) == ("over-provisioned", "t4g.xlarge")
    assert row["monthly_saving_usd"] == pytest.approx((0.2688 - 0.1344) * 730, abs=0.01)
    assert row["risk"] <= 1 and row["limited_by"] in ("CPU", "CPU credits", "memory")
    assert (row["hours"], row["cpu_peak"], row["cpu_avg"]) == (72, 30.0, 12.0)


def test_the_percentile_is_configurable(store) -> None:
    # 2 % of the 5-minute maxima at 90 %: P99.5 sees them, P95 does not
    _instance(store, "spiky", "m7i.4xlarge", Load(cpu=lambda k: 90.0 if k % 50 == 0 else 10.0, mem=MEM_LOW))
    assert _row(store, "spiky")["cpu_peak"] == 90.0
    p95 = _row(store, "spiky", dataclasses.replace(Config(), cpu_percentile=95.0))
    assert p95["cpu_peak"] == 10.0 and p95["verdict"] == "over-provisioned"


def test_the_dashboard_panel_gives_the_same_rows(store) -> None:
    from test_rightsize import _panel_rows, _plain

    _instance(store, "safe", "t4g.2xlarge", Load(cpu=lambda k: 30.0 if k % 12 == 0 else 10.4, mem=steady(25.0)))
    _instance(store, "p3", "p3.2xlarge", Load(cpu=steady(10.0)))
    _instance(store, "burst", "t4g.large", Load(cpu=steady(45.0)))
    dash = render_dashboards(Config())["ec2-rightsizing.json"]
    panel = _plain(_panel_rows(store, dash, "Rightsizing"))
    assert panel == recommendations(store, Config()) and len(panel) == 3


@pytest.mark.parametrize("percentile", [50.0, 90.0, 95.0, 99.5, 100.0])
def test_the_fast_percentile_is_postgresql_percentile_cont(store, percentile: float) -> None:
    """sql/rightsizing.sql sorts only the top hours' 5-minute maxima: the same number as percentile_cont over
    all of them, with gaps (NULL) and ties."""
    import random

    from dashgen.sync.cloudwatch import HourlyRow

    rnd = random.Random(int(percentile * 10))
    end = floor_hour(dt.datetime.now(dt.UTC))
    for n, hours in enumerate((30, 31, 200, 330)):  # within the 14-day window
        name = f"r{n}"
        _instance(store, name, "m7i.4xlarge", None)
        rows = []
        for h in range(hours):
            five = [None if rnd.random() < 0.1 else float(rnd.choice([5, 20, 55.5, 99]) if rnd.random() < 0.2
                                                         else round(rnd.uniform(0, 100), 3)) for _ in range(12)]
            five[rnd.randrange(12)] = round(rnd.uniform(0, 100), 3)  # at least one value an hour
            rows.append(HourlyRow(f"i-{name}", end - dt.timedelta(hours=h + 1),
                                  {"cpu_avg": 10.0, "cpu_max_5m": five}, "m7i.4xlarge"))
        store_hourly(store, rows)
    cfg = dataclasses.replace(Config(), cpu_percentile=percentile)
    got = {r["instance_id"]: r["cpu_peak"] for r in recommendations(store, cfg)}
    expected = dict(store.execute(
        "SELECT instance_id, round(percentile_cont(%s / 100) WITHIN GROUP (ORDER BY v)::numeric, 1)::float8 "
        "FROM dashgen.instance_utilisation_hourly, unnest(cpu_max_5m) AS v WHERE v IS NOT NULL GROUP BY 1",
        (percentile,)).fetchall())
    assert got == expected and len(got) == 4
