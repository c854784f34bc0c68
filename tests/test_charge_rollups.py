"""The rollups kept by sync for the panels' speed (issue 13, migration 090, store/functions/47_charge_rollups.sql)
give the same figures as the stored rows they replace: every faster path against the slow one, in one transaction
(the same now()) with and without the rollup (`dashgen.rollup_state` removed = everything computed live, the path
before the rollups), on a scenario with what can go wrong: Spot runs across midnight and across price changes, a
run before the first known Spot price (unknown), unlimited / standard / unknown credit modes, runs still going; then
after each kind of change the triggers and sync's hooks must follow (a price inside a rolled-up day, a run closed or
added in the past, credits written for past hours, a price deleted).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from dashgen.store.db import migrate
from dashgen.store.sqlvars import encode as hx
from dashgen.store.sqlvars import load_sql
from dashgen.sync import PRICE_UPSERT_SQL
from dashgen.sync.cloudwatch import HourlyRow, store_hourly
from dashgen.sync.pricing import PriceKey, resolve_prices
from grafana_sql import ALL, expand

H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)
TODAY = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
D0 = TODAY - 5 * D  # the scenario's first day
TYPES = ["m5.large", "t4g.large", "t3.medium"]


def _instance(conn: Any, iid: str, itype: str, *, lifecycle: str = "on-demand", az: str = "us-east-1a",
              credit_mode: str | None = None, team: str = "a") -> None:
    conn.execute(
        "INSERT INTO dashgen.instances (instance_id, region, instance_type, name, tags, state, launch_time, platform,"
        " first_seen, last_seen, lifecycle, availability_zone, credit_mode)"
        " VALUES (%s, 'us-east-1', %s, %s, %s, 'running', %s, 'Linux/UNIX', now(), now(), %s, %s, %s)",
        (iid, itype, f"n-{iid}", psycopg.types.json.Jsonb({"Name": f"n-{iid}", "team": team}), D0, lifecycle, az,
         credit_mode))


def _runs(conn: Any, iid: str, *runs: tuple[dt.datetime, dt.datetime | None]) -> None:
    conn.cursor().executemany("INSERT INTO dashgen.instance_intervals (instance_id, started_at, ended_at)"
                              " VALUES (%s, %s, %s)", [(iid, f, t) for f, t in runs])


def _spot(conn: Any, az: str, at: dt.datetime, usd: float, itype: str = "m5.large") -> None:
    conn.execute("INSERT INTO dashgen.spot_prices (availability_zone, instance_type, product_description, at,"
                 " usd_per_hour, region) VALUES (%s, %s, 'Linux/UNIX', %s, %s, 'us-east-1')", (az, itype, at, usd))


def _credits(conn: Any, iid: str, hours: list[dt.datetime], rng: random.Random) -> None:
    conn.cursor().executemany(
        "INSERT INTO dashgen.instance_utilisation_hourly (instance_id, hour, cpu_avg, cpu_surplus_credits_charged)"
        " VALUES (%s, %s, %s, %s)", [(iid, h, 50.0, rng.choice([0.0, 3.5, 12.25, 84.0])) for h in hours])


@pytest.fixture
def scenario(fresh_db: str) -> Iterator[str]:
    rng = random.Random(13)
    with psycopg.connect(fresh_db) as conn:
        migrate(conn)
        prices, _ = resolve_prices({PriceKey("us-east-1", t, "Linux") for t in TYPES}, "bundled")
        conn.cursor().executemany(PRICE_UPSERT_SQL, [
            (p.key.region, p.key.instance_type, p.key.operating_system, p.key.tenancy, p.usd_per_hour, p.vcpu,
             p.memory_mib, p.source, p.price_date, TODAY) for p in prices])
        conn.execute("INSERT INTO dashgen.credit_prices VALUES ('us-east-1', 't4g', 'Linux', 0.04, 'bundled-fallback',"
                     " NULL, now()), ('us-east-1', 't3', 'Linux', 0.05, 'bundled-fallback', NULL, now())")
        # Spot: a run across midnight and a price change, one still going across another change
        _instance(conn, "i-spot1", "m5.large", lifecycle="spot")
        _runs(conn, "i-spot1", (D0 + 3 * H, D0 + D + 5 * H + dt.timedelta(seconds=17)),
              (D0 + 2 * D + 23 * H + dt.timedelta(minutes=7), None))
        _spot(conn, "us-east-1a", D0 - D, 0.03)
        _spot(conn, "us-east-1a", D0 + D + 2 * H, 0.035)
        _spot(conn, "us-east-1a", D0 + 3 * D + 12 * H, 0.031)
        # Spot in an AZ whose first known price comes after its first run started: that run is unknown
        _instance(conn, "i-spot2", "m5.large", lifecycle="spot", az="us-east-1b", team="b")
        _runs(conn, "i-spot2", (D0 - 2 * D, D0 + 6 * H), (D0 + 2 * D + 30 * dt.timedelta(seconds=1), D0 + 2 * D + H))
        _spot(conn, "us-east-1b", D0, 0.029)
        # burstable: unlimited, standard (never charged), unknown mode (charged as CloudWatch says); Spot + unlimited
        _instance(conn, "i-burst1", "t4g.large", credit_mode="unlimited")
        _instance(conn, "i-burst2", "t4g.large", credit_mode="standard", team="b")
        _instance(conn, "i-burst3", "t3.medium")
        _instance(conn, "i-spot3", "t4g.large", lifecycle="spot", credit_mode="unlimited", team="b")
        _spot(conn, "us-east-1a", D0 - D, 0.012, "t4g.large")
        for iid in ("i-burst1", "i-burst2", "i-burst3", "i-spot3"):
            _runs(conn, iid, (D0 - 3 * H, None))
            _credits(conn, iid, [D0 - 3 * H + k * H for k in range(0, 5 * 24 + 3, rng.choice([1, 2, 3]))], rng)
        _instance(conn, "i-od", "m5.large", team="b")
        _runs(conn, "i-od", (D0 + 20 * H, D0 + 2 * D), (D0 + 3 * D, None))
        conn.execute("SELECT dashgen.roll_up_extra_charges(now())")
        assert conn.execute("SELECT through FROM dashgen.rollup_state").fetchone()[0] == TODAY
        assert conn.execute("SELECT count(*) FROM dashgen.extra_charges_daily").fetchone()[0] > 20
    yield fresh_db


def both(dsn: str, query: Callable[[Any], Any]) -> tuple[Any, Any]:
    """(with the rollups, computed live) in one transaction: the same now()."""
    with psycopg.connect(dsn) as conn, conn.transaction():
        rolled = query(conn)
        with conn.transaction():
            conn.execute("DELETE FROM dashgen.rollup_state")
            live = query(conn)
            raise psycopg.Rollback()  # only this savepoint
    return rolled, live


WINDOWS = [
    ("-infinity", "infinity"),
    (D0 - 3 * D, TODAY + D),
    (D0, TODAY),                                                  # whole days only
    (D0 + D, D0 + 3 * D),
    (D0 + 5 * H + dt.timedelta(minutes=41), TODAY + 7 * H),       # partial days at both ends, past `through`
    (D0 + D + 2 * H, D0 + D + 2 * H + dt.timedelta(seconds=90)),  # inside one day
    (D0 + 2 * D + 23 * H, "infinity"),
    ("-infinity", D0 + 2 * D + 12 * H + dt.timedelta(minutes=5)),
]


def extra(conn: Any, f: Any, t: Any) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in conn.execute(
        "SELECT instance_id, credits, credit_usd, spot_usd FROM dashgen.extra_charges(%s, %s)", (f, t))}


def assert_same_extra(rolled: dict[str, tuple], live: dict[str, tuple]) -> None:
    assert sorted(rolled) == sorted(live)
    for iid, (credits, credit_usd, spot_usd) in live.items():
        r = rolled[iid]
        assert r[0] == pytest.approx(credits, abs=1e-9), iid
        assert (r[1] is None) == (credit_usd is None) and (r[2] is None) == (spot_usd is None), iid
        assert r[1] == pytest.approx(credit_usd, abs=1e-9) if credit_usd is not None else True, iid
        assert r[2] == pytest.approx(spot_usd, abs=1e-9) if spot_usd is not None else True, iid


def check_all_windows(dsn: str) -> None:
    for f, t in WINDOWS:
        rolled, live = both(dsn, lambda conn, f=f, t=t: extra(conn, f, t))
        assert_same_extra(rolled, live)
        assert live, (f, t)


def test_extra_charges_from_the_rollup_equal_the_stored_rows_in_every_window(scenario) -> None:
    check_all_windows(scenario)
    rolled, live = both(scenario, lambda conn: extra(conn, "-infinity", "infinity"))
    assert live["i-spot2"][2] is None  # a run before the first known price: unknown, both ways
    assert live["i-spot1"][2] > 0 and "i-burst2" not in live and live["i-burst3"][1] > 0


def cumulative(conn: Any, f: Any, t: Any, step: float, tag_values: list[str], names: list[str]) -> dict:
    rows = conn.execute("SELECT * FROM dashgen.cumulative_cost(%s, %s, %s, 'team', %s, %s)",
                        (f, t, step, tag_values, names)).fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


@pytest.mark.parametrize("selection", [(["__all__"], ["__all__"]), ([hx("b")], ["__all__"]),
                                       (["__all__"], [hx("n-i-spot1"), hx("n-i-burst1")])])
def test_the_cumulative_series_from_the_rollup_equal_the_stored_rows(scenario, selection) -> None:
    for f, t, step in [(D0 - 2 * D + 7 * H + dt.timedelta(minutes=13), TODAY + 9 * H, 3600.0),
                       (D0 + 30 * dt.timedelta(minutes=1), D0 + 4 * D + 30 * dt.timedelta(minutes=1), 86400.0),
                       (TODAY - 30 * D, TODAY + 4 * H, 2592.0)]:
        rolled, live = both(scenario, lambda conn, f=f, t=t, step=step: cumulative(conn, f, t, step, *selection))
        assert live and set(live) <= set(rolled)  # every point of the series before, at the same value
        for key, value in live.items():
            assert rolled[key] == pytest.approx(value, abs=1e-6), key
        # the rollup's days may add points (a day's end inside a long Spot run): each is the exact cumulative cost
        # to that time, as the stored rows give it at the end of a range ending there
        for at, series in sorted(set(rolled) - set(live)):
            _, upto = both(scenario, lambda conn, f=f, at=at, step=step: cumulative(conn, f, at, step, *selection))
            assert rolled[(at, series)] == pytest.approx(upto[(at, series)], abs=1e-6), (at, series)


def test_the_rollup_follows_changed_prices_runs_and_credits(scenario) -> None:
    with psycopg.connect(scenario) as conn:  # a price change inside a rolled-up day and a run closed in the past
        _spot(conn, "us-east-1a", D0 + 2 * H, 0.05)
        conn.execute("UPDATE dashgen.instance_intervals SET ended_at = %s WHERE instance_id = 'i-spot1'"
                     " AND ended_at IS NULL", (TODAY - D + 3 * H,))
    check_all_windows(scenario)
    with psycopg.connect(scenario) as conn:  # an earlier run, a price deleted, the first known price moved earlier
        _runs(conn, "i-spot1", (D0 - 2 * D, D0 - 2 * D + 5 * H))
        conn.execute("DELETE FROM dashgen.spot_prices WHERE at = %s AND availability_zone = 'us-east-1a'",
                     (D0 + D + 2 * H,))
        _spot(conn, "us-east-1b", D0 - 3 * D, 0.02)
    check_all_windows(scenario)
    rolled, _ = both(scenario, lambda conn: extra(conn, "-infinity", "infinity"))
    assert rolled["i-spot2"][2] is not None  # its first run is priced now
    with psycopg.connect(scenario) as conn:  # credits CloudWatch reported late, for hours the rollup holds
        store_hourly(conn, [HourlyRow("i-burst1", D0 + k * H, {"cpu_avg": 99.0, "cpu_surplus_credits_charged": 60.0})
                            for k in range(30, 40)] +
                     [HourlyRow("i-burst2", D0 + 31 * H, {"cpu_surplus_credits_charged": 7.0})])
        cpu = conn.execute("SELECT cpu_avg_max FROM dashgen.cpu_hourly_by_region WHERE hour = %s",
                           (D0 + 31 * H,)).fetchone()[0]
        assert cpu == 99.0
    check_all_windows(scenario)
    with psycopg.connect(scenario) as conn:  # a TRUNCATE: no rollup until the next sync, still the same figures
        conn.execute("TRUNCATE dashgen.spot_prices")
        assert conn.execute("SELECT count(*) FROM dashgen.rollup_state").fetchone()[0] == 0
        conn.execute("SELECT dashgen.roll_up_extra_charges(now())")
    check_all_windows(scenario)


def test_a_day_is_rolled_up_only_once_it_is_over(scenario) -> None:
    with psycopg.connect(scenario) as conn:
        conn.execute("SELECT dashgen.roll_up_extra_charges(now() + interval '3 days')")  # a sync's clock ahead
        assert conn.execute("SELECT through FROM dashgen.rollup_state").fetchone()[0] == TODAY
        assert conn.execute("SELECT max(day) FROM dashgen.extra_charges_daily").fetchone()[0] < TODAY


# ---------------------------------------------------------------- CPU this week vs. last week

OLD_CPU_LAST_WEEK = """
SELECT u.hour + interval '7 days' AS "time", u.instance_id || ' last week' AS metric, u.cpu_avg AS value
FROM dashgen.instance_utilisation_hourly u
JOIN dashgen.instances i USING (instance_id)
WHERE u.hour >= $__timeFrom()::timestamptz - interval '7 days'
  AND u.hour < $__timeTo()::timestamptz - interval '7 days'
  AND i.region = ${region:sqlstring}
  AND dashgen.selected(i.tags, i.name, dashgen.unhex(${tag_key:sqlstring}), ARRAY[${tag_value:sqlstring}],
                       ARRAY[${name:sqlstring}])
  AND dashgen.chosen(i.instance_id, ARRAY[${instance:sqlstring}])
