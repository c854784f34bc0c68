"""The GitHub Actions workflow shipped for pull-request review (`.github/workflows/dashboards.yml`): valid for
GitHub (check-jsonschema's vendored `github-workflows` schema), clean in zizmor's offline security audit at its
strictest persona, and every `dashgen` command it runs exists with the options it passes."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import click
import typer.main
import yaml

from conftest import REPO
from dashgen.cli import app

WORKFLOW = REPO / ".github" / "workflows" / "dashboards.yml"
BIN = Path(sys.executable).parent


def test_workflow_is_valid_for_github() -> None:
    done = subprocess.run([BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", WORKFLOW],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflow_has_no_security_findings() -> None:
    done = subprocess.run([BIN / "zizmor", "--offline", "--format", "json", "--persona", "auditor", WORKFLOW],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def _dashgen_calls() -> list[list[str]]:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    calls = []
    for job in jobs.values():
        for step in job["steps"]:
            for line in step.get("run", "").splitlines():
                words = shlex.split(line.split("||")[0].split(">")[0])
                if "dashgen" in words:
                    calls.append(words[words.index("dashgen") + 1:])
    return calls


def test_every_dashgen_command_in_the_workflow_exists_with_its_options() -> None:
    root = typer.main.get_command(app)
    calls = _dashgen_calls()
    assert {c[0] for c in calls} >= {"build", "validate", "preview", "diff", "push"}
    for words in calls:
        command = root.get_command(click.Context(root), words[0])
        assert command is not None, words
        command.make_context(words[0], words[1:], resilient_parsing=False)  # raises on an unknown option or value
