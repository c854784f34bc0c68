"""The pricing store: migrations, the instance-type load, reader grants and one-line database errors."""

from __future__ import annotations

import psycopg
import pytest

from dashgen.errors import DatabaseError
from dashgen.store import db as store

CONTRACT = {
    "instance_types": ["instance_type", "family", "vcpu", "memory_mib", "arch", "burstable", "gpus", "bare_metal",
                       "hypervisor"],
    "instance_prices": ["region", "instance_type", "operating_system", "tenancy", "usd_per_hour", "vcpu",
                        "memory_mib", "source", "price_date", "fetched_at"],
    "instances": ["instance_id", "region", "instance_type", "name", "tags", "state", "launch_time", "platform",
                  "first_seen", "last_seen"],
    "instance_intervals": ["instance_id", "started_at", "ended_at"],
    "experiments": ["name", "tag_key", "tag_value", "budget_usd", "deadline", "progress_namespace",
                    "progress_metric", "progress_dimensions"],
    "schema_migrations": ["version", "applied_at", "checksum"],
}


def as_role(dsn: str, role: str) -> str:
    return dsn.replace("postgresql://postgres:@", f"postgresql://{role}:@", 1)


def columns(conn: psycopg.Connection, table: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'dashgen' AND table_name = %s",
        (table,))]


def test_migrate_creates_the_contract_tables_once_and_loads_every_instance_type(fresh_db: str) -> None:
    with store.connect(fresh_db) as conn:
        applied = store.migrate(conn)
        assert applied[:2] == ["001_pricing_store", "002_cost_functions"]
        assert applied == [v for v, _ in store.migration_files()]
        for table, cols in CONTRACT.items():
            assert set(cols) <= set(columns(conn, table)), table
        assert conn.execute("SELECT count(*) FROM dashgen.instance_types").fetchone()[0] == 1367
        row = conn.execute("SELECT vcpu, memory_mib, arch, burstable, gpus, bare_metal, hypervisor "
                           "FROM dashgen.instance_types WHERE instance_type = 't4g.large'").fetchone()
        assert row == (2, 8192, "arm64", True, 0, False, "nitro")
        unknown = conn.execute("SELECT vcpu FROM dashgen.instance_types WHERE instance_type = 'cr1.8xlarge'")
        assert unknown.fetchone() == (None,)  # unknown spec: NULL
        xmins = conn.execute("SELECT sum(xmin::text::bigint) FROM dashgen.instance_types").fetchone()
        assert store.migrate(conn) == []  # nothing pending
        assert conn.execute("SELECT sum(xmin::text::bigint) FROM dashgen.instance_types").fetchone() == xmins
        assert store.applied_migrations(conn) == applied


def test_new_migration_files_are_applied_all_or_nothing(fresh_db, monkeypatch) -> None:
    files = store.migration_files()
    with store.connect(fresh_db) as conn:
        store.migrate(conn)
        before = store.applied_migrations(conn)
        monkeypatch.setattr(store, "migration_files", lambda: [
            *files, ("990_extra", "CREATE TABLE dashgen.extra (x int);"),
            ("991_broken", "CREATE TABLE dashgen.half (x int); SELECT no_such_function();"),
        ])
        with pytest.raises(DatabaseError) as err:
            store.migrate(conn)
        assert str(err.value).startswith("migrate: 991_broken.sql: ")
        assert "\n" not in str(err.value)
        assert store.applied_migrations(conn) == before  # one transaction: 990 rolled back with 991
        assert conn.execute("SELECT to_regclass('dashgen.half'), to_regclass('dashgen.extra')").fetchone() == (
            None, None)
        extra = ("990_extra", "CREATE TABLE dashgen.extra (x int);")
        monkeypatch.setattr(store, "migration_files", lambda: [*files, extra])
        assert store.migrate(conn) == ["990_extra"]
        assert conn.execute("SELECT to_regclass('dashgen.extra')").fetchone() == ("dashgen.extra",)


