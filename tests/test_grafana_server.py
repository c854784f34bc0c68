"""The in-test Grafana (`tests/grafana_server.py`) against what it models: these tests check the test double, not
dashgen. Its contract with Grafana's HTTP API (the spec excerpt in tests/data), search and provisioning as
Grafana answers them, and its 12.3/13 modes as read in Grafana's source (see tests/test_push_grafana13.py's
docstring for the files). Every test of push, diff and the client trusts the double because these pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from dashgen.errors import GrafanaError
from dashgen.grafana.client import Connection, GrafanaClient, GrafanaStatusError
from grafana_server import ADMIN_TOKEN, GrafanaServer


def client(server: GrafanaServer) -> GrafanaClient:
    return GrafanaClient(Connection(server.url, token=ADMIN_TOKEN))


@pytest.fixture(params=["12.3", "13"])
def grafana(request: pytest.FixtureRequest) -> Iterator[GrafanaServer]:
    """The in-test Grafana in 12.3 or 13 mode (both offer /apis)."""
    with GrafanaServer(mode=request.param) as server:
        yield server


def test_server_replies_match_the_api_excerpt(grafana_server):
    """The in-test Grafana keeps to tests/data/grafana-api-merged-EXCERPT.json: reply fields are ones the spec
    declares (plus `slug`, shown in the docs' example), required ones are present, errors carry `message`,
    and every status it gives on these paths is one the spec lists."""
    from conftest import DATA

    spec = json.loads((DATA / "grafana-api-merged-EXCERPT.json").read_text())
    defs, responses = spec["definitions"], spec["responses"]
    saved = responses["postDashboardResponse"]["schema"]
    seen: list[tuple[str, str, int]] = []
    with client(grafana_server) as c:
        def call(method, path, key, **kw):
            resp = c.session.request(method, grafana_server.url + "/api" + path, **kw)
            seen.append((key, method.lower(), resp.status_code))
            body = resp.json()
            if resp.status_code >= 400:
                assert set(body) & {"message"} and isinstance(body["message"], str)
            return body

        folder = call("POST", "/folders", "/folders", json={"uid": "f", "title": "F"})
        assert set(folder) <= set(defs["Folder"]["properties"])
        call("POST", "/folders", "/folders", json={"uid": "f", "title": "F"})  # exists
        reply = call("POST", "/dashboards/db", "/dashboards/db",
                     json={"dashboard": {"uid": "d", "title": "D"}, "folderUid": "f", "message": "m"})
        assert set(saved["required"]) <= set(reply) <= set(saved["properties"]) | {"slug"}
        for body in ({"dashboard": {"uid": "d", "title": "D", "version": 7}},  # stale: 412
                     {"dashboard": {"uid": "bad uid!", "title": "D"}},  # 400
                     {"dashboard": {"uid": "x", "title": "D"}, "folderUid": "nope"},  # 400 folder not found
                     {"dashboard": {"uid": "y", "title": "Y"}, "message": "m" * 501}):  # 400 message too long
            call("POST", "/dashboards/db", "/dashboards/db", json=body)
        full = call("GET", "/dashboards/uid/d", "/dashboards/uid/{uid}")
        assert set(full["meta"]) <= set(defs["DashboardMeta"]["properties"])
        call("GET", "/dashboards/uid/missing", "/dashboards/uid/{uid}")
        call("DELETE", "/dashboards/uid/d", "/dashboards/uid/{uid}")
        call("GET", "/search", "/search", params={"type": "nonsense"})
        call("GET", "/health", "/health")
    for key, method, status in seen:
        assert str(status) in spec["paths"][key][method]["responses"], (key, method, status)
    assert {s for _, _, s in seen} >= {200, 400, 404, 409, 412, 422}


def test_server_search_filters_like_grafana(grafana_server):
    """The in-test server's own contract: tag (all must match), type, folderUIDs, limit and page."""
    s = grafana_server.state
    s.add_folder("f1", "Folder 1")
    s.put({"uid": "a", "title": "A", "tags": ["x", "y"]}, "f1")
    s.put({"uid": "b", "title": "B", "tags": ["x"]})
    with client(grafana_server) as c:
        get = lambda **p: [h["uid"] for h in c.request("GET", "/api/search", params=p)]  # noqa: E731
        assert get(tag=["x", "y"]) == ["a"]
        assert get(type="dash-folder") == ["f1"]
        assert get(type="dash-db", folderUIDs="f1") == ["a"]
        assert get(type="dash-db", limit=1, page=2) == ["b"]
        full = c.get_dashboard("a")
    assert full["meta"]["folderUid"] == "f1" and full["meta"]["version"] == 1
    assert json.loads(json.dumps(full))["dashboard"]["uid"] == "a"


def test_server_refuses_to_save_a_provisioned_dashboard(grafana_server):
    grafana_server.state.put({"uid": "p", "title": "P", "tags": []}, provisioned=True)
    with client(grafana_server) as c, pytest.raises(GrafanaError, match="Cannot save provisioned dashboard"):
        c.save_dashboard({"uid": "p", "title": "P2", "version": 1}, "", "m")


def test_server_13_mode_contract(grafana):
    """The in-test Grafana's own contract in 12.3/13 mode, as read in Grafana's source (module docstring)."""
    with client(grafana) as c:
        state = grafana.state
        state.add_folder("f", "F")
        state.put({"uid": "v2", "title": "V2", "tags": []}, "f", api_version="v2beta1")
        with pytest.raises(GrafanaStatusError) as exc:
            c.request("GET", "/api/dashboards/uid/v2")
        assert exc.value.status == 406 and exc.value.grafana_message == (
            "dashboard api version not supported, use /apis/dashboard.grafana.app/v2beta1/namespaces/default/"
            "dashboards/v2 instead")
        c.discover()
        base = c.dashboards_base
        got = c.request("GET", f"{base}/dashboards/v2")
        assert got["status"]["conversion"]["storedVersion"] == "v2beta1"
        assert got["metadata"]["annotations"]["grafana.app/folder"] == "f" and got["metadata"]["generation"] == 1
        body = {"metadata": {"name": "a", "annotations": {"grafana.app/folder": "f"}}, "spec": {"title": "A"}}
        created = c.request("POST", f"{base}/dashboards", body=body)
        rv = created["metadata"]["resourceVersion"]
        with pytest.raises(GrafanaStatusError) as exc:
            c.request("POST", f"{base}/dashboards", body=body)
        assert (exc.value.status, exc.value.code) == (409, "AlreadyExists")
        stale = {**body, "metadata": {**body["metadata"], "resourceVersion": "1"}}
        with pytest.raises(GrafanaStatusError) as exc:
            c.request("PUT", f"{base}/dashboards/a", body=stale)
        assert (exc.value.status, exc.value.code) == (409, "Conflict")
        assert "the object has been modified" in str(exc.value)
        fresh = {**body, "metadata": {**body["metadata"], "resourceVersion": rv}}
        assert c.request("PUT", f"{base}/dashboards/a", body=fresh)["metadata"]["generation"] == 2
        with pytest.raises(GrafanaError, match="409"):
            c.request("DELETE", f"{base}/dashboards/a", body={"preconditions": {"resourceVersion": rv}})
        c.request("DELETE", f"{base}/dashboards/a")
        assert "a" not in state.dashboards
        with pytest.raises(GrafanaStatusError) as exc:
            c.request("POST", f"{c.folders_base}/folders",
                      body={"metadata": {"name": "f"}, "spec": {"title": "F2"}})
        assert (exc.value.status, exc.value.code) == (409, "AlreadyExists")
