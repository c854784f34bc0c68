"""Push: deliver `dashboards/*.json` to Grafana as a plan (pure data) and then apply it.

`load_desired` reads the built files; `read_live` fetches what Grafana has (one search, then the
dashboards that exist, concurrently); `plan(desired, live)` is a pure function returning a `Plan` whose
changes each carry one action of a small closed set; `apply(plan, client)` performs only the writes the
plan lists, with Grafana's optimistic locking, and returns what landed and what did not.

Ownership: a dashboard is dashgen's when it carries `config.managed_tag`. Each save stores the sha256 of
the content pushed under `dashgenPush` inside the dashboard JSON; a live dashboard whose content no
longer matches that hash (or that lost the record, as a save from the UI may do) was edited in Grafana,
and is a conflict unless `--force`.
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
import struct
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dashgen.config import Config
from dashgen.errors import ConfigError, DashgenError, GrafanaError, first_line
from dashgen.grafana.compare import RECORD_KEY, canonical, content_hash, describe, normalize, sha256, whole_float

if TYPE_CHECKING:
    from dashgen.grafana.client import GrafanaClient, GrafanaStatusError

DEFAULT_CONCURRENCY = 4


class Action(StrEnum):
    """What the plan does with one dashboard (or the folder); the value is the symbol printed."""

    CREATE = "+"
    UPDATE = "~"
    UNCHANGED = "="
    CONFLICT = "!"
    DELETE = "-"


@dataclass(frozen=True)
class Change:
    action: Action
    uid: str
    title: str
    source: str  # the file it comes from, or "grafana" for a prune
    desired: dict[str, Any] | None = field(default=None, repr=False)
    version: int | None = None  # the live version read; the save must match it
    reason: str = ""
    details: tuple[str, ...] = ()
    forceable: bool = True
    resource_version: str | None = None  # /apis: the metadata.resourceVersion read; the save must match it
    live: dict[str, Any] | None = field(default=None, repr=False, compare=False)  # what Grafana holds (for review)

    @property
    def writes(self) -> bool:
        return self.action in (Action.CREATE, Action.UPDATE, Action.DELETE)


@dataclass(frozen=True)
class Plan:
    folder_uid: str
    folder_title: str
    folder_parent: str | None
    create_folder: bool
    changes: tuple[Change, ...]

    def is_empty(self) -> bool:
        """True when Grafana already matches: nothing to create, update, delete or resolve."""
        return not self.create_folder and all(c.action is Action.UNCHANGED for c in self.changes)

    @property
    def conflicts(self) -> list[Change]:
        return [c for c in self.changes if c.action is Action.CONFLICT]

    @property
    def writes(self) -> list[Change]:
        return [c for c in self.changes if c.writes]

    def counts(self) -> dict[str, int]:
        out = {a.name.lower(): 0 for a in Action}
        for c in self.changes:
            out[c.action.name.lower()] += 1
        return out


@dataclass(frozen=True)
class Live:
    """What Grafana holds, as read before planning."""

    folder_exists: bool
    parent_exists: bool
    dashboards: dict[str, dict[str, Any]]  # uid -> {dashboard, meta} for desired uids that exist
    orphans: dict[str, dict[str, Any]] = field(default_factory=dict)  # managed uids not desired -> full


@dataclass
class ApplyResult:
    landed: list[tuple[Change, str]] = field(default_factory=list)
    conflicts: list[tuple[Change, str]] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)
    folder_created: bool = False

    @property
    def ok(self) -> bool:
        return not (self.conflicts or self.failed)


def iter_desired(directory: Path, config: Config) -> Iterator[tuple[str, dict[str, Any]]]:
    """The dashboards in `directory` as (file name, JSON), each checked for a uid and the managed tag."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: no such folder (run `dashgen build` first)")
    uids: dict[str, str] = {}
    try:  # read every file up front: cheap, and not slowed by the GIL once requests are in flight
        blobs = [(path, path.read_bytes()) for path in sorted(directory.glob("*.json"))]
    except OSError as exc:
        raise ConfigError(f"{exc.filename}: cannot read ({exc.strerror})") from None
    for path, blob in blobs:
        try:
            data = json.loads(blob, parse_float=whole_float)
        except ValueError as exc:
            raise ConfigError(f"{path}: not a readable JSON file ({exc})") from None
        uid = data.get("uid") if isinstance(data, dict) else None
        if not isinstance(uid, str) or not uid:
            raise ConfigError(f"{path}: uid: expected a dashboard uid, got {uid!r}")
        if config.managed_tag not in (data.get("tags") or []):
            raise ConfigError(f"{path}: tags: expected the managed tag {config.managed_tag!r} "
                              "(rebuild with `dashgen build`)")
        if uid in uids:
            raise ConfigError(f"{path}: uid {uid!r} is also used by {uids[uid]}")
        uids[uid] = path.name
        yield path.name, data
    if not uids:
        raise ConfigError(f"{directory}: no dashboard files (run `dashgen build` first)")


