"""`workload=serve backend=sim`: serving records from a queueing model, with no server process.

The model (docs/serving.md, "The simulator's serving mode"), on a virtual clock:

- Requests are sent as the real client sends them (workers/serving/load.py): closed loop at
  ``concurrency`` (the next request is sent when one finishes), or open loop at
  ``request_rate`` with gamma gaps of shape ``workload.burstiness`` (1 = Poisson), optionally
  capped by ``concurrency``; lengths from ``workload.prompt_len_dist`` / ``seq_dist``; the
  same seeds as the real client (``bench.seed``), so a higher rate replays the same arrival
  pattern compressed. Warm-up requests are not simulated (the simulated server starts warm).
- One continuous-batching server: sent requests wait in a FIFO queue; at each step boundary,
  when requests wait and fewer than ``max_running`` run, the waiting ones (up to the free
  slots) are prefilled together in one step that yields their first token (decode pauses,
  as SGLang's scheduler does); otherwise one decode step gives every running request its next
  token. ``max_running`` = min(256 (vLLM's default max_num_seqs), the requests whose KV cache
  of prompt_len + seq tokens fits the spec's memory beside the weights).
- Step times are the static simulator's (workers/backends/sim.py): the roofline bound of the
  step (bounds.roofline.bounds_for: a prefill of n prompts, a decode step of b sequences at
  their mean context) on ``backend.sim.device_spec``, / ``efficiency``, x one seeded factor
  (1 + noise x N(0, 1)) per step. Deterministic per seed; a cell costs milliseconds (with
  ``time_scale`` > 0 the worker sleeps time_scale x the simulated duration).

The record has the keys a real serving cell has (workers/serving/metrics.py, computed by the
same function from per-request outputs on the virtual clock), is flagged ``simulated``, and
adds what the queue did: ``offered_rate_per_s`` (measured requests - 1 over the span of their
sends), ``achieved_rate_per_s`` (the same over the span of their completions),
``queue_len_mean`` / ``queue_len_max`` (requests sent and not yet admitted, time-averaged /
at most) and ``queue_growing`` (the queue's mean over the second half of the sending span is
more than twice that of the first half plus one: the server falls behind).
"""

from __future__ import annotations

import heapq
import logging
import random
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from bounds.roofline import ModelShape, bounds_for, bytes_per_element
from jobs.config import CellConfig
from jobs.record import Flag, Outcome, Status
from jobs.trace import read_trace, trace_sha256
from workers.backends.sim import SimDevice, sim_spec
from workers.base import CellOOM
from workers.models import model_config_json
from workers.serving.client import RequestOutput
from workers.serving.metrics import raw_requests, serving_metrics
from workers.serving.prompts import lengths
from workers.serving.workloads import trace_fields, trace_schedule

log = logging.getLogger(__name__)

NO_CAP = 10_000  # requests generated when only workload.duration_s ends the load
MAX_RUNNING = 256  # requests the simulated server runs at once (vLLM's max_num_seqs default)


class StepCosts:
    """Seconds of one prefill or decode step on the simulated device (the static model)."""

    def __init__(self, cell: CellConfig) -> None:
        self.path, self.config = model_config_json(cell.model)
        dtype = cell.model.dtype
        self.dtype = "float16" if dtype == "auto" else dtype
        self.spec = sim_spec(cell.backend.sim.device_spec)
        self.devices_per_cell = cell.devices_per_cell
        self.efficiency = cell.backend.sim.efficiency
        shape = ModelShape.from_config(self.config)
        elem = bytes_per_element(self.dtype)
        self.weight_bytes = shape.parameters * elem
        self.kv_bytes_per_token = shape.kv_bytes_per_token(elem)
        self.parameters = shape.parameters

    def prefill(self, n: int, prompt_len: int) -> float:
        b = bounds_for(self.config, self.dtype, self.spec, n, 1, prompt_len, self.devices_per_cell)
        return b.ttft_s / self.efficiency

    def decode(self, batch: int, context: int) -> float:
        """One step of ``batch`` sequences attending to ``context`` keys each."""
        prompt = max(1, context - 1)
        b = bounds_for(self.config, self.dtype, self.spec, batch, 2, prompt, self.devices_per_cell)
        return b.decode_steps_s[0] / self.efficiency

    def max_running(self, cell: CellConfig, longest: int) -> int:
        """Requests that run at once: the setting, capped by the KV cache that fits."""
        cap = MAX_RUNNING
        if self.spec.memory_bytes is None:
            return cap
        free = self.spec.memory_bytes * self.devices_per_cell - self.weight_bytes
        fits = free // (self.kv_bytes_per_token * longest) if free > 0 else 0
        if fits < 1:
            raise CellOOM(
                f"simulated: weights + the KV cache of one request of {longest} tokens do not "
                f"fit {self.spec.key} x{self.devices_per_cell}"
            )
        return int(min(cap, fits))


