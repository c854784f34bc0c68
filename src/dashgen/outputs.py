"""A set of generated files (file name -> exact text) against a folder: compare without writing (`--check`:
stale, missing, unexpected) or write only what changed, atomically. Shared by `build` (dashboards) and
`provision` (provisioning files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dashgen.fsutil import atomic_write_text


@dataclass
class OutputsResult:
    """What writing (or checking) a set of generated files found: `build`'s dashboards, `provision`'s files; each
    name relative to the output folder."""

    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    provisioning: OutputsResult | None = None  # the provisioning files, relative to their own folder

    @property
    def clean(self) -> bool:
        own = not (self.stale or self.missing or self.unexpected)
        return own and (self.provisioning is None or self.provisioning.clean)


def check_outputs(outputs: dict[str, str], out_dir: Path) -> OutputsResult:
    """Compare `outputs` with the files in `out_dir`, writing nothing."""
    result = OutputsResult()
    for name, text in outputs.items():
        path = out_dir / name
        if not path.exists():
            result.missing.append(name)
        elif path.read_bytes() != text.encode("utf-8"):
            result.stale.append(name)
        else:
            result.unchanged.append(name)
    if out_dir.is_dir():
        expected = set(outputs)
        result.unexpected = sorted(p.name for p in out_dir.glob("*.json") if p.name not in expected)
    return result


def write_outputs(outputs: dict[str, str], out_dir: Path) -> OutputsResult:
    """Write what changed (atomically); leave identical files untouched."""
    result = check_outputs(outputs, out_dir)
    for name in (*result.missing, *result.stale):
        atomic_write_text(out_dir / name, outputs[name])
        result.written.append(name)
    return result
