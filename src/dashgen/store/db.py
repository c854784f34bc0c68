"""The pricing store: PostgreSQL connection, versioned migrations, the instance-type load and reader grants.

Migrations are the SQL files `dashgen/migrations/NNN_*.sql` (schema and data changes, never edited once landed),
applied in file-name order and recorded with their checksum in `dashgen.schema_migrations`; functions and views
live in `dashgen/store/functions/NN_*.sql` (CREATE OR REPLACE), re-applied after them whenever anything changed.
One `migrate` is one transaction: a store is upgraded entirely or not at all (CONTRIBUTING.md).
Every psycopg error leaves this module as one
`DatabaseError` line that never contains a password.
"""

from __future__ import annotations

import hashlib
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
MIGRATE_LOCK = 0x64617368  # pg_advisory_xact_lock key: concurrent migrations wait for each other
SYNC_LOCK = 0x64617369  # pg_advisory_xact_lock key: one sync writes at a time (dashgen.sync.write)
LOCK_TIMEOUT = "10s"  # how long migrate and sync wait for any lock before saying, in one line, who holds it
# Pre-release migration names a store migrated before checksums may hold -> the shipped migration adopting it.
_PRE_RELEASE_NAMES = {"004_instance_costs_by_runs": "004_instance_costs_by_rows"}


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


def checksum(sql: str) -> str:
    """The checksum recorded with an applied migration (and definition file): SHA-256 of its UTF-8 text."""
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


def _sql_files(package: str, pattern: str) -> list[tuple[str, str]]:
    folder = resources.files(package)
    names = sorted(p.name for p in folder.iterdir() if re.match(pattern, p.name))
    return [(name[:-4], folder.joinpath(name).read_text(encoding="utf-8")) for name in names]


def migration_files() -> list[tuple[str, str]]:
    """(version, SQL) of every bundled migration, in order; the version is the file name without `.sql`."""
    return _sql_files("dashgen.store.migrations", r"^[0-9]{3}_.*\.sql$")


def definition_files() -> list[tuple[str, str]]:
    """(name, SQL) of every bundled definition file (functions and views, CREATE OR REPLACE), in order."""
    return _sql_files("dashgen.store.functions", r"^[0-9]{2}_.*\.sql$")


@contextmanager
def lock_timeout(conn: psycopg.Connection[Any], what: str) -> Iterator[None]:
    """Run the block (one transaction) with `lock_timeout = LOCK_TIMEOUT`; when a lock is not granted in that
    time, one `DatabaseError` line naming `what` and the session holding it (pid, role, application)."""
    import psycopg

    try:
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            yield
    except psycopg.errors.LockNotAvailable:
        raise DatabaseError(f"{what}: gave up after waiting {LOCK_TIMEOUT} for a lock held by "
                            f"{lock_holder(conn)}") from None


def lock_holder(conn: psycopg.Connection[Any]) -> str:
    """Who holds a lock dashgen waits for: dashgen's advisory locks first, else a lock on a dashgen table that
    conflicts with writing or altering it, as "pid N (role R, application 'A', state S)"."""
    row = conn.execute(
        """SELECT l.pid, a.usename, a.application_name, a.state
           FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
           LEFT JOIN pg_class c ON l.locktype = 'relation' AND c.oid = l.relation
           WHERE l.granted AND l.pid <> pg_backend_pid() AND l.database = (
                     SELECT oid FROM pg_database WHERE datname = current_database())
             AND ((l.locktype = 'advisory' AND l.classid = 0 AND l.objid = ANY (%s) AND l.objsubid = 1)
                  OR c.relnamespace = to_regnamespace(%s))
           ORDER BY l.locktype = 'advisory' DESC, l.pid LIMIT 1""",
        ([MIGRATE_LOCK, SYNC_LOCK], SCHEMA)).fetchone()
    if row is None:
        return "another session (gone since)"
    pid, role, app, state = row
    return f"pid {pid} (role {role or '?'}, application {app or ''!r}, {state or 'state not visible'})"


