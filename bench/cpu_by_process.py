"""Where a command's CPU goes, by kind of process, including the processes it does not wait
for (Ray's daemons, reparented to init, are not in `time`'s user/sys figures).

    python bench/cpu_by_process.py -- python -m pytest -q
    python bench/cpu_by_process.py --interval 0.2 -- python bench/launch_cost.py --runs 3 -- ...

Runs the command and reads every process's user + system time from /proc/<pid>/stat every
``--interval`` seconds (1 by default) until it ends (a process's last reading before it exits
counts; one that lives less than an interval may be missed; a process is classified by the
last command line it showed, Ray's process titles such as ``ray::JobWorker`` included), and the whole machine's busy time from /proc/stat. Processes
that were running before the command started count only what they used after it. Linux only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter

TICK = os.sysconf("SC_CLK_TCK")
KINDS = [  # (words in the command line, kind), first match wins
    ("launch.py", "launch.py drivers"),
    ("exec(eval(sys.stdin.readline()))", "pytest workers (xdist)"),
    ("pytest", "pytest"),
    ("ray::JobWorker", "Ray actors (cells)"),
    ("ray::IDLE", "Ray idle workers"),
    ("default_worker.py", "Ray workers (before their first task)"),
    ("ray::DashboardAgent", "Ray dashboard agent"),
    ("ray::RuntimeEnvAgent", "Ray runtime-env agent"),
    ("log_monitor", "Ray log monitor"),
    ("dashboard.py", "Ray dashboard"),
    ("raylet", "Ray raylet"),
    ("gcs_server", "Ray GCS"),
    ("monitor.py", "Ray monitor"),
    ("bin/ray ", "ray CLI"),
    ("transformers", "transformers serve"),
    ("paced", "paced stand-in servers"),
    ("-m aggregate", "python -m aggregate"),
]


def _sample(seen: dict) -> None:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        key = (pid, fields[19])  # pid and start time: a reused pid is another process
        if not cmd.strip() and key in seen:  # exiting: its cmdline is gone, not its kind
            cmd = seen[key][1]
        seen[key] = (cpu, cmd)


def _busy() -> float:
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK


def main(argv: list[str]) -> int:
    interval = 1.0
    if argv[:1] == ["--interval"] and len(argv) > 1:
        try:
            interval = float(argv[1])
        except ValueError:
            interval = 0.0
        if not 0.01 <= interval <= 60:
            print("cpu_by_process: error: --interval: seconds from 0.01 to 60", file=sys.stderr)
            return 2
        argv = argv[2:]
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        print("usage: python bench/cpu_by_process.py [--interval S] -- COMMAND ...",
              file=sys.stderr)  # fmt: skip
        return 2
    seen: dict = {}
    _sample(seen)
    before = {k: v[0] for k, v in seen.items()}  # what the running processes had already
    busy0, t0 = _busy(), time.monotonic()
    proc = subprocess.Popen(argv)
    while proc.poll() is None:
        _sample(seen)
        time.sleep(interval)
    wall, busy = time.monotonic() - t0, _busy() - busy0
    kinds: Counter = Counter()
    counts: Counter = Counter()
    for key, (last, cmd) in seen.items():
        used = last - before.get(key, 0.0)
        if used <= 0:
            continue
        kind = next((k for words, k in KINDS if words in cmd), "other" if cmd else "kernel/exited")
        kinds[kind] += used
        counts[kind] += 1
    cores = os.cpu_count() or 1
    print(f"wall {wall:.0f} s, exit {proc.returncode}; machine busy {busy:.0f} of "
          f"{wall * cores:.0f} core-seconds ({100 * busy / (wall * cores):.0f}%)")  # fmt: skip
    print("| kind | processes | CPU s |\n|---|---|---|")
    for kind, cpu in kinds.most_common():
        print(f"| {kind} | {counts[kind]} | {cpu:.1f} |")
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
