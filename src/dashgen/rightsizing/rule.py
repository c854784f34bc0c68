"""The rightsizing rule: its documented text, the columns of its table, the defaults of its variables, the risk
words. Pure (no I/O): the dashboard (`dashgen.dashboards.rightsizing`), the CLI (`queries`) and sync (`collect`)
share it. The rule itself runs as SQL: `store/sql/rightsizing.sql`.
"""

from __future__ import annotations

import re

from dashgen.config import Config

HOURS_PER_MONTH = 730

RULE = (
    "Rule (docs/rightsizing.md, point by point beside Compute Optimizer): instance facts from EC2 "
    "DescribeInstanceTypes (refreshed daily by sync; the bundled snapshot offline); a type without facts is not "
    "analysed. Terminated instances are left out. Window: the last lookback_days days (default 14), only the "
    "hours on the current type (a resize starts a new window), at least 30 hours (coverage shown). Peak: the "
    "CPU percentile (default P99.5) of the 5-minute CPU maxima, and of the hourly busiest 5 minutes of network, "
    "EBS and memory. Target = CPU threshold x (1 - headroom) (80 % x (1 - 20 %) = 64 %); needed = peak / target "
    "for vCPUs, memory (CloudWatch agent mem_used_percent; when not measured memory never shrinks), network "
    "against the baseline bandwidth, EBS IOPS and MB/s against the EBS baseline, and for burstable types the "
    "busiest day's average CPU at most their baseline. GPUs, Neuron devices and other accelerators (count, model, "
    "memory) and the instance-store size are kept. Recommended (same family): the smallest type of the family "
    "and architecture meeting all of it; verdict under-provisioned when the current type does not, "
    "over-provisioned when a smaller one does, else right-sized. Cheaper family: the cheapest such type of "
    "another family of the class with up to twice the vCPUs (a burstable one may move to an m type of its "
    "architecture), flagged when the architecture changes. Risk "
    "0-4: the worst resource's peak / capacity (<= 50 % 0, <= target 1, <= threshold 2, <= 100 % 3, above 4), "
    "limited_by names it. Credits: an unlimited burstable instance (or one whose mode is unknown) costs now its "
    "price plus the surplus credits CloudWatch says it was charged (per hour of the window, at its family's credit "
    "price; none in standard mode); a candidate costs its price plus the surplus the load would be charged on it "
    "(max(0, vCPUs x average CPU - its baseline vCPUs) x its credit price); 'cheaper one size up' names the next "
    "size when that costs less. Monthly saving = ($/hour now - estimated $/hour recommended) x 730 h."
)

# column -> (label, kind); kind picks the Grafana unit and the terminal format
RIGHTSIZING_COLUMNS: dict[str, tuple[str, str]] = {
    "instance_id": ("Instance", "text"),
    "name": ("Name", "text"),
    "tags": ("Tags", "text"),
    "instance_type": ("Type", "text"),
    "vcpu": ("vCPU", "int"),
    "memory_mib": ("Memory", "mib"),
    "facts_source": ("Facts from", "text"),  # aws-describe-instance-types, or bundled-snapshot (offline fallback)
    "usd_per_hour": ("$/hour", "usd4"),
    "credit_mode": ("Credit mode", "text"),  # burstable: unlimited, standard, unknown (not read); else empty
    "credit_usd_per_hour": ("Credits $/hour", "usd4"),  # surplus credits charged now, per hour of the window
    "cost_usd_per_hour": ("Cost $/hour", "usd4"),  # price + credits
    "hours": ("Hours", "int"),
    "coverage_pct": ("Coverage", "pct"),
    "cpu_avg": ("CPU avg", "pct"),
    "cpu_peak": ("CPU peak (percentile of 5-min maxima)", "pct"),
    "cpu_max": ("CPU max", "pct"),
    "memory_peak": ("Memory used peak", "pct"),
    "network_gbps": ("Network peak Gbit/s", "num"),
    "ebs_iops": ("EBS IOPS peak", "num"),
    "ebs_mbps": ("EBS MB/s peak", "num"),
    "needed_vcpu": ("vCPU needed", "num"),
    "verdict": ("Verdict", "text"),
    "current_risk": ("Risk now", "int"),
    "recommended_type": ("Recommended (family)", "text"),
    "recommended_usd_per_hour": ("Recommended $/hour", "usd4"),  # estimated: price + its surplus credits
    "monthly_saving_usd": ("Saving $/month", "usd"),
    "risk": ("Risk", "int"),
    "limited_by": ("Limited by", "text"),
    "reasons": ("Reasons", "text"),
    "cheaper_type": ("Cheaper family", "text"),
    "cheaper_usd_per_hour": ("Cheaper $/hour", "usd4"),
    "cheaper_monthly_saving_usd": ("Cheaper saving $/month", "usd"),
    "cheaper_risk": ("Cheaper risk", "int"),
    "cheaper_migration": ("Migration", "text"),
    "size_up_type": ("Cheaper one size up", "text"),  # unlimited burstable: the next size, when it costs less
    "size_up_usd_per_hour": ("One size up $/hour", "usd4"),
    "size_up_monthly_saving_usd": ("One size up saving $/month", "usd"),
}
EXPERIMENT_COLUMNS: dict[str, tuple[str, str]] = {
    "experiment": ("Experiment", "text"),
    "instance_id": ("Instance", "text"),
    "name": ("Name", "text"),
    "instance_type": ("Type", "text"),
    "vcpu": ("vCPU", "int"),
    "usd_per_hour": ("$/hour", "usd4"),
    "running_hours": ("Running hours", "num"),
    "cost_usd": ("Cost so far", "usd"),
    "cpu_p95": ("CPU p95", "pct"),
    "progress_pct": ("Progress", "pct"),
    "hours_per_pct": ("Hours per %", "num"),
    "usd_per_pct": ("$ per %", "usd4"),
    "finish_at": ("Finish (projected)", "time"),
    "deadline": ("Deadline", "time"),
    "projected_cost_usd": ("Projected cost", "usd"),
    "budget_usd": ("Budget", "usd"),
    "outcome": ("Outcome", "text"),
}

def dashboard_values(config: Config) -> dict[str, str]:
    """The defaults of the dashboard's rule variables, from the config (the CLI uses the same)."""
    return {
        "cpu_threshold": f"{config.cpu_threshold:g}",
        "headroom_pct": f"{config.headroom_pct:g}",
        "cpu_percentile": f"{config.cpu_percentile:g}",
        "lookback_days": str(config.lookback_days),
    }

RISK_NAMES = ("very low", "low", "medium", "high", "very high")  # Compute Optimizer's performance risk words


def type_class(family: str) -> str:
    """'m7i' -> 'm', 't4g' -> 't', 'inf2' -> 'inf': the class a cheaper family must share."""
    match = re.match(r"[a-z]+", family)
    return match.group(0) if match else family