def load_desired(directory: Path, config: Config) -> dict[str, dict[str, Any]]:
    """Every dashboard in `directory` (file name -> JSON)."""
    return dict(iter_desired(directory, config))


def read_live(client: GrafanaClient, desired: Iterable[tuple[str, dict[str, Any]]], config: Config, *,
              prune: bool = False, concurrency: int = DEFAULT_CONCURRENCY) -> tuple[dict[str, dict[str, Any]], Live]:
    """Read what `plan` needs: health, the folder (and parent), one search, then the existing dashboards,
    fetched `concurrency` at a time while `desired` is still being read (it may be a lazy iterator)."""
    client.health()
    client.discover()
    folder_exists = client.get_folder(config.folder_uid) is not None
    parent = config.folder_parent_uid
    parent_exists = folder_exists or not parent or client.get_folder(parent) is not None
    existing = {h["uid"]: h for h in client.search(type="dash-db") if isinstance(h, dict) and "uid" in h}
    wanted: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        futures = {}
        for name, data in desired:
            wanted[name] = data
            if data["uid"] in existing:
                futures[data["uid"]] = pool.submit(client.get_dashboard, data["uid"])
        uids = {d["uid"] for d in wanted.values()}
        orphan_uids = sorted(u for u, h in existing.items()
                             if prune and u not in uids and config.managed_tag in (h.get("tags") or []))
        orphans = {u: pool.submit(client.get_dashboard, u) for u in orphan_uids}
        got = {u: _result(f, u) for u, f in futures.items()}
        gone = {u: _result(f, u) for u, f in orphans.items()}
    live = Live(
        folder_exists=folder_exists,
        parent_exists=parent_exists,
        dashboards={u: v for u, v in got.items() if v is not None},
        orphans={u: v for u, v in gone.items() if v is not None},
    )
    return wanted, live


def _result(future: Future[Any], uid: str) -> Any:
    """A read's result; an unexpected exception becomes one line naming the dashboard."""
    try:
        return future.result()
    except DashgenError:
        raise
    except Exception as exc:  # noqa: BLE001 - never a traceback for what a server sent
        raise GrafanaError(f"reading dashboard {uid!r}: {type(exc).__name__}: {first_line(exc)}") from None


def _edited(live: dict[str, Any]) -> bool:
    """True when the live content is not what dashgen last saved (or dashgen's record is gone)."""
    record = live.get(RECORD_KEY)
    return not (isinstance(record, dict) and record.get("sha256") == content_hash(live))


def _v2(stored: str) -> str:
    """Why a dashboard Grafana stores as schema v2 is left alone (Grafana 12.x/13 dynamic dashboards)."""
    return (f"stored in Grafana as dashboard schema {stored} (dynamic dashboards): dashgen writes the classic "
            "JSON model and will not convert it; delete it in Grafana or give the dashgen one another uid")


_PROVISIONED = ("Grafana loaded it from provisioning files, so the API cannot save or delete it: "
                "change the files that `provisioning/` points Grafana at instead")


