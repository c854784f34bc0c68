import copy
from typing import Any

import pytest

from dashgen.config import Config
from dashgen.dashboards import performance
from dashgen.errors import ValidationError
from dashgen.render import render
from dashgen.validate import all_panels, check, validate_dashboard

GOOD = render(performance.build(Config()))


def broken(edit: Any) -> list[str]:
    d = copy.deepcopy(GOOD)
    edit(d)
    return [str(p) for p in validate_dashboard(d)]


def first_timeseries(d: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in all_panels(d) if p["type"] == "timeseries")


def test_built_dashboard_is_valid() -> None:
    assert validate_dashboard(GOOD) == []


def test_missing_statistic_is_caught_with_panel_and_path() -> None:
    problems = broken(lambda d: first_timeseries(d)["targets"][0].pop("statistic"))
    assert any("targets[0]" in p and "statistic" in p and "'CPU this week vs. last week'" in p for p in problems)


def test_misspelt_target_field_is_caught_by_the_cloudwatch_schema() -> None:
    problems = broken(lambda d: first_timeseries(d)["targets"][0].update(metricname="CPUUtilization"))
    assert any("MetricsQuery" in p and "metricname" in p for p in problems)


def test_bad_panel_option_is_caught_by_the_panel_schema() -> None:
    problems = broken(lambda d: first_timeseries(d)["options"]["legend"].update(displayMode="huge"))
    assert any("timeseries schema" in p and "legend.displayMode" in p for p in problems)


def test_legacy_keys_are_refused() -> None:
    assert any("legacy key 'rows'" in p for p in broken(lambda d: d.update(rows=[])))
    steps = lambda d: first_timeseries(d)["fieldConfig"]["defaults"]["thresholds"]["steps"]  # noqa: E731
    assert any("legacy threshold key 'op'" in p for p in broken(lambda d: steps(d)[1].update(op="gt")))
    assert any('the string "null"' in p for p in broken(lambda d: steps(d)[0].update(value="null")))


def test_schema_version_must_be_current() -> None:
    assert any("schemaVersion: expected >= 39" in p for p in broken(lambda d: d.update(schemaVersion=12)))


def test_duplicate_ids_and_overlaps() -> None:
    def dup(d: dict[str, Any]) -> None:
        d["panels"][1]["id"] = d["panels"][0]["id"]

    assert any("duplicate panel id" in p for p in broken(dup))

    def overlap(d: dict[str, Any]) -> None:
        d["panels"][1]["gridPos"] = dict(d["panels"][0]["gridPos"])

    assert any("overlaps panel 1 'Instances over 80% CPU'" in p for p in broken(overlap))

    def too_wide(d: dict[str, Any]) -> None:
        d["panels"][0]["gridPos"]["x"] = 25 - d["panels"][0]["gridPos"]["w"]

    assert any("wider than the 24-column grid" in p for p in broken(too_wide))


def test_unknown_datasource_reference() -> None:
    problems = broken(lambda d: first_timeseries(d).update(datasource={"type": "cloudwatch", "uid": "prod-cw"}))
    assert any("'prod-cw' is neither a template variable nor a configured uid" in p for p in problems)
    problems = broken(lambda d: first_timeseries(d).update(datasource={"type": "cloudwatch", "uid": "${cw}"}))
    assert any("names no datasource template variable" in p for p in problems)


def test_check_raises_one_line_with_a_count() -> None:
    d = copy.deepcopy(GOOD)
    d["schemaVersion"] = 12
    d["rows"] = []
    with pytest.raises(ValidationError) as info:
        check(d, "x.json")
    assert str(info.value).startswith("x.json: ") and "more)" in str(info.value)
    assert "\n" not in str(info.value)
