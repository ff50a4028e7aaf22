"""The driver alone at scale: 100,000 cells over 1,000 declared cards, without Ray.

    python bench/scale_driver.py [--cells 1000,10000,100000] [--cards 8,100,1000]
                                 [--cards-per-node 8] [--memory] [--dir DIR]
                                 [--files as-is|driver|none] [--keep]

Runs `python launch.py -m "batch=range(1,N/2+1)" seq=8,16 backend=sim device=npu
model=llama3_8b bench=quick prompt_len=32 backend.sim.noise=0 backend.sim.time_scale=0
hydra.launcher.app_options.plots=false` in a process of its own per (cells, cards), through
Hydra, the `cells` launcher, the scheduler and the sweep's app as they are, with Ray's few
calls answered in the process: the cluster is the declared cards on nodes of
``--cards-per-node`` (what ``ray.nodes()`` would list), each actor is placed on a free card
and answers at once, and every cell returns one canned outcome of the simulator (measured
once, before the clock starts), deserialised per cell as `ray.get` does; each payload is
pickled per dispatch as `.remote()` does. So the cells take no time and the cluster costs
nothing: what is timed is the driver, as fast as it can go. Ray's own work per task
(submitting it, its object store, `ray.wait` over the refs in flight) is not in it;
`bench/scale.py many` measures the whole path with real Ray at 2,000 cells.

Phases (wall time, and user + kernel CPU time of the process):
  plan:  the launcher's launch until the scheduler starts: every job planned into a cell and
         validated, resume's check for a finished record, the results registered;
  run:   the scheduler: every job queued, dispatched (its .hydra files made), its outcome
         taken back and recorded (record.json, results.jsonl, the console line); from 256
         cells on the files are written by the sweep's writer process (sweep/writer.py),
         whose CPU is not in the driver's figures (writer_cpu_ms: its own);
  end:   the sweep's outputs (results.jsonl, csv, report.md/html, the results store);
  hydra: the rest of the process (Hydra composing the sweep and expanding its jobs).
Each phase's share in the cyclic garbage collector (PHASE_gc_ms, wall, per cell) is timed by a
gc callback. Dispatch rate: cells / run wall time. Memory (--memory: tracemalloc, which slows
Python down, so its times are not reported): what the driver holds per cell once it is
planned, and once every cell has finished (before the outputs, which are built in memory at
the end), as the sweep's bytes / cells and, between two sizes given in --cells, per further
cell (what each cell adds, without what is allocated once per launch); RSS at those points
and its peak are reported in either mode.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIM = ["backend=sim", "device=npu", "model=llama3_8b", "bench=quick", "prompt_len=32",
       "backend.sim.noise=0", "backend.sim.time_scale=0"]  # fmt: skip


def _rss() -> tuple[int, int]:
    """(RSS, peak RSS) of this process, bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line[:5]] = int(line.split()[1]) * 1024
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


class _Ref:
    """An object ref whose value is there already."""

    __slots__ = ("actor", "outcome")

    def __init__(self, actor: Any, outcome: bytes | None) -> None:
        self.actor, self.outcome = actor, outcome


class _Actor:
    """A JobWorker placed on one declared card; it answers at once."""

    def __init__(self, cluster: Cluster, node: int, card: int) -> None:
        self.cluster, self.node, self.card = cluster, node, card
        self.where = self._Method(lambda: _Ref(self, None))
        self.run_direct = self._Method(self._run)

    class _Method:
        def __init__(self, fn: Any) -> None:
            self.remote = fn

    def _run(self, runner: Any, payload: Any, env: dict[str, str]) -> _Ref:
        pickle.dumps((runner, payload, env))  # what .remote() does with the arguments
        return _Ref(self, self.cluster.outcome)

    def where_value(self) -> dict[str, Any]:
        return {
            "ray_node_id": self.cluster.node_id(self.node),
            "pid": 1000 + self.node,
            "host": f"node{self.node}",
            "visible": {"ASCEND_RT_VISIBLE_DEVICES": str(self.card)},
        }


