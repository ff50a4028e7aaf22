"""The scheduler of the `ray_cells` launcher: pools of actors per resource shape.

One pool of long-lived actors per resource shape (e.g. {"NPU": 1}); at most as many actors
as the alive nodes can hold. A free actor takes the next pending job, preferring one with the
same ``affinity`` key as its previous job (the same model stays loaded). When a worker
process dies, its job is re-queued on a fresh actor up to ``max_retries`` times.

Nothing done per dispatched job grows with the jobs waiting or the actors: the queue finds a
free actor's job in O(1) (_queue.py), each pool keeps its idle actors apart, the step takes
every result that is ready at once, and the nodes are asked for at most once a second.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import ray
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobRuntime, JobStatus
from omegaconf import DictConfig

from . import _cluster
from ._app import App, HostOutOfMemory, Job, WorkerLost
from ._compose import Composer
from ._fleet import Spread, node_env, placement
from ._progress import Progress, elapsed_text
from ._queue import JobQueue
from ._session import Planner, Session, finished_return
from ._settings import Settings
from ._worker import JobWorker

log = logging.getLogger(__name__)

# Whatever ray.get raises for a job is the worker's or the cluster's failure, never the
# job's own (a runner's exceptions and run_job's come back as values).
LOST = (ray.exceptions.RayError,)


STILL_RUNNING_EVERY_S = 120.0
NODES_EVERY_S = 1.0  # the alive nodes are asked for at most this often (and after a loss)


def is_host_oom(exc: BaseException) -> bool:
    """Ray's memory monitor killed the worker: its OutOfMemoryError for a task, or an actor's
    death whose cause Ray gives as the node's memory (Worker exit type NODE_OUT_OF_MEMORY)."""
    if isinstance(exc, ray.exceptions.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, ray.exceptions.RayActorError) and (
        "NODE_OUT_OF_MEMORY" in text or "running low on memory" in text
    )


class Unplaceable(RuntimeError):
    """No alive node has the resources a job needs any more."""


@dataclass(eq=False)
class Slot:
    """One actor of a pool: placed once it answered its probe; runs one job at a time."""

    handle: Any
    key: str  # the resource shape it was created with
    ready: bool = False
    job: Job | None = None
    affinity: str | None = None
    place: str = ""  # its node and device ids, once it answered (_fleet.placement)
    node_index: int | None = None  # its node's index in the cluster
    serial: int = 0  # creation order: idle actors take jobs in this order
    env: dict[str, str] = field(default_factory=dict)  # what its process is told (node_env)


