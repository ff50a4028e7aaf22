"""Repeats of a cell and their 95% confidence intervals.

Records of one cell measured several times carry ``repeat`` (0-based) and ``repeat_of`` (the
cell id without the repeat). :func:`fold_repeats` turns each such set into one summary
record: the metrics are the means over the ok repeats, and ``ci`` holds, per metric, a
two-sided 95% interval from Student's t distribution with n - 1 degrees of freedom:

    mean +- t(0.975, n - 1) * stdev / sqrt(n)      (stdev: the sample stdev, n - 1)

It treats each repeat as one independent draw of the cell's metric (the per-iteration
numbers inside a repeat are already summarised by it). Records without ``repeat_of`` pass
through unchanged.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aggregate.answers.points import number

Record = dict[str, Any]

LEVEL = 0.95
CI_KEY = "ci"
# Averaged only when every ok repeat's energy figure is valid (``energy_valid``).
ENERGY_KEYS = ("energy_j_per_output_token", "output_tokens_per_j", "energy_j", "power_w_mean")
# Metrics averaged over repeats and given an interval (when every ok repeat reports them).
CI_METRICS = (
    "output_tokens_per_s", "total_tokens_per_s", "samples_per_s",
    "e2e_s_mean", "e2e_s_p50", "e2e_s_p90", "e2e_s_p99",
    "ttft_s_mean", "ttft_s_p50", "ttft_s_p99", "tpot_s_mean", "tpot_s_p50", "tpot_s_p99",
    "itl_s_p50", "itl_s_p99", "e2e_cv", "peak_memory_bytes",
    "output_tokens_per_s_per_card", "output_tokens_per_s_per_user", "request_throughput_per_s",
    "goodput_requests_per_s", *ENERGY_KEYS,
)  # fmt: skip


def _two_sided_mass(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:
        term = total = 1.0
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return s * total
    if df == 1:
        return 2.0 * theta / math.pi
    term = total = math.cos(theta)
    for k in range(1, (df - 1) // 2):
        term *= c2 * (2 * k) / (2 * k + 1)
        total += term
    return 2.0 / math.pi * (theta + s * total)


def t_quantile(df: int, level: float = LEVEL) -> float:
    """t such that P(|T| < t) = ``level`` (two-sided), for Student's t with ``df`` >= 1."""
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"degrees of freedom {df!r} must be a whole number >= 1")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level {level!r} must be in (0, 1)")
    lo, hi = 0.0, 1.0
    while _two_sided_mass(hi, df) < level:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if _two_sided_mass(mid, df) < level else (lo, mid)
        if hi - lo < 1e-12 * hi:
            break
    return (lo + hi) / 2.0


@dataclass(frozen=True)
class Interval:
    mean: float
    lo: float
    hi: float
    n: int
    stdev: float

    @property
    def half_pct(self) -> float | None:
        """Half the width as a percentage of the mean."""
        return (self.hi - self.mean) / abs(self.mean) * 100.0 if self.mean else None

    def contains(self, value: float) -> bool:
        return self.lo <= value <= self.hi

    def overlaps(self, other: Interval) -> bool:
        return self.lo <= other.hi and other.lo <= self.hi


