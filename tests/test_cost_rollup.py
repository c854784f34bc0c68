"""Migration 003: the hourly and daily cost-event rollups stay equal to a from-scratch computation whatever
happens to the runs and instances (triggers), and dashgen.cumulative_cost is exact on whole days and hours."""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest

from dashgen.store.db import migrate
from dashgen.store.sqlvars import encode

T0 = dt.datetime(2026, 11, 1, 0, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)

# the rollups, recomputed from the runs and instances (open runs: start only)
FROM_SCRATCH = """
SELECT dashgen.utc_floor(e.at, %(stride)s::interval) AS bucket, i.region, i.instance_type, i.operating_system,
       i.tenancy, i.tags - 'Name' AS tags, count(*)::int AS events, sum(e.sign)::int AS running_delta,
       sum(e.sign * dashgen.epoch_us(e.at))::bigint AS at_delta_us
FROM dashgen.instance_intervals iv JOIN dashgen.instances i USING (instance_id)
CROSS JOIN LATERAL (VALUES (iv.started_at, 1),
                           (greatest(iv.ended_at, iv.started_at + interval '60 seconds'), -1)) e(at, sign)
WHERE e.sign = 1 OR iv.ended_at IS NOT NULL
GROUP BY 1, 2, 3, 4, 5, 6
"""
STORED = ("SELECT bucket, region, instance_type, operating_system, tenancy, tags, events, running_delta, at_delta_us "
          "FROM dashgen.cost_events_{}")


@pytest.fixture
def conn(migrated_db: str):
    with psycopg.connect(migrated_db, autocommit=True) as c:
        migrate(c)
        yield c


def add(conn, iid: str, itype: str, tags: dict[str, str], runs: list[tuple[dt.datetime, dt.datetime | None]]) -> None:
    conn.execute("INSERT INTO dashgen.instances (instance_id, region, instance_type, name, tags, state, first_seen,"
                 " last_seen) VALUES (%s, 'us-east-1', %s, %s, %s, 'running', %s, %s)",
                 (iid, itype, iid, json.dumps({"Name": iid, **tags}), T0, T0))
    conn.cursor().executemany("INSERT INTO dashgen.instance_intervals (instance_id, started_at, ended_at) "
                              "VALUES (%s, %s, %s)", [(iid, s, e) for s, e in runs])


def assert_rollups_exact(conn) -> None:
    for table, stride in (("hourly", "1 hour"), ("daily", "24 hours")):
        stored = conn.execute(STORED.format(table)).fetchall()
        assert sorted(stored, key=repr) == sorted(conn.execute(FROM_SCRATCH, {"stride": stride}).fetchall(),
                                                  key=repr), table


def test_the_rollups_follow_every_change_to_runs_and_instances(conn) -> None:
    add(conn, "i-a", "t4g.large", {"experiment": "x"}, [(T0 + 10 * H, T0 + 12 * H), (T0 + 30 * H, None)])
    add(conn, "i-b", "m5.large", {"experiment": "x"}, [(T0 + 10 * H + dt.timedelta(seconds=5),
                                                        T0 + 10 * H + dt.timedelta(seconds=20))])  # 60 s minimum
    add(conn, "i-c", "m5.large", {"experiment": "y"}, [(T0 + 2 * H, T0 + 50 * H)])
    assert_rollups_exact(conn)
    assert conn.execute("SELECT count(*) FROM dashgen.cost_events_hourly").fetchone()[0] > 0
    # a stop seen later, a later stop time, a run reopened (as sync does), billed_before rewritten
    conn.execute("UPDATE dashgen.instance_intervals SET ended_at = %s WHERE instance_id = 'i-a' AND ended_at IS NULL",
                 (T0 + 31 * H,))
    conn.execute("UPDATE dashgen.instance_intervals SET ended_at = ended_at + interval '17 minutes' "
                 "WHERE instance_id = 'i-c'")
    conn.execute("UPDATE dashgen.instance_intervals SET ended_at = NULL WHERE instance_id = 'i-b'")
    conn.execute("SELECT dashgen.refresh_billing(ARRAY['i-a', 'i-b', 'i-c'])")
    assert_rollups_exact(conn)
    # tags and type change: the instance's events move to its new group; unchanged rows are not rewritten
    versions = conn.execute("SELECT xmin::text FROM dashgen.cost_events_hourly ORDER BY 1").fetchall()
    conn.execute("UPDATE dashgen.instances SET last_seen = last_seen + interval '1 hour'")
    assert conn.execute("SELECT xmin::text FROM dashgen.cost_events_hourly ORDER BY 1").fetchall() == versions
    conn.execute("""UPDATE dashgen.instances SET tags = tags || '{"experiment": "z"}', instance_type = 't4g.xlarge'
                    WHERE instance_id = 'i-c'""")
    assert_rollups_exact(conn)
    # an instance deleted (its runs go by cascade), a run deleted, everything truncated
    conn.execute("DELETE FROM dashgen.instances WHERE instance_id = 'i-a'")
    conn.execute("DELETE FROM dashgen.instance_intervals WHERE instance_id = 'i-b'")
    assert_rollups_exact(conn)
    conn.execute("TRUNCATE dashgen.instances CASCADE")
    assert conn.execute("SELECT (SELECT count(*) FROM dashgen.cost_events_hourly) + "
                        "(SELECT count(*) FROM dashgen.cost_events_daily)").fetchone()[0] == 0


