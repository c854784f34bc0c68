"""The `GetMetricData` requests Grafana sends for a dashboard's CloudWatch targets, and their check against AWS.

A model of what Grafana does, read from its source, so that a test can see the request AWS would get:

Frontend, grafana/grafana-cloudwatch-datasource at commit 9e3235ae747f308eae7ebee6965305e144ee4b3f:
- `src/utils/utils.ts` `filterMetricsQuery`: a builder query needs region, namespace, metric name and
  statistic; a code query an expression; a Metrics Insights query a `sqlExpression`; the rest is not sent.
- `src/query-runner/CloudWatchMetricsQueryRunner.ts` `replaceMetricQueryVars`: region, statistic, id and
  expression are interpolated with the default format, `sqlExpression` with `raw`, dimensions by
  `convertDimensionFormat` (`src/query-runner/CloudWatchRequest.ts`): a dimension value that is a
  multi-value query/custom variable is interpolated with the `pipe` format and split on `|`, anything else is
  one value.
Scenes (the dashboard runtime), grafana/scenes at commit ac1dec6d5bb5607fadde0b5561dfad148ff70c4c,
`packages/scenes/src/variables/variants/MultiValueVariable.ts`: a variable whose query returns no option
takes the All value when it has `includeAll`; the All value is the custom `allValue`, inserted as is by every
format (`CustomAllValue.formatter`), else the list of every option; `interpolation/formatRegistry.ts`: `raw`
is `String(value)` (a list joins with `,`), `pipe` joins with `|`.
Backend, the same datasource commit:
- `pkg/cloudwatch/models/cloudwatch_query.go` `ParseMetricDataQueries` / `validateAndSetDefaults`: a
  statistic is required; `period` "auto" or "" is computed from the time range; dimension values must be a
  string or a non-empty list; `Id` is `query` + refId when the refId matches `^[a-z][a-zA-Z0-9_]*$`, else
  `query` + a UUID without dashes; `matchExact` defaults to true. `GetGetMetricDataAPIMode`: builder + search
  is an inferred SEARCH when `IsInferredSearchExpression` (not matchExact, or a dimension with several values
  or `*`), else a MetricStat; code + search is a math expression; Insights is a SQL expression.
- `pkg/cloudwatch/metric_data_query_builder.go` `buildMetricDataQuery` / `buildSearchExpression`: the SEARCH
  text, value quoting (`escapeQuotes`), the `(a OR b)` list, `REMOVE_EMPTY(SEARCH(...))`; a MetricStat takes
  the first value of each dimension. Cross-account observability (a monitoring account, the
  `cloudWatchCrossAccountQuerying` feature): the query's `accountId` becomes the MetricStat's `AccountId` or the
  search term `:aws.AccountId="<id>"`; a Metrics Insights query has no such field: its WHERE names the account
  (`AWS.AccountId = '<id>'`, as `src/language/cloudwatch-sql/SQLGenerator.ts` `appendAccountId` writes it).
- `pkg/cloudwatch/time_series_query.go`: one `GetMetricData` call per region and time range, holding every
  query of the panel; `pkg/cloudwatch/metric_data_input_builder.go` sets StartTime, EndTime, ScanBy.

The request is then checked against botocore's CloudWatch service model, loaded with `botocore.loaders`:
its input shape (required members, lengths: `MetricExpression` max, `DimensionValue` min...) through
botocore's own `ParamValidator` and the model's `max` lengths (which that validator leaves to the server),
plus the rules the model states only in its documentation (the `Id` characters, the number of queries in one
call), read from that documentation text, and AWS's one Metrics Insights query per call ("Metrics Insights
quotas" in the CloudWatch user guide).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

ALL = "$__all"
_VALID_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")  # cloudwatch_query.go validMetricDataID


# ---------------------------------------------------------------- variables as scenes holds them

@dataclass(frozen=True)
class Variable:
    """A dashboard variable's state: its chosen value(s), its options, its type and All settings."""

    name: str
    type: str
    value: str | list[str]
    options: tuple[str, ...] = ()
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None

    def current(self) -> str | list[str]:
        """scenes MultiValueVariable: no option and includeAll -> All."""
        if not self.options and self.include_all and self.type == "query":
            return ALL
        return self.value

    def is_all(self) -> bool:
        v = self.current()
        return v == ALL or v == [ALL]

    def formatted(self, fmt: str) -> str:
        """The text scenes inserts for this variable in `fmt` (raw, pipe, sqlstring)."""
        if self.is_all():
            if self.all_value is not None:
                return self.all_value  # CustomAllValue: as is, whatever the format
            values: str | list[str] = list(self.options)
        else:
            values = self.current()
        if fmt == "sqlstring":
            from grafana_sql import sqlstring  # the scenes sqlStringFormatter, one model of it

            return sqlstring(values)
        if isinstance(values, str):
            return values
        if fmt == "pipe":
            return "|".join(values)
        return ",".join(values)  # raw: String(array)


