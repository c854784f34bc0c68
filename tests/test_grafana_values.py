"""Tag values and Names Grafana would rewrite (issue 15, defect 3), run through Grafana's real interpolation rules.

EC2 tags are written by anyone who may tag an instance. The instances below carry one hostile value per character
class as tag `team` and as Name; they are synced into a real PostgreSQL store by `dashgen sync` (moto). Each test
takes the options Grafana would offer (the shipped variable queries, interpolated by `grafana_sql` and run on the
store), picks the one whose text is the value, and runs the shipped panel SQL with it the way Grafana sends it:
every value must select exactly its instance, and no value may break a panel or the other rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import boto3
import psycopg
import pytest

from cost_scenario import LINUX_AMI
from dashgen.build import render_dashboards
from dashgen.config import Config, Experiment, parse_config
from dashgen.grafana.validate import all_panels
from dashgen.rightsizing.queries import recommendations
from dashgen.store.sqlvars import ALL_VALUE, STORE_ALL, encode
from grafana_sql import ALL, MacroError, Var, backend, expand, frontend, rfc3339nano, sqlstring

HOSTILE = {  # character class -> a tag value / Name of that class
    "quote": "O'Brien's",
    "double quote": 'say "hi"',
    "backslash": "C:\\temp\\ \\' \\\\",
    "dollar": "price $5 $name ${team} $$",
    "macro": "$__timeFrom() and $__interval_ms",
    "unix epoch macro": "$__unixEpochFrom()",
    "dollar digit": "cost$1(x)",
    "unclosed macro": "cost$1(x",
    "semicolon": "x'); DROP TABLE dashgen.instances; --",
    "newline": "line 1\nline 2\n\ttab",
    "unicode": "Zürich 東京 🚀 \u200b",
    "comma and wildcards": "a,b %_ * ?",
    "the All sentinel": STORE_ALL,
    "quoted sentinel": ALL_VALUE,
}
PLAIN = "plain-team"  # one ordinary instance: it must never be selected by a hostile value, nor lost
KEY = 'cost "center", eu'  # a tag key dashgen.toml accepts (config refuses `$`), with what Grafana rewrites
TAG_KEYS = ("team", KEY)
EXPERIMENT = "exp \"q\" $__timeFrom() cost$1(x) __all__"  # an experiment name from dashgen.toml
COST_PANELS = ("Cost per instance", "Cost by tag value", "Cumulative cost in the time range")


@pytest.fixture(scope="module")
def hostile_store(pg_server) -> Iterator[tuple[str, dict[str, str]]]:
    """A store synced from moto: one instance per hostile value (tag `team` = Name = value, and tag KEY = value),
    plus one plain instance. Yields (dsn, value -> instance id)."""
    from moto import mock_aws

    from dashgen.sync import sync

    admin = pg_server.get_uri()
    name = "t_hostile_values"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = admin.replace("/postgres?", f"/{name}?", 1)
    ids: dict[str, str] = {}
    with pytest.MonkeyPatch.context() as mp, mock_aws():
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            mp.setenv(key, "testing")
        ec2 = boto3.client("ec2", region_name="us-east-1")
        for value in [*HOSTILE.values(), PLAIN]:
            tags = [{"Key": "team", "Value": value}, {"Key": "Name", "Value": value}, {"Key": KEY, "Value": value}]
            out = ec2.run_instances(ImageId=LINUX_AMI, MinCount=1, MaxCount=1, InstanceType="m5.large",
                                    TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
            ids[value] = out["Instances"][0]["InstanceId"]
        sync(_config(), dsn=dsn, prices="bundled", session=boto3.Session(region_name="us-east-1"),
             now=dt.datetime.now(dt.UTC))
    yield dsn, ids
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _config() -> Config:
    experiment = Experiment(EXPERIMENT, "team", HOSTILE["double quote"], budget_usd=10.0,
                            deadline=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    return Config(instance_tags=TAG_KEYS, experiments=(experiment, Experiment("plain", "team", PLAIN, budget_usd=1.0,
                                                                         deadline=experiment.deadline)))


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict]:
    built = render_dashboards(_config())
    return {"cost": built["ec2-cost.json"], "rightsizing": built["ec2-rightsizing.json"]}


def _now_range() -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    return now - dt.timedelta(days=1), now + dt.timedelta(hours=1)


def _rows(dsn: str, sql: str) -> list[dict]:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(sql.encode())
        names = [d.name for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _variable(dashboard: dict, name: str) -> dict:
    return next(v for v in dashboard["templating"]["list"] if v["name"] == name)


def _grafana_vars(dashboard: dict, values: dict[str, object]) -> dict[str, Var]:
    """Every variable of `dashboard` as Grafana holds it: `values` by name, else the variable's current value."""
    out: dict[str, Var] = {}
    for v in dashboard["templating"]["list"]:
        value = values.get(v["name"], v["current"]["value"])
        out[v["name"]] = Var(value, multi=v.get("multi", False), include_all=v.get("includeAll", False),
                             all_value=v.get("allValue"))
    return out


