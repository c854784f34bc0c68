"""What `dashgen sync` reads for rightsizing before it writes: the prices of the types the rule may recommend
beside those in use (`rightsizing_price_keys`), the instance facts and the hourly CloudWatch utilisation
(`collect_rightsizing`); and what it keeps after writing the utilisation: each instance's aggregates
(`refresh_usage`, the one call a utilisation writer makes with the instances whose hours it wrote).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dashgen.config import Config
from dashgen.rightsizing.rule import type_class


def rightsizing_price_keys(keys: Iterable[Any]) -> set[Any]:
    """Besides the `PriceKey`s in use: every size of their family and the same-class types of up to twice
    their vCPUs (for a burstable type also the non-burstable m types of its architecture with half to twice its
    vCPUs: a way out of its credit baseline), so that the recommended and the cheaper type have a price (sync
    stores them too). sql/rightsizing.sql's `pool` draws its candidates from the same sets."""
    from dashgen.store.db import instance_type_rows
    from dashgen.sync.pricing import PriceKey

    specs = {row[0]: row for row in instance_type_rows()}  # type, family, vcpu, memory_mib, arch, ...
    out: set[Any] = set()
    for key in keys:
        spec = specs.get(key.instance_type)
        if spec is None or spec[1] is None or spec[2] is None:
            continue
        family, vcpu, arch, burstable = spec[1], spec[2], spec[4], spec[5]
        for other, (_, ofam, ovcpu, _mem, oarch, oburst, *_rest) in specs.items():
            if not ofam or not ovcpu:
                continue
            same_class = type_class(ofam) == type_class(family) and ovcpu <= 2 * vcpu
            way_out = (burstable and not oburst and type_class(ofam) == "m" and oarch == arch
                       and vcpu <= 2 * ovcpu and ovcpu <= 2 * vcpu)
            if ofam == family or same_class or way_out:
                out.add(PriceKey(key.region, other, key.operating_system, key.tenancy))
    return out

def fresh_price_keys(conn: Any, keys: set[Any], now: dt.datetime, max_age: dt.timedelta | None = None) -> set[Any]:
    """The `keys` whose stored price came from the Price List API less than `max_age` (default
    `dashgen.sync.pricing.PRICE_MAX_AGE`, 24 h) before `now` and is not stale."""
    from dashgen.store.db import db_errors
    from dashgen.sync.pricing import API_SOURCE, PRICE_MAX_AGE, PriceKey

    with db_errors("sync: read stored prices"):
        rows = conn.execute("SELECT region, instance_type, operating_system, tenancy FROM dashgen.instance_prices "
                            "WHERE source = %s AND fetched_at > %s AND stale_since IS NULL",
                            (API_SOURCE, now - (max_age or PRICE_MAX_AGE))).fetchall()
    return keys & {PriceKey(*row) for row in rows}


def utilisation_targets(config: Config, instances: Iterable[Any], region: str) -> list[Any]:
    """What CloudWatch is asked about for the instances sync saw in `region`: burstable (the bundled specs) and
    the progress metric of the first experiment (by name) whose tag they carry."""
    from dashgen.store.db import instance_type_rows
    from dashgen.sync.cloudwatch import Target
    from dashgen.sync.experiments import ProgressMetric

    burstable = {row[0]: bool(row[5]) for row in instance_type_rows()}
    experiments = sorted((e for e in config.experiments if e.progress_namespace and e.progress_metric),
                         key=lambda e: e.name)
    out = []
    for inst in instances:
        if inst.region != region:
            continue
        exp = next((e for e in experiments if inst.tags.get(e.tag_key) == e.tag_value), None)
        progress = None if exp is None else ProgressMetric.of(exp.progress_namespace, exp.progress_metric,
                                                              exp.progress_dimensions)
        stopped = inst.state_changed_at
        if inst.running or stopped is None or (inst.launch_time is not None and stopped < inst.launch_time):
            stopped = None  # as sync's write: a stop time before the current launch is no stop of this run
        out.append(Target(inst.instance_id, burstable.get(inst.instance_type, False), progress,
                          inst.instance_type, inst.launch_time,
                          running=inst.running, launched_at=inst.launch_time, stopped_at=stopped))
    return out


@dataclass
class RightsizingReads:
    """What `collect_rightsizing` read for one sync: the candidates' prices, the instance facts, how many hourly
    utilisation rows it added to the sync's spool, and what it could not read: (what, the one line saying why)."""

    extra_prices: list[Any] = field(default_factory=list)
    facts: list[dict[str, Any]] = field(default_factory=list)
    utilisation_rows: int = 0
    unsynced: list[tuple[str, str]] = field(default_factory=list)


