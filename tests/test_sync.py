"""`dashgen sync` into a real PostgreSQL: intervals, one transaction, idempotence, failing regions, prices."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import boto3
import psycopg
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from cost_scenario import LINUX_AMI, MotoClock, moto_instance, synced_store
from dashgen import sync as sync_mod
from dashgen.config import Config, Experiment
from dashgen.errors import DatabaseError
from dashgen.sync import parse_every, sync, sync_loop
from dashgen.sync.pricing import PriceListError

TABLES = ("instances", "instance_intervals", "instance_prices", "instance_types", "experiments",
          "experiment_progress")


def snapshot(dsn: str, *, ignore: tuple[str, ...] = ()) -> dict[str, list]:
    with psycopg.connect(dsn) as conn:
        out = {}
        for table in TABLES:
            cur = conn.execute(f"SELECT * FROM dashgen.{table} ORDER BY 1, 2")
            names = [d.name for d in cur.description]
            out[table] = [{k: v for k, v in zip(names, row, strict=True) if k not in ignore} for row in cur]
        return out


@pytest.fixture
def aws_env(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


def test_intervals_follow_each_start_and_stop_seen_at_each_sync(migrated_db, monkeypatch) -> None:
    scenario, result = synced_store(migrated_db, monkeypatch)
    assert (result.instances, result.running, result.regions, result.ok) == (6, 4, ["us-east-1"], True)
    assert result.prices == {"bundled-snapshot": 6}
    assert result.unknown_prices == ["us-east-1 t3.medium Windows Shared"]
    with psycopg.connect(migrated_db) as conn:
        stored = {}
        for iid, start, end in conn.execute("SELECT instance_id, started_at, ended_at FROM dashgen.instance_intervals "
                                            "ORDER BY 1, 2"):
            stored.setdefault(iid, []).append((start, end))
        prices = dict(conn.execute("SELECT instance_type, usd_per_hour FROM dashgen.instance_cost_basis"))
    for p in scenario.planned:
        assert stored[p.instance_id] == p.runs, p.key  # restarted: both runs; 30 s run: exact stop time
    assert prices["t3.medium"] is None  # unknown, never 0


def test_same_state_same_clock_is_idempotent_and_a_later_sync_moves_only_last_seen(migrated_db, aws_env,
                                                                                   monkeypatch) -> None:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=3)
    clock = MotoClock(monkeypatch, start)
    ec2 = aws_env.client("ec2")
    ids = [i["InstanceId"] for i in ec2.run_instances(ImageId=LINUX_AMI, MinCount=2, MaxCount=2,
                                                      InstanceType="t4g.large")["Instances"]]
    clock.now = start + dt.timedelta(hours=1)
    ec2.stop_instances(InstanceIds=ids[:1])
    at = start + dt.timedelta(hours=2)
    sync(Config(), dsn=migrated_db, prices="bundled", session=aws_env, now=at)
    first = snapshot(migrated_db)
    with psycopg.connect(migrated_db) as conn:
        xmin = conn.execute("SELECT string_agg(xmin::text, ',' ORDER BY instance_id) FROM dashgen.instances")
        xmin = xmin.fetchone()
    sync(Config(), dsn=migrated_db, prices="bundled", session=aws_env, now=at)
    assert snapshot(migrated_db) == first
    with psycopg.connect(migrated_db) as conn:  # not even rewritten
        assert conn.execute("SELECT string_agg(xmin::text, ',' ORDER BY instance_id) "
                            "FROM dashgen.instances").fetchone() == xmin
    later = at + dt.timedelta(minutes=15)
    sync(Config(), dsn=migrated_db, prices="bundled", session=aws_env, now=later)
    moved = ("last_seen", "fetched_at")
    assert snapshot(migrated_db, ignore=moved) == {
        table: [{k: v for k, v in row.items() if k not in moved} for row in rows] for table, rows in first.items()}
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT DISTINCT last_seen FROM dashgen.instances").fetchall() == [(later,)]


def test_a_missed_stop_closes_at_the_next_launch_and_a_vanished_instance_at_the_sync(migrated_db, aws_env,
                                                                                    monkeypatch) -> None:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=5)
    MotoClock(monkeypatch, start)
    ec2 = aws_env.client("ec2")
    a, b = (i["InstanceId"] for i in ec2.run_instances(ImageId=LINUX_AMI, MinCount=2, MaxCount=2,
                                                       InstanceType="t4g.large")["Instances"])
    sync(Config(), dsn=migrated_db, prices="bundled", session=aws_env, now=start + dt.timedelta(minutes=10))
    # between two syncs, a stops and starts again (a new LaunchTime) and b disappears from the API
    moto_instance(a).launch_time = (start + dt.timedelta(hours=2)).replace(tzinfo=None)
    from moto.ec2.models import ec2_backends

    backend = ec2_backends["123456789012"]["us-east-1"]
    for reservation in backend.reservations.values():
        reservation.instances = [i for i in reservation.instances if i.id != b]
    at = start + dt.timedelta(hours=3)
    sync(Config(), dsn=migrated_db, prices="bundled", session=aws_env, now=at)
    with psycopg.connect(migrated_db) as conn:
        rows = conn.execute("SELECT instance_id, started_at, ended_at FROM dashgen.instance_intervals "
                            "ORDER BY 1, 2").fetchall()
    assert sorted(rows) == sorted([(a, start, start + dt.timedelta(hours=2)), (a, start + dt.timedelta(hours=2), None),
                                   (b, start, at)])


def test_a_failing_region_is_reported_and_the_others_land(migrated_db, aws_env, monkeypatch) -> None:
    ec2 = aws_env.client("ec2")
    ec2.run_instances(ImageId=LINUX_AMI, MinCount=1, MaxCount=1, InstanceType="t4g.large")
    real = sync_mod.ec2_client

    def client_for(session, region, retry_mode="standard", budget=None):
        client = real(session, region, retry_mode, budget)
        if region == "eu-west-1":
            stub = Stubber(client)
            stub.add_client_error("describe_instances", "UnauthorizedOperation", "You are not authorized",
                                  http_status_code=403)
            stub.activate()
        return client

    monkeypatch.setattr(sync_mod, "ec2_client", client_for)
    result = sync(Config(regions=("us-east-1", "eu-west-1")), dsn=migrated_db, prices="bundled", session=aws_env)
    assert result.regions == ["us-east-1"] and not result.ok
    assert result.failed_regions == {"eu-west-1": "DescribeInstances: UnauthorizedOperation (HTTP 403): "
                                                  "You are not authorized"}
    assert result.exit_code == 3  # partly synced
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT region, count(*) FROM dashgen.instances GROUP BY 1").fetchall() == [
            ("us-east-1", 1)]


def test_clients_use_botocore_standard_retries(aws_env) -> None:
    client = sync_mod.ec2_client(aws_env, "us-east-1")
    assert client.meta.config.retries["mode"] == "standard"
    assert sync_mod.ec2_client(aws_env, "us-east-1", "adaptive").meta.config.retries["mode"] == "adaptive"


def test_a_failure_while_writing_leaves_the_previous_state_whole(migrated_db, aws_env, monkeypatch) -> None:
    ec2 = aws_env.client("ec2")
    ec2.run_instances(ImageId=LINUX_AMI, MinCount=2, MaxCount=2, InstanceType="t4g.large")
    sync(Config(), dsn=migrated_db, prices="bundled", session=aws_env)
    before = snapshot(migrated_db)
    ec2.run_instances(ImageId=LINUX_AMI, MinCount=3, MaxCount=3, InstanceType="m5.large")
    monkeypatch.setattr(sync_mod, "_EXPERIMENT_SQL", "INSERT INTO dashgen.no_such_table VALUES (%s" + ", %s" * 7 + ")")
    config = Config(experiments=(Experiment("e", "experiment", "e", 1.0, dt.datetime(2030, 1, 1, tzinfo=dt.UTC)),))
    with pytest.raises(DatabaseError) as err:
        sync(config, dsn=migrated_db, prices="bundled", session=aws_env)
    assert str(err.value).startswith('sync: write the pricing store: relation "dashgen.no_such_table"')
    assert snapshot(migrated_db) == before  # instances, prices and experiments of the failed sync: none landed


def test_a_malformed_price_list_item_stops_the_sync_before_anything_is_written(migrated_db, aws_env) -> None:
    ec2 = aws_env.client("ec2")
    ec2.run_instances(ImageId=LINUX_AMI, MinCount=1, MaxCount=1, InstanceType="m5.large")
    pricing = boto3.client("pricing", region_name="us-east-1")
    item = {"product": {"sku": "BROKEN123", "attributes": {"instanceType": "m5.large"}},
            "terms": {"OnDemand": {"x": {"priceDimensions": {"y": {"pricePerUnit": {"USD": "cheap"}}}}}}}
    with Stubber(pricing) as stub:
        stub.add_response("get_products", {"PriceList": [json.dumps(item)]})
        with pytest.raises(PriceListError, match=r"^Price List item sku BROKEN123: pricePerUnit.USD is 'cheap'"):
            sync(Config(), dsn=migrated_db, prices="api", session=aws_env, pricing=pricing)
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT count(*) FROM dashgen.instances").fetchone() == (0,)


def test_experiments_and_their_progress_are_synced_from_config_and_cloudwatch(migrated_db, aws_env) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    deadline = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    exp = Experiment("alpha", "experiment", "alpha", 50.0, deadline, "Training", "Progress",
                     (("Experiment", "alpha"),))
    cw = aws_env.client("cloudwatch")
    for minutes, value in ((50, 10.0), (20, 40.0)):
        cw.put_metric_data(Namespace="Training", MetricData=[{
            "MetricName": "Progress", "Value": value, "Timestamp": now - dt.timedelta(minutes=minutes),
            "Dimensions": [{"Name": "Experiment", "Value": "alpha"}]}])
    result = sync(Config(experiments=(exp,)), dsn=migrated_db, prices="bundled", session=aws_env, now=now)
    assert result.progress_points == 2
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT name, tag_key, tag_value, budget_usd, deadline, progress_dimensions "
                            "FROM dashgen.experiments").fetchall() == [
            ("alpha", "experiment", "alpha", 50, deadline, {"Experiment": "alpha"})]
        assert [float(v) for (v,) in conn.execute(
            "SELECT percent FROM dashgen.experiment_progress ORDER BY at")] == [10.0, 40.0]
    later = now + dt.timedelta(minutes=15)
    result = sync(Config(), dsn=migrated_db, prices="bundled", session=aws_env, now=later)  # e.g. no dashgen.toml here
    assert result.kept_experiments == ["alpha"] and result.exit_code == 0
    with psycopg.connect(migrated_db) as conn:  # kept, with its progress, and marked
        assert conn.execute("SELECT name, removed_from_config_at FROM dashgen.experiments").fetchall() == [
            ("alpha", later)]
        assert conn.execute("SELECT count(*) FROM dashgen.experiment_progress").fetchone() == (2,)
    sync(Config(experiments=(exp,)), dsn=migrated_db, prices="bundled", session=aws_env, now=later)  # back again
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT removed_from_config_at FROM dashgen.experiments").fetchall() == [(None,)]


def test_an_unreachable_price_list_api_is_a_loud_warning_and_bundled_prices(migrated_db, aws_env) -> None:
    aws_env.client("ec2").run_instances(ImageId=LINUX_AMI, MinCount=1, MaxCount=1, InstanceType="m5.large")
    result = sync(Config(), dsn=migrated_db, prices="api", session=aws_env)  # moto does not serve GetProducts
    assert result.warnings and result.warnings[0].startswith("WARNING: the AWS Price List API cannot be reached")
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT usd_per_hour, price_source, price_date FROM dashgen.instance_cost_basis"
                            ).fetchall() == [(Decimal("0.096"), "bundled-snapshot", dt.date(2026, 7, 20))]


def test_every_runs_on_schedule_and_parses_durations(monkeypatch) -> None:
    slept, runs = [], iter(range(3))
    monkeypatch.setattr(sync_mod, "sync", lambda config, **kw: next(runs))
    rounds = list(sync_loop(Config(), 900, runs=3, sleep=slept.append, dsn="postgresql://x@127.0.0.1/x"))
    assert [r.result for r in rounds] == [0, 1, 2] and [r.error for r in rounds] == [None] * 3
    assert len(slept) == 2 and all(899 < s <= 900 for s in slept)
    assert [parse_every(s) for s in ("30s", "15m", "1h", "1d")] == [30, 900, 3600, 86400]
    with pytest.raises(Exception, match="--every: expected a duration like '15m'"):
        parse_every("15x")
