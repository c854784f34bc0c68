"""Cost that matches the bill (issue 12): surplus CPU credits and Spot prices in every cost figure.

AWS is moto (EC2 inventory, CloudWatch metrics) and botocore's Stubber with the real API shapes:
- DescribeInstanceCreditSpecifications: `InstanceCreditSpecifications[] = {InstanceId, CpuCredits}` (EC2 API
  Reference, "InstanceCreditSpecification"); moto always answers 'standard', so the unlimited answer is given by
  patching moto's response with that same shape.
- DescribeSpotPriceHistory: `SpotPriceHistory[] = {AvailabilityZone, InstanceType, ProductDescription, SpotPrice
  (a string), Timestamp}` (EC2 API Reference, "SpotPrice"); moto's own history has no prices, so a Stubber.
- GetProducts for CPU credits: a PriceList item shaped as tests/data/pricelist/ec2-instance-selector_GetProducts_
  m5_large.json (real), with the CPU Credits product's attributes: productFamily "CPU Credits", usagetype
  "CPUCredits:t4g", unit "vCPU-Hours" (usage type as AWS bills it, e.g. `APE1-CPUCredits:t3` in vCPU-Hours).
The expected figures are worked out by hand from AWS's rules, independently of dashgen's SQL.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path

import boto3
import psycopg
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from cost_scenario import LINUX_AMI, MotoClock, csv_price, moto_instance
from dashgen.config import Config, Experiment
from dashgen.store.sqlvars import encode as hx
from dashgen.sync import sync
from dashgen.sync.credits import CreditKey, fetch_credit_price
from dashgen.sync.spot import read_spot_prices
from grafana_sql import ALL, expand
from test_cost_dashboard import ALL_VALUES, cost_dashboard, panel_sql, run

CENT = Decimal("0.01")
M5_ITEM = json.loads((Path(__file__).parent / "data" / "pricelist" / "ec2-instance-selector_GetProducts_m5_large.json")
                     .read_text())


def credit_item(family: str, usd: str, os_name: str = "Linux", usage_prefix: str = "") -> str:
    """A "CPU Credits" PriceList entry (a JSON string, as GetProducts returns it) in the real item's layout."""
    item = copy.deepcopy(M5_ITEM)
    sku = f"CREDIT{family.upper()}{os_name.upper()}"
    item["product"] = {"productFamily": "CPU Credits", "sku": sku, "attributes": {
        "servicecode": "AmazonEC2", "location": "US East (N. Virginia)", "locationType": "AWS Region",
        "operatingSystem": os_name, "usagetype": f"{usage_prefix}CPUCredits:{family}", "operation": "",
        "regionCode": "us-east-1", "servicename": "Amazon Elastic Compute Cloud"}}
    offer = next(iter(item["terms"]["OnDemand"].values()))
    dim = next(iter(offer["priceDimensions"].values()))
    dim.update(unit="vCPU-Hours", pricePerUnit={"USD": usd}, description=f"${usd} per vCPU-Hour")
    item["terms"] = {"OnDemand": {f"{sku}.JRTCKXETXF": {**offer, "sku": sku, "priceDimensions": {
        f"{sku}.JRTCKXETXF.6YS6EN2CT7": {**dim, "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7"}}}}}
    return json.dumps(item)


