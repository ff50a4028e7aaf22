"""The work of the `ray_cells` launcher: plan jobs, place them on actors, collect returns.

Scheduling: one pool of long-lived actors per resource shape (e.g. {"NPU": 1}); at most as
many actors as the alive nodes can hold. A free actor takes the next pending job, preferring
one with the same ``affinity`` key as its previous job (the same model stays loaded). When a
worker process dies, its job is re-queued on a fresh actor up to ``max_retries`` times.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobRuntime, JobStatus, configure_log, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict

from . import _cluster
from ._app import App, Job
from ._compose import Composer
from ._progress import Progress
from ._worker import JobWorker

log = logging.getLogger(__name__)

LOST = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError)


class Unplaceable(RuntimeError):
    """No alive node has the resources a job needs any more."""


class WorkerLost(RuntimeError):
    """The worker process running a job died more often than max_retries allows."""


@dataclass
class Settings:
    """The launcher's settings (RayCellsLauncherConf), typed."""

    ray: Any = None
    app: str | None = None
    app_options: dict[str, Any] = field(default_factory=dict)
    resume: bool = True
    max_retries: int = 2
    job_timeout_s: float = 0.0
    stall_timeout_s: float = 60.0
    ship_working_dir: bool = True
    progress: str = "auto"
    keep_job_configs: bool = True

    @classmethod
    def of(cls, params: dict[str, Any]) -> Settings:
        known = {f for f in cls.__dataclass_fields__ if f in params}
        s = cls(**{k: params[k] for k in known})
        s.app_options = dict(s.app_options or {})
        return s


def _load_app(s: Settings) -> App:
    if not s.app:
        return App()
    module, _, name = s.app.replace(":", ".").rpartition(".")
    return getattr(importlib.import_module(module), name)(**s.app_options)


def _task_dir(task_function: Any) -> str | None:
    """The directory of the task function's source file, to ship to the workers.

    A callable object counts by its class. None when there is no file (an interactive
    ``__main__``, a builtin) or when the code is installed (site-packages): installed code is
    on the workers already, and shipping a library's folder would put it first on their path.
    """
    obj = task_function
    if not (inspect.isfunction(obj) or inspect.ismethod(obj) or inspect.isclass(obj)):
        obj = type(obj)
    try:
        path = os.path.abspath(inspect.getfile(obj))
    except (TypeError, OSError):
        return None
    if any(part in ("site-packages", "dist-packages") for part in Path(path).parts):
        return None
    return os.path.dirname(path)


class _Cluster:
    """Ray for this launch, started (or joined) on first use and stopped at the end."""

    def __init__(self, settings: Settings, work_dir: str | None, env: dict[str, str]) -> None:
        self.settings, self.work_dir, self.env = settings, work_dir, env
        self.session: _cluster.Session | None = None

    def nodes(self) -> list[dict[str, Any]]:
        if self.session is None:
            self.session = _cluster.start(self.settings.ray, self.work_dir, self.env)
        return _cluster.alive_nodes()

    def stop(self) -> None:
        if self.session is not None:
            _cluster.stop(self.session)
            self.session = None


class _Planner:
    """What an app's ``prepare`` plans with (hydra_plugins.ray_cells_launcher.app.Planner)."""

    def __init__(self, composer: Composer, sweep_dir: str, cluster: _Cluster) -> None:
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


def _finished_return(job: Job, value: Any, status: JobStatus = JobStatus.COMPLETED) -> JobReturn:
    """A JobReturn made by the launcher (a skipped job, a runner's result, a lost job)."""
    ret = JobReturn(overrides=job.overrides, working_dir=job.output_dir)
    ret.task_name = JobRuntime.instance().get("name")
    if job.config is not None:
        ret.cfg = OmegaConf.masked_copy(job.config, [k for k in job.config if k != "hydra"])
        ret.hydra_cfg = job.config
    ret.return_value = value
    ret.status = status
    return ret


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], start_idx: int) -> list:
    setup_globals()
    s = Settings.of(launcher.params)
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    app = _load_app(s)
    sweep_dir = os.path.abspath(str(launcher.config.hydra.sweep.dir))
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    work_dir = _task_dir(launcher.task_function) if s.ship_working_dir else None
    cluster = _Cluster(s, work_dir, app.env_vars())
    jobs = [Job(start_idx + i, list(o)) for i, o in enumerate(job_overrides)]
    interrupted = False
    try:
        composer = Composer(launcher.config, launcher.hydra_context.config_loader)
        app.prepare(jobs, sweep_dir, _Planner(composer, sweep_dir, cluster))
        todo = _skip_done(app, jobs, s)
        log.info(
            "ray_cells: %d jobs, %d already done, %d to run; sweep dir %s",
            len(jobs), len(jobs) - len(todo), len(todo), sweep_dir,
        )  # fmt: skip
        if todo:
            progress = Progress(len(jobs), len(jobs) - len(todo), s.progress)
            Scheduler(launcher, app, s, cluster, progress).run(todo)
    except KeyboardInterrupt:
        interrupted = True
        log.warning("interrupted: running jobs cancelled, finished results kept")
        raise
    finally:
        cluster.stop()
        app.on_end(jobs, sweep_dir, interrupted)
    return [job.ret for job in jobs if job.ret is not None]