ORDER BY 1, 2"""  # the panel's query before issue 13: every selected instance's rows


def _cpu(conn: Any, sql: str, instances: Any, tag_values: Any = ALL) -> list[tuple]:
    text = expand(sql, time_from=TODAY - 7 * D + 5 * H, time_to=TODAY + 5 * H,
                  variables={"region": "us-east-1", "tag_key": hx("team"), "tag_value": tag_values, "name": ALL,
                             "instance": instances, "account": ALL},
                  all_values={"instance": "'__all__'", "tag_value": "'__all__'", "name": "'__all__'",
                              "account": "'__all__'"})
    return [tuple(r) for r in conn.execute(text.encode()).fetchall()]


def test_cpu_last_week_per_instance_up_to_20_then_the_selection_mean_and_highest(fresh_db) -> None:
    rng = random.Random(7)
    with psycopg.connect(fresh_db) as conn:
        migrate(conn)
        for k in range(25):
            _instance(conn, f"i-{k:02d}", "m5.large", team="a" if k < 12 else "b")
            conn.cursor().executemany(
                "INSERT INTO dashgen.instance_utilisation_hourly (instance_id, hour, cpu_avg) VALUES (%s, %s, %s)",
                [(f"i-{k:02d}", TODAY - 14 * D + h * H, round(rng.uniform(0, 100), 3))
                 for h in range(14 * 24 + 5) if rng.random() > 0.1])
        conn.execute("SELECT dashgen.roll_up_extra_charges(now())")
        new = load_sql("cpu_last_week")
        ids = [hx(f"i-{k:02d}") for k in range(25)]
        # 12 selected (team a): per instance, the rows the query before gave
        assert _cpu(conn, new, ALL, [hx("a")]) == _cpu(conn, OLD_CPU_LAST_WEEK, ALL, [hx("a")]) != []
        assert _cpu(conn, new, ids[:20]) == _cpu(conn, OLD_CPU_LAST_WEEK, ids[:20])
        # 25: the mean and the highest of the selection per hour, the same from the rollup (All) and from the rows
        # (the same 25 chosen one by one), and as computed from the rows the query before returned
        rows, by_rows = _cpu(conn, new, ALL), _cpu(conn, new, ids)
        assert [r[:2] for r in rows] == [r[:2] for r in by_rows]
        assert [r[2] for r in rows] == pytest.approx([r[2] for r in by_rows], abs=1e-9)
        per_hour: dict[dt.datetime, list[float]] = {}
        for t, _, v in _cpu(conn, OLD_CPU_LAST_WEEK, ALL):
            per_hour.setdefault(t, []).append(v)
        want = sorted([(t, "highest of 25 selected last week", max(v)) for t, v in per_hour.items()]
                      + [(t, "mean of 25 selected last week", sum(v) / len(v)) for t, v in per_hour.items()])
        assert [r[:2] for r in rows] == [w[:2] for w in want]
        assert [r[2] for r in rows] == pytest.approx([w[2] for w in want], abs=1e-9)


# ---------------------------------------------------------------- Experiment progress

OLD_PROGRESS = """
SELECT p.at AS "time", p.experiment AS metric, p.percent AS value
FROM dashgen.experiment_progress p
WHERE $__timeFilter(p.at)
  AND dashgen.chosen(p.experiment, ARRAY[${experiment:sqlstring}])
