"""A tiny OpenAI-compatible completions server that emits tokens at a known pace.

    python tests/standins/paced.py --port 8000 --ttft-ms 20 --itl-ms 10

It stands in for a real engine (SGLang or vLLM on a card) where no engine can run: the
client-overhead benchmark (``bench/serving_client.py``) and the serving tests use it. It
answers ``/health``, ``/v1/models``, ``/stats`` (the pace it really kept: per request its
first-token delay and token gaps, on its own clock), ``/metrics`` (its books in vLLM's
Prometheus names, from the same clock; ``--lie-ttft-factor F`` exports every TTFT times F) and
streaming ``/v1/completions``. Like
the engines it checks requests: unknown fields, a non-text prompt or a bad ``max_tokens``
get HTTP 400; it streams exactly ``min_tokens`` / ``generation_config.min_new_tokens``
tokens when asked, else ``max_tokens``, and reports ``usage``. At start it prints the
device ids it was given (``ASCEND_RT_VISIBLE_DEVICES`` / ``CUDA_VISIBLE_DEVICES``).

Chunks and tokens: ``--tokens-per-chunk K`` sends K tokens in each text chunk (the last may
carry fewer); ``--usage-every-chunk`` puts the running ``usage`` in every text chunk (as vLLM's
``continuous_usage_stats``).

Faults for tests: ``--fail-start`` (exit at once), ``--die-after N`` (the process exits in
the middle of request N+1's stream), ``--error-every K`` (HTTP 500 for every K-th request),
``--short-by K`` (K tokens fewer than asked), ``--await-peers N --peer-dir D`` (unhealthy
until N servers have registered in D: proves that they run at the same time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

FIELDS = {"model", "prompt", "max_tokens", "temperature", "stream", "stream_options",
          "min_tokens", "ignore_eos", "generation_config", "seed"}  # fmt: skip
VISIBLE = ("ASCEND_RT_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ttft-ms", type=float, default=20.0)
    p.add_argument("--itl-ms", type=float, default=10.0)
    p.add_argument("--model", default="paced")
    p.add_argument("--tag", default="", help="a label, to tell server settings apart")
    p.add_argument("--fail-start", action="store_true")
    p.add_argument("--die-after", type=int, default=0)
    p.add_argument("--error-every", type=int, default=0)
    p.add_argument("--short-by", type=int, default=0)
    p.add_argument("--await-peers", type=int, default=0)
    p.add_argument("--peer-dir", default="")
    p.add_argument("--lie-ttft-factor", type=float, default=1.0)
    p.add_argument("--tokens-per-chunk", type=int, default=1)
    p.add_argument("--usage-every-chunk", action="store_true")
    p.add_argument("--uvloop", action="store_true", help="serve on uvloop (where installed)")
    return p


# vLLM's buckets (vllm/v1/metrics/loggers.py) for its TTFT and inter-token histograms.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
               7.5, 10.0, 20.0, 40.0, 80.0)  # fmt: skip
LABELS = 'model_name="paced",engine="0"'


class Histogram:
    def __init__(self, name: str, bounds: tuple[float, ...]) -> None:
        self.name, self.bounds = name, bounds
        self.counts, self.sum, self.n = [0] * len(bounds), 0.0, 0

    def observe(self, x: float) -> None:
        self.sum, self.n = self.sum + x, self.n + 1
        for i, b in enumerate(self.bounds):
            if x <= b:
                self.counts[i] += 1

    def text(self) -> str:
        rows = [f"# TYPE {self.name} histogram"]
        for b, c in zip(self.bounds, self.counts, strict=True):
            rows.append(f'{self.name}_bucket{{{LABELS},le="{b}"}} {c}')
        rows.append(f'{self.name}_bucket{{{LABELS},le="+Inf"}} {self.n}')
        rows.append(f"{self.name}_sum{{{LABELS}}} {self.sum}")
        rows.append(f"{self.name}_count{{{LABELS}}} {self.n}")
        rows.append(f"{self.name}_created{{{LABELS}}} 1.7e9")
        return "\n".join(rows)


def _wanted(body: dict[str, Any]) -> int:
    """Tokens to stream, or ValueError for a request a real engine would refuse."""
    unknown = set(body) - FIELDS
    if unknown:
        raise ValueError(f"Unexpected fields in the request: {sorted(unknown)}")
    if not isinstance(body.get("prompt"), str):
        raise ValueError("prompt must be a string")
    n = body.get("max_tokens")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError("max_tokens must be an integer >= 1")
    gen = json.loads(body["generation_config"]) if "generation_config" in body else {}
    return int(body.get("min_tokens") or gen.get("min_new_tokens") or n)


def _chunk(rid: str, text: str = "", finish: str | None = None, usage: Any = None) -> bytes:
    choice = {"index": 0, "text": text, "finish_reason": finish}
    data = {"id": rid, "object": "text_completion", "choices": [choice]}
    if usage is not None:
        data["usage"] = usage
    return f"data: {json.dumps(data)}\n\n".encode()


class Paced:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.count = 0
        self.stats: list[dict[str, Any]] = []
        self.ttft = Histogram("vllm:time_to_first_token_seconds", TTFT_BUCKETS)
        self.itl = Histogram("vllm:inter_token_latency_seconds", ITL_BUCKETS)
        self.running = 0
        self.prompt_tokens = 0

    async def health(self, request: web.Request) -> web.Response:
        a = self.args
        if a.await_peers and len(list(Path(a.peer_dir).glob("*.peer"))) < a.await_peers:
            return web.json_response({"status": "waiting for peers"}, status=503)
        return web.json_response({"status": "ok"})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.args.model}]})

    async def stats_view(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats)

    async def metrics(self, request: web.Request) -> web.Response:
        gauges = {"vllm:num_requests_running": self.running, "vllm:num_requests_waiting": 0,
                  "vllm:kv_cache_usage_perc": min(1.0, self.running / 256)}  # fmt: skip
        counters = {"vllm:num_preemptions_total": 0, "vllm:prefix_cache_hits_total": 0,
                    "vllm:prefix_cache_queries_total": self.prompt_tokens}  # fmt: skip
        rows = [f"{k}{{{LABELS}}} {v}" for k, v in {**gauges, **counters}.items()]
        text = "\n".join([*rows, self.ttft.text(), self.itl.text()]) + "\n"
        return web.Response(text=text, content_type="text/plain")

    def _book(self, times: list[float], per_chunk: list[int]) -> None:
        """The request's TTFT and per-token gaps into the histograms (a chunk's gap spread
        over its tokens), TTFT times --lie-ttft-factor."""
        self.ttft.observe(times[0] * self.args.lie_ttft_factor)
        for a, b, k in zip(times, times[1:], per_chunk[1:], strict=False):
            for _ in range(k):
                self.itl.observe((b - a) / k)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        a = self.args
        t0 = time.perf_counter()
        body = await request.json()
        try:
            n = _wanted(body)
        except ValueError as exc:
            return web.json_response({"error": {"message": str(exc)}}, status=400)
        self.count += 1
        if a.error_every and self.count % a.error_every == 0:
            return web.json_response({"error": {"message": "injected error"}}, status=500)
        n = max(1, n - a.short_by)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        rid, times, per_chunk, sent = f"cmpl-{self.count}", [], [], 0
        words = len(body["prompt"].split())
        self.running += 1
        self.prompt_tokens += words
        try:
            while sent < n:
                k = min(a.tokens_per_chunk, n - sent)
                due = t0 + (a.ttft_ms + (sent + k - 1) * a.itl_ms) / 1e3
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                if a.die_after and self.count > a.die_after and sent + k > n // 2:
                    os._exit(17)  # killed mid-stream
                run = {"prompt_tokens": words, "completion_tokens": sent + k,
                       "total_tokens": words + sent + k} if a.usage_every_chunk else None  # fmt: skip
                text = "".join(f" t{j}" for j in range(sent, sent + k))
                await resp.write(_chunk(rid, text=text, usage=run))
                times.append(time.perf_counter() - t0)
                per_chunk.append(k)
                sent += k
        finally:
            self.running -= 1
        usage = {"prompt_tokens": words, "completion_tokens": n, "total_tokens": words + n}
        await resp.write(_chunk(rid, finish="length", usage=usage))
        await resp.write(b"data: [DONE]\n\n")
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        self.stats.append({"ttft_s": times[0], "gaps_s": gaps, "start_s": t0,
                           "seed": body.get("seed")})  # fmt: skip
        self._book(times, per_chunk)
        return resp


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    seen = {v: os.environ.get(v) for v in VISIBLE}
    print(f"paced server pid {os.getpid()} visible devices {json.dumps(seen)}", flush=True)
    if args.fail_start:
        print("error: cannot start (--fail-start)", file=sys.stderr, flush=True)
        raise SystemExit(3)
    if args.await_peers:
        Path(args.peer_dir, f"{os.getpid()}.peer").write_text(json.dumps(seen))
    server = Paced(args)
    app = web.Application()
    app.router.add_get("/health", server.health)
    app.router.add_get("/v1/models", server.models)
    app.router.add_get("/stats", server.stats_view)
    app.router.add_get("/metrics", server.metrics)
    app.router.add_post("/v1/completions", server.completions)
    loop = None
    if args.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None, backlog=4096,
                loop=loop)  # fmt: skip


if __name__ == "__main__":
    main()
