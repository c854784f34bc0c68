"""The cost dashboard: its structure, and its SQL (taken from the built JSON, macros expanded as Grafana does)
run against a synced store, checked to the cent against costs computed independently (tests/cost_scenario)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import psycopg
import pytest

from cost_scenario import INJECTION, billed_seconds, exact_cost, expected_cost, synced_store
from dashgen.build import render_dashboards
from dashgen.config import Config, Experiment
from dashgen.grafana.validate import all_panels, validate_dashboard
from dashgen.store.sqlvars import encode as hx
from dashgen.store.sqlvars import load_sql
from grafana_sql import ALL, expand

CENT = Decimal("0.01")
ALL_VALUES = {"account": "'__all__'", "tag_value": "'__all__'", "name": "'__all__'", "experiment": "'__all__'"}


def _config(**kw) -> Config:
    return Config(**kw)


def cost_dashboard(config: Config | None = None) -> dict:
    return render_dashboards(config or _config())["ec2-cost.json"]


def panel_sql(dashboard: dict, title: str, ref_id: str = "A") -> str:
    panel = next(p for p in all_panels(dashboard) if p.get("title") == title)
    return next(t["rawSql"] for t in panel["targets"] if t["refId"] == ref_id)


def run(dsn: str, sql: str) -> tuple[dt.datetime, list[dict]]:
    """Run one panel query in a transaction and return the database's now() (the query's notion of now)."""
    with psycopg.connect(dsn) as conn, conn.transaction():
        now = conn.execute("SELECT now()").fetchone()[0]
        cur = conn.execute(sql.encode())
        names = [d.name for d in cur.description]
        return now, [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def q(value) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(CENT)


@pytest.fixture(scope="module")
def store(module_db: str):
    """The scenario synced once for the module: the tests using it only read (panel SQL and functions)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        scenario, _ = synced_store(module_db, monkeypatch)
    return module_db, scenario


def test_the_cost_dashboard_is_built_validated_and_reads_the_pricing_variable() -> None:
    config = _config(pricing_uid="my-pg")
    dash = cost_dashboard(config)
    assert dash["uid"] == "dashgen-ec2-cost"
    assert validate_dashboard(dash, config) == []
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["pricing"]["query"] == "grafana-postgresql-datasource"
    assert variables["pricing"]["current"]["value"] == "my-pg"
    assert variables["tag_key"]["current"] == {"text": "experiment", "value": hx("experiment")}
    titles = [p["title"] for p in all_panels(dash)]
    for expected in ("Cost per instance", "Cost by tag value", "Cumulative cost in the time range",
                     "Budget and deadline", "Fits budget", "Makes deadline"):
        assert expected in titles
    for panel in all_panels(dash):
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "grafana-postgresql-datasource", "uid": "${pricing}"}


def test_every_panel_sql_is_its_sql_file_verbatim_and_quotes_every_variable() -> None:
    dash = cost_dashboard()
    sqls = [t["rawSql"] for p in all_panels(dash) for t in p.get("targets", [])]
    sqls += [v["query"] for v in dash["templating"]["list"] if v.get("type") == "query" and v["name"] != "tag_key"]
    files = {load_sql(n) for n in ("cost_instances", "cost_instances_ebs", "cost_by_tag", "cost_cumulative",
                                   "cost_reconciliation", "cost_reconciliation_by_tag",
                                   "experiment_budget", "experiment_fits_budget", "experiment_makes_deadline",
                                   "experiment_progress", "var_account", "var_tag_value", "var_name",
                                   "var_experiment", "inventory_synced")}
    assert set(sqls) == files
    for sql in sqls:
        # every template variable is ${var:sqlstring}; only Grafana's own $__ macros appear otherwise
        assert not re.search(r"\$(?!__)(?!\{\w+:sqlstring\})", sql), sql


