"""`dashgen provision` and the provisioning half of `dashgen build [--check]`, through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dashgen.cli import app
from dashgen.config import Config
from dashgen.errors import EXIT_DIFFERS
from dashgen.grafana import provision as P

runner = CliRunner()
FILES = sorted(P.provision_outputs(Config()))


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_provision_writes_the_files_once_then_leaves_them(tmp_path: Path) -> None:
    out = tmp_path / "prov"
    code, stdout, _ = run("provision", "--out", str(out))
    assert code == 0 and "3 written, 0 unchanged" in stdout
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == FILES
    before = {name: (out / name).stat().st_mtime_ns for name in FILES}
    code, stdout, _ = run("provision", "--out", str(out))
    assert code == 0 and "0 written, 3 unchanged" in stdout
    assert before == {name: (out / name).stat().st_mtime_ns for name in FILES}
    code, stdout, _ = run("provision", "--out", str(out), "--check")
    assert code == 0 and "3 files up to date" in stdout


def test_provision_uses_the_config_uids_and_folder(tmp_path: Path) -> None:
    config = tmp_path / "dashgen.toml"
    config.write_text('[datasources]\ncloudwatch_uid = "cw-x"\npricing_uid = "pg-x"\n'
                      '[grafana]\nfolder_title = "Costs"\nfolder_uid = "costs"\n')
    code, _, _ = run("provision", "--out", str(tmp_path / "p"), "-c", str(config))
    assert code == 0
    ds = yaml.safe_load((tmp_path / "p" / P.DATASOURCES_FILE).read_text())
    assert [d["uid"] for d in ds["datasources"]] == ["cw-x", "pg-x"]
    (provider,) = yaml.safe_load((tmp_path / "p" / P.DASHBOARDS_FILE).read_text())["providers"]
    assert (provider["folder"], provider["folderUid"]) == ("Costs", "costs")
    # the default config's files are now stale for this config
    code, _, err = run("provision", "--out", str(tmp_path / "p"), "--check")
    assert code == EXIT_DIFFERS and f"stale: {tmp_path / 'p' / P.DATASOURCES_FILE}" in err


def test_build_writes_provisioning_and_check_reports_a_stale_one(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = run("build")
    assert code == 0
    for name in FILES:
        assert f"wrote provisioning/{name}" in stdout
    code, stdout, _ = run("build", "--check")
    assert code == 0 and "up to date in dashboards and provisioning" in stdout
    path = tmp_path / "provisioning" / P.DATASOURCES_FILE
    path.write_text(path.read_text().replace("sslmode: disable", "sslmode: require"))
    code, _, err = run("build", "--check")
    assert code == EXIT_DIFFERS
    assert f"stale: provisioning/{P.DATASOURCES_FILE}" in err and "run `dashgen build`" in err
    assert "stale: dashboards/" not in err
    assert "sslmode: require" in path.read_text()  # --check wrote nothing
    code, _, _ = run("build")
    assert code == 0 and "sslmode: disable" in path.read_text()
    code, _, _ = run("build", "--check")
    assert code == 0


def test_build_check_reports_missing_provisioning_files(tmp_path: Path) -> None:
    out, prov = tmp_path / "site" / "dashboards", tmp_path / "elsewhere"
    code, _, _ = run("build", "--out", str(out), "--provisioning", str(prov))
    assert code == 0 and (prov / P.INIT_SQL_FILE).exists()
    assert not (tmp_path / "site" / "provisioning").exists()
    (prov / P.DASHBOARDS_FILE).unlink()
    code, _, err = run("build", "--check", "--out", str(out), "--provisioning", str(prov))
    assert code == EXIT_DIFFERS and f"missing: {prov / P.DASHBOARDS_FILE}" in err
    code, _, err = run("build", "--check", "--out", str(out))  # default: provisioning beside OUT
    assert code == EXIT_DIFFERS and all(f"missing: {tmp_path / 'site' / 'provisioning' / n}" in err for n in FILES)

