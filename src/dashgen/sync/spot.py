"""Spot prices: `ec2.describe_spot_price_history` (paginated) for the Spot instances dashgen saw.

An instance with `InstanceLifecycle = spot` is billed at the Spot price of its Availability Zone, instance type and
product description (its PlatformDetails: 'Linux/UNIX', 'Windows', 'Red Hat Enterprise Linux', 'SUSE Linux'), which
changes over time. Per AZ, one paginated call asks for every type and product description in use from the earliest
LaunchTime of those instances (at most 90 days back: what the API keeps) to now; AWS also returns the last price
change before the start time, the price in effect then ("DescribeSpotPriceHistory", EC2 API Reference). The store
keeps every price change (`dashgen.spot_prices`); the cost functions split each run at the changes inside it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from dashgen.errors import AwsError
from dashgen.sync.inventory import Instance, as_utc

HISTORY_DAYS = 90


@dataclass(frozen=True, order=True)
class SpotPrice:
    availability_zone: str
    instance_type: str
    product_description: str
    at: dt.datetime
    usd_per_hour: Decimal
    region: str


def product_description(instance: Instance) -> str:
    return instance.platform or "Linux/UNIX"


def parse_entry(raw: dict[str, Any], region: str) -> SpotPrice:
    """One `SpotPriceHistory[]` entry; a malformed one is an AwsError naming it."""
    try:
        usd = Decimal(str(raw["SpotPrice"]))
        at = as_utc(raw["Timestamp"])
        if not usd.is_finite() or usd < 0 or at is None:
            raise ValueError
        return SpotPrice(raw["AvailabilityZone"], raw["InstanceType"], raw["ProductDescription"], at, usd, region)
    except (KeyError, ValueError, TypeError, InvalidOperation):
        shown = {k: raw.get(k) for k in ("AvailabilityZone", "InstanceType", "SpotPrice", "Timestamp")} \
            if isinstance(raw, dict) else raw
        raise AwsError(f"ec2 DescribeSpotPriceHistory ({region}): unreadable entry {shown}") from None


def read_spot_prices(client: Any, instances: Sequence[Instance], now: dt.datetime) -> list[SpotPrice]:
    """Every Spot price change for the AZs, types and product descriptions of `instances` (Spot, one region)."""
    by_az: dict[str, list[Instance]] = {}
    for inst in instances:
        if inst.availability_zone:
            by_az.setdefault(inst.availability_zone, []).append(inst)
    out: set[SpotPrice] = set()
    paginator = client.get_paginator("describe_spot_price_history")
    for az, members in sorted(by_az.items()):
        starts = [i.launch_time for i in members if i.launch_time is not None]
        start = max(min(starts, default=now), now - dt.timedelta(days=HISTORY_DAYS))
        types = sorted({i.instance_type for i in members})
        products = sorted({product_description(i) for i in members})
        for page in paginator.paginate(AvailabilityZone=az, InstanceTypes=types, ProductDescriptions=products,
                                       StartTime=start, EndTime=now):
            for raw in page.get("SpotPriceHistory", []):
                entry = parse_entry(raw, members[0].region)
                if entry.instance_type in types and entry.product_description in products \
                        and entry.availability_zone == az:
                    out.add(entry)
    return sorted(out)
