"""Validate dashboards against Grafana's own published schemas and dashgen's house rules.

Checks, each reported with the file, the panel (id and title) and the JSON path at fault:
the dashboard against the dashboard schema of the Grafana the config targets (`[grafana] version`: 12.3 or 13,
generated from npm `@grafana/schema` by tools/grafana/gen-schemas.mjs); each panel's options and
`fieldConfig.defaults.custom` against its panel schema; each CloudWatch target against `CloudWatchMetricsQuery`;
`schemaVersion` >= 39; no legacy keys; unique panel ids; no overlapping `gridPos` on the 24-column grid;
every datasource reference a template variable or a configured uid. The schemas ship as package data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from dashgen.config import GRAFANA_VERSIONS, Config
from dashgen.errors import ValidationError
from dashgen.grafana.render import GRID_WIDTH

MIN_SCHEMA_VERSION = 39
BUILTIN_DATASOURCE_UIDS = {"-- Grafana --", "-- Dashboard --", "-- Mixed --", "grafana"}
PANEL_SCHEMAS = {"timeseries": "timeseries", "stat": "stat", "table": "table"}
LEGACY_DASHBOARD_KEYS = ("rows", "style")
LEGACY_STEP_KEYS = ("op", "yaxis", "index", "line")


@dataclass(frozen=True)
class Problem:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


# Each check: (schema file, definition). The files are generated from Grafana's own published types
# (npm @grafana/schema at the version `[grafana] version` targets) by tools/grafana/gen-schemas.mjs; every object
# in them is closed, so a key the pinned Grafana does not know (a table's `options.footer` on 12.3) is an error.
_DEFINITIONS = {
    ("dashboard", "Dashboard"): ("dashboard", "Dashboard"),
    ("dashboard", "Panel"): ("dashboard", "Panel"),
    ("dashboard", "RowPanel"): ("dashboard", "RowPanel"),
    ("dashboard", "FieldConfigSource"): ("dashboard", "FieldConfigSource"),
    ("cloudwatch", "MetricsQuery"): ("cloudwatch", "CloudWatchMetricsQuery"),
}


def _schema_dir(version: str) -> Any:
    if version not in GRAFANA_VERSIONS:
        raise ValidationError(f"grafana version {version!r}: no schemas shipped (one of {', '.join(GRAFANA_VERSIONS)})")
    return resources.files("dashgen.grafana.schemas").joinpath(f"grafana-{version}")


@cache
def schema_manifest(version: str) -> dict[str, Any]:
    """What the schemas of `version` were generated from (package, exact Grafana version, integrity)."""
    return dict(json.loads(_schema_dir(version).joinpath("manifest.json").read_text()))


@cache
def _schema(version: str, name: str) -> dict[str, Any]:
    return dict(json.loads(_schema_dir(version).joinpath(f"{name}.schema.json").read_text()))


class SchemaCheck:
    """One JSON Schema, checked in two steps: jsonschema-rs (compiled, ~20x faster) gives the verdict, and only
    when it says invalid (or cannot judge) does jsonschema, the reference implementation, walk the value for the
    messages. A valid value (every value `build` writes) never imports jsonschema; an invalid verdict is always
    re-judged by jsonschema, so every message is its own (tests/test_validate_engines.py checks both agree)."""

    def __init__(self, schema: dict[str, Any], draft: str = "7") -> None:
        self.schema, self.draft = schema, draft
        self._fast: Any = None
        self._slow: Any = None

    def valid(self, instance: Any) -> bool:
        """True when jsonschema-rs finds `instance` valid (False: invalid, or it cannot judge)."""
        try:
            if self._fast is None:
                import jsonschema_rs

                cls = jsonschema_rs.Draft7Validator if self.draft == "7" else jsonschema_rs.Draft202012Validator
                self._fast = cls(self.schema, validate_formats=False)  # as jsonschema without a format checker
            return bool(self._fast.is_valid(instance))
        except Exception:  # noqa: BLE001 - not installed, or a value it cannot read (NaN): jsonschema decides
            return False

    def errors(self, instance: Any) -> list[Any]:
        """jsonschema's `ValidationError`s of `instance`, ordered by path (empty when valid)."""
        if self.valid(instance):
            return []
        if self._slow is None:
            import jsonschema

            cls = jsonschema.Draft7Validator if self.draft == "7" else jsonschema.Draft202012Validator
            self._slow = cls(self.schema)
        return sorted(self._slow.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])


