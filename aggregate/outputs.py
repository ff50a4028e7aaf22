"""Writing a sweep's outputs: results.jsonl, results.csv, report.md and plots (atomically)."""

from __future__ import annotations

import csv
import io
import json
import logging
import operator
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aggregate.answers.compute import Answers, compute_answers
from aggregate.answers.confidence import fold_repeats
from aggregate.answers.slo import Slo
from aggregate.quality import annotate, quality_section
from aggregate.reader import sort_key
from aggregate.render.answers import PARETO_CSV, SLO_CSV, answer_files, answer_sections
from aggregate.render.fleet import fleet_heatmap, fleet_section
from aggregate.render.html import REPORT_HTML, build_html
from aggregate.render.report import build_report
from aggregate.tables import error_text
from jobs.files import atomic_write_text
from jobs.record import FLAT_KEYS

log = logging.getLogger(__name__)

Record = dict[str, Any]

RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"
REPORT_MD = "report.md"
# Nested keys too bulky or too deep for one CSV row (they stay whole in results.jsonl).
_NOT_IN_CSV = ("raw", "config")
_SPECIAL = frozenset((*_NOT_IN_CSV, "error", "env"))  # keys csv_row does not take as they are


def results_jsonl(records: Sequence[Record]) -> str:
    """One whole record per line (raw values and config included)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _env_columns(env: dict[str, Any]) -> dict[str, str]:
    return {f"env_{k}": _scalar(v) for k, v in env.items() if not isinstance(v, (dict, list))}


def csv_row(rec: Record, envs: dict[int, dict[str, str]] | None = None) -> dict[str, str]:
    """Flat scalar columns: lists joined with ';', error as 'Type: message', env as env_*.
    ``envs``: the env_* columns of environments seen already, by the dict's id (the rows of
    a sweep share one dict per distinct environment; the caller keeps them alive)."""
    row: dict[str, str] = {}
    for key, value in rec.items():
        if key in _SPECIAL:
            if key == "error":
                row[key] = error_text(rec)
                continue
            if key == "env" and isinstance(value, dict):
                if envs is None:
                    row.update(_env_columns(value))
                else:
                    cols = envs.get(id(value))
                    if cols is None:
                        cols = envs[id(value)] = _env_columns(value)
                    row.update(cols)
                continue
            if key in _NOT_IN_CSV:
                continue
        kind = type(value)
        if kind is str:
            row[key] = value
        elif kind is int or kind is float:
            row[key] = str(value)
        elif value is None:
            row[key] = ""
        elif isinstance(value, list):
            if all(not isinstance(v, (dict, list)) for v in value):
                row[key] = ";".join(_scalar(v) for v in value)
        elif not isinstance(value, dict):
            row[key] = _scalar(value)
    return row


def results_csv(records: Sequence[Record]) -> str:
    """One row per record; the record's flat keys first in schema order (tokens/J and J/token
    next to throughput), then other columns in first-seen order, env_* columns last."""
    envs: dict[int, dict[str, str]] = {}
    rows = [csv_row(r, envs) for r in records]
    shapes = dict.fromkeys(tuple(row) for row in rows)  # the rows' distinct key orders, in
    seen = set().union(*shapes)  # the order first seen (a sweep's rows share a few)
    columns: dict[str, None] = dict.fromkeys(k for k in FLAT_KEYS if k in seen)
    for keys in shapes:
        columns.update(dict.fromkeys(k for k in keys if not k.startswith("env_")))
    for keys in shapes:
        columns.update(dict.fromkeys(k for k in keys if k.startswith("env_")))
    names = list(columns)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")  # what csv.DictWriter writes (restval ""),
    writer.writerow(names)  # each row's values picked in C: one getter per distinct key order
    getters: dict[tuple[str, ...], Any] = {}
    for row in rows:
        keys = tuple(row)
        get = getters.get(keys)
        if get is None:
            at = {k: i for i, k in enumerate(keys)}  # a column the row lacks: the "" after
            picks = [at.get(name, len(keys)) for name in names]  # its values
            get = getters[keys] = (
                operator.itemgetter(*picks)
                if len(picks) > 1
                else lambda v, p=picks: [v[i] for i in p]
            )
        writer.writerow(get([*row.values(), ""]))
    return buf.getvalue()


def write_outputs(
    sweep_dir: str | os.PathLike[str],
    records: Sequence[Record],
    unreadable: Sequence[tuple[str, str]] = (),
    plots: bool = True,
    jsonl: bool = True,
    *,
    slo_ttft_ms: float | None = None,
    slo_tpot_ms: float | None = None,
    slo_e2e_ms: float | None = None,
    reference: Sequence[Record] = (),
    trend_db: str | os.PathLike[str] | None = None,
) -> dict[str, str]:
    """Write every output file into ``sweep_dir``; returns {name relative to it: path}.
    ``jsonl=False``: the caller writes results.jsonl itself (a sweep streams it).
    ``slo_*_ms``: p99 budgets in ms (None or 0: none); with one set, slo.csv is written.
    results.* keep every record; the report, plots and answers see repeats folded into one
    summary per cell. Raises aggregate.answers.slo.SloError for a budget that is not a
    number >= 0 (before anything is written). ``reference``: records to take the
    output-agreement reference from (aggregate/quality.py; default: this sweep's own). ``trend_db``: a results store whose history of these
    cells report.html shows (aggregate/store/trend.py; none when it has no history of them)."""
    given = Slo(ttft_ms=slo_ttft_ms, tpot_ms=slo_tpot_ms, e2e_ms=slo_e2e_ms)
    return write_answered(sweep_dir, records, unreadable, plots, jsonl, given, reference, trend_db)[
        0
    ]


def write_answered(
    sweep_dir: str | os.PathLike[str],
    records: Sequence[Record],
    unreadable: Sequence[tuple[str, str]],
    plots: bool,
    jsonl: bool,
    given: Slo,
    reference: Sequence[Record] = (),
    trend_db: str | os.PathLike[str] | None = None,
) -> tuple[dict[str, str], Answers]:
    """:func:`write_outputs`, also returning the answers it computed (once) and rendered."""
    root = Path(sweep_dir)
    records = sorted(records, key=sort_key)
    compared = annotate(records, reference)  # + agreement: for results.csv and the report
    shown = fold_repeats(compared)
    answers = compute_answers(shown, given)
    extra = answer_files(answers)
    out: dict[str, str] = {}
    if jsonl:
        out[RESULTS_JSONL] = atomic_write_text(root / RESULTS_JSONL, results_jsonl(records))
    out[RESULTS_CSV] = atomic_write_text(root / RESULTS_CSV, results_csv(compared))
    figures: dict[str, str] = {}
    if plots:
        from aggregate.render.plots.static import write_plots  # matplotlib only when asked

        figures = write_plots(root, shown, answers)
    # the fleet compares every card, so it reads the records before repeats are folded
    sections = answer_sections(answers, figures) + quality_section(shown) + fleet_section(records)
    report = build_report(root, shown, unreadable, figures, sections, answers.slo)
    out[REPORT_MD] = atomic_write_text(root / REPORT_MD, report)
    panels = []
    if trend_db is not None and Path(trend_db).is_file():
        from aggregate.store.trend import trend_panel  # duckdb only with a store

        panels = [p for p in [trend_panel(trend_db, records)] if p]
    heatmap = fleet_heatmap(records)
    if heatmap:
        panels.insert(0, ("Fleet heatmap: relative output tokens/s per node and card", heatmap))
    out[REPORT_HTML] = atomic_write_text(root / REPORT_HTML, build_html(report, root, panels))
    for name, text in extra.items():
        out[name] = atomic_write_text(root / name, text)
    for stale in {SLO_CSV, PARETO_CSV} - set(extra):  # answers of an earlier run
        (root / stale).unlink(missing_ok=True)
    out.update(figures)
    log.debug("%s: wrote %s", root, ", ".join(out))
    return out, answers
