"""A single run, and one job of Hydra's basic launcher: checked before Hydra creates the
output directory, measured in this process, its record written into the job's directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode

from jobs.config import ConfigError
from jobs.files import finished_record, write_cell_files, write_record
from jobs.identity import PlannedCell
from jobs.record import build_record
from sweep.console import cell_line
from sweep.ignored import ignored_settings, single_run_cluster, warn
from sweep.plan import cell_here
from sweep.resume import under_slo
from sweep.status import ExitStatus, die
from sweep.validate import validate


class ValidateOnRun(Callback):
    """A single run's bad input exits before Hydra creates its output directory."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        try:
            cell = cell_here(config)
            validate(cell, local=True)
        except ConfigError as exc:
            die(str(exc))
        warn(ignored_settings(cell) + single_run_cluster(config), once=False)


def run_task(cfg: Any, status: ExitStatus) -> list[dict[str, Any]]:
    """The task of a single run, or of one job under Hydra's basic launcher: measure in this
    process and write the record into the job's output directory (with bench.repeats > 1,
    one record per repeat, in rK/ below it). Each record counts into ``status``."""
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
        status.count(records[-1])
    if single:
        print(summary_table(records))
        print(f"record: {out_dir / 'record.json'}" if len(records) == 1 else f"records: {out_dir}")
    return records


def _measure_here(planned: PlannedCell, where: Path, resume: bool) -> dict[str, Any]:
    from workers.model_cache import drop_models
    from workers.run import measure

    done = finished_record(where, planned.cell_id) if resume else None
    done = under_slo(done, planned.cell, where)
    outcome = None if done else measure(planned.cell, planned.repeat)
    record = done or build_record(planned, outcome)
    if outcome is not None:
        write_record(where, record)
        write_cell_files(where, outcome.files)
    print(cell_line(record, skipped=done is not None), flush=True)
    if planned.cell.bench.fresh_worker:
        drop_models()  # the next repeat loads the model anew (the same process here)
    return record


__all__ = ["ValidateOnRun", "run_task"]
