"""`dashgen sync`: EC2 inventory, prices and experiment progress from AWS into the pricing store.

AWS is read first, into plain data (`Collected`): inventory and EBS volumes per region, prices, experiment
progress, and for rightsizing the candidate prices and the CloudWatch utilisation
(`dashgen.rightsizing.collect.collect_rightsizing`). Then everything is written in ONE short transaction with no AWS
call inside, so Grafana reads the old state or the new one, never half.
Writes only change rows that differ: a re-run with the same AWS state changes nothing (but `last_seen`).

Under faults (`dashgen.sync.aws`): any AWS or network failure (an HTML 500 from a proxy, a throttle past the retries,
a black-holed endpoint past the region's time budget) costs only what it was reading, one line each: a region's
inventory (`failed_regions`), its volumes or utilisation, the Price List API (the last known prices are kept,
marked stale), the progress metrics (`unsynced`). `SyncResult.exit_code` then says 3, "partly synced" (1 when
no region landed). Nothing leaves the store because it is missing from AWS or from the config: an experiment
no longer configured is kept and marked (`dashgen db forget-experiment` removes it).

Running intervals: a running instance has an open interval since its `LaunchTime` (AWS resets it at every
start); a stopped or terminated one closes it at the time in `StateTransitionReason`. A stop dashgen cannot
date is closed at the conservative upper bound (the next LaunchTime, else the sync that noticed it).
The billing rollups of every instance whose runs changed are refreshed in the same transaction
(`dashgen.refresh_billing`, migration 002; the cost-event rollups of migration 003 follow by trigger).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

from dashgen.config import Config
from dashgen.errors import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, ConfigError, DashgenError, first_line
from dashgen.sync.accounts import Account, Accounts
from dashgen.sync.aws import Budget, aws_errors, describe
from dashgen.sync.cloudwatch import RowSpool
from dashgen.sync.credits import CreditKey, family_of, is_burstable, read_credit_modes, resolve_credit_prices
from dashgen.sync.inventory import Instance, describe_region, ec2_client
from dashgen.sync.pricing import API_SOURCE, PRICE_MAX_AGE, Price, PriceKey, pricing_client, resolve_prices
from dashgen.sync.spot import SpotPrice, read_spot_prices
from dashgen.sync.volumes import StorageKey, StoragePrice, Volume, describe_volumes, resolve_storage_prices

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class SyncResult:
    """What one sync did; the CLI renders it."""

    synced_at: dt.datetime
    regions: list[str] = field(default_factory=list)
    failed_regions: dict[str, str] = field(default_factory=dict)  # region -> the one line saying why
    instances: int = 0
    running: int = 0
    volumes: int = 0  # EBS volumes seen
    prices: dict[str, int] = field(default_factory=dict)  # source -> number of prices stored
    unknown_prices: list[str] = field(default_factory=list)  # "region type os tenancy", "region EBS type"
    stale_prices: list[str] = field(default_factory=list)  # "region type os tenancy": last known API price kept
    progress_points: int = 0
    utilisation_rows: int = 0  # hourly CloudWatch rows upserted for rightsizing (dashgen.rightsizing.collect)
    instance_facts: int = 0  # instance types read from DescribeInstanceTypes (dashgen.sync.instance_facts)
    # what this sync asked CloudWatch GetMetricData (utilisation and progress): calls, metrics requested (what
    # CloudWatch bills, per 1,000), datapoints returned (dashgen.sync.cloudwatch.CloudWatchMeter)
    cloudwatch_calls: int = 0
    cloudwatch_metrics: int = 0
    cloudwatch_datapoints: int = 0
    cur_files: int = 0  # CUR Parquet files read (--cur)
    billed_rows: int = 0  # billed (instance, usage start) rows they gave
    warnings: list[str] = field(default_factory=list)  # one line each, printed on stderr
    unsynced: list[str] = field(default_factory=list)  # what was asked for but not read (its line is a warning)
    kept_experiments: list[str] = field(default_factory=list)  # in the store, no longer in the config
    migrations: list[str] = field(default_factory=list)
    skipped: str | None = None  # why nothing was written (a newer sync committed first), else None

    @property
    def ok(self) -> bool:
        """Everything asked for was synced."""
        return not self.failed_regions and not self.unsynced

    @property
    def exit_code(self) -> int:
        """0 everything synced; 3 (`EXIT_PARTIAL`) some regions or reads failed, the rest landed; 1 no region
        asked for landed."""
        if self.failed_regions and not self.regions:
            return EXIT_ERROR
        return EXIT_OK if self.ok else EXIT_PARTIAL

    def not_synced(self, what: str, line: str) -> None:
        """Record that `what` was not read; `line` (one line) says why."""
        self.unsynced.append(what)
        if line not in self.warnings:
            self.warnings.append(line)


@dataclass
class Collected:
    """Everything read from AWS for one sync, before anything is written."""

    instances: list[Instance]
    regions: list[str]  # the pairs that landed, as `Account.where` names them (the region alone: the caller's)
    prices: list[Price]
    progress: dict[str, list[tuple[dt.datetime, Any]]]
    extra_prices: list[Price] = field(default_factory=list)  # rightsizing candidates (dashgen.rightsizing.collect)
    # dashgen.sync.cloudwatch.HourlyRow of every region, spooled to disk (RowSpool) until the write
    utilisation: Any = field(default_factory=RowSpool)
    volumes: list[Volume] = field(default_factory=list)  # EBS volumes of volume_regions
    volume_regions: list[str] = field(default_factory=list)  # the regions whose volumes were read
    volume_pairs: list[tuple[str | None, str]] = field(default_factory=list)  # (account id, region) of those reads
    pairs: list[tuple[Account, str]] = field(default_factory=list)  # the (account, region) pairs that landed
    accounts: Any = None  # dashgen.sync.accounts.Accounts: the pairs' sessions (utilisation reads them too)
    storage_prices: list[StoragePrice] = field(default_factory=list)  # EBS, the types attached to an instance
    facts: list[dict[str, Any]] = field(default_factory=list)  # DescribeInstanceTypes (dashgen.sync.instance_facts)
    budgets: dict[str, Budget] = field(default_factory=dict)  # region (and "pricing") -> its time budget
    credit_modes: dict[str, str] = field(default_factory=dict)  # burstable instance id -> standard | unlimited
    credit_prices: list[Any] = field(default_factory=list)  # dashgen.sync.credits.CreditPrice of the families in use
    spot_prices: list[Any] = field(default_factory=list)  # dashgen.sync.spot.SpotPrice of the Spot instances' AZ/type
    billed: list[Any] = field(default_factory=list)  # dashgen.sync.cur.BilledSpan, with --cur
    failed_regions: dict[str, str] = field(default_factory=dict)  # region -> the one line saying why
    unsynced: list[tuple[str, str]] = field(default_factory=list)  # (what was not read, the one line saying why)
    warnings: list[str] = field(default_factory=list)  # one line each, not a failure (an id read in two pairs)


def duration_seconds(text: str, where: str) -> int:
    """'15m' -> 900 seconds; `where` names the option or config key in the error."""
    unit = text[-1:]
    if unit not in _UNITS or not text[:-1].isdigit() or int(text[:-1]) <= 0:
        raise ConfigError(f"{where}: expected a duration like '15m' or '1h', got {text!r}")
    return int(text[:-1]) * _UNITS[unit]


def parse_every(text: str) -> int:
    """'15m' -> 900 seconds."""
    return duration_seconds(text, "--every")


def region_budgets(config: Config, regions: list[str], seconds: float | None = None) -> dict[str, Budget]:
    """One time budget per region and one for the Price List API, each `[aws] region_timeout` long."""
    seconds = seconds or duration_seconds(config.region_timeout, f"{config.source}: aws.region_timeout")
    budgets = {region: Budget(region, seconds) for region in regions}
    budgets["pricing"] = Budget("the AWS Price List API", seconds)
    return budgets


@dataclass
class PairRead:
    """What one (account, region) pair gave: its inventory, EBS volumes, credit modes and Spot prices, or the one
    line saying why its inventory was not read (`error`); the reads after the inventory that failed, as
    (what, line) for `SyncResult.not_synced`."""

    account: Account
    region: str
    instances: list[Instance] = field(default_factory=list)
    volumes: list[Volume] | None = None  # None: not read
    credit_modes: dict[str, str] = field(default_factory=dict)
    spot_prices: list[SpotPrice] = field(default_factory=list)
    error: str | None = None
    unsynced: list[tuple[str, str]] = field(default_factory=list)


def read_pair(accounts: Accounts, account: Account, region: str, budget: Budget, now: dt.datetime,
              retry_mode: str = "standard") -> PairRead:
    """Read one (account, region) pair within its time budget, in the calling thread, with clients of its own
    (made from the pair's session: `Accounts.pair_session`). Any failure is one line in the result and costs only
    what it was reading; an assumed role that is refused fails the inventory read (its first call)."""
    out = PairRead(account, region)
    where = account.where(region)
    try:
        session = accounts.pair_session(account)
        with accounts.client_lock(account) or nullcontext():
            client = ec2_client(session, region, retry_mode, budget=budget)
        out.instances = budget.run(lambda: describe_region(client, region, account.account_id))
    except Exception as exc:  # AWS, the network, an unreadable reply, a role refused: this pair only (one line)
        out.error = describe(exc)
        return out
    try:
        out.volumes = [replace(v, account_id=account.account_id)
                       for v in budget.run(lambda: describe_volumes(client, region))]
    except Exception as exc:  # e.g. no ec2:DescribeVolumes permission: instances still land
        out.unsynced.append((f"EBS volumes of {where}", f"WARNING: EBS volumes of {where} not read: {describe(exc)}"))
    burstable = [i.instance_id for i in out.instances if is_burstable(i.instance_type)]
    if burstable:
        try:
            out.credit_modes = budget.run(lambda: read_credit_modes(client, burstable))
        except Exception as exc:  # the store keeps what it knew; never read: unknown
            out.unsynced.append((f"credit specifications of {where}",
                                 f"WARNING: credit specifications (standard/unlimited) of {where} not read: "
                                 f"{describe(exc)}; their mode stays as stored, else unknown"))
    spot = [i for i in out.instances if i.lifecycle == "spot"]
    if spot:
        try:
            out.spot_prices = budget.run(lambda: read_spot_prices(client, spot, now))
        except Exception as exc:
            out.unsynced.append((f"Spot price history of {where}",
                                 f"WARNING: Spot price history of {where} not read: {describe(exc)}; Spot "
                                 "instances keep the prices stored, else their cost is unknown"))
    return out


def read_pairs(accounts: Accounts, regions: list[str], budgets: dict[str, Budget], now: dt.datetime, *,
               retry_mode: str = "standard", concurrency: int = 8) -> list[PairRead]:
    """Every (account, region) pair, at most `concurrency` at once (threads: the reads wait on AWS), each within
    its own time budget (`budgets[account.where(region)]`); the results in the order of the pairs, whatever order
    they finished in."""
    from concurrent.futures import ThreadPoolExecutor

    pairs = [(account, region) for account in accounts.accounts for region in regions]
    if not pairs:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(pairs))),
                            thread_name_prefix="dashgen-pair") as pool:
        futures = [pool.submit(read_pair, accounts, account, region, budgets[account.where(region)], now,
                               retry_mode) for account, region in pairs]
        return [f.result() for f in futures]


def collect(config: Config, regions: list[str], prices_mode: str, session: Any, now: dt.datetime, *,
            retry_mode: str = "standard", pricing: Any = None, cloudwatch: Any = None,
            budgets: dict[str, Budget] | None = None,
            progress_since: dict[str, dt.datetime] | None = None, accounts: Accounts | None = None) -> Collected:
    """Read AWS: inventory and EBS volumes per (account, region) pair (`accounts`, default the caller's own
    account; `read_pairs`: concurrently, `[aws] concurrency` at once), prices of the instance types and volume
    types in use, progress points (of each experiment from `progress_since`, its latest stored point: the points
    before it are stored already). Each pair's reads run within its time budget; any failure is one line (in the
    returned `failed_regions`, keyed by `Account.where`, or `unsynced`) and costs only what it was reading."""
    failed_regions: dict[str, str] = {}
    unsynced: list[tuple[str, str]] = []
    warnings_seen: list[str] = []
    accounts = accounts if accounts is not None else Accounts([Account(None)], session)
    budgets = budgets if budgets is not None else region_budgets(config, regions)
    for account in accounts.accounts:
        for region in regions:
            budgets.setdefault(account.where(region), Budget(account.where(region), budgets["pricing"].seconds))
    instances: list[Instance] = []
    volumes: list[Volume] = []
    credit_modes: dict[str, str] = {}
    spot_prices: list[SpotPrice] = []
    landed: list[str] = []
    pairs: list[tuple[Account, str]] = []
    volume_pairs: list[tuple[str | None, str]] = []
    where_seen: dict[str, str] = {}  # instance id -> the pair it was read in
    for read in read_pairs(accounts, regions, budgets, now, retry_mode=retry_mode, concurrency=config.concurrency):
        where = read.account.where(read.region)
        if read.error is not None:
            failed_regions[where] = read.error
            continue
        landed.append(where)
        pairs.append((read.account, read.region))
        for inst in read.instances:  # an id in two pairs (AWS ids are unique: never seen): the last read is stored
            if inst.instance_id in where_seen:
                warnings_seen.append(f"WARNING: instance {inst.instance_id} read in {where_seen[inst.instance_id]}"
                                     f" and in {where}: stored as in {where}")
                instances = [i for i in instances if i.instance_id != inst.instance_id]
            where_seen[inst.instance_id] = where
        instances += read.instances
        if read.volumes is not None:
            volumes += read.volumes
            volume_pairs.append((read.account.account_id, read.region))
        credit_modes.update(read.credit_modes)
        spot_prices += read.spot_prices
        unsynced += read.unsynced
    keys = {PriceKey(i.region, i.instance_type, i.operating_system, i.tenancy) for i in instances}
    prices, warnings = resolve_prices(keys, prices_mode, session, client=pricing, budget=budgets["pricing"])
    for line in warnings:
        unsynced.append(("instance prices", line))
    storage_keys = {StorageKey(v.region, v.volume_type) for v in volumes if v.instance_id}
    storage_prices, warnings = resolve_storage_prices(storage_keys, prices_mode, pricing, budgets["pricing"])
    for line in warnings:
        unsynced.append(("EBS storage prices", line))
    credit_keys = {CreditKey(i.region, family_of(i.instance_type), i.operating_system) for i in instances
                   if is_burstable(i.instance_type)}
    # (when the instance prices failed, that failure's line says it all)
    if prices_mode == "bundled" or any(what == "instance prices" for what, _ in unsynced):
        credit_prices, _ = resolve_credit_prices(credit_keys, "bundled", None)
    else:
        try:
            credit_prices, warnings = budgets["pricing"].run(
                lambda: resolve_credit_prices(credit_keys, prices_mode, pricing))
        except Exception as exc:  # the Price List API's time budget ran out
            credit_prices, _ = resolve_credit_prices(credit_keys, "bundled", None)
            warnings = [f"WARNING: CPU credit prices not read from the Price List API ({describe(exc)}); using the "
                        "bundled fallback rates (us-east-1 Linux; others unknown)"]
        for line in warnings:
            unsynced.append(("CPU credit prices", line))
    progress: dict[str, list[tuple[dt.datetime, Any]]] = {}
    with_metric = [e for e in config.experiments if e.progress_metric]
    if with_metric:
        from dashgen.sync.cloudwatch import cloudwatch_client
        from dashgen.sync.experiments import fetch_progress

        budget = budgets.get(config.default_region) or budgets.setdefault(
            config.default_region, Budget(config.default_region, budgets["pricing"].seconds))
        try:
            client = cloudwatch or cloudwatch_client(session, config.default_region, budget)
            start = now - dt.timedelta(days=config.lookback_days)
            for exp in with_metric:
                since = max(start, (progress_since or {}).get(exp.name, start))
                progress[exp.name] = budget.run(lambda c=client, e=exp, s=since: fetch_progress(c, e, s, now))
        except Exception as exc:  # AWS, the network, an unreadable reply: the progress only (one line)
            unsynced.append(("experiment progress",
                             f"WARNING: experiment progress not read from CloudWatch: {describe(exc)}"))
            progress = {}
    return Collected(instances, landed, prices, progress, volumes=volumes,
                     volume_regions=sorted({r for _, r in volume_pairs}), volume_pairs=volume_pairs,
                     storage_prices=storage_prices, budgets=budgets, credit_modes=credit_modes,
                     credit_prices=credit_prices, spot_prices=spot_prices, pairs=pairs, accounts=accounts,
                     failed_regions=failed_regions, unsynced=unsynced, warnings=warnings_seen)


_SEEN_COLS = ("instance_id", "region", "instance_type", "name", "tags", "state", "launch_time", "platform",
              "operating_system", "tenancy", "stopped_at", "running", "lifecycle", "availability_zone", "account_id")
# The (account, region) pairs that answered, as two arrays (account NULL: the caller's, not known): a stored row of
# unknown account (NULL: stored before migration 070) belongs to any pair of its region, as before accounts.
_IN_PAIRS = """EXISTS (SELECT 1 FROM unnest(%(pair_accounts)s::text[], %(pair_regions)s::text[])
                          AS p(account_id, region)
                  WHERE p.region = {t}.region
                    AND (p.account_id IS NULL OR {t}.account_id IS NULL OR p.account_id = {t}.account_id))"""
_SYNC_SQL = [
    # the inventory; last_seen moves, everything else only when it changed
    """INSERT INTO dashgen.instances AS i (instance_id, region, instance_type, name, tags, state, launch_time,
           platform, operating_system, tenancy, lifecycle, availability_zone, first_seen, last_seen, account_id)
       SELECT instance_id, region, instance_type, name, tags, state, launch_time, platform, operating_system,
              tenancy, lifecycle, availability_zone, %(now)s, %(now)s, account_id FROM _seen
       ON CONFLICT (instance_id) DO UPDATE SET region = excluded.region, instance_type = excluded.instance_type,
           name = excluded.name, tags = excluded.tags, state = excluded.state, launch_time = excluded.launch_time,
           platform = excluded.platform, operating_system = excluded.operating_system,
           tenancy = excluded.tenancy, lifecycle = excluded.lifecycle,
           availability_zone = coalesce(excluded.availability_zone, i.availability_zone),
           last_seen = excluded.last_seen, account_id = coalesce(excluded.account_id, i.account_id)
       WHERE (i.region, i.instance_type, i.name, i.tags, i.state, i.launch_time, i.platform, i.operating_system,
              i.tenancy, i.lifecycle, i.availability_zone, i.last_seen, i.account_id) IS DISTINCT FROM
             (excluded.region, excluded.instance_type, excluded.name, excluded.tags, excluded.state,
              excluded.launch_time, excluded.platform, excluded.operating_system, excluded.tenancy,
              excluded.lifecycle, coalesce(excluded.availability_zone, i.availability_zone), excluded.last_seen,
              coalesce(excluded.account_id, i.account_id))""",
    # an open interval that started before the current LaunchTime: the instance stopped before that start
    """UPDATE dashgen.instance_intervals iv SET ended_at = s.launch_time FROM _seen s
       WHERE iv.instance_id = s.instance_id AND iv.ended_at IS NULL AND iv.started_at < s.launch_time
       RETURNING iv.instance_id""",
    # running: open since LaunchTime
    """INSERT INTO dashgen.instance_intervals AS iv (instance_id, started_at, ended_at)
       SELECT instance_id, launch_time, NULL FROM _seen WHERE running AND launch_time IS NOT NULL
       ON CONFLICT (instance_id, started_at) DO UPDATE SET ended_at = NULL WHERE iv.ended_at IS NOT NULL
       RETURNING iv.instance_id""",
    # stopped/terminated: the run since LaunchTime ended at the StateTransitionReason time (else: now, once)
    """UPDATE dashgen.instance_intervals iv SET ended_at = coalesce(s.stopped_at, iv.ended_at, %(now)s)
       FROM _seen s
       WHERE NOT s.running AND iv.instance_id = s.instance_id AND iv.started_at = s.launch_time
         AND iv.ended_at IS DISTINCT FROM coalesce(s.stopped_at, iv.ended_at, %(now)s)
       RETURNING iv.instance_id""",
    """INSERT INTO dashgen.instance_intervals (instance_id, started_at, ended_at)
       SELECT instance_id, launch_time, stopped_at FROM _seen
       WHERE NOT running AND launch_time IS NOT NULL AND stopped_at IS NOT NULL
       ON CONFLICT (instance_id, started_at) DO NOTHING
       RETURNING instance_id""",
    # gone from an (account, region) pair that answered (terminated long ago): close what is still open
    f"""UPDATE dashgen.instance_intervals iv SET ended_at = greatest(iv.started_at, %(now)s)
       FROM dashgen.instances i
       WHERE iv.instance_id = i.instance_id AND iv.ended_at IS NULL AND {_IN_PAIRS.format(t="i")}
         AND NOT EXISTS (SELECT 1 FROM _seen s WHERE s.instance_id = i.instance_id)
       RETURNING iv.instance_id""",
]
_PRICE_COLS = ("region, instance_type, operating_system, tenancy, usd_per_hour, vcpu, memory_mib, source, "
               "price_date, fetched_at")
# A price read now (from the API, or the snapshot with --prices bundled): written when it differs from the stored
# one, or to move fetched_at when the stored one is older than PRICE_MAX_AGE; otherwise the row is not rewritten.
_PRICE_CHANGED = f"""(p.usd_per_hour, p.vcpu, p.memory_mib, p.source, p.price_date, p.stale_since) IS DISTINCT FROM
          (excluded.usd_per_hour, excluded.vcpu, excluded.memory_mib, excluded.source, excluded.price_date,
           NULL::timestamptz)
       OR p.fetched_at <= excluded.fetched_at - interval '{int(PRICE_MAX_AGE.total_seconds())} seconds'"""
PRICE_UPSERT_SQL = f"""
    INSERT INTO dashgen.instance_prices AS p ({_PRICE_COLS})
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (region, instance_type, operating_system, tenancy) DO UPDATE SET
        usd_per_hour = excluded.usd_per_hour, vcpu = excluded.vcpu, memory_mib = excluded.memory_mib,
        source = excluded.source, price_date = excluded.price_date, fetched_at = excluded.fetched_at,
        stale_since = NULL
    WHERE {_PRICE_CHANGED}"""
# The Price List API failed for a key: its last known API price is kept and marked stale (once) ...
_PRICE_STALE_SQL = f"""
    UPDATE dashgen.instance_prices SET stale_since = %s
    WHERE (region, instance_type, operating_system, tenancy) = (%s, %s, %s, %s) AND source = '{API_SOURCE}'
      AND stale_since IS NULL"""
# ... and the fallback (the snapshot's price, or unknown) lands only where no API price is known.
_PRICE_FALLBACK_SQL = PRICE_UPSERT_SQL.replace(f"WHERE {_PRICE_CHANGED}",
                                               f"WHERE p.source <> '{API_SOURCE}' AND ({_PRICE_CHANGED})")
_PRICES_KEPT_SQL = f"""
    SELECT p.region, p.instance_type, p.operating_system, p.tenancy, p.stale_since
    FROM dashgen.instance_prices p
    JOIN unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS k(region, instance_type, operating_system, tenancy)
      USING (region, instance_type, operating_system, tenancy)
    WHERE p.source = '{API_SOURCE}' AND p.stale_since IS NOT NULL"""
_VOLUME_COLS = ("volume_id", "region", "volume_type", "size_gib", "created_at", "instance_id", "account_id")
_VOLUME_SQL = [
    """INSERT INTO dashgen.volumes AS v (volume_id, region, volume_type, size_gib, created_at, instance_id,
           first_seen, last_seen, account_id)
       SELECT volume_id, region, volume_type, size_gib, created_at, instance_id, %(now)s, %(now)s, account_id
       FROM _volumes
       ON CONFLICT (volume_id) DO UPDATE SET region = excluded.region, volume_type = excluded.volume_type,
           size_gib = excluded.size_gib, created_at = excluded.created_at, instance_id = excluded.instance_id,
           last_seen = excluded.last_seen, gone_at = NULL, account_id = coalesce(excluded.account_id, v.account_id)
       WHERE (v.region, v.volume_type, v.size_gib, v.created_at, v.instance_id, v.last_seen, v.gone_at, v.account_id)
             IS DISTINCT FROM (excluded.region, excluded.volume_type, excluded.size_gib, excluded.created_at,
                               excluded.instance_id, excluded.last_seen, NULL::timestamptz,
                               coalesce(excluded.account_id, v.account_id))""",
    # deleted: gone from an (account, region) pair whose volumes were read
    f"""UPDATE dashgen.volumes v SET gone_at = %(now)s
       WHERE v.gone_at IS NULL AND {_IN_PAIRS.format(t="v")}
         AND NOT EXISTS (SELECT 1 FROM _volumes s WHERE s.volume_id = v.volume_id)""",
]
_STORAGE_PRICE_SQL = """
    INSERT INTO dashgen.ebs_prices AS p (region, volume_type, usd_per_gb_month, source, price_date, fetched_at)
    VALUES (%s, %s, %s, %s, %s, %s)
    ON CONFLICT (region, volume_type) DO UPDATE SET usd_per_gb_month = excluded.usd_per_gb_month,
        source = excluded.source, price_date = excluded.price_date, fetched_at = excluded.fetched_at
    WHERE (p.usd_per_gb_month, p.source, p.price_date) IS DISTINCT FROM
          (excluded.usd_per_gb_month, excluded.source, excluded.price_date)"""
_EXPERIMENT_SQL = """
    INSERT INTO dashgen.experiments AS e (name, tag_key, tag_value, budget_usd, deadline, progress_namespace,
        progress_metric, progress_dimensions)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (name) DO UPDATE SET tag_key = excluded.tag_key, tag_value = excluded.tag_value,
        budget_usd = excluded.budget_usd, deadline = excluded.deadline,
        progress_namespace = excluded.progress_namespace, progress_metric = excluded.progress_metric,
        progress_dimensions = excluded.progress_dimensions, removed_from_config_at = NULL
    WHERE e IS DISTINCT FROM excluded"""
# never deleted by a sync: an experiment the config no longer has is kept (with its progress) and marked
_EXPERIMENT_GONE_SQL = """
    UPDATE dashgen.experiments SET removed_from_config_at = %s
    WHERE removed_from_config_at IS NULL AND NOT (name = ANY (%s))"""
_EXPERIMENTS_KEPT_SQL = """
    SELECT name FROM dashgen.experiments WHERE removed_from_config_at IS NOT NULL ORDER BY name"""
_PROGRESS_SQL = """
    INSERT INTO dashgen.experiment_progress AS p (experiment, at, percent) SELECT experiment, at, percent FROM _progress
    ON CONFLICT (experiment, at) DO UPDATE SET percent = excluded.percent WHERE p.percent <> excluded.percent"""
# per experiment, its latest stored progress point, when the stored experiment reads the same metric as the config
_PROGRESS_SINCE_SQL = """
    SELECT e.name, e.progress_namespace, e.progress_metric, e.progress_dimensions, max(p.at)
    FROM dashgen.experiments e JOIN dashgen.experiment_progress p ON p.experiment = e.name
    GROUP BY e.name"""


def progress_since(conn: Any, config: Config) -> dict[str, dt.datetime]:
    """Each experiment's latest stored progress point (the next sync reads its metric from there on); only for
    an experiment whose stored metric (namespace, name, dimensions) is the config's."""
    from dashgen.store.db import db_errors

    wanted = {e.name: (e.progress_namespace, e.progress_metric, dict(e.progress_dimensions))
              for e in config.experiments if e.progress_metric}
    with db_errors("sync: read stored progress"):
        rows = conn.execute(_PROGRESS_SINCE_SQL).fetchall()
    return {name: at for name, ns, metric, dims, at in rows if wanted.get(name) == (ns, metric, dims or {})}


