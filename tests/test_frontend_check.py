"""Grafana's own frontend code (`@grafana/data` at the pinned versions) as a second validator of the dashboards.

`tools/grafana/check-dashboards.cjs` loads @grafana/data 12.3.3 and 13.0.2 (tools/grafana/package-lock.json) in
one Node process and checks units, reducers, transformation ids, thresholds, colours and option keys, and runs
each panel's transformations with Grafana's `transformDataFrame` on frames shaped like the panel's queries:
the frames are built here, the way Grafana's backends build them:

* PostgreSQL: each panel's rawSql, interpolated as Grafana does (tests/grafana_sql.py), runs on a filled store
  (tests/rightsizing_data.py); `format: table` -> one frame of the result's columns; `format: time_series` ->
  long-to-wide, and with exactly (time, metric, value) each series is named by its metric (grafana/grafana
  `pkg/tsdb/grafana-postgresql-datasource/sqleng/sql_engine.go`, "Before 8x, a special metric column ...").
* CloudWatch: one frame per series, fields `Time` and `Value`, the value field labelled by the query's
  dimensions (or `Series` for Metrics Insights) with `displayNameFromDS` = the label CloudWatch returns (a
  dynamic label resolved per instance; an empty label is the instance id for a GROUP BY InstanceId)
  (grafana/grafana-cloudwatch-datasource `pkg/cloudwatch/response_parser.go`, `buildDataFrames`).

Node is needed (not by dashgen's users, by its tests): when `node` is missing the tests are skipped with that
reason; when `tools/grafana/node_modules` is missing they run `npm ci` there first (from the committed lockfile).
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashgen.build import render_dashboards
from dashgen.config import GRAFANA_VERSIONS, Config
from dashgen.grafana.validate import all_panels
from grafana_sql import ALL, expand

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "tools" / "grafana"
CHECK = TOOLS / "check-dashboards.cjs"
INSTANCE_PROP = re.compile(r"\$\{PROP\('Dim\.InstanceId'\)\}")


# ---------------------------------------------------------------- node and the pinned packages

@pytest.fixture(scope="session")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed: the check with Grafana's frontend code (tools/grafana) needs Node 20+")
    if not (TOOLS / "node_modules" / "@grafana" / "data").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: cannot install tools/grafana's pinned packages (npm ci)")
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"], cwd=TOOLS,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"npm ci in tools/grafana failed:\n{done.stderr[-2000:]}"
    return path


def run_check(node: str, files: list[Path], frames: dict[str, Any] | None, tmp: Path,
              versions: tuple[str, ...] = GRAFANA_VERSIONS) -> tuple[int, list[str]]:
    cmd = [node, str(CHECK), "--grafana", ",".join(versions)]
    if frames is not None:
        frames_file = tmp / f"frames-{uuid.uuid4().hex[:8]}.json"
        frames_file.write_text(json.dumps(frames))
        cmd += ["--frames", str(frames_file)]
    done = subprocess.run([*cmd, *map(str, files)], capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), f"check-dashboards.cjs failed to run ({done.returncode}):\n{done.stderr}"
    return done.returncode, [line for line in done.stdout.splitlines() if ": grafana " in line]


# ---------------------------------------------------------------- frames shaped like the panels' queries

@pytest.fixture(scope="module")
def filled_store(pg_server: object) -> Iterator[str]:
    """A store filled by tests/rightsizing_data.py, its data ending 6 days ago (so "last week" has data)."""
    import psycopg

    from rightsizing_data import fill_store

    admin = pg_server.get_uri()  # type: ignore[attr-defined]
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = admin.replace("/postgres?", f"/{name}?", 1)
    with psycopg.connect(dsn) as conn:
        fill_store(conn, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=6))
    yield dsn
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _field_type(type_name: str) -> str:
    if type_name in {"int2", "int4", "int8", "float4", "float8", "numeric", "oid"}:
        return "number"
    if type_name in {"timestamp", "timestamptz", "date"}:
        return "time"
    if type_name == "bool":
        return "boolean"
    return "string"


def _value(v: Any) -> Any:
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, dt.datetime):
        return int((v if v.tzinfo else v.replace(tzinfo=dt.UTC)).timestamp() * 1000)
    if isinstance(v, dt.date):
        return int(dt.datetime.combine(v, dt.time(), dt.UTC).timestamp() * 1000)
    if isinstance(v, dict | list):
        return json.dumps(v, sort_keys=True)
    return v


class Queries:
    """Runs a dashboard's SQL as Grafana would, with every variable at its default (All where offered)."""

    def __init__(self, dsn: str, dashboard: dict[str, Any]) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)
        self.now = dt.datetime.now(dt.UTC)
        self.time_from, self.time_to = self.now - dt.timedelta(days=9), self.now
        self.instances = [r[0] for r in self.conn.execute(
            "SELECT instance_id FROM dashgen.instances ORDER BY 1").fetchall()]
        self.values: dict[str, Any] = {}
        self.all_values: dict[str, str] = {}
        for var in (dashboard.get("templating") or {}).get("list", []):
            self._resolve(var)

    def _resolve(self, var: dict[str, Any]) -> None:
        name = var["name"]
        if var.get("includeAll"):
            self.values[name] = ALL
            if "allValue" in var:
                self.all_values[name] = var["allValue"]
                return
            # All without a custom all value: Grafana sends every option of the variable
            ds = (var.get("datasource") or {}).get("type")
            if ds == "grafana-postgresql-datasource":
                self.values[name] = [str(r[0]) for r in self._rows(var["query"])[1]]
            else:
                self.values[name] = self.instances if name == "instance" else [str(var["current"].get("value"))]
            return
        value = (var.get("current") or {}).get("value", "")
        self.values[name] = value if isinstance(value, list) else str(value)

    def _rows(self, sql: str) -> tuple[list[tuple[str, str]], list[tuple[Any, ...]]]:
        text = expand(sql, time_from=self.time_from, time_to=self.time_to, variables=self.values,
                      all_values=self.all_values, interval_ms=3_600_000)
        cur = self.conn.execute(text.encode())
        assert cur.description is not None
        import psycopg.adapt  # noqa: F401

        names = []
        for d in cur.description:
            info = self.conn.adapters.types.get(d.type_code)
            names.append((d.name, info.name if info else "text"))
        return names, cur.fetchall()

    def sql_frames(self, target: dict[str, Any]) -> list[dict[str, Any]]:
        columns, rows = self._rows(target["rawSql"])
        fields = [{"name": n, "type": _field_type(t), "values": [_value(r[i]) for r in rows]}
                  for i, (n, t) in enumerate(columns)]
        if target.get("format") != "time_series":
            return [{"refId": target["refId"], "fields": fields}]
        time = next(f for f in fields if f["type"] == "time")
        labels = [f for f in fields if f["type"] == "string"]
        numbers = [f for f in fields if f["type"] == "number"]
        if not labels:
            return [{"refId": target["refId"], "fields": [time, *numbers]}]
        # long to wide: one field per (value column, label set); with exactly (time, metric, value) the series
        # takes the metric's value as its name and loses the label
        series: dict[tuple[str, tuple[tuple[str, str], ...]], dict[int, Any]] = {}
        times = sorted(set(time["values"]))
        for row in range(len(time["values"])):
            key_labels = tuple((f["name"], str(f["values"][row])) for f in labels)
            for num in numbers:
                series.setdefault((num["name"], key_labels), {})[time["values"][row]] = num["values"][row]
        out = [{"name": "time", "type": "time", "values": times}]
        for (col, key_labels), points in sorted(series.items()):
            field: dict[str, Any] = {"name": col, "type": "number", "labels": dict(key_labels),
                                     "values": [points.get(t) for t in times]}
            if len(fields) == 3 and len(key_labels) == 1 and key_labels[0][0] == "metric":
                field["name"], field["labels"] = key_labels[0][1], {}
            out.append(field)
        return [{"refId": target["refId"], "fields": out}]

    def cloudwatch_frames(self, target: dict[str, Any]) -> list[dict[str, Any]]:
        label = target.get("label") or ""
        insights = target.get("metricQueryType") == 1
        frames = []
        for k, iid in enumerate(self.instances):
            name = INSTANCE_PROP.sub(iid, label) if label else iid
            labels = {"Series": name} if insights else {"InstanceId": iid}
            frames.append({"name": name, "refId": target["refId"], "fields": [
                {"name": "Time", "type": "time", "values": [0, 3_600_000]},
                {"name": "Value", "type": "number", "labels": labels, "config": {"displayNameFromDS": name},
                 "values": [10.0 * (k + 1), 20.0 * (k + 1)]},
            ]})
        return frames

    def panel_frames(self, panel: dict[str, Any]) -> list[dict[str, Any]]:
        frames: list[dict[str, Any]] = []
        for target in panel.get("targets") or []:
            ds = (target.get("datasource") or panel.get("datasource") or {}).get("type")
            if ds == "grafana-postgresql-datasource":
                frames += self.sql_frames(target)
            elif ds == "cloudwatch":
                frames += self.cloudwatch_frames(target)
        return frames


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return render_dashboards(Config())


