"""Accounts and regions at once (issue 13): `[aws] accounts` (role ARNs) and `organization_role`, every
(account, region) pair read concurrently with its failures isolated, the account stored with each instance, and
the dashboards' Account filter on the store panels.

AWS is moto. moto keeps one backend per account and picks it from the request's access key (moto/core/
responses.py `get_current_account`: the `MOTO_ACCOUNT_ID` variable, else an `x-moto-account-id` header, else
`moto.iam.models.get_account_id_from(access key)`); `sts:AssumeRole` (moto/sts/models.py `assume_role`) creates
an access key in the IAM backend of the role ARN's account, so the assumed role's credentials reach that account's
EC2, and the caller's own credentials the default account 123456789012 (checked below, not assumed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from typer.testing import CliRunner

from cost_scenario import LINUX_AMI
from dashgen.cli import app
from dashgen.config import Config, parse_config
from dashgen.errors import ConfigError
from dashgen.store.sqlvars import ALL_VALUE, encode
from grafana_sql import ALL, expand

A, B, CALLER = "111111111111", "222222222222", "123456789012"
ROLE_A, ROLE_B = f"arn:aws:iam::{A}:role/dashgen-sync", f"arn:aws:iam::{B}:role/dashgen-sync"
REGIONS = ("us-east-1", "eu-west-1")
runner = CliRunner()


@pytest.fixture
def moto_aws(monkeypatch) -> Iterator[boto3.Session]:
    """moto, and the caller's session (account 123456789012)."""
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


def as_role(caller: boto3.Session, role_arn: str) -> boto3.Session:
    """A session on the role's credentials, from the caller's (as a person setting up the test fleet would)."""
    got = caller.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="setup")["Credentials"]
    return boto3.Session(aws_access_key_id=got["AccessKeyId"], aws_secret_access_key=got["SecretAccessKey"],
                         aws_session_token=got["SessionToken"])


