"""Instance facts: what each EC2 instance type offers, from `DescribeInstanceTypes`, for rightsizing.

`facts_from_api` turns one `InstanceTypes[]` item of EC2 `DescribeInstanceTypes` (botocore's ec2 model, the
shape moto's `instance_types.json.gz` dumps) into one row of `dashgen.instance_types` (migration 050): vCPUs,
memory, architecture, GPUs (model, count, memory) and Neuron devices (Trainium/Inferentia: model, count,
memory), other accelerators (FPGA, media, Inferentia 1), network performance with the baseline and peak
bandwidth summed over the network cards, the EBS-optimised baseline and maximum throughput and IOPS, the
instance-store size, and for burstable types the baseline and credits from the T-instance credit table
(`data/t_instance_cpu_credits.csv`, AWS's documented table: the API does not return it).

`dashgen sync` calls `collect_facts` BEFORE its write transaction: the types in use and every candidate the
rule may recommend (`dashgen.rightsizing.collect.rightsizing_price_keys`, the same set whose prices sync reads), by name
through the paginator, each at most once a day. `store_facts` writes them inside the transaction (source
'aws-describe-instance-types'). The bundled CSV
(`data/ec2_ondemand_linux_us-east-1.csv`, the same columns, made by `facts_from_api` from moto 5.2.5's dump)
is the offline fallback that `dashgen.store.db.migrate` loads; it never overwrites facts read from AWS.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from dashgen.errors import AwsError

API_SOURCE = "aws-describe-instance-types"
BUNDLED_SOURCE = "bundled-snapshot"
MAX_AGE = dt.timedelta(hours=24)

# every column of dashgen.instance_types that facts fill, in table order (instance_type first)
COLUMNS = ("instance_type", "family", "vcpu", "memory_mib", "arch", "burstable", "gpus", "bare_metal",
           "hypervisor", "gpu_model", "gpu_memory_mib", "neuron_devices", "neuron_model", "neuron_memory_mib",
           "other_accelerators", "network_performance", "network_baseline_gbps", "network_peak_gbps",
           "ebs_baseline_mbps", "ebs_max_mbps", "ebs_baseline_iops", "ebs_max_iops", "instance_storage_gb",
           "burst_baseline_pct", "burst_credits_per_hour")
# the columns the bundled CSV carries (beside the price), and how to read them
CSV_KINDS: dict[str, type] = {
    "instance_type": str, "family": str, "vcpu": int, "memory_mib": int, "arch": str, "burstable": bool,
    "gpus": int, "bare_metal": bool, "hypervisor": str, "gpu_model": str, "gpu_memory_mib": int,
    "neuron_devices": int, "neuron_model": str, "neuron_memory_mib": int, "other_accelerators": int,
    "network_performance": str, "network_baseline_gbps": Decimal, "network_peak_gbps": Decimal,
    "ebs_baseline_mbps": Decimal, "ebs_max_mbps": Decimal, "ebs_baseline_iops": int, "ebs_max_iops": int,
    "instance_storage_gb": int,
}


@cache
def burst_table() -> dict[str, tuple[Decimal, Decimal]]:
    """instance type -> (baseline % per vCPU, credits earned per hour), from the shipped T-instance table."""
    text = resources.files("dashgen.data").joinpath("t_instance_cpu_credits.csv").read_text("utf-8")
    return {row["instance_type"]: (Decimal(row["baseline_utilization_per_vcpu_percent"]),
                                   Decimal(row["cpu_credits_earned_per_hour"]))
            for row in csv.DictReader(text.splitlines())}


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _names(items: Iterable[Mapping[str, Any]]) -> str | None:
    names = sorted({str(i["Name"]) for i in items if i.get("Name")})
    return "+".join(names) or None


def facts_from_api(item: Mapping[str, Any]) -> dict[str, Any]:
    """One `DescribeInstanceTypes` `InstanceTypes[]` item -> a `dashgen.instance_types` row (dict by COLUMNS)."""
    itype = str(item["InstanceType"])
    archs = item.get("ProcessorInfo", {}).get("SupportedArchitectures") or []
    arch = "arm64" if "arm64" in archs else ("x86_64" if "x86_64" in archs else (archs[0] if archs else None))
    gpu = item.get("GpuInfo") or {}
    gpus = gpu.get("Gpus") or []
    neuron = item.get("NeuronInfo") or {}
    devices = neuron.get("NeuronDevices") or []
    inference = (item.get("InferenceAcceleratorInfo") or {}).get("Accelerators") or []
    others = sum(int(a.get("Count", 0)) for key in ("FpgaInfo", "MediaAcceleratorInfo")
                 for a in ((item.get(key) or {}).get("Fpgas") or (item.get(key) or {}).get("Accelerators") or []))
    if not devices:  # Inferentia 1 reported only as an inference accelerator
        others += sum(int(a.get("Count", 0)) for a in inference)
    network = item.get("NetworkInfo") or {}
    cards = network.get("NetworkCards") or []
    baseline = [c.get("BaselineBandwidthInGbps") for c in cards]
    peak = [c.get("PeakBandwidthInGbps") for c in cards]
    ebs = (item.get("EbsInfo") or {}).get("EbsOptimizedInfo") or {}
    burstable = bool(item.get("BurstablePerformanceSupported"))
    burst = burst_table().get(itype) if burstable else None
    return {
        "instance_type": itype,
        "family": itype.split(".", 1)[0],
        "vcpu": (item.get("VCpuInfo") or {}).get("DefaultVCpus"),
        "memory_mib": (item.get("MemoryInfo") or {}).get("SizeInMiB"),
        "arch": arch,
        "burstable": burstable,
        "gpus": sum(int(g.get("Count", 0)) for g in gpus),
        "bare_metal": bool(item.get("BareMetal")),
        "hypervisor": item.get("Hypervisor"),
        "gpu_model": _names(gpus),
        "gpu_memory_mib": gpu.get("TotalGpuMemoryInMiB") if gpus else None,
        "neuron_devices": sum(int(d.get("Count", 0)) for d in devices),
        "neuron_model": _names(devices),
        "neuron_memory_mib": neuron.get("TotalNeuronDeviceMemoryInMiB") if devices else None,
        "other_accelerators": others,
        "network_performance": network.get("NetworkPerformance"),
        "network_baseline_gbps": _dec(sum(baseline)) if cards and None not in baseline else None,
        "network_peak_gbps": _dec(sum(peak)) if cards and None not in peak else None,
        "ebs_baseline_mbps": _dec(ebs.get("BaselineThroughputInMBps")),
        "ebs_max_mbps": _dec(ebs.get("MaximumThroughputInMBps")),
        "ebs_baseline_iops": ebs.get("BaselineIops"),
        "ebs_max_iops": ebs.get("MaximumIops"),
        "instance_storage_gb": (item.get("InstanceStorageInfo") or {}).get("TotalSizeInGB", 0),
        "burst_baseline_pct": burst[0] if burst else None,
        "burst_credits_per_hour": burst[1] if burst else None,
    }


def _nullable(value: str, kind: type) -> Any:
    if value in ("", "None", "NULL"):
        return None
    if kind is bool:
        return value.lower() in ("true", "1", "yes")
    return kind(value)


@cache
def bundled_facts() -> dict[str, dict[str, Any]]:
    """The bundled snapshot's facts (the offline fallback), by type; NULL where the snapshot has none."""
    from dashgen.sync.pricing import bundled_snapshot

    out = {}
    for row in bundled_snapshot():
        facts = {c: _nullable(row.get(c) or "", k) for c, k in CSV_KINDS.items()}
        burst = burst_table().get(facts["instance_type"]) if facts["burstable"] else None
        facts["burst_baseline_pct"] = burst[0] if burst else None
        facts["burst_credits_per_hour"] = burst[1] if burst else None
        out[facts["instance_type"]] = facts
    return out


