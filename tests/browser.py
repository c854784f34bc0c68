"""Headless Chromium for the tests that look at what a person sees (Debian's `chromium`; CI installs it).

Flags as this workplace's probe used: no sandbox (root), no GPU, no background networking (the network is
closed), a fresh profile per run.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)
_skip_without_chromium = pytest.mark.skipif(CHROMIUM is None,
                                            reason="no Chromium on this machine (apt-get install chromium; CI does)")


def needs_chromium(test):  # type: ignore[no-untyped-def]
    """Marks a test `browser` (deselect with -m "not browser") and skips it, saying why, without Chromium."""
    return pytest.mark.browser(_skip_without_chromium(test))


def _run(args: list[str], size: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--window-size={size}", *args],
            capture_output=True, text=True, timeout=120, check=True)


def dump_dom(page: Path, size: str = "1300,2000") -> str:
    """The DOM after the page's scripts ran."""
    return _run(["--dump-dom", page.as_uri()], size).stdout


def screenshot(page: Path, png: Path, size: str = "1300,1600") -> Path:
    """A PNG of `page` as the browser draws it."""
    _run([f"--screenshot={png}", page.as_uri()], size)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return png
