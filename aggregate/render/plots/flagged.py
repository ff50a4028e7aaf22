"""Flagged points in plots: a cell whose numbers carry a flag (unstable, host_busy, ...) is
drawn with a distinct marker over its point and named in the legend, as the tables mark it.

``simulated`` is not marked here: a figure with simulated cells says so in its title.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aggregate.tables import FLAG_MARKS, UNKNOWN_FLAG_MARK, flags_of

Record = dict[str, Any]
_NOT_MARKED = {"simulated"}


def shown_flags(rec: Record) -> list[str]:
    """The flags a plot marks on this record's point."""
    return [f for f in flags_of(rec) if f not in _NOT_MARKED]


def mark_flagged(ax: Any, points: Iterable[tuple[float, float, Record]]) -> bool:
    """Ring every flagged point of (x, y, record) and put one legend entry naming the flags
    (with their table marks); returns whether any point was flagged."""
    flagged = [(x, y, shown_flags(r)) for x, y, r in points if shown_flags(r)]
    if not flagged:
        return False
    names = sorted({f for _, _, flags in flagged for f in flags})
    label = "flagged: " + ", ".join(f"{f} {FLAG_MARKS.get(f, UNKNOWN_FLAG_MARK)}" for f in names)
    ax.scatter(
        [x for x, _, _ in flagged],
        [y for _, y, _ in flagged],
        s=140,
        facecolors="none",
        edgecolors="red",
        linewidths=1.6,
        zorder=5,
        label=label + " (see report)",
    )
    for x, y, flags in flagged:
        text = "".join(FLAG_MARKS.get(f, UNKNOWN_FLAG_MARK) for f in flags)
        ax.annotate(text, (x, y), xytext=(5, 5), textcoords="offset points", color="red")
    return True
