"""The trend panel of report.html: the sweep's cells that have history in the results store.

Per cell with more than one run: an inline SVG sparkline of the figure over its runs (95%
intervals as whiskers, a regression's point red), the first and latest figures with their
commits, and the verdicts of the latest run against the previous and the first (the
`--baseline` rules, through aggregate/store/history.py). Self-contained: no script, no
resource loaded.
"""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Sequence
from typing import Any

from aggregate.store.db import read_rows
from aggregate.store.history import CellHistory, cell_key, histories
from aggregate.store.text import commit_text, fmt_value, step_text

log = logging.getLogger(__name__)

TITLE = "Trend (results store)"
W, H, PAD = 140, 30, 3


def sparkline(h: CellHistory, metric: str) -> str:
    """An inline SVG of the figure per run; whiskers: 95% intervals; red: a regression."""
    pts = []
    for i, run in enumerate(h.runs):
        value, iv = run.value(metric)
        bad = i > 0 and h.steps[i - 1].regression
        if value is not None:
            pts.append((i, value, iv.lo if iv else value, iv.hi if iv else value, bad))
    if not pts:
        return ""
    lo, hi = min(p[2] for p in pts), max(p[3] for p in pts)
    span = (hi - lo) or abs(hi) or 1.0
    n = max(len(h.runs) - 1, 1)

    def x(i: int) -> float:
        return PAD + (W - 2 * PAD) * i / n

    def y(v: float) -> float:
        return H / 2 if hi == lo else H - PAD - (H - 2 * PAD) * (v - lo) / span

    line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v, *_ in pts)
    parts = [f'<polyline fill="none" stroke="#555" stroke-width="1" points="{line}"/>']
    for i, v, a, b, bad in pts:
        colour = "#c62828" if bad else "#1565c0"
        if a != b:
            parts.append(f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{y(a):.1f}" '
                         f'y2="{y(b):.1f}" stroke="{colour}" stroke-width="1"/>')  # fmt: skip
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2" fill="{colour}"/>')
    label = html.escape(f"{metric} over {len(h.runs)} runs", quote=True)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" role="img" aria-label="{label}">{"".join(parts)}</svg>'
    )


def _cells(h: CellHistory, metric: str) -> list[str]:
    first, last = h.runs[0], h.runs[-1]
    out = [html.escape(h.label), str(len(h.runs)), sparkline(h, metric)]
    for run in (first, last):
        value, ci = fmt_value(run, metric)
        out.append(html.escape(f"{value} {ci if ci != '—' else ''}".strip()))
        out.append(f"<code>{html.escape(commit_text(run))}</code>")
    out.append(html.escape(step_text(h.steps[-1])))
    out.append(html.escape(step_text(h.overall or h.steps[-1])))
    return out


def panel_html(hs: Sequence[CellHistory], metric: str, db: str) -> str:
    head = ["cell", "runs", metric, "first", "commit", "latest", "commit",
            "latest vs previous", "latest vs first"]  # fmt: skip
    rows = []
    for h in hs:
        verdict = ' class="bad"' if h.latest_regression else ""
        cells = "".join(
            f"<td{verdict if i >= 7 else ''}>{c}</td>" for i, c in enumerate(_cells(h, metric))
        )
        sim = ' class="sim"' if "SIMULATED" in h.label else ""
        rows.append(f"<tr{sim}>{cells}</tr>")
    intro = (
        f"<p>Cells of this sweep with more than one run in <code>{html.escape(db)}</code>: "
        "the figure per run (whiskers: 95% intervals; red: a regression against the run "
        "before), judged by the rules of <code>--baseline</code>. Details: "
        "<code>python -m aggregate history --db DB</code>.</p>"
    )
    ths = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    return (
        f'{intro}<div class="scroll"><table><thead><tr>{ths}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def trend_panel(
    db: str | os.PathLike[str],
    records: Sequence[dict[str, Any]],
    metric: str = "output_tokens_per_s",
    threshold_pct: float = 5.0,
) -> tuple[str, str] | None:
    """(title, HTML) of the panel for ``records``' cells; None when none has history. Never
    raises: a store that cannot be read leaves the report without the panel (logged)."""
    try:
        wanted = {cell_key(r) for r in records}  # a set: a list made this quadratic
        rows = read_rows(db, identities=sorted(wanted), min_rows=2)  # a history needs 2 runs
        hs = [h for h in histories(rows, metric, threshold_pct) if h.key in wanted and h.steps]
    except Exception as exc:  # the report must not fail for its history
        log.warning("report.html: no trend panel (results store %s: %s)", db, exc)
        return None
    return (TITLE, panel_html(hs, metric, str(db))) if hs else None