@pytest.mark.parametrize("window", ["in the past", "up to now", "mid-run"])
def test_cost_per_instance_matches_an_independent_computation_to_the_cent(store, window) -> None:
    dsn, scenario = store
    frm, to = {
        "in the past": (scenario.t0 - dt.timedelta(hours=1), scenario.t0 + dt.timedelta(hours=5, minutes=20)),
        "up to now": (scenario.t0 + dt.timedelta(hours=2), dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)),
        "mid-run": (scenario.t0 + dt.timedelta(minutes=47, seconds=13), scenario.t0 + dt.timedelta(hours=1, seconds=5)),
    }[window]
    sql = expand(panel_sql(cost_dashboard(), "Cost per instance"), time_from=frm, time_to=to,
                 variables={"tag_key": hx("experiment"), "tag_value": ALL, "name": ALL, "account": ALL},
                 all_values=ALL_VALUES)
    now, rows = run(dsn, sql)
    by_id = {r["Instance"]: r for r in rows}
    assert len(rows) == len(scenario.planned) == 6
    checked = 0
    for p in scenario.planned:
        row = by_id[p.instance_id]
        assert row["Name"] == p.tags["Name"] and row["Type"] == p.instance_type
        assert q(row["Cost in range"]) == expected_cost(p, frm, to, now), p.key
        assert q(row["Cost to date"]) == expected_cost(p, dt.datetime.min.replace(tzinfo=dt.UTC),
                                                       dt.datetime.max.replace(tzinfo=dt.UTC), now), p.key
        checked += 1
    assert checked == 6
    a1, b1, win = (by_id[scenario.by_key(k).instance_id] for k in ("a1", "b1", "w"))
    assert win["USD/hour"] is None and win["Cost in range"] is None and win["Cost to date"] is None  # unknown
    assert b1["Cost to date"] == pytest.approx(60 * 0.2688 / 3600, rel=1e-12)  # ran 30 s, billed the 60 s minimum
    assert a1["Tags"] == "experiment=alpha, team=ml"  # Name has its own column
    if window == "in the past":  # worked out by hand: alpha-1 ran 2 h 13 min 7 s at $0.0672/h
        assert q(a1["Cost in range"]) == Decimal("0.15")  # 7987 s * 0.0672 / 3600 = 0.14909
        assert a1["Hours in range"] == pytest.approx(7987 / 3600, rel=1e-12)


def test_billed_seconds_by_runs_and_by_rows_agree_with_an_independent_computation(store) -> None:
    """dashgen.instance_costs computes a range either way (chosen by how many runs ended after its start); both
    give every instance's billed seconds exactly, for ranges before, across and inside runs, and empty ones."""
    dsn, scenario = store
    t0, h, s = scenario.t0, dt.timedelta(hours=1), dt.timedelta(seconds=1)
    windows = [(t0 - h, t0), (t0 - h, t0 + 5 * h + 20 * 60 * s), (t0 + 47 * 60 * s, t0 + h + 5 * s),
               (t0 + 30 * 60 * s + 10 * s, t0 + 30 * 60 * s + 50 * s),  # inside b1's 60 s minimum
               (t0 + 2 * h, t0 + 200 * h), (t0 + h + 17 * s, t0 + h + 17 * s), (t0 + 3 * h, t0 + 2 * h)]
    by_id = {p.instance_id: p for p in scenario.planned}
    with psycopg.connect(dsn) as conn, conn.transaction():
        now = conn.execute("SELECT now()").fetchone()[0]
        for frm, to in windows:
            for by_runs in (True, False, None):
                rows = conn.execute("SELECT instance_id, seconds_in_range FROM dashgen.instance_costs(%s, %s, %s)",
                                    (frm, to, by_runs)).fetchall()
                assert len(rows) == 6
                for instance_id, seconds in rows:
                    expected = billed_seconds(by_id[instance_id].runs, frm, to, now) if to > frm else 0
                    assert seconds == pytest.approx(float(expected), abs=1e-6), (frm, to, by_runs, instance_id)


