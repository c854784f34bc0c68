"""push and the Grafana client under faults and hostile servers (issue 10, points 12, 13 and 14).

Faults are injected into the in-test Grafana (`tests/grafana_server.py`), or served by small hostile HTTP
servers on 127.0.0.1 written here. Every outcome is one line, bounded in time and memory; nothing is lost
from the landed / conflict / failed report; no write and no token follows a redirect to another host.
"""

from __future__ import annotations

import gzip
import json
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import urllib3.util.retry
from typer.testing import CliRunner

import dashgen.grafana.client as gc
from dashgen.cli import app
from dashgen.config import Config
from dashgen.errors import GrafanaError
from dashgen.grafana import push
from dashgen.grafana.client import Connection, GrafanaClient, plain_http_warning
from grafana_server import ADMIN_TOKEN

PERF = "dashgen-ec2-performance"


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the back-off sleeps instead of waiting."""
    slept: list[float] = []
    monkeypatch.setattr(urllib3.util.retry.time, "sleep", slept.append)
    monkeypatch.setattr(gc.time, "sleep", slept.append)
    return slept


def client_for(url: str, **kw) -> GrafanaClient:
    return GrafanaClient(Connection(url, token=ADMIN_TOKEN), **kw)


def run(client: GrafanaClient, directory: Path, **kw) -> tuple[push.Plan, push.ApplyResult]:
    plan = push.prepare(client, directory, Config(), force=kw.pop("force", False), prune=kw.pop("prune", False))
    return plan, push.apply(plan, client, message="dashgen push (git abc123)", **kw)


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text and ADMIN_TOKEN not in text
    return text


# -- small hostile servers -------------------------------------------------------------------------
Reply = tuple[int, dict[str, str], bytes]


@contextmanager
def hostile(answer: Callable[[BaseHTTPRequestHandler], Reply | None]) -> Iterator[tuple[str, list]]:
    """An HTTP server on 127.0.0.1 whose every reply is `answer(request)` (None: drop the connection).
    Yields its URL and the list of (method, path, headers, body) it received."""
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen.append((self.command, self.path, dict(self.headers), body))
            reply = answer(self)
            if reply is None:
                self.close_connection = True
                return
            status, headers, data = reply
            self.send_response(status)
            for k, v in {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _any  # noqa: N815

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def grafana_like(extra: Callable[[BaseHTTPRequestHandler], Reply | None]):
    """Healthy /api/health and /apis absent, then `extra` for everything else."""
    def answer(req: BaseHTTPRequestHandler) -> Reply | None:
        if req.path == "/api/health":
            return 200, {}, b'{"database": "ok", "version": "12.1.0"}'
        if req.path == "/apis":
            return 404, {}, b'{"message": "Not found"}'
        return extra(req)
    return answer


# -- point 12: saves are retried; a repeated save that finds its own content has landed ---------------
def test_a_create_whose_reply_was_lost_is_retried_and_counts_as_landed(grafana_server, dashboards_dir, sleeps):
    """The first save lands, then the connection drops before the reply: the repeat gets 412 (the dashboard
    exists now), push reads it back, finds exactly what it sent, and counts it as landed."""
    state = grafana_server.state
    state.fault("POST", "/api/dashboards/db", "drop", after=True)
    with client_for(grafana_server.url) as c:
        plan, result = run(c, dashboards_dir, concurrency=1)
    n = len(plan.changes)
    assert result.ok and len(result.landed) == n and not result.failed
    notes = [note for _, note in result.landed]
    assert sum("already there" in note for note in notes) == 1
    assert all(d.version == 1 and len(d.versions) == 1 for d in state.dashboards.values())
    assert state.count("POST", "/api/dashboards/db") == n + 1


def test_an_update_behind_a_proxy_502_after_commit_counts_as_landed(grafana_server, dashboards_dir, sleeps):
    state = grafana_server.state
    with client_for(grafana_server.url) as c:
        run(c, dashboards_dir)
        data = json.loads((dashboards_dir / "ec2-performance.json").read_text())
        data["refresh"] = "1m"
        (dashboards_dir / "ec2-performance.json").write_text(json.dumps(data))
        state.fault("POST", "/api/dashboards/db", "status", status=502, after=True)
        plan, result = run(c, dashboards_dir)
        assert [c.uid for c in plan.writes] == [PERF]
        assert result.ok and "already there" in result.landed[0][1]
        assert state.dashboards[PERF].version == 2 and state.dashboards[PERF].dashboard["refresh"] == "1m"
        assert run(c, dashboards_dir)[0].is_empty()


def test_a_503_on_a_save_no_longer_needs_a_rerun(grafana_server, dashboards_dir, sleeps):
    grafana_server.state.fault("POST", "/api/dashboards/db", "status", times=2, status=503)
    with client_for(grafana_server.url) as c:
        _, result = run(c, dashboards_dir)
    assert result.ok and len(grafana_server.state.dashboards) == len(result.landed)


def test_a_repeated_save_that_finds_other_content_is_still_a_conflict(grafana_server, dashboards_dir, sleeps):
    """The 412 after a retry is only "landed" when Grafana holds exactly what was sent."""
    state = grafana_server.state
    with client_for(grafana_server.url) as c:
        run(c, dashboards_dir)
        data = json.loads((dashboards_dir / "ec2-performance.json").read_text())
        data["refresh"] = "1m"
        (dashboards_dir / "ec2-performance.json").write_text(json.dumps(data))
        plan = push.prepare(c, dashboards_dir, Config())
        state.ui_edit(PERF, lambda d: d.update(refresh="2h"))  # a person saves between plan and apply
        result = push.apply(plan, c, message="m")
    assert [ch.uid for ch, _ in result.conflicts] == [PERF] and "412" in result.conflicts[0][1]
    assert state.dashboards[PERF].dashboard["refresh"] == "2h"


# -- point 13: hostile or broken servers -------------------------------------------------------------
@pytest.mark.parametrize(("path", "body", "call"), [
    ("/api/search", b"null", lambda c: c.search()),
    ("/api/search", b'{"uid": "x"}', lambda c: c.search()),
    ("/api/dashboards/uid/", b"[1, 2]", lambda c: c.get_dashboard("u")),
    ("/api/dashboards/uid/", b'{"dashboard": null, "meta": []}', lambda c: c.get_dashboard("u")),
    ("/api/dashboards/db", b"null", lambda c: c.save_dashboard({"uid": "u", "title": "t"}, "", "m")),
    ("/api/folders/", b'"ok"', lambda c: c.get_folder("f")),
    ("/api/search", b"[" * 100000 + b"]" * 100000, lambda c: c.search()),
])
def test_json_of_the_wrong_shape_is_one_line(path, body, call):
    with hostile(grafana_like(lambda req: (200, {}, body))) as (url, _), client_for(url) as c, \
            pytest.raises(GrafanaError) as exc:
        call(c)
    text = one_line(exc)
    assert text.endswith("a Grafana?") and path in text


def test_bad_gzip_is_one_line(sleeps):
    bad = (200, {"Content-Encoding": "gzip"}, b"\x1f\x8b\x08\x00garbage-not-deflate")
    with hostile(grafana_like(lambda req: bad)) as (url, _), client_for(url) as c, \
            pytest.raises(GrafanaError) as exc:
        c.search()
    assert "could not be decoded" in one_line(exc)


def test_a_gzip_bomb_is_cut_at_the_reply_limit(monkeypatch, sleeps):
    monkeypatch.setattr(gc, "MAX_REPLY_BYTES", 1 << 20)
    bomb = gzip.compress(b"[" + b" " * (8 << 20) + b"]")  # 8 MiB once decompressed, 8 KiB on the wire
    with hostile(grafana_like(lambda req: (200, {"Content-Encoding": "gzip"}, bomb))) as (url, _), \
            client_for(url) as c, pytest.raises(GrafanaError) as exc:
        c.search()
    assert "larger than 1 MiB" in one_line(exc)


def test_a_redirect_loop_is_one_line():
    loop = (302, {"Location": "/api/search"}, b"")
    with hostile(grafana_like(lambda req: loop)) as (url, seen), client_for(url) as c, \
            pytest.raises(GrafanaError) as exc:
        c.search()
    assert "redirects" in one_line(exc) and len([s for s in seen if s[1].startswith("/api/search")]) <= 6


def test_a_cross_host_307_on_a_save_sends_nothing_to_the_other_host(dashboards_dir):
    """The issue's case: a 307 on POST to another host sent the dashboards there and printed "3 landed"."""
    with hostile(lambda req: (200, {}, b"{}")) as (elsewhere, elsewhere_seen):
        moved = (307, {"Location": f"{elsewhere}/api/dashboards/db"}, b"")

        def answer(req: BaseHTTPRequestHandler) -> Reply:
            if req.command == "POST":
                return moved
            if req.path.startswith("/api/search"):
                return 200, {}, b"[]"
            if req.path.startswith("/api/folders/"):
                return 200, {}, b'{"uid": "dashgen", "title": "dashgen"}'
            return 404, {}, b'{"message": "Not found"}'

        with hostile(grafana_like(answer)) as (url, _), client_for(url) as c:
            plan, result = run(c, dashboards_dir)
    assert not result.landed and len(result.failed) == len(plan.changes)
    assert all("another host" in note and "not followed" in note for _, note in result.failed)
    assert elsewhere_seen == []  # neither a dashboard nor the token reached the other host


