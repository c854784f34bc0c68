"""The command line: parses options, calls one library function, hands the result to a view (`dashgen.views`).

Every `DashgenError` is turned into one line on stderr and its exit code here, in `_Group`, and nowhere else;
click's usage errors exit `EXIT_USAGE` too (the exit codes: `dashgen.errors.EXIT_CODES`). Options used by
several commands are defined once below. Heavy libraries (boto3, requests, psycopg, rich) are imported inside
the commands (or views) that need them.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from dashgen import __version__
from dashgen.errors import EXIT_DIFFERS, EXIT_ERROR, EXIT_USAGE, ConfigError, DashgenError
from dashgen.views import Format, ReviewFormat, TableFormat, TextOrJson


def _usage(exc: click.UsageError) -> typer.Exit:
    """A usage error (unknown option, bad value, missing argument) as one line on stderr, and `EXIT_USAGE`."""
    if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):
        typer.echo(exc.format_message(), err=True)  # no arguments at all: the help itself
    else:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        typer.echo(f"error: {' '.join(exc.format_message().split())}{where}", err=True)
    return typer.Exit(EXIT_USAGE)


class _Group(TyperGroup):
    """Turns every `DashgenError` into one line on stderr and its exit code, and click's usage errors (unknown
    option, bad value, missing argument) into one line and `EXIT_USAGE`: the one place that does."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:  # the root's own options
            raise _usage(exc) from None

    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a command's options and arguments are parsed here
            raise _usage(exc) from None
        except DashgenError as exc:
            from dashgen.redact import env_secrets, redact

            # last line of defence: no URL/DSN password, no secret from the environment, whoever wrote the message
            typer.echo(f"error: {redact(str(exc), env_secrets())}", err=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_Group,
    name="dashgen",
    help="EC2 cost-and-performance dashboards for Grafana, as code.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# --- options shared by several commands (each defined once)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="dashgen.toml to read (default: ./dashgen.toml if present, else defaults)."),
]
CheckOpt = Annotated[
    bool, typer.Option("--check", help="Write nothing; exit 2 listing each stale, missing or unexpected file.")
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON: the same as --format json (its shape: docs/json.md).")
]
TextOrJsonOpt = Annotated[TextOrJson, typer.Option("--format", "-f", help="text for a person, json for a program.")]
DsnOpt = Annotated[
    str | None,
    typer.Option("--dsn", help="PostgreSQL DSN of the pricing store (default: $DASHGEN_DSN, then pricing.dsn); "
                               "the password comes from PGPASSWORD or ~/.pgpass."),
]


def _format(fmt: Any, as_json: bool) -> Format:
    """The view to draw: `--json` is `--format json`; with another --format it is a usage error."""
    if as_json:
        if fmt.value not in ("json", "text", "table"):
            raise ConfigError(f"--json: goes with --format json, not --format {fmt.value}")
        return Format.json
    return Format(fmt.value)


def _templates(cfg) -> Path | None:  # noqa: ANN001 - config.Config
    return Path(cfg.build_templates) if cfg.build_templates else None


def _out_option(what: str) -> object:
    return typer.Option("--out", "-o", help=f"Folder to write {what} to.")


def _config(path: Path | None):  # noqa: ANN202 - Config, imported lazily
    from dashgen.config import load_config

    return load_config(path)


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
    out: Annotated[Path, _out_option("the dashboard JSON files")] = Path("dashboards"),
    check: CheckOpt = False,
    config: ConfigOpt = None,
    provisioning: Annotated[
        Path | None,
        typer.Option("--provisioning", help="Folder of the provisioning files, built and checked with the "
                     "dashboards (default: `provisioning` beside OUT)."),
    ] = None,
    fmt: Annotated[
        ReviewFormat,
        typer.Option("--format", "-f", help="With --check: a list (text), a pull-request comment (markdown) or json."),
    ] = ReviewFormat.text,
    as_json: JsonOpt = False,
) -> None:
    """Build every dashboard into OUT as stable, validated JSON (and the provisioning files).
    With --check: exit 2 when a generated file is stale, missing or unexpected."""
    from dashgen import views
    from dashgen.build import build as run_build
    from dashgen.outputs import OutputsResult

    prov = provisioning or out.parent / "provisioning"
    view = _format(fmt, as_json)
    if view != Format.text:
        if not check:
            raise ConfigError(f"--format {view.value}: goes with --check")
        from dashgen.build import review_build

        cfg = _config(config)
        review = review_build(cfg, out, prov)
        views.review(review, view, _templates(cfg))
        if review.changed:
            raise typer.Exit(EXIT_DIFFERS)
        return
    result = run_build(_config(config), out, check=check, provisioning_dir=prov)
    if not check:
        for name in result.unexpected:
            views.err(f"warning: {out / name} is not built by dashgen (remove it, or `push` will not see it as "
                      "managed)")
    parts = [(out, result), (prov, result.provisioning or OutputsResult())]
    views.files(parts, check=check, fix="dashgen build")
    if check and not all(part.clean for _, part in parts):
        raise typer.Exit(EXIT_DIFFERS)