def q(value: float | Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(CENT)


@pytest.fixture
def aws(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


def unlimited(monkeypatch, ids: set[str]) -> None:
    """moto answers DescribeInstanceCreditSpecifications with 'standard' for all: answer 'unlimited' for `ids`."""
    from moto.core.responses import ActionResult
    from moto.ec2.responses.instances import InstanceResponse

    def describe(self):  # the response shape of moto's own handler, with the real mode
        ids_asked = self._get_param("InstanceIds", [])
        found = self.ec2_backend.describe_instance_credit_specifications(ids_asked)
        return ActionResult({"InstanceCreditSpecifications": [
            {"InstanceId": i.id, "CpuCredits": "unlimited" if i.id in ids else "standard"} for i in found]})

    monkeypatch.setattr(InstanceResponse, "describe_instance_credit_specifications", describe)


def put_credits(session, instance_id: str, hours: list[dt.datetime], credits_each: float) -> None:
    cw = session.client("cloudwatch", region_name="us-east-1")
    for hour in hours:
        cw.put_metric_data(Namespace="AWS/EC2", MetricData=[{
            "MetricName": "CPUSurplusCreditsCharged", "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
            "Timestamp": hour + dt.timedelta(minutes=30), "Value": credits_each, "Unit": "Count"}])


def cost_rows(dsn: str, frm: dt.datetime, to: dt.datetime, title: str = "Cost per instance",
              tag_key: str = "experiment") -> dict[str, dict]:
    sql = expand(panel_sql(cost_dashboard(), title), time_from=frm, time_to=to,
                 variables={"tag_key": hx(tag_key), "tag_value": ALL, "name": ALL, "account": ALL},
                 all_values=ALL_VALUES)
    _, rows = run(dsn, sql)
    key = "Instance" if title == "Cost per instance" else "Tag value"
    return {r[key]: r for r in rows}


def ten_hours_at_full_cpu(session, monkeypatch, *, mode: str | None, credits: float = 840.0):
    """A t4g.large run 10 h (stopped now) from an empty credit balance; CloudWatch: `credits` charged over 10 h."""
    end = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    start = end - dt.timedelta(hours=10)
    clock = MotoClock(monkeypatch, start)
    ec2 = session.client("ec2")
    iid = ec2.run_instances(ImageId=LINUX_AMI, MinCount=1, MaxCount=1, InstanceType="t4g.large",
                            TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                {"Key": "Name", "Value": "burst"}, {"Key": "experiment", "Value": "sizing"}]}],
                            )["Instances"][0]["InstanceId"]
    clock.now = end
    ec2.stop_instances(InstanceIds=[iid])
    if mode == "unlimited":
        unlimited(monkeypatch, {iid})
    put_credits(session, iid, [start + dt.timedelta(hours=h) for h in range(10)], credits / 10)
    return iid, start, end


def test_a_t4g_large_at_100_percent_for_10_hours_costs_on_demand_plus_14_vcpu_hours_of_credits(
        migrated_db, aws, monkeypatch) -> None:
    """t4g.large: 2 vCPUs, earns 36 credits an hour (baseline 30 %, data/t_instance_cpu_credits.csv); at 100 % it
    spends 120 an hour: 10 h from an empty balance -> 1,200 - 360 = 840 surplus credits charged = 14 vCPU-hours.
    Cost = 10 h x $0.0672 (On-Demand, bundled us-east-1) + 14 x $0.04 (T4g Linux credit rate) = $1.232."""
    iid, start, end = ten_hours_at_full_cpu(aws, monkeypatch, mode="unlimited")
    result = sync(Config(), dsn=migrated_db, prices="bundled", session=aws, now=end + dt.timedelta(minutes=5))
    assert result.ok and not [w for w in result.warnings if "credit" in w]
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT credit_mode FROM dashgen.instances").fetchone() == ("unlimited",)
        assert conn.execute("SELECT sum(cpu_surplus_credits_charged) FROM dashgen.instance_utilisation_hourly"
                            ).fetchone() == (840.0,)
        assert conn.execute("SELECT usd_per_vcpu_hour, source FROM dashgen.credit_prices").fetchone() == (
            Decimal("0.04"), "bundled-fallback")
    on_demand = 10 * csv_price("t4g.large")
    expected = (on_demand + 14 * Decimal("0.04")).quantize(CENT)
    assert expected == Decimal("1.23")
    row = cost_rows(migrated_db, start - dt.timedelta(hours=1), end + dt.timedelta(hours=1))[iid]
    assert q(row["Cost in range"]) == expected and q(row["Cost to date"]) == expected
    assert row["Credits in range"] == pytest.approx(0.56, abs=1e-9)
    assert row["Credit mode"] == "unlimited" and row["Purchase"] == "on-demand"
    # half the run: 5 of the 10 charged hours
    half = cost_rows(migrated_db, start, start + dt.timedelta(hours=5))[iid]
    assert q(half["Cost in range"]) == ((5 * csv_price("t4g.large")) + 7 * Decimal("0.04")).quantize(CENT)
    tag = cost_rows(migrated_db, start, end, "Cost by tag value")["sizing"]
    assert q(tag["Cost in range"]) == expected and tag["Credits in range"] == pytest.approx(0.56, abs=1e-9)
    # the cumulative curve ends at the same figure
    sql = expand(panel_sql(cost_dashboard(), "Cumulative cost in the time range"), time_from=start, time_to=end,
                 variables={"tag_key": hx("experiment"), "tag_value": ALL, "name": ALL, "account": ALL},
                 all_values=ALL_VALUES,
                 interval_ms=300_000)
    _, points = run(migrated_db, sql)
    last = max((p for p in points if p["metric"] == "(all selected)"), key=lambda p: p["time"])
    assert last["time"] == end and q(last["value"]) == expected


