"""The server of a serving cell: started once per server settings in this worker, reused by
every traffic level, stopped when the worker drops it (another model, a failed cell, the end).

A server is not a :class:`~workers.base.Backend` (it runs no timed generate calls); it is what
``workers.model_cache`` holds for a serving cell. ``open_server(cell, device)`` gives one of
two kinds: a :class:`LaunchedServer` (``server.kind`` transformers, sglang, vllm or command:
``workers.serving.engines`` builds its command line) started on a free loopback port with
this worker's environment, so it sees only this worker's devices, or a :class:`UrlServer`
(``server.kind=url``): an endpoint checked and used as it is. ``load`` starts (or checks) it
and sends one warm-up request (a fresh server's first request can take many seconds);
``run_traffic`` sends one cell's warm-up and measured requests (``workers.serving.traffic``).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import random
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobs.config import CellConfig
from jobs.trace import read_trace, trace_sha256
from workers.backends.sglang.args import engine_dtype
from workers.device.visible import VISIBLE_ENV
from workers.models import load_tokenizer, resolve_model_path
from workers.serving.client import RequestInput, new_session, run_async, send_completion
from workers.serving.diagnosis import probe
from workers.serving.engines import HOST, api_of, request_body, server_argv
from workers.serving.process import ServerFailed, ServerProcess, free_port
from workers.serving.prompts import PromptMaker, lengths
from workers.serving.traffic import TrafficPlan, TrafficResult, run_sessions, run_traffic
from workers.serving.workloads import (
    TracePrompts,
    conversation_prompts,
    group_makers,
    trace_schedule,
)

log = logging.getLogger(__name__)

COMPLETIONS = "/v1/completions"
MODELS = "/v1/models"


class Server(ABC):
    """One model served over HTTP for this worker's serving cells."""

    name = "serve"
    simulated = False  # a server is always measured

    def __init__(self, cell: CellConfig, device: Any) -> None:
        self.cell = cell
        self.device = device
        self.process: ServerProcess | None = None  # None: not started here (server.url)
        self.base_url = ""
        self.ready_s = 0.0
        self.env_seen: dict[str, str] = {}

    def load(self) -> None:
        """Start (or check) the server and send one warm-up request."""
        cell = self.cell
        self.model_path = resolve_model_path(cell.model)
        self.config = json.loads((Path(self.model_path) / "config.json").read_text())
        self.tokenizer = load_tokenizer(self.model_path, cell.model.trust_remote_code)
        self.model_name = cell.server.served_model_name or self.model_path
        self.api = api_of(cell)
        try:
            self._start()
            self.first_request = self._warm_up(1)
        except BaseException as exc:  # a server that did not come up is not left running
            if isinstance(exc, ServerFailed) and self.process is not None:
                self.process.settle(exc)  # stopped first: its last lines are in the log
            self.close()
            raise

    @abstractmethod
    def _start(self) -> None:
        """Start (or find) the server and wait until it answers; sets ``base_url``."""

    def model_info(self) -> dict[str, Any]:
        dtype = engine_dtype(self.cell.model.dtype, self.device.kind)
        return {"path": self.model_path, "config": self.config, "dtype": dtype}

    # --- one cell ----------------------------------------------------------------------
    def requests(self, cell: CellConfig, n: int, seed: int) -> list[RequestInput]:
        """``n`` requests of the cell's lengths, the same for the same seed."""
        w = cell.workload
        rng = random.Random(seed)
        prompt_lens = lengths(cell.prompt_len, w.prompt_len_dist, n, rng)
        output_lens = lengths(cell.seq, w.seq_dist, n, rng)
        if w.prefix_groups:
            makers = group_makers(self.tokenizer, seed, w.prefix_len, w.prefix_groups)
        else:
            makers = [PromptMaker(self.tokenizer, seed, w.prefix_len)]
        out = []
        for i, (p, s) in enumerate(zip(prompt_lens, output_lens, strict=True)):
            text, count = makers[(i // w.requests_per_group) % len(makers)].prompt(p)
            out.append(self._input(text, count, s))
        return out

    def _input(self, text: str, count: int, output_len: int) -> RequestInput:
        body = request_body(self.api, self.model_name, text, output_len)
        return RequestInput(text, count, output_len, body)

    def _conversations(self, cell: CellConfig) -> TrafficResult:
        w, seed = cell.workload, cell.bench.seed
        turns = conversation_prompts(
            lambda s: PromptMaker(self.tokenizer, seed * 7919 + s),
            w.sessions, w.turns, cell.prompt_len, cell.seq,
        )  # fmt: skip
        sessions = [[self._input(t, n, cell.seq) for t, n in texts] for texts in turns]
        url, timeout = self.base_url + COMPLETIONS, cell.server.request_timeout_s

        async def go() -> TrafficResult:
            async with new_session(w.sessions) as session:
                send = lambda req: send_completion(session, url, req, timeout)  # noqa: E731
                return await run_sessions(sessions, send, w.think_time_s)

        res = run_async(go())
        res.meta = {"kind": "conversation", "sessions": w.sessions, "turns": w.turns,
                    "think_time_s": w.think_time_s,
                    "context": [n for texts in turns for _, n in texts]}  # fmt: skip
        return res

    def _trace(self, cell: CellConfig) -> TrafficResult:
        t = cell.workload.trace
        trace = read_trace(t.path or "", t.max_requests)
        prompts = TracePrompts(self.tokenizer, t.block_tokens, cell.bench.seed)
        reqs = [self._input(*prompts.prompt(r, i), r.output_length) for i, r in enumerate(trace)]
        schedule = trace_schedule(trace, t.speed)
        res = run_async(self._send(reqs, TrafficPlan(schedule=schedule)))
        res.meta = {"kind": "trace", "schedule": schedule, "sha256": trace_sha256(t.path or "")}
        return res

    def _warm_up(self, n: int) -> float:
        """Send ``n`` requests one after another (not counted); seconds the first took."""
        reqs = self.requests(self.cell, n, self.cell.bench.seed + 7919)
        plan = TrafficPlan(concurrency=1, num_requests=n)
        res = run_async(self._send(reqs, plan))
        bad = [o for o in res.outputs if not o.ok]
        if bad:
            raise ServerFailed(
                "returns errors", f"warm-up request ({bad[0].error_kind}): {bad[0].error}"
            )
        return (res.outputs[0].e2e_s or 0.0) if res.outputs else 0.0

    async def _send(self, reqs: list[RequestInput], plan: TrafficPlan) -> TrafficResult:
        url = self.base_url + COMPLETIONS
        timeout = self.cell.server.request_timeout_s
        # One connection per request in flight: none waits for a pooled one (0 = no limit).
        async with new_session(plan.concurrency or 0) as session:
            return await run_traffic(
                lambda i: reqs[i % len(reqs)],
                lambda req: send_completion(session, url, req, timeout),
                plan,
            )

    def run_traffic(
        self, cell: CellConfig, before_measured: Callable[[], None] | None = None
    ) -> TrafficResult:
        """The cell's warm-up requests (at its traffic, not counted), then the measured ones
        (``before_measured`` is called between the two)."""
        self.cell, w = cell, cell.workload
        seed = cell.bench.seed
        n = w.num_requests or 1024  # with duration_s only: requests are reused round-robin
        if w.warmup_requests:
            warm = self.requests(cell, w.warmup_requests, seed + 1)
            c = min(cell.concurrency or w.warmup_requests, w.warmup_requests)
            run_async(self._send(warm, TrafficPlan(concurrency=c, num_requests=len(warm))))
        if before_measured is not None:
            before_measured()
        if w.kind == "conversation":
            return self._conversations(cell)
        if w.kind == "trace":
            return self._trace(cell)
        plan = TrafficPlan(
            concurrency=cell.concurrency, rate=cell.request_rate, burstiness=w.burstiness,
            num_requests=w.num_requests, duration_s=w.duration_s, seed=seed,
        )  # fmt: skip
        return run_async(self._send(self.requests(cell, min(n, 1024), seed), plan))

    def server_facts(self) -> dict[str, Any]:
        p = self.process
        return {
            "kind": self.cell.server.kind,
            "base_url": self.base_url,
            "argv": p.argv if p else None,
            "pid": p.pid if p else None,
            "pinned": p is not None,
            "visible_devices": self.env_seen,
            "ready_s": self.ready_s,
            "first_request_s": getattr(self, "first_request", None),
            "api": self.api,
            "model": self.model_name,
        }

    def close(self) -> None:
        """Stop the server this worker started and remove its log file (a failure's or a
        cell's part of the log is in its record by now)."""
        if self.process is not None:
            atexit.unregister(self.process.discard)  # stopped now, not again at exit
            self.process.discard()


class LaunchedServer(Server):
    """A server process this worker starts (and stops), pinned to this worker's devices."""

    def _start(self) -> None:
        # The port is free when chosen, not reserved: another process can bind it before the
        # server does (a server loading its weights binds its HTTP port last, and engines pick
        # their own internal ports meanwhile). A server that exits saying so is started again
        # on another port, up to PORT_TRIES times in all.
        for attempt in range(1, PORT_TRIES + 1):
            try:
                self._start_on(free_port(HOST))
                return
            except ServerFailed as exc:
                proc = self.process
                if attempt == PORT_TRIES or proc is None or not port_taken(exc):
                    raise
                log.warning("server port %s was taken before the server bound it; starting "
                            "it again on another port", self.base_url.rsplit(":", 1)[-1])  # fmt: skip
                proc.settle(exc)
                atexit.unregister(proc.discard)
                proc.discard()  # settle read its log into the failure: the file is done
                self.process = None

    def _start_on(self, port: int) -> None:
        cell, kind = self.cell, self.device.kind
        self.base_url = f"http://{HOST}:{port}"
        argv = server_argv(cell, kind, self.model_path, port)
        proc = ServerProcess(argv, self.base_url, cell.server.health_path, cell.server.kind)
        self.process = proc
        env = dict(os.environ)
        proc.start(env)
        atexit.register(proc.discard)  # a single run's server ends with its process
        self.env_seen = {v: env[v] for v in VISIBLE_ENV.values() if v in env}
        self.ready_s = proc.wait_healthy(cell.server.startup_timeout_s)


PORT_TRIES = 3  # starts of a server whose port was taken before it could bind it


# How a server's log says that a port it needed was taken: EADDRINUSE as Python, uvicorn and
# aiohttp print it; SGLang's own check of the ports it derives from --port (sglang 0.5.x,
# srt/utils/network.py wait_port_available and srt/server_args.py).
PORT_TAKEN = re.compile(
    r"address already in use|\[errno 98\]|port is already in use"
    r"|port\w* at \d+ is not available in \d+ seconds",
    re.IGNORECASE,
)


def port_taken(exc: ServerFailed) -> bool:
    """Whether a server that could not start exited because a port it needed was in use (as
    the part of its log the failure carries says: the error and the log's last lines)."""
    return exc.what == "could not start" and bool(PORT_TAKEN.search(exc.log_tail))


class UrlServer(Server):
    """A server that runs elsewhere (server.url): checked, never started or stopped here."""

    def _start(self) -> None:
        self.base_url = str(self.cell.server.url).rstrip("/")
        health = self.cell.server.health_path
        answers = {health: probe(self.base_url + health, 30.0)}
        if answers[health] is not None:
            answers[MODELS] = probe(self.base_url + MODELS, 30.0)
        if all(a is not None for a in answers.values()):
            said = "; ".join(f"{path} {a}" for path, a in answers.items())
            http = any(str(a).startswith("answered HTTP") for a in answers.values())
            what = "at server.url answers errors" if http else "at server.url is not answering"
            raise ServerFailed(what, f"{self.base_url}: {said}")
        self.ready_s, self.env_seen = 0.0, {}


def open_server(cell: CellConfig, device: Any) -> Server:
    """The server of a serving cell (not started yet: ``load`` starts it)."""
    return UrlServer(cell, device) if cell.server.kind == "url" else LaunchedServer(cell, device)