def launch(caller: boto3.Session) -> dict[str, tuple[str, str]]:
    """Two instances in each of A and B, one per region (tag team=<account>): instance id -> (account, region)."""
    out = {}
    for account, role in ((A, ROLE_A), (B, ROLE_B)):
        session = as_role(caller, role)
        for region in REGIONS:
            ec2 = session.client("ec2", region_name=region)
            tags = [{"Key": "team", "Value": account}, {"Key": "Name", "Value": f"{account}-{region}"}]
            made = ec2.run_instances(ImageId=LINUX_AMI, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                                     TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
            out[made["Instances"][0]["InstanceId"]] = (account, region)
    return out


def stored(dsn: str) -> dict[str, tuple[str | None, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT instance_id, account_id, region FROM dashgen.instances")
        return {r[0]: (r[1], r[2]) for r in rows}


def accounts_config(**aws: object) -> Config:
    return parse_config({"aws": {"regions": list(REGIONS), "accounts": [ROLE_A, ROLE_B], **aws}}, "dashgen.toml")


def refuse_role(session: boto3.Session, role_arn: str) -> None:
    """STS answers AssumeRole for `role_arn` with AccessDenied (HTTP 403), as it does for a role whose trust
    policy does not name the caller (the error shape of STS's AssumeRole reference: Error Code, Message)."""
    def deny(params, **_):
        if params.get("RoleArn") == role_arn:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": f"User: arn:aws:iam::{CALLER}:user/"
                                         f"dashgen is not authorized to perform: sts:AssumeRole on resource: "
                                         f"{role_arn}"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
                              "AssumeRole")

    session.events.register("before-parameter-build.sts.AssumeRole", deny)


# ---------------------------------------------------------------- moto separates the accounts (checked)

def test_moto_keeps_each_assumed_accounts_instances_apart(moto_aws) -> None:
    launched = launch(moto_aws)
    seen_by = {}
    for account, session in ((A, as_role(moto_aws, ROLE_A)), (B, as_role(moto_aws, ROLE_B)), (CALLER, moto_aws)):
        ids = set()
        for region in REGIONS:
            pages = session.client("ec2", region_name=region).get_paginator("describe_instances").paginate()
            ids |= {i["InstanceId"] for p in pages for r in p["Reservations"] for i in r["Instances"]}
        seen_by[account] = ids
        assert session.client("sts").get_caller_identity()["Account"] == account
    assert seen_by[A] == {i for i, (acct, _) in launched.items() if acct == A}
    assert seen_by[B] == {i for i, (acct, _) in launched.items() if acct == B}
    assert seen_by[CALLER] == set()


# ---------------------------------------------------------------- acceptance: land, isolate, filter

def test_two_accounts_by_two_regions_land_with_their_account_ids(fresh_db, moto_aws) -> None:
    from dashgen.sync import sync

    launched = launch(moto_aws)
    calls = []
    moto_aws.events.register("before-parameter-build.sts.AssumeRole",
                             lambda params, **_: calls.append(params["RoleArn"]))
    result = sync(accounts_config(), dsn=fresh_db, prices="bundled", session=moto_aws)
    assert result.exit_code == 0 and result.failed_regions == {}
    assert sorted(result.regions) == sorted(f"{r} of account {a}" for a in (A, B) for r in REGIONS)
    assert stored(fresh_db) == launched  # each instance with the account and region it was launched in
    assert sorted(calls) == [ROLE_A, ROLE_B]  # one AssumeRole per account, shared by its regions' reads
    with psycopg.connect(fresh_db) as conn:  # the runs and the rollups know the account too
        groups = conn.execute("SELECT account_id, sum(running_delta) FROM dashgen.cost_events_hourly "
                              "GROUP BY 1 ORDER BY 1").fetchall()
    assert groups == [(A, 2), (B, 2)]


def test_a_refused_role_is_one_line_per_pair_and_the_rest_land_with_exit_3(fresh_db, moto_aws, tmp_path,
                                                                           monkeypatch) -> None:
    launched = launch(moto_aws)
    refuse_role(moto_aws, ROLE_B)
    monkeypatch.setattr(boto3, "Session", lambda *a, **kw: moto_aws)  # what the CLI's boto3.Session() gives
    monkeypatch.chdir(tmp_path)
    Path("dashgen.toml").write_text(f'[aws]\nregions = ["us-east-1", "eu-west-1"]\naccounts = ["{ROLE_A}", '
                                    f'"{ROLE_B}"]\n')
    result = runner.invoke(app, ["sync", "--dsn", fresh_db, "--prices", "bundled"])
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    denied = (f"AssumeRole: AccessDenied (HTTP 403): User: arn:aws:iam::{CALLER}:user/dashgen is not authorized to "
              f"perform: sts:AssumeRole on resource: {ROLE_B}")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: region eu-west-1 of account {B} not synced: {denied}",
                      f"error: region us-east-1 of account {B} not synced: {denied}"]
    assert stored(fresh_db) == {i: where for i, where in launched.items() if where[0] == A}


def test_one_region_of_one_account_failing_costs_only_that_pair(fresh_db, moto_aws, monkeypatch) -> None:
    """A region stubbed to fail (DescribeInstances answers 503 for A's eu-west-1 only): one line naming the
    account and the region, the three other pairs land, exit 3."""
    from dashgen import sync as sync_mod

    launched = launch(moto_aws)
    real = sync_mod.describe_region

    def flaky(client, region, account_id=None):
        if (account_id, region) == (A, "eu-west-1"):
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "Service is unavailable"},
                               "ResponseMetadata": {"HTTPStatusCode": 503}}, "DescribeInstances")
        return real(client, region, account_id)

    monkeypatch.setattr(sync_mod, "describe_region", flaky)
    result = sync_mod.sync(accounts_config(), dsn=fresh_db, prices="bundled", session=moto_aws)
    assert result.exit_code == 3
    assert result.failed_regions == {
        f"eu-west-1 of account {A}": "DescribeInstances: ServiceUnavailable (HTTP 503): Service is unavailable"}
    assert stored(fresh_db) == {i: w for i, w in launched.items() if w != (A, "eu-west-1")}


def test_a_gone_instance_is_closed_only_by_its_own_pair(fresh_db, moto_aws) -> None:
    """An instance terminated in B while B's role is refused keeps its run open (B did not answer); A's
    instances, still there, stay open too; once B answers, the terminated one is closed."""
    from dashgen.sync import sync

    launched = launch(moto_aws)
    config = accounts_config()
    now = dt.datetime.now(dt.UTC)
    sync(config, dsn=fresh_db, prices="bundled", session=moto_aws, now=now)
    gone = next(i for i, w in launched.items() if w == (B, "us-east-1"))
    as_role(moto_aws, ROLE_B).client("ec2", region_name="us-east-1").terminate_instances(InstanceIds=[gone])
    moto_aws.client("ec2", region_name="us-east-1")  # (the caller sees none of it)

    def open_runs() -> set[str]:
        with psycopg.connect(fresh_db) as conn:
            return {r[0] for r in conn.execute("SELECT instance_id FROM dashgen.instance_intervals "
                                               "WHERE ended_at IS NULL")}

    refused = boto3.Session(region_name="us-east-1")
    refuse_role(refused, ROLE_B)
    later = sync(config, dsn=fresh_db, prices="bundled", session=refused, now=now + dt.timedelta(minutes=15))
    assert later.exit_code == 3 and open_runs() == set(launched)
    sync(config, dsn=fresh_db, prices="bundled", session=moto_aws, now=now + dt.timedelta(minutes=30))
    assert open_runs() == set(launched) - {gone}


