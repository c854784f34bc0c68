"""Bench: the instance selection of the dashboards at fleet size (run: .venv/bin/python bench/selection.py
[--instances N]).

Every store query a selection change runs on the performance dashboard (the Tag value, Name and Instance
variables, the hidden `$insights_where`, "Instances selected", "Inventory synced"), from the built dashboard
JSON, interpolated as Grafana does (tests/grafana_cloudwatch.py), on N instances (default 10,000) in one
region: timed inside PostgreSQL (EXPLAIN (ANALYZE, TIMING OFF): planning + execution), median of 7, for three
selections: everything, one tag value (a quarter of the fleet), 80 hand-picked instances.
Target: < 100 ms each (Grafana runs them one after another when a filter changes). Also prints the length of
the longest CloudWatch query each selection gives (MetricDataQuery.Expression: at most 2,048).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import pgserver  # noqa: E402
import psycopg  # noqa: E402

from dashgen.config import Config  # noqa: E402
from dashgen.dashboards import performance  # noqa: E402
from dashgen.grafana.render import render  # noqa: E402
from dashgen.store.db import migrate  # noqa: E402
from grafana_cloudwatch import ALL, Variable, interpolate  # noqa: E402

REGION = "us-east-1"
KEY = Config().instance_tags[0]


def load(conn: psycopg.Connection, n: int) -> list[str]:
    now = dt.datetime.now(dt.UTC)
    ids = [f"i-{i:017x}" for i in range(n)]
    with conn.cursor().copy("COPY dashgen.instances (instance_id, region, instance_type, name, tags, state, "
                            "first_seen, last_seen) FROM STDIN") as copy:
        for i, iid in enumerate(ids):
            tags = {KEY: f"exp-{i % 4}", "Name": f"node-{i:06d}"} if i % 10 else {}
            copy.write_row((iid, REGION, "m7g.large", tags.get("Name"), json.dumps(tags), "running", now, now))
    conn.execute("ANALYZE dashgen.instances")
    conn.commit()
    return ids


def timed_ms(conn: psycopg.Connection, sql: str) -> float:
    runs = []
    for _ in range(7):
        plan = conn.execute("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql).fetchone()[0][0]
        runs.append(plan["Planning Time"] + plan["Execution Time"])
    conn.rollback()
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10_000)
    args = parser.parse_args()
    server = pgserver.get_server(tempfile.mkdtemp(prefix="dashgen-bench-"), cleanup_mode="stop")
    try:
        with psycopg.connect(server.get_uri()) as conn:
            migrate(conn)
            ids = load(conn, args.instances)
            d = render(performance.build(Config()))
            store_vars = [v for v in d["templating"]["list"] if v["type"] == "query"
                          and v["datasource"]["type"] != "cloudwatch"]
            store_panels = [(p["title"], p["targets"][0]["rawSql"]) for p in d["panels"]
                            if p.get("type") == "stat" and p["targets"][0]["datasource"]["type"] != "cloudwatch"]
            longest = max((t["sqlExpression"] for p in d["panels"] for t in p.get("targets", [])
                           if "sqlExpression" in t), key=len)
            selections = {
                "everything": {"tag_value": ALL, "name": ALL, "instance": ALL},
                "one tag value": {"tag_value": ["exp-1"], "name": ALL, "instance": ALL},
                "80 picked": {"tag_value": ALL, "name": ALL, "instance": ids[:80]},
            }
            print(f"{args.instances} instances, median of 7, ms (planning + execution)")
            for label, chosen in selections.items():
                values = {
                    "region": Variable("region", "custom", REGION),
                    "tag_key": Variable("tag_key", "custom", KEY),
                    **{name: Variable(name, "query", value, options=("-",) if value == ALL else tuple(value),
                                      multi=True, include_all=True, all_value="'__all__'")
                       for name, value in chosen.items()},
                }
                clause = conn.execute(interpolate(next(v["query"] for v in store_vars
                                                       if v["name"] == "insights_where"), values)).fetchone()[0]
                values["insights_where"] = Variable("insights_where", "query", clause)
                print(f"\n{label}: longest CloudWatch query {len(interpolate(longest, values))} characters, "
                      f"clause {clause[:60]!r}...")
                for v in store_vars:
                    print(f"  variable {v['name']:<16} {timed_ms(conn, interpolate(v['query'], values)):8.1f}")
                for title, sql in store_panels:
                    print(f"  panel {title:<20} {timed_ms(conn, interpolate(sql, values)):8.1f}")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
