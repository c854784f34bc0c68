"""Benchmark of the light commands: `dashgen build` and `dashgen --version` start-up.

Prints the median wall time of each over N runs (fresh processes, as a user runs them), and each as a ratio to
`python -c "import grafanalib.core"` measured in the same run on the same machine.
Targets (issue 2): build of all dashboards < 1 s; --version < 0.3 s. Issue 13: build at most 2x the baseline
(the ratio is what holds on a loaded machine, where every wall time stretches).

    .venv/bin/python bench/run.py [--runs 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def wall(cmd: list[str], runs: int, cwd: Path) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    dashgen = shutil.which("dashgen", path=str(BIN)) or "dashgen"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        baseline = wall([sys.executable, "-c", "import grafanalib.core"], args.runs, work)
        build_cold = statistics.median(
            wall([dashgen, "build", "--out", f"cold{i}/dashboards"], 1, work) for i in range(args.runs)
        )
        build = wall([dashgen, "build", "--out", "out"], args.runs, work)
        check = wall([dashgen, "build", "--check", "--out", "out"], args.runs, work)
        version = wall([dashgen, "--version"], args.runs, work)
        files = len(list((work / "out").glob("*.json")))
    print(f"runs: {args.runs} (median wall time, fresh process each)")
    print(f"python -c 'import grafanalib.core'   {baseline:6.3f} s   (baseline, 1.00x)")
    rows = [
        (f"dashgen build ({files} dashboards)", build, 1.0, 2.0),
        ("dashgen build (first, empty dir)", build_cold, 1.0, 2.0),
        ("dashgen build --check", check, 1.0, 2.0),
        ("dashgen --version", version, 0.3, None),
    ]
    for label, seconds, target, ratio_target in rows:
        verdict = "ok" if seconds < target else "OVER TARGET"
        ratio = seconds / baseline
        ratio_verdict = "" if ratio_target is None else (
            f", <= {ratio_target:g}x: {'ok' if ratio <= ratio_target else 'OVER TARGET'}")
        print(f"{label:36s} {seconds:6.3f} s   {ratio:5.2f}x baseline   target < {target} s: {verdict}{ratio_verdict}")


if __name__ == "__main__":
    main()