def test_the_account_filter_narrows_the_cost_panels_to_one_account(fresh_db, moto_aws) -> None:
    """The shipped SQL of the cost panels, as Grafana sends it (grafana_sql.expand), with the Account variable's
    options as its query gives them: one account selects its instances and costs only, All every account."""
    from dashgen.build import render_dashboards
    from dashgen.grafana.validate import all_panels
    from dashgen.sync import sync

    launched = launch(moto_aws)
    sync(accounts_config(), dsn=fresh_db, prices="bundled", session=moto_aws, now=dt.datetime.now(dt.UTC))
    cost = next(d for d in render_dashboards(Config()).values() if d["uid"] == "dashgen-ec2-cost")
    variables = {v["name"]: v for v in cost["templating"]["list"]}
    assert variables["account"]["allValue"] == ALL_VALUE and variables["account"]["current"]["value"] == "$__all"
    frm, to = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    all_values = {name: v["allValue"] for name, v in variables.items() if "allValue" in v}

    def rows(sql: str, account: object) -> list[dict]:
        values = {"account": account, "tag_key": encode("team"), "tag_value": ALL, "name": ALL, "experiment": ALL}
        with psycopg.connect(fresh_db) as conn:
            cur = conn.execute(expand(sql, time_from=frm, time_to=to, variables=values, all_values=all_values))
            return [dict(zip([d.name for d in cur.description], r, strict=True)) for r in cur]

    options = rows(variables["account"]["query"], ALL)
    assert options == [{"__text": A, "__value": encode(A)}, {"__text": B, "__value": encode(B)}]

    def panel(title: str) -> str:
        return next(p for p in all_panels(cost) if p["title"] == title)["targets"][0]["rawSql"]

    only_a = rows(panel("Cost per instance"), [encode(A)])
    every = rows(panel("Cost per instance"), ALL)
    assert {r["Instance"]: r["Account"] for r in only_a} == {i: a for i, (a, _) in launched.items() if a == A}
    assert {r["Instance"]: r["Account"] for r in every} == {i: a for i, (a, _) in launched.items()}
    # by tag (team = the account): one group under A, both under All
    assert [r["Tag value"] for r in rows(panel("Cost by tag value"), [encode(A)])] == [A]
    assert sorted(r["Tag value"] for r in rows(panel("Cost by tag value"), ALL)) == [A, B]
    # cumulative cost (the us-east-1 instances have a bundled price): A's series only, and A's total is what
    # "Cost per instance" says for A's priced instance, from the rollups the account keys (migration 070)
    series = {r["metric"] for r in rows(panel("Cumulative cost in the time range"), [encode(A)])}
    assert series == {A, "(all selected)"}
    assert {r["metric"] for r in rows(panel("Cumulative cost in the time range"), ALL)} == {A, B, "(all selected)"}
    # the tag values and names offered follow the account
    tag_values = next(v for name, v in variables.items() if name == "tag_value")["query"]
    assert [r["__text"] for r in rows(tag_values, [encode(A)])] == [A]
    # a value that is no account (typed by hand) matches nothing, breaks nothing
    assert rows(panel("Cost per instance"), [encode("999999999999")]) == []


# ---------------------------------------------------------------- the roles: refresh, organization, config

def test_an_assumed_role_is_assumed_again_before_its_credentials_expire(moto_aws) -> None:
    """A sync that outlives the role's credentials (DurationSeconds 3600) goes on: botocore's refreshable
    credentials call AssumeRole again when they are about to expire."""
    from dashgen.sync.accounts import Account, Accounts

    calls = []
    moto_aws.events.register("before-parameter-build.sts.AssumeRole",
                             lambda params, **_: calls.append(params["RoleArn"]))
    accounts = Accounts([Account(A, ROLE_A)], moto_aws)
    session = accounts.pair_session(Account(A, ROLE_A))
    first = session.get_credentials().get_frozen_credentials()
    assert session.client("sts", region_name="us-east-1").get_caller_identity()["Account"] == A
    creds = accounts._credentials[ROLE_A]
    # 48 minutes into the sync: 12 minutes left, within botocore's advisory refresh (15 minutes before expiry)
    creds._time_fetcher = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(minutes=48)
    again = accounts.pair_session(Account(A, ROLE_A)).get_credentials().get_frozen_credentials()
    assert again.access_key != first.access_key and calls == [ROLE_A, ROLE_A]


