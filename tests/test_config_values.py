"""Config values that used to give broken output or a traceback: each is now a valid dashboard or one ConfigError
line naming the file and key. Ends with a Hypothesis fuzz of every key of `dashgen.toml`."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dashgen.build import build_outputs
from dashgen.catalogue import METRICS
from dashgen.cli import app
from dashgen.config import Config, load_config
from dashgen.errors import EXIT_USAGE, ConfigError
from dashgen.grafana.text import custom_option_problem, custom_query
from dashgen.grafana.validate import validate_dashboard
from dashgen.store.sqlvars import decode

runner = CliRunner()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dashgen.toml"
    path.write_text(text)
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and info.value.exit_code == EXIT_USAGE
    return message[len(f"{path}: "):]


# ---------------------------------------------------------------- non-finite numbers


@pytest.mark.parametrize(("text", "expected"), [
    ("[thresholds]\nNetworkIn = inf", "thresholds.NetworkIn: expected a finite number >= 0, got inf"),
    ("[thresholds]\nNetworkIn = nan", "thresholds.NetworkIn: expected a finite number >= 0, got nan"),
    ("[thresholds]\nNetworkIn = 1" + "0" * 400, "thresholds.NetworkIn: expected a finite number >= 0, got 1000"),
    ("[thresholds]\nCPUUtilization = nan", "thresholds.CPUUtilization: expected a percentage above 0"),
    ("[thresholds]\n'EBSIOBalance%' = -inf", "thresholds.EBSIOBalance%: expected a percentage from 0 to 100"),
    ("[rightsizing]\nheadroom_pct = nan", "rightsizing.headroom_pct: expected a percentage from 0 to less than"),
    ("[rightsizing]\ncpu_percentile = nan", "rightsizing.cpu_percentile: expected a percentile from 50 to 100"),
    ("[rightsizing]\ncpu_percentile = 40", "rightsizing.cpu_percentile: expected a percentile from 50 to 100"),
    ("[[experiments]]\nname = 'x'\nbudget_usd = inf\ndeadline = 2026-12-01",
     "experiments[0].budget_usd: expected a finite number >= 0, got inf"),
])
def test_non_finite_numbers_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    assert config_error(write(tmp_path, text)).startswith(expected)


def test_validate_rejects_infinity_in_a_file(tmp_path: Path) -> None:
    """A dashboard written with `Infinity` (as an `inf` threshold once gave) is not JSON: Grafana's JSON.parse
    refuses it, so `dashgen validate` must too (Python's json reads it by default)."""
    good = json.loads((Path(__file__).parents[1] / "dashboards" / "ec2-performance.json").read_text())
    text = json.dumps(good, indent=2).replace('"value": 80', '"value": Infinity', 1)
    assert "Infinity" in text
    path = tmp_path / "ec2-performance.json"
    path.write_text(text)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}: not valid JSON: Infinity is not a JSON number" in result.stderr
    assert "ok:" not in result.stdout


def test_validate_rejects_non_finite_numbers_in_memory() -> None:
    good = json.loads((Path(__file__).parents[1] / "dashboards" / "ec2-performance.json").read_text())
    good["panels"][1]["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] = float("nan")
    problems = [str(p) for p in validate_dashboard(good)]
    assert any(p.startswith("panels[1].fieldConfig.defaults.thresholds.steps[") and "nan is not a JSON number" in p
               for p in problems), problems


# ---------------------------------------------------------------- ranges with a meaning


def test_headroom_must_be_below_100_and_says_so(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "[rightsizing]\nheadroom_pct = 100"))
    assert message == ("rightsizing.headroom_pct: expected a percentage from 0 to less than 100 (100 % headroom "
                       "leaves no CPU to size for), got 100")
    assert load_config(write(tmp_path, "[rightsizing]\nheadroom_pct = 99.5")).headroom_pct == 99.5
    assert load_config(write(tmp_path, "[rightsizing]\nheadroom_pct = 0")).headroom_pct == 0


def test_cpu_threshold_zero_is_refused(tmp_path: Path) -> None:
    """CPU threshold 0 makes the rightsizing target 0 %: every instance came out 'right-sized'."""
    message = config_error(write(tmp_path, "[thresholds]\nCPUUtilization = 0"))
    assert message == ("thresholds.CPUUtilization: expected a percentage above 0 and at most 100 (at 0 every "
                       "instance would be 'right-sized'), got 0")
    assert load_config(write(tmp_path, "[thresholds]\nCPUUtilization = 100")).cpu_threshold == 100
    # other metrics keep 0 (the catalogue's default for the status checks and error counts)
    assert load_config(write(tmp_path, "[thresholds]\nStatusCheckFailed = 0")).threshold("StatusCheckFailed") == 0


