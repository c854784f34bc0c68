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
slow reply, a dropped connection, or a non-JSON reply, for the next N requests matching a method and path;
with `after=True` the request is processed first and only its reply is lost (a save that landed, then a
dropped connection or a proxy's 502).

Modes (`GrafanaServer(mode=...)`), each modelling what Grafana's source says (grafana/grafana):
- `legacy`: only `/api` (Grafana before the `/apis` resource API, or a proxy that forwards `/api` only).
- `12.3` and `13`: also Kubernetes-style API discovery `GET /apis` (`APIGroupList`), the namespace in
  `GET /api/frontend/settings` (`pkg/api/dtos/frontend_settings.go`: `namespace`, `default` for org 1), and
  `/apis/dashboard.grafana.app/<v>/namespaces/<ns>/dashboards[/<name>]` (GET, POST create, PUT update,
  DELETE with `preconditions.resourceVersion`) and `/apis/folder.grafana.app/v1beta1/namespaces/<ns>/folders`:
  `metadata.name` is the uid, `metadata.generation` the version, `metadata.resourceVersion` the optimistic
  lock (stale -> 409 `Conflict` Status, exists -> 409 `AlreadyExists`), annotations `grafana.app/folder`,
  `grafana.app/message`, `grafana.app/managedBy` (`classic-file-provisioning` for a provisioned one)
  (`pkg/apimachinery/utils/meta.go`), and `status.conversion.storedVersion` when the stored version differs
  from the one read (`apps/dashboard/pkg/migration/conversion/conversion.go`). Dashboard versions offered:
  12.3 `v0alpha1 v1beta1 v2alpha1 v2beta1`; 13 `v0alpha1 v1beta1 v1 v2beta1 v2` (`apps/dashboard/pkg/apis/
  dashboard/v1`, `.../v2`); folders `v1beta1` (`apps/folder/pkg/apis/folder/v1beta1`).
- In every mode a dashboard stored as schema v2 (`state.put(..., api_version="v2beta1")`) answers the legacy
  `GET /api/dashboards/uid/<uid>` with 406 "dashboard api version not supported, use /apis/dashboard.grafana.app/
  <v>/namespaces/<ns>/dashboards/<uid> instead" (`pkg/api/dashboard.go`, `GetDashboard`).
`service_read`/`service_write` add a fixed service time per request (the bench's stand-in for Grafana's store).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
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
    after: bool = False  # process the request, then lose its reply (drop) or replace it (status)


@dataclass
class Stored:
    id: int
    uid: str
    dashboard: dict[str, Any]
    version: int
    folder_uid: str
    provisioned: bool = False
    versions: list[tuple[int, str]] = field(default_factory=list)  # (version, message)
    api_version: str = "v1"  # the dashboard.grafana.app version it is stored as (v2beta1: a dynamic dashboard)
    rv: int = 0  # metadata.resourceVersion
    _raw: tuple[int, bytes] | None = None

    def raw(self) -> bytes:
        """The stored JSON, serialised once per version (a GET does not re-encode it)."""
        if self._raw is None or self._raw[0] != self.version:
            self._raw = (self.version, json.dumps(self.dashboard).encode())
        return self._raw[1]


class GrafanaState:
    """Everything the fake Grafana holds; tests may edit it directly (e.g. to simulate a UI edit)."""

    def __init__(self, mode: str = "legacy") -> None:
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {sorted(MODES)}, got {mode!r}")
        self.mode = mode
        self.namespace = "default"
        self._rv = 1000
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
            d.rv = self.next_rv()
            d.dashboard["version"] = d.version
            d.versions.append((d.version, "edited in the UI"))

    def put(self, dashboard: dict[str, Any], folder_uid: str = "", *, provisioned: bool = False,
            api_version: str = "v1") -> Stored:
        """Store a dashboard as if Grafana already had it (e.g. from provisioning files, or saved from the UI
        as a schema-v2 dynamic dashboard with `api_version="v2beta1"`)."""
        with self.lock:
            dash = copy.deepcopy(dashboard)
            stored = Stored(self._id(), dash["uid"], dash, 1, folder_uid, provisioned, [(1, "")],
                            api_version=api_version, rv=self.next_rv())
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

    def next_rv(self) -> int:
        with self.lock:
            self._rv += 1
            return self._rv


MODES = {
    "legacy": {"health": "12.1.0", "dashboard": (), "folder": ()},
    "12.3": {"health": "12.3.3", "dashboard": ("v0alpha1", "v1beta1", "v2alpha1", "v2beta1"), "folder": ("v1beta1",)},
    "13": {"health": "13.0.0", "dashboard": ("v0alpha1", "v1beta1", "v1", "v2beta1", "v2"), "folder": ("v1beta1",)},
}


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


def _status(code: int, reason: str, message: str) -> _Reply:
    """A Kubernetes `Status` error, as Grafana's /apis answers (k8s.io/apimachinery metav1.Status)."""
    return _Reply(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                         "message": message, "reason": reason, "code": code})


