"""The hooks an application gives the `ray_cells` launcher (``hydra.launcher.app``).

The launcher itself is a plain Hydra launcher: without an app, every job is composed by
Hydra and run through Hydra's ``run_job`` on a Ray actor that takes one CPU. An app
customises planning, placement, resume, where results go and the end of the sweep. An app
that returns a ``runner`` takes over the job itself: the launcher then ships each job's
``payload`` (or what ``on_dispatch`` returns for it: a form cheaper to pickle) to a worker
and calls ``runner(payload)`` there instead of ``run_job`` (no Hydra composition per job, no
Hydra state in the workers), and the app keeps each job's output
directory as Hydra users expect it (it is told the job's composed task config to save).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf


class WorkerLost(RuntimeError):
    """A job's worker died more often than max_retries allows, it timed out, or no node can
    run it any more (``App.on_lost`` receives it)."""


class HostOutOfMemory(WorkerLost):
    """Ray's memory monitor killed the worker: its host ran out of memory (never retried).
    ``usage``: how full the host was, as Ray said it (" (4.3GB used / 23.5GB, ...)" or "")."""

    usage: str = ""

    @classmethod
    def of(cls, what: str, exc: BaseException) -> HostOutOfMemory:
        """One line instead of Ray's paragraph of advice: what ran out, how full the host
        was, and what changes it."""
        text = " ".join(str(exc).split())
        used = re.search(r"was ([\d.]+ ?[KMGT]?B)(?: used)? / ([\d.]+ ?[KMGT]?B)", text)
        limit = re.search(r"\(([\d.]+%) of \d+B limit\)|usage threshold of ([\d.]*\d)", text)
        usage = f"{used.group(1)} of {used.group(2)} used" if used else ""
        if limit:
            usage += f"{', ' if usage else ''}limit {limit.group(1) or limit.group(2)}"
        err = cls(
            f"{what}: the host ran out of memory{f' ({usage})' if usage else ''}: Ray's memory "
            "monitor killed its worker (not retried); run fewer or smaller jobs at once, or "
            "raise RAY_memory_usage_threshold"
        )
        err.usage = f" ({usage})" if usage else ""
        return err


@dataclass(slots=True)
class Job:
    """One job of the sweep, as the launcher tracks it (slots: a sweep holds one per cell
    until it ends)."""

    idx: int
    overrides: list[str]
    output_dir: str = ""
    config: DictConfig | None = None  # the composed job config, while it is needed
    payload: Any = None  # what a runner receives in the worker (apps with a runner)
    shape: dict[str, Any] = field(default_factory=dict)  # Ray resources of its worker
    affinity: str = ""  # jobs with the same key prefer the worker that ran the last one
    # Jobs with the same non-empty key run on distinct devices (fleet mode: one per card).
    spread: str = ""
    attempts: int = 0
    started: float = 0.0
    ret: JobReturn | None = None


class Planner(Protocol):
    """What the launcher offers an app's ``prepare`` to plan jobs with."""

    #: The sweep's master config (hydra node included, e.g. hydra.launcher's settings).
    config: DictConfig

    def compose(self, job: Job) -> DictConfig:
        """The job's full config, composed by Hydra (hydra node included)."""
        ...

    def task_values(self, overrides: list[str]) -> dict[str, Any] | None:
        """The job's task config as plain values, without composing it (None: compose)."""
        ...

    def nodes(self) -> list[dict[str, Any]]:
        """The alive Ray nodes (starts or joins Ray on first use)."""
        ...


class App:
    """Default hooks: every job is composed by Hydra, takes one CPU, nothing is skipped."""

    def prepare(self, jobs: list[Job], sweep_dir: str, planner: Planner) -> None:
        """Plan every job before anything starts: set ``output_dir`` (and ``config`` or
        ``payload``). Bad input should stop the sweep here."""
        for job in jobs:
            job.config = planner.compose(job)
            subdir = str(OmegaConf.select(job.config, "hydra.sweep.subdir"))
            job.output_dir = os.path.join(sweep_dir, subdir)

    def runner(self) -> Callable[[Any], Any] | None:
        """A picklable function run in the worker on each job's payload, instead of
        Hydra's run_job; None: run_job with the job's composed config."""
        return None

    def resources(self, job: Job, nodes: list[dict[str, Any]]) -> dict[str, Any]:
        return {"num_cpus": 1}

    def describe(self, job: Job) -> str:
        return " ".join(job.overrides) or f"job {job.idx}"

    def affinity(self, job: Job) -> str:
        return ""

    def is_done(self, job: Job) -> Any | None:
        """A finished result from an earlier launch (the job is skipped), or None."""
        return None

    def on_dispatch(self, job: Job) -> Any | None:
        """A job is handed to a worker (e.g. write its config files). Apps with a runner may
        return what the runner is given for it instead of its payload (a form that is
        cheaper to send); None: its payload."""
        return None

    def on_result(self, job: Job, ret: JobReturn, where: dict[str, Any]) -> bool:
        """Store a result; return True if the worker should be replaced by a fresh one."""
        return ret.status != JobStatus.COMPLETED

    def on_lost(self, job: Job, error: BaseException) -> Any | None:
        """A job failed without a result (its worker died too often, it timed out, or no
        node can run it any more). Return a value to complete the job with it (the app
        recorded the failure itself), or None: the job fails with ``error``."""
        return None

    def on_end(self, jobs: list[Job], sweep_dir: str, interrupted: bool) -> None: ...

    def fleet_copies(self, job: Job, n: int, first_idx: int) -> list[Job]:
        """Fleet mode (``hydra.launcher.fleet``): the job as ``n`` jobs, one per device of
        the cluster (the launcher gives them one ``spread`` key, so each runs on its own
        device). Copy k > 0 takes index ``first_idx + k - 1``. The default copies the
        overrides; an app with its own output directories gives each copy its own."""
        copies = [job] + [Job(first_idx + k, list(job.overrides)) for k in range(n - 1)]
        for c in copies[1:]:
            c.config, c.payload, c.output_dir = job.config, job.payload, job.output_dir
        return copies

    def env_vars(self) -> dict[str, str]:
        return {}


__all__ = ["App", "HostOutOfMemory", "Job", "Planner", "WorkerLost"]