def test_a_cross_host_redirect_on_a_read_does_not_carry_the_token():
    with hostile(lambda req: (200, {}, b"[]")) as (elsewhere, elsewhere_seen):
        moved = (302, {"Location": f"{elsewhere}/api/search"}, b"")
        with hostile(grafana_like(lambda req: moved)) as (url, _), client_for(url) as c, \
                pytest.raises(GrafanaError) as exc:
            c.search()
    assert "another host" in one_line(exc) and elsewhere_seen == []


def test_a_same_host_redirect_on_a_read_is_followed_with_the_token():
    def answer(req: BaseHTTPRequestHandler) -> Reply:
        if req.path.startswith("/api/search"):
            return 301, {"Location": "/grafana/api/search?page=1"}, b""
        return 200, {}, b'[{"uid": "a", "title": "A", "tags": ["dashgen"]}]'

    with hostile(grafana_like(answer)) as (url, seen), client_for(url) as c:
        assert [h["uid"] for h in c.search()] == ["a"]
    assert seen[-1][1].startswith("/grafana/api/search") and seen[-1][2]["Authorization"] == f"Bearer {ADMIN_TOKEN}"


def test_retry_after_is_capped_long_ones_fail_in_one_line(grafana_server, sleeps):
    grafana_server.state.fault("GET", "/api/search", "status", status=429, headers={"Retry-After": "3600"})
    with client_for(grafana_server.url) as c, pytest.raises(GrafanaError) as exc:
        c.search()
    assert "Retry-After 3600 s" in one_line(exc) and 3600 not in sleeps and sum(sleeps) < 60
    grafana_server.state.fault("POST", "/api/dashboards/db", "status", status=503, headers={"Retry-After": "45"})
    with client_for(grafana_server.url) as c:
        assert c.save_dashboard({"uid": "u", "title": "t"}, "", "m")["version"] == 1
    assert 45 in sleeps


