"""What an SGLang cell's record says about the engine: its limits, whether the batch ran as
one batch (flag batch_split), how the decode steps ran (graphs), and its memory, taken from
the engine's server info and the device tool, never from this process's torch counters."""

from __future__ import annotations

import json

import pytest

from tests.sglang_standin import installed, sgl_cell
from workers import run as measure
from workers.backends.sglang import backend as sgl
from workers.backends.sglang.info import (
    batch_split,
    decode_graph,
    device_used_bytes,
    engine_limits,
)

GIB = 2**30
INFO = {  # the shape of sglang 0.5.23's get_server_info() (see test_sglang_contract.py)
    "max_total_num_tokens": 4096,
    "max_prefill_tokens": 16384,
    "chunked_prefill_size": 8192,
    "cuda_graph_config": {"decode": {"backend": "full", "max_bs": 8, "bs": [1, 2, 4, 8]}},
    "internal_states": [
        {
            "effective_max_running_requests_per_dp": 16,
            "decode_cuda_graph_bs": [1, 2, 4, 8],
            "memory_usage": {"weight": 15.0, "kvcache": 40.5, "graph": {"decode": 0.5}},
        }
    ],
}


@pytest.fixture
def stand_in(monkeypatch):
    yield from installed(monkeypatch, INFO)


def test_a_batch_within_the_limits_runs_as_one(stand_in):
    rec = measure.run_cell(sgl_cell(batch=4, seq=8, prompt_len=8))
    assert rec["status"] == "ok", rec["error"]
    assert "batch_split" not in rec["flags"]
    engine = rec["engine"]
    assert engine["batch_split"] == [] and engine["decode_graph"] == "captured"
    assert engine["limits"]["max_running_requests"] == 16
    assert engine["limits"]["max_total_num_tokens"] == 4096
    json.dumps(rec)


def test_a_batch_above_the_limits_is_flagged(stand_in):
    rec = measure.run_cell(sgl_cell(batch=20, seq=200, prompt_len=8))
    assert rec["status"] == "ok", rec["error"]
    assert "batch_split" in rec["flags"]
    reasons = rec["engine"]["batch_split"]
    assert any("max_running_requests 16" in r for r in reasons)
    assert any("4160 tokens > KV pool of 4096" in r for r in reasons)
    assert rec["engine"]["decode_graph"] == "eager: batch 20 > largest captured 8"


def test_memory_comes_from_the_engine_not_this_process(stand_in):
    rec = measure.run_cell(sgl_cell(batch=2, seq=4, prompt_len=4))
    mem = rec["engine"]["memory"]
    assert mem["weight_bytes"] == 15 * GIB and mem["graph_bytes"] == GIB // 2
    reserved = round(56.0 * GIB)
    assert mem["engine_reserved_bytes"] == reserved and mem["peak_memory_source"] == "engine"
    assert rec["peak_memory_bytes"] == rec["peak_memory_reserved_bytes"] == reserved
    assert rec["peak_memory_allocated_bytes"] is None  # never the worker's torch counter (0)
    assert rec["peak_rss_bytes"] is None or rec["peak_rss_bytes"] > 0


def test_the_device_tool_reading_is_preferred(stand_in, monkeypatch):
    snap = {"tool": "npu-smi", "filtered": True, "devices": [{"hbm_used_mb": 61000}]}
    monkeypatch.setattr(sgl.SGLangBackend, "_snapshot", lambda self: snap)
    rec = measure.run_cell(sgl_cell(batch=2, seq=4, prompt_len=4))
    assert rec["peak_memory_bytes"] == 61000 * 2**20
    assert rec["engine"]["memory"]["peak_memory_source"] == "device tool"


def test_without_server_info_everything_unknown_is_null(stand_in):
    stand_in.server_info = {}
    rec = measure.run_cell(sgl_cell(batch=64, seq=4, prompt_len=4))
    assert rec["status"] == "ok"
    assert rec["engine"]["limits"] is None and rec["engine"]["batch_split"] is None
    assert "batch_split" not in rec["flags"]  # unknown is not a split
    for key in ("peak_memory_bytes", "peak_memory_allocated_bytes", "peak_memory_reserved_bytes"):
        assert rec[key] is None, key


def test_limits_from_older_flat_names():
    info = {"max_running_requests": 8, "cuda_graph_bs": [1, 2, 4], "disable_cuda_graph": False}
    limits = engine_limits(info)
    assert limits["max_running_requests"] == 8 and limits["decode_graph_batch_sizes"] == [1, 2, 4]
    assert decode_graph(limits, 3) == "padded to 4"
    assert decode_graph({**limits, "decode_graph_disabled": True}, 3) == "disabled"
    assert decode_graph(engine_limits({}), 3) is None


def test_prefill_budget_split():
    limits = {**engine_limits(INFO), "max_total_num_tokens": 100_000}
    assert batch_split(limits, 8, 1024, 1) == []
    assert batch_split(limits, 9, 1024, 1)[-1].startswith("prefill of batch x prompt_len = 9216")


def test_device_reading_only_for_known_devices():
    two = [{"memory_used_mb": 1000}, {"memory_used_mb": 2000}]
    assert device_used_bytes({"filtered": False, "devices": two}, 1) is None  # whose is it?
    assert device_used_bytes({"filtered": True, "devices": two[:1]}, 1) == 1000 * 2**20
    assert device_used_bytes({"filtered": True, "devices": two}, 2) == 3000 * 2**20
    assert device_used_bytes({"tool": "npu-smi", "error": "exit 255"}, 1) is None
    assert device_used_bytes({"filtered": True, "devices": [{"hbm_used_mb": 0}]}, 1) is None
