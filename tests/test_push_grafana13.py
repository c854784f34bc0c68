"""push, diff and prune against Grafana 12.3 and 13 (issue 15, defect 5): the `/apis` dashboard API.

The in-test Grafana's `12.3` and `13` modes model grafana/grafana: API discovery (`GET /apis`), the namespace
from `GET /api/frontend/settings` (`pkg/api/dtos/frontend_settings.go`), the dashboard and folder resources
with `metadata.resourceVersion` conflicts (409), annotations from `pkg/apimachinery/utils/meta.go`,
`status.conversion.storedVersion` (`apps/dashboard/pkg/apis/dashboard/v1beta1/dashboard_status_gen.go`,
`apps/dashboard/pkg/migration/conversion/conversion.go`), and the legacy GET's 406 for a dashboard stored as
schema v2 (`pkg/api/dashboard.go`, `GetDashboard`: "dashboard api version not supported, use /apis/... instead").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dashgen.cli import app
from dashgen.config import Config
from dashgen.errors import EXIT_DIFFERS
from dashgen.grafana import push
from dashgen.grafana.client import Connection, GrafanaClient
from dashgen.grafana.compare import RECORD_KEY
from dashgen.grafana.push import Action
from grafana_server import ADMIN_TOKEN, GrafanaServer

PERF = "dashgen-ec2-performance"
V2_DASHBOARD = {"uid": PERF, "title": "EC2 performance (dynamic)", "tags": ["dashgen"],
                "elements": {}, "layout": {"kind": "GridLayout", "spec": {"items": []}}}


@pytest.fixture(params=["12.3", "13"])
def grafana(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[GrafanaServer]:
    """The in-test Grafana in 12.3 or 13 mode (both offer /apis), with GRAFANA_URL / GRAFANA_TOKEN set."""
    for key in ("GRAFANA_USER", "GRAFANA_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    with GrafanaServer(mode=request.param) as server:
        monkeypatch.setenv("GRAFANA_URL", server.url)
        monkeypatch.setenv("GRAFANA_TOKEN", ADMIN_TOKEN)
        yield server


@pytest.fixture
def client(grafana: GrafanaServer) -> Iterator[GrafanaClient]:
    with GrafanaClient(Connection(grafana.url, token=ADMIN_TOKEN)) as c:
        yield c


def run(client: GrafanaClient, directory: Path, **kw) -> tuple[push.Plan, push.ApplyResult]:
    plan = push.prepare(client, directory, Config(), force=kw.pop("force", False), prune=kw.pop("prune", False))
    return plan, push.apply(plan, client, message=push.version_message("abc123"), **kw)


def by_uid(plan: push.Plan) -> dict[str, push.Change]:
    return {c.uid: c for c in plan.changes}


def legacy_dashboard_requests(server: GrafanaServer) -> list[tuple[str, str]]:
    return [r for r in server.state.requests if r[1].startswith(("/api/dashboards", "/api/folders"))]


# -- discovery -------------------------------------------------------------------------------------
def test_discovery_picks_the_classic_json_version_the_server_offers(client, grafana):
    client.health()
    api = client.discover()
    want = {"12.3": "v1beta1", "13": "v1"}[grafana.state.mode]
    assert api == f"/apis/dashboard.grafana.app/{want} (namespace default)"
    assert client.dashboards_base == f"/apis/dashboard.grafana.app/{want}/namespaces/default"
    assert client.folders_base == "/apis/folder.grafana.app/v1beta1/namespaces/default"


def test_discovery_reads_the_namespace_grafana_gives_not_a_guess(client, grafana):
    grafana.state.namespace = "stacks-123456"  # Grafana Cloud
    client.discover()
    assert client.dashboards_base.endswith("/namespaces/stacks-123456")


def test_without_a_namespace_from_grafana_the_legacy_api_is_kept(client, grafana):
    """The namespace is Grafana's to say (`stacks-<id>` on Cloud): when /api/frontend/settings fails, no guess."""
    grafana.state.fault("GET", "/api/frontend/settings", "status", status=500)
    assert client.discover() == "/api"


def test_a_grafana_without_apis_keeps_the_legacy_api(grafana_server):
    """The default in-test Grafana (`legacy` mode) answers /apis with 404, as one before /apis does."""
    with GrafanaClient(Connection(grafana_server.url, token=ADMIN_TOKEN)) as c:
        assert c.discover() == "/api" and c.dashboards_base is None


