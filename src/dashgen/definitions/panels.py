"""House-style panel helpers on top of grafanalib's core (as grafanalib's `weave.py` sits on `core.py`).

Dashboards are written with these helpers only: time series, stat, table and row panels, CloudWatch and SQL
targets, template variables, threshold steps and a grid layout. Everything is built from the catalogue and
the config so that the same facts never appear twice. `grafana/render.py` turns the result into current Grafana JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grafanalib.core as G

from dashgen.catalogue import NAMESPACE, Metric
from dashgen.config import Config
from dashgen.grafana.render import GRID_WIDTH

CLOUDWATCH = "cloudwatch"
POSTGRES = "grafana-postgresql-datasource"
CW_DS = {"type": CLOUDWATCH, "uid": "${datasource}"}
PG_DS = {"type": POSTGRES, "uid": "${pricing}"}
MIXED_DS = {"type": "datasource", "uid": "-- Mixed --"}  # each target names its own datasource


# ---------------------------------------------------------------- thresholds

def steps(*pairs: tuple[str, float | None]) -> list[dict[str, Any]]:
    """Threshold steps in Grafana's current shape; the first step is the base (value null)."""
    return [{"color": color, "value": value} for color, value in pairs]


def metric_steps(metric: Metric, config: Config) -> list[dict[str, Any]]:
    """The threshold steps of `metric`: acceptable colour up to the threshold, red/orange past it."""
    value = config.threshold(metric.name)
    if value is None:
        return steps(("green", None))
    bad = metric.severity
    if metric.direction == "above":
        return steps(("green", None), (bad, value))
    return steps((bad, None), ("green", value))


# ---------------------------------------------------------------- targets

def cw_insights_target(sql: str, ref_id: str = "A", *, statistic: str = "Average", label: str = "",
                       period: str = "$period") -> dict[str, Any]:
    """A CloudWatch Metrics Insights (SQL) query; `statistic` is still required by Grafana's backend
    (grafana-cloudwatch-datasource pkg/cloudwatch/models/cloudwatch_query.go validateAndSetDefaults)."""
    return {
        "datasource": CW_DS,
        "dimensions": {},
        "expression": "",
        "id": "",
        "label": label,
        "matchExact": True,
        "metricEditorMode": 1,
        "metricName": "",
        "metricQueryType": 1,
        "namespace": "",
        "period": period,
        "queryMode": "Metrics",
        "refId": ref_id,
        "region": "$region",
        "sqlExpression": sql,
        "statistic": statistic,
    }


def sql_target(sql: str, ref_id: str = "A", *, fmt: str = "table") -> dict[str, Any]:
    """A PostgreSQL query on the pricing datasource (code mode, raw SQL)."""
    return {
        "datasource": PG_DS,
        "editorMode": "code",
        "format": fmt,
        "rawQuery": True,
        "rawSql": sql,
        "refId": ref_id,
    }


# ---------------------------------------------------------------- panels

def _field_config(
    unit: str, thresholds: list[dict[str, Any]], *, color_mode: str, custom: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None, overrides: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "color": {"mode": color_mode},
        "thresholds": {"mode": "absolute", "steps": thresholds},
        "unit": unit,
    }
    if custom is not None:
        defaults["custom"] = custom
    defaults.update(extra or {})
    return {"defaults": defaults, "overrides": overrides or []}


