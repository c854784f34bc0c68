"""EC2 cost: what each instance costs now, by tag, over time, and each experiment against budget and deadline.

Every panel runs SQL on the pricing store (`dashgen sync` fills it) through the `pricing` datasource variable;
each panel's SQL is one file in `src/dashgen/store/sql/`, embedded verbatim (the tests run the same text). Template
variables are quoted by Grafana (`${var:sqlstring}`); the All value is the sentinel `dashgen.chosen` reads.
An unknown price is shown as "unknown", never $0.
"""

from __future__ import annotations

from typing import Any

import grafanalib.core as G

from dashgen.api import (
    PG_DS,
    Config,
    Layout,
    dashboard,
    inventory_stat,
    load_sql,
    override,
    selection_variables,
    sql_target,
    stat,
    steps,
    store_filter_variable,
    table,
    timeseries,
)

SLUG = "ec2-cost"
TITLE = "EC2 cost"
UNKNOWN = [{"type": "special", "options": {"match": "null+nan", "result": {"text": "unknown", "index": 0}}}]
# "unknown" in grey where a colour means something: a mapping without a colour takes the base threshold colour
# (red) instead (grafana/grafana packages/grafana-data/src/field/displayProcessor.ts: no mapping colour ->
# scaleFunc(-Infinity)); a hex colour is used as is (themes/createVisualizationColors.ts, getColorByName).
NEUTRAL = "#808080"
UNKNOWN_NEUTRAL = [{"type": "special",
                    "options": {"match": "null+nan", "result": {"text": "unknown", "color": NEUTRAL, "index": 2}}}]
# a yes/no column (PostgreSQL bool): special true / false / null matches (utils/valueMappings.ts)
YES_NO = [{"type": "special", "options": {"match": "true", "result": {"text": "yes", "color": "green", "index": 0}}},
          {"type": "special", "options": {"match": "false", "result": {"text": "no", "color": "red", "index": 1}}},
          *UNKNOWN_NEUTRAL]
USD = "currencyUSD"


def _usd(*columns: str) -> list[dict[str, Any]]:
    return [override(c, unit=USD, decimals=2, mappings=UNKNOWN) for c in columns]


def variables(config: Config) -> list[dict[str, Any]]:
    """The cost dashboard's variables: the pricing datasource, the instance selection and the experiment."""
    return [
        *selection_variables(config, cloudwatch=False, instance=False),  # the same choices on every dashboard
        store_filter_variable("experiment", "Experiment"),
    ]


def instances_panel() -> G.Table:
    """The cost-per-instance table: price, hours run and cost in the time range, cost to date, EBS storage."""
    return table(
        "Cost per instance",
        [sql_target(load_sql("cost_instances")), sql_target(load_sql("cost_instances_ebs"), "B")],
        description=("Every selected instance: price per hour (On-Demand; for Spot instances the Spot price in "
                     "effect beside it), hours it ran and what that cost in the time range, and its cost to date. "
                     "EC2 bills per second with a 60-second minimum per start; Spot runs at the Spot price of each "
                     "part of the run; burstable instances in unlimited mode add the surplus CPU credits AWS "
                     "charged (Credit mode: standard never pays them, unknown = not readable). A price nobody "
                     "knows is shown as unknown. EBS: the volumes attached now and their storage cost in the time "
                     "range (Price List API prices). Sort by any column; filter with Tag, Tag value and Name."),
        overrides=[*_usd("Cost in range", "Cost to date", "EBS storage in range", "Credits in range"),
                   override("USD/hour", unit=USD, decimals=4, mappings=UNKNOWN),
                   override("Spot USD/hour", unit=USD, decimals=4),
                   override("Hours in range", unit="h", decimals=2),
                   override("EBS GiB", unit="gbytes", decimals=0)],
        sort_by=[("Cost in range", True)],
        transformations=[{"id": "joinByField", "options": {"byField": "Instance", "mode": "inner"}}],
        height=12,
    )


def by_tag_panel() -> G.Table:
    """Cost in the time range by value of the chosen tag (untagged instances in their own row)."""
    return table(
        "Cost by tag value",
        [sql_target(load_sql("cost_by_tag"))],
        description="The selected instances grouped by the value of the chosen Tag (experiment, team...), Spot "
                    "prices and surplus CPU credits included. A group whose instances ran without a known price "
                    "shows unknown.",
        overrides=_usd("Cost in range", "Cost to date", "Credits in range"),
        sort_by=[("Cost in range", True)],
        width=10,
        height=9,
    )


