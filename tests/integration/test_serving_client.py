"""The serving client, load generator and metrics against the paced stand-in server (a real
aiohttp server in a subprocess, started through workers.serving.process). No assertion is on
speed: only counts, orders, error kinds and formulas."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tests.standins import PACED_SCRIPT
from workers.serving.client import RequestInput, RequestOutput, new_session, send_completion
from workers.serving.engines import request_body
from workers.serving.metrics import is_good, serving_metrics
from workers.serving.process import ServerFailed, ServerProcess, free_port
from workers.serving.traffic import TrafficPlan, arrival_gaps, run_traffic

PACED = [sys.executable, PACED_SCRIPT]


def start_paced(*args: str) -> ServerProcess:
    port = free_port()
    proc = ServerProcess([*PACED, "--port", str(port), *args], f"http://127.0.0.1:{port}",
                         "/health", "paced")  # fmt: skip
    proc.start()
    proc.wait_healthy(120)
    return proc


@pytest.fixture
def paced():
    procs: list[ServerProcess] = []

    def _start(*args: str) -> ServerProcess:
        procs.append(start_paced("--ttft-ms", "5", "--itl-ms", "2", *args))
        return procs[-1]

    yield _start
    for p in procs:
        p.stop()


def req(n: int = 4, api: str = "vllm", **body) -> RequestInput:
    b = request_body(api, "paced", "a b c", n)
    b.update(body)
    return RequestInput("a b c", 3, n, b)


def load(proc: ServerProcess, plan: TrafficPlan, make=None):
    url = proc.base_url + "/v1/completions"

    async def go():
        async with new_session(64) as session:
            return await run_traffic(make or (lambda i: req()),
                                  lambda r: send_completion(session, url, r, 60), plan)  # fmt: skip

    return asyncio.run(go())


def test_closed_loop_keeps_at_most_n_in_flight_and_counts_tokens(paced):
    proc = paced()
    res = load(proc, TrafficPlan(concurrency=3, num_requests=9))
    assert len(res.outputs) == 9 and all(o.ok for o in res.outputs)
    spans = [(o.send_s, o.last_token_s) for o in res.outputs]
    for t, _ in spans:  # at every send, at most 3 requests are in flight (itself included)
        assert sum(1 for s, e in spans if s <= t < e) <= 3
    for o in res.outputs:
        assert o.client_tokens == 4 and o.usage_completion_tokens == 4
        assert o.send_s < o.first_token_s <= o.last_token_s and o.finish_reason == "length"
    m = serving_metrics(res.outputs, res.duration_s, cards=1)
    assert m["completed_requests"] == 9 and m["generated_tokens"] == 36
    assert m["usage_mismatch_requests"] == 0 and m["short_requests"] == 0
    assert m["ttft_s_p50"] <= m["ttft_s_p99"] and m["e2e_s_p50"] >= m["ttft_s_p50"]


def test_open_loop_sends_every_request_and_duration_stops_it(paced):
    proc = paced()
    res = load(proc, TrafficPlan(rate=200.0, burstiness=0.5, num_requests=12, seed=3))
    assert len(res.outputs) == 12 and all(o.ok for o in res.outputs)
    # Begun in the schedule's order (queued_s); the bytes of requests begun a moment apart may
    # leave in another order (send_s: when each was written to its connection).
    begun = [o.queued_s for o in res.outputs]
    assert begun == sorted(begun)
    assert all(o.send_s >= o.queued_s for o in res.outputs)
    res = load(proc, TrafficPlan(concurrency=2, num_requests=0, duration_s=0.5))
    assert res.outputs and all(o.ok for o in res.outputs)


def test_arrival_gaps_have_the_asked_mean_and_are_seeded():
    a = [g for g, _ in zip(arrival_gaps(4.0, 1.0, seed=1), range(20000), strict=False)]
    b = [g for g, _ in zip(arrival_gaps(4.0, 1.0, seed=1), range(20000), strict=False)]
    assert a == b and abs(sum(a) / len(a) - 0.25) < 0.01
    bursty = [g for g, _ in zip(arrival_gaps(4.0, 0.25, seed=1), range(20000), strict=False)]
    var = lambda xs: sum((x - sum(xs) / len(xs)) ** 2 for x in xs) / len(xs)  # noqa: E731
    assert var(bursty) > 2 * var(a)  # gamma shape 0.25: four times the variance


def test_errors_by_kind_short_outputs_and_usage_mismatch(paced):
    proc = paced("--error-every", "3", "--short-by", "1")
    res = load(proc, TrafficPlan(concurrency=2, num_requests=6))
    kinds = [o.error_kind for o in res.outputs]
    assert kinds.count("http_500") == 2 and kinds.count(None) == 4
    m = serving_metrics(res.outputs, res.duration_s, cards=1)
    assert m["request_errors"] == {"http_500": 2} and m["failed_requests"] == 2
    assert m["short_requests"] == 4  # 3 of the 4 tokens asked for
    bad = load(proc, TrafficPlan(concurrency=1, num_requests=1),
               make=lambda i: req(ignore_eos=True, best_of=2))  # fmt: skip
    assert bad.outputs[0].error_kind == "http_400"  # the stand-in refuses unknown fields


def test_connection_refused_and_a_server_that_cannot_start():
    url = f"http://127.0.0.1:{free_port()}/v1/completions"

    async def go():
        async with new_session(1) as session:
            return await send_completion(session, url, req(), 10)

    assert asyncio.run(go()).error_kind == "connect"
    port = free_port()
    proc = ServerProcess([*PACED, "--port", str(port), "--fail-start"],
                         f"http://127.0.0.1:{port}", "/health", "paced")  # fmt: skip
    proc.start()
    with pytest.raises(ServerFailed, match="could not start: exit code 3") as info:
        proc.wait_healthy(120)
    assert "cannot start (--fail-start)" in info.value.log_tail


def test_metrics_formulas_on_fixed_outputs():
    def out(send, times, usage=None, err=None):
        o = RequestOutput(prompt_len=10, output_len=3, send_s=send, token_times_s=list(times),
                          first_token_s=times[0] if times else None,
                          last_token_s=times[-1] if times else None,
                          usage_completion_tokens=usage)  # fmt: skip
        return o.fail(err, err) if err else o

    outs = [out(0.0, [0.1, 0.2, 0.3], usage=3), out(0.0, [0.5, 0.6, 0.9], usage=4),
            out(0.0, [], err="timeout")]  # fmt: skip
    m = serving_metrics(outs, 2.0, cards=2, ttft_ms=200, tpot_ms=0)
    assert m["completed_requests"] == 2 and m["failed_requests"] == 1
    assert m["request_throughput_per_s"] == pytest.approx(1.0)
    assert m["output_tokens_per_s"] == pytest.approx(3.5)  # usage counts win: (3 + 4) / 2
    assert m["output_tokens_per_s_per_card"] == pytest.approx(1.75)
    assert m["ttft_s_mean"] == pytest.approx(0.3)
    assert m["tpot_s_mean"] == pytest.approx((0.1 + 0.4 / 3) / 2)
    assert m["output_tokens_per_s_per_user"] == pytest.approx(1 / m["tpot_s_mean"])
    assert m["usage_mismatch_requests"] == 0 and m["client_completion_tokens"] == 6
    assert m["merged_chunk_requests"] == 1 and m["itl_method"] == "mixed"  # 3 chunks, 4 tokens
    assert m["goodput_requests_per_s"] == pytest.approx(0.5)  # only the first is in the SLO
    assert m["goodput_fraction"] == pytest.approx(1 / 3)
    assert is_good(outs[0], 200, 0) and not is_good(outs[1], 200, 0)
    assert serving_metrics(outs, 2.0, cards=None)["goodput_requests_per_s"] is None
