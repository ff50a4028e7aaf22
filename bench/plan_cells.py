"""What planning costs the driver per cell, in its pieces, without Hydra's launch around it.

    python bench/plan_cells.py [--cells 2000] [--repeat 3]

The jobs are those of `bench/scale_driver.py`'s sweep (`batch=1..N seq=8 backend=sim
device=npu model=llama3_8b bench=quick prompt_len=32 ...`). Printed, per cell, the best of
``--repeat`` runs of the process's CPU time:
  override lines:  each job's `batch=<n>` line through Hydra's override parser, and through
                   the launcher's shortcut for `key=<int>` (_compose.Composer._parse);
  task values:     the job's values from the composed template (_compose.Composer), lines
                   parsed already;
  from_values:     the values converted and checked into a cell (jobs/values.py);
  plan_cell:       from_values and the planned cell's identity (sweep/plan.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

JOB = ["backend=sim", "device=npu", "model=llama3_8b", "bench=quick", "prompt_len=32",
       "backend.sim.noise=0", "backend.sim.time_scale=0", "seq=8"]  # fmt: skip


def best(fn: Any, repeat: int) -> float:
    out = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        out = min(out, time.process_time() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.utils import JobRuntime
    from hydra.types import RunMode

    from hydra_plugins.ray_cells_launcher._compose import Composer
    from jobs.config import from_values
    from sweep.plan import plan_cell
    from sweep.schema import register

    register()
    JobRuntime.instance().set("name", "launch")
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(ROOT / "conf")))
    master = loader.load_configuration("config", ["bench=quick"], run_mode=RunMode.MULTIRUN)
    composer = Composer(master, loader)
    n = a.cells
    lines = [f"batch={i}" for i in range(1, n + 1)]
    parser = OverridesParser.create()

    def shortcut() -> None:
        composer._parsed.clear()
        for line in lines:
            composer._parse(line)

    jobs = [[*JOB, line] for line in lines]
    for job in jobs:  # every line parsed once, the template composed once
        composer.task_values(job)
    values = [composer.task_values(job) for job in jobs]
    figures = {
        "override line, Hydra's parser": best(lambda: [parser.parse_override(x) for x in lines], a.repeat),
        "override line, the shortcut": best(shortcut, a.repeat),
        "task values": best(lambda: [composer.task_values(j) for j in jobs], a.repeat),
        "from_values": best(lambda: [from_values(v) for v in values], a.repeat),
        "plan_cell": best(lambda: [plan_cell(v, lambda: "cpu") for v in values], a.repeat),
    }  # fmt: skip
    for name, seconds in figures.items():
        print(f"{name}: {seconds / n * 1000:.4f} ms per cell")


if __name__ == "__main__":
    main()
