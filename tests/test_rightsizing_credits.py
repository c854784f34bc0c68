"""Issue 12 in the rightsizing rule: surplus CPU credits in what an instance costs now and what a candidate would
cost, and "cheaper one size up" (docs/rightsizing.md, "Credits"); checked against the independent model
tests/rightsizing_cost_model.py (exact arithmetic from the bundled data files).

The store is built as tests/test_rightsizing_acceptance.py builds it (moto's DescribeInstanceTypes through
`dashgen.instance_facts`, GetMetricData replies through botocore's Stubber, validated against CloudWatch's model, and
`fetch_hourly` / `store_hourly`), with the burstable metrics a burstable target asks for: CPUSurplusCreditsCharged
(Sum per hour) as AWS charges an unlimited instance whose balance is spent: vCPUs x 60 x (CPU - baseline) credits an
hour. Credit prices: the bundled fallback (dashgen.sync.credits, us-east-1 Linux).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from fractions import Fraction
from pathlib import Path

import boto3
import pytest

import rightsizing_cost_model as model
from dashgen.config import Config
from dashgen.rightsizing.collect import refresh_usage
from dashgen.rightsizing.queries import recommendations
from dashgen.sync.cloudwatch import Target, floor_hour, metric_queries, store_hourly
from test_rightsizing_acceptance import Load, _series, metric_results, steady, store_series
from test_rightsizing_acceptance import store as store  # noqa: F401 - the fixture

HOURS = 72


def _usd(value: Fraction) -> float:
    """As the SQL rounds a USD figure per hour (4 places) for the comparison."""
    return float(round(value, 4))


@pytest.fixture
def credit_store(store):
    from dashgen.sync.credits import CreditKey, fallback_price

    now = dt.datetime.now(dt.UTC)
    for family in ("t2", "t3", "t3a", "t4g"):
        price = fallback_price(CreditKey("us-east-1", family, "Linux"))
        store.execute("INSERT INTO dashgen.credit_prices (region, family, operating_system, usd_per_vcpu_hour, source,"
                      " fetched_at) VALUES (%s, %s, %s, %s, %s, %s)",
                      ("us-east-1", family, "Linux", price.usd_per_vcpu_hour, price.source, now))
    return store


def burstable(conn, name: str, itype: str, cpu: float, mode: str | None, *, charged: bool = True) -> list[Fraction]:
    """A burstable instance at `cpu` % all the time for 72 h, in credit mode `mode` (None: not read); CloudWatch
    reports the surplus credits AWS charges an unlimited one (none in standard mode, none when `charged` is false).
    The credits per hour it reported."""
    end = floor_hour(dt.datetime.now(dt.UTC))
    start = end - dt.timedelta(hours=HOURS)
    iid = f"i-{name}"
    conn.execute(
        "INSERT INTO dashgen.instances (instance_id, region, instance_type, name, tags, state, launch_time, platform,"
        " first_seen, last_seen, credit_mode) VALUES (%s, 'us-east-1', %s, %s, %s, 'running', %s, 'Linux/UNIX', %s,"
        " %s, %s)", (iid, itype, name, json.dumps({"Name": name}), start, start, end, mode))
    per_hour = model.credits_charged_per_hour(itype, Fraction(str(cpu))) if mode != "standard" and charged else 0
    series = _series(Load(cpu=steady(cpu), mem=steady(20.0)), start, HOURS)
    series[("CPUSurplusCreditsCharged", "Sum", 3600)] = [(start + dt.timedelta(hours=h), float(per_hour))
                                                          for h in range(HOURS)]
    series[("CPUCreditBalance", "Minimum", 3600)] = [(start + dt.timedelta(hours=h), 0.0) for h in range(HOURS)]
    target = Target(iid, True, None, itype, start, itype)
    assert any(r["Values"] and "CPUSurplusCreditsCharged" in json.dumps(q) for r, (q, _, _) in
               zip(metric_results(target, series), metric_queries([target]), strict=True)), (
        "a burstable target asks for the credits")
    store_series(conn, target, series, start, end)
    return [Fraction(per_hour)] * HOURS


def rows(conn, config: Config | None = None) -> dict[str, dict]:
    return {r["name"]: r for r in recommendations(conn, config or Config())}


def test_a_t4g_large_at_95_percent_costs_its_credits_and_is_compared_with_a_t4g_xlarge_at_48(credit_store) -> None:
    """Issue 12's case. On-Demand alone the t4g.large looks half the price of the t4g.xlarge ($0.0672 vs $0.1344,
    $49.06 a month apart); at 95 % it is charged 78 surplus credits an hour (2 x 60 x 65 %) = 1.3 vCPU-hours x
    $0.04 = $0.052/h, so it costs $0.1192/h; the t4g.xlarge at 48 % is charged 19.2 an hour ($0.0128/h): $0.1472.
    The gap is $0.028/h, not $0.0672, and every saving is computed from the figures with credits."""
    large = burstable(credit_store, "large", "t4g.large", 95.0, "unlimited")
    xlarge = burstable(credit_store, "xlarge", "t4g.xlarge", 48.0, "unlimited")
    got = rows(credit_store)
    big, small = got["large"], got["xlarge"]
    assert (big["credit_mode"], big["usd_per_hour"]) == ("unlimited", 0.0672)
    assert big["credit_usd_per_hour"] == _usd(model.now_cost("t4g.large", "unlimited", large)
                                              - model.types()["t4g.large"].price) == 0.052
    assert big["cost_usd_per_hour"] == _usd(model.now_cost("t4g.large", "unlimited", large)) == 0.1192
    assert small["cost_usd_per_hour"] == _usd(model.now_cost("t4g.xlarge", "unlimited", xlarge)) == 0.1472
    assert round(small["cost_usd_per_hour"] - big["cost_usd_per_hour"], 4) == 0.028
    # the large at 95 % spends above its 30 % baseline: in the family the 2xlarge (40 % of 8 vCPUs = 3.2 earned)
    assert (big["verdict"], big["recommended_type"]) == ("under-provisioned", "t4g.2xlarge")
    expected = model.candidate_cost("t4g.large", "t4g.2xlarge", "unlimited", Fraction(95))
    assert big["recommended_usd_per_hour"] == _usd(expected) == 0.2688
    assert big["monthly_saving_usd"] == float(round((model.now_cost("t4g.large", "unlimited", large) - expected)
                                                    * 730, 2)) == -109.21  # credits included: it costs more
    # one size up is not cheaper for a t4g (the model agrees): 0.1344 + (1.9 - 1.6) x 0.04 = $0.1464 > $0.1192
    assert model.cheaper_one_size_up("t4g.large", "unlimited", Fraction(95), large) is None
    assert big["size_up_type"] is None and "one size up" not in big["reasons"]
    assert "surplus credits now $0.0520/hour (1.30 vCPU-hours an hour at $0.04)" in big["reasons"]
    # the cheaper family counts the credits too: a non-burstable type below $0.1192 + ... is compared with them
    if big["cheaper_type"] is not None:
        assert big["cheaper_monthly_saving_usd"] == pytest.approx(
            (big["cost_usd_per_hour"] - big["cheaper_usd_per_hour"]) * 730, abs=0.01)


def test_standard_mode_pays_no_credits_and_an_unknown_mode_says_so(credit_store) -> None:
    burstable(credit_store, "std", "t4g.large", 95.0, "standard")
    unknown = burstable(credit_store, "unknown", "t4g.large", 95.0, None)
    quiet = burstable(credit_store, "quiet", "t4g.large", 20.0, "unlimited")  # under the baseline: nothing charged
    got = rows(credit_store)
    assert (got["std"]["credit_mode"], got["std"]["credit_usd_per_hour"], got["std"]["cost_usd_per_hour"]) == (
        "standard", 0, 0.0672)
    assert got["unknown"]["credit_mode"] == "unknown"
    assert got["unknown"]["cost_usd_per_hour"] == _usd(model.now_cost("t4g.large", "unknown", unknown)) == 0.1192
    assert "credit mode unknown (DescribeInstanceCreditSpecifications not read): the surplus credits CloudWatch " \
           "says were charged are counted" in got["unknown"]["reasons"]
    assert "credit mode unknown" not in got["std"]["reasons"]
    assert quiet == [0] * HOURS and got["quiet"]["credit_usd_per_hour"] == 0
    assert got["quiet"]["cost_usd_per_hour"] == 0.0672
    # a non-burstable type has no credit mode
    burstable(credit_store, "m", "m7g.large", 50.0, None, charged=False)
    assert rows(credit_store)["m"]["credit_mode"] is None


@pytest.mark.parametrize(("itype", "cpu", "mode"), [
    ("t3a.micro", 25.0, "unlimited"), ("t3a.nano", 48.0, "unlimited"), ("t3a.micro", 60.0, None),
    ("t3a.micro", 25.0, "standard"), ("t3.micro", 25.0, "unlimited"), ("t4g.nano", 30.0, "unlimited"),
    ("t4g.medium", 70.0, "unlimited"), ("t3.large", 50.0, "unlimited"), ("t2.small", 50.0, "unlimited"),
])
def test_every_figure_matches_the_model_and_one_size_up_is_named_when_cheaper(credit_store, itype, cpu, mode) -> None:
    """The t3a.micro at 25 %: $0.0094 + (0.5 - 0.2) x $0.05 = $0.0244/h now; a t3a.small would be charged
    0.5 - 0.4 = 0.1 vCPU-hour an hour: $0.0188 + $0.005 = $0.0238: cheaper one size up, $0.44 a month (the t3a
    nano -> micro and micro -> small steps are the ones where AWS's rates make it so)."""
    charged = burstable(credit_store, "x", itype, cpu, mode)
    row = rows(credit_store)["x"]
    now = model.now_cost(itype, mode or "unknown", charged)
    assert row["cost_usd_per_hour"] == _usd(now)
    assert row["credit_mode"] == (mode or "unknown")
    up = model.cheaper_one_size_up(itype, mode or "unknown", Fraction(str(cpu)), charged)
    if up is None:
        assert (row["size_up_type"], row["size_up_usd_per_hour"], row["size_up_monthly_saving_usd"]) == (
            None, None, None)
    else:
        assert (row["size_up_type"], row["size_up_usd_per_hour"], row["size_up_monthly_saving_usd"]) == (
            up[0], _usd(up[1]), float(round(now * 730 - round(up[1], 4) * 730, 2)))
        assert f"cheaper one size up: {up[0]}" in row["reasons"]
    if row["recommended_type"] is not None:  # the in-family choice at its estimated cost, credits included
        expected = model.candidate_cost(itype, row["recommended_type"], mode or "unknown", Fraction(str(cpu)))
        assert row["recommended_usd_per_hour"] == _usd(expected)
    if (itype, cpu, mode) == ("t3a.micro", 25.0, "unlimited"):
        assert (row["size_up_type"], row["size_up_usd_per_hour"], row["size_up_monthly_saving_usd"]) == (
            "t3a.small", 0.0238, 0.44)


def test_the_kept_aggregates_give_the_same_rows_as_the_hours(credit_store) -> None:
    """The fast path (dashgen.rightsizing_usage, kept by sync) and the slow one (computed from every stored hour)
    give the same rows, for the config's window and percentile and for another."""
    from test_rightsizing_acceptance import MEM_LOW, _instance

    burstable(credit_store, "large", "t4g.large", 95.0, "unlimited")
    burstable(credit_store, "micro", "t3a.micro", 25.0, "unlimited")
    _instance(credit_store, "batch", "m7i.4xlarge", Load(cpu=lambda k: 100.0 if (k // 12) % 24 == 2 else 5.0,
                                                         mem=MEM_LOW))
    _instance(credit_store, "new", "m7i.2xlarge", Load(cpu=steady(5.0), mem=MEM_LOW), hours=1)
    _instance(credit_store, "none", "m7i.large", None)
    _instance(credit_store, "p3", "p3.2xlarge", Load(cpu=steady(10.0)))
    other = dataclasses.replace(Config(), cpu_percentile=95.0)
    for config in (Config(), dataclasses.replace(Config(), cpu_percentile=90.0, lookback_days=7)):
        credit_store.execute("DELETE FROM dashgen.rightsizing_usage")
        slow, slow_other = recommendations(credit_store, config), recommendations(credit_store, other)
        with credit_store.transaction():
            assert refresh_usage(credit_store, config, dt.datetime.now(dt.UTC)) == 6
        kept = credit_store.execute("SELECT count(*), sum(hours) FROM dashgen.rightsizing_usage "
                                    "WHERE lookback_days = %s AND cpu_percentile = %s",
                                    (config.lookback_days, config.cpu_percentile)).fetchone()
        assert kept == (6, 4 * 72 + 1)
        fast = recommendations(credit_store, config)
        assert fast == slow and len(fast) == 6
        assert {"not enough data", "no data", "not analysed"} <= {r["verdict"] for r in fast}
        # another choice than the one kept is computed from the hours
        assert recommendations(credit_store, other) == slow_other
        # the rows do come from the kept aggregates: a changed one shows
        credit_store.execute("UPDATE dashgen.rightsizing_usage SET cpu_avg = 1 WHERE instance_id = 'i-batch'")
        assert {r["name"]: r["cpu_avg"] for r in recommendations(credit_store, config)}["batch"] == 1.0
        # a second refresh with nothing changed recomputes nothing; naming the instance recomputes it
        with credit_store.transaction():
            assert refresh_usage(credit_store, config, dt.datetime.now(dt.UTC)) == 0
            assert refresh_usage(credit_store, config, dt.datetime.now(dt.UTC), ["i-batch"]) == 1
        assert recommendations(credit_store, config) == slow


def test_a_resize_or_a_window_moving_on_refreshes_the_kept_row(credit_store) -> None:
    burstable(credit_store, "r", "t4g.large", 50.0, "unlimited")
    now = dt.datetime.now(dt.UTC)
    with credit_store.transaction():
        assert refresh_usage(credit_store, Config(), now) == 1
    credit_store.execute("UPDATE dashgen.instances SET instance_type = 't4g.xlarge' WHERE instance_id = 'i-r'")
    with credit_store.transaction():  # resized: its row was for the old type
        assert refresh_usage(credit_store, Config(), now) == 1
    assert credit_store.execute("SELECT instance_type, hours FROM dashgen.rightsizing_usage").fetchone() == (
        "t4g.xlarge", 0)
    credit_store.execute("UPDATE dashgen.instances SET instance_type = 't4g.large' WHERE instance_id = 'i-r'")
    with credit_store.transaction():
        assert refresh_usage(credit_store, Config(), now) == 1
        assert refresh_usage(credit_store, Config(), now + dt.timedelta(minutes=30)) == 0
        # 14 days after the oldest hour counted, it leaves the window
        later = now + dt.timedelta(days=Config().lookback_days) - dt.timedelta(hours=HOURS - 2)
        assert refresh_usage(credit_store, Config(), later) == 1
    assert credit_store.execute("SELECT hours FROM dashgen.rightsizing_usage").fetchone()[0] < HOURS
    # another window or percentile in the config: the rows kept for the old one go
    with credit_store.transaction():
        refresh_usage(credit_store, dataclasses.replace(Config(), lookback_days=7), now)
    assert credit_store.execute("SELECT DISTINCT lookback_days FROM dashgen.rightsizing_usage").fetchall() == [(7,)]


def test_the_cli_shows_credits_and_one_size_up_in_every_format(credit_store, migrated_db) -> None:
    import csv
    import io

    from typer.testing import CliRunner

    from dashgen.cli import app
    from dashgen.rightsizing.rule import RIGHTSIZING_COLUMNS

    burstable(credit_store, "micro", "t3a.micro", 25.0, "unlimited")
    runner = CliRunner()
    env = {"COLUMNS": "400"}
    table = runner.invoke(app, ["rightsize", "--dsn", migrated_db], env=env)
    assert table.exit_code == 0, table.output
    assert "Cheaper one size up" in table.output and "t3a.small ($0.0238)," in table.output
    assert "t3a.micro ($0.0094) + $0.0150 credits" in table.output
    assert "cheaper one size up: t3a.small at $0.0238/hour with its surplus credits, $0.44/month less" in table.output
    out = runner.invoke(app, ["rightsize", "--dsn", migrated_db, "--format", "json"], env=env)
    row = json.loads(out.output)[0]
    assert list(row) == list(RIGHTSIZING_COLUMNS)  # every column of the SQL, in its order
    assert (row["credit_mode"], row["credit_usd_per_hour"], row["cost_usd_per_hour"], row["size_up_type"]) == (
        "unlimited", 0.015, 0.0244, "t3a.small")
    out = runner.invoke(app, ["rightsize", "--dsn", migrated_db, "--format", "csv"], env=env)
    (got,) = list(csv.DictReader(io.StringIO(out.output)))
    assert (got["size_up_type"], got["size_up_usd_per_hour"], got["size_up_monthly_saving_usd"]) == (
        "t3a.small", "0.0238", "0.44")


def test_the_panel_shows_the_new_columns() -> None:
    from dashgen.build import render_dashboards
    from dashgen.rightsizing.rule import RIGHTSIZING_COLUMNS

    dash = render_dashboards(Config())["ec2-rightsizing.json"]
    panel = next(p for p in dash["panels"] if p.get("title") == "Rightsizing")
    assert "rightsizing_usage" in panel["targets"][0]["rawSql"]
    names = {o["matcher"]["options"] for o in panel["fieldConfig"]["overrides"]}
    assert {"credit_usd_per_hour", "cost_usd_per_hour", "size_up_type", "size_up_monthly_saving_usd"} <= names
    assert RIGHTSIZING_COLUMNS["size_up_type"][0] == "Cheaper one size up"


REFERENCE = (Path(__file__).parent / "data" / "rightsizing_reference.sql").read_text()
MIXED = ["t4g.large", "t4g.xlarge", "t4g.medium", "t3a.micro", "t3.large", "t2.small", "m7i.2xlarge", "m7i.8xlarge",
         "m6id.2xlarge", "r7i.2xlarge", "c6g.large", "m5.large", "g5.2xlarge", "g5g.2xlarge", "trn1.32xlarge",
         "inf2.48xlarge", "p3.2xlarge", "m7g.xlarge", "c7i.4xlarge", "r6g.large"]


def _mixed_fleet(conn, seed: int, n: int = 60) -> None:
    """`n` instances of many types (with and without facts, burstable in every credit mode, GPUs, Neuron devices,
    instance store), random loads over 40-200 hours: 5-minute CPU maxima with gaps, memory (or not), network, EBS,
    surplus credits."""
    import random

    from dashgen.sync.cloudwatch import HourlyRow

    rnd = random.Random(seed)
    end = floor_hour(dt.datetime.now(dt.UTC))
    rows = []
    for i in range(n):
        itype = rnd.choice(MIXED)
        iid = f"i-mix{i:03d}"
        hours = rnd.choice([5, 40, 100, 200])
        conn.execute(
            "INSERT INTO dashgen.instances (instance_id, region, instance_type, name, tags, state, launch_time,"
            " platform, first_seen, last_seen, credit_mode) VALUES (%s, 'us-east-1', %s, %s, %s, %s, %s,"
            " 'Linux/UNIX', %s, %s, %s)",
            (iid, itype, f"mix-{i}", json.dumps({"Name": f"mix-{i}", "team": f"t{i % 3}"}),
             rnd.choice(["running", "running", "stopped"]), end - dt.timedelta(hours=hours),
             end - dt.timedelta(hours=hours), end, rnd.choice([None, "standard", "unlimited", "unlimited"])))
        level = rnd.choice([3, 15, 30, 45, 70, 95])
        mem = rnd.choice([None, 10.0, 40.0, 85.0])
        net = rnd.choice([1e6, 1e8, 5e9])
        for h in range(hours):
            five = [None if rnd.random() < 0.05 else min(100.0, max(0.0, rnd.gauss(level, 3))) for _ in range(12)]
            five[rnd.randrange(12)] = float(level)
            values = {"cpu_avg": float(level) + rnd.uniform(-2, 2), "cpu_max": max(v for v in five if v is not None),
                      "cpu_max_5m": five, "mem_used_max": None if mem is None else mem + rnd.uniform(0, 5),
                      "network_in_max_5m": net * rnd.random(), "network_out_max_5m": net * rnd.random(),
                      "packets_max_5m": 1e4, "ebs_ops_max_5m": rnd.choice([0.0, 3e4, 3e5]),
                      "ebs_bytes_max_5m": rnd.choice([0.0, 3e8, 3e9]),
                      "cpu_surplus_credits_charged": max(0.0, (level - 30) * 1.2) if itype.startswith("t") else None}
            rows.append(HourlyRow(iid, end - dt.timedelta(hours=h + 1), values, itype))
    with conn.transaction():
        store_hourly(conn, rows)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_fast_rule_gives_the_rows_of_the_straightforward_one(credit_store, seed: int) -> None:
    """sql/rightsizing.sql searches candidates once per type and rounded needs, reads the aggregates sync keeps and
    computes the risk per row; tests/data/rightsizing_reference.sql pairs every instance with every type, with the
    aggregates computed from every stored hour: the same rows, for several choices of the dashboard's variables."""
    from dashgen.rightsizing.queries import _plain, rightsizing_values, run_sql
    from dashgen.store import sqlvars

    _mixed_fleet(credit_store, seed)
    with credit_store.transaction():
        refresh_usage(credit_store, Config(), dt.datetime.now(dt.UTC))
    choices = [{}, {"cpu_threshold": "60", "headroom_pct": "0", "cpu_percentile": "90"},
               {"cpu_threshold": "90", "headroom_pct": "30", "lookback_days": "7"}]
    for choice in choices:  # the dashboard's variables: the config's defaults, then other values it offers
        values = {**rightsizing_values(Config()), **choice}
        fast = run_sql(credit_store, "rightsizing", values)
        kept = credit_store.execute("SELECT * FROM dashgen.rightsizing_usage").fetchall()
        credit_store.execute("DELETE FROM dashgen.rightsizing_usage")
        query, params = sqlvars.bind(REFERENCE, values, source="rightsizing_reference.sql")
        cur = credit_store.execute(query.encode(), params)
        names = [d.name for d in cur.description]
        reference = [{c: _plain(v) for c, v in zip(names, row, strict=True)} for row in cur.fetchall()]
        assert fast == reference
        assert len({r["verdict"] for r in fast}) >= 3 and len(fast) == 60
        assert any(r["cheaper_type"] for r in fast) and any(r["credit_usd_per_hour"] for r in fast)
        with credit_store.cursor() as c:  # the kept rows back, for the next choice
            c.executemany("INSERT INTO dashgen.rightsizing_usage VALUES (" + ", ".join(["%s"] * len(kept[0])) + ")",
                          kept)


def test_sync_keeps_the_aggregates(migrated_db, monkeypatch) -> None:
    """`dashgen sync` refreshes dashgen.rightsizing_usage in its write, as of its own time, for the config's window
    and percentile (moto EC2 and CloudWatch, as tests/test_cost_truth.py)."""
    import psycopg
    from moto import mock_aws

    from dashgen.sync import sync
    from test_cost_truth import ten_hours_at_full_cpu

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        iid, _, end = ten_hours_at_full_cpu(session, monkeypatch, mode="unlimited")
        now = end + dt.timedelta(minutes=5)
        assert sync(Config(), dsn=migrated_db, prices="bundled", session=session, now=now).ok
    with psycopg.connect(migrated_db) as conn:
        kept = conn.execute("SELECT instance_id, lookback_days, cpu_percentile, instance_type, refreshed_at "
                            "FROM dashgen.rightsizing_usage").fetchall()
    assert kept == [(iid, Config().lookback_days, Config().cpu_percentile, "t4g.large", now)]
