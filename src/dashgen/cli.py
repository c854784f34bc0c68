"""The command line: parses options, calls one library function, prints the result. Nothing else.

Every `DashgenError` is turned into one line on stderr and its exit code here, in `main`, and nowhere else.
Heavy libraries (boto3, requests, psycopg) are imported inside the commands that need them.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from dashgen import __version__
from dashgen.errors import EXIT_ERROR, EXIT_USAGE, DashgenError


class _Group(TyperGroup):
    """Turns every `DashgenError` into one line on stderr and its exit code: the one place that does."""

    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
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

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="dashgen.toml to read (default: ./dashgen.toml if present, else defaults)."),
]


class ReviewFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


def _print_review(review, fmt: ReviewFormat, cfg) -> None:  # noqa: ANN001 - review.Review, config.Config
    from dashgen.grafana import review as views
    if fmt is ReviewFormat.json:
        import json

        typer.echo(json.dumps(views.to_json(review), indent=2, sort_keys=True))
    else:
        templates = Path(cfg.build_templates) if cfg.build_templates else None
        typer.echo(views.to_markdown(review, templates), nl=False)


CheckOpt = Annotated[
    bool, typer.Option("--check", help="Write nothing; exit 1 listing each stale, missing or unexpected file.")
]


def _out_option(what: str) -> object:
    return typer.Option("--out", "-o", help=f"Folder to write {what} to.")


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
    out: Annotated[Path, _out_option("the dashboard JSON files")] = Path("dashboards"),
    check: CheckOpt = False,
    config: ConfigOpt = None,
    provisioning: Annotated[
        Path | None,
        typer.Option("--provisioning", help="Folder of the provisioning files, built and checked with the "
                     "dashboards (default: `provisioning` beside OUT)."),
    ] = None,
    fmt: Annotated[
        ReviewFormat, typer.Option("--format", "-f", help="With --check: text, markdown (a PR comment) or json.")
    ] = ReviewFormat.text,
) -> None:
    """Build every dashboard into OUT as stable, validated JSON (and the provisioning files)."""
    from dashgen.build import build as run_build
    from dashgen.outputs import OutputsResult

    prov = provisioning or out.parent / "provisioning"
    if fmt is not ReviewFormat.text:
        if not check:
            raise DashgenError("--format: markdown and json go with --check", exit_code=EXIT_USAGE)
        from dashgen.build import review_build

        cfg = _config(config)
        review = review_build(cfg, out, prov)
        _print_review(review, fmt, cfg)
        if review.changed:
            raise typer.Exit(EXIT_ERROR)
        return
    result = run_build(_config(config), out, check=check, provisioning_dir=prov)
    if not check:
        for name in result.unexpected:
            _err(f"warning: {out / name} is not built by dashgen (remove it, or `push` will not see it as managed)")
    _report([(out, result), (prov, result.provisioning or OutputsResult())], check=check, fix="dashgen build")


@app.command()
def validate(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Dashboard JSON files (default: dashboards/*.json).")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Check dashboards against Grafana's schemas and dashgen's rules."""
    from dashgen.grafana.validate import validate_file

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


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="The dashboard's name: dashboards/NAME.dashboard.py builds NAME.json.")],
    start: Annotated[
        str, typer.Option("--from", help="Start from: blank, performance, cost or rightsizing.")
    ] = "blank",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Scaffold your own dashboard definition (and a test for it) that builds and validates at once."""
    from dashgen.definitions import new_definition

    for path in new_definition(name, start=start, config=_config(config), force=force):
        typer.echo(f"wrote {path}")
    typer.echo("next: edit it, then `dashgen build && dashgen validate && dashgen preview`")


# --- provisioning commands


def _report(parts: list, *, check: bool, fix: str) -> None:
    """Print what `build`/`provision` wrote per folder or, with `check`, each stale, missing or unexpected file
    (exit 1 unless all are up to date)."""
    if check:
        for folder, part in parts:
            for label, names in (("stale", part.stale), ("missing", part.missing), ("unexpected", part.unexpected)):
                for name in names:
                    _err(f"{label}: {folder / name}")
        if not all(part.clean for _, part in parts):
            _err(f"generated files are out of date: run `{fix}`")
            raise typer.Exit(EXIT_ERROR)
        folders = " and ".join(str(folder) for folder, _ in parts)
        typer.echo(f"{sum(len(part.unchanged) for _, part in parts)} files up to date in {folders}")
        return
    for folder, part in parts:
        for name in part.written:
            typer.echo(f"wrote {folder / name}")
    written, unchanged = (sum(len(getattr(part, key)) for _, part in parts) for key in ("written", "unchanged"))
    typer.echo(f"{written} written, {unchanged} unchanged")


@app.command()
def provision(
    out: Annotated[Path, _out_option("the provisioning files")] = Path("provisioning"),
    check: CheckOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Write the Grafana and PostgreSQL provisioning files (datasources, dashboard provider, init SQL)."""
    from dashgen.grafana.provision import provision as run_provision

    _report([(out, run_provision(_config(config), out, check=check))], check=check, fix="dashgen provision")


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
        _err(warning)
    return GrafanaClient(conn, deadline=deadline)