def test_a_standard_mode_instance_never_pays_credits_and_an_unknown_mode_says_so(migrated_db, aws, monkeypatch) -> None:
    iid, start, end = ten_hours_at_full_cpu(aws, monkeypatch, mode=None)  # moto: 'standard'
    sync(Config(), dsn=migrated_db, prices="bundled", session=aws, now=end + dt.timedelta(minutes=5))
    row = cost_rows(migrated_db, start, end)[iid]
    assert row["Credit mode"] == "standard" and row["Credits in range"] == 0
    assert q(row["Cost in range"]) == (10 * csv_price("t4g.large")).quantize(CENT)
    # the credit specifications cannot be read: the instance stays as stored; one never read is 'unknown'
    with psycopg.connect(migrated_db) as conn:
        conn.execute("UPDATE dashgen.instances SET credit_mode = NULL")
    def fail(*args, **kwargs):
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "You are not authorized"}},
                          "DescribeInstanceCreditSpecifications")

    monkeypatch.setattr("dashgen.sync.read_credit_modes", fail)
    result = sync(Config(), dsn=migrated_db, prices="bundled", session=aws, now=end + dt.timedelta(minutes=10))
    assert any(w.startswith("WARNING: credit specifications (standard/unlimited) of us-east-1 not read")
               and "UnauthorizedOperation" in w and "\n" not in w for w in result.warnings), result.warnings
    row = cost_rows(migrated_db, start, end)[iid]
    assert row["Credit mode"] == "unknown"
    # CloudWatch says 840 credits were charged: AWS charges only unlimited instances, so they count
    assert q(row["Cost in range"]) == (10 * csv_price("t4g.large") + 14 * Decimal("0.04")).quantize(CENT)


def test_credit_price_from_the_price_list_api_matches_the_family_and_region_prefix() -> None:
    client = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    key = CreditKey("eu-west-1", "t3", "Linux")
    expected = {"ServiceCode": "AmazonEC2", "FormatVersion": "aws_v1", "Filters": [
        {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
        {"Type": "TERM_MATCH", "Field": "productFamily", "Value": "CPU Credits"},
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "eu-west-1"}]}
    with Stubber(client) as stub:
        stub.add_response("get_products", {"FormatVersion": "aws_v1", "NextToken": "p2", "PriceList": [
            credit_item("t3a", "0.05", usage_prefix="EUW1-")]}, expected)
        stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [
            credit_item("t3", "0.05", usage_prefix="EUW1-"), credit_item("t4g", "0.04", usage_prefix="EUW1-")]},
            {**expected, "NextToken": "p2"})
        price = fetch_credit_price(client, key)
        stub.assert_no_pending_responses()
    assert (price.usd_per_vcpu_hour, price.source) == (Decimal("0.05"), "aws-price-list-api")
    with Stubber(client) as stub:  # nothing for that family: unknown, never 0
        stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [credit_item("t2", "0.05")]},
                          ANY and {**expected, "Filters": [
                              {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
                              {"Type": "TERM_MATCH", "Field": "productFamily", "Value": "CPU Credits"},
                              {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"}]})
        assert fetch_credit_price(client, CreditKey("us-east-1", "t4g", "Linux")).usd_per_vcpu_hour is None


def test_credit_price_comes_from_the_api_in_a_sync(migrated_db, aws, monkeypatch) -> None:
    iid, start, end = ten_hours_at_full_cpu(aws, monkeypatch, mode="unlimited")
    pricing = boto3.client("pricing", region_name="us-east-1")
    with Stubber(pricing) as stub:
        stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [json.dumps(M5_ITEM)]})  # t4g.large
        stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": []})  # EBS gp2: unknown
        stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [credit_item("t4g", "0.05")]})
        stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": []})  # rightsizing candidates...
        for _ in range(40):
            stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": []})
        sync(Config(), dsn=migrated_db, prices="api", session=aws, now=end + dt.timedelta(minutes=5), pricing=pricing)
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT usd_per_vcpu_hour, source FROM dashgen.credit_prices").fetchone() == (
            Decimal("0.05"), "aws-price-list-api")
    row = cost_rows(migrated_db, start, end)[iid]
    assert row["Credits in range"] == pytest.approx(14 * 0.05, abs=1e-9)


