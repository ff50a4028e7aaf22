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
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobRuntime, JobStatus, configure_log, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict

from . import _cluster
from ._compose import Composer
from ._progress import Progress
from ._worker import JobWorker

log = logging.getLogger(__name__)


class Unplaceable(RuntimeError):
    """No alive node has the resources a job needs any more."""


class WorkerLost(RuntimeError):
    """The worker process running a job died more often than max_retries allows."""


@dataclass
class Job:
    idx: int
    overrides: list[str]
    config: DictConfig | None  # the sweep config, hydra node included (None when dropped)
    output_dir: str
    shape: dict[str, Any] = field(default_factory=dict)
    affinity: str = ""
    attempts: int = 0
    started: float = 0.0
    ret: JobReturn | None = None


class App:
    """Default hooks: every job takes one CPU, nothing is skipped or written by the driver."""

    def prepare(self, jobs: list[Job], sweep_dir: str) -> None: ...

    def resources(self, job: Job, nodes: list[dict[str, Any]]) -> dict[str, Any]:
        return {"num_cpus": 1}

    def describe(self, job: Job) -> str:
        return " ".join(job.overrides) or f"job {job.idx}"

    def affinity(self, job: Job) -> str:
        return ""

    def is_done(self, job: Job) -> Any | None:
        return None

    def on_result(self, job: Job, ret: JobReturn, where: dict[str, Any]) -> bool:
        """Store a result; return True if the worker should be replaced by a fresh one."""
        return ret.status != JobStatus.COMPLETED

    def on_lost(self, job: Job, error: BaseException) -> None: ...

    def on_end(self, jobs: list[Job], sweep_dir: str, interrupted: bool) -> None: ...

    def env_vars(self) -> dict[str, str]:
        return {}


def _load_app(path: str | None, options: dict[str, Any] | None = None) -> App:
    if not path:
        return App()
    module, _, name = path.replace(":", ".").rpartition(".")
    return getattr(importlib.import_module(module), name)(**dict(options or {}))


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


def _job_config(composer: Composer, job: Job, sweep_dir: str) -> DictConfig:
    cfg = composer.compose(job.overrides)
    with open_dict(cfg):
        cfg.hydra.job.id = f"{job.idx}"
        cfg.hydra.job.num = job.idx
        # Absolute, so workers whose cwd is elsewhere write where the driver reads.
        cfg.hydra.sweep.dir = sweep_dir
        # Resolved here, once: a worker needs none of the driver's resolvers to find it.
        cfg.hydra.sweep.subdir = str(OmegaConf.select(cfg, "hydra.sweep.subdir"))
    return cfg


def _plan(
    composer: Composer, job_overrides: Sequence[Sequence[str]], start_idx: int, sweep_dir: str
) -> list[Job]:
    jobs = []
    for i, overrides in enumerate(job_overrides):
        job = Job(start_idx + i, list(overrides), None, "")  # type: ignore[arg-type]
        job.config = _job_config(composer, job, sweep_dir)
        HydraConfig.instance().set_config(job.config)
        job.output_dir = os.path.join(
            sweep_dir, str(OmegaConf.select(job.config, "hydra.sweep.subdir"))
        )
        jobs.append(job)
    return jobs


def _skipped_return(job: Job, value: Any, keep_configs: bool) -> JobReturn:
    ret = JobReturn(overrides=job.overrides, working_dir=job.output_dir)
    ret.task_name = JobRuntime.instance().get("name")
    if keep_configs and job.config is not None:
        ret.cfg = OmegaConf.masked_copy(job.config, [k for k in job.config if k != "hydra"])
        ret.hydra_cfg = job.config
    ret.return_value = value
    ret.status = JobStatus.COMPLETED
    return ret