def reconciliation_panels() -> tuple[G.Table, G.Table]:
    """Estimated vs billed (AWS's CUR, `dashgen sync --cur`), per instance and per tag value."""
    pct = override("Difference", unit="percent", decimals=1, mappings=UNKNOWN)
    rate = override("Effective USD/hour", unit=USD, decimals=4, mappings=UNKNOWN)
    when = override("Billed through", unit="dateTimeAsIso")
    hours = override("Hours billed", unit="h", decimals=2)
    per_instance = table(
        "Estimated vs billed (CUR)",
        [sql_target(load_sql("cost_reconciliation"))],
        description=("dashgen's estimate beside what AWS billed (Cost and Usage Report 2.0 line items read by "
                     "`dashgen sync --cur`: instance hours, Spot and CPU credits, at their effective cost after "
                     "Savings Plans and Reserved Instances), over the part of the time range AWS has delivered "
                     "(Billed through, typically a day behind); later hours stay estimated. Difference = billed "
                     "vs estimated in %; Effective USD/hour = billed / hours run. Empty until a sync with --cur."),
        overrides=[*_usd("Estimated", "Billed", "Billed before discounts"), pct, rate, when, hours],
        width=14,
        height=9,
    )
    per_tag = table(
        "Estimated vs billed by tag value",
        [sql_target(load_sql("cost_reconciliation_by_tag"))],
        description="The same, summed per value of the chosen Tag.",
        overrides=[*_usd("Estimated", "Billed"), pct, rate, when, hours],
        width=10,
        height=9,
    )
    return per_instance, per_tag


def cumulative_panel() -> G.TimeSeries:
    """Cumulative cost over the time range, one series per value of the chosen tag."""
    panel = timeseries(
        "Cumulative cost in the time range",
        [sql_target(load_sql("cost_cumulative"), fmt="time_series")],
        unit=USD,
        description="Cost accumulated since the start of the time range, per tag value and for all selected "
                    "instances. Instances without a known price are left out (see the table).",
        datasource=PG_DS,
        min_value=0,
        width=14,
        height=9,
    )
    # points only where the slope changes (the cost is linear in between): draw straight across the others
    panel.extraJson["fieldConfig"]["defaults"]["custom"]["spanNulls"] = True
    return panel


def budget_panel() -> G.Table:
    """Each experiment against its budget and deadline: spend, burn rate, projections, ETA, the verdicts."""
    return table(
        "Budget and deadline",
        [sql_target(load_sql("experiment_budget"))],
        description=("Per experiment (config [[experiments]]): spent to date, burn rate of its running instances, "
                     "spend projected at the deadline, budget left; with a progress metric (stored by sync from "
                     "CloudWatch), the pace of the last hour, the ETA at that pace and the projected cost to "
                     "finish. Unknown where an input is unknown (no price, no progress, stalled progress). In "
                     "config: no once the experiment left dashgen.toml (kept, with its progress, until `dashgen db "
                     "forget-experiment`)."),
        overrides=[*_usd("Budget", "Spent", "Budget left", "Projected at deadline", "Projected cost to finish"),
                   override("Burn rate (USD/h)", unit=USD, decimals=4, mappings=UNKNOWN),
                   override("Progress", unit="percent", decimals=1, mappings=UNKNOWN),
                   override("Pace", unit="suffix: %/h", decimals=2, mappings=UNKNOWN),
                   override("ETA", unit="dateTimeAsIso", mappings=UNKNOWN),
                   *(override(c, cell_type={"type": "color-text"}, mappings=YES_NO)
                     for c in ("Fits budget", "Makes deadline")),
                   override("Deadline", unit="dateTimeAsIso")],
        height=8,
    )


def verdict_stat(title: str, sql_file: str, yes: str, no: str, description: str) -> G.Stat:
    """A yes/no/unknown stat (Fits budget, Makes deadline) from one SQL file; unknown is grey, never red."""
    return stat(
        title,
        [sql_target(load_sql(sql_file), fmt="time_series")],
        description=description,
        datasource=PG_DS,
        thresholds=steps(("red", None), ("green", 1)),
        mappings=[{"type": "value", "options": {"0": {"text": no, "color": "red", "index": 0},
                                                "1": {"text": yes, "color": "green", "index": 1}}},
                  *UNKNOWN_NEUTRAL],
        calcs=("last",),
        no_value="no experiments",
        width=9,
    )


def progress_panel() -> G.TimeSeries:
    """The experiments' progress metric (0-100 %) over time, as `dashgen sync` stored it."""
    return timeseries(
        "Experiment progress",
        [sql_target(load_sql("experiment_progress"), fmt="time_series")],
        unit="percent",
        description="The experiments' progress metric (0-100 %), read from CloudWatch by `dashgen sync`.",
        datasource=PG_DS,
        min_value=0,
        max_value=100,
        height=7,
    )


def build(config: Config) -> G.Dashboard:
    """The EC2 cost dashboard."""
    layout = Layout()
    layout.add(
        verdict_stat("Fits budget", "experiment_fits_budget", "fits budget", "over budget",
                     "Green when the experiment's projected cost (to finish at the recent pace, else to the "
                     "deadline at the current burn rate) is within its budget; grey (unknown) when a price is "
                     "unknown."),
        verdict_stat("Makes deadline", "experiment_makes_deadline", "makes deadline", "late",
                     "Green when the ETA from the progress metric is before the deadline; grey (unknown) without "
                     "a progress metric or while progress stalls."),
        inventory_stat(),
    )
    layout.add(budget_panel())
    layout.add(instances_panel())
    layout.add(by_tag_panel(), cumulative_panel())
    layout.add(*reconciliation_panels())
    layout.add(progress_panel())
    return dashboard(
        config,
        slug=SLUG,
        title=TITLE,
        description="Per-instance EC2 cost now, by tag and over time, and each experiment against its budget and "
                    "deadline, from the pricing store (dashgen).",
        layout=layout,
        variables=variables(config),
        tags=["cost"],
    )