# ------------------------------------------------------------------ Spot

def spot_history(az: str, prices: list[tuple[dt.datetime, str]], itype: str = "c6g.large") -> dict:
    return {"SpotPriceHistory": [{"AvailabilityZone": az, "InstanceType": itype, "ProductDescription": "Linux/UNIX",
                                  "SpotPrice": usd, "Timestamp": at} for at, usd in reversed(prices)]}


def test_a_spot_instance_whose_price_changed_mid_run_costs_the_sum_of_its_two_pieces(migrated_db, aws,
                                                                                     monkeypatch) -> None:
    """A c6g.large Spot run of 3 h: 1 h at $0.0250, then (price change) 2 h at $0.0310 -> $0.0870;
    On-Demand it would be 3 x $0.068 = $0.204. The history also returns the price in effect at the start
    (changed 5 h before it)."""
    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    start = end - dt.timedelta(hours=3)
    change = start + dt.timedelta(hours=1)
    clock = MotoClock(monkeypatch, start)
    ec2 = aws.client("ec2")
    iid = ec2.run_instances(ImageId=LINUX_AMI, MinCount=1, MaxCount=1, InstanceType="c6g.large",
                            InstanceMarketOptions={"MarketType": "spot"},
                            TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                {"Key": "experiment", "Value": "spot"}]}])["Instances"][0]["InstanceId"]
    inst = moto_instance(iid)
    assert inst.lifecycle == "spot"
    az = next(i for i in _described(aws) if i.instance_id == iid).availability_zone
    assert az and az.startswith("us-east-1")
    clock.now = end
    ec2.stop_instances(InstanceIds=[iid])  # an interruption: AWS stops (or terminates) it; the run closes
    ec2_stub = aws.client("ec2")
    history = spot_history(az, [(start - dt.timedelta(hours=5), "0.025000"), (change, "0.031000")])
    with Stubber(ec2_stub) as stub:
        stub.add_response("describe_spot_price_history", history, {
            "AvailabilityZone": az, "InstanceTypes": ["c6g.large"], "ProductDescriptions": ["Linux/UNIX"],
            "StartTime": start, "EndTime": end + dt.timedelta(minutes=5)})
        spot_prices = read_spot_prices(ec2_stub, [i for i in _described(aws) if i.instance_id == iid],
                                       end + dt.timedelta(minutes=5))
    assert [(p.at, p.usd_per_hour) for p in spot_prices] == [(start - dt.timedelta(hours=5), Decimal("0.025")),
                                                            (change, Decimal("0.031"))]
    monkeypatch.setattr("dashgen.sync.read_spot_prices", lambda client, instances, now: spot_prices)
    sync(Config(), dsn=migrated_db, prices="bundled", session=aws, now=end + dt.timedelta(minutes=5))
    row = cost_rows(migrated_db, start - dt.timedelta(hours=1), end + dt.timedelta(hours=1))[iid]
    assert row["Purchase"] == "spot"
    assert row["Spot USD/hour"] == Decimal("0.031") and row["USD/hour"] == csv_price("c6g.large")
    assert row["Cost in range"] == pytest.approx(1 * 0.025 + 2 * 0.031, abs=1e-9)
    assert q(row["Cost to date"]) == Decimal("0.09")
    # a range that holds only the second piece's first hour
    part = cost_rows(migrated_db, change, change + dt.timedelta(hours=1))[iid]
    assert part["Cost in range"] == pytest.approx(0.031, abs=1e-9)
    tag = cost_rows(migrated_db, start, end, "Cost by tag value")["spot"]
    assert tag["Cost in range"] == pytest.approx(0.087, abs=1e-9)
    sql = expand(panel_sql(cost_dashboard(), "Cumulative cost in the time range"), time_from=start, time_to=end,
                 variables={"tag_key": hx("experiment"), "tag_value": ALL, "name": ALL, "account": ALL},
                 all_values=ALL_VALUES)
    _, points = run(migrated_db, sql)
    last = max((p for p in points if p["metric"] == "spot"), key=lambda p: p["time"])
    assert last["value"] == pytest.approx(0.087, abs=1e-9)