def collect_rightsizing(conn: Any, config: Config, collected: Any, prices_mode: str, session: Any, now: dt.datetime,
                        *, pricing: Any = None, cloudwatch: Any = None, facts_client: Any = None) -> RightsizingReads:
    """Called by `dashgen.sync.sync` BEFORE its write transaction (the store is only read), for the instances,
    regions and time budgets of `collected` (the hourly utilisation rows go into its spool): the instance facts of
    the types in use and the candidates (`dashgen.sync.instance_facts`: each at most once a day, within a time
    budget of its own; a failure is one line, the stored facts, else the bundled snapshot, stay), the prices of
    the types the rule may recommend beside those in use (from the Price List API only when missing or older than
    24 h), and per (account, region) pair the hourly utilisation (`dashgen.sync.cloudwatch`; the pairs at once,
    `[aws] concurrency`, each with its session), within the pair's time budget (`collected.budgets`). A
    CloudWatch failure (or the budget running out) is one line and the sync is partial; the rows of the calls
    that answered before it are kept (true data: the next sync goes on from there, each instance from its own
    last stored hour), the rest still lands. A store that fails here stops the sync."""
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import nullcontext

    from dashgen.errors import AwsError
    from dashgen.store.db import db_errors
    from dashgen.sync.aws import Budget, aws_errors, describe
    from dashgen.sync.aws import client as aws_client
    from dashgen.sync.cloudwatch import RowSpool, cloudwatch_client, read_utilisation_into
    from dashgen.sync.instance_facts import collect_facts
    from dashgen.sync.pricing import PriceKey, resolve_prices

    reads = RightsizingReads()
    in_use = {PriceKey(i.region, i.instance_type, i.operating_system, i.tenancy) for i in collected.instances}
    extra = rightsizing_price_keys(in_use) - in_use
    wanted = {k.instance_type for k in in_use | extra}  # their facts: the types in use and every candidate
    if prices_mode == "api":
        extra -= fresh_price_keys(conn, extra, now)
    if extra:
        prices, warnings = resolve_prices(extra, prices_mode, session, client=pricing,
                                          budget=collected.budgets.get("pricing"))
        for line in warnings:
            reads.unsynced.append(("rightsizing candidate prices", line))
        reads.extra_prices = prices
    pairs = list(getattr(collected, "pairs", None) or []) or [(None, r) for r in collected.regions]  # (by hand)

    def read_pair(account: Any, region: str, spool: RowSpool) -> BaseException | None:
        """One (account, region) pair's utilisation into its own spool (in a worker thread: the pair's own
        client; the store reads share `conn`, whose operations psycopg serializes); the AWS failure, else None."""
        where = account.where(region) if account is not None else region
        budget = collected.budgets.get(where)  # (None: no time limit, for a caller without budgets)
        mine = [i for i in collected.instances if account is None or i.account_id == account.account_id]
        try:
            pair_session = session if account is None else collected.accounts.pair_session(account)
            lock = None if account is None else collected.accounts.client_lock(account)
            with lock or nullcontext():
                client = cloudwatch or cloudwatch_client(pair_session, region, budget)
            read_utilisation_into(conn, client, region, spool, lookback_days=config.lookback_days, now=now,
                                  seen=utilisation_targets(config, mine, region), budget=budget,
                                  account_id=account.account_id if account and account.role_arn else None)
        except (AwsError, *aws_errors()) as exc:
            return exc
        return None

    # the pairs at once, as their inventory (`[aws] concurrency`); one at a time with a caller's own client
    spools = [RowSpool() for _ in pairs]
    workers = 1 if cloudwatch is not None else max(1, min(config.concurrency, len(pairs) or 1))
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dashgen-utilisation") as pool:
            failures = [f.result() for f in [pool.submit(read_pair, account, region, spool)
                                             for (account, region), spool in zip(pairs, spools, strict=True)]]
        for (account, region), spool, exc in zip(pairs, spools, failures, strict=True):  # in the pairs' order
            spool.seal()
            collected.utilisation.absorb(spool)  # also a failed pair's: the calls that answered are kept
            reads.utilisation_rows += len(spool)
            if exc is not None:
                where = account.where(region) if account is not None else region
                of = f" of account {account.account_id}" if account is not None and account.role_arn else ""
                reads.unsynced.append((f"utilisation of {where}",  # (the failure names the region)
                                       f"WARNING: utilisation{of} not read from CloudWatch: {describe(exc)}"))
    finally:
        for spool in spools:
            spool.close()
    if pairs:  # instance facts (DescribeInstanceTypes) from the first pair that answered, with its session
        account, region = pairs[0]
        where = account.where(region) if account is not None else region
        seconds = collected.budgets[where].seconds if where in collected.budgets else None
        budget = Budget("DescribeInstanceTypes", seconds) if seconds else None  # its own: not the region's time
        try:
            facts_session = session if account is None else collected.accounts.pair_session(account)
            client = facts_client or aws_client(facts_session, "ec2", region, budget=budget)
            with db_errors("sync: read instance facts"):
                reads.facts = collect_facts(conn, client, wanted, now,
                                            run=budget.run if budget is not None else None)
        except (AwsError, *aws_errors()) as exc:
            reads.unsynced.append(("instance facts", f"WARNING: instance facts not read (DescribeInstanceTypes): "
                                                     f"{describe(exc)}; rightsizing uses the stored ones, else the "
                                                     "bundled snapshot"))
    return reads


