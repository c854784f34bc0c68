"""`dashgen preview`: a picture of every built dashboard for a pull-request reviewer, drawn without Grafana.

From the built JSON alone (no network, no Grafana) it lays out each dashboard on Grafana's 24-column grid: the
panels as Grafana shows them on load (a collapsed row is one bar), then each collapsed row opened on its own,
every box with the panel's type, title, unit and thresholds. One HTML page for all dashboards (CSS grid: the
browser places each box from its `gridPos`) and one SVG per dashboard, both rendered with jinja2 templates
shipped in `dashgen/templates/` and overridable from a folder of the user's (same file names).

Grafana's grid (`public/app/core/constants.ts` in grafana/grafana): GRID_COLUMN_COUNT = 24, GRID_CELL_HEIGHT = 30,
GRID_CELL_VMARGIN = 8; a row panel is h = 1 and keeps its panels in `panels` while collapsed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashgen.errors import ConfigError
from dashgen.fsutil import atomic_write_text

GRID_COLUMNS = 24
CELL_HEIGHT = 30  # px per grid unit, as Grafana
CELL_MARGIN = 8
COLUMN_WIDTH = 50  # px per column in the picture (1200 px for the 24 columns)


@dataclass(frozen=True)
class Threshold:
    colour: str
    value: float | None  # None: the base step


@dataclass(frozen=True)
class Box:
    """One panel (or row bar) at its grid position, with what a reviewer needs to recognise it."""

    id: int | None
    type: str
    title: str
    x: int
    y: int
    w: int
    h: int
    unit: str | None = None
    thresholds: tuple[Threshold, ...] = ()
    collapsed: bool = False
    hidden_panels: int = 0  # panels inside a collapsed row


@dataclass(frozen=True)
class Section:
    """A grid of boxes: the dashboard as loaded, or one collapsed row opened."""

    title: str
    boxes: tuple[Box, ...]

    @property
    def rows(self) -> int:
        return max((b.y + b.h for b in self.boxes), default=0)


@dataclass(frozen=True)
class DashboardPicture:
    file: str
    uid: str
    title: str
    sections: tuple[Section, ...] = field(default_factory=tuple)


def _thresholds(panel: dict[str, Any]) -> tuple[Threshold, ...]:
    steps = (((panel.get("fieldConfig") or {}).get("defaults") or {}).get("thresholds") or {}).get("steps") or []
    return tuple(Threshold(str(s.get("color", "")), s.get("value")) for s in steps if isinstance(s, dict))


def _box(panel: dict[str, Any], dy: int = 0) -> Box:
    pos = panel.get("gridPos") or {}
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    kind = str(panel.get("type", "?"))
    return Box(
        id=panel.get("id"),
        type=kind,
        title=str(panel.get("title", "")),
        x=int(pos.get("x", 0)),
        y=int(pos.get("y", 0)) - dy,
        w=int(pos.get("w", GRID_COLUMNS)),
        h=int(pos.get("h", 1)),
        unit=defaults.get("unit") if kind != "row" else None,
        thresholds=_thresholds(panel) if kind != "row" else (),
        collapsed=bool(panel.get("collapsed")) if kind == "row" else False,
        hidden_panels=len(panel.get("panels") or []) if kind == "row" else 0,
    )


def picture(dashboard: dict[str, Any], file: str) -> DashboardPicture:
    """The layout of one dashboard: as loaded, then each collapsed row opened below it."""
    panels = [p for p in dashboard.get("panels") or [] if isinstance(p, dict)]
    sections = [Section("As loaded", tuple(_box(p) for p in panels))]
    for row in panels:
        nested = row.get("panels") or []
        if row.get("type") == "row" and row.get("collapsed") and nested:
            top = int((row.get("gridPos") or {}).get("y", 0)) + 1
            sections.append(Section(f"Row “{row.get('title', '')}” (collapsed), opened",
                                    tuple(_box(p, dy=top) for p in nested if isinstance(p, dict))))
    return DashboardPicture(file, str(dashboard.get("uid", "")), str(dashboard.get("title", "")), tuple(sections))


def _environment(templates: Path | None):  # noqa: ANN202 - jinja2.Environment, imported lazily
    import jinja2

    loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader("dashgen", "templates")]
    if templates is not None:
        if not templates.is_dir():
            raise ConfigError(f"{templates}: templates folder not found")
        loaders.insert(0, jinja2.FileSystemLoader(templates))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(["html", "svg", "html.j2", "svg.j2"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(COLUMN_WIDTH=COLUMN_WIDTH, CELL_HEIGHT=CELL_HEIGHT, CELL_MARGIN=CELL_MARGIN,
                       GRID_COLUMNS=GRID_COLUMNS)
    env.filters["threshold_label"] = _threshold_label
    env.filters["css_colour"] = css_colour
    env.filters["md"] = markdown_text
    return env


# The primary shade of each hue of Grafana's dark theme (grafana/grafana
# packages/grafana-data/src/themes/createVisualizationColors.ts); "semi-dark-red", "light-green"... are drawn
# in their hue's primary shade: a picture for review, not Grafana's exact palette.
_HUES = {"red": "#F2495C", "orange": "#FF9830", "yellow": "#FADE2A", "green": "#73BF69", "blue": "#5794F2",
         "purple": "#B877D9", "text": "#24292e", "transparent": "transparent"}


def css_colour(name: str) -> str:
    """A CSS colour for a Grafana colour name or hex value (grey when unknown)."""
    if name.startswith("#") or name.startswith("rgb"):
        return name
    return _HUES.get(name.rsplit("-", 1)[-1], "#8e8e8e")


def markdown_text(text: object) -> str:
    """Text safe inside a Markdown table cell or list item: no HTML, no table breaks, one line."""
    out = " ".join(str(text).split())
    for char, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("`", "\\`")):
        out = out.replace(char, escaped)
    return out


def _threshold_label(step: Threshold) -> str:
    return "base" if step.value is None else f"{step.value:g}"


def load_pictures(dashboards_dir: Path) -> list[DashboardPicture]:
    """Every `*.json` in `dashboards_dir`, in file-name order."""
    paths = sorted(dashboards_dir.glob("*.json"))
    if not paths:
        raise ConfigError(f"{dashboards_dir}: no dashboard files (run `dashgen build` first)")
    out = []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not a readable JSON file ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a dashboard object, got {type(data).__name__}")
        out.append(picture(data, path.name))
    return out


def render_preview(pictures: list[DashboardPicture], templates: Path | None = None) -> dict[str, str]:
    """File name -> text: `index.html` with every dashboard, and `<file stem>.svg` per dashboard."""
    env = _environment(templates)
    files = {"index.html": env.get_template("preview.html.j2").render(dashboards=pictures)}
    svg = env.get_template("dashboard.svg.j2")
    for pic in pictures:
        files[f"{Path(pic.file).stem}.svg"] = svg.render(dashboard=pic)
    return files


def preview(dashboards_dir: Path, out_dir: Path, templates: Path | None = None) -> list[Path]:
    """`dashgen preview`: write the HTML page and the SVGs for the dashboards in `dashboards_dir`."""
    written = []
    for name, text in sorted(render_preview(load_pictures(dashboards_dir), templates).items()):
        atomic_write_text(out_dir / name, text)
        written.append(out_dir / name)
    return written