def test_organization_role_reads_every_active_account_of_the_organization(fresh_db, moto_aws) -> None:
    from dashgen.sync import sync
    from dashgen.sync.accounts import resolve

    orgs = moto_aws.client("organizations", region_name="us-east-1")
    orgs.create_organization(FeatureSet="ALL")
    member = orgs.create_account(AccountName="ml", Email="ml@example.com")["CreateAccountStatus"]["AccountId"]
    config = parse_config({"aws": {"organization_role": "dashgen-sync", "accounts": [ROLE_A]}}, "dashgen.toml")
    found = resolve(config, moto_aws)
    assert {a.account_id: a.role_arn for a in found.accounts} == {
        A: ROLE_A, CALLER: f"arn:aws:iam::{CALLER}:role/dashgen-sync",
        member: f"arn:aws:iam::{member}:role/dashgen-sync"}
    ec2 = as_role(moto_aws, f"arn:aws:iam::{member}:role/dashgen-sync").client("ec2", region_name="us-east-1")
    made = ec2.run_instances(ImageId=LINUX_AMI, InstanceType="t3.micro", MinCount=1, MaxCount=1)
    result = sync(config, dsn=fresh_db, prices="bundled", session=moto_aws)
    assert result.exit_code == 0
    assert stored(fresh_db) == {made["Instances"][0]["InstanceId"]: (member, "us-east-1")}


def test_an_organization_that_cannot_be_listed_is_one_line(fresh_db, moto_aws) -> None:
    """ListAccounts refused (a member account calling it: AccessDeniedException, HTTP 400 as Organizations answers
    it): with no role ARN listed the sync stops in one line; with some, it is a warning and those are read. An
    organization with no ACTIVE account is one line too (moto lists none without an organization)."""
    from dashgen.errors import AwsError
    from dashgen.sync import sync

    config = parse_config({"aws": {"organization_role": "dashgen-sync"}}, "dashgen.toml")
    with pytest.raises(AwsError) as empty:
        sync(config, dsn=fresh_db, prices="bundled", session=moto_aws)
    assert str(empty.value) == ("AWS Organizations: ListAccounts gave no ACTIVE account (aws.organization_role): "
                                "nothing to read")

    def refuse(**_):
        raise ClientError({"Error": {"Code": "AccessDeniedException",
                                     "Message": "You don't have permissions to access this resource."},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, "ListAccounts")

    moto_aws.events.register("before-parameter-build.organizations.ListAccounts", refuse)
    with pytest.raises(AwsError) as err:
        sync(config, dsn=fresh_db, prices="bundled", session=moto_aws)
    assert str(err.value) == ("AWS Organizations: accounts not listed (ListAccounts: AccessDeniedException "
                              "(HTTP 400): You don't have permissions to access this resource.)")
    assert "\n" not in str(err.value)
    both = parse_config({"aws": {"organization_role": "dashgen-sync", "accounts": [ROLE_A]}}, "dashgen.toml")
    result = sync(both, dsn=fresh_db, prices="bundled", session=moto_aws)
    assert result.exit_code == 0 and result.regions == [f"us-east-1 of account {A}"]
    assert [w for w in result.warnings if "Organizations" in w] == [
        f"WARNING: {str(err.value)}; reading the 1 accounts of aws.accounts only"]


def test_without_accounts_the_callers_account_is_read_and_stored(fresh_db, moto_aws) -> None:
    from dashgen.sync import sync

    made = moto_aws.client("ec2").run_instances(ImageId=LINUX_AMI, InstanceType="t3.micro", MinCount=1, MaxCount=1)
    result = sync(Config(), dsn=fresh_db, prices="bundled", session=moto_aws)
    assert result.exit_code == 0 and result.regions == ["us-east-1"]  # named as before accounts
    assert stored(fresh_db) == {made["Instances"][0]["InstanceId"]: (CALLER, "us-east-1")}


@pytest.mark.parametrize(("aws", "message"), [
    ({"accounts": "arn:aws:iam::111111111111:role/x"}, "aws.accounts: expected a list of IAM role ARNs"),
    ({"accounts": ["arn:aws:iam::1111:role/x"]},
     "aws.accounts: expected IAM role ARNs like 'arn:aws:iam::111111111111:role/dashgen-sync' (STS RoleArn: "
     "20-2048 characters), got 'arn:aws:iam::1111:role/x'"),
    ({"accounts": ["arn:aws:iam::111111111111:user/x"]}, "got 'arn:aws:iam::111111111111:user/x'"),
    ({"accounts": [ROLE_A, f"arn:aws:iam::{A}:role/other"]},
     f"aws.accounts: expected one role per account (account {A} is listed twice), got 'arn:aws:iam::{A}:role/other'"),
    ({"organization_role": "has space"}, "aws.organization_role: expected an IAM role name"),
    ({"accounts": [ROLE_A], "session_name": "x"}, "aws.session_name: expected 2-64 letters"),
    ({"accounts": [ROLE_A], "concurrency": 0}, "aws.concurrency: expected a whole number from 1 to 64"),
    ({"accounts": [ROLE_A], "concurrency": True}, "aws.concurrency: expected a whole number from 1 to 64"),
    ({"external_id": "abcdef"}, "aws.external_id: expected aws.accounts or aws.organization_role beside it"),
    ({"accounts": [ROLE_A], "external_id": "s3cret value!"},
     "aws.external_id: expected 2-1224 letters, digits and +=,.@:/_- (STS ExternalId), got a value of 13 characters"),
])
def test_a_bad_accounts_value_is_one_line_naming_the_key(aws, message) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"aws": aws}, "dashgen.toml")
    text = str(err.value)
    assert text.startswith("dashgen.toml: aws.") and message in text and "\n" not in text
    assert "s3cret" not in text  # an external id is never echoed


