"""Normalising dashboards for comparison, and describing how two of them differ in words a person reads.

`normalize` strips what Grafana owns (`id`, `version`, `iteration`) and dashgen's own push record, so two
dashboards compare equal exactly when a person would see the same thing. `describe` names panels by their
titles ("panel 'CPU': targets[0].statistic: 'Average' -> 'Maximum'"), variables by name, the rest by key.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

SERVER_OWNED = ("id", "version", "iteration")
RECORD_KEY = "dashgenPush"  # where push keeps the hash of what it saved, inside the dashboard JSON
MAX_LINES = 40


def normalize(dashboard: dict[str, Any]) -> dict[str, Any]:
    """A copy without server-owned fields or dashgen's push record."""
    return {k: v for k, v in dashboard.items() if k not in SERVER_OWNED and k != RECORD_KEY}


def _numbers(value: Any) -> Any:
    """Whole floats as ints, as Grafana (Go) writes them back: 80.0 is stored and returned as 80."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


def whole_float(text: str) -> float | int:
    """`parse_float` for json.loads: numbers as Grafana returns them (80.0 -> 80)."""
    value = float(text)
    return int(value) if value.is_integer() else value


# A whole float serialised by Python (80.0, 1e+21); a match may also be inside a string: then we just
# take the slow, always-right path.
_WHOLE_FLOAT = re.compile(r"\d\.0[,\]}]|\de\+?\d+[,\]}]")


def canonical(dashboard: dict[str, Any]) -> str:
    """The normalised dashboard as canonical JSON (sorted keys, compact, whole numbers without `.0`)."""
    text = json.dumps(normalize(dashboard), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if _WHOLE_FLOAT.search(text):
        text = json.dumps(_numbers(normalize(dashboard)), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False)
    return text


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash(dashboard: dict[str, Any]) -> str:
    """sha256 of `canonical(dashboard)`: the same before and after a round trip through Grafana."""
    return sha256(canonical(dashboard))


def _panels(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every panel (rows' nested panels too) keyed by a readable, unique name."""
    out: list[tuple[str, dict[str, Any]]] = []
    seen: dict[str, int] = {}

    def walk(panels: list[Any]) -> None:
        for p in panels:
            if not isinstance(p, dict):
                continue
            title = p.get("title") or f"#{p.get('id', '?')}"
            kind = "row" if p.get("type") == "row" else "panel"
            name = f"{kind} {title!r}"
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name} ({seen[name]})"
            out.append((name, {k: v for k, v in p.items() if k != "panels"}))
            walk(p.get("panels") or [])

    walk(dashboard.get("panels") or [])
    return out


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k in sorted(value):
            out.update(_leaves(value[k], f"{path}.{k}" if path else str(k)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, v in enumerate(value):
            out.update(_leaves(v, f"{path}[{i}]"))
        return out
    return {path: value}


def _changes(before: Any, after: Any) -> list[str]:
    a, b = _leaves(before), _leaves(after)
    lines = []
    for key in sorted(set(a) | set(b)):
        if key not in a:
            lines.append(f"{key}: added {_short(b[key])}")
        elif key not in b:
            lines.append(f"{key}: removed (was {_short(a[key])})")
        elif a[key] != b[key]:
            lines.append(f"{key}: {_short(a[key])} -> {_short(b[key])}")
    return lines


def describe(before: dict[str, Any], after: dict[str, Any], limit: int = MAX_LINES) -> list[str]:
    """Lines saying how `after` differs from `before` (both normalised first); empty when equal."""
    before, after = normalize(before), normalize(after)
    lines: list[str] = []
    old_p, new_p = dict(_panels(before)), dict(_panels(after))
    for name in new_p:
        if name not in old_p:
            lines.append(f"+ {name}")
    for name in old_p:
        if name not in new_p:
            lines.append(f"- {name}")
    for name in new_p:
        if name in old_p:
            lines.extend(f"~ {name}: {line}" for line in _changes(old_p[name], new_p[name]))
    order_a = [n for n in old_p if n in new_p]
    order_b = [n for n in new_p if n in old_p]
    if order_a != order_b:
        lines.append("~ panel order changed")
    old_vars = {v.get("name"): v for v in (before.get("templating") or {}).get("list", []) if isinstance(v, dict)}
    new_vars = {v.get("name"): v for v in (after.get("templating") or {}).get("list", []) if isinstance(v, dict)}
    for name in sorted(set(old_vars) | set(new_vars), key=str):
        if name not in old_vars:
            lines.append(f"+ variable ${name}")
        elif name not in new_vars:
            lines.append(f"- variable ${name}")
        else:
            lines.extend(f"~ variable ${name}: {line}" for line in _changes(old_vars[name], new_vars[name]))
    rest_a = {k: v for k, v in before.items() if k not in ("panels", "templating")}
    rest_b = {k: v for k, v in after.items() if k not in ("panels", "templating")}
    lines.extend(f"~ {line}" for line in _changes(rest_a, rest_b))
    if len(lines) > limit:
        lines = [*lines[:limit], f"… and {len(lines) - limit} more"]
    return lines
