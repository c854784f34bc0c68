"""The one redaction of secrets in text that may carry a URL or a DSN (error messages, warnings).

Covers what libpq and requests accept and may echo back: a URI's `user:password@` (the password may hold `/`,
`%`-escapes or `@`: everything up to the last `@` of the word goes), a keyword DSN's `password=...`
(quoted, `\\`-escaped or bare) and a query string's `password=...` / `sslpassword=...`. Callers that know
the secret itself (the password parsed from a DSN, `PGPASSWORD`) pass it too, so a library message quoting
a fragment in its own words cannot show it. Pure `re`: light enough for `errors.first_line`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote

MASK = "***"
# Environment variables that hold a secret dashgen or its libraries read (Grafana, libpq, the AWS SDK).
SECRET_ENV = ("GRAFANA_TOKEN", "GRAFANA_PASSWORD", "PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

# scheme://user:password@host... : the password runs to the last `@` of the word (libpq and urllib disagree
# on where a `/` in a password ends the authority; hiding more than the password is the safe side).
_URI_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@?#]*:)\S*@")
# ?password=value (also sslpassword) in a URI's query string: up to the next `&` or space.
_QUERY = re.compile(r"(?i)([?&]\w*password=)[^&\s]*")
# password=value (also sslpassword, PGPASSWORD) in a keyword DSN: 'quoted (with \' escapes)', or bare (with \x
# escapes) up to the next space; an unterminated quote hides the rest of the text.
_KEYWORD = re.compile(r"(?i)(?<![?&\w])(\w*password\s*=\s*)('(?:[^'\\]|\\.)*'?|(?:\\.|[^\s\\])+)")
_MIN_SECRET = 3  # a shorter "secret" would mask ordinary words (and says little)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every URL/DSN password in it, and each of `secrets` (also %-encoded), replaced by `***`."""
    text = _URI_USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _QUERY.sub(lambda m: m.group(1) + MASK, text)
    text = _KEYWORD.sub(lambda m: m.group(1) + MASK, text)
    for secret in secrets:
        if not secret or len(secret) < _MIN_SECRET:
            continue
        for form in {secret, quote(secret, safe=""), unquote(secret)}:
            if len(form) >= _MIN_SECRET:
                text = text.replace(form, MASK)
    return text


def dsn_passwords(dsn: str) -> list[str]:
    """The passwords a DSN carries (URI userinfo, `?password=`, keyword `password=`), raw and decoded.

    A tolerant reading for redaction and for the config's no-password rule: it never raises."""
    found: list[str] = []
    for m in re.finditer(r"(?i)^\s*[a-z][a-z0-9+.-]*://[^\s:/@?#]*:(.*)@", dsn):  # to the last @, spaces too
        if m.group(1):
            found += [m.group(1), unquote(m.group(1))]
    for m in _QUERY.finditer(dsn):
        value = m.group(0)[len(m.group(1)):]
        found += [value, unquote(value)]
    for m in _KEYWORD.finditer(dsn):
        value = m.group(2)
        if value.startswith("'"):  # quoted
            found.append(re.sub(r"\\(.)", r"\1", value[1:].removesuffix("'")))
        else:  # bare (with \ escapes)
            found += [value, re.sub(r"\\(.)", r"\1", value)]
    return [s for s in dict.fromkeys(found) if s]


def env_secrets() -> list[str]:
    """The values of the secret environment variables that are set (`SECRET_ENV`)."""
    return [v for v in (os.environ.get(name) for name in SECRET_ENV) if v]