def timeseries(
    title: str,
    targets: Sequence[dict[str, Any]],
    *,
    unit: str,
    description: str = "",
    thresholds: list[dict[str, Any]] | None = None,
    datasource: dict[str, str] = CW_DS,
    min_value: float | None = None,
    max_value: float | None = None,
    time_from: str | None = None,
    time_shift: str | None = None,
    width: int = 12,
    height: int = 8,
    overrides: list[dict[str, Any]] | None = None,
) -> G.TimeSeries:
    """A time series; when thresholds are given they are drawn as a dashed line plus a tinted area."""
    drawn = thresholds is not None and len(thresholds) > 1
    custom = {
        "drawStyle": "line",
        "fillOpacity": 10,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "thresholdsStyle": {"mode": "dashed+area" if drawn else "off"},
    }
    extra: dict[str, Any] = {}
    if min_value is not None:
        extra["min"] = min_value
    if max_value is not None:
        extra["max"] = max_value
    panel = G.TimeSeries(
        title=title,
        dataSource=datasource,
        targets=list(targets),
        description=description,
        timeFrom=time_from,
        timeShift=time_shift,
        gridPos=G.GridPos(h=height, w=width, x=0, y=0),
        extraJson={
            "fieldConfig": _field_config(
                unit, thresholds or steps(("green", None)), color_mode="palette-classic", custom=custom,
                extra=extra, overrides=overrides,
            ),
            "options": {
                "legend": {"calcs": ["mean", "max"], "displayMode": "table", "placement": "right",
                           "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"},
            },
        },
    )
    return panel


def stat(
    title: str,
    targets: Sequence[dict[str, Any]],
    *,
    unit: str = "none",
    description: str = "",
    thresholds: list[dict[str, Any]] | None = None,
    datasource: dict[str, str] = CW_DS,
    calcs: Sequence[str] = ("lastNotNull",),
    fields: str = "",
    transformations: Sequence[dict[str, Any]] = (),
    no_value: str | None = None,
    decimals: int | None = None,
    mappings: list[dict[str, Any]] | None = None,
    width: int = 6,
    height: int = 4,
) -> G.Stat:
    """A stat panel coloured by its thresholds (background), no sparkline unless it is a series."""
    extra: dict[str, Any] = {}
    if no_value is not None:
        extra["noValue"] = no_value
    if decimals is not None:
        extra["decimals"] = decimals
    if mappings:
        extra["mappings"] = mappings
    return G.Stat(
        title=title,
        dataSource=datasource,
        targets=list(targets),
        description=description,
        transformations=list(transformations),
        gridPos=G.GridPos(h=height, w=width, x=0, y=0),
        extraJson={
            "fieldConfig": _field_config(unit, thresholds or steps(("green", None)), color_mode="thresholds",
                                         extra=extra),
            "options": {
                "colorMode": "background",
                "graphMode": "none",
                "justifyMode": "auto",
                "orientation": "auto",
                "reduceOptions": {"calcs": list(calcs), "fields": fields, "values": False},
                "percentChangeColorMode": "standard",
                "showPercentChange": False,
                "textMode": "value",
                "wideLayout": True,
            },
        },
    )


def table(
    title: str,
    targets: Sequence[dict[str, Any]],
    *,
    description: str = "",
    datasource: dict[str, str] = PG_DS,
    unit: str = "none",
    overrides: list[dict[str, Any]] | None = None,
    sort_by: Sequence[tuple[str, bool]] = (),
    transformations: Sequence[dict[str, Any]] = (),
    thresholds: list[dict[str, Any]] | None = None,
    footer: Sequence[str] = (),
    width: int = 24,
    height: int = 10,
) -> G.Table:
    """A sortable, filterable table; per-column units and colours come as field overrides.

    `footer` lists reducer ids (e.g. "sum") shown under each column. Since Grafana 12.3 the footer is field
    config (`custom.footer.reducers`, @grafana/schema `TableFieldOptions`), no longer `options.footer`, which
    the table's options do not have any more (grafana/grafana `public/app/plugins/panel/table/panelcfg.cue`;
    `migrateFooterV2` in `public/app/plugins/panel/table/migrations.ts` moves old dashboards over on load).
    """
    custom: dict[str, Any] = {"align": "auto", "cellOptions": {"type": "auto"}, "filterable": True, "inspect": False}
    if footer:
        custom["footer"] = {"reducers": list(footer)}
    return G.Table(
        title=title,
        dataSource=datasource,
        targets=list(targets),
        description=description,
        transformations=list(transformations),
        gridPos=G.GridPos(h=height, w=width, x=0, y=0),
        extraJson={
            "fieldConfig": _field_config(
                unit, thresholds or steps(("green", None)), color_mode="thresholds",
                custom=custom, overrides=overrides,
            ),
            "options": {
                "cellHeight": "sm",
                "frameIndex": 0,
                "showHeader": True,
                "sortBy": [{"desc": desc, "displayName": name} for name, desc in sort_by],
            },
        },
    )


