"""Ray's few calls the `ray_cells` scheduler makes, answered in the test's process: actors
placed on the cards of one node that answer at once (every result is there when asked)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import ray


class Ref:
    def __init__(self, value: Any) -> None:
        self.value = value


class Actor:
    """A JobWorker stand-in placed on one card; runs the runner in this process."""

    def __init__(self, card: int, keep: bool) -> None:
        where = {"ray_node_id": "n0", "visible": {"ASCEND_RT_VISIBLE_DEVICES": str(card)}}
        self.payloads: list[Any] = []  # what it ran (when its cluster keeps them)
        self.where = SimpleNamespace(remote=lambda: Ref(where))

        def run(runner: Any, payload: Any, env: dict) -> Ref:
            if keep:
                self.payloads.append(payload)
            return Ref(((True, runner(payload)), where))

        self.run_direct = SimpleNamespace(remote=run)


class FakeRay:
    """Stands in for the `ray` module and for JobWorker in the scheduler's module."""

    exceptions = ray.exceptions

    def __init__(self, keep: bool = True) -> None:
        self.actors: list[Actor] = []
        self.waits = 0
        self.keep = keep  # the actors keep the payloads they ran

    def options(self, **opts: Any) -> FakeRay:
        return self

    def remote(self, *ctx: Any) -> Actor:
        self.actors.append(Actor(len(self.actors), self.keep))
        return self.actors[-1]

    def wait(self, refs: list, num_returns: int = 1, timeout: float | None = None) -> tuple:
        self.waits += 1
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: Ref) -> Any:
        return ref.value

    def kill(self, actor: Any, no_restart: bool = True) -> None:
        pass


def install(monkeypatch: Any, npus: int = 8, keep: bool = True) -> FakeRay:
    """The scheduler's Ray calls answered by a FakeRay; one alive node with ``npus`` NPUs;
    ``keep``: its actors keep the payloads they ran."""
    from hydra_plugins.ray_cells_launcher import _cluster, _scheduler

    fake = FakeRay(keep)
    monkeypatch.setattr(_scheduler, "ray", fake)
    monkeypatch.setattr(_scheduler, "JobWorker", fake)
    nodes = [{"NodeID": "n0", "Alive": True, "Resources": {"CPU": 2.0, "NPU": float(npus)}}]
    monkeypatch.setattr(_cluster, "alive_nodes", lambda: nodes)
    return fake


def scheduler(app: Any, n_jobs: int) -> Any:
    """A Scheduler over the stand-in cluster (no launcher: the app must have a runner)."""
    from hydra_plugins.ray_cells_launcher import _cluster
    from hydra_plugins.ray_cells_launcher._progress import Progress
    from hydra_plugins.ray_cells_launcher._scheduler import Scheduler

    s = SimpleNamespace(max_retries=0, job_timeout_s=0.0, stall_timeout_s=60.0,
                        keep_job_configs=False)  # fmt: skip
    session = SimpleNamespace(nodes=_cluster.alive_nodes, node_index=lambda node: 0, used="t")
    return Scheduler(None, app, s, session, Progress(n_jobs, 0, "off"))
