"""Prices: On-Demand USD/hour from the AWS Price List API (only the types in use), or the bundled snapshot.

`--prices bundled` uses the real us-east-1 Linux snapshot shipped as package data, dated 2026-07-20. When the
Price List API fails (throttled past the retries, unreachable, an unreadable reply, out of time), the keys it did
not answer come back as `fallback` prices: sync keeps the last known API price of such a key (marked stale) and
stores the snapshot's only where no API price is known. A price nobody knows (another region under the
snapshot, a product the API does not list) is `None`: unknown, never $0.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from dashgen.errors import AwsError

if TYPE_CHECKING:
    from dashgen.sync.aws import Budget

API_SOURCE = "aws-price-list-api"
BUNDLED_SOURCE = "bundled-snapshot"
BUNDLED_DATE = dt.date(2026, 7, 20)
BUNDLED_REGION = "us-east-1"
PRICING_ENDPOINT_REGION = "us-east-1"  # the Price List API is served from us-east-1 (and two others)
SHARED = "Shared"
PRICE_MAX_AGE = dt.timedelta(hours=24)  # an API price older than this is read again; an unchanged one is rewritten
                                        # (its fetched_at moved) at most this often
BASE_FILTERS = {"tenancy": SHARED, "preInstalledSw": "NA", "capacitystatus": "Used", "marketoption": "OnDemand"}


class PriceListError(AwsError):
    """A Price List item dashgen cannot read (names the item's sku)."""


@dataclass(frozen=True, order=True)
class PriceKey:
    region: str
    instance_type: str
    operating_system: str
    tenancy: str = SHARED


@dataclass(frozen=True)
class Price:
    key: PriceKey
    usd_per_hour: Decimal | None  # None = unknown
    vcpu: int | None
    memory_mib: int | None
    source: str
    price_date: dt.date | None
    fallback: bool = False  # the API failed for this key: store it only where no API price is known


@dataclass(frozen=True)
class PriceItem:
    """The part of one PriceList product dashgen uses."""

    sku: str
    instance_type: str | None
    usd_per_unit: Decimal  # USD per one of `units`: an hour of an instance, a vCPU-hour of credits, a GB-month of EBS
    effective: dt.date | None
    vcpu: int | None
    memory_mib: int | None
    units: tuple[str, ...] = ()  # the price dimensions' units, sorted and distinct ("Hrs"; "GB-Mo" for EBS)


def _int(text: Any) -> int | None:
    try:
        return int(str(text).replace(",", ""))
    except ValueError:
        return None


def _memory_mib(text: Any) -> int | None:
    parts = str(text or "").split()
    if len(parts) == 2 and parts[1] == "GiB":
        try:
            return int(Decimal(parts[0].replace(",", "")) * 1024)
        except InvalidOperation:
            return None
    return None


def parse_item(raw: str | dict[str, Any], index: int = 0) -> PriceItem:
    """One `GetProducts` PriceList entry (a JSON string or its decoded dict) -> its On-Demand hourly price.

    The terms are read generically: every OnDemand offer, every price dimension, `pricePerUnit.USD`.
    """
    where = f"Price List item #{index}"
    try:
        item = json.loads(raw) if isinstance(raw, str) else raw
        product = item["product"]
        sku = product.get("sku") or "?"
    except (ValueError, TypeError, KeyError, AttributeError):
        raise PriceListError(f"{where}: not a PriceList product (no product.sku)") from None
    where = f"Price List item sku {sku}"
    attrs = product.get("attributes") or {}
    offers = (item.get("terms") or {}).get("OnDemand")
    if not isinstance(offers, dict) or not offers:
        raise PriceListError(f"{where}: no terms.OnDemand offer")
    prices: list[Decimal] = []
    units: set[str] = set()
    effective: dt.date | None = None
    for offer in offers.values():
        dims = offer.get("priceDimensions") if isinstance(offer, dict) else None
        if not isinstance(dims, dict) or not dims:
            raise PriceListError(f"{where}: an OnDemand offer without priceDimensions")
        for dim in dims.values():
            usd = (dim.get("pricePerUnit") or {}).get("USD") if isinstance(dim, dict) else None
            try:
                value = Decimal(str(usd))
            except InvalidOperation:
                raise PriceListError(f"{where}: pricePerUnit.USD is {usd!r}, not a number") from None
            if not value.is_finite() or value < 0:
                raise PriceListError(f"{where}: pricePerUnit.USD is {usd!r}, not a price")
            prices.append(value)
            units.add(str(dim.get("unit") or ""))
        date_text = str(offer.get("effectiveDate") or "")[:10]
        try:
            effective = dt.date.fromisoformat(date_text) if date_text else effective
        except ValueError:
            raise PriceListError(f"{where}: effectiveDate {offer.get('effectiveDate')!r} is not a date") from None
    return PriceItem(
        sku=sku,
        instance_type=attrs.get("instanceType"),
        usd_per_unit=max(prices),
        effective=effective,
        vcpu=_int(attrs.get("vcpu")),
        memory_mib=_memory_mib(attrs.get("memory")),
        units=tuple(sorted(units)),
    )


@cache
def bundled_snapshot() -> tuple[dict[str, str], ...]:
    """The rows of the bundled snapshot (`data/ec2_ondemand_linux_us-east-1.csv`), read and parsed once: its
    prices (`bundled_price`) and its instance facts (`instance_facts.bundled_facts`) both come from here."""
    text = resources.files("dashgen.data").joinpath("ec2_ondemand_linux_us-east-1.csv").read_text("utf-8")
    return tuple(csv.DictReader(text.splitlines()))


@cache
def _bundled() -> dict[str, tuple[Decimal, int | None, int | None]]:
    out = {}
    for row in bundled_snapshot():
        out[row["instance_type"]] = (
            Decimal(row["ondemand_linux_usd_per_hour_us_east_1"]), _int(row["vcpu"]), _int(row["memory_mib"])
        )
    return out


def bundled_price(key: PriceKey) -> Price:
    """The snapshot's price: known only for us-east-1, Linux, Shared tenancy; unknown (None) otherwise."""
    found = _bundled().get(key.instance_type)
    known = found is not None and (key.region, key.operating_system, key.tenancy) == (BUNDLED_REGION, "Linux",
                                                                                       SHARED)
    usd = found[0] if known and found and found[0] > 0 else None
    vcpu, mem = (found[1], found[2]) if found else (None, None)
    return Price(key, usd, vcpu, mem, BUNDLED_SOURCE, BUNDLED_DATE)


def fetch_api_price(client: Any, key: PriceKey) -> Price:
    """One key from `pricing.get_products` (paginated); several matching products: the highest price."""
    filters = {**BASE_FILTERS, "regionCode": key.region, "operatingSystem": key.operating_system,
               "instanceType": key.instance_type}
    items: list[PriceItem] = []
    paginator = client.get_paginator("get_products")
    pages = paginator.paginate(
        ServiceCode="AmazonEC2",
        Filters=[{"Type": "TERM_MATCH", "Field": f, "Value": v} for f, v in sorted(filters.items())],
        FormatVersion="aws_v1",
    )
    for page in pages:
        for i, raw in enumerate(page.get("PriceList", [])):
            items.append(parse_item(raw, i))
    items = [it for it in items if it.instance_type in (None, key.instance_type) and it.usd_per_unit > 0]
    fallback = bundled_price(key)
    if not items:
        return Price(key, None, fallback.vcpu, fallback.memory_mib, API_SOURCE, None)
    best = max(items, key=lambda it: (it.usd_per_unit, it.sku))
    return Price(key, best.usd_per_unit, best.vcpu or fallback.vcpu, best.memory_mib or fallback.memory_mib,
                 API_SOURCE, best.effective)


def pricing_client(session: Any, budget: Budget | None = None) -> Any:
    from dashgen.sync.aws import client

    return client(session, "pricing", PRICING_ENDPOINT_REGION, budget=budget)


def resolve_prices(keys: set[PriceKey], mode: str, session: Any = None, client: Any = None,
                   budget: Budget | None = None) -> tuple[list[Price], list[str]]:
    """Prices for `keys` (sorted) and warnings. Mode 'api' reads each key from the Price List API (within
    `budget`); once the API fails, the keys not read yet come back as `fallback` prices (the snapshot's, or
    unknown) with one warning, and the API is not asked again in this sync (`budget.failure`)."""
    from dashgen.sync.aws import aws_errors, describe

    ordered = sorted(keys)
    if mode == "bundled":
        return [bundled_price(k) for k in ordered], []
    out: list[Price] = []
    failure = budget.failure if budget is not None else None
    if failure is None:
        try:
            if client is None:
                client = pricing_client(session, budget)
            for key in ordered:
                out.append(budget.run(lambda k=key: fetch_api_price(client, k)) if budget is not None
                           else fetch_api_price(client, key))
        except aws_errors() as exc:
            failure = describe(exc)
            if budget is not None:
                budget.failure = failure
    if failure is None:
        return out, []
    rest = [replace(bundled_price(k), fallback=True) for k in ordered[len(out):]]
    return out + rest, [fallback_warning(failure)]


def fallback_warning(failure: str) -> str:
    """The one line a Price List API failure prints (the same text for instance, EBS and candidate prices)."""
    return (f"WARNING: the AWS Price List API cannot be reached ({failure}); prices not read keep their last "
            f"known value (marked stale), else the bundled {BUNDLED_REGION} snapshot of {BUNDLED_DATE.isoformat()} "
            "(other regions and EBS: unknown)")
