"""Run one benchmark cell, or a sweep of cells with -m.

python launch.py batch=4 seq=128
python launch.py -m batch=1,2,4,8,16 seq=64,128,256
"""

from __future__ import annotations

import os
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from cells.config import CellConfig
from sweep.app import exit_code, run_task
from sweep.plan import cell_dir_resolver

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def register() -> None:
    """What Hydra needs before it composes anything: the cell schema (conf/config.yaml's
    `cell_schema` default) and the `${cell_dir:}` resolver that names a cell's directory."""
    ConfigStore.instance().store(name="cell_schema", node=CellConfig)
    if not OmegaConf.has_resolver("cell_dir"):
        OmegaConf.register_new_resolver("cell_dir", cell_dir_resolver, use_cache=False)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> dict[str, Any]:
    """One cell, measured in this process (a single run, or a job of the basic launcher).
    Under the ray_cells launcher the sweep's app plans the cells and workers measure them."""
    return run_task(cfg)


if __name__ == "__main__":
    register()
    main()
    raise SystemExit(exit_code())
