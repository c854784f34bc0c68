"""Configuration: the optional `dashgen.toml`, its bundled defaults and its validation.

One source of truth for the facts every other module shares: the Grafana folder, the datasource uids the
panels and the provisioning files use, regions, thresholds, refresh, the tags used to select instances,
the pricing store settings and the experiments (budget, deadline, progress metric).
Secrets never live here: the DSN may name a host and user, the password comes from the environment.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import reprlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from dashgen.errors import ConfigError
from dashgen.redact import dsn_passwords

DEFAULT_CONFIG_NAME = "dashgen.toml"
# The Grafana versions dashgen ships schemas for (`src/dashgen/grafana/schemas/grafana-<version>/`); the first is the
# default, the one docker-compose.yml pins.
GRAFANA_VERSIONS = ("12.3", "13")

_UID_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_DURATION_RE = re.compile(r"^[0-9]+[smhd]$")
_REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$")
_BARE_KEY_RE = re.compile(r"^[A-Za-z0-9_%-]+$")
# An IAM role ARN: arn:<partition>:iam::<12-digit account>:role/<optional path/><name> (IAM's roleNameType:
# 1-64 of [\w+=,.@-]; a path is printable ASCII between slashes). botocore's STS model bounds RoleArn to 20-2048.
ROLE_ARN_RE = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role/(?:[\x21-\x7e]*/)?[\w+=,.@-]{1,64}$")
ROLE_NAME_RE = re.compile(r"^[\w+=,.@-]{1,64}$")  # IAM roleNameType
SESSION_NAME_RE = re.compile(r"^[\w+=,.@-]{2,64}$")  # STS roleSessionNameType
EXTERNAL_ID_RE = re.compile(r"^[\w+=,.@:/-]{2,1224}$")  # STS externalIdType
_SHOW = reprlib.Repr()  # (keyword arguments only from Python 3.12)
_SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxdict, _SHOW.maxstring, _SHOW.maxother = 2, 4, 4, 60, 60


def _show(value: Any) -> str:
    """`value` for a one-line message: short, and safe however deeply a TOML value is nested."""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()  # as TOML writes it
    text = _SHOW.repr(value)  # (escapes can make it longer than its limits suggest: cut what is left)
    return text if len(text) <= 160 else text[:157] + "..."


def _key(key: str) -> str:
    """A TOML key as the user wrote it: bare when it can be, else quoted (never a raw line break)."""
    return key if _BARE_KEY_RE.match(key) else _show(key)


def _finite(v: Any) -> bool:
    """A real number (not a bool) that JSON can carry: no inf, nan, or integer too large for a float."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


