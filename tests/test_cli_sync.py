"""`dashgen sync` and `dashgen db ...` through typer's CliRunner, checked through the store."""

from __future__ import annotations

import json
from decimal import Decimal

import boto3
import psycopg
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from cost_scenario import LINUX_AMI
from dashgen.cli import app
from dashgen.errors import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from shapes import check_shape

runner = CliRunner()


@pytest.fixture
def moto_ec2(monkeypatch):
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DASHGEN_DSN", raising=False)
    with mock_aws():
        yield boto3.client("ec2", region_name="us-east-1")


def test_db_migrate_then_up_to_date(fresh_db: str) -> None:
    first = runner.invoke(app, ["db", "migrate", "--dsn", fresh_db])
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("applied 001_pricing_store, 002_cost_functions")
    again = runner.invoke(app, ["db", "migrate", "--dsn", fresh_db])
    assert (again.exit_code, again.stdout) == (0, "schema up to date\n")


def test_db_grant_reader(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS cli_reader")
        conn.execute("CREATE ROLE cli_reader")
        try:
            assert runner.invoke(app, ["db", "migrate", "--dsn", fresh_db]).exit_code == 0
            result = runner.invoke(app, ["db", "grant-reader", "cli_reader", "--dsn", fresh_db])
            assert (result.exit_code, result.stdout) == (0, "granted SELECT on schema dashgen to cli_reader\n")
            assert conn.execute("SELECT has_table_privilege('cli_reader', 'dashgen.instances', 'SELECT'), "
                                "has_table_privilege('cli_reader', 'dashgen.instances', 'INSERT')").fetchone() == (
                True, False)
            missing = runner.invoke(app, ["db", "grant-reader", "nobody_at_all", "--dsn", fresh_db])
            assert missing.exit_code == 1
            assert missing.stderr == ("error: grant-reader: role 'nobody_at_all' does not exist "
                                      "(create it first: CREATE ROLE ...)\n")
        finally:
            conn.execute("DROP OWNED BY cli_reader")
            conn.execute("DROP ROLE cli_reader")


def test_sync_bundled_lands_the_inventory_and_reports_it(fresh_db: str, moto_ec2, monkeypatch) -> None:
    moto_ec2.run_instances(ImageId=LINUX_AMI, MinCount=2, MaxCount=2, InstanceType="t4g.large")
    monkeypatch.setenv("DASHGEN_DSN", fresh_db)  # the DSN from the environment
    result = runner.invoke(app, ["sync", "--prices", "bundled", "--region", "us-east-1"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("synced 2 instances (2 running) from us-east-1 at ")
    assert "1 from bundled-snapshot" in lines[1]
    assert any(line.startswith("instance facts: ") and line.endswith(" types from DescribeInstanceTypes")
               for line in lines)
    # two burstable instances, their series each, in one call (moto has no datapoints for them)
    assert any(line.startswith("cloudwatch: 1 GetMetricData calls, ")
               and line.endswith(" metrics requested, 0 datapoints; 0 hourly rows") for line in lines)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*), min(usd_per_hour) FROM dashgen.instance_cost_basis").fetchone() == (
            2, Decimal("0.0672"))


def test_sync_with_the_api_unreachable_warns_on_stderr_and_still_lands(migrated_db: str, moto_ec2) -> None:
    moto_ec2.run_instances(ImageId=LINUX_AMI, MinCount=1, MaxCount=1, InstanceType="m5.large")
    result = runner.invoke(app, ["sync", "--dsn", migrated_db, "--prices", "api"])
    assert result.exit_code == 3, result.output  # partly synced: the prices asked for were not read
    assert "WARNING: the AWS Price List API cannot be reached" in result.stderr
    assert result.stdout.startswith("synced 1 instances (1 running)")


def test_sync_json_is_the_result_with_its_exit_code(fresh_db: str, moto_ec2) -> None:
    """`sync --json`: the shape views.shapes()["sync"] pins, with this run's real figures; warnings still on
    stderr; the exit code inside the JSON is the process's."""
    moto_ec2.run_instances(ImageId=LINUX_AMI, MinCount=2, MaxCount=2, InstanceType="t4g.large")
    full = runner.invoke(app, ["sync", "--dsn", fresh_db, "--prices", "bundled", "--region", "us-east-1", "--json"])
    assert full.exit_code == EXIT_OK, full.output
    data = check_shape("sync", json.loads(full.stdout))
    assert (data["instances"], data["running"], data["regions"], data["ok"], data["exit_code"]) == (
        2, 2, ["us-east-1"], True, EXIT_OK)
    assert data["prices"] == {"bundled-snapshot": 1} and data["cloudwatch_calls"] == 1
    assert data["synced_at"].endswith("+00:00") and "migrations" in data
    partial = runner.invoke(app, ["sync", "--dsn", fresh_db, "--prices", "api", "--format", "json"])
    assert partial.exit_code == EXIT_PARTIAL, partial.output
    data = check_shape("sync", json.loads(partial.stdout))
    assert (data["ok"], data["exit_code"]) == (False, EXIT_PARTIAL) and data["unsynced"]
    assert data["warnings"] and data["warnings"][0] in partial.stderr  # a person watching stderr sees it too


def test_a_bad_dsn_is_one_line_without_the_password(moto_ec2) -> None:
    result = runner.invoke(app, ["sync", "--dsn", "postgresql://bob:s3cret@127.0.0.1:1/x?connect_timeout=2"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: cannot connect to the pricing store")
    assert "s3cret" not in result.output and "Traceback" not in result.output


def test_bad_options_are_one_line_errors(migrated_db: str, moto_ec2) -> None:
    result = runner.invoke(app, ["sync", "--dsn", migrated_db, "--prices", "cheap"])
    assert (result.exit_code, result.stderr) == (EXIT_USAGE, "error: Invalid value for '--prices': 'cheap' is not one "
                                                             "of 'api', 'bundled'. (see `dashgen sync --help`)\n")
    result = runner.invoke(app, ["sync", "--dsn", migrated_db, "--every", "15x"])
    assert (result.exit_code, result.stderr) == (EXIT_USAGE, "error: --every: expected a duration like '15m' or '1h', "
                                                    "got '15x'\n")
    result = runner.invoke(app, ["db", "migrate"])
    assert result.exit_code == EXIT_ERROR and result.stderr.startswith("error: no database: pass --dsn")


def test_sync_every_keeps_going_after_a_failed_run(migrated_db: str, moto_ec2, monkeypatch) -> None:
    from dashgen import sync as lib

    calls, slept = [], []
    real_loop = lib.sync_loop

    def twice(config, seconds, **kw):
        calls.append(seconds)
        return real_loop(config, seconds, runs=2, sleep=slept.append, **kw)

    monkeypatch.setattr(lib, "sync_loop", twice)
    dsns = iter(["postgresql://u@127.0.0.1:1/x?connect_timeout=2", migrated_db])
    real_sync = lib.sync
    monkeypatch.setattr(lib, "sync", lambda cfg, **kw: real_sync(cfg, **{**kw, "dsn": next(dsns)}))
    result = runner.invoke(app, ["sync", "--every", "15m", "--prices", "bundled", "--dsn", "postgresql://u@h/x"])
    assert result.exit_code == 0, result.output
    assert calls == [900] and slept == [30.0]  # the failed round is retried after 30 s, not 15 min
    assert result.stderr.startswith("error: cannot connect to the pricing store")
    assert result.stderr.rstrip().endswith("(next try in 30 s)") and result.stderr.count("\n") == 1
    assert result.stdout.startswith("synced 0 instances")


def test_sync_loop_json_is_one_line_per_round(fresh_db: str, moto_ec2, monkeypatch) -> None:
    """`sync --loop --json`: JSON Lines, one document per round that synced (a failed round is a line on stderr)."""
    from dashgen import sync as lib

    real_loop = lib.sync_loop
    monkeypatch.setattr(lib, "sync_loop", lambda config, seconds, **kw: real_loop(config, seconds, runs=2,
                                                                                  sleep=lambda _s: None, **kw))
    moto_ec2.run_instances(ImageId=LINUX_AMI, MinCount=1, MaxCount=1, InstanceType="t4g.large")
    result = runner.invoke(app, ["sync", "--loop", "--json", "--prices", "bundled", "--region", "us-east-1",
                                 "--dsn", fresh_db])
    assert result.exit_code == EXIT_OK, result.output
    rounds = [check_shape("sync", json.loads(line)) for line in result.stdout.splitlines()]
    assert [(r["instances"], r["exit_code"]) for r in rounds] == [(1, EXIT_OK), (1, EXIT_OK)]