def _show_plan(plan, *, details: bool) -> None:  # noqa: ANN001 - push.Plan, imported lazily
    """The plan as aligned plain lines (fast for hundreds of dashboards), coloured on a terminal."""
    colours = {"+": "green", "~": "yellow", "=": "white", "!": "red", "-": "red"}
    rows = [("+", "create folder", plan.folder_uid, plan.folder_title,
             f"under {plan.folder_parent!r}" if plan.folder_parent else "")] if plan.create_folder else []
    rows += [(c.action.value, c.action.name.lower(), c.uid, c.title, c.reason)
             for c in plan.changes if details or c.action.value != "="]
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(4)]
    lines = [" ".join([typer.style(r[0], fg=colours[r[0]], bold=True),
                       *(f"{v:<{w}}" for v, w in zip(r[1:4], widths[1:], strict=True)), r[4]]).rstrip()
             for r in rows]
    for c in plan.changes:
        if c.details and (details or c.action.value == "!"):
            lines.append(typer.style(f"{c.action.value} {c.uid} ({c.source}):", fg=colours[c.action.value]))
            lines.extend(f"    {line}" for line in c.details)
    n = plan.counts()
    lines.append(f"plan: {n['create']} to create, {n['update']} to update, {n['delete']} to delete, "
                 f"{n['unchanged']} unchanged, {n['conflict']} conflicts")
    typer.echo("\n".join(lines))


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
) -> None:
    """Deliver the built dashboards to Grafana: plan, then apply (exit 1 on any conflict or failure)."""
    from rich.console import Console
    from rich.progress import Progress

    from dashgen.grafana import push as lib
    cfg = _config(config)
    with _client(url, token_file, ca_bundle, insecure, deadline) as client:
        plan = lib.prepare(client, dir, cfg, force=force, prune=prune, concurrency=concurrency)
        _show_plan(plan, details=dry_run)
        if dry_run:
            return
        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("pushing", total=len(plan.writes))
            result = lib.apply(plan, client, message=lib.version_message(lib.git_commit(dir)),
                               concurrency=concurrency, on_done=lambda _c, _o: bar.advance(task))
    if result.landed:
        typer.echo("\n".join(f"{c.action.value} {c.uid}: {note}" for c, note in result.landed))
    for c, note in (*result.conflicts, *result.failed):
        _err(f"not pushed: {c.uid}: {note}")
    typer.echo(f"{len(result.landed)} landed, {len(result.conflicts)} conflicts, {len(result.failed)} failed"
              f"{' (folder created)' if result.folder_created else ''}")
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
        ReviewFormat, typer.Option("--format", "-f", help="text, markdown (a pull-request comment) or json.")
    ] = ReviewFormat.text,
) -> None:
    """Show how Grafana differs from the built dashboards: exit 0 same, 2 different, 1 error."""
    from dashgen.errors import EXIT_CHANGES
    from dashgen.grafana import push as lib

    try:
        cfg = _config(config)
        with _client(url, token_file, ca_bundle, insecure, deadline) as client:
            plan = lib.prepare(client, dir, cfg, prune=prune)
    except DashgenError as exc:
        exc.exit_code = EXIT_ERROR  # 2 means "differs" here
        raise
    if fmt is ReviewFormat.text:
        _show_plan(plan, details=True)
    else:
        from dashgen.grafana.review import plan_review

        _print_review(plan_review(plan), fmt, cfg)
    if not plan.is_empty():
        raise typer.Exit(EXIT_CHANGES)


# --- rightsizing commands

_RS_FORMATS = ("table", "json", "csv")


