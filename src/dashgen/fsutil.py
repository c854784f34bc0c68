"""File writes that never leave a half-written file: write to a temp file beside the target, then rename.

The file gets the mode a reader expects: the target's own mode when it exists, else what `open()` would give
(0666 less the umask: 0644 under the usual 022), never `mkstemp`'s 0600, which would hide the mounted
dashboards/ and provisioning/ from Grafana's container user (uid 472).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any


def dumps_json(data: Any) -> str:
    """The one serialisation of generated JSON: sorted keys, 2-space indent, final newline."""
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (same-directory temp file + os.replace); one-line error on failure."""
    from dashgen.errors import DashgenError

    try:
        _atomic_write(path, text)
    except OSError as exc:
        raise DashgenError(f"{exc.filename or path}: cannot write ({exc.strerror})") from None


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (/proc/self/status, kernel 4.7+)."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def _new_file_mode(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _new_file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