def _write_progress(conn: Any, collected: Collected) -> None:
    """The progress points: COPY into a temporary table, one upsert (inside write's transaction)."""
    conn.execute("CREATE TEMP TABLE _progress (experiment text, at timestamptz, percent numeric) ON COMMIT DROP")
    with conn.cursor().copy("COPY _progress (experiment, at, percent) FROM STDIN") as copy:
        for name, points in sorted(collected.progress.items()):
            for at, pct in points:
                copy.write_row((name, at, pct))
    conn.execute(_PROGRESS_SQL)


def _seen_row(i: Instance) -> tuple[Any, ...]:
    stopped = i.state_changed_at
    if i.running or stopped is None or (i.launch_time is not None and stopped < i.launch_time):
        stopped = None
    return (i.instance_id, i.region, i.instance_type, i.name, json.dumps(i.tags, sort_keys=True), i.state,
            i.launch_time, i.platform, i.operating_system, i.tenancy, stopped, i.running, i.lifecycle,
            i.availability_zone, i.account_id)


def write(conn: Any, config: Config, collected: Collected, now: dt.datetime) -> str | None:
    """Write one sync's data in a single transaction (nothing lands when anything fails); no AWS call inside.
    Nothing is deleted: an experiment no longer in the config is marked, a stale price kept (`written` reads
    back what the sync reports).

    `now` is when this sync started reading AWS. One sync writes at a time (advisory lock SYNC_LOCK; waiting
    longer than LOCK_TIMEOUT is one line naming who holds it), and a sync whose read started before the read of
    the last sync that committed writes nothing: the returned line says so (None when written)."""
    from dashgen.rightsizing.collect import refresh_usage
    from dashgen.store.db import SYNC_LOCK, db_errors, lock_timeout
    from dashgen.sync.cloudwatch import store_hourly
    from dashgen.sync.instance_facts import store_facts

    with db_errors("sync: write the pricing store"), lock_timeout(conn, "sync: write the pricing store"):
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SYNC_LOCK,))
        last = conn.execute("SELECT read_at FROM dashgen.sync_state").fetchone()
        if last is not None and now < last[0]:
            return (f"sync: nothing written: another sync read AWS at {last[0].astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}Z,"
                    f" after this one ({now.astimezone(dt.UTC):%H:%M:%S}Z), and committed first")
        conn.execute("INSERT INTO dashgen.sync_state AS s (read_at, committed_at) VALUES (%s, now()) "
                     "ON CONFLICT (singleton) DO UPDATE SET read_at = excluded.read_at, committed_at = now()", (now,))
        store_facts(conn, collected.facts, now)
        conn.execute(
            "CREATE TEMP TABLE _seen (instance_id text, region text, instance_type text, name text, tags jsonb,"
            " state text, launch_time timestamptz, platform text, operating_system text, tenancy text,"
            " stopped_at timestamptz, running bool, lifecycle text, availability_zone text, account_id text)"
            " ON COMMIT DROP"
        )
        with conn.cursor().copy(f"COPY _seen ({', '.join(_SEEN_COLS)}) FROM STDIN") as copy:
            for inst in collected.instances:
                copy.write_row(_seen_row(inst))
        conn.execute("ANALYZE _seen")
        pairs = ([(a.account_id, r) for a, r in collected.pairs] if collected.pairs
                 else [(None, r) for r in collected.regions])  # (a caller that built Collected by hand)
        params = {"now": now, "pair_accounts": [a for a, _ in pairs], "pair_regions": [r for _, r in pairs]}
        touched: set[str] = set()
        for stmt in _SYNC_SQL:
            cur = conn.execute(stmt, params)
            if cur.description:  # the interval statements return the instances whose runs changed
                touched.update(row[0] for row in cur)
        conn.execute("SELECT dashgen.refresh_billing(%s)", (sorted(touched),))
        _write_prices(conn, [*collected.prices, *collected.extra_prices], now)
        with conn.cursor() as cur:
            names = [e.name for e in config.experiments]
            cur.execute(_EXPERIMENT_GONE_SQL, (now, names))
            cur.executemany(_EXPERIMENT_SQL, [
                (e.name, e.tag_key, e.tag_value, e.budget_usd, e.deadline, e.progress_namespace,
                 e.progress_metric, json.dumps(dict(e.progress_dimensions), sort_keys=True)
                 if e.progress_metric else None) for e in config.experiments
            ])
        _write_progress(conn, collected)
        store_hourly(conn, collected.utilisation)
        written_ids = getattr(collected.utilisation, "instance_ids", None)  # a RowSpool knows; a list of rows
        refresh_usage(conn, config, now, written_ids if written_ids is not None
                      else {r.instance_id for r in collected.utilisation})
        _write_volumes(conn, collected, now)
        _write_cost_truth(conn, collected, now)
    return None


