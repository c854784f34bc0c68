"""dashgen.rightsizing.queries and its SQL: known verdicts from crafted utilisation, filters, the experiment comparison,
and the dashboard's own SQL (taken from the built JSON, expanded as Grafana does) giving the CLI's rows."""

from __future__ import annotations

import dataclasses
import datetime as dt

import psycopg
import pytest

from dashgen.build import render_dashboards
from dashgen.config import Config
from dashgen.errors import ConfigError, DashgenError
from dashgen.rightsizing.collect import rightsizing_price_keys
from dashgen.rightsizing.queries import compare_experiment, recommendations, run_sql
from dashgen.rightsizing.rule import RULE
from dashgen.store.sqlvars import ALL as NO_FILTER
from dashgen.store.sqlvars import encode as hx
from dashgen.store.sqlvars import load_sql
from dashgen.sync.pricing import PriceKey
from grafana_sql import ALL, expand
from rightsizing_data import fill_store

DASHBOARD = "ec2-rightsizing.json"


@pytest.fixture(scope="module")
def filled(module_db: str):
    """A connection to the store filled once for the module; a test that writes rolls its change back."""
    with psycopg.connect(module_db, autocommit=True) as conn:
        fill_store(conn)
        yield conn


def _by_name(rows: list[dict]) -> dict[str, dict]:
    return {r["name"]: r for r in rows}


def test_known_verdicts_and_recommendations(filled) -> None:
    rows = _by_name(recommendations(filled, Config()))
    over, right, under = rows["train-8"], rows["train-4"], rows["train-2"]
    # 30 % peak on 8 vCPUs: 8 x 30 / 64 = 3.75 vCPUs needed -> 4 (t4g.2xlarge -> t4g.xlarge)
    assert (over["verdict"], over["needed_vcpu"], over["recommended_type"]) == ("over-provisioned", 3.75,
                                                                               "t4g.xlarge")
    assert over["monthly_saving_usd"] == pytest.approx((0.2688 - 0.1344) * 730, abs=0.01)
    # 60 % on 4 vCPUs: 3.75 needed -> stays
    assert (right["verdict"], right["recommended_type"], right["monthly_saving_usd"]) == (
        "right-sized", "t4g.xlarge", 0)
    # 95 % on 2 vCPUs: 2.97 needed -> up to 4
    assert (under["verdict"], under["recommended_type"]) == ("under-provisioned", "t4g.xlarge")
    assert under["monthly_saving_usd"] < 0
    # nothing burstable is cheaper than t4g, so no second column for the t4g runs
    assert over["cheaper_type"] is None
    # a cheaper family (Graviton) for the x86 web server, with enough vCPU and memory
    web = rows["web-1"]
    assert (web["verdict"], web["recommended_type"]) == ("over-provisioned", "m7i.xlarge")
    assert web["cheaper_type"] == "m6g.xlarge"
    assert web["cheaper_usd_per_hour"] < web["recommended_usd_per_hour"]
    assert web["cheaper_monthly_saving_usd"] > web["monthly_saving_usd"]
    assert rows["idle-1"]["verdict"] == "no data" and rows["idle-1"]["recommended_type"] is None
    # the table, CPU columns and sort order
    assert (over["cpu_avg"], over["cpu_peak"], over["cpu_max"], over["hours"]) == (12.0, 30.0, 34.0, 40)
    assert over["tags"] == "experiment=t4g-sizing, team=ml"
    savings = [r["monthly_saving_usd"] for r in rows.values() if r["monthly_saving_usd"] is not None]
    ordered = [r["monthly_saving_usd"] for r in recommendations(filled, Config())
               if r["monthly_saving_usd"] is not None]
    assert ordered == sorted(savings, reverse=True)


def test_threshold_and_headroom_come_from_the_config(filled) -> None:
    # headroom 50 %: target 40 %, the 60 % run needs 4 x 60 / 40 = 6 vCPUs -> t4g.2xlarge
    cfg = dataclasses.replace(Config(), headroom_pct=50.0)
    row = _by_name(recommendations(filled, cfg))["train-4"]
    assert (row["verdict"], row["needed_vcpu"], row["recommended_type"]) == ("under-provisioned", 6,
                                                                             "t4g.2xlarge")
    # threshold 99 % and no headroom: the 95 % peak fits its 2 vCPUs, but its 70 % average does not fit under
    # the 30 % credit baseline of a t4g.large: still under-provisioned, and the reasons say why
    cfg = dataclasses.replace(Config(), headroom_pct=0.0, thresholds={"CPUUtilization": 99.0})
    row = _by_name(recommendations(filled, cfg))["train-2"]
    assert row["needed_vcpu"] <= 2 and row["verdict"] == "under-provisioned"
    assert "credit baseline" in row["reasons"] and row["recommended_type"] == "t4g.xlarge"


