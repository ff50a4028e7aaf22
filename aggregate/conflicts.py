"""Two configurations of one table position, named: never merged silently.

A directory's report holds every readable record under it (docs/aggregate.md). After a sweep
re-ran into its directory with other values, two cells with different ids (different
settings: another bench, another simulator setting, ...) can land on one position of a
table: the same group, batch (serving: load) and seq. The tables show one of them per
position; :func:`conflicts` names every such position and its cells, so the report and the
console say it, and results.jsonl / results.csv keep both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aggregate.serving import ServingKey, is_serving, load_label
from aggregate.tables import GroupKey

Record = dict[str, Any]


def identity(rec: Record) -> str:
    """What makes two records the same measurement: the cell without its repeat index."""
    return str(rec.get("repeat_of") or rec.get("cell_id"))


def position(rec: Record) -> tuple[Any, ...]:
    """Where the record lands in the report's tables."""
    if is_serving(rec):
        return ("serve", ServingKey.of(rec), load_label(rec))
    return ("static", GroupKey.of(rec), rec.get("batch"), rec.get("seq"))


def position_label(pos: tuple[Any, ...]) -> str:
    if pos[0] == "serve":
        return f"{pos[1].label()}, load {pos[2]}"
    return f"{pos[1].label()}, batch {pos[2]}, seq {pos[3]}"


def conflicts(records: Iterable[Record]) -> list[tuple[tuple[Any, ...], list[Record]]]:
    """Positions with records of two or more different cells: (position, one record per
    cell, latest finished last)."""
    by_pos: dict[tuple[Any, ...], dict[str, Record]] = {}
    for rec in records:
        cells = by_pos.setdefault(position(rec), {})
        old = cells.get(identity(rec))
        if old is None or str(rec.get("finished_at") or "") >= str(old.get("finished_at") or ""):
            cells[identity(rec)] = rec
    out = []
    for pos, cells in by_pos.items():
        if len(cells) > 1:
            recs = sorted(cells.values(), key=lambda r: str(r.get("finished_at") or ""))
            out.append((pos, recs))
    return out


def conflict_lines(records: Sequence[Record]) -> list[str]:
    """One line per position that two configurations share ([] when none)."""
    lines = []
    for pos, recs in conflicts(records):
        dirs = ", ".join(f"`{r.get('cell_dir') or r.get('cell_id')}`" for r in recs)
        lines.append(
            f"{position_label(pos)}: {len(recs)} configurations of this cell ({dirs}); "
            "the tables show one (an ok one, then the latest finished), results.csv has all"
        )
    return lines


def conflict_section(records: Sequence[Record]) -> list[str]:
    """The report's note on positions that two configurations share ([] when none)."""
    lines = conflict_lines(records)
    if not lines:
        return []
    return [
        "## Two configurations of one cell",
        "",
        "This directory holds records of cells that differ in their settings but land on the "
        "same table position (e.g. a sweep re-ran into it with other values). They are not "
        "merged: each position below names its cells.",
        "",
        *(f"- {line}" for line in lines),
        "",
    ]
