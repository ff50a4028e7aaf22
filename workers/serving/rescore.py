"""Goodput under another SLO, from what a serving record kept: no request is sent again.

An SLO does not change what is measured, only how the measured requests are counted (it is not
part of a cell's identity: jobs/identity.py). A finished serving record keeps every request's
TTFT, E2E latency, output tokens and error (``raw``, written by
:func:`workers.serving.metrics.raw_requests`) and the window's ``duration_s``; resuming it under
another SLO re-counts its goodput from those with the very rule the measurement used
(:func:`workers.serving.metrics.is_good`).
"""

from __future__ import annotations

from typing import Any

from workers.serving.client import RequestOutput
from workers.serving.metrics import is_good

GOODPUT_KEYS = ("slo_ttft_ms", "slo_tpot_ms", "goodput_requests_per_s", "goodput_fraction")


def _requests(raw: dict[str, list]) -> list[RequestOutput]:
    """The measured requests as far as the SLO's rule needs them (times from each send)."""
    out = []
    for i, ttft in enumerate(raw["ttft_s"]):
        tokens = raw["output_tokens"][i]
        out.append(
            RequestOutput(
                first_token_s=ttft,
                last_token_s=raw["e2e_s"][i],
                usage_completion_tokens=tokens if tokens is not None else 0,
                error_kind=raw["error_kind"][i],
            )
        )
    return out


def can_rescore(record: dict[str, Any]) -> bool:
    """A finished serving record with the per-request values re-scoring needs."""
    raw = record.get("raw")
    need = ("ttft_s", "e2e_s", "output_tokens", "error_kind")
    return (
        record.get("workload") == "serve"
        and isinstance(raw, dict)
        and all(isinstance(raw.get(k), list) for k in need)
        and len({len(raw[k]) for k in need}) == 1
    )


def goodput(record: dict[str, Any], ttft_ms: float, tpot_ms: float) -> dict[str, Any]:
    """The SLO and goodput keys of ``record`` under the SLO (``ttft_ms``, ``tpot_ms``; 0 = no
    limit), counted from its kept requests as when it was measured."""
    outputs = _requests(record["raw"])
    duration = record.get("duration_s") or 0.0
    fields: dict[str, Any] = {
        "slo_ttft_ms": ttft_ms or None,
        "slo_tpot_ms": tpot_ms or None,
        "goodput_requests_per_s": None,
        "goodput_fraction": None,
    }
    if ttft_ms or tpot_ms:
        good = sum(is_good(o, ttft_ms, tpot_ms) for o in outputs)
        fields["goodput_requests_per_s"] = good / duration if duration > 0 else None
        fields["goodput_fraction"] = good / len(outputs) if outputs else None
    return fields


__all__ = ["GOODPUT_KEYS", "can_rescore", "goodput"]