@dataclass
class Written:
    """What the store holds after a write, for the sync's report: the stale API prices kept for the keys the API
    did not answer, the experiments no longer configured."""

    stale_prices: dict[PriceKey, dt.datetime] = field(default_factory=dict)
    kept_experiments: list[str] = field(default_factory=list)


def written(conn: Any, collected: Collected) -> Written:
    """Read back (after `write`) the stale prices kept for `collected`'s fallback prices and the experiments no
    longer in the config."""
    from dashgen.store.db import db_errors

    fallback = [p for p in [*collected.prices, *collected.extra_prices] if p.fallback]
    with db_errors("sync: read back the pricing store"):
        stale = {}
        if fallback:
            rows = conn.execute(_PRICES_KEPT_SQL, [[_key(p.key)[i] for p in fallback] for i in range(4)])
            stale = {PriceKey(*row[:4]): row[4] for row in rows}
        return Written(stale, [row[0] for row in conn.execute(_EXPERIMENTS_KEPT_SQL)])


def _price_row(p: Price, now: dt.datetime) -> tuple[Any, ...]:
    return (p.key.region, p.key.instance_type, p.key.operating_system, p.key.tenancy, p.usd_per_hour, p.vcpu,
            p.memory_mib, p.source, p.price_date, now)


def _write_prices(conn: Any, prices: list[Price], now: dt.datetime) -> None:
    """Prices read now are upserted; for a fallback price (the API failed for its key) the last known API price
    is kept and marked stale, the fallback lands only where none is known."""
    fallback = [p for p in prices if p.fallback]
    with conn.cursor() as cur:
        cur.executemany(PRICE_UPSERT_SQL, [_price_row(p, now) for p in prices if not p.fallback])
        cur.executemany(_PRICE_STALE_SQL, [(now, *_key(p.key)) for p in fallback])
        cur.executemany(_PRICE_FALLBACK_SQL, [_price_row(p, now) for p in fallback])


