"""Issue 22, outputs: one truth per directory, outputs rebuilt when a record changed, one SLO
per report, flags that stay visible, energy that says why it is missing, the summary."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from aggregate import summary_table, write_outputs
from aggregate.conflicts import conflict_lines
from aggregate.render.serving_tables import serving_vs_static
from aggregate.tables import NO_SOURCE, NOT_VALID, energy_state_text
from jobs.files import write_record
from sweep.finish import RESULTS_JSONL, SweepResults
from tests.unit.test_aggregate import make_record
from tests.unit.test_serving_aggregate import serving_record, static_record


def _sweep(tmp_path: Path, records: list[dict]) -> SweepResults:
    """A sweep's results for ``records`` (written as cells of the directory first)."""
    SweepResults._OPEN.pop(os.path.abspath(tmp_path), None)
    results = SweepResults.for_dir(tmp_path)
    results.register([r["cell_dir"] for r in records])
    for rec in records:
        write_record(tmp_path / rec["cell_dir"], rec)
        results.add(rec)
    return results


def _resumed(tmp_path: Path, records: list[dict]) -> SweepResults:
    """The same sweep run again in a new process: every cell resumed from its record."""
    SweepResults._OPEN.pop(os.path.abspath(tmp_path), None)
    results = SweepResults.for_dir(tmp_path)
    results.register([r["cell_dir"] for r in records])
    for rec in records:
        on_disk = json.loads((tmp_path / rec["cell_dir"] / "record.json").read_text())
        results.add(on_disk, new=False)
    return results


def test_two_configurations_of_one_cell_are_named(tmp_path, capsys):
    old = make_record(2, 64, finished_at="2026-11-27T01:00:00+00:00")
    new = make_record(2, 64, salt="other-bench", speed=2.0)  # same position, other cell
    assert old["cell_id"] != new["cell_id"]
    recs = [old, new, make_record(1, 64)]
    lines = conflict_lines(recs)
    assert len(lines) == 1 and "batch 2, seq 64: 2 configurations" in lines[0]
    assert old["cell_dir"] in lines[0] and new["cell_dir"] in lines[0]
    write_outputs(tmp_path, recs, plots=False)
    report = (tmp_path / "report.md").read_text()
    assert "## Two configurations of one cell" in report and old["cell_dir"] in report
    assert "two configurations of one cell" in summary_table(recs)
    repeats = [make_record(2, 64, salt=f"r{k}", repeat=k, repeat_of="cell-x") for k in range(2)]
    assert conflict_lines(repeats) == []  # repeats of one cell are not two configurations


def test_a_sweeps_report_holds_every_record_of_its_directory(tmp_path, capsys):
    earlier = make_record(4, 64, salt="an earlier run with other values")
    write_record(tmp_path / earlier["cell_dir"], earlier)
    _sweep(tmp_path, [make_record(1, 64), make_record(2, 64)]).finish(plots=False)
    out = capsys.readouterr().out
    assert "1 record(s) under" in out and "this launch did not plan" in out
    assert "2 ok, 0 not ok, 0 missing of 2 cells" in out  # the sweep's own cells counted
    lines = (tmp_path / RESULTS_JSONL).read_text().splitlines()
    assert sorted(json.loads(x)["batch"] for x in lines) == [1, 2, 4]
    report = (tmp_path / "report.md").read_text()
    assert "| 4 |" in report  # the earlier cell is in the report, as `python -m aggregate`'s
    # A sweeper's later round plans that cell (resumed): it is written once, not twice.
    results = SweepResults.for_dir(tmp_path)
    results.register([earlier["cell_dir"]])
    results.add(json.loads((tmp_path / earlier["cell_dir"] / "record.json").read_text()), False)
    results.finish(plots=False)
    lines = (tmp_path / RESULTS_JSONL).read_text().splitlines()
    assert sorted(json.loads(x)["batch"] for x in lines) == [1, 2, 4]


