"""EC2 performance: every AWS/EC2 CloudWatch metric, by group, with its threshold drawn.

Top: how many selected instances are over a threshold right now, then this week's CPU beside the same
period last week (unusual slowness stands out), then one collapsible row per metric group.

Instances are chosen from the pricing store (Tag, Name, Instance: the same choices as the cost and rightsizing
dashboards). Every CloudWatch query is Metrics Insights over `$insights_where`, the selection as a WHERE clause,
so that a query's size does not grow with the fleet (a list of instance ids in a SEARCH expression outgrows
MetricDataQuery.Expression's 2,048 characters at about 75 instances); each returns the 500 worst instances.
"""

from __future__ import annotations

import grafanalib.core as G

from dashgen.api import (
    GROUPS,
    INSIGHTS_LIMIT,
    METRICS_BY_NAME,
    MIXED_DS,
    PG_DS,
    TOP,
    Config,
    Layout,
    custom_variable,
    dashboard,
    inventory_stat,
    load_sql,
    metric_panel,
    metric_steps,
    metric_target,
    metrics_in,
    over_threshold_stat,
    selection_variables,
    sql_target,
    stat,
    steps,
    timeseries,
)

SLUG = "ec2-performance"


TITLE = "EC2 performance"


def selection_stat() -> G.Stat:
    """How many instances the choices select in the store, and how many the CloudWatch panels leave out."""
    panel = stat(
        "Instances selected",
        [sql_target(load_sql("selection"))],
        description=("Instances of the pricing store in the region that Tag, Name and Instance select (the same "
                     "choices as the cost and rightsizing dashboards). Not drawn: those the CloudWatch panels "
                     "leave out because their Metrics Insights query has no room left (a hand-picked list longer "
                     f"than about 40 instances); each panel also draws at most the {INSIGHTS_LIMIT} worst."),
        datasource=PG_DS,
        thresholds=steps(("blue", None)),
        no_value="0",
        width=4,
    )
    panel.extraJson["options"]["textMode"] = "value_and_name"  # two numbers: say which is which
    return panel


def week_over_week_panel(config: Config) -> G.TimeSeries:
    """This week's hourly CPU (CloudWatch, solid) over last week's moved forward 7 days (store, dashed)."""
    cpu = METRICS_BY_NAME["CPUUtilization"]
    this_week = metric_target(cpu, period="3600", label="${LABEL} this week")
    last_week = sql_target(load_sql("cpu_last_week"), "B", fmt="time_series")
    return timeseries(
        "CPU this week vs. last week",
        [this_week, last_week],
        unit="percent",
        description=(
            f"Hourly average CPU over the last 7 days of {TOP} (solid) and of the selected instances over "
            "the 7 days before, moved forward a week (dashed, from the hourly utilisation `dashgen sync` "
            "stores), with the CPU threshold: a run slower or busier than last week stands out."
        ),
        datasource=MIXED_DS,
        thresholds=metric_steps(cpu, config),
        min_value=0,
        max_value=100,
        time_from="7d",
        width=24,
        overrides=[{
            "matcher": {"id": "byRegexp", "options": "/ last week$/"},
            "properties": [{"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}}],
        }],
    )


def build(config: Config) -> G.Dashboard:
    """The EC2 performance dashboard."""
    m = METRICS_BY_NAME
    cpu = m["CPUUtilization"]
    layout = Layout()
    layout.add(
        over_threshold_stat(cpu, config, f"over {config.cpu_threshold:g}% CPU"),
        over_threshold_stat(m["StatusCheckFailed"], config, "failing status checks"),
        over_threshold_stat(m["EBSIOBalance%"], config, "low on EBS I/O credits"),
        over_threshold_stat(m["CPUCreditBalance"], config, "low on CPU credits"),
        selection_stat(),
        inventory_stat(width=4),
    )
    layout.add(week_over_week_panel(config))
    for group in GROUPS:
        metrics = metrics_in(group.key)
        layout.add_row(group.title, [metric_panel(metric, config) for metric in metrics],
                       collapsed=group.key != "cpu")
    return dashboard(
        config,
        slug=SLUG,
        title=TITLE,
        description="Every AWS/EC2 CloudWatch metric for the selected instances, with thresholds (dashgen).",
        layout=layout,
        variables=[*selection_variables(config),
                   custom_variable("period", "Period (s)", ["auto", "60", "300", "3600"], "300")],
        tags=["performance"],
    )
