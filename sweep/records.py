"""The driver writes every record (no shared filesystem needed): a job's Hydra files when it
is dispatched, and its record and cell files when its outcome comes back (or its worker is
lost)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from hydra_plugins.ray_cells_launcher.app import HostOutOfMemory, Job
from jobs.files import write_cell_files, write_record
from jobs.identity import PlannedCell
from jobs.record import Flag, Outcome, Status, build_record


def write_job_files(job: Job) -> None:
    """What Hydra users expect in a job directory: .hydra/config.yaml and overrides.yaml."""
    hydra_dir = Path(job.output_dir) / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    cfg = asdict(job.payload.cell)
    (hydra_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(list(job.overrides)))


def lost_outcome(job: Job, error: BaseException) -> Outcome:
    """The outcome of a job whose worker was lost (killed, timed out, no node left)."""
    status = Status.OOM if isinstance(error, HostOutOfMemory) else Status.FAILED
    if isinstance(error, HostOutOfMemory):  # one line, with the settings that change it
        error = HostOutOfMemory(
            f"host out of memory{error.usage}: Ray's memory monitor killed the worker, not "
            "retried; raise device.cpus_per_cell (0 = a whole node) or lower batch/seq, or "
            "raise RAY_memory_usage_threshold"
        )
    outcome = Outcome.failure(error, status, flags=[Flag.WORKER_LOST])
    if job.payload.cell.backend.name == "sim":
        outcome.flags.append(Flag.SIMULATED)
    return outcome


def write_job_record(
    job: Job,
    outcome: Outcome,
    node: str | None,
    code: dict[str, Any],
    cluster: str | None = None,
    node_index: int | None = None,
) -> dict[str, Any]:
    """Build the job's record (the one place) and write it with its cell files; ``cluster``:
    which Ray cluster ran it (``ray_cluster``); ``node_index``: its node's index there."""
    p: PlannedCell = job.payload
    rec = build_record(
        p, outcome, attempts=job.attempts, ray_node_id=node, code=code, ray_cluster=cluster,
        node_index=node_index,
    )  # fmt: skip
    write_record(job.output_dir, rec)
    write_cell_files(job.output_dir, outcome.files)
    return rec


__all__ = ["lost_outcome", "write_job_files", "write_job_record"]
