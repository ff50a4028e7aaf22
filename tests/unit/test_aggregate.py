"""aggregate/: records -> tables, report, plots, comparisons, on small generated records."""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import io
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aggregate import compare, compare_markdown, summary_table, write_outputs
from aggregate.reader import read_records as load_records
from aggregate.render.sidebyside import side_by_side
from aggregate.tables import (
    PIVOT_METRICS,
    FailureNotes,
    article_batch_sweep,
    article_stress,
    group_records,
    pivot,
)

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_record(batch: int, seq: int, **over: Any) -> dict[str, Any]:
    """A complete record; numbers follow simple formulas so tests can predict them."""
    model, backend = over.get("model", "tiny"), over.get("backend", "hf")
    device, prompt_len = over.get("device", "cpu"), over.get("prompt_len", 32)
    ident = f"{model}-{backend}-{device}-{batch}-{seq}-{prompt_len}-{over.get('salt', '')}"
    cid = hashlib.sha256(ident.encode()).hexdigest()[:16]
    tps = 100.0 * batch * over.pop("speed", 1.0)
    e2e = batch * seq / tps
    rec: dict[str, Any] = {
        "schema_version": 1, "cell_id": cid,
        "cell_dir": f"{model}-{backend}-{device}-b{batch}-s{seq}-p{prompt_len}-{cid[:8]}",
        "status": "ok", "simulated": backend == "sim", "batch": batch, "seq": seq,
        "prompt_len": prompt_len, "backend": backend, "model": model, "model_path": None,
        "dtype": "float32", "load_format": "auto", "device": device,
        "device_name": "Test CPU", "visible_devices": None, "node": "host-a", "ray_node_id": "n1",
        "output_tokens_per_s": tps, "total_tokens_per_s": tps * 1.25, "samples_per_s": tps / seq,
        "e2e_s_mean": e2e, "e2e_s_p50": e2e, "e2e_s_p90": e2e * 1.01, "e2e_s_p99": e2e * 1.02,
        "e2e_s_stdev": e2e * 0.01, "e2e_s_min": e2e * 0.99, "e2e_s_max": e2e * 1.02,
        "e2e_cv": 0.01, "ttft_s_mean": 0.002 * batch, "ttft_s_p50": 0.002 * batch,
        "ttft_s_p99": 0.0021 * batch, "tpot_s_mean": 0.001, "tpot_s_p50": 0.001,
        "tpot_s_p99": 0.0011, "itl_s_p50": 0.001, "itl_s_p99": 0.0012,
        "generated_tokens": batch * seq, "expected_tokens": batch * seq,
        "peak_memory_bytes": batch * 2**20, "peak_memory_allocated_bytes": None,
        "peak_memory_reserved_bytes": None, "peak_rss_bytes": batch * 2**20,
        "warmup_iterations": 3, "measured_iterations": 10, "measured_s": 10 * e2e,
        "model_load_s": 1.0, "model_reused": False,
        "flags": ["simulated"] if backend == "sim" else [], "error": None, "attempts": 1,
        "started_at": "2026-11-27T02:54:24.284+00:00",
        "finished_at": "2026-11-27T02:54:30.000+00:00",
        "env": {"host": "host-a", "python": "3.11.7", "git_commit": "aa5e4c9", "torch": "2.13.0"},
        "raw": {"e2e_s": [e2e] * 10, "ttft_s": [0.002] * 10, "generated_tokens": [batch * seq],
                "step_times_s": [[0.0, 0.001]]},
        "config": {"batch": batch, "seq": seq},
    }  # fmt: skip
    over.pop("salt", None)
    rec.update(over)
    if rec["status"] != "ok":
        for key in ("output_tokens_per_s", "e2e_s_mean", "e2e_s_p50", "ttft_s_mean"):
            rec[key] = None
    return rec


def write_sweep(root: Path, records: list[dict[str, Any]]) -> Path:
    for rec in records:
        path = root / rec["cell_dir"] / "record.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec))
    return root