class _Pool:
    """Actors per resource shape, created on demand up to what the alive nodes can hold.

    A new actor gets no job until it has answered `where()`: an actor that cannot be placed
    (its node died, or an idle actor still holds the device) never holds a job hostage.
    """

    def __init__(self, launcher: Any, singletons: Any) -> None:
        self.launcher = launcher
        self.singletons = (
            singletons  # Hydra's state (resolvers included), as Hydra's launchers ship it
        )
        self.actors: dict[str, list[dict[str, Any]]] = {}

    def new(self, key: str, shape: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        opts = {k: v for k, v in shape.items() if v}
        opts.setdefault("num_cpus", 0)
        handle = JobWorker.options(**opts).remote(
            self.launcher.hydra_context, self.launcher.task_function, self.singletons
        )
        slot = {"handle": handle, "job": None, "affinity": None, "ready": False}
        self.actors.setdefault(key, []).append(slot)
        return handle.where.remote(), slot

    def forget(self, key: str, slot: dict[str, Any]) -> None:
        if slot in self.actors.get(key, []):
            self.actors[key].remove(slot)

    def drop(self, key: str, slot: dict[str, Any]) -> None:
        self.forget(key, slot)
        ray.kill(slot["handle"], no_restart=True)

    def kill_all(self) -> None:
        for slots in self.actors.values():
            for slot in slots:
                ray.kill(slot["handle"], no_restart=True)
        self.actors.clear()


def launch(
    launcher: Any, job_overrides: Sequence[Sequence[str]], start_idx: int
) -> list[JobReturn]:
    setup_globals()
    params = launcher.params
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    app = _load_app(params.get("app"), params.get("app_options"))
    sweep_dir = os.path.abspath(str(launcher.config.hydra.sweep.dir))
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    composer = Composer(launcher.config, launcher.hydra_context.config_loader)
    jobs = _plan(composer, job_overrides, start_idx, sweep_dir)
    app.prepare(jobs, sweep_dir)  # validates every job before anything starts
    keep = bool(params.get("keep_job_configs", True))
    todo = []
    for job in jobs:
        done = app.is_done(job) if params.get("resume", True) else None
        if done is not None:
            job.ret = _skipped_return(job, done, keep)
        else:
            todo.append(job)
        if not keep:
            job.config = None  # composed again when dispatched: the driver's memory stays flat
    skipped = len(jobs) - len(todo)
    log.info(
        "ray_cells: %d jobs, %d already done, %d to run; sweep dir %s",
        len(jobs), skipped, len(todo), sweep_dir,
    )  # fmt: skip
    interrupted = False
    session = None
    try:
        if todo:
            work_dir = None
            if params.get("ship_working_dir", True):
                work_dir = _task_dir(launcher.task_function)
            session = _cluster.start(params["ray"], work_dir, app.env_vars())
            _run(
                launcher, app, todo, skipped, params, lambda j: _job_config(composer, j, sweep_dir)
            )
    except KeyboardInterrupt:
        interrupted = True
        log.warning("interrupted: running jobs cancelled, finished results kept")
        raise
    finally:
        if session is not None:
            _cluster.stop(session)
        app.on_end(jobs, sweep_dir, interrupted)
    return [job.ret for job in jobs if job.ret is not None]


def _run(
    launcher: Any, app: App, todo: list[Job], skipped: int, params: dict, make_config: Any
) -> None:
    nodes = _cluster.alive_nodes()
    for job in todo:
        job.shape = app.resources(job, nodes)
        job.affinity = app.affinity(job)
        _cluster.check_feasible(job.shape, app.describe(job))
    pool = _Pool(launcher, Singleton.get_state())
    job_runtime = JobRuntime.instance().conf
    pending: dict[str, list[Job]] = {}
    shapes: dict[str, dict[str, Any]] = {}
    for job in todo:
        key = repr(sorted(job.shape.items()))
        pending.setdefault(key, []).append(job)
        shapes[key] = job.shape
    # ref -> (shape key, actor slot, job; None for an actor's readiness probe)
    in_flight: dict[Any, tuple[str, dict[str, Any], Job | None]] = {}
    progress = Progress(len(todo) + skipped, skipped, params.get("progress", "auto"))
    timeout = float(params.get("job_timeout_s") or 0)
    max_retries = int(params.get("max_retries", 2))
    keep = bool(params.get("keep_job_configs", True))
    lost = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError)
    stalled = 0.0
    stall_s = float(params.get("stall_timeout_s", 60.0))
    try:
        while any(pending.values()) or any(j is not None for _, _, j in in_flight.values()):
            nodes = _cluster.alive_nodes()
            room = 0
            for key, queue in pending.items():
                cap = _cluster.capacity(shapes[key], nodes)
                room += cap if queue else 0
                _dispatch(
                    pool, key, shapes[key], queue, in_flight, (job_runtime, keep), cap, make_config
                )
            running = any(j is not None for _, _, j in in_flight.values())
            if running or room:
                stalled = 0.0
            else:
                # Nothing runs and nothing can start: the nodes these jobs need are gone.
                stalled = stalled or time.monotonic()
                if time.monotonic() - stalled > stall_s:
                    _give_up(app, pending, progress, keep, stall_s)
            if not in_flight:
                time.sleep(0.5)
                continue
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
            for ref in ready:
                key, slot, job = in_flight.pop(ref)
                if job is None:  # an actor answered: it is placed and ready for jobs
                    try:
                        ray.get(ref)
                        slot["ready"] = True
                    except lost:
                        pool.forget(key, slot)
                    continue
                slot["job"] = None
                try:
                    ret, where = ray.get(ref)
                except lost as exc:
                    pool.forget(key, slot)
                    _lost(app, job, exc, max_retries, pending[key], progress, keep)
                    continue
                if not keep:
                    ret.cfg = ret.hydra_cfg = job.config = None
                job.ret = ret
                if app.on_result(job, ret, where):
                    pool.drop(key, slot)  # a failed job may leave the device unusable
                progress.finished(ret.status == JobStatus.COMPLETED)
            if timeout:
                _enforce_timeout(pool, app, in_flight, timeout, pending, progress, keep)
            progress.update(running=sum(1 for _, _, j in in_flight.values() if j is not None))
    finally:
        progress.close()
        pool.kill_all()


