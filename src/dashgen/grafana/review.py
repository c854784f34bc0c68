"""Pull-request review: the plan (`dashgen diff`) or a stale build (`dashgen build --check`) as data a reviewer
reads, rendered as Markdown (a PR comment, from the jinja2 template `review.md.j2`, overridable from the user's
templates folder) or JSON.

Per dashboard: created, updated, deleted, conflict (or, for a build check: stale, missing, unexpected); for an
update, the panels added, removed and changed by title, and what changed in each: query, threshold, unit,
layout, type, or other settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dashgen.grafana.compare import _leaves, _panels, normalize

# What changed in a panel, by the first key of the changed path (in this order in the output).
_ASPECTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("query", ("targets", "datasource", "transformations")),
    ("threshold", ("fieldConfig.defaults.thresholds",)),
    ("unit", ("fieldConfig.defaults.unit", "fieldConfig.defaults.decimals")),
    ("layout", ("gridPos", "collapsed")),
    ("type", ("type",)),
    ("title", ("title", "description")),
)


@dataclass(frozen=True)
class PanelChange:
    panel: str  # "panel 'CPUUtilization'" / "row 'EBS'" (numbered when a title repeats)
    change: str  # added | removed | changed
    aspects: tuple[str, ...] = ()  # for "changed": query, threshold, unit, layout, type, title, other


@dataclass(frozen=True)
class DashboardReview:
    uid: str
    title: str
    action: str  # create | update | delete | conflict | unchanged | stale | missing | unexpected
    file: str = ""
    reason: str = ""
    panels: tuple[PanelChange, ...] = ()
    variables: tuple[str, ...] = ()  # "+ $name", "- $name", "~ $name"
    settings: bool = False  # dashboard-level settings changed (time, refresh, tags...)


@dataclass(frozen=True)
class Review:
    kind: str  # diff | check
    dashboards: tuple[DashboardReview, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)  # e.g. "create folder dashgen"

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.dashboards:
            out[d.action] = out.get(d.action, 0) + 1
        return out

    @property
    def changed(self) -> list[DashboardReview]:
        return [d for d in self.dashboards if d.action != "unchanged"]


def _aspect(path: str) -> str:
    for name, prefixes in _ASPECTS:
        if any(path == p or path.startswith(p + ".") or path.startswith(p + "[") for p in prefixes):
            return name
    if path.startswith("fieldConfig.overrides"):
        return "unit" if ".unit" in path else "other"
    return "other"


def panel_changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[PanelChange, ...]:
    """The panels added, removed and changed between two dashboards (normalised first), by title."""
    old = dict(_panels(normalize(before)))
    new = dict(_panels(normalize(after)))
    out = [PanelChange(n, "added") for n in new if n not in old]
    out += [PanelChange(n, "removed") for n in old if n not in new]
    for name in new:
        if name in old and old[name] != new[name]:
            a, b = _leaves(old[name]), _leaves(new[name])
            paths = [k for k in set(a) | set(b) if a.get(k, object()) != b.get(k, object())]
            aspects = {_aspect(p) for p in paths}
            order = [n for n, _ in _ASPECTS] + ["other"]
            out.append(PanelChange(name, "changed", tuple(sorted(aspects, key=order.index))))
    return tuple(out)


def _variables(before: dict[str, Any], after: dict[str, Any]) -> tuple[str, ...]:
    def names(d: dict[str, Any]) -> dict[str, Any]:
        return {v.get("name"): v for v in (d.get("templating") or {}).get("list", []) if isinstance(v, dict)}

    a, b = names(normalize(before)), names(normalize(after))
    return tuple([f"+ ${n}" for n in b if n not in a] + [f"- ${n}" for n in a if n not in b]
                 + [f"~ ${n}" for n in b if n in a and a[n] != b[n]])


def dashboard_review(uid: str, title: str, action: str, before: dict[str, Any] | None,
                     after: dict[str, Any] | None, *, file: str = "", reason: str = "") -> DashboardReview:
    """One dashboard's entry; with both `before` and `after`, what changed in its panels and variables."""
    if before is None or after is None:
        return DashboardReview(uid, title, action, file, reason)
    rest_a = {k: v for k, v in normalize(before).items() if k not in ("panels", "templating")}
    rest_b = {k: v for k, v in normalize(after).items() if k not in ("panels", "templating")}
    return DashboardReview(uid, title, action, file, reason, panel_changes(before, after),
                           _variables(before, after), rest_a != rest_b)


def check_review(outputs: dict[str, str], out_dir: Path, stale: list[str], missing: list[str],
                 unexpected: list[str]) -> Review:
    """`dashgen build --check` as a review: each stale file with what the build would change in it."""
    import json

    entries = []
    for name in stale:
        committed, built = json.loads((out_dir / name).read_text(encoding="utf-8")), json.loads(outputs[name])
        entries.append(dashboard_review(built.get("uid", ""), built.get("title", name), "stale", committed, built,
                                        file=name, reason="the committed JSON differs from what dashgen build "
                                                          "writes"))
    for name in missing:
        built = json.loads(outputs[name])
        entries.append(DashboardReview(built.get("uid", ""), built.get("title", name), "missing", name,
                                       "built but not committed"))
    entries += [DashboardReview("", name, "unexpected", name, "committed but not built by dashgen")
                for name in unexpected]
    return Review("check", tuple(entries))


def to_json(review: Review) -> dict[str, Any]:
    """The JSON shape of `--format json` (pinned by tests/test_review.py)."""
    return {"kind": review.kind, "counts": review.counts, "notes": list(review.notes),
            "dashboards": [asdict(d) for d in review.dashboards]}


def to_markdown(review: Review, templates: Path | None = None) -> str:
    """The review as a pull-request comment (GitHub-flavoured Markdown, long lists in <details>)."""
    from dashgen.grafana.preview import _environment

    env = _environment(templates)
    return env.get_template("review.md.j2").render(review=review)


def plan_review(plan: Any) -> Review:
    """`dashgen diff --format markdown|json`: the push plan (`push.Plan`) as a review, each update with the
    panels it changes (Grafana's copy before, the built JSON after)."""
    entries = []
    for c in plan.changes:
        action = c.action.name.lower()
        before = c.live if action in ("update", "conflict") else None
        after = c.desired if before is not None else None
        entries.append(dashboard_review(c.uid, c.title, action, before, after,
                                        file=c.source if c.source != "grafana" else "", reason=c.reason))
    notes = ()
    if plan.create_folder:
        notes = (f"create folder {plan.folder_title} (uid {plan.folder_uid})",)
    return Review("diff", tuple(entries), notes)
