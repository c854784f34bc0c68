"""The public API for dashboard definitions: what a `*.dashboard.py` file, and every built-in dashboard, uses.

    from dashgen import api as dg

    def build(config: dg.Config) -> dg.Dashboard:
        layout = dg.Layout().add(dg.metric_panel(dg.METRICS_BY_NAME["CPUUtilization"], config))
        return dg.dashboard(config, slug="my-cpu", uid="my-cpu", title="My CPU", description="...",
                            layout=layout, variables=dg.selection_variables(config))

Everything listed in `__all__` is stable and documented (docs/api.md is generated from it and checked), and so
are the public functions of the built-in dashboards (`dashgen.dashboards.cost`, `.performance`,
`.rightsizing`: their panels, e.g. `cost.instances_panel()`, and their `variables(config)`), which are built
from this API alone; anything else in dashgen is private and may change. Groups:

- the metric catalogue: `METRICS`, `METRICS_BY_NAME`, `GROUPS`, `metrics_in`, `Metric`, `Group`;
- CloudWatch queries over the instance selection (Metrics Insights, so a query's size does not grow with the
  fleet): `metric_target`, `insights_sql`, `cw_insights_target`, `selection_variables`, `INSIGHTS_LIMIT`, `TOP`;
- threshold panels: `metric_panel`, `over_threshold_stat`, `steps`, `metric_steps`;
- panels and layout: `timeseries`, `stat`, `table`, `override`, `row`, `Layout`, `dashboard`, `inventory_stat`;
- SQL panels on the pricing store: `sql_target`, `load_sql` (the shipped SQL files: cost, rightsizing,
  experiments), `pricing_variable`, `store_filter_variable`, `store_tag_key_variable`, `sql_query_variable`,
  `STORE_ALL`, `PG_DS`;
- variables and datasources: `custom_variable`, `datasource_variable`, `cw_query_variable`, `CW_DS`, `MIXED_DS`,
  `CLOUDWATCH`, `POSTGRES`;
- building and checking a definition file: `build_file`; the config: `Config`; grafanalib's `Dashboard`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grafanalib.core import Dashboard

from dashgen.catalogue import GROUPS, METRICS, METRICS_BY_NAME, Group, Metric, metrics_in
from dashgen.config import Config
from dashgen.definitions.panels import (
    CLOUDWATCH,
    CW_DS,
    INSIGHTS_LIMIT,
    MIXED_DS,
    PG_DS,
    POSTGRES,
    TOP,
    Layout,
    custom_variable,
    cw_insights_target,
    cw_query_variable,
    dashboard,
    datasource_variable,
    insights_sql,
    inventory_stat,
    metric_panel,
    metric_steps,
    metric_target,
    over_threshold_stat,
    override,
    pricing_variable,
    row,
    selection_variables,
    sql_query_variable,
    sql_target,
    stat,
    steps,
    store_filter_variable,
    store_tag_key_variable,
    table,
    timeseries,
)
from dashgen.store.sqlvars import STORE_ALL, load_sql


def build_file(path: Path | str, config: Config | None = None) -> dict[str, Any]:
    """Build one definition file (`<name>.dashboard.py`) into validated Grafana JSON data, as `dashgen build`
    does; raises `DefinitionError` / `ValidationError` (one line naming the file) when it cannot."""
    from dashgen.definitions import build_definition, load_definition_file
    from dashgen.grafana.validate import check

    config = config or Config()
    defn = load_definition_file(Path(path))
    data = build_definition(defn, config)
    check(data, defn.file_name, config)
    return data


__all__ = [
    "CLOUDWATCH", "CW_DS", "GROUPS", "INSIGHTS_LIMIT", "METRICS", "METRICS_BY_NAME", "MIXED_DS", "PG_DS",
    "POSTGRES", "STORE_ALL", "TOP", "Config", "Dashboard", "Group", "Layout", "Metric", "build_file",
    "custom_variable", "cw_insights_target", "cw_query_variable", "dashboard", "datasource_variable",
    "insights_sql", "inventory_stat", "load_sql", "metric_panel", "metric_steps", "metric_target", "metrics_in",
    "over_threshold_stat", "override", "pricing_variable", "row", "selection_variables", "sql_query_variable",
    "sql_target", "stat", "steps", "store_filter_variable", "store_tag_key_variable", "table", "timeseries",
]