@dataclass(frozen=True)
class Experiment:
    """A set of instances (by tag) with a budget and a deadline, optionally a 0–100 % progress metric."""

    name: str
    tag_key: str
    tag_value: str
    budget_usd: float
    deadline: dt.datetime
    progress_namespace: str | None = None
    progress_metric: str | None = None
    progress_dimensions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Config:
    """Everything dashgen reads from `dashgen.toml`, with the bundled defaults filled in."""

    source: str = "<defaults>"
    folder_title: str = "dashgen"
    folder_uid: str = "dashgen"
    managed_tag: str = "dashgen"
    folder_parent_uid: str | None = None  # nested folders: the existing folder dashgen's folder goes under
    grafana_version: str = GRAFANA_VERSIONS[0]  # the Grafana whose schemas `validate` and `build` check against
    cloudwatch_uid: str = "dashgen-cloudwatch"
    pricing_uid: str = "dashgen-pricing"
    default_region: str = "us-east-1"
    regions: tuple[str, ...] = ("us-east-1",)
    region_timeout: str = "5m"  # `sync`: the most one region's AWS reads (and the Price List API's) may take
    accounts: tuple[str, ...] = ()  # `sync`: role ARNs to assume, one per account (none: the caller's account)
    organization_role: str | None = None  # `sync`: this role in every ACTIVE account of the AWS Organization
    external_id: str | None = None  # sts:AssumeRole ExternalId (when the roles' trust policies require one)
    session_name: str = "dashgen-sync"  # sts:AssumeRole RoleSessionName
    concurrency: int = 8  # `sync`: (account, region) pairs read at once
    refresh: str = "5m"
    time_from: str = "now-24h"
    instance_tags: tuple[str, ...] = ("experiment", "team", "project")
    thresholds: dict[str, float] = field(default_factory=dict)
    dsn: str | None = None
    prices: str = "api"
    sync_every: str = "15m"
    lookback_days: int = 14
    headroom_pct: float = 20.0
    cpu_percentile: float = 99.5  # of the 5-minute CPU maxima (Compute Optimizer: P99.5, P95 or P90)
    experiments: tuple[Experiment, ...] = ()
    build_sources: str = "dashboards/*.dashboard.py"  # the user's own definitions (see definitions/__init__.py)
    build_builtins: tuple[str, ...] = ("performance", "rightsizing", "cost")
    build_templates: str | None = None  # a folder of jinja2 templates overriding the shipped ones

    def threshold(self, metric: str) -> float | None:
        """The threshold for `metric`: the configured one, else the catalogue default."""
        if metric in self.thresholds:
            return self.thresholds[metric]
        from dashgen.catalogue import METRICS_BY_NAME

        return METRICS_BY_NAME[metric].threshold

    @property
    def cpu_threshold(self) -> float:
        value = self.threshold("CPUUtilization")
        assert value is not None
        return value


