"""The built-in dashboards: plain Python modules on the public definitions API (`dashgen.api`), the examples a
user's own `*.dashboard.py` files follow. `dashgen.definitions` lists and loads them (`BUILTINS`).

Each module defines `SLUG` (file `dashboards/<SLUG>.json`, uid `dashgen-<SLUG>`), `TITLE` and
`build(config) -> grafanalib.core.Dashboard`.
"""