@cache
def _validator(version: str, name: str, definition: str) -> SchemaCheck | None:
    file, real = _DEFINITIONS.get((name, definition), (name, definition))
    root = _schema(version, file)
    if real not in root.get("definitions", {}):
        return None  # e.g. the stat panel has no custom field config
    return SchemaCheck({**root, "$ref": f"#/definitions/{real}"})


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".") or "(root)"


@cache
def _schema_messages(version: str, name: str, definition: str, instance_json: str) -> tuple[str, ...]:
    """Schema errors of one JSON value, memoised: panels share options, field config and query shapes."""
    validator = _validator(version, name, definition)
    if validator is None:
        return ()
    errors = validator.errors(json.loads(instance_json))
    return tuple(
        f"{_path(err.absolute_path)}: {err.message[:200]} (Grafana {version} {name} schema, {definition})"
        for err in errors[:5]
    )


def _schema_problems(version: str, name: str, definition: str, instance: Any, where: str) -> Iterator[Problem]:
    validator = _validator(version, name, definition)
    if validator is None or validator.valid(instance):
        return  # the common case, without the memo's JSON round trip
    key = json.dumps(instance, sort_keys=True, default=str)
    for message in _schema_messages(version, name, definition, key):
        yield Problem(where, message)


def _resolve(root: dict[str, Any], schema: Any) -> Any:
    while isinstance(schema, dict) and "$ref" in schema:
        schema = root["definitions"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


@cache
def _property_validator(version: str, name: str, definition: str, key: str) -> SchemaCheck | None:
    """A validator for one property of a closed definition, or None when the definition has no such key."""
    file, real = _DEFINITIONS.get((name, definition), (name, definition))
    root = _schema(version, file)
    owner = _resolve(root, root.get("definitions", {}).get(real))
    prop = (owner or {}).get("properties", {}).get(key) if isinstance(owner, dict) else None
    if prop is None:
        return None
    return SchemaCheck({**root, **prop})


def _override_problems(version: str, kind: str | None, panel: dict[str, Any]) -> Iterator[Problem]:
    """Each override property: an id Grafana's field config has (`custom.<key>` from the panel's own field
    config), and a value of that key's type."""
    overrides = (panel.get("fieldConfig") or {}).get("overrides") or []
    for i, override in enumerate(overrides if isinstance(overrides, list) else []):
        for j, prop in enumerate((override or {}).get("properties") or []):
            pid = prop.get("id") if isinstance(prop, dict) else None
            where = f"{_label(panel)} fieldConfig.overrides[{i}].properties[{j}]"
            if not isinstance(pid, str):
                yield Problem(where, "override property without an id")
                continue
            if pid.startswith("custom."):
                if kind is None:
                    continue  # a panel type dashgen ships no schema for
                validator = _property_validator(version, kind, "FieldConfig", pid.removeprefix("custom."))
                source = f"Grafana {version} {kind} schema, FieldConfig"
            else:
                validator = _property_validator(version, "dashboard", "FieldConfig", pid)
                source = f"Grafana {version} dashboard schema, FieldConfig"
            if validator is None:
                yield Problem(where, f"id {pid!r} is no field config key ({source})")
                continue
            errors = validator.errors(prop.get("value"))
            for err in errors[:3]:
                yield Problem(where, f"value{_path(err.absolute_path).replace('(root)', '')}: {err.message[:200]} "
                                     f"({source}.{pid.removeprefix('custom.')})")


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []) or []:
        if isinstance(panel, dict):
            yield panel
            for child in panel.get("panels", []) or []:
                if isinstance(child, dict):
                    yield child


def _label(panel: dict[str, Any]) -> str:
    return f"panel {panel.get('id', '?')} {panel.get('title', '')!r}"


# Keys whose string values are the user's own text (a tag, a title, a label): "null" is a legitimate word there;
# elsewhere it is the legacy string grafanalib writes for a null value.
_TEXT_KEYS = {"tags", "title", "description", "text", "label", "displayName", "name", "folder_title"}


def _user_text(path: tuple[Any, ...]) -> bool:
    keys = [k for k in path if isinstance(k, str)]
    return bool(keys) and (keys[0] == "templating" or keys[-1] in _TEXT_KEYS)  # variables carry the user's values


