"""Dashboard variables as Grafana holds them once it has run their queries, for a fleet in the pricing store.

A query variable on the pricing store runs its SQL (interpolated with the scenes formats,
`grafana_cloudwatch.interpolate`) on a real PostgreSQL holding the fleet, and reads its rows as Grafana's SQL
datasources do (`__text` / `__value` columns, else the first column); a CloudWatch `ec2_instance_attribute`
variable is answered from the same fleet with EC2's filter rules and Grafana's attribute rule
(grafana-cloudwatch-datasource pkg/cloudwatch/metric_find_query.go: `Tags.<key>` of an instance without the
tag is "", still an option); `regions()` offers the fleet's first region. A variable the user picks is picked
by option text, as a user does, and must be among the options.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from dashgen.config import Config
from grafana_cloudwatch import ALL, Variable, interpolate

REGION = "us-east-1"
END = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
KEY = Config().instance_tags[0]  # the default Tag key of the dashboards


@dataclass(frozen=True)
class Instance:
    instance_id: str
    region: str = REGION
    tags: Mapping[str, str] = field(default_factory=dict)
    account: str | None = None  # the AWS account (dashgen.instances.account_id; None: not known)

    @property
    def name(self) -> str | None:
        return self.tags.get("Name")


def fleet_of(n: int, *, values: Sequence[str] = ("ml",)) -> list[Instance]:
    return [Instance(f"i-{i:017x}", tags={KEY: values[i % len(values)], "Name": f"node-{i:05d}"})
            for i in range(n)]


def load(conn: psycopg.Connection[Any], fleet: Sequence[Instance]) -> None:
    conn.execute("DELETE FROM dashgen.instances")
    with conn.cursor().copy("COPY dashgen.instances (instance_id, region, instance_type, name, tags, state, "
                            "first_seen, last_seen, account_id) FROM STDIN") as copy:
        for i in fleet:
            copy.write_row((i.instance_id, i.region, "m7g.large", i.name, json.dumps(dict(i.tags)), "running",
                            END - dt.timedelta(days=30), END - dt.timedelta(minutes=5), i.account))
    conn.commit()


# ---------------------------------------------------------------- variables as Grafana resolves them

def _ec2_options(query: str, variables: Mapping[str, Variable], fleet: Sequence[Instance]) -> list[str]:
    """`ec2_instance_attribute(region, attribute, filters)`: EC2 DescribeInstances filters, then the attribute."""
    m = re.fullmatch(r"ec2_instance_attribute\(([^,]+),\s*([^,]+),\s*(\{.*\})\)", query.strip())
    assert m, query
    region, attribute = interpolate(m.group(1).strip(), variables), interpolate(m.group(2).strip(), variables)
    filters: dict[str, list[str]] = {}
    for key, values in json.loads(m.group(3)).items():
        expanded: list[str] = []
        for value in values:  # CloudWatchRequest.convertMultiFilterFormat -> expandVariableToArray
            name = re.fullmatch(r"\$\{?(\w+)\}?", value)
            var = variables.get(name.group(1)) if name else None
            expanded += (interpolate(value, variables, "pipe").split("|") if var is not None and var.multi
                         else [interpolate(value, variables)])
        filters[interpolate(key, variables)] = expanded
    out: set[str] = set()
    for inst in fleet:
        if inst.region != region:
            continue
        ok = True
        for key, values in filters.items():
            if key.startswith("tag:"):  # EC2: the instance has the tag and its value matches one (`*` = any)
                have = inst.tags.get(key[4:])
                ok &= have is not None and any(v == "*" or v == have for v in values)
        if ok:
            out.add(inst.instance_id if attribute == "InstanceId" else inst.tags.get(attribute[5:], ""))
    return sorted(out)


def _sql_options(conn: psycopg.Connection[Any], sql: str, variables: Mapping[str, Variable]) -> list[tuple[str, str]]:
    """(text, value) of each row; `__text` / `__value` columns as Grafana's SQL datasources read them."""
    cur = conn.execute(interpolate(sql, variables))
    cols = [d.name for d in cur.description or []]
    rows = cur.fetchall()
    conn.rollback()
    if "__text" in cols and "__value" in cols:
        t, v = cols.index("__text"), cols.index("__value")
        return [(str(r[t]), str(r[v])) for r in rows]
    return [(str(r[0]), str(r[0])) for r in rows]


def resolve(dashboard: Mapping[str, Any], conn: psycopg.Connection[Any], fleet: Sequence[Instance],
            picks: Mapping[str, Sequence[str]] | None = None) -> dict[str, Variable]:
    """Every variable's state once Grafana has run the queries and the user has picked `picks` (by option
    text; a variable not picked keeps its saved current value)."""
    picks = picks or {}
    out: dict[str, Variable] = {}
    for v in dashboard["templating"]["list"]:
        name, kind = v["name"], v["type"]
        current = v.get("current", {}).get("value", "")
        if kind == "datasource":
            out[name] = Variable(name, kind, current)
            continue
        if kind == "custom":
            options = [(o["text"], o["value"]) for o in v.get("options", [])]
        elif kind == "query" and v["datasource"]["type"] == "cloudwatch":
            query = v["query"] if isinstance(v["query"], str) else v["query"].get("query", "")
            if query.startswith("regions()"):
                options = [(REGION, REGION)]
            else:
                options = [(o, o) for o in _ec2_options(query, out, fleet)]
        elif kind == "query":
            options = _sql_options(conn, v["query"], out)
        else:
            raise AssertionError(f"variable type {kind} not modelled")
        values = [val for _, val in options]
        if name in picks:
            by_text = dict(options)
            missing = [t for t in picks[name] if t not in by_text]
            assert not missing, f"{name}: {missing} not among the options Grafana would offer"
            value: str | list[str] = [by_text[t] for t in picks[name]] if v.get("multi") else by_text[picks[name][0]]
        elif current in ("$__all", ["$__all"]):
            value = ALL
        elif v.get("multi") and not isinstance(current, list):
            value = [current] if current else []
        else:
            value = current if current in values or kind == "custom" else (values[0] if values else "")
        out[name] = Variable(name, "query" if kind == "query" else kind, value, tuple(values),
                             multi=bool(v.get("multi")), include_all=bool(v.get("includeAll")),
                             all_value=v.get("allValue") or None)
    return out