def test_the_external_id_and_session_name_reach_assume_role(moto_aws) -> None:
    from dashgen.sync.accounts import Account, resolve

    config = accounts_config(external_id="team-42:dashgen", session_name="dashgen-prod")
    sent = []
    moto_aws.events.register("before-parameter-build.sts.AssumeRole", lambda params, **_: sent.append(params))
    found = resolve(config, moto_aws)
    assert [a.account_id for a in found.accounts] == [A, B]
    found.pair_session(Account(A, ROLE_A)).client("sts", region_name="us-east-1").get_caller_identity()
    assert [(p["RoleArn"], p["RoleSessionName"], p["ExternalId"], p["DurationSeconds"]) for p in sent] == [
        (ROLE_A, "dashgen-prod", "team-42:dashgen", 3600)]


def test_the_pairs_are_read_at_once_up_to_the_bound(moto_aws, monkeypatch) -> None:
    """`[aws] concurrency` bounds the pairs read at once: 2 accounts x 2 regions with a bound of 2 never has more
    than 2 inventory reads in flight, and does have 2."""
    import threading
    import time

    from dashgen import sync as sync_mod
    from dashgen.sync.accounts import resolve

    launch(moto_aws)
    lock, state = threading.Lock(), {"now": 0, "most": 0}
    real = sync_mod.describe_region

    def counted(client, region, account_id=None):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            time.sleep(0.2)
            return real(client, region, account_id)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(sync_mod, "describe_region", counted)
    config = accounts_config(concurrency=2)
    budgets = sync_mod.region_budgets(config, list(REGIONS), 60)
    accounts = resolve(config, moto_aws)
    for account in accounts.accounts:
        for region in REGIONS:
            budgets.setdefault(account.where(region), sync_mod.Budget(account.where(region), 60))
    reads = sync_mod.read_pairs(accounts, list(REGIONS), budgets, dt.datetime.now(dt.UTC), concurrency=2)
    assert [(r.account.account_id, r.region, r.error, len(r.instances)) for r in reads] == [
        (acct, region, None, 1) for acct in (A, B) for region in REGIONS]  # in the pairs' order
    assert state["most"] == 2


def test_the_pairs_utilisation_is_read_at_once_too(fresh_db, moto_aws, monkeypatch) -> None:
    """CloudWatch, the slowest read, goes pair by pair in parallel as well (`[aws] concurrency`), each pair with
    its own client, and the sync's result is the same."""
    import threading
    import time

    from dashgen.sync import cloudwatch, sync

    launch(moto_aws)
    lock, state = threading.Lock(), {"now": 0, "most": 0, "accounts": []}
    real = cloudwatch.read_utilisation_into

    def counted(conn, client, region, into, **kw):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
            state["accounts"].append((kw.get("account_id"), region,
                                      client.meta.region_name))
        try:
            time.sleep(0.2)
            return real(conn, client, region, into, **kw)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(cloudwatch, "read_utilisation_into", counted)
    result = sync(accounts_config(concurrency=3), dsn=fresh_db, prices="bundled", session=moto_aws)
    assert result.exit_code == 0
    assert sorted(state["accounts"]) == sorted((a, r, r) for a in (A, B) for r in REGIONS)
    assert state["most"] == 3