def grid(batches=(1, 2, 4), seqs=(64, 128), **over: Any) -> list[dict[str, Any]]:
    return [make_record(b, s, **copy.deepcopy(over)) for b in batches for s in seqs]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m aggregate ARGS`, its main in this process: exit code, stdout and stderr
    (tests/integration/test_processes.py runs the real command)."""
    from aggregate.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    argv = [sys.executable, "-m", "aggregate", *args]
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def oom_record() -> dict[str, Any]:
    err = {"type": "OutOfMemoryError", "message": "NPU out of memory\nmore", "traceback": "tb"}
    return make_record(8, 128, status="oom", error=err)


# --- loading ----------------------------------------------------------------------------


def test_load_sorts_and_reports_unreadable(tmp_path: Path) -> None:
    write_sweep(tmp_path, grid(batches=(4, 1), seqs=(128, 64)))
    bad = tmp_path / "broken" / "record.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(make_record(8, 64))[:120])  # truncated mid-write
    no_id = tmp_path / "noid" / "record.json"
    no_id.parent.mkdir()
    no_id.write_text(json.dumps({"schema_version": 1, "status": "ok", "batch": 1, "seq": 1}))
    records, unreadable = load_records(tmp_path)
    assert [(r["batch"], r["seq"]) for r in records] == [(1, 64), (1, 128), (4, 64), (4, 128)]
    reasons = dict(unreadable)
    assert "invalid JSON" in reasons[str(bad)] and "truncated" in reasons[str(bad)]
    assert "cell_id" in reasons[str(no_id)]


# --- tables -----------------------------------------------------------------------------


def test_article_tables_have_the_records_values() -> None:
    recs = grid(batches=(1, 2, 4), seqs=(64, 128, 256))
    notes = FailureNotes(recs)
    seq, sweep = article_batch_sweep(recs, notes)
    assert seq == 128
    assert sweep.headers == ["batch", "seq_len", "latency s", "throughput tokens/s"]
    # batch 2, seq 128: tps = 200, e2e = 2 * 128 / 200 = 1.28 s
    assert sweep.rows == [
        ["1", "128", "1.2800", "100.0"],
        ["2", "128", "1.2800", "200.0"],
        ["4", "128", "1.2800", "400.0"],
    ]
    stress = article_stress(recs, notes)
    assert stress.headers == ["batch", "seq", "average latency s", "average throughput tokens/s"]
    assert len(stress.rows) == 9
    assert stress.rows[2] == ["1", "256", "2.5600", "100.0"]


def test_pivots_have_batch_rows_seq_columns_and_gaps() -> None:
    recs = [r for r in grid(batches=(1, 2, 4), seqs=(64, 128)) if (r["batch"], r["seq"]) != (2, 64)]
    notes = FailureNotes(recs)
    for metric in PIVOT_METRICS:
        t = pivot(recs, metric, notes)
        assert t.headers == ["batch \\ seq", "64", "128"]
        assert [row[0] for row in t.rows] == ["1", "2", "4"]
    tps = pivot(recs, PIVOT_METRICS[0], notes)
    assert tps.rows[1] == ["2", "—", "200.0"]
    mem = pivot(recs, PIVOT_METRICS[-1], notes)
    assert mem.rows[2] == ["4", "4.0", "4.0"]


def test_failed_oom_and_flags_in_place() -> None:
    err = {"type": "RuntimeError", "message": "boom", "traceback": "..."}
    recs = [
        make_record(1, 128, flags=["unstable"]),
        make_record(2, 128, status="failed", error=err),
        oom_record(),
    ]
    notes = FailureNotes(recs)
    t = pivot(recs, PIVOT_METRICS[0], notes)
    assert [row[1] for row in t.rows] == ["100.0*", "FAILED [1]", "OOM [2]"]
    assert notes.lines()[0].endswith("RuntimeError: boom")
    assert "OutOfMemoryError: NPU out of memory" in notes.lines()[1]


def test_side_by_side_ratio_between_backends() -> None:
    recs = grid(seqs=(128,)) + grid(seqs=(128,), backend="sglang", speed=2.0)
    (c,) = side_by_side(recs)
    assert c.axis == "backend" and c.values == ["hf", "sglang"]
    ratio_col = c.table.headers.index("output tok/s sglang/hf")
    assert [row[ratio_col] for row in c.table.rows] == ["2.00x"] * 3
    e2e_col = c.table.headers.index("E2E p50 s sglang/hf")
    assert c.table.rows[0][e2e_col] == "0.50x"


def test_summary_table_one_line_per_cell() -> None:
    recs = grid() + [make_record(1, 64, backend="sim")]
    text = summary_table(recs)
    assert "SIMULATED" in text
    assert "ok" in text and "out tok/s" in text
    assert sum(1 for line in text.splitlines() if line.strip().startswith(("1 ", "2 ", "4 "))) == 7
    assert len(group_records(recs)) == 2


# --- outputs ----------------------------------------------------------------------------


def test_write_outputs_report_csv_jsonl_plots(tmp_path: Path) -> None:
    recs = grid() + [oom_record()] + grid(backend="sglang", speed=1.5)
    recs += grid(batches=(1, 2), seqs=(64,), backend="sim")
    write_sweep(tmp_path, recs)
    (tmp_path / "cut" / "record.json").parent.mkdir()
    (tmp_path / "cut" / "record.json").write_text('{"schema_version": 1, "cell_id": "x')
    records, unreadable = load_records(tmp_path)
    out = write_outputs(tmp_path, records, unreadable)

    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(recs) and all("raw" in json.loads(line) for line in lines)
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(rows) == len(recs)
    assert "raw" not in rows[0] and "env_host" in rows[0]
    oom_row = next(r for r in rows if r["status"] == "oom")
    assert oom_row["error"] == "OutOfMemoryError: NPU out of memory"
    assert next(r for r in rows if r["backend"] == "sim")["flags"] == "simulated"

    report = (tmp_path / "report.md").read_text()
    assert "OOM [1]" in report and "OutOfMemoryError" in report
    assert "## tiny · sim · cpu · float32 · prompt 32 — SIMULATED" in report
    assert "### Batch sweep at seq 64 (article table 1) — SIMULATED" in report
    assert "`cut/record.json`: invalid JSON" in report
    assert "output tok/s sglang/hf" in report and "1.50x" in report
    assert "## Environment" in report and "`aa5e4c9`" in report

    pngs = [p for name, p in out.items() if name.endswith(".png")]
    # four figures per group + the cross-group figure + the Pareto front and the OOM map
    assert len(pngs) == 3 * 4 + 1 + 2
    assert {"plots/pareto.png", "plots/oom-frontier.png"} <= set(out)
    for p in pngs:
        data = Path(p).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
        assert f"]({Path(p).relative_to(tmp_path).as_posix()})" in report
    assert not list(tmp_path.rglob("*.tmp"))


def test_stale_plots_removed_and_no_plots(tmp_path: Path) -> None:
    write_sweep(tmp_path, grid())
    records, _ = load_records(tmp_path)
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "old-group-throughput.png").write_bytes(PNG_SIGNATURE)
    write_outputs(tmp_path, records)
    assert not (tmp_path / "plots" / "old-group-throughput.png").exists()
    out = write_outputs(tmp_path, records, plots=False)
    assert set(out) == {"results.jsonl", "results.csv", "report.md", "report.html", "pareto.csv"}
    assert ".png" not in (tmp_path / "report.md").read_text()


# --- comparison -------------------------------------------------------------------------


def test_compare_noise_band_and_matching() -> None:
    old = grid(seqs=(128,))
    new = grid(seqs=(128,))
    new[0]["output_tokens_per_s"] *= 0.90  # -10%: regression at 5%
    new[1]["output_tokens_per_s"] *= 0.97  # -3%: within the threshold
    new[2].update(cell_id="different", e2e_cv=0.10)  # matched on axes; noise band 20%
    new[2]["output_tokens_per_s"] *= 0.85  # -15% but inside the cell's own noise
    rows, n_reg = compare(new, old, threshold_pct=5.0)
    assert n_reg == 1
    assert [r.verdict for r in rows] == ["REGRESSION", "within noise", "within noise"]
    assert rows[2].match == "axes" and rows[2].band_pct == pytest.approx(20.0)
    assert rows[0].tokens_per_s_delta_pct == pytest.approx(-10.0)
    assert "REGRESSION" in compare_markdown(rows)


def test_compare_failed_now_is_regression_and_unmatched_listed() -> None:
    old = grid(seqs=(128,))
    new = grid(seqs=(128,))[:2]
    new[1] = make_record(2, 128, status="failed", error={"type": "E", "message": "x"})
    new.append(make_record(8, 128))
    rows, n_reg = compare(new, old)
    verdicts = {(r.batch, r.verdict) for r in rows}
    assert verdicts == {(1, "within noise"), (2, "REGRESSION"), (4, "missing in new"),
                        (8, "new cell")}  # fmt: skip
    assert n_reg == 1


# --- CLI --------------------------------------------------------------------------------


def test_cli_exit_codes(tmp_path: Path) -> None:
    good = write_sweep(tmp_path / "good", grid())
    res = run_cli(str(good), "--no-plots")
    assert res.returncode == 0, res.stderr
    assert "out tok/s" in res.stdout and (good / "report.md").exists()

    bad = write_sweep(tmp_path / "bad", grid() + [oom_record()])
    assert run_cli(str(bad), "--quiet", "--no-plots").returncode == 1

    missing = run_cli(str(tmp_path / "nope"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli(str(empty)).returncode == 2


def test_cli_baseline_gate(tmp_path: Path) -> None:
    old = write_sweep(tmp_path / "old", grid())
    same = write_sweep(tmp_path / "same", grid())
    res = run_cli(str(same), "--baseline", str(old), "--no-plots")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 regression(s)" in res.stdout and (same / "compare.md").exists()

    slow = grid()
    slow[0]["output_tokens_per_s"] *= 0.8
    slow_dir = write_sweep(tmp_path / "slow", slow)
    res = run_cli(str(slow_dir), "--baseline", str(old), "--quiet", "--no-plots")
    assert res.returncode == 3, res.stdout + res.stderr
    assert "REGRESSION" in (slow_dir / "compare.md").read_text()
    # -20% passes a 25% threshold
    loose = run_cli(str(slow_dir), "--baseline", str(old), "--threshold", "25", "--no-plots")
    assert loose.returncode == 0


def test_baseline_gate_fails_when_nothing_matched_or_cells_disappeared(tmp_path: Path) -> None:
    old = write_sweep(tmp_path / "old", grid())
    other = write_sweep(tmp_path / "other", [make_record(3, 7, model="other", salt="x")])
    res = run_cli(str(other), "--baseline", str(old), "--quiet", "--no-plots")
    assert res.returncode == 4, res.stdout + res.stderr
    assert "checked nothing" in res.stderr
    fewer = write_sweep(tmp_path / "fewer", grid()[1:])
    res = run_cli(str(fewer), "--baseline", str(old), "--quiet", "--no-plots")
    assert res.returncode == 3 and "1 baseline cell(s) missing" in res.stdout
    assert "missing in new:" in res.stdout


def test_plot_titles_say_simulated() -> None:
    """(No heavy imports: tests/integration/test_processes.py, in a fresh interpreter.)"""
    from aggregate.render.plots.static import _title

    recs = grid(backend="sim")
    assert "SIMULATED" in _title("label", "Output tokens/s vs batch", recs)
    assert "SIMULATED" not in _title("label", "Output tokens/s vs batch", grid())
