"""Serving records in the reports: curves per server settings, the highest load meeting the
SLO, the Pareto plot, serving beside static; on fixed records built by build_record."""

from __future__ import annotations

import re

from aggregate import summary_table
from aggregate.outputs import write_outputs
from aggregate.render.serving_tables import highest_meeting_slo
from aggregate.serving import load_label, serving_groups
from jobs.config import from_values
from jobs.record import Outcome, Status, build_record


def serving_record(c: int, ttft_p99: float, tpot_p99: float, tps: float, ok: bool = True):
    cell = from_values({"workload": {"name": "serve"}, "concurrency": c, "seq": 64,
                        "prompt_len": 64, "device": {"name": "cpu"},
                        "slo": {"ttft_ms": 500, "tpot_ms": 50}})  # fmt: skip
    fields = {"output_tokens_per_s": tps, "output_tokens_per_s_per_card": tps,
              "output_tokens_per_s_per_user": tps / c, "request_throughput_per_s": tps / 64,
              "ttft_s_p50": ttft_p99 / 2, "ttft_s_p90": ttft_p99 * 0.9, "ttft_s_p99": ttft_p99,
              "tpot_s_p50": tpot_p99 / 2, "tpot_s_p99": tpot_p99, "tpot_s_mean": tpot_p99 / 2,
              "ttft_s_mean": ttft_p99 / 2, "num_requests": 32, "failed_requests": 0}  # fmt: skip
    if not ok:
        return build_record(cell, Outcome.failure(RuntimeError("server died mid-cell: boom")))
    return build_record(cell, Outcome(status=Status.OK, fields=fields))


def static_record(batch: int, tps: float):
    cell = from_values({"batch": batch, "seq": 64, "prompt_len": 64, "device": {"name": "cpu"}})
    fields = {"output_tokens_per_s": tps, "tpot_s_mean": 0.01, "ttft_s_mean": 0.05}
    return build_record(cell, Outcome(status=Status.OK, fields=fields))


def records():
    return [
        serving_record(1, 0.1, 0.02, 40.0),
        serving_record(2, 0.3, 0.04, 70.0),
        serving_record(4, 0.9, 0.06, 90.0),  # TTFT p99 900 ms > 500: misses the SLO
        serving_record(8, 0.0, 0.0, 0.0, ok=False),
        static_record(1, 50.0),
        static_record(2, 95.0),
    ]


def test_load_labels_groups_and_highest_load_meeting_the_slo():
    recs = records()
    assert [load_label(r) for r in recs[:4]] == ["c1", "c2", "c4", "c8"]
    groups = serving_groups(recs)
    assert len(groups) == 1
    (curve,) = groups.values()
    assert [r["concurrency"] for r in curve] == [1, 2, 4, 8]
    assert highest_meeting_slo(curve).startswith("**c2**")


def test_report_plots_and_summary(tmp_path):
    recs = records()
    out = write_outputs(tmp_path, recs, plots=True)
    report = (tmp_path / "report.md").read_text()
    assert "## Serving" in report and "closed loop" in report
    assert "Highest load meeting the SLO: **c2**" in report
    assert "server died mid-cell: boom" in report
    side = report.split("### Serving and static side by side")[1]
    assert "0.80x" in side and "0.74x" in side  # c1: 40 / 50, c2: 70 / 95
    # Static tables hold only static cells.
    # (the Answers part compares static and serving points on purpose)
    static_part = re.sub(r"## Answers.*?(?=\n## )", "", report.split("## Serving")[0], flags=re.S)
    assert "None" not in static_part and "c4" not in static_part
    assert "plots/serve-pareto.png" in out
    assert any(p.endswith("closed-latency.png") for p in out)
    assert (tmp_path / "plots" / "serve-pareto.png").stat().st_size > 1000
    text = summary_table(recs)
    assert "    c4     64  ok" in text and "     2     64  ok" in text


def test_serving_records_are_readable_and_finished(tmp_path):
    from aggregate.reader import read_records as load_records
    from jobs.files import finished_record, write_record

    rec = records()[0]
    write_record(tmp_path / rec["cell_dir"], rec)
    assert finished_record(tmp_path / rec["cell_dir"], rec["cell_id"]) is not None
    loaded = load_records(tmp_path)
    assert len(loaded[0]) == 1 and not loaded[1], loaded[1]