def _dispatch(
    pool: _Pool,
    key: str,
    shape: dict,
    queue: list[Job],
    in_flight: dict,
    runtime: Any,
    cap: int,
    make_config: Any,
) -> None:
    """Give queued jobs to ready, idle actors; start actors while the cluster has room."""
    slots = pool.actors.get(key, [])
    starting = sum(1 for s in slots if not s["ready"])
    idle = [s for s in slots if s["ready"] and s["job"] is None]
    while len(queue) > len(idle) + starting and len(slots) < cap:
        probe, slot = pool.new(key, shape)
        in_flight[probe] = (key, slot, None)
        slots = pool.actors[key]
        starting += 1
    for slot in idle:
        if not queue:
            return
        # Prefer a job for the model this actor already has loaded.
        job = next((j for j in queue if j.affinity == slot["affinity"]), queue[0])
        queue.remove(job)
        job.attempts += 1
        job.started = time.monotonic()
        slot["job"], slot["affinity"] = job, job.affinity
        if job.config is None:
            job.config = make_config(job)
        job_runtime, keep = runtime
        in_flight[slot["handle"].run.remote(job.config, job_runtime, keep)] = (key, slot, job)


def _lost(
    app: App,
    job: Job,
    exc: BaseException,
    max_retries: int,
    queue: list[Job],
    progress: Progress,
    keep: bool = True,
) -> None:
    if job.attempts <= max_retries:
        log.warning(
            "worker died running %s (attempt %d): retrying", app.describe(job), job.attempts
        )
        queue.insert(0, job)
        return
    if isinstance(exc, TimeoutError):
        err = WorkerLost(f"{app.describe(job)}: {exc}; its worker was killed")
    elif isinstance(exc, Unplaceable):
        err = WorkerLost(f"{app.describe(job)}: {exc}")
    else:
        err = WorkerLost(f"worker died {job.attempts} times running {app.describe(job)}: {exc}")
    app.on_lost(job, err)
    job.ret = _skipped_return(job, None, keep)
    if not keep:
        job.config = None
    job.ret.status = JobStatus.FAILED
    job.ret.return_value = err
    progress.finished(False)


def _give_up(app: App, pending: dict, progress: Progress, keep: bool, stall_s: float) -> None:
    err = Unplaceable(f"no alive node could run it for {stall_s:g} s (its nodes are gone)")
    for queue in pending.values():
        while queue:
            _lost(app, queue.pop(0), err, -1, queue, progress, keep)  # -1: never re-queued


def _enforce_timeout(
    pool: _Pool,
    app: App,
    in_flight: dict,
    timeout: float,
    pending: dict,
    progress: Progress,
    keep: bool = True,
) -> None:
    now = time.monotonic()
    for ref, (key, slot, job) in list(in_flight.items()):
        if job is not None and now - job.started > timeout:
            in_flight.pop(ref)
            pool.drop(key, slot)
            err = TimeoutError(f"no result after {timeout:g} s")
            _lost(app, job, err, 0, pending[key], progress, keep)  # 0: never retried


__all__ = ["App", "Job", "WorkerLost", "launch"]
