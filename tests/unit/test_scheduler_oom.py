"""The scheduler on a host short of memory, without Ray running: an actor that Ray's memory
monitor kills before it answers its probe ends the job it was started for as host OOM,
instead of being replaced and killed again for ever (a sweep that never ends)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ray.exceptions import OutOfMemoryError, RayActorError

from hydra_plugins.ray_cells_launcher._app import App, HostOutOfMemory, Job
from hydra_plugins.ray_cells_launcher._queue import JobQueue
from hydra_plugins.ray_cells_launcher._scheduler import Scheduler, is_host_oom

# The cause Ray 2.60 gives the driver (its text, from a sweep's core-driver log).
KILLED = (
    "The actor is dead because its worker process has died. Worker exit type: "
    "NODE_OUT_OF_MEMORY Worker exit detail: 1 worker(s) were killed due to the node running "
    "low on memory. Memory on the node (IP: 192.0.2.2, ID: a89a) was 3.11GB used / 23.54GB "
    "limit (0.132192) OOM kill reason: Memory usage 3341299712B exceeded threshold of "
    "505521440B (2.0% of 25276071936B limit)"
)
NODE_DIED = "The actor died because its node has died. Node Id: 1234"


class Recording(App):
    def __init__(self) -> None:
        self.lost: list[tuple[int, BaseException]] = []

    def on_lost(self, job: Job, error: BaseException) -> None:
        self.lost.append((job.idx, error))


def scheduler(max_retries: int = 1) -> tuple[Scheduler, Recording]:
    app = Recording()
    s = Scheduler.__new__(Scheduler)  # its state only: no launcher, session or Ray
    s.app, s.s = app, SimpleNamespace(max_retries=max_retries, keep_job_configs=False)
    s.progress = SimpleNamespace(finished=lambda ok: None)
    s.pending = {"k": JobQueue([Job(0, ["batch=1"]), Job(1, ["batch=2"])])}
    return s, app


def test_an_actor_killed_for_memory_before_its_probe_ends_the_head_job_as_host_oom():
    s, app = scheduler()
    s._probe_lost("k", RayActorError(None, KILLED))
    assert [j.idx for j in s.pending["k"]] == [1]  # the next job waits for a new actor
    ((idx, err),) = app.lost
    assert idx == 0 and isinstance(err, HostOutOfMemory)
    assert "3.11GB of 23.54GB used, limit 2.0%" in str(err) and "not retried" in str(err)


def test_an_actor_lost_with_its_node_only_makes_room():
    s, app = scheduler()
    s._probe_lost("k", RayActorError(None, NODE_DIED))
    assert [j.idx for j in s.pending["k"]] == [0, 1] and app.lost == []


@pytest.mark.parametrize(
    "exc, oom",
    [
        (OutOfMemoryError("Task was killed due to the node running low on memory."), True),
        (RayActorError(None, KILLED), True),
        (RayActorError(None, NODE_DIED), False),
        (RuntimeError("NODE_OUT_OF_MEMORY"), False),  # not Ray's: the job's own error
    ],
)
def test_what_counts_as_host_oom(exc, oom):
    assert is_host_oom(exc) is oom
