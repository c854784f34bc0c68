"""Checks a command's JSON output against its shape in `dashgen.views.shapes()` (JSON Schema, draft 2020-12):
every key present with its type, no key the shape does not name. Used by every test of a `--format json`."""

from __future__ import annotations

from typing import Any

import jsonschema

from dashgen.views import shapes


def check_shape(name: str, value: Any) -> Any:
    """`value` unchanged, once it matches the shape `name` (else the first mismatch, with its path)."""
    schema = shapes()[name]
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    assert not errors, f"{name}: {'/'.join(map(str, errors[0].absolute_path))}: {errors[0].message}"
    return value
