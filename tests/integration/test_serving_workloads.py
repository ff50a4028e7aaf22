"""Conversation and trace cells for real (issue 23): `transformers serve` with the tiny model
on the CPU, one sweep of a conversation cell (3 turns, 4 sessions) and a trace cell (the
shipped test trace). No assertion is on speed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import sweep_dir
from workers.serving.workloads import TRACE_LATE_P99_S

pytestmark = pytest.mark.slow


@pytest.fixture
def launch(launch_joined):
    """This module's launches join the test process's shared Ray (conftest.py)."""
    return launch_joined


TRACE = Path(__file__).parents[1] / "fixtures" / "traces" / "tiny.jsonl"


def test_a_conversation_and_a_trace_cell_on_transformers_serve(launch, tmp_path):
    for module in ("fastapi", "uvicorn", "openai", "accelerate"):
        pytest.importorskip(module, reason="pip install -e '.[serve]' for transformers serve")
    args = ["-m", "workload=conversation,trace", "workload.turns=3", "workload.sessions=4",
            "seq=4", "prompt_len=8", "workload.warmup_requests=1",
            f"workload.trace.path={TRACE}", "workload.trace.block_tokens=16",
            "hydra.launcher.ray.num_cpus=2"]  # fmt: skip
    proc = launch(*args, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    recs = {}
    for p in sorted(sweep_dir(tmp_path).glob("*/record.json")):
        rec = json.loads(p.read_text())
        recs[rec["workload_kind"]] = rec
    conv, trace = recs["conversation"], recs["trace"]
    assert conv["status"] == "ok" and trace["status"] == "ok", (conv["error"], trace["error"])

    assert conv["completed_requests"] == 12 and conv["concurrency"] == 4
    block = conv["conversation"]
    assert [t["context_tokens_mean"] for t in block["by_turn"]] == [8, 20, 32]
    assert all(t["ttft_s_p50"] is not None and t["ok"] == 4 for t in block["by_turn"])
    assert conv["context_tokens_last_turn"] == 32 and conv["ttft_s_p50_last_turn"] is not None
    assert conv["raw"]["prompt_len"][:3] == [8, 20, 32]  # session 0, turns 0-2
    assert "server_prefix_cache_hit_rate" in conv  # null: transformers serve does not say

    lines = TRACE.read_text().splitlines()
    assert trace["trace_requests_sent"] == len(lines) == trace["completed_requests"]
    assert len(trace["trace_sha256"]) == 64
    assert trace["trace_lateness_s_max"] is not None and trace["trace_lateness_s_max"] >= 0
    late = trace["trace_lateness_s_p99"] > TRACE_LATE_P99_S
    assert trace["trace_late"] == late and ("trace_late" in trace["flags"]) == late
    assert "server_prefix_cache_hit_rate" in trace
