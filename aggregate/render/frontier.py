"""The out-of-memory frontier in the report (the frontier itself: answers/frontier.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aggregate.answers.frontier import FrontierRow
from aggregate.render.plots.names import FRONTIER_FIGURE
from aggregate.tables import MISSING, SIMULATED, Table, markdown


def frontier_section(rows: Sequence[FrontierRow], figures: Mapping[str, str]) -> list[str]:
    if not rows:
        return []
    lines = ["### Out-of-memory frontier", ""]
    if not any(r.smallest_oom is not None for r in rows):
        largest = sorted({r.largest_ok for r in rows if r.largest_ok is not None})
        shown = ", ".join(str(b) for b in largest) or MISSING
        return lines + [f"No cell ran out of memory; largest batch that ran: {shown}.", ""]
    lines += [
        "Per group and generated length: the largest batch that ran (ok) and the smallest "
        "that ran out of memory (`oom`); cells that failed otherwise are listed apart.",
        "",
    ]
    table = Table(["group", "seq", "largest batch ran", "smallest batch OOM",
                   "failed (not OOM)", "frontier"])  # fmt: skip
    for r in rows:
        ok = r.largest_ok
        ran = MISSING if ok is None else str(ok) + (" †" if ok in r.above_bound else "")
        oom = r.smallest_oom
        table.rows.append(
            [
                r.group.label() + (f" ({SIMULATED})" if r.simulated else ""),
                str(r.seq),
                ran,
                MISSING if oom is None else str(oom),
                ", ".join(str(b) for b in r.failed) or MISSING,
                r.note(),
            ]  # fmt: skip
        )
    lines += [markdown(table), ""]
    if FRONTIER_FIGURE in figures:
        lines += [f"![out-of-memory frontier]({FRONTIER_FIGURE})", ""]
    return lines