def _key(key: PriceKey) -> tuple[str, str, str, str]:
    return (key.region, key.instance_type, key.operating_system, key.tenancy)


def _write_volumes(conn: Any, collected: Collected, now: dt.datetime) -> None:
    """The EBS volumes of the regions whose volumes were read, and the storage prices (inside write's transaction)."""
    conn.execute("CREATE TEMP TABLE _volumes (volume_id text, region text, volume_type text, size_gib int,"
                 " created_at timestamptz, instance_id text, account_id text) ON COMMIT DROP")
    with conn.cursor().copy(f"COPY _volumes ({', '.join(_VOLUME_COLS)}) FROM STDIN") as copy:
        for v in collected.volumes:
            copy.write_row((v.volume_id, v.region, v.volume_type, v.size_gib, v.created_at, v.instance_id,
                            v.account_id))
    pairs = collected.volume_pairs or [(None, r) for r in collected.volume_regions]  # (a caller without pairs)
    for stmt in _VOLUME_SQL:
        conn.execute(stmt, {"now": now, "pair_accounts": [a for a, _ in pairs], "pair_regions": [r for _, r in pairs]})
    with conn.cursor() as cur:
        cur.executemany(_STORAGE_PRICE_SQL, [(p.key.region, p.key.volume_type, p.usd_per_gb_month, p.source,
                                              p.price_date, now) for p in collected.storage_prices])


