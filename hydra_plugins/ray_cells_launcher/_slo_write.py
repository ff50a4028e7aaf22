"""The answer of `hydra/sweeper=slo_search`: SWEEP/knee.json (data), SWEEP/knee.md (the same as
a report section), and that section in SWEEP/report.md, between the markers below (replaced
in place; appended when report.md has none; report.md is left alone when it does not exist).
aggregate's report includes knee.md as it is, so a report written later keeps the section.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

KNEE_JSON, KNEE_MD, REPORT_MD = "knee.json", "knee.md", "report.md"
START, END = "<!-- slo_search -->", "<!-- /slo_search -->"


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _ms(v: Any) -> str:
    return "-" if v is None else f"{v * 1e3:.1f}"


def _group_lines(key: str, g: dict[str, Any]) -> list[str]:
    label = " ".join(g["overrides"]) or "(no other overrides)"
    lo, hi = g["bracket"]
    lines = [f"### {label}", "", f"SLO: {g['slo']}. Status: `{g['status']}`; "
             f"knee {key} = **{_num(g['knee'])}**, bracket [{_num(lo)}, {_num(hi)}] "
             f"(last meeting, first failing) after {g['probe_count']} probes."]  # fmt: skip
    if g.get("predicted") is not None:
        err = g.get("prediction_error")
        src = g["prediction"]
        lines[-1] += (
            f" Predicted {_num(g['predicted'])} from {src['static_cells']} static cells "
            f"(prompt_len {src['prompt_len']}, seq {src['seq']})"
            + (f": {err:+.0%} against the found knee." if err is not None else ".")
        )
    lines += ["", f"| # | {key} | meets | p99 TTFT ms | p99 TPOT ms | offered/s | achieved/s "
              "| queue | why | cell |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for i, p in enumerate(g["probes"], 1):
        r = p.get("result") or {}
        lines.append(
            f"| {i} | {_num(p['value'])} | {'yes' if p['meets'] else 'no'} "
            f"| {_ms(r.get('ttft_s_p99'))} | {_ms(r.get('tpot_s_p99'))} "
            f"| {_num(r.get('offered_rate_per_s'))} | {_num(r.get('achieved_rate_per_s'))} "
            f"| {_num(r.get('queue_len_mean'))} | {p['why']} | `{r.get('cell_dir', '-')}` |"
        )
    return lines + [""]


def knee_markdown(answer: dict[str, Any]) -> str:
    key = answer["key"]
    lines = [START, "## SLO search: the knee", "",
             f"The highest `{key}` whose cell meets the SLO ({answer['meets']}), found by "
             f"bracketing then bisection to rel_tol {answer['rel_tol']:g} "
             "(`hydra/sweeper=slo_search`; docs/serving.md).", ""]  # fmt: skip
    for g in answer["groups"]:
        lines += _group_lines(key, g)
    return "\n".join([*lines, END]) + "\n"


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_answer(sweep_dir: Path, answer: dict[str, Any]) -> None:
    md = knee_markdown(answer)
    _atomic(sweep_dir / KNEE_JSON, json.dumps(answer, indent=2, default=str) + "\n")
    _atomic(sweep_dir / KNEE_MD, md)
    report = sweep_dir / REPORT_MD
    if not report.is_file():
        return
    text = report.read_text(encoding="utf-8")
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + md.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + md
    _atomic(report, text)


__all__ = ["KNEE_JSON", "KNEE_MD", "knee_markdown", "write_answer"]
