"""Grafana's custom-variable syntax: how dashgen writes a list of values into a custom variable's `query`.

Grafana rebuilds a custom variable's options from its `query` when a dashboard loads
(grafana/scenes `packages/scenes/src/variables/variants/CustomVariable.tsx`, `transformCsvStringToOptions`):
the query is first interpolated (`$name`, `${name}`, `[[name]]` are replaced by other variables' values), then
split with `/(?:\\,|[^,])+/g` (a comma separates options, `\\,` is a literal comma), each `\\,` becomes `,`,
an option of the form `text : value` (`/^\\s*(.+)\\s:\\s(.+)$/`) is split into label and value, and both are
trimmed. So a comma is escaped; what that syntax cannot carry is refused (`custom_option_problem`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TEXT_VALUE = re.compile(r"\s:\s")  # Grafana's `text : value` separator
_INTERPOLATED = re.compile(r"\$|\[\[")  # the start of a variable reference


def custom_query(values: Iterable[str]) -> str:
    """The `query` of a custom variable whose options are exactly `values` (commas escaped as `\\,`)."""
    return ",".join(value.replace(",", "\\,") for value in values)


def custom_option_problem(value: str) -> str | None:
    """Why `value` cannot be an option of a Grafana custom variable (None when it can)."""
    if value != value.strip():
        return "Grafana trims spaces around a custom variable's options"
    if not value:
        return "an option cannot be empty"
    if value.endswith("\\"):
        return "a trailing backslash would escape the comma after it"
    if _TEXT_VALUE.search(value):
        return "' : ' splits an option into a label and a different value"
    if _INTERPOLATED.search(value):
        return "'$' and '[[' start a variable reference Grafana would interpolate"
    return None
