"""Scale of the orchestration itself, on the simulator (real Ray, real Hydra, real files).

    python bench/scale.py speedup   [--cells 16] [--npus 1,2,4,8]
    python bench/scale.py nodes     [--nodes 2,4,8] [--npus-per-node 8]
    python bench/scale.py many      [--cells 2000] [--npus 8]

speedup: the same 16 cells (each about 1 s of real time: backend.sim.time_scale) on 1, 2, 4, 8
         declared NPUs of one node; span = first cell start to last cell end, from the records;
         ideal = sum of the cells' own times / NPUs; "after start-up": per device, its cells'
         own time over its first cell start to its last cell end (what dispatch loses), and
         the stagger of the devices' first cells (what starting the workers costs).
nodes:   the same with 2..8 simulated Ray nodes (hydra.launcher.ray.sim_nodes) of 8 NPUs each.
many:    thousands of zero-length cells (time_scale 0): dispatch cost per cell, the driver's
         RSS sampled while it runs (flat or not), and the time to resume the finished sweep.
Each prints what it measured; docs/benchmarks.md records the figures and the commands.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
SIM = ["backend=sim", "device=npu", "model=llama3_8b", "bench=quick", "prompt_len=32",
       "backend.sim.noise=0"]  # fmt: skip


def ts(s: str) -> float:
    return dt.datetime.fromisoformat(s).timestamp()


def sweep(args: list[str], cwd: str, sample: bool = False) -> dict:
    """Run launch.py; return wall time, records, and RSS samples of the driver against the
    cells it has finished (counted from its one line per cell)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    args = [*args, "hydra.sweep.dir=multirun/sweep"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "launch.py"), *args], cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    done = [0]
    tail: list[str] = []

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            done[0] += line.startswith(("ok ", "failed ", "oom "))
            tail.append(line)
            del tail[:-200]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    samples: list[tuple[float, int, int]] = []  # (t, rss bytes, cells done)
    driver = psutil.Process(proc.pid)
    while proc.poll() is None:
        if sample:
            try:
                samples.append((time.perf_counter() - t0, driver.memory_info().rss, done[0]))
            except psutil.Error:
                pass
        time.sleep(1.0 if sample else 0.05)
    wall = time.perf_counter() - t0
    reader.join(timeout=10)
    if proc.returncode != 0:
        sys.exit(f"sweep failed ({proc.returncode}):\n{''.join(tail)[-3000:]}")
    sweep_dir = Path(cwd) / "multirun" / "sweep"
    rows = [json.loads(x) for x in (sweep_dir / "results.jsonl").open()]
    return {"wall": wall, "rows": rows, "samples": samples}


