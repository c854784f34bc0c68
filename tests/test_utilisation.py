"""dashgen.sync.cloudwatch: GetMetricData queries, batching and pagination, the hourly upsert, collection from the
store.

CloudWatch: moto for Average/Maximum/Sum/Minimum (moto cannot serialise percentiles, so the p95 queries are
removed before moto sees them), botocore's Stubber for p95, the 500-query batches and NextToken pages.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from dashgen.errors import AwsError
from dashgen.sync.cloudwatch import (
    MAX_QUERIES,
    HourlyRow,
    Target,
    _batches,
    collect_utilisation,
    fetch_hourly,
    floor_hour,
    metric_queries,
    store_hourly,
)
from dashgen.sync.experiments import ProgressMetric

NOW = floor_hour(dt.datetime.now(dt.UTC)) + dt.timedelta(minutes=30)
H0 = floor_hour(NOW) - dt.timedelta(hours=3)


def _client() -> object:
    return boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test")


def _drop_percentiles(params: dict, **_: object) -> None:
    params["MetricDataQueries"] = [q for q in params["MetricDataQueries"]
                                   if not q["MetricStat"]["Stat"].startswith("p")]


def _moto_client() -> object:
    client = _client()
    client.meta.events.register("provide-client-params.cloudwatch.GetMetricData", _drop_percentiles)
    return client


def _put(client: object, instance: str, metric: str, at: dt.datetime, value: float,
         namespace: str = "AWS/EC2", dims: dict[str, str] | None = None) -> None:
    dimensions = [{"Name": k, "Value": v} for k, v in {**(dims or {}), "InstanceId": instance}.items()]
    client.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": metric, "Dimensions": dimensions, "Timestamp": at, "Value": value}])


def test_queries_cover_every_series_with_valid_unique_ids() -> None:
    progress = ProgressMetric("Training", "Progress", (("Experiment", "t4g-sizing"),))
    queries = metric_queries([Target("i-a", burstable=True), Target("i-b"), Target("i-c", progress=progress)])
    by_instance: dict[str, list[tuple[str, str, str]]] = {}
    fine: dict[str, list[tuple[str, str, str, str]]] = {}
    for query, iid, column in queries:
        stat = query["MetricStat"]
        assert {"Name": "InstanceId", "Value": iid} in stat["Metric"]["Dimensions"]
        if stat["Period"] == 300:  # what rightsizing sizes on, at Compute Optimizer's 5-minute resolution
            fine.setdefault(iid, []).append((column, stat["Metric"]["Namespace"], stat["Metric"]["MetricName"],
                                             stat["Stat"]))
            continue
        assert stat["Period"] == 3600
        by_instance.setdefault(iid, []).append((column, stat["Metric"]["MetricName"], stat["Stat"]))
    assert fine["i-a"] == fine["i-b"] == fine["i-c"] == [
        ("cpu_5m", "AWS/EC2", "CPUUtilization", "Maximum"), ("net_in_5m", "AWS/EC2", "NetworkIn", "Sum"),
        ("net_out_5m", "AWS/EC2", "NetworkOut", "Sum"), ("packets_in_5m", "AWS/EC2", "NetworkPacketsIn", "Sum"),
        ("packets_out_5m", "AWS/EC2", "NetworkPacketsOut", "Sum"), ("ebs_read_ops_5m", "AWS/EC2", "EBSReadOps", "Sum"),
        ("ebs_write_ops_5m", "AWS/EC2", "EBSWriteOps", "Sum"),
        ("ebs_read_bytes_5m", "AWS/EC2", "EBSReadBytes", "Sum"),
        ("ebs_write_bytes_5m", "AWS/EC2", "EBSWriteBytes", "Sum"),
        ("mem_5m", "CWAgent", "mem_used_percent", "Maximum")]
    assert by_instance["i-a"] == [
        ("cpu_avg", "CPUUtilization", "Average"), ("cpu_max", "CPUUtilization", "Maximum"),
        ("cpu_p95", "CPUUtilization", "p95"), ("network_in_bytes", "NetworkIn", "Sum"),
        ("network_out_bytes", "NetworkOut", "Sum"), ("cpu_credit_balance_min", "CPUCreditBalance", "Minimum"),
        ("cpu_surplus_credits_charged", "CPUSurplusCreditsCharged", "Sum"),
    ]
    assert [c for c, _, _ in by_instance["i-b"]] == [c for c, _, _ in by_instance["i-a"]][:5]  # no credits
    assert by_instance["i-c"][-1] == ("progress_pct", "Progress", "Maximum")
    progress_query = next(q for q, _, column in queries if column == "progress_pct")
    assert progress_query["MetricStat"]["Metric"]["Namespace"] == "Training"
    assert progress_query["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "Experiment", "Value": "t4g-sizing"}, {"Name": "InstanceId", "Value": "i-c"}]
    ids = [q["Id"] for q, _, _ in queries]
    assert len(set(ids)) == len(ids) and all(re.match(r"^[a-z][a-zA-Z0-9_]*$", i) for i in ids)


@mock_aws
def test_fetch_hourly_aggregates_per_hour_with_moto() -> None:
    client = _moto_client()
    for h in range(3):
        for minute, cpu in ((5, 10.0), (25, 20.0), (45, 30.0 + h)):
            at = H0 + dt.timedelta(hours=h, minutes=minute)
            _put(client, "i-a", "CPUUtilization", at, cpu)
            _put(client, "i-a", "NetworkIn", at, 1000.0)
            _put(client, "i-a", "NetworkOut", at, 10.0 * h)
            _put(client, "i-a", "CPUCreditBalance", at, 50.0 - minute / 5 - h)
    rows = fetch_hourly(client, [Target("i-a", burstable=True)], H0, H0 + dt.timedelta(hours=3))
    assert [r.hour for r in rows] == [H0 + dt.timedelta(hours=h) for h in range(3)]
    for h, row in enumerate(rows):
        assert row.instance_id == "i-a"
        assert row.values["cpu_avg"] == pytest.approx((10 + 20 + 30 + h) / 3)
        assert row.values["cpu_max"] == 30.0 + h
        assert row.values["network_in_bytes"] == 3000.0
        assert row.values["network_out_bytes"] == 30.0 * h
        assert row.values["cpu_credit_balance_min"] == 50.0 - 9 - h
        assert "cpu_p95" not in row.values  # moto: removed before the call


def _result(qid: str, hours: list[dt.datetime], values: list[float]) -> dict:
    return {"Id": qid, "Label": qid, "Timestamps": hours, "Values": values, "StatusCode": "Complete"}


def test_fetch_hourly_batches_500_queries_and_follows_next_token_with_stubber() -> None:
    client = _client()
    targets = [Target(f"i-{n:03d}", burstable=True) for n in range(35)]  # 35 x (7 hourly + 10 5-minute) = 595
    queries = metric_queries(targets)
    assert len(queries) == 595
    p95 = {q["Id"]: iid for q, iid, column in queries if column == "cpu_p95"}
    first, second = _batches(queries, MAX_QUERIES)  # at most 500 a call, an instance's queries never split
    assert len(first) == 29 * 17 and len(second) == 6 * 17  # 17 queries per burstable instance
    start, end = H0, H0 + dt.timedelta(hours=2)
    hours = [H0, H0 + dt.timedelta(hours=1)]

    def p95_results(batch: list) -> list[dict]:
        return [_result(q["Id"], hours, [40.0, 41.0]) for q, _, _ in batch if q["Id"] in p95]

    expected = {"MetricDataQueries": ANY, "StartTime": start, "EndTime": end, "ScanBy": "TimestampAscending"}
    with Stubber(client) as stub:
        res1 = p95_results(first)
        stub.add_response("get_metric_data", {"MetricDataResults": res1[:20], "NextToken": "page2"},
                          expected)
        stub.add_response("get_metric_data", {"MetricDataResults": res1[20:]}, {**expected, "NextToken": "page2"})
        stub.add_response("get_metric_data", {"MetricDataResults": p95_results(second)}, expected)
        rows = fetch_hourly(client, targets, start, end)
        stub.assert_no_pending_responses()
    assert len(rows) == 35 * 2
    assert {r.instance_id for r in rows} == {t.instance_id for t in targets}
    assert all(r.values == {"cpu_p95": 40.0 if r.hour == H0 else 41.0} for r in rows)


def test_fetch_hourly_turns_client_errors_into_one_line() -> None:
    client = _client()
    with Stubber(client) as stub:
        stub.add_client_error("get_metric_data", "AccessDenied", "not allowed to GetMetricData")
        with pytest.raises(AwsError, match=r"^cloudwatch GetMetricData \(us-east-1\): AccessDenied \(HTTP 400\): "
                                           r"not allowed"):
            fetch_hourly(client, [Target("i-a")], H0, NOW, region="us-east-1")


@pytest.fixture
def store(migrated_db: str):
    import psycopg

    from dashgen.store.db import migrate

    with psycopg.connect(migrated_db, autocommit=True) as conn:
        migrate(conn)
        yield conn


def _stored(conn) -> list[tuple]:
    return conn.execute("SELECT instance_id, hour, cpu_avg, cpu_p95, network_in_bytes, cpu_credit_balance_min "
                        "FROM dashgen.instance_utilisation_hourly ORDER BY 1, 2").fetchall()


def test_store_hourly_is_an_idempotent_upsert(store) -> None:
    rows = [HourlyRow("i-a", H0, {"cpu_avg": 10.0, "cpu_p95": 20.0, "network_in_bytes": 5.0}),
            HourlyRow("i-a", H0 + dt.timedelta(hours=1), {"cpu_avg": 11.0})]
    assert store_hourly(store, rows) == 2
    once = _stored(store)
    versions = store.execute("SELECT xmin::text FROM dashgen.instance_utilisation_hourly ORDER BY hour").fetchall()
    store_hourly(store, rows)
    assert _stored(store) == once and len(once) == 2
    # the same values again rewrite nothing (a re-sync only touches hours that changed)
    assert store.execute("SELECT xmin::text FROM dashgen.instance_utilisation_hourly ORDER BY hour"
                         ).fetchall() == versions
    # a later fetch updates what it returns and keeps what it did not return this time
    store_hourly(store, [HourlyRow("i-a", H0, {"cpu_avg": 12.0, "cpu_credit_balance_min": 3.0})])
    assert _stored(store)[0][2:] == (12.0, 20.0, 5.0, 3.0)


def _instance(conn, iid: str, itype: str, tags: dict[str, str], last_seen: dt.datetime,
              region: str = "us-east-1") -> None:
    conn.execute(
        "INSERT INTO dashgen.instances (instance_id, region, instance_type, name, tags, state, first_seen,"
        " last_seen) VALUES (%s, %s, %s, %s, %s, 'running', %s, %s)",
        (iid, region, itype, iid, json.dumps(tags), last_seen, last_seen))


@mock_aws
def test_collect_utilisation_measures_the_instances_sync_saw(store) -> None:
    store.execute(
        "INSERT INTO dashgen.experiments (name, tag_key, tag_value, budget_usd, deadline, progress_namespace,"
        " progress_metric, progress_dimensions) VALUES ('exp', 'experiment', 'exp', 10, %s, 'Training',"
        " 'Progress', %s)", (NOW + dt.timedelta(days=1), json.dumps({"Experiment": "exp"})))
    _instance(store, "i-burst", "t4g.large", {"experiment": "exp"}, NOW)
    _instance(store, "i-steady", "m7i.large", {}, NOW)
    _instance(store, "i-gone", "m7i.large", {}, NOW - dt.timedelta(days=30))  # not seen in the window
    _instance(store, "i-other", "m7i.large", {}, NOW, region="eu-west-1")
    client = _moto_client()
    for iid in ("i-burst", "i-steady", "i-gone", "i-other"):
        for h in range(3):
            _put(client, iid, "CPUUtilization", H0 + dt.timedelta(hours=h, minutes=10), 10.0 * (h + 1))
            _put(client, iid, "CPUCreditBalance", H0 + dt.timedelta(hours=h, minutes=10), 5.0)
    for h in range(3):
        _put(client, "i-burst", "Progress", H0 + dt.timedelta(hours=h, minutes=10), 20.0 * (h + 1),
             namespace="Training", dims={"Experiment": "exp"})

    result = collect_utilisation(store, client, "us-east-1", lookback_days=14, now=NOW)
    assert result.instances == 2 and result.rows == 6
    assert result.start == floor_hour(NOW) - dt.timedelta(days=14)
    stored = store.execute(
        "SELECT instance_id, hour, cpu_avg, cpu_credit_balance_min, progress_pct "
        "FROM dashgen.instance_utilisation_hourly ORDER BY 1, 2").fetchall()
    assert [(r[0], r[1], r[2]) for r in stored] == [
        (iid, H0 + dt.timedelta(hours=h), 10.0 * (h + 1)) for iid in ("i-burst", "i-steady") for h in range(3)]
    assert [r[3] for r in stored] == [5.0] * 3 + [None] * 3  # the credit balance of the burstable type only
    assert [r[4] for r in stored] == [20.0, 40.0, 60.0] + [None] * 3  # progress of the experiment's instance

    # the next sync asks only the hours after the stored ones (the last one was complete when stored: the sync
    # that saw the instances ran 30 minutes after it ended), and rewrites nothing
    again = collect_utilisation(store, client, "us-east-1", lookback_days=14, now=NOW)
    assert again.start == H0 + dt.timedelta(hours=3) and again.queried == 2
    assert again.rows == 0
    assert store.execute("SELECT count(*) FROM dashgen.instance_utilisation_hourly").fetchone()[0] == 6


def test_collect_utilisation_without_instances_asks_nothing(store) -> None:
    with Stubber(_client()) as stub:  # no response queued: any call would fail
        result = collect_utilisation(store, stub.client, "us-east-1", now=NOW)
    assert (result.instances, result.rows, result.start) == (0, 0, None)


def _session() -> boto3.Session:
    return boto3.Session(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")


def _launch(session: boto3.Session, instance_type: str) -> str:
    ec2 = session.client("ec2")
    return ec2.run_instances(ImageId="ami-1e749f67", InstanceType=instance_type, MinCount=1, MaxCount=1,
                             TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                 {"Key": "Name", "Value": "train-8"}]}])["Instances"][0]["InstanceId"]


@mock_aws
def test_sync_stores_utilisation_and_the_prices_rightsizing_needs(migrated_db: str) -> None:
    import psycopg

    from dashgen.config import Config
    from dashgen.sync import sync

    session = _session()
    iid = _launch(session, "t4g.2xlarge")
    cw = _moto_client()
    launched = floor_hour(dt.datetime.now(dt.UTC))  # (moto launches now)
    for h in range(-2, 3):  # CloudWatch is asked only for the hours since the launch: the two before are left
        _put(cw, iid, "CPUUtilization", launched + dt.timedelta(hours=h, minutes=20), 30.0)
    now = launched + dt.timedelta(hours=2, minutes=30)
    result = sync(Config(), dsn=migrated_db, prices="bundled", session=session, now=now, cloudwatch=cw)
    assert result.ok and result.utilisation_rows == 3
    # one call; t4g is burstable: 7 hourly and 10 5-minute series, less the p95 query moto cannot serve (dropped
    # before it is sent); 3 hours of CPU average and maximum, and the 3 5-minute CPU maxima put
    assert (result.cloudwatch_calls, result.cloudwatch_metrics, result.cloudwatch_datapoints) == (1, 16, 9)
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT count(*), min(cpu_avg), max(cpu_avg) FROM dashgen.instance_utilisation_hourly"
                            " WHERE instance_id = %s", (iid,)).fetchone() == (3, 30.0, 30.0)
        priced = dict(conn.execute("SELECT instance_type, usd_per_hour FROM dashgen.instance_prices").fetchall())
    # the type in use, every size of its family, and same-class types for a cheaper family
    assert float(priced["t4g.2xlarge"]) == 0.2688 and float(priced["t4g.xlarge"]) == 0.1344
    assert "t4g.nano" in priced and "t3a.xlarge" in priced and "c7g.xlarge" not in priced
    assert "m7g.xlarge" in priced  # a burstable type may move to a general-purpose one


@mock_aws
def test_sync_lands_without_utilisation_when_cloudwatch_fails(migrated_db: str) -> None:
    import psycopg

    from dashgen.config import Config
    from dashgen.sync import sync

    session = _session()
    iid = _launch(session, "t4g.large")
    client = _client()
    with Stubber(client) as stub:
        stub.add_client_error("get_metric_data", "AccessDenied", "no cloudwatch:GetMetricData")
        result = sync(Config(), dsn=migrated_db, prices="bundled", session=session, cloudwatch=client)
    assert result.utilisation_rows == 0
    assert any("utilisation not read from CloudWatch" in w and "AccessDenied" in w for w in result.warnings)
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT instance_id FROM dashgen.instances").fetchall() == [(iid,)]


def _counting(client: object, calls: list[str]) -> object:
    client.meta.events.register("before-parameter-build", lambda model, **_: calls.append(model.name))
    return client


@mock_aws
def test_sync_reads_aws_before_its_one_write_transaction(fresh_db: str, monkeypatch) -> None:
    from dashgen import sync as sync_mod
    from dashgen.config import Config

    session = _session()
    _launch(session, "t4g.large")
    events: list[str] = []
    session.events.register("before-call", lambda model, **_: events.append(f"aws {model.name}"))
    cw = _counting(_moto_client(), events)
    real_write = sync_mod.write

    def write(conn, *args, **kwargs):
        events.append("write")
        assert conn.info.transaction_status.name == "IDLE"  # nothing open while AWS was read
        return real_write(conn, *args, **kwargs)

    monkeypatch.setattr(sync_mod, "write", write)
    sync_mod.sync(Config(), dsn=fresh_db, prices="bundled", session=session, cloudwatch=cw)
    assert events[-1] == "write" and events.count("write") == 1
    assert "aws DescribeInstances" in events and "GetMetricData" in events


def _price_item(usd: str = "0.1") -> str:
    return json.dumps({"product": {"sku": "SKU1", "attributes": {}},
                       "terms": {"OnDemand": {"o": {"effectiveDate": "2026-07-01T00:00:00Z",
                                                    "priceDimensions": {"d": {"pricePerUnit": {"USD": usd}}}}}}})


@mock_aws
def test_candidate_prices_come_from_the_price_list_api_at_most_once_a_day(migrated_db: str) -> None:
    import psycopg

    from dashgen.config import Config
    from dashgen.rightsizing.collect import rightsizing_price_keys
    from dashgen.sync import sync
    from dashgen.sync.pricing import PriceKey

    session = _session()
    _launch(session, "t4g.2xlarge")
    keys = rightsizing_price_keys({PriceKey("us-east-1", "t4g.2xlarge", "Linux")})
    assert len(keys) == 59  # the type in use, the rest of its family, same-class types, arm64 m types

    def run(at: dt.datetime, expected_calls: int) -> list[str]:
        calls: list[str] = []
        pricing = _counting(boto3.client("pricing", region_name="us-east-1", aws_access_key_id="test",
                                         aws_secret_access_key="test"), calls)
        with Stubber(pricing) as stub:  # a call beyond the queued responses fails the sync
            for _ in range(expected_calls):
                stub.add_response("get_products", {"PriceList": [_price_item()], "FormatVersion": "aws_v1"})
            result = sync(Config(), dsn=migrated_db, prices="api", session=session, now=at, pricing=pricing,
                          cloudwatch=_moto_client())
            stub.assert_no_pending_responses()
        assert not result.warnings
        return calls

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    # (+2 a sync: the storage price of the instance's root volume, gp2 in moto, and the t4g CPU credit price)
    assert len(run(now, 61)) == 61
    assert len(run(now + dt.timedelta(hours=1), 3)) == 3  # only the type in use: the candidates are fresh
    assert len(run(now + dt.timedelta(hours=25), 61)) == 61  # older than 24 h: fetched again
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT count(*), min(fetched_at) FROM dashgen.instance_prices "
                            "WHERE source = 'aws-price-list-api'").fetchone() == (59, now + dt.timedelta(hours=25))


# ---------------------------------------------------------------- 5-minute peaks and the type of each hour (issue 16)

@mock_aws
def test_five_minute_peaks_per_hour_with_moto() -> None:
    client = _moto_client()
    mem_dims = {"InstanceId": "i-a"}
    for h in range(2):
        for slot in range(12):
            at = H0 + dt.timedelta(hours=h, minutes=5 * slot)
            _put(client, "i-a", "CPUUtilization", at, 10.0 + slot + 20 * h)
            _put(client, "i-a", "NetworkOut", at, 1e6 * (slot + 1))
            _put(client, "i-a", "NetworkPacketsIn", at, 100.0)
            _put(client, "i-a", "NetworkPacketsOut", at, 10.0 * slot)
            _put(client, "i-a", "EBSReadOps", at, 5.0 if slot != 3 else 500.0)
            _put(client, "i-a", "EBSWriteOps", at, 7.0)
            _put(client, "i-a", "EBSWriteBytes", at, 4096.0 * slot)
            _put(client, "i-a", "mem_used_percent", at, 40.0 + h, namespace="CWAgent", dims=mem_dims)
    rows = fetch_hourly(client, [Target("i-a")], H0, H0 + dt.timedelta(hours=2))
    assert [r.hour for r in rows] == [H0, H0 + dt.timedelta(hours=1)]
    for h, row in enumerate(rows):
        assert row.values["cpu_max_5m"] == [10.0 + slot + 20 * h for slot in range(12)]
        assert row.values["network_out_max_5m"] == 12e6  # the busiest 5 minutes
        assert "network_in_max_5m" not in row.values  # no NetworkIn datapoint: not invented
        assert row.values["packets_max_5m"] == 100.0 + 110.0  # in + out, per 5 minutes
        assert row.values["ebs_ops_max_5m"] == 507.0  # read + write in the same 5 minutes
        assert row.values["ebs_bytes_max_5m"] == 4096.0 * 11
        assert row.values["mem_used_max"] == 40.0 + h


def test_hour_peaks_keep_gaps_as_gaps() -> None:
    from dashgen.sync.cloudwatch import hour_peaks

    peaks = hour_peaks({"cpu_5m": {0: 5.0, 11: 9.0}, "ebs_read_ops_5m": {2: 3.0}, "ebs_write_ops_5m": {4: 4.0}})
    assert peaks == {"cpu_max_5m": [5.0] + [None] * 10 + [9.0], "ebs_ops_max_5m": 4.0}


@mock_aws
def test_each_hour_carries_the_type_it_ran_on(store) -> None:
    """A resize needs a stop and a start: hours from the current launch are the current type's, earlier ones the
    type the store knew; an instance new to the store has no known type before its launch."""
    from dashgen.sync.cloudwatch import read_utilisation

    _instance(store, "i-resized", "t4g.xlarge", {}, NOW)
    client = _moto_client()
    for iid in ("i-resized", "i-new"):
        for h in range(3):
            _put(client, iid, "CPUUtilization", H0 + dt.timedelta(hours=h, minutes=10), 30.0)
    launched = H0 + dt.timedelta(hours=1, minutes=30)
    seen = [Target("i-resized", True, None, "t4g.large", launched), Target("i-new", False, None, "m7i.large", launched)]
    _, rows = read_utilisation(store, client, "us-east-1", now=NOW, seen=seen)
    types = {(r.instance_id, r.hour - H0): r.instance_type for r in rows}
    hour = dt.timedelta(hours=1)
    assert types == {("i-resized", 0 * hour): "t4g.xlarge", ("i-resized", 1 * hour): "t4g.large",
                     ("i-resized", 2 * hour): "t4g.large",
                     ("i-new", 0 * hour): None, ("i-new", 1 * hour): "m7i.large", ("i-new", 2 * hour): "m7i.large"}
    store_hourly(store, rows)
    # a later fetch of the same hour keeps the first known type, and fills an unknown one
    store_hourly(store, [HourlyRow("i-resized", H0, {"cpu_avg": 1.0}, "t4g.large"),
                         HourlyRow("i-new", H0, {"cpu_avg": 1.0}, "m7i.large")])
    assert store.execute("SELECT instance_id, instance_type FROM dashgen.instance_utilisation_hourly "
                         "WHERE hour = %s ORDER BY 1", (H0,)).fetchall() == [("i-new", "m7i.large"),
                                                                             ("i-resized", "t4g.xlarge")]


def test_rows_without_a_type_are_fetched_again(store) -> None:
    """Rows written before migration 050 have no type (nor 5-minute values): the next sync reads the window again."""
    from dashgen.sync.cloudwatch import fetch_spans

    _instance(store, "i-a", "m7i.large", {}, NOW)
    window = floor_hour(NOW) - dt.timedelta(days=14)
    end = floor_hour(NOW) + dt.timedelta(hours=1)
    before = fetch_spans(store, [Target("i-a")], window, end)
    store_hourly(store, [HourlyRow("i-a", H0, {"cpu_avg": 1.0})])
    assert fetch_spans(store, [Target("i-a")], window, end) == before and before["i-a"][0] < H0
    store_hourly(store, [HourlyRow("i-a", H0 + dt.timedelta(hours=1), {"cpu_avg": 1.0}, "m7i.large")])
    # from the typed row on (complete when stored: the instance was seen at NOW, after it settled)
    assert fetch_spans(store, [Target("i-a")], window, end)["i-a"] == (H0 + dt.timedelta(hours=2), end)


@mock_aws
def test_sync_stores_the_instance_facts_from_describe_instance_types(migrated_db: str) -> None:
    import psycopg

    from dashgen.config import Config
    from dashgen.sync import sync

    session = _session()
    _launch(session, "trn1.32xlarge")
    now = dt.datetime.now(dt.UTC)
    result = sync(Config(), dsn=migrated_db, prices="bundled", session=session, now=now, cloudwatch=_moto_client())
    # the type in use and every candidate (its family; other families of the class up to twice the vCPUs)
    assert result.ok and 3 <= result.instance_facts < 20
    # a day is not over: the next sync reads no facts
    again = sync(Config(), dsn=migrated_db, prices="bundled", session=session, now=now + dt.timedelta(hours=1),
                 cloudwatch=_moto_client())
    assert again.ok and again.instance_facts == 0
    with psycopg.connect(migrated_db) as conn:
        row = conn.execute("SELECT neuron_devices, neuron_model, source, fetched_at FROM dashgen.instance_types "
                           "WHERE instance_type = 'trn1.32xlarge'").fetchone()
        assert row == (16, "Trainium", "aws-describe-instance-types", now)
        read = {r[0] for r in conn.execute("SELECT instance_type FROM dashgen.instance_types WHERE source = "
                                           "'aws-describe-instance-types'")}
        assert len(read) == result.instance_facts and {"trn1.2xlarge", "trn1.32xlarge"} <= read


@mock_aws
def test_sync_lands_with_the_bundled_facts_when_describe_instance_types_is_denied(migrated_db: str) -> None:
    import psycopg

    from dashgen.config import Config
    from dashgen.sync import sync

    session = _session()
    iid = _launch(session, "t4g.large")
    ec2 = session.client("ec2")
    with Stubber(ec2) as stub:
        stub.add_client_error("describe_instance_types", "UnauthorizedOperation",
                              "You are not authorized to perform this operation.")
        result = sync(Config(), dsn=migrated_db, prices="bundled", session=session, cloudwatch=_moto_client(),
                      facts_client=ec2)
    assert not result.ok and result.unsynced == ["instance facts"] and result.exit_code == 3  # partial
    assert any("instance facts not read (DescribeInstanceTypes)" in w and "UnauthorizedOperation" in w
               for w in result.warnings)
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT instance_id FROM dashgen.instances").fetchall() == [(iid,)]
        assert conn.execute("SELECT source, burst_baseline_pct FROM dashgen.instance_types "
                            "WHERE instance_type = 't4g.large'").fetchone() == ("bundled-snapshot", 30)


def test_the_progress_metric_is_defined_once_for_both_of_its_reads() -> None:
    """The experiment-wide read (sync/experiments.fetch_progress) and the per-instance read (metric_queries) ask
    for the same metric: the configured dimensions, per instance plus InstanceId; from the config's pairs or the
    store's JSON object alike."""
    from_config = ProgressMetric.of("Training", "Progress", (("Run", "r1"), ("Experiment", "t4g-sizing")))
    from_store = ProgressMetric.of("Training", "Progress", {"Experiment": "t4g-sizing", "Run": "r1"})
    assert from_config == from_store
    assert ProgressMetric.of("Training", None, ()) is None
    wide = from_config.cloudwatch()
    assert wide == {"Namespace": "Training", "MetricName": "Progress", "Dimensions": [
        {"Name": "Experiment", "Value": "t4g-sizing"}, {"Name": "Run", "Value": "r1"}]}
    [(query, iid, column)] = [q for q in metric_queries([Target("i-a", progress=from_config)])
                              if q[2] == "progress_pct"]
    assert (iid, column) == ("i-a", "progress_pct")
    assert query["MetricStat"]["Metric"] == {**wide, "Dimensions": [*wide["Dimensions"],
                                                                      {"Name": "InstanceId", "Value": "i-a"}]}
