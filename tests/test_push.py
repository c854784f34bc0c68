"""push as a library: the plan (pure), apply against the in-test Grafana, ownership, conflicts, folders."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from dashgen.config import Config
from dashgen.errors import ConfigError, GrafanaError
from dashgen.grafana import push
from dashgen.grafana.client import Connection, GrafanaClient
from dashgen.grafana.compare import RECORD_KEY, describe
from dashgen.grafana.push import Action
from grafana_server import ADMIN_TOKEN

PERF = "dashgen-ec2-performance"


@pytest.fixture
def client(grafana_server):
    with GrafanaClient(Connection(grafana_server.url, token=ADMIN_TOKEN)) as c:
        yield c


def run(client, directory: Path, config: Config | None = None, **kw) -> tuple[push.Plan, push.ApplyResult]:
    config = config or Config()
    force = kw.pop("force", False)
    plan = push.prepare(client, directory, config, force=force, prune=kw.pop("prune", False))
    return plan, push.apply(plan, client, message=push.version_message("abc123"), **kw)


def edit_file(directory: Path, uid: str, change) -> None:
    path = next(p for p in directory.glob("*.json") if json.loads(p.read_text())["uid"] == uid)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def retitle_first_panel(title: str):
    return lambda d: d["panels"][0].update(title=title)


def by_uid(plan: push.Plan) -> dict[str, push.Change]:
    return {c.uid: c for c in plan.changes}


# -- first push, idempotence -----------------------------------------------------------------------
def test_first_push_creates_folder_then_dashboards_with_history_message(client, grafana_server, dashboards_dir):
    plan, result = run(client, dashboards_dir)
    files = sorted(dashboards_dir.glob("*.json"))
    assert plan.create_folder and [c.action for c in plan.changes] == [Action.CREATE] * len(files)
    assert result.ok and result.folder_created and len(result.landed) == len(files)
    state = grafana_server.state
    assert state.requests.index(("POST", "/api/folders")) < state.requests.index(("POST", "/api/dashboards/db"))
    assert state.folders["dashgen"]["title"] == "dashgen"
    stored = state.dashboards[PERF]
    assert stored.folder_uid == "dashgen" and stored.versions == [(1, "dashgen push (git abc123)")]
    assert RECORD_KEY in stored.dashboard


def test_second_push_makes_zero_writes(client, grafana_server, dashboards_dir):
    run(client, dashboards_dir)
    grafana_server.state.reset_counts()
    plan, result = run(client, dashboards_dir)
    assert plan.is_empty() and not result.landed and result.ok
    assert grafana_server.state.writes == 0
    # Grafana (Go) hands whole floats back as ints: the comparison and the hash must not care.
    assert '80.0' in (dashboards_dir / "ec2-performance.json").read_text()
    assert '80.0' not in json.dumps(grafana_server.state.dashboards[PERF].dashboard)


def test_plan_reads_only_dashboards_that_exist(client, grafana_server, dashboards_dir):
    push.prepare(client, dashboards_dir, Config())
    assert grafana_server.state.count("GET", "/api/dashboards/uid/") == 0  # nothing there yet: no GETs
    assert grafana_server.state.writes == 0


def test_changed_file_is_an_update_described_by_panel_title(client, grafana_server, dashboards_dir):
    run(client, dashboards_dir)
    edit_file(dashboards_dir, PERF, retitle_first_panel("Hot instances"))
    plan, result = run(client, dashboards_dir)
    change = by_uid(plan)[PERF]
    assert change.action is Action.UPDATE and change.version == 1
    assert "+ panel 'Hot instances'" in change.details
    assert [c.uid for c, _ in result.landed] == [PERF]
    stored = grafana_server.state.dashboards[PERF]
    assert stored.version == 2 and stored.dashboard["panels"][0]["title"] == "Hot instances"
    assert run(client, dashboards_dir)[0].is_empty()


def test_moving_to_the_configured_folder_is_an_update(client, grafana_server, dashboards_dir):
    run(client, dashboards_dir)
    grafana_server.state.dashboards[PERF].folder_uid = ""
    change = by_uid(push.prepare(client, dashboards_dir, Config()))[PERF]
    assert change.action is Action.UPDATE and change.details[0] == "~ folder: 'General' -> 'dashgen'"


# -- conflicts -------------------------------------------------------------------------------------
def test_ui_edit_between_pushes_is_a_conflict_naming_the_difference(client, grafana_server, dashboards_dir):
    run(client, dashboards_dir)
    grafana_server.state.ui_edit(PERF, retitle_first_panel("Edited by a person"))
    edit_file(dashboards_dir, PERF, lambda d: d.update(refresh="1m"))
    grafana_server.state.reset_counts()
    plan, result = run(client, dashboards_dir)
    change = by_uid(plan)[PERF]
    assert change.action is Action.CONFLICT and "changed in Grafana since dashgen last pushed" in change.reason
    assert "- panel 'Edited by a person'" in change.details and any("refresh" in d for d in change.details)
    assert not result.ok and [c.uid for c, _ in result.conflicts] == [PERF]
    assert grafana_server.state.writes == 0
    assert grafana_server.state.dashboards[PERF].dashboard["panels"][0]["title"] == "Edited by a person"


def test_force_overwrites_the_ui_edit(client, grafana_server, dashboards_dir):
    run(client, dashboards_dir)
    grafana_server.state.ui_edit(PERF, retitle_first_panel("Edited by a person"))
    plan, result = run(client, dashboards_dir, force=True)
    assert by_uid(plan)[PERF].action is Action.UPDATE and "--force" in by_uid(plan)[PERF].reason
    assert result.ok and grafana_server.state.dashboards[PERF].version == 3
    assert run(client, dashboards_dir)[0].is_empty()


def test_ui_save_that_drops_dashgens_record_is_a_conflict(client, grafana_server, dashboards_dir):
    run(client, dashboards_dir)
    grafana_server.state.ui_edit(PERF, lambda d: (d.pop(RECORD_KEY), d.update(refresh="1h")))
    assert by_uid(push.prepare(client, dashboards_dir, Config()))[PERF].action is Action.CONFLICT


def test_reverted_ui_edit_is_unchanged(client, grafana_server, dashboards_dir):
    run(client, dashboards_dir)
    grafana_server.state.ui_edit(PERF, lambda d: d.update(refresh="1h"))
    grafana_server.state.ui_edit(PERF, lambda d: d.update(refresh="5m"))
    assert push.prepare(client, dashboards_dir, Config()).is_empty()


def test_unmanaged_dashboard_with_the_same_uid_is_not_taken_over(client, grafana_server, dashboards_dir):
    grafana_server.state.put({"uid": PERF, "title": "Someone else's", "tags": ["team"]})
    change = by_uid(push.prepare(client, dashboards_dir, Config()))[PERF]
    assert change.action is Action.CONFLICT and "not managed by dashgen" in change.reason
    change = by_uid(push.prepare(client, dashboards_dir, Config(), force=True))[PERF]
    assert change.action is Action.UPDATE


def test_race_after_planning_gives_grafanas_412_as_a_conflict(client, grafana_server, dashboards_dir):
    run(client, dashboards_dir)
    edit_file(dashboards_dir, PERF, lambda d: d.update(refresh="1m"))
    plan = push.prepare(client, dashboards_dir, Config())
    assert by_uid(plan)[PERF].action is Action.UPDATE
    grafana_server.state.ui_edit(PERF, retitle_first_panel("Saved meanwhile"))  # between plan and apply
    result = push.apply(plan, client, message="m")
    assert [c.uid for c, _ in result.conflicts] == [PERF] and "412 version-mismatch" in result.conflicts[0][1]
    assert grafana_server.state.dashboards[PERF].dashboard["panels"][0]["title"] == "Saved meanwhile"


def test_create_race_is_a_conflict_too(client, grafana_server, dashboards_dir):
    plan = push.prepare(client, dashboards_dir, Config())
    grafana_server.state.put({"uid": PERF, "title": "Created meanwhile", "tags": []})
    result = push.apply(plan, client, message="m")
    assert PERF in [c.uid for c, _ in result.conflicts]
    assert grafana_server.state.dashboards[PERF].dashboard["title"] == "Created meanwhile"


# -- provisioning ----------------------------------------------------------------------------------
def test_provisioned_dashboard_is_refused_even_with_force(client, grafana_server, dashboards_dir):
    data = json.loads((dashboards_dir / "ec2-performance.json").read_text())
    grafana_server.state.put({**data, "refresh": "1h"}, provisioned=True)
    for force in (False, True):
        change = by_uid(push.prepare(client, dashboards_dir, Config(), force=force))[PERF]
        assert change.action is Action.CONFLICT and not change.forceable
        assert "provisioned" in change.reason and "provisioning/" in change.reason


def test_provisioned_dashboard_that_matches_is_unchanged(client, grafana_server, dashboards_dir):
    for path in dashboards_dir.glob("*.json"):
        grafana_server.state.put(json.loads(path.read_text()), "dashgen", provisioned=True)
    grafana_server.state.add_folder("dashgen", "dashgen")
    assert push.prepare(client, dashboards_dir, Config()).is_empty()


# -- prune -----------------------------------------------------------------------------------------
def test_prune_lists_then_deletes_only_managed_dashboards_no_longer_defined(client, grafana_server,
                                                                           dashboards_dir):
    run(client, dashboards_dir)
    grafana_server.state.put({"uid": "hand-made", "title": "Hand made", "tags": ["team"]})
    (dashboards_dir / "ec2-performance.json").unlink()
    assert PERF not in by_uid(push.prepare(client, dashboards_dir, Config()))  # no --prune: untouched
    plan, result = run(client, dashboards_dir, prune=True)
    assert by_uid(plan)[PERF].action is Action.DELETE and "hand-made" not in by_uid(plan)
    assert result.ok and PERF not in grafana_server.state.dashboards
    assert "hand-made" in grafana_server.state.dashboards


def test_prune_refuses_an_edited_or_provisioned_orphan(client, grafana_server, dashboards_dir):
    run(client, dashboards_dir)
    grafana_server.state.ui_edit(PERF, lambda d: d.update(refresh="1h"))
    grafana_server.state.put({"uid": "prov", "title": "Prov", "tags": ["dashgen"]}, provisioned=True)
    (dashboards_dir / "ec2-performance.json").unlink()
    changes = by_uid(push.prepare(client, dashboards_dir, Config(), prune=True))
    assert changes[PERF].action is Action.CONFLICT and "--force" in changes[PERF].reason
    assert changes["prov"].action is Action.CONFLICT and "provisioning/" in changes["prov"].reason
    assert by_uid(push.prepare(client, dashboards_dir, Config(), prune=True, force=True))[PERF].action \
        is Action.DELETE


# -- folders ---------------------------------------------------------------------------------------
def test_folder_is_created_under_an_existing_parent(client, grafana_server, dashboards_dir):
    grafana_server.state.add_folder("platform", "Platform")
    config = dataclasses.replace(Config(), folder_parent_uid="platform", folder_uid="ec2", folder_title="EC2")
    _, result = run(client, dashboards_dir, config)
    assert result.ok and grafana_server.state.folders["ec2"]["parentUid"] == "platform"
    assert grafana_server.state.dashboards[PERF].folder_uid == "ec2"


def test_missing_parent_folder_is_a_clear_error_before_any_write(client, grafana_server, dashboards_dir):
    config = dataclasses.replace(Config(), folder_parent_uid="nope")
    with pytest.raises(GrafanaError, match="parent folder 'nope'.*does not exist"):
        push.prepare(client, dashboards_dir, config)
    assert grafana_server.state.writes == 0


def test_existing_folder_is_not_created_again(client, grafana_server, dashboards_dir):
    grafana_server.state.add_folder("dashgen", "dashgen")
    plan, result = run(client, dashboards_dir)
    assert not plan.create_folder and not result.folder_created
    assert grafana_server.state.count("POST", "/api/folders") == 0


def test_server_folder_rules(client, grafana_server):
    client.create_folder("a", "A")
    with pytest.raises(GrafanaError, match="409"):
        client.create_folder("a", "Other")
    with pytest.raises(GrafanaError, match="409"):
        client.create_folder("b", "A")
    with pytest.raises(GrafanaError, match="404"):
        client.create_folder("c", "C", parent_uid="missing")
    with pytest.raises(GrafanaError, match="folder not found"):
        client.save_dashboard({"uid": "d", "title": "D"}, "missing", "m")


# -- partial failure and faults --------------------------------------------------------------------
def test_partial_failure_reports_what_landed_and_rerun_finishes(client, grafana_server, dashboards_dir):
    grafana_server.state.fault("POST", "/api/dashboards/db", "status", status=500,
                               body={"message": "database is locked"})
    plan, result = run(client, dashboards_dir, concurrency=1)
    total = len(plan.changes)
    assert not result.ok and len(result.failed) == 1 and len(result.landed) == total - 1
    assert "500 database is locked" in result.failed[0][1]
    failed_uid = result.failed[0][0].uid
    plan2, result2 = run(client, dashboards_dir)
    assert {c.uid for c in plan2.writes} == {failed_uid} and result2.ok
    assert run(client, dashboards_dir)[0].is_empty()


def test_push_rides_through_429_503_and_dropped_reads(client, grafana_server, dashboards_dir, monkeypatch):
    import urllib3.util.retry

    import dashgen.grafana.client as gc

    monkeypatch.setattr(urllib3.util.retry.time, "sleep", lambda s: None)
    monkeypatch.setattr(gc.time, "sleep", lambda s: None)
    state = grafana_server.state
    state.fault("GET", "/api/search", "status", status=503)
    state.fault("GET", "/api/folders/", "drop")
    state.fault("POST", "/api/dashboards/db", "status", times=2, status=429, headers={"Retry-After": "1"})
    _, result = run(client, dashboards_dir)
    assert result.ok and len(state.dashboards) == len(list(dashboards_dir.glob("*.json")))


def test_folder_failure_means_nothing_is_attempted(client, grafana_server, dashboards_dir):
    grafana_server.state.fault("POST", "/api/folders", "status", status=500, body={"message": "boom"})
    _, result = run(client, dashboards_dir)
    assert not result.landed and result.failed and "folder 'dashgen' could not be created" in result.failed[0][1]
    assert grafana_server.state.count("POST", "/api/dashboards/db") == 0


# -- inputs and pure parts -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a readable JSON file"),
        ('{"title": "x", "tags": ["dashgen"]}', "uid: expected a dashboard uid"),
        ('{"uid": "x", "title": "x", "tags": []}', "expected the managed tag 'dashgen'"),
    ],
)
def test_bad_dashboard_files_are_named(tmp_path, content, message):
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(ConfigError, match=message) as exc:
        push.load_desired(tmp_path, Config())
    assert "bad.json" in str(exc.value)


def test_duplicate_uids_and_empty_folders_are_refused(tmp_path, dashboards_dir):
    with pytest.raises(ConfigError, match="no dashboard files"):
        push.load_desired(tmp_path, Config())
    data = (dashboards_dir / "ec2-performance.json").read_text()
    (dashboards_dir / "copy.json").write_text(data)
    with pytest.raises(ConfigError, match="is also used by"):
        push.load_desired(dashboards_dir, Config())


def test_plan_is_pure_data(dashboards_dir):
    desired = push.load_desired(dashboards_dir, Config())
    live = push.Live(folder_exists=True, parent_exists=True, dashboards={})
    plan = push.plan(desired, live, Config())
    assert not plan.create_folder and {c.action for c in plan.changes} == {Action.CREATE}
    assert [a.value for a in Action] == ["+", "~", "=", "!", "-"]
    assert plan.counts()["create"] == len(desired) and not plan.is_empty()


def test_describe_names_panels_variables_and_keys():
    before = {"title": "T", "panels": [{"id": 1, "title": "CPU", "targets": [{"statistic": "Average"}]},
                                       {"id": 2, "title": "Gone"}],
              "templating": {"list": [{"name": "region", "query": "a"}]}, "version": 3}
    after = {"title": "T2", "panels": [{"id": 1, "title": "CPU", "targets": [{"statistic": "Maximum"}]},
                                       {"id": 3, "title": "New"}],
             "templating": {"list": [{"name": "region", "query": "b"}]}, "version": 9}
    lines = describe(before, after)
    assert "~ panel 'CPU': targets[0].statistic: \"Average\" -> \"Maximum\"" in lines
    assert "+ panel 'New'" in lines and "- panel 'Gone'" in lines
    assert "~ variable $region: query: \"a\" -> \"b\"" in lines and "~ title: \"T\" -> \"T2\"" in lines
    assert not any("version" in line for line in lines)
    assert describe(before, {**before, "version": 99, "id": 5}) == []


def test_version_message_names_the_git_commit(tmp_path):
    import subprocess

    assert push.git_commit(tmp_path) is None
    assert push.version_message(None) == "dashgen push (not from a git checkout)"
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a.json").write_text("{}")
    subprocess.run([*git, "add", "a.json"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    sha = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], check=True, capture_output=True,
                         text=True).stdout.strip()
    assert push.git_commit(tmp_path) == sha
    (tmp_path / "a.json").write_text("{ }")
    assert push.git_commit(tmp_path) == f"{sha}-dirty"
    assert push.version_message(sha) == f"dashgen push (git {sha})"
