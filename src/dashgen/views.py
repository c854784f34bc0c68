"""The views: each command's result rendered for a person (a table, aligned lines) or a program (JSON, CSV).

A command's library function returns a value (a plan, a `SyncResult`, rows); `cli.py` hands it to one function
here, as sqlite-utils and Terraform's views do. Every JSON shape a command prints is described by a JSON Schema
in `SHAPES` (one place: docs/json.md is generated from it, tests/test_cli_json.py validates real output against
it). Nothing here imports more than the view it draws needs: rich is imported by the table views only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer


class Format(StrEnum):
    """What a reporting command prints: text (or table) for a person, json or csv for a program."""

    text = "text"
    table = "table"
    markdown = "markdown"
    json = "json"
    csv = "csv"


class TextOrJson(StrEnum):
    text = "text"
    json = "json"


class ReviewFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


class TableFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def out(text: str = "", *, nl: bool = True) -> None:
    typer.echo(text, nl=nl)


def err(text: str) -> None:
    typer.echo(text, err=True)


def emit_json(value: Any, *, lines: bool = False) -> None:
    """`value` as JSON on stdout: indented with sorted keys (stable for diffs), or one line (`lines`: JSON Lines,
    for a stream of results such as `sync --loop`)."""
    out(json.dumps(value, sort_keys=True, default=str, separators=(",", ":")) if lines
        else json.dumps(value, indent=2, sort_keys=True, default=str))


def emit_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out(buf.getvalue(), nl=False)


# ------------------------------------------------------------------------------------------- JSON shapes

_NUM = {"type": "number"}
_INT = {"type": "integer"}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}


def _opt(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


def _obj(description: str = "", /, **props: Any) -> dict[str, Any]:
    """A closed object: every key listed is required, no other key allowed (a new key is a schema change)."""
    schema = {"type": "object", "properties": props, "required": sorted(props), "additionalProperties": False}
    return {"description": description, **schema} if description else schema


def _arr(items: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"type": "array", "items": items, **({"description": description} if description else {})}


def _doc(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {**schema, "description": description}


_REVIEW = _obj(
    "a plan (`diff`, `push --dry-run`) or a check (`build --check`) as a review.",
    kind=_doc(_STR, "diff (a push plan) or check (generated files against the build)"),
    counts=_doc({"type": "object", "additionalProperties": _INT}, "dashboards per action"),
    notes=_arr(_STR, "e.g. the folder the push creates"),
    dashboards=_arr(_obj(
        uid=_STR, title=_STR,
        action=_doc(_STR, "create, update, delete, conflict, unchanged; check: stale, missing, unexpected"),
        file=_doc(_STR, "the built file (empty for a dashboard only Grafana holds)"),
        reason=_STR,
        panels=_arr(_obj(panel=_STR, change=_doc(_STR, "added, removed or changed"),
                         aspects=_arr(_STR, "query, threshold, unit, layout, type, title, other"))),
        variables=_arr(_STR, '"+ $name", "- $name", "~ $name"'),
        settings=_doc(_BOOL, "dashboard-level settings changed (time, refresh, tags...)"),
    )),
)

_ROW_TYPES = {"text": _STR, "time": _STR, "int": _INT}


def _rows(columns: Mapping[str, tuple[str, str]], description: str) -> dict[str, Any]:
    props = {key: _doc(_opt(_ROW_TYPES.get(kind, _NUM)), label) for key, (label, kind) in columns.items()}
    return _arr({"type": "object", "properties": props, "required": sorted(props)}, description)


def shapes() -> dict[str, dict[str, Any]]:
    """Every JSON shape a command prints, as a JSON Schema (draft 2020-12), keyed by the command that prints it."""
    from dashgen.rightsizing.rule import EXPERIMENT_COLUMNS, RIGHTSIZING_COLUMNS

    landed = _arr(_obj(uid=_STR, action=_doc(_STR, "create, update or delete"), note=_STR))
    return {
        "metrics": _arr(_obj(
            name=_STR, group=_doc(_STR, "the group's key"), group_title=_STR,
            unit=_doc(_STR, "Grafana unit id"), statistic=_STR,
            threshold=_doc(_opt(_NUM), "the configured threshold, else the catalogue's (null: none)"),
            direction=_doc(_STR, "above: red above the threshold; below: red under it"),
            applies_to=_doc(_STR, "which instances emit it"), description=_STR,
        ), "`dashgen metrics --format json`: the metric catalogue, one object per metric."),
        "validate": _obj(
            "`dashgen validate --format json`: each file and its problems (exit 1 when any is invalid).",
            files=_arr(_obj(path=_STR, ok=_BOOL, problems=_arr(_obj(where=_STR, message=_STR)))),
            invalid=_doc(_INT, "files with at least one problem"),
        ),
        "review": _doc(_REVIEW, "`dashgen diff --format json`, `dashgen push --dry-run --format json` and "
                                "`dashgen build --check --format json`: " + _REVIEW["description"]),
        "push": _obj(
            "`dashgen push --format json`: the plan, then what landed (exit 1 on any conflict or failure).",
            plan=_REVIEW,
            landed=landed, conflicts=_doc(landed, "not pushed: edited in Grafana (--force overwrites)"),
            failed=_doc(landed, "not pushed: Grafana refused"),
            folder_created=_BOOL, ok=_BOOL,
        ),
        "sync": _obj(
            "`dashgen sync --format json`: what one sync did (with --loop, one line per round: JSON Lines).",
            synced_at=_doc(_STR, "ISO 8601, UTC"),
            regions=_arr(_STR, "regions synced"),
            failed_regions=_doc({"type": "object", "additionalProperties": _STR}, "region -> why"),
            instances=_INT, running=_INT, volumes=_INT,
            prices=_doc({"type": "object", "additionalProperties": _INT}, "source -> prices stored"),
            unknown_prices=_arr(_STR), stale_prices=_arr(_STR),
            progress_points=_INT, utilisation_rows=_INT, instance_facts=_INT,
            cloudwatch_calls=_doc(_INT, "GetMetricData calls"),
            cloudwatch_metrics=_doc(_INT, "metrics requested (what CloudWatch bills, per 1,000)"),
            cloudwatch_datapoints=_INT, cur_files=_INT, billed_rows=_INT,
            warnings=_arr(_STR), unsynced=_arr(_STR, "what was asked for but not read"),
            kept_experiments=_arr(_STR), migrations=_arr(_STR),
            skipped=_doc(_opt(_STR), "why nothing was written (a newer sync committed first)"),
            ok=_BOOL, exit_code=_doc(_INT, "0 ok, 1 nothing landed, 3 partly synced"),
        ),
        "rightsize": _rows(RIGHTSIZING_COLUMNS, "`dashgen rightsize --format json`: one object per instance."),
        "rightsize --experiment": _rows(EXPERIMENT_COLUMNS, "`dashgen rightsize --experiment NAME --format json`: "
                                                             "one object per member instance."),
    }


# ------------------------------------------------------------------------------------------- the views

def metrics(rows: Sequence[Mapping[str, Any]], fmt: Format) -> None:
    """`dashgen metrics`: the catalogue (rows as `shapes()["metrics"]` describes)."""
    if fmt == Format.json:
        emit_json(list(rows))
        return
    if fmt == Format.csv:
        emit_csv(rows, list(shapes()["metrics"]["items"]["properties"]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("metric", "group", "unit", "statistic", "threshold", "emitted by")
    for m in rows:
        value = m["threshold"]
        th = "" if value is None else f"{'>' if m['direction'] == 'above' else '<'} {value:g}"
        table.add_row(m["name"], m["group_title"], m["unit"], m["statistic"], th, m["applies_to"])
    Console(width=160).print(table)


def validation(results: Sequence[tuple[Path, Sequence[Any]]], fmt: Format) -> None:
    """`dashgen validate`: each file with its problems (`validate.Problem`)."""
    if fmt == Format.json:
        emit_json({"files": [{"path": str(path), "ok": not problems,
                              "problems": [{"where": p.where, "message": p.message} for p in problems]}
                             for path, problems in results],
                   "invalid": sum(bool(problems) for _, problems in results)})
        return
    for path, problems in results:
        for problem in problems:
            err(str(problem))
        if not problems:
            out(f"ok: {path}")
    bad = sum(bool(problems) for _, problems in results)
    if bad:
        err(f"{bad} of {len(results)} dashboards invalid")


def files(parts: Sequence[tuple[Path, Any]], *, check: bool, fix: str) -> None:
    """What `build`/`provision` wrote per folder or, with `check`, each stale, missing or unexpected file
    (`outputs.OutputsResult` per folder)."""
    if check:
        for folder, part in parts:
            for label, names in (("stale", part.stale), ("missing", part.missing), ("unexpected", part.unexpected)):
                for name in names:
                    err(f"{label}: {folder / name}")
        if not all(part.clean for _, part in parts):
            err(f"generated files are out of date: run `{fix}`")
            return
        folders = " and ".join(str(folder) for folder, _ in parts)
        out(f"{sum(len(part.unchanged) for _, part in parts)} files up to date in {folders}")
        return
    for folder, part in parts:
        for name in part.written:
            out(f"wrote {folder / name}")
    written, unchanged = (sum(len(getattr(part, key)) for _, part in parts) for key in ("written", "unchanged"))
    out(f"{written} written, {unchanged} unchanged")


def review(value: Any, fmt: Format, templates: Path | None = None) -> None:
    """A `review.Review` (a check or a plan) as markdown (a pull-request comment) or JSON."""
    from dashgen.grafana import review as lib

    if fmt == Format.json:
        emit_json(lib.to_json(value))
    else:
        out(lib.to_markdown(value, templates), nl=False)


def plan_json(plan: Any) -> dict[str, Any]:
    """A push plan (`push.Plan`) as `shapes()["review"]`."""
    from dashgen.grafana import review as lib

    return lib.to_json(lib.plan_review(plan))


_COLOURS = {"+": "green", "~": "yellow", "=": "white", "!": "red", "-": "red"}


def plan(value: Any, *, details: bool) -> None:
    """The plan as aligned plain lines (fast for hundreds of dashboards), coloured on a terminal."""
    rows = [("+", "create folder", value.folder_uid, value.folder_title,
             f"under {value.folder_parent!r}" if value.folder_parent else "")] if value.create_folder else []
    rows += [(c.action.value, c.action.name.lower(), c.uid, c.title, c.reason)
             for c in value.changes if details or c.action.value != "="]
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(4)]
    lines = [" ".join([typer.style(r[0], fg=_COLOURS[r[0]], bold=True),
                       *(f"{v:<{w}}" for v, w in zip(r[1:4], widths[1:], strict=True)), r[4]]).rstrip()
             for r in rows]
    for c in value.changes:
        if c.details and (details or c.action.value == "!"):
            lines.append(typer.style(f"{c.action.value} {c.uid} ({c.source}):", fg=_COLOURS[c.action.value]))
            lines.extend(f"    {line}" for line in c.details)
    n = value.counts()
    lines.append(f"plan: {n['create']} to create, {n['update']} to update, {n['delete']} to delete, "
                 f"{n['unchanged']} unchanged, {n['conflict']} conflicts")
    out("\n".join(lines))


def pushed(result: Any, planned: Any, fmt: Format) -> None:
    """What `push` landed (`push.ApplyResult`), after the plan."""
    def items(pairs: Iterable[tuple[Any, str]]) -> list[dict[str, str]]:
        return [{"uid": c.uid, "action": c.action.name.lower(), "note": note} for c, note in pairs]

    if fmt == Format.json:
        emit_json({"plan": plan_json(planned), "landed": items(result.landed), "conflicts": items(result.conflicts),
                   "failed": items(result.failed), "folder_created": result.folder_created, "ok": result.ok})
        return
    if result.landed:
        out("\n".join(f"{c.action.value} {c.uid}: {note}" for c, note in result.landed))
    for c, note in (*result.conflicts, *result.failed):
        err(f"not pushed: {c.uid}: {note}")
    out(f"{len(result.landed)} landed, {len(result.conflicts)} conflicts, {len(result.failed)} failed"
        f"{' (folder created)' if result.folder_created else ''}")


def sync_json(result: Any) -> dict[str, Any]:
    """A `sync.SyncResult` as `shapes()["sync"]`."""
    data = asdict(result)
    data["synced_at"] = result.synced_at.isoformat(timespec="seconds")
    return {**data, "ok": result.ok, "exit_code": result.exit_code}


def synced(result: Any, fmt: Format, *, lines: bool = False) -> None:
    """What one sync did (`sync.SyncResult`): counts on stdout, warnings and failed regions on stderr (also in
    JSON, so a program reading stdout misses none and a person watching stderr sees them)."""
    if fmt == Format.json:
        emit_json(sync_json(result), lines=lines)
    else:
        regions = ", ".join(result.regions) or "no region"
        if result.skipped:  # another sync, which read AWS later, committed first
            out(result.skipped)
        else:
            out(f"synced {result.instances} instances ({result.running} running) from {regions} "
                f"at {result.synced_at.isoformat(timespec='seconds')}")
        if result.prices or result.stale_prices:
            counts = [f"{n} from {source}" for source, n in sorted(result.prices.items())]
            counts += [f"{len(result.stale_prices)} stale (last known API price kept)"] if result.stale_prices else []
            out("prices: " + ", ".join(counts))
        for key in result.unknown_prices:
            out(f"price unknown: {key}")
        for key in result.stale_prices:
            out(f"price stale: {key}")
        if result.progress_points:
            out(f"progress: {result.progress_points} points")
        if result.instance_facts:
            out(f"instance facts: {result.instance_facts} types from DescribeInstanceTypes")
        if result.cloudwatch_calls:
            out(f"cloudwatch: {result.cloudwatch_calls} GetMetricData calls, {result.cloudwatch_metrics} metrics "
                f"requested, {result.cloudwatch_datapoints} datapoints; {result.utilisation_rows} hourly rows")
        if result.cur_files:
            out(f"billed (CUR): {result.billed_rows} instance line-item spans from {result.cur_files} files")
        if result.kept_experiments:
            out(f"experiments kept, no longer in the config: {', '.join(result.kept_experiments)} "
                "(`dashgen db forget-experiment NAME` removes one)")
    for message in result.warnings:
        err(message)
    for region, message in sorted(result.failed_regions.items()):
        err(f"error: region {region} not synced: {message}")


def rightsizing(rows: Sequence[Mapping[str, Any]], fmt: Format, *, experiment: str | None, limit: int) -> None:
    """`dashgen rightsize`: every row as JSON or CSV; the table shows the first `limit` (0: all) and says how
    many more there are (a person reads the top of the list; a fleet is for csv or json)."""
    from dashgen.rightsizing.queries import WRAPPED, terminal_notes, terminal_table, to_csv, to_json
    from dashgen.rightsizing.rule import EXPERIMENT_COLUMNS, RIGHTSIZING_COLUMNS

    if fmt != Format.table:
        out(to_json(rows) if fmt == Format.json else to_csv(rows, EXPERIMENT_COLUMNS if experiment
                                                               else RIGHTSIZING_COLUMNS), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    shown = rows if not limit else rows[:limit]
    headers, cells = terminal_table(shown, experiment=experiment is not None)
    table = Table(title=f"experiment {experiment}" if experiment else "rightsizing")
    for header in headers:
        table.add_column(header, no_wrap=header not in WRAPPED, min_width=8 if header == "Tags" else None)
    for line in cells:
        table.add_row(*line)
    console = Console(width=220)
    console.print(table)
    if len(shown) < len(rows):
        out(f"... {len(rows) - len(shown)} more rows (of {len(rows)}): --limit 0 shows all, --format csv or "
            "json writes every row")
    if experiment is None:
        for note in terminal_notes(shown):
            console.print(note, highlight=False, soft_wrap=True)