_CREDIT_MODE_SQL = """
    UPDATE dashgen.instances i SET credit_mode = m.mode, credit_mode_at = %s
    FROM unnest(%s::text[], %s::text[]) AS m(instance_id, mode)
    WHERE i.instance_id = m.instance_id AND i.credit_mode IS DISTINCT FROM m.mode"""
_CREDIT_PRICE_SQL = """
    INSERT INTO dashgen.credit_prices AS p (region, family, operating_system, usd_per_vcpu_hour, source, price_date,
        fetched_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (region, family, operating_system) DO UPDATE SET usd_per_vcpu_hour = excluded.usd_per_vcpu_hour,
        source = excluded.source, price_date = excluded.price_date, fetched_at = excluded.fetched_at
    WHERE (p.usd_per_vcpu_hour, p.source, p.price_date) IS DISTINCT FROM
          (excluded.usd_per_vcpu_hour, excluded.source, excluded.price_date)
      -- the fallback never replaces a price the API gave (the last known API price is kept)
      AND (excluded.source = 'aws-price-list-api' OR p.source = 'bundled-fallback')"""
_SPOT_PRICE_SQL = """
    INSERT INTO dashgen.spot_prices AS p (availability_zone, instance_type, product_description, at, usd_per_hour,
        region)
    VALUES (%s, %s, %s, %s, %s, %s)
    ON CONFLICT (availability_zone, instance_type, product_description, at) DO UPDATE
        SET usd_per_hour = excluded.usd_per_hour WHERE p.usd_per_hour <> excluded.usd_per_hour"""


