"""Per-card results of a fleet sweep and the outlier rule (docs/fleet.md).

A fleet record is one cell measured on one card (``fleet_of``: the cell's id). For every
cell, over the cards that measured it ok, with x = output tokens/s:

    z = (x - median) / max(1.4826 * MAD, 0.005 * median),   MAD = median(|x - median|)

A card is ``slow_card`` when z < -3.5 for any cell (robust z-score, Iglewicz and Hoaglin;
only the slow side: a fast card is not a fault). The floor of 0.5 % of the median keeps a
fleet of identical cards (MAD = 0, e.g. the simulator without noise) from flagging a card a
rounding error away. Fewer than 3 cards measuring a cell: no z for that cell. A card is
``leaked_memory`` when a cell started on memory left behind (``memory_leftover_bytes`` over
the health tolerance: flag ``dirty_start``), ``throttled`` when a cell was.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Record = dict[str, Any]

MAD_SCALE = 1.4826
Z_LIMIT = 3.5
MAD_FLOOR = 0.005  # of the median
MIN_CARDS = 3
METRIC = "output_tokens_per_s"
SLOW, LEAKED, THROTTLED = "slow_card", "leaked_memory", "throttled"


def robust_z(values: Sequence[float]) -> list[float | None]:
    """The robust z-score of each value (rule above); None for all when too few values."""
    if len(values) < MIN_CARDS:
        return [None] * len(values)
    med = statistics.median(values)
    mad = statistics.median(abs(v - med) for v in values)
    scale = max(MAD_SCALE * mad, MAD_FLOOR * abs(med))
    if scale <= 0:
        return [0.0] * len(values)
    return [(v - med) / scale for v in values]


def node_of(rec: Record) -> str:
    """The node as fleet tables name it: its index in the cluster, else its host."""
    if rec.get("node_index") is not None:
        return str(rec["node_index"])
    return str(rec.get("node") or (rec.get("ray_node_id") or "?")[:8])


def card_of(rec: Record) -> str:
    return str(rec.get("visible_devices") or "?")


@dataclass
class Card:
    """One card of the fleet: where it is, its results per cell and what it was flagged."""

    node: str
    card: str
    serial: str | None = None
    ratios: dict[str, float] = field(default_factory=dict)  # cell -> x / the cell's median
    z: dict[str, float] = field(default_factory=dict)  # cell -> robust z
    leaked_bytes: int = 0
    throttle: list[str] = field(default_factory=list)
    failed: int = 0
    flags: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        """The card's throughput relative to its peers: the median over cells."""
        return statistics.median(self.ratios.values()) if self.ratios else None

    @property
    def min_z(self) -> float | None:
        return min(self.z.values()) if self.z else None


def fleet_records(records: Sequence[Record]) -> list[Record]:
    return [r for r in records if r.get("fleet_of")]


def _health(card: Card, rec: Record) -> None:
    card.serial = card.serial or rec.get("device_serial")
    flags = rec.get("flags") or []
    if "dirty_start" in flags:
        card.leaked_bytes = max(card.leaked_bytes, int(rec.get("memory_leftover_bytes") or 0))
        if LEAKED not in card.flags:
            card.flags.append(LEAKED)
    if "throttled" in flags or rec.get("throttle_reasons"):
        card.throttle += [t for t in rec.get("throttle_reasons") or [] if t not in card.throttle]
        if THROTTLED not in card.flags:
            card.flags.append(THROTTLED)
    if rec.get("status") != "ok":
        card.failed += 1


def cards(records: Sequence[Record]) -> list[Card]:
    """Every card of the fleet records, sorted by node and card, with the rule applied."""
    out: dict[tuple[str, str], Card] = {}
    by_cell: dict[str, list[tuple[Card, float]]] = {}
    for rec in fleet_records(records):
        key = (node_of(rec), card_of(rec))
        card = out.setdefault(key, Card(*key))
        _health(card, rec)
        x = rec.get(METRIC)
        if rec.get("status") == "ok" and isinstance(x, (int, float)):
            by_cell.setdefault(str(rec["fleet_of"]), []).append((card, float(x)))
    for cell, pairs in by_cell.items():
        values = [x for _, x in pairs]
        med = statistics.median(values)
        for (card, x), z in zip(pairs, robust_z(values), strict=True):
            if med > 0:
                card.ratios[cell] = x / med
            if z is not None:
                card.z[cell] = z
                if z < -Z_LIMIT and SLOW not in card.flags:
                    card.flags.insert(0, SLOW)
    return sorted(out.values(), key=lambda c: (num_key(c.node), num_key(c.card)))


def num_key(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def flagged(fleet: Sequence[Card], flag: str) -> list[Card]:
    return [c for c in fleet if flag in c.flags]


__all__ = ["Card", "cards", "fleet_records", "flagged", "num_key", "robust_z"]