def test_filters_by_tag_and_name(filled) -> None:
    cfg = Config()
    assert {r["name"] for r in recommendations(filled, cfg, tag="team=web")} == {"web-1", "idle-1"}
    assert {r["name"] for r in recommendations(filled, cfg, tag="experiment=t4g-sizing")} == {
        "train-8", "train-4", "train-2"}
    assert [r["name"] for r in recommendations(filled, cfg, names=["train-4"])] == ["train-4"]
    assert recommendations(filled, cfg, tag="team=web", names=["train-4"]) == []
    with pytest.raises(ConfigError, match="--tag: expected KEY=VALUE"):
        recommendations(filled, cfg, tag="team")


def test_experiment_comparison_marks_the_cheapest_run_on_time(filled) -> None:
    rows = {r["name"]: r for r in compare_experiment(filled, "t4g-sizing")}
    assert set(rows) == {"train-8", "train-4", "train-2"}
    four, eight, two = rows["train-4"], rows["train-8"], rows["train-2"]
    assert (four["outcome"], eight["outcome"], two["outcome"]) == ("cheapest on time", "on time", "late")
    assert eight["running_hours"] == 40 and eight["cost_usd"] == pytest.approx(40 * 0.2688, abs=0.01)
    assert eight["progress_pct"] == 100 and eight["hours_per_pct"] == pytest.approx(0.4)
    assert four["projected_cost_usd"] < eight["projected_cost_usd"]
    assert four["usd_per_pct"] == pytest.approx(four["cost_usd"] / 80, abs=1e-3)
    assert [r["name"] for r in compare_experiment(filled, "t4g-sizing")][0] == "train-4"
    with pytest.raises(DashgenError, match="no experiment 'nope' in the store \\(known: t4g-sizing\\)"):
        compare_experiment(filled, "nope")


# ---------------------------------------------------------------- one implementation, two views

def grafana_sql(dashboard: dict, title: str, selections: dict | None = None) -> str:
    """The panel's rawSql from the built JSON, expanded with the dashboard's own variables (current values,
    All values), changed by `selections`, the way Grafana sends it to PostgreSQL."""
    panel = next(p for row in dashboard["panels"] for p in [row, *row.get("panels", [])] if p["title"] == title)
    (target,) = panel["targets"]
    templating = dashboard["templating"]["list"]
    variables = {v["name"]: v["current"]["value"] for v in templating} | dict(selections or {})
    all_values = {v["name"]: v["allValue"] for v in templating if "allValue" in v}
    assert variables["name"] == ALL or "name" in (selections or {})  # the default is All
    now = dt.datetime.now(dt.UTC)
    return expand(target["rawSql"], time_from=now - dt.timedelta(days=7), time_to=now, variables=variables,
                  all_values=all_values)


