"""EBS storage cost (issue 4, optional part): volumes from describe_volumes (moto), their price per GB-month from
the Price List API (botocore Stubber fed with the real io1 item of the aws-cli example), and the cost-per-instance
panel's EBS columns, run from the built dashboard's SQL and checked against a cost computed here."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import boto3
import psycopg
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from dashgen.config import Config
from dashgen.grafana.validate import all_panels
from dashgen.store.sqlvars import encode as hx
from dashgen.sync import sync
from dashgen.sync.pricing import parse_item
from dashgen.sync.volumes import StorageKey, fetch_storage_price
from grafana_sql import ALL, expand
from test_cost_dashboard import ALL_VALUES, cost_dashboard, panel_sql, run

REGION = "ap-southeast-1"  # the region of the real io1 item
EXAMPLE = Path(__file__).parent / "data" / "pricelist" / "aws-cli_example_get-products_response.json"
IO1_ITEM = json.loads(EXAMPLE.read_text())["PriceList"][0]  # a JSON string, as GetProducts returns it
MONTH_S = 730 * 3600


def _filters(volume_type: str) -> list[dict[str, str]]:
    return [{"Type": "TERM_MATCH", "Field": f, "Value": v} for f, v in
            (("productFamily", "Storage"), ("regionCode", REGION), ("volumeApiName", volume_type))]


def test_the_real_io1_item_is_read_as_usd_per_gb_month() -> None:
    item = parse_item(IO1_ITEM)
    assert (item.usd_per_unit, item.units, item.effective) == (Decimal("0.138"), ("GB-Mo",), dt.date(2018, 8, 1))
    client = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_response("get_products", {"PriceList": [IO1_ITEM], "FormatVersion": "aws_v1"},
                          {"ServiceCode": "AmazonEC2", "Filters": _filters("io1"), "FormatVersion": "aws_v1"})
        stub.add_response("get_products", {"PriceList": [], "FormatVersion": "aws_v1"})
        io1 = fetch_storage_price(client, StorageKey(REGION, "io1"))
        gp2 = fetch_storage_price(client, StorageKey(REGION, "gp2"))
    assert (io1.usd_per_gb_month, io1.source, io1.price_date) == (Decimal("0.138"), "aws-price-list-api",
                                                                    dt.date(2018, 8, 1))
    assert gp2.usd_per_gb_month is None  # not listed: unknown, never $0


def _sync(dsn: str, session, responses: list[list[str]]):
    """One sync of REGION with the Price List API answering `responses` in order (a call more fails the test)."""
    pricing = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(pricing) as stub:
        for items in responses:
            stub.add_response("get_products", {"PriceList": items, "FormatVersion": "aws_v1"})
        result = sync(Config(regions=(REGION,)), dsn=dsn, prices="api", session=session, pricing=pricing)
        stub.assert_no_pending_responses()
    return result


def _panel(dsn: str, frm: dt.datetime, to: dt.datetime) -> tuple[dt.datetime, dict[str, dict]]:
    """The panel's two queries, joined on "Instance" as its joinByField transformation does (inner)."""
    dash = cost_dashboard()
    panel = next(p for p in all_panels(dash) if p.get("title") == "Cost per instance")
    assert panel["transformations"] == [{"id": "joinByField", "options": {"byField": "Instance", "mode": "inner"}}]
    frames = []
    for ref_id in ("A", "B"):
        now, rows = run(dsn, expand(panel_sql(dash, "Cost per instance", ref_id), time_from=frm, time_to=to,
                                    variables={"tag_key": hx("experiment"), "tag_value": ALL, "name": ALL,
                                               "account": ALL},
                                    all_values=ALL_VALUES))
        frames.append({r["Instance"]: r for r in rows})
    assert frames[0].keys() == frames[1].keys()  # the same instances: the inner join drops none
    return now, {k: {**frames[0][k], **frames[1][k]} for k in frames[0]}


