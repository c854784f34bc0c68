"""Dashboard definitions: the built-in ones and the user's own `*.dashboard.py` files, one list for the build.

A definition is a plain Python module with `build(config)` returning a grafanalib `Dashboard` (or the dashboard
as plain JSON data), and optionally `UID` and `TITLE`. The built-in ones live in `dashgen.dashboards`; a user's
live in their repository beside the generated JSON (grafanalib's convention): `dashboards/<name>.dashboard.py`
builds `dashboards/<name>.json`. Which files are read is `[build] sources` (a glob, relative to the folder dashgen
runs in); which built-ins are built is `[build] builtins`.

Definitions are the user's own code and run as ordinary Python when `dashgen build` (or `new`, `preview` of a
fresh build) loads them, never on `push`, `diff` or `validate`, which read the built JSON only. Every failure in
one (import error, exception, wrong return type, duplicate uid or file name, a uid taken by a built-in) is one
`DefinitionError` naming the file and line; nothing is written then.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from dashgen.config import Config
from dashgen.errors import DashgenError

BUILTINS: tuple[str, ...] = Config.build_builtins  # in build order
SUFFIX = ".dashboard.py"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class DefinitionError(DashgenError):
    """A dashboard definition failed to load or build: names the file (and line)."""


@dataclass(frozen=True)
class Definition:
    """One dashboard to build: where it comes from, the file it builds and how."""

    name: str  # the output file's stem: dashboards/<name>.json
    origin: str  # "dashgen.dashboards.cost" for a built-in, the file's path for the user's
    builtin: bool
    uid: str | None
    title: str | None
    build: Callable[[Config], Any]

    @property
    def file_name(self) -> str:
        return f"{self.name}.json"


def _builtin(name: str) -> Definition:
    module = importlib.import_module(f"dashgen.dashboards.{name}")
    return Definition(module.SLUG, module.__name__, True, f"dashgen-{module.SLUG}", module.TITLE, module.build)


def _where(path: Path, exc: BaseException) -> str:
    """`path:line` of the deepest frame of `exc` inside the user's file (or the file alone)."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f"{path}:{exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path.resolve()]
    return f"{path}:{frames[-1].lineno}" if frames else str(path)


def _fail(path: Path, exc: BaseException, doing: str) -> DefinitionError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    what = type(exc).__name__ + (f": {detail}" if detail else "")
    return DefinitionError(f"{_where(path, exc)}: {doing}: {what}")


