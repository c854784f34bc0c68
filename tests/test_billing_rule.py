"""One billing rule for every cost panel (issue 17): EC2 Linux bills each run per second with a 60-second minimum,
each start its own minimum. The cost-per-instance table (dashgen.instance_costs by rows, the default, and by
runs), the cost-by-tag table and the cumulative-cost panel all give that, also for restarts within 60 s of a start
and with the tag key Name; checked against a sum over the runs computed here."""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashgen.build import render_dashboards
from dashgen.config import Config
from dashgen.grafana.validate import all_panels
from dashgen.store.sqlvars import encode
from grafana_sql import ALL, expand

H = dt.timedelta(hours=1)
S = dt.timedelta(seconds=1)
T0 = dt.datetime(2026, 11, 2, 0, 0, tzinfo=dt.UTC)
RATE = {"t4g.large": 0.0672, "m5.large": 0.096}
ALL_VALUES = {"account": "'__all__'", "tag_value": "'__all__'", "name": "'__all__'"}


def billed_seconds(runs, frm: dt.datetime, to: dt.datetime, now: dt.datetime) -> float:
    """Each run from its start to max(end or now, start + 60 s), clipped to [frm, to]."""
    total = 0.0
    for start, end in runs:
        billed_end = max(end or now, start + 60 * S)
        total += max(0.0, (min(billed_end, to) - max(start, frm)).total_seconds())
    return total


def load(dsn: str, instances: dict[str, tuple[str, dict[str, str], list]]) -> None:
    """Replace the store's instances by these (id -> type, tags, runs), with prices for both types."""
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute("DELETE FROM dashgen.instances")
        conn.execute("DELETE FROM dashgen.instance_prices")
        conn.cursor().executemany("INSERT INTO dashgen.instance_prices VALUES ('us-east-1', %s, 'Linux', 'Shared', %s,"
                                  " 2, 8192, 'bundled-snapshot', '2026-07-20', now())", list(RATE.items()))
        conn.execute("INSERT INTO dashgen.instances (instance_id, region, instance_type, name, tags, state, first_seen,"
                     " last_seen) SELECT id, 'us-east-1', t, tags ->> 'Name', tags, 'running', now(), now() "
                     "FROM unnest(%s::text[], %s::text[], %s::jsonb[]) AS x(id, t, tags)",
                     [list(instances), [v[0] for v in instances.values()],
                      [json.dumps(v[1]) for v in instances.values()]])
        runs = [(iid, s, e) for iid, v in instances.items() for s, e in v[2]]
        conn.execute("INSERT INTO dashgen.instance_intervals (instance_id, started_at, ended_at) "
                     "SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[])",
                     [[r[0] for r in runs], [r[1] for r in runs], [r[2] for r in runs]])
        conn.execute("SELECT dashgen.refresh_billing(%s)", (list(instances),))


