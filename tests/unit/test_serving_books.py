"""In-process: ITL per token (per_chunk / spread / even), usage_mismatch only where counts
really disagree, the Prometheus reader, the server's books and the client-health flags."""

from __future__ import annotations

import asyncio

import pytest

from aggregate.tables import FLAG_MARKS
from jobs.record import FLAG_MEANINGS, FLAT_KEYS, Flag
from workers.serving import prometheus as prom
from workers.serving.books import SERVER_KEYS, disagrees, server_fields
from workers.serving.client import RequestOutput, _parse
from workers.serving.health import ClientHealth, is_saturated
from workers.serving.metrics import request_itls, serving_metrics, usage_mismatch


def out(times, usage=None, chunk_tokens=None):
    return RequestOutput(prompt_len=3, output_len=usage or len(times), send_s=0.0,
                         token_times_s=list(times), first_token_s=times[0],
                         last_token_s=times[-1], usage_completion_tokens=usage,
                         chunk_tokens=chunk_tokens)  # fmt: skip


def test_itl_is_per_token_and_says_how():
    gaps, how = request_itls(out([0.1, 0.2, 0.35], usage=3))
    assert how == "per_chunk" and gaps == pytest.approx([0.1, 0.15])
    # a chunk of 2 tokens after a 0.2 s gap: two gaps of 0.1 s
    gaps, how = request_itls(out([0.1, 0.3, 0.4], usage=4, chunk_tokens=[1, 2, 1]))
    assert how == "spread" and gaps == pytest.approx([0.1, 0.1, 0.1])
    # 3 chunks, 5 tokens, no per-chunk counts: the decode time 0.4 s over 4 gaps
    gaps, how = request_itls(out([0.1, 0.2, 0.5], usage=5))
    assert how == "even" and gaps == pytest.approx([0.1] * 4)
    m = serving_metrics([out([0.1, 0.2, 0.5], usage=5), out([0.1, 0.2], usage=2)], 1.0, cards=1)
    assert m["itl_method"] == "mixed" and m["merged_chunk_requests"] == 1
    assert m["usage_mismatch_requests"] == 0 and m["generated_tokens"] == 7


def test_usage_mismatch_only_where_counts_disagree():
    assert not usage_mismatch(out([0.1, 0.2], usage=5))  # fewer chunks: merged tokens
    assert usage_mismatch(out([0.1, 0.2, 0.3], usage=2))  # more text chunks than tokens
    assert usage_mismatch(out([0.1, 0.2], usage=5, chunk_tokens=[1, 2]))  # 3 != 5
    assert not usage_mismatch(out([0.1, 0.2], usage=None))


def test_parse_after_timing_gives_each_line_its_reads_time():
    body = (b'data: {"choices":[{"text":"a"}],"usage":{"completion_tokens":1}}\n\n'
            b'data: {"choices":[{"text":"bc"}],"usage":{"completion_tokens":3}}\n\n'
            b'data: {"choices":[],"usage":{"completion_tokens":3,"prompt_tokens":2}}\n\n'
            b"data: [DONE]\n\n")  # fmt: skip
    cut = body.index(b"data:", 10) + 7  # the second line ends in the second read
    o = RequestOutput()
    _parse(o, body, [(1.0, cut), (2.0, len(body))])
    assert o.token_times_s == [1.0, 2.0] and o.chunk_tokens == [1, 2]
    assert o.usage_completion_tokens == 3 and o.usage_prompt_tokens == 2


SCRAPE = """# HELP vllm:time_to_first_token_seconds x
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.01"}} {a}
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.1"}} {b}
vllm:time_to_first_token_seconds_bucket{{engine="0",le="+Inf"}} {b}
vllm:time_to_first_token_seconds_sum{{engine="0"}} {s}
vllm:time_to_first_token_seconds_count{{engine="0"}} {b}
vllm:time_to_first_token_seconds_created{{engine="0"}} 1.7e9
vllm:num_preemptions_total{{engine="0"}} {p}
vllm:kv_cache_usage_perc{{engine="0"}} {kv}
vllm:prefix_cache_hits_total{{engine="0"}} {h}
vllm:prefix_cache_queries_total{{engine="0"}} {q}
"""


def scrape(a=0, b=0, s=0.0, p=0, kv=0.0, h=0, q=0):
    return prom.parse(SCRAPE.format(a=a, b=b, s=s, p=p, kv=kv, h=h, q=q))


def test_histogram_delta_mean_and_bucket_percentiles():
    before, after = scrape(a=2, b=2, s=0.01), scrape(a=2, b=12, s=0.51)
    h = prom.histogram_delta(before, after, "vllm:time_to_first_token_seconds")
    assert h["count"] == 10 and h["mean"] == pytest.approx(0.05)
    assert h["p50"] == pytest.approx(0.01 + 0.09 * 0.5)  # all 10 in (0.01, 0.1]
    assert prom.quantile(0.5, [(1.0, 0.0), (float("inf"), 4.0)]) == 1.0


def test_server_fields_from_vllm_names_and_unknown_without_them():
    before = scrape(a=0, b=0, h=0, q=0)
    mid = scrape(kv=0.7)
    after = scrape(a=4, b=4, s=0.02, p=3, kv=0.1, h=30, q=120)
    f = server_fields(before, after, [before, mid, after])
    assert f["server_metrics"] == "vllm" and f["server_requests"] == 4
    assert f["server_ttft_s_mean"] == pytest.approx(0.005)
    assert f["server_preemptions"] == 3 and f["server_kv_cache_usage_peak"] == 0.7
    assert f["server_prefix_cache_hit_rate"] == pytest.approx(0.25)
    assert f["server_itl_s_mean"] is None and f["server_spec_acceptance"] is None
    assert set(SERVER_KEYS) <= set(FLAT_KEYS)
    empty = server_fields({}, {}, [])
    assert all(v is None for v in empty.values())


def test_disagree_beyond_overhead_plus_ten_percent():
    f = {"server_ttft_s_mean": 0.050, "client_loop_lag_s_p99": 0.001}
    assert not disagrees(0.057, f)  # 7 ms < 2 + 1 + 5 ms
    assert disagrees(0.060, f) and disagrees(0.030, f)
    assert not disagrees(0.5, {"server_ttft_s_mean": None})


def test_client_health_probe_and_saturation():
    async def busy():
        h = ClientHealth()
        h.start()
        await asyncio.sleep(0.05)
        sum(i * i for i in range(300_000))  # blocks the loop for a while
        await asyncio.sleep(0.02)
        await h.stop()
        return h.fields()

    f = asyncio.run(busy())
    assert f["client_loop_lag_s_max"] >= f["client_loop_lag_s_p50"] >= 0
    assert 0 < f["client_cpu_share"] <= 1.5
    assert is_saturated({"client_loop_lag_s_p99": 0.02, "client_cpu_share": 0.1})
    assert is_saturated({"client_loop_lag_s_p99": 0.0001, "client_cpu_share": 0.95})
    assert not is_saturated({"client_loop_lag_s_p99": 0.001, "client_cpu_share": 0.3})


def test_new_flags_have_a_meaning_and_a_mark():
    for flag in (Flag.CLIENT_SATURATED, Flag.CLIENT_SERVER_DISAGREE):
        assert FLAG_MEANINGS[flag] and FLAG_MARKS[flag.value]