@dataclass
class _Req:
    prompt_len: int
    output_len: int
    arrival_s: float
    out: RequestOutput = field(init=False)

    def __post_init__(self) -> None:
        self.out = RequestOutput(prompt_len=self.prompt_len, output_len=self.output_len)


@dataclass
class QueueTrace:
    """Requests waiting (sent, not admitted) and in the system (sent, not answered) over the
    virtual time, sampled at every step boundary (piecewise constant)."""

    times: list[float] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    backlog: list[int] = field(default_factory=list)

    def at(self, t: float, waiting: int, backlog: int) -> None:
        self.times.append(t)
        self.waiting.append(waiting)
        self.backlog.append(backlog)

    def mean(self, values: list[int], start: float, end: float) -> float:
        if end <= start or not self.times:
            return 0.0
        total = 0.0
        for i, t in enumerate(self.times):
            nxt = self.times[i + 1] if i + 1 < len(self.times) else end
            lo, hi = max(t, start), min(nxt, end)
            if hi > lo:
                total += values[i] * (hi - lo)
        return total / (end - start)


def requests(cell: CellConfig) -> list[_Req]:
    """The cell's requests with their arrival times (closed loop: all due at 0)."""
    w = cell.workload
    if w.kind == "trace":  # the trace's lengths, on its clock (never late: a virtual one)
        trace = read_trace(w.trace.path or "", w.trace.max_requests)
        due = trace_schedule(trace, w.trace.speed)
        return [_Req(r.input_length, r.output_length, a) for r, a in zip(trace, due, strict=True)]
    n = w.num_requests or NO_CAP
    rng = random.Random(cell.bench.seed)  # the real client's seeds (workers/backends/serve.py)
    prompts = lengths(cell.prompt_len, w.prompt_len_dist, n, rng)
    outputs = lengths(cell.seq, w.seq_dist, n, rng)
    arrivals = [0.0] * n
    if cell.request_rate:
        gaps = random.Random(cell.bench.seed)
        theta = 1.0 / (cell.request_rate * w.burstiness)
        for i in range(1, n):
            arrivals[i] = arrivals[i - 1] + gaps.gammavariate(w.burstiness, theta)
    return [_Req(p, o, a) for p, o, a in zip(prompts, outputs, arrivals, strict=True)]


class Server:
    """The continuous-batching server and its clients on one virtual clock."""

    def __init__(self, cell: CellConfig, costs: StepCosts, reqs: list[_Req]) -> None:
        o = cell.backend.sim
        self.costs, self.reqs = costs, reqs
        longest = max(r.prompt_len + r.output_len for r in reqs)
        self.max_running = costs.max_running(cell, longest)
        key = (cell.bench.seed, cell.model.name, o.device_spec, cell.seq, cell.prompt_len)
        self.rng = random.Random(zlib.crc32(repr(key).encode()))
        self.noise = o.noise
        self.slow = o.slow_factor if o.fault == "slow" else 1.0
        # The client's free slots (the times they became free); None: no concurrency cap.
        self.slots = [0.0] * cell.concurrency if cell.concurrency else None
        self.limit = cell.workload.duration_s or float("inf")
        self.queue = QueueTrace()

    def _factor(self) -> float:
        return max(0.1, 1.0 + self.noise * self.rng.gauss(0.0, 1.0)) * self.slow

    def _send_time(self, r: _Req) -> float:
        if self.slots is None:
            return r.arrival_s
        return max(r.arrival_s, self.slots[0]) if self.slots else float("inf")

    def run(self) -> list[_Req]:
        """Simulate until every sent request is answered; returns the sent ones."""
        pending, waiting = deque(self.reqs), deque()
        running: list[tuple[_Req, int]] = []  # (request, tokens so far)
        sent: list[_Req] = []
        t = 0.0
        while pending or waiting or running:
            while pending and self._send_time(pending[0]) <= t:
                r = pending.popleft()
                r.out.send_s = self._send_time(r)
                if r.out.send_s >= self.limit:
                    pending.clear()
                    break
                if self.slots is not None:
                    heapq.heappop(self.slots)  # held until it finishes
                waiting.append(r)
                sent.append(r)
            self.queue.at(t, len(waiting), len(waiting) + len(running))
            if not waiting and not running:
                if not pending:
                    break
                t = self._send_time(pending[0])
                if t == float("inf"):
                    raise RuntimeError("simulated client stalled (no free slot)")
                continue
            if waiting and len(running) < self.max_running:
                n = min(len(waiting), self.max_running - len(running))
                new = [waiting.popleft() for _ in range(n)]
                p = round(sum(r.prompt_len for r in new) / len(new))
                t += self.costs.prefill(len(new), p) * self._factor()
                running += self._tokens([(r, 0) for r in new], t)  # their first tokens
            else:
                ctx = sum(r.prompt_len + k for r, k in running) / len(running)
                t += self.costs.decode(len(running), round(ctx)) * self._factor()
                running = self._tokens(running, t)
        return sent

    def _tokens(self, running: list[tuple[_Req, int]], t: float) -> list[tuple[_Req, int]]:
        """One token for every running request at ``t``; the finished ones leave."""
        still = []
        for r, k in running:
            out = r.out
            if out.first_token_s is None:
                out.first_token_s = t
            out.token_times_s.append(t)
            out.last_token_s = t
            if k + 1 < r.output_len:
                still.append((r, k + 1))
                continue
            out.usage_completion_tokens, out.usage_prompt_tokens = r.output_len, r.prompt_len
            out.finish_reason = "length"
            if self.slots is not None:
                heapq.heappush(self.slots, t)  # its client slot is free again
        return still