def test_an_instance_with_more_runs_than_its_row_keeps_is_probed_exactly(migrated_db) -> None:
    """40 runs (the row keeps the last 32): ranges starting among the older runs take the index probe, the others
    the binary search in the row; both agree with the sum over the runs, computed here."""
    from dashgen.store.db import migrate

    t0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    runs = [(t0 + dt.timedelta(hours=10 * k), t0 + dt.timedelta(hours=10 * k + 3, minutes=7 * k, seconds=k))
            for k in range(39)] + [(t0 + dt.timedelta(hours=390), None)]
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        migrate(conn)
        conn.execute("INSERT INTO dashgen.instances (instance_id, region, instance_type, state, first_seen, "
                     "last_seen) VALUES ('i-many', 'us-east-1', 't4g.large', 'running', now(), now())")
        conn.cursor().executemany("INSERT INTO dashgen.instance_intervals VALUES ('i-many', %s, %s)", runs)
        conn.execute("SELECT dashgen.refresh_billing(ARRAY['i-many'])")
        assert len(conn.execute("SELECT recent_starts FROM dashgen.instances").fetchone()[0]) == 32
        with conn.transaction():
            now = conn.execute("SELECT now()").fetchone()[0]
            for k, hours in enumerate((-1, 1.5, 25, 71.2, 88, 95.9, 150, 333.3, 389.99, 400)):
                frm = t0 + dt.timedelta(hours=hours)
                to = frm + dt.timedelta(hours=5 + 7 * k, seconds=13)
                expected = float(billed_seconds(runs, frm, to, now))
                for by_runs in (True, False):
                    got = conn.execute("SELECT seconds_in_range FROM dashgen.instance_costs(%s, %s, %s)",
                                       (frm, to, by_runs)).fetchone()[0]
                    assert got == pytest.approx(expected, abs=1e-6), (hours, by_runs)


def test_migration_004_upgrades_a_store_synced_before_it(fresh_db, monkeypatch) -> None:
    """A store synced with the migrations before 004 gets tags_label, first_started_at and prev_billed_end filled
    when 004 lands, and the cost panel then gives every instance's cost to the cent."""
    from dashgen.store import db as store_module
    every, definitions = store_module.migration_files(), store_module.definition_files()
    # a store made before 004: without 004 and the migrations that need it (006, 007, 020-029, 061); with the
    # other 030+, which today's sync writes
    later = ("004_instance_costs_by_rows", "006_adopt_pre_release_004", "007_backfill_cost_rollups")
    before = [m for m in every if m[0] not in later and not "020" <= m[0] < "030" and not m[0].startswith("061_")]
    monkeypatch.setattr(store_module, "migration_files", lambda: before)
    # before 004, functions lived in migrations; but 070 (a 030+ migration: today's sync writes its account column)
    # keys the rollups by account, which its trigger functions in 30_cost_events.sql go with
    monkeypatch.setattr(store_module, "definition_files",
                        lambda: [d for d in definitions if d[0] == "30_cost_events"])
    # nor did sync keep rightsizing aggregates then (their function is a definition of today's store)
    monkeypatch.setattr("dashgen.rightsizing.collect.refresh_usage", lambda *args, **kwargs: 0)
    scenario, _ = synced_store(fresh_db, monkeypatch)
    monkeypatch.setattr(store_module, "migration_files", lambda: every)
    monkeypatch.setattr(store_module, "definition_files", lambda: definitions)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('dashgen.instance_intervals_next')").fetchone()[0] is None
        assert store_module.migrate(conn) == [m[0] for m in every if m not in before]
        r = scenario.by_key("r")
        assert conn.execute("SELECT tags_label, first_started_at FROM dashgen.instances WHERE instance_id = %s",
                            (r.instance_id,)).fetchone() == ("experiment=alpha", r.runs[0][0])
        prev = [row[0] for row in conn.execute("SELECT prev_billed_end FROM dashgen.instance_intervals "
                                               "WHERE instance_id = %s ORDER BY started_at", (r.instance_id,))]
        assert prev == [None, r.runs[0][1]]  # the first run ended after its 60 s minimum
    frm, to = scenario.t0 - dt.timedelta(minutes=10), scenario.t0 + dt.timedelta(hours=5, minutes=10)
    now, rows = run(fresh_db, expand(panel_sql(cost_dashboard(), "Cost per instance"), time_from=frm, time_to=to,
                                     variables={"tag_key": hx("experiment"), "tag_value": ALL, "name": ALL,
                                                "account": ALL},
                                     all_values=ALL_VALUES))
    by_id = {row["Instance"]: row for row in rows}
    assert len(rows) == 6
    for p in scenario.planned:
        assert q(by_id[p.instance_id]["Cost in range"]) == expected_cost(p, frm, to, now), p.key