def driver_cpu(args: list[str], cwd: str) -> tuple[float, float]:
    """(wall s, CPU s of the driver process and what it waited for) of one launch."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    args = [*args, "hydra.sweep.dir=multirun/sweep"]
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, str(ROOT / "launch.py"), *args], cwd=cwd, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.perf_counter() - t0, cpu


def span(rows: list[dict]) -> tuple[float, float]:
    start = min(ts(r["started_at"]) for r in rows)
    end = max(ts(r["finished_at"]) for r in rows)
    own = sum(ts(r["finished_at"]) - ts(r["started_at"]) for r in rows)
    return end - start, own


def steady(rows: list[dict]) -> tuple[float, float]:
    """(efficiency once every device has its worker, the last device's first start - the
    first's): per device, its cells' own time over its first start to its last end."""
    by: dict[tuple, list[tuple[float, float]]] = {}
    for r in rows:
        key = (r.get("ray_node_id"), str(r.get("visible_devices")))
        by.setdefault(key, []).append((ts(r["started_at"]), ts(r["finished_at"])))
    busy = sum(e - b for v in by.values() for b, e in v)
    held = sum(max(e for _, e in v) - min(b for b, _ in v) for v in by.values())
    firsts = [min(b for b, _ in v) for v in by.values()]
    return busy / held, max(firsts) - min(firsts)


def cmd_speedup(a: argparse.Namespace, extra: list[str], label: str) -> None:
    batches = ",".join(str(b) for b in range(1, a.cells + 1))
    base = None
    print(f"{label}: {a.cells} cells, seq=32, time_scale={a.scale}")
    print("devices | wall s | span s | sum of cell s | ideal s | speed-up | efficiency | "
          "after start-up | start-up stagger s")  # fmt: skip
    for n, args in extra:
        with tempfile.TemporaryDirectory() as cwd:
            cmd = ["-m", f"batch={batches}", "seq=32", *SIM,
                   f"backend.sim.time_scale={a.scale}", *args]  # fmt: skip
            r = sweep(cmd, cwd)
        sp, own = span(r["rows"])
        base = base or sp
        ideal = own / n
        eff, stagger = steady(r["rows"])
        print(f"{n:7d} | {r['wall']:6.1f} | {sp:6.2f} | {own:13.2f} | {ideal:7.2f} | "
              f"{base / sp:8.2f} | {ideal / sp:10.2f} | {eff:14.2f} | {stagger:18.2f}")  # fmt: skip
        print(f"        command: python launch.py {' '.join(cmd)}")


def kept_per_cell(records: list[dict]) -> tuple[float, float, int]:
    """Bytes the driver keeps per cell, by tracemalloc: (its planned cell, its summary row,
    the row's keys), each made again here from the sweep's records as the driver makes them."""
    import copy
    import gc
    import tracemalloc

    sys.path.insert(0, str(ROOT))
    from sweep.finish import summary_row
    from sweep.plan import plan_cell

    sizes = []
    for make in (lambda r: plan_cell(copy.deepcopy(r["config"]), lambda: r["device"]),
                 lambda r: summary_row(r, {})):  # fmt: skip
        make(records[0])  # imports and caches outside the measurement
        gc.collect()
        tracemalloc.start()
        kept = [make(r) for r in records]
        gc.collect()
        sizes.append(tracemalloc.get_traced_memory()[0] / len(kept))
        tracemalloc.stop()
        del kept
    return sizes[0], sizes[1], len(summary_row(records[0], {}))


def cmd_many(a: argparse.Namespace) -> None:
    per = max(1, a.cells // 2)
    cmd = ["-m", f"batch=range(1,{per + 1})", "seq=8,16", *SIM, "backend.sim.time_scale=0",
           f"+hydra.launcher.ray.resources.NPU={a.npus}", "hydra.launcher.app_options.plots=false"]  # fmt: skip
    one = ["-m", "batch=1", "seq=8", *SIM, "backend.sim.time_scale=0",
           f"+hydra.launcher.ray.resources.NPU={a.npus}", "hydra.launcher.app_options.plots=false"]  # fmt: skip
    with tempfile.TemporaryDirectory() as cwd:
        r = sweep(cmd, cwd, sample=True)
        rows = r["rows"]
        sp, own = span(rows)
        resumes = [driver_cpu(cmd, cwd) for _ in range(3)]
    with tempfile.TemporaryDirectory() as cwd:
        sweep(one, cwd)
        fixed = [driver_cpu(one, cwd) for _ in range(3)]
    n = len(rows)
    print(f"command: python launch.py {' '.join(cmd)}")
    print(f"cells: {n} ({sum(x['status'] == 'ok' for x in rows)} ok), NPUs declared: {a.npus}")
    print(f"wall: {r['wall']:.1f} s; run phase (first cell start -> last cell end): {sp:.1f} s")
    print(f"device-slot time per cell (run phase x NPUs / cells): {sp * a.npus / n * 1000:.1f} ms; "
          f"measure() itself: {own / n * 1000:.2f} ms per cell")  # fmt: skip
    started = [x for x in r["samples"] if x[2] > 0]
    if started:
        marks = [started[max(0, int(len(started) * f) - 1)] for f in (0.1, 0.25, 0.5, 0.75, 1.0)]
        print("driver RSS while cells finish (cells done: MiB): " + ", ".join(
            f"{d}: {rss / 2**20:.0f}" for _, rss, d in marks))  # fmt: skip
    peak = max(x[1] for x in r["samples"]) if r["samples"] else 0
    print(f"driver peak RSS: {peak / 2**20:.0f} MiB")
    planned, row, keys = kept_per_cell(rows)
    print(f"kept by the driver per cell (tracemalloc): planned cell {planned / 1000:.1f} KB, "
          f"summary row {row / 1000:.1f} KB ({keys} keys)")  # fmt: skip
    wall_n, cpu_n = min(resumes, key=lambda x: x[1])
    wall_1, cpu_1 = min(fixed, key=lambda x: x[1])
    print(
        f"resume of the finished sweep (0 cells run), best of 3: {wall_n:.2f} s wall, "
        f"{cpu_n:.2f} s driver CPU; a 1-cell sweep: {wall_1:.2f} s wall, {cpu_1:.2f} s CPU"
    )
    print(
        f"resume cost per cell: {(wall_n - wall_1) / (n - 1) * 1000:.2f} ms wall, "
        f"{(cpu_n - cpu_1) / (n - 1) * 1000:.2f} ms driver CPU"
    )


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from jobs.values import finite_float

    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["speedup", "nodes", "many"])
    ap.add_argument("--cells", type=int, default=16)
    ap.add_argument("--npus", default="1,2,4,8")
    ap.add_argument("--nodes", default="2,4,8")
    ap.add_argument("--npus-per-node", type=int, default=8)
    ap.add_argument("--scale", type=finite_float, default=0.6)
    a = ap.parse_args()
    if a.what == "speedup":
        runs = [(int(k), [f"+hydra.launcher.ray.resources.NPU={k}"]) for k in a.npus.split(",")]
        cmd_speedup(a, runs, "one node")
    elif a.what == "nodes":
        k = a.npus_per_node
        runs = [(int(n) * k, [f"hydra.launcher.ray.sim_nodes={n}", "hydra.launcher.ray.num_cpus=1", f"+hydra.launcher.ray.resources.NPU={k}"])
                for n in a.nodes.split(",")]  # fmt: skip
        cmd_speedup(a, runs, f"simulated nodes of {k} NPUs")
    else:
        a.npus = int(a.npus.split(",")[-1])
        cmd_many(a)


if __name__ == "__main__":
    main()