def _bootstrap(conn: psycopg.Connection[Any]) -> dict[str, str | None]:
    """The history tables (created, or given the checksum column a pre-release store lacks); {version: checksum}."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations "
                 "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(), checksum text)")
    if conn.execute("SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
                    "AND table_name = 'schema_migrations' AND column_name = 'checksum'", (SCHEMA,)).fetchone() is None:
        conn.execute(f"ALTER TABLE {SCHEMA}.schema_migrations ADD COLUMN checksum text")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_definitions "
                 "(name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
    return dict(conn.execute(f"SELECT version, checksum FROM {SCHEMA}.schema_migrations").fetchall())


def _adopt(conn: psycopg.Connection[Any], applied: dict[str, str | None], files: dict[str, str]) -> None:
    """Record the checksums of a store migrated before checksums existed (rows without one), as the shipped files'.
    Every migration such a store can hold was shipped unchanged since, but two: 004, whose earlier texts (and name)
    migration 006 brings to the shipped one, and 020, edited after it landed, which only (re)defines functions and
    views: the definition files re-applied after the migrations replace whatever text of them the store had."""
    for version in sorted(v for v, c in applied.items() if c is None):
        shipped = _PRE_RELEASE_NAMES.get(version, version)
        if shipped not in files:
            return  # _verify names it
        if shipped != version:
            if shipped in applied:
                conn.execute(f"DELETE FROM {SCHEMA}.schema_migrations WHERE version = %s", (version,))
            else:
                conn.execute(f"UPDATE {SCHEMA}.schema_migrations SET version = %s WHERE version = %s",
                             (shipped, version))
            del applied[version]
        conn.execute(f"UPDATE {SCHEMA}.schema_migrations SET checksum = %s WHERE version = %s",
                     (checksum(files[shipped]), shipped))
        applied[shipped] = checksum(files[shipped])


def _verify(applied: dict[str, str | None], files: dict[str, str]) -> None:
    """One line when the store's history is not the shipped files' (an edited, renamed or unknown migration)."""
    for version in sorted(applied):
        if version not in files:
            raise DatabaseError(
                f"migrate: the store has migration {version}, which this dashgen does not ship (renamed, removed, "
                "or applied by a newer dashgen): nothing applied; use the dashgen that migrated it")
        if applied[version] != checksum(files[version]):
            raise DatabaseError(
                f"migrate: migration {version} was applied with checksum {str(applied[version])[:12]}, but the "
                f"shipped {version}.sql has {checksum(files[version])[:12]} (a landed migration was edited): "
                "nothing applied; restore the file and put the change in a new migration")


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Bring the store to the shipped schema in ONE transaction (all or nothing): check the applied history
    against the shipped files' checksums, apply the pending migrations, then re-apply the definition files when
    anything changed; reload the instance types. Returns the versions applied now."""
    files = dict(migration_files())
    definitions = definition_files()
    applied_now: list[str] = []
    with db_errors("migrate"), lock_timeout(conn, "migrate"):
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))  # concurrent migrations wait in turn
        applied = _bootstrap(conn)
        _adopt(conn, applied, files)
        _verify(applied, files)
        # Functions a migration (re)creates are superseded by the definition files applied below; their bodies may
        # call what only those files create (a store adopted from a pre-release commit): not checked until then.
        conn.execute("SET LOCAL check_function_bodies = off")
        for version, sql in files.items():
            if version in applied:
                continue
            try:
                with conn.transaction():  # a savepoint: the error names the file
                    conn.execute(sql.encode("utf-8"))
            except Exception as exc:
                import psycopg

                if isinstance(exc, psycopg.errors.LockNotAvailable):
                    raise
                if isinstance(exc, psycopg.Error):
                    raise DatabaseError(f"migrate: {version}.sql: {_one_line(exc)} (nothing applied)") from None
                raise
            conn.execute(f"INSERT INTO {SCHEMA}.schema_migrations (version, checksum) VALUES (%s, %s)",
                         (version, checksum(sql)))
            applied_now.append(version)
        recorded = dict(conn.execute(f"SELECT name, checksum FROM {SCHEMA}.schema_definitions").fetchall())
        wanted = {name: checksum(sql) for name, sql in definitions}
        if applied_now or recorded != wanted:
            conn.execute("SET LOCAL check_function_bodies = on")
            for name, sql in definitions:
                try:
                    with conn.transaction():
                        conn.execute(sql.encode("utf-8"))
                except Exception as exc:
                    import psycopg

                    if isinstance(exc, psycopg.Error) and not isinstance(exc, psycopg.errors.LockNotAvailable):
                        raise DatabaseError(f"migrate: store/functions/{name}.sql: {_one_line(exc)} (nothing applied)"
                                            ) from None
                    raise
            conn.execute(f"DELETE FROM {SCHEMA}.schema_definitions")
            conn.cursor().executemany(f"INSERT INTO {SCHEMA}.schema_definitions (name, checksum) VALUES (%s, %s)",
                                      list(wanted.items()))
    with db_errors("migrate"), lock_timeout(conn, "migrate: load the instance types"):
        load_instance_types(conn)
    return applied_now