def test_cost_by_tag_and_the_cumulative_series_add_up_to_the_instances(store) -> None:
    dsn, scenario = store
    frm, to = scenario.t0 - dt.timedelta(minutes=30), scenario.t0 + dt.timedelta(hours=5)
    dash = cost_dashboard()
    values = {"tag_key": hx("experiment"), "tag_value": ALL, "name": ALL, "account": ALL}
    now, rows = run(dsn, expand(panel_sql(dash, "Cost by tag value"), time_from=frm, time_to=to,
                                variables=values, all_values=ALL_VALUES))
    by_tag = {r["Tag value"]: r for r in rows}
    priced = [p for p in scenario.planned if p.price is not None]

    def expected(tag: str | None) -> Decimal:
        return q(sum(exact_cost(p, frm, to, now) for p in priced if p.tags.get("experiment") == tag))

    assert q(by_tag["alpha"]["Cost in range"]) == expected("alpha")
    assert by_tag["beta"]["Cost in range"] is None  # the Windows instance has no known price
    assert by_tag["beta"]["Without price"] == 1
    assert q(by_tag["(no tag)"]["Cost in range"]) == expected(None)
    _, series = run(dsn, expand(panel_sql(dash, "Cumulative cost in the time range"), time_from=frm, time_to=to,
                                variables=values, all_values=ALL_VALUES, interval_ms=600_000))
    alpha = [r for r in series if r["metric"] == "alpha"]
    assert alpha[0]["time"] == frm and alpha[0]["value"] == 0
    assert alpha[-1]["time"] == to
    assert len({r["time"] for r in alpha}) == len(alpha)  # one point per time
    assert [r["value"] for r in alpha] == sorted(r["value"] for r in alpha)  # cumulative: never decreases
    assert q(alpha[-1]["value"]) == q(by_tag["alpha"]["Cost in range"])
    total = [r for r in series if r["metric"] == "(all selected)"][-1]["value"]
    assert q(total) == q(sum(exact_cost(p, frm, to, now) for p in priced))  # unpriced instances left out


def test_tag_and_name_filters_select_instances_and_an_injection_attempt_is_only_a_value(store) -> None:
    dsn, scenario = store
    frm, to = scenario.t0, scenario.t0 + dt.timedelta(hours=5)
    sql = panel_sql(cost_dashboard(), "Cost per instance")
    _, rows = run(dsn, expand(sql, time_from=frm, time_to=to, all_values=ALL_VALUES,
                              variables={"tag_key": hx("team"), "tag_value": [hx("ml"), hx("data")], "name": ALL,
                                         "account": ALL}))
    assert sorted(r["Name"] for r in rows) == ["O'Brien", "alpha-1", "alpha-2"]
    _, rows = run(dsn, expand(sql, time_from=frm, time_to=to, all_values=ALL_VALUES,
                              variables={"tag_key": hx("team"), "tag_value": ALL, "name": [hx("O'Brien")],
                                         "account": ALL}))
    assert [r["Name"] for r in rows] == ["O'Brien"]
    for variables, names in (
        ({"tag_key": hx("project"), "tag_value": [hx(INJECTION)], "name": ALL, "account": ALL}, ["O'Brien"]),
        ({"tag_key": hx(INJECTION), "tag_value": [hx(INJECTION)], "name": [hx(INJECTION)], "account": ALL}, []),
    ):
        _, rows = run(dsn, expand(sql, time_from=frm, time_to=to, variables=variables, all_values=ALL_VALUES))
        assert [r["Name"] for r in rows] == names
    _, rows = run(dsn, expand(load_sql("var_tag_value"), time_from=frm, time_to=to,
                              variables={"tag_key": hx("project"), "account": ALL}, all_values=ALL_VALUES))
    assert rows == [{"__text": INJECTION, "__value": hx(INJECTION)}]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM dashgen.instances").fetchone()[0] == 6


