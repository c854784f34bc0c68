import re
from typing import Any

import pytest

from dashgen.catalogue import GROUPS, METRICS
from dashgen.config import Config
from dashgen.dashboards import performance
from dashgen.grafana.render import render
from dashgen.grafana.validate import all_panels


def built(config: Config | None = None) -> dict[str, Any]:
    return render(performance.build(config or Config()))


def panel(d: dict[str, Any], title: str) -> dict[str, Any]:
    return next(p for p in all_panels(d) if p.get("title") == title)


def cloudwatch_targets(p: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in p.get("targets", []) if t["datasource"]["type"] == "cloudwatch"]


INSIGHTS = re.compile(r'SELECT (AVG|SUM|MAX|MIN)\("?([^")]+)"?\) FROM SCHEMA\("AWS/EC2", InstanceId\) '
                      r"\$insights_where GROUP BY InstanceId ORDER BY \1\(\) (ASC|DESC) LIMIT 500")
FUNCTION = {"Average": "AVG", "Sum": "SUM", "Maximum": "MAX", "Minimum": "MIN"}


def insights(target: dict[str, Any]) -> tuple[str, str, str]:
    """(function, metric, order) of a Metrics Insights target."""
    m = INSIGHTS.fullmatch(target["sqlExpression"])
    assert m, target["sqlExpression"]
    return m.group(1), m.group(2), m.group(3)


def test_queries_every_metric_of_the_catalogue() -> None:
    d = built()
    queried = {insights(t)[1] for p in all_panels(d) for t in cloudwatch_targets(p)}
    assert queried == {m.name for m in METRICS}
    for m in METRICS:
        (target,) = panel(d, m.name)["targets"]
        assert target["statistic"] == m.statistic
        assert insights(target) == (FUNCTION[m.statistic], m.name, "ASC" if m.direction == "below" else "DESC")


def test_targets_use_the_current_cloudwatch_query_model() -> None:
    """Metrics Insights (metricQueryType 1, code editor 1) over the hidden $insights_where selection."""
    for p in all_panels(built()):
        for t in cloudwatch_targets(p):
            assert t["queryMode"] == "Metrics"
            assert t["metricQueryType"] == 1 and t["metricEditorMode"] == 1
            assert "statistics" not in t and "alias" not in t
            assert t["label"] in ("", "${LABEL} this week")  # the default label: the instance id
            assert t["datasource"] == {"type": "cloudwatch", "uid": "${datasource}"}
            assert t["statistic"] in FUNCTION