def applied_migrations(conn: psycopg.Connection[Any]) -> list[str]:
    with db_errors("read migrations"):
        return [r[0] for r in conn.execute(f"SELECT version FROM {SCHEMA}.schema_migrations ORDER BY version")]


def instance_type_rows() -> list[tuple[Any, ...]]:
    """The specs of every instance type in the bundled CSV (NULL where unknown): type, family, vCPU, memory MiB,
    architecture, burstable, GPUs, bare metal, hypervisor (the full facts: `dashgen.sync.instance_facts`)."""
    from dashgen.sync.instance_facts import COLUMNS, bundled_facts

    return [tuple(f[c] for c in COLUMNS[:9]) for f in bundled_facts().values()]


def load_instance_types(conn: psycopg.Connection[Any]) -> None:
    """Idempotent upsert of the bundled facts into `dashgen.instance_types` (the offline fallback): rows only
    change when they differ, and a type whose facts came from DescribeInstanceTypes is never overwritten. Only
    the columns the table has are loaded (a store migrated up to an older version gets the specs it has room for)."""
    from dashgen.sync.instance_facts import COLUMNS, bundled_facts

    have = {r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns "
                                       "WHERE table_schema = %s AND table_name = 'instance_types'", (SCHEMA,))}
    columns = [c for c in COLUMNS if c in have]
    cols = ", ".join(columns)
    conn.execute("CREATE TEMP TABLE _types (LIKE dashgen.instance_types INCLUDING DEFAULTS) ON COMMIT DROP")
    with conn.cursor().copy(f"COPY _types ({cols}) FROM STDIN") as copy:
        for facts in bundled_facts().values():
            copy.write_row(tuple(facts[c] for c in columns))
    sets = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    only_bundled = "t.source = 'bundled-snapshot' AND " if "source" in have else ""
    conn.execute(
        f"INSERT INTO dashgen.instance_types AS t ({cols}) SELECT {cols} FROM _types "
        f"ON CONFLICT (instance_type) DO UPDATE SET {sets} "
        f"WHERE {only_bundled}({', '.join('t.' + c for c in columns[1:])}) IS DISTINCT FROM "
        f"({', '.join('excluded.' + c for c in columns[1:])})"
    )


# The settings a Grafana reader role keeps: `grant-reader` and every sync reset the role's own settings (which
# any role may change for itself with ALTER ROLE ... SET) to exactly these. Also written by the compose init SQL.
READER_SETTINGS = (
    ("default_transaction_read_only", "on"),  # a second guard: the grants already refuse every write
    ("search_path", SCHEMA),
    ("statement_timeout", "30s"),  # a panel query takes well under a second (bench/)
    ("idle_in_transaction_session_timeout", "60s"),  # an open transaction cannot keep locks for long
    ("lock_timeout", "5s"),
)
# Functions every role may call by default, which write outside any table privilege (large objects) or let a
# role hold a lock sync waits for (advisory locks): revoked from PUBLIC in dashgen's database, granted to the owner.
WRITE_AND_LOCK_FUNCTIONS = r"^(lo_.*|loread|lowrite|pg_(try_)?advisory_(xact_)?lock(_shared)?)$"


def _hardening_sql(conn: psycopg.Connection[Any], owners: list[str]) -> list[str]:
    """The statements that take from PUBLIC what a read-only role must not have in dashgen's database (they need
    a superuser or the database owner) and give `owners` (the schema's owner, the role running this) what sync
    uses of it: temporary tables and advisory locks."""
    from psycopg import sql

    to = ", ".join(sql.Identifier(o).as_string(conn) for o in dict.fromkeys(owners))
    db = "current_database()"
    return [
        f"DO $$ BEGIN EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO {to}', {db}); "
        f"EXECUTE format('REVOKE TEMPORARY, CREATE ON DATABASE %I FROM PUBLIC', {db}); END $$",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        "DO $$ DECLARE f regprocedure; BEGIN FOR f IN SELECT oid::regprocedure FROM pg_proc "
        f"WHERE pronamespace = 'pg_catalog'::regnamespace AND proname ~ '{WRITE_AND_LOCK_FUNCTIONS}' LOOP "
        f"EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f); "
        f"EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO {to}', f); END LOOP; END $$",
    ]


