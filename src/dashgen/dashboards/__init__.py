"""The dashboards dashgen builds: one plain Python module per dashboard, listed here in build order.

Each module defines `SLUG` (file `dashboards/<SLUG>.json`, uid `dashgen-<SLUG>`), `TITLE` and
`build(config) -> grafanalib.core.Dashboard`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

MODULES: tuple[str, ...] = ("performance", "rightsizing", "cost")


def load_all() -> list[ModuleType]:
    return [importlib.import_module(f"dashgen.dashboards.{name}") for name in MODULES]