def _change_for(name: str, want: dict[str, Any], got: dict[str, Any] | None, config: Config,
                force: bool) -> Change:
    uid, title = want["uid"], want.get("title", "")
    if got is None:
        return Change(Action.CREATE, uid, title, name, desired=want)
    live, meta = got.get("dashboard") or {}, got.get("meta") or {}
    version = meta.get("version", live.get("version"))
    rv = meta.get("resourceVersion")
    folder = meta.get("folderUid") or ""
    stored = str(meta.get("storedVersion") or "")
    if stored.startswith("v2"):
        return Change(Action.CONFLICT, uid, title, name, want, version, _v2(stored), forceable=False)
    if normalize(live) == normalize(want) and folder == config.folder_uid:
        return Change(Action.UNCHANGED, uid, title, name, desired=want, version=version, resource_version=rv)
    details = tuple(describe(live, want))
    if folder != config.folder_uid:
        details = (f"~ folder: {folder or 'General'!r} -> {config.folder_uid!r}", *details)
    if meta.get("provisioned"):
        return Change(Action.CONFLICT, uid, title, name, want, version, f"provisioned: {_PROVISIONED}",
                      details, forceable=False, resource_version=rv, live=live)
    if config.managed_tag not in (live.get("tags") or []):
        reason = f"exists in Grafana but is not managed by dashgen (no {config.managed_tag!r} tag)"
    elif _edited(live):
        reason = "changed in Grafana since dashgen last pushed it"
    else:
        return Change(Action.UPDATE, uid, title, name, want, version, details=details, resource_version=rv,
                          live=live)
    if force:
        return Change(Action.UPDATE, uid, title, name, want, version, f"--force: overwrites, {reason}", details,
                      resource_version=rv, live=live)
    return Change(Action.CONFLICT, uid, title, name, want, version, reason + " (use --force to overwrite)",
                  details, resource_version=rv, live=live)


def _orphan(uid: str, got: dict[str, Any], force: bool) -> Change:
    live, meta = got.get("dashboard") or {}, got.get("meta") or {}
    title = live.get("title", "")
    rv = meta.get("resourceVersion")
    stored = str(meta.get("storedVersion") or "")
    if stored.startswith("v2") and not force:
        return Change(Action.CONFLICT, uid, title, "grafana",
                      reason=f"no longer defined, but {_v2(stored).split(':')[0]}: not checked for edits "
                             "(use --force to delete)", resource_version=rv)
    if meta.get("provisioned"):
        return Change(Action.CONFLICT, uid, title, "grafana", reason=f"cannot prune: {_PROVISIONED}",
                      forceable=False)
    if not stored.startswith("v2") and _edited(live) and not force:
        return Change(Action.CONFLICT, uid, title, "grafana",
                      reason="no longer defined, but changed in Grafana since the last push (use --force to delete)",
                      resource_version=rv)
    return Change(Action.DELETE, uid, title, "grafana", version=meta.get("version"), reason="no longer defined",
                  resource_version=rv)


def plan(desired: dict[str, dict[str, Any]], live: Live, config: Config, *, force: bool = False) -> Plan:
    """Compare the built dashboards with Grafana: pure, no I/O."""
    parent = config.folder_parent_uid
    if not live.folder_exists and not live.parent_exists:
        raise GrafanaError(f"folder {config.folder_uid!r} would be created under parent folder {parent!r}, "
                           "which does not exist in Grafana: create it first or fix grafana.folder_parent_uid")
    changes = [_change_for(name, want, live.dashboards.get(want["uid"]), config, force)
               for name, want in sorted(desired.items())]
    changes += [_orphan(uid, got, force) for uid, got in sorted(live.orphans.items())]
    return Plan(config.folder_uid, config.folder_title, parent, not live.folder_exists, tuple(changes))


def git_commit(cwd: Path | None = None) -> str | None:
    """The short commit checked out at `cwd` (or a parent), with `-dirty` when a dashboard file (`*.json`)
    in `cwd` is untracked or differs from git's index; None outside git.

    Read from the repository's files (`HEAD`, the ref it names, `packed-refs`, `index`; a linked worktree's
    `.git` file and `commondir`), never by running `git`: `git status` in a repository one does not control
    runs its `core.fsmonitor` hook and clean filters. (Changes staged but not committed are not seen.)"""
    folder = Path(cwd or Path.cwd()).resolve()
    try:
        found = _find_gitdir(folder)
        if found is None:
            return None
        gitdir, worktree = found
        head = (gitdir / "HEAD").read_text(encoding="utf-8").strip()
        sha = _resolve_ref(gitdir, head)
        if not sha:
            return None
        dirty = _dirty(gitdir, worktree, folder)
    except (OSError, UnicodeDecodeError, ValueError, IndexError):
        return None
    return f"{sha[:12]}-dirty" if dirty else sha[:12]


def _dirty(gitdir: Path, worktree: Path, folder: Path) -> bool:
    index = _read_index(gitdir / "index")
    for path in sorted(folder.glob("*.json")):
        rel = path.relative_to(worktree).as_posix()
        blob = path.read_bytes()
        if index.get(rel) != hashlib.sha1(b"blob %d\0" % len(blob) + blob).hexdigest():  # noqa: S324 - git's id
            return True
    return False


