"""Secrets never reach error text: DSN and URL passwords in every form libpq and requests accept, through the one
redaction (`dashgen.redact`) that `errors.first_line`, the store, the Grafana client and the CLI edge all use."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from dashgen.config import load_config
from dashgen.errors import ConfigError, DatabaseError, GrafanaError, first_line
from dashgen.grafana.client import Connection, GrafanaClient, connection_from_env
from dashgen.redact import dsn_passwords, redact
from dashgen.store import db as store

SECRET = "hun/ter2"  # a `/` too: libpq and urllib end a URI's authority there

# (DSN, the password in it as a user would recognise it): every form libpq accepts.
DSNS = [
    ("postgresql://bob:hunter2@127.0.0.1:1/x?connect_timeout=2", "hunter2"),
    ("postgresql://bob:hun%2Fter%40x@127.0.0.1:1/x?connect_timeout=2", "hun/ter@x"),  # percent-encoded
    ("postgresql://bob:hun/ter2@127.0.0.1:1/x?connect_timeout=2", "hun/ter2"),  # `/` in a URI password
    ("postgresql://bob:hun ter2@127.0.0.1:1/x", "hun ter2"),  # libpq quotes it back: "unexpected spaces"
    ("postgresql://bob@127.0.0.1:1/x?password=hunter2&connect_timeout=2", "hunter2"),
    ("postgres://bob@127.0.0.1:1/x?sslpassword=hunter2&connect_timeout=2", "hunter2"),
    ("host=127.0.0.1 port=1 password='hun ter2' connect_timeout=2", "hun ter2"),  # keyword, quoted
    ("host=127.0.0.1 port=1 password=hun\\ ter2 connect_timeout=2", "hun ter2"),  # keyword, escaped space
    ("host=127.0.0.1 port=1 password = hunter2 connect_timeout=2", "hunter2"),
    ("host=127.0.0.1 port=1 password='hunter2", "hunter2"),  # unterminated quote
    ("postgresql://bob:hunter2@127.0.0.1:99999/x", "hunter2"),  # bad port
    ("postgresql://bob:hunter2@[::1/x", "hunter2"),  # bad IPv6 host: libpq quotes the whole URI
]


def _fragments(secret: str) -> list[str]:
    """The secret and its words of 3+ characters: a message must show none of them."""
    return [secret, *(w for w in secret.replace("/", " ").replace("@", " ").split() if len(w) >= 3)]


@pytest.mark.parametrize(("dsn", "secret"), DSNS)
def test_a_dsn_password_never_reaches_the_connect_error(dsn: str, secret: str) -> None:
    with pytest.raises(DatabaseError) as err:
        store.connect(dsn)
    message = str(err.value)
    assert message.startswith("cannot connect to the pricing store (") and "\n" not in message
    for fragment in _fragments(secret):
        assert fragment not in message, (fragment, message)
    assert "***" in message


@pytest.mark.parametrize(("dsn", "secret"), DSNS)
def test_the_config_refuses_a_dsn_with_a_password_in_any_form(tmp_path: Path, dsn: str, secret: str) -> None:
    path = tmp_path / "dashgen.toml"
    path.write_text(tomli_w.dumps({"pricing": {"dsn": dsn}}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == (f"{path}: pricing.dsn: expected a DSN without a password (use PGPASSWORD or "
                              "~/.pgpass), got a DSN with one")


@pytest.mark.parametrize("dsn", [
    "postgresql://bob@db.example:5432/dashgen",
    "postgresql://bob:@db.example/dashgen",  # an empty password is no password
    "host=db.example user=bob dbname=dashgen sslmode=verify-full",
    "postgresql:///dashgen?host=/var/run/postgresql",
])
def test_the_config_accepts_a_dsn_without_a_password(tmp_path: Path, dsn: str) -> None:
    path = tmp_path / "dashgen.toml"
    path.write_text(tomli_w.dumps({"pricing": {"dsn": dsn}}))
    assert load_config(path).dsn == dsn
    assert dsn_passwords(dsn) == []


PASSWORDS = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=4, max_size=24)


@given(PASSWORDS)
def test_redact_hides_any_password_in_every_dsn_form(password: str) -> None:
    """Property: whatever the password, none of the ways a DSN can carry it survives `redact` (and the config's
    no-password rule sees each one)."""
    escaped = password.replace("\\", "\\\\").replace("'", "\\'")
    bare = re.sub(r"([\\\s'])", r"\\\1", password)
    forms = [
        f"postgresql://bob:{quote(password, safe='')}@db:5432/x",
        f"postgresql://bob:{password}@db:5432/x",
        f"postgresql://bob@db/x?sslmode=require&password={quote(password, safe='')}",
        f"host=db password='{escaped}' user=bob",
        f"host=db password={bare} user=bob",
    ]
    for dsn in forms:
        shown = redact(dsn, dsn_passwords(dsn))
        assert password not in shown and quote(password, safe="") not in shown, (dsn, shown)
        assert dsn_passwords(dsn), dsn


def test_pgpassword_is_masked_if_a_message_quotes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """libpq may quote a value in its own words; PGPASSWORD is a secret the store knows and masks too."""
    monkeypatch.setenv("PGPASSWORD", "from-the-env")
    with pytest.raises(DatabaseError) as err:
        store.connect("host=127.0.0.1 port=1 dbname=from-the-env connect_timeout=2")
    assert "from-the-env" not in str(err.value)


@pytest.mark.parametrize(("text", "shown"), [
    ("Failed to parse: http://user:hun/ter2@host:99999/api/health",
     "Failed to parse: http://user:***@host:99999/api/health"),
    ("ProxyConnectionError: Failed to connect to proxy URL: \"http://me:hunter2@proxy:3128\"",
     "ProxyConnectionError: Failed to connect to proxy URL: \"http://me:***@proxy:3128\""),
    ("ftp://user:pw-pw@host", "ftp://user:***@host"),
    ("dsn host=h password='a b c' user=u", "dsn host=h password=*** user=u"),
    ("(postgresql://bob@h/x?password=hunter2&connect_timeout=1): refused",
     "(postgresql://bob@h/x?password=***&connect_timeout=1): refused"),  # the rest of the query stays
    ("env PGPASSWORD=hunter2 sslpassword='x y'", "env PGPASSWORD=*** sslpassword=***"),
    ("http://host:3000/api/search?query=x", "http://host:3000/api/search?query=x"),  # nothing to hide
    ("postgresql://bob@h/db", "postgresql://bob@h/db"),
])
def test_redact_masks_url_and_dsn_passwords(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_first_line_is_the_redacting_funnel_for_every_exception_message() -> None:
    """sync, pricing and volumes report AWS failures through `first_line`: a proxy URL with a password is masked."""
    exc = ConnectionError('Failed to connect to proxy URL: "http://me:hunter2@proxy:3128"\nmore')
    assert first_line(exc) == 'Failed to connect to proxy URL: "http://me:***@proxy:3128"'
    assert first_line(ValueError("token abc123 rejected"), ["abc123"]) == "token *** rejected"


@pytest.mark.parametrize(("url", "expected"), [
    ("http://user:hun/ter2@127.0.0.1:1", "not a valid URL"),  # `/` in the password: host 'user', port 'hun'
    ("http://user:hunter2@host:99999", "not a valid URL"),  # requests: uncaught InvalidURL with the password
    ("http://user:hunter2@[::1", "not a valid URL"),  # urllib: ValueError
    ("ftp://user:hunter2@host", "expected it to start with http:// or https://"),
    ("http://user:hunter2@", "not a valid URL"),
])
def test_a_bad_grafana_url_is_one_line_without_the_password(url: str, expected: str) -> None:
    with pytest.raises(GrafanaError) as err:
        connection_from_env(url=url, env={"GRAFANA_TOKEN": "glsa_x"})
    message = str(err.value)
    assert expected in message and "\n" not in message
    assert "hunter2" not in message and "hun/ter2" not in message and "ter2" not in message
    with pytest.raises(GrafanaError) as err:  # a Connection built directly is checked the same way
        GrafanaClient(Connection(url, token="glsa_x"))
    assert "hunter2" not in str(err.value) and "ter2" not in str(err.value)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GRAFANA_", "DASHGEN_", "PG"))}
    return subprocess.run([sys.executable, "-m", "dashgen.cli", *args], capture_output=True, text=True,
                          env={**base, **(env or {})}, timeout=60)


@pytest.mark.parametrize("url", ["http://user:hunter2@host:99999", "ftp://user:hunter2@host"])
def test_cli_push_with_a_bad_url_is_one_line_exit_1(tmp_path: Path, url: str) -> None:
    proc = _cli("diff", "--dir", str(tmp_path), "--url", url, env={"GRAFANA_TOKEN": "glsa_secret_token"})
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: Grafana URL 'ftp://user:***@host'"
                                                                     if url.startswith("ftp") else
                                                                     "error: Grafana URL 'http://user:***@host")
    assert "hunter2" not in proc.stderr + proc.stdout and "glsa_secret_token" not in proc.stderr + proc.stdout


@pytest.mark.parametrize(("dsn", "secret"), [DSNS[2], DSNS[3], DSNS[7]])
def test_cli_db_migrate_with_a_bad_dsn_is_one_line(dsn: str, secret: str) -> None:
    proc = _cli("db", "migrate", "--dsn", dsn)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: cannot connect to the pricing store")
    for fragment in _fragments(secret):
        assert fragment not in proc.stderr


def test_the_cli_edge_masks_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a library message quotes (a proxy page echoing a header, a server echoing a value), the one line
    the CLI prints never shows GRAFANA_TOKEN, GRAFANA_PASSWORD, PGPASSWORD or the AWS secret keys."""
    from typer.testing import CliRunner

    from dashgen import cli
    from dashgen.errors import DashgenError

    def leaky(_path: object) -> None:
        raise DashgenError("upstream said: Authorization: Bearer glsa_env_token (and aws-secret-key-value)")

    monkeypatch.setattr(cli, "_config", leaky)
    env = {"GRAFANA_TOKEN": "glsa_env_token", "AWS_SECRET_ACCESS_KEY": "aws-secret-key-value"}
    result = CliRunner().invoke(cli.app, ["metrics"], env=env)
    assert result.exit_code == 1
    assert result.stderr == "error: upstream said: Authorization: Bearer *** (and ***)\n"
