"""dashgen.insights_where (migration 040): the selection as a Metrics Insights WHERE clause, bounded in size."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from dashgen.definitions.panels import insights_sql
from dashgen.store.db import migrate
from grafana_cloudwatch import expression_max


@pytest.fixture
def conn(migrated_db: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(migrated_db) as c:
        migrate(c)
        yield c


def where(conn: psycopg.Connection[Any], key: str, tags: list[str] | None, names: list[str] | None,
          instances: list[str] | None) -> str:
    row = conn.execute("SELECT clause FROM dashgen.insights_where(%s, %s, %s, %s)",
                       (key, tags, names, instances)).fetchone()
    assert row is not None
    return str(row[0])


def test_all_is_no_condition_and_each_filter_an_or_list(conn: psycopg.Connection[Any]) -> None:
    assert where(conn, "team", None, None, None) == "WHERE InstanceId != '-'"
    assert where(conn, "team", ["ml", "web"], None, None) == "WHERE (tag.team = 'ml' OR tag.team = 'web')"
    assert where(conn, "cost center", ["a"], ["n1"], ["i-1", "i-2"]) == (
        "WHERE (tag.\"cost center\" = 'a') AND (tag.Name = 'n1') AND (InstanceId = 'i-1' OR InstanceId = 'i-2')")


def test_nothing_chosen_or_nothing_writable_matches_no_instance(conn: psycopg.Connection[Any]) -> None:
    assert where(conn, "team", [], None, None) == "WHERE InstanceId = '-'"
    assert where(conn, "team", None, None, []) == "WHERE InstanceId = '-'"
    # values a Metrics Insights literal cannot hold as is are left out, never a broken query
    assert where(conn, "team", ["it's", "back\\slash", "new\nline", "ok"], None, None) == "WHERE (tag.team = 'ok')"
    assert where(conn, "team", ["it's"], None, None) == "WHERE InstanceId = '-'"
    assert where(conn, 'we"ird', ["a"], None, None) == "WHERE InstanceId = '-'"


def test_the_clause_stays_within_its_budget_whatever_is_chosen(conn: psycopg.Connection[Any]) -> None:
    longest = max((insights_sql(m, "Average") for m in ("EBSIOBalance%", "InstanceEBSThroughputExceededCheck")),
                  key=len)
    tags = [f"value-{i:03d}-" + "x" * 240 for i in range(300)]   # EC2 tag values: at most 256 characters
    names = [f"name-{i:03d}-" + "y" * 240 for i in range(300)]
    instances = [f"i-{i:017x}" for i in range(10_000)]
    clause = where(conn, "experiment", tags, names, instances)
    assert longest.count("$insights_where") == 1
    assert len(longest.replace("$insights_where", clause)) <= expression_max()
    # every filter keeps at least its first term, so the clause never widens the selection
    assert f"tag.experiment = '{tags[0]}'" in clause and f"tag.Name = '{names[0]}'" in clause
    assert f"InstanceId = '{instances[0]}'" in clause
    # a hand-picked list that fits is kept whole
    assert where(conn, "experiment", None, None, instances[:20]).count("InstanceId = ") == 20


def test_the_selection_counts_what_the_clause_leaves_out(conn: psycopg.Connection[Any]) -> None:
    rows = [(f"i-{i:017x}", "us-east-1", "web" if i < 60 else "db", '{"team": "ml"}') for i in range(80)]
    rows.append(("i-other", "eu-west-1", "db", '{"team": "ml"}'))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO dashgen.instances (instance_id, region, instance_type, name, tags, state, "
                        "first_seen, last_seen) VALUES (%s, %s, 'm7g.large', %s, %s, 'running', now(), now())", rows)

    # the values as the store variables give them (their `__value`: the text itself, or its dashgen.hex where
    # the store encodes variable values), the All sentinel as is
    encoded = conn.execute("SELECT to_regproc('dashgen.hex') IS NOT NULL").fetchone() == (True,)

    def value(v: str) -> str:
        if v == "__all__" or not encoded:
            return v
        row = conn.execute("SELECT dashgen.hex(%s)", (v,)).fetchone()
        assert row is not None
        return str(row[0])

    def selection(tags: list[str], names: list[str], instances: list[str] | None) -> tuple[str, int, int]:
        row = conn.execute("SELECT * FROM dashgen.insights_selection('us-east-1', 'team', %s, %s, %s)",
                           ([value(v) for v in tags], [value(v) for v in names],
                            None if instances is None else [value(v) for v in instances])).fetchone()
        assert row is not None
        return row[0], row[1], row[2]

    every = ["__all__"]
    assert selection(every, every, every) == ("WHERE InstanceId != '-'", 80, 0)
    assert selection(["ml"], every, every) == ("WHERE (tag.team = 'ml')", 80, 0)
    clause, selected, not_drawn = selection(every, every, [r[0] for r in rows])
    assert selected == 80 and 0 < not_drawn < 80 and clause.count("InstanceId = ") == 80 - not_drawn
    # a selection whose ids fit goes as ids (no CloudWatch tag support needed); a larger one as tags
    few = selection(every, ["db", "nobody"], every)
    assert few[1:] == (20, 0) and few[0] == "WHERE (" + " OR ".join(
        f"InstanceId = 'i-{i:017x}'" for i in range(60, 80)) + ")"
    assert selection(every, ["web"], every) == ("WHERE (tag.Name = 'web')", 60, 0)
    assert selection(["nope"], every, every) == ("WHERE InstanceId = '-'", 0, 0)
