"""Your own dashboards as code: `*.dashboard.py` definitions beside the built JSON, built like the built-ins,
scaffolded by `dashgen new`, and every mistake in one reported in one line naming the file and line."""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dashgen.build import build
from dashgen.cli import app
from dashgen.config import Config
from dashgen.definitions import SCAFFOLDS, DefinitionError, new_definition

GOOD = '''
from dashgen import api as dg

UID = "team-gpu"
TITLE = "Team GPU"


def build(config):
    layout = dg.Layout().add(dg.metric_panel(dg.METRICS_BY_NAME["GPUPowerUtilization"], config))
    return dg.dashboard(config, slug="team-gpu", uid=UID, title=TITLE, description="GPU jobs.", layout=layout,
                        variables=dg.selection_variables(config))
'''


def _write(repo: Path, name: str, text: str) -> Path:
    path = repo / "dashboards" / f"{name}.dashboard.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_users_definition_is_built_validated_and_checked_like_the_builtins(repo: Path) -> None:
    _write(repo, "team-gpu", GOOD)
    result = build(Config(), repo / "dashboards")
    assert sorted(result.written) == ["ec2-cost.json", "ec2-performance.json", "ec2-rightsizing.json",
                                      "team-gpu.json"]
    data = json.loads((repo / "dashboards" / "team-gpu.json").read_text())
    assert (data["uid"], data["title"]) == ("team-gpu", "Team GPU")
    assert "dashgen" in data["tags"]  # managed: push, diff and prune see it like the built-ins
    assert build(Config(), repo / "dashboards", check=True).clean
    _write(repo, "team-gpu", GOOD.replace("GPUPowerUtilization", "CPUUtilization"))
    assert build(Config(), repo / "dashboards", check=True).stale == ["team-gpu.json"]


def test_a_plain_dict_definition_and_builtins_switched_off(repo: Path) -> None:
    _write(repo, "plain", '''
        def build(config):
            return {"title": "Plain", "panels": [], "templating": {"list": []}}
        ''')
    cfg = dataclasses.replace(Config(), build_builtins=("cost",))
    result = build(cfg, repo / "dashboards")
    assert sorted(result.written) == ["ec2-cost.json", "plain.json"]
    assert json.loads((repo / "dashboards" / "plain.json").read_text())["uid"] == "dashgen-plain"


@pytest.mark.parametrize(("text", "expected"), [
    ("import no_such_module\n", r"plain\.dashboard\.py:1: cannot import the definition: ModuleNotFoundError"),
    ("def build(config:\n", r"plain\.dashboard\.py:1: cannot import the definition: SyntaxError"),
    ("x = 1\n", r"plain\.dashboard\.py: expected a function build\(config\)"),
    ("def build(config):\n    return 42\n", r"plain\.dashboard\.py: build\(config\) returned int"),
    ("\n\ndef build(config):\n    raise ValueError('no GPUs here')\n",
     r"plain\.dashboard\.py:4: build\(config\) failed: ValueError: no GPUs here"),
    ("UID = 7\ndef build(config):\n    return {}\n", r"plain\.dashboard\.py: UID: expected a non-empty string"),
    ("def build(config):\n    return {'title': 'X', 'uid': 'dashgen-ec2-cost', 'panels': []}\n",
     r"plain\.dashboard\.py: uid 'dashgen-ec2-cost' is already used by dashgen\.dashboards\.cost"),
])
def test_a_broken_definition_is_one_line_naming_the_file_and_line_and_nothing_is_written(
        repo: Path, text: str, expected: str) -> None:
    _write(repo, "plain", text)
    runner = CliRunner()
    result = runner.invoke(app, ["build"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert re.search(expected, lines[0]), lines[0]
    assert not list((repo / "dashboards").glob("*.json"))  # nothing written


def test_a_definition_building_a_built_in_file_name_is_refused(repo: Path) -> None:
    _write(repo, "ec2-cost", GOOD.replace("team-gpu", "other"))
    with pytest.raises(DefinitionError, match=r"ec2-cost\.dashboard\.py: builds ec2-cost\.json, which "
                                              r"dashgen\.dashboards\.cost builds too"):
        build(Config(), repo / "dashboards")
    assert not list((repo / "dashboards").glob("*.json"))


def test_two_definitions_with_one_uid_are_refused(repo: Path) -> None:
    _write(repo, "one", GOOD)
    _write(repo, "two", GOOD)
    with pytest.raises(DefinitionError, match=r"two\.dashboard\.py: uid 'team-gpu' is already used by .*one"):
        build(Config(), repo / "dashboards")


@pytest.mark.parametrize("start", SCAFFOLDS)
def test_new_scaffolds_a_definition_and_a_test_that_build_and_pass(repo: Path, start: str) -> None:
    result = CliRunner().invoke(app, ["new", f"my-{start}", "--from", start])
    assert result.exit_code == 0, result.output
    definition = repo / "dashboards" / f"my-{start}.dashboard.py"
    test = repo / "tests" / f"test_my_{start}_dashboard.py"
    assert definition.is_file() and test.is_file()
    assert f"my-{start}.json" in build(Config(), repo / "dashboards").written
    namespace: dict = {"__file__": str(test)}
    exec(compile(test.read_text(), str(test), "exec"), namespace)  # the scaffolded test, run as pytest would
    namespace[f"test_my_{start.replace('-', '_')}_builds_and_validates"]()
    again = CliRunner().invoke(app, ["new", f"my-{start}"])
    assert again.exit_code == 1 and "already exists" in again.output


@pytest.mark.parametrize(("name", "message"), [("Bad Name", "expected a name"), ("cost", "built-in")])
def test_new_refuses_bad_names(repo: Path, name: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        new_definition(name, root=repo)