class Scheduler:
    """Pools of actors per resource shape, fed from per-shape queues of pending jobs."""

    def __init__(
        self, launcher: Any, app: App, s: Settings, session: Session, progress: Progress
    ) -> None:
        self.launcher, self.app, self.s, self.session = launcher, app, s, session
        self.progress = progress
        self.runner = app.runner()
        self.singletons = None if self.runner else Singleton.get_state()
        self.job_runtime = JobRuntime.instance().conf
        self.task_name = JobRuntime.instance().get("name")  # every job's (looked up once)
        self.composer: Composer | None = None
        self.pending: dict[str, JobQueue] = {}
        self.shapes: dict[str, dict[str, Any]] = {}
        self.slots: dict[str, dict[Slot, None]] = {}  # key -> its actors, in creation order
        self.idle: dict[str, dict[Slot, None]] = {}  # key -> its placed actors without a job
        self.starting: dict[str, int] = {}  # key -> its actors that have not answered yet
        # ref -> (slot, its job; None for the actor's readiness probe)
        self.in_flight: dict[Any, tuple[Slot, Job | None]] = {}
        self.running = 0  # jobs in flight
        self.serial = 0
        self.nodes: list[dict[str, Any]] = []
        self.caps: dict[str, int] = {}  # key -> actors of its shape the nodes hold
        self.nodes_at = -NODES_EVERY_S  # when the nodes were last asked for
        self.shown_at = -1.0  # when running jobs were last looked at for the progress line
        self.longest = ""
        self.stalled_since = 0.0
        self.announced: dict[int, int] = {}  # job idx -> still-running lines printed
        self.spread = Spread()  # fleet jobs: which placements ran which spread key

    # --- setup -------------------------------------------------------------------------
    def run(self, todo: list[Job]) -> None:
        nodes = self.session.nodes()
        for job in todo:
            shape = self.app.resources(job, nodes)
            key = repr(sorted(shape.items()))
            if key not in self.shapes:  # one check and one shape object per shape
                _cluster.check_feasible(shape, self.app.describe(job))
                self.shapes[key] = shape
                self.pending[key] = JobQueue()
            job.shape = self.shapes[key]
            job.affinity = self.app.affinity(job)
            self.pending[key].append(job)
        try:
            while self._busy():
                self._step()
        finally:
            self.progress.close()
            self._kill_all()

    def _busy(self) -> bool:
        return self.running > 0 or any(self.pending.values())

    def _step(self) -> None:
        self._refresh_nodes()
        room = 0
        for key, queue in self.pending.items():
            cap = self.caps.get(key)
            if cap is None:
                cap = self.caps[key] = _cluster.capacity(self.shapes[key], self.nodes)
            self._grow(key, queue, cap)
            self._dispatch(key, queue)
            room += cap if queue and not self._blocked(key, queue, cap) else 0
        self._check_stall(running=self.running > 0, room=room)
        if not self.in_flight:
            time.sleep(0.5)
            return
        ready, rest = ray.wait(list(self.in_flight), num_returns=1, timeout=0.5)
        if ready and rest:  # every other result that is there already: one step for all
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        for ref in ready:
            self._collect(ref)
        if self.s.job_timeout_s:
            self._enforce_timeout()
        self._show_progress()

    def _refresh_nodes(self) -> None:
        """The alive nodes and what each pool may hold: asked for at most once a second
        (a cluster of a thousand nodes answers in milliseconds), and after an actor's loss."""
        now = time.monotonic()
        if now - self.nodes_at >= NODES_EVERY_S:
            self.nodes, self.nodes_at = _cluster.alive_nodes(), now
            self.caps.clear()

    def _show_progress(self) -> None:
        """The live line, and for logs (no terminal) a line per long job every few minutes;
        the running jobs are looked at once a second (the line is drawn at most that often)."""
        now = time.monotonic()
        if now - self.shown_at < 1.0:
            self.progress.update(running=self.running, longest=self.longest)
            return
        self.shown_at = now
        running = [j for _, j in self.in_flight.values() if j is not None]
        self.longest = ""
        if running:
            job = min(running, key=lambda j: j.started)
            age = now - job.started
            if age > 10:
                self.longest = f"{self.app.describe(job)} for {elapsed_text(age)}"
        self.progress.update(running=len(running), longest=self.longest)
        for job in running:
            mark = int((now - job.started) // STILL_RUNNING_EVERY_S)
            if mark > self.announced.get(job.idx, 0):
                self.announced[job.idx] = mark
                print(f"running  {self.app.describe(job)} for {elapsed_text(now - job.started)}")

    # --- actors ------------------------------------------------------------------------
    def _grow(self, key: str, queue: JobQueue, cap: int) -> None:
        """Start actors while jobs wait for more than the idle and starting ones can take."""
        slots = self.slots.setdefault(key, {})
        free = len(self.idle.get(key, ())) + self.starting.get(key, 0)
        if queue.spread:  # fleet jobs: a worker on every device
            free = 0
        while len(queue) > free and len(slots) < cap:
            opts = {k: v for k, v in self.shapes[key].items() if v}
            opts.setdefault("num_cpus", 0)
            # A runner needs neither the task function nor Hydra's state in the worker.
            ctx = (None, None, None) if self.runner else self._hydra_args()
            handle = JobWorker.options(**opts).remote(*ctx)
            self.serial += 1
            slot = Slot(handle, key, serial=self.serial)
            slots[slot] = None
            self.starting[key] = self.starting.get(key, 0) + 1
            # A new actor gets no job until it answered: one that cannot be placed (its
            # node died) never holds a job hostage.
            self.in_flight[handle.where.remote()] = (slot, None)
            free += 1

    def _blocked(self, key: str, queue: JobQueue, cap: int) -> bool:
        slots = self.slots.get(key, {})
        if len(slots) < cap or len(self.idle.get(key, ())) < len(slots):
            return False  # an actor is starting or running: the jobs are not stuck
        return self.spread.blocked(queue, {s.place for s in slots})

    def _hydra_args(self) -> tuple[Any, Any, Any]:
        return (self.launcher.hydra_context, self.launcher.task_function, self.singletons)

    def _forget(self, slot: Slot) -> None:
        self.slots.get(slot.key, {}).pop(slot, None)
        self.idle.get(slot.key, {}).pop(slot, None)

    def _drop(self, slot: Slot) -> None:
        self._forget(slot)
        ray.kill(slot.handle, no_restart=True)

    def _kill_all(self) -> None:
        for slots in self.slots.values():
            for slot in slots:
                ray.kill(slot.handle, no_restart=True)
        self.slots.clear()

    # --- jobs --------------------------------------------------------------------------
    def _dispatch(self, key: str, queue: JobQueue) -> None:
        idle = self.idle.get(key)
        if not idle or not queue:
            return
        for slot in sorted(idle, key=lambda s: s.serial) if len(idle) > 1 else list(idle):
            if not queue:
                return
            job = self._pick(queue, slot)
            if job is None:
                continue
            del idle[slot]
            self.spread.take(job, slot.place)
            job.attempts += 1
            job.started = time.monotonic()
            slot.job, slot.affinity = job, job.affinity
            sent = self.app.on_dispatch(job)
            if self.runner is not None:
                sent = job.payload if sent is None else sent
                ref = slot.handle.run_direct.remote(self.runner, sent, slot.env)
            else:
                if job.config is None:
                    job.config = self._compose(job)
                keep = self.s.keep_job_configs
                ref = slot.handle.run.remote(job.config, self.job_runtime, keep, slot.env)
            self.in_flight[ref] = (slot, job)
            self.running += 1

    def _pick(self, queue: JobQueue, slot: Slot) -> Job | None:
        """The job a free actor takes: one for the model it has loaded, else the first."""
        if not queue.spread:
            return queue.take(slot.affinity)
        # Fleet jobs: never a second job of one spread key on a placement (a scan).
        fits = self.spread.fits(list(queue), slot.place)
        if not fits:
            return None
        job = next((j for j in fits if j.affinity == slot.affinity), fits[0])
        queue.remove(job)
        return job

    def _compose(self, job: Job) -> DictConfig:
        if self.composer is None:
            self.composer = Composer(
                self.launcher.config, self.launcher.hydra_context.config_loader
            )
        sweep_dir = os.path.dirname(job.output_dir)
        return Planner(self.composer, sweep_dir, self.session).compose(job)

    def _collect(self, ref: Any) -> None:
        slot, job = self.in_flight.pop(ref)
        if job is None:  # an actor answered its probe: it is placed and ready for jobs
            self.starting[slot.key] -= 1
            try:
                where = ray.get(ref)
                slot.ready = True
                slot.place = placement(where)
                slot.node_index = self.session.node_index(where.get("ray_node_id"))
                slot.env = node_env(slot.node_index)
                self.idle.setdefault(slot.key, {})[slot] = None
            except LOST as exc:
                self._forget(slot)
                self.nodes_at = -NODES_EVERY_S  # its node may be gone: ask again
                self._probe_lost(slot.key, exc)
            return
        self.running -= 1
        slot.job = None
        job.started = 0.0  # read only while it runs: no float kept per finished job
        try:
            result, where = ray.get(ref)
        except LOST as exc:
            self._forget(slot)
            self.nodes_at = -NODES_EVERY_S
            self.spread.release(job, slot.place)  # a retry may run anywhere
            self._lost(job, exc, self.s.max_retries)
            return
        job.ret = self._job_return(job, result)
        if not self.s.keep_job_configs:
            job.config = None
        where = {**where, "ray_cluster": self.session.used, "node_index": slot.node_index}
        if self.app.on_result(job, job.ret, where):
            self._drop(slot)  # a failed job may leave the device unusable
        elif slot in self.slots.get(slot.key, {}):
            self.idle.setdefault(slot.key, {})[slot] = None
        self.progress.finished(job.ret.status == JobStatus.COMPLETED)

    def _job_return(self, job: Job, result: Any) -> JobReturn:
        if self.runner is None:
            ret: JobReturn = result
            if not self.s.keep_job_configs:
                ret.cfg = ret.hydra_cfg = None
            return ret
        ok, value = result
        status = JobStatus.COMPLETED if ok else JobStatus.FAILED
        return finished_return(job, value, status, self.task_name)

    def _probe_lost(self, key: str, exc: BaseException) -> None:
        """An actor died before it answered its probe. Killed by Ray's memory monitor, it
        would be replaced and killed again for ever on a host short of memory: the job it
        was started for (the queue's head) ends as host OOM instead. Any other loss (its
        node died) only makes room for a new actor, as before."""
        queue = self.pending.get(key)
        if queue and is_host_oom(exc):
            job = queue.popleft()
            job.attempts += 1
            self._lost(job, exc, self.s.max_retries)

    def _lost(self, job: Job, exc: BaseException, retries: int) -> None:
        oom = is_host_oom(exc)
        if job.attempts <= retries and not oom:
            log.warning(
                "worker died running %s (attempt %d): retrying",
                self.app.describe(job),
                job.attempts,
            )
            self.pending[repr(sorted(job.shape.items()))].appendleft(job)
            return
        what = self.app.describe(job)
        if oom:
            err: WorkerLost = HostOutOfMemory.of(what, exc)
        elif isinstance(exc, TimeoutError):
            err = WorkerLost(f"{what}: {exc}; its worker was killed")
        elif isinstance(exc, Unplaceable):
            err = WorkerLost(f"{what}: {exc}")
        else:
            err = WorkerLost(f"worker died {job.attempts} times running {what}: {exc}")
        value = self.app.on_lost(job, err)
        if value is None:
            job.ret = finished_return(job, err, JobStatus.FAILED)
        else:
            job.ret = finished_return(job, value)
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
                self._lost(queue.popleft(), err, -1)  # -1: never re-queued

    def _enforce_timeout(self) -> None:
        now = time.monotonic()
        for ref, (slot, job) in list(self.in_flight.items()):
            if job is not None and now - job.started > self.s.job_timeout_s:
                self.in_flight.pop(ref)
                self.running -= 1
                self._drop(slot)
                err = TimeoutError(f"no result after {self.s.job_timeout_s:g} s")
                self._lost(job, err, 0)  # 0: never retried


__all__ = ["Scheduler", "Slot"]