def interpolate(text: str, variables: Mapping[str, Variable], fmt: str = "raw") -> str:
    """scenes sceneInterpolator: `$var`, `${var}`, `${var:format}`; unknown names stay as written."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        var = variables.get(name)
        if var is None:
            return m.group(0)
        return var.formatted(m.group(2) or fmt)

    return re.sub(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)", sub, text)


# ---------------------------------------------------------------- frontend

def _expand_dimension(value: str | list[str], variables: Mapping[str, Variable]) -> list[str] | None:
    """CloudWatchRequest.convertDimensionFormat / expandVariableToArray."""
    if isinstance(value, list):
        return value
    if not value:
        return None
    m = re.fullmatch(r"\$\{?(\w+)(?::\w+)?\}?", value)
    var = variables.get(m.group(1)) if m else None
    if var is not None:
        if var.type in ("custom", "query", "datasource") and var.multi:
            return interpolate(value, variables, "pipe").split("|")
        return [interpolate(value, variables)]
    return [value]


def frontend_query(target: Mapping[str, Any], variables: Mapping[str, Variable]) -> dict[str, Any] | None:
    """The target as the frontend posts it to /api/ds/query, or None when filterMetricsQuery drops it."""
    q = dict(target)
    q["region"] = interpolate(q.get("region") or "default", variables)
    q["dimensions"] = {interpolate(k, variables): _expand_dimension(v, variables)
                       for k, v in (q.get("dimensions") or {}).items()}
    q["statistic"] = interpolate(q.get("statistic") or "", variables)
    q["period"] = interpolate(str(q.get("period") or ""), variables)
    q["id"] = interpolate(q.get("id") or "", variables)
    q["expression"] = interpolate(q.get("expression") or "", variables)
    q["sqlExpression"] = interpolate(q.get("sqlExpression") or "", variables, "raw")
    if q.get("accountId"):  # CloudWatchMetricsQueryRunner.ts replaceMetricQueryVars: `if (query.accountId)`
        q["accountId"] = interpolate(q["accountId"], variables)
    kind, mode = q.get("metricQueryType", 0), q.get("metricEditorMode", 0)
    if not q["region"]:
        return None
    if kind == 0 and mode == 0:
        keep = bool(q.get("namespace") and q.get("metricName") and q["statistic"])
    elif kind == 0 and mode == 1:
        keep = bool(q["expression"])
    elif kind == 1:
        keep = bool(q["sqlExpression"])
    else:
        keep = False
    return q if keep else None


# ---------------------------------------------------------------- backend

class GrafanaQueryError(ValueError):
    """What Grafana's backend refuses before calling AWS (shown as the panel's error)."""


def _retained_periods(since: dt.timedelta) -> list[int]:
    if since > dt.timedelta(days=455):
        return [21600, 86400]
    if since > dt.timedelta(days=63):
        return [3600, 21600, 86400]
    if since > dt.timedelta(days=15):
        return [300, 900, 3600, 21600, 86400]
    return [60, 300, 900, 3600, 21600, 86400]


def _period(text: str, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> int:
    if text.lower() in ("auto", ""):
        points = math.ceil((end - start).total_seconds() / 2000)
        periods = _retained_periods(now - start)
        return next((p for p in periods if points <= p), periods[-1])
    if text.isdigit():
        return int(text)
    raise GrafanaQueryError(f"failed to parse period as duration: {text!r}")


def _escape(values: Sequence[str]) -> list[str]:
    return [v.replace('"', '\\"').replace("'", "\\'") for v in values]


def _search_expression(q: Mapping[str, Any], dims: Mapping[str, list[str]], period: int,
                       account: str | None = None) -> str:
    """metric_data_query_builder.go buildSearchExpression; an account other than "all" is the search term
    `:aws.AccountId="<id>"` (Go's %q quoting)."""
    known = {k: v for k, v in dims.items() if "*" not in v}
    wild = sorted(k for k, v in dims.items() if "*" in v)
    term = f'MetricName="{q["metricName"]}"'
    for key in sorted(known):
        values = " OR ".join(f'"{v}"' for v in _escape(known[key]))
        if len(known[key]) > 1:
            values = f"({values})"
        term += f' "{key}"={values}'
    stat = q["statistic"]
    suffix = f" :aws.AccountId={json.dumps(account)}" if account is not None and account != "all" else ""
    if q.get("matchExact", True):
        schema = json.dumps(q["namespace"])
        if dims:
            schema += "," + ",".join(f'"{k}"' for k in sorted(dims))
        return f"REMOVE_EMPTY(SEARCH('{{{schema}}} {term}{suffix}', '{stat}', {period}))"
    if wild:
        term += " " + " ".join(f'"{k}"' for k in wild)
    return f"REMOVE_EMPTY(SEARCH('Namespace={json.dumps(q['namespace'])} {term}{suffix}', '{stat}', {period}))"


def metric_data_query(q: Mapping[str, Any], ref_id: str, start: dt.datetime, end: dt.datetime,
                      now: dt.datetime, *, cross_account: bool = False) -> dict[str, Any]:
    """ParseMetricDataQueries + buildMetricDataQuery for one posted query. The query's `accountId` is read only
    with cross-account querying on (`validateAndSetDefaults`: `if crossAccountQueryingEnabled { q.AccountId =
    metricsDataQuery.AccountId }`, the `cloudWatchCrossAccountQuerying` feature of a monitoring account); then a
    MetricStat carries it as `AccountId`, a builder search gets the term `:aws.AccountId="..."` ("all": every
    account, always a search: `IsInferredSearchExpression`), and a Metrics Insights (SQL) query is sent as written:
    its account is whatever its WHERE says (`AWS.AccountId = '...'`, as the frontend's SQL builder writes it:
    src/language/cloudwatch-sql/SQLGenerator.ts `appendAccountId`)."""
    if not q.get("statistic"):
        raise GrafanaQueryError("query must have either statistic or statistics field")
    period = _period(q.get("period") or "", start, end, now)
    dims: dict[str, list[str]] = {}
    for key, values in (q.get("dimensions") or {}).items():
        if not values:  # parseDimensions: neither a string nor a non-empty list
            raise GrafanaQueryError("failed to parse dimensions: unknown type as dimension value")
        dims[key] = list(values)
    qid = q.get("id") or ("query" + (ref_id if _VALID_ID.match(ref_id) else uuid.uuid4().hex))
    match_exact = q.get("matchExact", True)
    account = q.get("accountId") or None if cross_account else None
    mdq: dict[str, Any] = {"Id": qid, "ReturnData": not q.get("hide", False)}
    if q.get("label"):
        mdq["Label"] = q["label"]
    kind, mode = q.get("metricQueryType", 0), q.get("metricEditorMode", 0)
    if kind == 0 and mode == 0:
        inferred = (not match_exact) or any(len(v) > 1 or "*" in v for v in dims.values())
        if not dims:
            inferred = not match_exact
        if account == "all":
            inferred = True
        if inferred:
            mdq["Expression"] = _search_expression(q, dims, period, account)
        else:
            mdq["MetricStat"] = {
                "Metric": {"Namespace": q["namespace"], "MetricName": q["metricName"],
                           "Dimensions": [{"Name": k, "Value": v[0]} for k, v in dims.items()]},
                "Period": period, "Stat": q["statistic"],
            }
            if account is not None:
                mdq["AccountId"] = account
    elif kind == 0 and mode == 1:
        mdq["Expression"], mdq["Period"] = q["expression"], period
    else:
        mdq["Expression"], mdq["Period"] = q["sqlExpression"], period
    return mdq


def panel_requests(panel: Mapping[str, Any], variables: Mapping[str, Variable], *,
                   start: dt.datetime, end: dt.datetime, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The GetMetricData inputs Grafana sends for the CloudWatch targets of `panel` (one per region)."""
    now = now or end
    by_region: dict[str, list[dict[str, Any]]] = {}
    for target in panel.get("targets", []):
        if target.get("datasource", {}).get("type") != "cloudwatch":
            continue
        posted = frontend_query(target, variables)
        if posted is None:
            continue
        by_region.setdefault(posted["region"], []).append(
            metric_data_query(posted, target["refId"], start, end, now))
    return [{"MetricDataQueries": queries, "StartTime": start, "EndTime": end, "ScanBy": "TimestampAscending"}
            for _, queries in sorted(by_region.items())]


# ---------------------------------------------------------------- AWS: botocore's model

@cache
def cloudwatch_model() -> Any:
    import botocore.loaders
    import botocore.model

    loader = botocore.loaders.Loader()
    return botocore.model.ServiceModel(loader.load_service_model("cloudwatch", "service-2"), "cloudwatch")


def expression_max() -> int:
    return int(cloudwatch_model().shape_for("MetricExpression").metadata["max"])


def max_queries() -> int:
    """GetMetricDataInput.MetricDataQueries: the model states the limit in its documentation only."""
    doc = cloudwatch_model().operation_model("GetMetricData").input_shape.members["MetricDataQueries"].documentation
    m = re.search(r"as many as (\d+)", doc)
    assert m, f"botocore's GetMetricData documentation no longer states the query limit: {doc[:200]!r}"
    return int(m.group(1))


def _id_rule() -> re.Pattern[str]:
    doc = cloudwatch_model().shape_for("MetricDataQuery").members["Id"].documentation
    assert "letters, numbers, and underscore" in doc and "first character must be a lowercase letter" in doc, doc
    return re.compile(r"^[a-z][A-Za-z0-9_]*$")


def _over_max(value: Any, shape: Any, path: str) -> list[str]:
    """The model's `max` of each string and list (botocore's ParamValidator checks only `min`)."""
    out: list[str] = []
    limit = shape.metadata.get("max")
    if shape.type_name in ("string", "list") and limit is not None and len(value) > limit:
        out.append(f"{path}: length {len(value)} over the model's max {limit} ({shape.name})")
    if shape.type_name == "structure" and isinstance(value, Mapping):
        for key, member in shape.members.items():
            if key in value:
                out += _over_max(value[key], member, f"{path}.{key}")
    elif shape.type_name == "list":
        for i, item in enumerate(value):
            out += _over_max(item, shape.member, f"{path}[{i}]")
    return out


def aws_errors(request: Mapping[str, Any]) -> list[str]:
    """What AWS would refuse in this GetMetricData input, per botocore's CloudWatch model ([] = valid)."""
    from botocore.validate import ParamValidator

    op = cloudwatch_model().operation_model("GetMetricData")
    report = ParamValidator().validate(dict(request), op.input_shape)
    errors = [line for line in report.generate_report().splitlines() if line.strip()] if report.has_errors() else []
    errors += _over_max(request, op.input_shape, "GetMetricDataInput")
    queries = request.get("MetricDataQueries", [])
    if len(queries) > max_queries():
        errors.append(f"{len(queries)} MetricDataQueries, more than {max_queries()}")
    ids = [q.get("Id", "") for q in queries]
    rule = _id_rule()
    errors += [f"Id {i!r} is not letters, digits and _ from a lowercase letter" for i in ids if not rule.match(i)]
    if len(set(ids)) != len(ids):
        errors.append("duplicate Id")
    # AWS docs, "Metrics Insights quotas": each GetMetricData operation can have only one Metrics Insights query
    # (Grafana splits them only behind its cloudWatchBatchQueries feature flag, time_series_query.go)
    insights = [q.get("Id") for q in queries if str(q.get("Expression", "")).lstrip().upper().startswith("SELECT ")]
    if len(insights) > 1:
        errors.append(f"{len(insights)} Metrics Insights queries in one call: {insights}")
    for q in queries:
        if ("MetricStat" in q) == ("Expression" in q):
            errors.append(f"{q.get('Id')}: exactly one of MetricStat and Expression")
        for d in q.get("MetricStat", {}).get("Metric", {}).get("Dimensions", []):
            if not str(d.get("Value", "")).strip():
                errors.append(f"{q.get('Id')}: dimension {d.get('Name')} value {d.get('Value')!r} has no "
                              "non-whitespace character")
    return errors
