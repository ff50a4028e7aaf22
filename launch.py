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
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from cells.config import CellConfig
from cells.files import write_record
from sweep.app import RECORDS_BY_DRIVER, CellFailed, task_cell
from sweep.plan import cell_dir_resolver
from sweep.validate import validate

os.environ.setdefault("HF_HUB_OFFLINE", "1")
log = logging.getLogger("launch")


def register() -> None:
    """What Hydra needs before it composes anything: the cell schema (conf/config.yaml's
    `cell_schema` default) and the `${cell_dir:}` resolver that names a cell's directory."""
    ConfigStore.instance().store(name="cell_schema", node=CellConfig)
    if not OmegaConf.has_resolver("cell_dir"):
        OmegaConf.register_new_resolver("cell_dir", cell_dir_resolver, use_cache=False)


register()


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
