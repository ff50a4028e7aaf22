"""Fleet mode (``hydra.launcher.fleet``, set by ``hydra/sweeper=fleet``): every job on every
device of the cluster, and where each worker runs named so its results can say it.

Each planned job becomes as many jobs as the alive nodes hold workers of its resource shape
(one per card for ``{"NPU": 1}``); the copies share a ``spread`` key, and the scheduler never
hands two jobs of one key to the same placement (a node and the device ids Ray gave the
worker), so with every card held by one worker each card runs each job once.

Every worker is told its node's index in the cluster (:data:`NODE_INDEX_ENV`): the start
order of simulated nodes (``hydra.launcher.ray.sim_nodes``), else the alive nodes sorted by
address and id. Workers read it without importing Ray.
"""

from __future__ import annotations

from typing import Any

from . import _cluster
from ._app import App, Job

# What a worker process is told: its node's index in the cluster (a string of digits).
NODE_INDEX_ENV = "RAY_CELLS_NODE_INDEX"


def node_order(cluster: _cluster.Cluster | None, nodes: list[dict[str, Any]]) -> list[str]:
    """Node ids in index order: simulated nodes as started, else by (address, id)."""
    if cluster is not None and cluster.simulated is not None:
        return [n.node_id for n in cluster.simulated.list_all_nodes()]
    ordered = sorted(nodes, key=lambda n: (str(n.get("NodeManagerAddress")), str(n.get("NodeID"))))
    return [str(n.get("NodeID")) for n in ordered]


def placement(where: dict[str, Any] | None) -> str:
    """A worker's place: its node and the device ids Ray gave it ('' before it answered)."""
    if not where:
        return ""
    visible = ",".join(f"{k}={v}" for k, v in sorted((where.get("visible") or {}).items()))
    return f"{where.get('ray_node_id')}|{visible}"


def node_env(node_index: int | None) -> dict[str, str]:
    """What a worker's process is told before a job: its node's index."""
    return {} if node_index is None else {NODE_INDEX_ENV: str(node_index)}


class Spread:
    """Which placements have taken a job of which spread key (fleet jobs only)."""

    def __init__(self) -> None:
        self.used: set[tuple[str, str]] = set()

    def fits(self, queue: list[Job], place: str) -> list[Job]:
        """The queued jobs a worker at ``place`` may take."""
        return [j for j in queue if not j.spread or (j.spread, place) not in self.used]

    def take(self, job: Job, place: str) -> None:
        if job.spread:
            self.used.add((job.spread, place))

    def release(self, job: Job, place: str) -> None:
        self.used.discard((job.spread, place))

    def blocked(self, queue: list[Job], places: set[str]) -> bool:
        """Every queued job is a fleet job that every one of ``places`` has run already
        (the scheduler asks when all its workers are placed and idle: their device is gone)."""
        return all(j.spread and all((j.spread, p) in self.used for p in places) for j in queue)


def fan_out(app: App, jobs: list[Job], nodes: list[dict[str, Any]]) -> None:
    """Replace every job by its fleet copies, one per worker its shape fits on ``nodes``."""
    out: list[Job] = []
    next_idx = max((j.idx for j in jobs), default=-1) + 1
    for job in jobs:
        shape = app.resources(job, nodes)
        n = _cluster.capacity(shape, nodes)
        if n < 1:
            _cluster.check_feasible(shape, app.describe(job))
        copies = app.fleet_copies(job, max(n, 1), next_idx)
        next_idx += len(copies) - 1
        for c in copies:
            c.spread = f"fleet:{job.idx}"
        out += copies
    jobs[:] = out


__all__ = ["NODE_INDEX_ENV", "Spread", "fan_out", "node_env", "node_order", "placement"]
