"""The search of `hydra/sweeper=slo_search`, apart from Hydra: when a probe meets the SLO, and
which value to probe next (bracketing, then bisection), one group of cells at a time.

A probe *meets* the SLO when its job returned status ``ok``, its p99 TTFT is within
``slo.ttft_ms`` and its p99 TPOT within ``slo.tpot_ms`` (a limit of 0 is no limit), and the
server was not over-saturated: achieved rate >= ``saturation`` x offered rate
(``achieved_rate_per_s``, ``offered_rate_per_s``) and the queue not growing
(``queue_growing``), where the record has those keys (the simulator's serving mode does).

The search: probe ``start``; while every probe meets, go up (x2; from a predicted start by
steps that grow from x ``1 + 2 rel_tol``, squared each time, up to x2); while every probe
fails, go down the same way; once a meeting value ``lo`` and a failing one ``hi`` are known, bisect
until ``hi - lo <= rel_tol x lo`` (integer keys: also when they are neighbours). The answer is
``lo`` (the knee) with its bracket [lo, hi]; it ends early at ``max_value`` (every probe met),
``min_value`` (none met) or after ``max_probes``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# What a probe keeps of its job's result (for knee.json and the report).
PROBE_KEYS = (
    "cell_dir", "status", "ttft_s_p99", "tpot_s_p99", "request_throughput_per_s",
    "offered_rate_per_s", "achieved_rate_per_s", "queue_len_mean", "queue_growing",
    "goodput_fraction", "output_tokens_per_s",
)  # fmt: skip


@dataclass(frozen=True)
class Slo:
    ttft_ms: float = 0.0
    tpot_ms: float = 0.0

    def text(self) -> str:
        parts = [f"p99 TTFT <= {self.ttft_ms:g} ms"] if self.ttft_ms else []
        parts += [f"p99 TPOT <= {self.tpot_ms:g} ms"] if self.tpot_ms else []
        return " and ".join(parts) or "none"


def _latency(row: dict[str, Any], key: str, limit_ms: float, name: str) -> str | None:
    if not limit_ms:
        return None
    value = row.get(key)
    if value is None:
        return f"no {name}"
    return f"p99 {name} {value * 1e3:.1f} ms > {limit_ms:g} ms" if value * 1e3 > limit_ms else None


def saturated(row: dict[str, Any], saturation: float) -> str | None:
    """Why the server was over-saturated in this cell, or None."""
    offered, achieved = row.get("offered_rate_per_s"), row.get("achieved_rate_per_s")
    if offered and achieved is not None and achieved < saturation * offered:
        return (
            f"over-saturated: achieved {achieved:.3g}/s < {saturation:g} x offered {offered:.3g}/s"
        )
    if row.get("queue_growing") is True:
        return "over-saturated: the queue grows"
    return None


def judge(rows: list[dict[str, Any]], slo: Slo, saturation: float) -> tuple[bool, str, bool]:
    """(meets, why, over-saturated) of one probe's records (each repeat must meet)."""
    if not rows:
        return False, "no result", False
    reasons: list[str] = []
    sat = False
    for row in rows:
        if row.get("status") != "ok":
            reasons.append(f"status {row.get('status')}")
            continue
        reasons += [r for r in (
            _latency(row, "ttft_s_p99", slo.ttft_ms, "TTFT"),
            _latency(row, "tpot_s_p99", slo.tpot_ms, "TPOT"),
        ) if r]  # fmt: skip
        why = saturated(row, saturation)
        if why:
            sat = True
            reasons.append(why)
    reasons = list(dict.fromkeys(reasons))
    return not reasons, "; ".join(reasons) or "meets", sat


@dataclass
class Probe:
    value: float
    meets: bool
    why: str
    saturated: bool = False
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class Search:
    """One group's search; ``next_value()`` is None once it has its answer."""

    start: float
    rel_tol: float = 0.1
    integer: bool = False
    min_value: float = 0.0
    max_value: float = math.inf
    max_probes: int = 20
    predicted: bool = False  # the start is a prediction: the first step is small
    probes: list[Probe] = field(default_factory=list)
    status: str = "searching"

    @property
    def lo(self) -> float | None:
        ok = [p.value for p in self.probes if p.meets]
        return max(ok) if ok else None

    @property
    def hi(self) -> float | None:
        bad = [
            p.value for p in self.probes if not p.meets and (self.lo is None or p.value > self.lo)
        ]
        return min(bad) if bad else None

    def _round(self, v: float) -> float:
        if self.integer:
            return float(max(1, round(v)))
        return float(f"{v:.3g}")

    def _factor(self) -> float:
        """The k-th step of the bracketing: x2, or from a prediction (1 + 2 rel_tol)^(2^(k-1))
        (1.2, 1.44, 2.07 at rel_tol 0.1), at most x2."""
        k = len(self.probes) - 1
        if not self.predicted or k > 6:
            return 2.0
        return min(2.0, (1.0 + 2.0 * self.rel_tol) ** (2**k))

    def next_value(self) -> float | None:
        if self.status != "searching":
            return None
        if not self.probes:
            return self._round(self.start)
        lo, hi = self.lo, self.hi
        if lo is not None and hi is not None and self._close(lo, hi):
            return self._end("found")
        if len(self.probes) >= self.max_probes:
            return self._end("max_probes")
        if hi is None:  # everything met so far: up
            assert lo is not None
            v = self._round(lo * self._factor())
            v = max(v, lo + 1) if self.integer else v
            if v > self.max_value:  # the top itself is probed once
                return self._end("above_max") if lo >= self.max_value else self.max_value
            return v
        if lo is None:  # nothing met so far: down
            v = self._round(hi / self._factor())
            v = min(v, hi - 1) if self.integer else v
            return self._end("none_meets") if v < max(self.min_value, 1e-9) or v >= hi else v
        v = self._round((lo + hi) / 2)
        if not lo < v < hi:
            return self._end("found")
        return v

    def _close(self, lo: float, hi: float) -> bool:
        return hi - lo <= self.rel_tol * lo or (self.integer and hi - lo <= 1)

    def _end(self, status: str) -> None:
        self.status = status
        return None

    def add(self, probe: Probe) -> None:
        self.probes.append(probe)

    def answer(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "knee": self.lo,
            "bracket": [self.lo, self.hi],
            "probes": [asdict(p) for p in self.probes],
            "probe_count": len(self.probes),
        }


def pick(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result.get(k) for k in PROBE_KEYS if k in result}


__all__ = ["PROBE_KEYS", "Probe", "Search", "Slo", "judge", "pick", "saturated"]
