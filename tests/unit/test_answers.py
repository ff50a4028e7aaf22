"""aggregate/ answers: SLO limits, the Pareto front and the OOM frontier, on fixed records."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import pytest

from aggregate import write_outputs
from aggregate.answers.frontier import oom_frontier
from aggregate.answers.pareto import pareto_points
from aggregate.answers.points import devices_per_cell, per_card
from aggregate.answers.slo import Slo, SloError, records_slo, slo_answers
from aggregate.render.answers import answer_sections_of as answer_sections
from aggregate.render.answers import pareto_csv_of as pareto_csv
from aggregate.render.slo import SLO_COLUMNS, slo_csv, slo_row
from tests.unit.test_aggregate import make_record, run_cli, write_sweep


def tpot_grid(batches=(1, 2, 4, 8), seqs=(64, 128), **over: Any) -> list[dict[str, Any]]:
    """Records whose TPOT p99 is `batch` ms and TTFT p99 is 10 x batch ms."""
    out = []
    for s in seqs:
        for b in batches:
            rec = make_record(b, s, **over)
            rec.update(tpot_s_p99=b * 1e-3, tpot_s_mean=b * 0.9e-3, ttft_s_p99=b * 1e-2)
            out.append(rec)
    return out


def oom(batch: int, seq: int, **over: Any) -> dict[str, Any]:
    err = {"type": "OutOfMemoryError", "message": "out of memory", "traceback": ""}
    return make_record(batch, seq, status="oom", error=err, **over)


# --- SLO --------------------------------------------------------------------------------


def test_slo_largest_batch_meeting_and_throughput_per_card() -> None:
    recs = tpot_grid(devices_per_cell=2) + [oom(16, 64)]
    answers = slo_answers(recs, Slo(tpot_ms=4.5))
    assert [(a.seq, a.best[0]) for a in answers] == [(64, 4.0), (128, 4.0)]
    best = answers[0].best[1]
    assert per_card(best) == pytest.approx(best["output_tokens_per_s"] / 2)
    assert answers[0].first_over[0] == 8.0 and answers[0].meeting == 3
    assert "batch 8 misses it: TPOT p99 8 ms > 4.5" in answers[0].note(Slo(tpot_ms=4.5))
    # every budget counts: TTFT p99 = 10 x batch ms
    both = slo_answers(recs, Slo(tpot_ms=4.5, ttft_ms=25))
    assert [a.best[0] for a in both] == [2.0, 2.0]
    # the OOM above the largest ok batch is reported when everything ok meets it
    loose = slo_answers(recs, Slo(tpot_ms=100))[0]
    assert loose.best[0] == 8.0 and "batch 16 misses it: OOM" in loose.note(Slo(tpot_ms=100))
    assert "limit lies above" in slo_answers(recs, Slo(tpot_ms=100))[1].note(Slo(tpot_ms=100))


def test_slo_never_counts_impossible_or_unreported_cells() -> None:
    recs = tpot_grid(seqs=(64,))
    recs[3]["flags"] = ["above_bound"]  # batch 8 meets on paper, but cannot be right
    recs[2]["tpot_s_p99"] = None  # batch 4 did not report its TPOT
    ans = slo_answers(recs, Slo(tpot_ms=100))[0]
    assert ans.best[0] == 2.0 and ans.judged == 2
    none = slo_answers(recs, Slo(tpot_ms=0.5))[0]
    assert none.best is None and "no batch meets the SLO" in none.note(Slo(tpot_ms=0.5))
    # not monotonic: the largest batch meeting it wins; the note names the faster one
    odd = tpot_grid(seqs=(64,))
    odd[2]["tpot_s_p99"] = 0.050
    odd[3]["output_tokens_per_s"] = 1.0
    ans = slo_answers(odd, Slo(tpot_ms=9))[0]
    assert ans.best[0] == 8.0
    assert "more tok/s per card at batch 2" in ans.note(Slo(tpot_ms=9))


def test_slo_serving_highest_load_per_fixed_setting() -> None:
    def serving(load: dict[str, Any], tpot_ms: float) -> dict[str, Any]:
        rec = make_record(1, 128, salt=str(load), workload="serve", server_settings="tgi", **load)
        rec.update(batch=None, tpot_s_p99=tpot_ms * 1e-3)
        return rec

    by_conc = [serving({"concurrency": c}, 2.0 * c) for c in (1, 4, 16, 64)]
    (ans,) = slo_answers(by_conc, Slo(tpot_ms=40))
    assert (ans.kind, ans.axis, ans.best[0], ans.first_over[0]) == (
        "serving",
        "concurrency",
        16.0,
        64.0,
    )
    rates = [serving({"request_rate": r, "concurrency": c}, r * c) for r in (1.0, 2.0, 4.0, float("inf")) for c in (8, 32)]  # fmt: skip
    answers = slo_answers(rates, Slo(tpot_ms=64))
    assert [(a.axis, a.fixed, a.best[0]) for a in answers] == [
        ("request_rate", "server tgi, concurrency 32", 2.0),
        ("request_rate", "server tgi, concurrency 8", 4.0),
    ]
    unbounded = [serving({"request_rate": r, "concurrency": 8}, 1.0) for r in (1.0, math.inf, 2.0)]
    (inf,) = slo_answers(unbounded, Slo(tpot_ms=5))  # inf (all at once) is the highest rate
    assert inf.best[0] == math.inf and slo_row(inf, Slo(tpot_ms=5))["answer_load"] == "inf"


def test_slo_values_checked_and_zero_means_none() -> None:
    assert not Slo(tpot_ms=0).active() and not Slo().active()
    assert Slo(ttft_ms=200, tpot_ms=50).text() == "TTFT p99 <= 200 ms, TPOT p99 <= 50 ms"
    for bad in (-1, float("nan"), float("inf"), "fast", True):
        with pytest.raises(SloError, match=r"slo\.e2e_ms=.* a number of milliseconds"):
            Slo(e2e_ms=bad)
    assert answer_sections(tpot_grid(), slo_tpot_ms=None)[0] == "## Answers"  # Pareto still


def test_slo_csv_columns_and_values() -> None:
    slo = Slo(tpot_ms=4.5)
    rows = list(csv.DictReader(io.StringIO(slo_csv(slo_answers(tpot_grid(), slo), slo))))
    assert tuple(rows[0]) == SLO_COLUMNS and len(rows) == 2
    assert rows[0]["answer_load"] == "4" and rows[0]["slo_tpot_ms"] == "4.5"
    assert rows[0]["tpot_ms_p99"] == "4.000" and rows[0]["devices_per_cell"] == "1"
    assert rows[0]["first_over_load"] == "8" and rows[0]["cells_meeting"] == "3"


def test_devices_per_cell_from_flat_key_or_config() -> None:
    assert devices_per_cell({"devices_per_cell": 4}) == 4
    cfg = {"device": {"per_cell": 1}, "backend": {"name": "sglang", "sglang": {"tp_size": 8}}}
    assert devices_per_cell({"config": cfg}) == 8
    assert devices_per_cell({"config": {"device": {"per_cell": 2}}}) == 2
    assert devices_per_cell({}) == 1


def test_cli_slo_writes_csv_and_report_and_refuses_bad_values(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path / "s", tpot_grid())
    bad = run_cli(str(sweep), "--slo-tpot-ms", "-3", "--no-plots")
    assert bad.returncode == 2 and "--slo-tpot-ms=-3.0 is not allowed" in bad.stderr
    assert not (sweep / "report.md").exists()
    res = run_cli(str(sweep), "--slo-tpot-ms", "4.5", "--no-plots")
    assert res.returncode == 0, res.stderr
    assert "seq 64: batch 4, 400.0 output tok/s per card" in res.stdout
    report = (sweep / "report.md").read_text()
    assert "### SLO: TPOT p99 <= 4.5 ms" in report and (sweep / "slo.csv").exists()
    assert run_cli(str(sweep), "--no-plots", "--quiet").returncode == 0
    assert not (sweep / "slo.csv").exists()  # an answer to an SLO no longer asked is gone


# --- Pareto -----------------------------------------------------------------------------


def point(batch: int, tpot_ms: float, tps: float, **over: Any) -> dict[str, Any]:
    rec = make_record(batch, 128, **over)
    rec.update(tpot_s_mean=tpot_ms * 1e-3, output_tokens_per_s=tps)
    return rec


def test_pareto_front_and_dominated_points() -> None:
    recs = [
        point(1, 10, 100),  # x 100, y 100: front
        point(2, 20, 180),  # x 50, y 180: front
        point(4, 25, 150),  # x 40, y 150: dominated by b2
        point(8, 20, 180, backend="sglang"),  # the same as b2: neither dominates
        point(8, 20, 300, backend="sglang", salt="tp2", devices_per_cell=2),  # y 150: dominated
        point(16, 5, 10_000, backend="sim", simulated=True),  # never compared with measured
        point(16, 1, 1e6, flags=["above_bound"]),  # impossible: not a point
    ]
    fronts = pareto_points(recs)
    measured = next(v for k, v in fronts.items() if not k.simulated)
    state = {p.label: (p.on_front, p.dominated_by and p.dominated_by.label) for p in measured}
    assert state == {
        "hf cpu float32 b1": (True, None),
        "hf cpu float32 b2": (True, None),
        "hf cpu float32 b4": (False, "hf cpu float32 b2"),
        "sglang cpu float32 b8 [" + recs[3]["cell_id"][:8] + "]": (True, None),
        "sglang cpu float32 b8 [" + recs[4]["cell_id"][:8] + "]": (False, "hf cpu float32 b2"),
    }
    assert len(fronts) == 2 and any(k.simulated for k in fronts)
    rows = list(csv.DictReader(io.StringIO(pareto_csv(recs))))
    assert len(rows) == 6 and sum(r["on_front"] == "true" for r in rows) == 4
    dominated = next(r for r in rows if r["batch"] == "4")
    assert dominated["dominated_by"] == recs[1]["cell_dir"]
    assert dominated["tokens_per_s_per_sequence"] == "40.000"


# --- OOM frontier -----------------------------------------------------------------------


def frontier_records() -> list[dict[str, Any]]:
    sim = {"backend": "sim", "simulated": True, "model": "llama3_70b"}
    recs = [make_record(b, 64, **sim) for b in (1, 2, 4, 8, 16)] + [oom(32, 64, **sim)]
    recs += [make_record(b, 256, **sim) for b in (1, 2)] + [oom(b, 256, **sim) for b in (8, 16)]
    failed = {"type": "RuntimeError", "message": "boom", "traceback": ""}
    recs.append(make_record(4, 256, status="failed", error=failed, **sim))
    return recs


def test_oom_frontier_per_seq() -> None:
    rows = oom_frontier(frontier_records())
    got = [(r.seq, r.largest_ok, r.smallest_oom, r.failed) for r in rows]
    assert got == [(64, 16, 32, []), (256, 2, 8, [4])]
    assert rows[0].note() == "between batch 16 and 32"
    assert rows[1].note() == "between batch 2 and 8 (untested or failed: [4])"
    lone = oom_frontier([oom(1, 64)])[0]
    assert lone.note() == "OOM already at batch 1, the smallest tried"
    assert "no OOM up to batch 4" in oom_frontier([make_record(4, 64)])[0].note()


def test_answers_in_report_with_plots(tmp_path: Path) -> None:
    recs = frontier_records() + tpot_grid(seqs=(64,))
    out = write_outputs(tmp_path, recs, slo_tpot_ms=3)
    for name in ("plots/pareto.png", "plots/oom-frontier.png", "slo.csv", "pareto.csv"):
        assert name in out and Path(out[name]).stat().st_size > 0
    report = (tmp_path / "report.md").read_text()
    assert report.index("## Answers") < report.index("## llama3_70b")
    assert (
        "| llama3_70b · sim · cpu · float32 · prompt 32 (SIMULATED) | 256 | 2 | 8 | 4 |" in report
    )
    assert "![out-of-memory frontier](plots/oom-frontier.png)" in report
    assert "![Pareto front](plots/pareto.png)" in report


def test_throughput_axis_is_log_when_the_bound_is_far_above() -> None:
    from matplotlib.figure import Figure

    from aggregate.render.plots.static import _throughput

    for ratio, scale in ((50.0, "log"), (2.0, "linear")):
        recs = tpot_grid(seqs=(64,))
        for r in recs:
            r["bound_output_tokens_per_s"] = r["output_tokens_per_s"] * ratio
        ax = Figure().subplots()
        assert _throughput(ax, recs) and ax.get_yscale() == scale


def test_slo_from_the_records_when_none_is_given(tmp_path: Path) -> None:
    recs = tpot_grid(seqs=(64,))
    for r in recs:
        r["config"] = {"slo": {"ttft_ms": 0.0, "tpot_ms": 4.5}}  # static cells: in the config
    assert records_slo(recs) == Slo(tpot_ms=4.5)
    served = make_record(1, 64, salt="s", workload="serve", concurrency=4, slo_tpot_ms=9.0)
    assert records_slo([*recs, served]) == Slo()  # they disagree: no budget
    write_outputs(tmp_path, recs, plots=False)
    assert "### SLO: TPOT p99 <= 4.5 ms" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "slo.csv").exists()


def test_serving_throughput_per_card_is_the_records_own() -> None:
    rec = make_record(1, 64, workload="serve", concurrency=4, devices_per_cell=1)
    rec["output_tokens_per_s_per_card"] = 12.5  # the server spans cards the cell config omits
    assert per_card(rec) == 12.5