def _skip_done(app: App, jobs: list[Job], s: Settings) -> list[Job]:
    todo = []
    for job in jobs:
        done = app.is_done(job) if s.resume else None
        if done is not None:
            job.ret = _finished_return(job, done)
        else:
            todo.append(job)
        if not s.keep_job_configs:
            job.config = None  # composed again when dispatched: the driver's memory stays flat
    return todo


@dataclass
class Slot:
    """One actor of a pool: placed once it answered its probe; runs one job at a time."""

    handle: Any
    key: str  # the resource shape it was created with
    ready: bool = False
    job: Job | None = None
    affinity: str | None = None


class Scheduler:
    """Pools of actors per resource shape, fed from per-shape queues of pending jobs."""

    def __init__(
        self, launcher: Any, app: App, s: Settings, cluster: _Cluster, progress: Progress
    ) -> None:
        self.launcher, self.app, self.s, self.cluster = launcher, app, s, cluster
        self.progress = progress
        self.runner = app.runner()
        self.singletons = None if self.runner else Singleton.get_state()
        self.job_runtime = JobRuntime.instance().conf
        self.composer: Composer | None = None
        self.pending: dict[str, list[Job]] = {}
        self.shapes: dict[str, dict[str, Any]] = {}
        self.slots: dict[str, list[Slot]] = {}
        # ref -> (slot, its job; None for the actor's readiness probe)
        self.in_flight: dict[Any, tuple[Slot, Job | None]] = {}
        self.stalled_since = 0.0

    # --- setup -------------------------------------------------------------------------
    def run(self, todo: list[Job]) -> None:
        nodes = self.cluster.nodes()
        for job in todo:
            job.shape = self.app.resources(job, nodes)
            job.affinity = self.app.affinity(job)
            _cluster.check_feasible(job.shape, self.app.describe(job))
            key = repr(sorted(job.shape.items()))
            self.pending.setdefault(key, []).append(job)
            self.shapes[key] = job.shape
        try:
            while self._busy():
                self._step()
        finally:
            self.progress.close()
            self._kill_all()

    def _busy(self) -> bool:
        return any(self.pending.values()) or any(j for _, j in self.in_flight.values())

    def _step(self) -> None:
        nodes = _cluster.alive_nodes()
        room = 0
        for key, queue in self.pending.items():
            cap = _cluster.capacity(self.shapes[key], nodes)
            room += cap if queue else 0
            self._grow(key, queue, cap)
            self._dispatch(key, queue)
        self._check_stall(running=any(j for _, j in self.in_flight.values()), room=room)
        if not self.in_flight:
            time.sleep(0.5)
            return
        ready, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=0.5)
        for ref in ready:
            self._collect(ref)
        if self.s.job_timeout_s:
            self._enforce_timeout()
        self.progress.update(running=sum(1 for _, j in self.in_flight.values() if j))

    # --- actors ------------------------------------------------------------------------
    def _grow(self, key: str, queue: list[Job], cap: int) -> None:
        """Start actors while jobs wait for more than the idle and starting ones can take."""
        slots = self.slots.setdefault(key, [])
        free = sum(1 for s in slots if not s.ready or s.job is None)
        while len(queue) > free and len(slots) < cap:
            opts = {k: v for k, v in self.shapes[key].items() if v}
            opts.setdefault("num_cpus", 0)
            # A runner needs neither the task function nor Hydra's state in the worker.
            ctx = (None, None, None) if self.runner else self._hydra_args()
            handle = JobWorker.options(**opts).remote(*ctx)
            slot = Slot(handle, key)
            slots.append(slot)
            # A new actor gets no job until it answered: one that cannot be placed (its
            # node died) never holds a job hostage.
            self.in_flight[handle.where.remote()] = (slot, None)
            free += 1

    def _hydra_args(self) -> tuple[Any, Any, Any]:
        return (self.launcher.hydra_context, self.launcher.task_function, self.singletons)

    def _forget(self, slot: Slot) -> None:
        if slot in self.slots.get(slot.key, []):
            self.slots[slot.key].remove(slot)

    def _drop(self, slot: Slot) -> None:
        self._forget(slot)
        ray.kill(slot.handle, no_restart=True)

    def _kill_all(self) -> None:
        for slots in self.slots.values():
            for slot in slots:
                ray.kill(slot.handle, no_restart=True)
        self.slots.clear()

    # --- jobs --------------------------------------------------------------------------
    def _dispatch(self, key: str, queue: list[Job]) -> None:
        for slot in self.slots.get(key, []):
            if not queue:
                return
            if not slot.ready or slot.job is not None:
                continue
            # Prefer a job for the model this actor already has loaded.
            job = next((j for j in queue if j.affinity == slot.affinity), queue[0])
            queue.remove(job)
            job.attempts += 1
            job.started = time.monotonic()
            slot.job, slot.affinity = job, job.affinity
            self.app.on_dispatch(job)
            if self.runner is not None:
                ref = slot.handle.run_direct.remote(self.runner, job.payload)
            else:
                if job.config is None:
                    job.config = self._compose(job)
                keep = self.s.keep_job_configs
                ref = slot.handle.run.remote(job.config, self.job_runtime, keep)
            self.in_flight[ref] = (slot, job)

    def _compose(self, job: Job) -> DictConfig:
        if self.composer is None:
            self.composer = Composer(
                self.launcher.config, self.launcher.hydra_context.config_loader
            )
        sweep_dir = os.path.dirname(job.output_dir)
        return _Planner(self.composer, sweep_dir, self.cluster).compose(job)

    def _collect(self, ref: Any) -> None:
        slot, job = self.in_flight.pop(ref)
        if job is None:  # an actor answered its probe: it is placed and ready for jobs
            try:
                ray.get(ref)
                slot.ready = True
            except LOST:
                self._forget(slot)
            return
        slot.job = None
        try:
            result, where = ray.get(ref)
        except LOST as exc:
            self._forget(slot)
            self._lost(job, exc, self.s.max_retries)
            return
        job.ret = self._job_return(job, result)
        if not self.s.keep_job_configs:
            job.config = None
        if self.app.on_result(job, job.ret, where):
            self._drop(slot)  # a failed job may leave the device unusable
        self.progress.finished(job.ret.status == JobStatus.COMPLETED)

    def _job_return(self, job: Job, result: Any) -> JobReturn:
        if self.runner is None:
            ret: JobReturn = result
            if not self.s.keep_job_configs:
                ret.cfg = ret.hydra_cfg = None
            return ret
        ok, value = result
        return _finished_return(job, value, JobStatus.COMPLETED if ok else JobStatus.FAILED)

    def _lost(self, job: Job, exc: BaseException, retries: int) -> None:
        if job.attempts <= retries:
            log.warning(
                "worker died running %s (attempt %d): retrying",
                self.app.describe(job),
                job.attempts,
            )
            self.pending[repr(sorted(job.shape.items()))].insert(0, job)
            return
        what = self.app.describe(job)
        if isinstance(exc, TimeoutError):
            err = WorkerLost(f"{what}: {exc}; its worker was killed")
        elif isinstance(exc, Unplaceable):
            err = WorkerLost(f"{what}: {exc}")
        else:
            err = WorkerLost(f"worker died {job.attempts} times running {what}: {exc}")
        self.app.on_lost(job, err)
        job.ret = _finished_return(job, err, JobStatus.FAILED)
        if not self.s.keep_job_configs:
            job.config = None
        self.progress.finished(False)

    def _check_stall(self, running: bool, room: int) -> None:
        """Jobs whose every possible node is gone fail after stall_timeout_s."""
        if running or room:
            self.stalled_since = 0.0
            return
        self.stalled_since = self.stalled_since or time.monotonic()
        if time.monotonic() - self.stalled_since <= self.s.stall_timeout_s:
            return
        err = Unplaceable(f"no alive node could run it for {self.s.stall_timeout_s:g} s")
        for queue in self.pending.values():
            while queue:
                self._lost(queue.pop(0), err, -1)  # -1: never re-queued

    def _enforce_timeout(self) -> None:
        now = time.monotonic()
        for ref, (slot, job) in list(self.in_flight.items()):
            if job is not None and now - job.started > self.s.job_timeout_s:
                self.in_flight.pop(ref)
                self._drop(slot)
                err = TimeoutError(f"no result after {self.s.job_timeout_s:g} s")
                self._lost(job, err, 0)  # 0: never retried


__all__ = ["Settings", "Scheduler", "Slot", "WorkerLost", "launch"]
