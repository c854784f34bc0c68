"""Shared fixtures, named after the state they give.

`pg_server`: one real PostgreSQL 16 (pgserver, no root) for the whole session.
`fresh_db`: a new, empty database on it for one test, as a DSN (dropped afterwards).
`module_db`: a migrated database shared by one test module (property tests: one database, many examples).
Tests reach nothing but loopback; AWS is moto or botocore's Stubber.
"""

from __future__ import annotations

import os
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


@pytest.fixture(autouse=True)
def _offline_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may find real AWS credentials or config."""
    for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    """A real PostgreSQL 16 server for the session (pgserver: starts from a wheel in about a second)."""
    pgserver = pytest.importorskip("pgserver")
    data_dir = tempfile.mkdtemp(prefix="dashgen-pg-")
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    yield server
    server.cleanup()


def _admin_dsn(server: object) -> str:
    return server.get_uri()  # type: ignore[attr-defined]


@contextmanager
def _database(pg_server: object, prefix: str) -> Iterator[str]:
    """A new, empty database on the session's server, as a DSN (superuser `postgres`); dropped afterwards."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = _admin_dsn(pg_server)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
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


@pytest.fixture(scope="module")
def module_db(pg_server: object) -> Iterator[str]:
    """A DSN to a new database migrated once for a whole test module (its tests empty what they use first)."""
    import psycopg

    from dashgen.store.db import migrate

    with _database(pg_server, "m") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            migrate(conn)
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
