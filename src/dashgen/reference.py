"""Reference pages generated from the code (never hand-copied), checked by `tests/test_docs.py`.

`python -m dashgen.reference` rewrites them; each generator is a pure function of the code.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import ModuleType

REPO_DOCS = Path(__file__).resolve().parents[2] / "docs"


def _first_paragraph(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def api_markdown() -> str:
    """docs/api.md: every public name of `dashgen.api`, its signature and the first paragraph of its docstring."""
    from dashgen import api

    lines = [
        "# The definitions API (`dashgen.api`)",
        "",
        "<!-- generated from src/dashgen/api.py by `python -m dashgen.reference`; checked by tests/test_docs.py -->",
        "",
        _first_paragraph(api),
        "",
        "Use it as `from dashgen import api as dg`. Everything below is stable; anything else in dashgen is "
        "private. Definitions are your own Python code: `dashgen build` imports and runs them (never `push`, "
        "`diff` or `validate`, which read the built JSON), so review them like any code.",
        "",
        "| name | kind | signature | what it is |",
        "| --- | --- | --- | --- |",
    ]
    rows = [(name, getattr(api, name)) for name in api.__all__]
    lines += _api_rows(rows)
    lines += ["", "## The built-in dashboards as building blocks", "",
              "Each built-in dashboard is a module of `dashgen.dashboards` built from the API above alone; its "
              "public functions are part of the API too (`from dashgen.dashboards import cost`, then "
              "`cost.instances_panel()`): `dashgen new --from cost|rightsizing|performance` starts from them.", "",
              "| name | kind | signature | what it is |", "| --- | --- | --- | --- |"]
    for module in builtin_modules():
        public = sorted(n for n, o in vars(module).items() if inspect.isfunction(o) and not n.startswith("_")
                        and o.__module__ == module.__name__)
        lines += _api_rows([(f"{module.__name__.rsplit('.', 1)[1]}.{n}", getattr(module, n)) for n in public])
    return "\n".join(lines) + "\n"


def builtin_modules() -> list[ModuleType]:
    """The built-in dashboard modules, in build order."""
    import importlib

    from dashgen.definitions import BUILTINS

    return [importlib.import_module(f"dashgen.dashboards.{name}") for name in BUILTINS]


def _api_rows(items: list[tuple[str, object]]) -> list[str]:
    lines = []
    for name, obj in items:
        if inspect.isclass(obj):
            kind, sig = "class", ""
        elif callable(obj):
            kind = "function"
            try:
                sig = str(inspect.signature(obj)).replace("|", "\\|")
            except (TypeError, ValueError):
                sig = ""
        else:
            kind, sig = "constant", ""
        what = _first_paragraph(obj) if kind != "constant" else f"`{type(obj).__name__}`"
        lines.append(f"| `{name}` | {kind} | `{sig}` | {what} |" if sig else f"| `{name}` | {kind} |  | {what} |")
    return lines


def example_preview_svg() -> str:
    """docs/img/gpu-training-preview.svg: what `dashgen preview` draws of `dashgen new gpu-training --from
    performance`, built with the default config (the picture docs/own-dashboards.md and the README show)."""
    import tempfile

    from dashgen.config import Config
    from dashgen.definitions import build_definition, load_definition_file, new_definition
    from dashgen.grafana.preview import picture, render_preview

    with tempfile.TemporaryDirectory() as tmp:
        path = new_definition("gpu-training", start="performance", root=Path(tmp))[0]
        data = build_definition(load_definition_file(path), Config())
    return render_preview([picture(data, "gpu-training.json")])["gpu-training.svg"]


def cli_markdown() -> str:
    """docs/cli.md: every command and subcommand, its help, usage and options, read from the CLI itself."""
    import click
    import typer.main

    from dashgen.cli import app

    root = typer.main.get_command(app)
    lines = ["# Command-line reference", "",
             "<!-- generated from src/dashgen/cli.py by `python -m dashgen.reference`; "
             "checked by tests/test_docs.py -->",
             "", " ".join((root.help or "").split()), ""]

    def walk(group: click.Group, prefix: str) -> None:
        ctx = click.Context(group, info_name=prefix)
        for name in sorted(group.list_commands(ctx)):
            cmd = group.get_command(ctx, name)
            if cmd is None or cmd.hidden:
                continue
            full = f"{prefix} {name}"
            if isinstance(cmd, click.Group):
                walk(cmd, full)
                continue
            sub = click.Context(cmd, info_name=full, parent=ctx)
            lines.extend([f"## `{full}`", "", " ".join((cmd.help or "").split()), "", "```text",
                          " ".join(cmd.collect_usage_pieces(sub)).join((f"{full} ", "")).rstrip(), "```", ""])
            rows = []
            for param in cmd.params:
                if isinstance(param, click.Argument):
                    rows.append((param.human_readable_name, getattr(param, "help", "") or ""))
                elif isinstance(param, click.Option) and not param.hidden:
                    names = ", ".join(f"`{o}`" for o in (*param.opts, *param.secondary_opts))
                    help_text = param.help or ""
                    if isinstance(param.type, click.Choice):
                        help_text += f" One of: {', '.join(map(str, param.type.choices))}."
                    rows.append((names, help_text))
            if rows:
                lines.extend(["| option | meaning |", "| --- | --- |"])
                lines.extend(f"| {n} | {' '.join(h.split()).replace('|', '/')} |" for n, h in rows)
                lines.append("")

    walk(root, "dashgen")
    return "\n".join(lines).rstrip() + "\n"


PAGES = {"api.md": api_markdown, "cli.md": cli_markdown, "img/gpu-training-preview.svg": example_preview_svg}


def main() -> None:
    for name, make in PAGES.items():
        (REPO_DOCS / name).write_text(make(), encoding="utf-8")
        print(f"wrote docs/{name}")


if __name__ == "__main__":
    main()
