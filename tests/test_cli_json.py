"""Every command that reports prints JSON with `--format json` (or `--json`), in the shape `views.shapes()` pins
(tests/shapes.py checks keys and types), with the run's real values; and every exit code means one thing
(`errors.EXIT_CODES`), each checked here through the real CLI. sync and rightsize JSON: tests/test_cli_sync.py,
tests/test_cli_rightsize.py (they need the store)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dashgen.catalogue import METRICS
from dashgen.cli import Scaffold, app
from dashgen.definitions import SCAFFOLDS
from dashgen.errors import EXIT_CODES, EXIT_DIFFERS, EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from shapes import check_shape

PERF = "dashgen-ec2-performance"


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_each_exit_code_means_one_thing() -> None:
    assert sorted(EXIT_CODES) == [EXIT_OK, EXIT_ERROR, EXIT_DIFFERS, EXIT_PARTIAL, EXIT_USAGE] == [0, 1, 2, 3, 4]
    assert len({name for name, _ in EXIT_CODES.values()}) == len(EXIT_CODES)


def test_metrics_json_and_csv_are_the_catalogue_with_the_configured_thresholds(tmp_path: Path) -> None:
    (tmp_path / "dashgen.toml").write_text("[thresholds]\nCPUUtilization = 91\n")
    code, out, _ = run("metrics", "--json", "--config", tmp_path / "dashgen.toml")
    assert code == EXIT_OK
    rows = check_shape("metrics", json.loads(out))
    assert [r["name"] for r in rows] == [m.name for m in METRICS]
    by_name = {r["name"]: r for r in rows}
    assert by_name["CPUUtilization"]["threshold"] == 91  # the config's, not the catalogue's 80
    default = next(m for m in METRICS if m.threshold is None)
    assert by_name[default.name]["threshold"] is None
    assert run("metrics", "--format", "json", "--config", tmp_path / "dashgen.toml")[1] == out
    code, csv_text, _ = run("metrics", "-f", "csv", "--config", tmp_path / "dashgen.toml")
    header = csv_text.splitlines()[0].split(",")
    assert code == EXIT_OK and sorted(header) == sorted(rows[0]) and len(csv_text.splitlines()) == len(METRICS) + 1
    assert csv_text.splitlines()[1].startswith("CPUUtilization,cpu,CPU,percent,Average,91")
    code, _, err = run("metrics", "--json", "--format", "csv")
    assert code == EXIT_USAGE and err == "error: --json: goes with --format json, not --format csv\n"


def test_validate_json_lists_each_file_and_exits_1_when_one_is_invalid(dashboards_dir: Path) -> None:
    files = sorted(dashboards_dir.glob("*.json"))
    code, out, _ = run("validate", "--json", *files)
    data = check_shape("validate", json.loads(out))
    assert code == EXIT_OK and data["invalid"] == 0 and [f["path"] for f in data["files"]] == list(map(str, files))
    broken = json.loads(files[0].read_text())
    broken["panels"][0]["gridPos"]["x"] = 22
    files[0].write_text(json.dumps(broken))
    code, out, _ = run("validate", "--format", "json", *files)
    data = check_shape("validate", json.loads(out))
    assert code == EXIT_ERROR and data["invalid"] == 1 and data["files"][0]["ok"] is False
    assert any("wider than the 24-column grid" in p["message"] for p in data["files"][0]["problems"])


def test_diff_push_dry_run_and_push_json(grafana_server, dashboards_dir: Path) -> None:
    code, out, _ = run("diff", "--dir", dashboards_dir, "--json")
    plan = check_shape("review", json.loads(out))
    assert code == EXIT_DIFFERS and plan["kind"] == "diff"
    assert {d["uid"]: d["action"] for d in plan["dashboards"]}[PERF] == "create"
    code, out, _ = run("push", "--dir", dashboards_dir, "--dry-run", "--json")
    assert code == EXIT_OK and check_shape("review", json.loads(out)) == plan
    assert grafana_server.state.dashboards == {}  # a dry run writes nothing
    code, out, _ = run("push", "--dir", dashboards_dir, "--format", "json")
    pushed = check_shape("push", json.loads(out))
    assert code == EXIT_OK and pushed["ok"] and pushed["folder_created"] and pushed["plan"] == plan
    assert {p["uid"] for p in pushed["landed"]} == {d["uid"] for d in plan["dashboards"]}
    assert PERF in grafana_server.state.dashboards
    code, out, _ = run("diff", "--dir", dashboards_dir, "--format", "json")
    again = check_shape("review", json.loads(out))
    assert code == EXIT_OK and {d["action"] for d in again["dashboards"]} == {"unchanged"}


def test_build_check_json_is_a_review_and_exits_2_when_stale(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("build")[0] == EXIT_OK
    code, out, _ = run("build", "--check", "--json")
    assert code == EXIT_OK and check_shape("review", json.loads(out))["counts"] == {}
    path = tmp_path / "dashboards" / "ec2-cost.json"
    path.write_text(path.read_text().replace('"title": "', '"title": "Old ', 1))
    code, out, _ = run("build", "--check", "--json")
    data = check_shape("review", json.loads(out))
    assert code == EXIT_DIFFERS and data["kind"] == "check" and data["counts"] == {"stale": 1}
    code, _, err = run("build", "--json")
    assert code == EXIT_USAGE and err == "error: --format json: goes with --check\n"


@pytest.mark.parametrize("args, expected", [
    (["build", "--no-such-option"], "error: No such option '--no-such-option'"),
    (["new", "x", "--from", "nowhere"], "error: Invalid value for '--from': 'nowhere' is not one of"),
    (["rightsize", "--limit", "-1"], "error: Invalid value for '--limit'"),
    (["push", "--concurrency", "0"], "error: Invalid value for '--concurrency'"),
    (["--no-such-option"], "error: No such option '--no-such-option'"),
])
def test_usage_errors_are_one_line_and_exit_4_from_a_real_process(tmp_path: Path, args: list[str],
                                                                  expected: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "dashgen.cli", *args], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert proc.stderr.startswith(expected) and proc.stderr.count("\n") == 1 and proc.stdout == ""


def test_exit_codes_0_1_2_4_from_a_real_process(tmp_path: Path) -> None:
    """0, 1, 2 and 4 through the installed entry point (3, partly synced: tests/test_cli_sync.py)."""
    def dashgen(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dashgen.cli", *args], capture_output=True, text=True,
                              cwd=tmp_path)

    assert dashgen("build").returncode == EXIT_OK
    path = tmp_path / "dashboards" / "ec2-cost.json"
    data = json.loads(path.read_text())
    data["panels"][0]["gridPos"]["w"] = 99
    path.write_text(json.dumps(data))
    assert dashgen("build", "--check").returncode == EXIT_DIFFERS  # stale
    assert dashgen("validate").returncode == EXIT_ERROR  # invalid
    (tmp_path / "dashgen.toml").write_text("[grafana]\nversion = '9'\n")
    bad = dashgen("build")
    assert bad.returncode == EXIT_USAGE and bad.stderr.startswith("error: ") and "grafana.version" in bad.stderr


def test_fixed_choices_are_enums_equal_to_the_library_lists() -> None:
    assert tuple(s.value for s in Scaffold) == SCAFFOLDS
