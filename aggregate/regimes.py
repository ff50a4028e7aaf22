"""The bottleneck table of report.md: per cell, the regime of prefill and of decode with the
fraction of the measured time its larger bound explains (the records' ``*_regime`` and
``*_bound_fraction_*`` keys, computed by the workers; rule in docs/trust.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aggregate.tables import MISSING, NOT_REPORTED, FailureNotes, Table, cell_map, marks

Record = dict[str, Any]

TITLE = "Bottleneck, prefill / decode (regime, larger bound / measured time), batch x seq"
SHORT = {"memory_bound": "memory", "compute_bound": "compute", "overhead_bound": "overhead"}


def phase_text(rec: Record, phase: str) -> str:
    """'memory 0.93': the regime and the larger of its bound fractions (2 significant digits:
    0.00046 on a CPU); n/a when absent."""
    regime = rec.get(f"{phase}_regime")
    fractions = [
        rec.get(f"{phase}_bound_fraction_{b}")
        for b in ("memory", "compute")
        if isinstance(rec.get(f"{phase}_bound_fraction_{b}"), (int, float))
    ]
    if not regime or not fractions:
        return NOT_REPORTED
    return f"{SHORT.get(regime, regime)} {max(fractions):.2g}"


def cell_text(rec: Record | None, notes: FailureNotes) -> str:
    if rec is None:
        return MISSING
    if rec.get("status") != "ok":
        return notes.ref(rec)
    return f"{phase_text(rec, 'prefill')} / {phase_text(rec, 'decode')}{marks(rec)}"


def regime_pivot(records: Sequence[Record], notes: FailureNotes) -> Table:
    cells = cell_map(records)
    seqs = sorted({s for _, s in cells})
    table = Table(["batch \\ seq", *(str(s) for s in seqs)])
    for b in sorted({b for b, _ in cells}):
        table.rows.append([str(b), *(cell_text(cells.get((b, s)), notes) for s in seqs)])
    return table


def has_regimes(records: Sequence[Record]) -> bool:
    return any(r.get("prefill_regime") or r.get("decode_regime") for r in records)
