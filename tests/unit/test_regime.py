"""Bottleneck attribution per phase (bounds/regime.py): measured TTFT and TPOT against the
memory and compute bounds of prefill and decode, the regime label and its fractions, as the
workers put them into records (workers/bounding.py), checked on the simulator whose times are
the roofline over an efficiency."""

from __future__ import annotations

import pytest

from bounds import regime as rg
from bounds.roofline import bounds_for, shipped_model_config
from bounds.specs import SPECS, DeviceSpec
from jobs.config import (
    BackendConfig,
    BenchConfig,
    CellConfig,
    DeviceConfig,
    ModelConfig,
    SimOptions,
)
from jobs.record import FLAT_KEYS
from workers.backends.sim import SimBackend, SimDevice
from workers.device.bounding import bound_fields
from workers.metrics import cell_metrics

L8B = shipped_model_config("llama3_8b")
B3 = SPECS["ascend_910b3"]
QUICK = BenchConfig(name="quick", warmup=1, iterations=3, max_iterations=3)


def test_phase_bounds_agree_with_the_roofline():
    for batch, seq, prompt in ((1, 16, 32), (16, 64, 512), (4, 1, 128)):
        b = bounds_for(L8B, "float16", B3, batch, seq, prompt)
        ph = rg.phase_bounds(L8B, "float16", B3, batch, seq, prompt)
        assert max(ph["prefill"].memory_s, ph["prefill"].compute_s) == pytest.approx(b.ttft_s)
        if seq == 1:
            assert ph["decode"] is None and b.tpot_s is None
            continue
        # the roofline takes the max per step; the mean of each bound can only be lower
        assert max(ph["decode"].memory_s, ph["decode"].compute_s) <= b.tpot_s * (1 + 1e-12)


def test_regime_rule():
    pb = rg.PhaseBounds(memory_s=0.010, compute_s=0.002)
    got = rg.attribute(0.0125, pb)
    assert got.regime == "memory_bound" and got.fraction_memory == pytest.approx(0.8)
    assert got.fraction_compute == pytest.approx(0.16)
    assert rg.attribute(0.0125, rg.PhaseBounds(0.002, 0.010)).regime == "compute_bound"
    over = rg.attribute(0.030, pb)  # the larger bound explains 1/3 of the time
    assert over.regime == "overhead_bound" and over.fraction_memory == pytest.approx(1 / 3)
    assert rg.attribute(0.020, pb).regime == "memory_bound"  # exactly 0.5: not overhead
    no_flops = rg.attribute(0.0125, rg.PhaseBounds(0.010, None))
    assert no_flops.regime == "memory_bound" and no_flops.fraction_compute is None
    assert rg.attribute(None, pb) is None and rg.attribute(0.0, pb) is None
    assert rg.attribute(0.01, None) is None


def test_regime_keys_are_flat_record_keys():
    assert set(rg.REGIME_KEYS) <= set(FLAT_KEYS)
    assert rg.REGIME_KEYS == (
        "prefill_regime", "prefill_bound_fraction_memory", "prefill_bound_fraction_compute",
        "decode_regime", "decode_bound_fraction_memory", "decode_bound_fraction_compute",
    )  # fmt: skip


def _sim(batch: int, seq: int, prompt_len: int, efficiency: float) -> dict:
    cell = CellConfig(
        batch=batch,
        seq=seq,
        prompt_len=prompt_len,
        backend=BackendConfig(
            name="sim",
            sim=SimOptions(noise=0.0, efficiency=efficiency, device_spec="ascend_910b3"),
        ),
        model=ModelConfig(name="llama3_8b", load_format="dummy"),
        device=DeviceConfig(name="cpu"),
        bench=QUICK,
    )
    dev = SimDevice(cell.device.name, cell.backend.sim.device_spec)
    backend = SimBackend(cell, dev)
    backend.load()
    backend.prepare(cell)
    its = [backend.run_iteration() for _ in range(3)]
    metrics = cell_metrics(its, batch=batch, seq=seq, prompt_len=prompt_len)
    fields, _ = bound_fields(metrics, cell, backend.model_info(), dev.kind, dev.name())
    return fields


def test_simulated_cells_get_the_regime_of_their_roofline():
    small = _sim(batch=1, seq=32, prompt_len=32, efficiency=1.0)
    assert small["decode_regime"] == "memory_bound"  # one token: read every weight
    assert small["decode_bound_fraction_memory"] == pytest.approx(1.0, rel=0.02)
    assert small["decode_bound_fraction_compute"] < 0.05
    assert small["prefill_regime"] == "memory_bound"
    big = _sim(batch=16, seq=8, prompt_len=512, efficiency=1.0)
    assert big["prefill_regime"] == "compute_bound"  # 8k prompt tokens: FLOPs dominate
    assert big["prefill_bound_fraction_compute"] == pytest.approx(1.0, rel=0.02)
    slow = _sim(batch=1, seq=32, prompt_len=32, efficiency=0.25)  # 4x the roofline
    assert slow["decode_regime"] == slow["prefill_regime"] == "overhead_bound"
    assert slow["decode_bound_fraction_memory"] == pytest.approx(0.25, rel=0.02)


def test_bound_fields_without_a_bound_carry_null_regimes():
    cell = CellConfig(batch=1, seq=8, prompt_len=8, device=DeviceConfig(name="cpu"))
    fields, _ = bound_fields({"ttft_s_mean": 0.1}, cell, {"config": {}}, "cpu", "x")
    assert all(fields[k] is None for k in rg.REGIME_KEYS)


def test_spec_without_flops_decides_by_memory_alone():
    spec = DeviceSpec("m", "m", 50e9, None, None, "measured")
    ph = rg.phase_bounds(L8B, "float16", spec, 1, 8, 16)
    assert ph["prefill"].compute_s is None and ph["decode"].compute_s is None
    f = rg.regime_fields({"ttft_s_mean": ph["prefill"].memory_s * 4, "tpot_s_mean": None}, ph)
    assert f["prefill_regime"] == "overhead_bound" and f["prefill_bound_fraction_compute"] is None
    assert f["decode_regime"] is None