@app.command()
def rightsize(
    dsn: Annotated[str | None, typer.Option("--dsn", help="PostgreSQL DSN (else DASHGEN_DSN, pricing.dsn).")] = None,
    experiment: Annotated[str | None, typer.Option("--experiment", "-e",
                                                   help="Compare this experiment's instances instead.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Only instances tagged KEY=VALUE (repeatable: "
                                                   "values of one key, any of them).")] = None,
    name: Annotated[list[str] | None, typer.Option("--name", help="Only instances named NAME (repeatable).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="table: show the first N rows (largest saving "
                                                               "first; 0 = all); json and csv write every row.")] = 50,
    config: ConfigOpt = None,
) -> None:
    """Recommend the right size (and a cheaper family) per instance, from the dashboard's own SQL."""
    from dashgen.errors import ConfigError
    from dashgen.rightsizing.queries import WRAPPED, terminal_notes, terminal_table, to_csv, to_json
    from dashgen.rightsizing.queries import rightsize as run_rightsize
    from dashgen.rightsizing.rule import EXPERIMENT_COLUMNS, RIGHTSIZING_COLUMNS

    if fmt not in _RS_FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(_RS_FORMATS)}, got {fmt!r}")
    rows = run_rightsize(_config(config), dsn=dsn, experiment=experiment, tag=tag or (), names=name or ())
    if fmt != "table":
        columns = EXPERIMENT_COLUMNS if experiment else RIGHTSIZING_COLUMNS
        typer.echo(to_json(rows) if fmt == "json" else to_csv(rows, columns), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    shown = rows if not limit else rows[:limit]  # a person reads the top of the list; a fleet is for csv/json
    headers, cells = terminal_table(shown, experiment=experiment is not None)
    table = Table(title=f"experiment {experiment}" if experiment else "rightsizing")
    for header in headers:
        table.add_column(header, no_wrap=header not in WRAPPED, min_width=8 if header == "Tags" else None)
    for line in cells:
        table.add_row(*line)
    console = Console(width=220)
    console.print(table)
    if len(shown) < len(rows):
        typer.echo(f"... {len(rows) - len(shown)} more rows (of {len(rows)}): --limit 0 shows all, --format csv or "
                   "json writes every row")
    if experiment is None:
        for note in terminal_notes(shown):
            console.print(note, highlight=False, soft_wrap=True)


# --- pricing store commands

DsnOpt = Annotated[
    str | None,
    typer.Option("--dsn", help="PostgreSQL DSN of the pricing store (default: $DASHGEN_DSN, then pricing.dsn); "
                               "the password comes from PGPASSWORD or ~/.pgpass."),
]
db_app = typer.Typer(help="The pricing store (PostgreSQL): migrations and grants.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _print_sync(result) -> None:  # noqa: ANN001 - sync.SyncResult
    regions = ", ".join(result.regions) or "no region"
    if result.skipped:  # another sync, which read AWS later, committed first
        typer.echo(result.skipped)
    else:
        typer.echo(f"synced {result.instances} instances ({result.running} running) from {regions} "
                   f"at {result.synced_at.isoformat(timespec='seconds')}")
    if result.prices or result.stale_prices:
        counts = [f"{n} from {source}" for source, n in sorted(result.prices.items())]
        counts += [f"{len(result.stale_prices)} stale (last known API price kept)"] if result.stale_prices else []
        typer.echo("prices: " + ", ".join(counts))
    for key in result.unknown_prices:
        typer.echo(f"price unknown: {key}")
    for key in result.stale_prices:
        typer.echo(f"price stale: {key}")
    if result.progress_points:
        typer.echo(f"progress: {result.progress_points} points")
    if result.instance_facts:
        typer.echo(f"instance facts: {result.instance_facts} types from DescribeInstanceTypes")
    if result.cloudwatch_calls:
        typer.echo(f"cloudwatch: {result.cloudwatch_calls} GetMetricData calls, {result.cloudwatch_metrics} metrics "
                   f"requested, {result.cloudwatch_datapoints} datapoints; {result.utilisation_rows} hourly rows")
    if result.cur_files:
        typer.echo(f"billed (CUR): {result.billed_rows} instance line-item spans from {result.cur_files} files")
    if result.kept_experiments:
        typer.echo(f"experiments kept, no longer in the config: {', '.join(result.kept_experiments)} "
                   "(`dashgen db forget-experiment NAME` removes one)")
    for message in result.warnings:
        _err(message)
    for region, message in sorted(result.failed_regions.items()):
        _err(f"error: region {region} not synced: {message}")


@app.command()
def sync(
    dsn: DsnOpt = None,
    region: Annotated[list[str] | None, typer.Option("--region", help="Region to read (repeatable; default: "
                                                                      "aws.regions).")] = None,
    loop: Annotated[bool, typer.Option("--loop", help="Keep syncing, every pricing.every (default 15m).")] = False,
    every: Annotated[str | None, typer.Option("--every", help="Keep syncing at this interval, e.g. 15m "
                                                              "(overrides pricing.every).")] = None,
    prices: Annotated[str | None, typer.Option("--prices", help="api (AWS Price List API) or bundled "
                                                                "(the us-east-1 snapshot).")] = None,
    cur: Annotated[str | None, typer.Option("--cur", help="s3://bucket/prefix of a CUR 2.0 / Data Exports "
                                                          "Parquet export: also store the billed cost "
                                                          "(needs the [cur] extra: pyarrow).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Fill the pricing store from AWS: EC2 inventory, running intervals, prices, experiment progress.
    Exit 0: all synced; 3: partly (a region or a read failed, the rest landed); 1: nothing synced."""
    from dashgen import sync as lib

    cfg = _config(config)
    if every is None and not loop:
        result = lib.sync(cfg, dsn=dsn, regions=region, prices=prices, cur=cur)
        _print_sync(result)
        if result.exit_code:
            raise typer.Exit(result.exit_code)
        return
    seconds = lib.parse_every(every) if every else lib.duration_seconds(cfg.sync_every, f"{cfg.source}: pricing.every")
    for rnd in lib.sync_loop(cfg, seconds, dsn=dsn, regions=region, prices=prices, cur=cur):
        if rnd.result is not None:
            _print_sync(rnd.result)
        else:
            _err(f"error: {rnd.error} (next try in {rnd.wait:.0f} s)" if rnd.wait else f"error: {rnd.error}")


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
            _err(f"error: {line}")
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
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
