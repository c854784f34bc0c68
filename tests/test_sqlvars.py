"""dashgen.store.sqlvars: the CLI side of a panel's SQL file: `${var:sqlstring}` bound as psycopg parameters."""

from __future__ import annotations

import psycopg
import pytest

from dashgen.errors import DashgenError
from dashgen.store.sqlvars import bind, load_sql, variables


def test_each_value_becomes_one_parameter() -> None:
    sql = "SELECT ${a:sqlstring}::int + 1 WHERE 'x' LIKE 'x%' AND v = ANY (ARRAY[${b:sqlstring}]) OR w = ${a:sqlstring}"
    query, params = bind(sql, {"a": 5, "b": ["p", "q'r"]})
    assert query == "SELECT %s::int + 1 WHERE 'x' LIKE 'x%%' AND v = ANY (ARRAY[%s, %s]) OR w = %s"
    assert params == ["5", "p", "q'r", "5"]
    assert variables(sql) == ["a", "b"]


def test_bound_query_runs_and_keeps_hostile_values_as_values(migrated_db: str) -> None:
    query, params = bind("SELECT ARRAY[${v:sqlstring}] AS v, 'a%' AS pct", {"v": ["x'); DROP TABLE t; --", "y"]})
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute(query, params).fetchone() == (["x'); DROP TABLE t; --", "y"], "a%")


@pytest.mark.parametrize("sql, values, message", [
    ("SELECT ${a:sqlstring}", {}, "f.sql: no value for variable 'a'"),
    ("SELECT $a", {"a": "1"}, "f.sql: unsupported variable or macro at '$a'"),
    ("SELECT ${a}", {"a": "1"}, "f.sql: unsupported variable or macro at '${a}'"),
    ("SELECT 1 WHERE $__timeFilter(t)", {}, "f.sql: unsupported variable or macro at '$__timeFilter(t)'"),
    ("SELECT ARRAY[${a:sqlstring}]", {"a": []}, "f.sql: variable 'a' has no value"),
])
def test_refuses_what_it_cannot_bind_safely(sql: str, values: dict, message: str) -> None:
    with pytest.raises(DashgenError) as err:
        bind(sql, values, source="f.sql")
    assert str(err.value).startswith(message)


def test_packaged_sql_files_load() -> None:
    assert "dashgen.instance_utilisation_hourly" in load_sql("rightsizing")
    assert variables(load_sql("experiment_comparison")) == ["experiment", "account"]


def test_store_variables_are_bound_encoded_like_grafana_holds_them(migrated_db: str) -> None:
    """`tag_value`, `name`... carry hex in the dashboards (their variable queries' `__value`), so the CLI binds
    the hex of its text values and the All sentinel for ALL; a real value "__all__" is a value, not All."""
    from dashgen.store.sqlvars import ALL, ENCODED, STORE_ALL, decode, encode

    assert {"tag_key", "tag_value", "name", "experiment"} <= ENCODED
    query, params = bind("SELECT ARRAY[${tag_value:sqlstring}], ${cpu:sqlstring}",
                         {"tag_value": [ALL, STORE_ALL, 'say "hi" $__timeFrom()'], "cpu": "80"})
    assert params == [STORE_ALL, "5f5f616c6c5f5f", encode('say "hi" $__timeFrom()'), "80"]
    assert decode(params[2]) == 'say "hi" $__timeFrom()'
    with psycopg.connect(migrated_db) as conn:  # the same encoding as SQL's dashgen.hex (migration 045)
        assert conn.execute("SELECT encode(convert_to(%s, 'UTF8'), 'hex')", ["Zürich 🚀"]).fetchone()[0] == \
            encode("Zürich 🚀")
    with pytest.raises(DashgenError, match="variable 'cpu' has no All value"):
        bind("SELECT ${cpu:sqlstring}", {"cpu": ALL})