class Cluster:
    """Declared cards on nodes; Ray's calls the launcher makes, answered in this process."""

    def __init__(self, cards: int, per_node: int) -> None:
        self.cards, self.per_node = cards, per_node
        n_nodes = -(-cards // per_node)
        self.free = [(n, c) for n in range(n_nodes) for c in range(per_node)][:cards]
        self.free.reverse()
        self.nodes = [
            {
                "NodeID": self.node_id(n),
                "Alive": True,
                "NodeManagerAddress": f"10.0.{n // 250}.{n % 250 + 1}",
                "Resources": {"CPU": 16.0, "NPU": float(min(per_node, cards - n * per_node))},
            }
            for n in range(n_nodes)
        ]
        self.outcome: bytes | None = None  # the canned outcome, pickled

    @staticmethod
    def node_id(n: int) -> str:
        return f"{n:056x}"

    # --- what the scheduler calls -----------------------------------------------------
    def options(self, **opts: Any) -> Cluster:
        return self

    def remote(self, *ctx: Any) -> _Actor:
        node, card = self.free.pop()
        return _Actor(self, node, card)

    def wait(self, refs: list, num_returns: int = 1, timeout: float | None = None) -> tuple:
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: _Ref) -> Any:
        where = ref.actor.where_value()
        if ref.outcome is None:
            return where
        return (True, pickle.loads(ref.outcome)), where

    def kill(self, actor: _Actor, no_restart: bool = True) -> None:
        self.free.append((actor.node, actor.card))


def install(cluster: Cluster) -> dict[str, list]:
    """Answer Ray's calls from ``cluster`` and time the phases; returns the marks."""
    import ray

    from hydra_plugins.ray_cells_launcher import _cluster, _core, _scheduler
    from sweep.app import CellSweepApp
    from workers.run import run_planned

    fake = argparse.Namespace(
        wait=cluster.wait, get=cluster.get, kill=cluster.kill, exceptions=ray.exceptions
    )
    _scheduler.ray = fake
    _scheduler.JobWorker = cluster
    _cluster.start = lambda *a, **k: _cluster.Cluster(owned=False, used="declared (bench)")
    _cluster.alive_nodes = lambda: cluster.nodes

    marks: dict[str, list] = {}
    memory = os.environ.get("SCALE_DRIVER_MEMORY") == "1"
    files = os.environ.get("SCALE_DRIVER_FILES", "as-is")
    if files != "as-is":  # --files: the sweep's files in the driver's process, or not written
        import sweep.app

        sweep.app.MIN_CELLS = 10**9  # no writer process
        if files == "none":  # the bytes still made (job_files, job_record), never written
            sweep.app.write_hydra_files = lambda *a: None
            sweep.app.write_record_files = lambda *a: None
    skew = [0]  # traced bytes that are the bench's own (the canned outcome's imports)

    def traced() -> tuple[int, int]:
        import tracemalloc

        now, peak = tracemalloc.get_traced_memory() if memory else (0, 0)
        return now - skew[0], peak - skew[0]

    gc_s = [0.0, 0.0]  # seconds in the cyclic garbage collector; when the current one began

    def in_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_s[1] = time.perf_counter()
        else:
            gc_s[0] += time.perf_counter() - gc_s[1]

    gc.callbacks.append(in_gc)

    def mark(name: str) -> None:
        t = os.times()
        marks[name] = [time.perf_counter(), t.user, t.system, *traced(), *_rss(), gc_s[0],
                       t.children_user + t.children_system]  # fmt: skip

    launch, run, on_end = _core._launch, _scheduler.Scheduler.run, CellSweepApp.on_end

    def timed_launch(*a: Any) -> Any:
        if memory:
            import tracemalloc

            tracemalloc.start()
        mark("start")
        try:
            return launch(*a)
        finally:
            mark("done")

    def timed_run(self: Any, todo: list) -> None:
        before = traced()[0]
        cluster.outcome = pickle.dumps(run_planned(todo[0].payload))
        skew[0] += traced()[0] - before
        mark("run")
        try:
            run(self, todo)
        finally:
            mark("ran")

    def timed_end(self: Any, *a: Any) -> None:
        if memory:
            import tracemalloc

            tracemalloc.reset_peak()
        mark("end")
        on_end(self, *a)
        mark("ended")

    _core._launch = timed_launch
    _scheduler.Scheduler.run = timed_run
    CellSweepApp.on_end = timed_end
    return marks


