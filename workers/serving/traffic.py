"""The traffic generator: when each request is sent, apart from what is measured of it.

Closed loop (``concurrency`` only): ``concurrency`` requests in flight; the next is sent the
moment one finishes. Open loop (``rate``): requests arrive with independent gaps drawn from a
gamma distribution of mean ``1 / rate`` and shape ``burstiness`` (1 = Poisson arrivals; as
vLLM's ``bench serve``), whether or not earlier ones have finished; with ``concurrency`` too,
an arrival waits for a free slot before it is sent (its TTFT starts when it is sent). The
traffic stops after ``num_requests`` requests or ``duration_s`` seconds of sending, whichever
comes first (0 = no such limit). While it runs, a probe measures the client's own health
(``workers.serving.health``: event-loop lag, CPU share).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from workers.serving.client import RequestInput, RequestOutput
from workers.serving.health import ClientHealth

Send = Callable[[RequestInput], Awaitable[RequestOutput]]


@dataclass(frozen=True)
class TrafficPlan:
    concurrency: int | None = None
    rate: float | None = None  # requests per second (open loop)
    burstiness: float = 1.0
    num_requests: int = 0  # 0: no cap (duration_s must be > 0)
    duration_s: float = 0.0  # 0: no limit
    seed: int = 0
    # Send times in seconds after the start (a trace's clock); replaces rate and num_requests.
    schedule: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.schedule is not None:
            return
        if self.concurrency is None and self.rate is None:
            raise ValueError("traffic needs a concurrency or a rate")
        if self.num_requests <= 0 and self.duration_s <= 0:
            raise ValueError("traffic needs num_requests > 0 or duration_s > 0")


@dataclass
class TrafficResult:
    outputs: list[RequestOutput] = field(default_factory=list)
    start_s: float = 0.0  # perf_counter when the first request was due
    duration_s: float = 0.0  # first send to last answer
    health: dict[str, Any] = field(default_factory=dict)  # the client's (ClientHealth.fields)
    meta: dict[str, Any] = field(default_factory=dict)  # what the workload kind adds


def arrival_gaps(rate: float, burstiness: float, seed: int) -> Iterator[float]:
    """Seconds between consecutive arrivals: gamma(shape=burstiness, mean=1/rate)."""
    rng = random.Random(seed)
    theta = 1.0 / (rate * burstiness)
    while True:
        yield rng.gammavariate(burstiness, theta)


async def run_traffic(
    make: Callable[[int], RequestInput], send: Send, plan: TrafficPlan
) -> TrafficResult:
    """Send ``make(0), make(1), ...`` as the plan says; the outputs in sending order."""
    slots = asyncio.Semaphore(plan.concurrency) if plan.concurrency else None
    sched = plan.schedule
    closed = plan.rate is None and sched is None
    gaps = arrival_gaps(plan.rate, plan.burstiness, plan.seed) if plan.rate else None
    limit = len(sched) if sched is not None else plan.num_requests

    async def one(req: RequestInput, holding: bool) -> RequestOutput:
        if slots is not None and not holding:
            await slots.acquire()
        try:
            return await send(req)
        finally:
            if slots is not None:
                slots.release()

    tasks: list[asyncio.Task[RequestOutput]] = []
    health = ClientHealth()
    health.start()
    t0 = time.perf_counter()
    due = t0
    i = 0
    while not limit or i < limit:
        if sched is not None:
            await asyncio.sleep(max(0.0, t0 + sched[i] - time.perf_counter()))
        elif gaps is not None and i:
            due += next(gaps)
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        if closed and slots is not None:
            await slots.acquire()  # closed loop: the next request waits for a free slot
        if plan.duration_s and time.perf_counter() - t0 >= plan.duration_s:
            if closed and slots is not None:
                slots.release()
            break
        tasks.append(asyncio.create_task(one(make(i), holding=closed)))
        i += 1
    outputs = list(await asyncio.gather(*tasks))
    duration = time.perf_counter() - t0
    await health.stop()
    return TrafficResult(outputs, t0, duration, health.fields())


async def run_sessions(
    sessions: list[list[RequestInput]], send: Send, think_time_s: float = 0.0
) -> TrafficResult:
    """Conversations: every session at once, each sending its turns one after another (the
    next ``think_time_s`` after the previous answer); outputs session by session, in turn
    order."""

    async def session(turns: list[RequestInput]) -> list[RequestOutput]:
        outs = []
        for k, req in enumerate(turns):
            if k and think_time_s:
                await asyncio.sleep(think_time_s)
            outs.append(await send(req))
        return outs

    health = ClientHealth()
    health.start()
    t0 = time.perf_counter()
    done = await asyncio.gather(*(session(s) for s in sessions))
    duration = time.perf_counter() - t0
    await health.stop()
    return TrafficResult([o for outs in done for o in outs], t0, duration, health.fields())
