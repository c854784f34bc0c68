import json
from pathlib import Path

import pytest

import dashgen.build as build_mod
from dashgen.build import build, build_outputs
from dashgen.config import Config
from dashgen.errors import ValidationError


def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    first = build(Config(), tmp_path / "a")
    second = build(Config(), tmp_path / "b")
    assert first.written == second.written and first.written
    for name in first.written:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    again = build(Config(), tmp_path / "a")
    assert again.written == [] and sorted(again.unchanged) == sorted(first.written)


def test_output_is_stable_json(tmp_path: Path) -> None:
    build(Config(), tmp_path)
    for path in tmp_path.glob("*.json"):
        text = path.read_text()
        data = json.loads(text)
        assert text == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        assert data["uid"] == f"dashgen-{path.stem}"
        assert "dashgen" in data["tags"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_check_is_clean_after_build_and_dirty_after_any_edit(tmp_path: Path) -> None:
    build(Config(), tmp_path)
    assert build(Config(), tmp_path, check=True).clean
    path = next(tmp_path.glob("*.json"))
    original = path.read_bytes()
    path.write_bytes(original.replace(b'"refresh": "5m"', b'"refresh": "1m"'))
    result = build(Config(), tmp_path, check=True)
    assert result.stale == [path.name] and not result.clean
    assert path.read_bytes() != original  # check wrote nothing
    path.unlink()
    assert build(Config(), tmp_path, check=True).missing == [path.name]
    build(Config(), tmp_path)
    (tmp_path / "hand-made.json").write_text("{}")
    assert build(Config(), tmp_path, check=True).unexpected == ["hand-made.json"]


def test_config_change_shows_as_stale(tmp_path: Path) -> None:
    build(Config(), tmp_path)
    result = build(Config(thresholds={"CPUUtilization": 70.0}), tmp_path, check=True)
    assert "ec2-performance.json" in result.stale


def test_invalid_dashboard_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build(Config(), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = build_mod.render_dashboards

    def corrupt(config: Config, root: Path | None = None) -> dict:
        from dashgen.grafana.validate import check

        out = real(config, root)
        name = next(iter(out))
        out[name]["schemaVersion"] = 12
        check(out[name], name, config)
        return out

    monkeypatch.setattr(build_mod, "render_dashboards", corrupt)
    with pytest.raises(ValidationError, match="schemaVersion"):
        build(Config(thresholds={"CPUUtilization": 50.0}), tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_build_outputs_is_pure() -> None:
    assert build_outputs(Config()) == build_outputs(Config())


# The committed generated files: one test per artefact (docs/cli.md and docs/api.md: tests/test_docs.py).

def _repository_config() -> Config:
    """What `dashgen build` run in the repository uses: its dashgen.toml if it has one, else the defaults."""
    from conftest import REPO
    from dashgen.config import load_config

    return load_config(REPO / "dashgen.toml") if (REPO / "dashgen.toml").exists() else Config()


def test_committed_dashboards_are_what_dashgen_build_writes() -> None:
    """What a pull request shows is what the code builds: dashboards/*.json, byte for byte."""
    from conftest import REPO

    result = build(_repository_config(), REPO / "dashboards", check=True)
    assert result.clean, f"run `dashgen build`: stale {result.stale}, missing {result.missing}, " \
                         f"unexpected {result.unexpected}"


def test_committed_provisioning_is_what_dashgen_build_writes() -> None:
    """provisioning/ (what docker-compose's Grafana loads) is what `dashgen build` writes beside dashboards/."""
    from conftest import REPO
    from dashgen.grafana.provision import provision

    result = provision(_repository_config(), REPO / "provisioning", check=True)
    assert result.clean, f"run `dashgen build`: stale {result.stale}, missing {result.missing}"


def test_unwritable_output_is_one_line_error(tmp_path: Path) -> None:
    from dashgen.errors import DashgenError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DashgenError, match="cannot write"):
        build(Config(), blocker / "dashboards")