def test_the_run_has_a_total_deadline(grafana_server):
    """Each request answers within the read timeout, yet the run stops at its deadline."""
    grafana_server.state.fault("GET", "/api/dashboards/uid/", "slow", times=100, delay=0.3)
    start = time.monotonic()
    with client_for(grafana_server.url, deadline=1.0) as c, pytest.raises(GrafanaError) as exc:
        for i in range(100):
            c.get_dashboard(f"d{i}")
    assert "deadline of 1 s" in one_line(exc) and time.monotonic() - start < 3


def test_retries_never_sleep_past_the_deadline(grafana_server, sleeps):
    grafana_server.state.fault("GET", "/api/search", "status", times=9, status=503, headers={"Retry-After": "30"})
    with client_for(grafana_server.url, deadline=10.0) as c, pytest.raises(GrafanaError) as exc:
        c.search()
    assert "deadline" in one_line(exc) and sum(sleeps) < 10


def test_a_search_that_never_stops_paging_is_bounded(monkeypatch):
    """The issue's case: every page full, forever (3.9 GB in 20 s). Pages that repeat stop at the second;
    pages that differ stop at MAX_SEARCH_PAGES."""
    monkeypatch.setattr(gc, "SEARCH_PAGE", 50)
    full = json.dumps([{"uid": f"u{i}", "title": "x" * 200, "tags": ["dashgen"]} for i in range(50)]).encode()
    with hostile(grafana_like(lambda req: (200, {}, full))) as (url, seen), client_for(url) as c, \
            pytest.raises(GrafanaError) as exc:
        c.search()
    assert "repeats page 1" in one_line(exc) and len(seen) == 2

    counter = iter(range(10**6))

    def fresh(req: BaseHTTPRequestHandler) -> Reply:
        page = next(counter)
        return 200, {}, json.dumps([{"uid": f"p{page}-{i}", "tags": []} for i in range(50)]).encode()

    with hostile(grafana_like(fresh)) as (url, seen), client_for(url) as c, pytest.raises(GrafanaError) as exc:
        c.search()
    assert f"more than {gc.MAX_SEARCH_PAGES} pages" in one_line(exc)
    assert len([s for s in seen if s[1].startswith("/api/search")]) == gc.MAX_SEARCH_PAGES


