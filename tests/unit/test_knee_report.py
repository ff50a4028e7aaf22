"""The SLO search's answer files: knee.json, knee.md, and its section of report.md (replaced
in place, kept by a report written again)."""

from __future__ import annotations

import json

from aggregate.render.report import build_report
from hydra_plugins.ray_cells_launcher._slo_write import END, START, write_answer

ANSWER = {
    "key": "request_rate", "rel_tol": 0.1, "saturation": 0.9, "meets": "p99s within slo.*",
    "groups": [{
        "overrides": ["prompt_len=512"], "slo": "p99 TPOT <= 40 ms", "status": "found",
        "knee": 13.4, "bracket": [13.4, 14.1], "probe_count": 2, "predicted": 15.3,
        "prediction": {"static_cells": 9, "prompt_len": 512, "seq": 128},
        "prediction_error": 0.142,
        "probes": [
            {"value": 13.4, "meets": True, "why": "meets", "saturated": False,
             "result": {"tpot_s_p99": 0.038, "cell_dir": "a"}},
            {"value": 14.1, "meets": False, "why": "p99 TPOT 41.0 ms > 40 ms",
             "saturated": False, "result": {"tpot_s_p99": 0.041, "cell_dir": "b"}},
        ],
    }],
}  # fmt: skip


def test_answer_files_and_the_report_section(tmp_path):
    (tmp_path / "report.md").write_text("# Benchmark report\n\n## Environment\n")
    write_answer(tmp_path, ANSWER)
    assert json.loads((tmp_path / "knee.json").read_text())["groups"][0]["knee"] == 13.4
    md = (tmp_path / "knee.md").read_text()
    assert "knee request_rate = **13.4**, bracket [13.4, 14.1]" in md
    assert "Predicted 15.3 from 9 static cells" in md and "+14%" in md
    assert "| 2 | 14.1 | no | - | 41.0 |" in md
    report = (tmp_path / "report.md").read_text()
    assert report.count(START) == 1 and report.count(END) == 1
    later = {**ANSWER, "groups": [{**ANSWER["groups"][0], "knee": 13.5}]}
    write_answer(tmp_path, later)  # replaced in place, not appended again
    report = (tmp_path / "report.md").read_text()
    assert report.count(START) == 1 and "**13.5**" in report and "**13.4**" not in report
    rebuilt = build_report(tmp_path, [])  # a report written again keeps the section
    assert rebuilt.count(START) == 1 and "## SLO search: the knee" in rebuilt


def test_no_search_no_section(tmp_path):
    assert START not in build_report(tmp_path, [])
