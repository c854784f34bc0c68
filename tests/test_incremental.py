"""Issue 13: CloudWatch read incrementally, rows written in bulk; the faster paths store what the slow ones did.

- Each instance is asked from its own last stored hour (the last one again only when it was stored partial),
  only over the hours it ran, and nothing when it has nothing new (tests/cloudwatch_model.py records each call).
- A series of incremental syncs stores exactly what one full read at the end stores.
- `store_hourly` from the COPY spool stores what the per-row upsert (the former path) stores.
- GetMetricData calls, metrics requested and datapoints are counted (`CloudWatchMeter`).
"""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest

from cloudwatch_model import CloudWatchModel
from dashgen.sync.cloudwatch import (
    COLUMNS,
    CloudWatchMeter,
    HourlyRow,
    RowSpool,
    Target,
    _batches,
    floor_hour,
    metric_queries,
    read_utilisation_into,
    store_hourly,
)

T0 = floor_hour(dt.datetime.now(dt.UTC)) - dt.timedelta(hours=12) + dt.timedelta(minutes=20)
H = dt.timedelta(hours=1)
# instance -> (launched, stopped or None); "c" is launched between the first and the second sync
FLEET = {
    "i-a": (T0 - 20 * H, None),
    "i-b": (T0 - 20 * H, T0 + H + dt.timedelta(minutes=20)),
    "i-c": (T0 + 2 * H - dt.timedelta(minutes=10), None),
}


