"""A server as a backend: started once per server settings in this worker, reused by every
load level, stopped when the worker drops it (another model, a failed cell, the end).

``load`` starts the server (``workers.serving.engines`` builds its command line) on a free
loopback port with this worker's environment, so it sees only this worker's devices; waits
for its health check; sends one warm-up request (a fresh server's first request can take
many seconds). ``server.url`` skips all that: the endpoint is checked and used as it is.
``run_load`` then sends one cell's warm-up and measured requests (``workers.serving.load``).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import random
from pathlib import Path
from typing import Any

from jobs.config import CellConfig
from workers.backends.sglang import engine_dtype
from workers.base import Backend, IterationResult
from workers.devices import VISIBLE_ENV
from workers.models import resolve_model_path
from workers.serving.client import RequestInput, new_session, send_completion
from workers.serving.engines import HOST, api_of, request_body, server_argv
from workers.serving.load import LoadPlan, LoadResult, run_load
from workers.serving.process import ServerFailed, ServerProcess, free_port
from workers.serving.prompts import PromptMaker, lengths, load_tokenizer

log = logging.getLogger(__name__)

COMPLETIONS = "/v1/completions"


class ServeBackend(Backend):
    name = "serve"

    def load(self) -> None:
        cell = self.cell
        self.model_path = resolve_model_path(cell.model)
        self.config = json.loads((Path(self.model_path) / "config.json").read_text())
        self.tokenizer = load_tokenizer(self.model_path, cell.model.trust_remote_code)
        self.model_name = cell.server.served_model_name or self.model_path
        self.api = api_of(cell)
        self.process: ServerProcess | None = None
        try:
            if cell.server.kind == "url":
                self.base_url = str(cell.server.url).rstrip("/")
                self._check_url()
            else:
                self._start()
            self.first_request = self._warm_up(1)
        except BaseException as exc:  # a server that did not come up is not left running
            if isinstance(exc, ServerFailed) and self.process is not None and not exc.log_text:
                exc.log_text = self.process.log_text()
            self.close()
            raise

    def _start(self) -> None:
        cell, kind = self.cell, self.device.kind
        port = free_port(HOST)
        self.base_url = f"http://{HOST}:{port}"
        argv = server_argv(cell, kind, self.model_path, port)
        proc = ServerProcess(argv, self.base_url, cell.server.health_path, cell.server.kind)
        self.process = proc
        env = dict(os.environ)
        proc.start(env)
        atexit.register(proc.stop)  # a single run's server ends with its process
        self.env_seen = {v: env[v] for v in VISIBLE_ENV.values() if v in env}
        self.ready_s = proc.wait_healthy(cell.server.startup_timeout_s)

    def _check_url(self) -> None:
        probe = ServerProcess([], self.base_url, self.cell.server.health_path, "url")
        if not (probe.healthy(30.0) or _models_ok(self.base_url)):
            raise ServerFailed("at server.url is not answering", f"no answer from {self.base_url}")
        self.ready_s, self.env_seen = 0.0, {}

    def model_info(self) -> dict[str, Any]:
        dtype = engine_dtype(self.cell.model.dtype, self.device.kind)
        return {"path": self.model_path, "config": self.config, "dtype": dtype}

    # --- one cell ----------------------------------------------------------------------
    def prepare(self, cell: CellConfig) -> None:
        self.cell = cell

    def requests(self, cell: CellConfig, n: int, seed: int) -> list[RequestInput]:
        """``n`` requests of the cell's lengths, the same for the same seed."""
        w = cell.workload
        rng = random.Random(seed)
        prompt_lens = lengths(cell.prompt_len, w.prompt_len_dist, n, rng)
        output_lens = lengths(cell.seq, w.seq_dist, n, rng)
        maker = PromptMaker(self.tokenizer, seed, w.prefix_len)
        out = []
        for p, s in zip(prompt_lens, output_lens, strict=True):
            text, count = maker.prompt(p)
            body = request_body(self.api, self.model_name, text, s)
            out.append(RequestInput(text, count, s, body))
        return out

    def run_iteration(self) -> IterationResult:
        raise NotImplementedError("serving cells run through workers.serving.measure")

    def _warm_up(self, n: int) -> float:
        """Send ``n`` requests one after another (not counted); seconds the first took."""
        reqs = self.requests(self.cell, n, self.cell.bench.seed + 7919)
        plan = LoadPlan(concurrency=1, num_requests=n)
        res = asyncio.run(self._load(reqs, plan))
        bad = [o for o in res.outputs if not o.ok]
        if bad:
            raise ServerFailed("returns errors", f"warm-up: {bad[0].error_kind}: {bad[0].error}")
        return (res.outputs[0].e2e_s or 0.0) if res.outputs else 0.0

    async def _load(self, reqs: list[RequestInput], plan: LoadPlan) -> LoadResult:
        url = self.base_url + COMPLETIONS
        timeout = self.cell.server.request_timeout_s
        # One connection per request in flight: none waits for a pooled one (0 = no limit).
        async with new_session(plan.concurrency or 0) as session:
            return await run_load(
                lambda i: reqs[i % len(reqs)],
                lambda req: send_completion(session, url, req, timeout),
                plan,
            )

    def run_load(self, cell: CellConfig) -> LoadResult:
        """The cell's warm-up requests (at its load, not counted), then the measured ones."""
        self.cell, w = cell, cell.workload
        seed = cell.bench.seed
        n = w.num_requests or 1024  # with duration_s only: requests are reused round-robin
        if w.warmup_requests:
            warm = self.requests(cell, w.warmup_requests, seed + 1)
            c = min(cell.concurrency or w.warmup_requests, w.warmup_requests)
            asyncio.run(self._load(warm, LoadPlan(concurrency=c, num_requests=len(warm))))
        plan = LoadPlan(
            concurrency=cell.concurrency, rate=cell.request_rate, burstiness=w.burstiness,
            num_requests=w.num_requests, duration_s=w.duration_s, seed=seed,
        )  # fmt: skip
        return asyncio.run(self._load(self.requests(cell, min(n, 1024), seed), plan))

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
        proc = getattr(self, "process", None)
        if proc is not None:
            proc.stop()


def _models_ok(base_url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(base_url + "/v1/models", timeout=30) as resp:  # noqa: S310
            return resp.status == 200
    except OSError:
        return False
