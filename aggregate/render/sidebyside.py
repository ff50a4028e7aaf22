"""Side-by-side tables when a sweep spans two or more backends, devices, models or dtypes.

For each axis, groups that agree on every other group field are put next to each other,
per (batch, seq), with ratios against a reference value (hf for backends, cpu for devices,
otherwise the first name in sort order): e.g. sglang/hf output tokens/s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aggregate.tables import (
    MISSING,
    NOT_REPORTED,
    Metric,
    Table,
    cell_map,
    fmt_s,
    fmt_tps,
    group_records,
    marks,
    ok_number,
    sim_suffix,
    status_label,
)

Record = dict[str, Any]

AXES = ("backend", "device", "model", "dtype")
_FIELDS = ("model", "backend", "device", "dtype", "prompt_len")
_PREFERRED_REFERENCE = {"backend": "hf", "device": "cpu"}
_COMPARED = (
    Metric("output tok/s", "output_tokens_per_s", fmt_tps),
    Metric("E2E p50 s", "e2e_s_p50", fmt_s),
)


@dataclass
class SideBySide:
    axis: str  # the group field that differs, e.g. "backend"
    values: list[str]  # its values, the reference first
    fixed: dict[str, Any]  # the group fields all columns share
    table: Table
    simulated: bool

    def title(self) -> str:
        others = ", ".join(f"{k} {v}" for k, v in self.fixed.items())
        sim = " — SIMULATED" if self.simulated else ""
        return f"{self.axis}: {' vs '.join(self.values)} ({others}){sim}"


def _value(rec: Record | None, metric: Metric) -> str:
    if rec is None:
        return MISSING
    if rec.get("status") != "ok":
        return status_label(rec)
    value = ok_number(rec, metric.key)
    return NOT_REPORTED if value is None else metric.fmt(value) + marks(rec)


def _ratio(new: float | None, ref: float | None) -> str:
    if new is None or ref is None or ref <= 0:
        return MISSING
    return f"{new / ref:.2f}x"


def _order(axis: str, values: list[str]) -> list[str]:
    values = sorted(values)
    ref = _PREFERRED_REFERENCE.get(axis)
    if ref in values:
        values.remove(ref)
        values.insert(0, ref)
    return values


def _build(axis: str, fixed: dict[str, Any], by_value: dict[str, list[Record]]) -> SideBySide:
    values = _order(axis, list(by_value))
    ref = values[0]
    cells = {v: cell_map(recs) for v, recs in by_value.items()}
    headers = ["batch", "seq"]
    for m in _COMPARED:
        headers += [f"{m.title} {v}" for v in values]
        headers += [f"{m.title} {v}/{ref}" for v in values[1:]]
    table = Table(headers)
    for b, s in sorted({bs for c in cells.values() for bs in c}):
        row = [str(b), str(s)]
        for m in _COMPARED:
            row += [_value(cells[v].get((b, s)), m) for v in values]
            ref_num = ok_number(cells[ref].get((b, s)), m.key)
            row += [_ratio(ok_number(cells[v].get((b, s)), m.key), ref_num) for v in values[1:]]
        table.rows.append(row)
    all_recs = [r for recs in by_value.values() for r in recs]
    return SideBySide(axis, values, fixed, table, bool(sim_suffix(all_recs)))


def side_by_side(records: Sequence[Record]) -> list[SideBySide]:
    """Every comparison the sweep allows; empty when it has one group per axis value."""
    groups = group_records(records)
    out = []
    for axis in AXES:
        buckets: dict[tuple, dict[str, list[Record]]] = {}
        for key, recs in groups.items():
            fixed = tuple((f, getattr(key, f)) for f in _FIELDS if f != axis)
            buckets.setdefault(fixed, {})[getattr(key, axis)] = recs
        for fixed, by_value in sorted(buckets.items()):
            if len(by_value) >= 2:
                out.append(_build(axis, dict(fixed), by_value))
    return out
