"""Migration integrity and upgrades (issue 10, points 2 and 3): every landed migration keeps its checksum, a store
whose history differs from the shipped files is refused in one line, functions and views are re-applied from
dashgen/store/functions/, stores made by earlier commits (before checksums) are adopted, and a store made by the
oldest schema keeps its cost history through `db migrate`."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from typer.testing import CliRunner

from conftest import DATA
from dashgen.cli import app
from dashgen.errors import DatabaseError
from dashgen.store import db as store

# Every landed migration and its SHA-256. A landed migration is never edited or renamed (CONTRIBUTING.md): a
# change is a new migration, or an edit of a file in dashgen/store/functions/. Add a row for each new migration.
RELEASED = {
    "001_pricing_store": "633281a59c3c665eb4bb016c24473096fe0727151971bc495beefcfc567aac7f",
    "002_cost_functions": "7c933c121065f2d96691e11e38de01fa3c430f65e1f92ad64d0ca25bb888f3ba",
    "003_cost_rollup": "f0a07c005a8e4deff8c22286ddbb38293bdfec73db5af6606363902df086f838",
    "004_instance_costs_by_rows": "f0f3e40ef1ae96ddcad2244685f3ff15a23098901b7c1c8099b48b27a57309ff",
    "005_ebs_volumes": "89f89cdcae7216dc4473bc080386b31cc01fda5bb553a64cef32da39a5969656",
    "006_adopt_pre_release_004": "56271d6a4083602c40a4569829c29a74dce509b3c43a7d697cc26d9de649c88b",
    "007_backfill_cost_rollups": "1ecbbab6be8d2de6f3b92323917510467988a39bd41dd3cca1c0505aee4201d6",
    "008_sync_state": "784072b561d48dd584a9285d5a60315e8d2eadbc43c3ba312c99f23d076d26b6",
    "010_utilisation": "e6a1badb6efa54dd274cf4a138456ec5b4e2cd77c3516e4fe30d0fe1a90e12c9",
    "020_budget_definitions": "249150297f89210dad05fee29bce7e581ad6c81658678baaa79ef3827718f9c4",
    "030_experiments_kept": "829ea7bbcb742046e0423c019c1e7a76fef679d1194c3f412c92c7fa6a4c598e",
    "031_price_stale_since": "910ed138175ca3d16c1f8e93d5e93dda8f4a2d237b9ac260bbf04c70b3ff891c",
    "040_insights_where": "37cd3f36f94a3e258b049820fba5b4c83eeffb397409d5346e2c880d8cc6e930",
    "045_variable_values_hex": "275bb85c6800fe4a02ed37254f39b167b028de2734ce85791ead7989ffd8e188",
    "050_instance_facts": "f81f6be3487083f8fc9c3f370fe6de570119469f6c41ec28c75583b959ccd6d3",
    "060_cost_truth_tables": "5d140fc63d1d882a636d6fa1c48616e8e87bf3538623501fb90066bb64e251d8",
    "061_cost_truth_functions": "bce8228cf6e77b3338a73e9e0db3a9817972f36af25c41ab2709a55a092df60f",
    "065_rightsizing_usage": "8e71e992a97af8a6df06ec7f12c1c30f026d7b3eb4e93631440b307314acca59",
    "070_accounts": "98fb9e041d40ec39318ea9acf56acffda03e985e0b3f4cface335dc329bc4e5a",
    "080_utilisation_hour_brin": "8a450927f801a70a6442ef1c71510d127c2378fb79187563106da6376344dd3f",
    "090_extra_charge_rollups": "a0d9ece5b9d3f386df3a9823a348e477497c1fa77f6f4e05da36092ce9d08196",
}
# Functions the migrations own because a table depends on them (a generated column): never re-defined.
MIGRATION_OWNED = {"tags_label"}
PRE_RELEASE = DATA / "pre_release_migrations"
runner = CliRunner()


def test_every_landed_migration_keeps_its_released_checksum() -> None:
    shipped = {version: store.checksum(sql) for version, sql in store.migration_files()}
    assert sorted(set(RELEASED) - set(shipped)) == [], "a landed migration was removed or renamed"
    assert sorted(set(shipped) - set(RELEASED)) == [], "a new migration: add its checksum to RELEASED"
    changed = [v for v in RELEASED if shipped[v] != RELEASED[v]]
    assert changed == [], f"landed migrations edited (put the change in a new migration instead): {changed}"


# Migrations that landed before store/functions/ existed: they create functions and views themselves (the definition
# files re-applied after them hold the current versions). No other migration may.
BEFORE_DEFINITIONS = {"001_pricing_store", "002_cost_functions", "003_cost_rollup", "004_instance_costs_by_rows",
                      "005_ebs_volumes", "006_adopt_pre_release_004", "010_utilisation", "020_budget_definitions",
                      "040_insights_where", "045_variable_values_hex",
                      "061_cost_truth_functions"}


def test_new_migrations_leave_functions_and_views_to_the_definition_files() -> None:
    """A function or view created in a new migration would be overwritten, without a word, by the definition file
    re-applied after it (or never re-applied when changed): it goes in src/dashgen/store/functions/
    (CONTRIBUTING.md)."""
    import re

    pattern = re.compile(r"^\s*CREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|VIEW|MATERIALIZED\s+VIEW)\s+(\S+?)\s*[(\s]",
                         re.IGNORECASE | re.MULTILINE)
    offenders = {version: [m.group(3) for m in pattern.finditer(sql)
                           if m.group(3).removeprefix("dashgen.") not in MIGRATION_OWNED]
                 for version, sql in store.migration_files() if version not in BEFORE_DEFINITIONS}
    assert {v: names for v, names in offenders.items() if names} == {}, (
        "define functions and views in src/dashgen/store/functions/*.sql (CREATE OR REPLACE), not in a migration; "
        "a migration may DROP one whose signature changes (CONTRIBUTING.md)")


# ---------------------------------------------------------------- helpers


def applied(conn: psycopg.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT version, checksum FROM dashgen.schema_migrations").fetchall())


def fingerprint(dsn: str) -> dict[str, list]:
    """What the schema is made of: columns (as a set: adopted stores add them in another order), indexes,
    constraints, functions, views and triggers of the dashgen schema."""
    with psycopg.connect(dsn) as conn:
        def rows(sql: str) -> list:
            return sorted(conn.execute(sql).fetchall(), key=repr)

        return {
            "columns": rows("SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
                            " a.attgenerated, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a"
                            " JOIN pg_class c ON c.oid = a.attrelid LEFT JOIN pg_attrdef d"
                            " ON (d.adrelid, d.adnum) = (a.attrelid, a.attnum) WHERE c.relnamespace = 'dashgen'"
                            "::regnamespace AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v')"),
            "indexes": rows("SELECT indexdef FROM pg_indexes WHERE schemaname = 'dashgen'"),
            "constraints": rows("SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint"
                                " WHERE connamespace = 'dashgen'::regnamespace"),
            "functions": rows("SELECT pg_get_functiondef(oid) FROM pg_proc WHERE pronamespace = 'dashgen'"
                              "::regnamespace"),
            "views": rows("SELECT viewname, definition FROM pg_views WHERE schemaname = 'dashgen'"),
            "triggers": rows("SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal"),
        }


@pytest.fixture
def second_db(pg_server: object) -> Iterator[str]:
    """Another empty database on the same server (a fresh store to compare with)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = pg_server.get_uri()  # type: ignore[attr-defined]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.replace("/postgres?", f"/{name}?", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def legacy_store(dsn: str, versions: list[tuple[str, str]]) -> None:
    """A store as dashgen migrated it before checksums: each file applied once in its own transaction and
    recorded in schema_migrations (version, applied_at)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA dashgen")
        conn.execute("CREATE TABLE dashgen.schema_migrations "
                     "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        for version, sql in versions:
            with conn.transaction():
                conn.execute(sql.encode())
                conn.execute("INSERT INTO dashgen.schema_migrations (version) VALUES (%s)", (version,))


def shipped(*versions: str) -> list[tuple[str, str]]:
    files = dict(store.migration_files())
    return [(v, files[v]) for v in versions]


def pre_release(name: str) -> tuple[str, str]:
    return name.split("@")[0], (PRE_RELEASE / f"{name}.sql").read_text()


NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
T = (NOW - dt.timedelta(days=3)).replace(minute=17, second=23)  # not on an hour: the edges come from the runs
RUNS = {  # instance -> (type, tags, runs): a cost history spanning days, hours and a run still going
    "i-0a": ("m5.large", {"Name": "a", "experiment": "alpha"},
             [(T, T + dt.timedelta(hours=5)), (T + dt.timedelta(days=1), T + dt.timedelta(days=1, minutes=30)),
              (T + dt.timedelta(days=2), None)]),
    "i-0b": ("t3.medium", {"Name": "b", "experiment": "beta"},
             [(T + dt.timedelta(hours=3), T + dt.timedelta(hours=40, minutes=7))]),
    "i-0c": ("c5.xlarge", {"Name": "c"}, [(T + dt.timedelta(minutes=1), T + dt.timedelta(minutes=1, seconds=20)),
                                         (T + dt.timedelta(hours=50), None)]),
}
PRICES = {"m5.large": "0.096", "t3.medium": "0.0416", "c5.xlarge": "0.17"}


def add_history(dsn: str) -> None:
    """Instances, prices and runs written as the sync of that schema wrote them, rollups refreshed."""
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        for iid, (itype, tags, runs) in RUNS.items():
            open_run = runs[-1][1] is None
            conn.execute("INSERT INTO dashgen.instances (instance_id, region, instance_type, name, tags, state,"
                         " launch_time, first_seen, last_seen) VALUES (%s, 'us-east-1', %s, %s, %s, %s, %s, %s, %s)",
                         (iid, itype, tags["Name"], json.dumps(tags), "running" if open_run else "stopped",
                          runs[-1][0], T, NOW))
            conn.cursor().executemany("INSERT INTO dashgen.instance_intervals (instance_id, started_at, ended_at)"
                                      " VALUES (%s, %s, %s)", [(iid, s, e) for s, e in runs])
        for itype, usd in PRICES.items():
            conn.execute("INSERT INTO dashgen.instance_prices (region, instance_type, operating_system, tenancy,"
                         " usd_per_hour, source, fetched_at) VALUES ('us-east-1', %s, 'Linux', 'Shared', %s,"
                         " 'bundled-snapshot', %s)", (itype, usd, T))
        conn.execute("SELECT dashgen.refresh_billing(array_agg(instance_id)) FROM dashgen.instances")


def costs(dsn: str, t0: dt.datetime, t1: dt.datetime) -> tuple[float, float, float]:
    """(the cost table's total, the cumulative-cost panel's "(all selected)" at t1, its lowest point) in USD."""
    with psycopg.connect(dsn) as conn:
        table = conn.execute("SELECT sum(seconds_in_range * usd_per_hour::float8 / 3600) FROM "
                             "dashgen.instance_costs(%s, %s) WHERE usd_per_hour IS NOT NULL", (t0, t1)).fetchone()[0]
        series = conn.execute("SELECT time, value FROM dashgen.cumulative_cost(%s, %s, 60, 'experiment',"
                              " ARRAY['__all__'], ARRAY['__all__']) WHERE metric = '(all selected)' ORDER BY 1",
                              (t0, t1)).fetchall()
    at_t1 = dict(series).get(t1, 0.0)  # (no series at all: nothing counted)
    return table, at_t1, min((v for _, v in series), default=0.0)


# ---------------------------------------------------------------- point 2: upgrades keep the cost history


def test_a_store_made_by_the_oldest_schema_keeps_its_cost_history_after_db_migrate(fresh_db: str) -> None:
    """The oldest schema (001, 002 and 010: before the rollups of 003) with days of runs; after `db migrate` the
    cumulative cost equals the cost table's, and stays equal (never negative) when an old run closes."""
    legacy_store(fresh_db, shipped("001_pricing_store", "002_cost_functions", "010_utilisation"))
    add_history(fresh_db)
    result = runner.invoke(app, ["db", "migrate", "--dsn", fresh_db])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("applied 003_cost_rollup, 004_instance_costs_by_rows, 005_ebs_volumes")
    t0, t1 = T - dt.timedelta(hours=1), NOW - dt.timedelta(minutes=13)
    table, cumulative, lowest = costs(fresh_db, t0, t1)
    expected = sum(float(PRICES[itype]) / 3600 * sum(
        max(60.0, (end - start).total_seconds()) if end else (t1 - start).total_seconds() for start, end in runs)
        for itype, _, runs in RUNS.values())
    assert table == pytest.approx(expected, rel=1e-9)  # the table's cost, from the runs
    assert cumulative == pytest.approx(table, rel=1e-9) and lowest >= 0
    with psycopg.connect(fresh_db, autocommit=True) as conn:  # the old open run closes, as sync closes it
        conn.execute("UPDATE dashgen.instance_intervals SET ended_at = %s WHERE instance_id = 'i-0a' "
                     "AND ended_at IS NULL", (t1 - dt.timedelta(hours=2),))
        conn.execute("SELECT dashgen.refresh_billing(ARRAY['i-0a'])")
    table, cumulative, lowest = costs(fresh_db, t0, t1)
    assert cumulative == pytest.approx(table, rel=1e-9) and lowest >= 0


