"""Issue 10, point 1: Grafana's reader role is read-only on a real PostgreSQL 16 set up by the project's own init
SQL (provisioning/postgres/init/01-dashgen.sql) and by `dashgen db grant-reader`.

Grafana's PostgreSQL data source sends a panel's interpolated rawSql with the simple query protocol, which runs
every statement of a multi-statement string: grafana/grafana pkg/tsdb/grafana-postgresql-datasource/sqleng/
sql_engine_pgx.go (`execQuery`: `c.Conn().PgConn().Exec(ctx, query)`, then `mrr.ReadAll()`). psycopg sends a
query without parameters the same way (PQsendQuery), so `reader.execute("COMMIT; BEGIN READ WRITE; ...")` below
is what a Grafana editor's panel runs. Every escape must fail, and sync must still run afterwards."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest
from moto import mock_aws

from cost_scenario import LINUX_AMI
from dashgen.config import Config
from dashgen.errors import DatabaseError
from dashgen.grafana import provision as P
from dashgen.store import db as store
from dashgen.sync import sync

ESCAPE = "COMMIT; BEGIN READ WRITE; "  # default_transaction_read_only alone is no guard: the grants must refuse
DENIED = psycopg.errors.InsufficientPrivilege
ESCAPES = [  # (statement after ESCAPE, the error PostgreSQL must raise)
    ("SELECT lo_from_bytea(0, convert_to(repeat('x', 1000000), 'UTF8'))", DENIED),
    ("SELECT lo_create(0)", DENIED),
    ("SELECT lo_creat(-1)", DENIED),
    ("SELECT lo_import('/etc/hostname')", DENIED),
    ("SELECT lo_put(1, 0, '\\x00')", DENIED),
    ("CREATE TEMP TABLE t (x int)", DENIED),
    ("SELECT 1 AS x INTO TEMP t2", DENIED),
    ("CREATE TABLE public.t (x int)", DENIED),
    ("CREATE TABLE dashgen.t (x int)", DENIED),
    ("CREATE SCHEMA evil", DENIED),
    ("CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'", DENIED),
    ("CREATE EXTENSION vector", DENIED),  # (a trusted extension needs CREATE on the database)
    ("INSERT INTO dashgen.experiments (name, tag_key, tag_value, budget_usd, deadline) "
     "VALUES ('x', 'k', 'v', 1, now())", DENIED),
    ("UPDATE dashgen.instance_prices SET usd_per_hour = 1000", DENIED),
    ("DELETE FROM dashgen.instances", DENIED),
    ("TRUNCATE dashgen.instance_intervals", DENIED),
    ("SELECT dashgen.refresh_billing(ARRAY(SELECT instance_id FROM dashgen.instances))", DENIED),
    ("DO $$ BEGIN DELETE FROM dashgen.instance_prices; END $$", DENIED),
    ("SELECT set_config('default_transaction_read_only', 'off', false); DELETE FROM dashgen.experiments", DENIED),
    ("SELECT * FROM dashgen.instances FOR UPDATE", DENIED),
    ("LOCK TABLE dashgen.instances IN EXCLUSIVE MODE", DENIED),
    (f"SELECT pg_advisory_lock({store.SYNC_LOCK})", DENIED),
    (f"SELECT pg_advisory_xact_lock({store.MIGRATE_LOCK})", DENIED),
    (f"SELECT pg_try_advisory_lock({store.SYNC_LOCK})", DENIED),
    ("SELECT pg_advisory_lock_shared(1, 2)", DENIED),
    ("SET ROLE dashgen", DENIED),
    ("SET SESSION AUTHORIZATION dashgen", DENIED),
    ("CREATE ROLE evil LOGIN", DENIED),
    ("ALTER ROLE dashgen SET statement_timeout = '1ms'", DENIED),
    ("ALTER DATABASE {db} SET statement_timeout = '1ms'", DENIED),
    ("COPY dashgen.instances TO '/tmp/dashgen-escape'", DENIED),
    ("COPY (SELECT 1) TO PROGRAM 'touch /tmp/dashgen-escape'", DENIED),
    ("SELECT pg_terminate_backend({victim})", DENIED),  # another role's session (sync's)
    ("SELECT pg_cancel_backend({victim})", DENIED),
    ("SELECT 1 FROM dashgen.instances; PREPARE TRANSACTION 'hold-locks'", psycopg.errors.ObjectNotInPrerequisiteState),
]


def _psql() -> str:
    import pgserver

    return str(Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql")


def as_role(dsn: str, role: str, app: str = "") -> str:
    dsn = dsn.replace("postgresql://postgres:@", f"postgresql://{role}:@", 1)
    return dsn + (f"&application_name={app}" if app else "")


def drop_roles(admin_dsn: str, *roles: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for role in roles:  # one at a time: together trips over the default ACL
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(f"DROP OWNED BY {role} CASCADE")
        for role in roles:
            conn.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture
def compose_db(fresh_db: str, tmp_path: Path) -> Iterator[str]:
    """`fresh_db` set up by the project's init SQL, run as the postgres image runs it; migrated by the owner."""
    script = tmp_path / "01-dashgen.sql"
    script.write_text(P.init_sql())
    env = {**os.environ, "DASHGEN_OWNER_PASSWORD": "owner-pw", "DASHGEN_READER_PASSWORD": "reader-pw"}
    proc = subprocess.run([_psql(), "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "--no-password", "-f", str(script),
                           fresh_db], env=env, capture_output=True, text=True, timeout=60)
    try:
        assert proc.returncode == 0, proc.stderr
        with psycopg.connect(as_role(fresh_db, P.OWNER_ROLE), autocommit=True) as owner:
            store.migrate(owner)
        yield fresh_db
    finally:
        drop_roles(fresh_db, P.READER_ROLE, P.OWNER_ROLE)


