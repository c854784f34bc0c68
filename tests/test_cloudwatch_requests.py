"""Issue 15, defects 1 and 2: the CloudWatch requests Grafana would send for the built dashboards.

From the built dashboard JSON and the variable values Grafana would hold for a fleet in the pricing store,
`grafana_cloudwatch` builds the `GetMetricData` inputs Grafana's CloudWatch backend sends (its rules, cited
there) and checks them against botocore's CloudWatch model: for 1, 80 and 10,000 selected instances, a
hand-picked list, and a selection that matches nothing (which must give "No data", not an error).
Then, on a fleet with untagged and unnamed instances, that the three dashboards select the same instances.

Variables are resolved as Grafana would (`dashboard_variables.resolve`): the store's variable queries run on a
real PostgreSQL holding the fleet, CloudWatch `ec2_instance_attribute` ones are answered from the same fleet.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
import pytest

from dashboard_variables import END, KEY, REGION, Instance, fleet_of, load, resolve
from dashgen.config import Config
from dashgen.dashboards import cost, performance, rightsizing
from dashgen.grafana.render import render
from dashgen.grafana.validate import all_panels
from dashgen.store.db import migrate
from grafana_cloudwatch import (
    GrafanaQueryError,
    Variable,
    aws_errors,
    expression_max,
    interpolate,
    panel_requests,
)


@pytest.fixture
def store(migrated_db: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(migrated_db) as conn:
        migrate(conn)
        yield conn


def cloudwatch_panels(dashboard: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [p for p in all_panels(dashboard)
            if any(t.get("datasource", {}).get("type") == "cloudwatch" for t in p.get("targets", []))]


def requests_of(p: Mapping[str, Any], variables: Mapping[str, Variable]) -> list[dict[str, Any]]:
    start = END - (dt.timedelta(days=int(p["timeFrom"][:-1])) if p.get("timeFrom") else dt.timedelta(hours=24))
    return panel_requests(p, variables, start=start, end=END)


# ---------------------------------------------------------------- what CloudWatch returns for a request

@functools.cache
def _insights_tokens(sql: str) -> tuple[str, ...]:
    m = re.search(r"\bWHERE\b(.*?)\bGROUP BY\b", sql)
    if not m:
        return ()
    tokens = re.findall(r"'[^']*'|\(|\)|!=|=|\bAND\b|\bOR\b|tag\.\"[^\"]+\"|tag\.\w+|InstanceId|AWS\.AccountId",
                        m.group(1))
    assert "".join(tokens).replace(" ", "") == re.sub(r"\s", "", m.group(1)), f"unexpected clause: {m.group(1)}"
    return tuple(tokens)


def _insights_matches(sql: str, inst: Instance) -> bool:
    """Evaluate the WHERE clause of a Metrics Insights query (the grammar dashgen writes: label = / != 'literal',
    AND, OR, parentheses; labels tag.<key>, tag."<key>", InstanceId, AWS.AccountId) for one instance, as CloudWatch
    would with the instance's current tags (resource tags for telemetry on) in a monitoring account that sees the
    instance's account (cross-account observability: AWS.AccountId is the account the metric comes from)."""
    tokens = _insights_tokens(sql)
    if not tokens:
        return True
    pos = 0

    def label_value(label: str) -> str | None:
        if label == "InstanceId":
            return inst.instance_id
        if label == "AWS.AccountId":
            return inst.account
        return inst.tags.get(label[4:].strip('"'))

    def factor() -> bool:
        nonlocal pos
        if tokens[pos] == "(":
            pos += 1
            value = expr()
            assert tokens[pos] == ")"
            pos += 1
            return value
        label, op, literal = tokens[pos:pos + 3]
        pos += 3
        have = label_value(label)
        return have is not None and ((have == literal[1:-1]) == (op == "="))

    def term() -> bool:
        nonlocal pos
        value = factor()
        while pos < len(tokens) and tokens[pos] == "AND":
            pos += 1
            value = factor() and value
        return value

    def expr() -> bool:
        nonlocal pos
        value = term()
        while pos < len(tokens) and tokens[pos] == "OR":
            pos += 1
            value = term() or value
        return value

    result = expr()
    assert pos == len(tokens)
    return result


