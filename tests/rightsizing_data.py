"""Crafted store contents with known rightsizing verdicts and a known experiment outcome (times relative to now).

t4g-sizing experiment: the same training on t4g.large, t4g.xlarge and t4g.2xlarge.
  train-8  t4g.2xlarge  CPU peak 30 %, average 12 % -> over-provisioned, t4g.xlarge; finished (100 %) after 40 h
  train-4  t4g.xlarge   CPU peak 60 %, average 35 % -> right-sized; 80 % after 48 h, on time: the cheapest on time
  train-2  t4g.large    CPU peak 95 %, average 70 % -> under-provisioned, t4g.xlarge; 40 % after 48 h: late
Outside it: web-1 m7i.2xlarge at 30 % (over-provisioned, m7i.xlarge, a cheaper Graviton family exists) and
idle-1 m7i.large without utilisation (no data). Every measured instance reports memory (CloudWatch agent, 25 %).
Each hour holds twelve 5-minute CPU maxima: eleven at the average, one at the peak (so the P99.5 is the peak).
Prices: the bundled us-east-1 snapshot for every type; instance facts: the bundled snapshot (migrate loads it).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

DEADLINE_IN = dt.timedelta(hours=24)
HOURS = 48
# instance id, Name, type, tags, CPU peak, hours of data, progress at the end (None: no progress metric data)
INSTANCES = (
    ("i-0train8", "train-8", "t4g.2xlarge", {"experiment": "t4g-sizing", "team": "ml"}, 30.0, 40, 100.0),
    ("i-0train4", "train-4", "t4g.xlarge", {"experiment": "t4g-sizing", "team": "ml"}, 60.0, 48, 80.0),
    ("i-0train2", "train-2", "t4g.large", {"experiment": "t4g-sizing", "team": "ml"}, 95.0, 48, 40.0),
    ("i-0web1", "web-1", "m7i.2xlarge", {"team": "web"}, 30.0, 48, None),
    ("i-0idle1", "idle-1", "m7i.large", {"team": "web"}, None, 0, None),
)
AVERAGE = {"train-8": 12.0, "train-4": 35.0, "train-2": 70.0, "web-1": 20.0}  # CPU average, every hour
MEMORY_USED = 25.0  # mem_used_percent


def fill_store(conn: Any, now: dt.datetime | None = None) -> dt.datetime:
    """Migrate (dashgen.store.db.migrate) and fill the store; returns the `now` used."""
    from dashgen.store.db import instance_type_rows, migrate
    from dashgen.sync.cloudwatch import HourlyRow, floor_hour, store_hourly
    from dashgen.sync.pricing import PriceKey, bundled_price

    now = now or dt.datetime.now(dt.UTC)
    migrate(conn)
    start = floor_hour(now) - dt.timedelta(hours=HOURS)
    with conn.transaction(), conn.cursor() as cur:
        prices = [bundled_price(PriceKey("us-east-1", row[0], "Linux", "Shared")) for row in instance_type_rows()]
        cur.executemany(
            "INSERT INTO dashgen.instance_prices (region, instance_type, operating_system, tenancy, usd_per_hour,"
            " vcpu, memory_mib, source, price_date, fetched_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            [(p.key.region, p.key.instance_type, p.key.operating_system, p.key.tenancy, p.usd_per_hour, p.vcpu,
              p.memory_mib, p.source, p.price_date, now) for p in prices],
        )
        cur.execute(
            "INSERT INTO dashgen.experiments (name, tag_key, tag_value, budget_usd, deadline, progress_namespace,"
            " progress_metric, progress_dimensions) VALUES ('t4g-sizing', 'experiment', 't4g-sizing', 20, %s,"
            " 'Training', 'Progress', %s)",
            (now + DEADLINE_IN, json.dumps({"Experiment": "t4g-sizing"})),
        )
        rows = []
        for iid, name, itype, tags, p95, hours, progress in INSTANCES:
            stopped = hours < HOURS and progress == 100.0
            cur.execute(
                "INSERT INTO dashgen.instances (instance_id, region, instance_type, name, tags, state, launch_time,"
                " platform, first_seen, last_seen) VALUES (%s, 'us-east-1', %s, %s, %s, %s, %s, 'Linux/UNIX',"
                " %s, %s)",
                (iid, itype, name, json.dumps({**tags, "Name": name}), "stopped" if stopped else "running", start,
                 start, now),
            )
            cur.execute("INSERT INTO dashgen.instance_intervals VALUES (%s, %s, %s)",
                        (iid, start, start + dt.timedelta(hours=hours) if stopped else None))
            for h in range(hours if p95 is not None else 0):
                avg = AVERAGE.get(name, 0.0)
                values = {"cpu_avg": avg, "cpu_max": min(100.0, p95 + 4), "cpu_p95": p95,
                          "network_in_bytes": 1e6 * (h + 1), "network_out_bytes": 2e6,
                          "cpu_credit_balance_min": 100.0 if itype.startswith("t4g") else None,
                          "cpu_max_5m": [avg] * 11 + [p95], "mem_used_max": MEMORY_USED,
                          "network_in_max_5m": 1e6, "network_out_max_5m": 2e5}
                if progress is not None:
                    values["progress_pct"] = round(progress * (h + 1) / hours, 3)
                rows.append(HourlyRow(iid, start + dt.timedelta(hours=h),
                                      {k: v for k, v in values.items() if v is not None}, itype))
        store_hourly(conn, rows)
    return now
