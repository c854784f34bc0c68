"""The one user-facing exception family and the named exit codes.

Library code raises a `DashgenError` (or a subclass naming the world it came from); the CLI edge turns it
into one line on stderr and the exit code it carries. Nothing else reaches the user as a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_DIFFERS = 2  # `diff`, `build --check`, `provision --check`: something differs (terraform -detailed-exitcode)
EXIT_PARTIAL = 3  # `sync`: some (account, region) pairs or reads failed, the rest landed
EXIT_USAGE = 4  # the command line, the config or an input file is wrong (click's usage errors too)

# Every exit code of every command, and the one thing it means (docs/cli.md is generated from this table).
EXIT_CODES: dict[int, tuple[str, str]] = {
    EXIT_OK: ("ok", "Done: everything asked for was done (`diff`, `build --check`: nothing differs)."),
    EXIT_ERROR: ("error", "Failed: Grafana, AWS or the store refused or could not be reached, a dashboard is "
                          "invalid, a push conflicted, or nothing of a sync landed. One line on stderr says why."),
    EXIT_DIFFERS: ("differs", "`diff`: Grafana differs from the built dashboards; `build --check`, "
                              "`provision --check`: generated files are stale, missing or unexpected."),
    EXIT_PARTIAL: ("partial", "`sync`: some regions or reads failed (one line each on stderr), the rest landed."),
    EXIT_USAGE: ("usage", "The command line, dashgen.toml or another input file is wrong (an unknown option, a "
                          "bad value, a missing folder): the line names the option, file, key or value at fault."),
}


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
