"""Service-level objectives: the largest load whose p99 latencies meet a budget.

An SLO is up to three budgets in milliseconds, each on a p99 of the records:
``ttft_ms`` on ``ttft_s_p99``, ``tpot_ms`` on ``tpot_s_p99``, ``e2e_ms`` on ``e2e_s_p99``.
A cell meets it when it is ok, not flagged ``above_bound``, reports every budgeted p99 and
each p99 is at most its budget.

Static sweeps: per (group, seq) (a group fixes model, backend, device, dtype and prompt
length) the answer is the largest batch that meets the SLO, with its output tokens/s per
card (divided by the devices one cell used). Serving sweeps (records with ``request_rate`` or
``concurrency``; ``workload == "serve"``): per (group, server settings, seq) the highest
load that meets it; the load is the
request rate when the sweep varies it (per concurrency), else the concurrency. A cell
measured several times is judged on the means over its repeats (aggregate/answers/confidence.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aggregate.answers.points import (
    has_serving_load,
    load_text,
    number,
    per_card,
    server_settings,
    usable,
)
from aggregate.tables import GroupKey, ok_number

Record = dict[str, Any]

# budget field -> (record key, label)
BUDGETS = {
    "ttft_ms": ("ttft_s_p99", "TTFT p99"),
    "tpot_ms": ("tpot_s_p99", "TPOT p99"),
    "e2e_ms": ("e2e_s_p99", "E2E p99"),
}


class SloError(ValueError):
    """An SLO budget that is not a positive number; the message names the setting."""


@dataclass(frozen=True)
class Slo:
    """Budgets in ms; None or 0 = no budget on that latency."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None

    def __post_init__(self) -> None:
        for name in BUDGETS:
            value = getattr(self, name)
            if value is None:
                continue
            v = number(value)
            if v is None or v < 0 or math.isinf(v):
                raise SloError(
                    f"slo.{name}={value!r} is not allowed: a number of milliseconds > 0 "
                    "(0 or null: no budget)"
                )
            object.__setattr__(self, name, v or None)

    def budgets(self) -> list[tuple[str, str, float]]:
        """(record key, label, budget in ms) of every budget that is set."""
        return [(*BUDGETS[n], getattr(self, n)) for n in BUDGETS if getattr(self, n)]

    def active(self) -> bool:
        return bool(self.budgets())

    def text(self) -> str:
        return ", ".join(f"{label} <= {ms:g} ms" for _, label, ms in self.budgets())

    def misses(self, rec: Record) -> list[str] | None:
        """[] when the cell meets every budget; the budgets it misses; None when it cannot
        be judged (not ok, above its bound, or a budgeted p99 not reported)."""
        if not usable(rec):
            return None
        out = []
        for key, label, ms in self.budgets():
            value = ok_number(rec, key)
            if value is None:
                return None
            if value * 1e3 > ms:
                out.append(f"{label} {value * 1e3:.3g} ms > {ms:g}")
        return out


@dataclass
class SloAnswer:
    kind: str  # "static" or "serving"
    group: GroupKey
    seq: Any
    axis: str  # the load that varies: "batch", "request_rate" or "concurrency"
    fixed: str  # what else this answer holds fixed ("" for static sweeps)
    cells: list[tuple[float, Record]] = field(default_factory=list)  # (load, rec), by load
    best: tuple[float, Record] | None = None  # the highest load meeting the SLO
    top_throughput: tuple[float, Record] | None = None  # most tok/s per card meeting it
    first_over: tuple[float, Record] | None = None  # the next load above `best`, missing it
    judged: int = 0
    meeting: int = 0

    def note(self, slo: Slo) -> str:
        if not self.cells:
            return "no cell"
        if self.best is None:
            load, rec = self.first_over or self.cells[0]
            why = "; ".join(slo.misses(rec) or ["not ok or not judged"])
            return f"no {self.axis} meets the SLO (smallest: {load_text(load)}, {why})"
        notes = []
        if self.first_over is not None:
            why = slo.misses(self.first_over[1])
            reason = "; ".join(why) if why else _not_judged(self.first_over[1])
            notes.append(f"{self.axis} {load_text(self.first_over[0])} misses it: {reason}")
        elif self.best[0] == self.cells[-1][0]:
            notes.append(f"the sweep's highest {self.axis} meets it: the limit lies above")
        top = self.top_throughput
        if top is not None and top[1] is not self.best[1]:
            notes.append(f"more tok/s per card at {self.axis} {load_text(top[0])}")
        return "; ".join(notes)