@pytest.fixture
def conns(pg_server):
    """Two migrated databases: one synced incrementally, one read once in full."""
    import uuid

    from dashgen.store.db import migrate

    admin = pg_server.get_uri()
    names = [f"inc_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    out = []
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    for name in names:
        conn = psycopg.connect(admin.replace("/postgres?", f"/{name}?", 1), autocommit=True)
        migrate(conn)
        out.append(conn)
    yield out
    for conn in out:
        conn.close()
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _seen(now: dt.datetime) -> list[Target]:
    """What a sync at `now` sees (DescribeInstances)."""
    out = []
    for iid, (launched, stopped) in FLEET.items():
        if launched <= now:
            running = stopped is None or stopped > now
            out.append(Target(iid, instance_type="m5.large", launch_time=launched,  # as rightsize.utilisation_targets
                              running=running, launched_at=launched, stopped_at=None if running else stopped))
    return out


def _write_state(conn, now: dt.datetime) -> None:
    """What sync's write leaves: the instances it saw (last_seen = now) and their running intervals."""
    for iid, (launched, stopped) in FLEET.items():
        if launched > now:
            continue
        ended = stopped if stopped is not None and stopped <= now else None
        conn.execute("INSERT INTO dashgen.instances (instance_id, region, instance_type, name, tags, state,"
                     " launch_time, first_seen, last_seen) VALUES (%s, 'us-east-1', 'm5.large', %s, %s, %s, %s,"
                     " %s, %s) ON CONFLICT (instance_id) DO UPDATE SET last_seen = excluded.last_seen,"
                     " state = excluded.state",
                     (iid, iid, json.dumps({"Name": iid}), "running" if ended is None else "stopped", launched, now,
                      now))
        conn.execute("INSERT INTO dashgen.instance_intervals (instance_id, started_at, ended_at) VALUES (%s, %s, %s)"
                     " ON CONFLICT (instance_id, started_at) DO UPDATE SET ended_at = excluded.ended_at",
                     (iid, launched, ended))


def _sync(conn, model: CloudWatchModel, now: dt.datetime) -> tuple[object, CloudWatchMeter, int]:
    """Read (the store as the previous sync left it), then write, as `dashgen sync` orders them."""
    model.now = now
    model.calls.clear()
    client = model.client()
    meter = CloudWatchMeter()
    meter.attach_client(client)
    spool = RowSpool()
    result = read_utilisation_into(conn, client, "us-east-1", spool, lookback_days=1, now=now, seen=_seen(now))
    with conn.transaction():
        stored = store_hourly(conn, spool)
        _write_state(conn, now)
    spool.close()
    return result, meter, stored


def _rows(conn) -> list[tuple]:
    return conn.execute(f"SELECT instance_id, hour, {', '.join(COLUMNS)} FROM dashgen.instance_utilisation_hourly"
                        " ORDER BY 1, 2").fetchall()


def test_incremental_syncs_store_what_one_full_read_stores_and_ask_only_what_is_new(conns) -> None:
    inc, full = conns
    model = CloudWatchModel({iid: [span] for iid, span in FLEET.items()}, T0)
    t1, t2, t3 = T0, T0 + 3 * H, T0 + 5 * H

    first, meter1, _ = _sync(inc, model, t1)
    # a and b from their launch (20 h ago, inside the 1-day window), to the current hour
    assert {tuple(call[2]) for call in model.calls} == {("i-a", "i-b")}
    assert model.calls[0][:2] == (floor_hour(T0 - 20 * H), floor_hour(t1) + H)
    assert first.queried == 2 and meter1.calls == 1 and meter1.metrics == 2 * 15  # 5 hourly + 10 5-minute series
    # 21 hours each of the 5 hourly series (m5 is not burstable); 20 hours x 12 + 4 (T0 is at :20) 5-minute values
    assert meter1.datapoints == 2 * (5 * 21 + 10 * (20 * 12 + 4))

    _sync(inc, model, t2)
    calls = {tuple(c[2]): c[:2] for c in model.calls}
    # a and b again from the hour that was partial at t1; b up to the hour it stopped in; c from its launch
    assert calls == {("i-a",): (floor_hour(t1), floor_hour(t2) + H),
                     ("i-b",): (floor_hour(t1), floor_hour(FLEET["i-b"][1]) + H),
                     ("i-c",): (floor_hour(FLEET["i-c"][0]), floor_hour(t2) + H)}

    third, meter3, stored3 = _sync(inc, model, t3)
    # b stopped and is stored through its stop: not asked at all; a and c from the hour partial at t2
    assert {tuple(c[2]): c[:2] for c in model.calls} == {("i-a", "i-c"): (floor_hour(t2), floor_hour(t3) + H)}
    assert third.queried == 2 and third.instances == 3 and stored3 == 2 * 3
    assert (meter3.calls, meter3.metrics, meter3.datapoints) == (1, 2 * 15, 2 * (5 * 3 + 10 * (2 * 12 + 4)))

    _write_state(full, t2)  # the full read: everything from the store's point of view at t3 is new
    model.calls.clear()
    model.now = t3
    client = model.client()
    spool = RowSpool()
    read_utilisation_into(full, client, "us-east-1", spool, lookback_days=1, now=t3, seen=_seen(t3))
    store_hourly(full, spool)
    window = floor_hour(t3) - 24 * H  # the full read's 1-day window (the incremental store also has older hours)
    assert [r for r in _rows(inc) if r[1] >= window] == _rows(full)
    assert len(_rows(full)) == 25 + 21 + 4  # a: the window to t3's hour; b: to its stop; c: since its launch


def test_an_hour_stored_partial_is_read_again_and_updated(conns) -> None:
    inc, _ = conns
    model = CloudWatchModel({"i-a": [FLEET["i-a"]]}, T0)
    _sync(inc, model, T0)
    partial = inc.execute("SELECT cpu_avg FROM dashgen.instance_utilisation_hourly WHERE hour = %s",
                          (floor_hour(T0),)).fetchone()[0]
    _sync(inc, model, T0 + 2 * H)
    complete = inc.execute("SELECT cpu_avg FROM dashgen.instance_utilisation_hourly WHERE hour = %s",
                           (floor_hour(T0),)).fetchone()[0]
    assert complete != partial and complete == float(int(complete))  # the model's complete-hour value


def _reference_upsert(conn, rows: list[HourlyRow]) -> None:
    """The former write path: one INSERT ... ON CONFLICT statement a row (the slow path, as the oracle)."""
    cols = ", ".join(COLUMNS)
    sql = (f"INSERT INTO dashgen.instance_utilisation_hourly AS u (instance_id, hour, {cols}) "
           f"VALUES (%s, %s, {', '.join(['%s'] * len(COLUMNS))}) ON CONFLICT (instance_id, hour) DO UPDATE SET "
           + ", ".join(f"{c} = coalesce(excluded.{c}, u.{c})" for c in COLUMNS))
    with conn.cursor() as cur:
        cur.executemany(sql, [(r.instance_id, r.hour, *(r.values.get(c) for c in COLUMNS)) for r in rows])


def test_the_copy_spool_stores_what_the_per_row_upsert_stores(conns) -> None:
    fast, slow = conns
    odd = "i-odd\t\\id\n"  # COPY text escapes
    first = [HourlyRow("i-a", T0, {"cpu_avg": 1.5, "cpu_p95": 0.1 + 0.2, "network_in_bytes": 1e300}),
             HourlyRow("i-a", T0 + H, {"cpu_avg": float("inf")}),
             HourlyRow(odd, T0, {"cpu_max": -0.0, "progress_pct": 12.3456789012345})]
    second = [HourlyRow("i-a", T0, {"cpu_avg": 2.5, "cpu_credit_balance_min": 7.0}),  # keeps cpu_p95
              HourlyRow("i-b", T0, {})]
    for batch in (first, second):
        spool = RowSpool()
        spool += batch[:1]
        spool += batch[1:]
        assert len(spool) == len(batch)
        assert [(r.instance_id, r.hour, r.values) for r in spool] == [(r.instance_id, r.hour, r.values) for r in batch]
        assert store_hourly(fast, spool) == len(batch)
        _reference_upsert(slow, batch)
    assert _rows(fast) == _rows(slow)
    assert store_hourly(fast, []) == 0 and store_hourly(fast, RowSpool()) == 0


def test_an_instance_s_queries_are_never_split_across_two_calls() -> None:
    targets = [Target(f"i-{n:03d}", burstable=n % 2 == 0) for n in range(200)]  # 17 and 15 queries (5-minute too)
    queries = metric_queries(targets)
    batches = list(_batches(queries, 500))
    assert [q for b in batches for q in b] == queries
    assert all(len(b) <= 500 for b in batches) and len(batches) == 7  # 31 instances a call (32 would be 512)
    for before, after in zip(batches, batches[1:], strict=False):
        assert before[-1][1] != after[0][1]


def test_progress_is_read_from_the_latest_stored_point_and_upserted_as_before(migrated_db: str) -> None:
    import boto3
    from botocore.stub import ANY, Stubber

    from dashgen.config import Config, Experiment
    from dashgen.store.db import migrate
    from dashgen.sync import Collected, collect, progress_since, write

    exp = Experiment("exp", "experiment", "exp", 10.0, T0 + 24 * H, "Training", "Progress", (("Experiment", "exp"),))
    config = Config(experiments=(exp,))
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        migrate(conn)
        assert progress_since(conn, config) == {}
        write(conn, config, Collected([], [], [], {"exp": [(T0, 10), (T0 + H, 20)]}), T0 + H)
        assert progress_since(conn, config) == {"exp": T0 + H}
        moved = Experiment(**{**exp.__dict__, "progress_metric": "Other"})
        assert progress_since(conn, Config(experiments=(moved,))) == {}  # another metric: its whole window

        # the next read asks CloudWatch from the latest stored point on
        client = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="t",
                              aws_secret_access_key="t")
        with Stubber(client) as stub:
            stub.add_response("get_metric_data", {"MetricDataResults": [
                {"Id": "progress", "Label": "p", "StatusCode": "Complete",
                 "Timestamps": [T0 + H, T0 + 2 * H], "Values": [25.0, 30.0]}]},
                {"MetricDataQueries": ANY, "StartTime": T0 + H, "EndTime": T0 + 2 * H,
                 "ScanBy": "TimestampAscending"})
            got = collect(config, [], "bundled", boto3.Session(region_name="us-east-1"), T0 + 2 * H,
                          cloudwatch=client, progress_since=progress_since(conn, config))
            stub.assert_no_pending_responses()
        assert got.unsynced == [] and got.failed_regions == {}
        write(conn, config, got, T0 + 2 * H)
        stored = conn.execute("SELECT at, percent FROM dashgen.experiment_progress ORDER BY at").fetchall()
    # as the former one-statement-a-point upsert: the point read again takes its new value, the others stay
    assert [(at, float(pct)) for at, pct in stored] == [(T0, 10.0), (T0 + H, 25.0), (T0 + 2 * H, 30.0)]


