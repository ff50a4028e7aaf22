"""The serving client's own overhead: TTFT and ITL as the client measures them, against a
server that emits tokens at a known pace and records the pace it really kept.

    python bench/serving_client.py [--ttft-ms 50] [--itl-ms 10] [--tokens 64]
                                   [--streams 1 64 256] [--loop auto|asyncio]

Starts the paced stand-in (``tests/standins/paced.py``) on loopback, runs a closed loop of N
concurrent streams through the real client (``workers.serving.client``) and load generator,
then compares, per percentile, the client's TTFT and ITL with the server's own (on the
server's clock, from ``/stats``: first-token delay after it read the request, gaps between
its chunk writes). error = client - server: what the client adds (HTTP, event loop, parsing)
and what the wire and the server's own request handling add. Beside it: the client's health
over the run (event-loop lag p50/p99, CPU share: ``workers.serving.health``) and the host's
load average before and after (figures from a loaded host are not the client's alone).
``--loop asyncio`` forces the standard event loop where uvloop is installed;
``--client aiohttp`` uses the aiohttp transport instead of the lean one
(``workers.serving.wire``); ``--server-uvloop`` runs the stand-in on uvloop (less of its own
queueing in the request path); ``--server lean`` runs it on a raw asyncio transport
(``tests/standins/paced_lean.py``: a request parsed in microseconds, its start taken when its
first bytes reach the process); ``--pin`` puts the stand-in on the last core and the client
on the others.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.values import finite_float  # noqa: E402
from tests.standins import PACED_LEAN_SCRIPT, PACED_SCRIPT  # noqa: E402
from workers.metrics import percentile  # noqa: E402
from workers.serving.client import (  # noqa: E402
    RequestInput,
    new_session,
    run_async,
    send_completion,
)
from workers.serving.engines import request_body  # noqa: E402
from workers.serving.metrics import request_itls  # noqa: E402
from workers.serving.process import ServerProcess, free_port  # noqa: E402
from workers.serving.traffic import TrafficPlan, run_traffic  # noqa: E402

CORES = os.sched_getaffinity(0)


def _req(i: int, tokens: int) -> RequestInput:
    body = {**request_body("vllm", "paced", "a b c", tokens), "seed": i}  # seed: a request id
    return RequestInput("a b c", 3, tokens, body)


def _run(base: str, streams: int, tokens: int, rounds: int, loop: str, wire: bool) -> tuple:

    async def go():
        async with new_session(streams, wire=wire) as session:
            url = base + "/v1/completions"
            plan = TrafficPlan(concurrency=streams, num_requests=streams * rounds)
            return await run_traffic(lambda i: _req(i, tokens), lambda r: send_completion(session, url, r, 600),
                                  plan)  # fmt: skip

    res = asyncio.run(go()) if loop == "asyncio" else run_async(go())
    bad = [o for o in res.outputs if not o.ok]
    if bad:
        raise SystemExit(f"{len(bad)} requests failed: {bad[0].error_kind} {bad[0].error}")
    ttft = [o.ttft_s for o in res.outputs]
    itl = [g for o in res.outputs for g in request_itls(o)[0]]
    return ttft, itl, res.health, res.outputs


def _server_stats(base: str) -> list[dict]:
    with urllib.request.urlopen(base + "/stats", timeout=30) as resp:  # noqa: S310 (loopback)
        return json.load(resp)


def _split(outputs: list, stats: list[dict]) -> str:
    """TTFT error by path, on the host's one monotonic clock: request (client send -> server
    handler start) and response (server's first write -> client's read of it)."""
    by_seed = {s["seed"]: s for s in stats}
    req, resp = [], []
    for i, o in enumerate(outputs):
        s = by_seed.get(i)
        if s is not None:
            req.append(s["start_s"] - o.send_s)
            resp.append(o.first_token_s - (s["start_s"] + s["ttft_s"]))
    wait = [o.send_s - o.queued_s for o in outputs]
    ms = lambda xs, q: percentile(xs, q) * 1e3  # noqa: E731
    return (f"  TTFT error by path: request p50 {ms(req, 50):.3f} p99 {ms(req, 99):.3f} ms; "
            f"response (client read delay) p50 {ms(resp, 50):.3f} p99 {ms(resp, 99):.3f} ms\n"
            f"  waited in the client before sending (not in TTFT): p50 {ms(wait, 50):.3f} "
            f"p99 {ms(wait, 99):.3f} ms")  # fmt: skip


def _row(name: str, client: list, server: list, nominal_ms: float) -> str:
    cells = []
    for q in (50, 99):
        c, s = percentile(client, q) * 1e3, percentile(server, q) * 1e3
        cells.append(f"p{q}: client {c:8.3f}  server {s:8.3f}  error {c - s:+7.3f}")
    return f"  {name:<4} (nominal {nominal_ms:g} ms)  " + "  |  ".join(cells)


def _health(h: dict) -> str:
    ms = lambda k: (h.get(k) or 0.0) * 1e3  # noqa: E731
    return (f"  client: loop lag p50 {ms('client_loop_lag_s_p50'):.3f} ms, "
            f"p99 {ms('client_loop_lag_s_p99'):.3f} ms, CPU share "
            f"{h.get('client_cpu_share') or 0:.2f}")  # fmt: skip


def _one(a: argparse.Namespace, n: int) -> None:
    port = free_port()
    script = PACED_LEAN_SCRIPT if a.server == "lean" else PACED_SCRIPT
    argv = [sys.executable, script, "--port", str(port),
            "--ttft-ms", str(a.ttft_ms), "--itl-ms", str(a.itl_ms),
            *(["--uvloop"] if a.server_uvloop else [])]  # fmt: skip
    if a.pin:  # the stand-in on the last core, this client on the others
        last = max(CORES)
        argv = ["taskset", "-c", str(last), *argv]
        os.sched_setaffinity(0, CORES - {last})
    server = ServerProcess(argv, f"http://127.0.0.1:{port}", "/health", "paced")
    server.start()
    load0 = os.getloadavg()[0]
    try:
        server.wait_healthy(60)
        wire = a.client == "wire"
        _run(server.base_url, n, a.tokens, 1, a.loop, wire)  # warm-up, same path
        ttft, itl, health, outputs = _run(server.base_url, n, a.tokens, a.rounds, a.loop, wire)
        stats = _server_stats(server.base_url)[-len(ttft) :]  # the measured requests
        s_ttft = [s["ttft_s"] for s in stats]
        s_itl = [g for s in stats for g in s["gaps_s"]]
    finally:
        server.stop()
    print(f"{n} concurrent stream(s), {len(ttft)} requests x {a.tokens} tokens "
          f"(load average {load0:.2f} -> {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores):")  # fmt: skip
    print(_row("TTFT", ttft, s_ttft, a.ttft_ms))
    print(_row("ITL", itl, s_itl, a.itl_ms))
    print(_split(outputs, stats))
    print(_health(health), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ttft-ms", type=finite_float, default=50.0)
    ap.add_argument("--itl-ms", type=finite_float, default=10.0)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=4, help="requests per stream")
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument("--loop", choices=("auto", "asyncio"), default="auto")
    ap.add_argument("--server-uvloop", action="store_true", help="the stand-in on uvloop too")
    ap.add_argument("--client", choices=("wire", "aiohttp"), default="wire")
    ap.add_argument("--server", choices=("aiohttp", "lean"), default="aiohttp",
                    help="the stand-in's transport (lean: tests/standins/paced_lean.py)")  # fmt: skip
    ap.add_argument(
        "--pin",
        action="store_true",
        help="the stand-in on the last core, the client on the others (taskset)",
    )
    a = ap.parse_args()
    for n in a.streams:
        _one(a, n)


if __name__ == "__main__":
    main()
