"""The AWS/EC2 metric catalogue: each CloudWatch metric once, with everything a panel needs to know.

Sources: the AWS EC2 User Guide table "CloudWatch metrics that are available for your instances" (a copy:
`tests/data/aws_ec2_cloudwatch_metrics.csv`, which tests/test_catalogue.py checks this catalogue against) and
the metric list of Grafana's CloudWatch data source (grafana-aws-sdk `NamespaceMetricsMap`). Thresholds here are
defaults; `dashgen.toml [thresholds]` overrides them per metric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

NAMESPACE = "AWS/EC2"

Direction = Literal["above", "below"]


@dataclass(frozen=True)
class Group:
    key: str
    title: str


GROUPS: tuple[Group, ...] = (
    Group("cpu", "CPU"),
    Group("cpu_credit", "CPU credits (burstable)"),
    Group("instance_store", "Instance store"),
    Group("ebs", "EBS"),
    Group("network", "Network"),
    Group("status_check", "Status checks"),
    Group("metadata", "Instance metadata service"),
    Group("gpu", "GPU"),
)


@dataclass(frozen=True)
class Metric:
    """One AWS/EC2 metric: how to query it, show it, and when it is a problem."""

    name: str
    group: str
    unit: str  # Grafana unit id
    statistic: str  # the statistic that is meaningful for a panel
    applies_to: str  # which instances emit it
    description: str
    threshold: float | None = None
    direction: Direction = "above"  # "above": red above the threshold; "below": red under it
    severity: Literal["red", "orange"] = "red"


_ALL = "All instances."
_BURST = "Burstable instances only (T2, T3, T3a, T4g)."
_UNLIMITED = "Burstable instances in unlimited mode only."
_STORE = "Instances with instance store volumes only (0 or absent otherwise)."
_NITRO = "Nitro-based instances that are not bare metal."
_EBS_BURST = "Nitro-based sizes that burst EBS performance (some *.4xlarge and smaller); basic monitoring only."

METRICS: tuple[Metric, ...] = (
    # CPU
    Metric(
        "CPUUtilization", "cpu", "percent", "Average", _ALL,
        "Percentage of the physical CPU time the instance uses (including hypervisor time, so OS tools may "
        "show a slightly different figure). Sustained values above the threshold mean the instance is too "
        "small for the work; values far below it across the whole run mean it is too large.",
        threshold=80.0,
    ),
    Metric(
        "DedicatedHostCPUUtilization", "cpu", "percent", "Average", "T3 instances on Dedicated Hosts.",
        "Percentage of the Dedicated Host's allocated compute capacity used by the instances running on it.",
        threshold=80.0,
    ),
    # CPU credits
    Metric(
        "CPUCreditUsage", "cpu_credit", "short", "Sum", _BURST,
        "CPU credits spent in the period (one credit = one vCPU at 100% for one minute). Reported every "
        "5 minutes; use Sum over longer periods.",
    ),
    Metric(
        "CPUCreditBalance", "cpu_credit", "short", "Minimum", _BURST,
        "Earned CPU credits the instance has banked. When the balance runs out a standard-mode instance is "
        "throttled to its baseline, so a low balance warns that performance is about to drop.",
        threshold=50.0, direction="below", severity="orange",
    ),
    Metric(
        "CPUSurplusCreditBalance", "cpu_credit", "short", "Maximum", _UNLIMITED,
        "Surplus credits spent while the earned balance was zero. They are paid back from future earnings "
        "or charged; a growing balance means the instance runs above its baseline for long periods.",
        threshold=0.0, severity="orange",
    ),
    Metric(
        "CPUSurplusCreditsCharged", "cpu_credit", "short", "Sum", _UNLIMITED,
        "Surplus credits that are billed (beyond what can be paid back within 24 hours, or at stop). Any "
        "value above zero is extra cost: the instance may be better as a larger or non-burstable type.",
        threshold=0.0,
    ),
    # Instance store
    Metric(
        "DiskReadOps", "instance_store", "short", "Sum", _STORE,
        "Completed read operations from all instance store volumes in the period (IOPS = Sum / period).",
    ),
    Metric(
        "DiskWriteOps", "instance_store", "short", "Sum", _STORE,
        "Completed write operations to all instance store volumes in the period (IOPS = Sum / period).",
    ),
    Metric(
        "DiskReadBytes", "instance_store", "bytes", "Sum", _STORE,
        "Bytes read from all instance store volumes in the period (bytes/s = Sum / period).",
    ),
    Metric(
        "DiskWriteBytes", "instance_store", "bytes", "Sum", _STORE,
        "Bytes written to all instance store volumes in the period (bytes/s = Sum / period).",
    ),
    # EBS
    Metric(
        "EBSReadOps", "ebs", "short", "Sum", _NITRO,
        "Completed read operations from all EBS volumes attached to the instance (IOPS = Sum / period).",
    ),
    Metric(
        "EBSWriteOps", "ebs", "short", "Sum", _NITRO,
        "Completed write operations to all EBS volumes attached to the instance (IOPS = Sum / period).",
    ),
    Metric(
        "EBSReadBytes", "ebs", "bytes", "Sum", _NITRO,
        "Bytes read from all EBS volumes attached to the instance (bytes/s = Sum / period).",
    ),
    Metric(
        "EBSWriteBytes", "ebs", "bytes", "Sum", _NITRO,
        "Bytes written to all EBS volumes attached to the instance (bytes/s = Sum / period).",
    ),
    Metric(
        "EBSIOBalance%", "ebs", "percent", "Minimum", _EBS_BURST,
        "Percentage of I/O credits left in the instance's EBS burst bucket. Near zero, EBS IOPS fall to the "
        "baseline: a data-loading bottleneck for training jobs.",
        threshold=20.0, direction="below",
    ),
    Metric(
        "EBSByteBalance%", "ebs", "percent", "Minimum", _EBS_BURST,
        "Percentage of throughput credits left in the instance's EBS burst bucket. Near zero, EBS throughput "
        "falls to the baseline.",
        threshold=20.0, direction="below",
    ),
    Metric(
        "InstanceEBSIOPSExceededCheck", "ebs", "none", "Maximum", _NITRO,
        "1 when the workload tried to exceed the instance's maximum EBS IOPS in the last minute, else 0: "
        "the instance type, not the volume, limits the I/O.",
        threshold=0.0,
    ),
    Metric(
        "InstanceEBSThroughputExceededCheck", "ebs", "none", "Maximum", _NITRO,
        "1 when the workload tried to exceed the instance's maximum EBS throughput in the last minute, "
        "else 0: the instance type, not the volume, limits the I/O.",
        threshold=0.0,
    ),
    # Network
    Metric(
        "NetworkIn", "network", "bytes", "Sum", _ALL,
        "Bytes received on all network interfaces in the period (bytes/s = Sum / period).",
    ),
    Metric(
        "NetworkOut", "network", "bytes", "Sum", _ALL,
        "Bytes sent on all network interfaces in the period (bytes/s = Sum / period).",
    ),
    Metric(
        "NetworkPacketsIn", "network", "short", "Sum", _ALL,
        "Packets received on all network interfaces (basic monitoring only, 5-minute periods).",
    ),
    Metric(
        "NetworkPacketsOut", "network", "short", "Sum", _ALL,
        "Packets sent on all network interfaces (basic monitoring only, 5-minute periods).",
    ),
    # Status checks
    Metric(
        "StatusCheckFailed", "status_check", "none", "Maximum", _ALL,
        "1 when the instance failed any status check (instance, system or attached EBS) in the period.",
        threshold=0.0,
    ),
    Metric(
        "StatusCheckFailed_Instance", "status_check", "none", "Maximum", _ALL,
        "1 when the instance status check failed: a problem inside the instance (OS, network config).",
        threshold=0.0,
    ),
    Metric(
        "StatusCheckFailed_System", "status_check", "none", "Maximum", _ALL,
        "1 when the system status check failed: a problem with the AWS hardware or network underneath.",
        threshold=0.0,
    ),
    Metric(
        "StatusCheckFailed_AttachedEBS", "status_check", "none", "Maximum",
        "Instances with attached EBS volumes (Nitro).",
        "1 when one or more attached EBS volumes cannot complete I/O.",
        threshold=0.0,
    ),
    # Metadata service
    Metric(
        "MetadataNoToken", "metadata", "short", "Sum", _ALL,
        "Successful instance metadata requests made without a token (IMDSv1). Above zero means some "
        "software still uses IMDSv1 and blocks enforcing IMDSv2.",
        threshold=0.0, severity="orange",
    ),
    Metric(
        "MetadataNoTokenRejected", "metadata", "short", "Sum", "Instances with IMDSv1 disabled.",
        "IMDSv1 requests rejected because IMDSv1 is disabled: software on the instance that will fail.",
        threshold=0.0, severity="orange",
    ),
    # GPU
    Metric(
        "GPUPowerUtilization", "gpu", "percent", "Average", "Some accelerated computing instances.",
        "Active GPU power as a percentage of the maximum. Low values during training mean the GPUs wait on "
        "data or CPU: a cheaper instance, or a faster input pipeline, may do the same work.",
    ),
)

METRICS_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
GROUPS_BY_KEY: dict[str, Group] = {g.key: g for g in GROUPS}


def metrics_in(group: str) -> tuple[Metric, ...]:
    """The metrics of one group (a key of `GROUPS`), in catalogue order."""
    return tuple(m for m in METRICS if m.group == group)


def catalogue_rows(threshold: Callable[[str], float | None] | None = None) -> list[dict[str, object]]:
    """`dashgen metrics`: one row per metric (the shape `views.shapes()["metrics"]` pins), each threshold from
    `threshold(name)` (the config's `Config.threshold`), else the catalogue default."""
    return [{"name": m.name, "group": m.group, "group_title": GROUPS_BY_KEY[m.group].title, "unit": m.unit,
             "statistic": m.statistic, "threshold": threshold(m.name) if threshold else m.threshold,
             "direction": m.direction, "applies_to": m.applies_to, "description": m.description} for m in METRICS]


def markdown_table(thresholds: dict[str, float | None] | None = None) -> str:
    """The catalogue as a Markdown table (the metric table of docs/performance-dashboard.md is generated from this)."""
    lines = [
        "| metric | group | unit | statistic | default threshold | emitted by |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for m in METRICS:
        value = (thresholds or {}).get(m.name, m.threshold)
        th = "" if value is None else f"{'>' if m.direction == 'above' else '<'} {value:g}"
        lines.append(f"| `{m.name}` | {GROUPS_BY_KEY[m.group].title} | `{m.unit}` | {m.statistic} | {th} | "
                     f"{m.applies_to} |")
    return "\n".join(lines) + "\n"
