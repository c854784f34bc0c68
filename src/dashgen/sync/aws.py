"""How `dashgen sync` talks to AWS: bounded clients, one line per failure, a time budget per region.

- Every client has bounded connect and read timeouts and botocore's `standard` retry mode with a limited number
  of attempts (`client`), so a black-holed endpoint costs seconds, not botocore's default 60 s x 8 attempts.
- `Budget` is the total time one region (or the Price List API) may take in a sync, all its calls, retries and
  waits included (`[aws] region_timeout`): each read runs in a worker thread that is given what is left of the
  budget and abandoned when it runs out (a hook on the client then stops it before its next attempt).
- `describe` turns any AWS or network failure into one line: never a traceback, never a raw HTML body.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from dashgen.errors import AwsError, DashgenError, first_line

T = TypeVar("T")
CONNECT_TIMEOUT = 5.0  # seconds to open a connection
READ_TIMEOUT = 20.0  # seconds without a byte of the reply
MAX_ATTEMPTS = 4  # standard retry mode: the first try and 3 retries (exponential back-off, at most 20 s each)
MAX_LINE = 240  # a failure line is cut here


class DeadlineExpired(AwsError):
    """A region's (or the Price List API's) time budget ran out."""


def client(session: Any, service: str, region: str, *, retry_mode: str = "standard",
           budget: Budget | None = None) -> Any:
    """A boto3 client with bounded timeouts and retries (and, with `budget`, that refuses to send past it)."""
    from botocore.config import Config as BotoConfig

    made = session.client(service, region_name=region, config=BotoConfig(
        connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
        retries={"mode": retry_mode, "total_max_attempts": MAX_ATTEMPTS}))
    if budget is not None:
        budget.watch(made)
    return made


def aws_errors() -> tuple[type[BaseException], ...]:
    """What an AWS read can raise that is the world's fault, not dashgen's: botocore's errors (a 5xx, a
    throttle past the retries, no credentials, a timeout, a dropped connection), a reply botocore cannot parse
    (an HTML page from a proxy: `ResponseParserError` is not a `BotoCoreError`), a socket error, a budget out."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    return (BotoCoreError, ClientError, ResponseParserError, OSError, DeadlineExpired)


def _looks_like_markup(text: str) -> bool:
    head = text.lstrip()[:200].lower()
    return head.startswith("<") or "<html" in head or "<!doctype" in head or "<body" in head


def describe(exc: BaseException, *, operation: bool = True) -> str:
    """One line for an AWS or network failure (`ClientError` as `Operation: Code (HTTP n): message`, without
    the operation when the caller names it); a reply that is not AWS's (an HTML error page) is named as such,
    its body never printed; anything else as `Type: first line`."""
    from botocore.exceptions import ClientError
    from botocore.parsers import ResponseParserError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error") or {}
        status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        code = str(err.get("Code") or status or "?")
        message = str(err.get("Message") or "")
        if _looks_like_markup(message):
            message = "a reply that is not from AWS (an HTML page: a proxy or firewall?)"
        where = f"{exc.operation_name}: " if operation and getattr(exc, "operation_name", None) else ""
        http = f" (HTTP {status})" if status and str(status) != code else ""
        line = f"{where}{code}{http}: {first_line(Exception(message))}" if message else f"{where}{code}{http}"
    elif isinstance(exc, ResponseParserError):
        reason = first_line(exc).split("),")[0].removeprefix("Unable to parse response (")
        line = f"a reply that is not from AWS (not the XML/JSON AWS sends; a proxy or firewall?): {reason}"
    elif isinstance(exc, DashgenError):
        line = str(exc)
    else:
        from botocore.exceptions import BotoCoreError

        line = first_line(exc)
        if not isinstance(exc, BotoCoreError):  # botocore's own messages say what happened; others need a name
            line = f"{type(exc).__name__}: {line}"
    return line if len(line) <= MAX_LINE else line[:MAX_LINE - 3] + "..."


class Budget:
    """The total time `what` may take in one sync; `run` gives each read what is left of it."""

    def __init__(self, what: str, seconds: float, *, setting: str = "[aws] region_timeout") -> None:
        self.what, self.seconds, self.setting = what, seconds, setting
        self.spent = 0.0
        self.expired = False
        self.failure: str | None = None  # set by a caller whose read failed (the Price List API: not asked again)

    def remaining(self) -> float:
        return max(0.0, self.seconds - self.spent)

    def _expired_error(self) -> DeadlineExpired:
        return DeadlineExpired(f"no complete answer from {self.what} within {self.seconds:g} s ({self.setting}): "
                               "gave up")

    def watch(self, made: Any) -> None:
        """Make `made` (a boto3 client) refuse to send anything once this budget has run out: an abandoned
        read stops at its next attempt instead of running on in the background."""
        def refuse(**_: Any) -> None:
            if self.expired:
                raise self._expired_error()

        made.meta.events.register_first("before-send", refuse)

    def run(self, read: Callable[[], T]) -> T:
        """`read()` in a worker thread, waited for at most what is left; `DeadlineExpired` past it (the read is
        abandoned: a daemon thread whose result nobody reads)."""
        if self.expired or self.remaining() <= 0:
            self.expired = True
            raise self._expired_error()
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["value"] = read()
            except BaseException as exc:  # handed to the caller's thread below
                box["error"] = exc

        worker = threading.Thread(target=work, name=f"dashgen-aws-{self.what}", daemon=True)
        started = time.monotonic()
        worker.start()
        worker.join(self.remaining())
        self.spent += time.monotonic() - started
        if worker.is_alive():
            self.expired = True
            raise self._expired_error()
        if "error" in box:
            raise box["error"]
        return box["value"]