def _scan(dashboard: dict[str, Any]) -> tuple[list[Problem], list[tuple[tuple[Any, ...], dict[str, Any]]]]:
    """One pass over every value: the legacy problems (non-finite numbers, the string "null", legacy threshold
    keys) in document order, and every `datasource` object with its path. The path is a tuple only where
    something is reported: building one per value made this walk most of `validate`."""
    problems = [Problem(key, f"legacy key {key!r} (removed from Grafana's dashboard model)")
                for key in LEGACY_DASHBOARD_KEYS if key in dashboard]
    refs: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    path: list[Any] = []

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            if len(path) >= 2 and path[-2] == "steps":
                problems.extend(Problem(_path(path), f"legacy threshold key {key!r}")
                                for key in LEGACY_STEP_KEYS if key in value)
            if path and path[-1] == "datasource":
                refs.append((tuple(path), value))
            for key, child in value.items():
                path.append(key)
                visit(child)
                path.pop()
        elif isinstance(value, list):
            for i, child in enumerate(value):
                path.append(i)
                visit(child)
                path.pop()
        elif isinstance(value, float):
            if not math.isfinite(value):
                problems.append(Problem(_path(path), f"{value} is not a JSON number (written as "
                                                     f"{json.dumps(value)}, which JSON.parse in Grafana rejects)"))
        elif value == "null" and not _user_text(tuple(path)):
            problems.append(Problem(_path(path), 'the string "null" (use JSON null or leave the key out)'))

    visit(dashboard)
    return problems, refs


def _grid_problems(panels: list[dict[str, Any]], scope: str) -> Iterator[Problem]:
    placed: list[tuple[dict[str, Any], tuple[int, int, int, int]]] = []
    for panel in panels:
        gp = panel.get("gridPos")
        if not isinstance(gp, dict):
            yield Problem(_label(panel), "no gridPos")
            continue
        x, y, w, h = (gp.get(k, 0) for k in ("x", "y", "w", "h"))
        if not all(isinstance(v, int) for v in (x, y, w, h)) or w <= 0 or h <= 0 or x < 0 or y < 0:
            yield Problem(_label(panel), f"gridPos {gp} is not a positive rectangle")
            continue
        if x + w > GRID_WIDTH:
            yield Problem(_label(panel), f"gridPos x+w = {x + w} is wider than the {GRID_WIDTH}-column grid")
        for other, (ox, oy, ow, oh) in placed:
            if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                yield Problem(_label(panel), f"gridPos overlaps {_label(other)}{scope}")
        placed.append((panel, (x, y, w, h)))


def _datasource_problems(dashboard: dict[str, Any], refs: list[tuple[tuple[Any, ...], dict[str, Any]]],
                         config: Config) -> Iterator[Problem]:
    variables = {
        v.get("name") for v in (dashboard.get("templating") or {}).get("list", []) or []
        if isinstance(v, dict) and v.get("type") == "datasource"
    }
    allowed = {config.cloudwatch_uid, config.pricing_uid, *BUILTIN_DATASOURCE_UIDS}
    for path, value in refs:
        uid = value.get("uid")
        if not isinstance(uid, str):
            yield Problem(_path(path), "datasource reference without a uid")
            continue
        if uid.startswith("$"):
            name = uid.strip("${}").split(":")[0]
            if name not in variables:
                yield Problem(_path(path), f"datasource uid {uid!r} names no datasource template variable")
        elif uid not in allowed:
            yield Problem(
                _path(path),
                f"datasource uid {uid!r} is neither a template variable nor a configured uid "
                f"({', '.join(sorted({config.cloudwatch_uid, config.pricing_uid}))})",
            )


