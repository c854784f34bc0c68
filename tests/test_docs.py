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


def test_reference_pages_are_generated_from_the_code() -> None:
    from dashgen.reference import PAGES

    for name, make in PAGES.items():
        assert (REPO / "docs" / name).read_text() == make(), f"docs/{name} is stale: run python -m dashgen.reference"


def test_every_public_api_function_has_a_docstring() -> None:
    import inspect

    from dashgen import api
    from dashgen.reference import builtin_modules

    ours = [n for n in api.__all__ if getattr(getattr(api, n), "__module__", "").startswith("dashgen")]
    missing = [n for n in ours if callable(getattr(api, n)) and not inspect.getdoc(getattr(api, n))]
    for module in builtin_modules():
        missing += [f"{module.__name__}.{n}" for n, o in vars(module).items()
                    if inspect.isfunction(o) and not n.startswith("_") and o.__module__ == module.__name__
                    and not inspect.getdoc(o)]
    assert not missing, f"public API without a docstring: {missing}"


def test_docs_site_builds_in_strict_mode(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    mkdocs = Path(sys.executable).parent / "mkdocs"
    done = subprocess.run([mkdocs, "build", "--strict", "--site-dir", tmp_path / "site"], cwd=REPO,
                          capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "site" / "own-dashboards" / "index.html").is_file()


def test_readme_links_resolve_to_docs_pages() -> None:
    for target in re.findall(r"\]\((docs/[^)#]+)", README):
        assert (REPO / target).is_file(), target
