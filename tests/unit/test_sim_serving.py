"""The simulator's serving mode (workers/backends/sim_serving.py): serving records from a
queueing model on a virtual clock, in-process, without a server."""

from __future__ import annotations

import pytest

from jobs.config import from_values
from jobs.identity import PlannedCell
from jobs.record import build_record
from sweep.validate import validate
from workers.backends.sim_serving import StepCosts
from workers.run import measure

SERVING_KEYS = (
    "ttft_s_p50", "ttft_s_p99", "tpot_s_p99", "itl_s_p99", "e2e_s_p99", "request_throughput_per_s",
    "output_tokens_per_s", "goodput_requests_per_s", "goodput_fraction", "offered_rate_per_s",
    "achieved_rate_per_s", "queue_len_mean", "queue_len_max", "queue_growing",
)  # fmt: skip


def cell(**kw):
    values = {
        "workload": {"name": "serve", "num_requests": kw.pop("n", 200)},
        "backend": {"name": "sim"}, "model": {"name": "llama3_8b"},
        "prompt_len": 512, "seq": 128, "slo": {"tpot_ms": 40.0}, **kw,
    }  # fmt: skip
    return from_values(values)


def record(**kw):
    c = cell(**kw)
    return build_record(c, measure(c))


def test_a_sim_serving_cell_is_a_serving_record_marked_simulated():
    c = cell(request_rate=4.0)
    validate(c, local=True)  # no server, no tokenizer needed
    rec = build_record(c, measure(c))
    assert rec["status"] == "ok", rec["error"]
    assert rec["simulated"] is True and "simulated" in rec["flags"]
    assert rec["backend"] == "serve-sim" and "-serve-sim-" in rec["cell_dir"]
    assert all(rec.get(k) is not None for k in SERVING_KEYS), [
        k for k in SERVING_KEYS if rec.get(k) is None
    ]
    assert rec["completed_requests"] == rec["num_requests"] == 200
    assert rec["generated_tokens"] == 200 * 128
    assert len(rec["raw"]["ttft_s"]) == 200
    again = record(request_rate=4.0)  # deterministic per seed
    assert again["ttft_s_p99"] == rec["ttft_s_p99"] and again["tpot_s_p99"] == rec["tpot_s_p99"]


def test_light_load_times_are_the_static_step_costs():
    c = cell(request_rate=0.05, n=20, backend={"name": "sim", "sim": {"noise": 0.0}})
    rec = build_record(c, measure(c))
    costs = StepCosts(c)
    # alone on the server: TTFT = one prefill, TPOT = decode steps of one sequence
    assert rec["ttft_s_p50"] == pytest.approx(costs.prefill(1, 512), rel=1e-6)
    assert rec["tpot_s_p50"] == pytest.approx(costs.decode(1, 576), rel=0.02)
    assert rec["queue_len_max"] <= 1 and rec["queue_growing"] is False


def test_load_raises_latency_and_overload_shows_in_the_queue():
    low, mid = record(request_rate=4.0), record(request_rate=12.0)
    assert mid["tpot_s_p99"] > low["tpot_s_p99"] and mid["ttft_s_p99"] > low["ttft_s_p99"]
    assert mid["achieved_rate_per_s"] == pytest.approx(mid["offered_rate_per_s"], rel=0.05)
    over = record(request_rate=64.0, n=1000)
    assert over["queue_growing"] is True
    assert over["achieved_rate_per_s"] < 0.9 * over["offered_rate_per_s"]
    assert over["queue_len_max"] > 100


def test_closed_loop_and_a_cell_that_cannot_fit():
    rec = record(concurrency=8, n=64)
    assert rec["status"] == "ok" and rec["concurrency"] == 8
    huge = record(request_rate=1.0, model={"name": "llama3_70b"})  # 140 GB of weights, 64 GB card
    assert huge["status"] == "oom" and "simulated" in huge["flags"]


def test_sim_serving_cells_have_their_own_identity():
    real = from_values({"workload": {"name": "serve"}, "request_rate": 2.0})
    sim = from_values(
        {"workload": {"name": "serve"}, "request_rate": 2.0, "backend": {"name": "sim"}}
    )
    slow = from_values({"workload": {"name": "serve"}, "request_rate": 2.0,
                        "backend": {"name": "sim", "sim": {"efficiency": 0.3}}})  # fmt: skip
    ids = {PlannedCell.of(c).cell_id for c in (real, sim, slow)}
    assert len(ids) == 3
    assert "serve-transformers" in PlannedCell.of(real).cell_dir
