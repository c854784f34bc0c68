import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dashgen import __version__
from dashgen.cli import app
from dashgen.errors import EXIT_DIFFERS, EXIT_USAGE

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and out.strip() == f"dashgen {__version__}"


def test_every_command_has_help_text() -> None:
    import typer.main

    group = typer.main.get_command(app)
    assert group.commands
    for name, command in group.commands.items():
        assert (command.help or "").strip(), name
        code, out, _ = run(name, "--help")
        assert code == 0 and "Usage" in out


def test_build_check_validate_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run("build")
    assert code == 0 and "wrote dashboards/ec2-performance.json" in out
    code, out, _ = run("build", "--check")
    assert code == 0 and "up to date" in out
    code, out, _ = run("validate")
    assert code == 0 and "ok: dashboards/ec2-performance.json" in out
    path = tmp_path / "dashboards" / "ec2-performance.json"
    data = json.loads(path.read_text())
    data["panels"][0]["gridPos"]["x"] = 22
    path.write_text(json.dumps(data))
    code, _, err = run("build", "--check")
    assert code == EXIT_DIFFERS and "stale: dashboards/ec2-performance.json" in err
    code, _, err = run("validate")
    built = len(list((tmp_path / "dashboards").glob("*.json")))
    assert code == 1 and "wider than the 24-column grid" in err and f"1 of {built} dashboards invalid" in err


def test_bad_config_one_line_exit_4_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "dashgen.toml"
    bad.write_text('[thresholds]\nCPUUtilization = "high"\n')
    proc = subprocess.run([sys.executable, "-m", "dashgen.cli", "build", "-c", str(bad), "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == EXIT_USAGE
    assert proc.stderr.strip().count("\n") == 0
    assert "Traceback" not in proc.stderr
    assert f"{bad}: thresholds.CPUUtilization: expected a percentage" in proc.stderr
    assert not list(tmp_path.glob("*.json"))


def test_init_writes_a_commented_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, _ = run("init")
    assert code == 0 and "# " in (tmp_path / "dashgen.toml").read_text()
    code, _, err = run("init")
    assert code == EXIT_USAGE and "already exists" in err


def test_build_never_imports_aws_http_or_db_libraries(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from dashgen.cli import main\n"
        f"sys.argv = ['dashgen', 'build', '--out', {str(tmp_path)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('boto3', 'botocore', 'requests', 'psycopg', 'pyarrow') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
        "print('NOT NEEDED', sorted(m for m in ('jsonschema', 'rich') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr
    # valid dashboards: jsonschema-rs gives the verdict, the reference jsonschema is only for an invalid one's
    # messages; rich only draws tables and progress bars
    assert "NOT NEEDED []" in proc.stdout, proc.stdout + proc.stderr
