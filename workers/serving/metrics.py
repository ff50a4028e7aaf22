"""Serving metrics: computed once from the list of per-request outputs of a cell.

Per completed request (times from the client's clock; send = the request's bytes handed to
the socket, after any wait in the client: ``client_send_delay_s_*``):
  ttft_s  = t(first text chunk) - t(send)
  e2e_s   = t(last text chunk) - t(send)
  tpot_s  = (e2e_s - ttft_s) / (output_tokens - 1), for requests with > 1 token
  itl_s   = per token: the gaps between a request's consecutive tokens, pooled over requests;
            how they are derived is the record's ``itl_method`` (see ``request_itls``)
Per cell (duration = first send to last answer of the measured requests):
  request_throughput_per_s      = completed requests / duration
  output_tokens_per_s           = sum(output tokens of completed requests) / duration
  total_tokens_per_s            = (prompt + output tokens of completed requests) / duration
  output_tokens_per_s_per_user  = 1 / tpot_s_mean (the decode speed one user sees)
  output_tokens_per_s_per_card  = output_tokens_per_s / cards of the server
  goodput_requests_per_s        = completed requests within every SLO limit set / duration
  goodput_fraction              = those requests / all measured requests
Output tokens are the server's ``usage.completion_tokens`` where it reports them, else the
client's count of text chunks. A text chunk carries one token or more (a stream that fell
behind joins tokens; a token that decodes to no text travels with the next one), so fewer
chunks than tokens is not a disagreement: ``merged_chunk_requests`` counts those requests.
``usage_mismatch_requests`` counts requests whose counts really disagree: more text chunks
than the server's tokens, or per-chunk counts that do not add up to its total. Percentiles as
in ``workers.metrics`` (linear interpolation).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from workers.metrics import inter_token_gaps, mean, percentile, summarize
from workers.serving.client import RequestOutput


def _full(prefix: str, values: Sequence[float]) -> dict[str, float | None]:
    out = summarize(prefix, values)
    out[f"{prefix}_p90"] = percentile(values, 90)
    return out


def request_tpot(out: RequestOutput) -> float | None:
    if out.ttft_s is None or out.e2e_s is None or out.output_tokens < 2:
        return None
    return (out.e2e_s - out.ttft_s) / (out.output_tokens - 1)


def is_good(out: RequestOutput, ttft_ms: float, tpot_ms: float) -> bool:
    """A completed request within the SLO's limits (0 = no limit)."""
    if not out.ok or out.ttft_s is None:
        return False
    if ttft_ms and out.ttft_s * 1e3 > ttft_ms:
        return False
    tpot = request_tpot(out)
    return not (tpot_ms and tpot is not None and tpot * 1e3 > tpot_ms)


ITL_METHODS = ("per_chunk", "spread", "even")


def request_itls(out: RequestOutput) -> tuple[list[float], str]:
    """One request's inter-token latencies, one per token after the first chunk, and how:

    * ``per_chunk``: every text chunk carried one token (as many chunks as the server's
      tokens, or no server count): the gaps between chunks;
    * ``spread``: the server said how many tokens each chunk carried (a running ``usage``):
      a chunk of n tokens contributes its gap from the previous chunk as n gaps of gap/n
      (the first chunk's tokens belong to the TTFT; a chunk of 0 tokens adds its gap to the
      next);
    * ``even``: fewer chunks than tokens and no per-chunk counts: which chunk carried several
      is unknown, so the request's decode time (last chunk - first chunk) is spread evenly
      over its tokens - 1 gaps (its TPOT, tokens - 1 times).
    """
    times, n = out.token_times_s, out.usage_completion_tokens
    if out.chunk_tokens is not None:
        gaps, last = [], times[0] if times else 0.0
        for t, k in zip(times[1:], out.chunk_tokens[1:], strict=True):
            if k > 0:
                gaps += [(t - last) / k] * k
                last = t
        return gaps, "spread"
    if n is None or n <= len(times):
        return inter_token_gaps(times), "per_chunk"
    span = times[-1] - times[0] if times else 0.0
    return ([span / (n - 1)] * (n - 1) if n > 1 else []), "even"


def itl_method(done: Sequence[RequestOutput]) -> str | None:
    """The cell's: the one its requests used, or ``mixed`` (raw.itl_method says per request)."""
    methods = {request_itls(o)[1] for o in done}
    return None if not methods else methods.pop() if len(methods) == 1 else "mixed"


def _latencies(done: Sequence[RequestOutput]) -> dict[str, Any]:
    e2e = [o.e2e_s for o in done if o.e2e_s is not None]
    tpots = [t for o in done if (t := request_tpot(o)) is not None]
    itl = [g for o in done for g in request_itls(o)[0]]
    out: dict[str, Any] = summarize("e2e_s", e2e, full=True)
    out.update(_full("ttft_s", [o.ttft_s for o in done if o.ttft_s is not None]))
    out.update(_full("tpot_s", tpots))
    out.update(_full("itl_s", itl))
    return out


