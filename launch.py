"""Run one benchmark cell, or a sweep of cells with -m.

python launch.py batch=4 seq=128
python launch.py -m batch=1,2,4,8,16 seq=64,128,256

Exit code: 0 every cell ok, 1 some cell not ok, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import os
from typing import Any

import hydra
from omegaconf import DictConfig

from sweep.compose_errors import install as one_line_errors
from sweep.compose_once import install as compose_once
from sweep.quiet_env import QUIET_ENV
from sweep.schema import register
from sweep.single import run_task
from sweep.status import PROCESS

for _key, _value in QUIET_ENV.items():
    os.environ.setdefault(_key, _value)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> list[dict[str, Any]]:
    """One cell, measured in this process (a single run, or a job of the basic launcher).
    Under the ray_cells launcher the sweep's app (sweep.app.CellSweepApp) plans the cells and
    workers measure them; both count every cell's end into this process's status."""
    return run_task(cfg, PROCESS)


if __name__ == "__main__":
    register()
    one_line_errors()
    compose_once()
    main()
    raise SystemExit(PROCESS.code())