def override(column: str, **props: Any) -> dict[str, Any]:
    """A field override for one column by name: `override("Cost", unit="currencyUSD")`."""
    properties = []
    for key, value in sorted(props.items()):
        prop_id = {"cell_type": "custom.cellOptions", "width": "custom.width",
                   "display_name": "displayName"}.get(key, key)
        properties.append({"id": prop_id, "value": value})
    return {"matcher": {"id": "byName", "options": column}, "properties": properties}


def row(title: str, panels: Sequence[G.Panel] = (), *, collapsed: bool = False) -> G.RowPanel:
    """A row across the grid; a collapsed row holds its panels until opened."""
    return G.RowPanel(title=title, panels=list(panels), collapsed=collapsed,
                      gridPos=G.GridPos(h=1, w=GRID_WIDTH, x=0, y=0))


# ---------------------------------------------------------------- layout

@dataclass
class Layout:
    """Places panels left to right, top to bottom on Grafana's 24-column grid; rows own what follows."""

    panels: list[Any] = field(default_factory=list)
    _x: int = 0
    _y: int = 0
    _line_h: int = 0
    _open_row: Any = None

    def _place(self, panel: Any) -> None:
        gp = panel.gridPos
        if self._x + gp.w > GRID_WIDTH:
            self._x, self._y, self._line_h = 0, self._y + self._line_h, 0
        gp.x, gp.y = self._x, self._y
        self._x += gp.w
        self._line_h = max(self._line_h, gp.h)

    def newline(self) -> None:
        if self._x:
            self._x, self._y, self._line_h = 0, self._y + self._line_h, 0

    def add(self, *panels: Any) -> Layout:
        for panel in panels:
            self._place(panel)
            if self._open_row is not None and self._open_row.collapsed:
                self._open_row.panels.append(panel)
            else:
                self.panels.append(panel)
        return self

    def add_row(self, title: str, panels: Iterable[Any], *, collapsed: bool = False) -> Layout:
        self.newline()
        r = row(title, collapsed=collapsed)
        self._place(r)
        self.newline()
        self.panels.append(r)
        self._open_row = r
        self.add(*panels)
        self.newline()
        if collapsed:
            # children of a collapsed row do not take space: the next row sits right below this one
            self._y = r.gridPos.y + 1
        self._open_row = None
        return self


# ---------------------------------------------------------------- variables

def datasource_variable(name: str, plugin: str, uid: str, label: str) -> dict[str, Any]:
    """A datasource variable whose current value is the configured uid (the provisioned datasource)."""
    return {
        "current": {"text": uid, "value": uid},
        "hide": 0,
        "includeAll": False,
        "label": label,
        "multi": False,
        "name": name,
        "options": [],
        "query": plugin,
        "refresh": 1,
        "regex": "",
        "type": "datasource",
    }


def custom_variable(name: str, label: str, values: Sequence[str], default: str) -> dict[str, Any]:
    """A custom variable listing `values`; its `query` escapes commas as Grafana parses it (`grafana_text`)."""
    from dashgen.grafana.text import custom_query

    return {
        "current": {"text": default, "value": default},
        "hide": 0,
        "includeAll": False,
        "label": label,
        "multi": False,
        "name": name,
        "options": [{"selected": v == default, "text": v, "value": v} for v in values],
        "query": custom_query(values),
        "type": "custom",
    }


