"""The benchmark's hooks into the `ray_cells` launcher (``hydra.launcher.app``).

Every job is planned once on the driver into a :class:`~jobs.identity.PlannedCell` and
validated before anything starts (:mod:`sweep.prepare`); a worker receives the planned cell
and returns the bare :class:`~jobs.record.Outcome` (:func:`workers.run.run_planned`); the
driver builds the record (one place), writes it (:mod:`sweep.records`; no shared filesystem
needed), streams it to results.jsonl and writes the reports at the end (:mod:`sweep.finish`).
Resume is :mod:`sweep.resume`; every cell's end counts into the app's
:class:`~sweep.status.ExitStatus`. A single run (and Hydra's basic launcher) is
:mod:`sweep.single`.
"""

from __future__ import annotations

from typing import Any

from hydra.core.utils import JobReturn, JobStatus

from hydra_plugins.ray_cells_launcher.app import App, Job, Planner
from jobs.files import RecordSync, record_line, write_hydra_files, write_record_files
from jobs.record import Flag, Outcome, Status
from sweep.console import cell_line
from sweep.finish import SweepResults, sweep_slo
from sweep.placement import cell_resources
from sweep.prepare import fleet_copies, plan_jobs
from sweep.quiet_env import QUIET_ENV
from sweep.records import job_files, job_record, lost_outcome
from sweep.resume import done_record
from sweep.status import PROCESS, ExitStatus
from sweep.store import store_path
from sweep.writer import MIN_CELLS, FileWriter, WriterFailed
from workers.env import git_state


