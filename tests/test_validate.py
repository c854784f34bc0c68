import copy
import json
from pathlib import Path
from typing import Any

import pytest

from dashgen.build import render_dashboards
from dashgen.config import GRAFANA_VERSIONS, Config
from dashgen.dashboards import performance
from dashgen.errors import ValidationError
from dashgen.grafana.render import render
from dashgen.grafana.validate import all_panels, check, schema_manifest, validate_dashboard

ROOT = Path(__file__).resolve().parent.parent
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


# ---------------------------------------------------------------- schemas of the Grafana we target

def _table_of(d: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in all_panels(d) if p["type"] == "table")


@pytest.mark.parametrize("version", GRAFANA_VERSIONS)
def test_every_built_dashboard_is_valid_for_each_targeted_grafana(version: str) -> None:
    cfg = Config(grafana_version=version)
    for name, data in render_dashboards(cfg).items():
        assert validate_dashboard(data, cfg) == [], name


@pytest.mark.parametrize("version", GRAFANA_VERSIONS)
def test_table_options_footer_is_refused_since_grafana_12_3(version: str) -> None:
    """Grafana 12.3 moved the table footer into field config (`custom.footer.reducers`); `options.footer` is gone
    from the table's Options (@grafana/schema 12.3.3 `TablePanelCfg_types.gen.d.ts`). The Foundation SDK schemas
    dashgen shipped before accepted it."""
    cfg = Config(grafana_version=version)
    d = copy.deepcopy(render_dashboards(cfg)["ec2-cost.json"])
    _table_of(d)["options"]["footer"] = {"countRows": False, "fields": [], "reducer": ["sum"], "show": False}
    problems = [str(p) for p in validate_dashboard(d, cfg)]
    assert any("options: (root)" in p and "'footer' was unexpected" in p and f"Grafana {version} table" in p
               for p in problems), problems


def test_table_footer_in_field_config_is_the_current_shape() -> None:
    from dashgen.definitions import panels as P
    cfg = Config()
    layout = P.Layout().add(P.table("t", [P.sql_target("SELECT 1")], footer=["sum"]))
    d = render(P.dashboard(cfg, slug="t", title="t", description="", layout=layout,
                           variables=[P.pricing_variable(cfg)]))
    panel = _table_of(d)
    assert "footer" not in panel["options"]
    assert panel["fieldConfig"]["defaults"]["custom"]["footer"] == {"reducers": ["sum"]}
    for version in GRAFANA_VERSIONS:
        assert validate_dashboard(d, Config(grafana_version=version)) == []


def test_unknown_option_key_is_refused_everywhere_the_types_are_closed() -> None:
    problems = broken(lambda d: first_timeseries(d)["options"].update(legendd={}))
    assert any("'legendd' was unexpected" in p and "timeseries schema" in p for p in problems)
    problems = broken(lambda d: first_timeseries(d)["fieldConfig"]["defaults"]["custom"].update(fillOpacityy=1))
    assert any("'fillOpacityy' was unexpected" in p for p in problems)


@pytest.mark.parametrize(("version", "grafana"), [("12.3", "12.3.3"), ("13", "13.0.2")])
def test_schemas_record_the_grafana_they_come_from(version: str, grafana: str) -> None:
    manifest = schema_manifest(version)
    assert manifest["grafana"] == grafana and manifest["package"] == f"@grafana/schema@{grafana}"
    assert manifest["integrity"].startswith("sha512-")
    lock = json.loads((ROOT / "tools" / "grafana" / "package-lock.json").read_text())
    alias = "@grafana/schema" if version == "12.3" else "grafana-schema-13"
    assert lock["packages"][f"node_modules/{alias}"]["integrity"] == manifest["integrity"]


def test_default_target_is_the_grafana_compose_pins() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    assert f"grafana/grafana:{schema_manifest(Config().grafana_version)['grafana']}" in compose


def test_override_properties_are_checked_against_grafanas_field_config() -> None:
    cfg = Config()
    d = render_dashboards(cfg)["ec2-cost.json"]
    table = _table_of(d)
    assert table["fieldConfig"]["overrides"], "the check needs a table with overrides"

    def with_prop(prop: dict[str, Any]) -> list[str]:
        e = copy.deepcopy(d)
        _table_of(e)["fieldConfig"]["overrides"][0]["properties"].append(prop)
        return [str(p) for p in validate_dashboard(e, cfg)]

    assert with_prop({"id": "custom.width", "value": 120}) == []
    assert any("id 'custom.widht' is no field config key (Grafana 12.3 table schema" in p
               for p in with_prop({"id": "custom.widht", "value": 120}))
    assert any("id 'unitt' is no field config key (Grafana 12.3 dashboard schema" in p
               for p in with_prop({"id": "unitt", "value": "percent"}))
    assert any("'wide' is not of type 'number'" in p and "table schema, FieldConfig.width" in p
               for p in with_prop({"id": "custom.width", "value": "wide"}))
    assert any("properties[" in p and "custom.footer" not in p and "reducers" in p
               for p in with_prop({"id": "custom.footer", "value": {"reducers": "sum"}}))


def test_the_word_null_in_a_users_tag_or_title_is_not_the_legacy_null(dashboards_dir) -> None:
    """A tag or title the user chose may be "null" (found by the config fuzz: `managed_tag = "null"`); only
    the legacy value grafanalib writes for a missing number is refused."""
    import dataclasses

    from dashgen.build import build_outputs
    from dashgen.config import Config

    cfg = dataclasses.replace(Config(), managed_tag="null", folder_title="null", instance_tags=("null", "team"))
    assert len(build_outputs(cfg)) == 3  # validates every dashboard, tag "null" included
