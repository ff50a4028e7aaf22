"""Serving cells in the report: per server settings, the metrics against the load; the
highest load meeting the SLO; serving and static results of one model side by side.

A serving record has ``workload == "serve"``; its load is ``concurrency`` (closed loop) or
``request_rate`` (open loop). A load level *meets the SLO* when its cell is ok and its TTFT
p99 and TPOT p99 are within ``slo.ttft_ms`` / ``slo.tpot_ms`` (the limits that are set).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aggregate.answers.slo import Slo, records_slo
from aggregate.render.plots.names import SERVE_PARETO_FIGURE, serving_figures
from aggregate.serving import is_serving, load_label, load_value, serving_groups
from aggregate.tables import (
    MISSING,
    FailureNotes,
    Metric,
    Table,
    error_text,
    fmt_ms,
    fmt_s,
    fmt_tps,
    markdown,
    marks,
    ok_number,
    value_text,
)

Record = dict[str, Any]

LOAD_METRICS = (
    Metric("req/s", "request_throughput_per_s", lambda v: f"{v:.2f}"),
    Metric("out tok/s", "output_tokens_per_s", fmt_tps),
    Metric("out tok/s/card", "output_tokens_per_s_per_card", fmt_tps),
    Metric("tok/s/user", "output_tokens_per_s_per_user", fmt_tps),
    Metric("TTFT p50 ms", "ttft_s_p50", fmt_ms),
    Metric("TTFT p90 ms", "ttft_s_p90", fmt_ms),
    Metric("TTFT p99 ms", "ttft_s_p99", fmt_ms),
    Metric("TPOT p50 ms", "tpot_s_p50", fmt_ms),
    Metric("TPOT p99 ms", "tpot_s_p99", fmt_ms),
    Metric("ITL p99 ms", "itl_s_p99", fmt_ms),
    Metric("E2E p99 s", "e2e_s_p99", fmt_s),
    Metric("goodput req/s", "goodput_requests_per_s", lambda v: f"{v:.2f}"),
    Metric("server TTFT mean ms", "server_ttft_s_mean", fmt_ms),
    Metric("client lag p99 ms", "client_loop_lag_s_p99", fmt_ms),
)


def meets_slo(rec: Record, slo: Slo) -> bool | None:
    """None when no SLO is set; else whether the cell is ok and within every budget (the
    report's one SLO: ``Answers.slo``, the same the Answers section judges)."""
    if not slo.active():
        return None
    if rec.get("status") != "ok":
        return False
    return slo.misses(rec) == []


def highest_meeting_slo(recs: Sequence[Record], slo: Slo | None = None) -> str:
    """The highest load of one curve meeting ``slo`` (default: the one the records ran with)."""
    slo = records_slo(recs) if slo is None else slo
    if not slo.active():
        return "no SLO set (slo.ttft_ms / slo.tpot_ms, or --slo-*-ms)"
    good = [r for r in recs if meets_slo(r, slo)]
    if not good:
        return f"no load level meets the SLO ({slo.text()})"
    best = max(good, key=load_value)
    return (
        f"**{load_label(best)}** ({slo.text()}; {fmt_tps(best['output_tokens_per_s'])} out tok/s)"
    )


def load_table(recs: Sequence[Record], notes: FailureNotes, slo: Slo) -> Table:
    table = Table(["load", *(m.title for m in LOAD_METRICS), "failed", "SLO"])
    for rec in recs:
        meets = {None: MISSING, True: "yes", False: "no"}[meets_slo(rec, slo)]
        failed = f"{rec.get('failed_requests')}/{rec.get('num_requests')}"
        cells = [value_text(rec, m, notes) for m in LOAD_METRICS]
        table.rows.append([load_label(rec), *cells, failed, meets])
    return table


def _failures(notes: FailureNotes, recs: Sequence[Record]) -> list[str]:
    bad = [r for r in recs if r.get("status") != "ok"]
    return [
        f"[{i}] {load_label(r)} — {r.get('status')} (cell `{r.get('cell_dir')}`): "
        f"{error_text(r, 400)}"
        for i, r in enumerate(bad, start=1)
    ]


def serving_section(
    records: Sequence[Record], plots: Mapping[str, str], slo: Slo | None = None
) -> list[str]:
    """The report's serving part ([] without serving records); ``slo``: the report's one SLO
    (default: the one the records ran with)."""
    groups = serving_groups(records)
    if not groups:
        return []
    lines = [
        "## Serving",
        "",
        "Per request: TTFT = first token - send; TPOT = (E2E - TTFT) / (tokens - 1); "
        "ITL = per token (record's itl_method). tok/s/user = 1 / TPOT mean; goodput counts "
        "requests within the SLO. A load meets the SLO when its TTFT p99 and TPOT p99 do. "
        "server TTFT = the server's own (its /metrics; n/a: it exports none); client lag = "
        "the client's event-loop lag (~: client_saturated).",
        "",
    ]
    slo = records_slo(records) if slo is None else slo
    for key, recs in groups.items():
        notes = FailureNotes(recs)
        lines += [f"### {key.label()}", "", markdown(load_table(recs, notes, slo)), ""]
        lines += [f"Highest load meeting the SLO: {highest_meeting_slo(recs, slo)}", ""]
        fails = _failures(notes, recs)
        if fails:
            lines += ["Cells that did not finish:", ""] + [f"- {f}" for f in fails] + [""]
        links = [p for p in serving_figures(key) if p in plots]
        lines += [f"![{p}]({p})" for p in links] + ([""] if links else [])
    if SERVE_PARETO_FIGURE in plots:
        lines += ["### Pareto: output tokens/s per card against tokens/s per user", ""]
        lines += [f"![pareto]({SERVE_PARETO_FIGURE})", ""]
    return lines + serving_vs_static(records)


def _num(rec: Record, key: str, fmt: Any) -> str:
    """A number with its cell's flag marks (unstable, host_busy, ...), as in every table."""
    v = ok_number(rec, key)
    return MISSING if v is None else fmt(v) + marks(rec)


def serving_vs_static(records: Sequence[Record]) -> list[str]:
    """Serving at concurrency C beside static batch C of the same model, device, lengths."""
    static = {
        (r.get("model"), r.get("device"), r.get("batch"), r.get("seq"), r.get("prompt_len")): r
        for r in records
        if not is_serving(r) and r.get("status") == "ok"
    }
    table = Table(["model · device", "batch = concurrency", "seq", "prompt",
                   "static out tok/s", "serving out tok/s", "serving / static",
                   "static TPOT ms", "serving TPOT p50 ms", "static TTFT ms",
                   "serving TTFT p50 ms"])  # fmt: skip
    for rec in records:
        if not is_serving(rec) or rec.get("status") != "ok" or rec.get("request_rate"):
            continue
        key = (rec.get("model"), rec.get("device"), rec.get("concurrency"), rec.get("seq"),
               rec.get("prompt_len"))  # fmt: skip
        st = static.get(key)
        if st is None:
            continue
        s_tps, v_tps = ok_number(st, "output_tokens_per_s"), ok_number(rec, "output_tokens_per_s")
        ratio = f"{v_tps / s_tps:.2f}x" if s_tps and v_tps else MISSING
        pairs = [(st, "output_tokens_per_s", fmt_tps), (rec, "output_tokens_per_s", fmt_tps),
                 (st, "tpot_s_mean", fmt_ms), (rec, "tpot_s_p50", fmt_ms),
                 (st, "ttft_s_mean", fmt_ms), (rec, "ttft_s_p50", fmt_ms)]  # fmt: skip
        vals = [_num(r, k, f) for r, k, f in pairs]
        table.rows.append([f"{key[0]} · {key[1]} · {rec.get('server_settings')}",
                           str(key[2]), str(key[3]), str(key[4]), *vals[:2], ratio, *vals[2:]])  # fmt: skip
    if not table.rows:
        return []
    return ["### Serving and static side by side", "",
            "Static: one generate call of `batch` sequences; serving: `concurrency` requests "
            "in flight to a server of the same model on the same kind of device.", "",
            markdown(table), ""]  # fmt: skip
