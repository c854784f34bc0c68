import psycopg


def test_fresh_db_is_a_real_empty_postgres_16(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()[0]
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchone()[0]
    assert int(version) // 10000 == 16
    assert tables == 0
