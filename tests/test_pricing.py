"""Prices: the Price List API through botocore's Stubber with real PriceList items, and the bundled snapshot."""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.stub import Stubber

from dashgen.sync.pricing import (
    API_SOURCE,
    BUNDLED_SOURCE,
    PriceKey,
    PriceListError,
    bundled_price,
    parse_item,
    resolve_prices,
)

DATA = Path(__file__).resolve().parent / "data" / "pricelist"
M5_ITEM = json.loads((DATA / "ec2-instance-selector_GetProducts_m5_large.json").read_text())
CLI_RESPONSE = json.loads((DATA / "aws-cli_example_get-products_response.json").read_text())
M5 = PriceKey("us-east-1", "m5.large", "Linux")


def pricing_client():
    return boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def expected_params(key: PriceKey, token: str | None = None) -> dict:
    filters = {"capacitystatus": "Used", "instanceType": key.instance_type, "marketoption": "OnDemand",
               "operatingSystem": key.operating_system, "preInstalledSw": "NA", "regionCode": key.region,
               "tenancy": "Shared"}
    params = {"ServiceCode": "AmazonEC2", "FormatVersion": "aws_v1",
              "Filters": [{"Type": "TERM_MATCH", "Field": f, "Value": v} for f, v in sorted(filters.items())]}
    if token:
        params["NextToken"] = token
    return params


def test_a_real_price_list_item_parses_to_its_on_demand_hourly_price() -> None:
    item = parse_item(M5_ITEM)
    assert (item.sku, item.instance_type, item.usd_per_unit) == ("6C86BEPQVG73ZGGR", "m5.large", Decimal("0.096"))
    assert (item.effective, item.vcpu, item.memory_mib) == (dt.date(2021, 2, 1), 2, 8192)
    storage = parse_item(CLI_RESPONSE["PriceList"][0], 0)  # the JSON-string form of the aws-cli example
    assert (storage.sku, storage.usd_per_unit) == ("3MKHN58N7RDDVGKJ", Decimal("0.138"))


def test_prices_come_from_get_products_with_the_documented_filters_across_pages() -> None:
    client = pricing_client()
    other = PriceKey("us-east-1", "t4g.nano", "Linux")
    with Stubber(client) as stub:
        stub.add_response("get_products", {"PriceList": [], "NextToken": "page2", "FormatVersion": "aws_v1"},
                          expected_params(M5))
        stub.add_response("get_products", {"PriceList": [json.dumps(M5_ITEM)], "FormatVersion": "aws_v1"},
                          expected_params(M5, "page2"))
        stub.add_response("get_products", {"PriceList": [], "FormatVersion": "aws_v1"}, expected_params(other))
        prices, warnings = resolve_prices({other, M5}, "api", client=client)
        stub.assert_no_pending_responses()
    assert warnings == []
    m5, nano = prices
    assert (m5.key, m5.usd_per_hour, m5.source, m5.price_date) == (M5, Decimal("0.096"), API_SOURCE,
                                                                   dt.date(2021, 2, 1))
    assert (nano.usd_per_hour, nano.source, nano.vcpu) == (None, API_SOURCE, 2)  # not listed: unknown, not $0


@pytest.mark.parametrize("breakage, message", [
    (lambda i: i["terms"]["OnDemand"]["6C86BEPQVG73ZGGR.JRTCKXETXF"]["priceDimensions"][
        "6C86BEPQVG73ZGGR.JRTCKXETXF.6YS6EN2CT7"]["pricePerUnit"].update(USD="n/a"),
     "Price List item sku 6C86BEPQVG73ZGGR: pricePerUnit.USD is 'n/a', not a number"),
    (lambda i: i["terms"].pop("OnDemand"), "Price List item sku 6C86BEPQVG73ZGGR: no terms.OnDemand offer"),
    (lambda i: i.pop("product"), "Price List item #0: not a PriceList product (no product.sku)"),
])
def test_a_malformed_item_is_one_line_naming_the_sku(breakage, message) -> None:
    item = copy.deepcopy(M5_ITEM)
    breakage(item)
    client = pricing_client()
    with Stubber(client) as stub:
        stub.add_response("get_products", {"PriceList": [json.dumps(item)]}, expected_params(M5))
        with pytest.raises(PriceListError) as err:
            resolve_prices({M5}, "api", client=client)
    assert str(err.value) == message


def test_an_unreachable_price_list_api_falls_back_loudly_to_the_bundled_snapshot() -> None:
    client = boto3.client("pricing", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                          aws_access_key_id="x", aws_secret_access_key="x",
                          config=BotoConfig(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=1))
    eu = PriceKey("eu-west-1", "m5.large", "Linux")
    prices, warnings = resolve_prices({M5, eu}, "api", client=client)
    assert len(warnings) == 1
    assert warnings[0].startswith("WARNING: the AWS Price List API cannot be reached (Could not connect")
    assert "bundled us-east-1 snapshot of 2026-07-20" in warnings[0]
    assert [(p.key.region, p.usd_per_hour, p.source, p.price_date) for p in prices] == [
        ("eu-west-1", None, BUNDLED_SOURCE, dt.date(2026, 7, 20)),  # another region: unknown, never a guess
        ("us-east-1", Decimal("0.096"), BUNDLED_SOURCE, dt.date(2026, 7, 20)),
    ]


def test_the_bundled_snapshot_knows_us_east_1_linux_shared_only() -> None:
    t4g = bundled_price(PriceKey("us-east-1", "t4g.large", "Linux"))
    assert (t4g.usd_per_hour, t4g.vcpu, t4g.memory_mib) == (Decimal("0.0672"), 2, 8192)
    assert bundled_price(PriceKey("us-east-1", "t4g.large", "Windows")).usd_per_hour is None
    assert bundled_price(PriceKey("us-east-1", "t4g.large", "Linux", "Dedicated")).usd_per_hour is None
    assert bundled_price(PriceKey("us-east-1", "no.such", "Linux")).usd_per_hour is None
    prices, warnings = resolve_prices({M5}, "bundled")
    assert warnings == [] and prices[0].source == BUNDLED_SOURCE