def _sql(dashboard: dict, sql: str, values: dict[str, object], *, interval_ms: int = 60_000) -> str:
    frm, to = _now_range()
    return expand(sql, time_from=frm, time_to=to, variables=_grafana_vars(dashboard, values), interval_ms=interval_ms)


def options(dsn: str, dashboard: dict, name: str, values: dict[str, object]) -> dict[str, str]:
    """text -> value of the options Grafana lists for variable `name` (its query run as Grafana runs it; the
    SQL datasource's ResponseParser takes `__text` / `__value` when both exist, else every value is its text)."""
    var = _variable(dashboard, name)
    if var["type"] == "custom":
        return {o["text"]: o["value"] for o in var["options"]}
    rows = _rows(dsn, _sql(dashboard, var["query"], values))
    if rows and {"__text", "__value"} <= set(rows[0]):
        return {r["__text"]: r["__value"] for r in rows}
    return {v: v for r in rows for v in r.values()}


def pick(dsn: str, dashboard: dict, values: dict[str, object], name: str, *texts: str) -> list[str]:
    offered = options(dsn, dashboard, name, values)
    missing = [t for t in texts if t not in offered]
    assert not missing, f"{name}: Grafana would not offer {missing!r}"
    return [offered[t] for t in texts]


def panel_targets(dashboard: dict, title: str) -> list[str]:
    panel = next(p for p in all_panels(dashboard) if p.get("title") == title)
    return [t["rawSql"] for t in panel["targets"]]


def selected_ids(dsn: str, dashboard: dict, values: dict[str, object]) -> set[str]:
    """The instances of the "Cost per instance" panel (both queries agree) for these variable values."""
    first, second = (_rows(dsn, _sql(dashboard, sql, values)) for sql in panel_targets(dashboard, "Cost per instance"))
    assert {r["Instance"] for r in first} == {r["Instance"] for r in second}
    return {r["Instance"] for r in first}


def _tag_key(dsn: str, dashboard: dict, key: str = "team") -> str:
    return pick(dsn, dashboard, {}, "tag_key", key)[0]


# ---------------------------------------------------------------- the model follows Grafana's source


def test_the_model_applies_grafanas_sqlstring_and_macro_rules() -> None:
    """scenes formatRegistry.ts sqlStringFormatter; grafana macros.go / sqleng Interpolate (see grafana_sql)."""
    assert sqlstring(["O'Brien", 'say "hi"', "C:\\x"]) == "'O''Brien','say \\\"hi\\\"','C:\\x'"
    t0 = dt.datetime(2026, 12, 1, 1, 2, 3, 450000, tzinfo=dt.UTC)
    assert rfc3339nano(t0) == "2026-12-01T01:02:03.45Z" and rfc3339nano(t0.replace(microsecond=0)).endswith(":03Z")
    sent = frontend("SELECT ${v:sqlstring}, $__timeFrom(), $__interval_ms, $v, ${v:text}",
                    {"v": Var(["a'b"], multi=True, options=[("A", "a'b")])}, interval_ms=300_000)
    assert sent == "SELECT 'a''b', $__timeFrom(), 300000, 'a''b', A"  # one pass: $__timeFrom() is the backend's
    assert backend("SELECT '$__interval', $__timeFrom()", time_from=t0, time_to=t0, interval_ms=300_000) == (
        "SELECT '5m', '2026-12-01T01:02:03.45Z'")
    with pytest.raises(MacroError, match='unknown macro "1"'):
        backend("SELECT 'cost$1(x)'", time_from=t0, time_to=t0)
    # a custom All value is inserted as is (and interpolated again), never formatted
    assert frontend("ARRAY[${v:sqlstring}]", {"v": Var(ALL, multi=True, include_all=True, all_value="'__all__'")}) \
        == "ARRAY['__all__']"


@pytest.mark.parametrize("label", ["double quote", "macro", "unix epoch macro", "dollar digit", "unclosed macro"])
def test_without_encoding_grafana_rewrites_these_values(hostile_store, label: str) -> None:
    """Why the values are encoded: inserted as they are with `${var:sqlstring}`, each of these comes back changed
    or fails the query (what the shipped panels did before migration 045)."""
    dsn, _ = hostile_store
    value = HOSTILE[label]
    frm, to = _now_range()
    try:
        sql = expand("SELECT (ARRAY[${v:sqlstring}]::text[]) AS v, (1) AS after", time_from=frm, time_to=to,
                     variables={"v": [value]})
        got = _rows(dsn, sql)
    except (MacroError, psycopg.Error):
        return  # the whole query fails
    assert got != [{"v": [value], "after": 1}]


