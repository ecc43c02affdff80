"""A pytest plugin that records each test's wall time and CPU time, its subprocesses' included.

    PYTHONPATH=benchmarks .venv/bin/python -m pytest -n auto -p pytest_cpu_time
    .venv/bin/python benchmarks/pytest_cpu_time.py     # the table, by test file

Each xdist worker appends one JSON line per test to $CPU_TIME_DIR/cpu-<worker>.jsonl (default
/tmp/pytest-cpu-time): wall seconds, the worker's own CPU seconds, and the CPU seconds of the
processes it started and waited for (a stage run by `dvc repro` counts; a `dvc queue` worker,
which DVC detaches, does not). On a CPU-bound machine the suite's wall time is about its CPU time
over the number of cores, so this says where to cut.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

OUT = Path(os.environ.get("CPU_TIME_DIR", "/tmp/pytest-cpu-time"))
_started: dict[str, tuple[float, float, float]] = {}


def _cpu_seconds() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    _started[nodeid] = (time.monotonic(), *_cpu_seconds())


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    if nodeid not in _started:  # the xdist controller relays reports of tests it did not run
        return
    wall0, own0, children0 = _started.pop(nodeid)
    own1, children1 = _cpu_seconds()
    OUT.mkdir(parents=True, exist_ok=True)
    row = {
        "id": nodeid,
        "wall_s": round(time.monotonic() - wall0, 3),
        "own_cpu_s": round(own1 - own0, 3),
        "children_cpu_s": round(children1 - children0, 3),
    }
    with (OUT / f"cpu-{worker}.jsonl").open("a") as handle:
        handle.write(json.dumps(row) + "\n")


def report(folder: Path) -> str:
    """Wall and CPU seconds summed by test file, the most CPU first."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for path in sorted(folder.glob("cpu-*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            total = totals[row["id"].split("::")[0]]
            total[0] += row["wall_s"]
            total[1] += row["own_cpu_s"] + row["children_cpu_s"]
            total[2] += 1
    lines = [f"{'file':48} {'tests':>5} {'wall s':>8} {'CPU s':>8}"]
    for name, (wall, cpu, count) in sorted(totals.items(), key=lambda item: -item[1][1]):
        lines.append(f"{name:48} {count:5d} {wall:8.1f} {cpu:8.1f}")
    wall = sum(total[0] for total in totals.values())
    cpu = sum(total[1] for total in totals.values())
    lines.append(f"{'all':48} {sum(t[2] for t in totals.values()):5.0f} {wall:8.1f} {cpu:8.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
