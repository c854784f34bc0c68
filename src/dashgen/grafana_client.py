"""The Grafana HTTP API client: connection settings, auth, TLS, timeouts, retries, and one-line errors.

Only the handful of legacy `/api` endpoints `push` and `diff` need. Requests that are safe to repeat
(GET, HEAD, DELETE) are retried by urllib3 on dropped connections and on 429 (honouring `Retry-After`),
502, 503 and 504; a POST is repeated only on 429 (Grafana did not process it) or when the connection
could not be opened. Every failure becomes a one-line `GrafanaError`; the token is never part of one.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from dashgen.errors import GrafanaError
from dashgen.redact import redact

DEFAULT_TIMEOUT = (5.0, 30.0)  # seconds: connect, read
RETRY_STATUSES = (429, 502, 503, 504)
SEARCH_PAGE = 5000  # Grafana's maximum `limit` for /api/search


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


def _retry(total: int, backoff: float) -> Retry:
    return Retry(
        total=total,
        connect=total,
        read=total,
        status=total,
        backoff_factor=backoff,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD", "DELETE"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )


# What each 403 on our endpoints needs (Grafana RBAC action names).
_PERMISSION = {
    ("POST", "/api/dashboards/db"): "dashboards:create / dashboards:write",
    ("DELETE", "/api/dashboards/uid/"): "dashboards:delete",
    ("GET", "/api/dashboards/uid/"): "dashboards:read",
    ("POST", "/api/folders"): "folders:create",
    ("GET", "/api/folders"): "folders:read",
    ("GET", "/api/search"): "dashboards:read",
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
    ) -> None:
        self.conn, self.timeout, self.max_retry_after = conn, timeout, max_retry_after
        self.where = check_url(conn.url)  # never user:password@
        self.retries, self.backoff = retries, backoff
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=_retry(retries, backoff), pool_connections=1, pool_maxsize=pool)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # POSTs use their own adapter: only a refused connection is repeated automatically.
        self._post = requests.Session()
        post_retry = Retry(total=retries, connect=retries, read=0, status=0, other=0, backoff_factor=backoff,
                           allowed_methods=frozenset({"GET", "HEAD"}), raise_on_status=False)
        post_adapter = HTTPAdapter(max_retries=post_retry, pool_connections=1, pool_maxsize=pool)
        self._post.mount("http://", post_adapter)
        self._post.mount("https://", post_adapter)
        # Proxy and CA settings from the environment, read once (not on every request, as requests would).
        proxies = requests.utils.get_environ_proxies(conn.url)
        env_ca = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        for s in (self.session, self._post):
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
        if conn.insecure:
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def close(self) -> None:
        self.session.close()
        self._post.close()

    def __enter__(self) -> GrafanaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------------------
    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = self.conn.url + path
        session = self._post if method == "POST" else self.session
        for attempt in range(self.retries + 1):
            with self._lock:
                self.requests += 1
                self.writes += method in ("POST", "PUT", "DELETE")
            try:
                resp = session.request(method, url, timeout=self.timeout, **kwargs)
            except requests.exceptions.SSLError as exc:
                raise GrafanaError(f"{self.where}: TLS failure ({_reason(exc)}); use --ca-bundle for a "
                                   "private CA (or --insecure to skip verification)") from None
            except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
                reason = _reason(exc)
                if isinstance(exc, requests.exceptions.ReadTimeout) or "read timed out" in reason.lower() \
                        or reason == "timed out":
                    raise GrafanaError(f"{method} {path}: no reply from {self.where} within "
                                       f"{self.timeout[1]:g} s") from None
                raise GrafanaError(f"{method} {path}: cannot reach {self.where} ({reason})") from None
            except requests.exceptions.RequestException as exc:  # InvalidURL, TooManyRedirects...: one line
                raise GrafanaError(f"{method} {path}: {self.where}: {_reason(exc)}") from None
            if method == "POST" and resp.status_code == 429 and attempt < self.retries:
                time.sleep(min(_retry_after(resp, self.backoff * 2**attempt), self.max_retry_after))
                continue
            return resp
        return resp

    def request(self, method: str, path: str, *, params: Any = None, body: Any = None, data: bytes | None = None,
                ok404: bool = False) -> Any:
        """Send one request (JSON `body`, or `data` already encoded as JSON); return the reply's JSON
        (None for a 404 when `ok404`), or raise a one-line error."""
        headers = {"Content-Type": "application/json"} if data is not None else None
        resp = self._send(method, path, params=params, json=body, data=data, headers=headers)
        if ok404 and resp.status_code == 404:
            return None
        if resp.status_code >= 400:
            raise self._error(method, path, resp)
        try:
            return json.loads(resp.content)
        except ValueError:
            raise GrafanaError(f"{method} {path}: HTTP {resp.status_code} but the reply is not JSON "
                               f"({_snippet(resp)}): is {self.where} a Grafana?") from None

    def _error(self, method: str, path: str, resp: requests.Response) -> GrafanaError:
        status, where = resp.status_code, f"{method} {path}"
        try:
            body = resp.json()
        except ValueError:
            body = None
        message = body.get("message", "") if isinstance(body, dict) else ""
        code = body.get("status", "") if isinstance(body, dict) else ""
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

    # -- endpoints ---------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """GET /api/health, with a clear error when the URL is not a (healthy) Grafana."""
        resp = self._send("GET", "/api/health")
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or "database" not in data:
            raise GrafanaError(f"{self.where} does not look like Grafana: GET /api/health gave HTTP "
                               f"{resp.status_code} without Grafana's health JSON ({_snippet(resp)})")
        if resp.status_code != 200 or data.get("database") != "ok":
            raise GrafanaError(f"{self.where}: Grafana is unhealthy (database: {data.get('database')!r})")
        return data

    def search(self, **params: Any) -> list[dict[str, Any]]:
        """GET /api/search, every page."""
        hits: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = self.request("GET", "/api/search", params={**params, "limit": SEARCH_PAGE, "page": page})
            hits.extend(batch)
            if len(batch) < SEARCH_PAGE:
                return hits
            page += 1

    def get_dashboard(self, uid: str) -> dict[str, Any] | None:
        """GET /api/dashboards/uid/{uid}: `{dashboard, meta}`, or None when it does not exist."""
        return self.request("GET", f"/api/dashboards/uid/{quote(uid, safe='')}", ok404=True)

    def save_dashboard(self, dashboard: dict[str, Any] | str, folder_uid: str, message: str) -> dict[str, Any]:
        """POST /api/dashboards/db with `overwrite: false`: a stale `version` gives Grafana's 412.
        `dashboard` may be given already serialised (JSON text), to encode a large dashboard only once."""
        text = dashboard if isinstance(dashboard, str) else json.dumps(dashboard)
        rest = json.dumps({"folderUid": folder_uid, "overwrite": False, "message": message[:500]})
        return self.request("POST", "/api/dashboards/db", data=('{"dashboard":' + text + "," + rest[1:]).encode())

    def delete_dashboard(self, uid: str) -> None:
        self.request("DELETE", f"/api/dashboards/uid/{quote(uid, safe='')}", ok404=True)

    def get_folder(self, uid: str) -> dict[str, Any] | None:
        return self.request("GET", f"/api/folders/{quote(uid, safe='')}", ok404=True)

    def create_folder(self, uid: str, title: str, parent_uid: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"uid": uid, "title": title}
        if parent_uid:
            body["parentUid"] = parent_uid
        return self.request("POST", "/api/folders", body=body)


class GrafanaStatusError(GrafanaError):
    """An HTTP error reply from Grafana; keeps the status and Grafana's own `status` code (e.g. version-mismatch)."""

    def __init__(self, message: str, *, status: int, code: str = "", grafana_message: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.grafana_message = status, code, grafana_message


def _retry_after(resp: requests.Response, default: float) -> float:
    value = resp.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


def _snippet(resp: requests.Response) -> str:
    ctype = resp.headers.get("Content-Type", "?").split(";")[0]
    text = " ".join(resp.text[:60].split())
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
