"""A pytest plugin: the whole machine's CPU time (and the wall time) of each test, for finding
what a test costs with everything it starts (subprocesses, servers, Ray's daemons).

    PYTHONPATH=bench python -m pytest -q -p no:cacheprovider -p pytest_cpu_per_test -n 0 \\
        tests/integration
    python bench/pytest_cpu_per_test.py [FILE]      # the sums by test file, most CPU first

Each test's figure is the machine's busy time (/proc/stat: all but idle and iowait) from the
start of its setup to the end of its teardown, so run it with `-n 0` on an otherwise quiet
machine: what else runs (another test process included) counts too, and a session fixture's
start (a shared Ray head) counts to the first test that uses it. One line per test is
appended to FILE (``$CPU_PER_TEST``, default cpu_per_test.tsv in the current directory):
node id, wall seconds, busy core-seconds. Linux only."""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict

import pytest

OUT = os.environ.get("CPU_PER_TEST", "cpu_per_test.tsv")
TICK = os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """Core-seconds the machine has been busy since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICK  # less idle and iowait


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    busy, wall = busy_seconds(), time.monotonic()
    yield
    with open(OUT, "a") as f:
        f.write(f"{item.nodeid}\t{time.monotonic() - wall:.2f}\t{busy_seconds() - busy:.2f}\n")


def by_file(path: str) -> list[tuple[float, float, str]]:
    """(busy core-seconds, wall seconds, test file), most CPU first."""
    cpu: dict[str, float] = defaultdict(float)
    wall: dict[str, float] = defaultdict(float)
    with open(path) as f:
        for line in f:
            node, w, c = line.rstrip("\n").split("\t")
            name = node.split("::")[0]
            cpu[name] += float(c)
            wall[name] += float(w)
    return sorted(((cpu[k], wall[k], k) for k in cpu), reverse=True)


if __name__ == "__main__":
    rows = by_file(sys.argv[1] if len(sys.argv) > 1 else OUT)
    print(f"{'core-s':>8} {'wall s':>8}  file")
    for c, w, name in rows:
        print(f"{c:8.1f} {w:8.1f}  {name}")
    print(f"{sum(r[0] for r in rows):8.1f} {sum(r[1] for r in rows):8.1f}  total")
