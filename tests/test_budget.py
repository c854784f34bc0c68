"""Budget and deadline (issue 17): `dashgen.experiment_status` and the panels built on it give the answers of
docs/cost.md's definitions, checked against an independent Python model (tests/budget_model.py) on a real
PostgreSQL: named cases first, then many generated ones (Hypothesis), row by row.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from fractions import Fraction

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from budget_model import CENTURY_S, Experiment, Member, Status, lsq_slope, seconds, status
from dashgen.build import render_dashboards
from dashgen.config import Config
from dashgen.grafana.validate import all_panels
from grafana_sql import ALL, expand

H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
S = dt.timedelta(seconds=1)
# prices as the store would hold them; None: a type whose price nobody knows (stored as NULL or never stored)
PRICES: dict[str, Decimal | None] = {"t4g.large": Decimal("0.0672"), "t4g.xlarge": Decimal("0.1344"),
                                     "t4g.2xlarge": Decimal("0.2688"), "m5.large": Decimal("0.096"),
                                     "x9.nullprice": None, "x9.noprice": None}
TYPE_OF = {v: k for k, v in PRICES.items() if v is not None}
ALL_VALUES = {"experiment": "'__all__'", "account": "'__all__'"}


@pytest.fixture(scope="module")
def store(module_db: str) -> str:
    """The module's migrated database (each test empties it first: see `load`)."""
    return module_db


def load(dsn: str, experiments: list[Experiment]) -> None:
    """Empty the store, then write these experiments, their instances (tagged exp=<name>), runs and progress
    (one statement per table: the rollup triggers run once per statement)."""
    now = dt.datetime.now(dt.UTC)
    instances, runs, progress = [], [], []
    for e in experiments:
        progress += [(e.name, at, pct) for at, pct in e.points]
        for k, m in enumerate(e.members):
            iid = f"i-{e.name}-{k}"
            itype = TYPE_OF.get(m.price, "x9.nullprice" if k % 2 else "x9.noprice")
            instances.append((iid, itype, json.dumps({"exp": e.name, "Name": iid}),
                              "running" if m.running() else "stopped"))
            runs += [(iid, start, end) for start, end in m.runs]
    with psycopg.connect(dsn) as conn, conn.transaction():
        for table in ("experiments", "instances", "instance_prices"):  # (DELETE: faster than TRUNCATE on a few rows)
            conn.execute(f"DELETE FROM dashgen.{table}")
        conn.cursor().executemany(
            "INSERT INTO dashgen.instance_prices VALUES ('us-east-1', %s, 'Linux', 'Shared', %s, 2, 8192, "
            "'bundled-snapshot', '2026-07-20', now())",
            [(t, p) for t, p in PRICES.items() if t != "x9.noprice"])
        conn.cursor().executemany("INSERT INTO dashgen.experiments (name, tag_key, tag_value, budget_usd, deadline) "
                                  "VALUES (%s, 'exp', %s, %s, %s)",
                                  [(e.name, e.name, e.budget, e.deadline) for e in experiments])
        conn.execute("INSERT INTO dashgen.experiment_progress SELECT * FROM unnest(%s::text[], %s::timestamptz[], "
                     "%s::numeric[])", [list(c) for c in zip(*progress, strict=True)] if progress else [[], [], []])
        if instances:
            conn.execute("INSERT INTO dashgen.instances (instance_id, region, instance_type, name, tags, state, "
                         "first_seen, last_seen) SELECT id, 'us-east-1', t, id, tags, state, %s, %s "
                         "FROM unnest(%s::text[], %s::text[], %s::jsonb[], %s::text[]) AS x(id, t, tags, state)",
                         [now, now, *(list(c) for c in zip(*instances, strict=True))])
        if runs:
            conn.execute("INSERT INTO dashgen.instance_intervals (instance_id, started_at, ended_at) "
                         "SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[])",
                         [list(c) for c in zip(*runs, strict=True)])
        conn.execute("SELECT dashgen.refresh_billing(%s)", ([i[0] for i in instances],))


