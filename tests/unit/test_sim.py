"""The simulator: roofline times, seeded noise, memory, every injected fault, no torch."""

from __future__ import annotations

import time

import pytest

from bounds.roofline import bounds_for, shipped_model_config
from bounds.specs import SPECS
from jobs.config import (
    BackendConfig,
    BenchConfig,
    CellConfig,
    DeviceConfig,
    ModelConfig,
    SimOptions,
)
from workers import run_cell
from workers.backends.sim import SimBackend, SimDevice
from workers.device.bounding import bound_fields
from workers.metrics import cell_metrics

QUICK = BenchConfig(name="quick", warmup=1, iterations=3, max_iterations=3)


def sim_cell(batch: int = 4, seq: int = 16, model: str = "llama3_8b", device: str = "cpu",
             **sim) -> CellConfig:  # fmt: skip
    return CellConfig(
        batch=batch,
        seq=seq,
        prompt_len=32,
        backend=BackendConfig(name="sim", sim=SimOptions(**sim)),
        model=ModelConfig(name=model, load_format="dummy"),
        device=DeviceConfig(name=device),
        bench=QUICK,
    )


def loaded(cell: CellConfig) -> tuple[SimBackend, SimDevice]:
    dev = SimDevice(cell.device.name, cell.backend.sim.device_spec)
    backend = SimBackend(cell, dev)
    backend.load()
    backend.prepare(cell)
    return backend, dev


def test_times_are_the_bound_over_efficiency():
    cell = sim_cell(noise=0.0, efficiency=0.5, device_spec="ascend_910b3")
    backend, dev = loaded(cell)
    it = backend.run_iteration()
    b = bounds_for(shipped_model_config("llama3_8b"), "float16", SPECS["ascend_910b3"], 4, 16, 32)
    assert it.e2e_s == pytest.approx(b.e2e_s / 0.5)
    assert it.ttft_s == pytest.approx(b.ttft_s / 0.5) == it.step_times_s[0]
    assert len(it.step_times_s) == 16 and it.step_times_s == sorted(it.step_times_s)
    assert it.step_times_s[-1] == it.e2e_s
    assert it.generated_tokens == 64 and it.per_sequence_tokens == [16] * 4
    info = backend.model_info()
    assert info["parameters"] == 8_030_261_248 and info["dtype"] == "float16"
    assert info["config"]["hidden_size"] == 4096
    assert dev.name() == "Ascend910B3" and dev.kind == "cpu"
    # weights + KV cache of 4 x (32 + 16) tokens
    assert dev.peak_memory()["allocated"] == 8_030_261_248 * 2 + 4 * 48 * 131_072


def test_noise_is_seeded_per_cell():
    a, _ = loaded(sim_cell(noise=0.05))
    b, _ = loaded(sim_cell(noise=0.05))
    e2e_a = [a.run_iteration().e2e_s for _ in range(20)]
    assert e2e_a == [b.run_iteration().e2e_s for _ in range(20)]
    m = sum(e2e_a) / len(e2e_a)
    cv = (sum((x - m) ** 2 for x in e2e_a) / (len(e2e_a) - 1)) ** 0.5 / m
    assert 0.02 < cv < 0.1
    c, _ = loaded(sim_cell(batch=5, noise=0.05))
    assert c.run_iteration().e2e_s != e2e_a[0]


def test_sim_records_pass_their_own_bound():
    for efficiency in (0.6, 1.0):
        cell = sim_cell(noise=0.0, efficiency=efficiency)
        backend, dev = loaded(cell)
        its = [backend.run_iteration() for _ in range(3)]
        rec = cell_metrics(its, batch=cell.batch, seq=cell.seq, prompt_len=cell.prompt_len)
        fields, broken = bound_fields(rec, cell, backend.model_info(), dev.kind, dev.name())
        assert fields["bound_fraction"] == pytest.approx(efficiency)
        assert broken == [] and fields["bound_source"].startswith("Ascend910B:")


def test_tiny_model_shape_without_building_it():
    backend, _ = loaded(sim_cell(model="tiny", noise=0.0))
    info = backend.model_info()
    assert info["path"] is None and info["parameters"] == 3_950_848  # as LlamaForCausalLM counts


def test_time_scale_really_sleeps():
    backend, _ = loaded(sim_cell(noise=0.0, time_scale=0.1))
    t0 = time.perf_counter()
    it = backend.run_iteration()
    assert time.perf_counter() - t0 >= 0.1 * it.e2e_s


def test_unknown_spec_lists_known():
    with pytest.raises(ValueError, match="ascend_910b3"):
        SimBackend(sim_cell(device_spec="tpu_v9"), None)


# --- through workers.run_cell: records with status and flags -------------------------------


def test_run_cell_ok_is_marked_simulated():
    rec = run_cell(sim_cell())
    assert rec["status"] == "ok", rec["error"]
    assert rec["simulated"] is True and "simulated" in rec["flags"]
    assert rec["generated_tokens"] == rec["expected_tokens"] == 64
    assert rec["sim_device_spec"] == "ascend_910b" and rec["sim_fault"] == "none"


def test_exception_fault_only_for_fault_batch():
    bad = run_cell(sim_cell(batch=2, fault="exception", fault_batch=2))
    assert bad["status"] == "failed"
    assert bad["error"]["message"] == "injected fault: exception"
    assert run_cell(sim_cell(batch=1, fault="exception", fault_batch=2))["status"] == "ok"


def test_load_error_fault():
    rec = run_cell(sim_cell(fault="load_error"))
    assert rec["status"] == "failed" and "load_error" in rec["error"]["message"]


def test_oom_fault_only_over_budget():
    budget = 17 * 10**9  # the 8B weights (16.06 GB) fit; the KV cache of a big cell does not
    small = run_cell(sim_cell(batch=1, fault="oom", memory_budget_bytes=budget))
    assert small["status"] == "ok", small["error"]
    big = run_cell(sim_cell(batch=64, seq=128, fault="oom", memory_budget_bytes=budget))
    assert big["status"] == "oom" and "budget 17.0 GB" in big["error"]["message"]


def test_cells_that_cannot_fit_are_always_oom():
    # 70B in fp16 (141 GB) on one 64 GB 910B, no fault injected
    rec = run_cell(sim_cell(model="llama3_70b", batch=1))
    assert rec["status"] == "oom" and rec["error"]["type"] == "CellOOM"


def test_slow_fault_multiplies_times():
    fast = run_cell(sim_cell(noise=0.0))
    slow = run_cell(sim_cell(noise=0.0, fault="slow", slow_factor=3.0))
    assert slow["status"] == "ok" and slow["sim_fault"] == "slow"
    assert slow["e2e_s_mean"] == pytest.approx(3.0 * fast["e2e_s_mean"])