def test_a_spot_run_before_the_first_known_price_is_unknown_not_on_demand(migrated_db, aws, monkeypatch) -> None:
    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    start = end - dt.timedelta(hours=2)
    MotoClock(monkeypatch, start)
    ec2 = aws.client("ec2")
    iid = ec2.run_instances(ImageId=LINUX_AMI, MinCount=1, MaxCount=1, InstanceType="c6g.large",
                            InstanceMarketOptions={"MarketType": "spot"})["Instances"][0]["InstanceId"]
    monkeypatch.setattr("dashgen.sync.read_spot_prices", lambda client, instances, now: [])
    sync(Config(), dsn=migrated_db, prices="bundled", session=aws, now=end)
    row = cost_rows(migrated_db, start, end)[iid]
    assert row["Purchase"] == "spot" and row["Cost in range"] is None and row["Spot USD/hour"] is None


def _described(session) -> list:
    from dashgen.sync.inventory import describe_region

    return describe_region(session.client("ec2"), "us-east-1")


def test_experiment_spend_and_burn_rate_count_credits(migrated_db, aws, monkeypatch) -> None:
    iid, start, end = ten_hours_at_full_cpu(aws, monkeypatch, mode="unlimited")
    config = Config(experiments=[Experiment(name="sizing", tag_key="experiment", tag_value="sizing",
                                            budget_usd=Decimal("100"), deadline=end + dt.timedelta(days=1))])
    sync(config, dsn=migrated_db, prices="bundled", session=aws, now=end + dt.timedelta(minutes=5))
    with psycopg.connect(migrated_db) as conn:
        spent, = conn.execute("SELECT spent_usd FROM dashgen.experiment_status WHERE name = 'sizing'").fetchone()
    assert q(spent) == Decimal("1.23")


# ------------------------------------------------------------------ the study's experiment, credits included

# The same CPU-bound job (16 vCPU-hours at 100 %) on each size, in unlimited mode from an empty credit balance.
# Credits earned per hour (data/t_instance_cpu_credits.csv): large 36, xlarge 96, 2xlarge 192 (1 credit = 1
# vCPU-minute); surplus = vCPUs x 60 x hours - earned x hours.
SIZES = {  # type: (vCPUs, hours, surplus credits charged)
    "t4g.large": (2, 8, (2 * 60 - 36) * 8),  # 672 credits = 11.2 vCPU-h
    "t4g.xlarge": (4, 4, (4 * 60 - 96) * 4),  # 576 = 9.6 vCPU-h
    "t4g.2xlarge": (8, 2, (8 * 60 - 192) * 2),  # 576 = 9.6 vCPU-h
}
CREDIT_RATE = Decimal("0.04")  # T4g Linux, USD per vCPU-hour