# -- push, diff, prune through /apis ------------------------------------------------------------------
def test_push_creates_through_apis_then_writes_nothing(client, grafana, dashboards_dir):
    n = len(list(dashboards_dir.glob("*.json")))
    plan, result = run(client, dashboards_dir)
    assert result.ok and result.folder_created and len(result.landed) == n
    state = grafana.state
    base = client.dashboards_base
    assert state.count("POST", "/apis/folder.grafana.app/") == 1 and state.count("POST", f"{base}/dashboards") == n
    assert legacy_dashboard_requests(grafana) == []  # the deprecated /api/dashboards and /api/folders: unused
    stored = state.dashboards[PERF]
    assert stored.folder_uid == "dashgen" and stored.versions == [(1, "dashgen push (git abc123)")]
    assert RECORD_KEY in stored.dashboard and stored.api_version == base.split("/")[3]
    state.reset_counts()
    plan, result = run(client, dashboards_dir)
    assert plan.is_empty() and result.ok and state.writes == 0


def test_update_carries_the_resource_version_read(client, grafana, dashboards_dir):
    run(client, dashboards_dir)
    path = dashboards_dir / "ec2-performance.json"
    data = json.loads(path.read_text())
    data["refresh"] = "1m"
    path.write_text(json.dumps(data))
    rv = grafana.state.dashboards[PERF].rv
    plan, result = run(client, dashboards_dir)
    change = by_uid(plan)[PERF]
    assert change.action is Action.UPDATE and change.resource_version == str(rv)
    assert result.ok and grafana.state.count("PUT", f"{client.dashboards_base}/dashboards/{PERF}") == 1
    assert grafana.state.dashboards[PERF].version == 2 and grafana.state.dashboards[PERF].dashboard["refresh"] == "1m"


def test_ui_edit_is_a_conflict_and_a_race_gets_grafanas_409(client, grafana, dashboards_dir):
    run(client, dashboards_dir)
    grafana.state.ui_edit(PERF, lambda d: d.update(refresh="2h"))
    assert by_uid(push.prepare(client, dashboards_dir, Config()))[PERF].action is Action.CONFLICT
    plan = push.prepare(client, dashboards_dir, Config(), force=True)
    grafana.state.ui_edit(PERF, lambda d: d.update(refresh="3h"))  # between plan and apply
    result = push.apply(plan, client, message="m")
    assert [c.uid for c, _ in result.conflicts] == [PERF] and "409 Conflict" in result.conflicts[0][1]
    assert grafana.state.dashboards[PERF].dashboard["refresh"] == "3h"


def test_a_dashboard_stored_as_v2_is_a_conflict_and_the_rest_land(client, grafana, dashboards_dir):
    grafana.state.add_folder("dashgen", "dashgen")
    grafana.state.put(V2_DASHBOARD, "dashgen", api_version="v2beta1")
    plan, result = run(client, dashboards_dir, force=True)
    change = by_uid(plan)[PERF]
    assert change.action is Action.CONFLICT and not change.forceable
    assert "stored in Grafana as dashboard schema v2beta1" in change.reason
    assert [c.uid for c, _ in result.conflicts] == [PERF]
    assert len(result.landed) == len(plan.changes) - 1 and not result.failed
    assert grafana.state.dashboards[PERF].api_version == "v2beta1"  # untouched
    assert grafana.state.dashboards[PERF].versions == [(1, "")]


def test_prune_deletes_through_apis_with_a_resource_version_precondition(client, grafana, dashboards_dir):
    run(client, dashboards_dir)
    (dashboards_dir / "ec2-performance.json").unlink()
    plan = push.prepare(client, dashboards_dir, Config(), prune=True)
    change = by_uid(plan)[PERF]
    assert change.action is Action.DELETE and change.resource_version == str(grafana.state.dashboards[PERF].rv)
    result = push.apply(plan, client, message="m")
    assert result.ok and PERF not in grafana.state.dashboards
    assert grafana.state.count("DELETE", f"{client.dashboards_base}/dashboards/{PERF}") == 1


def test_prune_that_races_a_ui_edit_is_a_conflict(client, grafana, dashboards_dir):
    run(client, dashboards_dir)
    (dashboards_dir / "ec2-performance.json").unlink()
    plan = push.prepare(client, dashboards_dir, Config(), prune=True)
    grafana.state.ui_edit(PERF, lambda d: d.update(refresh="2h"))
    result = push.apply(plan, client, message="m")
    assert [c.uid for c, _ in result.conflicts] == [PERF] and PERF in grafana.state.dashboards