def _write_cost_truth(conn: Any, collected: Collected, now: dt.datetime) -> None:
    """Credit modes and prices, Spot prices and billed hours (issue 12), inside write's transaction."""
    modes = sorted(collected.credit_modes.items())
    conn.execute(_CREDIT_MODE_SQL, (now, [k for k, _ in modes], [v for _, v in modes]))
    with conn.cursor() as cur:
        cur.executemany(_CREDIT_PRICE_SQL, [
            (p.key.region, p.key.family, p.key.operating_system, p.usd_per_vcpu_hour, p.source, p.price_date, now)
            for p in collected.credit_prices if p.usd_per_vcpu_hour is not None or p.source != "bundled-fallback"])
        cur.executemany(_SPOT_PRICE_SQL, [(p.availability_zone, p.instance_type, p.product_description, p.at,
                                           p.usd_per_hour, p.region) for p in collected.spot_prices])
    if collected.billed:
        from dashgen.sync.cur import store_billed

        store_billed(conn, collected.billed, now)


def sync(config: Config, *, dsn: str | None = None, regions: list[str] | None = None,
         prices: str | None = None, session: Any = None, now: dt.datetime | None = None,
         retry_mode: str = "standard", pricing: Any = None, cloudwatch: Any = None,
         region_timeout: float | None = None, cur: str | None = None, facts_client: Any = None) -> SyncResult:
    """One sync: migrate the store, read AWS, write everything in one transaction; returns what happened
    (`exit_code`: 0 all synced, 3 partly, 1 no region). `region_timeout` (seconds) overrides the config's.
    `cur` (s3://bucket/prefix): also read the billed cost from AWS's CUR 2.0 Parquet files there (dashgen.sync.cur);
    a CUR that cannot be read stops the sync in one line before anything is written. `pricing`, `cloudwatch` and
    `facts_client` (EC2, for DescribeInstanceTypes) replace the session's clients."""
    from dashgen.store.db import connect, migrate, resolve_dsn, secure_readers

    now = now or dt.datetime.now(dt.UTC)
    mode = prices or config.prices
    if mode not in ("api", "bundled"):
        raise ConfigError(f"--prices: expected 'api' or 'bundled', got {mode!r}")
    if cur:  # a wrong URL is a usage error before anything is read
        from dashgen.sync.cur import parse_s3_url

        parse_s3_url(cur)
    wanted = list(regions or config.regions)
    budgets = region_budgets(config, wanted, region_timeout)
    result = SyncResult(synced_at=now)
    with connect(resolve_dsn(dsn, config)) as conn:
        result.migrations = migrate(conn)
        # A reader's own ALTER ROLE ... SET (and, when its password is known here, ... PASSWORD) lasts until here.
        from dashgen.grafana.provision import READER_PASSWORD_ENV, READER_ROLE

        password = os.environ.get(READER_PASSWORD_ENV)
        result.warnings += secure_readers(conn, {READER_ROLE: password} if password else None)
        try:
            if session is None:
                import boto3

                session = boto3.Session()
            if mode == "api" and pricing is None:  # one Price List client for instance, EBS and candidate prices
                pricing = pricing_client(session, budgets["pricing"])
        except aws_errors() as exc:  # e.g. AWS_PROFILE names no profile: the environment's configuration
            raise ConfigError(f"AWS: {describe(exc)}") from None
        from dashgen.sync.accounts import resolve as resolve_accounts
        from dashgen.sync.cloudwatch import CloudWatchMeter

        # [aws] accounts / organization_role, else the caller's account (its id, when STS tells it)
        accounts = resolve_accounts(config, session, Budget("AWS STS and Organizations", budgets["pricing"].seconds))
        result.warnings += accounts.warnings
        meter = CloudWatchMeter()  # counts every GetMetricData call of the clients made from here on
        meter.attach_session(session)
        accounts.on_session.append(meter.attach_session)  # and of the assumed roles' sessions
        if cloudwatch is not None:
            meter.attach_client(cloudwatch)
        try:
            collected = collect(config, wanted, mode, session, now, retry_mode=retry_mode, pricing=pricing,
                                cloudwatch=cloudwatch, budgets=budgets, progress_since=progress_since(conn, config),
                                accounts=accounts)
            result.failed_regions.update(collected.failed_regions)
            result.warnings += collected.warnings
            for what, line in collected.unsynced:
                result.not_synced(what, line)
            from dashgen.rightsizing.collect import collect_rightsizing

            try:
                reads = collect_rightsizing(conn, config, collected, mode, session, now, pricing=pricing,
                                            cloudwatch=cloudwatch, facts_client=facts_client)
                collected.extra_prices, collected.facts = reads.extra_prices, reads.facts
                result.utilisation_rows += reads.utilisation_rows
                for what, line in reads.unsynced:
                    result.not_synced(what, line)
                result.cloudwatch_calls, result.cloudwatch_metrics = meter.calls, meter.metrics
                result.cloudwatch_datapoints = meter.datapoints
                if cur:
                    from dashgen.sync.aws import client as aws_client
                    from dashgen.sync.cur import read_cur

                    s3 = aws_client(session, "s3", config.default_region, retry_mode=retry_mode)
                    collected.billed, result.cur_files = read_cur(s3, cur)
                    result.billed_rows = len(collected.billed)
                result.skipped = write(conn, config, collected, now)
            finally:
                if hasattr(collected.utilisation, "close"):
                    collected.utilisation.close()
        finally:
            meter.detach(session, cloudwatch)
        after = written(conn, collected)
    result.regions = collected.regions
    result.instances = len(collected.instances)
    result.running = sum(i.running for i in collected.instances)
    result.volumes = len(collected.volumes)
    result.instance_facts = len(collected.facts)
    result.kept_experiments = after.kept_experiments
    for p in collected.prices:
        if p.key in after.stale_prices:
            since = after.stale_prices[p.key].astimezone(dt.UTC).isoformat(timespec="minutes")
            result.stale_prices.append(f"{_label(p.key)} (API price kept, stale since {since})")
            continue
        result.prices[p.source] = result.prices.get(p.source, 0) + 1
        if p.usd_per_hour is None:
            result.unknown_prices.append(_label(p.key))
    known = {p.key for p in collected.storage_prices if p.usd_per_gb_month is not None}
    # (EBS prices not read, with --prices bundled or when the API failed: the store keeps what it had)
    if mode == "api" and "EBS storage prices" not in result.unsynced:
        result.unknown_prices += [f"{k.region} EBS {k.volume_type}" for k in sorted(
            {StorageKey(v.region, v.volume_type) for v in collected.volumes if v.instance_id} - known)]
    result.progress_points = sum(len(v) for v in collected.progress.values())
    return result


