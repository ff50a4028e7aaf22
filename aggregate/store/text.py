"""History as text: one Markdown table per cell, the verdicts, and the commits between runs."""

from __future__ import annotations

from collections.abc import Sequence

from aggregate.store.history import CellHistory, Run, Step
from aggregate.tables import MISSING, Table, markdown

MAX_COMMITS = 8  # commits listed per step (the rest counted)


def fmt_value(run: Run, metric: str) -> tuple[str, str]:
    """(the run's figure, its 95% interval as ±% and n) or MISSING / its status."""
    value, iv = run.value(metric)
    if value is None:
        status = run.summary.get("status")
        return (MISSING if status == "ok" else str(status).upper()), MISSING
    ci = MISSING if iv is None or iv.half_pct is None else f"±{iv.half_pct:.1f}% (n={iv.n})"
    return f"{value:.4g}", ci


def commit_text(run: Run) -> str:
    commit = run.commit
    text = commit[:10] if commit else MISSING
    return text + (" (dirty)" if run.env("git_dirty") else "")


def step_text(step: Step | None) -> str:
    if step is None:
        return MISSING
    delta = MISSING if step.delta_pct is None else f"{step.delta_pct:+.1f}%"
    how = f" ({step.method})" if step.method else ""
    return f"{delta} {step.verdict}{how}"


def commits_text(step: Step | None) -> str:
    if step is None or step.commits is None:
        return MISSING
    if not step.commits:
        return "none"
    shown = "; ".join(step.commits[:MAX_COMMITS])
    more = len(step.commits) - MAX_COMMITS
    return f"{len(step.commits)}: {shown}" + (f" (+{more} more)" if more > 0 else "")


def cell_markdown(h: CellHistory, metric: str) -> str:
    table = Table(["#", "finished", "commit", "host", "device", metric, "95% CI",
                   "vs previous", "commits between", "sweep"])  # fmt: skip
    for i, run in enumerate(h.runs):
        step = h.steps[i - 1] if i else None
        value, ci = fmt_value(run, metric)
        table.rows.append([
            str(i + 1), run.finished_at[:19] or MISSING, commit_text(run),
            str(run.env("host") or MISSING), str(run.summary.get("device_name") or MISSING),
            value, ci, step_text(step), commits_text(step), run.sweep_dir,
        ])  # fmt: skip
    lines = [f"## {h.label}", "", f"cell `{h.key}`, {len(h.runs)} run(s)", "", markdown(table)]
    if h.overall is not None:
        lines += ["", f"latest vs first: {step_text(h.overall)}"]
    notes = [n for s in h.steps for n in s.env_notes]
    if notes:
        lines += ["", *(f"- environment: {n}" for n in dict.fromkeys(notes))]
    return "\n".join(lines) + "\n"


def history_markdown(hs: Sequence[CellHistory], metric: str) -> str:
    """Every cell's table, then a count of the verdicts."""
    parts = ["# History from the results store", ""]
    parts += [cell_markdown(h, metric) for h in hs]
    parts.append(summary_line(hs))
    return "\n".join(parts) + "\n"


def summary_line(hs: Sequence[CellHistory]) -> str:
    compared = [h for h in hs if h.steps]
    steps = sum(s.regression for h in hs for s in h.steps)
    latest = sum(h.latest_regression for h in hs)
    return (
        f"history: {len(hs)} cell(s), {len(compared)} with more than one run; "
        f"{steps} regression(s) between consecutive runs; {latest} cell(s) whose latest run "
        "is a regression (against the previous or the first run)"
    )
