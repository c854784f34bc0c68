"""The rightsizing rule's cost model with surplus CPU credits (docs/rightsizing.md, "Credits"), computed in Python
with exact arithmetic (Fractions) from the bundled data files read directly, independently of sql/rightsizing.sql:
the oracle tests/test_rightsizing_credits.py checks `dashgen rightsize` against.

- An instance now: its On-Demand price, plus for a burstable type not in standard mode the surplus credits CloudWatch
  says it was charged (CPUSurplusCreditsCharged per hour, one credit = one vCPU-minute) averaged over its hours, at
  its family's credit price per vCPU-hour. Standard mode: AWS charges none.
- A candidate type for the same load: its price plus, when burstable (and the instance not in standard mode),
  max(0, vCPUs now x average CPU - the candidate's vCPUs x its baseline) vCPU-hours an hour at its family's price.
- One size up: the next type of the family by (vCPUs, memory); named only when it costs less than now.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "src" / "dashgen" / "data"
HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class TypeFacts:
    name: str
    family: str
    vcpu: int
    memory_mib: int
    price: Fraction  # USD per hour, On-Demand Linux us-east-1
    baseline_pct: Fraction | None  # burstable: baseline utilisation per vCPU


@cache
def types() -> dict[str, TypeFacts]:
    with (DATA / "t_instance_cpu_credits.csv").open() as f:
        baselines = {r["instance_type"]: Fraction(r["baseline_utilization_per_vcpu_percent"])
                     for r in csv.DictReader(f)}
    out = {}
    with (DATA / "ec2_ondemand_linux_us-east-1.csv").open() as f:
        for r in csv.DictReader(f):
            name = r["instance_type"]
            if not r["vcpu"] or not r["memory_mib"] or not r["ondemand_linux_usd_per_hour_us_east_1"]:
                continue  # no facts or no price in the snapshot
            out[name] = TypeFacts(name, r["family"], int(r["vcpu"]), int(r["memory_mib"]),
                                  Fraction(r["ondemand_linux_usd_per_hour_us_east_1"]), baselines.get(name))
    return out


@cache
def credit_price(family: str) -> Fraction | None:
    """USD per vCPU-hour of surplus credits, Linux (data/t_instance_credit_prices.csv)."""
    with (DATA / "t_instance_credit_prices.csv").open() as f:
        for r in csv.DictReader(f):
            if (r["family"], r["operating_system"]) == (family, "Linux"):
                return Fraction(r["usd_per_vcpu_hour"])
    return None


def credits_charged_per_hour(itype: str, cpu_pct: Fraction) -> Fraction:
    """What AWS charges an unlimited instance running at `cpu_pct` all the time once its balance is spent: the
    credits spent above those earned, per hour (vCPUs x 60 x (cpu - baseline))."""
    t = types()[itype]
    return max(Fraction(0), t.vcpu * 60 * (cpu_pct - t.baseline_pct) / 100)


def now_cost(itype: str, mode: str, credits_per_hour: list[Fraction]) -> Fraction:
    """USD per hour now: the price plus the credits charged on average (not in standard mode)."""
    t = types()[itype]
    if t.baseline_pct is None or mode == "standard" or not any(credits_per_hour):
        return t.price
    return t.price + sum(credits_per_hour) / len(credits_per_hour) / 60 * credit_price(t.family)


def candidate_cost(itype: str, candidate: str, mode: str, cpu_avg_pct: Fraction) -> Fraction:
    """USD per hour the load of `itype` at `cpu_avg_pct` would cost on `candidate`."""
    now, t = types()[itype], types()[candidate]
    if t.baseline_pct is None or mode == "standard":
        return t.price
    surplus = max(Fraction(0), now.vcpu * cpu_avg_pct / 100 - t.vcpu * t.baseline_pct / 100)
    return t.price + (surplus * credit_price(t.family) if surplus else 0)


def one_size_up(itype: str) -> str | None:
    t = types()[itype]
    bigger = sorted((u.vcpu, u.memory_mib, u.name) for u in types().values()
                    if u.family == t.family and (u.vcpu, u.memory_mib) > (t.vcpu, t.memory_mib)
                    and not u.name.endswith(".metal"))
    return bigger[0][2] if bigger else None


def cheaper_one_size_up(itype: str, mode: str, cpu_avg_pct: Fraction, credits_per_hour: list[Fraction]
                        ) -> tuple[str, Fraction, Fraction] | None:
    """(type, its USD per hour, monthly saving) when the next size costs less than now; else None."""
    up = one_size_up(itype)
    if up is None or types()[itype].baseline_pct is None or mode == "standard":
        return None
    now, there = now_cost(itype, mode, credits_per_hour), candidate_cost(itype, up, mode, cpu_avg_pct)
    return (up, there, (now - there) * HOURS_PER_MONTH) if there < now else None