def returned(request: Mapping[str, Any], fleet: Sequence[Instance], region: str = REGION) -> set[str]:
    """The instances whose series CloudWatch returns for every query of the request (limits aside)."""
    out: set[str] = set()
    for q in request["MetricDataQueries"]:
        here = [i for i in fleet if i.region == region]
        if "MetricStat" in q:
            dims = {d["Name"]: d["Value"] for d in q["MetricStat"]["Metric"]["Dimensions"]}
            out |= {i.instance_id for i in here if i.instance_id == dims.get("InstanceId")}
        elif q["Expression"].startswith("REMOVE_EMPTY(SEARCH("):
            m = re.search(r'"InstanceId"=\(?((?:"[^"]*"(?: OR )?)+)\)?', q["Expression"])
            ids = set(re.findall(r'"([^"]*)"', m.group(1))) if m else None
            out |= {i.instance_id for i in here if ids is None or i.instance_id in ids}
        else:
            out |= {i.instance_id for i in here if _insights_matches(q["Expression"], i)}
    return out


# ---------------------------------------------------------------- defect 1: the requests at fleet size

DASHBOARDS = {"performance": performance, "rightsizing": rightsizing}


@pytest.mark.parametrize(("size", "picks"), [
    (1, {}),
    (80, {}),
    (10_000, {}),
    (10_000, {"tag_value": ["ml"]}),         # a tag filter that selects half of a large fleet
    (80, {"instance": "all-ids"}),          # every instance picked one by one
])
def test_requests_are_valid_for_aws_at_any_fleet_size(store: psycopg.Connection[Any], size: int,
                                                      picks: dict[str, Any]) -> None:
    fleet = fleet_of(size, values=("ml", "web"))
    load(store, fleet)
    if picks.get("instance") == "all-ids":
        picks = {"instance": [i.instance_id for i in fleet]}
    limit = expression_max()
    assert limit == 2048  # read from botocore's model, this is what AWS accepts today
    for slug, module in DASHBOARDS.items():
        d = render(module.build(Config()))
        variables = resolve(d, store, fleet, picks)
        for n, p in enumerate(cloudwatch_panels(d)):
            for request in requests_of(p, variables):
                assert aws_errors(request) == [], (slug, p["title"], size, picks)
                for q in request["MetricDataQueries"]:
                    assert len(q.get("Expression", "")) <= limit
                if n == 0 and "instance" not in picks:  # and it asks for the selected instances, no more
                    want = {i.instance_id for i in fleet if i.tags[KEY] in picks.get("tag_value", [i.tags[KEY]])}
                    assert returned(request, fleet) == want, (slug, p["title"])


@pytest.mark.parametrize(("fleet", "picks"), [
    # nothing synced in the dashboard's region (the store holds another region's instances)
    ([Instance("i-0aaa", region="eu-west-1", tags={KEY: "ml", "Name": "alpha"})], {}),
    # a tag value only instances of another region have
    ([Instance("i-0aaa", tags={KEY: "ml", "Name": "alpha"}), Instance("i-0bbb", region="eu-west-1", tags={KEY: "x"})],
     {"tag_value": ["x"]}),
])
def test_a_selection_that_matches_nothing_gives_no_data_not_an_error(
        store: psycopg.Connection[Any], fleet: list[Instance], picks: dict[str, list[str]]) -> None:
    load(store, fleet)
    for slug, module in DASHBOARDS.items():
        d = render(module.build(Config()))
        variables = resolve(d, store, fleet, picks)
        for p in cloudwatch_panels(d):
            try:
                requests = requests_of(p, variables)
            except GrafanaQueryError as err:
                pytest.fail(f"{slug} / {p['title']}: Grafana refuses the query: {err}")
            for request in requests:
                assert aws_errors(request) == [], (slug, p["title"])
                assert returned(request, fleet) == set(), (slug, p["title"])


# ---------------------------------------------------------------- defect 2: one meaning of a selection

HOSTILE = "it's \"q\" $__timeFrom() \\ cost$1(x)"
MIXED = [
    Instance("i-01", tags={KEY: "a", "Name": "one"}),
    Instance("i-02", tags={KEY: "a"}),                      # unnamed
    Instance("i-03", tags={"Name": "three"}),               # untagged
    Instance("i-04"),                                       # neither
    Instance("i-05", tags={KEY: "b", "Name": "one"}),
    Instance("i-06", tags={KEY: "b", "Name": "six"}),
    Instance("i-07", region="eu-west-1", tags={KEY: "a", "Name": "one"}),  # another region
    Instance("i-08", tags={KEY: HOSTILE, "Name": "it's"}),  # values a Metrics Insights literal cannot hold
]


