"""The throughput-vs-latency front: output tokens/s per card against tokens/s per sequence.

Each usable cell (ok, not above its bound, reporting TPOT and tokens/s) is a point:
x = 1 / TPOT mean (how fast one sequence's tokens arrive, tokens/s), y = output tokens/s of
the cell / its devices. Both are better higher. A point is dominated when another point of
the same workload is at least as good on both and better on one; the others form the front.
Points are compared over batch sizes, backends, devices, dtypes and settings, within one
workload: the same model, prompt length and generated length (and serving workload); a
simulated point is never compared with a measured one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aggregate.answers.points import (
    has_serving_load,
    load_text,
    number,
    per_card,
    server_settings,
    usable,
)
from aggregate.answers.points import tokens_per_s_per_sequence as per_sequence
from aggregate.tables import SIMULATED, is_simulated

Record = dict[str, Any]


@dataclass(frozen=True, order=True)
class Workload:
    model: str
    prompt_len: int
    seq: int
    workload: str  # "serve" for serving records, "" for static ones
    simulated: bool

    @classmethod
    def of(cls, rec: Record) -> Workload:
        p, s = rec.get("prompt_len"), rec.get("seq")
        return cls(
            str(rec.get("model")),
            p if isinstance(p, int) else -1,
            s if isinstance(s, int) else -1,
            "serve" if has_serving_load(rec) else "",
            is_simulated(rec),
        )

    def label(self) -> str:
        parts = [self.model, f"prompt {self.prompt_len}", f"seq {self.seq}"]
        if self.workload:
            parts.append("serving")
        return " · ".join(parts) + (f" — {SIMULATED}" if self.simulated else "")


@dataclass
class Point:
    rec: Record
    x: float  # tokens/s per sequence
    y: float  # output tokens/s per card
    label: str = ""
    dominated_by: Point | None = None

    @property
    def on_front(self) -> bool:
        return self.dominated_by is None


Fronts = dict[Workload, list[Point]]  # workload -> its points, by tokens/s per sequence


def _label(rec: Record) -> str:
    parts = [str(rec.get(k)) for k in ("backend", "device", "dtype")]
    if has_serving_load(rec):
        parts[0] = server_settings(rec).replace(" ", "_")
    elif rec.get("batch") is not None:
        parts.append(f"b{rec['batch']}")
    for key, tag in (("concurrency", "c"), ("request_rate", "r")):
        value = number(rec.get(key))
        if value is not None:
            parts.append(f"{tag}{load_text(value)}")
    return " ".join(parts)


def mark_front(points: list[Point]) -> list[Point]:
    """Sets ``dominated_by`` (the dominating point with the most tokens/s per card, then per
    sequence; the first such in ``points``); returns the front sorted by tokens/s per
    sequence.

    One sweep in O(n log n), by falling tokens/s per sequence: the best point (most y, then
    most x) among those at least as fast per sequence as p dominates p unless it sits where p
    does, and no dominating point is better (a point at NaN compares false: it neither
    dominates nor is dominated, as with the pairwise rule)."""
    for p in points:
        p.dominated_by = None
    order = sorted(
        (i for i, p in enumerate(points) if p.x == p.x and p.y == p.y), key=lambda i: -points[i].x
    )
    best: tuple[float, float, int] | None = None  # (y, x, -index) of the best point so far
    start = 0
    while start < len(order):
        end, x = start, points[order[start]].x
        while end < len(order) and points[order[end]].x == x:  # every point at this x first
            p = points[order[end]]
            if best is None or (p.y, p.x, -order[end]) > best:
                best = (p.y, p.x, -order[end])
            end += 1
        assert best is not None
        top = points[-best[2]]
        for i in order[start:end]:
            p = points[i]
            if (top.y, top.x) != (p.y, p.x):
                p.dominated_by = top
        start = end
    return sorted((p for p in points if p.on_front), key=lambda p: (p.x, -p.y))


def pareto_points(records: Sequence[Record]) -> Fronts:
    """Workload -> its points (dominated ones marked), by tokens/s per sequence."""
    out: dict[Workload, list[Point]] = {}
    for rec in records:
        x, y = per_sequence(rec), per_card(rec)
        if usable(rec) and x is not None and y is not None:
            out.setdefault(Workload.of(rec), []).append(Point(rec, x, y, _label(rec)))
    for points in out.values():
        seen: dict[str, int] = {}
        for p in points:
            seen[p.label] = seen.get(p.label, 0) + 1
        for p in points:  # same axes, other settings: tell them apart by the cell's id
            if seen[p.label] > 1:
                p.label += f" [{str(p.rec.get('cell_id') or '')[:8]}]"
        points.sort(key=lambda p: (p.x, -p.y))
        mark_front(points)
    return dict(sorted(out.items()))
