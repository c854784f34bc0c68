"""File writes that never leave a half-written file: write to a temp file beside the target, then rename."""

from __future__ import annotations

import json
import os
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


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
