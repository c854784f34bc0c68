"""`dashgen preview`: the picture a reviewer opens, checked as data and in a real headless browser."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from browser import dump_dom, needs_chromium, screenshot
from dashgen.grafana.preview import (
    CELL_HEIGHT,
    CELL_MARGIN,
    COLUMN_WIDTH,
    load_pictures,
    picture,
    preview,
    render_preview,
)


def test_boxes_are_the_panels_grid_positions_and_collapsed_rows_open_below(dashboards_dir: Path) -> None:
    data = json.loads((dashboards_dir / "ec2-performance.json").read_text())
    pic = picture(data, "ec2-performance.json")
    loaded = pic.sections[0]
    assert [(b.title, b.x, b.y, b.w, b.h) for b in loaded.boxes] == [
        (p["title"], *(p["gridPos"][k] for k in "xywh")) for p in data["panels"]]
    collapsed = [p for p in data["panels"] if p["type"] == "row" and p.get("collapsed")]
    assert len(pic.sections) == 1 + len(collapsed)
    for row, section in zip(collapsed, pic.sections[1:], strict=True):
        assert row["title"] in section.title
        assert [b.title for b in section.boxes] == [p["title"] for p in row["panels"]]
        first = min(p["gridPos"]["y"] for p in row["panels"])
        assert min(b.y for b in section.boxes) == first - row["gridPos"]["y"] - 1
    cpu = next(b for b in loaded.boxes if b.title == "CPUUtilization")
    assert cpu.unit == "percent" and [(t.colour, t.value) for t in cpu.thresholds] == [("green", None), ("red", 80.0)]


def test_preview_is_deterministic_and_escapes_titles(tmp_path: Path, dashboards_dir: Path) -> None:
    hostile = json.loads((dashboards_dir / "ec2-cost.json").read_text())
    hostile["title"] = '<script>alert("x")</script> & co'
    (dashboards_dir / "ec2-cost.json").write_text(json.dumps(hostile))
    first = render_preview(load_pictures(dashboards_dir))
    assert first == render_preview(load_pictures(dashboards_dir))
    assert set(first) == {"index.html", "ec2-cost.svg", "ec2-performance.svg", "ec2-rightsizing.svg"}
    for text in (first["index.html"], first["ec2-cost.svg"]):
        assert "<script>" not in text and "&lt;script&gt;" in text
    written = preview(dashboards_dir, tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(first)


def test_templates_can_be_overridden_from_the_users_folder(tmp_path: Path, dashboards_dir: Path) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "preview.html.j2").write_text("{% for d in dashboards %}{{ d.uid }}\n{% endfor %}")
    files = render_preview(load_pictures(dashboards_dir), tmp_path / "tpl")
    assert files["index.html"].split() == ["dashgen-ec2-cost", "dashgen-ec2-performance", "dashgen-ec2-rightsizing"]
    assert files["ec2-cost.svg"].lstrip().startswith("<svg")  # the shipped one, not overridden


def test_cli_preview_reports_a_missing_folder_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dashgen.cli import app

    result = CliRunner().invoke(app, ["preview", "--dir", str(tmp_path / "none"), "--out", str(tmp_path / "p")])
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [f"error: {tmp_path / 'none'}: no dashboard files "
                                                 "(run `dashgen build` first)"]


@needs_chromium
def test_a_real_browser_places_every_box_where_grid_pos_says(tmp_path: Path, dashboards_dir: Path) -> None:
    out = tmp_path / "preview"
    preview(dashboards_dir, out)
    page = out / "index.html"
    probe = """<script>
      const rows = [];
      for (const grid of document.querySelectorAll('.grid')) {
        const g = grid.getBoundingClientRect();
        for (const el of grid.querySelectorAll('.panel')) {
          const r = el.getBoundingClientRect();
          rows.push([grid.closest('section').dataset.file, grid.dataset.section, el.dataset.x, el.dataset.y,
                     el.dataset.w, el.dataset.h, r.left - g.left, r.top - g.top, r.width, r.height]);
        }
      }
      document.body.insertAdjacentHTML('beforeend', '<pre id="lay' + 'out">' + JSON.stringify(rows) + '</pre>');
    </script></body>"""
    page.write_text(page.read_text().replace("</body>", probe))
    layout = json.loads(re.search(r'<pre id="layout">(.*?)</pre>', dump_dom(page), re.S).group(1))
    expected = sum(len(s.boxes) for pic in load_pictures(dashboards_dir) for s in pic.sections)
    assert len(layout) == expected > 50
    for file, _section, x, y, w, h, left, top, width, height in layout:
        x, y, w, h = int(x), int(y), int(w), int(h)
        where = f"{file} box at x={x} y={y}"
        assert left == pytest.approx(x * COLUMN_WIDTH, abs=1), where
        assert top == pytest.approx(y * CELL_HEIGHT, abs=1), where
        assert width == pytest.approx(w * COLUMN_WIDTH - CELL_MARGIN, abs=1), where
        assert height == pytest.approx(h * CELL_HEIGHT - CELL_MARGIN, abs=1), where
    shot = screenshot(out / "ec2-performance.svg", tmp_path / "shot.png")
    assert shot.stat().st_size > 10_000