def describe_instance_types(client: Any, types: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Facts of every type the region offers (types=None) or of `types` (a filter: unknown names are skipped,
    not an error), through botocore's paginator."""
    kwargs: dict[str, Any] = {}
    if types is not None:
        kwargs["Filters"] = [{"Name": "instance-type", "Values": sorted(types)}]
    out = []
    for page in client.get_paginator("describe_instance_types").paginate(**kwargs):
        for item in page.get("InstanceTypes", []):
            try:
                out.append(facts_from_api(item))
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                name = item.get("InstanceType", "?") if isinstance(item, Mapping) else "?"
                raise AwsError(f"ec2 DescribeInstanceTypes: unreadable facts for {name}: "
                               f"{type(exc).__name__}: {exc}") from None
    return sorted(out, key=lambda f: f["instance_type"])


def stored_api_facts(conn: Any) -> dict[str, dt.datetime | None]:
    """The types with AWS facts in the store -> when they were read (the caller turns a database error into one
    line: `dashgen.store.db.db_errors`, which imports this module)."""
    rows = conn.execute("SELECT instance_type, fetched_at FROM dashgen.instance_types WHERE source = %s",
                        (API_SOURCE,)).fetchall()
    return dict(rows)


FILTER_VALUES = 100  # instance types named in one DescribeInstanceTypes filter


def collect_facts(conn: Any, client: Any, wanted: Iterable[str], now: dt.datetime,
                  max_age: dt.timedelta = MAX_AGE, *,
                  run: Callable[[Callable[[], Any]], Any] | None = None) -> list[dict[str, Any]]:
    """What sync reads (the store is only read): the facts of the `wanted` types (those in use and every
    candidate) that the store has not read from AWS within `max_age`, by name, `FILTER_VALUES` a call (a name
    AWS does not know is skipped; it is asked again at the next sync). `run` runs the AWS read (sync: within a
    time budget, `dashgen.sync.aws.Budget.run`)."""
    stored = stored_api_facts(conn)
    due = sorted(t for t in set(wanted) if (at := stored.get(t)) is None or now - at >= max_age)
    if not due:
        return []

    def read() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in range(0, len(due), FILTER_VALUES):
            out += describe_instance_types(client, due[i:i + FILTER_VALUES])
        return out

    return (run or (lambda f: f()))(read)


_UPSERT = (
    f"INSERT INTO dashgen.instance_types AS t ({', '.join(COLUMNS)}, source, fetched_at) "
    f"VALUES ({', '.join(['%s'] * len(COLUMNS))}, '{API_SOURCE}', %s) "
    "ON CONFLICT (instance_type) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*COLUMNS[1:], "source", "fetched_at"))
)


def store_facts(conn: Any, facts: Iterable[Mapping[str, Any]], fetched_at: dt.datetime) -> int:
    """Upsert AWS facts (inside sync's transaction); the number of rows."""
    rows = [(*(f[c] for c in COLUMNS), fetched_at) for f in facts]
    with conn.cursor() as cur:
        cur.executemany(_UPSERT, rows)
    return len(rows)
