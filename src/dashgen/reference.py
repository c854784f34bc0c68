"""Reference pages generated from the code (never hand-copied), checked by `tests/test_docs.py`.

`python -m dashgen.reference` rewrites them; each generator is a pure function of the code.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from types import ModuleType
from typing import Any

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
    from dashgen.errors import EXIT_CODES

    lines += ["## Exit codes", "", "Every command exits with one of these codes; each means one thing "
              "(`dashgen.errors.EXIT_CODES`). The JSON each command prints with `--format json` (or `--json`) is "
              "described in [JSON output](json.md).", "", "| code | name | meaning |", "| --- | --- | --- |"]
    lines += [f"| {code} | {name} | {meaning} |" for code, (name, meaning) in sorted(EXIT_CODES.items())]
    return "\n".join(lines).rstrip() + "\n"


def _type(schema: dict) -> str:
    kind = schema.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    if "object" in kinds and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {_type(schema['additionalProperties'])}"
    return " or ".join(kinds)


def _fields(schema: dict, prefix: str) -> list[tuple[str, str, str]]:
    """(path, type, meaning) of every key below `schema`, arrays as `name[]`."""
    rows = []
    if schema.get("type") == "array":
        return _fields(schema["items"], f"{prefix}[]")
    for key, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}.{key}" if prefix else key
        rows.append((path, _type(sub) if sub.get("type") != "array" else f"array of {_type(sub['items'])}",
                     sub.get("description", "")))
        if sub.get("type") in ("object", "array"):
            rows += _fields(sub, path)
    return rows


def json_markdown() -> str:
    """docs/json.md: every JSON shape a command prints (`views.shapes()`), as a table of its keys and types."""
    from dashgen.views import shapes

    lines = ["# JSON output", "",
             "<!-- generated from src/dashgen/views.py by `python -m dashgen.reference`; checked by "
             "tests/test_docs.py -->", "",
             "Every command that reports prints JSON with `--format json` or its shorthand `--json`: one document "
             "on stdout (indented), messages and warnings on stderr as in the text output, the "
             "exit code as in [the table](cli.md#exit-codes). Each shape below is a JSON Schema in "
             "`dashgen.views.shapes()`, and tests check each command's real output against it: a key is only "
             "added or removed with a line in the changelog.", ""]
    for name, schema in shapes().items():
        lines += [f"## `{name}`", "", " ".join(schema.get("description", "").split()), ""]
        top = "an array of objects" if schema.get("type") == "array" else "an object"
        lines += [f"The document is {top}.", "", "| key | type | meaning |", "| --- | --- | --- |"]
        lines += [f"| `{path}` | {kind} | {meaning.replace('|', '/')} |" for path, kind, meaning in
                  _fields(schema, "")]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


_SAMPLE_KEY = re.compile(r'^(?:# ?)?("[^"]+"|[A-Za-z_][A-Za-z0-9_]*) = (.+)$')
_SAMPLE_TABLE = re.compile(r"^(?:# ?)?(\[\[?[a-z.]+\]\]?)")


def sample_keys() -> list[tuple[str, str, str, str]]:
    """(table, key, value shown, its comment) of every key `dashgen init` writes (`config.SAMPLE_CONFIG`, the one
    commented list of the keys): a commented-out key has no default value, only an example."""
    from dashgen.config import SAMPLE_CONFIG

    out: list[tuple[str, str, str, str]] = []
    table, notes, after_key = "", [], False
    for line in SAMPLE_CONFIG.splitlines():
        header, key = _SAMPLE_TABLE.match(line), _SAMPLE_KEY.match(line)
        if header:
            table, notes, after_key = header.group(1), [], False
        elif key:  # a comment block describes the keys under it; an inline comment, its own key
            value, _, inline = key.group(2).partition("  #")
            shown = f"example: `{value.strip()}`" if line.startswith("#") else f"`{value.strip()}`"
            out.append((table, key.group(1), shown, inline.strip().lstrip("# ") or " ".join(notes)))
            after_key = True
        elif line.startswith("#"):
            notes = [] if after_key else notes
            notes.append(line.lstrip("# ").strip())
            after_key = False
        else:
            notes, after_key = [], False
    return out


def config_markdown() -> str:
    """docs/config-reference.md: every key of dashgen.toml, its default and meaning, from `dashgen init`'s
    sample (tests/test_docs.py checks that the sample holds every key the config reader accepts, with the
    defaults of `Config`)."""
    lines = ["# Configuration reference", "",
             "<!-- generated from src/dashgen/config.py (SAMPLE_CONFIG) by `python -m dashgen.reference`; checked "
             "by tests/test_docs.py -->", "",
             "Every key of `dashgen.toml` (all optional; `dashgen init` writes this list, commented). What each one "
             "does and the checks on its value: [Configuration](configuration.md).", ""]
    table = None
    for name, key, shown, notes in sample_keys():
        if name != table:
            table = name
            lines += ["", f"## `{name}`", "", "| key | default (or example) | meaning |", "| --- | --- | --- |"]
        lines.append(f"| `{key}` | {shown} | {notes.replace('|', '/')} |")
    return "\n".join(lines[:6] + lines[7:]).rstrip() + "\n"


STORE_PAGE = "store-schema.md"
_TABLES = """
SELECT c.relname, c.relkind, coalesce(obj_description(c.oid, 'pg_class'), '')
FROM pg_class c WHERE c.relnamespace = 'dashgen'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
ORDER BY c.relkind IN ('v', 'm'), c.relname"""
_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attgenerated <> ''
FROM pg_attribute a WHERE a.attrelid = ('dashgen.' || quote_ident(%s))::regclass AND a.attnum > 0
  AND NOT a.attisdropped ORDER BY a.attnum"""
