"""Energy in reports: the tokens/J and J/token pivots, and why cells have no valid figure.

An energy number is shown only when its record says ``energy_valid: true``; a cell whose
figure failed its validity rules shows ``invalid``, one without any energy source (or a
serving cell, whose energy is not measured) ``no source``; the group lists the reasons
(``energy_invalid_reasons``, meanings in jobs/record.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from aggregate.tables import Metric, ok_number
from jobs.record import ENERGY_REASON_MEANINGS

Record = dict[str, Any]


def fmt_tokens_per_j(v: float) -> str:
    """One format for every tokens/J figure (tables and the console): three decimals."""
    return f"{v:.3f}"


def fmt_j(v: float) -> str:
    return f"{v:.3g}"


TOKENS_PER_J = Metric("Output tokens/J", "output_tokens_per_j", fmt_tokens_per_j, "energy_valid")
J_PER_TOKEN = Metric(
    "Energy per output token (J)", "energy_j_per_output_token", fmt_j, "energy_valid"
)
ENERGY_METRICS = (TOKENS_PER_J, J_PER_TOKEN)


def valid_number(rec: Record | None, key: str) -> float | None:
    """An energy number of an ok record whose energy is valid; None otherwise."""
    if rec is None or rec.get("energy_valid") is not True:
        return None
    return ok_number(rec, key)


def _reasons(rec: Record) -> list[str]:
    value = rec.get("energy_invalid_reasons")
    if isinstance(value, str):
        return [r for r in value.split(";") if r]
    return [str(r) for r in value or []]


def _details(rec: Record) -> str:
    block = rec.get("energy")
    details = block.get("details") if isinstance(block, dict) else None
    return str(details[0]) if isinstance(details, list) and details else ""


def energy_notes(records: Sequence[Record]) -> list[str]:
    """Lines for a group: the sources used, and how many ok cells have no valid figure, why."""
    ok = [r for r in records if r.get("status") == "ok"]
    if not ok:
        return []
    sources = Counter(str(r.get("energy_source") or "none") for r in ok)
    valid = sum(r.get("energy_valid") is True for r in ok)
    used = ", ".join(f"`{s}` ({n})" for s, n in sorted(sources.items()))
    lines = [f"Energy: {valid} of {len(ok)} ok cells have a valid figure; sources {used}."]
    if "simulated" in sources:
        lines.append(
            "Simulated energy comes from the simulator's power model (device TDP and idle "
            "power), not from a measurement."
        )
    counts: Counter[str] = Counter()
    example: dict[str, str] = {}
    for r in ok:
        if r.get("energy_valid") is True:
            continue
        for reason in _reasons(r) or ["not_reported"]:
            counts[reason] += 1
            example.setdefault(reason, _details(r))
    for reason, n in sorted(counts.items()):
        meaning = ENERGY_REASON_MEANINGS.get(reason, "no energy keys in the record")
        detail = f" (e.g. {example[reason]})" if example.get(reason) else ""
        lines.append(f"- `{reason}` in {n} cell(s): {meaning}{detail}")
    return lines