def validate_dashboard(dashboard: Any, config: Config | None = None) -> list[Problem]:
    """All problems of one dashboard (an empty list when it is valid)."""
    config = config or Config()
    version = config.grafana_version
    if not isinstance(dashboard, dict):
        return [Problem("(root)", "a dashboard must be a JSON object")]
    # The dashboard schema checks panels through oneOf(Panel, RowPanel); checking each panel against the one
    # definition its type names gives the same verdict, clearer messages, and half the work.
    panels = dashboard.get("panels")
    shell = {**dashboard, "panels": []} if isinstance(panels, list) else dashboard
    problems = list(_schema_problems(version, "dashboard", "Dashboard", shell, "dashboard"))
    for panel in all_panels(dashboard) if isinstance(panels, list) else ():
        is_row = panel.get("type") == "row"
        body = {**panel, "panels": []} if is_row else dict(panel)
        if not is_row and isinstance(panel.get("fieldConfig"), dict):
            # Panel.fieldConfig is a $ref to FieldConfigSource: checked on its own, it is the same check, and
            # panels of one kind share it (memoised), which halves the time `build` spends validating.
            problems += [Problem(_label(panel), f"fieldConfig.{p.message}") for p in _schema_problems(
                version, "dashboard", "FieldConfigSource", body.pop("fieldConfig"), _label(panel))]
        problems += _schema_problems(version, "dashboard", "RowPanel" if is_row else "Panel", body, _label(panel))
    schema_version = dashboard.get("schemaVersion")
    if not isinstance(schema_version, int) or schema_version < MIN_SCHEMA_VERSION:
        problems.append(Problem("schemaVersion", f"expected >= {MIN_SCHEMA_VERSION}, got {schema_version!r}"))
    legacy, refs = _scan(dashboard)
    problems += legacy
    seen: dict[Any, dict[str, Any]] = {}
    for panel in all_panels(dashboard):
        pid = panel.get("id")
        if pid in seen:
            problems.append(Problem(_label(panel), f"duplicate panel id {pid} (also {_label(seen[pid])})"))
        seen[pid] = panel
        kind = PANEL_SCHEMAS.get(panel.get("type", ""))
        if kind:
            problems += _schema_problems(version, kind, "Options", panel.get("options", {}), f"{_label(panel)} options")
            custom = ((panel.get("fieldConfig") or {}).get("defaults") or {}).get("custom", {})
            problems += _schema_problems(version, kind, "FieldConfig", custom, f"{_label(panel)} fieldConfig.custom")
        problems += _override_problems(version, kind, panel)
        for i, target in enumerate(panel.get("targets", []) or []):
            ds = (target.get("datasource") or panel.get("datasource") or {}) if isinstance(target, dict) else {}
            if isinstance(ds, dict) and ds.get("type") == "cloudwatch":
                problems += _schema_problems(
                    version, "cloudwatch", "MetricsQuery", target, f"{_label(panel)} targets[{i}]")
                if "statistic" not in target:
                    problems.append(Problem(f"{_label(panel)} targets[{i}]",
                                            "CloudWatch query has no 'statistic' (Grafana rejects it)"))
    top = [p for p in dashboard.get("panels", []) or [] if isinstance(p, dict)]
    problems += _grid_problems(top, "")
    for r in top:
        if r.get("type") == "row" and r.get("panels"):
            problems += _grid_problems(r["panels"], f" (in row {r.get('title')!r})")
    problems += _datasource_problems(dashboard, refs, config)
    return problems


def _not_json(name: str) -> Any:
    """Python's json reads NaN, Infinity and -Infinity; JSON (and Grafana's JSON.parse) does not."""
    raise ValueError(f"{name} is not a JSON number")


def validate_file(path: Path, config: Config | None = None) -> list[Problem]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=_not_json)
    except FileNotFoundError:
        return [Problem(str(path), "no such file")]
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return [Problem(str(path), f"not valid JSON: {exc}")]
    return [Problem(f"{path}: {p.where}", p.message) for p in validate_dashboard(data, config)]


def validate_files(paths: list[Path] | None, config: Config | None = None) -> list[tuple[Path, list[Problem]]]:
    """`dashgen validate`: each file (default: dashboards/*.json) with its problems (empty when valid)."""
    paths = list(paths or sorted(Path("dashboards").glob("*.json")))
    if not paths:
        from dashgen.errors import ConfigError

        raise ConfigError("dashboards: no dashboard files to validate (run `dashgen build` first)")
    return [(path, validate_file(path, config)) for path in paths]


def check(dashboard: dict[str, Any], name: str, config: Config | None = None) -> None:
    """Raise `ValidationError` with the first problem (and a count) when `dashboard` is invalid."""
    problems = validate_dashboard(dashboard, config)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ValidationError(f"{name}: {problems[0]}{more}")