def comparison_table(rows: dict[str, dict]) -> str:
    """The Markdown table README.md and docs/cost.md show, every figure from `dashgen rightsize --experiment`'s rows
    (sql/experiment_comparison.sql): On-Demand = running hours x $/hour, credits = the cost beyond it."""
    lines = ["| type | vCPUs | On-Demand $/hour | hours | On-Demand | surplus credits | total |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for itype in SIZES:
        r = rows[itype]
        od = Decimal(str(r["running_hours"])) * Decimal(str(r["usd_per_hour"]))
        total = Decimal(str(r["cost_usd"]))
        lines.append(f"| {itype} | {r['vcpu']} | ${r['usd_per_hour']:.4f} | {r['running_hours']:g} | "
                     f"${od.quantize(CENT)} | ${(total - od).quantize(CENT)} | **${total.quantize(CENT)}** |")
    return "\n".join(lines)


GENERATED = "<!-- generated by tests/test_cost_truth.py (DASHGEN_UPDATE_DOCS=1 pytest -k t4g_experiment) -->"
END = "<!-- end of generated -->"


def generated_block(path: Path, text: str) -> None:
    """`path` holds `text` between the GENERATED and END markers: written there with DASHGEN_UPDATE_DOCS=1,
    else checked (a real run of the product's SQL makes the figures, never a hand)."""
    doc = path.read_text()
    head, _, rest = doc.partition(GENERATED)
    _, _, tail = rest.partition(END)
    assert rest and END in rest, f"{path.name}: no generated block"
    want = f"{head}{GENERATED}\n{text}\n{END}{tail}"
    if os.environ.get("DASHGEN_UPDATE_DOCS") == "1":
        path.write_text(want)
        return
    assert doc == want, (f"{path.name}: the generated table differs (run DASHGEN_UPDATE_DOCS=1 pytest -k "
                         f"t4g_experiment):\n{text}")


def test_the_t4g_experiment_comparison_counts_credits_and_matches_the_docs(migrated_db, aws, monkeypatch) -> None:
    from dashgen.rightsizing.queries import compare_experiment
    from dashgen.store.db import connect

    end = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    ec2 = aws.client("ec2")
    ids: dict[str, str] = {}
    clock = MotoClock(monkeypatch, end)
    for itype, (_, hours, credits) in SIZES.items():
        start = end - dt.timedelta(hours=hours)
        clock.now = start
        ids[itype] = ec2.run_instances(ImageId=LINUX_AMI, MinCount=1, MaxCount=1, InstanceType=itype,
                                       TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                           {"Key": "experiment", "Value": "t4g-sizing"}]}],
                                       )["Instances"][0]["InstanceId"]
        put_credits(aws, ids[itype], [start + dt.timedelta(hours=h) for h in range(hours)], credits / hours)
    clock.now = end
    ec2.stop_instances(InstanceIds=list(ids.values()))
    unlimited(monkeypatch, set(ids.values()))
    config = Config(experiments=[Experiment(name="t4g-sizing", tag_key="experiment", tag_value="t4g-sizing",
                                            budget_usd=5.0, deadline=end + dt.timedelta(days=1))])
    sync(config, dsn=migrated_db, prices="bundled", session=aws, now=end + dt.timedelta(minutes=5))
    with connect(migrated_db) as conn:
        rows = {r["instance_type"]: r for r in compare_experiment(conn, "t4g-sizing")}
    for itype, (_, hours, credits) in SIZES.items():
        expected = hours * csv_price(itype) + Decimal(credits) / 60 * CREDIT_RATE
        assert q(rows[itype]["cost_usd"]) == expected.quantize(CENT), itype
    # On-Demand alone the three cost the same ($0.54); with credits the 2-vCPU size is the dearest
    assert q(rows["t4g.large"]["cost_usd"]) == Decimal("0.99")
    assert q(rows["t4g.xlarge"]["cost_usd"]) == q(rows["t4g.2xlarge"]["cost_usd"]) == Decimal("0.92")
    repo = Path(__file__).resolve().parents[1]
    for path in (repo / "README.md", repo / "docs" / "cost.md"):
        generated_block(path, comparison_table(rows))
    with psycopg.connect(migrated_db) as conn:  # the experiment's spend counts the credits too
        spent, = conn.execute("SELECT spent_usd FROM dashgen.experiment_status").fetchone()
    assert q(spent) == Decimal("2.83")  # 0.9856 + 0.9216 + 0.9216