_KEYS = """
SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k
WHERE k.conrelid = ('dashgen.' || quote_ident(%s))::regclass AND k.contype IN ('p', 'u') ORDER BY k.contype, 1"""
_FUNCTIONS = """
SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_function_result(p.oid)
FROM pg_proc p WHERE p.pronamespace = 'dashgen'::regnamespace AND p.prokind = 'f' ORDER BY 1, 2"""


_BOOKKEEPING = "`migrate` itself (`store/db.py`: which migrations and definitions a store holds)"


def _defined_in(name: str, kinds: str) -> str:
    """The shipped SQL file that (last) creates `dashgen.<name>`: a re-applied definition file before the
    migrations, else the latest migration."""
    from dashgen.store.db import definition_files, migration_files

    pattern = re.compile(rf"CREATE\s+(?:OR\s+REPLACE\s+)?(?:{kinds})\s+(?:IF\s+NOT\s+EXISTS\s+)?"
                         rf"dashgen\.{re.escape(name)}\b", re.IGNORECASE)
    for folder, files in (("functions", definition_files()), ("migrations", migration_files()[::-1])):
        for file, text in files:
            if pattern.search(text):
                return f"`{folder}/{file}.sql`"
    return ""


def store_markdown(conn: Any) -> str:
    """docs/store-schema.md: the tables, views and functions of a store migrated to the shipped schema (read
    from PostgreSQL's catalog, with the shipped file that creates each); tests/test_docs.py regenerates it from a
    freshly migrated store and compares."""
    from dashgen.store.db import migration_files

    lines = ["# Store schema reference", "",
             "<!-- generated from a store migrated by `dashgen db migrate` (src/dashgen/store/migrations and "
             "functions) by `python -m dashgen.reference`; checked by tests/test_docs.py -->", "",
             "The PostgreSQL schema `dashgen` after every migration up to "
             f"`{migration_files()[-1][0]}`. Where each kind of SQL lives and how it changes: CONTRIBUTING.md. "
             "What the cost and rightsizing panels compute from it: [Cost and budget](cost.md), "
             "[Rightsizing](rightsizing.md).", "", "## Tables and views", ""]
    for name, kind, comment in conn.execute(_TABLES).fetchall():
        view = kind in ("v", "m")
        lines += [f"### `dashgen.{name}`" + (" (view)" if view else ""), "",
                  f"Created by {_defined_in(name, 'MATERIALIZED VIEW|VIEW' if view else 'TABLE') or _BOOKKEEPING}."
                  + (f" {comment}" if comment else "")]
        keys = [row[0] for row in conn.execute(_KEYS, (name,)).fetchall()]
        lines += ([f"Keys: {'; '.join(f'`{k}`' for k in keys)}."] if keys else []) + [""]
        lines += ["| column | type | null |", "| --- | --- | --- |"]
        for column, type_, notnull, generated in conn.execute(_COLUMNS, (name,)).fetchall():
            lines.append(f"| `{column}` | {type_}{' (generated)' if generated else ''} | "
                         f"{'' if notnull else 'yes'} |")
        lines.append("")
    lines += ["## Functions", "", "| function | returns | defined in |", "| --- | --- | --- |"]
    for name, args, result in conn.execute(_FUNCTIONS).fetchall():
        lines.append(f"| `dashgen.{name}({args})` | `{result}` | {_defined_in(name, 'FUNCTION')} |"
                     .replace("|", "\\|").replace("\\| ", "| ").replace(" \\|", " |"))
    return "\n".join(lines).rstrip() + "\n"


def _store_page() -> str | None:
    """The store page from a throw-away PostgreSQL (pgserver, a test dependency); None without it."""
    import tempfile

    try:
        import pgserver
        import psycopg
    except ImportError:
        return None
    from dashgen.store.db import migrate

    with tempfile.TemporaryDirectory(prefix="dashgen-ref-") as tmp:
        server = pgserver.get_server(tmp, cleanup_mode="stop")
        try:
            with psycopg.connect(server.get_uri()) as conn:
                migrate(conn)
                conn.commit()
                return store_markdown(conn)
        finally:
            server.cleanup()


PAGES = {"api.md": api_markdown, "cli.md": cli_markdown, "config-reference.md": config_markdown,
         "json.md": json_markdown,
         "img/gpu-training-preview.svg": example_preview_svg}


def main() -> None:
    for name, make in PAGES.items():
        (REPO_DOCS / name).write_text(make(), encoding="utf-8")
        print(f"wrote docs/{name}")
    store = _store_page()
    if store is None:
        print(f"docs/{STORE_PAGE} not regenerated: it needs pgserver (pip install -e '.[test]')")
    else:
        (REPO_DOCS / STORE_PAGE).write_text(store, encoding="utf-8")
        print(f"wrote docs/{STORE_PAGE}")


if __name__ == "__main__":
    main()