def cw_query_variable(name: str, label: str, query: str, *, multi: bool = False,
                      include_all: bool = False, all_value: str | None = None,
                      default: str | None = None) -> dict[str, Any]:
    """A query variable on the CloudWatch datasource (regions, EC2 instance attributes...)."""
    var: dict[str, Any] = {
        "current": {"text": "All", "value": "$__all"} if include_all and default is None
        else {"text": default or "", "value": default or ""},
        "datasource": CW_DS,
        "definition": query,
        "hide": 0,
        "includeAll": include_all,
        "label": label,
        "multi": multi,
        "name": name,
        "options": [],
        "query": query,
        "refresh": 1,
        "regex": "",
        "sort": 1,
        "type": "query",
    }
    if all_value is not None:
        var["allValue"] = all_value
    return var


def sql_query_variable(name: str, label: str, sql: str, *, multi: bool = True,
                       include_all: bool = True) -> dict[str, Any]:
    """A query variable on the pricing datasource (tag values, Names, experiments...).

    Only its options can be chosen (`allowCustomValue`, Grafana's VariableModel; default true): a typed value
    would reach the SQL without the encoding its options have (`dashgen.store.sqlvars`).
    """
    return {
        "allowCustomValue": False,
        "current": {"text": "All", "value": "$__all"} if include_all else {"text": "", "value": ""},
        "datasource": PG_DS,
        "definition": sql,
        "hide": 0,
        "includeAll": include_all,
        "label": label,
        "multi": multi,
        "name": name,
        "options": [],
        "query": sql,
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "type": "query",
    }


def store_filter_variable(name: str, label: str) -> dict[str, Any]:
    """A multi-value filter on the pricing store (`sql/var_<name>.sql`: tag values, Names, experiments).

    Its options are the real values as text and their hex as value (`dashgen.store.sqlvars`: nothing Grafana rewrites);
    Grafana inserts a custom All value unformatted, so it is a fixed, quoted literal: never a template value.
    """
    from dashgen.store.sqlvars import ALL_VALUE, ENCODED, load_sql

    assert name in ENCODED, name  # the CLI binds it encoded too
    var = sql_query_variable(name, label, load_sql(f"var_{name}"))
    var["allValue"] = ALL_VALUE
    return var


def store_tag_key_variable(tag_keys: Sequence[str]) -> dict[str, Any]:
    """The Tag variable of the store dashboards: the configured tag keys, in their order, each with its hex as
    value like every store variable (`dashgen.store.sqlvars`). The query holds only hex literals, so a key with `"`,
    `$` or `,` in it reaches PostgreSQL intact (a custom variable's query is parsed and interpolated by Grafana).
    """
    from dashgen.store.sqlvars import encode

    keys = ", ".join(f"'{encode(k)}'" for k in tag_keys)
    sql = (f"SELECT dashgen.unhex(k) AS __text, k AS __value FROM unnest(ARRAY[{keys}]::text[]) "
           "WITH ORDINALITY AS t(k, n) ORDER BY n")
    var = sql_query_variable("tag_key", "Tag", sql, multi=False, include_all=False)
    var.update(current={"text": tag_keys[0], "value": encode(tag_keys[0])}, refresh=1, sort=0)
    return var


INSIGHTS_WHERE = "$insights_where"  # the hidden variable holding the selection as a Metrics Insights clause
INSIGHTS_LIMIT = 500  # Metrics Insights returns at most 500 series (AWS: "Metrics Insights quotas")
INSIGHTS_NOTHING = "WHERE InstanceId = '-'"  # the clause that matches no instance (dashgen.insights_where)
_INSIGHTS_FUNCTION = {"Average": "AVG", "Sum": "SUM", "Maximum": "MAX", "Minimum": "MIN", "SampleCount": "COUNT"}


