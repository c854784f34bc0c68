"""Benchmark of the test suite: how long the contributor waits for `pytest`, and what the time is spent on.

Runs, in fresh processes as a contributor does, and prints:

- the wall time of the full suite (the README's test command, read from its "Quick start", e.g.
  `python -m pytest -n auto`, plus any extra pytest arguments given after `--`), with its outcome counts;
- the wall time of the offline-only selection (`-m "not pg and not aws and not browser and not node"`: no
  PostgreSQL, no moto, no browser, no Node), when the suite registers those markers;
- how many tests carry each marker, and how many carry none (offline);
- the 25 slowest tests (setup + call + teardown, as pytest reports them; under pytest-xdist each is the time on
  its worker), and the sum of all tests' times;
- the 1-minute load average before and after each run: the machine is shared, read the figures beside it.

Target (issue 11): the full suite under 45 s on the 2-core development machine.

    .venv/bin/python bench/suite.py [--runs 1] [--slowest 25] [--only full|offline] [--json] [-- PYTEST_ARGS...]

`--json` prints one JSON object instead of the text report. The script is also the pytest plugin that records
the figures (`-p suite`, active only when DASHGEN_SUITE_OUT names a file).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARKERS = ("pg", "aws", "browser", "node")
OFFLINE = " and ".join(f"not {m}" for m in MARKERS)
TARGET_S = 45.0
OUT_ENV = "DASHGEN_SUITE_OUT"


# --- the pytest plugin (loaded in the pytest process by `-p suite`) -------------------------------------------------

_tests: dict[str, dict] = {}
_collected: dict[str, list[str]] = {}


def pytest_collection_finish(session) -> None:  # type: ignore[no-untyped-def]
    if os.environ.get(OUT_ENV) and not hasattr(session.config, "workerinput"):
        for item in session.items:
            _collected[item.nodeid] = sorted(m.name for m in item.iter_markers() if m.name in MARKERS)


def pytest_runtest_logreport(report) -> None:  # type: ignore[no-untyped-def]
    if not os.environ.get(OUT_ENV):
        return
    entry = _tests.setdefault(report.nodeid, {"duration": 0.0, "outcome": "passed",
                                              "markers": sorted(k for k in report.keywords if k in MARKERS)})
    entry["duration"] += report.duration
    if report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
        entry["reason"] = str(report.longrepr).strip().splitlines()[-1][:300] if report.longrepr else ""
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"


def pytest_sessionfinish(session) -> None:  # type: ignore[no-untyped-def]
    out = os.environ.get(OUT_ENV)
    if not out or hasattr(session.config, "workerinput"):
        return
    registered = [line.split(":", 1)[0].strip() for line in session.config.getini("markers")]
    Path(out).write_text(json.dumps({"tests": _tests, "collected": _collected, "registered": registered}))


# --- the benchmark ---------------------------------------------------------------------------------------------------


def readme_pytest_args() -> list[str]:
    """The arguments of the README's test command (its Quick start's second command, `... -m pytest ARGS`)."""
    section = (REPO / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    command = re.findall(r"```sh\n(.*?)\n```", section, flags=re.S)[1]
    words = shlex.split(command)
    return words[words.index("pytest") + 1:]


def _pytest(args: list[str]) -> tuple[float, dict, float, float, int]:
    """Runs pytest in a fresh process with this plugin; returns wall seconds, the plugin's record, load before and
    after, and the exit code."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "suite.json"
        env = dict(os.environ, **{OUT_ENV: str(out)})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), env.get("PYTHONPATH")]))
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "suite", "-p", "no:cacheprovider", *args],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wall = time.perf_counter() - start
        load_after = os.getloadavg()[0]
        if not out.exists():
            sys.exit(f"pytest did not finish (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
        return wall, json.loads(out.read_text()), load_before, load_after, proc.returncode


def _outcomes(tests: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in tests.values():
        counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
    return dict(sorted(counts.items()))


def _run(label: str, args: list[str], runs: int) -> dict:
    walls, loads, record, code = [], [], {}, 0
    for _ in range(runs):
        wall, record, before, after, code = _pytest(args)
        walls.append(wall)
        loads.append([round(before, 2), round(after, 2)])
    return {"label": label, "args": args, "runs": runs, "wall_s": round(statistics.median(walls), 2),
            "walls_s": [round(w, 2) for w in walls], "load_1min_before_after": loads, "exit_code": code,
            "tests": len(record["tests"]), "outcomes": _outcomes(record["tests"]),
            "sum_of_test_times_s": round(sum(e["duration"] for e in record["tests"].values()), 2),
            "_record": record}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="runs of each selection (the median is reported)")
    parser.add_argument("--slowest", type=int, default=25)
    parser.add_argument("--only", choices=["full", "offline"], help="run one selection only")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --), e.g. -- -n 2")
    args = parser.parse_args()

    base = readme_pytest_args()
    load = [round(x, 2) for x in os.getloadavg()]
    result: dict = {"readme_test_args": base, "machine": {"cpus": os.cpu_count(), "load_1_5_15_at_start": load},
                    "target_full_s": TARGET_S, "runs": []}
    full = offline = None
    if args.only != "offline":
        full = _run("full suite", [*base, *args.pytest_args], args.runs)
        result["runs"].append(full)
    if args.only != "full":
        probe = full["_record"] if full else _pytest(["--collect-only", "-p", "no:xdist"])[1]
        if all(m in probe["registered"] for m in MARKERS):
            offline = _run("offline only", [*base, "-m", OFFLINE, *args.pytest_args], args.runs)
            result["runs"].append(offline)
        else:
            result["offline_note"] = f"not measured: the suite does not register the markers {', '.join(MARKERS)}"
    record = (full or offline or {"_record": {"tests": {}, "collected": {}}})["_record"]
    collected = record["collected"] or {k: v["markers"] for k, v in record["tests"].items()}
    result["tests_collected"] = len(collected)
    result["markers"] = {m: sum(m in marks for marks in collected.values()) for m in MARKERS}
    result["markers"]["none (offline)"] = sum(not marks for marks in collected.values())
    slow = sorted(record["tests"].items(), key=lambda kv: kv[1]["duration"], reverse=True)[: args.slowest]
    result["slowest"] = [{"test": k, "s": round(v["duration"], 3), "markers": v["markers"]} for k, v in slow]
    if full:
        result["full_under_target"] = full["wall_s"] < TARGET_S
    result["not_passed"] = {k: f"{v['outcome']}: {v.get('reason', '')}" for run in result["runs"]
                            for k, v in run["_record"]["tests"].items() if v["outcome"] in ("failed", "error")}
    for run in result["runs"]:
        run.pop("_record")

    if args.json:
        print(json.dumps(result, indent=2))
        return
    m = result["machine"]
    print(f"machine: {m['cpus']} cpus, load average at start {m['load_1_5_15_at_start']} (1/5/15 min)")
    for run in result["runs"]:
        extra = " ".join(run["args"])
        verdict = ""
        if run is full:
            verdict = f"   target < {TARGET_S:.0f} s: {'ok' if run['wall_s'] < TARGET_S else 'OVER TARGET'}"
        print(f"{run['label']:13s} {run['wall_s']:7.1f} s wall  {run['tests']} tests {run['outcomes']}  "
              f"exit {run['exit_code']}  load 1-min before/after {run['load_1min_before_after']}{verdict}")
        print(f"{'':13s} pytest {extra}; sum of test times {run['sum_of_test_times_s']:.1f} s; runs {run['walls_s']}")
    for test, why in result["not_passed"].items():
        print(f"NOT PASSED  {test}  {why}")
    if "offline_note" in result:
        print(f"offline only  {result['offline_note']}")
    print(f"tests collected: {result['tests_collected']}; by marker: "
          + ", ".join(f"{k} {v}" for k, v in result["markers"].items()))
    print(f"slowest {len(result['slowest'])}:")
    for row in result["slowest"]:
        print(f"  {row['s']:7.2f} s  {row['test']}  {','.join(row['markers'])}")


if __name__ == "__main__":
    main()
