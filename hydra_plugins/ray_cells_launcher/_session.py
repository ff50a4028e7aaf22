"""One launch's Ray session (its cluster started or joined on first use) and what an app
plans its jobs with."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hydra.core.utils import JobReturn, JobRuntime, JobStatus
from omegaconf import DictConfig, OmegaConf, open_dict

from . import _cluster
from ._app import Job
from ._compose import Composer
from ._fleet import node_order
from ._settings import Settings


def interrupt(signum: int, frame: Any) -> None:
    """SIGTERM stops a sweep the way Ctrl-C does."""
    raise KeyboardInterrupt(f"signal {signum}")


class Session:
    """This launch's Ray session: the cluster is started (or joined) on first use and
    stopped at the end."""

    def __init__(self, settings: Settings, work_dir: str | None, env: dict[str, str]) -> None:
        self.settings, self.work_dir, self.env = settings, work_dir, env
        self.cluster: _cluster.Cluster | None = None
        self.order: list[str] = []  # node ids in index order (_fleet.node_order)

    def nodes(self) -> list[dict[str, Any]]:
        if self.cluster is None:
            self.cluster = _cluster.start(self.settings.ray, self.work_dir, self.env)
            # Ray's core worker installs its own SIGTERM handler (a C++ stack dump, then
            # abort): SIGTERM is an interrupt of the sweep, like Ctrl-C.
            signal.signal(signal.SIGTERM, interrupt)
        return _cluster.alive_nodes()

    def node_index(self, node_id: str | None) -> int | None:
        """The index of a node in the cluster (simulated nodes: their start order)."""
        if node_id is None:
            return None
        if node_id not in self.order:
            self.order = node_order(self.cluster, _cluster.alive_nodes())
        return self.order.index(node_id) if node_id in self.order else None

    @property
    def used(self) -> str | None:
        """Which Ray this launch runs on, in words (None before it started)."""
        return self.cluster.used if self.cluster is not None else None

    def stop(self) -> None:
        if self.cluster is not None:
            _cluster.stop(self.cluster)
            self.cluster = None


_HELD: dict[str, Any] = {"depth": 0, "session": None}


@contextmanager
def one_session() -> Iterator[None]:
    """Launches inside share one Ray session, stopped when the block ends: a sweeper's
    rounds start Ray once instead of once per round (until_oom_sweeper.py)."""
    _HELD["depth"] += 1
    try:
        yield
    finally:
        _HELD["depth"] -= 1
        if _HELD["depth"] == 0 and _HELD["session"] is not None:
            session, _HELD["session"] = _HELD["session"], None
            session.stop()


def open_session(settings: Settings, work_dir: str | None, env: dict[str, str]) -> Session:
    """This launch's session: the held one inside :func:`one_session` (made on first use)."""
    if not _HELD["depth"]:
        return Session(settings, work_dir, env)
    if _HELD["session"] is None:
        _HELD["session"] = Session(settings, work_dir, env)
    return _HELD["session"]


def release(session: Session) -> None:
    """The end of a launch: its session stops unless :func:`one_session` holds it."""
    if session is not _HELD["session"]:
        session.stop()


class Planner:
    """What an app's ``prepare`` plans with (hydra_plugins.ray_cells_launcher.app.Planner)."""

    def __init__(self, composer: Composer, sweep_dir: str, session: Session) -> None:
        self.composer, self.sweep_dir, self.session = composer, sweep_dir, session
        self.config = composer.master

    def compose(self, job: Job) -> DictConfig:
        cfg = self.composer.compose(job.overrides)
        with open_dict(cfg):
            cfg.hydra.job.id = f"{job.idx}"
            cfg.hydra.job.num = job.idx
            # Absolute, so workers whose cwd is elsewhere write where the driver reads.
            cfg.hydra.sweep.dir = self.sweep_dir
            # Resolved here, once: a worker needs none of the driver's resolvers to find it.
            cfg.hydra.sweep.subdir = str(OmegaConf.select(cfg, "hydra.sweep.subdir"))
        return cfg

    def task_values(self, overrides: list[str]) -> dict[str, Any] | None:
        return self.composer.task_values(overrides)

    def nodes(self) -> list[dict[str, Any]]:
        return self.session.nodes()


def finished_return(
    job: Job,
    value: Any,
    status: JobStatus = JobStatus.COMPLETED,
    task_name: str | None = None,
) -> JobReturn:
    """A JobReturn made by the launcher (a skipped job, a runner's result, a lost job);
    ``task_name``: Hydra's job name, when the caller has it (else looked up: OmegaConf's
    select, ~0.05 ms, per job)."""
    ret = JobReturn(overrides=job.overrides, working_dir=job.output_dir)
    ret.task_name = JobRuntime.instance().get("name") if task_name is None else task_name
    if job.config is not None:
        ret.cfg = OmegaConf.masked_copy(job.config, [k for k in job.config if k != "hydra"])
        ret.hydra_cfg = job.config
    ret.return_value = value
    ret.status = status
    return ret