def _preferred(versions: tuple[str, ...]) -> str:
    """A preferred version for discovery (dashgen does not rely on it: it picks what it can write)."""
    return next((v for v in versions if v.startswith("v1")), versions[-1])


def _message(meta: dict[str, Any]) -> str:
    annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
    return str(annotations.get("grafana.app/message") or "")


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
        if fault is not None and fault.after:
            with contextlib.suppress(_Reply):
                self._route(method, path, query, raw)  # processed (a save lands)...
            fault = dataclasses.replace(fault, after=False)  # ...then its reply is lost or replaced
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
            return 200, {"commit": "0123456", "database": "ok", "version": MODES[state.mode]["health"]}
        if (path == "/apis" or path.startswith("/apis/")) and state.mode != "legacy":
            self._auth(write=method in ("POST", "PUT", "DELETE"))
            try:
                body = json.loads(raw, parse_float=_go_float) if raw else None
            except ValueError:
                raise _status(400, "BadRequest", "the body of the request was in an unknown format") from None
            with state.lock:
                return self._apis(method, path, body)
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
            if path == "/api/frontend/settings" and method == "GET":
                settings: dict[str, Any] = {"buildInfo": {"version": MODES[state.mode]["health"]}}
                if state.mode != "legacy":
                    settings["namespace"] = state.namespace
                return 200, settings
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
        state = self.server.state
        d = state.dashboards.get(uid)
        if d is None:
            raise _err(404, "Dashboard not found", "not-found")
        if d.api_version.startswith("v2"):  # pkg/api/dashboard.go GetDashboard: "v2 is not supported in /api"
            url = f"/apis/dashboard.grafana.app/{d.api_version}/namespaces/{state.namespace}/dashboards/{d.uid}"
            raise _err(406, f"dashboard api version not supported, use {url} instead")
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
            existing.rv = state.next_rv()
            uid = existing.uid
            dash.update(id=existing.id, uid=uid, version=existing.version)
            existing.dashboard, existing.folder_uid = dash, folder_uid
            existing.versions.append((existing.version, message))
            stored = existing
        else:
            if not uid:
                uid = f"gen{state.next_id:06d}"
            stored = Stored(state._id(), uid, dash, 1, folder_uid, False, [(1, message)], rv=state.next_rv())
            dash.update(id=stored.id, uid=uid, version=1)
            state.dashboards[uid] = stored
        out = {"status": "success", "id": stored.id, "uid": uid, "title": title, "version": stored.version,
               "url": f"/d/{uid}/x", "slug": "x"}
        if folder_uid:
            out["folderUid"] = folder_uid
        return out

    # -- /apis (modes 12.3 and 13) -------------------------------------------------------------------
    def _apis(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        state = self.server.state
        offered = {"dashboard.grafana.app": MODES[state.mode]["dashboard"],
                   "folder.grafana.app": MODES[state.mode]["folder"]}
        if path == "/apis" and method == "GET":
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": group, "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                 "preferredVersion": {"groupVersion": f"{group}/{_preferred(versions)}",
                                      "version": _preferred(versions)}}
                for group, versions in offered.items()]}
        m = re.fullmatch(r"/apis/(dashboard|folder)\.grafana\.app/([^/]+)/namespaces/([^/]+)/(dashboards|folders)"
                         r"(?:/([^/]+))?", path)
        if not m or m.group(2) not in offered[f"{m.group(1)}.grafana.app"] or \
                (m.group(1) == "dashboard") != (m.group(4) == "dashboards"):
            raise _status(404, "NotFound", "the server could not find the requested resource")
        group, version, namespace, resource, name = m.groups()
        if namespace != state.namespace:
            raise _status(403, "Forbidden", f"namespace mismatch: {namespace!r} is not yours")
        if resource == "folders":
            return self._apis_folder(method, version, name, body)
        gr = "dashboards.dashboard.grafana.app"
        if name is None and method == "POST":
            meta = body.get("metadata") if isinstance(body, dict) else None
            spec = body.get("spec") if isinstance(body, dict) else None
            if not isinstance(meta, dict) or not isinstance(spec, dict) or not meta.get("name"):
                raise _status(422, "Invalid", "metadata.name and spec are required")
            uid = meta["name"]
            if uid in state.dashboards:
                raise _status(409, "AlreadyExists", f'{gr} "{uid}" already exists')
            folder_uid = self._folder_annotation(meta)
            if not (spec.get("title") or "").strip():
                raise _status(422, "Invalid", "spec.title: Required value: dashboard title cannot be empty")
            dash = dict(spec, uid=uid)
            stored = Stored(state._id(), uid, dash, 1, folder_uid, False, [(1, _message(meta))],
                            api_version=version, rv=state.next_rv())
            dash.update(id=stored.id, version=1)
            state.dashboards[uid] = stored
            return 201, self._dash_resource(stored, version)
        d = state.dashboards.get(name or "")
        if name is None or d is None:
            raise _status(404, "NotFound", f'{gr} "{name}" not found')
        if method == "GET":
            return 200, self._dash_resource(d, version)
        if method == "PUT":
            meta = body.get("metadata") if isinstance(body, dict) else None
            spec = body.get("spec") if isinstance(body, dict) else None
            if not isinstance(meta, dict) or not isinstance(spec, dict):
                raise _status(422, "Invalid", "metadata and spec are required")
            rv = meta.get("resourceVersion")
            if not rv:
                raise _status(422, "Invalid", "metadata.resourceVersion: Invalid value: 0x0: must be specified "
                                              "for an update")
            if str(rv) != str(d.rv):
                raise _status(409, "Conflict", f'Operation cannot be fulfilled on {gr} "{name}": the object has '
                                               "been modified; please apply your changes to the latest version "
                                               "and try again")
            if d.provisioned:
                raise _status(400, "BadRequest", "Cannot save provisioned dashboard")
            folder_uid = self._folder_annotation(meta)
            d.version += 1
            d.rv = state.next_rv()
            d.dashboard = dict(spec, uid=d.uid, id=d.id, version=d.version)
            d.folder_uid, d.api_version = folder_uid, version
            d.versions.append((d.version, _message(meta)))
            return 200, self._dash_resource(d, version)
        if method == "DELETE":
            pre = body.get("preconditions") if isinstance(body, dict) else None
            if isinstance(pre, dict) and pre.get("resourceVersion") and str(pre["resourceVersion"]) != str(d.rv):
                raise _status(409, "Conflict", f'Operation cannot be fulfilled on {gr} "{name}": Precondition '
                                               f"failed: ResourceVersion in precondition: {pre['resourceVersion']},"
                                               f" ResourceVersion in object meta: {d.rv}")
            if d.provisioned:
                raise _status(400, "BadRequest", "provisioned dashboard cannot be deleted")
            del state.dashboards[d.uid]
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": {"name": d.uid, "group": "dashboard.grafana.app", "kind": "dashboards"}}
        raise _status(405, "MethodNotAllowed", f"{method} is not supported")

    def _folder_annotation(self, meta: dict[str, Any]) -> str:
        annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
        folder_uid = annotations.get("grafana.app/folder") or ""
        if folder_uid and folder_uid not in self.server.state.folders:
            raise _status(400, "BadRequest", "folder not found")
        return folder_uid

    def _dash_resource(self, d: Stored, version: str) -> _Raw:
        state = self.server.state
        annotations = {"grafana.app/createdBy": "user:admin", "grafana.app/updatedBy": "user:admin",
                       "grafana.app/updatedTimestamp": "2026-01-01T00:00:00Z"}
        if d.folder_uid:
            annotations["grafana.app/folder"] = d.folder_uid
        if d.versions and d.versions[-1][1]:
            annotations["grafana.app/message"] = d.versions[-1][1]
        if d.provisioned:
            annotations.update({"grafana.app/managedBy": "classic-file-provisioning",
                                "grafana.app/managerId": "dashgen", "grafana.app/sourcePath": f"{d.uid}.json"})
        spec = {k: v for k, v in d.dashboard.items() if k != "id"}  # unified storage keeps no id in the spec
        obj: dict[str, Any] = {
            "kind": "Dashboard", "apiVersion": f"dashboard.grafana.app/{version}",
            "metadata": {"name": d.uid, "namespace": state.namespace, "uid": f"k8s-{d.id:08d}",
                         "resourceVersion": str(d.rv), "generation": d.version,
                         "creationTimestamp": "2026-01-01T00:00:00Z", "annotations": annotations,
                         "labels": {"grafana.app/deprecatedInternalID": str(d.id)}},
            "spec": spec,
        }
        if d.api_version != version:
            obj["status"] = {"conversion": {"failed": False, "storedVersion": d.api_version}}
        return _Raw(json.dumps(obj).encode())

    def _apis_folder(self, method: str, version: str, name: str | None, body: Any) -> tuple[int, Any]:
        state = self.server.state
        gr = "folders.folder.grafana.app"
        if name is None and method == "POST":
            meta = body.get("metadata") if isinstance(body, dict) else None
            spec = body.get("spec") if isinstance(body, dict) else None
            if not isinstance(meta, dict) or not isinstance(spec, dict) or not meta.get("name"):
                raise _status(422, "Invalid", "metadata.name and spec are required")
            uid, title = meta["name"], (spec.get("title") or "").strip()
            if not title:
                raise _status(422, "Invalid", "spec.title: Required value")
            if uid in state.folders:
                raise _status(409, "AlreadyExists", f'{gr} "{uid}" already exists')
            annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
            parent = annotations.get("grafana.app/folder") or ""
            if parent and parent not in state.folders:
                raise _status(404, "NotFound", f'{gr} "{parent}" not found')
            return 201, self._folder_resource(state.add_folder(uid, title, parent), version)
        folder = state.folders.get(name or "")
        if name is None or folder is None:
            raise _status(404, "NotFound", f'{gr} "{name}" not found')
        if method == "GET":
            return 200, self._folder_resource(folder, version)
        raise _status(405, "MethodNotAllowed", f"{method} is not supported")

    def _folder_resource(self, folder: dict[str, Any], version: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": folder["uid"], "namespace": self.server.state.namespace,
                                "resourceVersion": str(folder["version"]), "generation": folder["version"]}
        if folder["parentUid"]:
            meta["annotations"] = {"grafana.app/folder": folder["parentUid"]}
        return {"kind": "Folder", "apiVersion": f"folder.grafana.app/{version}", "metadata": meta,
                "spec": {"title": folder["title"]}}

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

    def __init__(self, service_read: float = 0.0, service_write: float = 0.0, mode: str = "legacy") -> None:
        self.state = GrafanaState(mode)
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
