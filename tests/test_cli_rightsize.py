"""`dashgen rightsize` through typer's CliRunner: the three formats, the experiment view, DSN resolution and
one-line errors; its rows are the library's (the same SQL as the dashboard, see test_rightsize.py)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import psycopg
import pytest
from typer.testing import CliRunner

from dashgen.cli import app
from dashgen.config import Config
from dashgen.errors import EXIT_USAGE
from dashgen.rightsizing.queries import compare_experiment, recommendations
from dashgen.rightsizing.rule import RIGHTSIZING_COLUMNS
from rightsizing_data import fill_store
from shapes import check_shape

runner = CliRunner()


@pytest.fixture(scope="module")
def filled_store(module_db: str) -> str:
    """The store filled once for the module (`rightsize` only reads it)."""
    with psycopg.connect(module_db, autocommit=True) as conn:
        fill_store(conn)
    return module_db


@pytest.fixture
def filled_dsn(filled_store: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> str:
    monkeypatch.delenv("DASHGEN_DSN", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./dashgen.toml
    return filled_store


def _run(*args: str):
    return runner.invoke(app, ["rightsize", *args], env={"COLUMNS": "250"})


def test_table_shows_the_verdicts(filled_dsn: str) -> None:
    result = _run("--dsn", filled_dsn)
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[2].strip(): line for line in result.output.splitlines() if "│ i-" in line}
    assert "over-provisioned" in lines["train-8"] and "t4g.xlarge" in lines["train-8"]
    assert "$98.11" in lines["train-8"] and "t4g.2xlarge ($0.2688)" in lines["train-8"]
    assert "right-sized" in lines["train-4"]
    assert "under-provisioned" in lines["train-2"] and "-$49.06" in lines["train-2"]
    assert "m6g.xlarge" in lines["web-1"]
    assert "no data" in lines["idle-1"]
    # risk and hours with coverage in the table (a long cell wraps onto the row's next lines), the reasons under it
    cells: dict[str, list[str]] = {}
    for line in result.output.splitlines():
        if "│ i-" in line:
            current = cells.setdefault(line.split("│")[2].strip(), [])
        if line.startswith("│") and cells:
            current.append(" ".join(c.strip() for c in line.split("│")))
    assert "40 (11.9%)" in lines["train-8"] and "risk 1 low (CPU)" in " ".join(cells["train-8"])
    notes = [line for line in result.output.splitlines() if line.startswith("i-0train2 (train-2): ")]
    assert len(notes) == 1 and "credit baseline" in notes[0] and "limited by CPU credits" in notes[0]


def test_json_is_the_library_result(filled_dsn: str) -> None:
    result = _run("--dsn", filled_dsn, "--format", "json", "--tag", "experiment=t4g-sizing")
    assert result.exit_code == 0, result.output
    with psycopg.connect(filled_dsn) as conn:
        expected = recommendations(conn, Config(), tag="experiment=t4g-sizing")
    assert check_shape("rightsize", json.loads(result.output)) == expected
    assert [r["name"] for r in expected] == ["train-8", "train-4", "train-2"]
    assert _run("--dsn", filled_dsn, "--json", "--tag", "experiment=t4g-sizing").output == result.output
    eight = expected[0]
    assert (eight["risk"], eight["limited_by"], eight["current_risk"]) == (1, "CPU", 0)
    assert eight["facts_source"] == "bundled-snapshot"  # the store was filled without a sync: the offline facts
    assert eight["reasons"] == "limited by CPU (60% of t4g.xlarge)" and eight["coverage_pct"] == 11.9


def test_csv_has_every_column_and_filters_by_name(filled_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHGEN_DSN", filled_dsn)  # DSN from the environment
    result = _run("--format", "csv", "--name", "web-1", "--name", "train-4")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert list(rows[0]) == list(RIGHTSIZING_COLUMNS)
    assert [(r["name"], r["verdict"], r["recommended_type"]) for r in rows] == [
        ("web-1", "over-provisioned", "m7i.xlarge"), ("train-4", "right-sized", "t4g.xlarge")]


def test_experiment_comparison(filled_dsn: str, tmp_path) -> None:
    (tmp_path / "dashgen.toml").write_text(f'[pricing]\ndsn = "{filled_dsn}"\n')  # DSN from the config
    result = _run("--experiment", "t4g-sizing", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = check_shape("rightsize --experiment", json.loads(result.output))
    with psycopg.connect(filled_dsn) as conn:
        expected = compare_experiment(conn, "t4g-sizing")
    assert [(r["name"], r["outcome"]) for r in rows] == [(r["name"], r["outcome"]) for r in expected] == [
        ("train-4", "cheapest on time"), ("train-8", "on time"), ("train-2", "late")]
    table = _run("--experiment", "t4g-sizing")
    assert table.exit_code == 0 and "cheapest on time" in table.output


@pytest.mark.parametrize("args, code, message", [
    (["--experiment", "nope"], 1, "error: --experiment: no experiment 'nope' in the store (known: t4g-sizing)"),
    (["--format", "yaml"], 4, "error: Invalid value for '--format' / '-f': 'yaml' is not one of 'table', 'json', "
                              "'csv'. (see `dashgen rightsize --help`)"),
    (["--tag", "team"], 4, "error: --tag: expected KEY=VALUE, got 'team'"),
    (["--no-dsn"], 1, "error: no database: pass --dsn, set DASHGEN_DSN or pricing.dsn in dashgen.toml"),
])
def test_bad_input_is_one_line_without_traceback(filled_dsn: str, args: list[str], code: int,
                                                 message: str) -> None:
    dsn = [] if args == ["--no-dsn"] else ["--dsn", filled_dsn]
    env = {k: v for k, v in os.environ.items() if k != "DASHGEN_DSN"}
    proc = subprocess.run([sys.executable, "-m", "dashgen.cli", "rightsize", *dsn, *args[:2 if dsn else 0]],
                          capture_output=True, text=True, env=env)
    assert (proc.returncode, proc.stderr.strip(), proc.stdout) == (code, message, "")


def test_tag_is_repeatable_values_of_one_key(filled_dsn: str) -> None:
    """`--tag` is documented as repeatable: every value counts (any of them, as the dashboard's multi-value Tag
    value filter), not only the last one."""
    with psycopg.connect(filled_dsn) as conn:
        web = {r["name"] for r in recommendations(conn, Config(), tag="team=web")}
        ml = {r["name"] for r in recommendations(conn, Config(), tag="team=ml")}
    assert web and ml and not web & ml
    result = _run("--dsn", filled_dsn, "--format", "json", "--tag", "team=web", "--tag", "team=ml")
    assert result.exit_code == 0, result.output
    assert {r["name"] for r in json.loads(result.output)} == web | ml


def test_tag_with_two_keys_is_one_line(filled_dsn: str) -> None:
    result = _run("--dsn", filled_dsn, "--tag", "team=web", "--tag", "experiment=t4g-sizing")
    assert result.exit_code == EXIT_USAGE and result.stdout == ""
    assert result.stderr == ("error: --tag: expected one tag key (its values are alternatives, as in the "
                             "dashboard's Tag filter), got 'team' and 'experiment'\n")


def test_table_shows_the_first_rows_of_a_fleet_and_says_how_many_more(filled_dsn: str) -> None:
    every = json.loads(_run("--dsn", filled_dsn, "--format", "json").output)
    result = _run("--dsn", filled_dsn, "--limit", "2")
    assert result.exit_code == 0, result.output
    shown = [line.split("│")[1].strip() for line in result.output.splitlines() if "│ i-" in line]
    assert shown == [row["instance_id"] for row in every[:2]]  # the top of the same order (largest saving first)
    assert f"... {len(every) - 2} more rows (of {len(every)}): --limit 0 shows all" in result.output
    full = _run("--dsn", filled_dsn, "--limit", "0").output
    assert len([line for line in full.splitlines() if "│ i-" in line]) == len(every) and "more rows" not in full