def test_a_read_that_fails_midway_keeps_the_calls_that_answered(conns) -> None:
    """A first sync of a large region that runs out of time (or meets a throttle past the retries) lands the
    calls that answered, so the next sync goes on from there instead of starting again."""
    from botocore.exceptions import ClientError

    from dashgen.errors import AwsError
    from dashgen.sync.aws import Budget

    inc, _ = conns
    fleet = {f"i-{n:03d}": (T0 - 5 * H, None) for n in range(101)}  # 15 queries each: 33 instances a call
    model = CloudWatchModel({iid: [span] for iid, span in fleet.items()}, T0)
    client = model.client()
    calls = []

    def second_fails(**_: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "GetMetricData")

    client.meta.events.register_first("before-call.cloudwatch.GetMetricData", second_fails)
    seen = [Target(iid, running=True, launched_at=start) for iid, (start, _) in fleet.items()]
    spool = RowSpool()
    with pytest.raises(AwsError, match="Throttling"):
        read_utilisation_into(inc, client, "us-east-1", spool, lookback_days=1, now=T0, seen=seen,
                              budget=Budget("us-east-1", 60))
    assert len(spool) == 33 * 6  # the first call's 33 instances, 6 hours each; the others not at all
    assert {r.instance_id for r in spool} == set(sorted(fleet)[:33])


