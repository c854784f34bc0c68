"""EC2 rightsizing: rank instances by utilisation, recommend the right size with prices, compare experiments.

Top: a live ranking straight from CloudWatch (Metrics Insights, one row per instance) by CPU and network,
coloured by the performance dashboard's thresholds. Then, from the pricing store, the rightsizing table and
the experiment comparison: their SQL is `sql/rightsizing.sql` and `sql/experiment_comparison.sql`, embedded
verbatim, the same text `dashgen rightsize` runs (the rule is `dashgen.rightsizing.rule.RULE`).
"""

from __future__ import annotations

from typing import Any

import grafanalib.core as G

from dashgen.api import (
    CLOUDWATCH,
    METRICS_BY_NAME,
    Config,
    Layout,
    Metric,
    custom_variable,
    cw_insights_target,
    dashboard,
    insights_sql,
    inventory_stat,
    load_sql,
    metric_steps,
    override,
    selection_variables,
    sql_query_variable,
    sql_target,
    table,
)
from dashgen.rightsizing.rule import EXPERIMENT_COLUMNS, RIGHTSIZING_COLUMNS, RISK_NAMES, RULE, dashboard_values

SLUG = "ec2-rightsizing"
TITLE = "EC2 rightsizing"

UNITS = {"usd": "currencyUSD", "usd4": "currencyUSD", "pct": "percent", "mib": "mbytes", "time": "dateTimeAsIso"}
VERDICT_COLOURS = {"over-provisioned": "orange", "right-sized": "green", "under-provisioned": "red",
                   "no data": "text", "not enough data": "text", "not analysed": "purple",
                   "cheapest on time": "green", "on time": "blue", "late": "red",
                   "no progress": "text"}
RANKING_LIMIT = 100
# performance risk 0-4 (Compute Optimizer's scale), shown as "1 low" on a coloured cell. Grafana looks a number up
# in a value mapping as `options[value]`, i.e. by its text "1" (grafana/grafana
# packages/grafana-data/src/utils/valueMappings.ts, getValueMappingResult).
RISK_COLOURS = ("green", "blue", "yellow", "orange", "red")
RISK_COLUMNS = ("current_risk", "risk", "cheaper_risk")


def ranking_panel(metric: Metric, aggregate: str, config: Config, unit: str) -> G.Table:
    """Live: one row per instance (reduced from the Insights series), worst first, threshold-coloured."""
    coloured = {"cell_type": {"type": "color-background"}}
    return table(
        f"Live ranking: {metric.name}",
        [cw_insights_target(insights_sql(metric.name, aggregate, limit=RANKING_LIMIT), statistic=aggregate)],
        description=(f"CloudWatch Metrics Insights, the instances of the region that the Tag and Name filters "
                     f"select (the same as the tables below): {aggregate} of {metric.name} per period, reduced "
                     f"to its mean and maximum over the time range, highest first (top {RANKING_LIMIT}). "
                     f"{metric.description}"),
        datasource={"type": CLOUDWATCH, "uid": "${datasource}"},
        unit=metric.unit,
        thresholds=metric_steps(metric, config),
        transformations=[
            {"id": "reduce", "options": {"mode": "seriesToRows", "reducers": ["mean", "max"],
                                         "includeTimeField": False}},
            {"id": "organize", "options": {"renameByName": {"Field": "Instance"}}},
        ],
        overrides=[override("Mean", **coloured, unit=unit), override("Max", **coloured, unit=unit)],
        sort_by=[("Mean", True)],
        width=8,
        height=9,
    )


def _column_overrides(columns: dict[str, tuple[str, str]], coloured: str) -> list[dict[str, Any]]:
    out = []
    for column, (label, kind) in columns.items():
        props: dict[str, Any] = {"display_name": label}
        if kind in UNITS:
            props["unit"] = UNITS[kind]
        if kind in ("usd4",):
            props["decimals"] = 4
        if column == coloured:
            props["cell_type"] = {"type": "color-background"}
            props["mappings"] = [{"type": "value", "options": {
                value: {"color": colour, "index": i} for i, (value, colour) in enumerate(VERDICT_COLOURS.items())
            }}]
        if column in RISK_COLUMNS:
            props["cell_type"] = {"type": "color-background"}
            props["mappings"] = [{"type": "value", "options": {
                str(risk): {"color": colour, "index": risk, "text": f"{risk} {name}"}
                for risk, (colour, name) in enumerate(zip(RISK_COLOURS, RISK_NAMES, strict=True))
            }}]
        out.append(override(column, **props))
    return out