# ---------------------------------------------------------------- tag keys in Grafana's custom variable


def grafana_custom_options(query: str) -> list[tuple[str, str]]:
    """(label, value) of each option, as grafana/scenes parses a custom variable's query
    (packages/scenes/src/variables/variants/CustomVariable.tsx, `transformCsvStringToOptions`), after
    interpolation (dashgen refuses `$` and `[[` in options, so interpolation changes nothing)."""
    out = []
    for text in re.findall(r"(?:\\,|[^,])+", query):
        text = text.replace("\\,", ",")
        match = re.fullmatch(r"\s*(.+)\s:\s(.+)", text)  # JS `.` stops at line breaks, as Python's does
        out.append((match[1].strip(), match[2].strip()) if match else (text.strip(), text.strip()))
    return out


def test_a_tag_key_with_a_comma_stays_one_option(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[dashboards]\ninstance_tags = ["cost,center", "team", "a\\\\,b"]'))
    assert cfg.instance_tags == ("cost,center", "team", "a\\,b")
    outputs = build_outputs(cfg)
    for name in ("ec2-performance.json", "ec2-cost.json", "ec2-rightsizing.json"):
        (var,) = [v for v in json.loads(outputs[name])["templating"]["list"] if v["name"] == "tag_key"]
        if var["type"] == "query":  # the store dashboards: the keys as hex literals (dashgen.store.sqlvars), in order
            assert [decode(h) for h in re.findall(r"'([0-9a-f]*)'", var["query"])] == list(cfg.instance_tags)
            continue
        assert var["query"] == "cost\\,center,team,a\\\\,b"
        parsed = grafana_custom_options(var["query"])
        assert parsed == [(k, k) for k in cfg.instance_tags]
        assert [(o["text"], o["value"]) for o in var["options"]] == parsed


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=5))
def test_custom_query_round_trips_through_grafanas_parsing(values: list[str]) -> None:
    """Property: every value `custom_option_problem` accepts comes back from Grafana's parsing unchanged."""
    values = [v for v in values if custom_option_problem(v) is None]
    if values:
        assert grafana_custom_options(custom_query(values)) == [(v, v) for v in values]


@pytest.mark.node
@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_python_model_of_grafanas_parsing_agrees_with_javascript() -> None:
    """The same function body as grafana/scenes' transformCsvStringToOptions, run by node, on awkward values."""
    values = ["cost,center", "a\\,b", "x,", ",", "ünï, cödé", "t:a", "k :v", "tab\tin"]
    assert all(custom_option_problem(v) is None for v in values)
    js = r"""
    const str = process.argv[1];
    const match = str.match(/(?:\\,|[^,])+/g) ?? [];
    console.log(JSON.stringify(match.map((text) => {
      text = text.replace(/\\,/g, ',');
      const textMatch = /^\s*(.+)\s:\s(.+)$/g.exec(text) ?? [];
      if (textMatch.length === 3) { const [, key, value] = textMatch; return [key.trim(), value.trim()]; }
      return [text.trim(), text.trim()];
    })));
    """
    query = custom_query(values)
    out = subprocess.run(["node", "-e", js, query], capture_output=True, text=True, check=True, timeout=30)
    assert [tuple(o) for o in json.loads(out.stdout)] == grafana_custom_options(query) == [(v, v) for v in values]


@pytest.mark.parametrize(("keys", "expected"), [
    ("[]", "dashboards.instance_tags: expected a non-empty list of distinct tag keys"),
    ('["team", "team"]', "dashboards.instance_tags: expected a non-empty list of distinct tag keys"),
    ('["team", ""]', "dashboards.instance_tags: expected a non-empty list of distinct tag keys"),
    ('[" team"]', "Grafana trims spaces around a custom variable's options), got ' team'"),
    ('["a : b"]', "' : ' splits an option into a label and a different value), got 'a : b'"),
    ('["end\\\\"]', "a trailing backslash would escape the comma after it), got 'end\\\\'"),
    ('["$region"]', "'$' and '[[' start a variable reference Grafana would interpolate), got '$region'"),
])
def test_tag_keys_grafana_cannot_list_are_refused(tmp_path: Path, keys: str, expected: str) -> None:
    message = config_error(write(tmp_path, f"[dashboards]\ninstance_tags = {keys}"))
    assert message.startswith("dashboards.instance_tags: expected ") and expected in message