def panel_rows(dsn: str, title: str, frm: dt.datetime, to: dt.datetime, variables: dict,
               interval_ms: int = 300_000) -> tuple[dt.datetime, list[dict]]:
    dash = render_dashboards(Config(instance_tags=("Name", "experiment")))["ec2-cost.json"]
    sql = next(p for p in all_panels(dash) if p.get("title") == title)["targets"][0]["rawSql"]
    with psycopg.connect(dsn) as conn, conn.transaction():
        now = conn.execute("SELECT now()").fetchone()[0]
        cur = conn.execute(expand(sql, time_from=frm, time_to=to, variables=variables, all_values=ALL_VALUES,
                                  interval_ms=interval_ms).encode())
        names = [d.name for d in cur.description]
        return now, [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_cumulative_cost_by_name_equals_the_cost_by_tag_table(module_db) -> None:
    """Tag key Name: a run that starts in a partial hour at the edge of the range and ends inside its whole hours
    (or days) stays in its own series; the curve ends where the cost-by-tag table says, for all values and for
    one (the issue: with Tag value = web-1 the curve kept growing to the end of the range)."""
    frm, to = T0 + 10 * H + 13 * 60 * S, T0 + 62 * H + 41 * 60 * S  # partial hours, whole hours, a whole day
    instances = {
        "i-1": ("t4g.large", {"Name": "web-1", "experiment": "x"},
                [(T0 + 10 * H + 30 * 60 * S, T0 + 12 * H + 5 * 60 * S), (T0 + 30 * H, T0 + 62 * H + 30 * 60 * S)]),
        "i-2": ("m5.large", {"Name": "web-2"}, [(T0 + 5 * H, T0 + 11 * H), (T0 + 11 * H + 20 * S, None)]),
        "i-3": ("m5.large", {"experiment": "x"}, [(T0 + 20 * H, T0 + 40 * H)]),  # no Name: "(no tag)"
    }
    load(module_db, instances)
    for values, series in ((ALL, {"web-1", "web-2", "(no tag)"}), ([encode("web-1")], {"web-1"})):
        # as the variables hold them
        variables = {"tag_key": encode("Name"), "tag_value": values, "name": ALL, "account": ALL}
        now, table = panel_rows(module_db, "Cost by tag value", frm, to, variables)
        by_tag = {r["Tag value"]: r["Cost in range"] for r in table}
        _, points = panel_rows(module_db, "Cumulative cost in the time range", frm, to, variables)
        last = {r["metric"]: r["value"] for r in points if r["time"] == to}
        assert set(by_tag) == series and set(last) == series | {"(all selected)"}
        for name, cost in by_tag.items():
            runs = [run for _, tags, rs in instances.values() if tags.get("Name", "(no tag)") == name for run in rs]
            rate = next(RATE[t] for t, tags, _ in instances.values() if tags.get("Name", "(no tag)") == name)
            assert cost == pytest.approx(rate * billed_seconds(runs, frm, to, now) / 3600, abs=1e-9), name
            assert last[name] == pytest.approx(cost, abs=1e-9), (values, name)
        assert last["(all selected)"] == pytest.approx(sum(by_tag.values()), abs=1e-9)


def test_a_restart_within_60_s_bills_both_minimums_by_rows_by_runs_and_in_the_cumulative_panel(module_db) -> None:
    """The issue's 7150 s against 7160 s: started, stopped after 10 s, started again 10 s later, running 2 h.
    A range starting 30 s after the first start holds the last 30 s of the first run's minimum and 7190 s of the
    second run: by rows (which counted the overlap once), by runs and the cumulative panel all say 7220 s."""
    start = T0 + 5 * H
    runs = [(start, start + 10 * S), (start + 20 * S, start + 20 * S + 2 * H)]
    load(module_db, {"i-r": ("t4g.large", {"Name": "r"}, runs)})
    frm, to = start + 30 * S, start + 3 * H
    expected = billed_seconds(runs, frm, to, T0)
    assert expected == 30 + (2 * 3600 - 10)  # 30 s left of the first minimum, the second run from frm on
    with psycopg.connect(module_db) as conn:
        for by_runs in (False, True):
            got = conn.execute("SELECT seconds_in_range FROM dashgen.instance_costs(%s, %s, %s)",
                               (frm, to, by_runs)).fetchone()[0]
            assert got == pytest.approx(expected, abs=1e-6), by_runs
    _, points = panel_rows(module_db, "Cumulative cost in the time range", frm, to,
                           {"tag_key": encode("Name"), "tag_value": ALL, "name": ALL, "account": ALL})
    assert [r["value"] for r in points if r["time"] == to and r["metric"] == "r"] == \
        [pytest.approx(RATE["t4g.large"] * expected / 3600, abs=1e-12)]


@st.composite
def histories(draw) -> dict[str, tuple[str, dict[str, str], list]]:
    """1-3 instances, each with up to 40 runs (more than the 32 its row keeps), many of them shorter than 60 s
    or restarted within 60 s of a start; the last one may still be going."""
    out = {}
    for k in range(draw(st.integers(1, 3))):
        t = T0 + draw(st.integers(0, 3 * 3600)) * S
        runs = []
        for _ in range(draw(st.integers(1, 40))):
            length = draw(st.one_of(st.integers(0, 70), st.integers(71, 6 * 3600)))
            runs.append((t, t + length * S))
            t += max(1, length + draw(st.one_of(st.integers(0, 50), st.integers(51, 3 * 3600)))) * S
        if draw(st.booleans()):
            runs[-1] = (runs[-1][0], None)
        out[f"i-{k}"] = (draw(st.sampled_from(sorted(RATE))), {"Name": f"n{k}"}, runs)
    return out


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), data=st.data())
def test_every_way_of_billing_a_range_agrees_with_the_rule(module_db, history, data) -> None:
    """Generated histories and ranges whose edges fall inside 60 s minimums, before, among and after the runs kept
    in each row: by rows, by runs and the cumulative panel (tag key Name, one series per instance) all equal the
    sum over the runs."""
    load(module_db, history)
    starts = sorted(s for _, _, runs in history.values() for s, _ in runs)
    edge = st.one_of(st.sampled_from(starts).flatmap(lambda s: st.integers(-5, 75).map(lambda d: s + d * S)),
                     st.integers(-3600, 80 * 3600).map(lambda d: T0 + d * S))
    frm, to = sorted((data.draw(edge), data.draw(edge)))
    with psycopg.connect(module_db) as conn, conn.transaction():
        now = conn.execute("SELECT now()").fetchone()[0]
        for by_runs in (False, True):
            got = dict(conn.execute("SELECT instance_id, seconds_in_range FROM dashgen.instance_costs(%s, %s, %s)",
                                    (frm, to, by_runs)).fetchall())
            for iid, (_, _, runs) in history.items():
                assert got[iid] == pytest.approx(billed_seconds(runs, frm, to, now), abs=1e-6), (iid, by_runs)
    if to > frm:
        _, points = panel_rows(module_db, "Cumulative cost in the time range", frm, to,
                               {"tag_key": encode("Name"), "tag_value": ALL, "name": ALL, "account": ALL},
                               interval_ms=600_000)
        last = {r["metric"]: r["value"] for r in points if r["time"] == to}
        for itype, tags, runs in history.values():
            cost = RATE[itype] * billed_seconds(runs, frm, to, now) / 3600
            assert last.get(tags["Name"], 0.0) == pytest.approx(cost, abs=1e-9), tags


