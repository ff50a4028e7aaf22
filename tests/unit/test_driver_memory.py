"""What the sweep's driver keeps per finished cell, without Ray: the real app (records,
results.jsonl, rows) behind the scheduler, on stand-in actors that answer at once with a
simulated cell's outcome. Until the end a finished cell leaves its job, the key of its row
and its return (< 1 KB; its planned cell and its 3 KB row are not kept: the row waits in a
temporary file); at the end every finished job gets its row back, the one the outputs had."""

from __future__ import annotations

import gc
import io
import json
import os
import pickle
import tracemalloc

from hydra.core.utils import JobStatus

from hydra_plugins.ray_cells_launcher._app import Job
from jobs.config import from_values
from jobs.identity import PlannedCell
from sweep import finish
from sweep.app import CellSweepApp
from sweep.finish import RESULTS_JSONL, SweepResults
from sweep.status import ExitStatus
from tests.standins import ray_calls
from workers.run import run_planned

N = 300  # enough that a kept row (3 KB) or planned cell (5 KB) per cell would fail the bound
BASE = {"backend": {"name": "sim", "sim": {"noise": 0.0}}, "device": {"name": "npu"},
        "model": {"name": "llama3_8b"}, "seq": 8, "prompt_len": 32,
        "bench": {"name": "quick", "warmup": 1, "iterations": 2}}  # fmt: skip


class Canned:
    """The runner: one simulated cell's outcome, a fresh copy each time (as Ray's get)."""

    def __init__(self, planned: PlannedCell) -> None:
        self.blob = pickle.dumps(run_planned(planned))

    def __call__(self, planned: PlannedCell) -> object:
        return pickle.loads(self.blob)


def planned_jobs(sweep: object, n: int, first: int = 1) -> list[Job]:
    jobs = []
    for i in range(n):
        planned = PlannedCell.of(from_values({**BASE, "batch": first + i}))
        job = Job(i, [f"batch={first + i}", "seq=8"], os.path.join(str(sweep), planned.cell_dir))
        job.payload = planned
        jobs.append(job)
    return jobs


def sweep_app(sweep: object, canned: Canned, monkeypatch) -> CellSweepApp:
    SweepResults._OPEN.pop(str(sweep), None)
    app = CellSweepApp(plots=False, store=False, status=ExitStatus())
    monkeypatch.setattr(app, "runner", lambda: canned)
    app.results = SweepResults.for_dir(sweep)
    return app


def test_a_finished_cell_leaves_less_than_a_kilobyte_until_the_end(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # what is measured is memory
    # The results' two write buffers (1 MB each) are made once per sweep, not per cell: at
    # io's default size here, so that N cells do not share 2 MB between them.
    monkeypatch.setattr(finish, "_BUFFER", io.DEFAULT_BUFFER_SIZE)
    ray_calls.install(monkeypatch, npus=8, keep=False)
    canned = Canned(PlannedCell.of(from_values({**BASE, "batch": 1})))
    warm = sweep_app(tmp_path / "warm", canned, monkeypatch)  # imports and caches first
    warm_jobs = planned_jobs(tmp_path / "warm", 20, first=10**6)
    warm.results.register([j.payload.cell_dir for j in warm_jobs])
    ray_calls.scheduler(warm, 20).run(list(warm_jobs))
    warm.on_end(warm_jobs, str(tmp_path / "warm"), False)
    sweep = tmp_path / "sweep"
    app = sweep_app(sweep, canned, monkeypatch)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        jobs = planned_jobs(sweep, N)
        app.results.register([j.payload.cell_dir for j in jobs])
        ray_calls.scheduler(app, N).run(list(jobs))
        gc.collect()
        kept = (tracemalloc.get_traced_memory()[0] - before) / N
    finally:
        tracemalloc.stop()
    assert all(j.ret is not None and j.ret.status == JobStatus.COMPLETED for j in jobs)
    assert all(j.payload is None for j in jobs)  # the planned cells are gone
    # measured: ~0.93 KB per cell at 300 cells (0.83 at 1000)
    assert kept < 1500, f"{kept:.0f} bytes kept per finished cell"

    app.on_end(jobs, str(sweep), False)
    lines = [json.loads(x) for x in (sweep / RESULTS_JSONL).read_text().splitlines()]
    by_dir = {r["cell_dir"]: r for r in lines}
    assert len(by_dir) == N
    for job in jobs:  # the return value is the row again: its record's flat keys
        row = job.ret.return_value
        assert isinstance(row, dict) and row["status"] == "ok", row
        assert row["cell_id"] == by_dir[row["cell_dir"]]["cell_id"]
        assert row["batch"] == by_dir[row["cell_dir"]]["batch"]
    assert (sweep / "results.csv").is_file()
    for d in (sweep, tmp_path / "warm"):
        SweepResults._OPEN.pop(str(d), None)