def test_a_changed_record_makes_the_outputs_stale(tmp_path, capsys):
    recs = [make_record(1, 64), make_record(2, 64)]
    _sweep(tmp_path, recs).finish(plots=False)
    _resumed(tmp_path, recs).finish(plots=False)
    assert "are up to date" in capsys.readouterr().out  # nothing changed: nothing rebuilt
    path = tmp_path / recs[0]["cell_dir"] / "record.json"
    changed = json.loads(path.read_text())
    changed["output_tokens_per_s"] = 12345.0
    path.write_text(json.dumps(changed))
    _resumed(tmp_path, recs).finish(plots=False)
    assert "are up to date" not in capsys.readouterr().out
    rows = [json.loads(x) for x in (tmp_path / RESULTS_JSONL).read_text().splitlines()]
    assert 12345.0 in [r["output_tokens_per_s"] for r in rows]
    assert "12345.0" in (tmp_path / "report.md").read_text()


def test_one_slo_per_report(tmp_path):
    """The records ran without an SLO; one given to the outputs is judged everywhere."""
    recs = [serving_record(c, 0.1 * c, 0.01, 10.0 * c) for c in (1, 2, 4)]
    for rec in recs:
        rec.update(slo_ttft_ms=None, slo_tpot_ms=None)
    write_outputs(tmp_path, recs, plots=False, slo_ttft_ms=250.0)
    report = (tmp_path / "report.md").read_text()
    assert "no SLO set" not in report
    assert "Highest load meeting the SLO: **c2** (TTFT p99 <= 250 ms" in report


def test_flag_marks_in_the_static_vs_serving_table():
    static = static_record(2, 50.0)
    static["flags"] = ["unstable"]
    serving = serving_record(2, 0.1, 0.01, 40.0)
    serving["flags"] = ["host_busy"]
    text = "\n".join(serving_vs_static([static, serving]))
    assert "50.0\\*" in text and "40.0¤" in text  # (markdown escapes the `*` mark)


def test_flagged_points_are_marked_in_plots(tmp_path):
    recs = [make_record(b, 64) for b in (1, 2, 4)]
    recs[1]["flags"] = ["unstable"]
    from matplotlib.figure import Figure

    from aggregate.render.plots.static import _draw

    ax = Figure().subplots()
    _draw(ax, recs, "output_tokens_per_s", 1.0, "tok/s")
    labels = ax.get_legend_handles_labels()[1]
    assert any(label.startswith("flagged: unstable *") for label in labels), labels


def test_energy_says_no_source_or_invalid_and_serving_records_say_why():
    rec = make_record(1, 64, energy_valid=False, energy_invalid_reasons=["source_missing"])
    assert energy_state_text(rec) == NO_SOURCE
    rec["energy_invalid_reasons"] = ["sample_gap"]
    assert energy_state_text(rec) == NOT_VALID
    served = serving_record(2, 0.1, 0.01, 40.0)
    assert served["energy_valid"] is False
    assert served["energy_invalid_reasons"] == ["not_measured"]
    assert energy_state_text(served) == NO_SOURCE


def test_summary_labels_repeats_and_uses_one_tokens_per_j_format():
    recs = [make_record(2, 64, salt=f"r{k}", repeat=k, repeat_of="x") for k in range(3)]
    for rec, tpj in zip(recs, (0.0004, 12.5, 1234.0), strict=True):
        rec.update(energy_valid=True, output_tokens_per_j=tpj)
    text = summary_table(recs)
    assert all(f"2/r{k}" in text for k in (1, 2, 3))
    assert "0.000" in text and "12.500" in text and "1234.000" in text and "e+" not in text


