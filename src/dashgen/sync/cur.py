"""Billed cost from AWS's own data: CUR 2.0 / Data Exports Parquet files on S3 (`dashgen sync --cur s3://bucket/prefix`).

Every `*.parquet` object under the prefix is read (boto3's `list_objects_v2` paginator, then `get_object`) with
pyarrow, imported only here: `build`, `validate` and `--help` never load it. Columns, as AWS's CUR 2.0 data
dictionary names and types them (https://docs.aws.amazon.com/cur/latest/userguide/table-dictionary-cur2-line-item.html,
and the -savings-plan, -reservation and -pricing pages beside it):

  line_item_resource_id        string     the instance id (exports with INCLUDE_RESOURCES = TRUE)
  line_item_usage_start_date   timestamp  start of the line's usage (UTC); hourly exports: one hour
  line_item_usage_end_date     timestamp
  line_item_line_item_type     string     Usage | SavingsPlanCoveredUsage | DiscountedUsage | SavingsPlanNegation | ...
  line_item_usage_type         string     [REGION-]BoxUsage:<type>, SpotUsage:<type>, DedicatedUsage:<type>,
                                          CPUCredits:<family>, DataTransfer-..., EBS:...
  line_item_unblended_cost     double
  savings_plan_savings_plan_effective_cost  double  (SavingsPlanCoveredUsage: what the Savings Plan made it cost)
  reservation_effective_cost   double     (DiscountedUsage: what the Reserved Instance made it cost)
  pricing_term                 string     OnDemand | Spot | Reserved | ...

Kept: line items of an instance (`i-...`) of type Usage, SavingsPlanCoveredUsage or DiscountedUsage whose usage type
is instance time (BoxUsage, SpotUsage, DedicatedUsage) or surplus CPU credits (CPUCredits): what dashgen estimates.
Data transfer, EBS, fees, taxes and the SavingsPlanNegation lines are left out. Per instance and usage start:
`list_usd` (unblended: the rate card) and `billed_usd` (the effective cost after Savings Plans and RIs).
A file without a needed column, or with a column of another type, stops the sync with one line naming both.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from dashgen.errors import AwsError, ConfigError

KEPT_TYPES = ("Usage", "SavingsPlanCoveredUsage", "DiscountedUsage")
KEPT_USAGE = ("BoxUsage", "SpotUsage", "DedicatedUsage", "CPUCredits")
# column -> the Arrow type families accepted ('string', 'timestamp', 'number')
REQUIRED = {
    "line_item_resource_id": "string",
    "line_item_usage_start_date": "timestamp",
    "line_item_usage_end_date": "timestamp",
    "line_item_line_item_type": "string",
    "line_item_usage_type": "string",
    "line_item_unblended_cost": "number",
}
OPTIONAL = {
    "savings_plan_savings_plan_effective_cost": "number",
    "reservation_effective_cost": "number",
    "pricing_term": "string",
}


class CurError(AwsError):
    """A CUR file dashgen cannot read (names the object and the column)."""


@dataclass
class BilledSpan:
    instance_id: str
    usage_start: dt.datetime
    usage_end: dt.datetime
    list_usd: Decimal = Decimal(0)
    billed_usd: Decimal = Decimal(0)
    line_items: int = 0
    pricing_terms: set[str] = field(default_factory=set)


def parse_s3_url(url: str) -> tuple[str, str]:
    """'s3://bucket/prefix' -> ('bucket', 'prefix')."""
    if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
        raise ConfigError(f"--cur: expected s3://bucket/prefix, got {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    return bucket, prefix


def _kind(arrow_type: Any) -> str:
    import pyarrow as pa

    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type) or pa.types.is_integer(arrow_type):
        return "number"
    return str(arrow_type)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=value.tzinfo or dt.UTC).astimezone(dt.UTC)


def _usage_kind(usage_type: str) -> str:
    """'USE2-BoxUsage:t4g.large' -> 'BoxUsage'; 'CPUCredits:t4g' -> 'CPUCredits'."""
    return usage_type.split(":", 1)[0].rsplit("-", 1)[-1]


def read_parquet(data: bytes, name: str) -> list[dict[str, Any]]:
    """The kept line items of one Parquet file, as dicts of the needed columns."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        pfile = pq.ParquetFile(io.BytesIO(data))
        schema = pfile.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise CurError(f"CUR file {name}: not a Parquet file ({str(exc).splitlines()[0]})") from None
    columns = []
    for column, kind in {**REQUIRED, **OPTIONAL}.items():
        if schema.get_field_index(column) < 0:
            if column in REQUIRED:
                raise CurError(f"CUR file {name}: no column {column} (a CUR 2.0 export with resource ids is needed)")
            continue
        found = _kind(schema.field(column).type)
        if found != kind:
            raise CurError(f"CUR file {name}: column {column} is {schema.field(column).type}, expected {kind}")
        columns.append(column)
    table = pfile.read(columns=columns)
    keep = pc.and_(
        pc.starts_with(pc.fill_null(table["line_item_resource_id"], ""), "i-"),
        pc.is_in(table["line_item_line_item_type"], value_set=pa.array(KEPT_TYPES)),
    )
    rows = table.filter(pc.fill_null(keep, False)).to_pylist()
    return [r for r in rows if _usage_kind(r["line_item_usage_type"] or "") in KEPT_USAGE]


