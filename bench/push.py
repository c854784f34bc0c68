"""Bench: `dashgen push` of 200 dashboards against the in-test Grafana API, next to the PyPI tool
`grafana-import` (`.venv/bin/pip install grafana-import`) importing the same files, in the same run.

Both tools run as a CLI subprocess (start-up included) against a fresh server each, with a fixed service
time per request: 5 ms for a read, 20 ms for a write (a stand-in for Grafana on its default SQLite store);
requests are served concurrently. Request and write counts do not depend on the service time.
grafana-import runs in its fastest mode: the whole directory in one process (`import -i DIR -o -k`),
GRAFANA_URL/GRAFANA_TOKEN from the environment.

Install grafana-import with `URLLIB3_NO_OVERRIDE=1 .venv/bin/pip install grafana-import --no-binary urllib3-future`
(a plain install brings urllib3-future, which overwrites `urllib3` in the venv, requests included).

Run: .venv/bin/python bench/push.py [--count 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from dashgen.build import render_dashboards  # noqa: E402
from dashgen.config import Config  # noqa: E402
from dashgen.fsutil import dumps_json  # noqa: E402
from grafana_server import ADMIN_TOKEN, GrafanaServer  # noqa: E402

READ_S, WRITE_S = 0.005, 0.020
BIN = Path(sys.executable).parent


def write_variants(out: Path, count: int) -> None:
    """`count` variants of the built dashboards, each with its own uid and title."""
    built = list(render_dashboards(Config()).values())
    for i in range(count):
        d = dict(built[i % len(built)])
        d["uid"] = f"{d['uid'][:32]}-{i:04d}"
        d["title"] = f"{d['title']} #{i:04d}"
        d["id"] = None  # as in a Grafana export: grafana-import's re-import needs the key (KeyError 'id' without)
        (out / f"{d['uid']}.json").write_text(dumps_json(d), encoding="utf-8")


def run(server: GrafanaServer, argv: list[str], cwd: Path) -> tuple[float, float, int, int]:
    """Run one CLI against `server`: wall seconds, the tool's CPU seconds, requests, writes."""
    env = {**os.environ, "GRAFANA_URL": server.url, "GRAFANA_TOKEN": ADMIN_TOKEN}
    server.state.reset_counts()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"{argv[0]} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall, cpu, len(server.state.requests), server.state.writes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best wall time is kept")
    args = parser.parse_args()
    # The server lives in this process: keep CPython's cyclic GC (rescanning hundreds of stored dashboards on
    # every parse) out of its service time, which is meant to be the fixed figure stated above.
    gc.disable()
    load = os.getloadavg()
    importer = shutil.which("grafana-import", path=str(BIN)) or shutil.which("grafana-import")
    if importer is None:
        sys.exit("grafana-import is not installed: .venv/bin/pip install grafana-import")
    with tempfile.TemporaryDirectory(prefix="dashgen-bench-") as tmp:
        work, files = Path(tmp), Path(tmp) / "dashboards"
        files.mkdir()
        write_variants(files, args.count)
        dashgen = [str(BIN / "dashgen"), "push", "--dir", str(files)]
        gi = [importer, "import", "-i", str(files), "-o", "-k"]
        runs: list[list[tuple[str, float, float, int, int]]] = []
        for _ in range(args.repeat):  # interleaved, so that load from other processes hits both tools alike
            for tool, argv in (("dashgen push", dashgen), ("grafana-import", gi)):
                with GrafanaServer(READ_S, WRITE_S) as server:
                    first = run(server, argv, work)
                    again = run(server, argv, work)
                    assert len(server.state.dashboards) == args.count
                runs.append([(f"{tool} (first)", *first), (f"{tool} (unchanged)", *again)])
        best: dict[str, tuple[float, float, int, int]] = {}
        for name, wall, cpu, reqs, writes in (row for pair in runs for row in pair):
            if name not in best or wall < best[name][0]:
                best[name] = (wall, cpu, reqs, writes)
        order = ["dashgen push (first)", "dashgen push (unchanged)", "grafana-import (first)",
                 "grafana-import (unchanged)"]
        rows = [(name, *best[name]) for name in order]
    print(f"{args.count} dashboards; server service time {READ_S * 1000:g} ms a read, {WRITE_S * 1000:g} ms a "
          "write (served concurrently); both tools run as CLI subprocesses (start-up included); "
          f"best wall time of {args.repeat} interleaved runs each, on a fresh server per run")
    print(f"load average before: {load[0]:.2f} (other processes share this machine's {os.cpu_count()} CPUs)")
    print(f"{'run':28} {'wall s':>8} {'tool CPU s':>11} {'requests':>9} {'writes':>7}")
    for name, wall, cpu, reqs, writes in rows:
        print(f"{name:28} {wall:8.2f} {cpu:11.2f} {reqs:9d} {writes:7d}")
    first = rows[0][1] / rows[2][1]
    again = rows[1][1] / rows[3][1]
    print(f"first push / grafana-import first:          {first:.2f}x  (target <= 0.5x)  "
          f"{'ok' if first <= 0.5 else 'MISSED'}")
    print(f"unchanged re-push / grafana-import re-run:   {again:.2f}x  (target <= 0.25x, no writes: "
          f"{rows[1][4]} writes)  {'ok' if again <= 0.25 and rows[1][4] == 0 else 'MISSED'}")


if __name__ == "__main__":
    main()
