"""EBS volumes: `ec2.describe_volumes` (paginated) per region, and their storage price per GB-month.

The storage price comes from the AWS Price List API (`pricing.get_products`, product family `Storage`,
filters `regionCode` and `volumeApiName`), read with the same generic On-Demand parser as instance prices.
dashgen ships no EBS price snapshot: with `--prices bundled`, or when the API cannot be reached, no price is
read and the store keeps what it had; a price never stored is unknown (NULL), shown as unknown, never $0.
A volume's cost goes to the instance it is attached to.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from dashgen.sync.inventory import as_utc
from dashgen.sync.pricing import API_SOURCE, fallback_warning, parse_item

if TYPE_CHECKING:
    from dashgen.sync.aws import Budget

STORAGE_UNIT = "GB-Mo"


@dataclass(frozen=True)
class Volume:
    volume_id: str
    region: str
    volume_type: str  # the Price List API's volumeApiName: gp3, gp2, io1, io2, st1, sc1, standard
    size_gib: int
    created_at: dt.datetime | None
    instance_id: str | None  # attached to (None: available)
    account_id: str | None = None  # the AWS account it was read from (None: the caller's, not known)


@dataclass(frozen=True, order=True)
class StorageKey:
    region: str
    volume_type: str


@dataclass(frozen=True)
class StoragePrice:
    key: StorageKey
    usd_per_gb_month: Decimal | None  # None = unknown
    source: str
    price_date: dt.date | None


def from_describe(raw: dict[str, Any], region: str) -> Volume:
    attached = [a.get("InstanceId") for a in raw.get("Attachments") or [] if a.get("State") in ("attached",
                                                                                              "attaching")]
    return Volume(volume_id=raw["VolumeId"], region=region, volume_type=raw.get("VolumeType") or "standard",
                  size_gib=int(raw.get("Size") or 0), created_at=as_utc(raw.get("CreateTime")),
                  instance_id=attached[0] if attached else None)


def describe_volumes(client: Any, region: str) -> list[Volume]:
    """Every EBS volume of the region, through boto3's `describe_volumes` paginator."""
    return [from_describe(raw, region)
            for page in client.get_paginator("describe_volumes").paginate()
            for raw in page.get("Volumes", [])]


def fetch_storage_price(client: Any, key: StorageKey) -> StoragePrice:
    """USD per GB-month of one volume type in one region (several products: the highest; none: unknown)."""
    filters = {"productFamily": "Storage", "regionCode": key.region, "volumeApiName": key.volume_type}
    pages = client.get_paginator("get_products").paginate(
        ServiceCode="AmazonEC2",
        Filters=[{"Type": "TERM_MATCH", "Field": f, "Value": v} for f, v in sorted(filters.items())],
        FormatVersion="aws_v1",
    )
    items = [parse_item(raw, i) for page in pages for i, raw in enumerate(page.get("PriceList", []))]
    items = [it for it in items if it.units == (STORAGE_UNIT,) and it.usd_per_unit > 0]
    if not items:
        return StoragePrice(key, None, API_SOURCE, None)
    best = max(items, key=lambda it: (it.usd_per_unit, it.sku))
    return StoragePrice(key, best.usd_per_unit, API_SOURCE, best.effective)


def resolve_storage_prices(keys: set[StorageKey], mode: str, client: Any,
                           budget: Budget | None = None) -> tuple[list[StoragePrice], list[str]]:
    """Prices for `keys` (sorted) and warnings. Only mode 'api' reads prices (within `budget`); otherwise, or when
    the API fails (or already failed in this sync: `budget.failure`), none is returned: what the store holds
    stays (a price not stored is unknown)."""
    from dashgen.sync.aws import aws_errors, describe

    if mode != "api" or not keys:
        return [], []
    failure = budget.failure if budget is not None else None
    if failure is None:
        try:
            return [budget.run(lambda k=k: fetch_storage_price(client, k)) if budget is not None
                    else fetch_storage_price(client, k) for k in sorted(keys)], []
        except aws_errors() as exc:
            failure = describe(exc)
            if budget is not None:
                budget.failure = failure
    return [], [fallback_warning(failure)]
