"""Render: the one thin layer that turns grafanalib's (stale) output into current Grafana JSON.

grafanalib still emits schemaVersion 12 shapes: `rows`, `style`, legacy threshold keys (`op`, `yaxis`,
`index`, `line`), the string "null", `statistics` arrays, and many keys Grafana 12 ignores. Every fix lives
here, not in the dashboard modules, so that upgrading grafanalib (or leaving it) touches one file.
The output is normalised for stable diffs: no `null` noise, sorted keys (by `fsutil.dumps_json`).
"""

from __future__ import annotations

import json
from typing import Any

# The dashboard JSON schema version we write: 42, what Grafana 12.3 writes. Its migrations end at v42
# (grafana/grafana apps/dashboard/pkg/migration/schemaversion/migrations.go, LATEST_VERSION = 42; v42.go:
# hideFrom.viz implies hideFrom.tooltip), and @grafana/schema 12.3.3 and 13.0.2 both default
# `schemaVersion: 42` (dashboard_types.gen.ts). 42 is not the last version: v43.go turns `formatTime`
# transformations into `convertFieldType`; a Grafana that knows it migrates our files 42 -> 43 on load, a
# no-op here (no dashboard uses formatTime). Raise this only with the schemas the `validate` command reads:
# they are generated from @grafana/schema for the Grafana versions we support (tests/test_grafana_details.py).
SCHEMA_VERSION = 42
# a dashboard is 24 grid columns wide: gridPos.x + w <= 24
# (grafana/grafana public/app/core/constants.ts GRID_COLUMN_COUNT)
GRID_WIDTH = 24

# Keys grafanalib writes that Grafana 12 does not read, or that are legacy.
_DASHBOARD_DROP = {"rows", "style", "hideControls", "sharedCrosshair", "gnetId", "__inputs", "version", "id"}
_PANEL_DROP = {
    "span", "height", "minSpan", "error", "editable", "cacheTimeout", "columns", "fontSize", "maxPerRow",
    "repeatDirection", "color", "mappings", "maxDataPoints", "hideTimeOverride", "transparent", "links",
    "thresholds", "thresholdType", "interval", "repeat",
}
_TARGET_DROP = {"statistics", "alias"}
_STEP_KEEP = {"color", "value"}


def to_json_data(obj: Any) -> Any:
    """grafanalib objects -> plain JSON data (dicts, lists, scalars)."""
    from grafanalib._gen import DashboardEncoder

    return json.loads(json.dumps(obj, cls=DashboardEncoder))


def _prune(value: Any, *, legacy: bool = True) -> Any:
    """Drop None values and the legacy string "null" recursively (Grafana reads absence as default)."""
    if isinstance(value, dict):
        if set(value) == _STEP_KEEP:  # a threshold step: its base value is a meaningful null
            return {"color": value["color"], "value": None if value["value"] == "null" else value["value"]}
        if legacy and "templating" in value and "panels" in value:  # a dashboard: variables hold the user's values
            return {k: _prune(v, legacy=k != "templating") for k, v in value.items()
                    if v is not None and (v != "null" or k == "templating")}
        return {k: _prune(v, legacy=legacy) for k, v in value.items()
                if v is not None and (v != "null" or not legacy)}
    if isinstance(value, list):
        return [_prune(v, legacy=legacy) for v in value]
    return value


def _modern_steps(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        return [{"color": "green", "value": None}]
    out = []
    for i, step in enumerate(raw):
        if not isinstance(step, dict):
            continue
        value = step.get("value")
        out.append({"color": step.get("color", "green"), "value": None if i == 0 or value == "null" else value})
    return out or [{"color": "green", "value": None}]


def _modern_target(target: dict[str, Any]) -> dict[str, Any]:
    t = {k: v for k, v in target.items() if k not in _TARGET_DROP}
    if "namespace" in t or "metricName" in t:  # a CloudWatch metrics query
        if "statistic" not in t and target.get("statistics"):
            t["statistic"] = target["statistics"][0]
        if "label" not in t and target.get("alias"):
            t["label"] = target["alias"]
        t.setdefault("queryMode", "Metrics")
        t.setdefault("metricQueryType", 0)
        t.setdefault("metricEditorMode", 1 if t.get("expression") else 0)
    return t


def _modern_panel(panel: dict[str, Any]) -> dict[str, Any]:
    p = {k: v for k, v in panel.items() if k not in _PANEL_DROP}
    if p.get("type") == "row":
        p = {k: p[k] for k in ("collapsed", "gridPos", "id", "panels", "title", "type") if k in p}
        p["panels"] = [_modern_panel(c) for c in p.get("panels", [])]
        return p
    fc = p.get("fieldConfig") or {}
    defaults = dict(fc.get("defaults") or {})
    thresholds = defaults.get("thresholds") or {}
    defaults["thresholds"] = {"mode": thresholds.get("mode", "absolute"),
                              "steps": _modern_steps(thresholds.get("steps"))}
    defaults.setdefault("mappings", [])
    if isinstance(defaults.get("custom"), dict):
        custom = dict(defaults["custom"])
        custom.pop("displayMode", None)  # table: replaced by cellOptions
        defaults["custom"] = custom
    p["fieldConfig"] = {"defaults": defaults, "overrides": fc.get("overrides") or []}
    p["targets"] = [_modern_target(t) for t in p.get("targets", [])]
    if not p.get("description"):
        p.pop("description", None)
    for key in ("timeFrom", "timeShift"):
        if not p.get(key):
            p.pop(key, None)
    return p


def modernize(data: dict[str, Any]) -> dict[str, Any]:
    """Current Grafana 12 dashboard JSON from grafanalib's `to_json_data()` output."""
    d = {k: v for k, v in _prune(data).items() if k not in _DASHBOARD_DROP}
    d["schemaVersion"] = SCHEMA_VERSION
    d["panels"] = [_modern_panel(p) for p in d.get("panels", [])]
    tp = d.get("timepicker") or {}
    d["timepicker"] = {"refresh_intervals": tp.get("refresh_intervals", ["1m", "5m", "15m", "30m", "1h"])}
    d.setdefault("annotations", {"list": []})
    if not d["annotations"].get("list"):
        d["annotations"] = {"list": [{
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }]}
    d["fiscalYearStartMonth"] = 0
    d["weekStart"] = ""
    d["liveNow"] = False
    d.setdefault("links", [])
    return _prune(d)


def render(dashboard: Any) -> dict[str, Any]:
    """A grafanalib `Dashboard` (or its JSON data) as current, normalised Grafana JSON."""
    data = dashboard if isinstance(dashboard, dict) else to_json_data(dashboard)
    return modernize(data)