def _not_judged(rec: Record) -> str:
    if rec.get("status") != "ok":
        return str(rec.get("status")).upper()
    if not usable(rec):
        return "above its hardware bound"
    return "a budgeted p99 is not reported"


def _serving_axis(recs: Sequence[Record]) -> str:
    rates = {number(r.get("request_rate")) for r in recs} - {None}
    return "request_rate" if len(rates) > 1 else "concurrency"


def _buckets(records: Sequence[Record]) -> dict[tuple, list[Record]]:
    out: dict[tuple, list[Record]] = {}
    for rec in records:
        if has_serving_load(rec):
            key = ("serving", GroupKey.of(rec), server_settings(rec), rec.get("seq"))
        else:
            key = ("static", GroupKey.of(rec), "", rec.get("seq"))
        out.setdefault(key, []).append(rec)
    return out


def _answer(kind: str, group: GroupKey, seq: Any, axis: str, fixed: str, recs: list, slo: Slo):
    ans = SloAnswer(kind, group, seq, axis, fixed)
    loaded = [(number(r.get(axis)), r) for r in recs]
    ans.cells = sorted(((v, r) for v, r in loaded if v is not None), key=lambda p: p[0])
    verdicts = [(v, r, slo.misses(r)) for v, r in ans.cells]
    meeting = [(v, r) for v, r, m in verdicts if m == []]
    ans.judged = sum(m is not None for _, _, m in verdicts)
    ans.meeting = len(meeting)
    if meeting:
        ans.best = max(meeting, key=lambda p: (p[0], per_card(p[1]) or 0.0))
        ans.top_throughput = max(meeting, key=lambda p: per_card(p[1]) or 0.0)
    floor = ans.best[0] if ans.best else -math.inf
    above = [(v, r) for v, r, m in verdicts if v > floor and m != []]
    ans.first_over = above[0] if above else None
    return ans


def slo_answers(records: Sequence[Record], slo: Slo) -> list[SloAnswer]:
    """One answer per (group, seq) of a static sweep and per (group, workload, seq[, fixed
    load]) of a serving sweep; [] when the SLO has no budget."""
    if not slo.active():
        return []
    out = []
    for (kind, group, settings, seq), recs in sorted(_buckets(records).items(), key=_order):
        if kind == "static":
            out.append(_answer(kind, group, seq, "batch", "", recs, slo))
            continue
        axis = _serving_axis(recs)
        other = "concurrency" if axis == "request_rate" else "request_rate"
        subsets: dict[str, list[Record]] = {}
        for r in recs:
            subsets.setdefault(load_text(number(r.get(other))), []).append(r)
        for value, sub in sorted(subsets.items()):
            fixed = f"server {settings}" + ("" if value == "?" else f", {other} {value}")
            out.append(_answer(kind, group, seq, axis, fixed, sub, slo))
    return out


def _order(item: tuple) -> tuple:
    (kind, group, settings, seq), _ = item
    return (kind != "static", group, settings, seq if isinstance(seq, int) else -1)


def _record_budget(rec: Record, name: str) -> float | None:
    flat = number(rec.get(f"slo_{name}"))
    if flat is None:
        config = rec.get("config") if isinstance(rec.get("config"), dict) else {}
        slo = config.get("slo") if isinstance(config.get("slo"), dict) else {}
        flat = number(slo.get(name))
    return flat or None


def records_slo(records: Sequence[Record]) -> Slo:
    """The SLO the records were run with (``slo_ttft_ms`` / ``slo_tpot_ms``, or ``slo`` in
    their config), for each budget that those setting it agree on; none where they differ."""
    found = {}
    for name in ("ttft_ms", "tpot_ms"):
        values = {_record_budget(r, name) for r in records} - {None}
        found[name] = values.pop() if len(values) == 1 else None
    return Slo(**found)
