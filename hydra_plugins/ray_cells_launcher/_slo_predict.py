"""Predict a serving group's knee from static cells of the same model and card (docs/serving.md,
"Predict, then measure").

The static records give TTFT(b) (``ttft_s_mean``: the prefill of b prompts) and TPOT(b)
(``tpot_s_mean``: one decode step of b sequences) over the batch b, at the prompt length and
output length nearest the serving group's (linear in b between the measured batches, the
last slope beyond them). A continuous-batching server at an arrival rate lam with output
length L then runs, in steady state:

    prefill share    rho   = lam * TTFT(1)            (each arrival's prefill pauses decoding)
    decode step      TPOT' = TPOT(B) / (1 - rho)      (what a running request sees per token)
    running batch    B     = lam * (TTFT(1) + L * TPOT')          (Little's law; solved by
                                                                   fixed-point iteration)
    first token      TTFT' = TTFT(1) / (1 - rho)

and lam meets the SLO when TPOT' <= slo.tpot_ms and TTFT' <= slo.ttft_ms. Without the
prefill share this is B = lam * (TTFT + L * TPOT(B)) and lam* = B_max / (TTFT + L *
TPOT(B_max)) where TPOT(B_max) is the SLO's TPOT. The predicted knee lam* is the largest lam
that meets it (bisection); for ``concurrency`` the prediction is the running batch B at lam*.
Means, not p99s: the prediction is where the search starts, the probes decide.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def static_records(directory: Path) -> list[dict[str, Any]]:
    """The ok static records under ``directory`` (cell dirs, and rK/ repeats below them)."""
    out = []
    for path in [*directory.glob("*/record.json"), *directory.glob("*/r*/record.json")]:
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        static = rec.get("workload") in (None, "static") and rec.get("concurrency") is None
        if static and rec.get("status") == "ok" and rec.get("batch"):
            out.append(rec)
    return out


@dataclass
class Curve:
    """y(b) piecewise linear through (batch, y) points; the end slopes beyond them."""

    points: list[tuple[float, float]]

    def __call__(self, b: float) -> float:
        pts = self.points
        if len(pts) == 1:
            return pts[0][1]
        if b <= pts[0][0]:
            (x0, y0), (x1, y1) = pts[0], pts[1]
        elif b >= pts[-1][0]:
            (x0, y0), (x1, y1) = pts[-2], pts[-1]
        else:
            i = next(i for i, (x, _) in enumerate(pts) if x >= b)
            (x0, y0), (x1, y1) = pts[i - 1], pts[i]
        return max(y0 + (y1 - y0) * (b - x0) / (x1 - x0), 1e-12)


def _curve(recs: Iterable[dict[str, Any]], key: str) -> Curve | None:
    by_batch: dict[int, list[float]] = defaultdict(list)
    for r in recs:
        if r.get(key) is not None:
            by_batch[int(r["batch"])].append(float(r[key]))
    pts = [(float(b), sorted(v)[len(v) // 2]) for b, v in sorted(by_batch.items())]
    return Curve(pts) if pts else None


def _nearest(recs: list[dict[str, Any]], key: str, want: int) -> list[dict[str, Any]]:
    best = min({r[key] for r in recs}, key=lambda v: (abs(v - want), v))
    return [r for r in recs if r[key] == best]


def surfaces(
    recs: list[dict[str, Any]], match: dict[str, Any], prompt_len: int, seq: int
) -> tuple[Curve, Curve, dict[str, Any]] | None:
    """(TTFT(b), TPOT(b), where they came from) of the records that match the group's model
    and card (every key of ``match`` equal), at the nearest prompt length and output length."""
    same = [r for r in recs if all(r.get(k) == v for k, v in match.items())]
    if not same:
        return None
    same = _nearest(same, "prompt_len", prompt_len)
    same = _nearest(same, "seq", seq)
    ttft, tpot = _curve(same, "ttft_s_mean"), _curve(same, "tpot_s_mean")
    if ttft is None or tpot is None:
        return None
    names = sorted({str(r.get("device_name")) for r in same})
    src = {
        "static_cells": len(same), "batches": [int(x) for x, _ in tpot.points],
        "prompt_len": same[0]["prompt_len"], "seq": same[0]["seq"], "device_name": names,
    }  # fmt: skip
    return ttft, tpot, src


def steady_state(lam: float, ttft: Curve, tpot: Curve, out_len: int) -> dict[str, float] | None:
    """The model above at rate ``lam``: running batch, TPOT', TTFT'; None when unstable."""
    t1 = ttft(1)
    rho = lam * t1
    if rho >= 1:
        return None
    b = lam * (t1 + out_len * tpot(1))
    for _ in range(200):
        step = tpot(max(b, 1.0)) / (1 - rho)
        nb = lam * (t1 + out_len * step)
        if nb > 1e6:
            return None
        if abs(nb - b) <= 1e-6 * max(b, 1.0):
            b = nb
            break
        b = nb
    step = tpot(max(b, 1.0)) / (1 - rho)
    return {"batch": b, "tpot_s": step, "ttft_s": t1 / (1 - rho)}


def predict_rate(
    ttft: Curve, tpot: Curve, out_len: int, ttft_ms: float, tpot_ms: float
) -> dict[str, float] | None:
    """The largest rate that meets the SLO in the model, with its steady state; None when no
    SLO is set or not even a lone request meets it."""
    if not (ttft_ms or tpot_ms):
        return None

    def meets(lam: float) -> bool:
        s = steady_state(lam, ttft, tpot, out_len)
        return s is not None and not (
            (tpot_ms and s["tpot_s"] * 1e3 > tpot_ms) or (ttft_ms and s["ttft_s"] * 1e3 > ttft_ms)
        )

    lo, hi = 0.0, 1.0 / ttft(1)
    if not meets(hi * 1e-6):
        return None
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if meets(mid) else (lo, mid)
    state = steady_state(lo, ttft, tpot, out_len)
    return None if state is None or math.isnan(lo) else {"request_rate": lo, **state}


def predict(
    directory: Path, key: str, match: dict[str, Any], prompt_len: int, seq: int, slo: Any
) -> dict[str, Any] | None:
    """The predicted knee of one group (``key`` request_rate or concurrency) with what it
    came from, or None when the directory has no matching static cells."""
    found = surfaces(static_records(directory), match, prompt_len, seq)
    if found is None:
        return None
    ttft, tpot, src = found
    state = predict_rate(ttft, tpot, seq, slo.ttft_ms, slo.tpot_ms)
    if state is None:
        return None
    value = state["request_rate"] if key == "request_rate" else max(1, round(state["batch"]))
    return {"value": value, "from": str(directory), **src, "model_state": state}


__all__ = ["Curve", "predict", "predict_rate", "static_records", "steady_state", "surfaces"]
