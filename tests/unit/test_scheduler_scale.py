"""The scheduler at scale, without Ray: what it does per dispatched job does not grow with the
jobs waiting. Counted, never timed: how often the jobs are looked at in one step of the
scheduler with 100 and with 10,000 jobs pending (a scan of the queue per dispatch made a
100,000-cell sweep cost minutes); and the queue picks the same job the scan picked."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from hydra_plugins.ray_cells_launcher._app import App, Job
from hydra_plugins.ray_cells_launcher._queue import JobQueue
from hydra_plugins.ray_cells_launcher._scheduler import Scheduler
from tests.standins import ray_calls
from tests.standins.ray_calls import FakeRay, install

READS: Counter[str] = Counter()


class CountedJob(Job):
    """A job that counts every read of its attributes (READS)."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        READS[name] += 1
        return object.__getattribute__(self, name)


class Cells(App):
    """Jobs of three models on NPUs; the runner returns the job's index."""

    def runner(self) -> Any:
        return int

    def resources(self, job: Job, nodes: list) -> dict[str, Any]:
        return {"num_cpus": 0, "resources": {"NPU": 1}}

    def affinity(self, job: Job) -> str:
        return f"model{job.payload % 3}"


@pytest.fixture
def fake_ray(monkeypatch) -> FakeRay:
    return install(monkeypatch)


def scheduler(n_jobs: int) -> tuple[Scheduler, list[Job]]:
    jobs = [CountedJob(i, [f"batch={i}"], payload=i) for i in range(n_jobs)]
    return ray_calls.scheduler(Cells(), n_jobs), jobs


class _Enough(Exception):
    pass


def reads_in_step(n_jobs: int, which: int = 3) -> tuple[Counter[str], int]:
    """The job attribute reads of one step (probes answered, eight jobs dispatched and
    collected each step), and the jobs that step finished."""
    sched, jobs = scheduler(n_jobs)
    real_step, count = sched._step, [0]
    seen: dict[str, Any] = {}

    def step() -> None:
        count[0] += 1
        if count[0] == which:
            done = sum(j.ret is not None for j in jobs)
            READS.clear()
            real_step()
            seen["reads"] = Counter(READS)
            seen["finished"] = sum(j.ret is not None for j in jobs) - done
            raise _Enough
        real_step()

    sched._step = step  # type: ignore[method-assign]
    with pytest.raises(_Enough):
        sched.run(jobs)
    return seen["reads"], seen["finished"]


def test_one_step_looks_at_as_many_jobs_with_10000_pending_as_with_100(fake_ray):
    few, done_few = reads_in_step(100)
    many, done_many = reads_in_step(10_000)
    assert done_few == done_many == 8  # eight cards: eight jobs dispatched and collected
    assert many == few  # not one read more per waiting job


def test_one_step_takes_every_result_that_is_ready(fake_ray):
    sched, jobs = scheduler(40)
    sched.run(jobs)
    assert all(j.ret is not None and j.ret.return_value == j.payload for j in jobs)
    # one step starts the 8 actors and takes their probes, then 5 steps of 8 jobs each; each
    # step takes what is ready in two waits (the first result, then all that are there)
    assert fake_ray.waits == 2 + 2 * 5


def test_a_free_actor_keeps_to_its_model(fake_ray):
    sched, jobs = scheduler(48)
    sched.run(jobs)
    for actor in fake_ray.actors:
        models = [idx % 3 for idx in actor.payloads]
        runs = [m for i, m in enumerate(models) if i == 0 or models[i - 1] != m]
        assert len(runs) == len(set(runs))  # a model's jobs, then another's: each loaded once


def _scan_take(queue: list[Job], affinity: str | None) -> Job | None:
    """The pick as the scheduler made it before the queue: a scan."""
    if not queue:
        return None
    job = next((j for j in queue if j.affinity == affinity), queue[0])
    queue.remove(job)
    return job


@pytest.mark.parametrize("seed", range(20))
def test_the_queue_picks_what_the_scan_picked(seed):
    rng = random.Random(seed)
    queue, ref = JobQueue(), []
    n = 0
    for _ in range(600):
        op = rng.random()
        if op < 0.4:
            job = Job(n, [], affinity=rng.choice("abcd"))
            n += 1
            queue.append(job)
            ref.append(job)
        elif op < 0.5:
            job = Job(n, [], affinity=rng.choice("abcd"))
            n += 1
            queue.appendleft(job)  # a retry goes first
            ref.insert(0, job)
        elif op < 0.9:
            affinity = rng.choice(["a", "b", "c", "d", "e", None])
            assert queue.take(affinity) is _scan_take(ref, affinity)
        elif op < 0.95 and ref:
            assert queue.popleft() is ref.pop(0)
        elif ref:
            job = rng.choice(ref)
            queue.remove(job)
            ref.remove(job)
        assert len(queue) == len(ref) and bool(queue) == bool(ref)
        assert [id(j) for j in queue] == [id(j) for j in ref]
