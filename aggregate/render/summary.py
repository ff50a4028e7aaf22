"""The console summary printed at the end of a sweep: one line per cell, grouped."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aggregate.reader import sort_key
from aggregate.serving import load_label
from aggregate.tables import (
    NOT_REPORTED,
    NOT_VALID,
    SIMULATED,
    error_text,
    flags_of,
    group_records,
    is_simulated,
    status_label,
)

_HEAD = f"{'batch':>6} {'seq':>6}  {'status':<7} {'out tok/s':>11} {'e2e p50 s':>10} "
_HEAD += f"{'ttft ms':>9} {'tpot ms':>9} {'tok/J':>8}  flags"


def _num(value: Any, scale: float, spec: str, width: int) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"{NOT_REPORTED:>{width}}"
    return f"{value * scale:>{width}{spec}}"


def _tokens_per_j(rec: dict[str, Any]) -> str:
    """Output tokens per joule where the record's energy is valid; 'invalid' where it is not."""
    if rec.get("energy_valid") is False:
        return f"{NOT_VALID:>8}"
    value = rec.get("output_tokens_per_j") if rec.get("energy_valid") is True else None
    return _num(value, 1, ".3g", 8)


def _line(rec: dict[str, Any]) -> str:
    status = "ok" if rec.get("status") == "ok" else status_label(rec)
    ok = status == "ok"
    flags = ",".join(flags_of(rec))
    if not ok:
        flags = (flags + "  " if flags else "") + error_text(rec, limit=60)
    return (
        f"{load_label(rec):>6} {rec['seq']:>6}  {status:<7} "
        f"{_num(rec.get('output_tokens_per_s') if ok else None, 1, '.1f', 11)} "
        f"{_num(rec.get('e2e_s_p50') if ok else None, 1, '.4f', 10)} "
        f"{_num(rec.get('ttft_s_mean') if ok else None, 1e3, '.3f', 9)} "
        f"{_num(rec.get('tpot_s_mean') if ok else None, 1e3, '.3f', 9)} "
        f"{_tokens_per_j(rec) if ok else _num(None, 1, '', 8)}  {flags}"
    ).rstrip()


def summary_table(records: Sequence[dict[str, Any]]) -> str:
    """Compact text: a header per (model, backend, device, dtype, prompt) group, then a
    line per cell with batch, seq, status, output tok/s, E2E p50, TTFT, TPOT, output tokens
    per joule (valid figures only) and flags."""
    if not records:
        return "no records"
    lines: list[str] = []
    for key, recs in group_records(sorted(records, key=sort_key)).items():
        sim = any(is_simulated(r) for r in recs)
        n_ok = sum(r.get("status") == "ok" for r in recs)
        tag = f"  [{SIMULATED}: not measurements]" if sim else ""
        lines.append(f"{key.label()}  ({n_ok}/{len(recs)} ok){tag}")
        lines.append(_HEAD)
        lines += [_line(r) for r in recs]
        lines.append("")
    return "\n".join(lines).rstrip()
