"""The Grafana HTTP API client: connection settings, auth, TLS, timeouts, retries, API discovery, and
one-line errors.

Transport rules (every request, reads and writes alike):
- Retried on a dropped connection, a timeout, and HTTP 429, 502, 503 and 504, at most `retries` times with
  exponential back-off. Writes are safe to repeat: a save carries the version (or `resourceVersion`) it read
  with `overwrite: false`, so a repeat of a save that had landed gets Grafana's 412/409, and `push` then reads
  the dashboard back and counts it as landed when it holds exactly what was sent.
- `Retry-After` is obeyed up to `max_retry_after` seconds (60); a longer one fails in one line.
- One total deadline for the run (`deadline`, 900 s): no request starts, and no back-off sleeps, past it.
- Redirects are followed only for reads and only to the same scheme, host and port (at most 5): the token
  and the dashboards never go to another host, and a write is never redirected.
- A reply is read up to `MAX_REPLY_BYTES` (decompressed); JSON of the wrong shape (`null`, a list where an
  object is due), bad gzip, or nesting too deep is a one-line `GrafanaError`. The token is never part of one.

Dashboard API: `discover()` reads Kubernetes-style API discovery (`GET /apis`, an `APIGroupList`) and, when
the server offers `dashboard.grafana.app` in a version whose spec is the classic dashboard JSON (v1, v1beta1),
uses `/apis/dashboard.grafana.app/<version>/namespaces/<ns>/dashboards` and `/apis/folder.grafana.app/...`
(Grafana 12.x and 13, where `/api/dashboards/*` and `/api/folders/*` are deprecated); otherwise the legacy
`/api` endpoints. The namespace is the one Grafana gives the signed-in identity in `GET /api/frontend/settings`
(`namespace`: `default` for org 1 on-prem, `org-<id>`, or `stacks-<id>` on Grafana Cloud).
Sources, in grafana/grafana: `pkg/api/dashboard.go` (406 "dashboard api version not supported, use
/apis/dashboard.grafana.app/<v2...>/namespaces/<ns>/dashboards/<uid> instead" for a dashboard stored as v2),
`pkg/api/dtos/frontend_settings.go` (`Namespace string json:"namespace"`), `pkg/apimachinery/utils/meta.go`
(annotations `grafana.app/folder`, `grafana.app/message`, `grafana.app/managedBy`,
`grafana.app/managerAllowsEdits`), `apps/dashboard/pkg/apis/dashboard/v1beta1/dashboard_status_gen.go`
(`status.conversion.storedVersion`), `apps/dashboard/pkg/migration/conversion/conversion.go` (a v2beta1
dashboard read as v1beta1 is converted, with `storedVersion: v2beta1`), `apps/folder/pkg/apis/folder/v1beta1/
folder_spec_gen.go` (folder `spec.title`). Optimistic locking there is Kubernetes' `metadata.resourceVersion`:
a stale one gets 409 `Conflict`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from dashgen.errors import GrafanaError
from dashgen.redact import redact

DEFAULT_TIMEOUT = (5.0, 30.0)  # seconds: connect, read
DEFAULT_DEADLINE = 900.0  # seconds for every request of one run, retries and back-off included
RETRY_STATUSES = (429, 502, 503, 504)
SEARCH_PAGE = 5000  # Grafana's maximum `limit` for /api/search
MAX_SEARCH_PAGES = 40  # 200,000 dashboards: beyond that the server is not paging (or not a Grafana we serve)
MAX_REPLY_BYTES = 64 * 2**20  # one reply, decompressed
MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)

DASHBOARD_GROUP = "dashboard.grafana.app"
FOLDER_GROUP = "folder.grafana.app"
# Versions whose `spec` is the classic dashboard JSON dashgen builds (v2* is the dynamic-dashboard schema).
DASHBOARD_VERSIONS = ("v1", "v1beta1")
FOLDER_VERSIONS = ("v1", "v1beta1")
ANNO_FOLDER = "grafana.app/folder"
ANNO_MESSAGE = "grafana.app/message"
ANNO_MANAGED_BY = "grafana.app/managedBy"
ANNO_MANAGER_ALLOWS_EDITS = "grafana.app/managerAllowsEdits"
_NAMESPACE_OK = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a Kubernetes namespace name
_V2_URL = re.compile(r"/apis/dashboard\.grafana\.app/(v2[A-Za-z0-9]*)/")


@dataclass(frozen=True)
class Connection:
    """Where Grafana is and how to authenticate; `repr` never shows the secret."""

    url: str
    token: str | None = None
    user: str | None = None
    password: str | None = None
    ca_bundle: str | None = None
    insecure: bool = False

    def __repr__(self) -> str:
        auth = "token" if self.token else ("basic" if self.user else "none")
        return f"Connection(url={self.url!r}, auth={auth}, insecure={self.insecure})"


def connection_from_env(
    url: str | None = None,
    token_file: Path | None = None,
    ca_bundle: Path | None = None,
    insecure: bool = False,
    env: dict[str, str] | None = None,
) -> Connection:
    """Build a `Connection` from options, then GRAFANA_URL / GRAFANA_TOKEN / GRAFANA_USER+GRAFANA_PASSWORD."""
    env = dict(os.environ) if env is None else env
    url = url or env.get("GRAFANA_URL")
    if not url:
        raise GrafanaError("no Grafana URL: set GRAFANA_URL or pass --url")
    check_url(url)
    token = None
    if token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise GrafanaError(f"{token_file}: cannot read token file: {exc.strerror}") from None
        if not token:
            raise GrafanaError(f"{token_file}: token file is empty")
    token = token or env.get("GRAFANA_TOKEN") or None
    user, password = env.get("GRAFANA_USER") or None, env.get("GRAFANA_PASSWORD") or None
    if not token and not (user and password):
        raise GrafanaError(
            "no Grafana credentials: set GRAFANA_TOKEN (service-account token), pass --token-file, "
            "or set GRAFANA_USER and GRAFANA_PASSWORD"
        )
    if ca_bundle is not None and not Path(ca_bundle).is_file():
        raise GrafanaError(f"{ca_bundle}: CA bundle not found")
    return Connection(
        url=url.rstrip("/"),
        token=token,
        user=None if token else user,
        password=None if token else password,
        ca_bundle=str(ca_bundle) if ca_bundle else None,
        insecure=insecure,
    )


def check_url(url: str) -> str:
    """`url` without its `user:password@` (for messages), or a one-line error that never shows the password:
    an http(s) scheme, a host, and a port from 1 to 65535 (requests would raise a bare `InvalidURL`)."""
    shown = redact(url)
    if not url.lower().startswith(("http://", "https://")):
        raise GrafanaError(f"Grafana URL {shown!r}: expected it to start with http:// or https://")
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port  # .port raises ValueError when out of range or not a number
    except ValueError:
        host, port = None, -1
    if not host or port == -1 or port == 0 or any(c.isspace() for c in url):
        raise GrafanaError(f"Grafana URL {shown!r}: not a valid URL (expected http(s)://host[:port] with a port "
                           "from 1 to 65535; put credentials in GRAFANA_TOKEN or GRAFANA_USER/GRAFANA_PASSWORD)")
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _safe_url(url: str) -> str:
    """`url` without `user:password@`."""
    try:
        parts = urlsplit(url)
        return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    except ValueError:
        return "<unparsable URL>"


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_warning(conn: Connection) -> str | None:
    """A one-line warning when credentials would cross the network unencrypted (http:// to a non-loopback
    host), else None."""
    parts = urlsplit(conn.url)
    if parts.scheme != "http" or _is_loopback(parts.hostname) or not (conn.token or conn.password):
        return None
    what = "token" if conn.token else "password"
    return (f"warning: {_safe_url(conn.url)} is plain http:// to a non-local host: the Grafana {what} crosses "
            "the network unencrypted (use https://)")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


# What each 403 on our endpoints needs (Grafana RBAC action names).
_PERMISSION = {
    ("POST", "/api/dashboards/db"): "dashboards:create / dashboards:write",
    ("DELETE", "/api/dashboards/uid/"): "dashboards:delete",
    ("GET", "/api/dashboards/uid/"): "dashboards:read",
    ("POST", "/api/folders"): "folders:create",
    ("GET", "/api/folders"): "folders:read",
    ("GET", "/api/search"): "dashboards:read",
    ("POST", f"/apis/{DASHBOARD_GROUP}/"): "dashboards:create",
    ("PUT", f"/apis/{DASHBOARD_GROUP}/"): "dashboards:write",
    ("DELETE", f"/apis/{DASHBOARD_GROUP}/"): "dashboards:delete",
    ("GET", f"/apis/{DASHBOARD_GROUP}/"): "dashboards:read",
    ("POST", f"/apis/{FOLDER_GROUP}/"): "folders:create",
    ("GET", f"/apis/{FOLDER_GROUP}/"): "folders:read",
}


def _permission_for(method: str, path: str) -> str:
    for (m, prefix), perm in _PERMISSION.items():
        if m == method and path.startswith(prefix):
            return perm
    return "the permission for this request"


class GrafanaClient:
    """A thread-safe client for one Grafana; counts the requests and writes it sent."""

    def __init__(
        self,
        conn: Connection,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retries: int = 4,
        backoff: float = 0.2,
        pool: int = 8,
        max_retry_after: float = 60.0,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self.conn, self.timeout, self.max_retry_after = conn, timeout, max_retry_after
        self.where = check_url(conn.url)  # never user:password@
        self.retries, self.backoff = retries, backoff
        self.deadline = deadline
        self._deadline_at = time.monotonic() + deadline
        self.session = requests.Session()
        # Retries, redirects and status handling are ours (`_send`); urllib3 only opens the connection.
        no_retry = Retry(total=0, connect=0, read=0, redirect=0, status=0, other=0, raise_on_redirect=False,
                         raise_on_status=False)
        adapter = HTTPAdapter(max_retries=no_retry, pool_connections=1, pool_maxsize=pool)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # Proxy and CA settings from the environment, read once (not on every request, as requests would).
        proxies = requests.utils.get_environ_proxies(conn.url)
        env_ca = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        s = self.session
        s.trust_env = False
        s.proxies.update(proxies)
        s.headers.update({"Accept": "application/json", "User-Agent": "dashgen"})
        if conn.token:
            s.headers["Authorization"] = f"Bearer {conn.token}"
        elif conn.user:
            s.auth = (conn.user, conn.password or "")
        s.verify = False if conn.insecure else (conn.ca_bundle or env_ca or True)
        self._lock = threading.Lock()
        self.requests = 0
        self.writes = 0
        # Which dashboard API `discover()` chose: None = legacy /api; else the /apis bases.
        self.dashboards_base: str | None = None
        self.folders_base: str | None = None
        self.namespace: str | None = None
        self.grafana_version: str | None = None
        if conn.insecure:
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> GrafanaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def api(self) -> str:
        """The dashboard API in use, for people: `/api` or `/apis/dashboard.grafana.app/v1 (namespace default)`."""
        if self.dashboards_base is None:
            return "/api"
        return f"{self.dashboards_base.rsplit('/namespaces/', 1)[0]} (namespace {self.namespace})"

    # -- transport ---------------------------------------------------------------------------------
    def _remaining(self, method: str, path: str) -> float:
        left = self._deadline_at - time.monotonic()
        if left <= 0:
            raise GrafanaError(f"{method} {path}: gave up: the run's deadline of {self.deadline:g} s has passed "
                               "(Grafana too slow or unreachable; --deadline sets it)")
        return left

    def _sleep(self, seconds: float, method: str, path: str) -> None:
        left = self._remaining(method, path)
        if seconds >= left:
            raise GrafanaError(f"{method} {path}: gave up: waiting {seconds:g} s more would pass the run's "
                               f"deadline of {self.deadline:g} s")
        time.sleep(seconds)

    def _send(self, method: str, path: str, *, params: Any = None, data: bytes | None = None,
              headers: dict[str, str] | None = None) -> requests.Response:
        """One request with retries (see the module docstring); returns the last reply, body read."""
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            left = self._remaining(method, path)
            timeout = (min(self.timeout[0], left), min(self.timeout[1], left))
            with self._lock:
                self.requests += 1
                self.writes += method in ("POST", "PUT", "PATCH", "DELETE")
            try:
                resp = self._follow(method, path, params, data, headers, timeout)
            except requests.exceptions.SSLError as exc:
                raise GrafanaError(f"{self.where}: TLS failure ({_reason(exc)}); use --ca-bundle for a "
                                   "private CA (or --insecure to skip verification)") from None
            except requests.exceptions.ContentDecodingError as exc:
                raise GrafanaError(f"{method} {path}: the reply from {self.where} could not be decoded "
                                   f"({_reason(exc)}): a broken proxy or not a Grafana?") from None
            except (requests.exceptions.Timeout, requests.exceptions.ConnectionError,
                    requests.exceptions.ChunkedEncodingError) as exc:
                last = exc
                if attempt < self.retries:
                    self._sleep(self.backoff * 2**attempt, method, path)
                    continue
                break
            except requests.exceptions.RequestException as exc:
                raise GrafanaError(f"{method} {path}: request to {self.where} failed ({_reason(exc)})") from None
            if resp.status_code in RETRY_STATUSES and attempt < self.retries:
                wait = _retry_after(resp, self.backoff * 2**attempt)
                if wait > self.max_retry_after:
                    raise GrafanaError(f"{method} {path}: HTTP {resp.status_code} with Retry-After {wait:g} s, "
                                       f"longer than dashgen waits ({self.max_retry_after:g} s): try again later")
                self._sleep(wait, method, path)
                continue
            resp.dashgen_attempts = attempt + 1  # type: ignore[attr-defined]
            return resp
        assert last is not None
        reason = _reason(last)
        if isinstance(last, requests.exceptions.ReadTimeout) or "read timed out" in reason.lower() \
                or reason == "timed out":
            raise GrafanaError(f"{method} {path}: no reply from {self.where} within {self.timeout[1]:g} s "
                               f"({self.retries + 1} attempts)") from None
        raise GrafanaError(f"{method} {path}: cannot reach {self.where} ({reason}; "
                           f"{self.retries + 1} attempts)") from None

    def _follow(self, method: str, path: str, params: Any, data: bytes | None, headers: dict[str, str] | None,
                timeout: tuple[float, float]) -> requests.Response:
        """Send, following redirects only for reads and only on the same origin; read the body (bounded)."""
        url = self.conn.url + path
        home = _origin(self.conn.url)
        for _hop in range(MAX_REDIRECTS + 1):
            resp = self.session.request(method, url, params=params, data=data, headers=headers, timeout=timeout,
                                        allow_redirects=False, stream=True)
            if resp.status_code not in _REDIRECTS or "Location" not in resp.headers:
                self._read_body(resp, method, path)
                return resp
            target = urljoin(url, resp.headers["Location"])
            resp.close()
            scheme, host, port = _origin(target)
            if (scheme, host, port) != home:
                raise GrafanaError(f"{method} {path}: {self.where} redirects (HTTP {resp.status_code}) to another "
                                   f"host or scheme ({scheme}://{host}:{port}): not followed, the token and "
                                   "dashboards go only to GRAFANA_URL; set it to the address that answers")
            if method not in ("GET", "HEAD"):
                raise GrafanaError(f"{method} {path}: {self.where} answers with a redirect (HTTP "
                                   f"{resp.status_code}) to {urlsplit(target).path!r}: dashgen does not follow "
                                   "redirects for writes; set GRAFANA_URL to the address that answers")
            url, params = target, None
        raise GrafanaError(f"{method} {path}: more than {MAX_REDIRECTS} redirects from {self.where} "
                           "(a redirect loop?): set GRAFANA_URL to the address that answers")

    def _read_body(self, resp: requests.Response, method: str, path: str) -> None:
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_content(256 * 1024):
            size += len(chunk)
            if size > MAX_REPLY_BYTES:
                resp.close()
                raise GrafanaError(f"{method} {path}: the reply from {self.where} is larger than "
                                   f"{MAX_REPLY_BYTES // 2**20} MiB: refused")
            self._remaining(method, path)
            chunks.append(chunk)
        resp._content = b"".join(chunks)  # what resp.content / resp.json() read

    def request(self, method: str, path: str, *, params: Any = None, body: Any = None, data: bytes | None = None,
                ok404: bool = False, expect: type | None = None) -> Any:
        """Send one request (JSON `body`, or `data` already encoded as JSON); return the reply's JSON
        (None for a 404 when `ok404`), or raise a one-line error. `expect` (dict or list) checks its shape."""
        if body is not None:
            data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else None
        resp = self._send(method, path, params=params, data=data, headers=headers)
        if ok404 and resp.status_code == 404:
            return None
        if resp.status_code >= 400:
            raise self._error(method, path, resp)
        try:
            value = json.loads(resp.content)
        except (ValueError, RecursionError):
            raise GrafanaError(f"{method} {path}: HTTP {resp.status_code} but the reply is not JSON "
                               f"({_snippet(resp)}): is {self.where} a Grafana?") from None
        if expect is not None and not isinstance(value, expect):
            want = "an object" if expect is dict else "a list"
            raise GrafanaError(f"{method} {path}: HTTP {resp.status_code} but the reply is JSON {_kind(value)}, "
                               f"not {want}: is {self.where} a Grafana?")
        return value

    def _error(self, method: str, path: str, resp: requests.Response) -> GrafanaError:
        status, where = resp.status_code, f"{method} {path}"
        try:
            body = json.loads(resp.content)
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            body = None if body is None else {}
        message = _text(body.get("message")) if body else ""
        # Grafana's legacy errors carry `status` (e.g. version-mismatch); Kubernetes' Status carries `reason`.
        code = _text(body.get("reason") if body and body.get("kind") == "Status" else (body or {}).get("status"))
        if body is None:
            text = f"HTTP {status}, reply is not JSON ({_snippet(resp)})"
        elif status == 401:
            text = ("401 unauthorized: Grafana rejected the credentials (check GRAFANA_TOKEN or the token file, "
                    "or GRAFANA_USER/GRAFANA_PASSWORD)")
        elif status == 403:
            text = f"403 forbidden: the token lacks {_permission_for(method, path)} ({message or 'access denied'})"
        elif status == 404:
            text = f"404 not found ({message or 'no such object'})"
        elif status == 429:
            text = "429 too many requests: still rate limited after retries"
        else:
            text = f"{status} {message or resp.reason}" + (f" [{code}]" if code else "")
        return GrafanaStatusError(f"{where}: {text}", status=status, code=code, grafana_message=message)

    # -- discovery ---------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """GET /api/health, with a clear error when the URL is not a (healthy) Grafana."""
        resp = self._send("GET", "/api/health")
        try:
            data = json.loads(resp.content)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict) or "database" not in data:
            raise GrafanaError(f"{self.where} does not look like Grafana: GET /api/health gave HTTP "
                               f"{resp.status_code} without Grafana's health JSON ({_snippet(resp)})")
        if resp.status_code != 200 or data.get("database") != "ok":
            raise GrafanaError(f"{self.where}: Grafana is unhealthy (database: {_text(data.get('database'))!r})")
        self.grafana_version = _text(data.get("version")) or None
        return data

    def discover(self) -> str:
        """Choose the dashboard API from what the server offers (`GET /apis`), never from its version string:
        `/apis/dashboard.grafana.app/<v1|v1beta1>/namespaces/<ns>` when offered, else the legacy `/api`.
        Returns `self.api`."""
        resp = self._send("GET", "/apis")
        try:
            groups = json.loads(resp.content) if resp.status_code == 200 else None
        except (ValueError, RecursionError):
            groups = None  # e.g. Grafana < 12 answers its HTML app page here
        offered: dict[str, list[str]] = {}
        if isinstance(groups, dict) and groups.get("kind") == "APIGroupList" and isinstance(groups.get("groups"), list):
            for group in groups["groups"]:
                if not isinstance(group, dict) or not isinstance(group.get("versions"), list):
                    continue
                offered[_text(group.get("name"))] = [_text(v.get("version")) for v in group["versions"]
                                                     if isinstance(v, dict)]
        dash = next((v for v in DASHBOARD_VERSIONS if v in offered.get(DASHBOARD_GROUP, [])), None)
        folder = next((v for v in FOLDER_VERSIONS if v in offered.get(FOLDER_GROUP, [])), None)
        if dash is None or folder is None:
            self.dashboards_base = self.folders_base = self.namespace = None
            return self.api
        try:
            settings = self.request("GET", "/api/frontend/settings", ok404=True)
        except GrafanaError:
            settings = None
        namespace = _text(settings.get("namespace")) if isinstance(settings, dict) else ""
        if not namespace:  # not told which namespace is ours: never guess, keep the legacy API
            self.dashboards_base = self.folders_base = self.namespace = None
            return self.api
        if not _NAMESPACE_OK.match(namespace):
            raise GrafanaError(f"GET /api/frontend/settings: namespace {namespace[:80]!r} is not a valid "
                               "Kubernetes namespace name")
        self.namespace = namespace
        self.dashboards_base = f"/apis/{DASHBOARD_GROUP}/{dash}/namespaces/{namespace}"
        self.folders_base = f"/apis/{FOLDER_GROUP}/{folder}/namespaces/{namespace}"
        return self.api

    # -- endpoints ---------------------------------------------------------------------------------
    def search(self, **params: Any) -> list[dict[str, Any]]:
        """GET /api/search, every page; bounded: at most MAX_SEARCH_PAGES pages, a page that repeats the
        previous one is an error, and only uid, title, type, tags and folderUid of each hit are kept."""
        hits: dict[str, dict[str, Any]] = {}
        previous: list[str] | None = None
        for page in range(1, MAX_SEARCH_PAGES + 1):
            batch = self.request("GET", "/api/search", params={**params, "limit": SEARCH_PAGE, "page": page},
                                 expect=list)
            uids = [h["uid"] for h in batch if isinstance(h, dict) and isinstance(h.get("uid"), str)]
            if batch and uids == previous:
                raise GrafanaError(f"GET /api/search: page {page} repeats page {page - 1}: {self.where} does not "
                                   "page its search results")
            for h in batch:
                if isinstance(h, dict) and isinstance(h.get("uid"), str):
                    tags = h.get("tags")
                    hits[h["uid"]] = {
                        "uid": h["uid"], "title": _text(h.get("title")), "type": _text(h.get("type")),
                        "folderUid": _text(h.get("folderUid")),
                        "tags": [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [],
                    }
            if len(batch) < SEARCH_PAGE:
                return list(hits.values())
            previous = uids
        raise GrafanaError(f"GET /api/search: more than {MAX_SEARCH_PAGES} pages of {SEARCH_PAGE} hits from "
                           f"{self.where}: refused (not paging, or too many dashboards)")

    def get_dashboard(self, uid: str) -> dict[str, Any] | None:
        """`{dashboard, meta}`, or None when it does not exist. `meta` has `version`, `folderUid`,
        `provisioned`, and from `/apis` also `resourceVersion`; `meta.storedVersion` starting with `v2` means
        Grafana stores it as a schema-v2 (dynamic) dashboard, which dashgen does not write."""
        if self.dashboards_base is not None:
            obj = self.request("GET", f"{self.dashboards_base}/dashboards/{quote(uid, safe='')}", ok404=True,
                               expect=dict)
            return None if obj is None else _from_resource(obj, uid)
        path = f"/api/dashboards/uid/{quote(uid, safe='')}"
        try:
            got = self.request("GET", path, ok404=True, expect=dict)
        except GrafanaStatusError as exc:
            if exc.status != 406:
                raise
            # pkg/api/dashboard.go: a dashboard stored as v2 is not served by /api (406 naming its /apis URL).
            m = _V2_URL.search(exc.grafana_message)
            return {"dashboard": {}, "meta": {"storedVersion": m.group(1) if m else "v2", "version": None}}
        if got is None:
            return None
        dashboard, meta = got.get("dashboard"), got.get("meta")
        if not isinstance(dashboard, dict) or not isinstance(meta, dict):
            raise GrafanaError(f"GET {path}: the reply has no dashboard object and meta object: is {self.where} "
                               "a Grafana?")
        return got

    def save_dashboard(self, dashboard: dict[str, Any] | str, folder_uid: str, message: str, *,
                       uid: str | None = None, version: int | None = None,
                       resource_version: str | None = None) -> dict[str, Any]:
        """Create (no `version`/`resource_version`) or update with optimistic locking: legacy
        `POST /api/dashboards/db` with the `version` read and `overwrite: false` (stale: 412 version-mismatch),
        or `/apis` POST (create; exists: 409 AlreadyExists) / PUT with `metadata.resourceVersion` (stale: 409
        Conflict). `dashboard` may be given already serialised (JSON text of an object). Returns
        `{"version": <new version>}` (and Grafana's reply)."""
        text = dashboard if isinstance(dashboard, str) else json.dumps(dashboard)
        if self.dashboards_base is None:
            if version is not None:
                text = text[:-1] + ("," if len(text) > 2 else "") + f'"version":{int(version)}}}'
            rest = json.dumps({"folderUid": folder_uid, "overwrite": False, "message": message[:500]})
            saved = self.request("POST", "/api/dashboards/db", data=('{"dashboard":' + text + "," + rest[1:]).encode(),
                                 expect=dict)
            return saved
        if uid is None:
            uid = json.loads(text).get("uid")
        metadata: dict[str, Any] = {"name": uid, "annotations": {ANNO_MESSAGE: message[:500]}}
        if folder_uid:
            metadata["annotations"][ANNO_FOLDER] = folder_uid
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        head = json.dumps({"apiVersion": f"{DASHBOARD_GROUP}/{self.dashboards_base.split('/')[3]}",
                           "kind": "Dashboard", "metadata": metadata})
        data = (head[:-1] + ',"spec":' + text + "}").encode()
        if resource_version is None:
            obj = self.request("POST", f"{self.dashboards_base}/dashboards", data=data, expect=dict)
        else:
            obj = self.request("PUT", f"{self.dashboards_base}/dashboards/{quote(uid, safe='')}", data=data,
                               expect=dict)
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        return {"version": meta.get("generation"), "resourceVersion": meta.get("resourceVersion"), "uid": uid}

    def delete_dashboard(self, uid: str, resource_version: str | None = None) -> None:
        """Delete (a missing one is fine); through `/apis` with a `resourceVersion` precondition when given."""
        if self.dashboards_base is None:
            self.request("DELETE", f"/api/dashboards/uid/{quote(uid, safe='')}", ok404=True)
            return
        body = None
        if resource_version is not None:
            body = {"kind": "DeleteOptions", "apiVersion": "v1",
                    "preconditions": {"resourceVersion": resource_version}}
        self.request("DELETE", f"{self.dashboards_base}/dashboards/{quote(uid, safe='')}", body=body, ok404=True)

    def get_folder(self, uid: str) -> dict[str, Any] | None:
        if self.folders_base is not None:
            return self.request("GET", f"{self.folders_base}/folders/{quote(uid, safe='')}", ok404=True,
                                expect=dict)
        return self.request("GET", f"/api/folders/{quote(uid, safe='')}", ok404=True, expect=dict)

    def create_folder(self, uid: str, title: str, parent_uid: str | None = None) -> dict[str, Any]:
        if self.folders_base is not None:
            metadata: dict[str, Any] = {"name": uid}
            if parent_uid:
                metadata["annotations"] = {ANNO_FOLDER: parent_uid}
            body = {"apiVersion": f"{FOLDER_GROUP}/{self.folders_base.split('/')[3]}", "kind": "Folder",
                    "metadata": metadata, "spec": {"title": title}}
            return self.request("POST", f"{self.folders_base}/folders", body=body, expect=dict)
        body = {"uid": uid, "title": title}
        if parent_uid:
            body["parentUid"] = parent_uid
        return self.request("POST", "/api/folders", body=body, expect=dict)


class GrafanaStatusError(GrafanaError):
    """An HTTP error reply from Grafana; keeps the status and Grafana's own code (legacy `status`, e.g.
    version-mismatch, or a Kubernetes Status `reason`, e.g. Conflict)."""

    def __init__(self, message: str, *, status: int, code: str = "", grafana_message: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.grafana_message = status, code, grafana_message


def _from_resource(obj: dict[str, Any], uid: str) -> dict[str, Any]:
    """A `/apis` Dashboard resource as the legacy `{dashboard, meta}` shape push compares."""
    metadata, spec, status = obj.get("metadata"), obj.get("spec"), obj.get("status")
    if not isinstance(metadata, dict) or not isinstance(spec, dict):
        raise GrafanaError(f"dashboard {uid!r}: the /apis reply has no metadata and spec objects")
    annotations = metadata.get("annotations") if isinstance(metadata.get("annotations"), dict) else {}
    conversion = status.get("conversion") if isinstance(status, dict) else None
    stored = _text(conversion.get("storedVersion")) if isinstance(conversion, dict) else ""
    dashboard = dict(spec)
    dashboard.setdefault("uid", _text(metadata.get("name")) or uid)
    managed = _text(annotations.get(ANNO_MANAGED_BY))
    meta = {
        "version": metadata.get("generation"),
        "resourceVersion": _text(metadata.get("resourceVersion")) or None,
        "folderUid": _text(annotations.get(ANNO_FOLDER)),
        # Any manager (file provisioning, a repository, terraform...) that does not allow edits.
        "provisioned": bool(managed) and _text(annotations.get(ANNO_MANAGER_ALLOWS_EDITS)) != "true",
        "managedBy": managed,
        "storedVersion": stored,
    }
    return {"dashboard": dashboard, "meta": meta}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _retry_after(resp: requests.Response, default: float) -> float:
    value = resp.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


def _snippet(resp: requests.Response) -> str:
    ctype = resp.headers.get("Content-Type", "?").split(";")[0]
    try:
        text = " ".join(resp.content[:60].decode("utf-8", "replace").split())
    except Exception:  # noqa: BLE001 - a snippet must never fail
        text = ""
    return f"{ctype}: {text!r}" if text else ctype


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, one line, no URL credentials."""
    inner: BaseException = exc
    seen = 0
    while seen < 10:
        seen += 1
        nxt = getattr(inner, "reason", None) or inner.__cause__ or inner.__context__
        if nxt is None or nxt is inner or not isinstance(nxt, BaseException):
            break
        inner = nxt
    text = " ".join(str(inner).split())
    if "Max retries exceeded" in text or not text:
        text = type(inner).__name__
    return redact(text)[:160]