def effective_cost(row: dict[str, Any]) -> float:
    """What the line cost after Savings Plans / Reserved Instances (the unblended cost when neither applies)."""
    kind = row["line_item_line_item_type"]
    if kind == "SavingsPlanCoveredUsage" and row.get("savings_plan_savings_plan_effective_cost") is not None:
        return row["savings_plan_savings_plan_effective_cost"]
    if kind == "DiscountedUsage" and row.get("reservation_effective_cost") is not None:
        return row["reservation_effective_cost"]
    return row["line_item_unblended_cost"] or 0.0


def add_into(out: dict[tuple[str, dt.datetime], BilledSpan], rows: Iterable[dict[str, Any]], name: str) -> None:
    for row in rows:
        start, end = row["line_item_usage_start_date"], row["line_item_usage_end_date"]
        if start is None or end is None or end <= start:
            raise CurError(f"CUR file {name}: line item of {row['line_item_resource_id']} has usage dates "
                           f"{start} to {end}")
        start, end = _utc(start), _utc(end)
        span = out.setdefault((row["line_item_resource_id"], start),
                               BilledSpan(row["line_item_resource_id"], start, end))
        span.usage_end = max(span.usage_end, end)
        span.list_usd += Decimal(str(row["line_item_unblended_cost"] or 0))
        span.billed_usd += Decimal(str(effective_cost(row)))
        span.line_items += 1
        if row.get("pricing_term"):
            span.pricing_terms.add(row["pricing_term"])


def read_cur(s3: Any, url: str) -> tuple[list[BilledSpan], int]:
    """Every kept line item under `url`, summed per instance and usage start; and the number of files read."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = parse_s3_url(url)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ConfigError("--cur needs pyarrow: pip install 'dashgen[cur]'") from None
    spans: dict[tuple[str, dt.datetime], BilledSpan] = {}
    files = 0
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in sorted(page.get("Contents", []), key=lambda o: o["Key"]):
                if not obj["Key"].endswith(".parquet"):
                    continue
                data = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                name = f"s3://{bucket}/{obj['Key']}"
                add_into(spans, read_parquet(data, name), name)
                files += 1
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise AwsError(f"--cur {url}: {err.get('Code', '?')}: {err.get('Message', '')}".rstrip(": ")) from None
    except BotoCoreError as exc:
        raise AwsError(f"--cur {url}: {exc}") from None
    return [spans[k] for k in sorted(spans)], files


_UPSERT = """
    INSERT INTO dashgen.billed_costs AS b (instance_id, usage_start, usage_end, list_usd, billed_usd, line_items,
        pricing_terms, loaded_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (instance_id, usage_start) DO UPDATE SET usage_end = excluded.usage_end,
        list_usd = excluded.list_usd, billed_usd = excluded.billed_usd, line_items = excluded.line_items,
        pricing_terms = excluded.pricing_terms, loaded_at = excluded.loaded_at
    WHERE (b.usage_end, b.list_usd, b.billed_usd, b.line_items, b.pricing_terms) IS DISTINCT FROM
          (excluded.usage_end, excluded.list_usd, excluded.billed_usd, excluded.line_items, excluded.pricing_terms)"""


def store_billed(conn: Any, spans: Sequence[BilledSpan], now: dt.datetime) -> None:
    """Upsert (a later delivery of the same hour replaces it; unchanged rows are not rewritten)."""
    with conn.cursor() as cur:
        cur.executemany(_UPSERT, [(s.instance_id, s.usage_start, s.usage_end, s.list_usd, s.billed_usd,
                                   s.line_items, ",".join(sorted(s.pricing_terms)) or None, now) for s in spans])
