"""Bench: the pricing store at 10,000 instances (run: .venv/bin/python bench/sync.py [--instances N]).

1. `dashgen sync`'s database write for N instances read through the describe_instances paginator from
   stubbed pages (botocore Stubber, 1,000 per page): first sync (all new), a re-run (nothing changes),
   a sync where 10 % stopped. Target: < 2 s each.
2. Every cost-dashboard panel query (the SQL in the built dashboard, macros expanded as Grafana does) on
   N instances x 30 days of running intervals and one EBS volume each, timed inside PostgreSQL
   (EXPLAIN (ANALYZE, TIMING OFF): planning + execution, without per-node clock reads), median of 7, for the
   last 24 h, 7 days and 30 days. Target: < 100 ms each. The machine's speed is printed first: timings on a
   shared machine move with its load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the Grafana macro expander the tests use

import boto3  # noqa: E402
import pgserver  # noqa: E402
from botocore.stub import Stubber  # noqa: E402

from dashgen.build import render_dashboards  # noqa: E402
from dashgen.config import Config, Experiment  # noqa: E402
from dashgen.grafana.validate import all_panels  # noqa: E402
from dashgen.store.db import connect, migrate  # noqa: E402
from dashgen.store.sqlvars import encode  # noqa: E402
from dashgen.sync import PRICE_UPSERT_SQL, Collected, write  # noqa: E402
from dashgen.sync.inventory import describe_region  # noqa: E402
from dashgen.sync.pricing import PriceKey, resolve_prices  # noqa: E402
from grafana_sql import ALL, expand  # noqa: E402

TYPES = ["t4g.large", "t4g.xlarge", "t4g.2xlarge", "m5.large", "m6i.xlarge", "c6g.large", "r6g.large", "g5.xlarge"]
PAGE = 1000
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
STOPPED_REASON = (NOW - dt.timedelta(hours=1)).strftime("User initiated (%Y-%m-%d %H:%M:%S GMT)")


def fake_pages(n: int, stopped_every: int = 0) -> list[dict]:
    pages, launch = [], NOW - dt.timedelta(days=3)
    for start in range(0, n, PAGE):
        instances = []
        for i in range(start, min(n, start + PAGE)):
            stopped = stopped_every and i % stopped_every == 0
            instances.append({
                "InstanceId": f"i-{i:017x}", "InstanceType": TYPES[i % len(TYPES)],
                "State": {"Code": 80 if stopped else 16, "Name": "stopped" if stopped else "running"},
                "LaunchTime": launch + dt.timedelta(seconds=i),
                "StateTransitionReason": STOPPED_REASON if stopped else "",
                "PlatformDetails": "Linux/UNIX", "Placement": {"Tenancy": "default"},
                "Tags": [{"Key": "Name", "Value": f"node-{i}"}, {"Key": "experiment", "Value": f"exp-{i % 20}"},
                         {"Key": "team", "Value": f"team-{i % 7}"}],
            })
        page = {"Reservations": [{"ReservationId": f"r-{start:017x}", "Instances": instances}]}
        if start + PAGE < n:
            page["NextToken"] = f"t{start + PAGE}"
        pages.append(page)
    return pages


def read_inventory(pages: list[dict]):
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        for page in pages:
            stub.add_response("describe_instances", page)
        return describe_region(client, "us-east-1")


def bench_sync(dsn: str, n: int, config: Config) -> None:
    print(f"== sync of {n:,} instances ({-(-n // PAGE)} stubbed describe_instances pages) ==")
    with connect(dsn) as conn:
        migrate(conn)
        for label, stopped_every in (("first sync (all new)", 0), ("re-run (no change)", 0),
                                     ("10 % stopped since", 10)):
            t = time.perf_counter()
            instances = read_inventory(fake_pages(n, stopped_every))
            keys = {PriceKey(i.region, i.instance_type, i.operating_system, i.tenancy) for i in instances}
            prices, _ = resolve_prices(keys, "bundled")
            parse_s = time.perf_counter() - t
            t = time.perf_counter()
            write(conn, config, Collected(instances, ["us-east-1"], prices, {}), NOW)
            write_s = time.perf_counter() - t
            verdict = "OK" if write_s < 2 else "OVER TARGET"
            print(f"  {label:24s} DB write {write_s * 1000:7.0f} ms  [{verdict}, target < 2000 ms]   "
                  f"(paginate+parse {parse_s * 1000:.0f} ms)")


def fill_history(dsn: str, n: int, runs: int = 30) -> int:
    """n instances, each with `runs` runs over 30 days (2-17 h each; default one a day), the last one still
    running for 1 instance in 3."""
    with connect(dsn) as conn, conn.transaction():
        conn.execute("TRUNCATE dashgen.instances CASCADE")
        # A bulk history load, not a sync: the rollup triggers are off while it loads (replica role) and the
        # rollups are then built once from every run, with the same statement the triggers use.
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute("""
            INSERT INTO dashgen.instances (instance_id, region, instance_type, name, tags, state, launch_time,
                                           platform, first_seen, last_seen)
            SELECT 'i-' || lpad(to_hex(g), 17, '0'), 'us-east-1', (%(types)s::text[])[1 + g %% 8],
                   'node-' || g, jsonb_build_object('Name', 'node-' || g, 'experiment', 'exp-' || (g %% 20),
                                                    'team', 'team-' || (g %% 7)),
                   CASE WHEN g %% 3 = 0 THEN 'running' ELSE 'stopped' END, now(), 'Linux/UNIX', now(), now()
            FROM generate_series(0, %(n)s - 1) g""", {"n": n, "types": TYPES})
        conn.execute("""
            INSERT INTO dashgen.instance_intervals (instance_id, started_at, ended_at)
            SELECT i.instance_id, s.start,
                   CASE WHEN d = 0 AND i.state = 'running' THEN NULL
                        ELSE least(s.start + make_interval(hours => 2 + (hashtext(i.instance_id || d) & 15)),
                                   now() - interval '1 minute') END
            FROM dashgen.instances i, generate_series(0, 29) d,
                 LATERAL (SELECT date_trunc('day', now()) - make_interval(days => d)
                                 + make_interval(mins => hashtext(i.instance_id) & 255) AS start) s
            WHERE s.start < now() - interval '2 minutes' AND d %% %(every)s = 0""", {"every": max(1, 30 // runs)})
        conn.execute("SELECT dashgen.refresh_billing(array_agg(instance_id)) FROM dashgen.instances")  # as sync does
        # issue 12 (triggers still off: no cost group changes): t4g.* unlimited, 1 in 10 Spot, two AZs
        conn.execute("""
            UPDATE dashgen.instances SET credit_mode = CASE WHEN instance_type LIKE 't4g.%%' THEN 'unlimited' END,
                   lifecycle = CASE WHEN right(instance_id, 1) = '0' THEN 'spot' ELSE 'on-demand' END,
                   availability_zone = CASE WHEN right(instance_id, 2) < '80' THEN 'us-east-1a'
                                            ELSE 'us-east-1b' END""")
        conn.execute("SET LOCAL session_replication_role = origin")
        conn.execute("TRUNCATE dashgen.cost_events_hourly, dashgen.cost_events_daily")
        conn.execute(conn.execute("""SELECT dashgen.cost_events_sql(
            'SELECT iv.started_at, iv.ended_at, 1 AS weight, i.region, i.instance_type, i.operating_system,
                    i.tenancy, i.tags - ''Name'' AS tags, coalesce(i.account_id, '''') AS account_id
             FROM dashgen.instance_intervals iv JOIN dashgen.instances i USING (instance_id)')""").fetchone()[0])
        prices, _ = resolve_prices({PriceKey("us-east-1", t, "Linux") for t in TYPES}, "bundled")
        conn.cursor().executemany(PRICE_UPSERT_SQL, [(p.key.region, p.key.instance_type, p.key.operating_system,
                                                p.key.tenancy, p.usd_per_hour, p.vcpu, p.memory_mib, p.source,
                                                p.price_date, NOW) for p in prices])
        # one 50 GiB io1 volume attached to each instance, at the real io1 item's price (tests/data/pricelist)
        conn.execute("TRUNCATE dashgen.volumes, dashgen.ebs_prices")
        conn.execute("""
            INSERT INTO dashgen.volumes (volume_id, region, volume_type, size_gib, instance_id, created_at,
                                         first_seen, last_seen)
            SELECT 'vol-' || substr(instance_id, 3), region, 'io1', 50, instance_id, now() - interval '30 days',
                   now(), now() FROM dashgen.instances""")
        conn.execute("INSERT INTO dashgen.ebs_prices VALUES ('us-east-1', 'io1', 0.138, 'aws-price-list-api', "
                     "'2018-08-01', now())")
        # issue 12: the t4g.large instances run unlimited and were charged surplus credits every hour of the last
        # 7 days; 1 instance in 10 is Spot (two AZs, a Spot price change every 6 hours); AWS's CUR billed every
        # instance daily up to yesterday (a DAILY export: one line item per instance and day)
        conn.execute("""
            INSERT INTO dashgen.instance_utilisation_hourly (instance_id, hour, cpu_avg, cpu_surplus_credits_charged)
            SELECT i.instance_id, date_trunc('hour', now()) - make_interval(hours => h), 95, 84
            FROM dashgen.instances i, generate_series(1, 168) h WHERE i.instance_type = 't4g.large'""")
        conn.execute("INSERT INTO dashgen.credit_prices VALUES ('us-east-1', 't4g', 'Linux', 0.04, "
                     "'bundled-fallback', NULL, now())")
        conn.execute("""
            INSERT INTO dashgen.spot_prices (availability_zone, instance_type, product_description, at, usd_per_hour,
                                             region)
            SELECT az, t, 'Linux/UNIX', date_trunc('hour', now()) - make_interval(hours => 6 * k),
                   0.02 + (k %% 5) * 0.001, 'us-east-1'
            FROM unnest(%(types)s::text[]) t, unnest(ARRAY['us-east-1a', 'us-east-1b']) az,
                 generate_series(0, 124) k""",
                     {"types": TYPES})
        conn.execute("""
            INSERT INTO dashgen.billed_costs (instance_id, usage_start, usage_end, list_usd, billed_usd, line_items,
                                              pricing_terms, loaded_at)
            SELECT i.instance_id, date_trunc('day', now()) - make_interval(days => d),
                   date_trunc('day', now()) - make_interval(days => d - 1), 1.0, 0.8, 1, 'OnDemand', now()
            FROM dashgen.instances i, generate_series(1, 30) d""")
        rows = conn.execute("SELECT count(*) FROM dashgen.instance_intervals").fetchone()[0]
    with connect(dsn) as conn:  # what autovacuum does after a load this size (index-only probes need it)
        conn.execute("VACUUM (ANALYZE) dashgen.instance_intervals")
        conn.execute("VACUUM (ANALYZE) dashgen.instances")
        conn.execute("ANALYZE dashgen.instance_prices, dashgen.cost_events_hourly, dashgen.cost_events_daily, "
                     "dashgen.volumes, dashgen.ebs_prices, dashgen.instance_utilisation_hourly, dashgen.spot_prices, "
                     "dashgen.billed_costs, dashgen.credit_prices")
    return rows


def server_ms(conn, sql: str) -> float:
    plan = conn.execute(b"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql.encode()).fetchone()[0][0]
    return plan["Planning Time"] + plan["Execution Time"]


def calibration_ms(dsn: str) -> float:
    with connect(dsn) as conn:
        return statistics.median(server_ms(conn, "SELECT sum(i) FROM generate_series(1, 1000000) i")
                                 for _ in range(3))


def bench_panels(dsn: str, n: int, config: Config, runs: int) -> None:
    rows = fill_history(dsn, n, runs)
    print(f"\n(machine speed: SELECT sum(i) FROM generate_series(1, 1000000) takes {calibration_ms(dsn):.0f} ms here)")
    print(f"\n== cost-panel queries on {n:,} instances x 30 days ({rows:,} intervals), "
          "PostgreSQL planning+execution, median of 7 ==")
    dash = render_dashboards(config)["ec2-cost.json"]
    all_values = {v["name"]: v["allValue"] for v in dash["templating"]["list"] if "allValue" in v}
    values = {"tag_key": encode("experiment"), "tag_value": ALL, "name": ALL, "experiment": ALL}
    worst = 0.0
    with connect(dsn) as conn:
        for label, span in (("last 24 h", dt.timedelta(days=1)), ("last 7 days", dt.timedelta(days=7)),
                            ("last 30 days", dt.timedelta(days=30))):
            frm, to = NOW - span, NOW
            interval_ms = max(60_000, int(span.total_seconds() * 1000 / 1000) // 60_000 * 60_000)
            for panel in all_panels(dash):
                for target in panel.get("targets", []):
                    sql = expand(target["rawSql"], time_from=frm, time_to=to, variables=values,
                                 all_values=all_values, interval_ms=interval_ms)
                    server_ms(conn, sql)  # warm-up
                    ms = statistics.median(server_ms(conn, sql) for _ in range(7))
                    worst = max(worst, ms)
                    verdict = "OK" if ms < 100 else "OVER TARGET"
                    name = panel["title"] + (f" ({target['refId']})" if len(panel["targets"]) > 1 else "")
                    print(f"  {label:12s} {name[:36]:36s} {ms:8.1f} ms  [{verdict}, target < 100 ms]")
    print(f"  slowest: {worst:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=30, help="runs per instance over the 30 days (30 = daily)")
    args = parser.parse_args()
    deadline = NOW + dt.timedelta(days=7)
    config = Config(experiments=tuple(Experiment(f"exp-{k}", "experiment", f"exp-{k}", 500.0, deadline)
                                      for k in range(20)))
    server = pgserver.get_server(tempfile.mkdtemp(prefix="dashgen-bench-"), cleanup_mode="stop")
    try:
        dsn = server.get_uri()
        with connect(dsn) as conn:
            conn.execute("DROP SCHEMA IF EXISTS dashgen CASCADE")
        bench_sync(dsn, args.instances, config)
        bench_panels(dsn, args.instances, config, args.runs)
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