class CellSweepApp(App):
    """The launcher hooks (hydra_plugins.ray_cells_launcher.app.App) of this benchmark.
    ``status``: what every cell's end counts into (the process's, launch.py's exit code)."""

    def __init__(
        self, plots: bool = True, store: bool | str = True, status: ExitStatus = PROCESS
    ) -> None:
        self.plots = plots
        self.store = store  # the results store: true beside the sweep, a path, or false
        self.status = status
        self.results: SweepResults | None = None
        self.code: dict[str, Any] = {}
        self.slo: dict[str, float] | None = None  # the SLO the sweep's cells share, if any
        self.sync: RecordSync | None = None  # puts the records on the disk (jobs/files.py)
        self.configs: dict[int, dict[str, Any]] = {}  # running job -> its config, plain
        self.writer: FileWriter | None = None  # writes the files of a sweep of many cells
        self._many: bool | None = None  # whether this sweep's files go to a writer (first use)

    # --- before anything starts ---
    def prepare(self, jobs: list[Job], sweep_dir: str, planner: Planner) -> None:
        plan_jobs(jobs, sweep_dir, planner)
        self.sync = RecordSync(sweep_dir)
        self.results = SweepResults.for_dir(sweep_dir)
        self.results.register([job.payload.cell_dir for job in jobs])
        self.slo = sweep_slo([job.payload for job in jobs])  # fleet copies share it
        self.code = git_state()  # the workers get the code without .git

    def runner(self) -> Any:
        from workers.run import run_planned  # pickled by reference: the workers import it

        return run_planned

    def resources(self, job: Job, nodes: list[dict[str, Any]]) -> dict[str, Any]:
        return cell_resources(job.payload.cell, nodes)

    def fleet_copies(self, job: Job, n: int, first_idx: int) -> list[Job]:
        """One copy per card (sweep/prepare.py); the copies, not the cell, are the sweep's."""
        assert self.results is not None
        self.results.cells.pop(job.payload.cell_dir, None)
        copies = fleet_copies(job, n, first_idx)
        self.results.register([c.payload.cell_dir for c in copies])
        return copies

    def affinity(self, job: Job) -> str:
        return job.payload.model_key  # prefer the actor that has it loaded

    def describe(self, job: Job) -> str:
        return job.payload.cell_dir

    def env_vars(self) -> dict[str, str]:
        return dict(QUIET_ENV)

    # --- resume ---
    def is_done(self, job: Job) -> str | None:
        rec = done_record(job)
        return None if rec is None else self._keep(job, rec, new=False)

    # --- results come back to the driver, which writes them (no shared filesystem) ---
    def on_dispatch(self, job: Job) -> tuple:
        config, files = job_files(job)
        self.configs[job.idx] = config  # for its record (made once)
        writer = self._writer()
        if writer is not None:
            writer.job_files(job.output_dir, files)
        else:
            write_hydra_files(job.output_dir, files)
        return job.payload.wire(config)  # what the worker is sent: plain values

    def _writer(self) -> FileWriter | None:
        """The writer process of a sweep of :data:`~sweep.writer.MIN_CELLS` cells or more
        (fleet copies counted), started at its first dispatch (sweep/writer.py)."""
        if self._many is None:
            self._many = self.results is not None and len(self.results.cells) >= MIN_CELLS
            if self._many:
                assert self.results is not None
                self.writer = FileWriter(str(self.results.dir))
        return self.writer

    def on_result(self, job: Job, ret: JobReturn, where: dict[str, Any]) -> bool:
        try:
            outcome = ret.return_value
        except Exception as exc:  # the runner itself failed (not the cell: that is an Outcome)
            outcome = Outcome.failure(exc)
        rec, text = job_record(
            job, outcome, where.get("ray_node_id"), self.code, where.get("ray_cluster"),
            where.get("node_index"), self.configs.pop(job.idx, None),
        )  # fmt: skip
        # A cell that did not end ok may leave the device in a bad state, and one that started
        # on memory left behind (dirty_start) ran on such a device: fresh worker. So does
        # every cell of bench.fresh_worker=true.
        dirty = Flag.DIRTY_START in outcome.flags
        fresh = outcome.status != Status.OK or dirty or job.payload.cell.bench.fresh_worker
        ret.status = JobStatus.COMPLETED
        ret.return_value = self._record(job, rec, text, outcome.files)
        return fresh

    def on_lost(self, job: Job, error: BaseException) -> str:
        outcome = lost_outcome(job, error)
        rec, text = job_record(
            job, outcome, None, self.code, config=self.configs.pop(job.idx, None)
        )
        return self._record(job, rec, text, outcome.files)  # the job completes with its row

    def _record(self, job: Job, rec: dict[str, Any], text: str, files: dict[str, str]) -> str:
        """Keep a new record's row, then write its file: an interrupt between the two leaves
        a row whose cell runs again on resume, never a record on disk that this launch's
        outputs leave out."""
        key = self._keep(job, rec, line=record_line(rec))
        if self.writer is not None:
            self.writer.record(job.output_dir, text, files)
        else:
            write_record_files(job.output_dir, text, files, self.sync)
        print(cell_line(rec), flush=True)
        return key

    def _keep(
        self, job: Job, rec: dict[str, Any], new: bool = True, line: str | None = None
    ) -> str:
        """Count and keep a finished cell's record. Until the end the job holds only its
        row's key (its cell directory) and no planned cell: :meth:`on_end` gives each
        finished job its row (a driver of 100,000 cells keeps < 1 KB per finished cell)."""
        assert self.results is not None
        self.status.count(rec)
        key = self.results.add(rec, new, line)
        job.payload = None  # done with: nothing reads the planned cell again
        return key

    # --- the end ---
    def on_end(self, jobs: list[Job], sweep_dir: str, interrupted: bool) -> None:
        failed = None
        if self.writer is not None:  # every record written (and synced) before the outputs
            try:
                self.writer.close()
            except WriterFailed as exc:  # the outputs of what finished first, then the error
                failed = exc
            self.writer = None
        if self.sync is not None:
            self.sync.flush()  # every record on the disk before the outputs name them
        if self.results is None:
            if failed is not None:
                raise failed
            return
        rows = self.results.rows
        self.status.count_missing(
            sum(1 for j in jobs if j.payload is not None and j.payload.cell_dir not in rows)
        )
        store = store_path(self.store, sweep_dir)
        self.results.finish(interrupted, plots=self.plots, slo=self.slo, store=store)
        for job in jobs:  # each finished job's return value: its row, as the outputs had it
            ret = job.ret
            if ret is not None and ret.status == JobStatus.COMPLETED:
                key = ret.return_value
                if isinstance(key, str) and key in self.results.loaded:
                    ret.return_value = self.results.loaded[key]
        if failed is not None:
            raise failed


__all__ = ["CellSweepApp"]