def insights_sql(metric: str, statistic: str, *, worst: str = "DESC", limit: int = INSIGHTS_LIMIT) -> str:
    """A Metrics Insights query: `metric` per instance of the selection, the `limit` worst first.

    The selection is `$insights_where` (a WHERE clause built in the store by `dashgen.insights_where`,
    migration 040), so the query's length does not grow with the fleet; a metric name that is not a plain
    identifier (`EBSIOBalance%`) is double-quoted, as Metrics Insights requires.
    """
    fn = _INSIGHTS_FUNCTION[statistic]
    name = metric if metric.replace("_", "a").isalnum() else '"' + metric + '"'
    return (f'SELECT {fn}({name}) FROM SCHEMA("{NAMESPACE}", InstanceId) {INSIGHTS_WHERE} '
            f"GROUP BY InstanceId ORDER BY {fn}() {worst} LIMIT {limit}")


def insights_where_variable(with_instance: bool) -> dict[str, Any]:
    """The hidden `insights_where` variable: the Tag / Name (/ Instance) choices as a Metrics Insights clause."""
    from dashgen.store.sqlvars import load_sql

    var = sql_query_variable("insights_where", "Metrics Insights filter",
                             load_sql("var_insights_where" if with_instance else "var_insights_where_tags"),
                             multi=False, include_all=False)
    var["hide"] = 2
    var["refresh"] = 1
    # until its query answers (or if it fails) the panels match no instance rather than every one
    var["current"] = {"text": INSIGHTS_NOTHING, "value": INSIGHTS_NOTHING}
    return var


def selection_variables(config: Config, *, cloudwatch: bool = True, instance: bool = True) -> list[dict[str, Any]]:
    """The instance selection every dashboard shares, from the pricing store: Account, Tag key, Tag value, Name
    (and Instance); with `cloudwatch`, the datasource, region and the hidden Metrics Insights filter too.

    One source of choices for the three dashboards: All means every instance of the store (untagged and
    unnamed ones included), a choice means the same instances on each; `dashgen sync` keeps the inventory
    (the "Inventory synced" stat says when it last did).
    """
    from dashgen.store.sqlvars import STORE_ALL, load_sql

    tag_keys = list(config.instance_tags)
    out: list[dict[str, Any]] = []
    if cloudwatch:
        out += [datasource_variable("datasource", CLOUDWATCH, config.cloudwatch_uid, "CloudWatch"),
                cw_query_variable("region", "Region", "regions()", default=config.default_region)]
    out += [pricing_variable(config),
            store_filter_variable("account", "Account"),  # the AWS accounts sync read ([aws] accounts)
            store_tag_key_variable(tag_keys),
            store_filter_variable("tag_value", "Tag value"),
            store_filter_variable("name", "Name")]
    if instance:
        var = sql_query_variable("instance", "Instance", load_sql("var_instance"))
        var["allValue"] = f"'{STORE_ALL}'"  # All: the tag and Name filters decide, never a list of ids
        out.append(var)
    if cloudwatch:
        out.append(insights_where_variable(with_instance=instance))
    return out


def inventory_stat(width: int = 6, height: int = 4) -> G.Stat:
    """When `dashgen sync` last saw the inventory the Tag, Name and Instance choices come from."""
    from dashgen.store.sqlvars import load_sql

    return stat(
        "Inventory synced",
        [sql_target(load_sql("inventory_synced"))],
        unit="dateTimeFromNow",
        description=("When `dashgen sync` last read the EC2 inventory into the pricing store. The Tag, Name and "
                     "Instance choices of every dashgen dashboard come from it, so all three dashboards select the "
                     "same instances (untagged and unnamed ones included under All); an instance launched or "
                     "retagged since then appears after the next sync."),
        datasource=PG_DS,
        calcs=("lastNotNull",),
        no_value="never",
        width=width,
        height=height,
    )


# ---------------------------------------------------------------- threshold panels (CloudWatch)

TOP = f"the {INSIGHTS_LIMIT} worst instances of the selection (CloudWatch Metrics Insights, last 14 days at most)"