def interval(values: Sequence[float], level: float = LEVEL) -> Interval | None:
    """The t interval of the mean of ``values``; None for fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    mean = statistics.fmean(values)
    sd = statistics.stdev(values)
    half = t_quantile(n - 1, level) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, sd)


def interval_of(rec: Record | None, key: str) -> Interval | None:
    """The interval a folded record carries for ``key``, if any."""
    ci = (rec or {}).get(CI_KEY)
    item = ci.get(key) if isinstance(ci, dict) else None
    if not isinstance(item, dict):
        return None
    try:
        return Interval(**{k: item[k] for k in ("mean", "lo", "hi", "n", "stdev")})
    except (KeyError, TypeError):
        return None


def _repeat_index(rec: Record) -> int:
    r = rec.get("repeat")
    return r if isinstance(r, int) and not isinstance(r, bool) else 1 << 30


def _summary(reps: list[Record]) -> Record:
    reps = sorted(reps, key=lambda r: (_repeat_index(r), str(r.get("finished_at") or "")))
    ok = [r for r in reps if r.get("status") == "ok"]
    base = dict(ok[0] if ok else reps[-1])
    base.update(cell_id=base.get("repeat_of"), repeat=None, repeats=len(reps), repeats_ok=len(ok))
    base["flags"] = list(dict.fromkeys(f for r in reps for f in (r.get("flags") or [])))
    if any("energy_valid" in r for r in ok):
        base["energy_valid"] = all(r.get("energy_valid") is True for r in ok)
    ci: dict[str, dict[str, Any]] = {}
    for key in CI_METRICS:
        values = [number(r.get(key)) for r in ok]
        if not ok or any(v is None or math.isinf(v) for v in values):
            continue
        if key in ENERGY_KEYS and base.get("energy_valid") is not True:
            continue
        base[key] = statistics.fmean(values)  # type: ignore[arg-type]
        iv = interval(values)  # type: ignore[arg-type]
        if iv is not None:
            ci[key] = asdict(iv)
    base[CI_KEY] = ci or None
    return base


def repeat_sets(records: Iterable[Record]) -> dict[str, list[Record]]:
    """repeat_of -> its records, for records that carry a ``repeat_of``."""
    sets: dict[str, list[Record]] = {}
    for rec in records:
        key = rec.get("repeat_of")
        if isinstance(key, str) and key:
            sets.setdefault(key, []).append(rec)
    return sets


def fold_repeats(records: Sequence[Record]) -> list[Record]:
    """One record per cell: the repeats of a cell become their summary (means, ``ci``), in
    the place of the first of them; every other record is kept as it is."""
    sets = repeat_sets(records)
    out: list[Record] = []
    for rec in records:
        key = rec.get("repeat_of")
        if not (isinstance(key, str) and key):
            out.append(rec)
        elif key in sets:
            out.append(_summary(sets.pop(key)))
    return out


# --- comparing two sweeps with intervals ------------------------------------------------

# What a comparison judges: (key, higher is better).
CALLED = (
    ("output_tokens_per_s", True),
    ("e2e_s_p50", False),
    ("energy_j_per_output_token", False),  # only where both energy figures are valid
)


@dataclass(frozen=True)
class CiCall:
    """A comparison of two ok cells judged by their intervals."""

    worse: bool  # a judged metric moved the bad way, beyond the intervals and the threshold
    better: bool  # ... the good way
    keys: tuple[str, ...]  # the metrics that had an interval on at least one side


def beyond_intervals(new: Record, old: Record, key: str) -> bool | None:
    """Whether the change of ``key`` lies outside the intervals: both sides have one, they
    do not overlap; one side has one, the other side's value is outside it. None when
    neither side has an interval for ``key``."""
    a, b = interval_of(new, key), interval_of(old, key)
    new_v, old_v = number(new.get(key)), number(old.get(key))
    if a is not None and b is not None:
        return not a.overlaps(b)
    if a is not None and old_v is not None:
        return not a.contains(old_v)
    if b is not None and new_v is not None:
        return not b.contains(new_v)
    return None


def ci_call(new: Record, old: Record, threshold_pct: float) -> CiCall | None:
    """Judge two ok cells by their intervals: a change counts when it lies outside the
    intervals and is larger than ``threshold_pct``; None when neither has an interval."""
    worse = better = False
    keys = []
    for key, higher_is_better in CALLED:
        both_valid = new.get("energy_valid") is True and old.get("energy_valid") is True
        if key in ENERGY_KEYS and not both_valid:
            continue
        beyond = beyond_intervals(new, old, key)
        if beyond is None:
            continue
        keys.append(key)
        new_v, old_v = number(new.get(key)), number(old.get(key))
        if not beyond or new_v is None or not old_v:
            continue
        delta = (new_v - old_v) / old_v * 100.0
        if abs(delta) > threshold_pct:
            if (delta > 0) == higher_is_better:
                better = True
            else:
                worse = True
    return CiCall(worse, better and not worse, tuple(keys)) if keys else None
