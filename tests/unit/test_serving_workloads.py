"""The workload kinds beyond independent requests (issue 23): conversations' growing context,
shared-prefix groups, a trace's blocks, clock and lateness, their checks and record fields."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from jobs.checks import ConfigError
from jobs.config import TinyModelConfig
from jobs.record import FLAG_MEANINGS, Flag
from jobs.serving import TraceConfig, WorkloadConfig
from jobs.trace import read_trace
from workers.serving.client import RequestInput, RequestOutput
from workers.serving.make_trace import main as make_trace_main
from workers.serving.prompts import PromptMaker
from workers.serving.traffic import TrafficPlan, run_traffic
from workers.serving.workloads import (
    TRACE_LATE_P99_S,
    TracePrompts,
    conversation_block,
    conversation_prompts,
    group_makers,
    lateness,
    trace_schedule,
)

TRACE = Path(__file__).parents[1] / "fixtures" / "traces" / "tiny.jsonl"


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from transformers import AutoTokenizer

    from workers.tiny import ensure_tiny_model

    path = ensure_tiny_model(TinyModelConfig(), str(tmp_path_factory.mktemp("tiny")))
    return AutoTokenizer.from_pretrained(path)


def ids(tok, text: str) -> list[int]:
    return tok(text)["input_ids"]


def test_a_turn_carries_every_earlier_turn_and_answer(tok):
    turns = conversation_prompts(lambda s: PromptMaker(tok, 100 + s), 2, 3, 10, 4)
    for session in turns:
        counts = [n for _, n in session]
        assert counts == [10, 10 + 14, 10 + 28]  # prompt_len + k x (prompt_len + seq)
        for k in range(1, 3):
            before, now = ids(tok, session[k - 1][0]), ids(tok, session[k][0])
            assert now[: len(before)] == before  # turn k starts with turn k-1 ...
            assert len(now) == len(before) + 4 + 10  # ... then its answer and a new part
    assert turns[0][0][0] != turns[1][0][0]  # sessions differ


def test_groups_share_exactly_their_own_prefix(tok):
    makers = group_makers(tok, 0, 8, 3)
    prompts = {g: [ids(tok, m.prompt(20)[0]) for _ in range(4)] for g, m in enumerate(makers)}
    for group in prompts.values():
        first = group[0]
        for other in group[1:]:
            assert other[:8] == first[:8] and other[8:] != first[8:]
    heads = {tuple(p[0][:8]) for p in prompts.values()}
    assert len(heads) == 3  # each group its own prefix


def test_trace_is_read_and_refused_with_the_key(tmp_path):
    reqs = read_trace(TRACE)
    assert len(reqs) == 24 and reqs[0].timestamp_ms == 0 and reqs[0].hash_ids
    assert len(read_trace(TRACE, 5)) == 5
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"timestamp": 0, "input_length": 4}\n')
    with pytest.raises(ConfigError, match="workload.trace.path: line 1"):
        read_trace(bad)
    with pytest.raises(ConfigError, match="workload.trace.path"):
        TraceConfig(path=str(tmp_path / "none.jsonl")).check()
    with pytest.raises(ConfigError, match="workload.trace.speed"):
        TraceConfig(path=str(TRACE), speed=0).check()
    with pytest.raises(ConfigError, match="workload.kind"):
        WorkloadConfig(name="serve", kind="replay")
    with pytest.raises(ConfigError, match="workload.turns"):
        WorkloadConfig(name="serve", kind="conversation", turns=0)


def test_the_same_block_id_gives_the_same_tokens(tok):
    reqs = read_trace(TRACE)
    prompts = TracePrompts(tok, 16, seed=0)
    again = TracePrompts(tok, 16, seed=5)  # another cell: blocks are the block id's alone
    a, b = reqs[0], next(r for r in reqs[1:] if r.hash_ids[:2] == reqs[0].hash_ids[:2])
    ta, tb = ids(tok, prompts.prompt(a, 0)[0]), ids(tok, prompts.prompt(b, 1)[0])
    assert len(ta) == a.input_length and len(tb) == b.input_length
    assert ta[:32] == tb[:32]  # two shared blocks of 16 tokens
    assert ta[32:48] != tb[32:48]  # their own blocks differ
    assert prompts.block(7) == again.block(7)


def test_the_trace_clock_and_lateness():
    reqs = read_trace(TRACE)[:3]
    sched = trace_schedule(reqs, speed=2.0)
    assert sched == tuple((r.timestamp_ms - reqs[0].timestamp_ms) / 2000 for r in reqs)
    on_time = lateness((0.0, 1.0, 2.0), [10.0, 11.001, 12.0], start_s=10.0)
    assert on_time["trace_lateness_s_max"] == pytest.approx(0.001) and not on_time["trace_late"]
    late = lateness((0.0, 1.0), [10.0, 11.0 + 2 * TRACE_LATE_P99_S], start_s=10.0)
    assert late["trace_late"] and late["trace_lateness_s_p99"] == pytest.approx(0.1)
    assert Flag.TRACE_LATE in FLAG_MEANINGS


def test_a_schedule_sends_on_the_trace_clock():
    sent: list[float] = []

    async def send(req: RequestInput) -> RequestOutput:
        sent.append(time.perf_counter())
        return RequestOutput(send_s=sent[-1])

    res = asyncio.run(run_traffic(lambda i: RequestInput("x", 1, 1),
                                  send, TrafficPlan(schedule=(0.0, 0.05, 0.1))))  # fmt: skip
    offsets = [s - res.start_s for s in sent]
    assert len(res.outputs) == 3
    for got, due in zip(offsets, (0.0, 0.05, 0.1), strict=True):
        assert due <= got < due + 0.04


def test_a_conversation_record_block():
    outs = [RequestOutput(send_s=0.0, first_token_s=0.1 * (i % 3 + 1)) for i in range(6)]
    meta = {"turns": 3, "sessions": 2, "think_time_s": 0.0, "context": [8, 20, 32] * 2}
    flat, block = conversation_block(meta, outs)
    assert [t["ttft_s_p50"] for t in block["by_turn"]] == pytest.approx([0.1, 0.2, 0.3])
    assert [t["context_tokens_mean"] for t in block["by_turn"]] == [8, 20, 32]
    assert flat["context_tokens_last_turn"] == 32 and flat["conversation_sessions"] == 2
    assert block["requests"][4] == {"session": 1, "turn": 1, "context_tokens": 20}


def test_make_trace_writes_mooncake_lines(tmp_path):
    out = tmp_path / "t.jsonl"
    assert make_trace_main(["--out", str(out), "--requests", "10", "--block-tokens", "8"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 10 and set(rows[0]) == {"timestamp", "input_length", "output_length",
                                                "hash_ids"}  # fmt: skip
    assert all(r["input_length"] <= 8 * len(r["hash_ids"]) for r in rows)
    assert make_trace_main(["--out", str(out), "--requests", "0"]) == 2


def test_the_simulator_replays_a_trace_on_its_clock():
    from jobs.config import from_values
    from jobs.record import build_record
    from workers.run import measure

    c = from_values({
        "workload": {"name": "serve", "kind": "trace",
                     "trace": {"path": str(TRACE), "block_tokens": 16, "speed": 2.0}},
        "backend": {"name": "sim"}, "model": {"name": "llama3_8b"},
        "prompt_len": 64, "seq": 8,
    })  # fmt: skip
    rec = build_record(c, measure(c))
    assert rec["status"] == "ok", rec["error"]
    assert rec["trace_requests_sent"] == 24 == rec["completed_requests"]
    assert rec["trace_lateness_s_max"] == 0.0 and rec["trace_late"] is False
    due = trace_schedule(read_trace(TRACE), 2.0)
    assert rec["raw"]["send_s"] == pytest.approx(list(due))
    assert rec["raw"]["prompt_len"] == [r.input_length for r in read_trace(TRACE)]


def test_kind_keys_enter_the_identity_only_where_they_matter():
    from jobs.config import from_values
    from jobs.identity import cell_id, identity

    def ident(**w):
        return identity(from_values({"workload": {"name": "serve", **w}, "prompt_len": 16}))

    plain = ident()["workload"]
    assert not {"kind", "trace", "turns", "prefix_groups"} & set(plain)  # ids as before
    assert ident(prefix_groups=2)["workload"]["prefix_groups"] == 2
    conv = ident(kind="conversation")["workload"]
    assert conv["turns"] == 3 and "trace" not in conv
    tr = ident(kind="trace", trace={"path": str(TRACE)})["workload"]
    assert tr["trace"]["path"] == str(TRACE) and "turns" not in tr

    def cid(**w):
        return cell_id(from_values({"workload": {"name": "serve", **w}, "prompt_len": 16}))

    assert cid(kind="conversation", turns=2) != cid(kind="conversation", turns=3)


def test_the_report_keeps_each_kind_on_its_own_curve():
    from aggregate.serving import ServingKey, load_label

    trace = {"workload": "serve", "workload_kind": "trace", "concurrency": None}
    conv = {"workload": "serve", "workload_kind": "conversation", "concurrency": 4}
    closed = {"workload": "serve", "workload_kind": "random", "concurrency": 4}
    assert load_label(trace) == "trace" and load_label(conv) == "c4"
    assert len({ServingKey.of(r) for r in (trace, conv, closed)}) == 3
