"""The EC2 inventory: `ec2.describe_instances` (paginated) per region, as plain `Instance` values.

Also reads the time AWS writes into `StateTransitionReason` ("User initiated (2026-11-20 10:15:00 GMT)"),
which is when a stopped or terminated instance stopped running.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

RUNNING_STATES = frozenset({"pending", "running"})
# Price List API spellings of EC2's PlatformDetails (anything else is kept as is: its price is then unknown)
_OS_BY_PLATFORM = {
    "Linux/UNIX": "Linux",
    "Windows": "Windows",
    "Red Hat Enterprise Linux": "RHEL",
    "SUSE Linux": "SUSE",
    "Ubuntu Pro": "Ubuntu Pro",
}
_TENANCY = {"default": "Shared", "dedicated": "Dedicated", "host": "Host"}
_REASON_TIME_RE = re.compile(
    r"\(\s*(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*"
    r"(GMT|UTC|Z|(?:GMT|UTC)?\s*[+-]\d{1,2}(?::?\d{2})?)?\s*\)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Instance:
    instance_id: str
    region: str
    instance_type: str
    state: str
    launch_time: dt.datetime | None
    name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    platform: str | None = None
    operating_system: str = "Linux"
    tenancy: str = "Shared"
    state_changed_at: dt.datetime | None = None  # from StateTransitionReason
    lifecycle: str = "on-demand"  # InstanceLifecycle: 'spot', 'scheduled', 'capacity-block'; absent = On-Demand
    availability_zone: str | None = None  # Placement.AvailabilityZone (Spot prices are per AZ)
    account_id: str | None = None  # the AWS account it was read from (None: the caller's, not known)

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


def parse_transition_time(reason: str | None) -> dt.datetime | None:
    """The UTC time in a StateTransitionReason, or None: accepts GMT, UTC, Z, +hh:mm and no zone (UTC)."""
    match = _REASON_TIME_RE.search(reason or "")
    if not match:
        return None
    day, clock, zone = match.group(1), match.group(2), (match.group(3) or "").upper().replace(" ", "")
    if clock.count(":") == 1:
        clock += ":00"
    offset = zone.removeprefix("GMT").removeprefix("UTC")
    if offset in ("", "Z"):
        tz = dt.UTC
    else:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        hours, minutes = (int(digits[:-2]), int(digits[-2:])) if len(digits) > 2 else (int(digits), 0)
        tz = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    try:
        parsed = dt.datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=tz)
    except ValueError:
        return None
    return parsed.astimezone(dt.UTC)


def as_utc(value: Any) -> dt.datetime | None:
    """An AWS timestamp (datetime or ISO text) in UTC; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.replace(tzinfo=value.tzinfo or dt.UTC).astimezone(dt.UTC)


def from_describe(raw: dict[str, Any], region: str, account_id: str | None = None) -> Instance:
    """One `Instances[]` entry of `describe_instances` (read in `account_id`) -> `Instance`."""
    tags = {t["Key"]: t.get("Value", "") for t in raw.get("Tags") or [] if "Key" in t}
    details = raw.get("PlatformDetails") or ("Windows" if raw.get("Platform") == "windows" else "Linux/UNIX")
    return Instance(
        instance_id=raw["InstanceId"],
        region=region,
        instance_type=raw["InstanceType"],
        state=(raw.get("State") or {}).get("Name", "unknown"),
        launch_time=as_utc(raw.get("LaunchTime")),
        name=tags.get("Name"),
        tags=dict(sorted(tags.items())),
        platform=details,
        operating_system=_OS_BY_PLATFORM.get(details, details),
        tenancy=_TENANCY.get((raw.get("Placement") or {}).get("Tenancy", "default"), "Shared"),
        state_changed_at=parse_transition_time(raw.get("StateTransitionReason")),
        lifecycle=raw.get("InstanceLifecycle") or "on-demand",
        availability_zone=(raw.get("Placement") or {}).get("AvailabilityZone"),
        account_id=account_id,
    )


def ec2_client(session: Any, region: str, retry_mode: str = "standard", budget: Any = None) -> Any:
    """An EC2 client with bounded timeouts and retries (`dashgen.sync.aws.client`), watched by `budget`."""
    from dashgen.sync.aws import client

    return client(session, "ec2", region, retry_mode=retry_mode, budget=budget)


def describe_region(client: Any, region: str, account_id: str | None = None) -> list[Instance]:
    """Every instance of one region (all states AWS still lists) of the client's account (`account_id`), through
    the paginator."""
    out: list[Instance] = []
    for page in client.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 1000}):
        for reservation in page.get("Reservations", []):
            out.extend(from_describe(raw, region, account_id) for raw in reservation.get("Instances", []))
    return out