def test_grant_reader_gives_select_on_the_schema_and_nothing_else(fresh_db: str) -> None:
    with store.connect(fresh_db) as conn:
        conn.execute("DROP ROLE IF EXISTS grafana_reader")
        conn.execute("CREATE ROLE grafana_reader LOGIN")
        try:
            store.migrate(conn)
            assert store.grant_reader(conn, "grafana_reader") == ([], [])  # as a superuser: nothing left to do
            conn.execute("CREATE TABLE dashgen.later (x int)")  # a later migration's table
            conn.execute("INSERT INTO dashgen.later VALUES (1)")
            with psycopg.connect(as_role(fresh_db, "grafana_reader"), autocommit=True) as reader:
                assert reader.execute("SELECT count(*) FROM dashgen.instance_types").fetchone() == (1367,)
                assert reader.execute("SELECT x FROM dashgen.later").fetchone() == (1,)
                assert reader.execute("SELECT count(*) FROM dashgen.experiment_status").fetchone() == (0,)
                for stmt in ("INSERT INTO dashgen.experiments (name, tag_key, tag_value, budget_usd, deadline) "
                             "VALUES ('x', 'k', 'v', 1, now())",
                             "DELETE FROM dashgen.instance_types",
                             "CREATE TABLE dashgen.mine (x int)",
                             "UPDATE dashgen.later SET x = 2"):
                    with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction)):
                        reader.execute(stmt)
                    reader.execute("SET default_transaction_read_only = off")  # the grants refuse it too
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        reader.execute(stmt)
                    reader.execute("RESET default_transaction_read_only")
        finally:
            conn.execute("DROP OWNED BY grafana_reader")
            conn.execute("DROP ROLE grafana_reader")


def test_grant_reader_to_a_missing_role_is_one_line(fresh_db: str) -> None:
    with store.connect(fresh_db) as conn, pytest.raises(DatabaseError, match=r"role 'nobody_here' does not exist"):
        store.grant_reader(conn, "nobody_here")


@pytest.mark.parametrize("dsn", [
    "postgresql://bob:hunter2@127.0.0.1:1/dashgen?connect_timeout=2",
    "host=127.0.0.1 port=1 user=bob password=hunter2 dbname=x connect_timeout=2",
    "host=127.0.0.1 password=hunter2 nonsense",
])
def test_a_bad_dsn_is_one_line_that_never_shows_the_password(dsn: str) -> None:
    with pytest.raises(DatabaseError) as err:
        store.connect(dsn)
    message = str(err.value)
    assert message.startswith("cannot connect to the pricing store")
    assert "\n" not in message and "hunter2" not in message
    assert "***" in message


def test_missing_permission_is_one_line_and_writes_nothing(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS nobody_rw")
        admin.execute("CREATE ROLE nobody_rw LOGIN")
        admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        try:
            with store.connect(as_role(fresh_db, "nobody_rw")) as conn, pytest.raises(DatabaseError) as err:
                store.migrate(conn)
            assert str(err.value).startswith("migrate: missing permission: permission denied for database")
            assert "\n" not in str(err.value)
            assert admin.execute("SELECT to_regnamespace('dashgen')").fetchone() == (None,)
        finally:
            admin.execute("DROP ROLE nobody_rw")


def test_resolve_dsn_prefers_the_option_then_the_environment_then_the_config(monkeypatch) -> None:
    from dashgen.config import Config

    monkeypatch.delenv("DASHGEN_DSN", raising=False)
    cfg = Config(dsn="postgresql://cfg@h/db")
    assert store.resolve_dsn("postgresql://opt@h/db", cfg) == "postgresql://opt@h/db"
    assert store.resolve_dsn(None, cfg) == "postgresql://cfg@h/db"
    monkeypatch.setenv("DASHGEN_DSN", "postgresql://env@h/db")
    assert store.resolve_dsn(None, cfg) == "postgresql://env@h/db"
    monkeypatch.delenv("DASHGEN_DSN")
    with pytest.raises(DatabaseError, match="no database: pass --dsn"):
        store.resolve_dsn(None, Config())