@pytest.fixture(scope="module")
def frames(filled_store: str, built: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, dashboard in built.items():
        queries = Queries(filled_store, dashboard)
        out[name] = {str(p["id"]): queries.panel_frames(p) for p in all_panels(dashboard)
                     if p.get("type") != "row" and p.get("targets")}
    return out


def write(tmp: Path, dashboards: dict[str, dict[str, Any]]) -> list[Path]:
    paths = []
    for name, data in sorted(dashboards.items()):
        path = tmp / name
        path.write_text(json.dumps(data, indent=2, sort_keys=True))
        paths.append(path)
    return paths


# ---------------------------------------------------------------- the checks

def test_committed_dashboards_pass_grafanas_frontend_checks_for_12_3_and_13(
    node: str, frames: dict[str, Any], tmp_path: Path,
) -> None:
    """Everything `dashgen build` writes (dashboards/*.json, byte-identical to what it renders) passes."""
    files = sorted((REPO / "dashboards").glob("*.json"))
    assert {f.name for f in files} == set(frames)
    code, problems = run_check(node, files, frames, tmp_path)
    assert (code, problems) == (0, [])


def test_frames_model_the_queries(frames: dict[str, Any], built: dict[str, Any]) -> None:
    """The frames the check runs on carry the data the panels' transformations, overrides and sort are about."""
    cost = built["ec2-cost.json"]
    per_instance = next(p for p in all_panels(cost) if p.get("title") == "Cost per instance")
    join = next(t for t in per_instance["transformations"] if t["id"] == "joinByField")["options"]["byField"]
    by_ref = {f["refId"]: [x["name"] for x in f["fields"]] for f in frames["ec2-cost.json"][str(per_instance["id"])]}
    assert set(by_ref) == {"A", "B"} and all(join in names for names in by_ref.values()), by_ref
    week = next(p for p in all_panels(built["ec2-performance.json"]) if "last week" in p.get("title", ""))
    last_week = [f["name"] for frame in frames["ec2-performance.json"][str(week["id"])] for f in frame["fields"]
                 if f["name"].endswith(" last week")]
    assert last_week and all(n.startswith("i-") for n in last_week), "series named '<instance> last week'"
    rightsizing = next(p for p in all_panels(built["ec2-rightsizing.json"]) if p.get("title") == "Rightsizing")
    (table,) = frames["ec2-rightsizing.json"][str(rightsizing["id"])]
    assert len(table["fields"][0]["values"]) == 5  # the five instances of tests/rightsizing_data.py


MUTATIONS = {
    "wrong unit": (
        lambda d: _first(d, "timeseries")["fieldConfig"]["defaults"].update(unit="percentt"),
        "unit \"percentt\" is not in Grafana's unit registry",
    ),
    "wrong reducer": (
        lambda d: _first(d, "timeseries")["options"]["legend"].update(calcs=["mean", "meann"]),
        "reducer \"meann\" is not in Grafana's fieldReducers",
    ),
    "wrong transformation id": (
        lambda d: _with_transform(d)["transformations"][0].update(id="reduceRows"),
        "id \"reduceRows\" is not in Grafana's standardTransformersRegistry",
    ),
    "unknown option key": (
        lambda d: _first(d, "table")["options"].update(footer={"show": False}),
        "options.footer: unknown key",
    ),
    "unknown override property": (
        lambda d: _first(d, "table")["fieldConfig"]["overrides"][0]["properties"].append(
            {"id": "custom.widht", "value": 100}),
        "id \"custom.widht\": unknown key",
    ),
    "unsorted thresholds": (
        lambda d: _first(d, "timeseries")["fieldConfig"]["defaults"]["thresholds"]["steps"].extend(
            [{"color": "orange", "value": 90}, {"color": "red", "value": 50}]),
        "thresholds must ascend",
    ),
    "base threshold not null": (
        lambda d: _first(d, "timeseries")["fieldConfig"]["defaults"]["thresholds"]["steps"][0].update(value=0),
        "the base step's value must be null",
    ),
    "colour outside the theme": (
        lambda d: _first(d, "timeseries")["fieldConfig"]["defaults"]["thresholds"]["steps"][0].update(
            color="grene"),
        "colour \"grene\" does not resolve in Grafana's theme",
    ),
    "override on a field the transformations do not yield": (
        lambda d: _first(d, "table", transformed=True)["fieldConfig"]["overrides"][0]["matcher"].update(
            options="Average"),
        "matches no field of the panel's data after its transformations",
    ),
    "sort by a column that does not exist": (
        lambda d: _first(d, "table", sorted_=True)["options"]["sortBy"][0].update(displayName="Saving"),
        "names no column of the panel's data",
    ),
}


def _first(d: dict[str, Any], kind: str, *, transformed: bool = False, sorted_: bool = False) -> dict[str, Any]:
    return next(p for p in all_panels(d) if p["type"] == kind
                and (not transformed or (p.get("transformations") and p["fieldConfig"]["overrides"]))
                and (not sorted_ or p.get("options", {}).get("sortBy")))


def _with_transform(d: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in all_panels(d) if p.get("transformations"))


def _target_dashboard(built: dict[str, Any], mutate: Any) -> str:
    for name in sorted(built):
        try:
            mutate(copy.deepcopy(built[name]))
            return name
        except StopIteration:
            continue
    raise AssertionError("no dashboard has the panel this mutation needs")


def test_mutations_are_caught(node: str, built: dict[str, Any], frames: dict[str, Any], tmp_path: Path) -> None:
    """Each mutation of a built dashboard makes the check fail with its own message (one Node run for all)."""
    mutated: dict[str, dict[str, Any]] = {}
    expected: dict[str, str] = {}
    for label, (mutate, message) in MUTATIONS.items():
        name = _target_dashboard(built, mutate)
        data = copy.deepcopy(built[name])
        mutate(data)
        file = f"{label.replace(' ', '-')}--{name}"
        mutated[file], expected[file] = data, message
    mutated_frames = {file: frames[file.split("--")[1]] for file in mutated}
    code, problems = run_check(node, write(tmp_path, mutated), mutated_frames, tmp_path)
    assert code == 1
    for file, message in expected.items():
        for version in GRAFANA_VERSIONS:
            hits = [p for p in problems if p.startswith(f"{tmp_path / file}: grafana {version}:")]
            assert any(message in p for p in hits), (file, version, hits)


def test_bad_usage_is_one_line_and_exit_2(node: str, tmp_path: Path) -> None:
    done = subprocess.run([node, str(CHECK), "--grafana", "11.6", "x.json"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "expected one of 12.3, 13" in done.stderr


def test_schemas_regenerate_byte_identical(node: str, tmp_path: Path) -> None:
    """tools/grafana/gen-schemas.mjs is deterministic and the shipped schemas are its output for the lockfile."""
    out = tmp_path / "schemas"
    done = subprocess.run([node, str(TOOLS / "gen-schemas.mjs"), "--out", str(out)], capture_output=True,
                          text=True, timeout=300, env={**os.environ})
    assert done.returncode == 0, done.stderr
    shipped = REPO / "src" / "dashgen" / "grafana" / "schemas"
    for version in GRAFANA_VERSIONS:
        generated = sorted(p.name for p in (out / f"grafana-{version}").iterdir())
        assert generated == sorted(p.name for p in (shipped / f"grafana-{version}").iterdir())
        for name in generated:
            assert (out / f"grafana-{version}" / name).read_bytes() == \
                (shipped / f"grafana-{version}" / name).read_bytes(), f"grafana-{version}/{name}"