class _Reader:
    """Reads one TOML table, naming the file and key in every error."""

    def __init__(self, source: str, table: str, data: Any) -> None:
        self.source, self.table = source, table
        if not isinstance(data, dict):
            self.fail("", "a table", data)
        self.data: dict[str, Any] = data
        self.seen: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self.table}.{_key(key)}" if self.table and key else (self.table or _key(key))

    def fail(self, key: str, expected: str, got: Any) -> NoReturn:
        raise ConfigError(f"{self.source}: {self.where(key)}: expected {expected}, got {_show(got)}")

    def get(self, key: str, default: Any, kind: str) -> Any:
        self.seen.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        checks = {
            "str": (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string"),
            "uid": (lambda v: isinstance(v, str) and bool(_UID_RE.match(v)), "a uid of 1-40 letters, digits, - or _"),
            "duration": (lambda v: isinstance(v, str) and bool(_DURATION_RE.match(v)), "a duration like '5m' or '1h'"),
            "region": (lambda v: isinstance(v, str) and bool(_REGION_RE.match(v)), "an AWS region like 'us-east-1'"),
            "regions": (
                lambda v: isinstance(v, list) and v and all(isinstance(r, str) and _REGION_RE.match(r) for r in v),
                "a non-empty list of AWS regions like ['us-east-1']",
            ),
            "strlist": (
                lambda v: isinstance(v, list) and all(isinstance(s, str) and s.strip() for s in v),
                "a list of non-empty strings",
            ),
            "tagkeys": (
                lambda v: isinstance(v, list) and v and all(isinstance(s, str) and s for s in v)
                and len(set(v)) == len(v),
                "a non-empty list of distinct tag keys like ['experiment', 'team']",
            ),
            "number": (lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
            "percent": (lambda v: _finite(v) and 0 <= v <= 100, "a percentage from 0 to 100"),
            "cpu_percent": (
                lambda v: _finite(v) and 0 < v <= 100,
                "a percentage above 0 and at most 100 (at 0 every instance would be 'right-sized')",
            ),
            "headroom": (
                lambda v: _finite(v) and 0 <= v < 100,
                "a percentage from 0 to less than 100 (100 % headroom leaves no CPU to size for)",
            ),
            "cpu_percentile": (
                lambda v: _finite(v) and 50 <= v <= 100,
                "a percentile from 50 to 100 (Compute Optimizer offers 90, 95 and 99.5)",
            ),
            "posint": (
                lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 455,
                "a whole number of days from 1 to 455",
            ),
            "prices": (lambda v: v in ("api", "bundled"), "'api' or 'bundled'"),
            "grafana": (lambda v: v in GRAFANA_VERSIONS, " or ".join(f"'{v}'" for v in GRAFANA_VERSIONS)),
        }
        ok, expected = checks[kind]
        if not ok(value):
            self.fail(key, expected, value)
        return value

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            known = ", ".join(sorted(self.seen))
            self.fail(unknown[0], f"one of the known keys ({known})", unknown[0])


def _instance_tags(reader: _Reader, default: tuple[str, ...]) -> tuple[str, ...]:
    """`dashboards.instance_tags`: the options of every dashboard's "Tag" custom variable."""
    from dashgen.grafana.text import custom_option_problem

    keys = reader.get("instance_tags", list(default), "tagkeys")
    for key in keys:
        problem = custom_option_problem(key)
        if problem:
            reader.fail("instance_tags", f"tag keys a Grafana custom variable can list ({problem})", key)
    return tuple(keys)


def _deadline(reader: _Reader, key: str) -> dt.datetime:
    reader.seen.add(key)
    value = reader.data.get(key)
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime.combine(value, dt.time())
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            reader.fail(key, "an ISO date or datetime like 2026-12-31T18:00:00Z", value)
    else:
        reader.fail(key, "an ISO date or datetime like 2026-12-31T18:00:00Z", value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:
        reader.fail(key, "a date between years 1 and 9999 in UTC", value)


def _experiment(source: str, index: int, data: Any) -> Experiment:
    r = _Reader(source, f"experiments[{index}]", data)
    name = r.get("name", None, "str")
    if name is None:
        r.fail("name", "a non-empty string", None)
    tag_key = r.get("tag_key", "experiment", "str")
    tag_value = r.get("tag_value", name, "str")
    budget = r.get("budget_usd", None, "number")
    if budget is None:
        r.fail("budget_usd", "a number >= 0 (USD)", None)
    if "deadline" not in r.data:
        r.fail("deadline", "an ISO date or datetime like 2026-12-31T18:00:00Z", None)
    deadline = _deadline(r, "deadline")
    progress = r.get("progress", None, "str") if not isinstance(r.data.get("progress"), dict) else None
    dims: tuple[tuple[str, str], ...] = ()
    namespace = metric = None
    if isinstance(r.data.get("progress"), dict):
        r.seen.add("progress")
        p = _Reader(source, f"experiments[{index}].progress", r.data["progress"])
        namespace = p.get("namespace", None, "str")
        metric = p.get("metric_name", None, "str")
        raw_dims = p.data.get("dimensions", {})
        p.seen.add("dimensions")
        if not isinstance(raw_dims, dict) or not all(isinstance(v, str) for v in raw_dims.values()):
            p.fail("dimensions", "a table of string values", raw_dims)
        dims = tuple(sorted(raw_dims.items()))
        if namespace is None or metric is None:
            p.fail("namespace" if namespace is None else "metric_name", "a non-empty string", None)
        p.done()
    elif progress is not None:
        r.fail("progress", "a table with namespace, metric_name and dimensions", progress)
    r.done()
    return Experiment(
        name=name,
        tag_key=tag_key,
        tag_value=tag_value,
        budget_usd=float(budget),
        deadline=deadline,
        progress_namespace=namespace,
        progress_metric=metric,
        progress_dimensions=dims,
    )


def parse_config(data: dict[str, Any], source: str) -> Config:
    """Turn parsed TOML into a `Config`, or raise `ConfigError` naming the key at fault."""
    from dashgen.catalogue import METRICS_BY_NAME

    top = _Reader(source, "", data)
    d = Config()
    tables: dict[str, _Reader] = {}
    for name in ("grafana", "datasources", "aws", "dashboards", "thresholds", "pricing", "rightsizing", "build"):
        top.seen.add(name)
        tables[name] = _Reader(source, name, data.get(name, {}))
    top.seen.add("experiments")
    g, ds, aws, dash = tables["grafana"], tables["datasources"], tables["aws"], tables["dashboards"]
    pricing, rs = tables["pricing"], tables["rightsizing"]

    thresholds: dict[str, float] = {}
    th = tables["thresholds"]
    for metric in th.data:
        if metric not in METRICS_BY_NAME:
            th.fail(metric, "an AWS/EC2 metric name from the catalogue (see `dashgen metrics`)", metric)
        kind = "number" if METRICS_BY_NAME[metric].unit != "percent" else "percent"
        kind = "cpu_percent" if metric == "CPUUtilization" else kind
        thresholds[metric] = float(th.get(metric, None, kind))

    default_region = aws.get("default_region", d.default_region, "region")
    regions = tuple(aws.get("regions", [default_region], "regions"))
    account_keys = _accounts_keys(aws, d)
    experiments_raw = data.get("experiments", [])
    if not isinstance(experiments_raw, list):
        top.fail("experiments", "an array of tables ([[experiments]])", experiments_raw)
    experiments = tuple(_experiment(source, i, e) for i, e in enumerate(experiments_raw))
    names = [e.name for e in experiments]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"{source}: experiments: expected unique names, got {dup!r} twice")

    dsn = pricing.get("dsn", None, "str")
    if dsn is not None and dsn_passwords(dsn):  # URI user:password@, ?password=, keyword password=
        raise ConfigError(
            f"{source}: pricing.dsn: expected a DSN without a password (use PGPASSWORD or ~/.pgpass), "
            "got a DSN with one"
        )
    cfg = Config(
        source=source,
        folder_title=g.get("folder_title", d.folder_title, "str"),
        folder_uid=g.get("folder_uid", d.folder_uid, "uid"),
        managed_tag=g.get("managed_tag", d.managed_tag, "str"),
        folder_parent_uid=g.get("folder_parent_uid", None, "uid"),
        grafana_version=g.get("version", d.grafana_version, "grafana"),
        cloudwatch_uid=ds.get("cloudwatch_uid", d.cloudwatch_uid, "uid"),
        pricing_uid=ds.get("pricing_uid", d.pricing_uid, "uid"),
        default_region=default_region,
        regions=regions,
        region_timeout=aws.get("region_timeout", d.region_timeout, "duration"),
        **account_keys,
        refresh=dash.get("refresh", d.refresh, "duration"),
        time_from=dash.get("time_from", d.time_from, "str"),
        instance_tags=_instance_tags(dash, d.instance_tags),
        thresholds=thresholds,
        dsn=dsn,
        prices=pricing.get("prices", d.prices, "prices"),
        sync_every=pricing.get("every", d.sync_every, "duration"),
        lookback_days=pricing.get("lookback_days", d.lookback_days, "posint"),
        headroom_pct=float(rs.get("headroom_pct", d.headroom_pct, "headroom")),
        cpu_percentile=float(rs.get("cpu_percentile", d.cpu_percentile, "cpu_percentile")),
        experiments=experiments,
        **_build_table(tables["build"], d),
    )
    for reader in (*tables.values(), top):
        reader.done()
    return cfg


def _accounts_keys(aws: _Reader, d: Config) -> dict[str, Any]:
    """`[aws] accounts`, `organization_role`, `external_id`, `session_name`, `concurrency` (dashgen.sync.accounts):
    each value in the shape botocore's STS and IAM models give it, so a typo is one line here, not an AWS error per
    (account, region) pair. The external id is never echoed."""
    aws.seen.update({"accounts", "organization_role", "external_id", "session_name", "concurrency"})
    arns = aws.data.get("accounts", [])
    if not isinstance(arns, list):
        aws.fail("accounts", "a list of IAM role ARNs like ['arn:aws:iam::111111111111:role/dashgen-sync']", arns)
    seen: dict[str, str] = {}
    for arn in arns:
        match = ROLE_ARN_RE.match(arn) if isinstance(arn, str) and 20 <= len(arn) <= 2048 else None
        if match is None:
            aws.fail("accounts", "IAM role ARNs like 'arn:aws:iam::111111111111:role/dashgen-sync' (STS RoleArn: "
                     "20-2048 characters)", arn)
        if seen.get(match.group(2), arn) != arn:
            aws.fail("accounts", f"one role per account (account {match.group(2)} is listed twice)", arn)
        seen[match.group(2)] = arn
    role = aws.data.get("organization_role")
    if role is not None and not (isinstance(role, str) and ROLE_NAME_RE.match(role)):
        aws.fail("organization_role", "an IAM role name (1-64 letters, digits and +=,.@_-), assumed in every "
                 "account of the organization", role)
    external = aws.data.get("external_id")
    if external is not None and not (isinstance(external, str) and EXTERNAL_ID_RE.match(external)):
        shown = f"a value of {len(external)} characters" if isinstance(external, str) else type(external).__name__
        raise ConfigError(f"{aws.source}: {aws.where('external_id')}: expected 2-1224 letters, digits and "
                          f"+=,.@:/_- (STS ExternalId), got {shown}")
    name = aws.data.get("session_name", d.session_name)
    if not (isinstance(name, str) and SESSION_NAME_RE.match(name)):
        aws.fail("session_name", "2-64 letters, digits and +=,.@_- (STS RoleSessionName)", name)
    concurrency = aws.data.get("concurrency", d.concurrency)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 64:
        aws.fail("concurrency", "a whole number from 1 to 64 ((account, region) pairs read at once)", concurrency)
    if external is not None and not arns and not role:
        raise ConfigError(f"{aws.source}: {aws.where('external_id')}: expected aws.accounts or "
                          "aws.organization_role beside it (it is sent with AssumeRole), got neither")
    return {"accounts": tuple(arns), "organization_role": role, "external_id": external, "session_name": name,
            "concurrency": concurrency}


def _build_table(b: _Reader, d: Config) -> dict[str, Any]:
    sources = b.get("sources", d.build_sources, "str")
    builtins = b.get("builtins", list(d.build_builtins), "strlist")
    for name in builtins:
        if name not in d.build_builtins:
            b.fail("builtins", f"a list of built-in dashboards from {list(d.build_builtins)}", name)
    if len(set(builtins)) != len(builtins):
        b.fail("builtins", "a list without repeats", builtins)
    return {"build_sources": sources, "build_builtins": tuple(builtins),
            "build_templates": b.get("templates", None, "str")}


def load_config(path: Path | str | None = None) -> Config:
    """Load `path`, or `./dashgen.toml` when it exists, else the bundled defaults."""
    if path is None:
        candidate = Path(DEFAULT_CONFIG_NAME)
        if not candidate.exists():
            return Config()
        path = candidate
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: arrays or tables nested too deeply") from None
    return parse_config(data, str(path))


SAMPLE_CONFIG = """\
# dashgen.toml: every key is optional; the values shown are the bundled defaults.

[grafana]
# The folder dashgen's dashboards go into (created by `dashgen push`, used by provisioning).
folder_title = "dashgen"
folder_uid = "dashgen"
# Tag that marks a dashboard as managed by dashgen (push only touches these).
managed_tag = "dashgen"
# With nested folders: uid of an existing folder to create dashgen's folder under (push checks it exists).
# folder_parent_uid = "platform"
# The Grafana the dashboards target: `validate` and `build` check them against its schemas ("12.3" or "13").
version = "12.3"

[datasources]
# uids of the Grafana datasources the panels query; `dashgen provision` writes them with these uids.
cloudwatch_uid = "dashgen-cloudwatch"
pricing_uid = "dashgen-pricing"

[aws]
# The dashboards' default Region, where the experiments' progress metrics and the CUR files are read; `regions`
# defaults to it.
default_region = "us-east-1"
# Regions `dashgen sync` reads the EC2 inventory and prices from.
regions = ["us-east-1"]
# The most time one region's AWS reads may take in a sync, retries included (the Price List API has as much):
# past it the region is reported as not synced and the others still land.
region_timeout = "5m"
# Several accounts: IAM roles to assume (sts:AssumeRole with the caller's credentials), one per account; every
# (account, region) pair is read, `concurrency` at once. None listed: the caller's own account.
# accounts = ["arn:aws:iam::111111111111:role/dashgen-sync", "arn:aws:iam::222222222222:role/dashgen-sync"]
# Or (and) this role in every ACTIVE account of the AWS Organization (organizations:ListAccounts).
# organization_role = "dashgen-sync"
# ExternalId sent with AssumeRole, when the roles' trust policies require sts:ExternalId (never printed).
# external_id = "team-42:dashgen"
# RoleSessionName of the assumed roles (CloudTrail shows it).
# session_name = "dashgen-sync"
# (account, region) pairs read at once (1-64).
concurrency = 8

[dashboards]
refresh = "5m"  # how often Grafana refreshes the dashboards
time_from = "now-24h"  # the default time range: from this to now
# Tag keys offered by the "tag" filter of every dashboard (instances are also filterable by Name).
instance_tags = ["experiment", "team", "project"]

[thresholds]
# Per-metric thresholds, overriding the catalogue defaults (`dashgen metrics` lists them).
CPUUtilization = 80
# "EBSIOBalance%" = 20

[pricing]
# PostgreSQL DSN of the pricing store (or DASHGEN_DSN). Never put the password here: use PGPASSWORD.
# dsn = "postgresql://dashgen@localhost:5432/dashgen"
# Where prices come from: "api" (AWS Price List API) or "bundled" (the us-east-1 snapshot shipped with dashgen).
prices = "api"
# Interval of `dashgen sync --loop` (`--every` overrides it).
every = "15m"
# Days of CloudWatch utilisation kept for rightsizing (Compute Optimizer uses 14).
lookback_days = 14

[rightsizing]
# Headroom kept under the CPU threshold when recommending a size (Compute Optimizer's default is 20%).
headroom_pct = 20
# Percentile of the 5-minute CPU maxima (and of the hourly peaks of memory, network, EBS) sized for: 99.5 as
# Compute Optimizer (which also offers 95 and 90).
cpu_percentile = 99.5

[build]
# Your own dashboard definitions (Python files with build(config)), built beside the built-in ones.
sources = "dashboards/*.dashboard.py"
# The built-in dashboards to build (remove one to switch it off).
builtins = ["performance", "rightsizing", "cost"]
# A folder of jinja2 templates overriding the shipped ones (preview, diff --format markdown).
# templates = "dashgen-templates"

# One block per experiment: the instances tagged tag_key=tag_value, their budget and deadline.
# [[experiments]]
# name = "t4g-sizing"  # required, unique
# tag_key = "experiment"  # default "experiment"
# tag_value = "t4g-sizing"  # default: the name
# budget_usd = 50  # required: USD
# deadline = 2026-12-31T18:00:00Z  # required: a TOML date-time or date
# [experiments.progress]          # optional: a CloudWatch metric reporting 0-100 % progress
# namespace = "Training"  # its CloudWatch namespace
# metric_name = "Progress"  # its metric name
# dimensions = { Experiment = "t4g-sizing" }  # its dimensions (per instance, sync adds InstanceId)
"""


def write_sample_config(path: Path, *, force: bool = False) -> None:
    """`dashgen init`: write the commented sample config (refuses to overwrite unless `force`)."""
    from dashgen.fsutil import atomic_write_text

    if path.exists() and not force:
        raise ConfigError(f"{path}: already exists (use --force to overwrite)")
    atomic_write_text(path, SAMPLE_CONFIG)
