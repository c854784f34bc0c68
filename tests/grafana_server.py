"""An in-process Grafana HTTP API on 127.0.0.1 for tests and the bench: the legacy `/api` endpoints dashgen
(and grafana-import) use, with Grafana's rules as written in `tests/data/grafana-api-merged-EXCERPT.json`
and the reference NOTES (section 4):

- `GET /api/health` (no auth); everything else needs `Authorization: Bearer <token>` or basic auth
  (401 otherwise); a viewer token may read but gets 403 on writes.
- `GET /api/search` (query, tag [all must match], type, dashboardUIDs, folderUIDs, limit <= 5000, page).
- `POST /api/dashboards/db`: create (no id, optional uid) or update by id/uid; a `version` different from the
  stored one without `overwrite` -> 412 `version-mismatch`; provisioned -> 400 "Cannot save provisioned
  dashboard"; unknown folderUid -> 400 "folder not found"; message > 500 chars, bad/long uid, empty title,
  long tags -> 400; saved versions keep their message.
- `GET`/`DELETE /api/dashboards/uid/{uid}` with `meta` (version, folderUid, folderTitle, provisioned, ...).
- `GET/POST /api/folders` (parentUid; 409 when the uid or the title under the same parent exists; 404 for a
  missing parent), `GET /api/folders/{uid}`.

It counts requests and writes, and injects faults: an HTTP status (e.g. 503, or 429 with Retry-After), a
slow reply, a dropped connection, or a non-JSON reply, for the next N requests matching a method and path.
`service_read`/`service_write` add a fixed service time per request (the bench's stand-in for Grafana's store).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ADMIN_TOKEN = "glsa_admin_0123456789abcdef"
VIEWER_TOKEN = "glsa_viewer_fedcba9876543210"
BASIC = ("admin", "s3cret-pass")
_UID_OK = re.compile(r"^[a-zA-Z0-9\-_]*$")


@dataclass
class Fault:
    method: str
    path: str  # prefix of the request path
    kind: str  # "status" | "drop" | "slow" | "html"
    times: int = 1
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0


@dataclass
class Stored:
    id: int
    uid: str
    dashboard: dict[str, Any]
    version: int
    folder_uid: str
    provisioned: bool = False
    versions: list[tuple[int, str]] = field(default_factory=list)  # (version, message)
    _raw: tuple[int, bytes] | None = None

    def raw(self) -> bytes:
        """The stored JSON, serialised once per version (a GET does not re-encode it)."""
        if self._raw is None or self._raw[0] != self.version:
            self._raw = (self.version, json.dumps(self.dashboard).encode())
        return self._raw[1]


class GrafanaState:
    """Everything the fake Grafana holds; tests may edit it directly (e.g. to simulate a UI edit)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.dashboards: dict[str, Stored] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.next_id = 1
        self.requests: list[tuple[str, str]] = []
        self.writes = 0
        self.faults: list[Fault] = []

    # helpers for tests -----------------------------------------------------------------------------
    def add_folder(self, uid: str, title: str, parent_uid: str = "") -> dict[str, Any]:
        with self.lock:
            folder = {"id": self._id(), "uid": uid, "title": title, "url": f"/dashboards/f/{uid}/",
                      "version": 1, "parentUid": parent_uid, "canSave": True, "canEdit": True,
                      "canAdmin": True, "canDelete": True, "hasAcl": False, "orgId": 1,
                      "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z",
                      "createdBy": "admin", "updatedBy": "admin"}
            self.folders[uid] = folder
            return folder

    def ui_edit(self, uid: str, change: Any) -> None:
        """What a person saving from the UI does: change the JSON, bump the version (keeps unknown keys)."""
        with self.lock:
            d = self.dashboards[uid]
            change(d.dashboard)
            d.version += 1
            d.dashboard["version"] = d.version
            d.versions.append((d.version, "edited in the UI"))

    def put(self, dashboard: dict[str, Any], folder_uid: str = "", *, provisioned: bool = False) -> Stored:
        """Store a dashboard as if Grafana already had it (e.g. from provisioning files)."""
        with self.lock:
            dash = copy.deepcopy(dashboard)
            stored = Stored(self._id(), dash["uid"], dash, 1, folder_uid, provisioned, [(1, "")])
            dash["id"], dash["version"] = stored.id, 1
            self.dashboards[stored.uid] = stored
            return stored

    def fault(self, method: str, path: str, kind: str, times: int = 1, **kw: Any) -> Fault:
        f = Fault(method, path, kind, times, **kw)
        with self.lock:
            self.faults.append(f)
        return f

    def count(self, method: str | None = None, prefix: str = "") -> int:
        with self.lock:
            return sum(1 for m, p in self.requests if (method is None or m == method) and p.startswith(prefix))

    def reset_counts(self) -> None:
        with self.lock:
            self.requests.clear()
            self.writes = 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def _go_float(text: str) -> float | int:
    """What a round trip through Go's encoding/json does to a number: a whole float comes back as an int."""
    value = float(text)
    return int(value) if value.is_integer() else value


