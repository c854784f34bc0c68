"""A known EC2 history in moto, and the cost of each instance computed independently of dashgen's SQL.

Instances are launched and stopped at chosen times (moto's clock is patched; a restart resets LaunchTime the
way AWS does). `expected_cost` applies AWS's rule directly: per second, 60 s minimum per start, price from the
bundled CSV read here with the csv module.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import boto3

LINUX_AMI = "ami-1e749f67"  # moto's ubuntu image
WINDOWS_AMI = "ami-12c6146b"
ACCOUNT = "123456789012"
INJECTION = "x'); DROP TABLE dashgen.instances; --"  # a tag value that tries SQL injection
PRICES_CSV = Path(__file__).resolve().parents[1] / "src" / "dashgen" / "data" / "ec2_ondemand_linux_us-east-1.csv"


def csv_price(instance_type: str) -> Decimal:
    with PRICES_CSV.open() as fh:
        for row in csv.DictReader(fh):
            if row["instance_type"] == instance_type:
                return Decimal(row["ondemand_linux_usd_per_hour_us_east_1"])
    raise KeyError(instance_type)


@dataclass
class Planned:
    key: str
    instance_type: str
    tags: dict[str, str]
    runs: list[tuple[dt.datetime, dt.datetime | None]]  # (start, stop or None = still running)
    windows: bool = False
    instance_id: str = ""

    @property
    def price(self) -> Decimal | None:
        return None if self.windows else csv_price(self.instance_type)


@dataclass
class Scenario:
    t0: dt.datetime
    planned: list[Planned] = field(default_factory=list)
    played: set[tuple[str, int, int]] = field(default_factory=set)

    def by_key(self, key: str) -> Planned:
        return next(p for p in self.planned if p.key == key)


def billed_seconds(runs, frm: dt.datetime, to: dt.datetime, now: dt.datetime) -> Decimal:
    total = Decimal(0)
    for start, stop in runs:
        end = max(stop or now, start + dt.timedelta(seconds=60))
        overlap = (min(end, to) - max(start, frm)).total_seconds()
        total += Decimal(str(max(0.0, overlap)))
    return total


def exact_cost(p: Planned, frm: dt.datetime, to: dt.datetime, now: dt.datetime) -> Decimal | None:
    if p.price is None:
        return None
    return billed_seconds(p.runs, frm, to, now) * p.price / 3600


def expected_cost(p: Planned, frm: dt.datetime, to: dt.datetime, now: dt.datetime) -> Decimal | None:
    """The cost in USD, to the cent (None = unknown price)."""
    cost = exact_cost(p, frm, to, now)
    return None if cost is None else cost.quantize(Decimal("0.01"))


def plan(t0: dt.datetime) -> Scenario:
    h = dt.timedelta(hours=1)
    s = dt.timedelta(seconds=1)
    return Scenario(t0, [
        Planned("a1", "t4g.large", {"Name": "alpha-1", "experiment": "alpha", "team": "ml"},
                [(t0, t0 + 2 * h + 13 * 60 * s + 7 * s)]),
        Planned("a2", "t4g.xlarge", {"Name": "alpha-2", "experiment": "alpha", "team": "ml"},
                [(t0 + h, None)]),
        Planned("b1", "t4g.2xlarge", {"Name": "beta-1", "experiment": "beta"},
                [(t0 + 30 * 60 * s, t0 + 30 * 60 * s + 30 * s)]),  # 30 s run: billed 60 s
        Planned("q", "m5.large", {"Name": "O'Brien", "team": "data", "project": INJECTION}, [(t0 + 3 * h, None)]),
        Planned("w", "t3.medium", {"Name": "win", "experiment": "beta"}, [(t0 + h, None)], windows=True),
        Planned("r", "c6g.large", {"Name": "restarted", "experiment": "alpha"},
                [(t0, t0 + h + 17 * s), (t0 + 5 * h, None)]),
    ])


class MotoClock:
    """Sets the time moto stamps on LaunchTime and StateTransitionReason."""

    def __init__(self, monkeypatch, start: dt.datetime) -> None:
        import moto.ec2.models.instances as instances

        self.now = start
        monkeypatch.setattr(instances, "utcnow", lambda: self.now.replace(tzinfo=None))


def launch(ec2, p: Planned) -> str:
    tags = [{"Key": k, "Value": v} for k, v in p.tags.items()]
    out = ec2.run_instances(ImageId=WINDOWS_AMI if p.windows else LINUX_AMI, MinCount=1, MaxCount=1,
                            InstanceType=p.instance_type,
                            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
    return out["Instances"][0]["InstanceId"]


def moto_instance(instance_id: str, region: str = "us-east-1"):
    from moto.ec2.models import ec2_backends

    return ec2_backends[ACCOUNT][region].get_instance(instance_id)


def play(scenario: Scenario, clock: MotoClock, until: dt.datetime, region: str = "us-east-1") -> None:
    """Replay in moto, in time order, every start and stop up to `until` not replayed yet."""
    ec2 = boto3.client("ec2", region_name=region)
    events = []
    for p in scenario.planned:
        for i, (start, stop) in enumerate(p.runs):
            events.append((start, 0 if i == 0 else 1, i, p))
            if stop is not None:
                events.append((stop, 2, i, p))
    for at, what, i, p in sorted(events, key=lambda e: (e[0], e[1], e[3].key)):
        if at > until or (p.key, what, i) in scenario.played:
            continue
        scenario.played.add((p.key, what, i))
        clock.now = at
        if what == 0:
            p.instance_id = launch(ec2, p)
        elif what == 1:
            ec2.start_instances(InstanceIds=[p.instance_id])
            moto_instance(p.instance_id, region).launch_time = at.replace(tzinfo=None)  # AWS resets LaunchTime
        else:
            ec2.stop_instances(InstanceIds=[p.instance_id])
    clock.now = until


def t0_for_now() -> dt.datetime:
    """Six hours before the current hour: runs still going are billed up to the database's now()."""
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return now - dt.timedelta(hours=6)


def synced_store(dsn: str, monkeypatch, config=None, *, extra_syncs: int = 0):
    """Replay the scenario in moto, syncing at t0+4h and after the last event; returns (scenario, result)."""
    from moto import mock_aws

    from dashgen.config import Config
    from dashgen.sync import sync

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    scenario = plan(t0_for_now())
    config = config or Config()
    with mock_aws():
        clock = MotoClock(monkeypatch, scenario.t0)
        session = boto3.Session(region_name="us-east-1")
        for at in (scenario.t0 + dt.timedelta(hours=4), scenario.t0 + dt.timedelta(hours=5, minutes=30)):
            play(scenario, clock, at)
            result = sync(config, dsn=dsn, prices="bundled", session=session, now=at)
        for _ in range(extra_syncs):
            result = sync(config, dsn=dsn, prices="bundled", session=session, now=at)
    return scenario, result
