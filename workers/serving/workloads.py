"""The prompts and the record fields of the workload kinds beyond independent requests.

Conversations (``workload.kind=conversation``): turn k of a session is the session's context
so far (its earlier turns' prompts and their answers, each answer as ``seq`` word tokens, the
tokens that were asked for, not the text the server returned: so every cell sends the same
prompts) and a new user part of ``prompt_len`` tokens; turn 0 is ``prompt_len`` tokens. Shared-
prefix groups (``workload.prefix_groups``): each group's requests start with the group's own
``prefix_len`` tokens. Traces (``workload.kind=trace``): a request's prompt is its
``hash_ids`` blocks in order, block ``b`` being the first tokens of a sequence drawn from a seed
derived from ``b`` alone (the same id: the same tokens, in every request and cell), filled up
to ``input_length`` with tokens of the request's own; sent at ``timestamp / speed``.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Callable
from typing import Any

from jobs.trace import TraceRequest
from workers.serving.client import RequestOutput
from workers.serving.prompts import PromptMaker

# A trace replayed later than this (p99 of send time - scheduled time) is flagged trace_late.
TRACE_LATE_P99_S = 0.05


def conversation_prompts(
    maker: Callable[[int], PromptMaker], sessions: int, turns: int, prompt_len: int, seq: int
) -> list[list[tuple[str, int]]]:
    """(text, tokens) of each turn of each session (``maker(s)``: session s's PromptMaker)."""
    out = []
    for s in range(sessions):
        m = maker(s)
        ids: list[int] = []
        texts = []
        for k in range(turns):
            ids += m.words(prompt_len - (m.specials if k == 0 else 0))
            texts.append(m.text(ids))
            ids += m.words(seq)  # the answer, as asked for
        out.append(texts)
    return out


def group_makers(tok: Any, seed: int, prefix_len: int, groups: int) -> list[PromptMaker]:
    """One PromptMaker per shared-prefix group, each with a prefix of its own."""
    return [PromptMaker(tok, seed * 7919 + 104729 * (g + 1), prefix_len) for g in range(groups)]


def block_seed(block_id: int) -> int:
    """The seed of a trace block's tokens: from its id alone."""
    return int(hashlib.sha256(f"block:{block_id}".encode()).hexdigest()[:15], 16)


class TracePrompts:
    """Prompts of trace requests; a block's tokens are drawn once per id."""

    def __init__(self, tok: Any, block_tokens: int, seed: int) -> None:
        self.tok, self.block_tokens, self.seed = tok, block_tokens, seed
        self.blocks: dict[int, list[int]] = {}

    def block(self, block_id: int) -> list[int]:
        if block_id not in self.blocks:
            m = PromptMaker(self.tok, block_seed(block_id))
            self.blocks[block_id] = m.words(self.block_tokens)
        return self.blocks[block_id]

    def prompt(self, req: TraceRequest, index: int) -> tuple[str, int]:
        filler = PromptMaker(self.tok, self.seed * 1_000_003 + index)
        want = max(1, req.input_length - filler.specials)
        ids: list[int] = []
        for b in req.hash_ids:
            if len(ids) >= want:
                break
            ids += self.block(b)[: want - len(ids)]
        ids += filler.words(want - len(ids))
        return filler.text(ids)


def trace_schedule(reqs: list[TraceRequest], speed: float) -> tuple[float, ...]:
    """Seconds after the start at which each request is due: its timestamp / speed."""
    t0 = reqs[0].timestamp_ms if reqs else 0.0
    return tuple((r.timestamp_ms - t0) / 1000.0 / speed for r in reqs)


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def lateness(schedule: tuple[float, ...], sent_s: list[float], start_s: float) -> dict[str, Any]:
    """How late the client sent each request against the trace's clock (never < 0)."""
    late = [max(0.0, s - start_s - d) for d, s in zip(schedule, sent_s, strict=False)]
    p99 = _pct(late, 0.99)
    return {
        "trace_lateness_s_p50": _pct(late, 0.5),
        "trace_lateness_s_p99": p99,
        "trace_lateness_s_max": max(late) if late else None,
        "trace_late": p99 is not None and p99 > TRACE_LATE_P99_S,
    }


def _sent(o: RequestOutput) -> float:
    return o.send_s or o.queued_s


def trace_fields(meta: dict[str, Any], outputs: list[RequestOutput], start_s: float) -> dict:
    fields = {"trace_sha256": meta["sha256"], "trace_requests_sent": len(outputs)}
    fields.update(lateness(meta["schedule"], [_sent(o) for o in outputs], start_s))
    return fields


def conversation_block(
    meta: dict[str, Any], outputs: list[RequestOutput]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(flat keys, the record's ``conversation`` block): TTFT p50 and context by turn."""
    turns, context = meta["turns"], meta["context"]
    by_turn = []
    for k in range(turns):
        outs = [o for i, o in enumerate(outputs) if i % turns == k]
        ttfts = [o.ttft_s for o in outs if o.ok and o.ttft_s is not None]
        ctx = [context[i] for i in range(len(outputs)) if i % turns == k]
        by_turn.append({
            "turn": k, "requests": len(outs), "ok": sum(o.ok for o in outs),
            "ttft_s_p50": statistics.median(ttfts) if ttfts else None,
            "context_tokens_mean": statistics.fmean(ctx) if ctx else None,
        })  # fmt: skip
    block = {
        "sessions": meta["sessions"], "turns": turns, "think_time_s": meta["think_time_s"],
        "by_turn": by_turn,
        "requests": [{"session": i // turns, "turn": i % turns, "context_tokens": context[i]}
                     for i in range(len(outputs))],
    }  # fmt: skip
    flat = {
        "conversation_turns": turns, "conversation_sessions": meta["sessions"],
        "ttft_s_p50_first_turn": by_turn[0]["ttft_s_p50"],
        "ttft_s_p50_last_turn": by_turn[-1]["ttft_s_p50"],
        "context_tokens_last_turn": by_turn[-1]["context_tokens_mean"],
    }  # fmt: skip
    return flat, block


def kind_fields(meta: dict[str, Any], outputs: list[RequestOutput], start_s: float):
    """(flat keys, nested blocks) a conversation or trace cell adds to its record."""
    if meta.get("kind") == "trace":
        return trace_fields(meta, outputs, start_s), {}
    if meta.get("kind") == "conversation":
        flat, block = conversation_block(meta, outputs)
        return flat, {"conversation": block}
    return {}, {}
