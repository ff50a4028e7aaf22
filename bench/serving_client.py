"""The serving client's own overhead: TTFT and ITL as the client measures them, against a
server that emits tokens at a known pace and records the pace it really kept.

    python bench/serving_client.py [--ttft-ms 50] [--itl-ms 10] [--tokens 64] [--streams 1 64]

Starts the paced stand-in (``tests/standins/paced.py``) on loopback, runs a closed loop of N
concurrent streams through the real client (``workers.serving.client``) and load generator,
then compares, per percentile, the client's TTFT and ITL with the server's own (on the
server's clock, from ``/stats``: first-token delay after it read the request, gaps between
its chunk writes). error = client - server: what the client adds (HTTP, event loop, parsing)
and what the wire adds; the server's drift from the nominal pace is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.values import finite_float  # noqa: E402
from tests.standins import PACED_SCRIPT  # noqa: E402
from workers.metrics import inter_token_gaps, percentile  # noqa: E402
from workers.serving.client import RequestInput, new_session, send_completion  # noqa: E402
from workers.serving.engines import request_body  # noqa: E402
from workers.serving.process import ServerProcess, free_port  # noqa: E402
from workers.serving.traffic import TrafficPlan, run_traffic  # noqa: E402


def _run(base: str, streams: int, tokens: int, rounds: int) -> tuple[list, list]:
    req = RequestInput("a b c", 3, tokens, request_body("vllm", "paced", "a b c", tokens))

    async def go():
        async with new_session(streams) as session:
            url = base + "/v1/completions"
            plan = TrafficPlan(concurrency=streams, num_requests=streams * rounds)
            return await run_traffic(lambda i: req, lambda r: send_completion(session, url, r, 600),
                                  plan)  # fmt: skip

    res = asyncio.run(go())
    bad = [o for o in res.outputs if not o.ok]
    if bad:
        raise SystemExit(f"{len(bad)} requests failed: {bad[0].error_kind} {bad[0].error}")
    ttft = [o.ttft_s for o in res.outputs]
    itl = [g for o in res.outputs for g in inter_token_gaps(o.token_times_s)]
    return ttft, itl


def _server_stats(base: str) -> tuple[list, list]:
    with urllib.request.urlopen(base + "/stats", timeout=30) as resp:  # noqa: S310 (loopback)
        stats = json.load(resp)
    return [s["ttft_s"] for s in stats], [g for s in stats for g in s["gaps_s"]]


def _row(name: str, client: list, server: list, nominal_ms: float) -> str:
    cells = []
    for q in (50, 99):
        c, s = percentile(client, q) * 1e3, percentile(server, q) * 1e3
        cells.append(f"p{q}: client {c:8.3f}  server {s:8.3f}  error {c - s:+7.3f}")
    return f"  {name:<4} (nominal {nominal_ms:g} ms)  " + "  |  ".join(cells)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ttft-ms", type=finite_float, default=50.0)
    ap.add_argument("--itl-ms", type=finite_float, default=10.0)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=4, help="requests per stream")
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 64])
    a = ap.parse_args()
    for n in a.streams:
        port = free_port()
        argv = [sys.executable, PACED_SCRIPT, "--port", str(port),
                "--ttft-ms", str(a.ttft_ms), "--itl-ms", str(a.itl_ms)]  # fmt: skip
        server = ServerProcess(argv, f"http://127.0.0.1:{port}", "/health", "paced")
        server.start()
        try:
            server.wait_healthy(60)
            _run(server.base_url, n, a.tokens, 1)  # warm-up, same path
            urllib.request.urlopen(server.base_url + "/health", timeout=10).close()  # noqa: S310
            ttft, itl = _run(server.base_url, n, a.tokens, a.rounds)
            s_ttft, s_itl = _server_stats(server.base_url)
            s_ttft, s_itl = s_ttft[-len(ttft) :], s_itl[-len(itl) :]  # the measured requests
        finally:
            server.stop()
        print(f"{n} concurrent stream(s), {len(ttft)} requests x {a.tokens} tokens:")
        print(_row("TTFT", ttft, s_ttft, a.ttft_ms))
        print(_row("ITL", itl, s_itl, a.itl_ms))


if __name__ == "__main__":
    main()
