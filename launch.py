"""Run one benchmark cell, or a sweep of cells with -m.

python launch.py batch=4 seq=128
python launch.py -m batch=1,2,4,8,16 seq=64,128,256
"""

from __future__ import annotations

import os
from typing import Any

import hydra
from omegaconf import DictConfig

from sweep.app import QUIET_ENV, exit_code, run_task
from sweep.schema import register

for _key, _value in QUIET_ENV.items():
    os.environ.setdefault(_key, _value)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> dict[str, Any]:
    """One cell, measured in this process (a single run, or a job of the basic launcher).
    Under the ray_cells launcher the sweep's app plans the cells and workers measure them."""
    return run_task(cfg)


if __name__ == "__main__":
    register()
    main()
    raise SystemExit(exit_code())