def test_a_workers_unexpected_exception_keeps_the_report(grafana_server, dashboards_dir, monkeypatch):
    """A bug or an odd reply in one save must not lose what the others did."""
    real = GrafanaClient.save_dashboard

    def flaky(self, dashboard, folder_uid, message, **kw):
        if kw.get("uid") == PERF:
            raise KeyError("boom")
        return real(self, dashboard, folder_uid, message, **kw)

    monkeypatch.setattr(GrafanaClient, "save_dashboard", flaky)
    with client_for(grafana_server.url) as c:
        plan, result = run(c, dashboards_dir)
    assert [ch.uid for ch, _ in result.failed] == [PERF] and "unexpected error: KeyError" in result.failed[0][1]
    assert len(result.landed) == len(plan.changes) - 1


def test_plain_http_to_a_remote_host_warns_in_one_line(grafana_server, dashboards_dir, monkeypatch):
    remote = Connection("http://grafana.example.com:3000", token=ADMIN_TOKEN)
    warning = plain_http_warning(remote)
    assert warning and "plain http://" in warning and ADMIN_TOKEN not in warning and "\n" not in warning
    assert plain_http_warning(Connection("https://grafana.example.com", token=ADMIN_TOKEN)) is None
    assert plain_http_warning(Connection("http://127.0.0.1:3000", token=ADMIN_TOKEN)) is None
    assert plain_http_warning(Connection("http://[::1]:3000", token=ADMIN_TOKEN)) is None
    assert plain_http_warning(Connection("http://localhost:3000", token=ADMIN_TOKEN)) is None
    monkeypatch.setattr(gc, "_is_loopback", lambda host: False)  # as if 127.0.0.1 were a remote host
    result = CliRunner().invoke(app, ["diff", "--dir", str(dashboards_dir)])
    assert [line for line in result.stderr.splitlines() if "plain http://" in line] == [
        f"warning: {grafana_server.url} is plain http:// to a non-local host: the Grafana token crosses the "
        "network unencrypted (use https://)"]


def test_cli_errors_from_a_hostile_server_are_one_line(dashboards_dir, monkeypatch):
    with hostile(grafana_like(lambda req: (200, {}, b"null"))) as (url, _):
        monkeypatch.setenv("GRAFANA_URL", url)
        monkeypatch.setenv("GRAFANA_TOKEN", ADMIN_TOKEN)
        result = CliRunner().invoke(app, ["push", "--dir", str(dashboards_dir)])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "not an object" in result.stderr or "not a list" in result.stderr
    assert "Traceback" not in result.stderr and isinstance(result.exception, SystemExit | None)


# -- point 14: the commit is read without running git ------------------------------------------------
def test_push_never_runs_the_repositorys_fsmonitor_hook(grafana_server, dashboards_dir, tmp_path):
    """`git status` runs `core.fsmonitor` (and clean filters); push reads .git itself, so nothing runs."""
    repo = dashboards_dir.parent
    marker = tmp_path / "hook-ran"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\nexit 0\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "dashboards"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "dashboards"], check=True)
    subprocess.run([*git, "config", "core.fsmonitor", str(hook)], check=True)
    # The hook is real: git itself runs it.
    subprocess.run([*git, "status", "--porcelain"], check=True, capture_output=True)
    assert marker.exists()
    marker.unlink()
    sha = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], check=True, capture_output=True,
                         text=True).stdout.strip()
    assert push.git_commit(dashboards_dir) == sha
    result = CliRunner().invoke(app, ["push", "--dir", str(dashboards_dir)])
    assert result.exit_code == 0, result.stderr
    assert grafana_server.state.dashboards[PERF].versions[-1][1] == f"dashgen push (git {sha})"
    assert not marker.exists()


def test_git_commit_reads_packed_refs_worktrees_and_detached_heads(tmp_path):
    repo = tmp_path / "repo"
    (repo / "dashboards").mkdir(parents=True)
    (repo / "dashboards" / "a.json").write_text("{}")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([*git, "pack-refs", "--all"], check=True)
    assert push.git_commit(repo / "dashboards") == sha[:12]
    subprocess.run([*git, "worktree", "add", "-q", str(tmp_path / "wt"), "-b", "other"], check=True)
    assert push.git_commit(tmp_path / "wt" / "dashboards") == sha[:12]
    (tmp_path / "wt" / "dashboards" / "b.json").write_text("{}")  # untracked dashboard: not what HEAD holds
    assert push.git_commit(tmp_path / "wt" / "dashboards") == f"{sha[:12]}-dirty"
    subprocess.run([*git, "checkout", "-q", "--detach"], check=True)
    assert push.git_commit(repo / "dashboards") == sha[:12]
    (repo / ".git" / "HEAD").write_text("ref: ../../etc/passwd\n")
    assert push.git_commit(repo / "dashboards") is None
