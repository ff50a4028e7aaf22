"""Every answer of one output run, computed once: ``compute_answers(folded records, SLO)``.

The report, the HTML report, slo.csv, pareto.csv and the plots all render this one
``Answers``; none of them computes an answer again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aggregate.answers.frontier import FrontierRow, oom_frontier
from aggregate.answers.pareto import Fronts, pareto_points
from aggregate.answers.slo import Slo, SloAnswer, records_slo, slo_answers

Record = dict[str, Any]


@dataclass(frozen=True)
class Answers:
    """The answers of one set of records (repeats already folded)."""

    slo: Slo  # the SLO judged: the one given, else the one the records ran with (may be none)
    slo_answers: tuple[SloAnswer, ...]  # () when ``slo`` has no budget
    pareto: Fronts  # workload -> its points, dominated ones marked
    frontier: tuple[FrontierRow, ...]  # per (group, seq) of the static records
    repeats: tuple[Record, ...]  # the records that summarise several repeats of a cell


def judged_slo(records: Sequence[Record], given: Slo) -> Slo:
    """The SLO given; with none given, the one the records were run with (if any)."""
    return given if given.active() else records_slo(records)


def compute_answers(records: Sequence[Record], given: Slo | None = None) -> Answers:
    """Every answer of ``records`` (repeats folded: aggregate.answers.confidence), judged
    against ``given`` (else the SLO the records were run with)."""
    slo = judged_slo(records, given or Slo())
    return Answers(
        slo=slo,
        slo_answers=tuple(slo_answers(records, slo)),
        pareto=pareto_points(records),
        frontier=tuple(oom_frontier(records)),
        repeats=tuple(r for r in records if isinstance(r.get("repeats"), int)),
    )
