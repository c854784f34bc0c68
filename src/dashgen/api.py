"""The public API for dashboard definitions: what a `*.dashboard.py` file (and every built-in dashboard) uses.

    from dashgen import api as dg

    def build(config: dg.Config) -> dg.Dashboard:
        layout = dg.Layout().add(dg.metric_panel(dg.METRICS_BY_NAME["CPUUtilization"], config))
        return dg.dashboard(config, slug="my-cpu", title="My CPU", description="...", layout=layout,
                            variables=dg.cloudwatch_selection_variables(config))

Everything listed in `__all__` is stable and documented (docs/api.md is generated from it and checked); anything
else in dashgen is private and may change. Groups:

- the metric catalogue: `METRICS`, `METRICS_BY_NAME`, `GROUPS`, `metrics_in`, `Metric`, `Group`;
- CloudWatch queries with the instance selection: `cw_target` (builder), `cw_insights_target` (Metrics
  Insights), `cloudwatch_selection_variables`, `INSTANCE_LABEL`;
- threshold panels: `metric_panel`, `over_threshold_stat`, `steps`, `metric_steps`;
- panels and layout: `timeseries`, `stat`, `table`, `override`, `row`, `Layout`, `dashboard`;
- SQL panels on the pricing store: the built-in ones (`instances_panel`, `by_tag_panel`, `cumulative_panel`,
  `budget_panel`, `rightsizing_panel`, `experiment_panel`) with the variables they read (`cost_variables`,
  `rightsizing_variables`); your own from `sql_target` and `load_sql` (the shipped SQL files: cost,
  rightsizing, experiments); `pricing_variable`, `store_filter_variable`, `sql_query_variable`, `STORE_ALL`;
- variables: `custom_variable`, `datasource_variable`, `cw_query_variable`;
- building and checking a definition file: `build_file`; the config: `Config`; grafanalib's `Dashboard`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grafanalib.core import Dashboard

from dashgen.catalogue import GROUPS, METRICS, METRICS_BY_NAME, Group, Metric, metrics_in
from dashgen.config import Config
from dashgen.dashboards.cost import budget_panel, by_tag_panel, cumulative_panel, instances_panel
from dashgen.dashboards.cost import variables as cost_variables
from dashgen.dashboards.performance import metric_panel, over_threshold_stat
from dashgen.dashboards.rightsizing import experiment_panel, rightsizing_panel
from dashgen.dashboards.rightsizing import variables as rightsizing_variables
from dashgen.panels import (
    INSTANCE_LABEL,
    Layout,
    cloudwatch_selection_variables,
    custom_variable,
    cw_insights_target,
    cw_query_variable,
    cw_target,
    dashboard,
    datasource_variable,
    metric_steps,
    override,
    pricing_variable,
    row,
    sql_query_variable,
    sql_target,
    stat,
    steps,
    store_filter_variable,
    table,
    timeseries,
)
from dashgen.sqlvars import STORE_ALL, load_sql


def build_file(path: Path | str, config: Config | None = None) -> dict[str, Any]:
    """Build one definition file (`<name>.dashboard.py`) into validated Grafana JSON data, as `dashgen build`
    does; raises `DefinitionError` / `ValidationError` (one line naming the file) when it cannot."""
    from dashgen.definitions import build_definition, load_definition_file
    from dashgen.validate import check

    config = config or Config()
    defn = load_definition_file(Path(path))
    data = build_definition(defn, config)
    check(data, defn.file_name, config)
    return data


__all__ = [
    "GROUPS", "INSTANCE_LABEL", "METRICS", "METRICS_BY_NAME", "STORE_ALL", "Config", "Dashboard", "Group", "Layout",
    "Metric", "budget_panel", "build_file", "by_tag_panel", "cloudwatch_selection_variables", "cost_variables",
    "cumulative_panel", "custom_variable", "cw_insights_target", "cw_query_variable", "cw_target", "dashboard",
    "datasource_variable", "experiment_panel", "instances_panel", "load_sql", "metric_panel", "metric_steps",
    "metrics_in", "over_threshold_stat", "override", "pricing_variable", "rightsizing_panel",
    "rightsizing_variables", "row", "sql_query_variable", "sql_target", "stat", "steps", "store_filter_variable",
    "table", "timeseries",
]
