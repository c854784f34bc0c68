"""Atomic writes give files the mode a reader expects: Grafana's container user (uid 472) reads the mounted
dashboards/ and provisioning/, so a rebuilt file keeps its mode and a new one honours the umask (never 0600)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dashgen.build import build
from dashgen.config import Config
from dashgen.fsutil import atomic_write_text, current_umask


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """Set the process umask for the test, restore it after."""
    before = os.umask(0o022)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(before)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600), (0o027, 0o640)])
def test_a_new_file_honours_the_umask(tmp_path: Path, umask, mask: int, expected: int) -> None:
    umask(mask)
    assert current_umask() == mask
    atomic_write_text(tmp_path / "new.json", "{}\n")
    assert mode(tmp_path / "new.json") == expected
    assert [p.name for p in tmp_path.iterdir()] == ["new.json"]  # no temp file left beside it


@pytest.mark.parametrize("kept", [0o640, 0o664, 0o600, 0o444])
def test_a_rewritten_file_keeps_its_mode(tmp_path: Path, umask, kept: int) -> None:
    umask(0o022)
    path = tmp_path / "dash.json"
    path.write_text("old\n")
    path.chmod(kept)
    atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n" and mode(path) == kept


def test_build_writes_files_grafana_can_read(tmp_path: Path, umask) -> None:
    """`dashgen build` under the usual umask 022: every dashboard and provisioning file is 0644 (other-readable,
    as Grafana's uid 472 needs through the read-only mounts); a file the user made 0640 stays 0640."""
    umask(0o022)
    out, prov = tmp_path / "dashboards", tmp_path / "provisioning"
    build(Config(), out, provisioning_dir=prov)
    files = [p for p in (*out.rglob("*"), *prov.rglob("*")) if p.is_file()]
    assert len(files) >= 6
    assert {p.relative_to(tmp_path).as_posix(): mode(p) for p in files} == {
        p.relative_to(tmp_path).as_posix(): 0o644 for p in files}
    perf = out / "ec2-performance.json"
    perf.chmod(0o640)
    perf.write_text("stale\n")
    build(Config(), out, provisioning_dir=prov)
    assert perf.read_text() != "stale\n" and mode(perf) == 0o640


def test_the_umask_is_read_without_changing_it(umask) -> None:
    umask(0o027)
    assert current_umask() == 0o027
    assert os.umask(0o027) == 0o027  # still what it was
