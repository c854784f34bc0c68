"""Shared fixtures, named after the state they give.

`pg_server`: one real PostgreSQL 16 (pgserver, no root) for the whole session.
`fresh_db`: a new, empty database on it for one test, as a DSN (dropped afterwards).
`module_db`: a migrated database shared by one test module (property tests: one database, many examples).
`migrated_db`: a new database already migrated, for one test (a copy of a template migrated once per session).
Tests reach nothing but loopback; AWS is moto or botocore's Stubber.

Markers (registered in pyproject.toml; `pytest -m "not pg and not aws and not browser and not node"` runs the
offline tests alone): `pg` and `node` are set here from the fixtures a test uses (`pg_server`, `node`), `aws` from
moto used by the test or one of its fixtures (see `_uses_moto`); `browser` is set by `browser.needs_chromium` or
by hand. A test that starts moto without the `aws` marker fails, saying so (`pytest_runtest_protocol` below).
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

try:  # property tests: random in development, the same examples on every CI run (no flaky CI)
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI"):
        _hypothesis_settings.load_profile("ci")
except ImportError:  # pragma: no cover - hypothesis is a test extra
    pass
DATA = Path(__file__).resolve().parent / "data"  # copies of the reference material tests need (see its README)


# --- markers ------------------------------------------------------------------------------------------------------

MARK_BY_FIXTURE = {"pg_server": "pg", "node": "node"}  # a test using this fixture (even indirectly) gets the marker


@functools.cache
def _mentions_moto(func: object, depth: int = 2) -> bool:
    """The function's source names `mock_aws`, or a module-level function it calls does (two calls deep: e.g. a
    fixture calling tests/cost_scenario.py's `synced_store`)."""
    try:
        source = inspect.getsource(func)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return False
    if "mock_aws" in source:
        return True
    names = getattr(getattr(func, "__code__", None), "co_names", ())
    found = (getattr(func, "__globals__", {}).get(name) for name in names)
    found = (inspect.unwrap(f) for f in found if callable(f))  # a helper may be wrapped (functools.cache)
    return depth > 0 and any(inspect.isfunction(f) and _mentions_moto(f, depth - 1) for f in found)


def _uses_moto(item: pytest.Item) -> bool:
    """The test, or a fixture it uses, starts moto (see `_mentions_moto`)."""
    function = getattr(item, "function", None)
    if function is not None and _mentions_moto(inspect.unwrap(function)):
        return True
    info = getattr(item, "_fixtureinfo", None)
    defs = info.name2fixturedefs.values() if info is not None else ()
    return any(_mentions_moto(d.func) for fixturedefs in defs for d in fixturedefs)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks each test with what it needs (before `-m` selects): pg, node from its fixtures; aws from moto."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for fixture, marker in MARK_BY_FIXTURE.items():
            if fixture in names and item.get_closest_marker(marker) is None:
                item.add_marker(marker)
        if item.get_closest_marker("aws") is None and _uses_moto(item):
            item.add_marker("aws")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """A test without the `aws` marker that starts moto fails, naming the marker: the offline selection
    (`-m "not aws ..."`) must never run one."""
    models = sys.modules.get("moto.core.models")
    if models is None or item.get_closest_marker("aws") is not None:
        return (yield)
    original = models.MockAWS.start

    def refuse(self: object, *args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{item.nodeid} starts moto but has no `aws` marker: add @pytest.mark.aws "
                           f"(or name mock_aws in the test or its fixture; see tests/conftest.py)")

    models.MockAWS.start = refuse
    try:
        return (yield)
    finally:
        models.MockAWS.start = original


@pytest.fixture(autouse=True, scope="session")
def _offline_aws() -> Iterator[None]:
    """No test (nor a module- or session-scoped fixture) may find real AWS credentials or config. A test's own
    `monkeypatch` changes are undone back to this state after it."""
    with pytest.MonkeyPatch.context() as mp:
        for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            mp.delenv(key, raising=False)
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        yield


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    """A real PostgreSQL 16 server for the session (pgserver: starts from a wheel in about a second). Under
    pytest-xdist each worker is a session of its own: its own server, in its own data directory."""
    pgserver = pytest.importorskip("pgserver")
    data_dir = tempfile.mkdtemp(prefix="dashgen-pg-")
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    yield server
    server.cleanup()


def _admin_dsn(server: object) -> str:
    return server.get_uri()  # type: ignore[attr-defined]


@contextmanager
def _database(pg_server: object, prefix: str, template: str | None = None) -> Iterator[str]:
    """A new database on the session's server (empty, or a copy of `template`), as a DSN (superuser
    `postgres`); dropped afterwards."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = _admin_dsn(pg_server)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield admin.replace("/postgres?", f"/{name}?", 1)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_db(pg_server: object) -> Iterator[str]:
    """A DSN to a new, empty database (superuser `postgres`), dropped after the test."""
    with _database(pg_server, "t") as dsn:
        yield dsn


@pytest.fixture(scope="session")
def _migrated_template(pg_server: object) -> Iterator[str]:
    """The name of a database migrated once for the session, a template for `migrated_db` (never connected to
    after: CREATE DATABASE ... TEMPLATE needs it without sessions)."""
    import psycopg

    from dashgen.store.db import migrate

    with _database(pg_server, "template") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            migrate(conn)
        yield dsn.split("?", 1)[0].rsplit("/", 1)[1]


@pytest.fixture
def migrated_db(pg_server: object, _migrated_template: str) -> Iterator[str]:
    """A DSN to a new database holding a freshly migrated, empty store (a copy of the session's template: about
    0.01 s instead of about 0.13 s for migrating), dropped after the test."""
    with _database(pg_server, "t", template=_migrated_template) as dsn:
        yield dsn


@pytest.fixture(scope="module")
def module_db(pg_server: object, _migrated_template: str) -> Iterator[str]:
    """A DSN to a new migrated database shared by a whole test module (its tests empty what they use first)."""
    with _database(pg_server, "m", template=_migrated_template) as dsn:
        yield dsn


@pytest.fixture
def grafana_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A fresh in-process Grafana API (tests/grafana_server.py) on 127.0.0.1, with GRAFANA_URL and an
    admin GRAFANA_TOKEN for it in the environment."""
    from grafana_server import ADMIN_TOKEN, GrafanaServer

    for key in ("GRAFANA_USER", "GRAFANA_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    with GrafanaServer() as server:
        monkeypatch.setenv("GRAFANA_URL", server.url)
        monkeypatch.setenv("GRAFANA_TOKEN", ADMIN_TOKEN)
        yield server


@pytest.fixture
def dashboards_dir(tmp_path: Path) -> Path:
    """`dashgen build` output with the default config, in a fresh folder."""
    from dashgen.build import build
    from dashgen.config import Config

    out = tmp_path / "dashboards"
    build(Config(), out)
    return out
