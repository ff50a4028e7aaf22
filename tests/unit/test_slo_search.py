"""The SLO search (hydra_plugins/ray_cells_launcher/_slo_search.py) and the knee prediction
(_slo_predict.py), in-process on the simulator's serving mode: the search against a
brute-force grid of the same simulator, the prediction against the found knee."""

from __future__ import annotations

import functools
import json

import pytest

from hydra_plugins.ray_cells_launcher._slo_predict import predict
from hydra_plugins.ray_cells_launcher._slo_search import Probe, Search, Slo, judge
from jobs.config import from_values
from jobs.record import build_record
from workers.run import measure, run_cell

SLO = Slo(tpot_ms=40.0)
REL_TOL = 0.1
MODEL = {"name": "llama3_8b"}


@functools.cache
def probe_record(rate: float) -> dict:
    c = from_values({
        "workload": {"name": "serve", "num_requests": 200}, "backend": {"name": "sim"},
        "model": MODEL, "prompt_len": 512, "seq": 128, "request_rate": rate,
        "slo": {"tpot_ms": SLO.tpot_ms},
    })  # fmt: skip
    return build_record(c, measure(c))


def meets(rate: float) -> bool:
    return judge([probe_record(rate)], SLO, 0.9)[0]


def search(start: float, predicted: bool) -> Search:
    s = Search(start=start, rel_tol=REL_TOL, predicted=predicted)
    while (v := s.next_value()) is not None:
        ok, why, sat = judge([probe_record(v)], SLO, 0.9)
        s.add(Probe(v, ok, why, sat))
    return s


@pytest.fixture(scope="module")
def brute_knee() -> float:
    """The highest rate of a 0.2/s grid that meets the SLO (all below meet, above fail)."""
    grid = [round(8 + 0.2 * i, 1) for i in range(51)]  # 8 .. 18
    ok = {r: meets(r) for r in grid}
    knee = max(r for r in grid if ok[r])
    assert all(ok[r] for r in grid if r <= knee - 1.0) and not any(
        ok[r] for r in grid if r >= knee + 1.0
    )
    assert meets(1.0) and not meets(40.0)
    return knee


def test_judge_says_why():
    assert judge([{"status": "ok", "ttft_s_p99": 0.5, "tpot_s_p99": 0.03}], SLO, 0.9)[:2] == (
        True,
        "meets",
    )
    bad = judge([{"status": "ok", "tpot_s_p99": 0.05}], SLO, 0.9)
    assert bad[0] is False and "p99 TPOT 50.0 ms > 40 ms" in bad[1]
    assert judge([{"status": "oom"}], SLO, 0.9)[:2] == (False, "status oom")
    sat = judge([{"status": "ok", "tpot_s_p99": 0.01, "offered_rate_per_s": 10,
                  "achieved_rate_per_s": 8}], SLO, 0.9)  # fmt: skip
    assert sat[0] is False and sat[2] is True and "over-saturated" in sat[1]
    assert judge([], SLO, 0.9)[0] is False


@pytest.mark.parametrize("knee", [0.37, 3.0, 13.9, 250.0])
def test_search_brackets_then_bisects_to_rel_tol(knee):
    s = Search(start=1.0, rel_tol=REL_TOL)
    while (v := s.next_value()) is not None:
        s.add(Probe(v, v <= knee, ""))
    assert s.status == "found"
    lo, hi = s.lo, s.hi
    assert lo <= knee < hi and hi - lo <= REL_TOL * lo
    assert len(s.probes) <= 12


def test_integer_search_and_its_ends():
    s = Search(start=1, integer=True, rel_tol=REL_TOL)
    while (v := s.next_value()) is not None:
        s.add(Probe(v, v <= 37, ""))
    assert (s.lo, s.hi, s.status) == (37, 38, "found") or s.hi - s.lo <= REL_TOL * s.lo
    none = Search(start=4, integer=True)
    while (v := none.next_value()) is not None:
        none.add(Probe(v, False, ""))
    assert none.status == "none_meets" and none.lo is None
    up = Search(start=4, max_value=64)
    while (v := up.next_value()) is not None:
        up.add(Probe(v, True, ""))
    assert up.status == "above_max" and up.lo == 64


def test_slo_search_finds_the_sim_knee_within_rel_tol_in_8_probes(brute_knee):
    for start in (1.0, 4.0):
        s = search(start, predicted=False)
        assert s.status == "found"
        assert len(s.probes) <= 8, [p.value for p in s.probes]
        assert abs(s.lo - brute_knee) <= REL_TOL * brute_knee, (s.lo, brute_knee)


def test_prediction_from_static_sim_cells_lands_within_20_percent(brute_knee, tmp_path):
    for b in (1, 2, 4, 8, 16, 32, 64, 128, 256):
        c = from_values({
            "backend": {"name": "sim"}, "model": MODEL, "prompt_len": 512, "seq": 128,
            "batch": b, "bench": {"warmup": 1, "iterations": 3},
        })  # fmt: skip
        rec = run_cell(c)
        assert rec["status"] == "ok"
        (tmp_path / rec["cell_dir"]).mkdir()
        (tmp_path / rec["cell_dir"] / "record.json").write_text(json.dumps(rec, default=str))
    match = {"model": "llama3_8b", "sim_device_spec": "ascend_910b"}
    pred = predict(tmp_path, "request_rate", match, 512, 128, SLO)
    assert pred is not None and pred["static_cells"] == 9
    assert abs(pred["value"] - brute_knee) <= 0.2 * brute_knee, (pred["value"], brute_knee)
    s = search(pred["value"], predicted=True)
    assert len(s.probes) <= 8 and abs(s.lo - brute_knee) <= REL_TOL * brute_knee
    conc = predict(tmp_path, "concurrency", match, 512, 128, SLO)
    assert conc is not None and isinstance(conc["value"], int) and conc["value"] > 1
    assert predict(tmp_path, "request_rate", {"model": "llama3_70b"}, 512, 128, SLO) is None


def test_over_saturation_ends_the_bracket_when_latency_would_not():
    loose = Slo(tpot_ms=1000.0)

    def judged(rate: float):
        c = from_values({
            "workload": {"name": "serve", "num_requests": 1000}, "backend": {"name": "sim"},
            "model": MODEL, "prompt_len": 512, "seq": 128, "request_rate": rate,
        })  # fmt: skip
        return judge([build_record(c, measure(c))], loose, 0.9)

    s = Search(start=4.0, rel_tol=REL_TOL)
    while (v := s.next_value()) is not None:
        s.add(Probe(v, *judged(v)))
    assert s.status == "found" and len(s.probes) <= 8
    first_failing = next(p for p in s.probes if p.value == s.hi)
    assert first_failing.saturated and "over-saturated" in first_failing.why
    assert all(p.meets for p in s.probes if p.value <= 16)


def test_a_job_result_is_a_row_or_a_list_of_records():
    from hydra.core.utils import JobReturn, JobStatus

    from hydra_plugins.ray_cells_launcher.slo_search_sweeper import results

    row = {"status": "ok", "tpot_s_p99": 0.01}
    ray = JobReturn(status=JobStatus.COMPLETED, _return_value=row)
    basic = JobReturn(status=JobStatus.COMPLETED, _return_value=[row, row])
    failed = JobReturn(status=JobStatus.FAILED, _return_value=RuntimeError("x"))
    assert results(ray) == [row] and results(basic) == [row, row]
    assert results(failed) == [] and results(None) == []
