"""Run one benchmark cell, or a sweep of cells with -m.

python launch.py batch=4 seq=128
python launch.py -m batch=1,2,4,8,16 seq=64,128,256
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import jobs.cell  # noqa: F401  registers the cell_dir resolver
import jobs.config  # noqa: F401  registers the structured config schema
from jobs.store import write_record
from jobs.sweep import RECORDS_BY_DRIVER, CellFailed, task_cell
from jobs.validate import validate

os.environ.setdefault("HF_HUB_OFFLINE", "1")
log = logging.getLogger("launch")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> dict[str, Any]:
    """Measure one cell and return its record, written in the job's output dir (by this
    process, or in a ray_cells sweep by the driver when the record comes back)."""
    import workers

    single = HydraConfig.get().mode == RunMode.RUN
    cell = task_cell(cfg)
    if not single:
        # A single run was checked in full by the ValidateOnRun callback, before Hydra made
        # its directory. In a sweep, this is the host that runs the cell: check what can be
        # checked here (the device itself is left to the cell, whose record says what failed).
        validate(cell, local=False)
    record = workers.run_cell(cell)
    if single or not os.environ.get(RECORDS_BY_DRIVER):  # else the sweep's driver writes it
        path = write_record(Path(HydraConfig.get().runtime.output_dir), record)
    if single:
        from aggregate import summary_table

        print(summary_table([record]))
        print(f"record: {path}")
    if record["status"] != "ok":
        raise CellFailed(record)
    return record


if __name__ == "__main__":
    main()
