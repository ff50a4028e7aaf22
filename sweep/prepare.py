"""Planning a sweep before anything starts (the app's ``prepare`` hook): every job becomes a
validated :class:`~jobs.identity.PlannedCell` with its output directory; identical cells run
once, and a cell with bench.repeats = N becomes N jobs."""

from __future__ import annotations

import functools
import os

from hydra_plugins.ray_cells_launcher.app import Job, Planner
from jobs.config import ConfigError
from jobs.identity import PlannedCell
from sweep.ignored import ignored_settings, warn
from sweep.plan import auto_device, plan_cell, task_values
from sweep.status import die
from sweep.validate import validate


def plan_jobs(jobs: list[Job], sweep_dir: str, planner: Planner) -> None:
    """Plan and validate every job; bad input stops the sweep here (exit 2, nothing run)."""
    ray_cfg = planner.config.hydra.launcher.get("ray") or {}
    remote = bool(ray_cfg.get("address"))
    auto = functools.lru_cache(maxsize=1)(
        lambda: auto_device(
            dict(ray_cfg.get("resources") or {}),
            ray_cfg.get("num_gpus"),
            planner.nodes if remote else None,
        )
    )
    problems = []
    for job in jobs:
        try:
            values = planner.task_values(job.overrides)
            if values is None:
                values = task_values(planner.compose(job))
            planned = plan_cell(values, auto)
            validate(planned.cell, local=False, model_on_driver=not remote)
        except ConfigError as exc:
            problems.append(f"job {job.idx} ({' '.join(job.overrides)}): {exc}")
            continue
        warn(ignored_settings(planned.cell))
        job.payload = planned
        job.output_dir = os.path.join(sweep_dir, planned.cell_dir)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        die("; ".join(problems[:3]) + more)
    _drop_duplicates(jobs)
    _expand_repeats(jobs, sweep_dir)


def _drop_duplicates(jobs: list[Job]) -> None:
    """Identical cells (e.g. -m batch=1,1,2) run once: later copies leave the sweep."""
    seen: set[str] = set()
    kept = []
    for job in jobs:
        if job.payload.cell_dir not in seen:
            seen.add(job.payload.cell_dir)
            kept.append(job)
    if len(kept) < len(jobs):
        n = len(jobs) - len(kept)
        print(f"{n} job(s) repeat a cell of this sweep: each cell runs once ({len(kept)} cells)")
        jobs[:] = kept


def _expand_repeats(jobs: list[Job], sweep_dir: str) -> None:
    """A cell with bench.repeats = N becomes N jobs, one per repeat (each its own record)."""
    out: list[Job] = []
    next_idx = max((j.idx for j in jobs), default=-1) + 1
    for job in jobs:
        repeats = job.payload.repeats()
        for k, planned in enumerate(repeats):
            if k == 0:
                twin = job
            else:
                twin = Job(next_idx, list(job.overrides))
                next_idx += 1
            twin.payload = planned
            twin.output_dir = os.path.join(sweep_dir, planned.cell_dir)
            out.append(twin)
    jobs[:] = out


def fleet_copies(job: Job, n: int, first_idx: int) -> list[Job]:
    """A planned job as ``n`` fleet copies (one per card; jobs/identity.py PlannedCell):
    copy k its own id and directory (``-fK``). A fleet cell is measured once per card, so
    bench.repeats > 1 is refused (exit 2, nothing run)."""
    cell = job.payload.cell
    if cell.bench.repeats > 1:
        die(f"bench.repeats={cell.bench.repeats} is not allowed with hydra/sweeper=fleet: "
            "each card measures each cell once (use 1)")  # fmt: skip
    sweep_dir = os.path.dirname(job.output_dir)
    out = []
    for k in range(n):
        twin = job if k == 0 else Job(first_idx + k - 1, list(job.overrides))
        twin.payload = PlannedCell.of(cell, k, fleet=True)
        twin.output_dir = os.path.join(sweep_dir, twin.payload.cell_dir)
        out.append(twin)
    return out


__all__ = ["fleet_copies", "plan_jobs"]
