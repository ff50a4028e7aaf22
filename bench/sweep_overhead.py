"""What the sweep machinery costs on one device.

Runs `python launch.py -m batch=... seq=...` for real (local Ray, tiny model, CPU) into a
fresh directory, then again (resume: 0 cells run), and prints:
  - wall time of the sweep command, and the sum of the cells' own time
    (finished_at - started_at of each record, model loading included);
  - overhead ratio = wall / sum of cell time;
  - fixed start-up cost = first cell's start - command start;
  - model loads per (model, backend) (cells whose record says model_reused = false);
  - wall time of the resumed run.

    python bench/sweep_overhead.py [--batches 1,2,4,8,16] [--seqs 64,128,256] [--bench seed]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ts(s: str) -> float:
    return dt.datetime.fromisoformat(s).timestamp()


def run(args: list[str], cwd: str) -> tuple[float, float, subprocess.CompletedProcess]:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    start = time.time()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "launch.py"), *args], cwd=cwd, env=env,
        capture_output=True, text=True,
    )  # fmt: skip
    return start, time.perf_counter() - t0, proc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,2,4,8,16")
    ap.add_argument("--seqs", default="64,128,256")
    ap.add_argument("--bench", default="seed")
    ap.add_argument("--extra", nargs="*", default=[])
    a = ap.parse_args()
    args = ["-m", f"batch={a.batches}", f"seq={a.seqs}", f"bench={a.bench}", *a.extra]
    with tempfile.TemporaryDirectory() as cwd:
        start, wall, proc = run(args, cwd)
        if proc.returncode != 0:
            sys.exit(f"sweep failed:\n{proc.stderr[-3000:]}")
        # the sweep's directory is named from its overrides: the only one under multirun/
        (results,) = Path(cwd).glob("multirun/*/results.jsonl")
        rows = [json.loads(x) for x in results.open()]
        cell_s = sum(ts(r["finished_at"]) - ts(r["started_at"]) for r in rows)
        first = min(ts(r["started_at"]) for r in rows)
        loads = collections.Counter(
            (r["model"], r["backend"]) for r in rows if not r.get("model_reused")
        )
        _, wall2, proc2 = run(args, cwd)
    print(f"command: python launch.py {' '.join(args)}")
    print(f"cells: {len(rows)} ({sum(r['status'] == 'ok' for r in rows)} ok)")
    print(f"sweep wall time: {wall:.1f} s")
    print(f"sum of cells' own time: {cell_s:.1f} s")
    print(f"overhead ratio (wall / cells): {wall / cell_s:.3f}")
    print(f"fixed start-up (command start -> first cell start): {first - start:.1f} s")
    for (model, backend), n in loads.items():
        print(f"model loads: {model} on {backend}: {n}")
    print(f"resumed run (0 cells to run) wall time: {wall2:.1f} s, exit {proc2.returncode}")


if __name__ == "__main__":
    main()