def reader_escapes(conn: psycopg.Connection[Any], role: str) -> list[str]:
    """Everything `role` can still do beyond reading the dashgen schema (empty: truly read-only)."""
    found: list[str] = []
    checks = [
        ("create schemas or temporary tables in this database",
         "SELECT has_database_privilege(%(r)s, current_database(), 'CREATE') "
         "OR has_database_privilege(%(r)s, current_database(), 'TEMPORARY')"),
        ("create objects in a schema",
         "SELECT string_agg(nspname, ', ') FROM pg_namespace WHERE has_schema_privilege(%(r)s, oid, 'CREATE')"
         " AND nspname !~ '^pg_(toast_)?temp_'"),  # (temporary schemas: the database's TEMPORARY, above)
        ("write a table",
         "SELECT string_agg(c.oid::regclass::text, ', ') FROM pg_class c WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')"
         " AND c.relnamespace <> 'pg_catalog'::regnamespace AND c.relnamespace <> 'information_schema'::regnamespace"
         " AND has_table_privilege(%(r)s, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')"),
        ("write large objects or take advisory locks",
         "SELECT string_agg(DISTINCT proname, ', ') FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace "
         f"AND proname ~ '{WRITE_AND_LOCK_FUNCTIONS}' AND has_function_privilege(%(r)s, oid, 'EXECUTE')"),
        ("act as another role",
         "SELECT string_agg(b.rolname, ', ') FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
         "WHERE m.member = to_regrole(%(r)s)"),
        ("bypass the grants (superuser, BYPASSRLS, CREATEROLE or CREATEDB)",
         "SELECT rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = %(r)s"),
    ]
    for what, query in checks:
        value = conn.execute(query, {"r": role}).fetchone()[0]
        if value:
            found.append(what if value is True else f"{what} ({value})")
    return found


def readers(conn: psycopg.Connection[Any]) -> list[str]:
    """The roles granted USAGE on the dashgen schema that are neither its owner nor may create in it: the
    Grafana readers `grant-reader` (or the compose init SQL) set up."""
    return [r[0] for r in conn.execute(
        """SELECT DISTINCT g.rolname FROM pg_namespace n, aclexplode(n.nspacl) a JOIN pg_roles g ON g.oid = a.grantee
           WHERE n.nspname = %s AND a.privilege_type = 'USAGE' AND a.grantee <> n.nspowner
             AND NOT g.rolsuper AND NOT has_schema_privilege(g.oid, n.oid, 'CREATE') ORDER BY 1""", (SCHEMA,))]


def reset_reader_settings(conn: psycopg.Connection[Any], role: str) -> str | None:
    """Make `role`'s stored settings exactly READER_SETTINGS (any database), when they differ. Returns a line
    saying what was reset, or that it could not be (the connected role needs CREATEROLE and ADMIN OPTION on
    `role`, or to be a superuser); None when nothing had to change."""
    import psycopg
    from psycopg import sql

    wanted = sorted(f"{k}={v}" for k, v in READER_SETTINGS)
    rows = conn.execute("SELECT setdatabase, setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
                        " WHERE r.rolname = %s", (role,)).fetchall()
    stored = {db: sorted(cfg) for db, cfg in rows}
    if stored == {0: wanted}:
        return None
    r = sql.Identifier(role)
    names = dict(conn.execute("SELECT oid, datname FROM pg_database").fetchall())
    try:
        with conn.transaction():
            for db in stored:
                if db:
                    conn.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} RESET ALL").format(
                        r, sql.Identifier(names[db])))
            conn.execute(sql.SQL("ALTER ROLE {} RESET ALL").format(r))
            for key, value in READER_SETTINGS:
                conn.execute(sql.SQL("ALTER ROLE {} SET {} = {}").format(r, sql.Identifier(key), sql.Literal(value)))
    except psycopg.errors.InsufficientPrivilege:
        return (f"WARNING: cannot reset the settings of {role} (it or anyone may have changed them): "
                f"{current_role(conn)} needs CREATEROLE and ADMIN OPTION on {role} (docs/reliability.md)")
    were = [c + (f" in database {names.get(db, db)}" if db else "")
            for db in sorted(stored) for c in stored[db] if db or c not in wanted]
    return f"reset the settings of {role}" + (f" (were: {'; '.join(were)})" if were else "")


def current_role(conn: psycopg.Connection[Any]) -> str:
    return str(conn.execute("SELECT current_user").fetchone()[0])


def reset_reader_password(conn: psycopg.Connection[Any], role: str, password: str) -> str | None:
    """Set `role`'s password back to `password` (any role may change its own): sent as a SCRAM verifier computed
    here, so the password itself never reaches the server or its log. None, or a line saying it could not."""
    import psycopg
    from psycopg import sql

    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
    try:
        with conn.transaction():
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier)))
    except psycopg.errors.InsufficientPrivilege:
        return (f"WARNING: cannot reset the password of {role}: {current_role(conn)} needs CREATEROLE and ADMIN "
                f"OPTION on {role} (docs/reliability.md)")
    return None


