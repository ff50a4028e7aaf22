"""The benchmark's hooks into the `ray_cells` launcher, and the task of single runs.

Under the launcher (``hydra.launcher.app``): every job is planned once on the driver into a
:class:`~jobs.identity.PlannedCell` and validated before anything starts; a worker receives
the planned cell and returns the bare :class:`~jobs.record.Outcome`; the driver builds the
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

from hydra_plugins.ray_cells_launcher.app import App, HostOutOfMemory, Job, Planner
from jobs.config import ConfigError
from jobs.files import finished_record, newer_record, write_cell_files, write_record
from jobs.identity import PlannedCell
from jobs.record import SCHEMA_VERSION, Flag, Outcome, Status, build_record
from sweep.finish import SweepResults
from sweep.placement import cell_resources
from sweep.plan import auto_device, cell_here, plan_cell, task_values
from sweep.validate import validate
from workers.env import git_state

log = logging.getLogger(__name__)

# Workers and single runs: offline, and no foreign progress bars or advisories in the logs.
QUIET_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


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

    return measure(planned.cell, planned.repeat)


def run_task(cfg: Any) -> list[dict[str, Any]]:
    """The task of a single run, or of one job under Hydra's basic launcher: measure in this
    process and write the record into the job's output directory (with bench.repeats > 1,
    one record per repeat, in rK/ below it)."""
    from aggregate import summary_table

    single = HydraConfig.get().mode == RunMode.RUN
    try:
        planned = PlannedCell.of(cell_here(cfg))
        if not single:  # a single run was checked by ValidateOnRun
            validate(planned.cell, local=True)
    except ConfigError as exc:
        die(str(exc))
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    repeats = planned.repeats()
    records = []
    for p in repeats:
        where = out_dir if len(repeats) == 1 else out_dir / f"r{p.repeat}"
        records.append(_measure_here(p, where, resume=not single))
    if single:
        print(summary_table(records))
        print(f"record: {out_dir / 'record.json'}" if len(records) == 1 else f"records: {out_dir}")
    return records


def _measure_here(planned: PlannedCell, where: Path, resume: bool) -> dict[str, Any]:
    from workers.measure import drop_models, measure

    done = finished_record(where, planned.cell_id) if resume else None
    outcome = None if done else measure(planned.cell, planned.repeat)
    record = done or build_record(planned, outcome)
    if outcome is not None:
        write_record(where, record)
        write_cell_files(where, outcome.files)
    if record["status"] != "ok":
        STATUS.not_ok += 1
    print(_cell_line(record, skipped=done is not None), flush=True)
    if planned.cell.bench.fresh_worker:
        drop_models()  # the next repeat loads the model anew (the same process here)
    return record


def _write_job_files(job: Job) -> None:
    """What Hydra users expect in a job directory: .hydra/config.yaml and overrides.yaml."""
    hydra_dir = Path(job.output_dir) / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    cfg = asdict(job.payload.cell)
    (hydra_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(list(job.overrides)))


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


def _sweep_slo(jobs: list[Job]) -> dict[str, float] | None:
    """The SLO the sweep's cells were given (slo.ttft_ms, slo.tpot_ms), when they agree: the
    report then answers which batch or load meets it."""
    slos = {(j.payload.cell.slo.ttft_ms, j.payload.cell.slo.tpot_ms) for j in jobs if j.payload}
    if len(slos) != 1:
        return None
    ttft, tpot = slos.pop()
    return {"slo_ttft_ms": ttft or None, "slo_tpot_ms": tpot or None} if ttft or tpot else None


def _cell_line(rec: dict[str, Any], skipped: bool = False) -> str:
    """The one console line of a finished cell."""
    status = str(rec.get("status"))
    head = f"{'skipped' if skipped else status:<8} {rec.get('cell_dir')}"
    if status != "ok":
        err = rec.get("error") or {}
        first = (str(err.get("message") or "").strip().splitlines() or [""])[0]
        return f"{head}  {err.get('type', '')}: {first[:200]}"
    tps, e2e = rec.get("output_tokens_per_s"), rec.get("e2e_s_p50")
    flags = ",".join(rec.get("flags") or [])
    nums = f"{tps:.1f} tok/s, e2e p50 {e2e:.4f} s" if tps and e2e else ""
    return f"{head}  {nums}{'  [' + flags + ']' if flags else ''}"


class CellSweepApp(App):
    """The launcher hooks (hydra_plugins.ray_cells_launcher.app.App) of this benchmark."""

    def __init__(self, plots: bool = True) -> None:
        self.plots = plots
        self.results: SweepResults | None = None
        self.code: dict[str, Any] = {}

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
        _drop_duplicates(jobs)
        _expand_repeats(jobs, sweep_dir)
        self.results = SweepResults.for_dir(sweep_dir)
        self.results.register([job.payload.cell_dir for job in jobs])
        self.code = git_state()  # the workers get the code without .git

    def runner(self) -> Any:
        return run_planned

    def resources(self, job: Job, nodes: list[dict[str, Any]]) -> dict[str, Any]:
        return cell_resources(job.payload.cell, nodes)

    def affinity(self, job: Job) -> str:
        return job.payload.model_key  # prefer the actor that has it loaded

    def describe(self, job: Job) -> str:
        return job.payload.cell_dir

    def env_vars(self) -> dict[str, str]:
        return dict(QUIET_ENV)

    # --- resume ---
    def is_done(self, job: Job) -> dict[str, Any] | None:
        newer = newer_record(job.output_dir)
        if newer is not None:  # never overwritten by an older version of this tool
            log.warning(
                "%s: its record has schema_version %s, newer than this tool's %d: kept, not "
                "re-run (run it with the newer version)",
                job.payload.cell_dir, newer.get("schema_version"), SCHEMA_VERSION,
            )  # fmt: skip
            return self._keep(newer, new=False)
        rec = finished_record(job.output_dir, job.payload.cell_id)
        return None if rec is None else self._keep(rec, new=False)

    # --- results come back to the driver, which writes them (no shared filesystem) ---
    def on_dispatch(self, job: Job) -> None:
        _write_job_files(job)

    def on_result(self, job: Job, ret: JobReturn, where: dict[str, Any]) -> bool:
        try:
            outcome = ret.return_value
        except Exception as exc:  # the runner itself failed (not the cell: that is an Outcome)
            outcome = Outcome.failure(exc)
        rec = self._record(job, outcome, where.get("ray_node_id"), where.get("ray_cluster"))
        print(_cell_line(rec), flush=True)
        ret.status = JobStatus.COMPLETED
        ret.return_value = self._keep(rec)
        # A cell that did not end ok may leave the device in a bad state, and one that started
        # on memory left behind (dirty_start) ran on such a device: fresh worker. So does
        # every cell of bench.fresh_worker=true.
        dirty = Flag.DIRTY_START in outcome.flags
        return outcome.status != Status.OK or dirty or job.payload.cell.bench.fresh_worker

    def on_lost(self, job: Job, error: BaseException) -> dict[str, Any]:
        status = Status.OOM if isinstance(error, HostOutOfMemory) else Status.FAILED
        outcome = Outcome.failure(error, status, flags=[Flag.WORKER_LOST])
        if job.payload.cell.backend.name == "sim":
            outcome.flags.append(Flag.SIMULATED)
        rec = self._record(job, outcome, None)
        print(_cell_line(rec), flush=True)
        return self._keep(rec)  # recorded: the job completes with its record's row

    def _record(
        self, job: Job, outcome: Outcome, node: str | None, cluster: str | None = None
    ) -> dict[str, Any]:
        p: PlannedCell = job.payload
        rec = build_record(p, outcome, attempts=job.attempts, ray_node_id=node, code=self.code)
        rec["ray_cluster"] = cluster
        write_record(job.output_dir, rec)
        write_cell_files(job.output_dir, outcome.files)
        return rec

    def _keep(self, rec: dict[str, Any], new: bool = True) -> dict[str, Any]:
        assert self.results is not None
        if rec.get("status") != "ok":
            STATUS.not_ok += 1
        return self.results.add(rec, new)

    # --- the end ---
    def on_end(self, jobs: list[Job], sweep_dir: str, interrupted: bool) -> None:
        if self.results is not None:
            dirs = [j.payload.cell_dir for j in jobs if j.payload is not None]
            missing = sum(1 for d in dirs if d not in self.results.rows)
            STATUS.not_ok += missing
            self.results.finish(interrupted, plots=self.plots, slo=_sweep_slo(jobs))


__all__ = ["CellSweepApp", "ValidateOnRun", "exit_code", "run_task"]