def rightsizing_panel() -> G.Table:
    """The rightsizing table: each selected instance's load, the recommended size and a cheaper family."""
    return table(
        "Rightsizing",
        [sql_target(load_sql("rightsizing"))],
        description=(f"{RULE} Filters: Tag (key and values) and Name; threshold, headroom, percentile and window "
                     "are the variables above (defaults from dashgen.toml). Sorted by saving. Same SQL as "
                     "`dashgen rightsize`."),
        overrides=_column_overrides(RIGHTSIZING_COLUMNS, "verdict"),
        sort_by=[(RIGHTSIZING_COLUMNS["monthly_saving_usd"][0], True)],
        height=12,
    )


def experiment_panel() -> G.Table:
    """The experiment comparison: cost and progress per instance type of the chosen experiment."""
    return table(
        "Experiment comparison: ${experiment:text}",
        [sql_target(load_sql("experiment_comparison"))],
        description=(
            "The instances of the experiment (tag selector from dashgen.toml) side by side: running time, cost so "
            "far, CPU p95 and, when the experiment has a progress metric (read per instance: its dimensions plus "
            "InstanceId), hours and dollars per percent of progress, the projected finish and cost. The cheapest "
            "run that finishes by the deadline is marked 'cheapest on time'. Same SQL as "
            "`dashgen rightsize --experiment NAME`."
        ),
        overrides=_column_overrides(EXPERIMENT_COLUMNS, "outcome"),
        height=9,
    )


def _choices(default: str, values: list[str]) -> list[str]:
    return sorted({default, *values}, key=float)


def variables(config: Config) -> list[dict[str, Any]]:
    """The rightsizing dashboard's variables: selection, rule settings (threshold, headroom, window), experiment."""
    defaults = dashboard_values(config)
    return [
        *selection_variables(config, instance=False),  # the same choices as the other two dashboards
        custom_variable("period", "Period (s)", ["300", "3600"], "3600"),
        custom_variable("cpu_threshold", "CPU threshold %",
                        _choices(defaults["cpu_threshold"], ["60", "70", "80", "90"]), defaults["cpu_threshold"]),
        custom_variable("headroom_pct", "Headroom %",
                        _choices(defaults["headroom_pct"], ["0", "10", "20", "30"]), defaults["headroom_pct"]),
        custom_variable("cpu_percentile", "CPU percentile",
                        _choices(defaults["cpu_percentile"], ["90", "95", "99.5"]), defaults["cpu_percentile"]),
        custom_variable("lookback_days", "Window (days)",
                        _choices(defaults["lookback_days"], ["7", "14", "30"]), defaults["lookback_days"]),
        sql_query_variable("experiment", "Experiment", load_sql("var_experiment"), multi=False, include_all=False),
    ]


def build(config: Config) -> G.Dashboard:
    """The EC2 rightsizing dashboard."""
    m = METRICS_BY_NAME
    layout = Layout()
    layout.add(inventory_stat(width=24, height=3))
    layout.add(
        ranking_panel(m["CPUUtilization"], "Average", config, "percent"),
        ranking_panel(m["NetworkIn"], "Sum", config, "bytes"),
        ranking_panel(m["NetworkOut"], "Sum", config, "bytes"),
    )
    layout.add_row("Rightsizing (pricing store)", [rightsizing_panel()])
    layout.add_row("Experiment comparison (pricing store)", [experiment_panel()])
    return dashboard(
        config,
        slug=SLUG,
        title=TITLE,
        description="Rank EC2 instances by utilisation, recommend the right size with prices, compare an "
                    "experiment's instances (dashgen).",
        layout=layout,
        variables=variables(config),
        tags=["rightsizing", "cost"],
        time_from="now-7d",
    )
