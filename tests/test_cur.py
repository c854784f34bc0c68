"""Reconciliation against AWS's own cost data: `dashgen sync --cur s3://bucket/prefix` (issue 12).

S3 is moto; the Parquet files are written with pyarrow in the CUR 2.0 layout: AWS's column names and data types
from the CUR 2.0 data dictionary (https://docs.aws.amazon.com/cur/latest/userguide/table-dictionary-cur2-line-item.html
and the -savings-plan, -reservation, -pricing, -bill, -identity pages; `product` and `resource_tags` are
map<string,string> in CUR 2.0), timestamps as Parquet timestamps without a time zone (UTC), costs as doubles.
A line item per instance and hour, as an HOURLY export with INCLUDE_RESOURCES delivers them.
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import boto3
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from cost_scenario import LINUX_AMI, MotoClock, csv_price
from dashgen.config import Config
from dashgen.errors import EXIT_USAGE, ConfigError
from dashgen.store.sqlvars import encode as hx
from dashgen.sync import sync
from dashgen.sync.cur import CurError, parse_s3_url
from grafana_sql import ALL, expand
from test_cost_dashboard import ALL_VALUES, cost_dashboard, panel_sql, run

H = dt.timedelta(hours=1)
SCHEMA = pa.schema([
    ("bill_billing_period_start_date", pa.timestamp("ms")),
    ("bill_payer_account_id", pa.string()),
    ("identity_line_item_id", pa.string()),
    ("identity_time_interval", pa.string()),
    ("line_item_line_item_type", pa.string()),
    ("line_item_product_code", pa.string()),
    ("line_item_resource_id", pa.string()),
    ("line_item_unblended_cost", pa.float64()),
    ("line_item_unblended_rate", pa.string()),
    ("line_item_usage_account_id", pa.string()),
    ("line_item_usage_amount", pa.float64()),
    ("line_item_usage_end_date", pa.timestamp("ms")),
    ("line_item_usage_start_date", pa.timestamp("ms")),
    ("line_item_usage_type", pa.string()),
    ("pricing_public_on_demand_cost", pa.float64()),
    ("pricing_term", pa.string()),
    ("pricing_unit", pa.string()),
    ("product", pa.map_(pa.string(), pa.string())),
    ("reservation_effective_cost", pa.float64()),
    ("resource_tags", pa.map_(pa.string(), pa.string())),
    ("savings_plan_savings_plan_a_r_n", pa.string()),
    ("savings_plan_savings_plan_effective_cost", pa.float64()),
])


def line(instance_id: str, start: dt.datetime, usage_type: str, cost: float, *, kind: str = "Usage",
         sp_cost: float | None = None, term: str = "OnDemand", amount: float = 1.0, unit: str = "Hrs") -> dict:
    naive = start.astimezone(dt.UTC).replace(tzinfo=None)
    return {
        "bill_billing_period_start_date": naive.replace(day=1, hour=0),
        "bill_payer_account_id": "123456789012",
        "identity_line_item_id": f"{instance_id}-{usage_type}-{kind}-{naive.isoformat()}",
        "identity_time_interval": f"{naive.isoformat()}Z/{(naive + H).isoformat()}Z",
        "line_item_line_item_type": kind,
        "line_item_product_code": "AmazonEC2",
        "line_item_resource_id": instance_id,
        "line_item_unblended_cost": cost,
        "line_item_unblended_rate": str(cost / amount if amount else 0),
        "line_item_usage_account_id": "123456789012",
        "line_item_usage_amount": amount,
        "line_item_usage_end_date": naive + H,
        "line_item_usage_start_date": naive,
        "line_item_usage_type": usage_type,
        "pricing_public_on_demand_cost": cost if kind != "SavingsPlanNegation" else 0.0,
        "pricing_term": term,
        "pricing_unit": unit,
        "product": [("instance_type", usage_type.split(":")[-1]), ("region", "us-east-1")],
        "reservation_effective_cost": 0.0,
        "resource_tags": [("user_experiment", "cur")],
        "savings_plan_savings_plan_a_r_n": "arn:aws:savingsplans::123456789012:savingsplan/sp-1" if sp_cost else "",
        "savings_plan_savings_plan_effective_cost": sp_cost if sp_cost is not None else 0.0,
    }


def parquet(rows: list[dict], schema: pa.Schema = SCHEMA) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), sink, compression="snappy")
    return sink.getvalue()


@pytest.fixture
def aws(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        session.client("s3").create_bucket(Bucket="billing")
        yield session


def a_run(session, monkeypatch, hours_running: int = 6):
    """A t4g.large (standard credits) started `hours_running` h ago at an hour, still running."""
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    start = now - hours_running * H
    MotoClock(monkeypatch, start)
    iid = session.client("ec2").run_instances(
        ImageId=LINUX_AMI, MinCount=1, MaxCount=1, InstanceType="t4g.large",
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "experiment", "Value": "cur"}]}],
    )["Instances"][0]["InstanceId"]
    return iid, start, now


def put(session, key: str, data: bytes) -> None:
    session.client("s3").put_object(Bucket="billing", Key=key, Body=data)


def reconciliation(dsn: str, frm: dt.datetime, to: dt.datetime, title: str = "Estimated vs billed (CUR)") -> list:
    sql = expand(panel_sql(cost_dashboard(), title), time_from=frm, time_to=to,
                 variables={"tag_key": hx("experiment"), "tag_value": ALL, "name": ALL, "account": ALL},
                 all_values=ALL_VALUES)
    return run(dsn, sql)[1]


def test_the_cur_equal_to_the_estimate_shows_0_percent_and_recent_hours_stay_estimated(migrated_db, aws,
                                                                                      monkeypatch) -> None:
    iid, start, now = a_run(aws, monkeypatch)
    od = float(csv_price("t4g.large"))  # 0.0672
    # AWS has billed the first 4 of the 6 hours, in two files of one delivery; other lines are left out
    first = [line(iid, start + h * H, "BoxUsage:t4g.large", od) for h in range(2)]
    second = [line(iid, start + h * H, "BoxUsage:t4g.large", od) for h in range(2, 4)]
    second += [line(iid, start, "DataTransfer-Out-Bytes", 0.09, amount=1.0, unit="GB"),  # not estimated: left out
               line("vol-0abc", start, "EBS:VolumeUsage.gp3", 0.01, unit="GB-Mo")]
    put(aws, "cur/data/BILLING_PERIOD=2026-12/cur-00001.snappy.parquet", parquet(first))
    put(aws, "cur/data/BILLING_PERIOD=2026-12/cur-00002.snappy.parquet", parquet(second))
    put(aws, "cur/metadata/manifest.json", b"{}")  # not Parquet: skipped
    result = sync(Config(), dsn=migrated_db, prices="bundled", session=aws, now=now, cur="s3://billing/cur/")
    assert (result.cur_files, result.billed_rows) == (2, 4)
    rows = reconciliation(migrated_db, start - H, now + H)
    assert len(rows) == 1
    row = rows[0]
    assert row["Instance"] == iid and row["Billed through"] == start + 4 * H  # hours 5 and 6: estimated only
    assert row["Hours billed"] == pytest.approx(4.0)
    assert row["Estimated"] == pytest.approx(4 * od) and row["Billed"] == pytest.approx(4 * od)
    assert row["Difference"] == pytest.approx(0.0, abs=1e-9)
    assert row["Effective USD/hour"] == pytest.approx(od)
    # the cost-per-instance table keeps the estimate for the whole run
    sql = expand(panel_sql(cost_dashboard(), "Cost per instance"), time_from=start, time_to=now,
                 variables={"tag_key": hx("experiment"), "tag_value": ALL, "name": ALL, "account": ALL},
                 all_values=ALL_VALUES)
    inst = {r["Instance"]: r for r in run(migrated_db, sql)[1]}[iid]
    assert inst["Cost in range"] == pytest.approx(6 * od)
    # a second sync of the same files changes nothing
    with psycopg.connect(migrated_db) as conn:
        before = conn.execute("SELECT xmin::text, * FROM dashgen.billed_costs ORDER BY usage_start").fetchall()
    sync(Config(), dsn=migrated_db, prices="bundled", session=aws, now=now, cur="s3://billing/cur/")
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT xmin::text, * FROM dashgen.billed_costs ORDER BY usage_start").fetchall() == before


def test_a_savings_plan_discount_shows_the_right_percentage_and_effective_rate(migrated_db, aws, monkeypatch) -> None:
    """Hours covered by a Compute Savings Plan: the usage line keeps the On-Demand cost as unblended cost, the
    effective cost is the plan's rate ($0.0484/h here, 28 % off), and a SavingsPlanNegation line cancels the
    unblended cost. Billed = 4 x 0.0484 = 0.1936 against 4 x 0.0672 = 0.2688 estimated: -27.976 %."""
    iid, start, now = a_run(aws, monkeypatch)
    od, sp = float(csv_price("t4g.large")), 0.0484
    rows = []
    for h in range(4):
        rows.append(line(iid, start + h * H, "BoxUsage:t4g.large", od, kind="SavingsPlanCoveredUsage", sp_cost=sp))
        rows.append(line(iid, start + h * H, "BoxUsage:t4g.large", -od, kind="SavingsPlanNegation", sp_cost=None))
    put(aws, "cur/data/BILLING_PERIOD=2026-12/cur-00001.snappy.parquet", parquet(rows))
    sync(Config(), dsn=migrated_db, prices="bundled", session=aws, now=now, cur="s3://billing/cur")
    row = reconciliation(migrated_db, start, now)[0]
    assert row["Billed"] == pytest.approx(4 * sp) and row["Estimated"] == pytest.approx(4 * od)
    assert row["Difference"] == pytest.approx(100 * (sp - od) / od) == pytest.approx(-27.976190476)
    assert row["Billed before discounts"] == pytest.approx(4 * od)
    assert row["Effective USD/hour"] == pytest.approx(sp)
    tag = reconciliation(migrated_db, start, now, "Estimated vs billed by tag value")[0]
    assert tag["Tag value"] == "cur" and tag["Difference"] == pytest.approx(-27.976190476)
    # a range holding half of the first billed hour: half of that hour on both sides
    half = reconciliation(migrated_db, start + H / 2, start + H)[0]
    assert half["Billed"] == pytest.approx(sp / 2) and half["Estimated"] == pytest.approx(od / 2)


def test_credit_lines_count_as_billed(migrated_db, aws, monkeypatch) -> None:
    iid, start, now = a_run(aws, monkeypatch)
    od = float(csv_price("t4g.large"))
    rows = [line(iid, start, "BoxUsage:t4g.large", od),
            line(iid, start, "CPUCredits:t4g", 0.04 * 1.4, amount=1.4, unit="vCPU-Hours")]
    put(aws, "cur/x.parquet", parquet(rows))
    sync(Config(), dsn=migrated_db, prices="bundled", session=aws, now=now, cur="s3://billing/cur/")
    row = reconciliation(migrated_db, start, start + H)[0]
    assert row["Billed"] == pytest.approx(od + 0.056)  # the credits are billed; dashgen saw none: +83.3 %
    assert row["Difference"] == pytest.approx(100 * 0.056 / od)


@pytest.mark.parametrize(("drop", "retype", "message"), [
    ("line_item_resource_id", None, "no column line_item_resource_id"),
    (None, ("line_item_unblended_cost", pa.string()), "column line_item_unblended_cost is string, expected number"),
])
def test_a_cur_file_without_the_columns_stops_the_sync_in_one_line(migrated_db, aws, monkeypatch, drop, retype,
                                                                  message) -> None:
    iid, start, now = a_run(aws, monkeypatch)
    row = line(iid, start, "BoxUsage:t4g.large", 0.0672)
    schema = SCHEMA
    if drop:
        schema = schema.remove(schema.get_field_index(drop))
        row.pop(drop)
    if retype:
        schema = schema.set(schema.get_field_index(retype[0]), pa.field(retype[0], retype[1]))
        row[retype[0]] = str(row[retype[0]])
    put(aws, "cur/bad.parquet", parquet([row], schema))
    with pytest.raises(CurError) as err:
        sync(Config(), dsn=migrated_db, prices="bundled", session=aws, now=now, cur="s3://billing/cur/")
    assert str(err.value) == f"CUR file s3://billing/cur/bad.parquet: {message}" or message in str(err.value)
    assert "\n" not in str(err.value) and "s3://billing/cur/bad.parquet" in str(err.value)
    with psycopg.connect(migrated_db) as conn:  # nothing landed
        assert conn.execute("SELECT count(*) FROM dashgen.instances").fetchone() == (0,)


def test_the_cli_takes_cur_and_a_wrong_url_or_bucket_is_one_line(migrated_db, aws, monkeypatch) -> None:
    from dashgen.cli import app

    with pytest.raises(ConfigError):
        parse_s3_url("billing/cur")
    monkeypatch.setenv("DASHGEN_DSN", migrated_db)
    result = CliRunner().invoke(app, ["sync", "--prices", "bundled", "--region", "us-east-1", "--cur", "billing/cur"])
    assert result.exit_code == EXIT_USAGE and "--cur: expected s3://bucket/prefix" in result.output
    result = CliRunner().invoke(app, ["sync", "--prices", "bundled", "--region", "us-east-1", "--cur",
                                      "s3://no-such-bucket/cur"])
    assert result.exit_code == 1 and "NoSuchBucket" in result.output and "Traceback" not in result.output
    iid, start, now = a_run(aws, monkeypatch)
    put(aws, "cur/a.parquet", parquet([line(iid, start, "BoxUsage:t4g.large", 0.0672)]))
    result = CliRunner().invoke(app, ["sync", "--prices", "bundled", "--region", "us-east-1", "--cur",
                                      "s3://billing/cur/"])
    assert result.exit_code == 0, result.output
    assert "billed (CUR): 1 instance line-item spans from 1 files" in result.output
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT billed_usd FROM dashgen.billed_costs").fetchone() == (Decimal("0.0672"),)


@pytest.mark.parametrize("argv", [["--help"], ["sync", "--help"], ["validate"]])
def test_light_commands_never_import_pyarrow(argv, tmp_path) -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom dashgen.cli import main\n"
            f"sys.argv = ['dashgen', *{argv!r}]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('pyarrow', 'boto3', 'psycopg') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr
