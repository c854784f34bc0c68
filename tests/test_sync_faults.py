"""`dashgen sync` under faults (issue 10, points 4, 5, 7-11): AWS is moto, except the (service, region) pairs a
test sends to a local fault server (tests/aws_faults.py: an HTML error page, a black hole, a Price List API that
answers or throttles); the store is a real PostgreSQL. Each test says what lands, the one line printed per
failure and the exit code (0 all synced, 3 partly, 1 nothing)."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from pathlib import Path

import boto3
import psycopg
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from aws_faults import FaultServer, RoutedSession
from cost_scenario import LINUX_AMI
from dashgen import sync as sync_mod
from dashgen.cli import app
from dashgen.config import Config
from dashgen.errors import EXIT_USAGE, DatabaseError
from dashgen.sync import aws, sync

runner = CliRunner()
T0 = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def moto(monkeypatch):
    """moto for EC2, CloudWatch and STS; two attempts per call so that a retried fault costs under a second of
    back-off (the production value, 4, is checked in test_clients_have_bounded_timeouts_and_retries)."""
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DASHGEN_DSN", raising=False)
    monkeypatch.setattr(aws, "MAX_ATTEMPTS", 2)
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


def launch(session, region: str, instance_type: str = "t4g.large", count: int = 1) -> list[str]:
    ec2 = session.client("ec2", region_name=region)
    return [i["InstanceId"] for i in ec2.run_instances(ImageId=LINUX_AMI, MinCount=count, MaxCount=count,
                                                       InstanceType=instance_type)["Instances"]]


def use_session(monkeypatch, session) -> None:
    """What `dashgen sync` (the CLI) gets from `boto3.Session()`."""
    monkeypatch.setattr(boto3, "Session", lambda *a, **kw: session)


def regions_in_store(dsn: str) -> list[tuple[str, int]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT region, count(*) FROM dashgen.instances GROUP BY 1 ORDER BY 1").fetchall()


def no_traceback(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and "<html" not in result.output.lower()


# ------------------------------------------------------------------ point 8: an HTML reply, isolated to its region

@pytest.mark.parametrize("status, line", [
    (500, "error: region eu-west-1 not synced: DescribeInstances: 500: Internal Server Error"),
    # botocore parses an EC2 4xx (and a 200) body as XML: ResponseParserError, which is not a BotoCoreError
    (403, "error: region eu-west-1 not synced: a reply that is not from AWS (not the XML/JSON AWS sends; a proxy "
          "or firewall?): mismatched tag: line 6, column 2"),
    (200, "error: region eu-west-1 not synced: a reply that is not from AWS (not the XML/JSON AWS sends; a proxy "
          "or firewall?): mismatched tag: line 6, column 2"),
])
def test_an_html_page_instead_of_ec2_costs_only_its_region_in_one_line(migrated_db, moto, monkeypatch, status,
                                                                       line) -> None:
    launch(moto, "us-east-1", count=2)
    launch(moto, "eu-west-1")
    with FaultServer("html", status) as proxy:
        use_session(monkeypatch, RoutedSession(moto, {("ec2", "eu-west-1"): proxy.url}))
        result = runner.invoke(app, ["sync", "--dsn", migrated_db, "--prices", "bundled",
                                     "--region", "us-east-1", "--region", "eu-west-1"])
    no_traceback(result)
    assert result.exit_code == 3  # partly synced
    assert result.stderr.splitlines() == [line]
    assert result.stdout.startswith("synced 2 instances (2 running) from us-east-1 at ")
    assert regions_in_store(migrated_db) == [("us-east-1", 2)]


def test_when_no_region_answers_nothing_is_synced_exit_1(migrated_db, moto, monkeypatch) -> None:
    with FaultServer("html", 502) as proxy:
        use_session(monkeypatch, RoutedSession(moto, {("ec2", "us-east-1"): proxy.url,
                                                      ("ec2", "eu-west-1"): proxy.url}))
        result = runner.invoke(app, ["sync", "--dsn", migrated_db, "--prices", "bundled",
                                     "--region", "us-east-1", "--region", "eu-west-1"])
    no_traceback(result)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"error: region {r} not synced: DescribeInstances: 502: Bad Gateway"
                                          for r in ("eu-west-1", "us-east-1")]


# ------------------------------------------------------------------ point 10: a failed CloudWatch read

def test_an_html_page_from_cloudwatch_is_one_line_and_exit_3(migrated_db, moto, monkeypatch) -> None:
    launch(moto, "us-east-1")
    cw = moto.client("cloudwatch")
    cw.put_metric_data(Namespace="Training", MetricData=[{
        "MetricName": "Progress", "Value": 10.0, "Timestamp": dt.datetime.now(dt.UTC),
        "Dimensions": [{"Name": "Experiment", "Value": "alpha"}]}])
    toml = Path("dashgen.toml")
    toml.write_text('[[experiments]]\nname = "alpha"\nbudget_usd = 10\ndeadline = 2030-01-01\n'
                    '[experiments.progress]\nnamespace = "Training"\nmetric_name = "Progress"\n'
                    'dimensions = { Experiment = "alpha" }\n')
    try:
        with FaultServer("html", 403) as proxy:  # botocore keeps a 403's HTML body as the error message
            use_session(monkeypatch, RoutedSession(moto, {("cloudwatch", "us-east-1"): proxy.url}))
            result = runner.invoke(app, ["sync", "--dsn", migrated_db, "--prices", "bundled"])
    finally:
        toml.unlink()
    no_traceback(result)
    assert result.exit_code == 3
    html = "403: a reply that is not from AWS (an HTML page: a proxy or firewall?)"
    assert result.stderr.splitlines() == [
        f"WARNING: experiment progress not read from CloudWatch: GetMetricData: {html}",
        f"WARNING: utilisation not read from CloudWatch: cloudwatch GetMetricData (us-east-1): {html}",
    ]
    assert regions_in_store(migrated_db) == [("us-east-1", 1)]  # the inventory landed


# ------------------------------------------------------------------ point 11: a black-holed region

def test_a_black_holed_region_gives_up_at_its_deadline_and_the_others_land(migrated_db, moto, monkeypatch,
                                                                          tmp_path) -> None:
    launch(moto, "us-east-1")
    config = tmp_path / "dashgen.toml"
    config.write_text('[aws]\nregions = ["us-east-1", "eu-west-1"]\nregion_timeout = "2s"\n')
    with FaultServer("hang") as hole:  # accepts, reads the request, never answers
        use_session(monkeypatch, RoutedSession(moto, {("ec2", "eu-west-1"): hole.url}))
        started = time.monotonic()
        result = runner.invoke(app, ["sync", "--dsn", migrated_db, "--prices", "bundled", "-c", str(config)])
        took = time.monotonic() - started
        assert hole.requests == 1  # it was reached, and not retried past the deadline
    no_traceback(result)
    assert took < 15, took  # botocore's defaults (60 s reads, retried) took minutes
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        "error: region eu-west-1 not synced: no complete answer from eu-west-1 within 2 s ([aws] region_timeout): "
        "gave up"]
    assert regions_in_store(migrated_db) == [("us-east-1", 1)]


def test_an_aws_profile_that_does_not_exist_is_one_line(migrated_db, moto, monkeypatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nope")
    result = runner.invoke(app, ["sync", "--dsn", migrated_db, "--prices", "api"])
    no_traceback(result)
    assert (result.exit_code, result.stderr) == (EXIT_USAGE,
                                                 "error: AWS: The config profile (nope) could not be found\n")


def test_clients_have_bounded_timeouts_and_retries(moto) -> None:
    from dashgen.sync.cloudwatch import cloudwatch_client
    from dashgen.sync.inventory import ec2_client
    from dashgen.sync.pricing import pricing_client

    for made in (ec2_client(moto, "eu-west-1"), cloudwatch_client(moto, "eu-west-1"), pricing_client(moto)):
        cfg = made.meta.config
        assert (cfg.connect_timeout, cfg.read_timeout) == (aws.CONNECT_TIMEOUT, aws.READ_TIMEOUT) == (5, 20)
        assert cfg.retries == {"mode": "standard", "total_max_attempts": 2}  # the fixture's (production: 4)
    assert Config().region_timeout == "5m"


# ------------------------------------------------------------------ points 5 and 7: prices

def _prices(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT region, instance_type, usd_per_hour, source, fetched_at, stale_since "
                            "FROM dashgen.instance_prices WHERE instance_type IN ('m5.large', 't4g.large') "
                            "ORDER BY 1, 2").fetchall()


def _row_versions(dsn: str, table: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT ctid::text, xmin::text FROM dashgen.{table} ORDER BY 1").fetchall()


@pytest.mark.parametrize("failure", ["throttle", "hang"])
def test_a_price_list_failure_keeps_the_last_known_prices_and_says_they_are_stale(migrated_db, moto, failure) -> None:
    launch(moto, "us-east-1", "m5.large")
    launch(moto, "eu-west-1", "m5.large")
    config = Config(regions=("us-east-1", "eu-west-1"))
    with FaultServer("pricing") as api:
        api.prices = {("us-east-1", "m5.large"): "0.0960000000", ("eu-west-1", "m5.large"): "0.1070000000"}
        session = RoutedSession(moto, {("pricing", "us-east-1"): api.url})
        first = sync(config, dsn=migrated_db, prices="api", session=session, now=T0)
        assert first.exit_code == 0 and first.warnings == []
        known = _prices(migrated_db)
        assert known == [("eu-west-1", "m5.large", Decimal("0.1070000000"), "aws-price-list-api", T0, None),
                         ("us-east-1", "m5.large", Decimal("0.0960000000"), "aws-price-list-api", T0, None)]

        api.mode = failure
        launch(moto, "us-east-1", "t4g.large")  # a type with no known price yet
        t1 = T0 + dt.timedelta(minutes=15)
        second = sync(config, dsn=migrated_db, prices="api", session=session, now=t1, region_timeout=2)
        assert second.exit_code == 3  # partly synced: the prices asked for were not read
        reason = ("GetProducts: ThrottlingException (HTTP 400): Rate exceeded" if failure == "throttle" else
                  "no complete answer from the AWS Price List API within 2 s ([aws] region_timeout): gave up")
        assert second.warnings == [
            f"WARNING: the AWS Price List API cannot be reached ({reason}); prices not read keep their last known "
            "value (marked stale), else the bundled us-east-1 snapshot of 2026-07-20 (other regions and EBS: "
            "unknown)"]
        stamp = t1.isoformat(timespec="minutes")
        assert second.stale_prices == [f"eu-west-1 m5.large Linux Shared (API price kept, stale since {stamp})",
                                       f"us-east-1 m5.large Linux Shared (API price kept, stale since {stamp})"]
        assert second.prices == {"bundled-snapshot": 1}  # the new type: no API price known, the snapshot's
        assert _prices(migrated_db) == [  # never replaced by the snapshot's or by unknown; only marked
            (*known[0][:5], t1), (*known[1][:5], t1),
            ("us-east-1", "t4g.large", Decimal("0.0672"), "bundled-snapshot", t1, None)]

        api.mode = "pricing"  # the API is back: read again, no longer stale
        t2 = t1 + dt.timedelta(minutes=15)
        third = sync(config, dsn=migrated_db, prices="api", session=session, now=t2)
        assert third.exit_code == 0 and third.stale_prices == []
    assert [row[3:] for row in _prices(migrated_db)] == [("aws-price-list-api", t2, None)] * 3


@pytest.mark.parametrize("prices", ["api", "bundled"])
def test_a_resync_of_the_same_aws_state_rewrites_no_price_row(migrated_db, moto, prices) -> None:
    launch(moto, "us-east-1", "m5.large", count=2)
    with FaultServer("pricing") as api:
        session = RoutedSession(moto, {("pricing", "us-east-1"): api.url})
        sync(Config(), dsn=migrated_db, prices=prices, session=session, now=T0)
        before = {t: _row_versions(migrated_db, t) for t in ("instance_prices", "ebs_prices", "instance_types",
                                                          "experiments")}
        assert len(before["instance_prices"]) > 1
        sync(Config(), dsn=migrated_db, prices=prices, session=session, now=T0 + dt.timedelta(minutes=15))
        assert {t: _row_versions(migrated_db, t) for t in before} == before  # not one row version more
        day = T0 + dt.timedelta(hours=25)  # an unchanged price's fetched_at moves at most once a day
        sync(Config(), dsn=migrated_db, prices=prices, session=session, now=day)
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT DISTINCT fetched_at FROM dashgen.instance_prices "
                            "WHERE instance_type = 'm5.large'").fetchall() == [(day,)]


# ------------------------------------------------------------------ point 4: experiments are never deleted by sync

def test_a_sync_without_the_config_keeps_experiments_until_forget_experiment(migrated_db, moto, monkeypatch,
                                                                            tmp_path) -> None:
    from grafana_sql import ALL, expand
    from test_cost_dashboard import ALL_VALUES, cost_dashboard, panel_sql, run

    launch(moto, "us-east-1")
    now = dt.datetime.now(dt.UTC)
    moto.client("cloudwatch").put_metric_data(Namespace="Training", MetricData=[{
        "MetricName": "Progress", "Value": v, "Timestamp": now - dt.timedelta(minutes=m),
        "Dimensions": [{"Name": "Experiment", "Value": "alpha"}]} for m, v in ((40, 10.0), (10, 20.0))])
    config = tmp_path / "dashgen.toml"
    config.write_text('[[experiments]]\nname = "alpha"\nbudget_usd = 10\ndeadline = 2030-01-01\n'
                      '[experiments.progress]\nnamespace = "Training"\nmetric_name = "Progress"\n'
                      'dimensions = { Experiment = "alpha" }\n')
    first = runner.invoke(app, ["sync", "--dsn", migrated_db, "--prices", "bundled", "-c", str(config)])
    assert first.exit_code == 0, first.output
    assert "progress: 2 points" in first.stdout

    elsewhere = tmp_path / "elsewhere"  # a folder without dashgen.toml: no experiments configured
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    second = runner.invoke(app, ["sync", "--dsn", migrated_db, "--prices", "bundled"])
    assert second.exit_code == 0, second.output
    assert ("experiments kept, no longer in the config: alpha (`dashgen db forget-experiment NAME` removes one)"
            in second.stdout.splitlines())
    with psycopg.connect(migrated_db) as conn:
        (removed,) = conn.execute("SELECT removed_from_config_at FROM dashgen.experiments "
                                  "WHERE name = 'alpha'").fetchone()
        assert removed is not None
        assert conn.execute("SELECT count(*) FROM dashgen.experiment_progress").fetchone() == (2,)
    dash = cost_dashboard()
    _, rows = run(migrated_db, expand(panel_sql(dash, "Budget and deadline"), time_from=now, time_to=now,
                                   variables={"experiment": ALL, "account": ALL}, all_values=ALL_VALUES))
    stamp = removed.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
    assert [(r["Experiment"], r["In config"], r["Progress"]) for r in rows] == [
        ("alpha", f"no, since {stamp} UTC", 20)]  # shown as such, with its progress
    listed = runner.invoke(app, ["rightsize", "--dsn", migrated_db, "--experiment", "beta"])
    assert listed.stderr == ("error: --experiment: no experiment 'beta' in the store (known: alpha (no longer in "
                             "the config))\n")

    still = runner.invoke(app, ["db", "forget-experiment", "alpha", "--dsn", migrated_db, "-c", str(config)])
    assert still.exit_code == 1 and still.stderr == (
        f"error: forget-experiment: 'alpha' is still in {config} ([[experiments]]): remove it there first, or the "
        "next sync adds it back\n")
    unknown = runner.invoke(app, ["db", "forget-experiment", "beta", "--dsn", migrated_db])
    assert unknown.exit_code == 1 and unknown.stderr == (
        "error: forget-experiment: no experiment 'beta' in the store (known: alpha)\n")
    gone = runner.invoke(app, ["db", "forget-experiment", "alpha", "--dsn", migrated_db])
    assert (gone.exit_code, gone.stdout) == (0, "forgot experiment alpha and its 2 progress points\n")
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT (SELECT count(*) FROM dashgen.experiments), "
                            "(SELECT count(*) FROM dashgen.experiment_progress)").fetchone() == (0, 0)


# ------------------------------------------------------------------ point 9: the loop outlives a failed round

def _loop(monkeypatch, runs: int):
    """`sync --every/--loop` with `runs` rounds and no real sleeping; returns the waits asked for."""
    slept: list[float] = []
    real = sync_mod.sync_loop
    monkeypatch.setattr(sync_mod, "sync_loop",
                        lambda config, seconds, **kw: real(config, seconds, runs=runs, sleep=slept.append, **kw))
    return slept


def test_the_loop_survives_the_database_dropping_while_aws_is_read(fresh_db, moto, monkeypatch) -> None:
    launch(moto, "us-east-1")
    session = boto3.Session(region_name="us-east-1")
    killed = []

    def drop_the_database_connection(**_) -> None:  # while DescribeInstances is being read: once
        if not killed:
            with psycopg.connect(fresh_db, autocommit=True) as admin:
                killed.extend(admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                            "WHERE application_name = 'dashgen' AND datname = current_database()"
                                            ).fetchall())

    session.events.register("before-call.ec2.DescribeInstances", drop_the_database_connection)
    use_session(monkeypatch, session)
    slept = _loop(monkeypatch, runs=2)
    result = runner.invoke(app, ["sync", "--every", "15m", "--dsn", fresh_db, "--prices", "bundled"])
    no_traceback(result)
    assert killed == [(True,)]
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        "error: sync: read the instances of us-east-1 to measure: terminating connection due to administrator "
        "command (next try in 30 s)"]
    assert slept == [30.0]  # back-off: the failed round is retried after 30 s, not after 15 min
    assert result.stdout.startswith("synced 1 instances (1 running) from us-east-1")  # the next round landed
    assert regions_in_store(fresh_db) == [("us-east-1", 1)]


def test_the_loop_backs_off_on_failures_in_a_row_and_goes_on_after_a_partial_round(monkeypatch) -> None:
    outcomes = iter([RuntimeError("boom"), DatabaseError("store down"), "partial", "ok"])

    def fake_sync(config, **kw):
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        result = sync_mod.SyncResult(synced_at=T0, regions=["us-east-1"])
        if outcome == "partial":
            result.failed_regions["eu-west-1"] = "DescribeInstances: 500: Internal Server Error"
        return result

    monkeypatch.setattr(sync_mod, "sync", fake_sync)
    slept: list[float] = []
    rounds = list(sync_mod.sync_loop(Config(), 900, runs=4, sleep=slept.append, dsn="postgresql://x@h/x"))
    assert [r.error for r in rounds] == ["unexpected RuntimeError: boom", "store down", None, None]
    assert [r.result.exit_code for r in rounds[2:]] == [3, 0]
    assert slept[:2] == [30.0, 60.0] and all(899 < s <= 900 for s in slept[2:])


def test_loop_uses_pricing_every_and_stops_only_for_a_configuration_error(migrated_db, moto, monkeypatch,
                                                                         tmp_path) -> None:
    config = tmp_path / "dashgen.toml"
    config.write_text('[pricing]\nevery = "2m"\nprices = "bundled"\n')
    seen, calls = [], []
    real_loop, real_sync = sync_mod.sync_loop, sync_mod.sync
    monkeypatch.setattr(sync_mod, "sync_loop", lambda cfg, seconds, **kw: (
        seen.append(seconds), real_loop(cfg, seconds, runs=3, sleep=lambda _: None, **kw))[1])
    monkeypatch.setattr(sync_mod, "sync", lambda cfg, **kw: (calls.append(kw), real_sync(cfg, **kw))[1])
    result = runner.invoke(app, ["sync", "--loop", "--dsn", migrated_db, "-c", str(config)])
    assert (result.exit_code, seen, len(calls)) == (0, [120], 3), result.output  # [pricing] every = 2m
    calls.clear()
    stop = runner.invoke(app, ["sync", "--loop", "--dsn", migrated_db, "--cur", "billing/cur", "-c", str(config)])
    assert (stop.exit_code, len(calls)) == (EXIT_USAGE, 1), stop.output  # stopped at the first round
    assert stop.stderr.startswith("error: --cur: expected s3://bucket/prefix") and stop.stderr.count("\n") == 1


def test_describe_is_one_short_line_for_every_kind_of_failure() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError
    from botocore.parsers import ResponseParserError

    html = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>...</body>\r\n</html>"
    cases = {
        ClientError({"Error": {"Code": "403", "Message": html}, "ResponseMetadata": {"HTTPStatusCode": 403}},
                    "GetMetricData"): "GetMetricData: 403: a reply that is not from AWS (an HTML page: a proxy or "
                                      "firewall?)",
        ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded\nretry later"},
                     "ResponseMetadata": {"HTTPStatusCode": 400}}, "DescribeInstances"):
            "DescribeInstances: Throttling (HTTP 400): Rate exceeded",
        ResponseParserError(f"Unable to parse response (syntax error: line 1, column 0), invalid XML received. "
                            f"Further retries may succeed:\nb'{html}'"):
            "a reply that is not from AWS (not the XML/JSON AWS sends; a proxy or firewall?): syntax error: line 1, "
            "column 0",
        EndpointConnectionError(endpoint_url="https://ec2.eu-west-1.amazonaws.com/"):
            'Could not connect to the endpoint URL: "https://ec2.eu-west-1.amazonaws.com/"',
        ConnectionResetError(104, "Connection reset by peer"): "ConnectionResetError: [Errno 104] Connection reset "
                                                               "by peer",
        aws.DeadlineExpired("no complete answer from eu-west-1 within 2 s ([aws] region_timeout): gave up"):
            "no complete answer from eu-west-1 within 2 s ([aws] region_timeout): gave up",
        KeyError("InstanceId"): "KeyError: 'InstanceId'",  # a reply missing a field: still one line
    }
    for exc, line in cases.items():
        assert aws.describe(exc) == line
    assert len(aws.describe(OSError("x" * 5000))) == aws.MAX_LINE
