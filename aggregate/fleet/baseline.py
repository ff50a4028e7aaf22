"""A fleet run against an earlier one (``python -m aggregate NEW --baseline OLD``): the cards
that got slower since. Each card (node, card id) is compared with itself, cell by cell,
through the sweep compare (aggregate/baseline/compare.py: its threshold and noise band)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aggregate.baseline.compare import CompareRow, compare
from aggregate.fleet.cards import card_of, fleet_records, node_of

Record = dict[str, Any]


@dataclass
class SlowerCard:
    node: str
    card: str
    serial: str | None
    row: CompareRow  # the cell that got slower on this card


def _by_card(records: Sequence[Record]) -> dict[tuple[str, str], list[Record]]:
    """Fleet records per card, each as its cell (the copy index is not the card's)."""
    out: dict[tuple[str, str], list[Record]] = {}
    for rec in fleet_records(records):
        cell = {**rec, "cell_id": rec["fleet_of"], "repeat": None, "repeat_of": None}
        out.setdefault((node_of(rec), card_of(rec)), []).append(cell)
    return out


def slower_cards(
    new: Sequence[Record], old: Sequence[Record], threshold_pct: float
) -> list[SlowerCard]:
    """Every (card, cell) of both fleet runs whose compare verdict is a regression."""
    old_cards = _by_card(old)
    out = []
    for key, recs in sorted(_by_card(new).items()):
        if key not in old_cards:
            continue
        rows, _ = compare(recs, old_cards[key], threshold_pct)
        serial = next((r.get("device_serial") for r in recs if r.get("device_serial")), None)
        out += [SlowerCard(*key, serial, r) for r in rows if r.regression]
    return out


def slower_lines(slower: Sequence[SlowerCard]) -> list[str]:
    """The compare.md section (empty when no card got slower)."""
    if not slower:
        return []
    lines = ["## Fleet: cards slower than the baseline", "",
             "| node | card | serial | cell | old tok/s | new tok/s | change |",
             "|---|---:|---|---|---:|---:|---:|"]  # fmt: skip
    for s in slower:
        r = s.row
        lines.append(
            f"| {s.node} | {s.card} | {s.serial or 'n/a'} | {r.label} b{r.batch} s{r.seq} | "
            f"{_f(r.old_tokens_per_s)} | {_f(r.new_tokens_per_s)} | "
            f"{_f(r.tokens_per_s_delta_pct)}% |"
        )
    return [*lines, ""]


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}"


__all__ = ["SlowerCard", "slower_cards", "slower_lines"]