def intended(picks: Mapping[str, Sequence[str]]) -> set[str]:
    """What the user means: the instances of the region whose tag value, Name and id are among the picks."""
    def ok(have: str | None, name: str) -> bool:
        return name not in picks or have in picks[name]

    return {i.instance_id for i in MIXED if i.region == REGION and ok(i.tags.get(KEY), "tag_value")
            and ok(i.name, "name") and ok(i.instance_id, "instance")}


STORE_PANELS = {"ec2-cost": "Cost per instance", "ec2-rightsizing": "Rightsizing"}


def store_selection(conn: psycopg.Connection[Any], dashboard: Mapping[str, Any],
                    variables: Mapping[str, Variable]) -> set[str]:
    """The instances of the region in the dashboard's per-instance store panel (its first query, run as Grafana
    would with these variables: macros for the last 24 h, then the variables)."""
    (panel,) = [p for p in all_panels(dashboard) if p.get("title") == STORE_PANELS[dashboard["uid"][8:]]]
    sql = panel["targets"][0]["rawSql"]
    sql = sql.replace("$__timeFrom()", f"'{(END - dt.timedelta(hours=24)).isoformat()}'")
    sql = sql.replace("$__timeTo()", f"'{END.isoformat()}'")
    cur = conn.execute(interpolate(sql, variables))
    rows = cur.fetchall()
    conn.rollback()
    here = {i.instance_id for i in MIXED if i.region == REGION}
    return {r[0] for r in rows} & here


@pytest.mark.parametrize("picks", [
    {},
    {"tag_value": ["a"]},
    {"name": ["one"]},
    {"tag_value": ["b"], "name": ["one"]},
    {"instance": ["i-03", "i-04"]},
    {"tag_value": [HOSTILE]},   # a small selection goes to CloudWatch as instance ids: exact whatever the value
    {"name": ["it's", "one"]},
])
def test_the_three_dashboards_select_the_same_instances(store: psycopg.Connection[Any],
                                                        picks: dict[str, list[str]]) -> None:
    load(store, MIXED)
    want = intended(picks)
    perf = render(performance.build(Config()))
    perf_vars = resolve(perf, store, MIXED, picks)
    for p in cloudwatch_panels(perf):
        for request in requests_of(p, perf_vars):
            assert returned(request, MIXED) == want, p["title"]
    store_picks = {k: v for k, v in picks.items() if k != "instance"}
    if "instance" not in picks:
        for module in (cost, rightsizing):
            d = render(module.build(Config()))
            variables = resolve(d, store, MIXED, store_picks)
            assert store_selection(store, d, variables) == want, module.__name__
        ranking = render(rightsizing.build(Config()))
        ranking_vars = resolve(ranking, store, MIXED, store_picks)
        for p in cloudwatch_panels(ranking):
            for request in requests_of(p, ranking_vars):
                assert returned(request, MIXED) == want, p["title"]
    counted = [p for p in all_panels(perf) if p["title"] == "Instances selected"]
    assert counted, "the performance dashboard does not say how many instances are selected"
    assert store.execute(interpolate(counted[0]["targets"][0]["rawSql"], perf_vars)).fetchone() == (len(want), 0)


# ---------------------------------------------------------------- the check itself

def test_the_check_sees_what_aws_refuses() -> None:
    """aws_errors finds each refusal the botocore model states: length, empty dimension value, Id, count."""
    def request(*queries: dict[str, Any]) -> dict[str, Any]:
        return {"MetricDataQueries": list(queries), "StartTime": END - dt.timedelta(hours=1), "EndTime": END}

    stat = {"Metric": {"Namespace": "AWS/EC2", "MetricName": "CPUUtilization",
                       "Dimensions": [{"Name": "InstanceId", "Value": "i-1"}]}, "Period": 300, "Stat": "Average"}
    assert aws_errors(request({"Id": "q1", "MetricStat": stat})) == []
    assert aws_errors(request({"Id": "q1", "Expression": "x" * expression_max()})) == []
    too_long = aws_errors(request({"Id": "q1", "Expression": "x" * (expression_max() + 1)}))
    assert too_long and "over the model's max 2048" in too_long[0]
    empty = {**stat, "Metric": {**stat["Metric"], "Dimensions": [{"Name": "InstanceId", "Value": ""}]}}
    assert any("Value" in e for e in aws_errors(request({"Id": "q1", "MetricStat": empty})))
    assert any("Id 'Query1'" in e for e in aws_errors(request({"Id": "Query1", "MetricStat": stat})))
    assert any("MetricStat and Expression" in e for e in aws_errors(request({"Id": "q1"})))
    insights = [{"Id": f"q{i}", "Expression": 'SELECT AVG(CPUUtilization) FROM "AWS/EC2"', "Period": 300}
                for i in range(2)]
    assert any("2 Metrics Insights queries" in e for e in aws_errors(request(*insights)))
    many = [{"Id": f"q{i}", "MetricStat": stat} for i in range(501)]
    assert any("more than 500" in e for e in aws_errors(request(*many)))
    assert any("required" in e.lower() for e in aws_errors({"MetricDataQueries": []}))