def test_the_rollup_backfill_changes_nothing_on_a_store_whose_rollups_are_right(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        store.migrate(conn)
    add_history(fresh_db)  # after 003: the triggers built the rollups
    sql = dict(store.migration_files())["007_backfill_cost_rollups"]
    query = "SELECT * FROM dashgen.cost_events_{} ORDER BY 1, 2, 3, 4, 5, 6::text"
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        before = [conn.execute(query.format(t)).fetchall() for t in ("hourly", "daily")]
        assert before[0] and before[1]
        conn.execute(sql.encode())
        assert [conn.execute(query.format(t)).fetchall() for t in ("hourly", "daily")] == before


# ---------------------------------------------------------------- point 3: integrity of the applied history


def test_checksums_are_recorded_and_a_second_migrate_changes_nothing(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        store.migrate(conn)
        assert applied(conn) == {v: store.checksum(s) for v, s in store.migration_files()}
        definitions = conn.execute("SELECT name, checksum, applied_at FROM dashgen.schema_definitions").fetchall()
        assert [d[0] for d in definitions] == [n for n, _ in store.definition_files()]
        procs = conn.execute("SELECT sum(xmin::text::bigint) FROM pg_proc WHERE pronamespace = 'dashgen'"
                             "::regnamespace").fetchone()
        assert store.migrate(conn) == []
        assert conn.execute("SELECT sum(xmin::text::bigint) FROM pg_proc WHERE pronamespace = 'dashgen'"
                            "::regnamespace").fetchone() == procs  # nothing re-created
        assert conn.execute("SELECT name, checksum, applied_at FROM dashgen.schema_definitions").fetchall() == (
            definitions)


def test_every_function_and_view_lives_in_a_definition_file(fresh_db: str) -> None:
    text = "\n".join(sql for _, sql in store.definition_files())
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        store.migrate(conn)
        functions = {r[0] for r in conn.execute(
            "SELECT proname FROM pg_proc WHERE pronamespace = 'dashgen'::regnamespace")}
        views = {r[0] for r in conn.execute("SELECT viewname FROM pg_views WHERE schemaname = 'dashgen'")}
    for name in sorted(functions - MIGRATION_OWNED):
        assert f"CREATE OR REPLACE FUNCTION dashgen.{name}(" in text, name
    for name in sorted(views):
        assert f"CREATE OR REPLACE VIEW dashgen.{name} AS" in text, name
    assert "CREATE FUNCTION" not in text and "CREATE VIEW" not in text


def test_an_edited_definition_file_is_re_applied_at_the_next_migrate(fresh_db: str, monkeypatch) -> None:
    defs = store.definition_files()
    name, sql = defs[0]
    edited = [(name, sql + "\nCREATE OR REPLACE FUNCTION dashgen.edited() RETURNS int LANGUAGE sql AS 'SELECT 1';\n"),
              *defs[1:]]
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        store.migrate(conn)
        monkeypatch.setattr(store, "definition_files", lambda: edited)
        assert store.migrate(conn) == []
        assert conn.execute("SELECT dashgen.edited()").fetchone() == (1,)
        assert dict(conn.execute("SELECT name, checksum FROM dashgen.schema_definitions").fetchall())[name] == (
            store.checksum(edited[0][1]))


@pytest.mark.parametrize("change", ["edited", "renamed", "unknown"])
def test_a_store_whose_history_differs_from_the_shipped_files_is_refused_in_one_line(
        fresh_db: str, monkeypatch, change: str) -> None:
    files = store.migration_files()
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        store.migrate(conn)
        if change == "edited":  # a landed file changed after this store applied it
            other = [(v, s + "\n-- edited\n" if v == "003_cost_rollup" else s) for v, s in files]
            expected = "error: migrate: migration 003_cost_rollup was applied with checksum f0a07c005a8e, but the " \
                       "shipped 003_cost_rollup.sql has "
        elif change == "renamed":
            other = [("003_rollups" if v == "003_cost_rollup" else v, s) for v, s in files]
            expected = "error: migrate: the store has migration 003_cost_rollup, which this dashgen does not ship"
        else:  # applied by a newer dashgen
            conn.execute("INSERT INTO dashgen.schema_migrations (version, checksum) VALUES ('099_future', 'x')")
            other = files
            expected = "error: migrate: the store has migration 099_future, which this dashgen does not ship"
        monkeypatch.setattr(store, "migration_files", lambda: [*other, ("098_new", "CREATE TABLE dashgen.n (x int);")])
        before = applied(conn)
    result = runner.invoke(app, ["db", "migrate", "--dsn", fresh_db])
    assert result.exit_code == 1
    assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1, result.stderr
    with psycopg.connect(fresh_db) as conn:
        assert applied(conn) == before and conn.execute("SELECT to_regclass('dashgen.n')").fetchone() == (None,)


def test_sync_refuses_a_store_with_an_edited_migration_before_reading_aws(fresh_db: str, monkeypatch) -> None:
    from dashgen.config import Config
    from dashgen.sync import sync

    files = store.migration_files()
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        store.migrate(conn)
    monkeypatch.setattr(store, "migration_files", lambda: [(v, s + " ") for v, s in files])

    class NoAws:
        def client(self, *args, **kwargs):
            raise AssertionError("AWS read after a refused migrate")

    with pytest.raises(DatabaseError, match=r"^migrate: migration 001_pricing_store was applied with checksum"):
        sync(Config(), dsn=fresh_db, prices="bundled", session=NoAws())


# ---------------------------------------------------------------- stores migrated by earlier commits


@pytest.mark.parametrize("history", [
    ["001_pricing_store", "002_cost_functions", "003_cost_rollup", "004_instance_costs_by_runs@a0912c0",
     "010_utilisation"],
    ["001_pricing_store", "002_cost_functions", "003_cost_rollup", "004_instance_costs_by_runs@df6f624",
     "005_ebs_volumes", "010_utilisation"],
    ["001_pricing_store", "002_cost_functions", "003_cost_rollup", "004_instance_costs_by_rows@273d6d9",
     "005_ebs_volumes", "010_utilisation"],
    ["001_pricing_store", "002_cost_functions", "003_cost_rollup", "004_instance_costs_by_rows", "005_ebs_volumes",
     "010_utilisation", "020_budget_definitions"],
], ids=["by_runs@a0912c0", "by_runs@df6f624", "by_rows@273d6d9", "main-before-checksums"])
def test_a_store_migrated_by_an_earlier_commit_is_adopted_into_the_shipped_schema(
        fresh_db: str, second_db: str, history: list[str]) -> None:
    """These stores made the old `migrate` fail ("function tags_label already exists") or report "schema up to
    date" while different; now they get the shipped schema exactly, with their cost history."""
    legacy_store(fresh_db, [pre_release(v) if "@" in v else shipped(v)[0] for v in history])
    add_history(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        store.migrate(conn)
        assert applied(conn) == {v: store.checksum(s) for v, s in store.migration_files()}
    with psycopg.connect(second_db, autocommit=True) as conn:
        store.migrate(conn)
    assert fingerprint(fresh_db) == fingerprint(second_db)
    t0, t1 = T - dt.timedelta(hours=1), NOW - dt.timedelta(minutes=13)
    table, cumulative, lowest = costs(fresh_db, t0, t1)
    assert cumulative == pytest.approx(table, rel=1e-9) and lowest >= 0
    with psycopg.connect(fresh_db) as conn:
        by_rows = conn.execute("SELECT instance_id, seconds_in_range FROM dashgen.instance_costs(%s, %s) ORDER BY 1",
                               (T + dt.timedelta(hours=4), t1)).fetchall()
        by_runs = conn.execute("SELECT instance_id, seconds_in_range FROM dashgen.instance_costs(%s, %s, true) "
                               "ORDER BY 1", (T + dt.timedelta(hours=4), t1)).fetchall()
    assert by_rows == [(i, pytest.approx(s)) for i, s in by_runs]


def test_an_unknown_pre_release_migration_is_refused_in_one_line(fresh_db: str) -> None:
    legacy_store(fresh_db, [*shipped("001_pricing_store"), ("002_something_else", "SELECT 1")])
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        with pytest.raises(DatabaseError) as err:
            store.migrate(conn)
        assert str(err.value).startswith("migrate: the store has migration 002_something_else, which this dashgen "
                                         "does not ship") and "\n" not in str(err.value)
        assert conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'dashgen' "
                            "AND table_name = 'schema_migrations' ORDER BY 1").fetchall() == [
            ("applied_at",), ("version",)]  # the store is left as it was