def _label(key: PriceKey) -> str:
    return f"{key.region} {key.instance_type} {key.operating_system} {key.tenancy}"


RETRY_FIRST = 30.0  # `sync --every`: seconds before retrying a failed round; doubled at each failure in a row


@dataclass
class Round:
    """One round of `sync --every`: its result, or the one line saying why it failed; the wait before the next."""

    result: SyncResult | None
    error: str | None
    wait: float


def sync_loop(config: Config, every_seconds: float, *, runs: int | None = None,
              sleep: Callable[[float], None] = time.sleep, **options: Any) -> Iterator[Round]:
    """`sync(config, **options)` every `every_seconds` (start to start), forever or `runs` times. A round that
    fails (the store or AWS unreachable, the database dropped mid-round, anything unexpected) is one line and
    the loop goes on, retrying after 30 s, 60 s, ... (never later than the interval). Only a configuration
    error (`ConfigError`, or no DSN at all) stops it."""
    from dashgen.store.db import resolve_dsn

    resolve_dsn(options.get("dsn"), config)  # no database configured: stop now, not at every round
    failures = done = 0
    while runs is None or done < runs:
        started = time.monotonic()
        result: SyncResult | None = None
        error: str | None = None
        try:
            result = sync(config, **options)
        except ConfigError:
            raise
        except DashgenError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a long-running loop outlives any one round's failure
            error = f"unexpected {type(exc).__name__}: {first_line(exc)}"
        done += 1
        failures = failures + 1 if error else 0
        if error:
            wait = min(float(every_seconds), RETRY_FIRST * 2 ** (failures - 1))
        else:
            wait = max(0.0, every_seconds - (time.monotonic() - started))
        last = runs is not None and done >= runs
        yield Round(result, error, 0.0 if last else wait)
        if not last:
            sleep(wait)


