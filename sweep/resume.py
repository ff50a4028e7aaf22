"""Resume: a job whose cell already has a finished record (of this cell identity) is skipped;
a record of a newer schema is never overwritten by this older tool."""

from __future__ import annotations

import logging
from typing import Any

from hydra_plugins.ray_cells_launcher.app import Job
from jobs.files import finished_record, newer_record
from jobs.record import SCHEMA_VERSION

log = logging.getLogger(__name__)


def done_record(job: Job) -> dict[str, Any] | None:
    """The record that makes the job done already, or None: it runs."""
    newer = newer_record(job.output_dir)
    if newer is not None:  # never overwritten by an older version of this tool
        log.warning(
            "%s: its record has schema_version %s, newer than this tool's %d: kept, not "
            "re-run (run it with the newer version)",
            job.payload.cell_dir, newer.get("schema_version"), SCHEMA_VERSION,
        )  # fmt: skip
        return newer
    return finished_record(job.output_dir, job.payload.cell_id)


__all__ = ["done_record"]
