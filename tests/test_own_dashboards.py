"""A platform engineer's own dashboard, end to end as a user would: a fresh repository, `dashgen new`, an edit,
build, validate, preview (looked at in a real browser), diff as a pull-request comment against the in-test
Grafana, push, then a second change reviewed and pushed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from browser import CHROMIUM, screenshot
from dashgen.cli import app
from dashgen.errors import EXIT_DIFFERS


def _ok(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.browser  # looks at the preview in Chromium where there is one
def test_a_custom_dashboard_from_scaffold_to_grafana(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      grafana_server) -> None:
    repo = tmp_path / "platform-dashboards"
    repo.mkdir()
    monkeypatch.chdir(repo)
    subprocess.run(["git", "init", "-q"], check=True)
    (repo / "dashgen.toml").write_text('[build]\nbuiltins = []\n')  # only our own dashboards in this repo

    _ok("new", "gpu-training", "--from", "performance")
    definition = repo / "dashboards" / "gpu-training.dashboard.py"
    definition.write_text(definition.read_text().replace('TITLE = "Gpu training"', 'TITLE = "GPU training jobs"'))
    assert "wrote dashboards/gpu-training.json" in _ok("build")
    assert sorted(p.name for p in (repo / "dashboards").glob("*.json")) == ["gpu-training.json"]
    assert "ok: dashboards/gpu-training.json" in _ok("validate")
    _ok("preview", "--out", "preview")
    if CHROMIUM:
        assert screenshot(repo / "preview" / "index.html", tmp_path / "preview.png").stat().st_size > 5_000

    first = CliRunner().invoke(app, ["diff", "--format", "markdown"])
    assert first.exit_code == EXIT_DIFFERS, first.output
    assert "| ➕ created | GPU training jobs | `gpu-training` |" in first.output
    assert "1 landed" in _ok("push")
    assert CliRunner().invoke(app, ["diff", "--format", "markdown"]).exit_code == 0

    # the pull request: add the GPU group and change the CPU threshold
    text = definition.read_text().replace('GROUPS = ("cpu", "network")', 'GROUPS = ("cpu", "network", "gpu")')
    definition.write_text(text)
    (repo / "dashgen.toml").write_text('[build]\nbuiltins = []\n\n[thresholds]\nCPUUtilization = 90\n')
    stale = CliRunner().invoke(app, ["build", "--check", "--format", "markdown"])
    assert stale.exit_code == EXIT_DIFFERS and "gpu-training.json" not in stale.output.split("|")[0]
    assert "GPU training jobs" in stale.output
    _ok("build")
    review = CliRunner().invoke(app, ["diff", "--format", "markdown"])
    assert review.exit_code == EXIT_DIFFERS, review.output
    md = review.output
    assert "| ✏️ updated | GPU training jobs | `gpu-training` |" in md
    assert "- ➕ row 'GPU'" in md and "- ➕ panel 'GPUPowerUtilization'" in md
    assert "- ✏️ panel 'CPUUtilization': threshold" in md
    data = json.loads(CliRunner().invoke(app, ["diff", "--format", "json"]).output)
    assert data["counts"] == {"update": 1}
    assert "1 landed" in _ok("push")
    assert CliRunner().invoke(app, ["diff"]).exit_code == 0
