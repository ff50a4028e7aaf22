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

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aggregate.points import (
    devices_per_cell,
    is_serving,
    load_text,
    number,
    per_card,
    server_settings,
    usable,
)
from aggregate.points import tokens_per_s_per_sequence as per_sequence
from aggregate.tables import SIMULATED, Table, is_simulated, markdown, marks

Record = dict[str, Any]

PARETO_FIGURE = "plots/pareto.png"


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
            "serve" if is_serving(rec) else "",
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


def _label(rec: Record) -> str:
    parts = [str(rec.get(k)) for k in ("backend", "device", "dtype")]
    if is_serving(rec):
        parts[0] = server_settings(rec).replace(" ", "_")
    elif rec.get("batch") is not None:
        parts.append(f"b{rec['batch']}")
    for key, tag in (("concurrency", "c"), ("request_rate", "r")):
        value = number(rec.get(key))
        if value is not None:
            parts.append(f"{tag}{load_text(value)}")
    return " ".join(parts)


def _dominates(a: Point, b: Point) -> bool:
    return a.x >= b.x and a.y >= b.y and (a.x > b.x or a.y > b.y)


def mark_front(points: list[Point]) -> list[Point]:
    """Sets ``dominated_by`` (the dominating point with the most tokens/s per card); returns
    the front sorted by tokens/s per sequence."""
    for p in points:
        better = [q for q in points if _dominates(q, p)]
        p.dominated_by = max(better, key=lambda q: (q.y, q.x)) if better else None
    return sorted((p for p in points if p.on_front), key=lambda p: (p.x, -p.y))


def pareto_points(records: Sequence[Record]) -> dict[Workload, list[Point]]:
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


def pareto_section(records: Sequence[Record], figures: Mapping[str, str]) -> list[str]:
    fronts = pareto_points(records)
    if not fronts:
        return []
    lines = [
        "### Pareto front: output tokens/s per card vs tokens/s per sequence",
        "",
        "Tokens/s per sequence = 1 / TPOT mean; tokens/s per card = output tokens/s / devices "
        "per cell. Only the points no other point beats on both are listed, per workload; "
        "every point, dominated ones with the cell that dominates them, is in `pareto.csv`.",
        "",
    ]
    table = Table(["workload", "point", "tok/s per seq", "TPOT mean ms", "out tok/s per card",
                   "devices"])  # fmt: skip
    for work, points in fronts.items():
        front = [p for p in points if p.on_front]
        for p in front:
            table.rows.append(
                [
                    work.label(),
                    p.label + marks(p.rec),
                    f"{p.x:.1f}",
                    f"{1e3 / p.x:.3f}",
                    f"{p.y:.1f}",
                    str(devices_per_cell(p.rec)),
                ]  # fmt: skip
            )
    n_points = sum(len(p) for p in fronts.values())
    n_front = len(table.rows)
    lines += [markdown(table), "", f"{n_front} of {n_points} points on a front; "
              f"{n_points - n_front} dominated.", ""]  # fmt: skip
    if PARETO_FIGURE in figures:
        lines += [f"![Pareto front]({PARETO_FIGURE})", ""]
    return lines


PARETO_COLUMNS = (
    "model", "prompt_len", "seq", "workload", "simulated", "backend", "device", "dtype",
    "batch", "concurrency", "request_rate", "tokens_per_s_per_sequence", "tpot_ms_mean",
    "output_tokens_per_s", "devices_per_cell", "output_tokens_per_s_per_device", "on_front",
    "dominated_by", "cell_dir", "flags",
)  # fmt: skip


def _csv_row(work: Workload, p: Point) -> dict[str, str]:
    r = p.rec
    by = p.dominated_by
    return {
        "model": work.model, "prompt_len": str(work.prompt_len), "seq": str(work.seq),
        "workload": work.workload, "simulated": str(work.simulated).lower(),
        **{k: "" if r.get(k) is None else str(r.get(k))
           for k in ("backend", "device", "dtype", "batch", "concurrency", "request_rate")},
        "tokens_per_s_per_sequence": f"{p.x:.3f}", "tpot_ms_mean": f"{1e3 / p.x:.4f}",
        "output_tokens_per_s": str(r.get("output_tokens_per_s")),
        "devices_per_cell": str(devices_per_cell(r)),
        "output_tokens_per_s_per_device": f"{p.y:.3f}", "on_front": str(p.on_front).lower(),
        "dominated_by": "" if by is None else str(by.rec.get("cell_dir") or by.label),
        "cell_dir": str(r.get("cell_dir") or ""), "flags": ";".join(r.get("flags") or []),
    }  # fmt: skip


def pareto_csv(records: Sequence[Record]) -> str:
    """pareto.csv: every point, its workload, whether it is on the front; '' when none."""
    fronts = pareto_points(records)
    if not fronts:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(PARETO_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for work, points in fronts.items():
        writer.writerows(_csv_row(work, p) for p in points)
    return buf.getvalue()
