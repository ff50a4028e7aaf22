# No `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules,
# where dataclasses cannot resolve string annotations.
"""`hydra/sweeper=cells`: Hydra's basic sweeper, one live sweep per directory, no double pass.

Before anything is written, the sweep directory must be usable and not in use by another
live sweep (an flock on SWEEP/.sweep.lock, taken before Hydra writes multirun.yaml, so a
refused launch changes nothing of the live one). Hydra's BasicSweeper composes each job once
just to validate it, and the launcher then composes it again to run it: with thousands of
cells that doubles the planning time. The `ray_cells` launcher plans (and so validates) every
job before it starts anything, so under it this sweeper skips the extra pass. With any other
launcher it validates exactly like BasicSweeper.
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore


@dataclass
class CellsSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.ray_cells_launcher.cells_sweeper.CellsSweeper"


ConfigStore.instance().store(
    group="hydra/sweeper", name="cells", node=CellsSweeperConf, provider="ray_cells"
)


def _unusable(sweep_dir: Path) -> Optional[str]:
    """Why the sweep directory cannot be written, or None."""
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        probe = sweep_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _stop(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


class CellsSweeper(BasicSweeper):
    def sweep(self, arguments: List[str]) -> Any:
        from ._lock import SweepBusy, SweepLock

        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        problem = _unusable(sweep_dir)
        if problem:
            _stop(f"hydra.sweep.dir={sweep_dir} cannot be used: {problem}")
        lock = SweepLock(sweep_dir)
        try:
            lock.acquire()
        except SweepBusy as exc:
            _stop(str(exc))
        try:
            return self.run_sweep(arguments)
        finally:
            lock.release()

    def run_sweep(self, arguments: List[str]) -> Any:
        """The sweep itself, once the directory is ours (subclasses plan their own rounds)."""
        return super().sweep(arguments)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        from .ray_cells_launcher import RayCellsLauncher

        if isinstance(self.launcher, RayCellsLauncher):
            return  # the launcher composes every job before anything runs
        super().validate_batch_is_legal(batch)


__all__: List[str] = ["CellsSweeper", "CellsSweeperConf"]
