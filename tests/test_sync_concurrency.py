"""Issue 10, point 6: two syncs at once. The write is serialised by an advisory lock (waiting at most
LOCK_TIMEOUT, then one line naming who holds it), and a sync whose AWS read started before the read of the last
sync that committed writes nothing: an older view of AWS never overwrites a newer one."""

from __future__ import annotations

import datetime as dt
import threading
import time

import psycopg
import pytest

from dashgen.config import Config
from dashgen.errors import DatabaseError
from dashgen.store import db as store
from dashgen.sync import Collected, write
from dashgen.sync.inventory import Instance

T1 = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
LAUNCH = T1 - dt.timedelta(hours=5)


def seen(state: str, stopped_at: dt.datetime | None = None) -> Collected:
    """One instance as one read of AWS saw it."""
    inst = Instance("i-0123", "us-east-1", "t4g.large", state, LAUNCH, name="web", tags={"Name": "web"},
                    state_changed_at=stopped_at)
    return Collected([inst], ["us-east-1"], [], {})


def waiting_for_the_sync_lock(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                        "AND objid = %s", (store.SYNC_LOCK,)).fetchone()[0]


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_two_concurrent_writers_the_older_read_never_overwrites_the_newer_commit(fresh_db: str) -> None:
    """Sync A read AWS at T1 (instance running), sync B at T1 + 5 min (stopped at T1 + 2 min). Both reach the
    write at once; B gets the lock first and commits; A then writes nothing and says so in one line."""
    t2 = T1 + dt.timedelta(minutes=5)
    with psycopg.connect(fresh_db, autocommit=True) as admin:
        store.migrate(admin)
        write(admin, Config(), seen("running"), T1 - dt.timedelta(minutes=15))  # an earlier sync
        admin.execute("SELECT pg_advisory_lock(%s)", (store.SYNC_LOCK,))  # both writers queue behind this
        results: dict[str, object] = {}

        def writer(name: str, collected: Collected, now: dt.datetime) -> None:
            with psycopg.connect(fresh_db, autocommit=True) as conn:
                try:
                    results[name] = write(conn, Config(), collected, now)
                except Exception as exc:  # (reported by the assertions below)
                    results[name] = exc

        newer = threading.Thread(target=writer, args=("B", seen("stopped", T1 + dt.timedelta(minutes=2)), t2))
        older = threading.Thread(target=writer, args=("A", seen("running"), T1))
        newer.start()
        wait_until(lambda: waiting_for_the_sync_lock(admin) == 1)
        older.start()
        wait_until(lambda: waiting_for_the_sync_lock(admin) == 2)
        admin.execute("SELECT pg_advisory_unlock(%s)", (store.SYNC_LOCK,))  # B was first in line
        newer.join(30)
        older.join(30)
        assert results["B"] is None
        assert results["A"] == ("sync: nothing written: another sync read AWS at 2026-11-30 12:05:00Z, after this "
                                "one (12:00:00Z), and committed first")
        row = admin.execute("SELECT state, last_seen FROM dashgen.instances").fetchone()
        assert row == ("stopped", t2)  # not re-opened, last_seen not moved back
        assert admin.execute("SELECT started_at, ended_at FROM dashgen.instance_intervals").fetchall() == [
            (LAUNCH, T1 + dt.timedelta(minutes=2))]
        assert admin.execute("SELECT read_at FROM dashgen.sync_state").fetchone() == (t2,)


def test_writers_in_read_order_both_land(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        store.migrate(conn)
        assert write(conn, Config(), seen("running"), T1) is None
        assert write(conn, Config(), seen("running"), T1) is None  # the same read again (a re-run): written
        assert write(conn, Config(), seen("stopped", T1 + dt.timedelta(minutes=2)), T1 + dt.timedelta(minutes=5)) \
            is None
        assert conn.execute("SELECT state FROM dashgen.instances").fetchone() == ("stopped",)


def test_a_sync_blocked_by_a_lock_holder_gives_up_in_one_line_naming_it(fresh_db: str, monkeypatch) -> None:
    monkeypatch.setattr(store, "LOCK_TIMEOUT", "1s")
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        store.migrate(conn)
    with psycopg.connect(fresh_db + "&application_name=stuck-sync", autocommit=True) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (store.SYNC_LOCK,))
        with psycopg.connect(fresh_db, autocommit=True) as conn:
            started = time.monotonic()
            with pytest.raises(DatabaseError) as err:
                write(conn, Config(), seen("running"), T1)
            assert time.monotonic() - started < 5
            assert str(err.value) == (
                "sync: write the pricing store: gave up after waiting 1s for a lock held by pid "
                f"{holder.info.backend_pid} (role postgres, application 'stuck-sync', idle in transaction)")
            assert conn.execute("SELECT count(*) FROM dashgen.instances").fetchone() == (0,)
        holder.execute("COMMIT")
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert write(conn, Config(), seen("running"), T1) is None  # the lock released: sync goes on


def test_a_migrate_blocked_by_another_migrate_names_it(fresh_db: str, monkeypatch) -> None:
    monkeypatch.setattr(store, "LOCK_TIMEOUT", "1s")
    with psycopg.connect(fresh_db + "&application_name=dashgen", autocommit=True) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (store.MIGRATE_LOCK,))
        with psycopg.connect(fresh_db, autocommit=True) as conn, pytest.raises(DatabaseError) as err:
            store.migrate(conn)
        assert str(err.value).startswith(f"migrate: gave up after waiting 1s for a lock held by pid "
                                         f"{holder.info.backend_pid} (role postgres, application 'dashgen'")
        holder.execute("ROLLBACK")


def test_a_skipped_sync_says_so_instead_of_synced(fresh_db: str, monkeypatch, capsys) -> None:
    import boto3
    from moto import mock_aws

    from cost_scenario import LINUX_AMI
    from dashgen.sync import sync
    from dashgen.views import Format, synced

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        session.client("ec2").run_instances(ImageId=LINUX_AMI, MinCount=1, MaxCount=1, InstanceType="t4g.large")
        assert sync(Config(), dsn=fresh_db, prices="bundled", session=session, now=now).skipped is None
        late = sync(Config(), dsn=fresh_db, prices="bundled", session=session, now=now - dt.timedelta(minutes=1))
    assert late.skipped and late.skipped.startswith("sync: nothing written: another sync read AWS at ")
    synced(late, Format.text)
    out = capsys.readouterr().out
    assert out.splitlines()[0] == late.skipped and "synced" not in out