def _load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"dashgen_definition_{name.replace('-', '_')}", path.resolve())
    if spec is None or spec.loader is None:
        raise DefinitionError(f"{path}: cannot load as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: any failure is one line naming the file and line
        raise _fail(path, exc, "cannot import the definition") from None
    finally:
        sys.modules.pop(spec.name, None)
    return module


def load_definition_file(path: Path) -> Definition:
    """One user definition file as a `Definition` (imported: it runs the module's top level)."""
    name = path.name[: -len(SUFFIX)]
    if not _NAME_RE.match(name):
        raise DefinitionError(f"{path}: expected a file name like my-dashboard{SUFFIX} "
                              "(lower-case letters, digits, - or _, at most 40)")
    module = _load_module(path, name)
    build = getattr(module, "build", None)
    if not callable(build):
        raise DefinitionError(f"{path}: expected a function build(config) returning a Dashboard")
    uid, title = getattr(module, "UID", None), getattr(module, "TITLE", None)
    for key, value in (("UID", uid), ("TITLE", title)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise DefinitionError(f"{path}: {key}: expected a non-empty string, got {value!r}")
    return Definition(name, str(path), False, uid, title, build)


def user_definition_files(config: Config, root: Path | None = None) -> list[Path]:
    """The user's definition files matched by `[build] sources`, in name order."""
    root = Path.cwd() if root is None else root
    return sorted(p for p in root.glob(config.build_sources) if p.is_file() and p.name.endswith(SUFFIX))


def load_definitions(config: Config, root: Path | None = None) -> list[Definition]:
    """The built-ins `[build] builtins` keeps, then the user's definitions; file names unique."""
    defs = [_builtin(name) for name in config.build_builtins]
    defs += [load_definition_file(path) for path in user_definition_files(config, root)]
    seen: dict[str, Definition] = {}
    for d in defs:
        if d.file_name in seen:
            raise DefinitionError(f"{d.origin}: builds {d.file_name}, which {seen[d.file_name].origin} builds too")
        seen[d.file_name] = d
    return defs


def build_definition(defn: Definition, config: Config) -> dict[str, Any]:
    """Run one definition and render it to current Grafana JSON, with its uid, title and the managed tag."""
    from dashgen.grafana.render import render

    try:
        made = defn.build(config)
    except Exception as exc:  # the user's code
        if defn.builtin:
            raise
        raise _fail(Path(defn.origin), exc, "build(config) failed") from None
    if isinstance(made, dict):
        data = render(made)
    else:
        import grafanalib.core as G

        if not isinstance(made, G.Dashboard):
            raise DefinitionError(f"{defn.origin}: build(config) returned {type(made).__name__}, "
                                  "expected a grafanalib Dashboard or a dict of dashboard JSON")
        data = render(made)
    uid = data.get("uid") or defn.uid or f"dashgen-{defn.name}"
    if defn.uid and data.get("uid") and data["uid"] != defn.uid:
        raise DefinitionError(f"{defn.origin}: UID {defn.uid!r} differs from the dashboard's uid {data['uid']!r}")
    data["uid"] = uid
    if defn.title and not data.get("title"):
        data["title"] = defn.title
    if not data.get("title"):
        raise DefinitionError(f"{defn.origin}: the dashboard has no title (set TITLE or the Dashboard's title)")
    tags = data.get("tags") or []
    if config.managed_tag not in tags:
        data["tags"] = sorted({*tags, config.managed_tag})
    return data


SCAFFOLDS: tuple[str, ...] = ("blank", "performance", "cost", "rightsizing")


def new_definition(name: str, *, start: str = "blank", config: Config | None = None, root: Path | None = None,
                   force: bool = False) -> list[Path]:
    """`dashgen new`: write `<sources folder>/<name>.dashboard.py` (from a shipped scaffold) and
    `tests/test_<name>_dashboard.py`; both build and pass at once. Refuses to overwrite unless `force`."""
    import jinja2

    from dashgen.fsutil import atomic_write_text

    config = config or Config()
    root = Path.cwd() if root is None else root
    if not _NAME_RE.match(name):
        raise DefinitionError(f"{name!r}: expected a name of lower-case letters, digits, - or _ (at most 40), "
                              "starting with a letter or digit")
    if start not in SCAFFOLDS:
        raise DefinitionError(f"--from: expected one of {', '.join(SCAFFOLDS)}, got {start!r}")
    folder = Path(config.build_sources).parent
    definition = folder / f"{name}{SUFFIX}"
    test = Path("tests") / f"test_{name.replace('-', '_')}_dashboard.py"
    if name in config.build_builtins or f"dashgen-{name}" in {f"dashgen-{b}" for b in BUILTINS}:
        raise DefinitionError(f"{name!r}: the name of a built-in dashboard; choose another")
    for path in (definition, test):
        if (root / path).exists() and not force:
            raise DefinitionError(f"{root / path}: already exists (use --force to overwrite)")
    env = jinja2.Environment(loader=jinja2.PackageLoader("dashgen", "templates/new"), keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined, autoescape=False)
    facts = {"name": name, "uid": name, "title": name.replace("-", " ").replace("_", " ").capitalize(),
             "definition": definition.as_posix()}
    atomic_write_text(root / definition, env.get_template(f"{start}.py.j2").render(**facts))
    atomic_write_text(root / test, env.get_template("test.py.j2").render(**facts))
    return [root / definition, root / test]