def _versions(conn) -> dict[tuple, str]:
    return {(r[0], r[1]): r[2] for r in conn.execute(
        "SELECT instance_id, hour, ctid::text || '/' || xmin::text FROM dashgen.instance_utilisation_hourly")}


def _typed_reference_upsert(conn, rows: list[HourlyRow]) -> None:
    """The per-row upsert with the derived 5-minute columns and the instance type (the first known one stays)."""
    from dashgen.sync.cloudwatch import _stored_values

    cols = ", ".join(COLUMNS)
    sql = (f"INSERT INTO dashgen.instance_utilisation_hourly AS u (instance_id, hour, {cols}, instance_type) "
           f"VALUES (%s, %s, {', '.join(['%s'] * len(COLUMNS))}, %s) ON CONFLICT (instance_id, hour) DO UPDATE SET "
           + ", ".join(f"{c} = coalesce(excluded.{c}, u.{c})" for c in COLUMNS)
           + ", instance_type = coalesce(u.instance_type, excluded.instance_type)")
    with conn.cursor() as cur:
        for r in rows:
            values = _stored_values(r)
            cur.execute(sql, (r.instance_id, r.hour, *(values.get(c) for c in COLUMNS), r.instance_type))


def test_new_hours_are_copied_straight_in_and_stored_hours_upserted_with_the_per_row_result(conns) -> None:
    """store_hourly's two paths: an instance whose spooled rows all follow its last stored hour (or with nothing
    stored) is COPYed straight into the table; one whose rows reach back to a stored hour goes through the
    upsert. Both store what the per-row upsert (the oracle) stores, and neither rewrites a row it does not
    change (ctid and xmin of the untouched rows are kept)."""
    fast, slow = conns
    five = [float(k) if k % 5 else None for k in range(12)]
    first = [HourlyRow(iid, T0 + k * H, {"cpu_avg": float(k), "cpu_max_5m": five, "network_in_bytes": 1e12 + k},
                       "m5.large") for iid in ("i-mid", "i-old") for k in range(4)]
    first += [HourlyRow("i-both", T0, {"cpu_avg": 1.0}, "m5.large")]
    second = [  # i-old: only hours after its last stored one (the straight COPY); i-mid reaches back two hours
        # (all upserted); i-both's first hour is stored, the next not (one upserted, one COPYed)
        *(HourlyRow("i-mid", T0 + k * H, {"cpu_p95": 10.0 + k}, "m5.xlarge") for k in range(2, 6)),
        *(HourlyRow("i-old", T0 + k * H, {"cpu_avg": 10.0 + k, "cpu_max_5m": [None] * 12}, "m5.xlarge")
          for k in range(4, 6)),
        HourlyRow("i-both", T0, {"cpu_p95": 2.0}, "m5.xlarge"), HourlyRow("i-both", T0 + H, {"cpu_avg": 3.0}),
        HourlyRow("i-new", T0 + 2 * H, {"progress_pct": 0.1 + 0.2, "cpu_max_5m": []}, "c6g.large"),
    ]
    for batch in (first, second):
        before = _versions(fast)
        assert store_hourly(fast, batch) == len(batch)
        _typed_reference_upsert(slow, batch)
        after = _versions(fast)
        assert {k: after[k] for k in before if k != ("i-both", T0) and k[0] != "i-mid"} == {
            k: v for k, v in before.items() if k != ("i-both", T0) and k[0] != "i-mid"}
    assert _rows(fast) == _rows(slow) and len(_rows(fast)) == 15
    assert _rows(fast)[0][1:] != _rows(fast)[1][1:]  # (the rows differ: the comparison can fail)
    # the type stored is the first known one (the upsert keeps it), the new hours carry theirs
    assert fast.execute("SELECT hour, instance_type FROM dashgen.instance_utilisation_hourly WHERE instance_id = "
                        "'i-both' ORDER BY 1").fetchall() == [(T0, "m5.large"), (T0 + H, None)]
    # a re-sync of the same rows rewrites nothing, on either path
    before = _versions(fast)
    store_hourly(fast, second)
    assert _versions(fast) == before


