"""The pending jobs of one resource shape: a free worker finds its next job in O(1).

A free worker takes the first pending job (queue order; a retried job goes first) whose
``affinity`` key is that of its last job (its model stays loaded), else the first pending
job. One deque per key and one of every job keep both answers at the head of a deque. A job
taken through its key stays in the deque of every job, marked taken, and is dropped when it
reaches the head: each entry is popped once, so a sweep costs O(1) per job however many
wait (a scan of the queue per dispatch made 100,000 jobs cost minutes).

Fleet jobs (a ``spread`` key: one copy per card) add a rule per worker (_fleet.Spread): it
never takes a copy it ran. While any is queued the scheduler scans the queue for the jobs a
worker may take, as before (:meth:`JobQueue.remove`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from ._app import Job


class _Entry:
    __slots__ = ("job", "key", "taken")

    def __init__(self, job: Job) -> None:
        self.job, self.key, self.taken = job, job.affinity, False


class JobQueue:
    """The pending jobs of one resource shape, in queue order."""

    def __init__(self, jobs: Iterable[Job] = ()) -> None:
        self._all: deque[_Entry] = deque()  # every job in queue order; taken ones skipped
        self._by_key: dict[str, deque[_Entry]] = {}  # affinity -> its untaken jobs, in order
        self._n = 0
        self.spread = 0  # queued fleet jobs
        for job in jobs:
            self.append(job)

    def __len__(self) -> int:
        return self._n

    def __bool__(self) -> bool:
        return self._n > 0

    def __iter__(self) -> Iterator[Job]:
        """The pending jobs in queue order."""
        return (e.job for e in self._all if not e.taken)

    def append(self, job: Job) -> None:
        entry = _Entry(job)
        self._all.append(entry)
        self._by_key.setdefault(entry.key, deque()).append(entry)
        self._count(job, 1)

    def appendleft(self, job: Job) -> None:
        """A job that goes first (a retry after its worker died)."""
        entry = _Entry(job)
        self._all.appendleft(entry)
        self._by_key.setdefault(entry.key, deque()).appendleft(entry)
        self._count(job, 1)

    def popleft(self) -> Job:
        """The first pending job (IndexError when none)."""
        while self._all[0].taken:
            self._all.popleft()
        entry = self._all.popleft()
        same = self._by_key[entry.key]
        same.popleft()  # the first untaken job of all is the first of its key
        if not same:
            del self._by_key[entry.key]
        return self._taken(entry)

    def take(self, affinity: str | None) -> Job | None:
        """The first pending job with this affinity key, else the first pending job; None
        when the queue is empty."""
        same = self._by_key.get(affinity) if affinity is not None else None
        if not same:
            return self.popleft() if self._n else None
        entry = same.popleft()
        if not same:
            del self._by_key[entry.key]
        job = self._taken(entry)
        while self._all and self._all[0].taken:  # what was taken ahead of the head goes
            self._all.popleft()
        return job

    def remove(self, job: Job) -> None:
        """Take a given job out (a scan: fleet jobs only)."""
        entry = next(e for e in self._all if e.job is job and not e.taken)
        same = self._by_key[entry.key]
        same.remove(entry)
        if not same:
            del self._by_key[entry.key]
        self._taken(entry)

    def _taken(self, entry: _Entry) -> Job:
        entry.taken = True
        self._count(entry.job, -1)
        return entry.job

    def _count(self, job: Job, n: int) -> None:
        self._n += n
        if job.spread:
            self.spread += n


__all__ = ["JobQueue"]