@pytest.fixture
def aws(monkeypatch) -> Iterator[boto3.Session]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        session.client("ec2").run_instances(ImageId=LINUX_AMI, MinCount=2, MaxCount=2, InstanceType="t4g.large")
        yield session


def role_settings(conn: psycopg.Connection, role: str) -> dict[int, list[str]]:
    return {db: sorted(cfg) for db, cfg in conn.execute(
        "SELECT setdatabase, setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
        "WHERE r.rolname = %s", (role,))}


def password(admin: psycopg.Connection) -> str:
    return admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (P.READER_ROLE,)).fetchone()[0]


WANTED = {0: sorted(f"{k}={v}" for k, v in store.READER_SETTINGS)}


def try_every_escape(reader: psycopg.Connection, victim: psycopg.Connection) -> None:
    """Every escape in ESCAPES, as a panel's SQL; `victim`: another role's session (a sync's)."""
    cur = reader.execute("SELECT 1; SELECT 2")  # two statements in one string: the simple query protocol
    assert cur.fetchone() == (1,) and cur.nextset() and cur.fetchone() == (2,)
    for stmt, error in ESCAPES:
        with pytest.raises(error):
            reader.execute(ESCAPE + stmt.replace("{db}", reader.info.dbname).replace(
                "{victim}", str(victim.info.backend_pid)))
            pytest.fail(f"not refused: {stmt}")
        reader.execute("ROLLBACK")  # (the escape's explicit transaction, aborted)


def scram_matches(verifier: str, password: str) -> bool:
    """Whether a stored SCRAM-SHA-256 verifier (RFC 5803: iterations:salt$StoredKey:ServerKey) is `password`'s."""
    method, params, keys = verifier.split("$")
    iterations, salt = params.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return method == "SCRAM-SHA-256" and base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key