LBS = '"LoadBalancer"=("lb1" OR "lb2" OR "lb3")'
EXACT_LB, EXACT_BOTH = '{"AWS/EC2","LoadBalancer"}', '{"AWS/EC2","InstanceId","LoadBalancer"}'
ANY_NS = 'Namespace="AWS/EC2"'


def _search(head: str, tail: str = "") -> str:
    return f"REMOVE_EMPTY(SEARCH('{head} MetricName=\"CPUUtilization\"{tail}', 'Average', 300))"


@pytest.mark.parametrize(("dims", "match_exact", "expected"), [
    # expected texts: grafana-cloudwatch-datasource pkg/cloudwatch/metric_data_query_builder_test.go
    # (commit 9e3235ae747f308eae7ebee6965305e144ee4b3f), lines 170, 192, 213, 235, 349, 392, 414
    ({"LoadBalancer": ["lb1", "lb2", "lb3"]}, True, _search(EXACT_LB, f" {LBS}")),
    ({"LoadBalancer": ["lb1", "lb2", "lb3"], "InstanceId": ["i-123", "i-456", "i-789"]}, True,
     _search(EXACT_BOTH, f' "InstanceId"=("i-123" OR "i-456" OR "i-789") {LBS}')),
    ({"LoadBalancer": ["*"]}, True, _search(EXACT_LB)),
    ({"LoadBalancer": ["lb1", "lb2", "lb3"], "InstanceId": ["*"]}, True, _search(EXACT_BOTH, f" {LBS}")),
    ({"LoadBalancer": ["lb1", "lb2", "lb3"]}, False, _search(ANY_NS, f" {LBS}")),
    ({"LoadBalancer": ["*"]}, False, _search(ANY_NS, ' "LoadBalancer"')),
    ({"LoadBalancer": ["lb1", "lb2", "lb3"], "InstanceId": ["*"]}, False, _search(ANY_NS, f' {LBS} "InstanceId"')),
])
def test_the_model_writes_the_search_expressions_grafana_tests_expect(
        dims: dict[str, list[str]], match_exact: bool, expected: str) -> None:
    from grafana_cloudwatch import metric_data_query

    q = {"namespace": "AWS/EC2", "metricName": "CPUUtilization", "statistic": "Average", "period": "300",
         "dimensions": dims, "matchExact": match_exact, "metricQueryType": 0, "metricEditorMode": 0}
    assert metric_data_query(q, "A", END - dt.timedelta(hours=1), END, END)["Expression"] == expected


def test_the_model_sends_one_value_as_a_metric_stat_and_an_empty_one_as_aws_refuses() -> None:
    """One value, not `*`: a MetricStat with that dimension (buildMetricDataQuery); the frontend turns an
    empty multi-value selection into [""] (pipe format of [] split on |), still one value."""
    from grafana_cloudwatch import frontend_query, metric_data_query

    target = {"datasource": {"type": "cloudwatch"}, "namespace": "AWS/EC2", "metricName": "CPUUtilization",
              "statistic": "Average", "period": "300", "region": "us-east-1", "refId": "A",
              "dimensions": {"InstanceId": "$instance"}, "matchExact": True, "metricQueryType": 0,
              "metricEditorMode": 0}
    for value, dim in ((["i-1"], "i-1"), ([], "")):
        var = Variable("instance", "query", value, options=("i-1", "i-2"), multi=True, include_all=True)
        posted = frontend_query(target, {"instance": var})
        assert posted is not None
        mdq = metric_data_query(posted, "A", END - dt.timedelta(hours=1), END, END)
        assert mdq["Id"].startswith("query") and "Expression" not in mdq
        assert mdq["MetricStat"]["Metric"]["Dimensions"] == [{"Name": "InstanceId", "Value": dim}]


# ---------------------------------------------------------------- accounts (issue 13)

