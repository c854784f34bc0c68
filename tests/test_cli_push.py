"""`dashgen push` and `dashgen diff` through the CLI against the in-test Grafana."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from dashgen.cli import app
from dashgen.errors import EXIT_DIFFERS, EXIT_ERROR, EXIT_USAGE
from grafana_server import ADMIN_TOKEN, BASIC, VIEWER_TOKEN

PERF = "dashgen-ec2-performance"
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def no_token(*texts: str) -> None:
    for text in texts:
        assert ADMIN_TOKEN not in text and VIEWER_TOKEN not in text and "Traceback" not in text


def test_dry_run_prints_the_plan_and_writes_nothing(grafana_server, dashboards_dir):
    code, out, err = run("push", "--dir", dashboards_dir, "--dry-run")
    assert code == 0, err
    assert re.search(r"\+\s+create folder\s+dashgen", out) and re.search(rf"\+\s+create\s+{PERF}", out)
    assert "to create" in out and grafana_server.state.writes == 0


def test_push_then_push_again_writes_nothing(grafana_server, dashboards_dir):
    n = len(list(dashboards_dir.glob("*.json")))
    code, out, err = run("push", "--dir", dashboards_dir)
    assert code == 0, err
    assert f"+ {PERF}: version 1" in out and f"{n} landed, 0 conflicts, 0 failed (folder created)" in out
    grafana_server.state.reset_counts()
    code, out, _ = run("push", "--dir", dashboards_dir)
    assert code == 0 and "0 landed" in out and f"{n} unchanged" in out
    assert grafana_server.state.writes == 0
    no_token(out)


def test_conflict_exits_1_naming_the_dashboard_and_difference_unless_force(grafana_server, dashboards_dir):
    run("push", "--dir", dashboards_dir)
    grafana_server.state.ui_edit(PERF, lambda d: d["panels"][0].update(title="Tweaked in the UI"))
    code, out, err = run("push", "--dir", dashboards_dir)
    assert code == 1
    assert f"! {PERF}" in out and "- panel 'Tweaked in the UI'" in out
    assert f"not pushed: {PERF}: changed in Grafana since dashgen last pushed it" in err
    assert grafana_server.state.dashboards[PERF].dashboard["panels"][0]["title"] == "Tweaked in the UI"
    code, out, _ = run("push", "--dir", dashboards_dir, "--force")
    assert code == 0 and f"~ {PERF}: version 3" in out


def test_diff_exit_codes_0_2_1_4(grafana_server, dashboards_dir, monkeypatch):
    code, out, _ = run("diff", "--dir", dashboards_dir)
    assert code == EXIT_DIFFERS and PERF in out  # nothing pushed yet
    run("push", "--dir", dashboards_dir)
    code, out, _ = run("diff", "--dir", dashboards_dir)
    assert code == 0 and "0 conflicts" in out
    path = dashboards_dir / "ec2-performance.json"
    data = json.loads(path.read_text())
    data["panels"][0]["title"] = "Renamed"
    path.write_text(json.dumps(data))
    code, out, _ = run("diff", "--dir", dashboards_dir)
    assert code == EXIT_DIFFERS and "+ panel 'Renamed'" in out and "- panel 'Instances over 80% CPU'" in out
    monkeypatch.setenv("GRAFANA_TOKEN", "glsa_not_valid")
    code, out, err = run("diff", "--dir", dashboards_dir)
    assert code == EXIT_ERROR and "401" in err and "glsa_not_valid" not in out + err
    code, _, err = run("diff", "--dir", dashboards_dir, "--format", "yaml")
    assert code == EXIT_USAGE and "'yaml' is not one of" in err


def test_diff_bad_input_is_exit_4_not_2(grafana_server, tmp_path):
    code, _, err = run("diff", "--dir", tmp_path / "nowhere")
    assert code == EXIT_USAGE and "no such folder" in err
    (tmp_path / "dashgen.toml").write_text("[grafana]\nfolder_uid = 'bad uid!'\n")
    code, _, err = run("diff", "--dir", tmp_path, "--config", tmp_path / "dashgen.toml")
    assert code == EXIT_USAGE and "folder_uid" in err


def test_401_and_403_are_one_line_without_the_token(grafana_server, dashboards_dir, monkeypatch):
    monkeypatch.setenv("GRAFANA_TOKEN", "glsa_not_valid")
    code, out, err = run("push", "--dir", dashboards_dir)
    assert code == 1 and err.count("\n") == 1 and "401 unauthorized" in err
    assert "glsa_not_valid" not in out + err
    monkeypatch.setenv("GRAFANA_TOKEN", VIEWER_TOKEN)
    code, out, err = run("push", "--dir", dashboards_dir)
    assert code == 1 and "403 forbidden" in err and "folders:create" in err
    no_token(out, err)
    assert grafana_server.state.folders == {}


def test_token_file_and_basic_auth(grafana_server, dashboards_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("GRAFANA_TOKEN")
    code, _, err = run("push", "--dir", dashboards_dir, "--dry-run")
    assert code == 1 and "no Grafana credentials" in err
    token = tmp_path / "token"
    token.write_text(ADMIN_TOKEN + "\n")
    assert run("push", "--dir", dashboards_dir, "--dry-run", "--token-file", token)[0] == 0
    monkeypatch.setenv("GRAFANA_USER", BASIC[0])
    monkeypatch.setenv("GRAFANA_PASSWORD", BASIC[1])
    code, out, err = run("push", "--dir", dashboards_dir)
    assert code == 0, err
    no_token(out, err)
    assert BASIC[1] not in out + err


def test_url_option_and_not_grafana(grafana_server, dashboards_dir, monkeypatch):
    monkeypatch.delenv("GRAFANA_URL")
    grafana_server.state.fault("GET", "/api/health", "html", status=200)
    code, _, err = run("push", "--dir", dashboards_dir, "--url", grafana_server.url)
    assert code == 1 and "does not look like Grafana" in err


def test_partial_failure_exits_1_listing_both_sides_and_rerun_finishes(grafana_server, dashboards_dir):
    grafana_server.state.fault("POST", "/api/dashboards/db", "status", status=500,
                               body={"message": "database is locked"})
    code, out, err = run("push", "--dir", dashboards_dir, "--concurrency", "1")
    assert code == 1 and "landed" in out and "not pushed:" in err and "database is locked" in err
    landed = out.count(": version 1")
    assert landed == len(list(dashboards_dir.glob("*.json"))) - 1
    code, out, _ = run("push", "--dir", dashboards_dir)
    assert code == 0 and "1 landed" in out


def test_prune_through_the_cli(grafana_server, dashboards_dir):
    run("push", "--dir", dashboards_dir)
    (dashboards_dir / "ec2-performance.json").unlink()
    code, out, _ = run("push", "--dir", dashboards_dir, "--prune", "--dry-run")
    assert code == 0 and re.search(rf"-\s+delete\s+{PERF}", out) and PERF in grafana_server.state.dashboards
    code, out, _ = run("push", "--dir", dashboards_dir, "--prune")
    assert code == 0 and f"- {PERF}: deleted" in out and PERF not in grafana_server.state.dashboards


def test_provisioned_conflict_points_to_provisioning(grafana_server, dashboards_dir):
    grafana_server.state.put({"uid": PERF, "title": "Provisioned", "tags": ["dashgen"]}, provisioned=True)
    code, out, err = run("push", "--dir", dashboards_dir, "--force")
    assert code == 1 and "provisioned" in err and "provisioning/" in err


def test_diff_help_does_not_import_requests():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from dashgen.cli import app\n"
        "r = CliRunner().invoke(app, ['diff', '--help'])\n"
        "assert r.exit_code == 0 and 'Usage' in r.stdout, r.stdout\n"
        "assert 'requests' not in sys.modules and 'urllib3' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent)