def test_cpu_threshold_is_80_by_default_and_configurable() -> None:
    steps = panel(built(), "CPUUtilization")["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps == [{"color": "green", "value": None}, {"color": "red", "value": 80.0}]
    cpu = panel(built(), "CPUUtilization")["fieldConfig"]["defaults"]
    assert cpu["custom"]["thresholdsStyle"]["mode"] == "dashed+area"
    steps70 = panel(built(Config(thresholds={"CPUUtilization": 70})), "CPUUtilization")
    assert steps70["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"] == 70


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("StatusCheckFailed", [("green", None), ("red", 0.0)]),
        ("EBSByteBalance%", [("red", None), ("green", 20.0)]),
        ("CPUCreditBalance", [("orange", None), ("green", 50.0)]),
        ("NetworkIn", [("green", None)]),
    ],
)
def test_threshold_directions(metric: str, expected: list[tuple[str, float | None]]) -> None:
    steps = panel(built(), metric)["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [(s["color"], s["value"]) for s in steps] == expected


def test_a_collapsible_row_per_group_holding_its_metrics() -> None:
    d = built()
    rows = [p for p in d["panels"] if p["type"] == "row"]
    assert [r["title"] for r in rows] == [g.title for g in GROUPS]
    for r, g in zip(rows, GROUPS, strict=True):
        children = r["panels"] if r["collapsed"] else []
        if r["collapsed"]:
            assert {c["title"] for c in children} == {m.name for m in METRICS if m.group == g.key}


def test_stat_row_counts_instances_over_threshold() -> None:
    d = built()
    stats = [p for p in d["panels"] if p["type"] == "stat"]
    assert [s["gridPos"]["y"] for s in stats] == [0] * 6
    assert [s["title"] for s in stats[-2:]] == ["Instances selected", "Inventory synced"]
    assert stats[-1]["fieldConfig"]["defaults"]["unit"] == "dateTimeFromNow"
    cpu = stats[0]
    assert cpu["title"] == "Instances over 80% CPU"
    assert cpu["options"]["reduceOptions"]["calcs"] == ["count"]
    flt = next(t for t in cpu["transformations"] if t["id"] == "filterByValue")
    assert flt["options"]["filters"][0]["config"] == {"id": "greater", "options": {"value": 80.0}}


def test_week_over_week_cpu_is_one_panel() -> None:
    p = panel(built(), "CPU this week vs. last week")
    assert p["datasource"]["uid"] == "-- Mixed --" and p["timeFrom"] == "7d" and "timeShift" not in p
    this_week, last_week = p["targets"]
    assert insights(this_week)[:2] == ("AVG", "CPUUtilization") and this_week["period"] == "3600"
    assert this_week["label"].endswith(" this week")
    assert last_week["datasource"] == {"type": "grafana-postgresql-datasource", "uid": "${pricing}"}
    assert last_week["format"] == "time_series"
    (dashed,) = p["fieldConfig"]["overrides"]
    assert dashed["matcher"]["options"] == "/ last week$/"
    assert p["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"] == 80


def test_last_week_sql_from_the_built_json_shifts_the_store_by_a_week(migrated_db: str) -> None:
    """The panel's store query, with the variables Grafana holds for the store (dashboard_variables.resolve)."""
    import datetime as dt

    import psycopg

    from dashboard_variables import Instance, load, resolve
    from dashgen.store.db import migrate
    from grafana_cloudwatch import interpolate

    now = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
    fleet = [Instance("i-0aaa"), Instance("i-0bbb", tags={"team": "ml"}), Instance("i-0ccc", region="eu-west-1")]
    with psycopg.connect(migrated_db) as conn:
        migrate(conn)
        load(conn, fleet)
        for days_ago in (3, 8, 10, 16):  # 8 and 10 days ago are last week's part of a 7-day panel
            for iid, cpu in (("i-0aaa", 40.0), ("i-0bbb", 90.0), ("i-0ccc", 10.0)):
                conn.execute(
                    "INSERT INTO dashgen.instance_utilisation_hourly (instance_id, hour, cpu_avg) VALUES (%s, %s, %s)",
                    (iid, now - dt.timedelta(days=days_ago), cpu + days_ago),
                )
        conn.commit()
        d = built()
        sql = panel(d, "CPU this week vs. last week")["targets"][1]["rawSql"]
        sql = sql.replace("$__timeFrom()", f"'{(now - dt.timedelta(days=7)).isoformat()}'")
        sql = sql.replace("$__timeTo()", f"'{now.isoformat()}'")

        def last_week(picks: dict[str, list[str]]) -> list[tuple[Any, ...]]:
            rows = conn.execute(interpolate(sql, resolve(d, conn, fleet, picks))).fetchall()
            conn.rollback()
            return rows

        one = last_week({"instance": ["i-0aaa"]})
        everyone = last_week({})  # All: the instances of the region (i-0ccc is in another one)
    assert one == [
        (now - dt.timedelta(days=3), "i-0aaa last week", 50.0),
        (now - dt.timedelta(days=1), "i-0aaa last week", 48.0),
    ]
    assert {r[1] for r in everyone} == {"i-0aaa last week", "i-0bbb last week"}


def test_variables_select_instances_from_the_pricing_store() -> None:
    """Tag, Name and Instance come from the store, as on the cost and rightsizing dashboards (issue 15, 2)."""
    variables = {v["name"]: v for v in built()["templating"]["list"]}
    assert list(variables) == ["datasource", "region", "pricing", "account", "tag_key", "tag_value", "name",
                               "instance", "insights_where", "period"]
    for name in ("account", "tag_value", "name", "instance", "insights_where"):
        assert variables[name]["datasource"] == {"type": "grafana-postgresql-datasource", "uid": "${pricing}"}
    # All of Instance is a fixed sentinel: the tag and Name filters decide, never a list of instance ids
    assert variables["instance"]["allValue"] == variables["tag_value"]["allValue"] == "'__all__'"
    assert variables["instance"]["multi"] and variables["instance"]["includeAll"]
    assert "${region:sqlstring}" in variables["instance"]["query"]
    hidden = variables["insights_where"]
    assert hidden["hide"] == 2 and not hidden["multi"] and not hidden["includeAll"]
    assert hidden["current"]["value"] == "WHERE InstanceId = '-'"  # fails closed: no instance, not every one
    assert "dashgen.insights_selection(" in hidden["query"]
    assert variables["datasource"]["current"]["value"] == "dashgen-cloudwatch"
    cfg = Config(instance_tags=("team",), cloudwatch_uid="cw-prod")
    variables = {v["name"]: v for v in built(cfg)["templating"]["list"]}
    assert variables["tag_key"]["current"]["text"] == "team"
    assert variables["datasource"]["current"]["value"] == "cw-prod"