def test_store_hourly_waits_for_the_sync_lock(conns) -> None:
    """Whether an instance's hours are new is decided under the sync lock: a write outside sync
    (`collect_utilisation`) cannot COPY an hour a concurrent sync is storing."""
    from dashgen.store.db import SYNC_LOCK

    fast, other = conns[0], psycopg.connect(conns[0].info.dsn, autocommit=True)
    try:
        with other.transaction():
            other.execute("SELECT pg_advisory_xact_lock(%s)", (SYNC_LOCK,))
            with fast.transaction():
                fast.execute("SET LOCAL lock_timeout = '200ms'")
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    store_hourly(fast, [HourlyRow("i-a", T0, {"cpu_avg": 1.0})])
        assert store_hourly(fast, [HourlyRow("i-a", T0, {"cpu_avg": 1.0})]) == 1
    finally:
        other.close()


def test_the_spool_round_trips_every_value_and_refuses_a_5_minute_value_a_real_cannot_hold() -> None:
    from dashgen.errors import AwsError

    odd = "i-odd\t\\id\n"
    rows = [HourlyRow(odd, T0, {"cpu_avg": -0.0, "network_out_bytes": float("inf"), "cpu_max_5m": [1.5, None]},
                      "t4g.large"),
            HourlyRow("i-a", T0 + H, {c: 0.1 + 0.2 for c in COLUMNS if c not in ("cpu_max_5m", "cpu_count_5m")}),
            HourlyRow("i-a", T0 + 2 * H, {})]
    spool = RowSpool(rows)
    spool.CHUNK = 7  # rows cut across chunks are read back whole
    back = list(spool)
    assert [(r.instance_id, r.hour, r.instance_type) for r in back] == [(odd, T0, "t4g.large"), ("i-a", T0 + H, None),
                                                                         ("i-a", T0 + 2 * H, None)]
    assert back[0].values == {"cpu_avg": -0.0, "network_out_bytes": float("inf"), "cpu_max_5m": [1.5, None],
                              "cpu_peak_5m": 1.5, "cpu_count_5m": 1}
    assert back[1].values["cpu_peak_5m"] != 0.1 + 0.2  # a real (4 bytes), as the table's column
    assert {k: v for k, v in back[1].values.items() if k != "cpu_peak_5m"} == {
        c: 0.1 + 0.2 for c in COLUMNS if c not in ("cpu_max_5m", "cpu_count_5m", "cpu_peak_5m")}
    assert spool.instances() == ["i-a", odd]

    def rows_in(ranges: list) -> list[tuple]:
        return [(r.instance_id, r.hour) for r in RowSpool._read(b"".join(spool.copy_data(ranges)))]

    new, old = spool.split({"i-a": T0 + H})  # i-a: its first hour is stored, its second not; odd: nothing stored
    assert (rows_in(new), rows_in(old)) == ([(odd, T0), ("i-a", T0 + 2 * H)], [("i-a", T0 + H)])
    new, old = spool.split({"i-a": T0 + 2 * H, odd: T0 - H})
    assert (rows_in(new), rows_in(old)) == ([(odd, T0)], [("i-a", T0 + H), ("i-a", T0 + 2 * H)])
    backwards = RowSpool([HourlyRow("i-b", T0 + 2 * H), HourlyRow("i-b", T0 + H)])  # (not in hour order)
    assert backwards.split({"i-b": T0 + H})[0] == []  # its first row is new, the next one stored: all upserted
    backwards.close()
    with pytest.raises(AwsError, match=r"cpu_max_5m of i-a = 1e\+300 is out of range"):
        RowSpool([HourlyRow("i-a", T0, {"cpu_max_5m": [1e300]})])
    spool.close()