def test_instance_tags_empty_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    write(tmp_path, "[dashboards]\ninstance_tags = []\n")
    result = runner.invoke(app, ["build", "--config", str(tmp_path / "dashgen.toml"), "--out",
                                 str(tmp_path / "out")])
    assert result.exit_code == EXIT_USAGE and result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.startswith(f"error: {tmp_path / 'dashgen.toml'}: dashboards.instance_tags: expected")
    assert result.stderr.count("\n") == 1


# ---------------------------------------------------------------- nesting and awkward keys


@pytest.mark.parametrize("text", [
    "a = " + "[" * 5000 + "]" * 5000,
    "a = " + "{b = " * 3000 + "1" + "}" * 3000,
    "[thresholds]\nCPUUtilization = " + "[" * 5000 + "]" * 5000,
])
def test_deeply_nested_toml_is_one_line(tmp_path: Path, text: str) -> None:
    assert config_error(write(tmp_path, text)) == "not valid TOML: arrays or tables nested too deeply"


def test_a_nested_value_is_shown_short(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "[thresholds]\nCPUUtilization = " + "[" * 200 + "]" * 200))
    assert message.startswith("thresholds.CPUUtilization: expected a percentage above 0") and len(message) < 200


def test_a_deadline_past_year_9999_in_utc_is_one_line(tmp_path: Path) -> None:
    """9999-12-31T23:59:59-05:00 is a valid TOML datetime; in UTC it overflows (an OverflowError traceback)."""
    message = config_error(write(tmp_path, "[[experiments]]\nname = 'x'\nbudget_usd = 1\n"
                                           "deadline = 9999-12-31T23:59:59-05:00"))
    assert message == ("experiments[0].deadline: expected a date between years 1 and 9999 in UTC, "
                       "got 9999-12-31T23:59:59-05:00")


def test_a_key_with_a_line_break_is_quoted(tmp_path: Path) -> None:
    assert config_error(write(tmp_path, '[grafana]\n"x\\ny" = 1')).startswith("grafana.'x\\ny': expected one of")


# ---------------------------------------------------------------- fuzz: every key, any TOML value

# TOML offsets are whole minutes (hypothesis' zoneinfo zones have historic second offsets TOML cannot write)
TZ = st.none() | st.integers(-1439, 1439).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
TOML_SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
    st.datetimes(timezones=TZ),
    st.dates(),
    st.times(),
)
TOML_VALUES = st.recursive(
    TOML_SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)


def maybe(plausible: st.SearchStrategy[Any], odds: int = 3) -> st.SearchStrategy[Any]:
    """A value for one key: mostly plausible (so valid configs are reached), 1 in `odds + 1` any TOML value."""
    return st.one_of(*[plausible] * odds, TOML_VALUES)


TAG = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10)
PCT = st.floats(min_value=-1, max_value=101) | st.sampled_from([0, 100, 50, float("inf"), float("nan")])
NUM = st.floats(min_value=-1, max_value=1e6) | st.integers(-1, 10**30) | st.sampled_from([float("inf")])
UID = st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True) | TAG
DURATION = st.from_regex(r"[0-9]{1,3}[smhd]", fullmatch=True) | TAG
REGION = st.sampled_from(["us-east-1", "eu-west-1", "us-gov-west-1", "mars-1"])
DEADLINE = st.datetimes(timezones=TZ) | st.dates() | st.sampled_from(
    ["2026-12-31T18:00:00Z", "9999-12-31T23:59:59-05:00", "soon"])

TABLES: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "grafana": {"folder_title": TAG, "folder_uid": UID, "managed_tag": TAG, "folder_parent_uid": UID},
    "datasources": {"cloudwatch_uid": UID, "pricing_uid": UID},
    "aws": {"default_region": REGION, "regions": st.lists(REGION, max_size=3)},
    "dashboards": {"refresh": DURATION, "time_from": TAG, "instance_tags": st.lists(TAG, max_size=4)},
    "thresholds": {m.name: PCT if m.unit == "percent" else NUM for m in METRICS},
    "pricing": {"dsn": st.sampled_from(["postgresql://u@h/db", "host=h password=x", "postgresql://u:p@h/db"]) | TAG,
                "prices": st.sampled_from(["api", "bundled", "cheap"]), "every": DURATION,
                "lookback_days": st.integers(-1, 500)},
    "rightsizing": {"headroom_pct": PCT, "cpu_percentile": PCT},
}
EXPERIMENT = {"name": TAG, "tag_key": TAG, "tag_value": TAG, "budget_usd": NUM, "deadline": DEADLINE,
              "progress": st.fixed_dictionaries({}, optional={
                  "namespace": TAG, "metric_name": TAG,
                  "dimensions": st.dictionaries(TAG, maybe(TAG), max_size=2)})}