# ---------------------------------------------------------------- every value matches exactly


@pytest.mark.parametrize("label", list(HOSTILE))
def test_a_tag_value_is_offered_and_selects_exactly_its_instance_on_every_panel(hostile_store, dashboards,
                                                                               label: str) -> None:
    dsn, ids = hostile_store
    value = HOSTILE[label]
    for dashboard in dashboards.values():
        key = _tag_key(dsn, dashboard)
        (choice,) = pick(dsn, dashboard, {"tag_key": key}, "tag_value", value)
        assert choice == encode(value)
        values = {"tag_key": key, "tag_value": [choice], "name": ALL}
        if dashboard is dashboards["cost"]:
            assert selected_ids(dsn, dashboard, values) == {ids[value]}
            by_tag = _rows(dsn, _sql(dashboard, panel_targets(dashboard, "Cost by tag value")[0], values))
            assert [(r["Tag value"], r["Instances"]) for r in by_tag] == [(value, 1)]
            series = _rows(dsn, _sql(dashboard, panel_targets(dashboard, COST_PANELS[2])[0], values))
            assert {r["metric"] for r in series} == {value, "(all selected)"}
        else:
            rows = _rows(dsn, _sql(dashboard, panel_targets(dashboard, "Rightsizing")[0], values))
            assert [r["instance_id"] for r in rows] == [ids[value]]


@pytest.mark.parametrize("label", list(HOSTILE))
def test_a_name_is_offered_and_selects_exactly_its_instance(hostile_store, dashboards, label: str) -> None:
    dsn, ids = hostile_store
    value = HOSTILE[label]
    dash = dashboards["cost"]
    key = _tag_key(dsn, dash)
    (choice,) = pick(dsn, dash, {"tag_key": key, "tag_value": ALL}, "name", value)
    assert selected_ids(dsn, dash, {"tag_key": key, "tag_value": ALL, "name": [choice]}) == {ids[value]}


def test_an_experiment_name_grafana_would_rewrite_selects_its_experiment(hostile_store, dashboards) -> None:
    dsn, ids = hostile_store
    cost, rightsizing = dashboards["cost"], dashboards["rightsizing"]
    (choice,) = pick(dsn, cost, {}, "experiment", EXPERIMENT)
    for title in ("Budget and deadline", "Fits budget", "Makes deadline"):
        rows = _rows(dsn, _sql(cost, panel_targets(cost, title)[0], {"experiment": [choice]}))
        assert [r.get("Experiment", r.get("metric")) for r in rows] == [EXPERIMENT], title
    budget = _rows(dsn, _sql(cost, panel_targets(cost, "Budget and deadline")[0], {"experiment": ALL}))
    assert sorted(r["Experiment"] for r in budget) == sorted([EXPERIMENT, "plain"])
    (choice,) = pick(dsn, rightsizing, {}, "experiment", EXPERIMENT)
    rows = _rows(dsn, _sql(rightsizing, panel_targets(rightsizing, "Experiment comparison: ${experiment:text}")[0],
                           {"experiment": choice}))
    assert [(r["experiment"], r["instance_id"]) for r in rows] == [(EXPERIMENT, ids[HOSTILE["double quote"]])]


def test_a_configured_tag_key_grafana_would_rewrite_is_offered_and_used_intact(hostile_store, dashboards) -> None:
    dsn, ids = hostile_store
    assert parse_config({"dashboards": {"instance_tags": list(TAG_KEYS)}}, "dashgen.toml").instance_tags == TAG_KEYS
    for dashboard in dashboards.values():
        assert list(options(dsn, dashboard, "tag_key", {})) == list(TAG_KEYS)  # the configured order
    dash = dashboards["cost"]
    key = _tag_key(dsn, dash, KEY)
    values = dict(zip(HOSTILE.values(), pick(dsn, dash, {"tag_key": key}, "tag_value", *HOSTILE.values()),
                      strict=True))
    assert selected_ids(dsn, dash, {"tag_key": key, "tag_value": [values["cost$1(x)"]], "name": ALL}) == {
        ids["cost$1(x)"]}


def test_all_hostile_values_together_select_them_all_and_nothing_else(hostile_store, dashboards) -> None:
    dsn, ids = hostile_store
    dash = dashboards["cost"]
    key = _tag_key(dsn, dash)
    chosen = pick(dsn, dash, {"tag_key": key}, "tag_value", *HOSTILE.values())
    assert selected_ids(dsn, dash, {"tag_key": key, "tag_value": chosen, "name": ALL}) == {
        ids[v] for v in HOSTILE.values()}
    names = pick(dsn, dash, {"tag_key": key, "tag_value": chosen}, "name", *HOSTILE.values())
    assert selected_ids(dsn, dash, {"tag_key": key, "tag_value": ALL, "name": names}) == {
        ids[v] for v in HOSTILE.values()}


