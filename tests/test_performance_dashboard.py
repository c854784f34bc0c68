from typing import Any

import pytest

from dashgen.catalogue import GROUPS, METRICS
from dashgen.config import Config
from dashgen.dashboards import performance
from dashgen.render import render
from dashgen.validate import all_panels


def built(config: Config | None = None) -> dict[str, Any]:
    return render(performance.build(config or Config()))


def panel(d: dict[str, Any], title: str) -> dict[str, Any]:
    return next(p for p in all_panels(d) if p.get("title") == title)


def test_queries_every_metric_of_the_catalogue() -> None:
    d = built()
    queried = {t["metricName"] for p in all_panels(d) for t in p.get("targets", [])}
    assert queried == {m.name for m in METRICS}
    for m in METRICS:
        (target,) = panel(d, m.name)["targets"]
        assert target["statistic"] == m.statistic
        assert target["namespace"] == "AWS/EC2"
        assert target["dimensions"] == {"InstanceId": "$instance"}


def test_targets_use_the_current_cloudwatch_query_model() -> None:
    for p in all_panels(built()):
        for t in p.get("targets", []):
            assert t["queryMode"] == "Metrics"
            assert t["metricQueryType"] == 0 and t["metricEditorMode"] == 0
            assert "statistics" not in t and "alias" not in t
            assert t["label"] == "${PROP('Dim.InstanceId')}"
            assert t["datasource"] == {"type": "cloudwatch", "uid": "${datasource}"}


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
    assert [s["gridPos"]["y"] for s in stats] == [0, 0, 0, 0]
    cpu = stats[0]
    assert cpu["title"] == "Instances over 80% CPU"
    assert cpu["options"]["reduceOptions"]["calcs"] == ["count"]
    flt = next(t for t in cpu["transformations"] if t["id"] == "filterByValue")
    assert flt["options"]["filters"][0]["config"] == {"id": "greater", "options": {"value": 80.0}}


def test_week_over_week_cpu() -> None:
    d = built()
    this_week, last_week = panel(d, "CPU this week"), panel(d, "CPU same period last week")
    assert this_week["timeFrom"] == last_week["timeFrom"] == "7d"
    assert last_week["timeShift"] == "7d" and "timeShift" not in this_week
    assert this_week["targets"] == last_week["targets"]


def test_variables_select_instances_by_tag_and_name() -> None:
    variables = {v["name"]: v for v in built()["templating"]["list"]}
    assert list(variables) == ["datasource", "region", "tag_key", "tag_value", "name", "instance", "period"]
    assert variables["datasource"]["current"]["value"] == "dashgen-cloudwatch"
    assert "tag:$tag_key" in variables["instance"]["query"] and "tag:Name" in variables["instance"]["query"]
    assert variables["instance"]["multi"] and variables["instance"]["includeAll"]
    cfg = Config(instance_tags=("team",), cloudwatch_uid="cw-prod")
    variables = {v["name"]: v for v in built(cfg)["templating"]["list"]}
    assert variables["tag_key"]["query"] == "team"
    assert variables["datasource"]["current"]["value"] == "cw-prod"
