"""Burstable (T2/T3/T3a/T4g) surplus CPU credits: which instances are unlimited, and what a credit costs.

- The mode: `ec2.describe_instance_credit_specifications` (paginated; at most 1,000 instance ids a call, and no
  MaxResults with ids), `CpuCredits` = 'standard' | 'unlimited'. Not readable (no permission, throttled out) ->
  the mode stays what the store had, or unknown (NULL) for an instance never read: a warning says so.
- The charge: CloudWatch `CPUSurplusCreditsCharged` (Sum per hour), stored by `dashgen.sync.cloudwatch`; one credit is
  one vCPU-minute, so credits / 60 vCPU-hours are billed at the family's credit price.
- The price: the AWS Price List API, `GetProducts` on AmazonEC2 with productFamily "CPU Credits", the region and the
  operating system; the product's `usagetype` is `CPUCredits:<family>` (prefixed by the region's billing code
  outside us-east-1, e.g. `EUW1-CPUCredits:t3`), unit `vCPU-Hours` (Cost Explorer and CUR usage types of the same
  name: see docs/cost.md). When the API cannot be read, `data/t_instance_credit_prices.csv` (us-east-1, Linux),
  stored with source 'bundled-fallback'; anything else is unknown (NULL), never $0.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from dashgen.sync.aws import aws_errors, describe
from dashgen.sync.pricing import API_SOURCE, BUNDLED_REGION, parse_item

FALLBACK_SOURCE = "bundled-fallback"
BURSTABLE_FAMILIES = frozenset({"t2", "t3", "t3a", "t4g"})
MODES = frozenset({"standard", "unlimited"})
MAX_IDS = 1000  # DescribeInstanceCreditSpecifications: InstanceIds per call


@dataclass(frozen=True, order=True)
class CreditKey:
    region: str
    family: str
    operating_system: str


@dataclass(frozen=True)
class CreditPrice:
    key: CreditKey
    usd_per_vcpu_hour: Decimal | None  # None = unknown
    source: str
    price_date: dt.date | None


def family_of(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


def is_burstable(instance_type: str) -> bool:
    return family_of(instance_type) in BURSTABLE_FAMILIES


def read_credit_modes(client: Any, instance_ids: Sequence[str]) -> dict[str, str]:
    """{instance id: 'standard' | 'unlimited'} of `instance_ids` (burstable ones; others are not asked)."""
    out: dict[str, str] = {}
    paginator = client.get_paginator("describe_instance_credit_specifications")
    ids = sorted(set(instance_ids))
    for i in range(0, len(ids), MAX_IDS):
        for page in paginator.paginate(InstanceIds=ids[i:i + MAX_IDS]):
            for spec in page.get("InstanceCreditSpecifications", []):
                mode = spec.get("CpuCredits")
                if spec.get("InstanceId") and mode in MODES:
                    out[spec["InstanceId"]] = mode
    return out


@cache
def _fallback() -> dict[tuple[str, str], Decimal]:
    text = resources.files("dashgen.data").joinpath("t_instance_credit_prices.csv").read_text("utf-8")
    return {(r["family"], r["operating_system"]): Decimal(r["usd_per_vcpu_hour"])
            for r in csv.DictReader(text.splitlines())}


def fallback_price(key: CreditKey) -> CreditPrice:
    """The bundled fallback: us-east-1 only (as the On-Demand snapshot), else unknown."""
    usd = _fallback().get((key.family, key.operating_system)) if key.region == BUNDLED_REGION else None
    return CreditPrice(key, usd, FALLBACK_SOURCE, None)


def fetch_credit_price(client: Any, key: CreditKey) -> CreditPrice:
    """One key from the Price List API: the "CPU Credits" product whose usagetype ends in CPUCredits:<family>."""
    filters = {"productFamily": "CPU Credits", "regionCode": key.region, "operatingSystem": key.operating_system}
    found: list[tuple[Decimal, str, dt.date | None]] = []
    pages = client.get_paginator("get_products").paginate(
        ServiceCode="AmazonEC2",
        Filters=[{"Type": "TERM_MATCH", "Field": f, "Value": v} for f, v in sorted(filters.items())],
        FormatVersion="aws_v1",
    )
    for page in pages:
        for i, raw in enumerate(page.get("PriceList", [])):
            item = parse_item(raw, i)
            decoded = json.loads(raw) if isinstance(raw, str) else raw
            usage = str(((decoded.get("product") or {}).get("attributes") or {}).get("usagetype") or "")
            if usage.split("-")[-1] == f"CPUCredits:{key.family}" and item.usd_per_unit > 0:
                found.append((item.usd_per_unit, item.sku, item.effective))
    if not found:
        return CreditPrice(key, None, API_SOURCE, None)
    usd, _, effective = max(found)
    return CreditPrice(key, usd, API_SOURCE, effective)


def resolve_credit_prices(keys: Iterable[CreditKey], mode: str, client: Any) -> tuple[list[CreditPrice], list[str]]:
    """Prices of `keys` (sorted) and warnings; 'api' falls back to the bundled rates when unreachable."""
    ordered = sorted(set(keys))
    if not ordered:
        return [], []
    if mode == "bundled" or client is None:
        return [fallback_price(k) for k in ordered], []
    try:
        return [fetch_credit_price(client, k) for k in ordered], []
    except aws_errors() as exc:  # AWS, the network, an unreadable reply
        return [fallback_price(k) for k in ordered], [
            f"WARNING: CPU credit prices not read from the Price List API ({describe(exc)}); using the bundled "
            f"fallback rates (data/t_instance_credit_prices.csv: {BUNDLED_REGION}, Linux; others unknown)"]
