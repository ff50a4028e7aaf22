# No `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules,
# where dataclasses cannot resolve string annotations.
"""`hydra/sweeper=fleet`: the given cells on every card of the cluster.

    python launch.py -m hydra/sweeper=fleet batch=1 seq=128 device=npu ...

The sweep is the `cells` sweeper's, with the `ray_cells` launcher's fleet mode on
(``hydra.launcher.fleet``): each job becomes one job per device of the cluster (every node),
and no device runs two copies of one job (_fleet.py). The app names where each copy ran; the
sweep's outputs compare the cards (docs/fleet.md).
"""

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore

from .cells_sweeper import CellsSweeper, CellsSweeperConf, _stop


@dataclass
class FleetSweeperConf(CellsSweeperConf):
    _target_: str = "hydra_plugins.ray_cells_launcher.fleet_sweeper.FleetSweeper"


ConfigStore.instance().store(
    group="hydra/sweeper", name="fleet", node=FleetSweeperConf, provider="ray_cells"
)


class FleetSweeper(CellsSweeper):
    def run_sweep(self, arguments: list[str]) -> Any:
        from .ray_cells_launcher import RayCellsLauncher

        if not isinstance(self.launcher, RayCellsLauncher):
            _stop("hydra/sweeper=fleet needs hydra/launcher=cells (the ray_cells launcher)")
        self.launcher.params["fleet"] = True  # type: ignore[union-attr]
        return super().run_sweep(arguments)


__all__: list[str] = ["FleetSweeper", "FleetSweeperConf"]