@dataclass(frozen=True)
class _Raw:
    data: bytes  # an already serialised JSON reply


class _Reply(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}


def _err(status: int, message: str, code: str | None = None) -> _Reply:
    body: dict[str, Any] = {"message": message}
    if code:
        body["status"] = code
    return _Reply(status, body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # one buffered write per reply (flushed by http.server), not header and body apart
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -------------------------------------------------------------------------------------------
    def _handle(self, method: str) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with state.lock:
            state.requests.append((method, path))
            if method in ("POST", "PUT", "DELETE"):
                state.writes += 1
            fault = next((f for f in state.faults if f.times > 0 and f.method == method
                          and path.startswith(f.path)), None)
            if fault is not None:
                fault.times -= 1
        write = method in ("POST", "PUT", "DELETE")
        service = self.server.service_write if write else self.server.service_read
        if service:
            time.sleep(service)
        if fault is not None:
            if fault.kind == "drop":
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault.kind == "status":
                return self._send(fault.status, fault.body if fault.body is not None else
                                  {"message": "injected fault"}, fault.headers)
            elif fault.kind == "html":
                return self._send_raw(fault.status, b"<html><body>Welcome to nginx!</body></html>",
                                      "text/html")
        try:
            status, body = self._route(method, path, query, raw)
        except _Reply as reply:
            return self._send(reply.status, reply.body, reply.headers)
        self._send(status, body)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body.data if isinstance(body, _Raw) else json.dumps(body).encode()
        self._send_raw(status, data, "application/json", headers)

    def _send_raw(self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _auth(self, write: bool) -> None:
        header = self.headers.get("Authorization", "")
        role = None
        if header == f"Bearer {ADMIN_TOKEN}":
            role = "admin"
        elif header == f"Bearer {VIEWER_TOKEN}":
            role = "viewer"
        elif header.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                user = pw = ""
            role = "admin" if (user, pw) == BASIC else None
        if role is None:
            raise _Reply(401, {"message": "Invalid API key", "messageId": "api-keys.invalid", "statusCode": 401})
        if write and role != "admin":
            raise _Reply(403, {"accessErrorId": "ACE0000000001", "title": "Access denied",
                               "message": "You'll need additional permissions to perform this action. "
                                          "Permissions needed: dashboards:create"})

    def _route(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> tuple[int, Any]:
        state = self.server.state
        if path == "/api/health" and method in ("GET", "HEAD"):
            return 200, {"commit": "0123456", "database": "ok", "version": "12.1.0"}
        if not path.startswith("/api/"):
            raise _Reply(404, {"message": "Not found"})
        self._auth(write=method in ("POST", "PUT", "DELETE"))
        body: Any = None
        if raw:
            try:
                body = json.loads(raw, parse_float=_go_float)  # Go's encoding/json: 80.0 comes back as 80
            except ValueError:
                raise _err(400, "bad request data") from None
        with state.lock:
            if path == "/api/search" and method == "GET":
                return 200, self._search(query)
            if path == "/api/dashboards/db" and method == "POST":
                return 200, self._save(body)
            m = re.fullmatch(r"/api/dashboards/uid/([^/]+)", path)
            if m and method == "GET":
                return 200, self._get(m.group(1))
            if m and method == "DELETE":
                return 200, self._delete(m.group(1))
            if path == "/api/folders" and method == "GET":
                parent = (query.get("parentUid") or [""])[0]
                return 200, [{"id": f["id"], "uid": f["uid"], "title": f["title"], "parentUid": f["parentUid"]}
                             for f in sorted(state.folders.values(), key=lambda f: f["title"])
                             if f["parentUid"] == parent]
            if path == "/api/folders" and method == "POST":
                return 200, self._create_folder(body)
            m = re.fullmatch(r"/api/folders/([^/]+)", path)
            if m and method == "GET":
                folder = state.folders.get(m.group(1))
                if folder is None:
                    raise _err(404, "folder not found", "not-found")
                return 200, folder
        raise _Reply(404, {"message": "Not found"})

    # -- endpoints ---------------------------------------------------------------------------------
    def _hit(self, d: Stored) -> dict[str, Any]:
        state = self.server.state
        hit = {"id": d.id, "uid": d.uid, "orgId": 1, "title": d.dashboard.get("title", ""),
               "uri": f"db/{d.uid}", "url": f"/d/{d.uid}/x", "slug": "", "type": "dash-db",
               "tags": list(d.dashboard.get("tags") or []), "isStarred": False, "sortMeta": 0}
        if d.folder_uid:
            f = state.folders[d.folder_uid]
            hit.update(folderId=f["id"], folderUid=f["uid"], folderTitle=f["title"], folderUrl=f["url"])
        return hit

    def _search(self, q: dict[str, list[str]]) -> list[dict[str, Any]]:
        state = self.server.state
        try:
            limit = int((q.get("limit") or ["1000"])[0])
            page = int((q.get("page") or ["1"])[0])
        except ValueError:
            raise _err(422, "limit and page must be integers") from None
        limit = min(max(limit, 1), 5000)
        kind = (q.get("type") or [""])[0]
        if kind not in ("", "dash-db", "dash-folder"):
            raise _err(422, f"invalid type {kind!r}")
        hits: list[dict[str, Any]] = []
        if kind in ("", "dash-folder"):
            hits += [{"id": f["id"], "uid": f["uid"], "orgId": 1, "title": f["title"], "type": "dash-folder",
                      "url": f["url"], "tags": [], "isStarred": False} for f in state.folders.values()]
        if kind in ("", "dash-db"):
            hits += [self._hit(d) for d in state.dashboards.values()]
        text = (q.get("query") or [""])[0].lower()
        tags = q.get("tag") or []
        uids = q.get("dashboardUIDs") or []
        folder_uids = [u for v in q.get("folderUIDs") or [] for u in v.split(",")]
        hits = [h for h in hits
                if text in h["title"].lower()
                and all(t in h["tags"] for t in tags)
                and (not uids or h["uid"] in uids)
                and (not folder_uids or h.get("folderUid", "") in folder_uids)]
        hits.sort(key=lambda h: (h["type"] != "dash-folder", h["title"].lower()))
        return hits[(page - 1) * limit: page * limit]

    def _full_meta(self, d: Stored) -> dict[str, Any]:
        state = self.server.state
        folder = state.folders.get(d.folder_uid)
        meta = {"type": "db", "canSave": True, "canEdit": True, "canAdmin": True, "canStar": True,
                "canDelete": True, "slug": "x", "url": f"/d/{d.uid}/x", "expires": "0001-01-01T00:00:00Z",
                "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z", "updatedBy": "admin",
                "createdBy": "admin", "version": d.version, "hasAcl": False, "isFolder": False,
                "folderId": folder["id"] if folder else 0, "folderUid": d.folder_uid,
                "folderTitle": folder["title"] if folder else "General",
                "folderUrl": folder["url"] if folder else "", "provisioned": d.provisioned,
                "provisionedExternalId": f"{d.uid}.json" if d.provisioned else "", "apiVersion": "v1"}
        return meta

    def _get(self, uid: str) -> Any:
        d = self.server.state.dashboards.get(uid)
        if d is None:
            raise _err(404, "Dashboard not found", "not-found")
        full = self._full_meta(d)
        return _Raw(b'{"dashboard": ' + d.raw() + b', "meta": ' + json.dumps(full).encode() + b"}")

    def _delete(self, uid: str) -> dict[str, Any]:
        state = self.server.state
        d = state.dashboards.get(uid)
        if d is None:
            raise _err(404, "Dashboard not found", "not-found")
        if d.provisioned:
            raise _err(400, "provisioned dashboard cannot be deleted")
        del state.dashboards[uid]
        title = d.dashboard.get("title", "")
        return {"title": title, "message": f"Dashboard {title} deleted", "id": d.id}

    def _save(self, body: Any) -> dict[str, Any]:
        state = self.server.state
        if not isinstance(body, dict) or not isinstance(body.get("dashboard"), dict):
            raise _err(400, "bad request data")
        dash = body["dashboard"]
        message = body.get("message") or ""
        if len(message) > 500:
            raise _err(400, "message too long, max 500 characters")
        title = (dash.get("title") or "").strip()
        if not title:
            raise _err(400, "Dashboard title cannot be empty", "empty-name")
        if len(title) > 5000:
            raise _err(400, "Dashboard title cannot be longer than 5000 characters", "title-too-long")
        if any(len(t) > 50 for t in dash.get("tags") or []):
            raise _err(400, "Dashboard tag cannot be longer than 50 characters", "tag-too-long")
        uid = dash.get("uid") or ""
        if not _UID_OK.match(uid):
            raise _err(400, "uid contains illegal characters")
        if len(uid) > 40:
            raise _err(400, "uid too long, max 40 characters")
        folder_uid = body.get("folderUid")
        if folder_uid is None and body.get("folderId"):
            folder_uid = next((f["uid"] for f in state.folders.values() if f["id"] == body["folderId"]), None)
            if folder_uid is None:
                raise _err(400, "folder not found")
        folder_uid = folder_uid or ""
        if folder_uid and folder_uid not in state.folders:
            raise _err(400, "folder not found")
        overwrite = bool(body.get("overwrite"))
        existing = None
        dash_id = dash.get("id") or 0
        if dash_id:
            existing = next((d for d in state.dashboards.values() if d.id == dash_id), None)
            if existing is None:
                raise _err(404, "Dashboard not found", "not-found")
            if uid and uid != existing.uid and uid in state.dashboards:
                raise _err(400, "A dashboard with the same uid already exists")
        elif uid:
            existing = state.dashboards.get(uid)
        if existing is not None:
            if dash.get("version", 0) != existing.version and not overwrite:
                raise _err(412, "The dashboard has been changed by someone else", "version-mismatch")
            if existing.provisioned:
                raise _err(400, "Cannot save provisioned dashboard")
            existing.version += 1
            uid = existing.uid
            dash.update(id=existing.id, uid=uid, version=existing.version)
            existing.dashboard, existing.folder_uid = dash, folder_uid
            existing.versions.append((existing.version, message))
            stored = existing
        else:
            if not uid:
                uid = f"gen{state.next_id:06d}"
            stored = Stored(state._id(), uid, dash, 1, folder_uid, False, [(1, message)])
            dash.update(id=stored.id, uid=uid, version=1)
            state.dashboards[uid] = stored
        out = {"status": "success", "id": stored.id, "uid": uid, "title": title, "version": stored.version,
               "url": f"/d/{uid}/x", "slug": "x"}
        if folder_uid:
            out["folderUid"] = folder_uid
        return out

    def _create_folder(self, body: Any) -> dict[str, Any]:
        state = self.server.state
        if not isinstance(body, dict):
            raise _err(400, "bad request data")
        title = (body.get("title") or "").strip()
        uid = body.get("uid") or f"f{state.next_id:06d}"
        parent = body.get("parentUid") or ""
        if not title:
            raise _err(400, "folder title cannot be empty")
        if not _UID_OK.match(uid) or len(uid) > 40:
            raise _err(400, "uid contains illegal characters")
        if parent and parent not in state.folders:
            raise _err(404, "folder not found", "not-found")
        if uid in state.folders:
            raise _err(409, "a folder with the same uid already exists")
        if any(f["title"] == title and f["parentUid"] == parent for f in state.folders.values()):
            raise _err(409, "a folder with that name already exists")
        folder = state.add_folder(uid, title, parent)
        return folder


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: GrafanaState, service_read: float, service_write: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state, self.service_read, self.service_write = state, service_read, service_write


class GrafanaServer:
    """Start with `GrafanaServer().start()`; `url`, `state`, `stop()`."""

    def __init__(self, service_read: float = 0.0, service_write: float = 0.0) -> None:
        self.state = GrafanaState()
        self._server = _Server(self.state, service_read, service_write)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    def start(self) -> GrafanaServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> GrafanaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