def test_cumulative_cost_is_exact_on_whole_days_hours_and_the_edges(conn) -> None:
    conn.execute("INSERT INTO dashgen.instance_prices VALUES ('us-east-1', 't4g.large', 'Linux', 'Shared', 0.0672,"
                 " 2, 8192, 'bundled-snapshot', '2026-07-20', now()), ('us-east-1', 'm5.large', 'Linux', 'Shared',"
                 " 0.096, 2, 8192, 'bundled-snapshot', '2026-07-20', now())")
    runs = {"i-a": [(T0 + 10 * H + dt.timedelta(minutes=7), T0 + 58 * H + dt.timedelta(seconds=9))],
            "i-b": [(T0 + 20 * H, T0 + 20 * H + dt.timedelta(seconds=10)), (T0 + 75 * H, T0 + 99 * H)],
            "i-c": [(T0 + 3 * H, T0 + 4 * H), (T0 + 60 * H + dt.timedelta(minutes=59), None)]}
    add(conn, "i-a", "t4g.large", {"experiment": "x"}, runs["i-a"])
    add(conn, "i-b", "m5.large", {"experiment": "x"}, runs["i-b"])
    add(conn, "i-c", "m5.large", {}, runs["i-c"])
    rate = {"i-a": 0.0672, "i-b": 0.096, "i-c": 0.096}
    series = {"i-a": "x", "i-b": "x", "i-c": "(no tag)"}
    now = conn.execute("SELECT now()").fetchone()[0]

    def exact(name: str, frm: dt.datetime, p: dt.datetime) -> float:
        total = 0.0
        for iid, rs in runs.items():
            if name not in (series[iid], "(all selected)"):
                continue
            for s, e in rs:
                end = max(e or now, s + dt.timedelta(seconds=60))
                total += rate[iid] / 3600 * max(0.0, (min(end, p) - max(s, frm)).total_seconds())
        return total

    # whole days (Nov 2 - Nov 4) and hours inside, partial hours at both edges; and with a Name filter
    frm, to = T0 + 5 * H + dt.timedelta(minutes=13), T0 + 100 * H + dt.timedelta(minutes=41)
    for names in (["__all__"], [encode(n) for n in ("i-a", "i-b", "i-c")]):  # chosen Names: hex (dashgen.store.sqlvars)
        with conn.transaction():
            rows = conn.execute("SELECT * FROM dashgen.cumulative_cost(%s, %s, 300, 'experiment', %s, %s)",
                                (frm, to, ["__all__"], names)).fetchall()
        assert {m for _, m, _ in rows} == {"x", "(no tag)", "(all selected)"}
        for t, name, value in rows:
            assert value == pytest.approx(exact(name, frm, t), abs=1e-9), (names, name, t)
        assert [t for t, m, _ in rows if m == "x"][0] == frm and rows[-1][0] == to
