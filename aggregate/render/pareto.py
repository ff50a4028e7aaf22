"""The Pareto front in the report and in pareto.csv (the front itself: answers/pareto.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping

from aggregate.answers.pareto import Fronts, Point, Workload
from aggregate.answers.points import devices_per_cell
from aggregate.render.plots.names import PARETO_FIGURE
from aggregate.tables import Table, markdown, marks


def pareto_section(fronts: Fronts, figures: Mapping[str, str]) -> list[str]:
    if not fronts:
        return []
    lines = [
        "### Pareto front: output tokens/s per card vs tokens/s per sequence",
        "",
        "Tokens/s per sequence = 1 / TPOT mean; tokens/s per card = output tokens/s / devices "
        "per cell. Only the points no other point beats on both are listed, per workload; "
        "every point, dominated ones with the cell that dominates them, is in `pareto.csv`.",
        "",
    ]
    table = Table(["workload", "point", "tok/s per seq", "TPOT mean ms", "out tok/s per card",
                   "devices"])  # fmt: skip
    for work, points in fronts.items():
        front = [p for p in points if p.on_front]
        for p in front:
            table.rows.append(
                [
                    work.label(),
                    p.label + marks(p.rec),
                    f"{p.x:.1f}",
                    f"{1e3 / p.x:.3f}",
                    f"{p.y:.1f}",
                    str(devices_per_cell(p.rec)),
                ]  # fmt: skip
            )
    n_points = sum(len(p) for p in fronts.values())
    n_front = len(table.rows)
    lines += [markdown(table), "", f"{n_front} of {n_points} points on a front; "
              f"{n_points - n_front} dominated.", ""]  # fmt: skip
    if PARETO_FIGURE in figures:
        lines += [f"![Pareto front]({PARETO_FIGURE})", ""]
    return lines


PARETO_COLUMNS = (
    "model", "prompt_len", "seq", "workload", "simulated", "backend", "device", "dtype",
    "batch", "concurrency", "request_rate", "tokens_per_s_per_sequence", "tpot_ms_mean",
    "output_tokens_per_s", "devices_per_cell", "output_tokens_per_s_per_device", "on_front",
    "dominated_by", "cell_dir", "flags",
)  # fmt: skip


def _csv_row(work: Workload, p: Point) -> dict[str, str]:
    r = p.rec
    by = p.dominated_by
    return {
        "model": work.model, "prompt_len": str(work.prompt_len), "seq": str(work.seq),
        "workload": work.workload, "simulated": str(work.simulated).lower(),
        **{k: "" if r.get(k) is None else str(r.get(k))
           for k in ("backend", "device", "dtype", "batch", "concurrency", "request_rate")},
        "tokens_per_s_per_sequence": f"{p.x:.3f}", "tpot_ms_mean": f"{1e3 / p.x:.4f}",
        "output_tokens_per_s": str(r.get("output_tokens_per_s")),
        "devices_per_cell": str(devices_per_cell(r)),
        "output_tokens_per_s_per_device": f"{p.y:.3f}", "on_front": str(p.on_front).lower(),
        "dominated_by": "" if by is None else str(by.rec.get("cell_dir") or by.label),
        "cell_dir": str(r.get("cell_dir") or ""), "flags": ";".join(r.get("flags") or []),
    }  # fmt: skip


def pareto_csv(fronts: Fronts) -> str:
    """pareto.csv: every point, its workload, whether it is on the front; '' when none."""
    if not fronts:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(PARETO_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for work, points in fronts.items():
        writer.writerows(_csv_row(work, p) for p in points)
    return buf.getvalue()
