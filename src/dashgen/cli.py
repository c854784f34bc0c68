"""The command line: parses options, calls one library function, prints the result. Nothing else.

Every `DashgenError` is turned into one line on stderr and its exit code here, in `main`, and nowhere else.
Heavy libraries (boto3, requests, psycopg) are imported inside the commands that need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer import _click as click
from typer.core import TyperGroup

from dashgen import __version__
from dashgen.errors import EXIT_ERROR, DashgenError


class _Group(TyperGroup):
    """Turns every `DashgenError` into one line on stderr and its exit code: the one place that does."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except DashgenError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_Group,
    name="dashgen",
    help="EC2 cost-and-performance dashboards for Grafana, as code.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="dashgen.toml to read (default: ./dashgen.toml if present, else defaults)."),
]


def _config(path: Path | None):  # noqa: ANN202 - Config, imported lazily
    from dashgen.config import load_config

    return load_config(path)


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dashgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """EC2 cost-and-performance dashboards for Grafana, as code."""


@app.command()
def build(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the dashboard JSON files to.")] = Path(
        "dashboards"
    ),
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 listing stale, missing or unexpected files.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Build every dashboard into OUT as stable, validated JSON."""
    from dashgen.build import build as run_build

    result = run_build(_config(config), out, check=check)
    if check:
        for label, names in (("stale", result.stale), ("missing", result.missing),
                             ("unexpected", result.unexpected)):
            for name in names:
                _err(f"{label}: {out / name}")
        if not result.clean:
            _err("dashboards are out of date: run `dashgen build`")
            raise typer.Exit(EXIT_ERROR)
        typer.echo(f"{len(result.unchanged)} files up to date in {out}")
        return
    for name in result.written:
        typer.echo(f"wrote {out / name}")
    for name in result.unexpected:
        _err(f"warning: {out / name} is not built by dashgen (remove it, or `push` will not see it as managed)")
    typer.echo(f"{len(result.written)} written, {len(result.unchanged)} unchanged")


@app.command()
def validate(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Dashboard JSON files (default: dashboards/*.json).")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Check dashboards against Grafana's schemas and dashgen's rules."""
    from dashgen.validate import validate_file

    cfg = _config(config)
    paths = files or sorted(Path("dashboards").glob("*.json"))
    if not paths:
        raise DashgenError("dashboards: no dashboard files to validate (run `dashgen build` first)")
    bad = 0
    for path in paths:
        problems = validate_file(path, cfg)
        for problem in problems:
            _err(str(problem))
        bad += bool(problems)
        if not problems:
            typer.echo(f"ok: {path}")
    if bad:
        _err(f"{bad} of {len(paths)} dashboards invalid")
        raise typer.Exit(EXIT_ERROR)


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the commented config.")] = Path("dashgen.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented dashgen.toml with the bundled defaults."""
    from dashgen.config import write_sample_config

    write_sample_config(path, force=force)
    typer.echo(f"wrote {path}")


@app.command()
def metrics(config: ConfigOpt = None) -> None:
    """List the AWS/EC2 metric catalogue: group, unit, statistic, threshold, which instances emit it."""
    from rich.console import Console
    from rich.table import Table

    from dashgen.catalogue import GROUPS_BY_KEY, METRICS

    cfg = _config(config)
    table = Table("metric", "group", "unit", "statistic", "threshold", "emitted by")
    for m in METRICS:
        value = cfg.threshold(m.name)
        th = "" if value is None else f"{'>' if m.direction == 'above' else '<'} {value:g}"
        table.add_row(m.name, GROUPS_BY_KEY[m.group].title, m.unit, m.statistic, th, m.applies_to)
    Console(width=160).print(table)


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