def test_burn_rate_and_projection_use_the_spot_price_and_the_last_hour_of_credits(migrated_db, aws,
                                                                                   monkeypatch) -> None:
    """Running now: a Spot c6g.large (Spot price $0.03 in effect, On-Demand $0.068) and an unlimited t4g.large whose
    last stored hour charged 84 credits (1.4 vCPU-h x $0.04 = $0.056/h): burn = 0.03 + 0.0672 + 0.056 per hour."""
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    start = now - dt.timedelta(hours=2)
    MotoClock(monkeypatch, start)
    ec2 = aws.client("ec2")
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "experiment", "Value": "burn"}]}]
    spot = ec2.run_instances(ImageId=LINUX_AMI, MinCount=1, MaxCount=1, InstanceType="c6g.large",
                             TagSpecifications=tags, InstanceMarketOptions={"MarketType": "spot"},
                             )["Instances"][0]["InstanceId"]
    burst = ec2.run_instances(ImageId=LINUX_AMI, MinCount=1, MaxCount=1, InstanceType="t4g.large",
                              TagSpecifications=tags)["Instances"][0]["InstanceId"]
    unlimited(monkeypatch, {burst})
    hour = now.replace(minute=0) - dt.timedelta(hours=1)
    put_credits(aws, burst, [hour], 84.0)
    az = next(i for i in _described(aws) if i.instance_id == spot).availability_zone
    from dashgen.sync.spot import SpotPrice

    prices = [SpotPrice(az, "c6g.large", "Linux/UNIX", start - dt.timedelta(days=1), Decimal("0.03"), "us-east-1")]
    monkeypatch.setattr("dashgen.sync.read_spot_prices", lambda client, instances, at: prices)
    deadline = now + dt.timedelta(hours=10)
    config = Config(experiments=[Experiment(name="burn", tag_key="experiment", tag_value="burn", budget_usd=10.0,
                                            deadline=deadline)])
    sync(config, dsn=migrated_db, prices="bundled", session=aws, now=now)
    with psycopg.connect(migrated_db) as conn, conn.transaction():
        burn, spent, projected, at = conn.execute(
            "SELECT burn_usd_per_hour, spent_usd, projected_at_deadline_usd, now() FROM dashgen.experiment_status"
        ).fetchone()
    assert float(burn) == pytest.approx(float(Decimal("0.03") + csv_price("t4g.large") + Decimal("0.056")), abs=1e-9)
    on_demand_so_far = float(csv_price("t4g.large")) * (at - start).total_seconds() / 3600
    spot_so_far = 0.03 * (at - start).total_seconds() / 3600
    assert float(spent) == pytest.approx(on_demand_so_far + spot_so_far + 0.056, abs=1e-5)
    hours_left = (deadline - at).total_seconds() / 3600
    assert float(projected) == pytest.approx(float(spent) + float(burn) * hours_left, abs=1e-5)


def test_an_unreadable_spot_price_is_one_line_naming_the_entry() -> None:
    from dashgen.errors import AwsError
    from dashgen.sync.inventory import Instance

    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    inst = Instance("i-1", "us-east-1", "c6g.large", "running", now - dt.timedelta(hours=1), platform="Linux/UNIX",
                    lifecycle="spot", availability_zone="us-east-1a")
    with Stubber(client) as stub:
        stub.add_response("describe_spot_price_history", {"SpotPriceHistory": [
            {"AvailabilityZone": "us-east-1a", "InstanceType": "c6g.large", "ProductDescription": "Linux/UNIX",
             "SpotPrice": "n/a", "Timestamp": now}]})
        with pytest.raises(AwsError) as err:
            read_spot_prices(client, [inst], now)
    assert str(err.value).startswith("ec2 DescribeSpotPriceHistory (us-east-1): unreadable entry")
    assert "'SpotPrice': 'n/a'" in str(err.value) and "\n" not in str(err.value)
