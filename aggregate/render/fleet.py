"""The fleet part of the report: a table per card and per node (report.md) and a node x card
heatmap (report.html, inline SVG). The rule that flags a card: aggregate/fleet/cards.py."""

from __future__ import annotations

import html
import statistics
from collections.abc import Sequence
from typing import Any

from aggregate.fleet.cards import LEAKED, MAD_FLOOR, SLOW, THROTTLED, Z_LIMIT, Card, cards, num_key

Record = dict[str, Any]
MIB = 2**20
RULE = (
    f"A card is `{SLOW}` when its output tokens/s in some cell has a robust z-score "
    f"(x - median) / max(1.4826 x MAD, {MAD_FLOOR:g} x median) below -{Z_LIMIT:g} among the "
    "cards that ran that cell (docs/fleet.md)."
)


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def _serial(c: Card, simulated: bool) -> str:
    return c.serial or ("n/a (simulated)" if simulated else "n/a")


def card_table(fleet: Sequence[Card], simulated: bool) -> list[str]:
    lines = ["| node | card | serial | relative tok/s | min z | leaked MiB | throttle | flags |",
             "|---|---:|---|---:|---:|---:|---|---|"]  # fmt: skip
    for c in fleet:
        leaked = f"{c.leaked_bytes / MIB:.0f}" if c.leaked_bytes else "0"
        lines.append(
            f"| {c.node} | {c.card} | {_serial(c, simulated)} | {_fmt(c.ratio, '.3f')} | "
            f"{_fmt(c.min_z, '.1f')} | {leaked} | {'; '.join(c.throttle) or '-'} | "
            f"{', '.join(c.flags) or '-'} |"
        )
    return lines


def node_table(fleet: Sequence[Card]) -> list[str]:
    lines = ["| node | cards | median relative tok/s | slow | leaked | throttled |",
             "|---|---:|---:|---|---|---|"]  # fmt: skip
    nodes: dict[str, list[Card]] = {}
    for c in fleet:
        nodes.setdefault(c.node, []).append(c)
    for node, cs in nodes.items():
        ratios = [c.ratio for c in cs if c.ratio is not None]
        med = statistics.median(ratios) if ratios else None

        def named(flag: str, cs: list[Card] = cs) -> str:
            return ", ".join(c.card for c in cs if flag in c.flags) or "-"

        lines.append(
            f"| {node} | {len(cs)} | {_fmt(med, '.3f')} | {named(SLOW)} | {named(LEAKED)} | "
            f"{named(THROTTLED)} |"
        )
    return lines


def fleet_section(records: Sequence[Record]) -> list[str]:
    """The report's `## Fleet` section; [] without fleet records."""
    fleet = cards(records)
    if not fleet:
        return []
    simulated = any(r.get("simulated") for r in records if r.get("fleet_of"))
    n_nodes = len({c.node for c in fleet})
    lines = [f"## Fleet: {len(fleet)} cards on {n_nodes} node(s)", "", RULE, "",
             "Relative tok/s: the card's output tokens/s over the median card's, median over "
             "cells.", ""]  # fmt: skip
    for flag in (SLOW, LEAKED, THROTTLED):
        bad = [c for c in fleet if flag in c.flags]
        names = ", ".join(f"node {c.node} card {c.card} ({_serial(c, simulated)})" for c in bad)
        lines.append(f"- `{flag}`: {names or 'none'}")
    lines += ["", "### Per card", "", *card_table(fleet, simulated), ""]
    lines += ["### Per node", "", *node_table(fleet), ""]
    return lines


def _colour(ratio: float | None) -> str:
    """Green at 1.0 (the median card) to red at 0.5 or below; grey without a figure."""
    if ratio is None:
        return "#cccccc"
    t = max(0.0, min(1.0, (1.0 - ratio) / 0.5))
    return f"rgb({int(60 + 190 * t)},{int(170 - 110 * t)},80)"


def fleet_heatmap(records: Sequence[Record]) -> str:
    """A node x card heatmap of relative tok/s as inline SVG ('' without fleet records);
    marks: S slow_card, L leaked_memory, T throttled."""
    fleet = cards(records)
    if not fleet:
        return ""
    nodes = list(dict.fromkeys(c.node for c in fleet))
    slots = list(dict.fromkeys(c.card for c in sorted(fleet, key=lambda c: num_key(c.card))))
    w, h, left, top = 64, 40, 70, 24
    parts = [f'<svg class="fleet-heatmap" xmlns="http://www.w3.org/2000/svg" role="img" '
             f'width="{left + w * len(slots)}" height="{top + h * len(nodes) + 20}" '
             'aria-label="relative output tokens/s per node and card">']  # fmt: skip
    for j, card in enumerate(slots):
        parts.append(f'<text x="{left + j * w + w / 2}" y="16" text-anchor="middle">'
                     f"card {html.escape(card)}</text>")  # fmt: skip
    for i, node in enumerate(nodes):
        y = top + i * h
        parts.append(f'<text x="4" y="{y + h / 2 + 4}">node {html.escape(node)}</text>')
        for j, card in enumerate(slots):
            c = next((c for c in fleet if c.node == node and c.card == card), None)
            parts.append(_square(c, left + j * w, y, w, h))
    parts.append(f'<text x="4" y="{top + h * len(nodes) + 16}">relative tok/s; S slow_card, '
                 "L leaked_memory, T throttled</text></svg>")  # fmt: skip
    return "".join(parts)


def _square(c: Card | None, x: int, y: int, w: int, h: int) -> str:
    if c is None:
        return f'<rect x="{x}" y="{y}" width="{w - 2}" height="{h - 2}" fill="#eeeeee"/>'
    marks = "".join(m for m, f in (("S", SLOW), ("L", LEAKED), ("T", THROTTLED)) if f in c.flags)
    title = f"node {c.node} card {c.card}: {_fmt(c.ratio, '.3f')} {', '.join(c.flags)}"
    return (
        f'<g class="fleet-card" data-node="{html.escape(c.node)}" data-card="{html.escape(c.card)}"'
        f' data-flags="{" ".join(c.flags)}"><title>{html.escape(title)}</title>'
        f'<rect x="{x}" y="{y}" width="{w - 2}" height="{h - 2}" fill="{_colour(c.ratio)}"/>'
        f'<text x="{x + w / 2}" y="{y + h / 2 + 4}" text-anchor="middle">'
        f"{_fmt(c.ratio, '.2f')} {marks}</text></g>"
    )


__all__ = ["fleet_heatmap", "fleet_section"]
