"""The server's books and the client's health in real serving records, against the paced
stand-in exporting vLLM-named metrics (`/metrics`) on its own clock; and chunks that carry
several tokens, through the real client. No assertion is on speed."""

from __future__ import annotations

import json
import sys

import pytest

from tests.standins import PACED_SCRIPT
from workers.serving.client import RequestInput, new_session, run_async, send_completion
from workers.serving.engines import request_body
from workers.serving.metrics import serving_metrics
from workers.serving.process import ServerProcess, free_port
from workers.serving.traffic import TrafficPlan, run_traffic


@pytest.fixture
def launch(launch_joined):
    """This module's launches join the test process's shared Ray (conftest.py)."""
    return launch_joined


def paced(*args: str) -> ServerProcess:
    port = free_port()
    argv = [sys.executable, PACED_SCRIPT, "--port", str(port), "--ttft-ms", "50",
            "--itl-ms", "5", *args]  # fmt: skip
    proc = ServerProcess(argv, f"http://127.0.0.1:{port}", "/health", "paced")
    proc.start()
    proc.wait_healthy(120)
    return proc


def _record(launch, tmp_path, *args: str) -> dict:
    server = paced(*args)
    try:
        proc = launch("workload=serve", f"server.url={server.base_url}", "server.api=vllm",
                      "seq=8", "prompt_len=8", "workload.num_requests=8", "concurrency=2",
                      "workload.warmup_requests=2")  # fmt: skip
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (rec,) = [json.loads(p.read_text()) for p in tmp_path.rglob("record.json")]
    assert rec["status"] == "ok"
    return rec


@pytest.mark.slow
def test_record_carries_the_servers_books_and_the_clients_health(launch, tmp_path):
    rec = _record(launch, tmp_path)
    assert rec["server_metrics"] == "vllm" and rec["server_requests"] == 8  # warm-up excluded
    assert rec["server_ttft_s_mean"] == pytest.approx(0.050, abs=0.03)
    assert 0.04 <= rec["server_ttft_s_p50"] <= 0.06  # vLLM's buckets: (0.04, 0.06]
    assert rec["server_itl_s_mean"] == pytest.approx(0.005, abs=0.01)
    assert rec["server_preemptions"] == 0 and rec["server_prefix_cache_hit_rate"] == 0
    assert rec["server_kv_cache_usage_peak"] is not None
    assert rec["client_cpu_share"] is not None and rec["client_loop_lag_s_p99"] is not None
    assert rec["itl_method"] == "per_chunk" and rec["usage_mismatch_requests"] == 0
    saturated = "client_saturated" in rec["flags"]
    assert saturated or "client_server_disagree" not in rec["flags"]


@pytest.mark.slow
def test_a_server_whose_books_lie_is_flagged(launch, tmp_path):
    rec = _record(launch, tmp_path, "--lie-ttft-factor", "5")
    assert rec["server_ttft_s_mean"] == pytest.approx(0.25, abs=0.1)
    assert "client_server_disagree" in rec["flags"]


def _outputs(proc: ServerProcess, n: int = 7):
    body = request_body("vllm", "paced", "a b c", n)
    url = proc.base_url + "/v1/completions"

    async def go():
        async with new_session(2) as session:
            return await run_traffic(lambda i: RequestInput("a b c", 3, n, body),
                                  lambda r: send_completion(session, url, r, 60),
                                  TrafficPlan(concurrency=2, num_requests=4))  # fmt: skip

    return run_async(go()).outputs


def test_chunks_of_several_tokens_counted_by_the_server():
    for extra, method in ((["--usage-every-chunk"], "spread"), ([], "even")):
        proc = paced("--tokens-per-chunk", "3", *extra)
        try:
            outs = _outputs(proc)
        finally:
            proc.stop()
        m = serving_metrics(outs, 1.0, cards=1)
        assert all(o.ok and o.client_tokens == 3 for o in outs)  # 3 + 3 + 1 tokens
        assert m["generated_tokens"] == 28 and m["itl_method"] == method
        assert m["usage_mismatch_requests"] == 0 and m["merged_chunk_requests"] == 4
        if method == "spread":
            assert [o.chunk_tokens for o in outs] == [[3, 3, 1]] * 4