def test_prune_leaves_a_v2_dashboard_unless_forced(client, grafana, dashboards_dir):
    run(client, dashboards_dir)
    del grafana.state.dashboards[PERF]
    grafana.state.put(V2_DASHBOARD, "dashgen", api_version="v2beta1")
    (dashboards_dir / "ec2-performance.json").unlink()
    change = by_uid(push.prepare(client, dashboards_dir, Config(), prune=True))[PERF]
    assert change.action is Action.CONFLICT and "schema v2beta1" in change.reason
    plan, result = run(client, dashboards_dir, prune=True, force=True)
    assert by_uid(plan)[PERF].action is Action.DELETE and result.ok and PERF not in grafana.state.dashboards


def test_provisioned_dashboard_is_refused_through_apis_too(client, grafana, dashboards_dir):
    data = json.loads((dashboards_dir / "ec2-performance.json").read_text())
    data["refresh"] = "7m"
    grafana.state.add_folder("dashgen", "dashgen")
    grafana.state.put(data, "dashgen", provisioned=True)
    change = by_uid(push.prepare(client, dashboards_dir, Config(), force=True))[PERF]
    assert change.action is Action.CONFLICT and change.reason.startswith("provisioned") and not change.forceable


def test_a_create_whose_reply_was_lost_counts_as_landed_through_apis(client, grafana, dashboards_dir, monkeypatch):
    import dashgen.grafana.client as gc

    monkeypatch.setattr(gc.time, "sleep", lambda s: None)
    grafana.state.fault("POST", "/apis/dashboard.grafana.app/", "drop", after=True)
    plan, result = run(client, dashboards_dir, concurrency=1)
    assert result.ok and len(result.landed) == len(plan.changes)
    assert sum("already there" in note for _, note in result.landed) == 1


def test_a_folder_create_whose_reply_was_lost_is_fine(client, grafana, dashboards_dir, monkeypatch):
    import dashgen.grafana.client as gc

    monkeypatch.setattr(gc.time, "sleep", lambda s: None)
    grafana.state.fault("POST", "/apis/folder.grafana.app/", "status", status=503, after=True)
    _, result = run(client, dashboards_dir)
    assert result.ok and result.folder_created and "dashgen" in grafana.state.folders


# -- the legacy API meeting a v2 dashboard (Grafana 12.x/13 with /apis not reachable) ------------------
def test_legacy_406_for_a_v2_dashboard_is_a_conflict_not_an_abort(grafana_server, dashboards_dir):
    """Before: `GET /api/dashboards/uid/<uid>` answered 406 and the whole push stopped."""
    grafana_server.state.add_folder("dashgen", "dashgen")
    grafana_server.state.put(V2_DASHBOARD, "dashgen", api_version="v2beta1")
    with GrafanaClient(Connection(grafana_server.url, token=ADMIN_TOKEN)) as c:
        plan, result = run(c, dashboards_dir)
    assert grafana_server.state.count("GET", f"/api/dashboards/uid/{PERF}") == 1  # the 406
    assert by_uid(plan)[PERF].action is Action.CONFLICT and "schema v2beta1" in by_uid(plan)[PERF].reason
    assert len(result.landed) == len(plan.changes) - 1 and [c.uid for c, _ in result.conflicts] == [PERF]


# -- through the CLI, both modes ---------------------------------------------------------------------
def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_push_diff_prune_against_12_3_and_13(grafana, dashboards_dir):
    code, out, err = cli("diff", "--dir", dashboards_dir)
    assert code == EXIT_DIFFERS, err
    code, out, err = cli("push", "--dir", dashboards_dir)
    assert code == 0, err
    assert legacy_dashboard_requests(grafana) == []
    code, out, err = cli("diff", "--dir", dashboards_dir)
    assert code == 0, err
    grafana.state.put({**V2_DASHBOARD, "uid": "someone-elses-v2", "tags": ["dashgen"]}, "dashgen",
                      api_version="v2beta1")
    code, out, err = cli("push", "--dir", dashboards_dir, "--prune")
    assert code == 1 and "not pushed: someone-elses-v2: no longer defined, but stored in Grafana as dashboard " \
                          "schema v2beta1" in err
    assert "Traceback" not in err and ADMIN_TOKEN not in out + err


def test_docs_name_the_grafana_versions_compose_pins():
    """docs/push.md and docs/compose.md state the supported versions; compose pins a 12.3.x image."""
    import re

    from conftest import REPO

    pinned = re.search(r"image:\s*grafana/grafana:(\S+)", (REPO / "docker-compose.yml").read_text()).group(1)
    assert pinned.startswith("12.3.")
    for doc in ("push.md", "compose.md"):
        text = (REPO / "docs" / doc).read_text()
        assert f"grafana/grafana:{pinned}" in text and "12.3" in text and "13" in text