def one(cells: int, cards: int, per_node: int, out: str) -> None:
    """One sweep in this process (a child of :func:`main`); its figures go to ``out``."""
    t0 = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    marks = install(Cluster(cards, per_node))
    import runpy

    from sweep.status import PROCESS

    sweep_dir = os.path.abspath("sweep")
    sys.argv = [
        str(ROOT / "launch.py"), "-m", f"batch=range(1,{cells // 2 + 1})", "seq=8,16", *SIM,
        "hydra.launcher.app_options.plots=false", f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")  # python launch.py, in this process
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    total = time.perf_counter() - t0
    with open(os.path.join(sweep_dir, "results.jsonl")) as f:
        lines = sum(1 for _ in f)
    ok = PROCESS.code() == 0
    Path(out).write_text(json.dumps({"marks": marks, "total_s": total, "records": lines, "ok": ok}))


def figures(cells: int, cards: int, r: dict[str, Any], memory: bool) -> dict[str, Any]:
    m = r["marks"]

    def phase(a: str, b: str) -> tuple[float, float, float]:
        """(wall, user, kernel) seconds between two marks."""
        return m[b][0] - m[a][0], m[b][1] - m[a][1], m[b][2] - m[a][2]

    plan, run, end = phase("start", "run"), phase("run", "ran"), phase("end", "ended")
    hydra = r["total_s"] - phase("start", "done")[0]
    f = {"cells": cells, "cards": cards, "records": r["records"], "all_ok": r["ok"]}
    for name, (wall, user, kernel) in (("plan", plan), ("run", run), ("end", end)):
        f[f"{name}_ms"] = wall / cells * 1000
        f[f"{name}_cpu_ms"] = (user + kernel) / cells * 1000
        f[f"{name}_kernel_ms"] = kernel / cells * 1000
    for name, a, b in (("plan", "start", "run"), ("run", "run", "ran"), ("end", "end", "ended")):
        f[f"{name}_gc_ms"] = (m[b][7] - m[a][7]) / cells * 1000  # of its wall time
    # The writer process's CPU (a child, counted once the sweep's end has waited for it).
    f["writer_cpu_ms"] = (m["ended"][8] - m["run"][8]) / cells * 1000
    f["hydra_ms"] = hydra / cells * 1000
    f["dispatch_per_s"] = cells / run[0]
    f["wall_s"] = r["total_s"]
    f["rss_planned_mib"] = m["run"][5] / 2**20
    f["rss_finished_mib"] = m["end"][5] / 2**20
    f["rss_done_mib"] = m["ended"][5] / 2**20
    f["rss_peak_mib"] = m["ended"][6] / 2**20
    if memory:
        f["planned_total_b"] = m["run"][3] - m["start"][3]
        f["kept_total_b"] = m["end"][3] - m["start"][3]
        f["planned_b"] = f["planned_total_b"] / cells
        f["kept_b"] = f["kept_total_b"] / cells
        f["end_peak_mib"] = m["ended"][4] / 2**20
    return f


def marginal(rows: list[dict[str, Any]]) -> None:
    """Bytes per cell between two sizes of sweep on the same cards: what each further cell
    costs. A whole sweep's bytes / cells also counts what is allocated once (modules
    imported after the launch started, tables grown in steps), which a small sweep spreads
    over few cells."""
    by_cards: dict[int, list[dict[str, Any]]] = {}
    for f in rows:
        by_cards.setdefault(f["cards"], []).append(f)
    lines = []
    for cards, fs in by_cards.items():
        fs = sorted(fs, key=lambda f: f["cells"])
        for a, b in zip(fs, fs[1:], strict=False):
            n = b["cells"] - a["cells"]
            lines.append(f"{a['cells']} -> {b['cells']} | {cards} | "
                         f"{(b['planned_total_b'] - a['planned_total_b']) / n:.0f} | "
                         f"{(b['kept_total_b'] - a['kept_total_b']) / n:.0f}")  # fmt: skip
    if lines:
        print("\ncells | cards | planned B per further cell | kept B per further finished cell")
        print("\n".join(lines))


def run_one(cells: int, cards: int, a: argparse.Namespace, cwd: str) -> dict[str, Any]:
    """One sweep in a process of its own, in ``cwd``; its figures."""
    os.mkdir(cwd)
    out = os.path.join(cwd, "figures.json")
    env = dict(os.environ, SCALE_DRIVER_FILES=a.files)
    env["SCALE_DRIVER_MEMORY"] = "1" if a.memory else "0"
    cmd = [sys.executable, __file__, "--one", str(cells), str(cards),
           "--cards-per-node", str(a.cards_per_node), "--out", out]  # fmt: skip
    with open(os.path.join(cwd, "driver.log"), "w") as log:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=log, stderr=log)
    if proc.returncode != 0:
        tail = Path(cwd, "driver.log").read_text()[-3000:]
        sys.exit(f"{cells} cells x {cards} cards failed ({proc.returncode}):\n{tail}")
    f = figures(cells, cards, json.loads(Path(out).read_text()), a.memory)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in f.items()}),
          flush=True)  # fmt: skip
    return f


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", default="1000,10000,100000")
    ap.add_argument("--cards", default="8,100,1000")
    ap.add_argument("--cards-per-node", type=int, default=8)
    ap.add_argument("--memory", action="store_true", help="tracemalloc (times not reported)")
    ap.add_argument(
        "--files",
        choices=("as-is", "driver", "none"),
        default="as-is",
        help="the sweep's files as the sweep writes them (a writer process from 256 cells on), "
        "all by the driver itself, or not written at all (their bytes still made: what the "
        "file system calls cost)",
    )
    ap.add_argument(
        "--dir",
        help="where the sweeps are written (default: the temporary directory); each in a "
        "directory of its own, all removed only once every sweep has run: ext4 skips inodes "
        "deleted in the last minutes when it makes new ones, so a sweep that follows the "
        "removal of another pays for it in kernel time (docs/benchmarks.md section 4)",
    )
    ap.add_argument(
        "--keep",
        action="store_true",
        help="leave the sweeps where they were written (e.g. for bench/end_outputs.py)",
    )
    ap.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        one(a.one[0], a.one[1], a.cards_per_node, a.out)
        return
    rows = []
    root = tempfile.mkdtemp(prefix="scale-driver-", dir=a.dir)
    try:
        for cells in (int(x) for x in a.cells.split(",")):
            for cards in (int(x) for x in a.cards.split(",")):
                rows.append(run_one(cells, cards, a, os.path.join(root, f"{cells}x{cards}")))
    finally:
        if a.keep:
            print(f"the sweeps are in {root}/CELLSxCARDS/sweep", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print()
    if a.memory:
        print("cells | cards | planned B/cell | kept B/cell (all finished) | RSS planned / "
              "finished / done MiB | RSS peak MiB | traced peak in the end MiB")  # fmt: skip
        for f in rows:
            print(f"{f['cells']} | {f['cards']} | {f['planned_b']:.0f} | {f['kept_b']:.0f} | "
                  f"{f['rss_planned_mib']:.0f} / {f['rss_finished_mib']:.0f} / "
                  f"{f['rss_done_mib']:.0f} | {f['rss_peak_mib']:.0f} | {f['end_peak_mib']:.0f}")  # fmt: skip
        marginal(rows)
        return
    print("cells | cards | plan ms/cell | run ms/cell: wall, CPU (kernel) | end ms/cell (kernel) | "
          "dispatch cells/s | Hydra ms/cell | wall s | RSS finished / done / peak MiB")  # fmt: skip
    for f in rows:
        print(f"{f['cells']} | {f['cards']} | {f['plan_ms']:.3f} | {f['run_ms']:.3f}, "
              f"{f['run_cpu_ms']:.3f} ({f['run_kernel_ms']:.3f}) | {f['end_ms']:.3f} "
              f"({f['end_kernel_ms']:.3f}) | "
              f"{f['dispatch_per_s']:.0f} | {f['hydra_ms']:.3f} | {f['wall_s']:.1f} | "
              f"{f['rss_finished_mib']:.0f} / {f['rss_done_mib']:.0f} / {f['rss_peak_mib']:.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
