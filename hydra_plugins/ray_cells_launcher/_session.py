"""One launch's Ray (started or joined on first use) and what an app plans its jobs with."""

from __future__ import annotations

import signal
from typing import Any

from hydra.core.utils import JobReturn, JobRuntime, JobStatus
from omegaconf import DictConfig, OmegaConf, open_dict

from . import _cluster
from ._app import Job
from ._compose import Composer
from ._settings import Settings


def interrupt(signum: int, frame: Any) -> None:
    """SIGTERM stops a sweep the way Ctrl-C does."""
    raise KeyboardInterrupt(f"signal {signum}")


class Cluster:
    """Ray for this launch, started (or joined) on first use and stopped at the end."""

    def __init__(self, settings: Settings, work_dir: str | None, env: dict[str, str]) -> None:
        self.settings, self.work_dir, self.env = settings, work_dir, env
        self.session: _cluster.Session | None = None

    def nodes(self) -> list[dict[str, Any]]:
        if self.session is None:
            self.session = _cluster.start(self.settings.ray, self.work_dir, self.env)
            # Ray's core worker installs its own SIGTERM handler (a C++ stack dump, then
            # abort): SIGTERM is an interrupt of the sweep, like Ctrl-C.
            signal.signal(signal.SIGTERM, interrupt)
        return _cluster.alive_nodes()

    @property
    def used(self) -> str | None:
        """Which Ray this launch runs on, in words (None before it started)."""
        return self.session.used if self.session is not None else None

    def stop(self) -> None:
        if self.session is not None:
            _cluster.stop(self.session)
            self.session = None


class Planner:
    """What an app's ``prepare`` plans with (hydra_plugins.ray_cells_launcher.app.Planner)."""

    def __init__(self, composer: Composer, sweep_dir: str, cluster: Cluster) -> None:
        self.composer, self.sweep_dir, self.cluster = composer, sweep_dir, cluster
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
        return self.cluster.nodes()


def finished_return(job: Job, value: Any, status: JobStatus = JobStatus.COMPLETED) -> JobReturn:
    """A JobReturn made by the launcher (a skipped job, a runner's result, a lost job)."""
    ret = JobReturn(overrides=job.overrides, working_dir=job.output_dir)
    ret.task_name = JobRuntime.instance().get("name")
    if job.config is not None:
        ret.cfg = OmegaConf.masked_copy(job.config, [k for k in job.config if k != "hydra"])
        ret.hydra_cfg = job.config
    ret.return_value = value
    ret.status = status
    return ret