def _table(keys: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={k: maybe(v) for k, v in keys.items()})


KNOWN = st.fixed_dictionaries({}, optional={
    **{name: maybe(_table(keys), odds=12) for name, keys in TABLES.items()},
    "experiments": maybe(st.lists(_table(EXPERIMENT), max_size=2), odds=6),
})
CONFIGS = st.one_of(*[KNOWN] * 6, st.builds(lambda d, v: {**d, "surprise": v}, KNOWN, TOML_VALUES))


def key_paths(data: Any, prefix: str = "") -> set[str]:
    """Every key a message may name: tables, `table.key`, `experiments[i].key`, nested progress keys, and the
    required keys of an experiment; a key that is not a bare TOML key may be shown quoted (Python repr)."""
    out = set()
    if isinstance(data, dict):
        for key, value in data.items():
            for shown in {key, repr(key)}:
                path = f"{prefix}.{shown}" if prefix else shown
                out |= {path, *key_paths(value, path)}
    elif isinstance(data, list) and prefix == "experiments":
        for i, item in enumerate(data):
            required = ("name", "budget_usd", "deadline", "progress.namespace", "progress.metric_name")
            out |= {f"experiments[{i}]", *(f"experiments[{i}].{k}" for k in required),
                    *key_paths(item, f"experiments[{i}]")}
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CONFIGS)
def test_fuzz_every_key_gives_a_config_or_a_one_line_error(tmp_path_factory, data: dict[str, Any]) -> None:
    """Property: any TOML for any key loads as a Config or raises one ConfigError line naming the file and the key
    (never another exception); the numbers of a valid Config are all finite."""
    path = tmp_path_factory.mktemp("fuzz") / "dashgen.toml"
    path.write_text(tomli_w.dumps(data))
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < 400, message
        where = message[len(f"{path}: "):].split(": ", 1)[0]
        assert where in key_paths(data), (where, message)
        return
    assert isinstance(cfg, Config)
    for value in (*cfg.thresholds.values(), cfg.headroom_pct, cfg.cpu_percentile,
                  *(e.budget_usd for e in cfg.experiments)):
        assert value == value and abs(value) != float("inf")
    assert all(isinstance(e.deadline, dt.datetime) and e.deadline.tzinfo for e in cfg.experiments)


VALID_TABLES = st.fixed_dictionaries({}, optional={
    "grafana": st.fixed_dictionaries({}, optional={"folder_title": TAG, "managed_tag": TAG}),
    "dashboards": st.fixed_dictionaries({}, optional={
        "instance_tags": st.lists(TAG, min_size=1, max_size=3, unique=True), "time_from": TAG}),
    "thresholds": st.fixed_dictionaries({}, optional={
        m.name: (st.floats(min_value=1e-6, max_value=100) if m.unit == "percent" else st.floats(0, 1e12))
        for m in METRICS}),
    "rightsizing": st.fixed_dictionaries({}, optional={"headroom_pct": st.floats(min_value=0, max_value=99.99),
                                                       "cpu_percentile": st.sampled_from([90, 95, 99.5, 50, 100])}),
})


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALID_TABLES)
def test_fuzz_a_valid_config_builds_valid_json(tmp_path_factory, data: dict[str, Any]) -> None:
    """Property: a config that loads builds dashboards that are strict JSON (no NaN/Infinity) and list every tag
    key as Grafana will parse it."""
    path = tmp_path_factory.mktemp("fuzz") / "dashgen.toml"
    path.write_text(tomli_w.dumps(data))
    try:
        cfg = load_config(path)
    except ConfigError:
        return  # e.g. a tag key Grafana cannot list: covered above
    for name, text in build_outputs(cfg).items():
        parsed = json.loads(text, parse_constant=lambda c, name=name: pytest.fail(f"{name}: {c} in the JSON"))
        (var,) = [v for v in parsed["templating"]["list"] if v["name"] == "tag_key"]
        if var["type"] == "query":  # the store dashboards list the keys as hex literals (dashgen.store.sqlvars)
            assert [decode(h) for h in re.findall(r"'([0-9a-f]*)'", var["query"])] == list(cfg.instance_tags)
            continue
        assert grafana_custom_options(var["query"]) == [(k, k) for k in cfg.instance_tags]