def _read_index(path: Path) -> dict[str, str]:
    """git's index (versions 2 to 4): path -> blob sha1 of each stage-0 entry."""
    data = path.read_bytes() if path.is_file() else b""
    if len(data) < 12 or data[:4] != b"DIRC":
        return {}
    version, count = struct.unpack(">II", data[4:12])
    if version not in (2, 3, 4):
        return {}
    out: dict[str, str] = {}
    pos, previous = 12, b""
    for _ in range(count):
        start = pos
        sha = data[pos + 40:pos + 60].hex()
        flags = struct.unpack(">H", data[pos + 60:pos + 62])[0]
        pos += 62
        if version >= 3 and flags & 0x4000:
            pos += 2
        if version == 4:
            strip = data[pos] & 0x7F
            while data[pos] & 0x80:
                pos += 1
                strip = ((strip + 1) << 7) | (data[pos] & 0x7F)
            pos += 1
            end = data.index(b"\0", pos)
            name = previous[:len(previous) - strip] + data[pos:end]
            pos = end + 1
        else:
            end = data.index(b"\0", pos)
            name = data[pos:end]
            pos = start + ((end - start + 8) // 8) * 8
        previous = name
        if (flags >> 12) & 0x3 == 0:
            out[name.decode("utf-8", "surrogateescape")] = sha
    return out


_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def _find_gitdir(start: Path) -> tuple[Path, Path] | None:
    """(git directory, top of the working tree) for `start`, or None."""
    for folder in (start, *start.parents):
        dot = folder / ".git"
        if dot.is_dir():
            return dot, folder
        if dot.is_file():  # a linked worktree or submodule: "gitdir: <path>"
            text = dot.read_text(encoding="utf-8").strip()
            if text.startswith("gitdir:"):
                target = Path(text[7:].strip())
                return (target if target.is_absolute() else (folder / target).resolve()), folder
            return None
    return None


def _resolve_ref(gitdir: Path, head: str, depth: int = 0) -> str | None:
    if _SHA.match(head):
        return head
    if not head.startswith("ref:") or depth > 5:
        return None
    ref = head[4:].strip()
    if ".." in Path(ref).parts or not ref.startswith("refs/"):
        return None
    common = gitdir
    if (gitdir / "commondir").is_file():
        common = (gitdir / (gitdir / "commondir").read_text(encoding="utf-8").strip()).resolve()
    for base in (gitdir, common):
        loose = base / ref
        if loose.is_file():
            return _resolve_ref(gitdir, loose.read_text(encoding="utf-8").strip(), depth + 1)
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            sha, _, name = line.partition(" ")
            if name.strip() == ref and _SHA.match(sha):
                return sha
    return None  # an unborn branch


def version_message(commit: str | None) -> str:
    """The note Grafana shows in the dashboard's version history."""
    return f"dashgen push (git {commit})" if commit else "dashgen push (not from a git checkout)"


def _payload(change: Change) -> tuple[str, str]:
    """The dashboard JSON to save (canonical content plus dashgen's record of its hash), and that hash.
    (Serialised once: the record is appended to the canonical text; the client adds the version read.)"""
    assert change.desired is not None
    text = canonical(change.desired)
    digest = sha256(text)
    extra = json.dumps({RECORD_KEY: {"sha256": digest}}, separators=(",", ":"))
    return text[:-1] + ("," if len(text) > 2 else "") + extra[1:], digest


def _already_there(client: GrafanaClient, uid: str, digest: str, folder_uid: str) -> bool:
    """True when Grafana holds exactly the content `digest` names, in `folder_uid`: what a repeated save
    finds when an earlier attempt had landed (its reply lost to a dropped connection or a 5xx). The repeat
    itself is refused, never applied twice: grafana/grafana `pkg/services/dashboards/database/database.go`
    (`getExistingDashboardByIDOrUIDForUpdate`: a uid that exists with another version and `overwrite` false
    is `ErrDashboardVersionMismatch`, 412, for a create too: its version is 0); through `/apis`, 409."""
    try:
        got = client.get_dashboard(uid)
    except GrafanaError:
        return False
    if not got:
        return False
    live, meta = got.get("dashboard") or {}, got.get("meta") or {}
    record = live.get(RECORD_KEY)
    return (isinstance(record, dict) and record.get("sha256") == digest and content_hash(live) == digest
            and (meta.get("folderUid") or "") == folder_uid)


def _apply_one(change: Change, client: GrafanaClient, folder_uid: str, message: str) -> str:
    from dashgen.grafana.client import GrafanaStatusError

    if change.action is Action.DELETE:
        client.delete_dashboard(change.uid, resource_version=change.resource_version)
        return "deleted"
    text, digest = _payload(change)
    update = change.action is Action.UPDATE
    try:
        saved = client.save_dashboard(text, folder_uid, message, uid=change.uid,
                                      version=change.version if update else None,
                                      resource_version=change.resource_version if update else None)
    except GrafanaStatusError as exc:
        if exc.status in (409, 412) and _already_there(client, change.uid, digest, folder_uid):
            return "already there (a repeated save found its own content)"
        raise
    return f"version {saved.get('version')}"


def _is_conflict(exc: GrafanaStatusError) -> bool:
    """Grafana's optimistic locking refused the save: legacy 412 version-mismatch, or /apis 409
    Conflict (stale resourceVersion) / AlreadyExists (created meanwhile)."""
    return (exc.status == 412 and exc.code == "version-mismatch") or (
        exc.status == 409 and exc.code in ("Conflict", "AlreadyExists"))


def apply(plan: Plan, client: GrafanaClient, *, message: str, concurrency: int = DEFAULT_CONCURRENCY,
          on_done: Callable[[Change, str], None] | None = None) -> ApplyResult:
    """Perform the plan's writes (folder first), at most `concurrency` at a time; never raises for one
    dashboard: each lands, conflicts (Grafana's 412/409) or fails, and the result says which."""
    from dashgen.grafana.client import GrafanaStatusError

    result = ApplyResult()
    result.conflicts = [(c, c.reason) for c in plan.conflicts]
    todo = plan.writes
    if plan.create_folder:
        try:
            client.create_folder(plan.folder_uid, plan.folder_title, plan.folder_parent)
            result.folder_created = True
        except GrafanaError as exc:
            # A repeated create whose first attempt had landed (or a folder made meanwhile) is fine.
            exists = isinstance(exc, GrafanaStatusError) and exc.status in (409, 412) and \
                _folder_exists(client, plan.folder_uid)
            if not exists:
                result.failed = [(c, f"not attempted: folder {plan.folder_uid!r} could not be created: {exc}")
                                 for c in todo]
                return result
            result.folder_created = True

    def run(change: Change) -> tuple[Change, str, str]:
        try:
            return change, "landed", _apply_one(change, client, plan.folder_uid, message)
        except GrafanaStatusError as exc:
            if _is_conflict(exc):
                return change, "conflict", (f"changed in Grafana while pushing ({exc.status} {exc.code}): "
                                            "run push again to see the difference")
            return change, "failed", str(exc)
        except GrafanaError as exc:
            return change, "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - one dashboard's bug must not lose the others' report
            return change, "failed", f"unexpected error: {type(exc).__name__}: {first_line(exc)}"

    with _bulk_io(), ThreadPoolExecutor(max(1, concurrency)) as pool:
        for change, outcome, note in pool.map(run, todo):
            {"landed": result.landed, "conflict": result.conflicts, "failed": result.failed}[outcome].append(
                (change, note))
            if on_done is not None:
                with suppress(Exception):  # a progress display must not lose the report
                    on_done(change, outcome)
    return result


def _folder_exists(client: GrafanaClient, uid: str) -> bool:
    try:
        return client.get_folder(uid) is not None
    except GrafanaError:
        return False


def prepare(client: GrafanaClient, directory: Path, config: Config, *, force: bool = False,
            prune: bool = False, concurrency: int = DEFAULT_CONCURRENCY) -> Plan:
    """Read the files and Grafana, and return the plan (what `push --dry-run` and `diff` show)."""
    with _bulk_io():
        desired, live = read_live(client, iter_desired(directory, config), config, prune=prune,
                                  concurrency=concurrency)
    return plan(desired, live, config, force=force)


@contextmanager
def _bulk_io() -> Iterator[None]:
    """Tune CPython for many requests in flight beside JSON work, and restore it after:
    pause the cyclic GC (it rescans an ever larger heap of parsed dashboards, a third of the CPU time; JSON
    data has no cycles), and hand the GIL over every 0.5 ms instead of 5 ms, so that a thread whose reply
    has arrived does not wait behind one parsing a dashboard."""
    was_enabled, interval = gc.isenabled(), sys.getswitchinterval()
    gc.disable()
    sys.setswitchinterval(min(interval, 0.0005))
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        if was_enabled:
            gc.enable()