def test_budget_and_deadline_from_spend_burn_rate_and_progress(migrated_db, monkeypatch) -> None:
    now_guess = dt.datetime.now(dt.UTC)
    config = _config(experiments=(
        Experiment("alpha", "experiment", "alpha", budget_usd=1.0, deadline=now_guess + dt.timedelta(hours=10),
                   progress_namespace="Training", progress_metric="Progress",
                   progress_dimensions=(("Experiment", "alpha"),)),
        Experiment("gamma", "experiment", "gamma", budget_usd=5.0, deadline=now_guess + dt.timedelta(days=1)),
    ))
    scenario, _ = synced_store(migrated_db, monkeypatch, config)
    t0 = scenario.t0
    with psycopg.connect(migrated_db) as conn:  # progress as sync stores it from CloudWatch (tested in test_sync)
        conn.cursor().executemany("INSERT INTO dashgen.experiment_progress VALUES ('alpha', %s, %s)",
                         [(t0 + dt.timedelta(hours=1), 10), (t0 + dt.timedelta(hours=3), 30)])
    dash = cost_dashboard(config)
    variables = {"experiment": ALL, "account": ALL}
    sql = expand(panel_sql(dash, "Budget and deadline"), time_from=t0, time_to=t0, variables=variables,
                 all_values=ALL_VALUES)
    now, rows = run(migrated_db, sql)
    alpha, gamma = rows
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    members = [p for p in scenario.planned if p.tags.get("experiment") == "alpha"]
    spent = q(sum(exact_cost(p, dt.datetime.min.replace(tzinfo=dt.UTC), far, now) for p in members))
    burn = sum(p.price for p in members if p.runs[-1][1] is None)
    assert q(alpha["Spent"]) == spent
    assert alpha["Burn rate (USD/h)"] == burn  # alpha-2 and the restarted instance run now
    assert q(alpha["Budget left"]) == q(Decimal("1.0") - alpha["Spent"])
    hours_left = Decimal(str((alpha["Deadline"] - now).total_seconds())) / 3600
    assert q(alpha["Projected at deadline"]) == q(alpha["Spent"] + burn * hours_left)
    # 10 % at t0+1h, 30 % at t0+3h: 10 % per hour, so 100 % at t0+10h
    assert alpha["ETA"] == t0 + dt.timedelta(hours=10)
    assert alpha["Makes deadline"] is (t0 + dt.timedelta(hours=10) <= alpha["Deadline"])
    to_finish = alpha["Spent"] + burn * Decimal(str((alpha["ETA"] - now).total_seconds())) / 3600
    assert q(alpha["Projected cost to finish"]) == q(to_finish)
    assert alpha["Fits budget"] is (to_finish <= 1)
    assert gamma["Instances"] == 0 and gamma["Spent"] == 0 and gamma["Fits budget"] is True
    assert gamma["Makes deadline"] is None  # no progress metric: unknown
    for title, column in (("Fits budget", "Fits budget"), ("Makes deadline", "Makes deadline")):
        _, stat_rows = run(migrated_db, expand(panel_sql(dash, title), time_from=t0, time_to=t0,
                                            variables=variables, all_values=ALL_VALUES))
        assert [(r["metric"], r["value"]) for r in stat_rows] == [
            (row["Experiment"], None if row[column] is None else int(row[column])) for row in rows]
    _, progress = run(migrated_db, expand(panel_sql(dash, "Experiment progress"), time_from=t0,
                                       time_to=t0 + dt.timedelta(hours=2), variables=variables,
                                       all_values=ALL_VALUES))
    assert [(r["metric"], r["value"]) for r in progress] == [("alpha", 10)]