def test_the_reader_of_the_compose_init_sql_cannot_escape_and_sync_runs_afterwards(compose_db: str, aws,
                                                                                  monkeypatch) -> None:
    monkeypatch.setenv(P.READER_PASSWORD_ENV, "reader-pw")  # as docker-compose.yml gives it to the sync service
    owner_dsn = as_role(compose_db, P.OWNER_ROLE)
    first = sync(Config(), dsn=owner_dsn, prices="bundled", session=aws)
    assert first.instances == 2 and not [w for w in first.warnings if P.READER_ROLE in w]
    with psycopg.connect(compose_db) as admin:
        before = {t: admin.execute(f"SELECT count(*) FROM dashgen.{t}").fetchone()[0]
                  for t in ("instances", "instance_intervals", "instance_prices", "experiments")}
        assert before["instances"] == 2
        assert role_settings(admin, P.READER_ROLE) == WANTED  # written by the init SQL

    with psycopg.connect(as_role(compose_db, P.READER_ROLE, "Grafana"), autocommit=True) as reader:
        assert reader.execute("SHOW statement_timeout").fetchone() == ("30s",)
        assert reader.execute("SELECT count(*) FROM instances").fetchone() == (2,)  # reads, search_path dashgen
        with psycopg.connect(owner_dsn) as victim:
            try_every_escape(reader, victim)
            assert victim.execute("SELECT 1").fetchone() == (1,)
        # What PostgreSQL lets any role do to itself: settings that would outlive the session ...
        reader.execute(ESCAPE + "ALTER ROLE grafana_reader PASSWORD 'locked-out'; "
                       "ALTER ROLE grafana_reader SET statement_timeout = '1ms'; "
                       "ALTER ROLE grafana_reader SET default_transaction_read_only = off; "
                       f'ALTER ROLE grafana_reader IN DATABASE "{reader.info.dbname}" '
                       "SET search_path = public; COMMIT")
        # ... and a transaction left open holding a lock on every table (Grafana keeps pooled connections)
        reader.execute("BEGIN; " + "; ".join(f"SELECT 1 FROM dashgen.{t} LIMIT 1" for t in before))

        with psycopg.connect(compose_db) as admin:
            assert admin.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone() == (0,)
            assert admin.execute("SELECT count(*) FROM pg_class WHERE relname IN ('t', 't2') "
                                 "AND relkind = 'r'").fetchone() == (0,)
            assert role_settings(admin, P.READER_ROLE) != WANTED  # changed by the reader, for now
            assert scram_matches(password(admin), "locked-out")

        again = sync(Config(), dsn=owner_dsn, prices="bundled", session=aws)  # not blocked by the open reader
        assert again.instances == 2
        assert [w for w in again.warnings if P.READER_ROLE in w] == [
            "reset the settings of grafana_reader (were: default_transaction_read_only=off; statement_timeout=1ms;"
            f" search_path=public in database {reader.info.dbname})"]
        reader.execute("ROLLBACK")

    with psycopg.connect(compose_db) as admin:
        assert role_settings(admin, P.READER_ROLE) == WANTED
        assert scram_matches(password(admin), "reader-pw") and not scram_matches(password(admin), "locked-out")
        after = {t: admin.execute(f"SELECT count(*) FROM dashgen.{t}").fetchone()[0] for t in before}
        assert after == before
    with psycopg.connect(as_role(compose_db, P.READER_ROLE, "Grafana"), autocommit=True) as reader:
        assert reader.execute("SHOW statement_timeout").fetchone() == ("30s",)  # panels work again
        assert reader.execute("SELECT count(*) FROM instances").fetchone() == (2,)
        with psycopg.connect(owner_dsn) as victim:
            try_every_escape(reader, victim)  # and still nothing gets through
    with psycopg.connect(compose_db) as admin:
        assert store.reader_escapes(admin, P.READER_ROLE) == []


def test_a_migration_blocked_by_a_reader_says_in_one_line_who_holds_the_lock(compose_db: str, monkeypatch) -> None:
    monkeypatch.setattr(store, "LOCK_TIMEOUT", "1s")
    files = store.migration_files()
    monkeypatch.setattr(store, "migration_files", lambda: [
        *files, ("099_later", "ALTER TABLE dashgen.instances ADD COLUMN later int;")])
    with psycopg.connect(as_role(compose_db, P.READER_ROLE, "Grafana"), autocommit=True) as reader:
        pid = reader.info.backend_pid
        reader.execute("BEGIN; SELECT 1 FROM dashgen.instances LIMIT 1")  # AccessShare, kept
        with psycopg.connect(as_role(compose_db, P.OWNER_ROLE), autocommit=True) as owner:
            with pytest.raises(DatabaseError) as err:
                store.migrate(owner)
            assert str(err.value) == (f"migrate: gave up after waiting 1s for a lock held by pid {pid} "
                                      "(role grafana_reader, application 'Grafana', state not visible)")
            reader.execute("ROLLBACK")
            assert store.migrate(owner) == ["099_later"]


