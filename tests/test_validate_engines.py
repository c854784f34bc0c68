"""`validate.SchemaCheck` takes its "valid" verdicts from jsonschema-rs (fast) and its messages from jsonschema
(the reference): the two must agree on every value, or a build could accept what the reference refuses.

Checked on the real values `build` validates (every panel, options, field config and CloudWatch query of the
built-in dashboards, for each targeted Grafana) and on each of them broken in the ways a definition goes wrong:
a wrong type, an unknown key, a missing key.
"""

import copy
import json
from typing import Any

import jsonschema
import pytest

from dashgen.build import render_dashboards
from dashgen.config import GRAFANA_VERSIONS, Config
from dashgen.grafana.validate import PANEL_SCHEMAS, SchemaCheck, _validator, all_panels


def _cases(version: str) -> list[tuple[str, str, Any]]:
    """(schema file, definition, value) for what validate_dashboard checks of the built-in dashboards."""
    cases = []
    for data in render_dashboards(Config(grafana_version=version)).values():
        for panel in all_panels(data):
            is_row = panel.get("type") == "row"
            body = {k: v for k, v in panel.items() if k not in ("panels", "fieldConfig")}
            cases.append(("dashboard", "RowPanel" if is_row else "Panel", body))
            if "fieldConfig" in panel:
                cases.append(("dashboard", "FieldConfigSource", panel["fieldConfig"]))
            kind = PANEL_SCHEMAS.get(panel.get("type", ""))
            if kind:
                cases.append((kind, "Options", panel.get("options", {})))
            for target in panel.get("targets", []):
                if (target.get("datasource") or {}).get("type") == "cloudwatch":
                    cases.append(("cloudwatch", "MetricsQuery", target))
    return cases


def _broken(value: dict[str, Any]) -> list[Any]:
    out = []
    for key in sorted(value)[:6]:
        for bad in ("x", 7, None, [1], {"z": 1}):
            if value[key] != bad:
                out.append({**copy.deepcopy(value), key: bad})
        out.append({k: v for k, v in value.items() if k != key})
    out.append({**value, "notAGrafanaKey": 1})
    return out


@pytest.mark.parametrize("version", GRAFANA_VERSIONS)
def test_fast_and_reference_engines_agree_on_built_and_broken_values(version: str) -> None:
    seen: set[str] = set()
    compared = invalid = 0
    for file, definition, value in _cases(version):
        check = _validator(version, file, definition)
        assert check is not None
        reference = jsonschema.Draft7Validator(check.schema)
        for candidate in [value, *_broken(value)]:
            key = json.dumps([file, definition, candidate], sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            expected = not any(True for _ in reference.iter_errors(candidate))
            assert check.valid(candidate) is expected, (file, definition, candidate)
            assert (check.errors(candidate) == []) is expected
            compared += 1
            invalid += not expected
    assert compared > 500 and invalid > 100  # the comparison saw both verdicts, many times


def test_invalid_value_gets_the_reference_messages() -> None:
    check = SchemaCheck({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False})
    assert [e.message for e in check.errors({"a": "x", "b": 1})] == [
        "Additional properties are not allowed ('b' was unexpected)", "'x' is not of type 'integer'"]
    assert check.errors({"a": 1}) == []
    # NaN: jsonschema-rs says "not a number"; the reference, which decides whenever the fast engine refuses, accepts
    # it (the legacy check of validate_dashboard reports it, as JSON has no NaN)
    assert SchemaCheck({"type": "number"}).errors(float("nan")) == []


def test_draft_2020_12_for_provisioning() -> None:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "prefixItems": [{"type": "string"}]}
    check = SchemaCheck(schema, draft="2020-12")
    assert check.errors(["a"]) == [] and check.errors([1]) != []
