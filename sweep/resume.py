"""Resume: a job whose cell already has a finished record (of this cell identity) is skipped;
a record of a newer schema is never overwritten by this older tool. A finished serving record
resumed under another SLO (not part of the identity) is re-scored from its kept requests and
rewritten, not measured again (:func:`under_slo`)."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hydra_plugins.ray_cells_launcher.app import Job
from jobs.config import CellConfig
from jobs.files import RecordError, is_finished, is_newer_schema, read_record, write_record
from jobs.record import RECORD_FILE, SCHEMA_VERSION

log = logging.getLogger(__name__)


def done_record(job: Job) -> dict[str, Any] | None:
    """The record that makes the job done already, or None: it runs. (The record file is
    read once: :func:`~jobs.files.newer_record`, then :func:`~jobs.files.finished_record`.)"""
    try:
        rec = read_record(os.path.join(job.output_dir, RECORD_FILE))
    except RecordError:
        return None
    if is_newer_schema(rec):  # never overwritten by an older version of this tool
        log.warning(
            "%s: its record has schema_version %s, newer than this tool's %d: kept, not "
            "re-run (run it with the newer version)",
            job.payload.cell_dir, rec.get("schema_version"), SCHEMA_VERSION,
        )  # fmt: skip
        return rec
    done = rec if is_finished(rec, job.payload.cell_id) else None
    return under_slo(done, job.payload.cell, job.output_dir)


def under_slo(
    rec: dict[str, Any] | None, cell: CellConfig, where: str | Path
) -> dict[str, Any] | None:
    """A finished record as the cell's SLO counts it: a serving record measured under another
    SLO gets its SLO and goodput keys re-counted from its kept requests and is rewritten in
    ``where`` (said in one line); None (measure again) when it kept no requests to count."""
    if rec is None or not cell.serving:
        return rec
    from workers.serving.rescore import can_rescore, goodput

    slo = cell.slo
    if (rec.get("slo_ttft_ms"), rec.get("slo_tpot_ms")) == (
        slo.ttft_ms or None,
        slo.tpot_ms or None,
    ):
        return rec
    if not can_rescore(rec):
        return None
    rec = {**rec, **goodput(rec, slo.ttft_ms, slo.tpot_ms)}
    rec["config"] = {**rec.get("config", {}), "slo": asdict(slo)}
    write_record(where, rec)
    print(
        f"re-scored  {rec.get('cell_dir')}: goodput under slo.ttft_ms={slo.ttft_ms:g} "
        f"slo.tpot_ms={slo.tpot_ms:g} from its {len(rec['raw']['ttft_s'])} kept requests "
        "(not measured again)",
        flush=True,
    )
    return rec


__all__ = ["done_record", "under_slo"]