def usage_mismatch(out: RequestOutput) -> bool:
    """The client's and the server's counts really disagree (see the module's text)."""
    n = out.usage_completion_tokens
    if n is None:
        return False
    if out.chunk_tokens is not None:
        return sum(out.chunk_tokens) != n
    return out.client_tokens > n


def _usage(done: Sequence[RequestOutput]) -> dict[str, Any]:
    reported = [o for o in done if o.usage_completion_tokens is not None]
    return {
        "usage_completion_tokens": (
            sum(o.usage_completion_tokens or 0 for o in reported) if reported else None
        ),
        "client_completion_tokens": sum(o.client_tokens for o in done),
        "usage_mismatch_requests": sum(usage_mismatch(o) for o in reported),
        "merged_chunk_requests": sum(
            o.client_tokens < (o.usage_completion_tokens or 0) for o in reported
        ),
        "itl_method": itl_method(done),
    }


def _send_delays(outputs: Sequence[RequestOutput]) -> dict[str, Any]:
    """How long requests waited in the client before their bytes left (not in the TTFT)."""
    waits = [o.send_s - o.queued_s for o in outputs if o.queued_s]
    return {
        "client_send_delay_s_p50": percentile(waits, 50),
        "client_send_delay_s_p99": percentile(waits, 99),
    }


def serving_metrics(
    outputs: Sequence[RequestOutput],
    duration_s: float,
    *,
    cards: int | None,
    ttft_ms: float = 0.0,
    tpot_ms: float = 0.0,
) -> dict[str, Any]:
    """All flat serving keys of a cell from its measured requests (warm-up excluded)."""
    done = [o for o in outputs if o.ok]
    per_s = (lambda n: n / duration_s) if duration_s > 0 else (lambda n: None)
    generated = sum(o.output_tokens for o in done)
    prompt = sum(o.usage_prompt_tokens or o.prompt_len for o in done)
    m: dict[str, Any] = _latencies(done)
    m.update(_usage(done))
    m.update(_send_delays(outputs))
    tpot_mean = m["tpot_s_mean"]
    m.update(
        num_requests=len(outputs),
        completed_requests=len(done),
        failed_requests=len(outputs) - len(done),
        request_errors=dict(Counter(o.error_kind for o in outputs if not o.ok)),
        duration_s=duration_s,
        measured_s=duration_s,
        request_throughput_per_s=per_s(len(done)),
        output_tokens_per_s=per_s(generated),
        total_tokens_per_s=per_s(prompt + generated),
        output_tokens_per_s_per_user=(1.0 / tpot_mean) if tpot_mean else None,
        generated_tokens=generated,
        expected_tokens=sum(o.output_len for o in outputs),
        short_requests=sum(o.output_tokens < o.output_len for o in done),
    )
    tps = m["output_tokens_per_s"]
    m["output_tokens_per_s_per_card"] = tps / cards if (tps is not None and cards) else None
    slo = bool(ttft_ms or tpot_ms)
    good = sum(is_good(o, ttft_ms, tpot_ms) for o in outputs) if slo else None
    m["goodput_requests_per_s"] = per_s(good) if good is not None else None
    m["goodput_fraction"] = good / len(outputs) if (good is not None and outputs) else None
    return m


def raw_requests(outputs: Sequence[RequestOutput], start_s: float) -> dict[str, list]:
    """Per-request values for the record's ``raw`` (times relative to the traffic's start)."""

    def rel(t: float | None) -> float | None:
        return None if t is None else t - start_s

    return {
        "send_s": [rel(o.send_s) for o in outputs],
        "ttft_s": [o.ttft_s for o in outputs],
        "e2e_s": [o.e2e_s for o in outputs],
        "prompt_len": [o.prompt_len for o in outputs],
        "output_len": [o.output_len for o in outputs],
        "output_tokens": [o.output_tokens if o.ok else None for o in outputs],
        "usage_completion_tokens": [o.usage_completion_tokens for o in outputs],
        "token_times_s": [[t - o.send_s for t in o.token_times_s] for o in outputs],
        "chunk_tokens": [o.chunk_tokens for o in outputs],
        "itl_method": [request_itls(o)[1] if o.ok else None for o in outputs],
        "error_kind": [o.error_kind for o in outputs],
        "error": [o.error for o in outputs],
    }


__all__ = [
    "is_good", "itl_method", "mean", "raw_requests", "request_itls", "request_tpot",
    "serving_metrics", "usage_mismatch",
]  # fmt: skip