def test_grant_reader_as_a_superuser_leaves_a_role_as_read_only_as_the_compose_one(fresh_db: str) -> None:
    """The store owned by a plain role, grant-reader run by a superuser: the reader is as read-only as the compose
    one, and the owner keeps what sync needs (temporary tables, advisory locks)."""
    from dashgen.sync import write
    from test_sync_concurrency import T1, seen

    drop_roles(fresh_db, "cli_reader", P.OWNER_ROLE)
    with psycopg.connect(fresh_db, autocommit=True) as admin:
        admin.execute("CREATE ROLE cli_reader LOGIN")
        admin.execute(f"CREATE ROLE {P.OWNER_ROLE} LOGIN")
        admin.execute(f'GRANT CREATE ON DATABASE "{admin.info.dbname}" TO {P.OWNER_ROLE}')
        admin.execute("ALTER ROLE cli_reader SET statement_timeout = 0")  # to be reset
        try:
            with psycopg.connect(as_role(fresh_db, P.OWNER_ROLE), autocommit=True) as owner:
                store.migrate(owner)
            before = store.reader_escapes(admin, "cli_reader")  # what PostgreSQL gives every role by default
            assert before[0] == "create schemas or temporary tables in this database" and len(before) == 2
            assert before[1].startswith("write large objects or take advisory locks (lo_close, lo_creat, lo_create, ")
            assert "lo_from_bytea" in before[1] and "pg_advisory_lock," in before[1]
            assert store.grant_reader(admin, "cli_reader") == (
                [f"{P.OWNER_ROLE} (the schema owner, who runs sync) may now reset the settings of cli_reader: "
                 "CREATEROLE with ADMIN OPTION on it"], [])
            assert store.grant_reader(admin, "cli_reader") == ([], [])  # a second time: nothing more to do
            assert role_settings(admin, "cli_reader") == WANTED
            with psycopg.connect(as_role(fresh_db, "cli_reader"), autocommit=True) as reader:
                assert reader.execute("SELECT count(*) FROM instance_types").fetchone()[0] > 1000
                try_every_escape(reader, admin)
            with psycopg.connect(as_role(fresh_db, P.OWNER_ROLE), autocommit=True) as owner:
                assert store.migrate(owner) == [] and write(owner, Config(), seen("running"), T1) is None
                assert owner.execute("SELECT count(*) FROM dashgen.instances").fetchone() == (1,)
                owner.execute("CREATE TABLE dashgen.later (x int)")  # as a later migration would
            with psycopg.connect(as_role(fresh_db, "cli_reader"), autocommit=True) as reader:
                assert reader.execute("SELECT count(*) FROM dashgen.later").fetchone() == (0,)
        finally:
            drop_roles(fresh_db, "cli_reader", P.OWNER_ROLE)


def test_grant_reader_by_a_plain_owner_names_what_the_reader_can_still_do(fresh_db: str) -> None:
    """Without a superuser, grant-reader cannot take from PUBLIC what PostgreSQL gives every role: it says so."""
    from typer.testing import CliRunner

    from dashgen.cli import app

    drop_roles(fresh_db, "plain_reader", "plain_owner")
    with psycopg.connect(fresh_db, autocommit=True) as admin:
        admin.execute("CREATE ROLE plain_owner LOGIN")
        admin.execute("CREATE ROLE plain_reader LOGIN")
        admin.execute(f'GRANT CREATE ON DATABASE "{admin.info.dbname}" TO plain_owner')
    try:
        owner_dsn = as_role(fresh_db, "plain_owner")
        with psycopg.connect(owner_dsn, autocommit=True) as owner:
            store.migrate(owner)
        result = CliRunner().invoke(app, ["db", "grant-reader", "plain_reader", "--dsn", owner_dsn])
        assert result.exit_code == 1
        assert result.stdout == "granted SELECT on schema dashgen to plain_reader\n"
        lines = result.stderr.splitlines()
        assert lines[0] == ("error: plain_reader's settings cannot be reset by sync: plain_owner needs CREATEROLE "
                            "and ADMIN OPTION on plain_reader (run grant-reader as a superuser; docs/reliability.md)")
        assert lines[1] == "error: plain_reader can still create schemas or temporary tables in this database"
        assert lines[2].startswith("error: plain_reader can still write large objects or take advisory locks (lo_")
        assert len(lines) == 3
    finally:
        drop_roles(fresh_db, "plain_reader", "plain_owner")
