"""A tiny OpenAI-compatible completions server that emits tokens at a known pace.

    python tests/standins/paced.py --port 8000 --ttft-ms 20 --itl-ms 10

It stands in for a real engine (SGLang or vLLM on a card) where no engine can run: the
client-overhead benchmark (``bench/serving_client.py``) and the serving tests use it. It
answers ``/health``, ``/v1/models``, ``/stats`` (the pace it really kept: per request its
first-token delay and token gaps, on its own clock) and streaming ``/v1/completions``. Like
the engines it checks requests: unknown fields, a non-text prompt or a bad ``max_tokens``
get HTTP 400; it streams exactly ``min_tokens`` / ``generation_config.min_new_tokens``
tokens when asked, else ``max_tokens``, and reports ``usage``. At start it prints the
device ids it was given (``ASCEND_RT_VISIBLE_DEVICES`` / ``CUDA_VISIBLE_DEVICES``).

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
    return p


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

    async def health(self, request: web.Request) -> web.Response:
        a = self.args
        if a.await_peers and len(list(Path(a.peer_dir).glob("*.peer"))) < a.await_peers:
            return web.json_response({"status": "waiting for peers"}, status=503)
        return web.json_response({"status": "ok"})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.args.model}]})

    async def stats_view(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats)

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
        rid, times = f"cmpl-{self.count}", []
        for k in range(n):
            due = t0 + (a.ttft_ms + k * a.itl_ms) / 1e3
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if a.die_after and self.count > a.die_after and k == n // 2:
                os._exit(17)  # killed mid-stream
            await resp.write(_chunk(rid, text=f" t{k}"))
            times.append(time.perf_counter() - t0)
        usage = {"prompt_tokens": len(body["prompt"].split()), "completion_tokens": n,
                 "total_tokens": len(body["prompt"].split()) + n}  # fmt: skip
        await resp.write(_chunk(rid, finish="length", usage=usage))
        await resp.write(b"data: [DONE]\n\n")
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        self.stats.append({"ttft_s": times[0], "gaps_s": gaps})
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
    app.router.add_post("/v1/completions", server.completions)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