def queue_fields(sent: list[_Req], queue: QueueTrace) -> dict[str, Any]:
    """What the queue did: ``offered_rate_per_s`` = sends / (last send - first send);
    ``achieved_rate_per_s`` = answers in the same window shifted by the median E2E / its
    length (a server that keeps up answers each request about one E2E after it was sent; one
    that falls behind answers fewer in the window); ``queue_growing``: requests in the
    system averaged over the last third of the sending span > 1.25 x those of the middle
    third + 2."""
    sends = [r.out.send_s for r in sent]
    e2e = sorted(r.out.e2e_s for r in sent if r.out.e2e_s is not None)
    ends = [r.out.last_token_s for r in sent if r.out.last_token_s is not None]
    first, last = (min(sends), max(sends)) if sends else (0.0, 0.0)
    a, b = first + (last - first) / 3, first + 2 * (last - first) / 3
    span, lag = last - first, e2e[len(e2e) // 2] if e2e else 0.0
    offered = len(sends) / span if span > 0 else None
    answered = sum(first + lag <= t <= last + lag for t in ends)
    achieved = answered / span if span > 0 else None
    middle, late = queue.mean(queue.backlog, a, b), queue.mean(queue.backlog, b, last)
    return {
        "offered_rate_per_s": offered,
        "achieved_rate_per_s": achieved,
        "queue_len_mean": queue.mean(queue.waiting, 0.0, max(ends)) if ends else None,
        "queue_len_max": max(queue.waiting, default=0),
        "queue_growing": last > first and late > 1.25 * middle + 2,
    }


def _simulate(cell: CellConfig, out: Outcome) -> float:
    """Fill ``out`` with the simulated cell; returns its simulated seconds."""
    o = cell.backend.sim
    if o.fault in ("exception", "load_error"):
        raise RuntimeError(f"injected fault: {o.fault}")
    costs = StepCosts(cell)
    server = Server(cell, costs, requests(cell))
    sent = server.run()
    outputs = [r.out for r in sent]
    duration = max((x.last_token_s or 0.0) for x in outputs) if outputs else 0.0
    m = serving_metrics(
        outputs,
        duration,
        cards=cell.devices_per_cell,
        ttft_ms=cell.slo.ttft_ms,
        tpot_ms=cell.slo.tpot_ms,
    )
    out.details["raw"] = raw_requests(outputs, 0.0)
    out.fields.update({k: v for k, v in m.items() if k != "short_requests"})
    out.fields.update(queue_fields(sent, server.queue))
    if cell.workload.kind == "trace":
        t = cell.workload.trace
        meta = {"sha256": trace_sha256(t.path or ""), "schedule": [r.arrival_s for r in sent]}
        out.fields.update(trace_fields(meta, outputs, 0.0))
    out.fields.update(
        model_reused=False, server_reused=False, model_load_s=0.0, server_start_s=0.0,
        model_path=costs.path, dtype=costs.dtype, model_parameters=costs.parameters,
        bound_source="n/a: simulated serving (the steps are roofline times / efficiency)",
        sim_device_spec=costs.spec.key, sim_efficiency=o.efficiency, sim_noise=o.noise,
        sim_fault=o.fault, sim_max_running=server.max_running,
    )  # fmt: skip
    out.flags = [Flag.SIMULATED]
    out.status = Status.OK
    return duration


class SimServingCell:
    """A simulated serving cell (a :class:`workers.run.CellRun`): the queueing model on a
    virtual clock, no server process; failures become records in ``workers.run``."""

    failure_level = logging.INFO

    def __init__(self, cell: CellConfig) -> None:
        self.cell = cell

    def start(self, out: Outcome) -> None:
        dev = SimDevice(self.cell.device.name, self.cell.backend.sim.device_spec)
        out.fields.update(device=dev.kind, device_name=dev.name(), visible_devices=None)

    def run(self, out: Outcome) -> None:
        simulated_s = _simulate(self.cell, out)
        if self.cell.backend.sim.time_scale > 0:
            time.sleep(simulated_s * self.cell.backend.sim.time_scale)

    def is_oom(self, exc: BaseException) -> bool:
        return isinstance(exc, CellOOM)

    def after_failure(self, exc: BaseException, out: Outcome) -> None:
        out.flags = [Flag.SIMULATED]

    def summary(self, out: Outcome) -> str:
        f = out.fields
        return f"simulated serving: {f.get('output_tokens_per_s') or 0:.1f} output tok/s"
