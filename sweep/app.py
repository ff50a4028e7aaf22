"""The benchmark's hooks into the `ray_cells` launcher, and the task of single runs.

Under the launcher (``hydra.launcher.app``): every job is planned once on the driver into a
:class:`~cells.identity.PlannedCell` and validated before anything starts; a worker receives
the planned cell and returns the bare :class:`~cells.record.Outcome`; the driver builds the
record (one place), writes it (no shared filesystem needed), streams it to results.jsonl and
writes the reports at the end. A single run (and Hydra's basic launcher) measures in this
process through :func:`run_task`.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode

from cells.config import ConfigError
from cells.files import finished_record, write_cell_files, write_record
from cells.identity import PlannedCell
from cells.record import Flag, Outcome, Status, build_record
from hydra_plugins.ray_cells_launcher.app import App, Job, Planner
from sweep.finish import SweepResults
from sweep.lock import SweepBusy, SweepLock
from sweep.placement import cell_resources
from sweep.plan import auto_device, cell_here, plan_cell, task_values
from sweep.validate import validate

log = logging.getLogger(__name__)


class _Status:
    """How this process's cells ended, for its exit code."""

    def __init__(self) -> None:
        self.not_ok = 0

    def code(self) -> int:
        return 1 if self.not_ok else 0


STATUS = _Status()


def exit_code() -> int:
    """0 when every cell this process ran or skipped ended ok, else 1."""
    return STATUS.code()


def die(message: str, code: int = 2) -> None:
    """Bad input: one clear line on stderr and a non-zero exit, nothing written."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


class ValidateOnRun(Callback):
    """A single run's bad input exits before Hydra creates its output directory."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        try:
            validate(cell_here(config), local=True)
        except ConfigError as exc:
            die(str(exc))


def run_planned(planned: PlannedCell) -> Outcome:
    """The runner of a ray_cells worker: measure the planned cell here."""
    from workers.measure import measure

    return measure(planned.cell)


def run_task(cfg: Any) -> dict[str, Any]:
    """The task of a single run, or of one job under Hydra's basic launcher: measure in this
    process and write the record into the job's output directory."""
    from aggregate import summary_table
    from workers.measure import measure

    single = HydraConfig.get().mode == RunMode.RUN
    try:
        planned = PlannedCell.of(cell_here(cfg))
        if not single:  # a single run was checked by ValidateOnRun
            validate(planned.cell, local=True)
    except ConfigError as exc:
        die(str(exc))
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    done = None if single else finished_record(out_dir, planned.cell_id)
    outcome = None if done else measure(planned.cell)
    record = done or build_record(planned.cell, outcome, cell_id_=planned.cell_id)
    if outcome is not None:
        path = write_record(out_dir, record)
        write_cell_files(out_dir, outcome.files)
    if record["status"] != "ok":
        STATUS.not_ok += 1
    if single:
        print(summary_table([record]))
        print(f"record: {path}")
    else:
        print(f"{'skipped, already done' if done else record['status']}: {planned.cell_dir}")
    return record


def _write_job_files(job: Job) -> None:
    """What Hydra users expect in a job directory: .hydra/config.yaml and overrides.yaml."""
    hydra_dir = Path(job.output_dir) / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    cfg = asdict(job.payload.cell)
    (hydra_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(list(job.overrides)))


class CellSweepApp(App):
    """The launcher hooks (hydra_plugins.ray_cells_launcher.app.App) of this benchmark."""

    def __init__(self, plots: bool = True) -> None:
        self.lock: SweepLock | None = None
        self.plots = plots
        self.results: SweepResults | None = None

    # --- before anything starts ---
    def prepare(self, jobs: list[Job], sweep_dir: str, planner: Planner) -> None:
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
            job.payload = planned
            job.output_dir = os.path.join(sweep_dir, planned.cell_dir)
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            die("; ".join(problems[:3]) + more)
        self.lock = SweepLock(sweep_dir)
        try:
            self.lock.acquire()
        except SweepBusy as exc:
            die(str(exc))
        self.results = SweepResults(sweep_dir)

    def runner(self) -> Any:
        return run_planned

    def resources(self, job: Job, nodes: list[dict[str, Any]]) -> dict[str, Any]:
        return cell_resources(job.payload.cell, nodes)

    def affinity(self, job: Job) -> str:
        return job.payload.model_key  # prefer the actor that has it loaded

    def describe(self, job: Job) -> str:
        return job.payload.cell_dir

    def env_vars(self) -> dict[str, str]:
        return {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}

    # --- resume ---
    def is_done(self, job: Job) -> dict[str, Any] | None:
        rec = finished_record(job.output_dir, job.payload.cell_id)
        return None if rec is None else self._keep(rec)

    # --- results come back to the driver, which writes them (no shared filesystem) ---
    def on_dispatch(self, job: Job) -> None:
        _write_job_files(job)

    def on_result(self, job: Job, ret: JobReturn, where: dict[str, Any]) -> bool:
        try:
            outcome = ret.return_value
        except Exception as exc:  # the runner itself failed (not the cell: that is an Outcome)
            outcome = Outcome.failure(exc)
        rec = self._record(job, outcome, where.get("ray_node_id"))
        ret.status = JobStatus.COMPLETED
        ret.return_value = self._keep(rec)
        # A cell that did not end ok may leave the device in a bad state: fresh worker.
        return outcome.status != Status.OK

    def on_lost(self, job: Job, error: BaseException) -> None:
        outcome = Outcome.failure(error, flags=[Flag.WORKER_LOST])
        self._keep(self._record(job, outcome, None))

    def _record(self, job: Job, outcome: Outcome, node: str | None) -> dict[str, Any]:
        p: PlannedCell = job.payload
        rec = build_record(
            p.cell, outcome, cell_id_=p.cell_id, cell_dir=p.cell_dir,
            attempts=job.attempts, ray_node_id=node,
        )  # fmt: skip
        write_record(job.output_dir, rec)
        write_cell_files(job.output_dir, outcome.files)
        return rec

    def _keep(self, rec: dict[str, Any]) -> dict[str, Any]:
        assert self.results is not None
        if rec.get("status") != "ok":
            STATUS.not_ok += 1
        return self.results.add(rec)

    # --- the end ---
    def on_end(self, jobs: list[Job], sweep_dir: str, interrupted: bool) -> None:
        try:
            if self.results is not None:
                dirs = [j.payload.cell_dir for j in jobs if j.payload is not None]
                missing = sum(1 for d in dirs if d not in self.results.rows)
                STATUS.not_ok += missing
                self.results.finish(dirs, interrupted, plots=self.plots)
        finally:
            if self.lock is not None:
                self.lock.release()


__all__ = ["CellSweepApp", "ValidateOnRun", "exit_code", "run_task"]
