"""The client's own health during a cell: can its timestamps be trusted?

Two measures, taken while the cell's traffic runs on the client's event loop:

* event-loop lag: a probe task sleeps ``PROBE_PERIOD_S`` again and again and records how late
  it wakes (woken - due). A chunk that arrives while the loop is busy is timestamped at most
  about this late, so the lag's percentiles bound the client's own share of a TTFT or ITL.
* CPU share: the process's CPU time (all its threads, ``time.process_time``) over the cell's
  wall time. Near 1.0 the client (one event loop, one core) cannot keep up.

``client_saturated`` (a record flag) when the lag's p99 exceeds ``LAG_P99_LIMIT_S`` or the CPU
share reaches ``CPU_SHARE_LIMIT``: the numbers then carry the client's delay, not only the
server's.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from workers.metrics import percentile

PROBE_PERIOD_S = 0.005
# The bar for the client: TTFT p99 error within 5 ms at 64 streams.
LAG_P99_LIMIT_S = 0.005
CPU_SHARE_LIMIT = 0.9


@dataclass
class ClientHealth:
    """Collects the probe's lags and the process's CPU time over one traffic run."""

    lags_s: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    _task: asyncio.Task | None = None
    _t0: float = 0.0
    _c0: float = 0.0

    async def _probe(self) -> None:
        clock = time.perf_counter
        while True:
            due = clock() + PROBE_PERIOD_S
            await asyncio.sleep(PROBE_PERIOD_S)
            self.lags_s.append(max(0.0, clock() - due))

    def start(self) -> None:
        """Start probing (on the running loop)."""
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        self._task = asyncio.get_running_loop().create_task(self._probe())

    async def stop(self) -> None:
        self.wall_s = time.perf_counter() - self._t0
        self.cpu_s = time.process_time() - self._c0
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def fields(self) -> dict[str, Any]:
        """The record's flat keys of the client's health."""
        lags = self.lags_s
        return {
            "client_loop_lag_s_p50": percentile(lags, 50) if lags else None,
            "client_loop_lag_s_p99": percentile(lags, 99) if lags else None,
            "client_loop_lag_s_max": max(lags) if lags else None,
            "client_cpu_share": self.cpu_s / self.wall_s if self.wall_s > 0 else None,
        }


def is_saturated(fields: dict[str, Any]) -> bool:
    """The client could not keep up: lag p99 over the limit, or about one core busy."""
    lag = fields.get("client_loop_lag_s_p99")
    cpu = fields.get("client_cpu_share")
    return (lag is not None and lag > LAG_P99_LIMIT_S) or (
        cpu is not None and cpu >= CPU_SHARE_LIMIT
    )
