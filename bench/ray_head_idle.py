"""What an idle Ray head costs: the CPU of every process under `ray start --head --block`
(started as the tests' shared clusters start theirs, tests/ray_head.py: 2 CPUs, 4 declared
NPUs, no dashboard) over a window in which nothing is submitted, by process.

    python bench/ray_head_idle.py --window 40
    python bench/ray_head_idle.py --window 40 REPORTER_UPDATE_INTERVAL_MS=60000 METRICS_RECORD_INTERVAL_S=60

KEY=VALUE arguments go into the head's environment (Ray reads its intervals from there).
Per process: user + system time at the window's end less at its start (psutil); a process
that starts or ends inside the window counts only what it had then. Linux; a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.ray_head import start_head, wait_ready  # noqa: E402


def _name(p: psutil.Process) -> str:
    """The process's name; a Python process by its script or module."""
    name = p.name()
    if name.startswith("python"):
        args = [a for a in p.cmdline()[1:] if not a.startswith("-")]
        name = Path(args[0]).name if args else name
    return name


def cpu_by_process(root: psutil.Process) -> dict[int, tuple[str, float]]:
    out = {}
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            out[p.pid] = (_name(p), t.user + t.system)
        except psutil.Error:
            continue
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--window", type=float, default=40.0, help="seconds measured (idle)")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds waited after ready")
    ap.add_argument("env", nargs="*", metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    extra = dict(kv.split("=", 1) for kv in args.env)
    with tempfile.TemporaryDirectory() as tmp:
        head = start_head({**os.environ, **extra}, Path(tmp) / "ray-start.log", 2, {"NPU": 4})
        try:
            wait_ready(head)
            time.sleep(args.settle)
            root = psutil.Process(head.proc.pid)
            before = cpu_by_process(root)
            time.sleep(args.window)
            after = cpu_by_process(root)
        finally:
            head.end()
    by_name: Counter[str] = Counter()
    for pid, (name, cpu) in after.items():
        by_name[name] += cpu - before.get(pid, (name, 0.0))[1]
    total = sum(by_name.values())
    print(f"env {extra or '{}'}: {total:.2f} core-s over {args.window:.0f} s "
          f"({100 * total / args.window:.1f}% of a core)")  # fmt: skip
    for name, cpu in by_name.most_common():
        print(f"  {cpu:6.2f}  {name}")


if __name__ == "__main__":
    main()