def test_all_is_every_instance_and_a_real_tag_value_all_is_only_itself(hostile_store, dashboards) -> None:
    dsn, ids = hostile_store
    dash = dashboards["cost"]
    key = _tag_key(dsn, dash)
    assert selected_ids(dsn, dash, {"tag_key": key, "tag_value": ALL, "name": ALL}) == set(ids.values())
    (real,) = pick(dsn, dash, {"tag_key": key}, "tag_value", STORE_ALL)
    assert real != STORE_ALL
    assert selected_ids(dsn, dash, {"tag_key": key, "tag_value": [real], "name": ALL}) == {ids[STORE_ALL]}


def test_a_value_that_is_no_option_matches_nothing_and_breaks_nothing(hostile_store, dashboards) -> None:
    """A value reaches the SQL only as an option (the store variables set allowCustomValue false; Grafana drops a
    URL value that is no option, scenes MultiValueVariable.ts). One that gets there anyway (an old bookmark, a
    stale option) is unmatchable: no error, no row."""
    dsn, _ = hostile_store
    dash = dashboards["cost"]
    for name in ("tag_key", "tag_value", "name", "experiment"):
        assert _variable(dash, name)["allowCustomValue"] is False
    key = _tag_key(dsn, dash)
    for stale in ("team", "zz", "abc", "ff", "00", ""):
        assert selected_ids(dsn, dash, {"tag_key": key, "tag_value": [stale], "name": ALL}) == set()
        assert selected_ids(dsn, dash, {"tag_key": stale, "tag_value": ALL, "name": [stale]}) == set()


def test_every_panel_of_both_dashboards_runs_with_every_hostile_selection(hostile_store, dashboards) -> None:
    """Each SQL panel and variable query runs without error with all hostile values selected, and with All."""
    dsn, ids = hostile_store
    ran = 0
    for dashboard in dashboards.values():
        key = _tag_key(dsn, dashboard)
        chosen = pick(dsn, dashboard, {"tag_key": key}, "tag_value", *HOSTILE.values())
        for values in ({"tag_key": key, "tag_value": chosen, "name": ALL},
                       {"tag_key": key, "tag_value": ALL, "name": ALL}):
            for panel in all_panels(dashboard):
                for target in panel.get("targets", []):
                    if "rawSql" in target:
                        _rows(dsn, _sql(dashboard, target["rawSql"], values))
                        ran += 1
            for var in dashboard["templating"]["list"]:
                if var.get("datasource", {}).get("type") == "grafana-postgresql-datasource":
                    _rows(dsn, _sql(dashboard, var["query"], values))
    assert ran >= 20
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM dashgen.instances").fetchone()[0] == len(ids)


@pytest.mark.parametrize("label", list(HOSTILE))
def test_the_cli_selects_the_same_instance_as_the_panel(hostile_store, label: str) -> None:
    """`dashgen rightsize --tag team=VALUE` binds the same encoded value (dashgen.store.sqlvars.bind)."""
    dsn, ids = hostile_store
    value = HOSTILE[label]
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert [r["instance_id"] for r in recommendations(conn, _config(), tag=f"team={value}")] == [ids[value]]
        assert [r["instance_id"] for r in recommendations(conn, _config(), names=[value])] == [ids[value]]
        assert len(recommendations(conn, _config())) == len(ids)


def test_the_variable_queries_hold_nothing_grafana_rewrites() -> None:
    """The tag-key query embeds only hex literals; the store variables' texts come from the store."""
    from dashgen.store.sqlvars import decode

    built = render_dashboards(_config())
    for dashboard in (built["ec2-cost.json"], built["ec2-rightsizing.json"]):
        query = _variable(dashboard, "tag_key")["query"]
        assert '"' not in query and "$" not in query and KEY not in query
        assert _variable(dashboard, "tag_key")["current"] == {"text": "team", "value": encode("team")}
    assert decode(encode(KEY)) == KEY and decode("zz") is None and decode("ff") is None


def test_the_store_keeps_the_values_as_they_are(hostile_store) -> None:
    """Nothing is encoded at rest: the store holds the exact tags, the encoding lives in the variable queries."""
    dsn, ids = hostile_store
    with psycopg.connect(dsn) as conn:
        stored = dict(conn.execute("SELECT instance_id, tags ->> 'team' FROM dashgen.instances").fetchall())
    assert stored == {i: v for v, i in ids.items()}
