"""`python -m tests.integration.docs_plan OVERRIDES...`: the validation-only pass of the docs
check (tests/integration/test_docs_commands.py) for a sweep too costly to run here.

Every job of the sweep (the overrides expanded as Hydra's basic sweeper does) is composed
from conf/ with its hydra.* overrides, planned into a cell and validated on this host, as
the sweep's own planning does before anything starts (sweep/prepare.py); nothing is
measured. Exit 0 with `planned N cells`, or 2 with one `error:` line (the first bad job).
"""

from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from jobs.config import ConfigError
from sweep.plan import plan_cell, task_values
from sweep.schema import register
from sweep.validate import validate

CONF = Path(__file__).resolve().parents[2] / "conf"


def main(args: list[str]) -> int:
    register()
    args = [a for a in args if a not in ("-m", "--multirun")]
    jobs = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(args), None)
    cells = set()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        for job in [j for batch in jobs for j in batch]:
            try:
                cfg = compose("config", overrides=list(job), return_hydra_config=True)
                planned = plan_cell(task_values(cfg), lambda: "cpu")
                validate(planned.cell, local=True)
            except ConfigError as exc:
                print(f"error: job {' '.join(job)}: {exc}", file=sys.stderr)
                return 2
            except Exception as exc:  # Hydra's own composition errors
                print(f"error: job {' '.join(job)}: {type(exc).__name__}: {exc}", file=sys.stderr)
                return 2
            cells.add(planned.cell_dir)
    print(f"planned {len(cells)} cells")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
