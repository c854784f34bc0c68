"""The README is checked as a new user reads it: its commands are the ones CI runs, its tables match the code."""

import re

from conftest import REPO
from dashgen.catalogue import markdown_table

README = (REPO / "README.md").read_text()
PERFORMANCE_DOC = (REPO / "docs" / "performance-dashboard.md").read_text()


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, flags=re.S)


def test_quick_start_is_two_commands_and_ci_runs_them() -> None:
    install, tests = quick_start_commands()
    assert "dashgen build" in install
    ci = (REPO / ".ci" / "run").read_text()
    install_step = install.split(" && .venv/bin/dashgen build")[0]
    assert install_step in ci
    assert tests in ci


def test_metric_table_is_generated_from_the_catalogue() -> None:
    assert markdown_table() in PERFORMANCE_DOC
