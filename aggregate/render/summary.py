"""The console summary printed at the end of a sweep: one line per cell, grouped."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aggregate.conflicts import conflict_lines
from aggregate.reader import sort_key
from aggregate.render.energy import fmt_tokens_per_j
from aggregate.serving import load_label
from aggregate.tables import (
    NOT_REPORTED,
    SIMULATED,
    energy_state_text,
    error_text,
    flags_of,
    group_records,
    is_simulated,
    status_label,
)

_HEAD = f"{'batch':>6} {'seq':>6}  {'status':<7} {'out tok/s':>11} {'e2e p50 s':>10} "
_HEAD += f"{'ttft ms':>9} {'tpot ms':>9} {'tok/J':>10}  flags"


def _num(value: Any, scale: float, spec: str, width: int) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"{NOT_REPORTED:>{width}}"
    return f"{value * scale:>{width}{spec}}"


def _tokens_per_j(rec: dict[str, Any]) -> str:
    """Output tokens per joule where the record's energy is valid (the tables' one format);
    'no source' where there was none to measure with, 'invalid' where the figure failed."""
    if rec.get("energy_valid") is False:
        return f"{energy_state_text(rec):>10}"
    value = rec.get("output_tokens_per_j") if rec.get("energy_valid") is True else None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"{NOT_REPORTED:>10}"
    return f"{fmt_tokens_per_j(value):>10}"


def _load(rec: dict[str, Any]) -> str:
    """The batch (serving: load) of the line; a repeat's index after it (4/r1, 4/r2, ...)."""
    rep = rec.get("repeat")
    label = load_label(rec)
    return f"{label}/r{rep + 1}" if isinstance(rep, int) and not isinstance(rep, bool) else label


def _line(rec: dict[str, Any]) -> str:
    status = "ok" if rec.get("status") == "ok" else status_label(rec)
    ok = status == "ok"
    flags = ",".join(flags_of(rec))
    if not ok:
        flags = (flags + "  " if flags else "") + error_text(rec, limit=60)
    return (
        f"{_load(rec):>6} {rec['seq']:>6}  {status:<7} "
        f"{_num(rec.get('output_tokens_per_s') if ok else None, 1, '.1f', 11)} "
        f"{_num(rec.get('e2e_s_p50') if ok else None, 1, '.4f', 10)} "
        f"{_num(rec.get('ttft_s_mean') if ok else None, 1e3, '.3f', 9)} "
        f"{_num(rec.get('tpot_s_mean') if ok else None, 1e3, '.3f', 9)} "
        f"{_tokens_per_j(rec) if ok else _num(None, 1, '', 10)}  {flags}"
    ).rstrip()


def summary_table(records: Sequence[dict[str, Any]]) -> str:
    """Compact text: a header per (model, backend, device, dtype, prompt) group, then a
    line per cell (repeats labelled /r1../rN) with batch, seq, status, output tok/s, E2E p50, TTFT, TPOT, output tokens
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
    clash = conflict_lines(records)
    if clash:
        lines.append("two configurations of one cell (not merged; report.md names them):")
        lines += [f"  {line}" for line in clash]
    return "\n".join(lines).rstrip()
