"""The Grafana HTTP client against the in-test Grafana: auth, one-line errors, retries, timeouts, TLS."""

from __future__ import annotations

import socket

import pytest
import urllib3.util.retry

import dashgen.grafana.client as gc
from dashgen.errors import GrafanaError
from dashgen.grafana.client import Connection, GrafanaClient, GrafanaStatusError, connection_from_env
from grafana_server import ADMIN_TOKEN, BASIC, VIEWER_TOKEN


def client(server, token: str = ADMIN_TOKEN, **kw) -> GrafanaClient:
    return GrafanaClient(Connection(server.url, token=token), **kw)


def one_line(exc: pytest.ExceptionInfo, *secrets: str) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    for secret in secrets:
        assert secret not in text
    return text


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the back-off sleeps (urllib3's and the client's own) instead of waiting."""
    slept: list[float] = []
    monkeypatch.setattr(urllib3.util.retry.time, "sleep", slept.append)
    monkeypatch.setattr(gc.time, "sleep", slept.append)
    return slept


# -- connection settings ---------------------------------------------------------------------------
def test_connection_needs_url_and_credentials(tmp_path):
    with pytest.raises(GrafanaError, match="GRAFANA_URL"):
        connection_from_env(env={})
    with pytest.raises(GrafanaError, match="GRAFANA_TOKEN"):
        connection_from_env(env={"GRAFANA_URL": "http://g:3000"})
    with pytest.raises(GrafanaError, match="http:// or https://"):
        connection_from_env(env={"GRAFANA_URL": "g:3000", "GRAFANA_TOKEN": "t"})
    with pytest.raises(GrafanaError, match="cannot read token file"):
        connection_from_env(token_file=tmp_path / "missing", env={"GRAFANA_URL": "http://g"})
    with pytest.raises(GrafanaError, match="CA bundle not found"):
        connection_from_env(ca_bundle=tmp_path / "ca.pem", env={"GRAFANA_URL": "http://g", "GRAFANA_TOKEN": "t"})


def test_connection_token_file_wins_and_repr_hides_secrets(tmp_path):
    tf = tmp_path / "token"
    tf.write_text("  from-file\n")
    conn = connection_from_env(token_file=tf, env={"GRAFANA_URL": "http://g/", "GRAFANA_TOKEN": "from-env"})
    assert (conn.url, conn.token, conn.user) == ("http://g", "from-file", None)
    assert "from-file" not in repr(conn)
    basic = connection_from_env(env={"GRAFANA_URL": "http://g", "GRAFANA_USER": "u", "GRAFANA_PASSWORD": "pw"})
    assert (basic.user, basic.password, basic.token) == ("u", "pw", None)
    assert "pw" not in repr(basic)


def test_basic_auth_and_bearer_token_are_sent(grafana_server):
    user, password = BASIC
    with GrafanaClient(Connection(grafana_server.url, user=user, password=password)) as c:
        assert c.search(type="dash-folder") == []
    with client(grafana_server) as c:
        assert c.search() == []


# -- health ----------------------------------------------------------------------------------------
def test_health_ok(grafana_server):
    with client(grafana_server) as c:
        assert c.health()["database"] == "ok"


def test_health_says_when_the_url_is_not_grafana(grafana_server):
    grafana_server.state.fault("GET", "/api/health", "html", status=200)
    with client(grafana_server) as c, pytest.raises(GrafanaError) as exc:
        c.health()
    assert "does not look like Grafana" in one_line(exc) and "text/html" in str(exc.value)


def test_unreachable_grafana_is_one_line(sleeps):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with GrafanaClient(Connection(f"http://admin:pw-in-url@127.0.0.1:{port}", token=ADMIN_TOKEN)) as c, \
            pytest.raises(GrafanaError) as exc:
        c.health()
    assert f"cannot reach http://127.0.0.1:{port}" in one_line(exc, ADMIN_TOKEN, "pw-in-url")


def test_tls_failure_is_one_line(grafana_server):
    """An https URL to a plain-HTTP server fails the TLS handshake; verification is on by default."""
    https = grafana_server.url.replace("http://", "https://")
    with GrafanaClient(Connection(https, token=ADMIN_TOKEN), retries=0) as c, pytest.raises(GrafanaError) as exc:
        c.health()
    text = one_line(exc, ADMIN_TOKEN)
    assert "TLS failure" in text and "--ca-bundle" in text


def test_insecure_turns_verification_off_only_when_asked(grafana_server):
    assert client(grafana_server).session.verify not in (False, None, "")
    assert GrafanaClient(Connection(grafana_server.url, token="t", insecure=True)).session.verify is False


# -- errors ----------------------------------------------------------------------------------------
def test_401_bad_token_never_shows_the_token(grafana_server):
    with client(grafana_server, token="glsa_wrong_secret") as c, pytest.raises(GrafanaError) as exc:
        c.search()
    text = one_line(exc, "glsa_wrong_secret")
    assert "401" in text and "GRAFANA_TOKEN" in text


def test_403_names_the_missing_permission(grafana_server):
    with client(grafana_server, token=VIEWER_TOKEN) as c, pytest.raises(GrafanaError) as exc:
        c.create_folder("f", "F")
    text = one_line(exc, VIEWER_TOKEN)
    assert "403" in text and "folders:create" in text


def test_404_is_none_for_lookups_and_an_error_elsewhere(grafana_server):
    with client(grafana_server) as c:
        assert c.get_dashboard("nope") is None
        assert c.get_folder("nope") is None
        with pytest.raises(GrafanaError) as exc:
            c.request("GET", "/api/no-such-endpoint")
    assert "404" in one_line(exc)


def test_400_and_412_carry_grafanas_message(grafana_server):
    with client(grafana_server) as c:
        with pytest.raises(GrafanaStatusError) as bad:
            c.save_dashboard({"title": "x", "uid": "bad uid!"}, "", "m")
        assert "uid contains illegal characters" in one_line(bad) and bad.value.status == 400
        c.save_dashboard({"title": "x", "uid": "u1"}, "", "m")
        c.save_dashboard({"title": "x2", "uid": "u1", "version": 1}, "", "m")
        with pytest.raises(GrafanaStatusError) as stale:
            c.save_dashboard({"title": "x3", "uid": "u1", "version": 1}, "", "m")
    assert stale.value.status == 412 and stale.value.code == "version-mismatch"
    assert "changed by someone else" in one_line(stale)


def test_non_json_reply_is_one_line(grafana_server, sleeps):
    grafana_server.state.fault("GET", "/api/search", "html", status=200)
    with client(grafana_server) as c, pytest.raises(GrafanaError) as exc:
        c.search()
    assert "not JSON" in one_line(exc)


def test_version_message_is_capped_at_grafanas_500_chars(grafana_server):
    with client(grafana_server) as c:
        c.save_dashboard({"title": "x", "uid": "u"}, "", "m" * 900)
    assert len(grafana_server.state.dashboards["u"].versions[-1][1]) == 500


# -- retries and timeouts --------------------------------------------------------------------------
def test_get_retries_502_503_504(grafana_server, sleeps):
    for status in (502, 503, 504):
        grafana_server.state.fault("GET", "/api/search", "status", status=status)
    with client(grafana_server) as c:
        assert c.search() == []
    assert grafana_server.state.count("GET", "/api/search") == 4


def test_429_retry_after_is_honoured_for_get_and_post(grafana_server, sleeps):
    grafana_server.state.fault("GET", "/api/search", "status", status=429, headers={"Retry-After": "7"})
    grafana_server.state.fault("POST", "/api/dashboards/db", "status", status=429, headers={"Retry-After": "3"})
    with client(grafana_server) as c:
        assert c.search() == []
        assert c.save_dashboard({"title": "t", "uid": "u"}, "", "m")["version"] == 1
    assert 7 in sleeps and 3 in sleeps
    assert grafana_server.state.count("POST") == 2 and grafana_server.state.dashboards["u"].version == 1


def test_dropped_connection_is_retried_for_reads_and_saves(grafana_server, sleeps):
    """Issue 10 point 12: a save carries the version it read (overwrite false), so repeating it is safe."""
    grafana_server.state.fault("GET", "/api/dashboards/uid/", "drop")
    grafana_server.state.fault("POST", "/api/dashboards/db", "drop")
    with client(grafana_server) as c:
        assert c.get_dashboard("x") is None
        assert c.save_dashboard({"title": "t", "uid": "u"}, "", "m")["version"] == 1
    assert grafana_server.state.count("GET", "/api/dashboards/uid/") == 2
    assert grafana_server.state.count("POST") == 2 and grafana_server.state.dashboards["u"].version == 1


def test_502_503_504_on_a_save_are_retried(grafana_server, sleeps):
    for status in (502, 503, 504):
        grafana_server.state.fault("POST", "/api/dashboards/db", "status", status=status)
    with client(grafana_server) as c:
        assert c.save_dashboard({"title": "t", "uid": "u"}, "", "m")["version"] == 1
    assert grafana_server.state.count("POST") == 4 and len(sleeps) == 3


def test_a_save_still_failing_after_retries_is_one_line(grafana_server, sleeps):
    grafana_server.state.fault("POST", "/api/dashboards/db", "status", times=9, status=503)
    with client(grafana_server, retries=2) as c, pytest.raises(GrafanaError) as exc:
        c.save_dashboard({"title": "t", "uid": "u"}, "", "m")
    assert "503" in one_line(exc) and grafana_server.state.count("POST") == 3


def test_slow_reply_times_out_in_one_line(grafana_server):
    grafana_server.state.fault("GET", "/api/search", "slow", times=5, delay=1.0)
    with client(grafana_server, timeout=(2.0, 0.2), retries=0) as c, pytest.raises(GrafanaError) as exc:
        c.search()
    assert "no reply" in one_line(exc)


def test_search_reads_every_page(grafana_server, monkeypatch):
    monkeypatch.setattr(gc, "SEARCH_PAGE", 2)
    for i in range(5):
        grafana_server.state.put({"uid": f"d{i}", "title": f"D{i}", "tags": ["t"]})
    with client(grafana_server) as c:
        hits = c.search(type="dash-db", tag="t")
    assert sorted(h["uid"] for h in hits) == [f"d{i}" for i in range(5)]
    assert grafana_server.state.count("GET", "/api/search") == 3


