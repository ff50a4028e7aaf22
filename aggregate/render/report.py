"""report.md: overview, one block per group, side-by-side comparisons, environment."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aggregate.answers.slo import Slo
from aggregate.conflicts import conflict_section
from aggregate.knee import knee_section
from aggregate.regimes import TITLE as REGIME_TITLE
from aggregate.regimes import has_regimes, regime_pivot
from aggregate.render.energy import ENERGY_METRICS, energy_notes
from aggregate.render.plots.names import COMPARE_FIGURE, GROUP_FIGURES, plot_name
from aggregate.render.serving_tables import serving_section
from aggregate.render.sidebyside import side_by_side
from aggregate.serving import split
from aggregate.tables import (
    MISSING,
    NOT_REPORTED,
    PIVOT_METRICS,
    SIMULATED,
    FailureNotes,
    GroupKey,
    Table,
    article_batch_sweep,
    article_stress,
    cell_map,
    duplicate_count,
    group_records,
    is_simulated,
    legend,
    markdown,
    pivot,
    sim_suffix,
)

Record = dict[str, Any]

# Throughput first, then energy per token next to it, then latency and memory.
PIVOTS = (PIVOT_METRICS[0], *ENERGY_METRICS, *PIVOT_METRICS[1:])

# Environment keys in the order people look for them; other keys follow alphabetically.
_ENV_ORDER = (
    "host", "platform", "python", "cpu_count", "git_commit", "cann",
    "torch", "transformers", "torch_npu", "sglang", "ray", "hydra_core",
)  # fmt: skip


def _header(sweep_dir: str, records: Sequence[Record], unreadable: Sequence) -> list[str]:
    status = Counter(str(r.get("status")) for r in records)
    n_sim = sum(is_simulated(r) for r in records)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(status.items()))
    lines = [f"# Benchmark report: `{Path(sweep_dir).resolve().name}`", ""]
    if n_sim:
        lines += [
            f"> **{SIMULATED}**: {n_sim} of {len(records)} cells come from the simulator. "
            "Their numbers are model outputs, not measurements.",
            "",
        ]
    lines += [
        f"{len(records)} cells ({counts or 'none'}); {len(unreadable)} unreadable record "
        "file(s). Built by `python -m aggregate` from the `record.json` files of this "
        "directory; `results.jsonl` and `results.csv` hold every record.",
        "",
        f"Conventions: `{MISSING}` = cell not in the sweep; `{NOT_REPORTED}` = metric not "
        "reported; `FAILED [n]` / `OOM [n]` = cell did not finish, reason n below the "
        "group's tables. Latency = E2E time of one `generate` call for the whole batch; "
        "throughput = generated tokens / measured seconds. Energy = joules of the measured "
        "window (docs/energy.md); tokens/J and J/token count generated tokens, `invalid` = "
        "the figure failed its validity rules (reasons under each group).",
        "",
    ]
    return lines


def _best(recs: Sequence[Record]) -> str:
    ok = [r for r in recs if r.get("status") == "ok" and r.get("output_tokens_per_s")]
    if not ok:
        return MISSING
    r = max(ok, key=lambda r: r["output_tokens_per_s"])
    return f"{r['output_tokens_per_s']:.1f} (b{r['batch']} s{r['seq']})"


def _overview(groups: Mapping[GroupKey, list[Record]]) -> list[str]:
    table = Table(["group", "cells", "ok", "failed", "oom", "flagged", "best output tok/s"])
    for key, recs in groups.items():
        st = Counter(r.get("status") for r in recs)
        flagged = sum(bool(r.get("flags")) for r in recs)
        table.rows.append(
            [
                key.label() + sim_suffix(recs),
                *(str(n) for n in (len(recs), st["ok"], st["failed"], st["oom"], flagged)),
                _best(recs),
            ]
        )
    return ["## Overview", "", markdown(table), ""]


def _group(key: GroupKey, recs: Sequence[Record], plots: Mapping[str, str]) -> list[str]:
    sim = sim_suffix(recs)
    notes = FailureNotes(list(cell_map(recs).values()))
    lines = [f"## {key.label()}{sim}", ""]
    if sim:
        lines += [f"**{SIMULATED}: these numbers are not measurements.**", ""]
    seq, sweep = article_batch_sweep(recs, notes)
    lines += [f"### Batch sweep at seq {seq} (article table 1){sim}", "", markdown(sweep), ""]
    lines += [
        f"### Stress matrix (article table 2){sim}",
        "",
        "Average latency = mean E2E over measured iterations; average throughput = "
        "generated tokens / measured seconds.",
        "",
        markdown(article_stress(recs, notes)),
        "",
    ]
    for metric in PIVOTS:
        lines += [f"### {metric.title}, batch x seq{sim}", "", markdown(pivot(recs, metric, notes))]
        lines.append("")
    if has_regimes(recs):
        lines += [f"### {REGIME_TITLE}{sim}", "", markdown(regime_pivot(recs, notes)), ""]
    energy = energy_notes(recs)
    if energy:
        lines += [*energy, ""]
    if notes.lines():
        lines += ["Cells that did not finish:", ""] + [f"- {n}" for n in notes.lines()] + [""]
    hidden = duplicate_count(recs)
    if hidden:
        lines += [
            f"{hidden} record(s) share a (batch, seq) with another; tables show the ok, "
            "latest-finished one. All are in results.csv.",
            "",
        ]
    links = [plot_name(key, f) for f in GROUP_FIGURES if plot_name(key, f) in plots]
    if links:
        lines += [f"### Plots{sim}", ""] + [f"![{Path(p).stem}]({p})" for p in links] + [""]
    return lines


def _side_by_side(records: Sequence[Record], plots: Mapping[str, str]) -> list[str]:
    comparisons = side_by_side(records)
    if not comparisons:
        return []
    lines = [
        "## Side by side",
        "",
        "Ratios are against the first value named; for tokens/s above 1.00x is faster, "
        "for E2E latency above 1.00x is slower.",
        "",
    ]
    for c in comparisons:
        lines += [f"### {c.title()}", "", markdown(c.table), ""]
    if COMPARE_FIGURE in plots:
        lines += [f"![output tokens/s of every group]({COMPARE_FIGURE})", ""]
    return lines


def _unreadable(sweep_dir: str, unreadable: Sequence[tuple[str, str]]) -> list[str]:
    if not unreadable:
        return []
    lines = ["## Unreadable records", "", "These files are not in any table:", ""]
    for path, reason in unreadable:
        try:  # relative to the sweep when inside it, as given otherwise
            shown = Path(path).resolve().relative_to(Path(sweep_dir).resolve()).as_posix()
        except (ValueError, OSError):
            shown = path
        lines.append(f"- `{shown}`: {reason}")
    return lines + [""]


def _distinct(values: list[Any]) -> str:
    counts = Counter("none" if v is None else str(v) for v in values)
    return ", ".join(f"`{v}` ({n})" for v, n in sorted(counts.items()))


def _environment(records: Sequence[Record]) -> list[str]:
    if not records:
        return []
    envs = [r.get("env") if isinstance(r.get("env"), dict) else {} for r in records]
    keys = [k for k in _ENV_ORDER if any(k in e for e in envs)]
    keys += sorted({k for e in envs for k in e} - set(keys))
    table = Table(["what", "distinct values (cells)"])
    for name in ("node", "device_name", "visible_devices", "schema_version"):
        table.rows.append([name, _distinct([r.get(name) for r in records])])
    for k in keys:
        table.rows.append([f"env.{k}", _distinct([e.get(k) for e in envs])])
    lines = ["## Environment", "", markdown(table, numeric=False), ""]
    commits = {e.get("git_commit") for e in envs}
    if len(commits) > 1:
        lines += ["**Warning:** cells come from different git commits.", ""]
    started = sorted(str(r["started_at"]) for r in records if r.get("started_at"))
    finished = sorted(str(r["finished_at"]) for r in records if r.get("finished_at"))
    if started and finished:
        lines += [f"Cells ran from {started[0]} to {finished[-1]}.", ""]
    return lines


def build_report(
    sweep_dir: str | os.PathLike[str],
    records: Sequence[Record],
    unreadable: Sequence[tuple[str, str]] = (),
    plots: Mapping[str, str] | None = None,
    answers: Sequence[str] = (),
    slo: Slo | None = None,
) -> str:
    """The whole report.md text; ``plots`` maps relative PNG paths (as linked) to files;
    ``answers``: the lines of the Answers part (render/answers.py), after the overview;
    ``slo``: the one SLO of the report (``Answers.slo``), which every section judges."""
    plots = plots or {}
    static, serving = split(records)
    groups = group_records(static)
    lines = _header(str(sweep_dir), records, unreadable)
    if groups:
        lines += _overview(groups)
    flag_lines = legend(records)
    if flag_lines:
        lines += ["Flags:", ""] + [f"- {line}" for line in flag_lines] + [""]
    lines += conflict_section(records)
    lines += answers
    for key, recs in groups.items():
        lines += _group(key, recs, plots)
    lines += _side_by_side(static, plots)
    lines += serving_section(records, plots, slo or Slo())
    lines += knee_section(sweep_dir)
    lines += _unreadable(str(sweep_dir), unreadable)
    lines += _environment(records)
    return "\n".join(lines).rstrip() + "\n"
