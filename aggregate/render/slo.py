"""The SLO answers in the report, in slo.csv and on the console (the answers themselves:
answers/slo.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from aggregate.answers.compute import Answers
from aggregate.answers.points import devices_per_cell, load_text, per_card
from aggregate.answers.slo import Slo, SloAnswer
from aggregate.tables import MISSING, SIMULATED, Table, is_simulated, markdown, marks, ok_number

Record = dict[str, Any]

SLO_COLUMNS = (
    "kind", "model", "backend", "device", "dtype", "prompt_len", "seq", "fixed",
    "slo_ttft_ms", "slo_tpot_ms", "slo_e2e_ms", "load_axis", "answer_load",
    "ttft_ms_p99", "tpot_ms_p99", "e2e_ms_p99", "output_tokens_per_s", "devices_per_cell",
    "output_tokens_per_s_per_device", "cells_judged", "cells_meeting", "first_over_load",
    "simulated", "flags", "cell_dir", "note",
)  # fmt: skip


def _ms(rec: Record | None, key: str) -> float | None:
    value = ok_number(rec, key)
    return None if value is None else value * 1e3


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "" if value is None else format(value, spec)


def slo_row(ans: SloAnswer, slo: Slo) -> dict[str, str]:
    """One CSV row of an answer (empty strings where there is no value)."""
    load, rec = ans.best if ans.best else (None, None)
    g = ans.group
    return {
        "kind": ans.kind, "model": g.model, "backend": g.backend, "device": g.device,
        "dtype": g.dtype, "prompt_len": str(g.prompt_len), "seq": str(ans.seq),
        "fixed": ans.fixed, "slo_ttft_ms": _fmt(slo.ttft_ms, "g"),
        "slo_tpot_ms": _fmt(slo.tpot_ms, "g"), "slo_e2e_ms": _fmt(slo.e2e_ms, "g"),
        "load_axis": ans.axis, "answer_load": "" if load is None else load_text(load),
        "ttft_ms_p99": _fmt(_ms(rec, "ttft_s_p99")), "tpot_ms_p99": _fmt(_ms(rec, "tpot_s_p99")),
        "e2e_ms_p99": _fmt(_ms(rec, "e2e_s_p99")),
        "output_tokens_per_s": _fmt(ok_number(rec, "output_tokens_per_s")),
        "devices_per_cell": "" if rec is None else str(devices_per_cell(rec)),
        "output_tokens_per_s_per_device": _fmt(None if rec is None else per_card(rec)),
        "cells_judged": str(ans.judged), "cells_meeting": str(ans.meeting),
        "first_over_load": load_text(ans.first_over[0]) if ans.first_over else "",
        "simulated": "true" if any(is_simulated(r) for _, r in ans.cells) else "false",
        "flags": ";".join(rec.get("flags") or []) if rec else "",
        "cell_dir": str(rec.get("cell_dir") or "") if rec else "", "note": ans.note(slo),
    }  # fmt: skip


def slo_csv(answers: Sequence[SloAnswer], slo: Slo) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(SLO_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(slo_row(a, slo) for a in answers)
    return buf.getvalue()


def _answer_cells(ans: SloAnswer) -> list[str]:
    if ans.best is None:
        return [f"no {ans.axis}", MISSING, MISSING, MISSING, MISSING, MISSING]
    load, rec = ans.best
    tps = per_card(rec)
    return [
        f"{ans.axis} {load_text(load)}{marks(rec)}",
        *(_fmt(_ms(rec, k)) or MISSING for k in ("ttft_s_p99", "tpot_s_p99", "e2e_s_p99")),
        MISSING if tps is None else f"{tps:.1f}",
        str(devices_per_cell(rec)),
    ]


def slo_section(answers: Sequence[SloAnswer], slo: Slo) -> list[str]:
    if not slo.active():
        return []
    lines = [
        f"### SLO: {slo.text()}",
        "",
        "Per group and generated length, the highest load (batch; for serving sweeps the "
        "request rate or concurrency) whose p99 latencies all meet the SLO, and its output "
        "tokens/s per card (tokens/s of the cell / devices it used). Cells that are not ok "
        "or are above their hardware bound never count. Also in `slo.csv`.",
        "",
    ]
    if not answers:
        return lines + ["No cell to judge.", ""]
    table = Table(["group", "seq", "answer", "TTFT p99 ms", "TPOT p99 ms",
                   "E2E p99 ms", "out tok/s per card", "devices", "meet / judged", "note"])  # fmt: skip
    for ans in answers:
        sim = f" ({SIMULATED})" if any(is_simulated(r) for _, r in ans.cells) else ""
        label = ans.group.label() + (f" · {ans.fixed}" if ans.fixed else "") + sim
        table.rows.append(
            [
                label,
                str(ans.seq),
                *_answer_cells(ans),
                f"{ans.meeting} / {ans.judged}",
                ans.note(slo) or MISSING,
            ]  # fmt: skip
        )
    return lines + [markdown(table), ""]


def slo_lines(answers: Answers) -> list[str]:
    """One console line per SLO answer, for the end of `python -m aggregate`."""
    slo = answers.slo
    out = []
    for ans in answers.slo_answers:
        where = f"{ans.group.label()}{' · ' + ans.fixed if ans.fixed else ''}, seq {ans.seq}"
        if ans.best is None:
            out.append(f"  {where}: none ({ans.note(slo)})")
            continue
        load, rec = ans.best
        tps = per_card(rec)
        out.append(
            f"  {where}: {ans.axis} {load_text(load)}{marks(rec)}, "
            f"{'n/a' if tps is None else f'{tps:.1f}'} output tok/s per card"
        )
    return out