# ---------------------------------------------------------------- the per-instance aggregates sync keeps

_REFRESH_USAGE = """
WITH due AS (  -- the changed instances, and those whose row is missing, of another type or whose window moved on
    SELECT i.instance_id
    FROM dashgen.instances i
    LEFT JOIN dashgen.rightsizing_usage s
           ON s.instance_id = i.instance_id AND s.lookback_days = %(days)s AND s.cpu_percentile = %(pctl)s
    WHERE i.state NOT IN ('terminated', 'shutting-down')
      AND (s.instance_id IS NULL OR s.instance_type <> i.instance_type OR i.instance_id = ANY (%(changed)s)
           OR s.first_hour < %(now)s - make_interval(days => %(days)s))
)
INSERT INTO dashgen.rightsizing_usage AS s (
    instance_id, lookback_days, cpu_percentile, instance_type, window_from, refreshed_at, first_hour, last_hour,
    hours, n5, cpu_avg, cpu_max, cpu_peak, busiest_day_avg, mem_hours, mem_peak, net_gbps, packets_per_s, ebs_iops,
    ebs_mbps, surplus_credits)
SELECT u.instance_id, %(days)s, %(pctl)s, u.instance_type, u.window_from, %(now)s, u.first_hour, u.last_hour,
       u.hours, u.n5, u.cpu_avg, u.cpu_max, u.cpu_peak, u.busiest_day_avg, u.mem_hours, u.mem_peak, u.net_gbps,
       u.packets_per_s, u.ebs_iops, u.ebs_mbps, u.surplus_credits
FROM dashgen.rightsizing_usage_of(ARRAY(SELECT instance_id FROM due), %(pctl)s, %(days)s, %(now)s) u
ON CONFLICT (instance_id, lookback_days, cpu_percentile) DO UPDATE SET
    instance_type = excluded.instance_type, window_from = excluded.window_from, refreshed_at = excluded.refreshed_at,
    first_hour = excluded.first_hour, last_hour = excluded.last_hour, hours = excluded.hours, n5 = excluded.n5,
    cpu_avg = excluded.cpu_avg, cpu_max = excluded.cpu_max, cpu_peak = excluded.cpu_peak,
    busiest_day_avg = excluded.busiest_day_avg, mem_hours = excluded.mem_hours, mem_peak = excluded.mem_peak,
    net_gbps = excluded.net_gbps, packets_per_s = excluded.packets_per_s, ebs_iops = excluded.ebs_iops,
    ebs_mbps = excluded.ebs_mbps, surplus_credits = excluded.surplus_credits
"""


def refresh_usage(conn: Any, config: Config, now: dt.datetime, changed: Iterable[str] = ()) -> int:
    """Bring `dashgen.rightsizing_usage` (what sql/rightsizing.sql sizes on, per instance) up to date as of `now`
    for the config's window and percentile: recomputed (`dashgen.rightsizing_usage_of`) for the instances in
    `changed` (those whose utilisation was just written), those without a row, of another type (a resize) or whose
    oldest counted hour left the window; rows of another window or percentile, and of instances terminated or no
    longer stored, are removed. Call it in the transaction that wrote the utilisation, after the write. The count
    of instances recomputed."""
    params = {"days": config.lookback_days, "pctl": float(config.cpu_percentile), "now": now,
              "changed": sorted(set(changed))}
    conn.execute("DELETE FROM dashgen.rightsizing_usage s WHERE (s.lookback_days, s.cpu_percentile) <> "
                 "(%(days)s, %(pctl)s) OR NOT EXISTS (SELECT FROM dashgen.instances i WHERE i.instance_id = "
                 "s.instance_id AND i.state NOT IN ('terminated', 'shutting-down'))", params)
    return conn.execute(_REFRESH_USAGE, params).rowcount
