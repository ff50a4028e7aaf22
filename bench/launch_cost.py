"""What one `python launch.py ...` costs its own process: CPU (user + system) and peak RSS,
over several runs, each in a fresh temporary directory (nothing resumes).

    python bench/launch_cost.py --runs 8 -- -m backend=sim batch=1,2 seq=8 hydra/launcher=basic
    python bench/launch_cost.py --runs 3 --machine -- -m backend=sim batch=1,2 seq=8 \\
        hydra.launcher.app_options.plots=false

The figures are the launch process's own (`os.wait4`): a private Ray's daemons are not its
children, so `--machine` also reports the whole machine's busy core-seconds over each run
(`/proc/stat`, Linux; run it on a quiet machine). For a before/after, run it in two checkouts
(a `git worktree` of the commit before) and compare the medians, interleaving the runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _busy_ticks() -> int:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # all but idle and iowait


def one(args: list[str], machine: bool) -> dict[str, float]:
    """One launch in a fresh directory: its CPU seconds, peak RSS (MB), machine busy core-s."""
    with tempfile.TemporaryDirectory(prefix="launch-cost-") as cwd:
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        before = _busy_ticks() if machine else 0
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "launch.py"), *args, f"hydra.sweep.dir={cwd}/sweep"],
            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        busy = (_busy_ticks() - before) / os.sysconf("SC_CLK_TCK") if machine else float("nan")
    if proc.returncode != 0:
        raise SystemExit(f"launch_cost: error: the launch exited {proc.returncode}: {args}")
    return {
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
        "busy_core_s": busy,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--machine", action="store_true", help="also the machine's busy core-s")
    ap.add_argument("launch_args", nargs=argparse.REMAINDER, help="-- then launch.py's arguments")
    a = ap.parse_args()
    args = a.launch_args[1:] if a.launch_args[:1] == ["--"] else a.launch_args
    if a.runs < 1 or not args:
        ap.error("--runs must be >= 1 and launch.py's arguments follow --")
    runs = [one(args, a.machine) for _ in range(a.runs)]
    print(f"launch.py {' '.join(args)}: {a.runs} runs")
    for key in ("cpu_s", "rss_mb", "busy_core_s") if a.machine else ("cpu_s", "rss_mb"):
        values = sorted(r[key] for r in runs)
        print(f"  {key}: median {statistics.median(values):.2f} "
              f"(min {values[0]:.2f}, max {values[-1]:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