def view(dsn: str) -> tuple[dt.datetime, dict[str, dict]]:
    with psycopg.connect(dsn) as conn, conn.transaction():
        now = conn.execute("SELECT now()").fetchone()[0]
        cur = conn.execute("SELECT * FROM dashgen.experiment_status")
        names = [d.name for d in cur.description]
        return now, {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def cost_dashboard() -> dict:
    return render_dashboards(Config())["ec2-cost.json"]


def panel(title: str) -> dict:
    return next(p for p in all_panels(cost_dashboard()) if p.get("title") == title)


def run_panel(dsn: str, title: str) -> list[dict]:
    """A panel's query as Grafana sends it (all experiments selected)."""
    sql = expand(panel(title)["targets"][0]["rawSql"], time_from=dt.datetime.now(dt.UTC) - H,
                 time_to=dt.datetime.now(dt.UTC), variables={"experiment": ALL, "account": ALL}, all_values=ALL_VALUES)
    with psycopg.connect(dsn) as conn, conn.transaction():
        cur = conn.execute(sql.encode())
        names = [d.name for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# ------------------------------------------------------------------ comparing the view with the model

def _near(a, b: Fraction | None, tol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(Fraction(a) - b) <= Fraction(tol)


def _close_times(a: dt.datetime | None, b: dt.datetime | None, tol_s: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs((a - b).total_seconds()) <= tol_s


def assert_row(row: dict, m: Status, now: dt.datetime, deadline: dt.datetime, budget: Decimal) -> None:
    """The view's row is the model's answer: counts and knowns exactly, money to 1e-6 USD, times to 1 ms (plus a
    1e-7 relative part for ETAs far away). A boolean that sits on its boundary (within those tolerances) may go
    either way and is not compared; nor is anything that depends on an ETA within 1e-6 of the century limit."""
    where = f"{row['name']}: {row}\nmodel: {m}"
    assert (row["instances"], row["running"]) == (m.instances, m.running), where
    assert _near(row["spent_usd"], m.spent, 1e-6), where
    assert _near(row["budget_left_usd"], m.budget_left, 1e-6), where
    assert row["burn_usd_per_hour"] == (None if m.burn is None else Decimal(m.burn.numerator) / m.burn.denominator) \
        or _near(row["burn_usd_per_hour"], m.burn, 1e-12), where
    assert _near(row["projected_at_deadline_usd"], m.projected_at_deadline, 1e-5), where
    assert (row["progress_percent"] is None) == (m.progress is None), where
    if m.progress is not None:
        assert Fraction(row["progress_percent"]) == m.progress, where
    if m.pace_per_hour is None:
        assert row["pace_percent_per_hour"] is None, where
    else:
        assert abs(Fraction(row["pace_percent_per_hour"]) - m.pace_per_hour) <= Fraction(1e-9) * (
            1 + abs(m.pace_per_hour)), where
    if m.eta_s is not None and abs(m.eta_s - CENTURY_S) <= CENTURY_S / 1_000_000:
        return  # on the century limit: known or unknown, either is right
    tol_s = 1e-3 + (1e-7 * float(m.eta_s) if m.eta_s is not None else 0)
    assert _close_times(row["eta"], m.eta, tol_s), where
    if m.eta is not None and m.finished_at is None and abs((m.eta - now).total_seconds()) <= tol_s:
        return  # the ETA is now: to finish or at the deadline, either is right
    assert _near(row["projected_to_finish_usd"], m.projected_to_finish, 1e-5), where
    basis = m.projected_to_finish if (m.finished_at or (m.eta and m.eta >= now)) else m.projected_at_deadline
    if basis is None or abs(basis - Fraction(budget)) > Fraction(1e-5):
        assert row["fits_budget"] == m.fits_budget, where
    if m.eta is None or abs((m.eta - deadline).total_seconds()) > tol_s:
        assert row["makes_deadline"] == m.makes_deadline, where


def check(dsn: str, experiments: list[Experiment]) -> tuple[dt.datetime, dict[str, dict], dict[str, Status]]:
    load(dsn, experiments)
    now, rows = view(dsn)
    assert sorted(rows) == sorted(e.name for e in experiments)
    models = {}
    for e in experiments:
        models[e.name] = status(e, now)
        assert_row(rows[e.name], models[e.name], now, e.deadline, e.budget)
    return now, rows, models


def _hourly(last: dt.datetime, percents: list[int | str]) -> list[tuple[dt.datetime, Decimal]]:
    """Points an hour apart, the last one at `last`."""
    n = len(percents)
    return [(last - (n - 1 - k) * H, Decimal(str(p))) for k, p in enumerate(percents)]


# ------------------------------------------------------------------ the scenarios

def test_three_t4g_without_progress_fit_budget_only_when_the_spend_at_the_deadline_does(fresh_db, monkeypatch):
    """The issue's first scenario, as a new user meets it: three t4g instances (large, xlarge, 2xlarge: $0.4704/h
    together) launched a minute ago, `dashgen sync --prices bundled`, no progress metric, deadline in 10 h: the
    spend projected at the deadline ($4.71) is what "fits budget" compares: false for $1, true for $10."""
    import boto3
    from moto import mock_aws

    from cost_scenario import MotoClock, Planned, launch
    from dashgen.config import Experiment as ConfigExperiment
    from dashgen.sync import sync

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    now = dt.datetime.now(dt.UTC)
    for budget, fits in ((1, False), (10, True)):
        config = Config(experiments=(ConfigExperiment("sizing", "experiment", "sizing", budget_usd=budget,
                                                      deadline=now + 10 * H),))
        with mock_aws():
            clock = MotoClock(monkeypatch, now - M)
            ec2 = boto3.client("ec2", region_name="us-east-1")
            for size in ("large", "xlarge", "2xlarge"):
                launch(ec2, Planned(size, f"t4g.{size}", {"experiment": "sizing"}, []))
            clock.now = now
            sync(config, dsn=fresh_db, prices="bundled", session=boto3.Session(region_name="us-east-1"), now=now)
        (row,) = run_panel(fresh_db, "Budget and deadline")
        assert row["Burn rate (USD/h)"] == Decimal("0.4704")
        assert row["Progress"] is None and row["ETA"] is None and row["Pace"] is None
        assert row["Projected cost to finish"] is None  # no ETA: unknown, not the spend so far
        assert Decimal("4.70") < row["Projected at deadline"] < Decimal("4.72")
        assert row["Fits budget"] is fits and row["Makes deadline"] is None
        assert [r["value"] for r in run_panel(fresh_db, "Fits budget")] == [int(fits)]
        assert [r["value"] for r in run_panel(fresh_db, "Makes deadline")] == [None]
        with psycopg.connect(fresh_db) as conn:  # the next loop syncs afresh
            conn.execute("TRUNCATE dashgen.experiments, dashgen.instances CASCADE")


def test_the_eta_follows_the_pace_of_the_last_hour_not_the_line_through_every_point(store):
    """The issue's ETA scenarios. The line through all points would say 1 h 22 min after the last point for
    0, 0, 0, 90 % (late for a deadline 45 min out) and 1 h 15 min for 0, 50, 60, 65 % (on time for one 90 min
    out); the pace of the last hour says 6 min 40 s (on time) and 7 h (late): docs/cost.md says why."""
    last = dt.datetime.now(dt.UTC).replace(microsecond=0) - 5 * M
    sprint = Experiment("sprint", Decimal(5), last + 45 * M, [Member(PRICES["t4g.large"], [(last - 4 * H, None)])],
                        _hourly(last, [0, 0, 0, 90]))
    slowing = Experiment("slowing", Decimal(5), last + 90 * M, [Member(PRICES["t4g.large"], [(last - 4 * H, None)])],
                         _hourly(last, [0, 50, 60, 65]))
    _, rows, _ = check(store, [sprint, slowing])
    for e, line_after in ((sprint, 82 * M), (slowing, 75 * M)):  # what the rejected definition would give
        xs = [seconds(at - e.points[-1][0]) for at, _ in e.points]
        slope = lsq_slope(xs, [Fraction(p) for _, p in e.points])
        intercept = sum(Fraction(p) for _, p in e.points) / 4 - slope * sum(xs) / 4
        assert abs(float((100 - intercept) / slope) - line_after.total_seconds()) < 60
    assert rows["sprint"]["eta"] == last + 6 * M + 40 * S  # 10 % left at 90 %/h
    assert rows["sprint"]["makes_deadline"] is True
    assert rows["slowing"]["eta"] == last + 7 * H  # 35 % left at 5 %/h
    assert rows["slowing"]["makes_deadline"] is False
    assert rows["slowing"]["pace_percent_per_hour"] == pytest.approx(5)
    by_name = {r["Experiment"]: r for r in run_panel(store, "Budget and deadline")}
    assert by_name["sprint"]["ETA"] == rows["sprint"]["eta"] and by_name["sprint"]["Makes deadline"] is True


def test_a_flat_or_falling_progress_line_gives_an_unknown_eta_for_that_experiment_only(store):
    """50, 50.000000001, 50.000000002 % (and slopes whose time to 100 % would overflow, or wrap past 9e18 s):
    unknown ETA for those experiments, every other row intact, every panel on it answers."""
    last = dt.datetime.now(dt.UTC).replace(microsecond=0) - 10 * M
    run = [(last - 3 * H, None)]

    def exp(name: str, points: list[tuple[dt.datetime, Decimal]]) -> Experiment:
        return Experiment(name, Decimal(3), last + 5 * H, [Member(PRICES["t4g.large"], list(run))], points)

    flat = [(last - (2 - k) * 5 * M, Decimal("50") + k * Decimal("0.000000001")) for k in range(3)]
    tiny = [(last - S, Decimal("0")), (last, Decimal("1E-12"))]  # 1e14 s to go: past any timestamp
    wrap = [(last - S, Decimal("0")), (last, Decimal("1E-17"))]  # 1e19 s: an int64 of microseconds wraps
    stalled = _hourly(last, [20, 40, 40])
    falling = _hourly(last, [20, 40, 30])
    healthy = _hourly(last, [20, 40, 60])
    experiments = [exp("flat", flat), exp("tiny", tiny), exp("wrap", wrap), exp("stalled", stalled),
                   exp("falling", falling), exp("healthy", healthy)]
    _, rows, _ = check(store, experiments)
    for name in ("flat", "tiny", "wrap", "stalled", "falling"):
        row = rows[name]
        assert row["eta"] is None and row["projected_to_finish_usd"] is None and row["makes_deadline"] is None, row
        assert row["fits_budget"] is not None  # without an ETA: the spend projected at the deadline decides
    assert rows["healthy"]["eta"] == last + 2 * H and rows["healthy"]["makes_deadline"] is True
    for title in ("Budget and deadline", "Fits budget", "Makes deadline"):
        assert len(run_panel(store, title)) == len(experiments)


def test_each_case_of_the_definitions(store):
    """With and without progress, finished, stalled, backwards, ETA past, deadline past, all stopped, an unknown
    price (running, stopped after running, never ran), instances added mid-experiment: the view is the model, and
    unknown stays unknown."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    large, xlarge = PRICES["t4g.large"], PRICES["t4g.xlarge"]

    def e(name, members, points=(), budget=1, deadline=now + 10 * H) -> Experiment:
        return Experiment(name, Decimal(str(budget)), deadline, list(members), list(points))

    running = Member(large, [(now - 3 * H, None)])
    stopped = Member(xlarge, [(now - 5 * H, now - 4 * H)])
    cases = [
        e("no-members", []),
        e("no-progress", [running]),
        e("on-pace", [running], _hourly(now - 10 * M, [10, 30, 50])),
        e("finished", [running], _hourly(now - 10 * M, [50, 100, 100]), budget=0.2),
        e("finished-again", [running], _hourly(now - 10 * M, [100, 20, 100])),  # restarted and done again
        e("stalled", [running], _hourly(now - 10 * M, [10, 30, 30])),
        e("backwards", [running], _hourly(now - 10 * M, [10, 30, 20])),
        e("one-point", [running], [(now - 10 * M, Decimal(40))]),
        e("eta-past", [running], _hourly(now - 5 * H, [10, 50, 90])),  # 100 % due 4 h 45 min ago, not seen
        e("deadline-past", [running], _hourly(now - 10 * M, [10, 20, 30]), deadline=now - H),
        e("deadline-past-stalled", [running], _hourly(now - 10 * M, [30, 30]), deadline=now - H),
        e("deadline-past-no-progress", [running], deadline=now - H),
        e("all-stopped", [stopped], _hourly(now - 10 * M, [10, 30, 50])),
        e("price-unknown-running", [running, Member(None, [(now - H, None)])], _hourly(now - 10 * M, [10, 30])),
        e("price-unknown-ran", [running, Member(None, [(now - 3 * H, now - 2 * H)])]),
        e("price-unknown-never-ran", [running, Member(None, [])]),
        e("price-unknown-finished", [Member(None, [(now - 2 * H, None)]), stopped], _hourly(now, [50, 100])),
        e("added-mid-experiment", [running, stopped, Member(xlarge, [(now - 20 * M, None)]),
                                   Member(large, [(now - 30 * S, None)])], _hourly(now - 10 * M, [5, 25])),
        e("restarted-within-60s", [Member(large, [(now - H, now - H + 10 * S), (now - H + 20 * S, None)])]),
    ]
    db_now, rows, models = check(store, cases)
    r = rows
    assert r["no-members"]["spent_usd"] == 0 and r["no-members"]["fits_budget"] is True
    assert r["no-progress"]["projected_to_finish_usd"] is None and r["no-progress"]["makes_deadline"] is None
    assert r["finished"]["eta"] == now - 10 * M - H and r["finished"]["projected_to_finish_usd"] == \
        r["finished"]["spent_usd"] and r["finished"]["makes_deadline"] is True
    assert r["finished-again"]["eta"] == now - 10 * M
    assert r["eta-past"]["eta"] < now and r["eta-past"]["projected_to_finish_usd"] is None
    assert r["eta-past"]["fits_budget"] == (r["eta-past"]["projected_at_deadline_usd"] <= 1)
    assert r["deadline-past"]["makes_deadline"] is False and r["deadline-past"]["projected_at_deadline_usd"] == \
        r["deadline-past"]["spent_usd"]
    assert r["deadline-past-stalled"]["eta"] is None and r["deadline-past-stalled"]["makes_deadline"] is False
    assert r["deadline-past-no-progress"]["makes_deadline"] is None
    assert r["all-stopped"]["burn_usd_per_hour"] == 0 and r["all-stopped"]["projected_to_finish_usd"] == \
        r["all-stopped"]["spent_usd"]
    for name in ("price-unknown-running",):
        assert r[name]["burn_usd_per_hour"] is None and r[name]["projected_to_finish_usd"] is None
        assert r[name]["projected_at_deadline_usd"] is None and r[name]["fits_budget"] is None
        assert r[name]["eta"] is not None  # progress does not need prices
    assert r["price-unknown-ran"]["spent_usd"] is None and r["price-unknown-ran"]["budget_left_usd"] is None
    assert r["price-unknown-ran"]["fits_budget"] is None
    assert r["price-unknown-never-ran"]["spent_usd"] is not None and r["price-unknown-never-ran"]["fits_budget"] \
        is not None
    assert r["price-unknown-finished"]["spent_usd"] is None and r["price-unknown-finished"]["fits_budget"] is None
    assert r["added-mid-experiment"]["running"] == 3 and r["added-mid-experiment"]["instances"] == 4
    billed = 60 + (db_now - (now - H + 20 * S)).total_seconds()  # both minimums: 60 s, then up to now
    assert float(r["restarted-within-60s"]["spent_usd"]) == pytest.approx(float(large) * billed / 3600, abs=1e-6)
    # the panels show the view's answers; unknown stays NULL all the way to Grafana
    table = {row["Experiment"]: row for row in run_panel(store, "Budget and deadline")}
    for stat, column in (("Fits budget", "fits_budget"), ("Makes deadline", "makes_deadline")):
        values = {row["metric"]: row["value"] for row in run_panel(store, stat)}
        assert values == {n: None if rows[n][column] is None else int(rows[n][column]) for n in rows}
    assert table["price-unknown-running"]["Projected cost to finish"] is None
    assert table["no-progress"]["ETA"] is None and table["no-progress"]["Pace"] is None


def test_the_panels_show_unknown_for_every_answer_that_can_be_unknown() -> None:
    """NULL reaches Grafana as null; each column that can be unknown maps null to "unknown" (special null+nan:
    grafana/grafana packages/grafana-data/src/utils/valueMappings.ts), and the verdict stats colour it grey, not
    the red base threshold a mapping without a colour falls back to (field/displayProcessor.ts)."""
    table = panel("Budget and deadline")
    mapped = {o["matcher"]["options"]: p["value"] for o in table["fieldConfig"]["overrides"]
              for p in o["properties"] if p["id"] == "mappings"}
    for column in ("Spent", "Budget left", "Burn rate (USD/h)", "Projected at deadline", "Progress", "Pace", "ETA",
                   "Projected cost to finish", "Fits budget", "Makes deadline"):
        nulls = [m for m in mapped[column] if m["type"] == "special" and m["options"]["match"] == "null+nan"]
        assert nulls and nulls[0]["options"]["result"]["text"] == "unknown", column
    for title in ("Fits budget", "Makes deadline"):
        mappings = panel(title)["fieldConfig"]["defaults"]["mappings"]
        (unknown,) = [m for m in mappings if m["type"] == "special" and m["options"]["match"] == "null+nan"]
        assert unknown["options"]["result"] == {"text": "unknown", "color": "#808080", "index": 2}
        steps = panel(title)["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[0]["color"] == "red"  # what an uncoloured "unknown" would have shown


# ------------------------------------------------------------------ generated scenarios

SPACINGS = [5 * M, 20 * M, H, 2 * H]


@st.composite
def runs_strategy(draw) -> list[tuple[int, int | None]]:
    """(start, end or None) in seconds before now, oldest first, each run after the previous one's end; short
    runs and restarts within 60 s are common."""
    short, long = st.integers(1, 90), st.integers(91, 30 * 3600)
    t = -draw(st.integers(0, 40 * 3600))
    runs = []
    for _ in range(draw(st.integers(0, 3))):
        start = t
        if start > 0:
            break
        if draw(st.integers(0, 3)) == 0:  # still going
            runs.append((start, None))
            break
        end = start + draw(st.one_of(short, long))
        runs.append((start, min(end, 0)))
        t = runs[-1][1] + draw(st.one_of(st.integers(0, 90), long))
    return runs


@st.composite
def points_strategy(draw) -> list[tuple[int, Decimal]]:
    """(seconds before now, percent): steady, noisy, flat, nearly flat, falling, finishing or random shapes."""
    n = draw(st.integers(0, 8))
    if n == 0:
        return []
    last = -draw(st.one_of(st.integers(0, 1800), st.integers(0, 12 * 3600)))  # mostly recent
    spacing = draw(st.one_of(st.sampled_from(SPACINGS), st.builds(lambda s: s * S, st.integers(1, 3 * 3600))))
    times = [last - (n - 1 - k) * int(spacing.total_seconds()) for k in range(n)]
    shape = draw(st.sampled_from(["steady"] * 4 + ["flat", "nearly-flat", "finishing", "random"]))
    start = draw(st.decimals(0, 95, places=2))
    step = draw(st.decimals(-5, 40, places=3))
    if shape == "steady":
        pct = [start + k * step for k in range(n)]
    elif shape == "flat":
        pct = [start] * n
    elif shape == "nearly-flat":
        pct = [Decimal(50) + k * Decimal("1E-9") for k in range(n)]
    elif shape == "finishing":
        pct = [min(Decimal(100), start + k * abs(step) * 4) for k in range(n)]
        pct[-1] = draw(st.sampled_from([Decimal(100), Decimal("100.5"), Decimal("99.99")]))
    else:
        pct = [draw(st.decimals(0, 110, places=2)) for _ in range(n)]
    return list(zip(times, pct, strict=True))


# a price (1 in 9: unknown) and the runs
member_strategy = st.tuples(st.sampled_from([p for p in PRICES.values() if p is not None] * 2 + [None]),
                            runs_strategy())
experiment_strategy = st.tuples(
    st.decimals(0, 6, places=2),                      # budget
    st.integers(-20 * 3600, 40 * 3600),                # deadline, seconds from now
    st.lists(member_strategy, max_size=4),
    points_strategy(),
)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(experiment_strategy, min_size=1, max_size=4))
def test_generated_scenarios_match_the_model_row_by_row(store, specs) -> None:
    """Many generated experiments (Hypothesis, derandomized): every answer of the view equals the independent
    model's, NULL where the model says unknown."""
    anchor = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def at(offset: int) -> dt.datetime:
        return anchor + offset * S

    experiments = [
        Experiment(f"e{k}", budget, at(deadline),
                   [Member(price, [(at(s), None if end is None else at(end)) for s, end in runs])
                    for price, runs in members],
                   [(at(t), pct) for t, pct in points])
        for k, (budget, deadline, members, points) in enumerate(specs)
    ]
    _, _, models = check(store, experiments)
    for m in models.values():  # what was covered (pytest --hypothesis-show-statistics)
        eta = ("finished" if m.finished_at else "none" if m.eta is None else "past" if m.eta < anchor else "ahead")
        event(f"eta {eta}, fits {m.fits_budget}, makes deadline {m.makes_deadline}, spent known {m.spent is not None}")