def _panel_rows(conn, dashboard: dict, title: str, selections: dict | None = None) -> list[dict]:
    with conn.cursor() as cur:
        cur.execute(grafana_sql(dashboard, title, selections).encode())
        cols = [d.name for d in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def _plain(rows: list[dict]) -> list[dict]:
    from dashgen.rightsizing.queries import _plain as plain

    return [{k: plain(v) for k, v in r.items()} for r in rows]


def test_dashboard_embeds_the_sql_files_verbatim_and_documents_the_rule() -> None:
    dash = render_dashboards(Config())[DASHBOARD]
    panels = {p["title"]: p for row in dash["panels"] for p in [row, *row.get("panels", [])]}
    assert panels["Rightsizing"]["targets"][0]["rawSql"] == load_sql("rightsizing")
    comparison = panels["Experiment comparison: ${experiment:text}"]
    assert comparison["targets"][0]["rawSql"] == load_sql("experiment_comparison")
    assert RULE in panels["Rightsizing"]["description"]


@pytest.mark.parametrize("selections, cli", [
    ({}, {}),
    ({"tag_key": hx("team"), "tag_value": [hx("web")]}, {"tag": "team=web"}),
    ({"name": [hx("train-8"), hx("train-2")]}, {"names": ["train-8", "train-2"]}),
    ({"cpu_threshold": "90", "headroom_pct": "0"}, {"config": {"headroom_pct": 0.0,
                                                               "thresholds": {"CPUUtilization": 90.0}}}),
])
def test_dashboard_and_cli_agree(filled, selections: dict, cli: dict) -> None:
    cfg = dataclasses.replace(Config(), **cli.pop("config", {}))
    dash = render_dashboards(cfg)[DASHBOARD]
    panel = _plain(_panel_rows(filled, dash, "Rightsizing", selections))
    assert panel == recommendations(filled, cfg, **cli)
    assert panel  # the comparison is not vacuous


def test_experiment_panel_and_cli_agree(filled) -> None:
    dash = render_dashboards(Config())[DASHBOARD]
    panel = _plain(_panel_rows(filled, dash, "Experiment comparison: ${experiment:text}",
                               {"experiment": hx("t4g-sizing")}))
    cli = compare_experiment(filled, "t4g-sizing")
    strip = {"running_hours", "cost_usd", "hours_per_pct", "usd_per_pct", "finish_at", "projected_cost_usd",
             "outcome"}  # these move with now(): compare them loosely
    assert [{k: v for k, v in r.items() if k not in strip} for r in panel] == [
        {k: v for k, v in r.items() if k not in strip} for r in cli]
    assert [r["outcome"] for r in panel] == [r["outcome"] for r in cli]


def test_hostile_filter_values_stay_values(filled) -> None:
    hostile = "x'); DROP TABLE dashgen.instances; --"
    dash = render_dashboards(Config())[DASHBOARD]
    assert _panel_rows(filled, dash, "Rightsizing", {"name": [hx(hostile)]}) == []
    assert recommendations(filled, Config(), names=[hostile]) == []
    assert recommendations(filled, Config(), tag=f"team={hostile}") == []
    assert filled.execute("SELECT count(*) FROM dashgen.instances").fetchone()[0] == 5


def test_run_sql_reports_database_errors_in_one_line(filled) -> None:
    from dashgen.errors import DatabaseError

    values = {"cpu_threshold": "eighty", "headroom_pct": "20", "cpu_percentile": "99.5", "lookback_days": "14",
              "account": [NO_FILTER], "tag_key": "team", "tag_value": [NO_FILTER], "name": [NO_FILTER]}
    with pytest.raises(DatabaseError, match=r"^rightsize: sql/rightsizing.sql: invalid input syntax"):
        run_sql(filled, "rightsizing", values)


def test_price_keys_cover_the_family_and_cheaper_classes() -> None:
    keys = rightsizing_price_keys({PriceKey("us-east-1", "m7i.2xlarge", "Linux", "Shared"),
                                   PriceKey("eu-west-1", "t4g.2xlarge", "Linux", "Shared")})
    names = {(k.region, k.instance_type) for k in keys}
    assert {("us-east-1", "m7i.xlarge"), ("us-east-1", "m7i.48xlarge"), ("us-east-1", "m6g.xlarge"),
            ("eu-west-1", "t4g.xlarge"), ("eu-west-1", "t4g.nano"), ("eu-west-1", "t3.2xlarge")} <= names
    assert ("us-east-1", "c7g.xlarge") not in names  # another class
    assert ("us-east-1", "m6g.8xlarge") not in names  # more than twice the vCPUs, other family
    # a burstable type may move to a general-purpose (m) type of its architecture when its load does not fit
    # under the baseline: half to twice its vCPUs
    assert {("eu-west-1", "m6g.xlarge"), ("eu-west-1", "m6g.2xlarge"), ("eu-west-1", "m7g.4xlarge")} <= names
    assert ("eu-west-1", "m7i.2xlarge") not in names and ("eu-west-1", "m6g.large") not in names
    assert ("eu-west-1", "c7g.2xlarge") not in names
    assert all(k.operating_system == "Linux" and k.tenancy == "Shared" for k in keys)


def test_live_ranking_from_cloudwatch_with_the_performance_thresholds() -> None:
    from dashgen.catalogue import METRICS_BY_NAME
    from dashgen.definitions.panels import metric_steps

    cfg = dataclasses.replace(Config(), thresholds={"CPUUtilization": 70.0})
    dash = render_dashboards(cfg)[DASHBOARD]
    ranking = {p["title"]: p for p in dash["panels"] if p["title"].startswith("Live ranking")}
    assert set(ranking) == {"Live ranking: CPUUtilization", "Live ranking: NetworkIn", "Live ranking: NetworkOut"}
    cpu = ranking["Live ranking: CPUUtilization"]
    (target,) = cpu["targets"]
    assert target["metricQueryType"] == 1 and target["datasource"]["type"] == "cloudwatch"
    # the Tag and Name filters apply (issue 15): $insights_where is the hidden selection variable
    assert target["sqlExpression"] == ('SELECT AVG(CPUUtilization) FROM SCHEMA("AWS/EC2", InstanceId) '
                                       "$insights_where GROUP BY InstanceId ORDER BY AVG() DESC LIMIT 100")
    hidden = next(v for v in dash["templating"]["list"] if v["name"] == "insights_where")
    assert hidden["hide"] == 2 and "dashgen.insights_selection(" in hidden["query"]
    reduce = cpu["transformations"][0]
    assert reduce["id"] == "reduce" and reduce["options"]["mode"] == "seriesToRows"
    assert cpu["fieldConfig"]["defaults"]["thresholds"]["steps"] == metric_steps(METRICS_BY_NAME["CPUUtilization"],
                                                                                  cfg)
    assert cpu["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"] == 70.0
    assert "SUM(NetworkIn)" in ranking["Live ranking: NetworkIn"]["targets"][0]["sqlExpression"]


def test_rule_variables_default_to_the_config_and_the_readme_documents_the_rule() -> None:
    from conftest import REPO

    cfg = dataclasses.replace(Config(), headroom_pct=25.0, lookback_days=30, thresholds={"CPUUtilization": 75.0})
    current = {v["name"]: v["current"]["value"] for v in render_dashboards(cfg)[DASHBOARD]["templating"]["list"]}
    assert (current["cpu_threshold"], current["headroom_pct"], current["lookback_days"]) == ("75", "25", "30")
    assert current["cpu_percentile"] == "99.5"
    p95 = dataclasses.replace(cfg, cpu_percentile=95.0)
    assert {v["name"]: v["current"]["value"] for v in render_dashboards(p95)[DASHBOARD]["templating"]["list"]}[
        "cpu_percentile"] == "95"
    readme = (REPO / "docs" / "rightsizing.md").read_text()
    for fact in ("P99.5", "5-minute CPU maxima", "x (1 - headroom)", "needed = peak / target", "30 hours",
                 "t4g.2xlarge peaking at 30 %", "-> t4g.xlarge", "memory not measured", "**baseline** bandwidth",
                 "Performance risk", "x86_64 -> arm64", "x 730", "cheapest on time"):
        assert fact in readme, fact


@pytest.mark.parametrize("progress", [1e-12, 0.0, -5.0])
def test_experiment_comparison_without_usable_progress_gives_no_finish_and_still_answers(filled, progress) -> None:
    """A progress so small that the finish would be past any timestamp (make_interval used to fail the whole
    query), none, or negative: that run's finish is unknown, the other runs unchanged."""
    before = {r["name"]: r for r in compare_experiment(filled, "t4g-sizing")}
    with filled.transaction(force_rollback=True):  # the module's other tests read the store as filled
        filled.execute("UPDATE dashgen.instance_utilisation_hourly u SET progress_pct = %s FROM dashgen.instances i "
                       "WHERE i.instance_id = u.instance_id AND i.name = 'train-2'", (progress,))
        rows = {r["name"]: r for r in compare_experiment(filled, "t4g-sizing")}
    two = rows["train-2"]
    assert two["finish_at"] is None and two["outcome"] == "no progress"
    if progress <= 0:  # no hours per percent either (a negative one would have put the finish in the past)
        assert two["hours_per_pct"] is None and two["usd_per_pct"] is None
    for name in ("train-4", "train-8"):
        assert {k: v for k, v in rows[name].items() if k != "finish_at"} == \
            {k: v for k, v in before[name].items() if k != "finish_at"}