def _created(dsn: str, volume_id: str) -> dt.datetime:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT created_at FROM dashgen.volumes WHERE volume_id = %s", (volume_id,)).fetchone()[0]


@mock_aws
def test_attached_volumes_cost_their_gb_months_and_an_unknown_price_shows_unknown(migrated_db, monkeypatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    session = boto3.Session(region_name=REGION)
    ec2 = session.client("ec2")
    a, b = (i["InstanceId"] for i in ec2.run_instances(ImageId="ami-1e749f67", MinCount=2, MaxCount=2,
                                                       InstanceType="t4g.large")["Instances"])
    root_a = next(v["VolumeId"] for v in ec2.describe_volumes()["Volumes"] if v["Attachments"][0]["InstanceId"] == a)
    ec2.detach_volume(VolumeId=root_a, InstanceId=a)
    ec2.delete_volume(VolumeId=root_a)
    data = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=100, VolumeType="io1", Iops=1000)["VolumeId"]
    ec2.attach_volume(VolumeId=data, InstanceId=a, Device="/dev/sda1")
    ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=500, VolumeType="io1", Iops=1000)  # attached to nothing

    # prices asked in order: the instance type (not listed here), then EBS gp2 (not listed) and io1 (the real item)
    result = _sync(migrated_db, session, [[], [], [IO1_ITEM]])
    assert result.volumes == 3
    assert f"{REGION} EBS gp2" in result.unknown_prices and f"{REGION} EBS io1" not in result.unknown_prices
    created = _created(migrated_db, data)
    frm, to = created - dt.timedelta(hours=1), created + dt.timedelta(days=2)
    now, rows = _panel(migrated_db, frm, to)
    assert (rows[a]["EBS GiB"], rows[b]["EBS GiB"]) == (100, 8)
    assert rows[a]["Type"] == "t4g.large" and rows[a]["USD/hour"] is None  # (query A's columns, joined)
    assert rows[a]["EBS storage in range"] == pytest.approx(100 * 0.138 * (now - created).total_seconds() / MONTH_S)
    assert rows[b]["EBS storage in range"] is None  # gp2 has no known price here: unknown, never $0

    ec2.detach_volume(VolumeId=data, InstanceId=a)
    ec2.delete_volume(VolumeId=data)
    _sync(migrated_db, session, [[], []])  # the instance type, gp2 (io1 is attached to nothing now)
    with psycopg.connect(migrated_db) as conn:
        gone = conn.execute("SELECT gone_at FROM dashgen.volumes WHERE volume_id = %s", (data,)).fetchone()[0]
    assert gone is not None
    later, rows = _panel(migrated_db, frm, to)
    assert rows[a]["EBS GiB"] == 0  # deleted: nothing attached now, but its storage until then is still billed
    assert rows[a]["EBS storage in range"] == pytest.approx(100 * 0.138 * (gone - created).total_seconds() / MONTH_S)


@mock_aws
def test_without_describe_volumes_permission_the_instances_still_land(migrated_db, monkeypatch) -> None:
    from botocore.exceptions import ClientError

    import dashgen.sync as sync_module

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    session = boto3.Session(region_name=REGION)
    session.client("ec2").run_instances(ImageId="ami-1e749f67", MinCount=1, MaxCount=1, InstanceType="t4g.large")

    def denied(client, region):
        raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "not allowed"}}, "DescribeVolumes")

    monkeypatch.setattr(sync_module, "describe_volumes", denied)
    result = sync(Config(regions=(REGION,)), dsn=migrated_db, prices="bundled", session=session)
    assert result.exit_code == 3 and result.unsynced == [f"EBS volumes of {REGION}"]  # partly synced
    assert result.instances == 1 and result.volumes == 0
    assert [w for w in result.warnings if "EBS volumes of ap-southeast-1 not read" in w and "not allowed" in w]
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT count(*) FROM dashgen.instances").fetchone()[0] == 1