def metric_target(metric: Metric, *, statistic: str | None = None, ref_id: str = "A", label: str = "",
                  period: str = "$period") -> dict[str, Any]:
    """`metric` per selected instance, worst first (highest for "above" thresholds, lowest for "below").

    No label: CloudWatch's default label of a Metrics Insights series grouped by InstanceId is the instance id
    (AWS docs, "SQL inference": each group name is projected in the result); `${LABEL}` is that default label
    in a dynamic label (AWS docs, "Use dynamic labels").
    """
    stat_name = statistic or metric.statistic
    worst = "ASC" if metric.direction == "below" else "DESC"
    return cw_insights_target(insights_sql(metric.name, stat_name, worst=worst), ref_id, statistic=stat_name,
                              label=label, period=period)


def over_threshold_stat(metric: Metric, config: Config, what: str) -> G.Stat:
    """A count of instances whose worst value in the time range is past the metric's threshold."""
    value = config.threshold(metric.name)
    assert value is not None
    worst = "max" if metric.direction == "above" else "min"
    op = "greater" if metric.direction == "above" else "lower"
    column = "Max" if worst == "max" else "Min"
    return stat(
        f"Instances {what}",
        [metric_target(metric, statistic="Maximum" if worst == "max" else "Minimum")],
        description=(
            f"Selected instances whose {metric.name} went {metric.direction} {value:g} in the time range "
            f"(worst {worst}imum per period), counted among {TOP}. {metric.description}"
        ),
        thresholds=steps(("green", None), (metric.severity, 1)),
        calcs=["count"],
        fields=f"/^{column}$/",
        no_value="0",
        width=4,
        transformations=[
            {"id": "reduce", "options": {"mode": "seriesToRows", "reducers": [worst], "includeTimeField": False}},
            {"id": "filterByValue", "options": {
                "filters": [{"config": {"id": op, "options": {"value": value}}, "fieldName": column}],
                "match": "any", "type": "include",
            }},
        ],
    )


def metric_panel(metric: Metric, config: Config) -> G.TimeSeries:
    """A time series of `metric` for the selected instances (the worst first), with its threshold drawn."""
    return timeseries(
        metric.name,
        [metric_target(metric)],
        unit=metric.unit,
        description=(f"{metric.description} Applies to: {metric.applies_to} Statistic: {metric.statistic}. "
                     f"Shows {TOP}."),
        thresholds=metric_steps(metric, config),
        min_value=0 if metric.unit in ("percent", "bytes", "short", "none") else None,
        max_value=100 if metric.unit == "percent" else None,
    )


def pricing_variable(config: Config) -> dict[str, Any]:
    """The `pricing` datasource variable: the PostgreSQL pricing store every SQL panel queries."""
    return datasource_variable("pricing", POSTGRES, config.pricing_uid, "Pricing")


# ---------------------------------------------------------------- dashboard

def dashboard(
    config: Config,
    *,
    slug: str,
    title: str,
    description: str,
    layout: Layout,
    variables: Sequence[dict[str, Any]],
    tags: Sequence[str] = (),
    time_from: str | None = None,
    uid: str | None = None,
) -> G.Dashboard:
    """The frame every dashgen dashboard shares: uid (default `dashgen-<slug>`), managed tag, refresh, time,
    variables."""
    return G.Dashboard(
        title=title,
        uid=uid or f"dashgen-{slug}",
        description=description,
        tags=sorted({config.managed_tag, "aws", "ec2", *tags}),
        panels=layout.panels,
        refresh=config.refresh,
        time=G.Time(time_from or config.time_from, "now"),
        timezone="browser",
        graphTooltip=1,
        # not editable in the UI: the Python module is the source (provisioning refuses UI saves,
        # allowUiUpdates: false; a pushed copy edited in the UI is a conflict at the next push)
        editable=False,
        templating=G.Templating(list=list(variables)),
    ).auto_panel_ids()
