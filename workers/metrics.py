"""Metric definitions: the one place where numbers are computed from timings.

Formulas (also in the README):
  e2e_s            = t(last token of the batch) - t(submit), per iteration
  ttft_s           = t(first token of the batch) - t(submit), per iteration
  tpot_s           = (e2e_s - ttft_s) / (seq - 1), per iteration (undefined for seq = 1)
  itl_s            = gaps between consecutive decode steps, pooled over iterations
  output_tokens_per_s = sum(generated tokens) / sum(e2e_s) over measured iterations
  total_tokens_per_s  = sum(batch * prompt_len + generated tokens) / sum(e2e_s)
  samples_per_s    = batch * iterations / sum(e2e_s)
  e2e_cv           = stdev(e2e_s) / mean(e2e_s)
Percentiles are linear-interpolated (numpy's default); stdev is the sample stdev (n - 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from workers.base import IterationResult


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def stdev(values: Sequence[float]) -> float | None:
    if len(values) < 2:
        return 0.0 if values else None
    m = sum(values) / len(values)
    return math.sqrt(sum((x - m) ** 2 for x in values) / (len(values) - 1))


def summarize(prefix: str, values: Sequence[float], full: bool = False) -> dict[str, float | None]:
    out = {
        f"{prefix}_mean": mean(values),
        f"{prefix}_p50": percentile(values, 50),
        f"{prefix}_p99": percentile(values, 99),
    }
    if full:
        out[f"{prefix}_p90"] = percentile(values, 90)
        out[f"{prefix}_stdev"] = stdev(values)
        out[f"{prefix}_min"] = min(values) if values else None
        out[f"{prefix}_max"] = max(values) if values else None
    return out


def tpot(e2e_s: float, ttft_s: float | None, seq: int) -> float | None:
    if ttft_s is None or seq < 2:
        return None
    return (e2e_s - ttft_s) / (seq - 1)


def inter_token_gaps(step_times_s: Sequence[float]) -> list[float]:
    return [b - a for a, b in zip(step_times_s, step_times_s[1:], strict=False)]


def cell_metrics(
    iterations: Sequence[IterationResult], *, batch: int, seq: int, prompt_len: int
) -> dict[str, Any]:
    """All per-cell numbers from the measured iterations (warm-up excluded)."""
    e2e = [it.e2e_s for it in iterations]
    ttft = [it.ttft_s for it in iterations if it.ttft_s is not None]
    tpots = [v for it in iterations if (v := tpot(it.e2e_s, it.ttft_s, seq)) is not None]
    itl = [g for it in iterations for g in inter_token_gaps(it.step_times_s)]
    total_s = sum(e2e)
    generated = [it.generated_tokens for it in iterations]
    m = mean(e2e)
    sd = stdev(e2e)
    out: dict[str, Any] = {}
    out.update(summarize("e2e_s", e2e, full=True))
    out["e2e_cv"] = (sd / m) if m else None
    out.update(summarize("ttft_s", ttft))
    out.update(summarize("tpot_s", tpots))
    out["itl_s_p50"] = percentile(itl, 50)
    out["itl_s_p99"] = percentile(itl, 99)
    out["output_tokens_per_s"] = sum(generated) / total_s if total_s > 0 else None
    prompt_tokens = batch * prompt_len * len(iterations)
    out["total_tokens_per_s"] = (prompt_tokens + sum(generated)) / total_s if total_s > 0 else None
    out["samples_per_s"] = batch * len(iterations) / total_s if total_s > 0 else None
    # generated_tokens counts one measured iteration (the smallest, so a short one shows).
    out["generated_tokens"] = min(generated) if generated else 0
    out["expected_tokens"] = batch * seq
    out["measured_iterations"] = len(iterations)
    out["measured_s"] = total_s
    return out
