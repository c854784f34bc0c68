"""The pricing store: PostgreSQL connection, versioned migrations, the instance-type load and reader grants.

Migrations are the SQL files `dashgen/migrations/NNN_*.sql`, applied in file-name order, each in its own
transaction and recorded in `dashgen.schema_migrations`. Every psycopg error leaves this module as one
`DatabaseError` line that never contains a password.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import TYPE_CHECKING, Any

from dashgen.errors import DatabaseError, first_line
from dashgen.redact import dsn_passwords, redact

if TYPE_CHECKING:
    import psycopg

    from dashgen.config import Config

SCHEMA = "dashgen"
_LOCK_KEY = 0x64617368  # pg_advisory_xact_lock key: concurrent migrations wait for each other


def _one_line(exc: BaseException, secrets: tuple[str, ...] = ()) -> str:
    return first_line(exc, secrets)


@contextmanager
def db_errors(what: str) -> Iterator[None]:
    """Turn any psycopg error raised inside into one `DatabaseError` line starting with `what`."""
    import psycopg

    try:
        yield
    except psycopg.errors.InsufficientPrivilege as exc:
        raise DatabaseError(f"{what}: missing permission: {_one_line(exc)}") from None
    except psycopg.Error as exc:
        raise DatabaseError(f"{what}: {_one_line(exc)}") from None


def resolve_dsn(dsn: str | None, config: Config | None = None) -> str:
    """The DSN to use: `--dsn`, else `DASHGEN_DSN`, else the config's `pricing.dsn`."""
    for candidate in (dsn, os.environ.get("DASHGEN_DSN"), config.dsn if config else None):
        if candidate:
            return candidate
    raise DatabaseError("no database: pass --dsn, set DASHGEN_DSN or pricing.dsn in dashgen.toml")


def connect(dsn: str) -> psycopg.Connection[Any]:
    """An autocommit connection (callers open explicit transactions); errors never show the password."""
    import psycopg

    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10, application_name="dashgen")
    except psycopg.Error as exc:
        # libpq may quote a piece of the DSN in its own words: every password the DSN (or PGPASSWORD) holds goes
        secrets = (*dsn_passwords(dsn), os.environ.get("PGPASSWORD") or "")
        raise DatabaseError(f"cannot connect to the pricing store ({redact(dsn, secrets)}): "
                            f"{_one_line(exc, secrets)}") from None


def migration_files() -> list[tuple[str, str]]:
    """(version, SQL) of every bundled migration, in order; the version is the file name without `.sql`."""
    folder = resources.files("dashgen.migrations")
    names = sorted(p.name for p in folder.iterdir() if re.match(r"^[0-9]{3}_.*\.sql$", p.name))
    return [(name[:-4], folder.joinpath(name).read_text(encoding="utf-8")) for name in names]


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply every pending migration (one transaction each) and reload the instance types; return versions."""
    applied_now: list[str] = []
    with db_errors("migrate"):
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations "
                "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
        for version, sql in migration_files():
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                done = conn.execute(
                    f"SELECT 1 FROM {SCHEMA}.schema_migrations WHERE version = %s", (version,)
                ).fetchone()
                if done:
                    continue
                try:
                    conn.execute(sql.encode("utf-8"))
                except Exception as exc:
                    import psycopg

                    if isinstance(exc, psycopg.Error):
                        raise DatabaseError(f"migrate: {version}.sql: {_one_line(exc)}") from None
                    raise
                conn.execute(f"INSERT INTO {SCHEMA}.schema_migrations (version) VALUES (%s)", (version,))
                applied_now.append(version)
        with conn.transaction():
            load_instance_types(conn)
    return applied_now


def applied_migrations(conn: psycopg.Connection[Any]) -> list[str]:
    with db_errors("read migrations"):
        return [r[0] for r in conn.execute(f"SELECT version FROM {SCHEMA}.schema_migrations ORDER BY version")]


def _nullable(value: str, kind: type) -> Any:
    if value in ("", "None", "NULL"):
        return None
    if kind is bool:
        return value.lower() in ("true", "1", "yes")
    return kind(value)


def instance_type_rows() -> list[tuple[Any, ...]]:
    """The specs of every instance type in the bundled CSV (NULL where unknown)."""
    text = resources.files("dashgen.data").joinpath("ec2_ondemand_linux_us-east-1.csv").read_text("utf-8")
    cols = (("instance_type", str), ("family", str), ("vcpu", int), ("memory_mib", int), ("arch", str),
            ("burstable", bool), ("gpus", int), ("bare_metal", bool), ("hypervisor", str))
    return [tuple(_nullable(row[c], k) for c, k in cols) for row in csv.DictReader(text.splitlines())]


def load_instance_types(conn: psycopg.Connection[Any]) -> None:
    """Idempotent upsert of the bundled specs into `dashgen.instance_types` (rows only change when they differ)."""
    cols = "instance_type, family, vcpu, memory_mib, arch, burstable, gpus, bare_metal, hypervisor"
    conn.execute("CREATE TEMP TABLE _types (LIKE dashgen.instance_types) ON COMMIT DROP")
    with conn.cursor().copy(f"COPY _types ({cols}) FROM STDIN") as copy:
        for row in instance_type_rows():
            copy.write_row(row)
    sets = ", ".join(f"{c} = excluded.{c}" for c in cols.split(", ")[1:])
    conn.execute(
        f"INSERT INTO dashgen.instance_types AS t ({cols}) SELECT {cols} FROM _types "
        f"ON CONFLICT (instance_type) DO UPDATE SET {sets} WHERE t IS DISTINCT FROM excluded"
    )


def grant_reader(conn: psycopg.Connection[Any], role: str) -> None:
    """Give `role` SELECT on everything in the dashgen schema (now and later tables) and nothing else."""
    from psycopg import sql

    r, s = sql.Identifier(role), sql.Identifier(SCHEMA)
    with db_errors(f"grant-reader {role}"), conn.transaction():
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
            raise DatabaseError(f"grant-reader: role {role!r} does not exist (create it first: CREATE ROLE ...)")
        for stmt in (
            "GRANT USAGE ON SCHEMA {s} TO {r}",
            "GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT ON TABLES TO {r}",
        ):
            conn.execute(sql.SQL(stmt).format(s=s, r=r))