@app.command()
def validate(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Dashboard JSON files (default: dashboards/*.json).")
    ] = None,
    config: ConfigOpt = None,
    fmt: TextOrJsonOpt = TextOrJson.text,
    as_json: JsonOpt = False,
) -> None:
    """Check dashboards against Grafana's schemas and dashgen's rules (exit 1 when one is invalid)."""
    from dashgen import views
    from dashgen.grafana.validate import validate_files

    results = validate_files(files, _config(config))
    views.validation(results, _format(fmt, as_json))
    if any(problems for _, problems in results):
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
def metrics(
    config: ConfigOpt = None,
    fmt: Annotated[TableFormat, typer.Option("--format", "-f", help="a table for a person, json or csv for a program.")
               ] = TableFormat.table,
    as_json: JsonOpt = False,
) -> None:
    """List the AWS/EC2 metric catalogue: group, unit, statistic, threshold, which instances emit it."""
    from dashgen import views
    from dashgen.catalogue import catalogue_rows

    views.metrics(catalogue_rows(_config(config).threshold), _format(fmt, as_json))


@app.command()
def preview(
    dashboards: Annotated[Path, typer.Option("--dir", "-d", help="Folder of built dashboard JSON files.")] = Path(
        "dashboards"),
    out: Annotated[Path, _out_option("the preview (index.html and one SVG per dashboard)")] = Path("preview"),
    templates: Annotated[
        Path | None, typer.Option("--templates", help="Folder of jinja2 templates overriding the shipped ones.")
    ] = None,
) -> None:
    """Draw every built dashboard (grid, rows, panels, units, thresholds) as HTML and SVG, without Grafana."""
    from dashgen.grafana.preview import preview as run_preview

    for path in run_preview(dashboards, out, templates):
        typer.echo(f"wrote {path}")


class Scaffold(StrEnum):
    """What `dashgen new --from` starts from (`definitions.SCAFFOLDS`; tests/test_cli_json.py keeps them equal)."""

    blank = "blank"
    performance = "performance"
    cost = "cost"
    rightsizing = "rightsizing"


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="The dashboard's name: dashboards/NAME.dashboard.py builds NAME.json.")],
    start: Annotated[Scaffold, typer.Option("--from", help="The dashboard to start from.")] = Scaffold.blank,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Scaffold your own dashboard definition (and a test for it) that builds and validates at once."""
    from dashgen.definitions import new_definition

    for path in new_definition(name, start=start.value, config=_config(config), force=force):
        typer.echo(f"wrote {path}")
    typer.echo("next: edit it, then `dashgen build && dashgen validate && dashgen preview`")


# --- provisioning commands


@app.command()
def provision(
    out: Annotated[Path, _out_option("the provisioning files")] = Path("provisioning"),
    check: CheckOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Write the Grafana and PostgreSQL provisioning files (datasources, dashboard provider, init SQL).
    With --check: exit 2 when one is stale, missing or unexpected."""
    from dashgen import views
    from dashgen.grafana.provision import provision as run_provision

    result = run_provision(_config(config), out, check=check)
    views.files([(out, result)], check=check, fix="dashgen provision")
    if check and not result.clean:
        raise typer.Exit(EXIT_DIFFERS)


# --- push commands

DirOpt = Annotated[Path, typer.Option("--dir", "-d", help="Folder of built dashboard JSON files.")]
UrlOpt = Annotated[str | None, typer.Option("--url", help="Grafana base URL (default: $GRAFANA_URL).")]
TokenFileOpt = Annotated[
    Path | None, typer.Option("--token-file", help="File holding a service-account token (default: $GRAFANA_TOKEN).")
]
CaOpt = Annotated[Path | None, typer.Option("--ca-bundle", help="PEM bundle of CAs to verify Grafana's TLS with.")]
InsecureOpt = Annotated[bool, typer.Option("--insecure", help="Do not verify Grafana's TLS certificate (unsafe).")]
PruneOpt = Annotated[bool, typer.Option("--prune", help="Also delete managed dashboards no longer defined.")]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", min=1, max=32, help="Requests in flight at once.")]
DeadlineOpt = Annotated[float, typer.Option("--deadline", min=1, help="Seconds the whole run may spend on Grafana "
                                            "(retries included).")]


def _client(url: str | None, token_file: Path | None, ca_bundle: Path | None, insecure: bool,  # noqa: ANN202
            deadline: float = 900.0):
    from dashgen.grafana.client import GrafanaClient, connection_from_env, plain_http_warning

    conn = connection_from_env(url, token_file, ca_bundle, insecure)
    warning = plain_http_warning(conn)
    if warning:
        typer.echo(warning, err=True)
    return GrafanaClient(conn, deadline=deadline)


@app.command()
def push(
    dir: DirOpt = Path("dashboards"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; write nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite dashboards edited in Grafana.")] = False,
    prune: PruneOpt = False,
    url: UrlOpt = None,
    token_file: TokenFileOpt = None,
    ca_bundle: CaOpt = None,
    insecure: InsecureOpt = False,
    concurrency: ConcurrencyOpt = 4,
    deadline: DeadlineOpt = 900.0,
    config: ConfigOpt = None,
    fmt: TextOrJsonOpt = TextOrJson.text,
    as_json: JsonOpt = False,
) -> None:
    """Deliver the built dashboards to Grafana: plan, then apply (exit 1 on any conflict or failure)."""
    from dashgen import views
    from dashgen.grafana import push as lib

    view = _format(fmt, as_json)
    cfg = _config(config)
    with _client(url, token_file, ca_bundle, insecure, deadline) as client:
        plan = lib.prepare(client, dir, cfg, force=force, prune=prune, concurrency=concurrency)
        if view == Format.json and dry_run:
            views.emit_json(views.plan_json(plan))
            return
        if view == Format.text:
            views.plan(plan, details=dry_run)
        if dry_run:
            return
        from rich.console import Console
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("pushing", total=len(plan.writes))
            result = lib.apply(plan, client, message=lib.version_message(lib.git_commit(dir)),
                               concurrency=concurrency, on_done=lambda _c, _o: bar.advance(task))
    views.pushed(result, plan, view)
    if not result.ok:
        raise typer.Exit(EXIT_ERROR)


@app.command()
def diff(
    dir: DirOpt = Path("dashboards"),
    prune: PruneOpt = False,
    url: UrlOpt = None,
    token_file: TokenFileOpt = None,
    ca_bundle: CaOpt = None,
    insecure: InsecureOpt = False,
    deadline: DeadlineOpt = 900.0,
    config: ConfigOpt = None,
    fmt: Annotated[
        ReviewFormat, typer.Option("--format", "-f", help="text, a pull-request comment (markdown) or json.")
    ] = ReviewFormat.text,
    as_json: JsonOpt = False,
) -> None:
    """Show how Grafana differs from the built dashboards: exit 0 same, 2 different, 1 error, 4 usage."""
    from dashgen import views
    from dashgen.grafana import push as lib

    view = _format(fmt, as_json)
    cfg = _config(config)
    with _client(url, token_file, ca_bundle, insecure, deadline) as client:
        plan = lib.prepare(client, dir, cfg, prune=prune)
    if view == Format.text:
        views.plan(plan, details=True)
    else:
        from dashgen.grafana.review import plan_review

        views.review(plan_review(plan), view, _templates(cfg))
    if not plan.is_empty():
        raise typer.Exit(EXIT_DIFFERS)


# --- rightsizing commands

@app.command()
def rightsize(
    dsn: DsnOpt = None,
    experiment: Annotated[str | None, typer.Option("--experiment", "-e",
                                                   help="Compare this experiment's instances instead.")] = None,
    fmt: Annotated[TableFormat, typer.Option("--format", "-f", help="a table of the first --limit rows, or every "
                                                                    "row as json or csv.")] = TableFormat.table,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Only instances tagged KEY=VALUE (repeatable: "
                                                   "values of one key, any of them).")] = None,
    name: Annotated[list[str] | None, typer.Option("--name", help="Only instances named NAME (repeatable).")] = None,
    account: Annotated[list[str] | None, typer.Option("--account", help="Only instances of this AWS account id "
                                                      "(repeatable).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="table: show the first N rows (largest saving "
                                                               "first; 0 = all); json and csv write every row.")] = 50,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recommend the right size (and a cheaper family) per instance, from the dashboard's own SQL."""
    from dashgen import views
    from dashgen.rightsizing.queries import rightsize as run_rightsize

    view = _format(fmt, as_json)
    rows = run_rightsize(_config(config), dsn=dsn, experiment=experiment, tag=tag or (), names=name or (),
                       accounts=account or ())
    views.rightsizing(rows, view, experiment=experiment, limit=limit)


# --- pricing store commands

db_app = typer.Typer(help="The pricing store (PostgreSQL): migrations and grants.", no_args_is_help=True)
app.add_typer(db_app, name="db")


class Prices(StrEnum):
    api = "api"
    bundled = "bundled"


@app.command()
def sync(
    dsn: DsnOpt = None,
    region: Annotated[list[str] | None, typer.Option("--region", help="Region to read (repeatable; default: "
                                                                      "aws.regions).")] = None,
    loop: Annotated[bool, typer.Option("--loop", help="Keep syncing, every pricing.every (default 15m).")] = False,
    every: Annotated[str | None, typer.Option("--every", help="Keep syncing at this interval, e.g. 15m "
                                                              "(overrides pricing.every).")] = None,
    prices: Annotated[Prices | None, typer.Option("--prices", help="api (AWS Price List API) or bundled "
                                                                   "(the us-east-1 snapshot).")] = None,
    cur: Annotated[str | None, typer.Option("--cur", help="s3://bucket/prefix of a CUR 2.0 / Data Exports "
                                                          "Parquet export: also store the billed cost "
                                                          "(needs the [cur] extra: pyarrow).")] = None,
    config: ConfigOpt = None,
    fmt: TextOrJsonOpt = TextOrJson.text,
    as_json: JsonOpt = False,
) -> None:
    """Fill the pricing store from AWS: EC2 inventory, running intervals, prices, experiment progress.
    Exit 0: all synced; 3: partly (a region or a read failed, the rest landed); 1: nothing synced; 4: usage."""
    from dashgen import sync as lib
    from dashgen import views

    view = _format(fmt, as_json)
    cfg = _config(config)
    mode = prices.value if prices else None
    if every is None and not loop:
        result = lib.sync(cfg, dsn=dsn, regions=region, prices=mode, cur=cur)
        views.synced(result, view)
        if result.exit_code:
            raise typer.Exit(result.exit_code)
        return
    seconds = lib.parse_every(every) if every else lib.duration_seconds(cfg.sync_every, f"{cfg.source}: pricing.every")
    for rnd in lib.sync_loop(cfg, seconds, dsn=dsn, regions=region, prices=mode, cur=cur):
        if rnd.result is not None:
            views.synced(rnd.result, view, lines=True)
        else:
            views.err(f"error: {rnd.error} (next try in {rnd.wait:.0f} s)" if rnd.wait else f"error: {rnd.error}")


@db_app.command("migrate")
def db_migrate(dsn: DsnOpt = None, config: ConfigOpt = None) -> None:
    """Create or upgrade the dashgen schema (versioned migrations, each in one transaction)."""
    from dashgen.store import db as store
    with store.connect(store.resolve_dsn(dsn, _config(config))) as conn:
        applied = store.migrate(conn)
    typer.echo(f"applied {', '.join(applied)}" if applied else "schema up to date")


@db_app.command("grant-reader")
def db_grant_reader(
    role: Annotated[str, typer.Argument(help="Existing role Grafana's datasource connects as.")],
    dsn: DsnOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Give ROLE read-only access (SELECT) to the dashgen schema, including tables created later; reset its
    settings; exit 1 naming what ROLE can still do beyond reading (see docs/reliability.md)."""
    from dashgen.store import db as store
    with store.connect(store.resolve_dsn(dsn, _config(config))) as conn:
        done, left = store.grant_reader(conn, role)
    typer.echo(f"granted SELECT on schema {store.SCHEMA} to {role}")
    for line in done:
        typer.echo(line)
    if left:
        for line in left:
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(EXIT_ERROR)


@db_app.command("forget-experiment")
def db_forget_experiment(
    name: Annotated[str, typer.Argument(help="The experiment to remove, with its stored progress.")],
    dsn: DsnOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Remove an experiment no longer in the config, and its stored progress (sync never deletes one)."""
    from dashgen.sync import forget_experiment

    gone = forget_experiment(_config(config), name, dsn=dsn)
    typer.echo(f"forgot experiment {gone.name} and its {gone.progress_points} progress points")


def main() -> None:
    """Console entry point (named `dashgen` however it is started, `python -m dashgen.cli` too)."""
    app(prog_name="dashgen")


if __name__ == "__main__":
    main()
