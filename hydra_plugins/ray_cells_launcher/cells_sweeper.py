# No `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules,
# where dataclasses cannot resolve string annotations.
"""`hydra/sweeper=cells`: Hydra's basic sweeper without its second composition of every job.

Hydra's BasicSweeper composes each job once just to validate it, and the launcher then
composes it again to run it: with thousands of cells that doubles the planning time. The
`ray_cells` launcher composes (and so validates, with Hydra's own code) every job before it
starts anything, so under it this sweeper skips the extra pass. With any other launcher it
validates exactly like BasicSweeper.
"""

from dataclasses import dataclass
from typing import List, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore


@dataclass
class CellsSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.ray_cells_launcher.cells_sweeper.CellsSweeper"


ConfigStore.instance().store(
    group="hydra/sweeper", name="cells", node=CellsSweeperConf, provider="ray_cells"
)


class CellsSweeper(BasicSweeper):
    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        from .ray_cells_launcher import RayCellsLauncher

        if isinstance(self.launcher, RayCellsLauncher):
            return  # the launcher composes every job before anything runs
        super().validate_batch_is_legal(batch)


__all__: List[str] = ["CellsSweeper", "CellsSweeperConf"]
