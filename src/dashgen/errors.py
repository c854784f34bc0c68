"""The one user-facing exception family and the named exit codes.

Library code raises a `DashgenError` (or a subclass naming the world it came from); the CLI edge turns it
into one line on stderr and the exit code it carries. Nothing else reaches the user as a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2  # `diff`: Grafana differs (as terraform plan -detailed-exitcode)
EXIT_USAGE = 2  # bad config / bad input given by the user
EXIT_PARTIAL = 3  # `sync`: some (account, region) pairs or reads failed, the rest landed


def first_line(exc: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """The first non-empty line of an exception's message (its type name when it has none), with any URL or
    DSN password in it, and each of `secrets`, masked (`dashgen.redact`)."""
    from dashgen.redact import redact

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return redact(lines[0], secrets) if lines else type(exc).__name__


class DashgenError(Exception):
    """An error the user can act on; `str(err)` is the one line we print."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(DashgenError):
    """dashgen.toml (or another input file) is wrong: names the file, key and what was expected."""

    exit_code = EXIT_USAGE


class ValidationError(DashgenError):
    """A dashboard failed `dashgen validate`."""


class GrafanaError(DashgenError):
    """The Grafana HTTP API refused or could not be reached."""


class AwsError(DashgenError):
    """An AWS call failed (credentials, permissions, throttling past retries)."""


class DatabaseError(DashgenError):
    """The pricing store (PostgreSQL) refused or could not be reached."""
