"""Small things Grafana does that the built dashboards and provisioning files must match (issue 15, defect 6).

Each test names the Grafana source it follows.
"""

from __future__ import annotations

import json
import re
from importlib import resources

import psycopg
import yaml

from conftest import REPO
from dashgen.build import render_dashboards
from dashgen.config import Config
from dashgen.grafana.provision import POSTGRES_VERSION, provision_outputs
from dashgen.grafana.render import SCHEMA_VERSION
from dashgen.grafana.validate import all_panels

RED_SHADES = {"red", "dark-red", "semi-dark-red", "light-red", "super-light-red"}


def _provisioned(name: str) -> dict:
    return yaml.safe_load(provision_outputs(Config())[name])


def test_an_unknown_verdict_is_neutral_not_the_red_of_over_budget() -> None:
    """A stat coloured by thresholds shows a value without a colour of its own in its threshold colour, and null
    falls in the base step (grafana/grafana packages/grafana-data getActiveThreshold); the verdicts' base step is
    red. So "unknown" (no progress metric yet) must carry its own, neutral colour: gray (a hex colour or the CSS
    name, both used as they are by createVisualizationColors.ts getColorByName)."""
    dash = render_dashboards(Config())["ec2-cost.json"]
    for title in ("Fits budget", "Makes deadline"):
        panel = next(p for p in all_panels(dash) if p.get("title") == title)
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["thresholds"]["steps"][0] == {"color": "red", "value": None}  # what null would get
        specials = [m["options"] for m in defaults["mappings"] if m["type"] == "special"]
        (unknown,) = [o for o in specials if o["match"] in ("null", "null+nan")]
        assert unknown["result"]["text"] == "unknown"
        assert unknown["result"].get("color") in ("gray", "#808080"), title  # CSS gray, as the theme resolves it
        values = next(m["options"] for m in defaults["mappings"] if m["type"] == "value")
        assert {values["0"]["color"], values["1"]["color"]} == {"red", "green"}
        assert unknown["result"]["color"] not in RED_SHADES | {"green"}


def test_dashboards_are_not_editable_where_ui_saves_are_refused() -> None:
    """The provider refuses UI saves (allowUiUpdates: false, the only provider dashgen writes), so the dashboards
    say `editable: false` (schema default true) instead of letting a user edit what cannot be saved."""
    (provider,) = _provisioned("dashboards/dashgen.yaml")["providers"]
    assert provider["allowUiUpdates"] is False
    for name, dashboard in render_dashboards(Config()).items():
        assert dashboard["editable"] is False, name
    for path in sorted((REPO / "dashboards").glob("*.json")):
        assert json.loads(path.read_text())["editable"] is False, path.name


def test_a_removed_dashboard_file_removes_the_dashboard() -> None:
    """grafana/grafana pkg/services/provisioning/dashboards/file_reader.go handleMissingDashboardFiles: with
    disableDeletion true a dashboard whose file is gone is only unprovisioned (an orphan stays in Grafana); false
    deletes it. The files being the source of truth, dashgen writes false, and the header says what each does."""
    text = provision_outputs(Config())["dashboards/dashgen.yaml"]
    (provider,) = yaml.safe_load(text)["providers"]
    assert provider["disableDeletion"] is False
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "deleting one in the UI is refused" not in header  # the old, wrong explanation
    assert re.search(r"disableDeletion: false\s+a dashboard whose file is gone is deleted", header)
    assert "orphan" in header


def test_postgres_version_is_what_grafana_detects_for_the_pinned_server(pg_server) -> None:
    """Grafana stores `current_setting('server_version_num')::int/100` (grafana-postgresql-datasource
    postgresMetaQuery.ts getVersion, useAutoDetectFeatures.ts). Run that query on a PostgreSQL 16 (the major
    docker-compose.yml pins) and compare."""
    (pricing,) = [d for d in _provisioned("datasources/dashgen.yaml")["datasources"]
                  if d["type"] == "grafana-postgresql-datasource"]
    with psycopg.connect(pg_server.get_uri()) as conn:
        detected = conn.execute("SELECT current_setting('server_version_num')::int/100 as version").fetchone()[0]
    assert pricing["jsonData"]["postgresVersion"] == POSTGRES_VERSION == detected == 1600
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert compose["services"]["postgres"]["image"] == f"postgres:{POSTGRES_VERSION // 100}"


def test_schema_version_is_the_one_the_shipped_grafana_schemas_write() -> None:
    """render.SCHEMA_VERSION is what the oldest supported Grafana writes: the `schemaVersion` default of every
    v1 dashboard schema shipped for `validate` (generated from @grafana/schema; 42 for 12.3.x and 13.0.x)."""
    defaults = []
    for entry in _schema_files(resources.files("dashgen.grafana.schemas")):
        schema = json.loads(entry.read_text())
        prop = schema.get("definitions", {}).get("Dashboard", {}).get("properties", {}).get("schemaVersion")
        if prop and "default" in prop:
            defaults.append(prop["default"])
    assert defaults, "no dashboard schema with a schemaVersion default"
    assert SCHEMA_VERSION == min(defaults) == 42
    for dashboard in render_dashboards(Config()).values():
        assert dashboard["schemaVersion"] == SCHEMA_VERSION


def _schema_files(folder):  # every *dashboard*.json schema of the v1 dashboard, in any version folder
    for entry in folder.iterdir():
        if entry.is_dir():
            yield from _schema_files(entry)
        elif re.search(r"dashboard(?!v2)[^/]*\.json$", entry.name) and "provisioning" not in entry.name:
            yield entry