@dataclass(frozen=True)
class Forgotten:
    name: str
    progress_points: int
    removed_from_config_at: dt.datetime | None


def forget_experiment(config: Config, name: str, *, dsn: str | None = None) -> Forgotten:
    """`dashgen db forget-experiment NAME`: the one way an experiment (and its stored progress) leaves the
    store. Refused while the config still has it (the next sync would add it back, without its progress)."""
    from dashgen.store.db import connect, db_errors, migrate, resolve_dsn

    if name in {e.name for e in config.experiments}:
        raise DashgenError(f"forget-experiment: {name!r} is still in {config.source} ([[experiments]]): remove it "
                           "there first, or the next sync adds it back")
    with connect(resolve_dsn(dsn, config)) as conn:
        migrate(conn)
        with db_errors(f"forget-experiment {name}"), conn.transaction():
            row = conn.execute("SELECT removed_from_config_at, (SELECT count(*) FROM dashgen.experiment_progress "
                               "WHERE experiment = %s) FROM dashgen.experiments WHERE name = %s FOR UPDATE",
                               (name, name)).fetchone()
            if row is None:
                known = [r[0] for r in conn.execute("SELECT name FROM dashgen.experiments ORDER BY name")]
                raise DashgenError(f"forget-experiment: no experiment {name!r} in the store (known: "
                                   f"{', '.join(known) or 'none'})")
            conn.execute("DELETE FROM dashgen.experiments WHERE name = %s", (name,))  # its progress by cascade
    return Forgotten(name, row[1], row[0])
