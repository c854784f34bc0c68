"""Pull-request review output: what changed per dashboard and per panel, as Markdown and as JSON (shape pinned)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from typer.testing import CliRunner

from dashgen.cli import app
from dashgen.errors import EXIT_DIFFERS, EXIT_USAGE
from dashgen.grafana.review import Review, dashboard_review, panel_changes, to_json, to_markdown


def _cost(dashboards_dir: Path) -> dict:
    return json.loads((dashboards_dir / "ec2-cost.json").read_text())


def _edited(d: dict) -> dict:
    e = copy.deepcopy(d)
    by_title = {p["title"]: p for p in e["panels"]}
    by_title["Fits budget"]["fieldConfig"]["defaults"]["unit"] = "percent"  # unit
    by_title["Makes deadline"]["gridPos"]["w"] = 10  # layout
    budget = by_title["Budget and deadline"]
    budget["targets"][0]["rawSql"] = "SELECT 1"  # query
    budget["fieldConfig"]["defaults"]["thresholds"]["steps"].append({"color": "red", "value": 5})  # threshold
    e["panels"].remove(by_title["Cost per instance"])
    e["panels"].append({"type": "text", "title": "Notes | <b>", "gridPos": {"x": 0, "y": 99, "w": 24, "h": 2}})
    return e


def test_panel_changes_name_each_panel_and_what_changed(dashboards_dir: Path) -> None:
    before = _cost(dashboards_dir)
    changes = {c.panel: (c.change, c.aspects) for c in panel_changes(before, _edited(before))}
    assert changes == {
        "panel 'Notes | <b>'": ("added", ()),
        "panel 'Cost per instance'": ("removed", ()),
        "panel 'Fits budget'": ("changed", ("unit",)),
        "panel 'Makes deadline'": ("changed", ("layout",)),
        "panel 'Budget and deadline'": ("changed", ("query", "threshold")),
    }
    assert panel_changes(before, copy.deepcopy(before)) == ()


def test_markdown_is_a_safe_pr_comment_with_long_lists_folded(dashboards_dir: Path) -> None:
    before = _cost(dashboards_dir)
    review = Review("diff", (dashboard_review("dashgen-ec2-cost", "EC2 cost", "update", before, _edited(before)),
                             dashboard_review("x", "New", "create", None, None)), ("create folder dashgen",))
    md = to_markdown(review)
    assert md.startswith("### dashgen diff: 2 of 2 dashboards differ from Grafana\n")
    assert "| ✏️ updated | EC2 cost | `dashgen-ec2-cost` | 5 panel changes |" in md
    assert "- ✏️ panel 'Budget and deadline': query, threshold" in md
    assert "Notes \\| &lt;b&gt;" in md and "<b>" not in md  # a title cannot break the table or inject HTML
    assert "<details>" not in md
    perf = json.loads((dashboards_dir / "ec2-performance.json").read_text())
    many = copy.deepcopy(perf)
    for row in many["panels"]:
        for p in row.get("panels", []):  # the panels inside collapsed rows count too
            p["gridPos"]["h"] += 1
    folded = to_markdown(Review("diff", (dashboard_review("u", "Many", "update", perf, many),)))
    assert "<details><summary>Many: " in folded and "</details>" in folded


def test_json_shape_is_pinned(dashboards_dir: Path) -> None:
    before = _cost(dashboards_dir)
    data = to_json(Review("diff", (dashboard_review("u", "T", "update", before, _edited(before)),)))
    assert set(data) == {"kind", "counts", "notes", "dashboards"}
    assert data["counts"] == {"update": 1}
    assert set(data["dashboards"][0]) == {"uid", "title", "action", "file", "reason", "panels", "variables",
                                          "settings"}
    assert set(data["dashboards"][0]["panels"][0]) == {"panel", "change", "aspects"}


def test_build_check_as_markdown_and_json(tmp_path: Path, dashboards_dir: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    args = ["build", "--check", "--out", str(dashboards_dir), "--provisioning", str(tmp_path / "prov")]
    assert runner.invoke(app, ["provision", "--out", str(tmp_path / "prov")]).exit_code == 0
    clean = runner.invoke(app, [*args, "--format", "markdown"])
    assert clean.exit_code == 0 and "the committed JSON is current" in clean.output
    (dashboards_dir / "ec2-cost.json").write_text(json.dumps(_edited(_cost(dashboards_dir))))
    stale = runner.invoke(app, [*args, "--format", "markdown"])
    assert stale.exit_code == EXIT_DIFFERS
    assert "1 generated file out of date" in stale.output and "panel 'Fits budget': unit" in stale.output
    data = json.loads(runner.invoke(app, [*args, "--format", "json"]).output)
    assert data["kind"] == "check" and data["counts"] == {"stale": 1}
    assert runner.invoke(app, ["build", "--format", "json"]).exit_code == EXIT_USAGE  # --format needs --check


def test_the_users_templates_folder_overrides_the_review_template(tmp_path: Path, dashboards_dir: Path,
                                                                   monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "review.md.j2").write_text(
        "{% for d in review.changed %}{{ d.action }} {{ d.uid }}: {{ d.panels|length }}\n{% endfor %}")
    (tmp_path / "dashgen.toml").write_text('[build]\ntemplates = "tpl"\n')
    (dashboards_dir / "ec2-cost.json").write_text(json.dumps(_edited(_cost(dashboards_dir))))
    result = CliRunner().invoke(app, ["build", "--check", "--out", str(dashboards_dir), "--provisioning",
                                      str(tmp_path / "prov"), "--format", "markdown"])
    assert result.exit_code == EXIT_DIFFERS
    assert result.output.splitlines()[0] == "stale dashgen-ec2-cost: 5"
