"""The out-of-memory frontier: per group and generated length, the largest batch that ran
and the smallest that ran out of memory.

"Ran" is status ok (a cell above its bound ran too; it is marked); "did not" is status
``oom``. A cell that failed for another reason says nothing about memory: it is listed
apart. Static sweeps only (records with a batch and no serving load).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aggregate.answers.points import has_serving_load
from aggregate.tables import GroupKey, is_simulated

Record = dict[str, Any]


@dataclass
class FrontierRow:
    group: GroupKey
    seq: int
    status: dict[int, str] = field(default_factory=dict)  # batch -> ok | oom | failed
    above_bound: set[int] = field(default_factory=set)  # batches that ran above the bound
    simulated: bool = False

    @property
    def largest_ok(self) -> int | None:
        ok = [b for b, s in self.status.items() if s == "ok"]
        return max(ok) if ok else None

    @property
    def smallest_oom(self) -> int | None:
        oom = [b for b, s in self.status.items() if s == "oom"]
        return min(oom) if oom else None

    @property
    def failed(self) -> list[int]:
        return sorted(b for b, s in self.status.items() if s not in ("ok", "oom"))

    def note(self) -> str:
        ok, oom = self.largest_ok, self.smallest_oom
        batches = sorted(self.status)
        if oom is None:
            return f"no OOM up to batch {batches[-1]}: the frontier lies above"
        if ok is None:
            return f"OOM already at batch {oom}, the smallest tried"
        if ok > oom:
            return f"not monotonic: batch {ok} ran above an OOM at batch {oom}"
        between = [b for b in batches if ok < b < oom]
        if between:
            return f"between batch {ok} and {oom} (untested or failed: {between})"
        return f"between batch {ok} and {oom}"


def _status(rec: Record) -> str:
    s = rec.get("status")
    return s if s in ("ok", "oom") else "failed"


def _rank(rec: Record) -> tuple:
    # Several records of one (batch, seq): ok first, then oom, then the latest finished.
    return ({"ok": 2, "oom": 1}.get(_status(rec), 0), str(rec.get("finished_at") or ""))


def oom_frontier(records: Sequence[Record]) -> list[FrontierRow]:
    """One row per (group, seq) of the static records, by group and seq."""
    best: dict[tuple[GroupKey, int, int], Record] = {}
    for rec in records:
        b, s = rec.get("batch"), rec.get("seq")
        if has_serving_load(rec) or not isinstance(b, int) or not isinstance(s, int):
            continue
        key = (GroupKey.of(rec), s, b)
        if key not in best or _rank(rec) > _rank(best[key]):
            best[key] = rec
    rows: dict[tuple[GroupKey, int], FrontierRow] = {}
    for (group, seq, batch), rec in sorted(best.items()):
        row = rows.setdefault((group, seq), FrontierRow(group, seq))
        row.status[batch] = _status(rec)
        row.simulated = row.simulated or is_simulated(rec)
        if row.status[batch] == "ok" and "above_bound" in (rec.get("flags") or []):
            row.above_bound.add(batch)
    return list(rows.values())