def test_migration_080_keeps_every_stored_hour_and_replaces_the_hour_index(fresh_db, monkeypatch) -> None:
    """A store migrated without 080 with utilisation stored: after `migrate`, the same rows, the btree on hour
    replaced by the BRIN index. (Every other migration stays: today's definition files need the later ones.)"""
    from dashgen.store import db as store

    files = store.migration_files()
    monkeypatch.setattr(store, "migration_files", lambda: [f for f in files if f[0] != "080_utilisation_hour_brin"])
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        store.migrate(conn)
        store_hourly(conn, [HourlyRow(f"i-{n}", T0 + k * H, {"cpu_avg": float(n + k), "cpu_max_5m": [1.0] * 12},
                                      "m5.large") for n in range(3) for k in range(5)])
        before = _rows(conn)
        monkeypatch.setattr(store, "migration_files", lambda: files)
        assert store.migrate(conn) == ["080_utilisation_hour_brin"]
        assert _rows(conn) == before and len(before) == 15
        indexes = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'dashgen' AND "
                                    "tablename = 'instance_utilisation_hourly'").fetchall())
        assert "instance_utilisation_hourly_hour" not in indexes
        assert "USING brin (hour)" in indexes["instance_utilisation_hourly_hour_brin"]


def test_the_binary_spool_gives_back_every_row_it_was_given() -> None:
    """Property: any rows (any instance id text, any double, 5-minute maxima in a real's range) come back from the
    spool as given, the derived peak and count added and the 5-minute values rounded to a real (4 bytes), as the
    table stores them."""
    import struct

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from dashgen.sync.cloudwatch import _stored_values

    real = st.floats(width=32, allow_nan=False)
    doubles = st.floats(allow_nan=False)
    plain = [c for c in COLUMNS if c not in ("cpu_max_5m", "cpu_peak_5m", "cpu_count_5m")]
    row = st.builds(
        HourlyRow, st.text(min_size=1, max_size=30).filter(lambda s: "\x00" not in s),
        st.integers(0, 10**6).map(lambda k: T0 + k * H),
        st.fixed_dictionaries({}, optional={**{c: doubles for c in plain},
                                            "cpu_max_5m": st.lists(st.none() | real, max_size=12)}),
        st.none() | st.sampled_from(["m5.large", "t4g.micro"]))

    def as_real(v: float | None) -> float | None:
        return None if v is None else struct.unpack("!f", struct.pack("!f", v))[0]

    @settings(max_examples=200, deadline=None)
    @given(st.lists(row, max_size=20))
    def check(rows: list[HourlyRow]) -> None:
        spool = RowSpool(rows)
        try:
            back = list(spool)
        finally:
            spool.close()
        assert len(back) == len(spool) == len(rows)
        for given_row, got in zip(rows, back, strict=True):
            want = _stored_values(given_row)
            if "cpu_max_5m" in want:
                want["cpu_max_5m"] = [as_real(v) for v in want["cpu_max_5m"]]
                want["cpu_peak_5m"] = as_real(want["cpu_peak_5m"])
            assert (got.instance_id, got.hour, got.instance_type, got.values) == (
                given_row.instance_id, given_row.hour, given_row.instance_type, want)

    check()