A, B = "111111111111", "222222222222"


@pytest.mark.parametrize("size", [40, 2_000])
def test_the_account_filter_reaches_cloudwatch_as_the_accounts_metrics(store: psycopg.Connection[Any],
                                                                       size: int) -> None:
    """A fleet of two accounts (the half in each), the dashboards' Account variable on A: every CloudWatch request
    is one AWS accepts and asks for A's instances only, and B's are asked for under All. Few enough to send as ids
    (40: 20 of A), the ids say it; a larger selection goes as tag conditions and the clause names the account as
    Grafana's own SQL builder does (`AWS.AccountId = '<id>'`: grafana/grafana-cloudwatch-datasource
    src/language/cloudwatch-sql/SQLGenerator.ts `appendAccountId`), which CloudWatch evaluates in a monitoring
    account (the model in grafana_cloudwatch: a Metrics Insights query carries no `accountId` field)."""
    fleet = [Instance(f"i-{i:017x}", tags={KEY: "ml", "Name": f"node-{i:05d}"}, account=(A, B)[i % 2])
             for i in range(size)]
    load(store, fleet)
    for slug, module in DASHBOARDS.items():
        d = render(module.build(Config()))
        for picks, want in (({"account": [A]}, {i.instance_id for i in fleet if i.account == A}),
                            ({}, {i.instance_id for i in fleet})):
            variables = resolve(d, store, fleet, picks)
            if not picks:
                assert set(variables["account"].options) == {"313131313131313131313131",
                                                            "323232323232323232323232"}  # the hex of A and B
            p = cloudwatch_panels(d)[0]
            (request,) = requests_of(p, variables)
            assert aws_errors(request) == [], (slug, p["title"], picks)
            assert returned(request, fleet) == want, (slug, p["title"], picks)
            expressions = [q["Expression"] for q in request["MetricDataQueries"]]
            assert all(("AWS.AccountId = '111111111111'" in e) == (bool(picks) and size > 40)
                       for e in expressions), expressions
            assert all("AccountId" not in q for q in request["MetricDataQueries"])  # no MetricStat field either


def test_the_model_sends_an_account_id_only_with_cross_account_querying() -> None:
    """grafana_cloudwatch models `accountId` as the datasource's backend reads it (metric_data_query_builder.go,
    cloudwatch_query.go): a MetricStat's AccountId, a search's `:aws.AccountId=` term ("all": a search of every
    account), nothing without the cross-account feature, and never for Metrics Insights."""
    from grafana_cloudwatch import frontend_query, metric_data_query

    now = END
    builder = {"refId": "A", "region": "us-east-1", "namespace": "AWS/EC2", "metricName": "CPUUtilization",
               "statistic": "Average", "period": "300", "dimensions": {"InstanceId": "i-1"},
               "metricQueryType": 0, "metricEditorMode": 0, "accountId": "$account"}
    variables = {"account": Variable("account", "custom", A)}
    posted = frontend_query(builder, variables)
    assert posted is not None and posted["accountId"] == A
    assert "AccountId" not in metric_data_query(posted, "A", now - dt.timedelta(hours=1), now, now)
    stat = metric_data_query(posted, "A", now - dt.timedelta(hours=1), now, now, cross_account=True)
    assert stat["AccountId"] == A and stat["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "InstanceId", "Value": "i-1"}]
    search = metric_data_query({**posted, "accountId": "all"}, "A", now - dt.timedelta(hours=1), now, now,
                               cross_account=True)
    assert search["Expression"] == ("REMOVE_EMPTY(SEARCH('{\"AWS/EC2\",\"InstanceId\"} MetricName=\"CPUUtilization\" "
                                    "\"InstanceId\"=\"i-1\"', 'Average', 300))")
    many = metric_data_query({**posted, "dimensions": {"InstanceId": ["i-1", "i-2"]}}, "A",
                             now - dt.timedelta(hours=1), now, now, cross_account=True)
    assert many["Expression"].endswith(f':aws.AccountId="{A}"\', \'Average\', 300))')
    insights = metric_data_query({**posted, "metricQueryType": 1, "metricEditorMode": 1,
                                  "sqlExpression": 'SELECT AVG(CPUUtilization) FROM "AWS/EC2"'}, "A",
                                 now - dt.timedelta(hours=1), now, now, cross_account=True)
    assert insights["Expression"] == 'SELECT AVG(CPUUtilization) FROM "AWS/EC2"' and "AccountId" not in insights