def test_host_oom_is_one_line_with_the_settings_to_change():
    from hydra_plugins.ray_cells_launcher._app import HostOutOfMemory

    ray_text = (
        "1 worker(s) were killed due to the node running low on memory. Memory on the node "
        "(IP: 10.0.0.1, ID: f3) was 4.34GB used / 23.54GB limit (0.18)\nOOM kill reason: "
        "Memory usage 4658831360B exceeded threshold of 505521440B (2.0% of 25276071936B "
        "limit)\nTop 10 memory users: ...\nRefer to the documentation on how to address ..."
    )
    err = HostOutOfMemory.of("cell-b1", RuntimeError(ray_text))
    assert "\n" not in str(err) and "Refer to the documentation" not in str(err)
    assert "(4.34GB of 23.54GB used, limit 2.0%)" in str(err)
    assert "RAY_memory_usage_threshold" in str(err)


def test_a_later_round_prints_only_its_new_cells(tmp_path, capsys):
    first = [make_record(1, 64), make_record(2, 64)]
    results = _sweep(tmp_path, first)
    results.finish(plots=False)
    assert capsys.readouterr().out.count(" 64  ok") == 2
    later = make_record(4, 64)
    results.register([later["cell_dir"]])
    write_record(tmp_path / later["cell_dir"], later)
    results.add(later)
    results.finish(plots=False)
    out = capsys.readouterr().out
    assert "1 cell(s) new since the last summary" in out and out.count(" 64  ok") == 1
    assert "3 ok, 0 not ok, 0 missing of 3 cells" in out


def test_the_serving_bound_counts_no_more_in_flight_than_were_sent(monkeypatch):
    from jobs.config import from_values
    from jobs.record import Outcome, Status
    from workers.serving import measure

    seen = []

    def fake_bound(metrics, cell, info, kind, name):
        seen.append(cell.batch)
        keys = ("bound_ttft_s", "bound_tpot_s", "bound_source", "bound_output_tokens_per_s")
        return {**dict.fromkeys(keys), "bound_fraction": None}, []

    class FakeServer:
        process = object()

        def model_info(self):
            return None

    monkeypatch.setattr(measure, "bound_fields", fake_bound)
    cell = from_values({"workload": {"name": "serve", "num_requests": 3}, "concurrency": 8,
                        "seq": 16, "prompt_len": 16, "device": {"name": "cpu"}})  # fmt: skip
    out = Outcome(status=Status.OK, fields={"device": "cpu", "device_name": "cpu"})
    m = {"ttft_s_mean": 0.1, "tpot_s_mean": 0.01, "output_tokens_per_s": 10.0, "num_requests": 3}
    measure._bounds(cell, m, FakeServer(), out)
    assert seen == [1, 3]  # one request alone, then min(concurrency 8, 3 requests sent)


def test_the_outputs_rows_are_the_records_rows_whatever_came_before(tmp_path):
    """The rows wait in a spill file until the end. A row that repeats a value (here the
    server's kind in `server` and `server_settings`) after a row of another shape (flags, a
    second server) must read back as it was written: a reader that kept one memo for the
    whole file gave the second row the first row's objects (`server_settings: server`)."""
    first = serving_record(1, 0.1, 0.01, 100.0)
    first.update(server="transformers", server_settings="transformers extra_args=[--x]",
                 flags=["client_saturated"])  # fmt: skip
    second = serving_record(2, 0.1, 0.01, 150.0)
    second.update(server="transformers", server_settings="transformers")
    results = _sweep(tmp_path, [first, second])
    results.finish(plots=False)
    by_conc = {r["concurrency"]: r for r in results.loaded.values()}
    assert by_conc[2]["server_settings"] == "transformers"
    assert by_conc[1]["server_settings"] == "transformers extra_args=[--x]"
    on_disk = [json.loads(x) for x in (tmp_path / RESULTS_JSONL).read_text().splitlines()]
    for row in on_disk:
        assert row["server_settings"] == by_conc[row["concurrency"]]["server_settings"]
    with open(tmp_path / "results.csv", newline="") as f:
        table = {int(r["concurrency"]): r["server_settings"] for r in csv.DictReader(f)}
    assert table == {1: "transformers extra_args=[--x]", 2: "transformers"}