def secure_readers(conn: psycopg.Connection[Any], passwords: dict[str, str] | None = None) -> list[str]:
    """Every sync: reset the readers' settings where they differ, and the password of those in `passwords`;
    returns one line per reader reset or not."""
    lines: list[str] = []
    with db_errors("reset reader settings"):
        for role in readers(conn):
            if line := reset_reader_settings(conn, role):
                lines.append(line)
            if (passwords or {}).get(role) and (line := reset_reader_password(conn, role, passwords[role])):
                lines.append(line)
    return lines


def can_reset(conn: psycopg.Connection[Any], owner: str, role: str) -> bool:
    """Whether `owner` may ALTER ROLE `role` (reset its settings and password): a superuser, or CREATEROLE with
    ADMIN OPTION on it (PostgreSQL 16)."""
    return bool(conn.execute(
        "SELECT o.rolsuper OR (o.rolcreaterole AND EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = o.oid "
        "AND m.roleid = to_regrole(%s) AND m.admin_option)) FROM pg_roles o WHERE o.rolname = %s",
        (role, owner)).fetchone()[0])


def grant_reader(conn: psycopg.Connection[Any], role: str) -> tuple[list[str], list[str]]:
    """Give `role` SELECT on everything in the dashgen schema (now and later tables) and nothing else: its settings
    are reset to READER_SETTINGS, what lets any role write or lock outside table privileges is taken from PUBLIC
    in this database, and the schema's owner (who runs sync) may reset `role`'s settings at every sync (the last
    two need a superuser). Returns (what was done beyond the grants, what `role` can still do: empty when it is
    read-only and sync can keep it so)."""
    import psycopg
    from psycopg import sql

    r, s = sql.Identifier(role), sql.Identifier(SCHEMA)
    done: list[str] = []
    with db_errors(f"grant-reader {role}"):
        with conn.transaction():
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
                raise DatabaseError(f"grant-reader: role {role!r} does not exist (create it first: CREATE ROLE ...)")
            for stmt in (
                "GRANT USAGE ON SCHEMA {s} TO {r}",
                "GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT ON TABLES TO {r}",
            ):
                conn.execute(sql.SQL(stmt).format(s=s, r=r))
        owner = conn.execute("SELECT r.rolname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner "
                             "WHERE n.nspname = %s", (SCHEMA,)).fetchone()[0]
        o = sql.Identifier(owner)
        statements = [  # each may need more than the connected role has: what is left is reported below
            sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} GRANT SELECT ON TABLES TO {r}").format(
                o=o, s=s, r=r),  # the tables later migrations (run by the owner) create
            *(sql.SQL(stmt) for stmt in _hardening_sql(conn, [owner, current_role(conn)])),
        ]
        granting_admin = not can_reset(conn, owner, role)
        if granting_admin:
            statements += [sql.SQL("ALTER ROLE {o} CREATEROLE").format(o=o),
                           sql.SQL("GRANT {r} TO {o} WITH ADMIN OPTION, INHERIT FALSE, SET FALSE").format(o=o, r=r)]
        for stmt in statements:
            try:
                with conn.transaction():
                    conn.execute(stmt)
            except psycopg.errors.InsufficientPrivilege:
                pass
        if granting_admin and can_reset(conn, owner, role):
            done.append(f"{owner} (the schema owner, who runs sync) may now reset the settings of {role}: "
                        "CREATEROLE with ADMIN OPTION on it")
        left = []
        if not can_reset(conn, owner, role):
            left.append(f"{role}'s settings cannot be reset by sync: {owner} needs CREATEROLE and ADMIN OPTION on "
                        f"{role} (run grant-reader as a superuser; docs/reliability.md)")
        reset_reader_settings(conn, role)  # (when the connected role may; else the owner's next sync does)
        if conn.execute("SELECT NOT EXISTS (SELECT 1 FROM pg_default_acl d JOIN pg_roles o ON o.oid = d.defaclrole "
                        "WHERE d.defaclnamespace = to_regnamespace(%s) AND o.rolname = %s AND d.defaclobjtype = 'r' "
                        "AND EXISTS (SELECT 1 FROM aclexplode(d.defaclacl) a WHERE a.grantee = to_regrole(%s) "
                        "AND a.privilege_type = 'SELECT'))", (SCHEMA, owner, role)).fetchone()[0]:
            left.append(f"{role} will not read the tables later migrations create: run grant-reader as {owner} or a "
                        "superuser")
        left += [f"{role} can still {what}" for what in reader_escapes(conn, role)]
        return done, left
