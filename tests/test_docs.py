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


def test_the_config_reference_lists_every_key_the_reader_accepts_with_its_default(monkeypatch) -> None:
    """docs/config-reference.md is generated from `dashgen init`'s sample; the sample, uncommented, holds every
    key `parse_config` reads (and only those), and its values are `Config`'s defaults."""
    import dataclasses
    import tomllib

    from dashgen import config as C
    from dashgen.reference import sample_keys

    read: set[tuple[str, str]] = set()
    original = C._Reader.done

    def recording(self) -> None:  # every table's reader ends with done(): the keys it knows are in `seen`
        read.update((re.sub(r"\[\d+\]", "", self.table), key) for key in self.seen if self.table)
        original(self)

    monkeypatch.setattr(C._Reader, "done", recording)
    uncommented = re.sub(r"^# ?(\[|\"?[A-Za-z_]+[A-Za-z0-9_%]*\"? = )", r"\1", C.SAMPLE_CONFIG, flags=re.M)
    full = C.parse_config(tomllib.loads(uncommented), "sample")
    documented = {(table.strip("[]"), key.strip('"')) for table, key, _, _ in sample_keys()}
    documented |= {tuple(table.rsplit(".", 1)) for table, _ in documented if "." in table}  # a sub-table's key
    metrics = {("thresholds", k) for k in full.thresholds}
    assert documented - metrics == read - metrics, "a key the config reader accepts is missing from SAMPLE_CONFIG"
    defaults = C.parse_config(tomllib.loads(C.SAMPLE_CONFIG), "sample")
    assert dataclasses.replace(defaults, source=C.Config().source, thresholds={}) == C.Config()


def test_the_store_schema_reference_is_generated_from_a_migrated_store(fresh_db) -> None:
    """docs/store-schema.md is what a store migrated to the shipped schema holds (PostgreSQL's catalog)."""
    import psycopg

    from dashgen.reference import STORE_PAGE, store_markdown
    from dashgen.store.db import migrate

    with psycopg.connect(fresh_db) as conn:
        migrate(conn)
        page = store_markdown(conn)
    assert (REPO / "docs" / STORE_PAGE).read_text() == page, "stale: run python -m dashgen.reference"
    assert "### `dashgen.instances`" in page and "| `dashgen.chosen(value text, choices text[])` |" in page