ORDER BY 1, 2"""  # the panel's query before issue 13: every stored point


def test_experiment_progress_keeps_the_latest_point_of_each_interval(fresh_db) -> None:
    rng = random.Random(3)
    with psycopg.connect(fresh_db) as conn:
        migrate(conn)
        points = []
        for name in ("e1", "e2"):
            conn.execute("INSERT INTO dashgen.experiments (name, tag_key, tag_value, budget_usd, deadline)"
                         " VALUES (%s, 'experiment', %s, 100, %s)", (name, name, TODAY + D))
            at = TODAY - 3 * D + dt.timedelta(seconds=rng.randrange(300))
            while at < TODAY:
                points.append((name, at, round(rng.uniform(0, 100), 2)))
                at += dt.timedelta(seconds=rng.choice([300, 300, 300, 60, 1200]))
        conn.cursor().executemany("INSERT INTO dashgen.experiment_progress (experiment, at, percent)"
                                  " VALUES (%s, %s, %s)", points)
        new = load_sql("experiment_progress")
        frm, to = TODAY - 2 * D - 5 * H, TODAY

        def rows(sql: str, interval_ms: int) -> list[tuple]:
            text = expand(sql, time_from=frm, time_to=to, variables={"experiment": ALL, "account": ALL},
                          all_values={"experiment": "'__all__'", "account": "'__all__'"}, interval_ms=interval_ms)
            return [(r[0], r[1], float(r[2])) for r in conn.execute(text.encode()).fetchall()]

        assert rows(new, 60_000) == rows(OLD_PROGRESS, 60_000)  # an interval below the points' spacing: all
        for interval_ms in (600_000, 3_600_000, 2_592_000):
            latest: dict[tuple[str, int], tuple] = {}
            for t, name, v in rows(OLD_PROGRESS, interval_ms):  # the model: the latest point per bucket
                bucket = int((t - dt.datetime(2000, 1, 1, tzinfo=dt.UTC)).total_seconds() * 1000) // interval_ms
                latest[(name, bucket)] = (t, name, v)
            assert rows(new, interval_ms) == sorted(latest.values(), key=lambda r: (r[0], r[1]))
