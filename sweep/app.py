"""The benchmark's hooks into the `ray_cells` launcher: validation, placement, resume,
driver-side record writing, and the sweep's closing outputs."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from cells.config import CellConfig, ConfigError
from cells.files import finished_record, write_record
from cells.identity import cell_id, model_key
from cells.record import FLAT_KEYS, error_info, failed_record
from sweep.finish import finish_sweep
from sweep.lock import SweepBusy, SweepLock
from sweep.placement import cell_resources
from sweep.plan import to_cell
from sweep.validate import validate

log = logging.getLogger(__name__)


# Set in the Ray workers' environment: the task function leaves the record to the driver.
RECORDS_BY_DRIVER = "LLM_SWEEP_RECORDS_BY_DRIVER"


class CellFailed(RuntimeError):
    """Raised by the task function for a cell that did not end ok; carries its record."""

    def __init__(self, record: dict[str, Any]) -> None:
        err = record.get("error") or {}
        super().__init__(
            f"cell {record.get('cell_dir')} {record.get('status')}: "
            f"{err.get('type', '')}: {err.get('message', '')}"
        )
        self.record = record

    def __reduce__(self) -> tuple:  # survives the trip back through Ray's pickling
        return (CellFailed, (self.record,))


def flat(record: dict[str, Any]) -> dict[str, Any]:
    """What a JobReturn keeps of a record: the flat keys (the file has the rest)."""
    return {k: record.get(k) for k in FLAT_KEYS}


def task_cell(cfg: Any) -> CellConfig:
    return to_cell(cfg)


def die(message: str, code: int = 2) -> None:
    """Bad input: one clear line on stderr and a non-zero exit, nothing written."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


class ValidateOnRun(Callback):
    """A single run's bad input exits before Hydra creates its output directory."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        try:
            validate(task_cell(config), local=True)
        except ConfigError as exc:
            die(str(exc))


class CellSweepApp:
    """Hook object for hydra_plugins.ray_cells_launcher (see its _core.App)."""

    def __init__(self, plots: bool = True) -> None:
        self.lock: SweepLock | None = None
        self.plots = plots
        self.cells: dict[int, CellConfig] = {}

    # --- before anything starts ---
    def prepare(self, jobs: list[Any], sweep_dir: str) -> None:
        problems = []
        for job in jobs:
            try:
                cell = task_cell(job.config)
                remote = bool(OmegaConf.select(job.config, "hydra.launcher.ray.address"))
                validate(cell, local=False, model_on_driver=not remote)
                self.cells[job.idx] = cell
            except ConfigError as exc:
                problems.append(f"job {job.idx} ({' '.join(job.overrides)}): {exc}")
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            die("; ".join(problems[:3]) + more)
        self.lock = SweepLock(sweep_dir)
        try:
            self.lock.acquire()
        except SweepBusy as exc:
            die(str(exc))

    def resources(self, job: Any, nodes: list[dict[str, Any]]) -> dict[str, Any]:
        return cell_resources(self.cells[job.idx], nodes)

    def affinity(self, job: Any) -> str:
        return model_key(self.cells[job.idx])  # prefer the actor that has it loaded

    def describe(self, job: Any) -> str:
        return Path(job.output_dir).name

    def env_vars(self) -> dict[str, str]:
        # Under this launcher the driver writes every record, once, when it comes back:
        # a record never appears on disk half-annotated, and no shared filesystem is assumed.
        return {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
            RECORDS_BY_DRIVER: "1",
        }

    # --- resume ---
    def is_done(self, job: Any) -> dict[str, Any] | None:
        rec = finished_record(Path(job.output_dir), cell_id(self.cells[job.idx]))
        return flat(rec) if rec is not None else None

    # --- results come back to the driver, which writes them (no shared filesystem) ---
    def on_result(self, job: Any, ret: JobReturn, where: dict[str, Any]) -> bool:
        if ret.status == JobStatus.COMPLETED:
            rec = ret.return_value
        else:
            exc = ret._return_value
            rec = getattr(exc, "record", None)
            if rec is None:
                rec = failed_record(self.cells[job.idx], "failed", error_info(exc))
        if isinstance(rec, dict):
            rec["ray_node_id"] = where.get("ray_node_id")
            rec["attempts"] = job.attempts
            write_record(Path(job.output_dir), rec)
            if ret.status == JobStatus.COMPLETED:
                ret.return_value = flat(rec)
        # A cell that did not end ok may leave the device in a bad state: fresh worker.
        return ret.status != JobStatus.COMPLETED

    def on_lost(self, job: Any, error: BaseException) -> None:
        rec = failed_record(self.cells[job.idx], "failed", error_info(error), attempts=job.attempts)
        rec["flags"] = ["worker_lost"]
        write_record(Path(job.output_dir), rec)

    # --- the end ---
    def on_end(self, jobs: list[Any], sweep_dir: str, interrupted: bool) -> None:
        try:
            dirs = [Path(j.output_dir) for j in jobs]
            finish_sweep(Path(sweep_dir), dirs, interrupted, plots=self.plots)
        finally:
            if self.lock is not None:
                self.lock.release()