def test_an_unknown_price_is_unknown_only_where_the_instance_ran(module_db) -> None:
    """Cost per instance and cost by tag agree: an instance without a known price that did not run in the range
    cost $0 there (0 s x any price), and its cost is unknown (NULL) where it ran."""
    load(module_db, {"i-priced": ("t4g.large", {"Name": "p", "experiment": "x"}, [(T0, T0 + H)]),
                     "i-unpriced": ("x9.noprice", {"Name": "u", "experiment": "x"}, [(T0, T0 + H)])})
    variables = {"tag_key": encode("experiment"), "tag_value": ALL, "name": ALL, "account": ALL}
    for frm, to, ran in ((T0 - H, T0 + 2 * H, True), (T0 + 2 * H, T0 + 3 * H, False)):
        _, rows = panel_rows(module_db, "Cost per instance", frm, to, variables)
        unpriced = next(r for r in rows if r["Instance"] == "i-unpriced")
        assert unpriced["USD/hour"] is None and unpriced["Cost to date"] is None
        assert unpriced["Cost in range"] == (None if ran else 0)
        _, (by_tag,) = panel_rows(module_db, "Cost by tag value", frm, to, variables)
        priced = next(r for r in rows if r["Instance"] == "i-priced")["Cost in range"]
        assert by_tag["Cost in range"] == (None if ran else priced)


def test_restarts_older_than_the_runs_a_row_keeps_are_billed_by_the_rule(module_db) -> None:
    """Forty runs, the first eight of them 10 s long and 5 s apart (each within 60 s of several starts), so that
    range edges among them take the index probe (the row keeps the last 32 runs), edges among the others the
    binary search in the row: both ways, and by runs, give the sum over the runs."""
    runs = [(T0 + k * 15 * S, T0 + k * 15 * S + 10 * S) for k in range(8)]
    runs += [(T0 + (k + 1) * H, T0 + (k + 1) * H + (k + 1) * 30 * S) for k in range(31)]
    runs += [(T0 + 33 * H, T0 + 33 * H + 20 * S)]  # and one quick restart among the kept runs
    runs[-2] = (runs[-2][0], runs[-2][0] + 10 * S)
    runs[-1] = (runs[-2][0] + 30 * S, None)
    load(module_db, {"i-quick": ("t4g.large", {"Name": "q"}, runs)})
    edges = [T0 - S, T0 + 7 * S, T0 + 40 * S, T0 + 95 * S, T0 + 130 * S, T0 + 2 * H, runs[-2][0] + 35 * S,
             runs[-2][0] + 80 * S, T0 + 40 * H]
    with psycopg.connect(module_db) as conn, conn.transaction():
        assert len(conn.execute("SELECT recent_starts FROM dashgen.instances").fetchone()[0]) == 32
        now = conn.execute("SELECT now()").fetchone()[0]
        for frm in edges:
            for to in edges:
                expected = billed_seconds(runs, frm, to, now) if to > frm else 0
                for by_runs in (False, True):
                    got = conn.execute("SELECT seconds_in_range FROM dashgen.instance_costs(%s, %s, %s)",
                                       (frm, to, by_runs)).fetchone()[0]
                    assert got == pytest.approx(expected, abs=1e-6), (frm, to, by_runs)
