"""The "Answers" part of report.md and its CSV files, slo.csv and pareto.csv, rendered from
one computed ``Answers`` (aggregate/answers/compute.py): SLO limits, the Pareto front, the
out-of-memory frontier and the repeats' confidence intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aggregate.answers.compute import Answers, compute_answers
from aggregate.answers.pareto import pareto_points
from aggregate.answers.slo import Slo
from aggregate.render.frontier import frontier_section
from aggregate.render.pareto import pareto_csv, pareto_section
from aggregate.render.repeats import repeats_section
from aggregate.render.slo import slo_csv, slo_section

Record = dict[str, Any]

SLO_CSV = "slo.csv"
PARETO_CSV = "pareto.csv"


def answer_sections(answers: Answers, figures: Mapping[str, str] | None = None) -> list[str]:
    """The "Answers" part of report.md; [] when there is nothing to answer. ``figures``:
    the PNGs drawn (relative path -> file), linked when there."""
    figures = figures or {}
    body = slo_section(answers.slo_answers, answers.slo)
    body += pareto_section(answers.pareto, figures)
    body += frontier_section(answers.frontier, figures)
    body += repeats_section(answers.repeats)
    return ["## Answers", "", *body] if body else []


def answer_files(answers: Answers) -> dict[str, str]:
    """{file name: text}: slo.csv when an SLO is set, pareto.csv when there are points."""
    out = {}
    if answers.slo.active():
        out[SLO_CSV] = slo_csv(answers.slo_answers, answers.slo)
    pareto = pareto_csv(answers.pareto)
    if pareto:
        out[PARETO_CSV] = pareto
    return out


# For a caller holding only records (a notebook, a test): compute, then render. The outputs
# of a sweep (aggregate/outputs.py) compute once and render that.


def answer_sections_of(
    records: Sequence[Record],
    figures: Mapping[str, str] | None = None,
    *,
    slo_ttft_ms: float | None = None,
    slo_tpot_ms: float | None = None,
    slo_e2e_ms: float | None = None,
) -> list[str]:
    """:func:`answer_sections` of ``records`` (repeats already folded). Raises SloError for
    a budget that is not a number >= 0."""
    given = Slo(ttft_ms=slo_ttft_ms, tpot_ms=slo_tpot_ms, e2e_ms=slo_e2e_ms)
    return answer_sections(compute_answers(records, given), figures)


def pareto_csv_of(records: Sequence[Record]) -> str:
    """pareto.csv of ``records`` ('' when no point)."""
    return pareto_csv(pareto_points(records))
